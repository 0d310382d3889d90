"""Lesson 5's exercise checks: the blank, the right answers and each typical mistake (no notebook needed)."""

import contextlib
import copy
import io

import pytest
import torch
from torch import nn

from course_utils.digits import digit_images, on_canvas
from course_utils.exercises import NOT_DONE, RIGHT, WRONG
from course_utils.exercises.lesson5 import lesson
from course_utils.optim import freeze


def test_blank_is_not_done():
    for number in lesson.exercises:
        assert lesson.evaluate(number, ...).status == NOT_DONE


def test_the_blank_function_of_exercise_1_is_not_done():
    def freeze_body(model, head):  # the cell as committed
        ...   # your code: set requires_grad on every parameter of model

    def with_a_docstring(model, head):
        """Freeze the body."""

    assert lesson.evaluate(1, freeze_body).status == NOT_DONE
    assert lesson.evaluate(1, with_a_docstring).status == NOT_DONE
    assert lesson.evaluate(1, lambda model, head: None).status == NOT_DONE


# --- Exercise 1: freeze_body -----------------------------------------------------------------------------


def reference_freeze_body(model, head):
    in_head = {id(p) for p in head.parameters()}
    for module in model.modules():
        for p in module.parameters(recurse=False):
            if id(p) not in in_head:
                p.requires_grad = isinstance(module, nn.BatchNorm2d)
    for p in head.parameters():
        p.requires_grad = True


def test_freeze_body_right():
    assert lesson.evaluate(1, reference_freeze_body).status == RIGHT
    assert lesson.evaluate(1, lambda model, head: freeze(model)).status == RIGHT  # the course's own freeze


def freezes_batchnorm_too(model, head):
    for p in model.parameters():
        p.requires_grad = False
    for p in head.parameters():
        p.requires_grad = True


def only_switches_off(model, head):  # right on a fresh model, wrong on one that was frozen before
    in_head = {id(p) for p in head.parameters()}
    for module in model.modules():
        if not isinstance(module, nn.BatchNorm2d):
            for p in module.parameters(recurse=False):
                if id(p) not in in_head:
                    p.requires_grad = False


def freezes_weights_only(model, head):
    in_head = {id(p) for p in head.parameters()}
    for module in model.modules():
        weight = getattr(module, "weight", None)
        if isinstance(weight, nn.Parameter) and not isinstance(module, nn.BatchNorm2d) and id(weight) not in in_head:
            weight.requires_grad = False


def freezes_a_copy(model, head):
    model = copy.deepcopy(model)
    for p in model.parameters():
        p.requires_grad = False
    return model


def only_switches_the_head_on(model, head):
    for p in head.parameters():
        p.requires_grad = True


def loops_forever(model, head):
    while True:
        pass


@pytest.mark.parametrize("function, hint", [
    (freezes_batchnorm_too, "BatchNorm layers are frozen"),
    (only_switches_off, "frozen before"),
    (freezes_weights_only, "bias"),
    (only_switches_the_head_on, "nothing was frozen"),
    (freezes_a_copy, "in place"),
    (lambda model, head: 1 / 0, "ZeroDivisionError"),
    (lambda model: model.requires_grad_(False), "TypeError"),
    (42, "the function itself"),
])
def test_freeze_body_mistakes_get_their_hint(function, hint):
    out = io.StringIO()
    with contextlib.redirect_stdout(out):  # check, not evaluate: errors in the learner's code become hints there
        lesson.check(1, function)
    assert "Exercise 5.1, not yet" in out.getvalue() and hint in out.getvalue(), out.getvalue()


def test_freeze_body_that_never_ends_gets_a_hint(short_time_limit):
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        lesson.check(1, loops_forever)
    assert "Exercise 5.1, not yet" in out.getvalue() and "more than" in out.getvalue()


# --- Exercise 2: the rates of fine_tune ------------------------------------------------------------------


def test_rates_right():
    assert lesson.evaluate(2, ([1e-4, 1e-4, 1e-3], [5e-6, 5e-5, 5e-4])).status == RIGHT
    assert lesson.evaluate(2, (torch.tensor([1e-4, 1e-4, 1e-3]), (5e-6, 5e-5, 5e-4))).status == RIGHT


@pytest.mark.parametrize("answer, hint", [
    (([1e-3, 1e-3, 1e-3], [5e-6, 5e-5, 5e-4]), "a tenth of base_lr, not all of it"),
    (([0, 0, 1e-3], [5e-6, 5e-5, 5e-4]), "do get a rate"),
    (([1e-3, 1e-4, 1e-4], [5e-6, 5e-5, 5e-4]), "phase 1 is in reverse order"),
    (([1e-4, 1e-4, 1e-3], [1e-5, 1e-4, 1e-3]), "half of base_lr"),
    (([1e-4, 1e-4, 1e-3], [5e-6, (5e-6 + 5e-4) / 2, 5e-4]), "log scale"),
    (([1e-4, 1e-4, 1e-3], [5e-4, 5e-5, 5e-6]), "phase 2 is in reverse order"),
    (([1e-4, 1e-4, 1e-3], [5e-4, 5e-4, 5e-4]), "its own rate"),
    (([1e-3, 1e-3, 1e-3], [1e-5, 1e-4, 1e-3]), "; "),  # two mistakes: both named
    (([1e-4, 1e-4, 1e-3], [1e-6, 1e-5, 1e-4]), "phase 2 is not right"),
    (([1e-5, 1e-3], [1e-6, 1e-4]), "two lists of three rates"),
    ("1e-3", "two lists of three rates"),
])
def test_rates_mistakes_get_their_hint(answer, hint):
    result = lesson.evaluate(2, answer)
    assert result.status == WRONG and hint in result.message, result.message


# --- Exercise 3: two labels per digit ----------------------------------------------------------------------


def new_task():
    images, labels = digit_images()
    images = on_canvas(images, size=16)
    return images[labels >= 5], labels[labels >= 5] - 5


class LookUp(nn.Module):
    """A stand-in for a trained network: it looks each canvas up and answers its label, wrong on a share of them."""

    def __init__(self, wrong_share: float = 0.0, outputs: int = 5):
        super().__init__()
        x, y = new_task()
        self.register_buffer("keys", x.flatten(1))
        answers = y.clone()
        wrong = torch.arange(len(y)) < round(wrong_share * len(y))
        answers[wrong] = (answers[wrong] + 1) % 5
        self.register_buffer("answers", answers)
        self.outputs = outputs

    def forward(self, x):
        index = torch.cdist(x.flatten(1), self.keys).argmin(dim=1)
        return nn.functional.one_hot(self.answers[index], self.outputs).float()


def test_two_labels_right():
    result = lesson.evaluate(3, LookUp(wrong_share=0.3))
    assert result.status == RIGHT and "30%" in result.message


@pytest.mark.parametrize("model, hint", [
    (LookUp(wrong_share=0.6), "from scratch"),
    (LookUp(wrong_share=0.8), "guessing"),
    (LookUp(outputs=10), "5 classes"),
    (nn.Sequential(nn.Flatten(), nn.Linear(64, 5)), "8 x 8"),  # made for the centred digits, not the canvas
    (nn.Identity(), "one row of scores"),
    ("model", "nn.Module"),
])
def test_two_labels_mistakes_get_their_hint(model, hint):
    result = lesson.evaluate(3, model)
    assert result.status == WRONG and hint in result.message, result.message


def test_check_never_raises_and_prints_one_line():
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        lesson.check(1, 42)
        lesson.check(2, object())
        lesson.check(3, nn.Identity())
        lesson.check(3, ...)
        lesson.hint(3)
        lesson.solution(2)
    text = out.getvalue()
    assert text.count("Exercise 5.1, not yet") == 1 and text.count("Exercise 5.2, not yet") == 1
    assert "Exercise 5.3, not yet" in text and "Exercise 5.3, not done yet" in text
    assert "Hint for Exercise 5.3" in text and "ex.check(2, answer)" in text
