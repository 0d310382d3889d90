"""The exercises of lesson 7 (using the model on new photos), with their checks, hints and solutions.

1. class probabilities the safe way: eval mode, inference mode, softmax over the classes;
2. the validation preprocessing written by hand, checked against ``valid_transform``;
3. a "not sure" rule: a threshold on the highest probability.

Every check runs the learner's function on inputs it makes afresh (a small model of its own, a
new picture of another size, other numbers), so an answer written for the lesson's photos only
does not pass. The checks draw their random numbers from generators of their own and leave the
notebook's random state alone.
"""

from __future__ import annotations

import copy
import inspect

import numpy as np
import torch
from PIL import Image
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
from course_utils.transforms import IMAGENET_MEAN, IMAGENET_STD, valid_transform

lesson = Lesson(7)


def _uses(fn, *names: str) -> str | None:
    """The first of ``names`` that the source of ``fn`` mentions, or ``None`` (also when the source is unknown)."""
    try:
        source = inspect.getsource(fn)
    except (OSError, TypeError):
        return None
    return next((name for name in names if name in source), None)


# --- Exercise 1: class probabilities, the safe way ---------------------------------------------------

PHOTOS, CLASSES = 6, 5   # the checker's batch: 6 pictures, 5 classes (different, so the two dimensions differ)


def _small_model(rng: np.random.Generator) -> nn.Module:
    """A small CNN with BatchNorm, in training mode, with running statistics far from one batch's own.

    After training, a BatchNorm layer's running averages are whatever the training photos gave;
    here they are drawn at random, so that eval mode and train mode answer clearly differently.
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(rng.integers(1 << 31)))
        model = nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                              nn.Flatten(), nn.Linear(8, CLASSES))
    bn = model[1]
    with torch.no_grad():
        bn.running_mean.copy_(torch.from_numpy(rng.normal(0.0, 0.5, 8)))
        bn.running_var.copy_(torch.from_numpy(rng.uniform(0.2, 3.0, 8)))
    return model.train()


@lesson.exercise(
    1,
    hint="Three things, in section 2's and section 4's words: model.eval() (BatchNorm uses its running "
         "averages), the forward pass inside `with torch.inference_mode():` (nothing kept for "
         "backpropagation), and .softmax(dim=1): dimension 0 counts the photos, dimension 1 the classes.",
    solution="""
def probabilities(model, batch):
    model.eval()                          # BatchNorm: the averages learned in training, not this batch's
    with torch.inference_mode():          # no graph for backpropagation
        return model(batch).softmax(dim=1)   # one row per photo, adding up to 1 over the classes

print("our model on the six test photos:", tuple(probabilities(model, torch.cat([x] * 6)).shape))
ex.check(1, probabilities)
""",
)
def check_probabilities(fn) -> Result:
    """Exercise 1: ``probabilities(model, batch)`` = eval-mode softmax over the classes, without a graph."""
    if not callable(fn):
        return wrong("give a function: def probabilities(model, batch): ... return the probabilities")
    rng = np.random.default_rng()
    model = _small_model(rng)
    batch = torch.from_numpy(rng.normal(0.0, 1.0, (PHOTOS, 3, 12, 12))).float()
    stats_before = model[1].running_mean.clone()
    with torch.no_grad():
        logits = copy.deepcopy(model).eval()(batch)
        train_logits = copy.deepcopy(model).train()(batch)
    try:
        answer = run_learner_code(fn, model, batch.clone())
    except LearnerCodeError as e:
        return wrong(f"{e}. It is called as probabilities(model, batch), with a small model and a batch of "
                     f"{PHOTOS} pictures on the CPU")
    if answer is None:
        return not_done("your function returns nothing yet: end it with `return ...` (the probabilities)")
    values = as_array(answer)
    if values is None:
        return wrong(f"it returned a {type(answer).__name__}: return the tensor of probabilities itself")
    if values.shape == (PHOTOS,):
        return wrong(f"it returned one number per photo (the best class?): return every class's probability, "
                     f"a {PHOTOS} x {CLASSES} tensor (the check's batch has {PHOTOS} photos and {CLASSES} classes)")
    if values.shape != (PHOTOS, CLASSES):
        return wrong(f"its shape is {values.shape}; for {PHOTOS} photos and {CLASSES} classes it should be "
                     f"({PHOTOS}, {CLASSES}): one row per photo, one column per class")
    stats_moved = not torch.equal(model[1].running_mean, stats_before)
    expected = logits.softmax(dim=1)
    if not close(values, expected, rtol=1e-4, atol=1e-6):
        if close(values, train_logits.softmax(dim=1), rtol=1e-4, atol=1e-6) or stats_moved:
            return wrong("the model ran in training mode: BatchNorm normalised with this batch's own statistics "
                         "(and moved its running averages). Call model.eval() first")
        mistakes = [
            (logits, "these are the raw scores (logits): turn them into probabilities with .softmax(dim=1)"),
            (logits.softmax(dim=0), "softmax over dimension 0 shares 1 among the photos, not among the classes: "
                                    "use .softmax(dim=1), so that each photo's row adds up to 1"),
            (logits.sigmoid(), "sigmoid scores each class on its own (the rows do not add up to 1): use "
                               ".softmax(dim=1), which shares 1 among the classes"),
            (logits.log_softmax(dim=1), "these are log-probabilities (log_softmax): use .softmax(dim=1)"),
            (100 * expected, "these are percentages: return probabilities between 0 and 1 (drop the * 100)"),
        ]
        for value, why in mistakes:
            if close(values, value, rtol=1e-4, atol=1e-6):
                return wrong(why)
        return wrong("these are not the eval-mode softmax probabilities of the batch; `ex.hint(1)` lists the "
                     "three steps")
    if getattr(answer, "requires_grad", False):
        return wrong("right numbers, but PyTorch kept a graph for backpropagation (requires_grad is True): run "
                     "the forward pass inside `with torch.inference_mode():`")
    return right("eval mode, no graph, softmax over the classes: what Predictor.probabilities does for every photo.")


# --- Exercise 2: the validation preprocessing, by hand ------------------------------------------------

SIZES = (48, 56, 80, 96)   # image sizes the check tries (the lesson's model uses 64 or 224)
TOLERANCE = 0.02           # mean absolute difference allowed, in 0..1 pixel units (another resize library)


def _fresh_picture(rng: np.random.Generator) -> Image.Image:
    """A new colour picture of a random size, landscape or portrait: smooth waves of colour.

    Smooth, so that computing the resized size or the crop's corner a pixel differently changes
    little, while squashing, cropping elsewhere or resizing to another size changes a lot.
    """
    short = int(rng.integers(110, 200))
    long = int(short * rng.uniform(1.3, 1.8))   # clearly not square, so that squeezing it shows
    width, height = (long, short) if rng.random() < 0.5 else (short, long)
    ys, xs = np.mgrid[0:height, 0:width] / max(width, height)
    picture = np.zeros((height, width, 3))
    for channel in range(3):
        for _ in range(4):
            fx, fy, phase = rng.uniform(1, 6), rng.uniform(1, 6), rng.uniform(0, 2 * np.pi)
            picture[..., channel] += np.sin(2 * np.pi * (fx * xs + fy * ys) + phase)
    picture = (picture - picture.min()) / (picture.max() - picture.min())
    return Image.fromarray(np.round(255 * picture).astype(np.uint8))


def _as_tensor(picture: Image.Image) -> torch.Tensor:
    """PIL RGB -> 3 x H x W floats in 0..1."""
    return torch.from_numpy(np.array(picture)).permute(2, 0, 1).float() / 255


def _resized_crops(picture: Image.Image, short: int, size: int, centre: bool = True) -> list[torch.Tensor]:
    """``picture`` with its short side resized to ``short`` (bilinear, shape kept), then a ``size`` square cut out.

    In 0..1, not normalised. Several versions, all of them right for their recipe: the long side
    rounded down or to the nearest pixel, the centre crop's corner rounded three ways (or the
    top-left corner when ``centre`` is False).
    """
    width, height = picture.size
    corners = (lambda d: int(round(d / 2)), lambda d: d // 2, lambda d: -(-d // 2)) if centre else (lambda d: 0,)
    crops = []
    for long_side in (int, round):
        new = (short, long_side(height * short / width)) if width <= height else (long_side(width * short / height),
                                                                                   short)
        resized = picture.resize(new, Image.BILINEAR)
        for corner in corners:
            left, top = corner(new[0] - size), corner(new[1] - size)
            crops.append(_as_tensor(resized.crop((left, top, left + size, top + size))))
    return crops


def _right_crops(picture: Image.Image, size: int) -> list[torch.Tensor]:
    """The picture resized and centre-cropped as ``valid_transform`` does (its own result first), in 0..1."""
    return [valid_transform(size, None, None)(picture), *_resized_crops(picture, round(size / 0.875), size)]


def _geometry_mistakes(picture: Image.Image, size: int) -> list[tuple[list[torch.Tensor], str]]:
    """What the usual mistakes in the resize-and-crop steps make of ``picture`` (in 0..1), and what to say."""
    short = round(size / 0.875)
    return [
        ([_as_tensor(picture.resize((size, size), Image.BILINEAR))],
         "the whole picture was squeezed into the square: resize only the short side, keeping the shape, then "
         "cut out the centre"),
        (_resized_crops(picture, short, size, centre=False),
         "the square was cut from the top-left corner: cut it from the centre, "
         "left = (width - size) // 2 and top = (height - size) // 2"),
        (_resized_crops(picture, size, size),
         f"the short side was resized to image_size itself ({size}): resize it to round(image_size / 0.875) "
         f"({short} here), then cut out the central square (a small margin, as in validation)"),
    ]


def _distance(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().mean()) if a.shape == b.shape else float("inf")


def _nearest(value: torch.Tensor, candidates: list[torch.Tensor]) -> float:
    return min(_distance(value, c) for c in candidates)


def _stats(rng: np.random.Generator) -> tuple[list[float], list[float]]:
    """Fresh normalisation numbers, unlike ImageNet's (so hard-coded ImageNet numbers show)."""
    mean, std = rng.uniform(0.3, 0.6, 3), rng.uniform(0.12, 0.3, 3)
    return [round(float(v), 3) for v in mean], [round(float(v), 3) for v in std]


def _check_prepare_once(fn, rng: np.random.Generator) -> Result | None:
    """One trial on a fresh picture; ``None`` when the answer is right on it."""
    picture = _fresh_picture(rng)
    size = int(rng.choice(SIZES))
    mean, std = _stats(rng)
    answer = run_learner_code(fn, picture.copy(), size, list(mean), list(std))
    if answer is None:
        return not_done("your function returns nothing yet: end it with `return` and the tensor")
    if isinstance(answer, Image.Image):
        return wrong("it returned a PIL picture: finish the steps, a float tensor of shape (3, image_size, "
                     "image_size), in 0..1 and then normalised")
    values = as_array(answer)
    where = f"(on a {picture.width} x {picture.height} picture, image_size={size})"
    if values is None:
        return wrong(f"it returned a {type(answer).__name__}: return a tensor of shape (3, {size}, {size})")
    if values.shape == (1, 3, size, size):
        return wrong("one dimension too many: return one picture, (3, image_size, image_size); the batch "
                     "dimension is added when predicting (unsqueeze(0))")
    if values.shape == (size, size, 3):
        return wrong(f"its shape is {values.shape}: height x width x channels, as PIL and NumPy store pictures. "
                     "PyTorch wants channels first: .permute(2, 0, 1)")
    if values.shape != (3, size, size):
        return wrong(f"its shape is {values.shape} {where}; it should be (3, {size}, {size}): did you resize and "
                     "then cut out the central square?")
    again = as_array(run_learner_code(fn, picture.copy(), size, list(mean), list(std)))
    if again is None or not np.allclose(values, again):
        return wrong("it gives a different answer each time for the same picture: that is augmentation (random "
                     "crops, flips, colour changes), which is for training only. Prediction must be repeatable")
    out = torch.from_numpy(values).float()
    m, s = torch.tensor(mean).view(3, 1, 1), torch.tensor(std).view(3, 1, 1)
    crops = _right_crops(picture, size)
    if _nearest(out * s + m, crops) < TOLERANCE:
        return None
    imagenet_mean, imagenet_std = torch.tensor(IMAGENET_MEAN).view(3, 1, 1), torch.tensor(IMAGENET_STD).view(3, 1, 1)
    normalising = [  # (undo the mistake: back to 0..1 pixels, what it says)
        (lambda o: o, "these are the 0..1 values, not normalised: subtract mean and divide by std, per channel"),
        (lambda o: (o * s + m) / 255, "the values were not scaled to 0..1 before normalising: divide the 0..255 "
                                      "pixel values by 255 first"),
        (lambda o: (o * s + m) * s + m, "it was normalised twice: subtract the mean and divide by std once"),
        (lambda o: o / s + m, "multiplied by std instead of dividing: (x - mean) / std"),
        (lambda o: o + m, "the mean was subtracted, but nothing was divided by std: (x - mean) / std"),
        (lambda o: o * imagenet_std + imagenet_mean,
         "normalised with ImageNet's numbers, not the mean and std the function is given: use its arguments "
         "(a model trained with other statistics needs those)"),
        (lambda o: (o * s + m).flip(0), "the colour channels are in reverse order (BGR, as OpenCV loads): keep "
                                        "PIL's RGB order"),
    ]
    for undo, why in normalising:
        if _nearest(undo(out), crops) < TOLERANCE:
            return wrong(why)
    unnormalised = out * s + m
    distance, why = min((_nearest(unnormalised, candidates), why)
                        for candidates, why in _geometry_mistakes(picture, size))
    if distance < TOLERANCE:
        return wrong(why)
    distance = _nearest(unnormalised, crops)
    if distance < 3 * TOLERANCE:
        return wrong(f"close, but not quite valid_transform's tensor {where}: pixels differ by {distance:.3f} on "
                     "average (0..1 scale). Check each step: a bilinear resize of the short side to "
                     "round(image_size / 0.875), the central crop, 0..1, then (x - mean) / std")
    return wrong(f"not the tensor valid_transform gives {where}: pixels differ by {distance:.2f} on average "
                 "(0..1 scale). `ex.hint(2)` lists the four steps")


@lesson.exercise(
    2,
    hint="Four steps, each one call of torchvision.transforms.v2.functional (imported as F): "
         "F.resize(image, round(image_size / 0.875)) (one number: the short side, the shape is kept), "
         "F.center_crop(picture, image_size), F.to_dtype(F.to_image(picture), torch.float32, scale=True) "
         "(0..1, channels first), F.normalize(tensor, mean, std).",
    solution="""
from torchvision.transforms.v2 import functional as F

def prepare(image, image_size, mean, std):
    picture = F.resize(image, round(image_size / 0.875))        # short side to 73 (for 64) or 256 (for 224)
    picture = F.center_crop(picture, image_size)                # the central square
    tensor = F.to_dtype(F.to_image(picture), torch.float32, scale=True)   # 3 x size x size, values 0..1
    return F.normalize(tensor, mean, std)                       # per channel: (x - mean) / std

mine = prepare(load_image(photo_path), meta.image_size, meta.mean or [0, 0, 0], meta.std or [1, 1, 1])
print("the same as the predictor's:", torch.allclose(mine, predictor.preprocess(photo_path), atol=1e-6))
ex.check(2, prepare)
""",
)
def check_prepare(fn) -> Result:
    """Exercise 2: ``prepare(image, image_size, mean, std)`` = ``valid_transform`` written by hand."""
    if not callable(fn):
        return wrong("give a function: def prepare(image, image_size, mean, std): ... return the tensor")
    helper = _uses(fn, "valid_transform", "preprocess", "Predictor")
    if helper:
        return wrong(f"it calls the course's {helper}: write the four steps yourself, that is the exercise "
                     "(`ex.hint(2)` names a function for each)")
    rng = np.random.default_rng()
    for _ in range(2):  # two fresh pictures, sizes and normalisations
        try:
            verdict = _check_prepare_once(fn, rng)
        except LearnerCodeError as e:
            return wrong(f"{e}. It is called as prepare(image, image_size, mean, std) with a PIL picture, an int "
                         "and two lists of three numbers")
        if verdict is not None:
            return verdict
    return right("resize the short side, cut the centre, 0..1, normalise: valid_transform's four steps, so every "
                 "new photo is prepared exactly like the validation photos.")


# --- Exercise 3: "not sure" ----------------------------------------------------------------------------

NOT_SURE = "not sure"
NAMES = ["Abyssinian", "Beagle", "Bengal", "Boxer", "Persian", "Pug", "Samoyed", "Siamese", "Sphynx"]


def _cases(rng: np.random.Generator) -> list[tuple[torch.Tensor, list[str], float]]:
    """Fresh ``(probabilities, class_names, threshold)`` triples, including one exactly at the threshold."""
    cases = []
    for _ in range(12):
        n = int(rng.integers(3, len(NAMES) + 1))
        names = [str(v) for v in rng.permutation(NAMES)[:n]]
        probs = torch.from_numpy(rng.dirichlet(np.full(n, rng.uniform(0.2, 2.0)))).float()
        cases.append((probs, names, round(float(rng.uniform(0.3, 0.95)), 2)))
    for n, top in ((4, 0.5), (3, 0.75)):  # the highest probability equal to the threshold: that is sure
        rest = rng.dirichlet(np.ones(n - 1)) * (1 - top) * 0.999
        probs = torch.tensor([top, *rest.tolist()], dtype=torch.float32)[torch.from_numpy(rng.permutation(n))]
        cases.append((probs, [str(v) for v in rng.permutation(NAMES)[:n]], float(probs.max())))
    # and two that tell a threshold of the learner's own from the one given: sure at 0.6 of 0.5 (the best class
    # last, so that a name picked by position shows), unsure at 0.9 of 0.95
    for probs, threshold in (([0.25, 0.15, 0.6], 0.5), ([0.05, 0.9, 0.05], 0.95)):
        cases.append((torch.tensor(probs), [str(v) for v in rng.permutation(NAMES)[:3]], threshold))
    rng.shuffle(cases)
    return cases


def _rule(probs: torch.Tensor, names: list[str], threshold: float, compare=lambda p, t: p >= t) -> str:
    best = int(probs.argmax())
    return names[best] if compare(float(probs[best]), threshold) else NOT_SURE


@lesson.exercise(
    3,
    hint="best = int(probabilities.argmax()) is the most likely class's index; probabilities[best] its "
         "probability. Return class_names[best] when that is >= threshold, else the string \"not sure\".",
    solution="""
def decide(probabilities, class_names, threshold):
    best = int(probabilities.argmax())
    return class_names[best] if probabilities[best] >= threshold else "not sure"

for threshold in (0.5, 0.8, 0.95):   # this lesson's photos: pets turned away and strangers let through
    pets_refused = sum(decide(p, meta.class_names, threshold) == "not sure" for p in pet_probabilities)
    strangers_passed = sum(decide(p, meta.class_names, threshold) != "not sure" for p in stranger_probabilities)
    print(f"threshold {threshold:.2f}: {pets_refused} of {len(pet_probabilities)} pets 'not sure', "
          f"{strangers_passed} of {len(stranger_probabilities)} strangers named a breed{MODE}")
ex.check(3, decide)
""",
)
def check_decide(fn) -> Result:
    """Exercise 3: ``decide(probabilities, class_names, threshold)``: the best name if probability >= threshold."""
    if not callable(fn):
        return wrong('give a function: def decide(probabilities, class_names, threshold): ... return a name or '
                     '"not sure"')
    cases = _cases(np.random.default_rng())
    got = []
    try:
        for probs, names, threshold in cases:
            got.append(run_learner_code(fn, probs.clone(), list(names), threshold))
    except LearnerCodeError as e:
        return wrong(f"{e}. It is called as decide(probabilities, class_names, threshold) with a 1-D tensor of "
                     "probabilities, a list of names and a number")
    if all(answer is None for answer in got):
        return not_done('your function returns nothing yet: return the class name or "not sure"')
    if any(isinstance(answer, tuple) for answer in got):
        return wrong('it returned a pair: return only the name (or "not sure"), a string')
    if any(not isinstance(answer, str) for answer in got):
        odd = next(answer for answer in got if not isinstance(answer, str))
        if isinstance(odd, (int, np.integer)) or (isinstance(odd, torch.Tensor) and odd.numel() == 1):
            return wrong("it returned a class number: return its name, class_names[index]")
        return wrong(f'it returned a {type(odd).__name__}: return a string, a class name or "not sure"')
    got = [NOT_SURE if answer.strip().lower() == NOT_SURE else answer for answer in got]
    expected = [_rule(*case) for case in cases]
    if got == expected:
        return right("a threshold on the highest probability: the simplest guard, and section 9 shows what it "
                     "can and cannot catch.")
    mistakes = [
        (lambda p, t: True, 'it never says "not sure": compare the highest probability with the threshold (a '
                            'percentage such as 80 against probabilities below 1 also does this)'),
        (lambda p, t: False, 'it always says "not sure": the highest probability often reaches the threshold'),
        (lambda p, t: p > t, "almost: a probability exactly equal to the threshold counts as sure: use >=, not >"),
        (lambda p, t: p < t, 'the other way round: it names a class when the model is NOT sure, and says "not '
                             'sure" when it is'),
        (lambda p, t: p <= t, 'the other way round: it names a class when the model is NOT sure, and says "not '
                              'sure" when it is'),
        (lambda p, t: p >= 0.8, "it seems to use 0.8 whatever the threshold: compare with the threshold argument"),
    ]
    for compare, why in mistakes:
        if got == [_rule(probs, names, threshold, compare) for probs, names, threshold in cases]:
            return wrong(why)
    names_right = [g == e for g, e in zip(got, expected) if e != NOT_SURE and g != NOT_SURE]
    if names_right and not all(names_right):
        return wrong("it names the wrong class: the most likely class is class_names[int(probabilities.argmax())]")
    return wrong(f'{sum(g != e for g, e in zip(got, expected))} of {len(cases)} fresh cases get another answer than '
                 '"the most likely name if its probability is at least the threshold, else not sure"')


check, hint, solution = lesson.check, lesson.hint, lesson.solution
