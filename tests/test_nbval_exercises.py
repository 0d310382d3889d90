"""The repository's conftest.py plugin, which proves the exercises inside nbval's run of each lesson.

Each test writes a two-cell "lesson" (named like lesson 3, so its exercises are lesson 3's), runs
nbval on it in a fresh pytest, and looks at the outcome: a blank answer followed by the added
reference solution passes; an answer cell that is already solved (so it does not say "not done
yet"), or a reference solution that is not right, fails with a message that says which.
"""

from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parent.parent
pytest_plugins = ["pytester"]

IMPORT = "import numpy as np\nfrom course_utils.exercises import lesson3 as ex"
BLANK = "def softmax(scores):\n    ...   # your code\n\nex.check(4, softmax)"
SOLVED = "def softmax(scores):\n    e = np.exp(scores - np.max(scores))\n    return e / e.sum()\n\nex.check(4, softmax)"


def run_lesson(pytester, answer: str, solution: str | None = None):
    """nbval, in a fresh pytest, over a two-cell lesson 3 whose exercise cell is ``answer``.

    ``solution``, if given, stands in for exercise 4's reference solution in that run only.
    """
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(IMPORT), nbformat.v4.new_code_cell(answer)])
    nb.cells[1].metadata["tags"] = ["exercise"]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, pytester.path / "03_tiny.ipynb")
    plugin = (ROOT / "conftest.py").read_text()
    if solution is not None:
        plugin += ("\nfrom course_utils.exercises import lesson3 as _lesson3\n"
                   f"_lesson3.lesson.exercises[4].solution = {solution!r}\n")
    (pytester.path / "conftest.py").write_text(plugin)
    return pytester.runpytest_subprocess("--nbval-lax", "--nbval-current-env", "-p", "no:cacheprovider",
                                         "03_tiny.ipynb")


def test_blank_answer_then_reference_solution_passes(pytester):
    result = run_lesson(pytester, BLANK)
    result.assert_outcomes(passed=3)   # the import, the blank answer, the added solution


def test_an_answer_cell_that_is_not_blank_fails(pytester):
    result = run_lesson(pytester, SOLVED)
    result.assert_outcomes(passed=2, failed=1)
    result.stdout.fnmatch_lines(["*exercise 3.4 should say 'not done yet', but printed: *Exercise 3.4, right*"])


def test_a_reference_solution_that_is_not_right_fails(pytester):
    wrong = "def softmax(scores):\n    return np.exp(scores) / np.exp(scores).sum()\n\nex.check(4, softmax)"
    result = run_lesson(pytester, BLANK, solution=wrong)
    result.assert_outcomes(passed=2, failed=1)
    result.stdout.fnmatch_lines(["*exercise 3.4 should say 'right', but printed: *Exercise 3.4, not yet*overflows*"])
