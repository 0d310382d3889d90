"""Lesson 2's exercise checks: the blank, the right answer and each typical mistake (no notebook needed)."""

import contextlib
import io

import pytest

from course_utils.exercises import NOT_DONE, RIGHT, WRONG
from course_utils.exercises.lesson2 import lesson

H, W = 300, 451  # the grey photo of Chelsea, as the lesson loads it


def test_blank_is_not_done():
    for number in lesson.exercises:
        assert lesson.evaluate(number, ...).status == NOT_DONE


def test_output_size():
    assert lesson.evaluate(1, ((H + 2 - 5) // 2 + 1, (W + 2 - 5) // 2 + 1)).status == RIGHT


@pytest.mark.parametrize("answer, hint", [
    (((H - 5) // 2 + 1, (W - 5) // 2 + 1), "padding"),
    (((H + 2 - 5) // 2, (W + 2 - 5) // 2), "+ 1"),
    (((H + 2 - 5) * 2 + 1, (W + 2 - 5) * 2 + 1), "divide by the stride"),
    ((H + 2 - 5 + 1, W + 2 - 5 + 1), "stride is missing"),
    (((W + 2 - 5) // 2 + 1, (H + 2 - 5) // 2 + 1), "(height, width)"),
    ((150, 225), "round down"),
    ((1, 2), "not (1, 2)"),
    ("150 x 225", "two numbers"),
])
def test_output_size_mistakes_get_their_hint(answer, hint):
    result = lesson.evaluate(1, answer)
    assert result.status == WRONG and hint in result.message


def test_check_never_raises_and_prints_one_line():
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        lesson.check(1, object())       # nonsense
        lesson.check(1, ...)            # blank
        lesson.check(99, 1)             # no such exercise
        lesson.hint(1)
        lesson.solution(1)
    text = out.getvalue()
    assert "Exercise 2.1, not yet" in text and "Exercise 2.1, not done yet" in text
    assert "no exercise 99" in text and "Hint for Exercise 2.1" in text and "ex.check(1, answer)" in text
