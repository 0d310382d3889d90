"""Lesson 4's exercise checks: the blank, the right answers and each typical mistake (no notebook needed)."""

import contextlib
import io
import time

import numpy as np
import pytest
import torch

from course_utils.exercises import NOT_DONE, RIGHT, WRONG, lesson4
from course_utils.exercises.lesson4 import TARGET_LOSS, _train_one_epoch, lesson, train_one_epoch_with
from course_utils.lr_finder import steep


def test_blank_is_not_done():
    for number in lesson.exercises:
        assert lesson.evaluate(number, ...).status == NOT_DONE


@pytest.mark.parametrize("number", [1, 2])
def test_a_function_whose_body_is_still_blank_is_not_done(number):
    def blank_function(*args):
        ...
    assert lesson.evaluate(number, blank_function).status == NOT_DONE


# ----------------------------------------------------------------------------- 1: smoothing


def smooth(losses, beta=0.98):
    average, out = 0.0, []
    for i, loss in enumerate(losses):
        average = beta * average + (1 - beta) * loss
        out.append(average / (1 - beta ** (i + 1)))
    return out


def test_smooth_right():
    result = lesson.evaluate(1, smooth)
    assert result.status == RIGHT and "delay" in result.message
    assert lesson.evaluate(1, lambda losses, beta: np.array(smooth(losses, beta))).status == RIGHT


def without_correction(losses, beta):
    average, out = 0.0, []
    for loss in losses:
        average = beta * average + (1 - beta) * loss
        out.append(average)
    return out


def swapped(losses, beta):
    average, out = 0.0, []
    for i, loss in enumerate(losses):
        average = (1 - beta) * average + beta * loss
        out.append(average / (1 - beta ** (i + 1)))
    return out


def from_first_loss(losses, beta):
    average, out = losses[0], []
    for loss in losses:
        average = beta * average + (1 - beta) * loss
        out.append(average)
    return out


def one_step_off(losses, beta):
    return [a / (1 - beta ** (i + 2)) for i, a in enumerate(without_correction(losses, beta))]


@pytest.mark.parametrize("answer, hint", [
    (without_correction, "dragged towards 0"),
    (swapped, "swapped"),
    (from_first_loss, "first loss"),
    (one_step_off, "one step off"),
    (lambda losses, beta: smooth(losses, 0.98), "use the beta argument"),
    (lambda losses, beta: smooth(losses, beta)[:-1], "one per batch"),
    (lambda losses, beta: smooth(losses, beta)[-1], "one per batch"),
    (lambda losses, beta: losses, "your value for batch"),
])
def test_smooth_mistakes_get_their_hint(answer, hint):
    result = lesson.evaluate(1, answer)
    assert result.status == WRONG and hint in result.message, result.message


def test_smooth_that_divides_by_zero_gets_a_hint():
    def zero_based(losses, beta):
        return [a / (1 - beta ** i) for i, a in enumerate(without_correction(losses, beta))]
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        lesson.check(1, zero_based)
    assert "division by zero" in out.getvalue() and "i + 1" in out.getvalue() and "not yet" in out.getvalue()


# ----------------------------------------------------------------------------- 2: steep


def my_steep(lrs, losses):
    return lrs[np.argmin(np.diff(losses) / np.diff(np.log(lrs)))]


def test_steep_right_and_agrees_with_the_package():
    assert lesson.evaluate(2, my_steep).status == RIGHT
    assert lesson.evaluate(2, lambda lrs, losses: steep(lrs, losses)[0]).status == RIGHT
    assert lesson.evaluate(2, lambda lrs, losses: lrs[np.argmin(np.diff(losses) / np.diff(np.log10(lrs)))]
                           ).status == RIGHT  # log10 has the same steepest point


@pytest.mark.parametrize("answer, hint", [
    (lambda lrs, losses: lrs[np.argmax(np.diff(losses) / np.diff(np.log(lrs)))], "rises fastest"),
    (lambda lrs, losses: lrs[np.argmin(np.diff(losses) / np.diff(np.log(lrs))) + 1], "right end"),
    (lambda lrs, losses: lrs[np.argmin(np.diff(losses))], "not evenly spaced"),
    (lambda lrs, losses: lrs[np.argmin(np.diff(losses) / np.diff(lrs))], "not by the step in rate"),
    (lambda lrs, losses: steep(lrs, losses), "just the rate"),
    (lambda lrs, losses: losses[np.argmin(np.diff(losses) / np.diff(np.log(lrs)))], "a loss, not a rate"),
    (lambda lrs, losses: 1.1e-4, "steep suggests"),
    (lambda lrs, losses: [1e-3, 1e-2], "one number"),
])
def test_steep_mistakes_get_their_hint(answer, hint):
    result = lesson.evaluate(2, answer)
    assert result.status == WRONG and hint in result.message, result.message


# ----------------------------------------------------------------------------- 3: a rate that trains


def test_the_rate_check_trains_for_real_and_leaves_the_random_numbers_alone():
    torch.manual_seed(1)
    expected_next = torch.rand(2)
    torch.manual_seed(1)
    good, careful = train_one_epoch_with(2.5e-2), train_one_epoch_with(1.2e-3)
    assert torch.equal(torch.rand(2), expected_next)
    assert good["valid_loss"] < TARGET_LOSS < careful["valid_loss"] < 2.5  # trained, but too slowly
    _train_one_epoch.cache_clear()
    assert train_one_epoch_with(2.5e-2) == good  # a seeded run: the same rate gives the same verdict


def test_a_good_rate_is_right():
    result = lesson.evaluate(3, 2.5e-2)
    assert result.status == RIGHT and "validation loss" in result.message


@pytest.mark.parametrize("answer, hint", [
    (1.2e-3, "too low"),     # the valley suggestion of the lesson's finder: careful
    (1e-5, "too low"),       # the too-low rate of section 2
    (3.0, "too high"),       # the too-high one
    (1.0, "too high"),
    (20.0, "outside the range"),
    (-1e-3, "positive"),
    (float("nan"), "positive"),
    ("1e-2", "without quotes"),
    ([1e-3, 1e-2], "one learning rate"),
])
def test_rate_mistakes_get_their_hint(answer, hint):
    result = lesson.evaluate(3, answer)
    assert result.status == WRONG and hint in result.message, result.message


def test_a_rate_that_ruins_the_model_is_too_high_even_if_a_bolder_one_ruins_it_less(monkeypatch):
    # Beyond the curve's lowest point training is chaos: one epoch at 3.0 ended at a validation loss of 37 with
    # no batch above 10 (on one CPU), and one at 10 lower still. Worse than guessing is "too high", not "too low".
    runs = {3.0: {"valid_loss": 37.2, "accuracy": 0.14, "worst_batch": 4.4},
            10.0: {"valid_loss": 33.8, "accuracy": 0.22, "worst_batch": 9.0}}
    monkeypatch.setattr(lesson4, "train_one_epoch_with", lambda lr: runs[lr])
    result = lesson.evaluate(3, 3.0)
    assert result.status == WRONG and "too high" in result.message and "37.2" in result.message, result.message


# ----------------------------------------------------------------------------- never raises


def test_learner_code_that_raises_or_loops_gets_a_hint_not_an_exception(short_time_limit):
    def broken(*args):
        raise ValueError("oops")

    def forever(*args):
        while True:
            time.sleep(0.01)

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        lesson.check(1, broken)
        lesson.check(2, broken)
        lesson.check(2, forever)
    text = out.getvalue()
    assert text.count("raised ValueError: oops") == 2 and "took more than" in text and "Traceback" not in text


def test_check_never_raises_on_nonsense():
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        for number in lesson.exercises:
            for nonsense in (object(), "text", [1, 2], None, ..., {"lr": 1}):
                lesson.check(number, nonsense)
        lesson.hint(3)
        lesson.solution(1)
    text = out.getvalue()
    assert "Exercise 4.3, not yet" in text and "Hint for Exercise 4.3" in text and "ex.check(1, smooth)" in text
