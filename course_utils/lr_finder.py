"""The learning-rate finder (Leslie Smith's range test, in the form fastai made popular), lessons 4 and 5.

Which learning rate should we train with? Try them all, cheaply, in one short run. Smith's range
test (2015, "Cyclical Learning Rates for Training Neural Networks") raised the rate linearly over
a few epochs and watched the accuracy. The form used here, and by most people today, is fastai's
``Learner.lr_find`` (fastai/callback/schedule.py): the exponential growth per batch, the smoothing
and the 4x stop below are fastai's.

1. start with a tiny rate (``start_lr``) and multiply it by the same factor after every
   mini-batch, so that after ``num_it`` batches it has grown to ``end_lr``:
   ``lr_i = start_lr * (end_lr / start_lr) ** (i / num_it)``;
2. after each batch, record the rate and the training loss, smoothed by an exponential moving
   average (each batch's loss is noisy) that starts at 0 and is corrected for that start;
3. stop early once the smoothed loss is more than 4 times the best seen so far (it has
   exploded: the rate is far too high), or becomes NaN or infinite;
4. put everything back - weights, BatchNorm statistics, gradients, train/eval modes, optimiser
   state, random-number state - so the run leaves no trace;
5. plot loss against rate on a log scale, and suggest rates from the curve's shape.

The suggestions are plain functions of ``(lrs, losses)``: ``valley``, ``steep``, ``minimum``
and ``slide``, fastai's four rules. They read the curve after ``trim_curve`` has dropped its
noisy first tenth, its last 5 points (where it explodes) and anything from a NaN on, as fastai
trims it.

Where this finder differs from fastai's ``lr_find``, on purpose:

- it stops at a NaN loss. (fastai's 4x test is never true for NaN, so it trains on to
  ``num_it`` batches and then cuts the curve at the first NaN; ``trim_curve`` keeps the same
  points, so the suggestions agree, from a shorter run.)
- it makes all four suggestions by default; fastai's default is ``valley`` alone.
- its plot marks the ``minimum`` suggestion at the suggested rate, a tenth of the lowest point;
  fastai marks the lowest point of the curve itself.
- it puts back the random-number generators, the gradients and the train/eval modes as well;
  fastai reloads the weights and the optimiser's state from a file and zeroes the gradients.
- ``valley`` and ``steep`` say "no suggestion" (``NoSuggestionError``, kept in
  ``no_suggestion``) on a curve that never goes down, where fastai returns a point anyway; and
  a valley that starts at the first point suggests that point, where fastai's index would be
  -1 (the last point).

Without an ``optimizer`` argument it trains with the AdamW that ``fit`` uses
(``optim.make_optimizer``: fastai's defaults, betas (0.9, 0.99), eps 1e-5, weight decay 0.01
on weights but not on biases or normalisation layers), and it uses mixed precision on CUDA.
"""

from __future__ import annotations

import copy
import math
import random
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field

import matplotlib.pyplot as plt
import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from course_utils.env import pick_device, train_cap
from course_utils.optim import make_optimizer
from course_utils.training import batches, move_batch, train_step, use_cuda_speedups


class NoSuggestionError(ValueError):
    """A suggestion rule cannot read a rate from this curve (too short, or it never goes down)."""


# ---------------------------------------------------------------------------------------------
# The suggestions: pure functions of the curve. Each returns (suggested lr, (x, y) to mark).
# ---------------------------------------------------------------------------------------------


def _as_curve(lrs: Sequence[float], losses: Sequence[float], min_points: int,
              rule: str) -> tuple[np.ndarray, np.ndarray]:
    """Check a curve before a rule reads it, and return it as two float arrays."""
    lrs = np.asarray(lrs, dtype=np.float64).reshape(-1)
    losses = np.asarray(losses, dtype=np.float64).reshape(-1)
    if len(lrs) != len(losses):
        raise ValueError(f"{rule}: got {len(lrs)} learning rates but {len(losses)} losses")
    if len(losses) < min_points:
        raise NoSuggestionError(
            f"{rule} needs at least {min_points} points, the curve has {len(losses)}: "
            "run lr_find with a larger num_it, or a smaller start_lr so it diverges later"
        )
    bad = np.flatnonzero(~np.isfinite(losses))
    if len(bad):
        raise ValueError(f"{rule}: the loss is NaN or infinite at point {bad[0]}; "
                         "cut the curve there first (trim_curve does)")
    if np.any(lrs <= 0) or np.any(np.diff(lrs) <= 0):
        raise ValueError(f"{rule}: learning rates must be positive and increasing")
    return lrs, losses


def valley(lrs: Sequence[float], losses: Sequence[float]) -> tuple[float, tuple[float, float]]:
    """The rate a little under half-way along the curve's longest decreasing subsequence.

    Find the longest run of points in which each loss is lower than the one before. The points
    need not be neighbours, so this is not a contiguous stretch (a bump does not end it): it is
    the longest decreasing subsequence, found by dynamic programming. ``run[i]`` is the length of
    the longest such run that ends at point ``i``. The valley ends at the first point with the longest run
    and is taken to start that many points earlier. The suggestion is about half-way along the
    valley: ``start + int(length / 3) + int(length / 6)`` points in (fastai's rule), where the
    loss is still falling well and is not yet near the bottom.
    """
    lrs, losses = _as_curve(lrs, losses, 2, "valley")
    n = len(losses)
    run = [1] * n
    for i in range(1, n):
        for j in range(i):
            if losses[i] < losses[j]:
                run[i] = max(run[i], run[j] + 1)
    end = int(np.argmax(run))  # the first point where the longest run ends
    if run[end] == 1:
        raise NoSuggestionError("valley: the loss never goes down on this curve, so there is no valley")
    start = end - run[end]
    third = (end - start) / 3
    idx = max(start + int(third) + int(third / 2), 0)  # fastai's formula; -1 (a valley from point 0) -> 0
    return float(lrs[idx]), (float(lrs[idx]), float(losses[idx]))


def steep(lrs: Sequence[float], losses: Sequence[float]) -> tuple[float, tuple[float, float]]:
    """The rate where the loss falls fastest per step of log(rate): the steepest downhill slope.

    The slope between neighbouring points is ``(loss[i+1] - loss[i]) / (log lr[i+1] - log lr[i])``;
    the suggestion is the left end of the most negative one.
    """
    lrs, losses = _as_curve(lrs, losses, 2, "steep")
    slopes = np.diff(losses) / np.diff(np.log(lrs))
    idx = int(np.argmin(slopes))
    if slopes[idx] >= 0:
        raise NoSuggestionError("steep: the loss never goes down on this curve, so there is no steepest descent")
    return float(lrs[idx]), (float(lrs[idx]), float(losses[idx]))


def minimum(lrs: Sequence[float], losses: Sequence[float]) -> tuple[float, tuple[float, float]]:
    """A tenth of the rate with the lowest loss (the first one, if several tie).

    At the minimum the rate is already almost too high; ten times less is a safe margin.
    The mark sits on the curve at the suggested rate, one decade left of the lowest point.
    """
    lrs, losses = _as_curve(lrs, losses, 2, "minimum")
    suggestion = float(lrs[int(np.argmin(losses))]) / 10
    return suggestion, (suggestion, float(np.interp(np.log10(suggestion), np.log10(lrs), losses)))


def slide(lrs: Sequence[float], losses: Sequence[float], lr_diff: int = 15, thresh: float = 0.005,
          adjust_value: float = 1.0) -> tuple[float, tuple[float, float]]:
    """Slide a window of ``lr_diff`` points leftwards from the end until the curve is calm.

    The gradient of the loss (per point, ``np.gradient``) is compared at the two ends of the
    window; while they differ by more than ``thresh`` the window slides one point left. The
    suggestion is the left end of the last window that still differed (the left end of the
    first window if it is already calm, point 0 if none is): where the curve stops being
    straight and starts to bend up. ``adjust_value`` scales it.
    """
    lrs, losses = _as_curve(lrs, losses, lr_diff + 1, "slide")
    grad = np.gradient(losses)
    right = len(losses) - 1
    left = right - lr_diff
    suggestion = lrs[left]
    while left >= 0 and abs(grad[right] - grad[left]) > thresh:
        suggestion = lrs[left]
        right, left = right - 1, left - 1
    suggestion = float(suggestion) * adjust_value
    return suggestion, (suggestion, float(np.interp(np.log10(suggestion), np.log10(lrs), losses)))


SUGGESTIONS: dict[str, Callable] = {"valley": valley, "steep": steep, "minimum": minimum, "slide": slide}


def trim_curve(lrs: Sequence[float], losses: Sequence[float], num_it: int,
               skip_end: int = 5) -> tuple[list[float], list[float]]:
    """The part of the curve the suggestions read, as fastai trims it.

    Drop the first ``num_it // 10`` points (the smoothed loss is still settling), the last
    ``skip_end`` (where it explodes), and everything from the first NaN or infinite loss on.
    A run that stopped at a NaN keeps the points just before it: fastai would have trained on
    to ``num_it`` batches, so its last ``skip_end`` points would have come after the NaN.
    """
    end = len(losses) - skip_end
    if len(losses) and math.isnan(losses[-1]):  # lr_find stopped here; fastai would have gone on
        end = min(len(losses), num_it - skip_end)
    lrs, losses = list(lrs[num_it // 10:end]), list(losses[num_it // 10:end])
    for i, loss in enumerate(losses):
        if not math.isfinite(loss):
            return lrs[:i], losses[:i]
    return lrs, losses


# ---------------------------------------------------------------------------------------------
# The result
# ---------------------------------------------------------------------------------------------


@dataclass
class LRFinderResult:
    """What ``lr_find`` saw: every rate tried, its smoothed (and raw) loss, and the suggestions.

    ``suggestions`` maps each rule's name to its suggested rate; ``marks`` to the point the plot
    marks; ``no_suggestion`` to the reason a rule could not suggest anything on this curve.
    """

    lrs: list[float]
    losses: list[float]
    raw_losses: list[float]
    num_it: int
    stop_reason: str
    suggestions: dict[str, float] = field(default_factory=dict)
    marks: dict[str, tuple[float, float]] = field(default_factory=dict)
    no_suggestion: dict[str, str] = field(default_factory=dict)

    def __repr__(self) -> str:
        found = ", ".join(f"{name} {lr:.2e}" for name, lr in self.suggestions.items()) or "none"
        lines = [f"lr_find: {len(self.lrs)} steps, {self.stop_reason}", f"suggestions: {found}"]
        lines += [f"no {name}: {why}" for name, why in self.no_suggestion.items()]
        return "\n".join(lines)

    def plot(self, skip_end: int = 5, ax: plt.Axes | None = None, title: str | None = None) -> plt.Axes:
        """Smoothed loss against learning rate (log axis), each suggestion marked and named."""
        if ax is None:
            _, ax = plt.subplots(figsize=(7, 4.5))
        end = len(self.lrs) - skip_end if skip_end else len(self.lrs)
        ax.plot(self.lrs[:end], self.losses[:end], color="tab:blue", label="smoothed loss")
        markers = ["o", "s", "^", "D", "v", "P"]
        colors = ["tab:orange", "tab:green", "tab:red", "tab:purple", "tab:brown", "tab:pink"]
        for i, (name, lr) in enumerate(self.suggestions.items()):
            x, y = self.marks[name]
            ax.plot(x, y, linestyle="none", marker=markers[i % 6], color=colors[i % 6], markersize=9,
                    label=f"{name}: {lr:.1e}")
        ax.set_xscale("log")
        ax.set_xlabel("learning rate (log scale)")
        ax.set_ylabel("training loss (smoothed)")
        ax.set_title(title or f"Learning-rate finder: {len(self.lrs)} steps, {self.stop_reason}")
        ax.grid(alpha=0.3)
        ax.legend()
        return ax


# ---------------------------------------------------------------------------------------------
# The finder
# ---------------------------------------------------------------------------------------------


def _endless(loader: Iterable) -> Iterator:
    """Batches from ``loader`` forever: when it runs out, start it again (a new shuffle)."""
    while True:
        empty = True
        for batch in batches(loader):  # the loader's own, unless COURSE_TRAIN_CAP cuts them (env.train_cap)
            empty = False
            yield batch
        if empty:
            raise ValueError("the training loader gave no batches")


def _snapshot(model: nn.Module, optimizer: torch.optim.Optimizer) -> dict:
    """Copies of everything a training run changes, so it can be put back exactly."""
    return {
        "weights": copy.deepcopy(model.state_dict()),  # parameters and buffers (BatchNorm statistics)
        "grads": [None if p.grad is None else p.grad.clone() for p in model.parameters()],
        "modes": [m.training for m in model.modules()],
        "optimizer": copy.deepcopy(optimizer.state_dict()),
        "rng": (random.getstate(), np.random.get_state(), torch.get_rng_state(),
                torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None),
    }


def _restore(model: nn.Module, optimizer: torch.optim.Optimizer, saved: dict) -> None:
    """Put back what ``_snapshot`` copied."""
    model.load_state_dict(saved["weights"])
    for p, grad in zip(model.parameters(), saved["grads"]):
        p.grad = grad
    for m, mode in zip(model.modules(), saved["modes"]):
        m.training = mode
    optimizer.load_state_dict(saved["optimizer"])
    python_rng, numpy_rng, torch_rng, cuda_rngs = saved["rng"]
    random.setstate(python_rng)
    np.random.set_state(numpy_rng)
    torch.set_rng_state(torch_rng)
    if cuda_rngs is not None:
        torch.cuda.set_rng_state_all(cuda_rngs)


def lr_find(
    model: nn.Module,
    train_loader: Iterable,
    loss_fn: Callable,
    optimizer: torch.optim.Optimizer | None = None,
    *,
    start_lr: float = 1e-7,
    end_lr: float = 10.0,
    num_it: int = 100,
    stop_div: bool = True,
    beta: float = 0.98,
    suggest: Sequence[str] = ("valley", "steep", "minimum", "slide"),
    device: torch.device | str | None = None,
    quiet: bool = False,
) -> LRFinderResult:
    """Train for at most ``num_it`` batches with a rate growing from ``start_lr`` to ``end_lr``.

    Returns an ``LRFinderResult`` (call ``.plot()`` on it). Afterwards the model's weights,
    buffers, gradients and train/eval modes, the optimiser's state and the random-number
    generators are exactly as before. Without an ``optimizer``, the AdamW that ``fit`` would
    use is made for the run. The loader is restarted if it has fewer than ``num_it`` batches;
    no validation is done. ``num_it`` below 6 is raised to 6, as in fastai.
    The model is moved to ``device`` (default: the fastest one present). ``quiet`` hides the progress bar.
    """
    if not 0 < start_lr < end_lr:
        raise ValueError(f"need 0 < start_lr < end_lr, got start_lr={start_lr}, end_lr={end_lr}")
    unknown = [name for name in suggest if name not in SUGGESTIONS]
    if unknown:
        raise ValueError(f"unknown suggestion(s) {unknown}; choose from {list(SUGGESTIONS)}")
    num_it = max(num_it, 6)
    if train_cap() is not None:  # only the full-mode rehearsal caps runs (see env.train_cap)
        num_it = min(num_it, train_cap())
    device = torch.device(device) if device is not None else pick_device()
    model.to(device)
    if optimizer is None:
        optimizer = make_optimizer(model, start_lr)
    speedups = use_cuda_speedups(device)
    scaler = torch.amp.GradScaler(device.type, enabled=speedups)

    saved = _snapshot(model, optimizer)
    lrs, losses, raw_losses = [], [], []
    stop_reason = f"stopped after num_it={num_it} batches"
    try:
        model.train()
        stream = _endless(train_loader)
        average, best = 0.0, math.inf
        for i in tqdm(range(num_it), desc="lr_find", leave=False, disable=quiet):
            lr = start_lr * (end_lr / start_lr) ** (i / num_it)
            for group in optimizer.param_groups:
                group["lr"] = lr
            inputs, targets = move_batch(next(stream), device)
            loss = train_step(model, inputs, targets, loss_fn, optimizer, scaler, speedups).item()

            average = beta * average + (1 - beta) * loss  # exponential moving average...
            smoothed = average / (1 - beta ** (i + 1))     # ...corrected for starting at 0
            lrs.append(lr)
            losses.append(smoothed)
            raw_losses.append(loss)
            if not math.isfinite(smoothed):
                stop_reason = "stopped: the loss became NaN or infinite"
                break
            best = min(best, smoothed)
            if stop_div and smoothed > 4 * best:
                stop_reason = "stopped: the loss exploded (over 4x its best)"
                break
    finally:  # also after an error or an interrupt: never leave the model half-trained
        _restore(model, optimizer, saved)

    result = LRFinderResult(lrs, losses, raw_losses, num_it, stop_reason)
    trimmed_lrs, trimmed_losses = trim_curve(lrs, losses, num_it)
    for name in suggest:
        try:
            result.suggestions[name], result.marks[name] = SUGGESTIONS[name](trimmed_lrs, trimmed_losses)
        except NoSuggestionError as e:
            result.no_suggestion[name] = str(e)
    return result
