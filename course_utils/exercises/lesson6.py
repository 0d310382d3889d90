"""The exercises of lesson 6 (a training step, the bottleneck, the epoch to keep), with checks, hints and solutions."""

from __future__ import annotations

import math
import random
from collections.abc import Callable

import torch
from torch import nn

from course_utils.exercises import (
    LearnerCodeError,
    Lesson,
    Result,
    as_array,
    close,
    not_done,
    right,
    run_learner_code,
    wrong,
)

lesson = Lesson(6)


# --- Exercise 1: one training step, with zero_grad in its place --------------------------------------

STEPS = 3  # the checker runs the learner's step on this many batches in a row


def _batches(seed: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """``STEPS`` small made-up batches of 8 examples with 5 inputs and one of 3 classes each."""
    g = torch.Generator().manual_seed(seed)
    return [(torch.randn(8, 5, generator=g), torch.randint(3, (8,), generator=g)) for _ in range(STEPS)]


def _fresh_model(seed: int) -> tuple[nn.Module, torch.optim.Optimizer]:
    """A small linear classifier and plain SGD (no momentum: every update shows its gradient as it is).

    The weights are drawn from ``seed`` without touching the notebook's own random state.
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = nn.Linear(5, 3)
    return model, torch.optim.SGD(model.parameters(), lr=0.5)


def _weights(model: nn.Module) -> torch.Tensor:
    return torch.cat([p.detach().flatten() for p in model.parameters()])


def _reference(seed: int, clear: bool) -> torch.Tensor:
    """The weights after ``STEPS`` steps of forward, loss, backward, step: with ``zero_grad`` first
    in each step (``clear``, right; clearing after the step gives the same), or never (the gradients pile up)."""
    model, optimizer = _fresh_model(seed)
    loss_fn = nn.CrossEntropyLoss()
    for images, labels in _batches(seed):
        if clear:
            optimizer.zero_grad()
        loss_fn(model(images), labels).backward()
        optimizer.step()
    return _weights(model)


def _run_steps(step_fn: Callable, seed: int) -> tuple[torch.Tensor, list]:
    """Run the learner's step on the checker's batches; return the final weights and what each call returned."""
    model, optimizer = _fresh_model(seed)
    loss_fn = nn.CrossEntropyLoss()
    returned = []
    for images, labels in _batches(seed):
        with torch.no_grad():
            expected_loss = float(loss_fn(model(images), labels))  # the batch's loss before this step's update
        returned.append((run_learner_code(step_fn, model, images, labels, loss_fn, optimizer), expected_loss))
    return _weights(model), returned


@lesson.exercise(
    1,
    hint="Four lines in the order of section 2's loop, plus the return: optimizer.zero_grad() to forget the "
         "last batch's gradients, loss = loss_fn(model(images), labels), loss.backward(), optimizer.step(), "
         "return loss. The clearing may come first or last, never between backward() and step().",
    solution="""
def training_step(model, images, labels, loss_fn, optimizer):
    optimizer.zero_grad()                      # forget the previous batch's gradients
    loss = loss_fn(model(images), labels)      # forward and loss
    loss.backward()                            # this batch's gradients, into every weight's .grad
    optimizer.step()                           # update the weights
    return loss

ex.check(1, training_step)
""",
)
def check_training_step(step_fn) -> Result:
    """Exercise 1: a training step whose gradients do not pile up from one batch to the next."""
    if not callable(step_fn):
        return wrong("give a function: def training_step(model, images, labels, loss_fn, optimizer): ...")
    seed = random.randrange(10_000)  # fresh weights and batches each time: nothing to hard-code
    try:
        weights, returned = _run_steps(step_fn, seed)
    except LearnerCodeError as e:
        return wrong(f"{e}. It is called as training_step(model, images, labels, loss_fn, optimizer), with a "
                     "small model and batch on the CPU")
    if all(value is None for value, _ in returned):
        return not_done("your function returns nothing yet: write its body and end it with `return loss`")
    def same(expected: torch.Tensor) -> bool:
        return close(weights, expected, rtol=1e-5, atol=1e-6)

    if not same(_reference(seed, clear=True)):
        if same(_reference(seed, clear=False)):
            return wrong("the weights moved as if the gradients of every batch so far were added up: "
                         "loss.backward() adds to .grad, so call optimizer.zero_grad() once in every step")
        if same(_weights(_fresh_model(seed)[0])):
            return wrong("the weights never changed: optimizer.step() is missing or runs before backward(), or "
                         "zero_grad() runs between backward() and step() and wipes the gradients step() needs")
        return wrong("the weights after three steps are not those of forward, loss, backward, step, each once per "
                     "batch: check that each of them runs exactly once")
    for value, expected in returned:
        loss = as_array(value)
        if loss is None or loss.size != 1 or not math.isclose(float(loss.reshape(())), expected,
                                                              rel_tol=1e-4, abs_tol=1e-6):
            return wrong("the updates are right; now return this batch's loss, the number loss_fn gave "
                         "(`return loss`)")
    return right("zero_grad, forward, backward, step: three batches, three clean updates, none of them "
                 "carrying the gradients of the batch before.")


# --- Exercise 2: the bottleneck ----------------------------------------------------------------------------

RATE_CASES = [(2944, 300.0, 160.0), (5000, 120.0, 400.0), (1000, 250.0, 250.0)]


def _epoch_seconds(n_images: float, loader_rate: float, train_rate: float) -> float:
    """The loader prepares the next batches while the model trains on this one: the slower one sets the pace."""
    return n_images / min(loader_rate, train_rate)


@lesson.exercise(
    2,
    hint="The loader's workers prepare the next batches while the GPU trains on this one: the two work at the "
         "same time, so the faster one waits for the slower one. Seconds = images / (images per second) of the "
         "slower of the two.",
    solution="""
def epoch_seconds(n_images, loader_rate, train_rate):
    return n_images / min(loader_rate, train_rate)   # the slower of the two sets the pace

print(f"{epoch_seconds(2944, 300, 160):.1f} s for 2,944 photos when the loader delivers 300 images/s "
      "and the GPU trains on 160")
ex.check(2, epoch_seconds)
""",
)
def check_epoch_seconds(fn) -> Result:
    """Exercise 2: the shortest time an epoch can take, given the loader's and the model's images per second."""
    if not callable(fn):
        return wrong("give a function: def epoch_seconds(n_images, loader_rate, train_rate): ...")
    rng = random.Random()
    cases = RATE_CASES + [(rng.randrange(500, 9000), rng.uniform(50, 900), rng.uniform(50, 900)) for _ in range(3)]
    answers = []
    for n, loader, train in cases:
        try:
            value = run_learner_code(fn, n, loader, train)
        except LearnerCodeError as e:
            return wrong(f"{e}. It is called as epoch_seconds(n_images, loader_rate, train_rate) with three numbers")
        if value is None:
            return not_done("your function returns nothing yet: return the number of seconds")
        if as_array(value) is None or as_array(value).size != 1:
            return wrong(f"return one number of seconds, not {value!r}")
        answers.append(float(as_array(value).reshape(())))
    if all(math.isclose(a, _epoch_seconds(*case), rel_tol=1e-6) for a, case in zip(answers, cases)):
        return right("the slower of loader and model sets the pace; a faster GPU cannot make up for a slow loader.")
    mistakes = {
        "loading and training happen at the same time (the workers prepare the next batches in the background), "
        "so their times do not add up: the slower one alone sets the pace": lambda n, a, b: n / a + n / b,
        "the rates do not add up either: every image must be both loaded and trained on, so the slower of the "
        "two sets the pace": lambda n, a, b: n / (a + b),
        "that is the time at the faster rate; the faster part has to wait for the slower one": lambda n, a, b:
            n / max(a, b),
        "that only counts the loader: when the model trains more slowly than the loader delivers, the model "
        "sets the pace": lambda n, a, b: n / a,
        "that only counts the model: when the loader delivers more slowly than the model trains, the loader "
        "sets the pace": lambda n, a, b: n / b,
        "check the units: images / (images per second) = seconds, so divide the number of images by a rate": lambda
            n, a, b: n * min(a, b),
    }
    for why, formula in mistakes.items():
        if all(math.isclose(a, formula(*case), rel_tol=1e-6) for a, case in zip(answers, cases)):
            return wrong(why)
    return wrong(f"for 2,944 images, 300 images/s loaded and 160 trained your function gives {answers[0]:.4g} s. "
                 "`ex.hint(2)` explains what sets the pace")


# --- Exercise 3: the epoch to keep ----------------------------------------------------------------------------


def _rows(valid: list[float], train: list[float], errors: list[float]) -> list[dict[str, float]]:
    """A history's table, as ``History.rows``: one dict per epoch, epochs numbered from 1."""
    return [{"epoch": i + 1, "train_loss": t, "valid_loss": v, "error_rate": e, "time": 10.0}
            for i, (v, t, e) in enumerate(zip(valid, train, errors))]


def _cases() -> list[list[dict[str, float]]]:
    """Made-up histories on which each typical rule (lowest validation loss, lowest training loss, lowest
    error rate, last epoch, later of two tied epochs, position instead of number) picks other epochs."""
    rng = random.Random()
    shift = rng.uniform(0, 0.05)
    return [
        _rows(valid=[1.2 + shift, 0.8 + shift, 0.6 + shift, 0.7 + shift, 0.9 + shift],
              train=[1.5, 0.9, 0.5, 0.3, 0.1], errors=[0.40, 0.25, 0.21, 0.19, 0.23]),
        _rows(valid=[0.9, 0.5, 0.5, 0.6], train=[1.0, 0.6, 0.4, 0.2], errors=[0.3, 0.2, 0.15, 0.18]),
        _rows(valid=[0.4 + shift, 0.7, 0.9, 1.0], train=[0.8, 0.2, 0.3, 0.25], errors=[0.2, 0.18, 0.12, 0.15]),
    ]


def _first_min(values: list[float]) -> int:
    return min(range(len(values)), key=lambda i: (values[i], i))


@lesson.exercise(
    3,
    hint="Go through the rows and keep the epoch whose 'valid_loss' is the lowest; on a tie keep the earlier "
         "epoch, as fit does. Return row['epoch'], the epoch's number, which starts at 1.",
    solution="""
def best_epoch(rows):
    best = min(rows, key=lambda row: row["valid_loss"])   # min keeps the first of equal values
    return best["epoch"]

print("the final model's best epoch:", best_epoch(final_history.rows), "| fit says:", final_history.best_epoch)
ex.check(3, best_epoch)
""",
)
def check_best_epoch(fn) -> Result:
    """Exercise 3: the epoch ``fit(keep_best=True)`` keeps, from a history's rows."""
    if not callable(fn):
        return wrong("give a function: def best_epoch(rows): ... that returns an epoch number")
    cases = _cases()
    answers = []
    for rows in cases:
        try:
            value = run_learner_code(fn, [dict(row) for row in rows])
        except LearnerCodeError as e:
            return wrong(f"{e}. It is called as best_epoch(rows), rows being a list of dicts like history.rows")
        if value is None:
            return not_done("your function returns nothing yet: return the number of the epoch to keep")
        number = as_array(value)
        if number is None or number.size != 1:
            return wrong(f"return one epoch number, not {value!r}")
        answers.append(float(number.reshape(())))

    def epochs_by(rule: Callable[[list[dict]], int]) -> list[float]:
        return [float(rule(rows)) for rows in cases]

    if answers == epochs_by(lambda rows: rows[_first_min([r["valid_loss"] for r in rows])]["epoch"]):
        return right("the epoch with the lowest validation loss: what fit(keep_best=True) keeps, and where an "
                     "overfitting run should have stopped.")
    mistakes = {
        "off by one: that is the row's position in the list; the epochs are numbered from 1, use row['epoch']":
            lambda rows: _first_min([r["valid_loss"] for r in rows]),
        "two epochs tie for the lowest validation loss here: keep the first one, as fit does (a later epoch "
        "must be strictly lower to replace it)":
            lambda rows: max(r["epoch"] for r in rows if r["valid_loss"] == min(x["valid_loss"] for x in rows)),
        "that is the epoch with the lowest training loss, which keeps falling while the model learns its "
        "photos by heart: go by the validation loss":
            lambda rows: rows[_first_min([r["train_loss"] for r in rows])]["epoch"],
        "that is the epoch with the lowest validation error rate; fit(keep_best=True) goes by the validation "
        "loss, the smoother of the two":
            lambda rows: rows[_first_min([r["error_rate"] for r in rows])]["epoch"],
        "that is the last epoch; the one to keep is where the validation loss was lowest":
            lambda rows: rows[-1]["epoch"],
    }
    for why, rule in mistakes.items():
        if answers == epochs_by(rule):
            return wrong(why)
    return wrong(f"for a 5-epoch history whose validation losses are "
                 f"{[round(r['valid_loss'], 2) for r in cases[0]]} your function gives {answers[0]:g}. "
                 "`ex.hint(3)` says which column to look at")


check, hint, solution = lesson.check, lesson.hint, lesson.solution
