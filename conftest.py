"""How ``make notebooks`` proves every lesson's exercises inside nbval's one run of the lesson.

nbval (``pytest notebooks``, quick mode) executes the code cells of each lesson in order, in one
kernel, and compares the cells marked ``# NBVAL_CHECK_OUTPUT`` with their committed outputs. This
plugin adds two things to that same run, so that no lesson has to be executed twice:

- every cell tagged ``exercise`` runs blank, exactly as committed, and must print
  "Exercise L.N, not done yet" (a blank answer is recognised as blank, and does not crash);
- right after it, one cell is added: that exercise's reference solution from
  ``course_utils.exercises`` (the whole answer cell, ending with its ``ex.check(N, ...)``),
  standing in for a learner's answer. It must print "Exercise L.N, right".

Typical wrong answers, and the hint each gets, are checked without a notebook, in
tests/test_exercises_lesson*.py; tests/test_nbval_exercises.py checks that this plugin fails
a lesson whose blank answer is not blank or whose solution is not right.
"""

from __future__ import annotations

import importlib
import re
from collections import defaultdict

import nbformat
import pytest
from nbval.plugin import IPyNbCell, IPyNbFile

CHECK_CALL = re.compile(r"\bex\.check\((\d+)\s*,")
VERDICT = re.compile(r"Exercise (\d+)\.(\d+), (right|not yet|not done yet):")
NOT_DONE, RIGHT = "not done yet", "right"


def exercise_number(cell) -> int | None:
    """The exercise a cell tagged ``exercise`` answers (from its ``ex.check(N, ...)``), else ``None``."""
    if "exercise" not in cell.get("metadata", {}).get("tags", []):
        return None
    match = CHECK_CALL.search(cell.source)
    return int(match.group(1)) if match else None


def printed(outputs) -> str:
    """What a cell printed: the text of its stream outputs (stdout and stderr), in order."""
    return "".join(out.get("text", "") for out in outputs or [] if out.get("output_type") == "stream")


def verdicts(outputs) -> list[tuple[int, int, str]]:
    """``(lesson, exercise, verdict)`` for every verdict line printed in ``outputs``."""
    return [(int(m.group(1)), int(m.group(2)), m.group(3)) for m in VERDICT.finditer(printed(outputs))]


class LessonWithSolutions(IPyNbFile):
    """nbval's collector for one lesson, with each exercise's reference solution added after it."""

    def collect(self):
        lesson_number = int(self.path.name[:2]) if self.path.name[:2].isdigit() else None
        for item in super().collect():   # nbval reads the notebook (self.nb) and yields its code cells
            yield item
            number = exercise_number(item.cell) if lesson_number else None
            if number is None:
                continue
            item.expected_verdict = (lesson_number, number, NOT_DONE)
            lesson = importlib.import_module(f"course_utils.exercises.lesson{lesson_number}").lesson
            solved = IPyNbCell.from_parent(
                self, name=f"{item.name} (exercise {number}, reference solution)", cell_num=item.cell_num,
                cell=nbformat.v4.new_code_cell(lesson.exercises[number].solution),
                options=defaultdict(bool, check=False))
            solved.expected_verdict = (lesson_number, number, RIGHT)
            yield solved


@pytest.hookimpl(wrapper=True)
def pytest_collect_file(file_path, parent):
    """Swap nbval's collector of a lesson for the one above (nbval's own is used for everything else)."""
    collected = yield
    if file_path.suffix != ".ipynb" or not collected:
        return collected
    return [LessonWithSolutions.from_parent(parent, path=file_path) if type(node) is IPyNbFile else node
            for node in collected]


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item):
    """After nbval has run a cell with an expected verdict, fail it unless it printed exactly that verdict."""
    result = yield
    expected = getattr(item, "expected_verdict", None)
    if expected is not None:
        got = verdicts(item.test_outputs)
        if got != [expected]:
            said = printed(item.test_outputs).strip()
            lesson, number, verdict = expected
            item.raise_cell_error(f"exercise {lesson}.{number} should say '{verdict}', but printed: "
                                  f"{said[:500] or '(nothing)'}")
    return result
