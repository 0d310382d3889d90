"""Lesson 1's exercise checks: the blank, the right answers and each typical mistake (no notebook needed)."""

import contextlib
import io
import time

import numpy as np
import pytest
import torch
from torch import nn

from course_utils.exercises import NOT_DONE, RIGHT, WRONG
from course_utils.exercises.lesson1 import lesson, make_moons


def test_blank_is_not_done():
    for number in lesson.exercises:
        assert lesson.evaluate(number, ...).status == NOT_DONE


def unfinished(*args):
    ...  # a function whose body is still the placeholder returns None


@pytest.mark.parametrize("number", [1, 3])
def test_a_function_still_returning_none_is_not_done(number):
    assert lesson.evaluate(number, unfinished).status == NOT_DONE


# --- Exercise 1: the largest learning rate -------------------------------------------------------

def test_largest_rate_passes_numpy_or_torch_style():
    assert lesson.evaluate(1, lambda xs: 1 / (xs ** 2).mean().item()).status == RIGHT
    assert lesson.evaluate(1, lambda xs: 1 / np.mean(np.asarray(xs) ** 2)).status == RIGHT
    assert lesson.evaluate(1, lambda xs: 1 / torch.mean(xs ** 2)).status == RIGHT  # a 0-d tensor is fine


def test_the_limit_is_where_descent_turns_from_converging_to_diverging():
    """The checker's answer, checked the long way: gradient descent just below and just above it."""
    xs = torch.linspace(-2, 1.5, 40)
    ys = 3 * xs
    limit = 1 / (xs ** 2).mean().item()

    def distance_after(lr, steps=200):
        w = 0.0
        for _ in range(steps):
            w -= lr * (2 * (w * xs - ys) * xs).mean().item()
        return abs(w - 3)

    assert distance_after(0.97 * limit) < 0.1 and distance_after(1.03 * limit) > 10


@pytest.mark.parametrize("answer, hint", [
    (lambda xs: 2 / (xs ** 2).mean().item(), "factor 2"),
    (lambda xs: 1 / (2 * (xs ** 2).mean().item()), "ONE step"),
    (lambda xs: 1 / (xs ** 2).sum().item(), "not the sum"),
    (lambda xs: (xs ** 2).mean().item(), "reciprocal"),
    (lambda xs: 1 / xs.abs().mean().item(), "|x|"),
    (lambda xs: 1 / xs.mean().item() ** 2, "square of the mean"),
    (lambda xs: 1 / (torch.linspace(-1, 1, 50) ** 2).mean().item(), "ignores the inputs"),
    (lambda xs: 0.8, "not 0.8"),
    (lambda xs: [1.0, 2.0], "one number"),
    (lambda xs: xs.nonexistent(), "AttributeError"),
    (2.88, "as a function"),
])
def test_largest_rate_mistakes_get_their_hint(answer, hint):
    result = run_check_catching(1, answer)
    assert result.status == WRONG and hint in result.message, result.message


def run_check_catching(number, answer):
    """``lesson.evaluate``, with a learner's exception turned into its hint as ``check`` prints it."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        lesson.check(number, answer)
    line = out.getvalue()
    status = RIGHT if ", right:" in line else NOT_DONE if ", not done yet:" in line else WRONG
    return type("R", (), {"status": status, "message": line})


def test_an_endless_learner_function_gets_a_hint_not_a_hang(short_time_limit):
    def forever(xs):
        while True:
            pass

    start = time.perf_counter()
    result = run_check_catching(1, forever)
    assert result.status == WRONG and "endless loop" in result.message
    assert time.perf_counter() - start < 30


# --- Exercise 2: one hidden layer of 2 neurons -----------------------------------------------

def trained(model, seed=0, steps=200):
    points, labels = make_moons(400, 0.15, np.random.default_rng(seed))
    optimizer = torch.optim.Adam(model.parameters(), lr=0.05)
    loss_fn = nn.BCEWithLogitsLoss()
    for _ in range(steps):
        loss = loss_fn(model(points).squeeze(1), labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return model


def tiny(seed=42):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(2, 2), nn.ReLU(), nn.Linear(2, 1))


def test_a_trained_tiny_network_passes_and_is_compared_with_a_straight_line():
    result = lesson.evaluate(2, trained(tiny()))
    assert result.status == RIGHT and "straight line" in result.message, result.message


@pytest.mark.parametrize("make, hint", [
    # the shape is checked before the network is run: these need no training
    (lambda: nn.Sequential(nn.Linear(2, 16), nn.ReLU(), nn.Linear(16, 16), nn.ReLU(), nn.Linear(16, 1)),
     "hidden layers"),
    (lambda: nn.Sequential(nn.Linear(2, 8), nn.ReLU(), nn.Linear(8, 1)), "8 neurons, not 2"),
    (lambda: nn.Sequential(nn.Linear(2, 2), nn.Linear(2, 1)), "no ReLU"),
    (lambda: nn.Linear(2, 1), "needs a hidden layer"),
    (lambda: tiny(seed=3), "guessing"),  # untrained
    (lambda: trained(tiny(seed=3)), "died"),  # this seed's two ReLUs die in training (both answer 0 everywhere)
    (lambda: torch.zeros(3), "trained network itself"),
])
def test_tiny_network_mistakes_get_their_hint(make, hint):
    result = lesson.evaluate(2, make())
    assert result.status == WRONG and hint in result.message, result.message


def test_a_half_trained_network_is_told_to_train():
    model = tiny()
    with torch.no_grad():  # a usable but poor boundary: a line through the moons at an angle
        model[0].weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 0.0]]))
        model[0].bias.copy_(torch.tensor([0.0, 0.0]))
        model[2].weight.copy_(torch.tensor([[1.0, 0.0]]))
        model[2].bias.copy_(torch.tensor([-0.8]))
    result = lesson.evaluate(2, model)
    assert result.status == WRONG and "train it" in result.message, result.message


# --- Exercise 3: collapsing Linear layers --------------------------------------------------------

def collapse(model):
    weight, bias = torch.eye(model[0].in_features), torch.zeros(model[0].in_features)
    for layer in model:
        weight, bias = layer.weight @ weight, layer.weight @ bias + layer.bias
    single = nn.Linear(weight.shape[1], weight.shape[0])
    with torch.no_grad():
        single.weight.copy_(weight)
        single.bias.copy_(bias)
    return single


def linear_from(weight, bias):
    single = nn.Linear(weight.shape[1], weight.shape[0])
    with torch.no_grad():
        single.weight.copy_(weight)
        single.bias.copy_(bias)
    return single


def collapse_three_only(model):
    a, b, c = model  # the lesson's shape, written out for exactly three layers
    return linear_from(c.weight @ b.weight @ a.weight, c.weight @ (b.weight @ a.bias + b.bias) + c.bias)


def last_bias_only(model):
    weight = torch.eye(model[0].in_features)
    for layer in model:
        weight = layer.weight @ weight
    return linear_from(weight, model[-1].bias)


def summed_weights_applied_to_biases_wrongly(model):
    weight, bias = torch.eye(model[0].in_features), torch.zeros(model[-1].out_features)
    for layer in model:
        weight = layer.weight @ weight
    for layer in model:
        bias = bias + layer.bias.sum()  # biases added up, not passed through the later weights
    return linear_from(weight, bias)


def test_collapse_passes():
    assert lesson.evaluate(3, collapse).status == RIGHT


@pytest.mark.parametrize("answer, hint", [
    (collapse_three_only, "any number"),
    (last_bias_only, "only the last layer's"),
    (summed_weights_applied_to_biases_wrongly, "bias is not"),
    (lambda model: model, "ONE nn.Linear"),
    (lambda model: (torch.ones(1, 2), torch.zeros(1)), "tuple"),
    (lambda model: nn.Linear(1, 2), "shape"),
    (lambda model: model[0].weight @ model[1].weight, "RuntimeError"),  # shapes do not fit: the error is the hint
    (nn.Linear(2, 1), "your function"),
])
def test_collapse_mistakes_get_their_hint(answer, hint):
    result = run_check_catching(3, answer)
    assert result.status == WRONG and hint in result.message, result.message


def test_check_never_raises_and_prints_one_line_each():
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        for number in lesson.exercises:
            for nonsense in (object(), "text", 3, None, [1, 2], lambda *a: 1 / 0):
                lesson.check(number, nonsense)
        lesson.hint(2)
        lesson.solution(3)
    text = out.getvalue()
    assert text.count("Exercise 1.") >= 18 and "Hint for Exercise 1.2" in text and "ex.check(3, collapse)" in text
