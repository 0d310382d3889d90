"""Lesson 2's exercise checks: the blank, the right answer and each typical mistake (no notebook needed)."""

import contextlib
import io

import cv2
import numpy as np
import pytest
import torch
from torch import nn

from course_utils.env import samples_dir
from course_utils.exercises import NOT_DONE, RIGHT, WRONG
from course_utils.exercises.lesson2 import lesson

H, W = 300, 451  # the grey photo of Chelsea, as the lesson loads it


def test_blank_is_not_done():
    for number in lesson.exercises:
        assert lesson.evaluate(number, ...).status == NOT_DONE


def test_output_size():
    assert lesson.evaluate(1, ((H + 2 - 5) // 2 + 1, (W + 2 - 5) // 2 + 1)).status == RIGHT


@pytest.mark.parametrize("answer, hint", [
    (((H - 5) // 2 + 1, (W - 5) // 2 + 1), "padding"),
    (((H + 2 - 5) // 2, (W + 2 - 5) // 2), "+ 1"),
    (((H + 2 - 5) * 2 + 1, (W + 2 - 5) * 2 + 1), "divide by the stride"),
    ((H + 2 - 5 + 1, W + 2 - 5 + 1), "stride is missing"),
    (((W + 2 - 5) // 2 + 1, (H + 2 - 5) // 2 + 1), "(height, width)"),
    ((150, 225), "round down"),
    ((1, 2), "not (1, 2)"),
    ("150 x 225", "two numbers"),
])
def test_output_size_mistakes_get_their_hint(answer, hint):
    result = lesson.evaluate(1, answer)
    assert result.status == WRONG and hint in result.message


def test_check_never_raises_and_prints_one_line():
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        lesson.check(1, object())       # nonsense
        lesson.check(1, ...)            # blank
        lesson.check(99, 1)             # no such exercise
        lesson.hint(1)
        lesson.solution(1)
    text = out.getvalue()
    assert "Exercise 2.1, not yet" in text and "Exercise 2.1, not done yet" in text
    assert "no exercise 99" in text and "Hint for Exercise 2.1" in text and "ex.check(1, answer)" in text


# --- Exercise 2: a diagonal edge filter ---------------------------------------------------------

SOBEL_X = np.array([[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]])


@pytest.mark.parametrize("kernel", [
    (SOBEL_X + SOBEL_X.T) / 2,                          # the lesson's comparison
    [[-2, -1, 0], [-1, 0, 1], [0, 1, 2]],               # a "Sobel diagonal"
    [[-1, 0, 0], [0, 0, 0], [0, 0, 1]],                 # the smallest one
    torch.tensor([[-1.0, -1, 0], [-1, 0, 1], [0, 1, 1]]),
])
def test_diagonal_filters_pass(kernel):
    assert lesson.evaluate(2, kernel).status == RIGHT


@pytest.mark.parametrize("kernel, hint", [
    (SOBEL_X, "vertical edges"),
    (SOBEL_X.T, "horizontal edges"),
    (-(SOBEL_X + SOBEL_X.T), "flip every sign"),
    ((SOBEL_X.T - SOBEL_X) / 2, "bottom LEFT"),             # the other diagonal
    ((SOBEL_X - SOBEL_X.T) / 2, "top RIGHT"),
    ((SOBEL_X + SOBEL_X.T) / 2 + np.eye(3), "add up to 3"),  # flat areas would not give 0
    ([[0, 1, 0], [1, -4, 1], [0, 1, 0]], "Laplacian"),
    (np.zeros((3, 3)), "answers nothing"),
    (np.ones((5, 5)), "3 x 3"),
    ("diagonal", "3 x 3"),
])
def test_diagonal_mistakes_get_their_hint(kernel, hint):
    result = lesson.evaluate(2, kernel)
    assert result.status == WRONG and hint in result.message, result.message


# --- Exercise 3: Sobel x plus the identity on the photo ---------------------------------------

@pytest.fixture(scope="module")
def grey():
    photo = cv2.imread(str(samples_dir() / "chelsea.png"))
    return cv2.cvtColor(photo, cv2.COLOR_BGR2GRAY)


def filtered(image, kernel, border=cv2.BORDER_CONSTANT):
    """OpenCV's answer (an independent reference): cross-correlation, zero padding, the photo's size."""
    return cv2.filter2D(image.astype(np.float64), -1, np.asarray(kernel, dtype=np.float64), borderType=border)


IDENTITY = np.zeros((3, 3))
IDENTITY[1, 1] = 1


def test_sobel_plus_identity_passes(grey):
    assert lesson.evaluate(3, filtered(grey, SOBEL_X + IDENTITY)).status == RIGHT
    assert lesson.evaluate(3, torch.from_numpy(grey.astype(np.float64) + filtered(grey, SOBEL_X))).status == RIGHT


@pytest.mark.parametrize("make, hint", [
    (lambda g: filtered(g, SOBEL_X), "Sobel x's answer alone"),
    (lambda g: g.astype(np.float64), "photo unchanged"),
    (lambda g: filtered(g, (SOBEL_X + IDENTITY)[::-1, ::-1]), "flipped"),
    (lambda g: filtered(g, SOBEL_X + 1), "every weight"),
    (lambda g: filtered(g, SOBEL_X.T + IDENTITY), "Sobel y"),
    (lambda g: np.clip(filtered(g, SOBEL_X + IDENTITY), 0, 255), "clipped"),
    (lambda g: filtered(g, SOBEL_X + IDENTITY).astype(np.int64).astype(np.uint8), "uint8"),
    (lambda g: filtered(g, SOBEL_X + IDENTITY)[1:-1, 1:-1], "2 pixels short"),
    (lambda g: filtered(g, SOBEL_X + IDENTITY).T, "shape"),
    (lambda g: filtered(g, SOBEL_X + IDENTITY, cv2.BORDER_REFLECT_101), "border"),
    (lambda g: filtered(g, SOBEL_X + IDENTITY) + 1, "not the photo filtered"),
    (lambda g: 3.0, "2-D array"),
])
def test_sobel_plus_identity_mistakes_get_their_hint(grey, make, hint):
    result = lesson.evaluate(3, make(grey))
    assert result.status == WRONG and hint in result.message, result.message


# --- Exercise 4: a colour layer with Sobel x on red and on blue ---------------------------------

def colour_layer(red_channel=0, blue_channel=2, kernel=SOBEL_X, bias=0.0, clear=True):
    layer = nn.Conv2d(3, 2, kernel_size=3, padding=1)
    with torch.no_grad():
        if clear:
            layer.weight.zero_()
        layer.bias.fill_(bias)
        layer.weight[0, red_channel] = torch.tensor(kernel, dtype=torch.float32)
        layer.weight[1, blue_channel] = torch.tensor(kernel, dtype=torch.float32)
    return layer


def test_colour_layer_passes():
    assert lesson.evaluate(4, colour_layer()).status == RIGHT
    layer = nn.Conv2d(3, 2, 3, bias=False)  # no padding and no bias: the same filters
    with torch.no_grad():
        layer.weight.copy_(colour_layer().weight)
    assert lesson.evaluate(4, layer).status == RIGHT


@pytest.mark.parametrize("answer, hint", [
    (colour_layer(red_channel=2, blue_channel=0), "swapped"),
    (colour_layer(kernel=SOBEL_X.T), "Sobel y"),
    (colour_layer(kernel=-SOBEL_X), "wrong way"),
    (colour_layer(bias=0.3), "biases"),
    (colour_layer(clear=False), "layer.weight.zero_()"),
    (nn.Conv2d(1, 2, 3), "3 input channels"),
    (nn.Conv2d(3, 2, 5), "3 input channels"),
    (colour_layer().weight, "the layer itself"),
    (SOBEL_X, "the layer itself"),
])
def test_colour_layer_mistakes_get_their_hint(answer, hint):
    result = lesson.evaluate(4, answer)
    assert result.status == WRONG and hint in result.message, result.message


def test_a_layer_on_another_device_dtype_is_checked_too():
    layer = colour_layer().double()
    assert lesson.evaluate(4, layer).status == RIGHT


def test_nonsense_never_raises_from_check():
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        for number in (2, 3, 4):
            for nonsense in (object(), "text", 3, [1, 2], np.full((3, 3), np.nan), lambda x: x):
                lesson.check(number, nonsense)
    assert out.getvalue().count("not yet") == 18
