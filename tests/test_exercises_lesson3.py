"""Lesson 3's exercise checks: the blank, the right answers and each typical mistake (no notebook needed)."""

import contextlib
import io
import time

import numpy as np
import pytest
from torch import nn

from course_utils.exercises import NOT_DONE, RIGHT, WRONG
from course_utils.exercises.lesson3 import lesson


def cnn(shrink=lambda c: nn.MaxPool2d(2), head=None) -> nn.Sequential:
    """The lesson's make_cnn, with its pooling layers made by ``shrink(channels)`` and another head if given."""
    layers = [nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.Conv2d(16, 16, 3, padding=1), nn.ReLU(), *shrink(16),
              nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.Conv2d(32, 32, 3, padding=1), nn.ReLU(), *shrink(32)]
    head = head or [nn.Flatten(), nn.Linear(128, 64)]
    return nn.Sequential(*layers, *head, nn.ReLU(), nn.Linear(64, 10))


def pooled(c):
    return [nn.MaxPool2d(2)]


def strided(c, kernel=3, padding=1, out=None):
    return [nn.Conv2d(c, out or c, kernel, stride=2, padding=padding), nn.ReLU()]


def test_blank_is_not_done():
    for number in lesson.exercises:
        assert lesson.evaluate(number, ...).status == NOT_DONE


@pytest.mark.parametrize("number", [1, 2, 4])
def test_a_function_whose_body_is_still_blank_is_not_done(number):
    def blank_function(*args):
        ...
    assert lesson.evaluate(number, blank_function).status == NOT_DONE


# ----------------------------------------------------------------------------- 1: strided convolutions


def test_strided_cnn_right():
    assert lesson.evaluate(1, lambda: cnn(strided)).status == RIGHT
    assert lesson.evaluate(1, cnn(strided)).status == RIGHT  # a model instead of a function: accepted


@pytest.mark.parametrize("answer, hint", [
    (lambda: cnn(pooled), "still a pooling layer"),
    (lambda: cnn(lambda c: [nn.Conv2d(c, c, 3, padding=1), nn.ReLU()]), "stride=2"),
    (lambda: cnn(lambda c: strided(c, padding=0)), "padding=1"),
    (lambda: cnn(lambda c: strided(c, kernel=2, padding=0)), "3 x 3"),
    (lambda: nn.Sequential(nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), *strided(16), *strided(16),
                           *strided(16), nn.Flatten(), nn.Linear(16, 10)), "3 convolutions with stride 2"),
    (lambda: cnn(strided, head=[nn.Flatten(), nn.Linear(128, 64, bias=False)]), "parameters"),
    (lambda: cnn(strided)[:-1], "5 x 10"),
    (lambda: "a model", "returned a str"),
])
def test_strided_cnn_mistakes_get_their_hint(answer, hint):
    result = lesson.evaluate(1, answer)
    assert result.status == WRONG and hint in result.message, result.message


# ----------------------------------------------------------------------------- 2: global average pooling


def test_gap_cnn_right():
    result = lesson.evaluate(2, lambda: cnn(pooled, head=[nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(32, 64)]))
    assert result.status == RIGHT and "19,130" in result.message and "16 x 16" in result.message


@pytest.mark.parametrize("answer, hint", [
    (lambda: cnn(pooled), "no global average pooling"),
    (lambda: cnn(pooled, head=[nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Linear(128, 64)]), "ONE number"),
    (lambda: cnn(pooled, head=[nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(128, 64)]), "32 inputs"),
    (lambda: cnn(pooled, head=[nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(32, 64), nn.ReLU(),
                               nn.Linear(64, 64)]), "parameters"),
])
def test_gap_cnn_mistakes_get_their_hint(answer, hint):
    result = lesson.evaluate(2, answer)
    assert result.status == WRONG and hint in result.message, result.message


# ----------------------------------------------------------------------------- 3: average pooling and shifts


@pytest.fixture(scope="module")
def changes():
    from course_utils.exercises.lesson3 import _shift_changes
    return _shift_changes(2), _shift_changes(1)


def test_average_pooling_shift_right(changes):
    two, _ = changes
    assert 0 < two["avg 4"] < two["none"]  # pooling does make the maps less sensitive
    result = lesson.evaluate(3, two["avg 4"])
    assert result.status == RIGHT and "max pooling" in result.message
    assert lesson.evaluate(3, np.float32(two["avg 4"])).status == RIGHT


def test_average_pooling_shift_mistakes_get_their_hint(changes):
    two, one = changes
    for answer, hint in [(two["max 4"], "max pooling"), (two["none"], "without pooling"), (two["avg 2"], "2 x 2"),
                         (one["avg 4"], "1-pixel"), (100 * two["avg 4"], "fraction"), (0.123456, "not 0.1235"),
                         ("45%", "one number"), ([0.4, 0.5], "one number")]:
        result = lesson.evaluate(3, answer)
        assert result.status == WRONG and hint in result.message, (answer, result.message)


# ----------------------------------------------------------------------------- 4: softmax


def stable(scores):
    e = np.exp(scores - scores.max())
    return e / e.sum()


def test_softmax_right():
    result = lesson.evaluate(4, stable)
    assert result.status == RIGHT and "sharpens" in result.message
    assert lesson.evaluate(4, lambda s: list(stable(s))).status == RIGHT  # a list is fine too


@pytest.mark.parametrize("answer, hint", [
    (lambda s: np.exp(s) / np.exp(s).sum(), "overflows"),
    (lambda s: np.exp(s - s.max()), "divide them by their sum"),
    (lambda s: np.exp(s) / s.sum(), "not by the sum of the scores"),
    (lambda s: stable(s) * 2, "add up to 2"),
    (lambda s: stable(s)[::-1], "softmax is"),
    (lambda s: stable(s)[:3], "one probability per score"),
    (lambda s: np.array([0.659, 0.242, 0.099]), "one probability per score"),
    (lambda s: "probabilities", "not an array of numbers"),
])
def test_softmax_mistakes_get_their_hint(answer, hint):
    result = lesson.evaluate(4, answer)
    assert result.status == WRONG and hint in result.message, result.message


# ----------------------------------------------------------------------------- never raises


def test_learner_code_that_raises_or_loops_gets_a_hint_not_an_exception(short_time_limit):
    def forever(*args):
        while True:
            time.sleep(0.01)

    def broken(*args):
        raise ValueError("oops")

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        for number in (1, 2, 4):
            lesson.check(number, broken)
        lesson.check(4, lambda s: forever())
    text = out.getvalue()
    assert text.count("raised ValueError: oops") == 3 and "took more than" in text
    assert "not yet" in text and "Traceback" not in text


def test_check_never_raises_on_nonsense():
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        for number in lesson.exercises:
            for nonsense in (object(), "text", 3, [1, 2], None, ...):
                lesson.check(number, nonsense)
        lesson.hint(1)
        lesson.solution(4)
    text = out.getvalue()
    assert "Exercise 3.1, not yet" in text and "Hint for Exercise 3.1" in text and "ex.check(4, softmax)" in text
