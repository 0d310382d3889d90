"""Lesson 7's exercise checks: the blank, right answers and each typical mistake (no notebook needed)."""

import contextlib
import functools
import io
import re
import time

import cv2
import numpy as np
import pytest
import torch
from PIL import Image
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as F

from course_utils.exercises import NOT_DONE, RIGHT, WRONG, run_learner_code
from course_utils.exercises import lesson7 as lesson7_module
from course_utils.exercises.lesson7 import lesson
from course_utils.transforms import IMAGENET_MEAN, IMAGENET_STD, train_transform, valid_transform


def verdict(number, answer):
    return lesson.evaluate(number, answer)


def test_blank_is_not_done():
    for number in lesson.exercises:
        assert verdict(number, ...).status == NOT_DONE


def test_functions_that_return_nothing_are_not_done():
    def probabilities(model, batch):
        ...

    def prepare(image, image_size, mean, std):
        ...

    def decide(probabilities, class_names, threshold):
        ...

    for number, fn in ((1, probabilities), (2, prepare), (3, decide)):
        assert verdict(number, fn).status == NOT_DONE


def test_check_never_raises_and_prints_one_line():
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        for number in lesson.exercises:
            for nonsense in (object(), "text", 3, [1, 2], np.zeros(3), lambda: None, lambda *a: "cat"):
                lesson.check(number, nonsense)
        lesson.hint(1)
        lesson.solution(2)
    text = out.getvalue()
    assert len(re.findall(r"Exercise 7\.\d, (?:right|not yet|not done yet):", text)) == 3 * 7
    assert "Traceback" not in text
    assert "Hint for Exercise 7.1" in text and "ex.check(2, prepare)" in text


# --- Exercise 1: probabilities, the safe way -----------------------------------------------------------

def safe(model, batch):
    model.eval()
    with torch.inference_mode():
        return model(batch).softmax(dim=1)


def safe_no_grad(model, batch):  # torch.no_grad() is as good for this
    model.eval()
    with torch.no_grad():
        return torch.nn.functional.softmax(model(batch), dim=-1)


def forgot_eval(model, batch):
    with torch.inference_mode():
        return model(batch).softmax(dim=1)


def forgot_inference_mode(model, batch):
    model.eval()
    return model(batch).softmax(dim=1)


def logits_only(model, batch):
    model.eval()
    with torch.inference_mode():
        return model(batch)


def wrong_dim(model, batch):
    model.eval()
    with torch.inference_mode():
        return model(batch).softmax(dim=0)


def sigmoid(model, batch):
    model.eval()
    with torch.inference_mode():
        return model(batch).sigmoid()


def log_probs(model, batch):
    model.eval()
    with torch.inference_mode():
        return model(batch).log_softmax(dim=1)


def percent(model, batch):
    return 100 * safe(model, batch)


def best_class(model, batch):
    return safe(model, batch).argmax(dim=1)


def transposed(model, batch):
    return safe(model, batch).T


def raises(model, batch):
    raise RuntimeError("boom")


def forever(*args):
    while True:
        time.sleep(0.01)


@pytest.mark.parametrize("fn", [safe, safe_no_grad])
def test_probabilities_right(fn):
    assert verdict(1, fn).status == RIGHT


@pytest.mark.parametrize("fn, hint", [
    (forgot_eval, "model.eval()"),
    (forgot_inference_mode, "torch.inference_mode()"),
    (logits_only, "raw scores"),
    (wrong_dim, "dimension 0"),
    (sigmoid, "sigmoid"),
    (log_probs, "log_softmax"),
    (percent, "percentages"),
    (best_class, "one number per photo"),
    (transposed, "one row per photo"),
    (raises, "RuntimeError: boom"),
    (lambda model, batch: "Beagle", "returned a str"),
    ("safe", "give a function"),
])
def test_probabilities_mistakes_get_their_hint(fn, hint):
    result = verdict(1, fn)
    assert result.status == WRONG and hint in result.message, result.message


def test_a_function_that_never_ends_gets_a_hint(monkeypatch):
    monkeypatch.setattr(lesson7_module, "run_learner_code", functools.partial(run_learner_code, seconds=0.2))
    for number in lesson.exercises:
        result = verdict(number, forever)
        assert result.status == WRONG and "more than 0.2 s" in result.message, result.message


def test_checks_leave_the_notebooks_random_state_alone():
    torch.manual_seed(123)
    np.random.seed(123)
    expected = torch.rand(3), np.random.rand(3)
    torch.manual_seed(123)
    np.random.seed(123)
    verdict(1, safe)
    verdict(2, by_hand_v2)
    verdict(3, decide)
    assert torch.equal(torch.rand(3), expected[0]) and np.array_equal(np.random.rand(3), expected[1])


def test_the_hard_coded_answer_for_one_batch_does_not_pass():
    remembered = {}

    def memorised(model, batch):  # returns the first answer it saw, whatever it is asked next
        return remembered.setdefault("answer", safe(model, batch))

    verdict(1, memorised)
    assert verdict(1, memorised).status == WRONG


# --- Exercise 2: the preprocessing by hand ---------------------------------------------------------------

def by_hand_v2(image, image_size, mean, std):
    picture = F.resize(image, round(image_size / 0.875))
    picture = F.center_crop(picture, image_size)
    return F.normalize(F.to_dtype(F.to_image(picture), torch.float32, scale=True), mean, std)


def by_hand_pil(image, image_size, mean, std):
    """PIL and NumPy, with the long side and the corner rounded a little differently from torchvision."""
    short = round(image_size / 0.875)
    w, h = image.size
    new = (short, round(h * short / w)) if w < h else (round(w * short / h), short)
    image = image.resize(new, Image.BILINEAR)
    left, top = (new[0] - image_size) // 2, (new[1] - image_size) // 2
    array = np.asarray(image.crop((left, top, left + image_size, top + image_size)), dtype=np.float32) / 255
    x = torch.from_numpy(array).permute(2, 0, 1)
    return (x - torch.tensor(mean).view(3, 1, 1)) / torch.tensor(std).view(3, 1, 1)


def by_hand_tensor(image, image_size, mean, std):
    """Resized as a float tensor (antialiased), not as a PIL picture: a hair different, still right."""
    x = torch.from_numpy(np.array(image)).permute(2, 0, 1).float() / 255
    x = F.center_crop(F.resize(x, [round(image_size / 0.875)], antialias=True), [image_size])
    return F.normalize(x, mean, std)


def steps(first, mean_std=None, scale=True):
    """A v2 pipeline starting with ``first`` (a resize / crop list), normalised with the given numbers."""
    def prepare(image, image_size, mean, std):
        m, s = mean_std or (mean, std)
        return v2.Compose([*first(image_size), v2.ToImage(), v2.ToDtype(torch.float32, scale=scale),
                           v2.Normalize(m, s)])(image)
    return prepare


def unnormalised(image, image_size, mean, std):
    return F.to_dtype(F.to_image(F.center_crop(F.resize(image, round(image_size / 0.875)), image_size)),
                      torch.float32, scale=True)


def no_scaling(image, image_size, mean, std):
    x = F.center_crop(F.resize(F.to_image(image), [round(image_size / 0.875)]), [image_size]).float()
    return F.normalize(x, mean, std)


def twice(image, image_size, mean, std):
    return F.normalize(by_hand_v2(image, image_size, mean, std), mean, std)


def times_std(image, image_size, mean, std):
    x = by_hand_v2(image, image_size, mean, std) * torch.tensor(std).view(3, 1, 1) + torch.tensor(mean).view(3, 1, 1)
    return (x - torch.tensor(mean).view(3, 1, 1)) * torch.tensor(std).view(3, 1, 1)


def no_std(image, image_size, mean, std):
    return unnormalised(image, image_size, mean, std) - torch.tensor(mean).view(3, 1, 1)


def bgr(image, image_size, mean, std):
    array = cv2.cvtColor(np.array(image), cv2.COLOR_RGB2BGR)   # as if loaded with cv2.imread
    x = unnormalised(Image.fromarray(array), image_size, mean, std)
    return F.normalize(x, mean, std)


def channels_last(image, image_size, mean, std):
    return by_hand_v2(image, image_size, mean, std).permute(1, 2, 0)


def with_batch(image, image_size, mean, std):
    return by_hand_v2(image, image_size, mean, std).unsqueeze(0)


def no_crop(image, image_size, mean, std):
    return F.normalize(F.to_dtype(F.to_image(F.resize(image, round(image_size / 0.875))), torch.float32, scale=True),
                       mean, std)


def augmented(image, image_size, mean, std):
    return train_transform(image_size, mean, std)(image)


def only_pil(image, image_size, mean, std):
    return F.center_crop(F.resize(image, round(image_size / 0.875)), image_size)


def the_course_helper(image, image_size, mean, std):
    return valid_transform(image_size, mean, std)(image)


def a_little_too_bright(image, image_size, mean, std):
    return by_hand_v2(image, image_size, mean, std) + 0.03 / torch.tensor(std).view(3, 1, 1)


@pytest.mark.parametrize("fn", [by_hand_v2, by_hand_pil, by_hand_tensor,
                                steps(lambda s: [v2.Resize(round(s / 0.875)), v2.CenterCrop(s)])])
def test_prepare_right(fn):
    for _ in range(3):  # fresh pictures every time
        assert verdict(2, fn).status == RIGHT, verdict(2, fn).message


@pytest.mark.parametrize("fn, hint", [
    (steps(lambda s: [v2.Resize((s, s))]), "squeezed"),
    (steps(lambda s: [v2.Resize(s), v2.CenterCrop(s)]), "round(image_size / 0.875)"),
    (steps(lambda s: [v2.Resize(round(s / 0.875)), v2.Lambda(lambda p: F.crop(p, 0, 0, s, s))]), "top-left"),
    (steps(lambda s: [v2.Resize(round(s / 0.875)), v2.CenterCrop(s)], (IMAGENET_MEAN, IMAGENET_STD)), "ImageNet"),
    (unnormalised, "not normalised"),
    (no_scaling, "by 255"),
    (twice, "twice"),
    (times_std, "instead of dividing"),
    (no_std, "nothing was divided"),
    (bgr, "BGR"),
    (channels_last, "channels first"),
    (with_batch, "batch dimension"),
    (no_crop, "central square"),
    (augmented, "augmentation"),
    (only_pil, "PIL picture"),
    (the_course_helper, "valid_transform"),
    (a_little_too_bright, "close, but"),
    (lambda image, image_size, mean, std: torch.zeros(3, image_size, image_size), "differ by"),
    (lambda image, image_size, mean: None, "TypeError"),
])
def test_prepare_mistakes_get_their_hint(fn, hint):
    result = verdict(2, fn)
    assert result.status == WRONG and hint in result.message, result.message


def test_prepare_hard_coded_for_one_size_does_not_pass():
    def for_the_lesson(image, image_size, mean, std):
        return by_hand_v2(image, 64, IMAGENET_MEAN, IMAGENET_STD)   # the quick model's size and numbers

    assert verdict(2, for_the_lesson).status == WRONG


# --- Exercise 3: "not sure" -----------------------------------------------------------------------------

def decide(probabilities, class_names, threshold):
    best = int(probabilities.argmax())
    return class_names[best] if probabilities[best] >= threshold else "not sure"


def decide_numpy(probabilities, class_names, threshold):
    p = np.asarray(probabilities)
    return class_names[int(p.argmax())] if p.max() >= threshold else "Not sure"


def rule(compare, returns=lambda names, best: names[best]):
    def decide(probabilities, class_names, threshold):
        best = int(probabilities.argmax())
        return returns(class_names, best) if compare(float(probabilities[best]), threshold) else "not sure"
    return decide


@pytest.mark.parametrize("fn", [decide, decide_numpy])
def test_decide_right(fn):
    assert verdict(3, fn).status == RIGHT


@pytest.mark.parametrize("fn, hint", [
    (rule(lambda p, t: p > t), ">="),
    (rule(lambda p, t: p < t), "other way round"),
    (rule(lambda p, t: p >= 0.8), "threshold argument"),
    (rule(lambda p, t: p * 100 >= t), "never says"),
    (rule(lambda p, t: False), "always says"),
    (rule(lambda p, t: p >= t, returns=lambda names, best: best), "class number"),
    (rule(lambda p, t: p >= t, returns=lambda names, best: (names[best], 0.9)), "pair"),
    (rule(lambda p, t: p >= t, returns=lambda names, best: names[0]), "wrong class"),
    (lambda probabilities, class_names, threshold: class_names[int(probabilities.argmin())], "wrong class"),
    (lambda probabilities, class_names: "not sure", "TypeError"),
    ("not sure", "give a function"),
])
def test_decide_mistakes_get_their_hint(fn, hint):
    result = verdict(3, fn)
    assert result.status == WRONG and hint in result.message, result.message


def test_decide_cases_include_both_answers_and_the_edge():
    rng = np.random.default_rng(0)
    for _ in range(20):
        cases = lesson7_module._cases(rng)
        answers = [lesson7_module._rule(*case) for case in cases]
        assert "not sure" in answers and any(a != "not sure" for a in answers)
        assert any(float(p.max()) == t for p, _, t in cases)
