"""The exercises of lesson 4 (the learning-rate finder), with their checks, hints and solutions."""

from __future__ import annotations

import functools
import math

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

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
from course_utils.lr_finder import steep
from course_utils.training import accuracy, fit

lesson = Lesson(4)


# --------------------------------------------------------------------------- 1: the smoothed loss


def _smoothed(losses: np.ndarray, beta: float) -> np.ndarray:
    """The finder's smoothing: an exponential moving average from 0, divided by 1 - beta^(i+1)."""
    average, out = 0.0, []
    for i, loss in enumerate(losses):
        average = beta * average + (1 - beta) * loss
        out.append(average / (1 - beta ** (i + 1)))
    return np.array(out)


def _fresh_losses(rng: np.random.Generator, n: int = 60) -> np.ndarray:
    """A noisy, falling training-loss curve, new every time."""
    return 2.3 * np.exp(-np.linspace(0, rng.uniform(1, 3), n)) + rng.normal(0, 0.15, n).clip(-0.3, 0.3) + 0.2


def _ema_mistakes(losses: np.ndarray, beta: float) -> dict[str, np.ndarray]:
    """What the usual slips in writing the smoothing give, each with its hint."""
    raw, swapped, from_first = [], [], []
    a = s = 0.0
    f = losses[0]
    for i, loss in enumerate(losses):
        a = beta * a + (1 - beta) * loss
        s = (1 - beta) * s + beta * loss
        f = beta * f + (1 - beta) * loss
        raw.append(a)
        swapped.append(s / (1 - beta ** (i + 1)))
        from_first.append(f)
    return {
        "the first values are dragged towards 0, where the average starts: divide each average by "
        "1 - beta ** (i + 1) to correct for that": np.array(raw),
        "beta and 1 - beta are swapped: keep beta of the old average (98% for beta = 0.98) and add 1 - beta "
        "of the new loss": np.array(swapped),
        "starting the average at the first loss is a fair idea, but the lesson starts at 0 and corrects for "
        "the start by dividing by 1 - beta ** (i + 1): do it that way": np.array(from_first),
    }


def _delay_and_wiggle(beta: float) -> tuple[int | None, float]:
    """On one fixed noisy, made-up finder curve: how many steps after the noiseless curve the smoothed one
    gets half-way down (None: not within the run), and how much it still wiggles on the flat start."""
    rng = np.random.default_rng(4)
    x = np.linspace(-7, 1, 100)
    clean = np.where(x < -4, 2.3, 0.4 + 1.9 * np.exp(-1.2 * (x + 4))) + 4 * np.maximum(0, x + 1) ** 2
    smoothed = _smoothed(clean + rng.normal(0, 0.2, 100), beta)
    half_way = 1.35  # half-way from the flat start (2.3) to the bottom (0.4)

    def first_below(curve):
        below = np.flatnonzero(curve < half_way)
        return int(below[0]) if len(below) else None

    reached = first_below(smoothed)
    delay = None if reached is None else reached - first_below(clean)
    return delay, float(np.mean(np.abs(np.diff(smoothed[10:35]))))


@lesson.exercise(
    1,
    hint="Keep a running average that starts at 0. For each loss: average = beta * average + (1 - beta) * loss, "
         "then append average / (1 - beta ** (i + 1)), with i counting from 0 (enumerate gives it).",
    solution="""
def smooth(losses, beta=0.98):
    average, smoothed = 0.0, []
    for i, loss in enumerate(losses):
        average = beta * average + (1 - beta) * loss
        smoothed.append(average / (1 - beta ** (i + 1)))   # corrected for starting at 0
    return smoothed

fig, ax = plt.subplots(figsize=(7, 4))
ax.plot(lrs, raw, color="grey", alpha=0.3, label="loss of each batch")
for b in [0.8, 0.98, 0.995]:
    ax.plot(lrs, smooth(raw, b), label=f"beta = {b}")
ax.set_xscale("log")
ax.set_ylim(0, 2 * raw[0])
ax.set_xlabel("learning rate (log scale)")
ax.set_ylabel("training loss")
ax.legend()
plt.show()
ex.check(1, smooth)
""",
)
def check_smooth(answer) -> Result:
    """Exercise 1: the smoothed, bias-corrected loss, on fresh curves and several betas."""
    rng = np.random.default_rng()
    for beta in (0.98, 0.8, 0.5):
        losses = _fresh_losses(rng)
        try:
            returned = run_learner_code(answer, losses.tolist(), beta)
        except LearnerCodeError as e:
            if "ZeroDivisionError" in str(e):
                return wrong("division by zero at the first loss: the correction for the i-th loss (i from 0) is "
                             "1 - beta ** (i + 1), never 0")
            raise
        if returned is None:
            return not_done("your function returns nothing yet: make it return the list of smoothed losses")
        got = as_array(returned)
        if got is None or got.ndim != 1 or len(got) != len(losses):
            return wrong(f"for {len(losses)} losses your function should return {len(losses)} smoothed values, "
                         "one per batch")
        if close(got, _smoothed(losses, beta), rtol=1e-6):
            continue
        if beta != 0.98 and close(got, _smoothed(losses, 0.98), rtol=1e-6):
            return wrong(f"right for beta = 0.98, but with beta = {beta} your function gives the same curve: "
                         "use the beta argument, not 0.98")
        for why, values in _ema_mistakes(losses, beta).items():
            if close(got, values, rtol=1e-6):
                return wrong(why)
        uncorrected = _smoothed(losses, beta) * (1 - beta ** np.arange(1, len(losses) + 1))
        if (close(got[1:], uncorrected[1:] / (1 - beta ** np.arange(1, len(losses))), rtol=1e-6)
                or close(got, uncorrected / (1 - beta ** np.arange(2, len(losses) + 2)), rtol=1e-6)):
            return wrong("the correction is one step off: for the i-th loss (i from 0) divide by 1 - beta ** (i + 1)")
        first = int(np.argmax(~np.isclose(got, _smoothed(losses, beta), rtol=1e-6)))
        return wrong(f"with beta = {beta}, your value for batch {first} is {got[first]:.4f}, the smoothed loss is "
                     f"{_smoothed(losses, beta)[first]:.4f}; `ex.hint(1)` gives the two formulas")
    (delay_low, wiggle_low), (delay_mid, wiggle_mid), (delay_high, _) = (
        _delay_and_wiggle(b) for b in (0.8, 0.98, 0.995))
    late = "not at all within the 100 steps" if delay_high is None else f"{delay_high} steps late"
    return right(f"it matches on fresh curves and three betas. On a noisy made-up finder curve the smoothed "
                 f"loss gets half-way down {delay_low} steps late with beta = 0.8, {delay_mid} with 0.98 and {late} "
                 f"with 0.995, but 0.8 wiggles {wiggle_low / wiggle_mid:.0f}x as much as 0.98: too little "
                 "smoothing keeps the noise, too much adds delay.")


# --------------------------------------------------------------------------- 2: the steepest descent


def _fresh_curve(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A made-up finder curve on unevenly spaced rates (so that the step in log(rate) matters)."""
    lrs = np.sort(10.0 ** rng.uniform(-7, 1, 80))
    x = np.log10(lrs)
    middle = rng.uniform(-4.5, -2.5)
    losses = 0.4 + 1.9 / (1 + np.exp(3 * (x - middle))) + 3 * np.maximum(0, x + 0.5) ** 2
    return lrs, losses + rng.normal(0, 0.02, len(lrs))


def _steep_mistakes(lrs: np.ndarray, losses: np.ndarray) -> dict[str, float]:
    drops = np.diff(losses)
    slopes = drops / np.diff(np.log(lrs))
    return {
        "that is where the loss rises fastest: the steepest DEScent is the most negative slope (argmin)":
            lrs[np.argmax(slopes)],
        "that is the right end of the steepest segment; steep suggests its left end, lrs[i]":
            lrs[np.argmin(slopes) + 1],
        "divide each drop of the loss by the step in log(rate) between the two points: the rates are not "
        "evenly spaced here": lrs[np.argmin(drops)],
        "divide by the step in log(rate), np.diff(np.log(lrs)), not by the step in rate":
            lrs[np.argmin(drops / np.diff(lrs))],
    }


def _distinct_curve(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A fresh curve on which every typical mistake gives a rate of its own, none the right one."""
    while True:
        lrs, losses = _fresh_curve(rng)
        values = [steep(lrs, losses)[0], *_steep_mistakes(lrs, losses).values()]
        if all(not math.isclose(a, b) for i, a in enumerate(values) for b in values[i + 1:]):
            return lrs, losses   # the right rate and each mistake's rate all differ, so each hint is its own


@lesson.exercise(
    2,
    hint="slopes = np.diff(losses) / np.diff(np.log(lrs)) gives one slope per pair of neighbours; the steepest "
         "descent is the most negative one, i = np.argmin(slopes), and steep suggests lrs[i], its left end.",
    solution="""
def my_steep(lrs, losses):
    slopes = np.diff(losses) / np.diff(np.log(lrs))   # change of loss per step of log(rate)
    return lrs[np.argmin(slopes)]                      # the left end of the steepest descent

print(f"my_steep on the made-up curve: {my_steep(toy_lrs, toy_losses):.1e}; steep: {steep(toy_lrs, toy_losses)[0]:.1e}")
ex.check(2, my_steep)
""",
)
def check_steep(answer) -> Result:
    """Exercise 2: the steep rule, on fresh curves whose rates are unevenly spaced."""
    rng = np.random.default_rng()
    for _ in range(3):
        lrs, losses = _distinct_curve(rng)
        returned = run_learner_code(answer, lrs.copy(), losses.copy())
        if returned is None:
            return not_done("your function returns nothing yet: make it return the suggested rate")
        if isinstance(returned, tuple):
            return wrong("return just the rate, one number (course_utils' steep also returns where to mark it)")
        got = as_array(returned)
        if got is None or got.shape != ():
            return wrong("return one number: the suggested learning rate")
        got, expected = float(got), steep(lrs, losses)[0]
        if close(got, expected, rtol=1e-9):
            continue
        if np.any(np.isclose(got, losses, rtol=1e-9)):
            return wrong("that is a loss, not a rate: return lrs[i], the rate at the point you found")
        for why, value in _steep_mistakes(lrs, losses).items():
            if close(got, value, rtol=1e-9):
                return wrong(why)
        return wrong(f"on a fresh curve your function suggests {got:.3g}, steep suggests {expected:.3g}; "
                     "`ex.hint(2)` gives the recipe")
    return right("your rule agrees with course_utils' steep (and fastai's) on three fresh curves with unevenly "
                 "spaced rates: a suggestion is just a few lines of NumPy on the curve.")


# --------------------------------------------------------------------------- 3: a rate that trains well


TARGET_LOSS = 0.4  # validation loss to reach in one epoch of one-cycle (it starts at about 2.3)
GUESSING_LOSS = math.log(10)  # the loss of an untrained model that gives all 10 digits the same score


@functools.lru_cache(maxsize=1)
def _digits() -> tuple[TensorDataset, TensorDataset]:
    """Lesson 4's data, split by the checker itself: 1,437 training and 360 validation digits, standardised."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = torch.tensor(digits.images, dtype=torch.float32).unsqueeze(1)
    labels = torch.tensor(digits.target)
    order = torch.randperm(len(images), generator=torch.Generator().manual_seed(0))
    train, valid = order[:1437], order[1437:]
    mean, std = images[train].mean(), images[train].std()
    images = (images - mean) / std
    return TensorDataset(images[train], labels[train]), TensorDataset(images[valid], labels[valid])


def _lesson_model() -> nn.Sequential:
    """Lesson 4's network: three 3 x 3 convolutions with BatchNorm and ReLU, global average pooling, a Linear head."""
    return nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
        nn.Conv2d(16, 32, 3, stride=2, padding=1), nn.BatchNorm2d(32), nn.ReLU(),
        nn.Conv2d(32, 64, 3, stride=2, padding=1), nn.BatchNorm2d(64), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(64, 10),
    )


def train_one_epoch_with(lr: float) -> dict[str, float]:
    """One epoch of one-cycle training of a fresh lesson-4 model at peak rate ``lr``, on the CPU.

    Returns the validation loss and accuracy, and the highest training-batch loss. The learner's random
    numbers are left as they were. The run is seeded, so a rate tried again gives the same numbers, and
    they are remembered (checking the same answer twice takes no time).
    """
    return dict(_train_one_epoch(float(lr)))


@functools.lru_cache(maxsize=64)
def _train_one_epoch(lr: float) -> tuple[tuple[str, float], ...]:
    train_ds, valid_ds = _digits()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a tiny model: one thread is fastest, and never waits for a busy second one
    try:
        return _seeded_epoch(lr, train_ds, valid_ds)
    finally:
        torch.set_num_threads(threads)


def _seeded_epoch(lr: float, train_ds: TensorDataset, valid_ds: TensorDataset) -> tuple[tuple[str, float], ...]:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = _lesson_model()
        loader = DataLoader(train_ds, batch_size=64, shuffle=True, generator=torch.Generator().manual_seed(0))
        history = fit(model, loader, DataLoader(valid_ds, batch_size=512), nn.CrossEntropyLoss(), 1, lr,
                      metrics=[accuracy], device="cpu", quiet=True)
    row = history.rows[-1]
    return (("valid_loss", row["valid_loss"]), ("accuracy", row["accuracy"]),
            ("worst_batch", max(history.batch_losses)))


@lesson.exercise(
    3,
    hint="Good peak rates for one-cycle sit where the finder's curve falls steeply, a little left of its lowest "
         "point. The valley suggestion is on the careful side; try the others in result.suggestions, or read a "
         "rate off the plot of section 4.",
    solution="""
after_one_epoch = {}
for rule, lr in result.suggestions.items():   # one quick epoch with each suggestion
    history = fit(make_model(), train_loader, valid_loader, loss_fn, 1, lr, device=env.device, quiet=True)
    after_one_epoch[rule] = history.rows[-1]["valid_loss"]
    print(f"{rule:8s} {lr:.1e}: validation loss {after_one_epoch[rule]:.2f} after one epoch")
answer = result.suggestions[min(after_one_epoch, key=after_one_epoch.get)]
ex.check(3, answer)
""",
)
def check_rate(answer) -> Result:
    """Exercise 3: a peak rate with which one epoch of one-cycle gets lesson 4's model below TARGET_LOSS."""
    if isinstance(answer, str):
        return wrong("give the rate as a number, without quotes: answer = 1e-3, not answer = \"1e-3\"")
    value = as_array(answer)
    if value is None or value.shape != ():
        return wrong("give one learning rate, a number such as 1e-3")
    lr = float(value)
    if not math.isfinite(lr) or lr <= 0:
        return wrong(f"a learning rate is a positive number; {lr} is not")
    if not 1e-7 <= lr <= 10:
        return wrong(f"{lr:g} is outside the range the finder tried (1e-7 to 10): pick a rate from its curve")
    run = train_one_epoch_with(lr)
    loss = run["valid_loss"]
    if math.isfinite(loss) and loss < TARGET_LOSS:
        return right(f"{lr:.1e}: after one epoch of one-cycle the validation loss is {loss:.2f} (it starts near "
                     f"2.3) and the accuracy {run['accuracy']:.0%}.")
    if not math.isfinite(loss) or run["worst_batch"] > 10:
        why = f"the training loss shot up to {run['worst_batch']:.3g}"
    elif loss > 1.1 * GUESSING_LOSS:  # worse than where it started: training went wrong, whatever a bolder rate does
        why = (f"after one epoch the validation loss is {loss:.3g}, worse than the {GUESSING_LOSS:.1f} of a model "
               "that has learned nothing")
    else:
        why = None
    if why:
        return wrong(f"{lr:.1e} is too high: {why}. Pick a rate left of the curve's lowest point")
    bolder = train_one_epoch_with(min(4 * lr, 10.0))["valid_loss"]
    direction = ("too low: four times this rate does better. Look further right on the curve, where it falls "
                 "steeply" if bolder < loss else
                 "too high: the loss does fall, but noisily. Look further left, before the curve's lowest point")
    return wrong(f"with {lr:.1e} the validation loss is {loss:.2f} after one epoch, not below {TARGET_LOSS}: "
                 f"probably {direction}")


check, hint, solution = lesson.check, lesson.hint, lesson.solution
