"""Lesson 6's exercise checks: the blank, the right answers and each typical mistake (no notebook needed)."""

import contextlib
import functools
import io
import time

import numpy as np
import pytest
import torch

from course_utils.exercises import NOT_DONE, RIGHT, WRONG, lesson6, run_learner_code
from course_utils.exercises.lesson6 import lesson


def test_blank_is_not_done():
    for number in lesson.exercises:
        assert lesson.evaluate(number, ...).status == NOT_DONE


# --- Exercise 1: a training step ---------------------------------------------------------------------

def clear_first(model, images, labels, loss_fn, optimizer):
    optimizer.zero_grad()
    loss = loss_fn(model(images), labels)
    loss.backward()
    optimizer.step()
    return loss


def clear_last(model, images, labels, loss_fn, optimizer):  # the order of section 2's loop
    loss = loss_fn(model(images), labels)
    loss.backward()
    optimizer.step()
    optimizer.zero_grad()
    return loss.item()


def never_cleared(model, images, labels, loss_fn, optimizer):
    loss = loss_fn(model(images), labels)
    loss.backward()
    optimizer.step()
    return loss


def cleared_too_soon(model, images, labels, loss_fn, optimizer):
    loss = loss_fn(model(images), labels)
    loss.backward()
    optimizer.zero_grad()
    optimizer.step()
    return loss


def no_step(model, images, labels, loss_fn, optimizer):
    optimizer.zero_grad()
    loss = loss_fn(model(images), labels)
    loss.backward()
    return loss


def two_steps(model, images, labels, loss_fn, optimizer):
    for _ in range(2):
        loss = clear_first(model, images, labels, loss_fn, optimizer)
    return loss


def wrong_loss(model, images, labels, loss_fn, optimizer):
    clear_first(model, images, labels, loss_fn, optimizer)
    return 0.0


def no_return(model, images, labels, loss_fn, optimizer):
    clear_first(model, images, labels, loss_fn, optimizer)


def raises(model, images, labels, loss_fn, optimizer):
    raise RuntimeError("boom")


def forever(model, images, labels, loss_fn, optimizer):
    while True:
        time.sleep(0.01)


@pytest.mark.parametrize("step", [clear_first, clear_last])
def test_training_step_right(step):
    assert lesson.evaluate(1, step).status == RIGHT


@pytest.mark.parametrize("step, hint", [
    (never_cleared, "added up"),
    (cleared_too_soon, "never changed"),
    (no_step, "optimizer.step() is missing"),
    (two_steps, "exactly once"),
    (wrong_loss, "return this batch's loss"),
    (raises, "RuntimeError: boom"),
    ("def training_step(...)", "give a function"),
])
def test_training_step_mistakes_get_their_hint(step, hint):
    result = lesson.evaluate(1, step)
    assert result.status == WRONG and hint in result.message, result


def test_training_step_without_return_is_not_done():
    assert lesson.evaluate(1, no_return).status == NOT_DONE


def test_training_step_that_never_ends_gets_a_hint(monkeypatch):
    monkeypatch.setattr(lesson6, "run_learner_code", functools.partial(run_learner_code, seconds=0.2))
    result = lesson.evaluate(1, forever)
    assert result.status == WRONG and "more than 0.2 s" in result.message


def test_training_step_check_leaves_the_notebooks_random_state_alone():
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    lesson.evaluate(1, clear_first)
    assert torch.equal(torch.rand(3), expected)


# --- Exercise 2: the bottleneck ------------------------------------------------------------------------

@pytest.mark.parametrize("fn", [lambda n, a, b: n / min(a, b), lambda n, a, b: np.float32(n) / np.minimum(a, b)])
def test_epoch_seconds_right(fn):
    assert lesson.evaluate(2, fn).status == RIGHT


@pytest.mark.parametrize("fn, hint", [
    (lambda n, a, b: n / a + n / b, "do not add up"),
    (lambda n, a, b: n / (a + b), "rates do not add up"),
    (lambda n, a, b: n / max(a, b), "faster rate"),
    (lambda n, a, b: n / a, "only counts the loader"),
    (lambda n, a, b: n / b, "only counts the model"),
    (lambda n, a, b: n * min(a, b), "units"),
    (lambda n, a, b: 18.4, "your function gives 18.4 s"),
    (lambda n, a, b: [1, 2], "one number"),
    (lambda n, a, b: 1 / 0, "ZeroDivisionError"),
    (42, "give a function"),
])
def test_epoch_seconds_mistakes_get_their_hint(fn, hint):
    result = lesson.evaluate(2, fn)
    assert result.status == WRONG and hint in result.message, result


def test_epoch_seconds_returning_nothing_is_not_done():
    assert lesson.evaluate(2, lambda n, a, b: None).status == NOT_DONE


# --- Exercise 3: the epoch to keep -------------------------------------------------------------------------

def first_lowest(rows):
    return min(rows, key=lambda row: row["valid_loss"])["epoch"]


@pytest.mark.parametrize("fn", [first_lowest, lambda rows: torch.tensor(first_lowest(rows))])
def test_best_epoch_right(fn):
    assert lesson.evaluate(3, fn).status == RIGHT


@pytest.mark.parametrize("fn, hint", [
    (lambda rows: int(np.argmin([r["valid_loss"] for r in rows])), "off by one"),
    (lambda rows: max(r["epoch"] for r in rows if r["valid_loss"] == min(x["valid_loss"] for x in rows)), "tie"),
    (lambda rows: min(rows, key=lambda r: r["train_loss"])["epoch"], "lowest training loss"),
    (lambda rows: min(rows, key=lambda r: r["error_rate"])["epoch"], "error rate"),
    (lambda rows: rows[-1]["epoch"], "the last epoch"),
    (lambda rows: 2, "your function gives 2"),
    (lambda rows: rows["valid_loss"], "TypeError"),
    (lambda rows: [1, 2], "one epoch number"),
    (42, "give a function"),
])
def test_best_epoch_mistakes_get_their_hint(fn, hint):
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        lesson.check(3, fn)  # the printed line, as a learner sees it (check never raises)
    assert "Exercise 6.3, not yet" in out.getvalue() and hint in out.getvalue(), out.getvalue()


def test_best_epoch_is_what_fit_keeps():
    """The checker's rule is fit's: History.add_epoch keeps the first epoch with the lowest validation loss."""
    from course_utils.history import History

    history = History()
    for epoch, loss in enumerate([0.9, 0.5, 0.5, 0.7], start=1):
        history.add_epoch({"epoch": epoch, "train_loss": 1.0, "valid_loss": loss}, torch.nn.Linear(1, 1), False)
    assert history.best_epoch == first_lowest(history.rows) == 2


def test_check_never_raises_and_prints_one_line():
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        for number in lesson.exercises:
            lesson.check(number, object())   # nonsense
            lesson.check(number, ...)        # blank
            lesson.hint(number)
            lesson.solution(number)
        lesson.check(9, 1)                   # no such exercise
    text = out.getvalue()
    for number in lesson.exercises:
        assert f"Exercise 6.{number}, not yet" in text and f"Exercise 6.{number}, not done yet" in text
        assert f"Hint for Exercise 6.{number}" in text and f"ex.check({number}, " in text
    assert "no exercise 9" in text
