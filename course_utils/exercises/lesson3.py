"""The exercises of lesson 3 (pooling, and a first complete CNN), with their checks, hints and solutions."""

from __future__ import annotations

import cv2
import numpy as np
import torch
from torch import nn

from course_utils import filters
from course_utils.env import samples_dir
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

lesson = Lesson(3)

MAKE_CNN_PARAMETERS = 25_274  # make_cnn of the lesson: 16,368 in its convolutions, 8,906 in its Linear layers


# --------------------------------------------------------------------------- models the learner builds


def _build(answer) -> nn.Module | Result:
    """The learner's model: ``answer`` is a function that makes one (or, kindly accepted, a model itself)."""
    model = answer if isinstance(answer, nn.Module) else run_learner_code(answer)
    if model is None:
        return not_done("your function returns nothing yet: make it `return nn.Sequential(...)`")
    if not isinstance(model, nn.Module):
        return wrong(f"your function returned a {type(model).__name__}; return the model, an nn.Sequential(...)")
    return model


def _scores(model: nn.Module, side: int) -> torch.Tensor | str:
    """The model's output for a fresh batch of five random side x side 'digits', or what went wrong."""
    x = torch.rand(5, 1, side, side, generator=torch.Generator().manual_seed(side))
    model.eval()
    try:
        with torch.no_grad():
            return run_learner_code(model, x)
    except LearnerCodeError as e:
        return str(e).replace("your function", "your model")


def _layers(model: nn.Module, kind: type) -> list[nn.Module]:
    return [m for m in model.modules() if isinstance(m, kind)]


def _parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@lesson.exercise(
    1,
    hint="Copy make_cnn and change two lines: nn.MaxPool2d(2) after the 16-channel convolutions becomes "
         "nn.Conv2d(16, 16, kernel_size=3, stride=2, padding=1), the one after the 32-channel convolutions "
         "nn.Conv2d(32, 32, kernel_size=3, stride=2, padding=1), each followed by nn.ReLU(). "
         "With padding 1, the output-size formula takes 8 x 8 to 4 x 4 and 4 x 4 to 2 x 2, as pooling did.",
    solution="""
def make_strided_cnn() -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(1, 16, kernel_size=3, padding=1), nn.ReLU(),
        nn.Conv2d(16, 16, kernel_size=3, padding=1), nn.ReLU(),
        nn.Conv2d(16, 16, kernel_size=3, stride=2, padding=1), nn.ReLU(),   # 8 x 8 -> 4 x 4, learned
        nn.Conv2d(16, 32, kernel_size=3, padding=1), nn.ReLU(),
        nn.Conv2d(32, 32, kernel_size=3, padding=1), nn.ReLU(),
        nn.Conv2d(32, 32, kernel_size=3, stride=2, padding=1), nn.ReLU(),   # 4 x 4 -> 2 x 2, learned
        nn.Flatten(),
        nn.Linear(128, 64), nn.ReLU(),
        nn.Linear(64, 10),
    )

print(summary(make_strided_cnn(), input_shape=(1, 8, 8)))
ex.check(1, make_strided_cnn)
""",
)
def check_strided_cnn(answer) -> Result:
    """Exercise 1: make_cnn with each pooling layer replaced by a 3 x 3 convolution with stride 2."""
    model = _build(answer)
    if isinstance(model, Result):
        return model
    if _layers(model, (nn.MaxPool2d, nn.AvgPool2d, nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d)):
        return wrong("there is still a pooling layer in your model: replace each nn.MaxPool2d(2) by a "
                     "convolution with stride=2")
    strided = [c for c in _layers(model, nn.Conv2d) if tuple(c.stride) == (2, 2)]
    if not strided:
        return wrong("none of your convolutions has stride=2, so nothing shrinks the maps: "
                     "give the two new convolutions stride=2")
    scores = _scores(model, 8)
    if isinstance(scores, str):
        return wrong(f"{scores}. Most likely the maps do not end up 32 x 2 x 2 = 128 numbers for the first Linear "
                     "layer: a 3 x 3 convolution with stride 2 needs padding=1 to take 8 x 8 to 4 x 4")
    if tuple(scores.shape) != (5, 10):
        return wrong(f"a batch of 5 digits gave an output of shape {tuple(scores.shape)}; it must be 5 x 10 "
                     "(one score per digit class)")
    if len(strided) != 2:
        return wrong(f"your model has {len(strided)} convolutions with stride 2; replace the two pooling layers "
                     "by one each")
    if any(tuple(c.kernel_size) != (3, 3) for c in strided):
        return wrong("the exercise asks for 3 x 3 convolutions with stride 2 (kernel_size=3, padding=1)")
    count, expected = _parameters(model), MAKE_CNN_PARAMETERS + (16 * 16 * 9 + 16) + (32 * 32 * 9 + 32)
    if count != expected:
        return wrong(f"your model has {count:,} parameters, {expected:,} expected: each new convolution keeps "
                     "its number of channels (16 -> 16, then 32 -> 32) and has a bias")
    return right(f"{count:,} parameters, {count - MAKE_CNN_PARAMETERS:,} more than make_cnn: a strided "
                 "convolution learns how to shrink the maps, where pooling did it with no weights at all.")


GAP_PARAMETERS = MAKE_CNN_PARAMETERS - (128 * 64 + 64) + (32 * 64 + 64)


@lesson.exercise(
    2,
    hint="Keep make_cnn's layers up to the second nn.MaxPool2d(2); then nn.AdaptiveAvgPool2d(1) (each of the "
         "32 maps becomes one number), nn.Flatten(), and nn.Linear(32, 64) instead of nn.Linear(128, 64).",
    solution="""
def make_gap_cnn() -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(1, 16, kernel_size=3, padding=1), nn.ReLU(),
        nn.Conv2d(16, 16, kernel_size=3, padding=1), nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(16, 32, kernel_size=3, padding=1), nn.ReLU(),
        nn.Conv2d(32, 32, kernel_size=3, padding=1), nn.ReLU(),
        nn.MaxPool2d(2),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(),        # 32 maps -> 32 numbers, whatever their size
        nn.Linear(32, 64), nn.ReLU(),
        nn.Linear(64, 10),
    )

print(f"{count_parameters(make_cnn()) - count_parameters(make_gap_cnn()):,} parameters fewer")
ex.check(2, make_gap_cnn)
""",
)
def check_gap_cnn(answer) -> Result:
    """Exercise 2: make_cnn with global average pooling before the fully connected layers."""
    model = _build(answer)
    if isinstance(model, Result):
        return model
    pools = _layers(model, nn.AdaptiveAvgPool2d)
    if not pools:
        return wrong("there is no global average pooling in your model: put nn.AdaptiveAvgPool2d(1) before "
                     "the Flatten")
    if any(p.output_size not in (1, (1, 1)) for p in pools):
        return wrong("global average pooling averages each whole map to ONE number: nn.AdaptiveAvgPool2d(1)")
    scores = _scores(model, 8)
    if isinstance(scores, str):
        return wrong(f"{scores}. After global average pooling and Flatten there are 32 numbers, one per map: "
                     "the first Linear layer must take 32 inputs")
    if tuple(scores.shape) != (5, 10):
        return wrong(f"a batch of 5 digits gave an output of shape {tuple(scores.shape)}; it must be 5 x 10")
    count = _parameters(model)
    if count != GAP_PARAMETERS:
        return wrong(f"your model has {count:,} parameters, {GAP_PARAMETERS:,} expected: keep make_cnn's layers "
                     "and change only the head (AdaptiveAvgPool2d(1), Flatten, Linear(32, 64))")
    bigger = _scores(model, 16)
    also = (" And it classifies 16 x 16 digits too: the pooling does not care how big the maps are."
            if not isinstance(bigger, str) and tuple(bigger.shape) == (5, 10) else "")
    return right(f"{count:,} parameters, {MAKE_CNN_PARAMETERS - count:,} fewer than make_cnn: the head now needs "
                 f"one weight per map, not one per pixel.{also}")


# --------------------------------------------------------------------------- the shift experiment, again


def _shift_changes(shift: int) -> dict[str, float]:
    """Relative change of the coffee photo's edge maps after a shift, as lesson 3 measures it, by pooling."""
    photo = cv2.imread(str(samples_dir() / "coffee.jpg"))
    grey = cv2.cvtColor(cv2.resize(photo, (300, 200), interpolation=cv2.INTER_AREA), cv2.COLOR_BGR2GRAY)
    picture = grey.astype(np.float64) / 255
    width = picture.shape[1] - 8
    bank = filters.edge_filter_bank()
    original, moved = (np.maximum(filters.conv2d(picture[:, d:d + width], bank), 0) for d in (0, shift))

    def change(a, b):
        return float(np.linalg.norm(b - a) / np.linalg.norm(a))

    found = {"none": change(original, moved)}
    for mode in ("avg", "max"):
        for window in (2, 4):
            found[f"{mode} {window}"] = change(filters.pool2d(original, window, mode=mode),
                                               filters.pool2d(moved, window, mode=mode))
    return found


@lesson.exercise(
    3,
    hint="Section 4 keeps the unshifted maps in shifted_maps[0] and the 2-pixel ones in shifted_maps[2]. "
         "Pool both with filters.pool2d(..., 4, mode=\"avg\") and compare them with relative_change.",
    solution="""
original = filters.pool2d(shifted_maps[0], 4, mode="avg")
moved = filters.pool2d(shifted_maps[2], 4, mode="avg")
answer = relative_change(original, moved)
print(f"average pooling: {answer:.0%}; max pooling: {change[4][2]:.0%}")
ex.check(3, answer)
""",
)
def check_average_pooling_shift(answer) -> Result:
    """Exercise 3: the relative change after a 2-pixel shift with 4 x 4 average pooling."""
    value = None if isinstance(answer, str) else as_array(answer)
    if value is None or value.shape != ():
        return wrong("give one number: the relative change, e.g. answer = 0.25 for 25%")
    value = float(value)
    two = _shift_changes(2)
    expected, with_max = two["avg 4"], two["max 4"]
    if close(value, expected, rtol=1e-4):
        verdict = ("more tolerant than" if expected < with_max - 0.005 else
                   "less tolerant than" if expected > with_max + 0.005 else "about as tolerant as")
        return right(f"{expected:.1%} with average pooling against {with_max:.1%} with max pooling: on this photo "
                     f"and shift, average pooling is {verdict} max pooling.")
    if close(value, 100 * expected, rtol=1e-4):
        return wrong("that is the right change in percent: give it as a fraction (0.25, not 25)")
    one = _shift_changes(1)
    mistakes = {
        "that is the number for max pooling (the lesson's); use mode=\"avg\"": two["max 4"],
        "that is the change without pooling: pool both maps before comparing them": two["none"],
        "that is a 2 x 2 window; the exercise asks for 4 x 4": two["avg 2"],
        "that is the change after a 1-pixel shift; the exercise asks for 2 pixels (shifted_maps[2])": one["avg 4"],
    }
    for why, number in mistakes.items():
        if close(value, number, rtol=1e-4):
            return wrong(why)
    return wrong(f"not {value:.4g}. Pool the original and the shifted maps the same way, then compare them; "
                 "`ex.hint(3)` says where they are")


# --------------------------------------------------------------------------- softmax


def _softmax(scores: np.ndarray) -> np.ndarray:
    e = np.exp(scores - scores.max())
    return e / e.sum()


@lesson.exercise(
    4,
    hint="e^s / sum(e^s) is right, but e^1000 overflows to infinity. Subtracting the largest score first, "
         "e^(s - max) / sum(e^(s - max)), gives the same probabilities (the factor e^-max cancels) and never "
         "overflows.",
    solution="""
def softmax(scores):
    exps = np.exp(scores - np.max(scores))     # the largest becomes e^0 = 1: no overflow
    return exps / exps.sum()

print("scores x 10:", np.round(softmax(np.array([2.0, 1.0, 0.1]) * 10), 3))
print("scores / 10:", np.round(softmax(np.array([2.0, 1.0, 0.1]) / 10), 3))
ex.check(4, softmax)
""",
)
def check_softmax(answer) -> Result:
    """Exercise 4: a softmax that is right on fresh scores, including very large and very negative ones."""
    rng = np.random.default_rng()
    cases = [rng.normal(0, 2, 5), rng.normal(0, 2, 7), np.array([1000.0, 1001.0, 1002.0]),
             np.array([-1000.0, -1003.0, -1001.0, -1002.0])]
    for i, scores in enumerate(cases):
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):  # overflow is what we look for
            returned = run_learner_code(answer, scores.copy())
        if returned is None:
            return not_done("your function returns nothing yet: make it return the probabilities")
        got = as_array(returned)
        if got is None:
            return wrong("your function returned something that is not an array of numbers")
        if got.shape != scores.shape:
            return wrong(f"for {len(scores)} scores your function returned shape {got.shape}: "
                         "give one probability per score")
        expected = _softmax(scores)
        if close(got, expected, rtol=1e-6, atol=1e-9):
            continue
        if i >= 2:
            return wrong(f"right for ordinary scores, but for {scores.tolist()} it gives {np.round(got, 3).tolist()}: "
                         "e^1000 overflows. Subtract the largest score before taking the exponential")
        if close(got, np.exp(scores)) or close(got, np.exp(scores - scores.max())):
            return wrong("these are e^scores; divide them by their sum so that the probabilities add up to 1")
        if close(got, np.exp(scores) / scores.sum()):
            return wrong("divide by the sum of the exponentials, not by the sum of the scores")
        if abs(float(got.sum()) - 1) > 1e-6:
            return wrong(f"your probabilities add up to {got.sum():.4g}, not 1")
        return wrong(f"for the scores {np.round(scores, 2).tolist()} your function gives {np.round(got, 3).tolist()}, "
                     f"softmax is {np.round(expected, 3).tolist()}")
    sharp, flat = _softmax(np.array([20.0, 10.0, 1.0])), _softmax(np.array([0.2, 0.1, 0.01]))
    return right(f"correct even for huge scores. Scores x 10 give the top class a probability of {sharp[0]:.5f}, "
                 f"scores / 10 only {flat[0]:.3f}: multiplying sharpens the probabilities, dividing flattens them.")


check, hint, solution = lesson.check, lesson.hint, lesson.solution
