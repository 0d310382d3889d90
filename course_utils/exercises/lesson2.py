"""The exercises of lesson 2 (filters and convolution), with their checks, hints and solutions."""

from __future__ import annotations

from PIL import Image

from course_utils.env import samples_dir
from course_utils.exercises import Lesson, Result, as_array, close, right, wrong

lesson = Lesson(2)


def _photo_size() -> tuple[int, int]:
    """(height, width) of the grey photo the lesson filters (Chelsea the cat)."""
    with Image.open(samples_dir() / "chelsea.png") as photo:
        return photo.height, photo.width


@lesson.exercise(
    1,
    hint="Apply the formula once for the height and once for the width: "
         "floor((n + 2p - k) / s) + 1, with n the side of the photo, k = 5, p = 1, s = 2.",
    solution="""
h, w = grey.shape
answer = ((h + 2 * 1 - 5) // 2 + 1, (w + 2 * 1 - 5) // 2 + 1)   # the formula, for each side
print("checked by running it:", conv2d_by_hand(grey.astype(float), np.ones((5, 5)), stride=2, padding=1).shape)
ex.check(1, answer)
""",
)
def check_output_size(answer) -> Result:
    """Exercise 1: the output shape of a 5 x 5 filter, stride 2, padding 1, on the grey photo."""
    values = as_array(answer)
    if values is None or values.shape != (2,):
        return wrong("give two numbers, (height, width), e.g. answer = (100, 200)")
    h, w = _photo_size()
    k, p, s = 5, 1, 2

    def side(n: int) -> int:
        return (n + 2 * p - k) // s + 1

    expected = (side(h), side(w))
    if close(values, expected):
        return right(f"{expected[0]} x {expected[1]}: the formula needs no trial run once you trust it.")
    mistakes = {
        "the padding seems to be missing: add 2p to each side before the filter slides": (
            (h - k) // s + 1, (w - k) // s + 1),
        "almost: the formula ends with + 1 (the first position counts too)": (
            (h + 2 * p - k) // s, (w + 2 * p - k) // s),
        "with stride 2 the output shrinks, it does not grow: divide by the stride, do not multiply": (
            (h + 2 * p - k) * s + 1, (w + 2 * p - k) * s + 1),
        "the stride is missing: with stride 2 only every other position is used": (
            h + 2 * p - k + 1, w + 2 * p - k + 1),
        "round down, not up: a window that would run past the padded border is not used": (
            -(-(h + 2 * p - k) // s) + 1, -(-(w + 2 * p - k) // s) + 1),
        "right numbers, wrong order: NumPy shapes are (height, width), rows first": (side(w), side(h)),
    }
    matching = [why for why, value in mistakes.items() if close(values, value)]
    if matching:  # two mistakes can give the same numbers: name them all
        return wrong("; or ".join(matching))
    return wrong(f"not {tuple(int(v) for v in values)}. Work out one side at a time; `ex.hint(1)` shows the formula.")


check, hint, solution = lesson.check, lesson.hint, lesson.solution
