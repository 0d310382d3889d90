"""The repository's conftest.py plugin, which proves the exercises inside nbval's run of each lesson.

One fresh pytest runs nbval over three two-cell "lessons" (named like lesson 3, so their
exercises are lesson 3's), and each test looks at one of them: a blank answer followed by the
added reference solution passes; an answer cell that is already solved (so it does not say
"not done yet"), or a reference solution that is not right, fails with a message that says
which. One run, not three, because each costs a Python that imports pytest, nbval and torch.
"""

import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parent.parent

IMPORT = "import numpy as np\nfrom course_utils.exercises import lesson3 as ex"
BLANK = "def softmax(scores):\n    ...   # your code\n\nex.check(4, softmax)"
SOLVED = "def softmax(scores):\n    e = np.exp(scores - np.max(scores))\n    return e / e.sum()\n\nex.check(4, softmax)"
WRONG = "def softmax(scores):\n    return np.exp(scores) / np.exp(scores).sum()\n\nex.check(4, softmax)"

# lesson -> (its exercise cell, as committed; the reference solution the plugin adds after it, None: the real one)
LESSONS = {"03_blank": (BLANK, None), "03_solved": (SOLVED, None), "03_wrong_solution": (BLANK, WRONG)}

# Appended to a copy of conftest.py: exercise 3.4's solution is WRONG while 03_wrong_solution is collected.
SWAP_SOLUTION = """
from course_utils.exercises import lesson3 as _lesson3

_real_solution, _collect = _lesson3.lesson.exercises[4].solution, LessonWithSolutions.collect


def _collect_with_this_lessons_solution(self):
    _lesson3.lesson.exercises[4].solution = {solutions!r}.get(self.path.stem, _real_solution)
    yield from _collect(self)


LessonWithSolutions.collect = _collect_with_this_lessons_solution
"""


@pytest.fixture(scope="module")
def cells(tmp_path_factory) -> dict[str, list[tuple[str, str]]]:
    """lesson -> ``(outcome, message)`` of each of its test items, in order, from one nbval run."""
    folder = tmp_path_factory.mktemp("lessons")
    for name, (answer, _) in LESSONS.items():
        nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(IMPORT), nbformat.v4.new_code_cell(answer)])
        nb.cells[1].metadata["tags"] = ["exercise"]
        nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
        nbformat.write(nb, folder / f"{name}.ipynb")
    solutions = {name: solution for name, (_, solution) in LESSONS.items() if solution}
    (folder / "conftest.py").write_text((ROOT / "conftest.py").read_text() + SWAP_SOLUTION.format(solutions=solutions))
    (folder / "pytest.ini").write_text("[pytest]\n")   # this folder is the run's root: not the course's settings
    report = folder / "report.xml"
    options = ["--nbval-lax", "--nbval-current-env", "-p", "no:cacheprovider", f"--junitxml={report}"]
    run = subprocess.run([sys.executable, "-m", "pytest", *options, *sorted(p.name for p in folder.glob("*.ipynb"))],
                         cwd=folder, capture_output=True, text=True, timeout=600)
    if not report.exists():
        pytest.fail(f"nbval did not run (exit code {run.returncode}):\n{run.stdout[-3000:]}{run.stderr[-3000:]}")
    found: dict[str, list[tuple[str, str]]] = {name: [] for name in LESSONS}
    for case in ET.parse(report).iter("testcase"):
        problem = case.find("failure")
        if problem is None:
            problem = case.find("error")
        lesson = next(name for name in LESSONS if name in case.get("classname", "") + case.get("name", ""))
        found[lesson].append(("passed", "") if problem is None else ("failed", problem.get("message", "") +
                                                                      (problem.text or "")))
    return found


def test_blank_answer_then_reference_solution_passes(cells):
    assert [outcome for outcome, _ in cells["03_blank"]] == ["passed"] * 3   # import, blank answer, added solution


def test_an_answer_cell_that_is_not_blank_fails(cells):
    assert [outcome for outcome, _ in cells["03_solved"]] == ["passed", "failed", "passed"]
    assert "exercise 3.4 should say 'not done yet', but printed: " in cells["03_solved"][1][1]
    assert "Exercise 3.4, right" in cells["03_solved"][1][1]


def test_a_reference_solution_that_is_not_right_fails(cells):
    assert [outcome for outcome, _ in cells["03_wrong_solution"]] == ["passed", "passed", "failed"]
    message = cells["03_wrong_solution"][2][1]
    assert "exercise 3.4 should say 'right', but printed: " in message and "Exercise 3.4, not yet" in message
    assert "overflows" in message
