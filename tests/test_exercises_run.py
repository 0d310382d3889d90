"""Every lesson's exercises, proven in the notebook itself: blank says "not done yet", the solution passes.

Each notebook is executed in quick mode exactly as committed, with one cell added after each
exercise cell: that exercise's reference solution (from course_utils.exercises), which stands in
for the learner's answer. Then each exercise cell must have reported "not done yet" and each
solution "right". This is one more "restart and run all" of every notebook, so `make notebooks`
runs it once, after nbval (see the Makefile); a bare `pytest` leaves it out (marker notebook_run).
Typical wrong answers are checked without a notebook, in tests/test_exercises_lesson*.py.
"""

import importlib
import os
import re
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
CHECK_CALL = re.compile(r"\bex\.check\((\d+)\s*,")
VERDICT = re.compile(r"Exercise (\d+)\.(\d+), (right|not yet|not done yet):")


def lesson_of(path: Path):
    """The exercises module of a notebook: notebooks/02_... -> course_utils.exercises.lesson2."""
    return importlib.import_module(f"course_utils.exercises.lesson{int(path.name[:2])}").lesson


def exercise_cells(nb) -> list[tuple[int, int]]:
    """(cell index, exercise number) of every cell tagged "exercise"."""
    found = []
    for i, cell in enumerate(nb.cells):
        if "exercise" in cell.get("metadata", {}).get("tags", []):
            match = CHECK_CALL.search(cell.source)
            assert match, f"exercise cell {i} has no ex.check(<number>, ...) call"
            found.append((i, int(match.group(1))))
    return found


def verdicts(cell) -> list[tuple[int, str]]:
    text = "".join(out.get("text", "") for out in cell.get("outputs", []) if out.get("output_type") == "stream")
    return [(int(m.group(2)), m.group(3)) for m in VERDICT.finditer(text)]


@pytest.fixture(scope="module")
def shared_data(tmp_path_factory):
    """One data folder for all lessons, in order, as a learner has it (lesson 7 finds lesson 6's model)."""
    return tmp_path_factory.mktemp("course-data")


@pytest.mark.notebook_run
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_blank_exercises_are_not_done_and_reference_solutions_pass(path, shared_data, monkeypatch):
    monkeypatch.setenv("COURSE_QUICK", "1")
    monkeypatch.setenv("COURSE_DATA", str(shared_data))
    nb = nbformat.read(path, as_version=4)
    lesson = lesson_of(path)
    found = exercise_cells(nb)
    assert 2 <= len(found) <= 4, f"{path.name} has {len(found)} exercise cells"
    cells, blanks, solved = [], [], []
    for i, cell in enumerate(nb.cells):
        cells.append(cell)
        for index, number in found:
            if index == i:
                blanks.append((len(cells) - 1, number))
                cells.append(nbformat.v4.new_code_cell(lesson.exercises[number].solution))
                solved.append((len(cells) - 1, number))
    nb.cells = cells
    NotebookClient(nb, timeout=300, kernel_name="python3",
                   resources={"metadata": {"path": str(path.parent)}}).execute()
    for index, number in blanks:
        assert verdicts(nb.cells[index]) == [(number, "not done yet")], (path.name, number, nb.cells[index].outputs)
    for index, number in solved:
        assert verdicts(nb.cells[index]) == [(number, "right")], (path.name, number, nb.cells[index].outputs)
    assert os.environ["COURSE_QUICK"] == "1"
