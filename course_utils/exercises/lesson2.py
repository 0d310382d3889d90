"""The exercises of lesson 2 (filters and convolution), with their checks, hints and solutions.

1. the output size of a strided, padded convolution (the formula);
2. a diagonal edge filter (checked on fresh pictures);
3. Sobel x plus the identity on the photo (what a kernel whose weights add up to 1 does);
4. a colour ``nn.Conv2d`` with one Sobel x per chosen channel (filter depth, RGB order).
"""

from __future__ import annotations

import cv2
import numpy as np
import torch
from PIL import Image
from torch import nn

from course_utils.env import samples_dir
from course_utils.exercises import Lesson, Result, as_array, close, right, wrong
from course_utils.filters import SOBEL_X, conv2d

lesson = Lesson(2)


def _photo_size() -> tuple[int, int]:
    """(height, width) of the grey photo the lesson filters (Chelsea the cat)."""
    with Image.open(samples_dir() / "chelsea.png") as photo:
        return photo.height, photo.width


@lesson.exercise(
    1,
    hint="Apply the formula once for the height and once for the width: "
         "floor((n + 2p - k) / s) + 1, with n the side of the photo, k = 5, p = 1, s = 2.",
    solution="""
h, w = grey.shape
answer = ((h + 2 * 1 - 5) // 2 + 1, (w + 2 * 1 - 5) // 2 + 1)   # the formula, for each side
print("checked by running it:", conv2d_by_hand(grey.astype(float), np.ones((5, 5)), stride=2, padding=1).shape)
ex.check(1, answer)
""",
)
def check_output_size(answer) -> Result:
    """Exercise 1: the output shape of a 5 x 5 filter, stride 2, padding 1, on the grey photo."""
    values = as_array(answer)
    if values is None or values.shape != (2,):
        return wrong("give two numbers, (height, width), e.g. answer = (100, 200)")
    h, w = _photo_size()
    k, p, s = 5, 1, 2

    def side(n: int) -> int:
        return (n + 2 * p - k) // s + 1

    expected = (side(h), side(w))
    if close(values, expected):
        return right(f"{expected[0]} x {expected[1]}: the formula needs no trial run once you trust it.")
    mistakes = {
        "the padding seems to be missing: add 2p to each side before the filter slides": (
            (h - k) // s + 1, (w - k) // s + 1),
        "almost: the formula ends with + 1 (the first position counts too)": (
            (h + 2 * p - k) // s, (w + 2 * p - k) // s),
        "with stride 2 the output shrinks, it does not grow: divide by the stride, do not multiply": (
            (h + 2 * p - k) * s + 1, (w + 2 * p - k) * s + 1),
        "the stride is missing: with stride 2 only every other position is used": (
            h + 2 * p - k + 1, w + 2 * p - k + 1),
        "round down, not up: a window that would run past the padded border is not used": (
            -(-(h + 2 * p - k) // s) + 1, -(-(w + 2 * p - k) // s) + 1),
        "right numbers, wrong order: NumPy shapes are (height, width), rows first": (side(w), side(h)),
    }
    matching = [why for why, value in mistakes.items() if close(values, value)]
    if matching:  # two mistakes can give the same numbers: name them all
        return wrong("; or ".join(matching))
    return wrong(f"not {tuple(int(v) for v in values)}. Work out one side at a time; `ex.hint(1)` shows the formula.")


# --- Exercise 2: a diagonal edge filter ---------------------------------------------------------

def _kernel(answer) -> np.ndarray | None:
    """The answer as a 3 x 3 float array, or None when it is not one."""
    values = as_array(answer)
    return values if values is not None and values.shape == (3, 3) and np.all(np.isfinite(values)) else None


def _direction(kernel: np.ndarray) -> tuple[float, float]:
    """(strength, angle in degrees) of a kernel's answer to a steady slope of brightness.

    On a ramp that brightens by ``cos a`` per column and ``sin a`` per row (rows count
    downwards), the kernel answers ``A cos a + B sin a`` with ``A = sum(k * column)`` and
    ``B = sum(k * row)`` (positions counted from the centre). That answer is largest for the
    direction ``atan2(B, A)``: the way the kernel "looks". 45 degrees is towards the bottom right.
    """
    rows, cols = np.mgrid[-1:2, -1:2]
    a, b = float(np.sum(kernel * cols)), float(np.sum(kernel * rows))
    return float(np.hypot(a, b)), float(np.degrees(np.arctan2(b, a)))


def _diagonal_step(size: int, offset: int) -> np.ndarray:
    """A fresh test image: dark above the anti-diagonal line ``row + column = size - 1 + offset``, bright below it."""
    rows, cols = np.mgrid[0:size, 0:size]
    return np.where(rows + cols > size - 1 + offset, 200.0, 20.0)


DIRECTION_HINTS = [  # (angle the kernel looks towards, what to say)
    (0, "it answers to brightness growing from left to right (vertical edges), like Sobel x: turn it by 45 degrees"),
    (90, "it answers to brightness growing downwards (horizontal edges), like Sobel y: turn it by 45 degrees"),
    (135, "it looks along the other diagonal (brighter towards the bottom LEFT): mirror it left to right"),
    (-45, "it looks along the other diagonal (brighter towards the top RIGHT): mirror it top to bottom"),
    (180, "it answers to brightness growing from right to left"),
    (-90, "it answers to brightness growing upwards"),
    (-135, "right diagonal, wrong sign: it answers to brightness growing towards the TOP left; flip every sign"),
]


@lesson.exercise(
    2,
    hint="Sobel x looks left to right, Sobel y top to bottom. A diagonal filter puts its negative weights in "
         "the top-left corner and its positive ones in the bottom-right corner, zeros along the other diagonal, "
         "and its weights add up to 0.",
    solution="""
diagonal = np.array([[-2, -1, 0],
                     [-1,  0, 1],
                     [ 0,  1, 2]])   # negative top left, positive bottom right: brighter towards the bottom right
print("(sobel_x + sobel_y) / 2 =\\n", (sobel_x + sobel_y) / 2)
print("the photo's strongest answer:", conv2d_fast(padded_grey, diagonal).max())
ex.check(2, diagonal)
""",
)
def check_diagonal(answer) -> Result:
    """Exercise 2: a 3 x 3 kernel that answers edges brightening towards the bottom right, and 0 on flat areas."""
    kernel = _kernel(answer)
    if kernel is None:
        return wrong("give nine weights as a 3 x 3 array, e.g. np.array([[-1, -1, 0], [-1, 0, 1], [0, 1, 1]])")
    scale = float(np.abs(kernel).sum())
    if scale == 0:
        return wrong("all nine weights are 0, so it answers nothing anywhere")
    total = float(kernel.sum())
    strength, angle = _direction(kernel)
    if abs(total) > 1e-6 * scale:
        return wrong(f"its weights add up to {total:g}, so a flat area answers {total:g} x its brightness "
                     "instead of 0: make them add up to 0")
    if strength < 1e-6 * scale:
        return wrong("it gives 0 on a steady slope of brightness in every direction (like a Laplacian, which finds "
                     "thin lines and corners): it needs negative weights on one side and positive ones on the other")
    off = (angle - 45 + 180) % 360 - 180
    if abs(off) > 20:
        nearest = min(DIRECTION_HINTS, key=lambda item: abs((angle - item[0] + 180) % 360 - 180))
        return wrong(nearest[1])
    # and on a fresh picture: a diagonal step, brighter below it
    step = _diagonal_step(24, offset=int(np.random.default_rng().integers(-4, 5)))
    response = conv2d(step, kernel)
    flat = conv2d(np.full((8, 8), 123.0), kernel)
    if not (response.max() > 0 and np.allclose(flat, 0, atol=1e-6 * scale * 123)):
        return wrong("on a test picture with a diagonal edge it does not give a positive answer: check the signs")
    return right(f"it looks {angle:.0f} degrees from 'left to right', towards the bottom right, and answers 0 on "
                 "flat areas; (sobel_x + sobel_y) / 2 is one such filter.")


# --- Exercise 3: Sobel x plus the identity --------------------------------------------------------

def _grey_photo() -> np.ndarray:
    """The lesson's grey photo, loaded as the lesson loads it (OpenCV's BGR -> grey), as floats."""
    photo = cv2.imread(str(samples_dir() / "chelsea.png"))
    return cv2.cvtColor(photo, cv2.COLOR_BGR2GRAY).astype(np.float64)


@lesson.exercise(
    3,
    hint="Make the kernel first: identity = np.zeros((3, 3)); identity[1, 1] = 1; then sobel_x + identity. "
         "Filter as section 7 does: conv2d_fast(padded_grey, kernel), where padded_grey is the photo with a "
         "border of one zero.",
    solution="""
identity = np.zeros((3, 3))
identity[1, 1] = 1                                      # the "copy" kernel: a single 1 in the centre
answer = conv2d_fast(padded_grey, sobel_x + identity)   # the photo plus its left-to-right changes: grey + gx
plt.imshow(np.clip(answer, 0, 255), cmap="gray")
plt.title("Sobel x + identity: the photo, with left-to-right changes added")
plt.show()
ex.check(3, answer)
""",
)
def check_sobel_plus_identity(answer) -> Result:
    """Exercise 3: the grey photo filtered with Sobel x + 1 at the centre, zero padding 1 (same size)."""
    values = as_array(answer)
    grey = _grey_photo()
    if values is None or values.ndim != 2:
        return wrong(f"give the filtered photo: a 2-D array of shape {grey.shape}")
    if values.shape == (grey.shape[0] - 2, grey.shape[1] - 2):
        return wrong(f"it is {values.shape[0]} x {values.shape[1]}, 2 pixels short each way: pad the photo with "
                     "one row and column of zeros all round first (np.pad(grey, 1), or padded_grey)")
    if values.shape != grey.shape:
        return wrong(f"its shape is {values.shape}, the photo's is {grey.shape}: filter the whole photo, "
                     "with zero padding 1")
    identity = np.zeros((3, 3))
    identity[1, 1] = 1
    gx = conv2d(grey, SOBEL_X, padding=1)
    expected = grey + gx
    if close(values, expected, rtol=1e-9, atol=1e-6):
        return right("the photo plus gx: flat areas keep their brightness (the weights add up to 1) and every "
                     "left-to-right change is added on top, a relief lit from one side. The explorer calls it an "
                     "'image + edges' kernel.")
    inside = (slice(1, -1), slice(1, -1))
    mistakes = [
        (gx, "that is Sobel x's answer alone: add 1 to its centre weight first (sobel_x + identity)"),
        (grey, "that is the photo unchanged: the kernel needs Sobel x's weights as well as the 1 in the centre"),
        (grey - gx, "that is the photo MINUS gx: the kernel was flipped (a true convolution flips it; "
                    "conv2d_fast and cv2.filter2D do not)"),
        (conv2d(grey, SOBEL_X + 1, padding=1), "1 was added to every weight: add it to the centre weight only"),
        (conv2d(grey, SOBEL_X.T + identity, padding=1), "that is Sobel y + 1 (it looks top to bottom): use sobel_x"),
        (np.clip(expected, 0, 255), "right filter, but clipped to 0..255: hand in the raw numbers (clip only to draw)"),
        (np.mod(expected, 256), "right filter, but stored as uint8, which wraps round above 255 and below 0: keep "
                                "the floats"),
    ]
    for value, why in mistakes:
        if close(values, value, rtol=1e-9, atol=1e-6):
            return wrong(why)
    if close(values[inside], expected[inside], rtol=1e-9, atol=1e-6):
        return wrong("right inside, but not at the border: pad with zeros (np.pad(grey, 1)), not OpenCV's mirrored "
                     "border")
    return wrong("not the photo filtered with Sobel x + 1 at the centre; `ex.hint(3)` shows the two steps")


# --- Exercise 4: a colour layer with a Sobel x per channel -------------------------------------------

def _colour_layer_expected() -> torch.Tensor:
    """The weights the layer should have: filter 0 = Sobel x on red (channel 0), filter 1 = on blue (channel 2)."""
    weight = torch.zeros(2, 3, 3, 3, dtype=torch.float64)
    weight[0, 0] = torch.tensor(SOBEL_X)
    weight[1, 2] = torch.tensor(SOBEL_X)
    return weight


CHANNELS = ("red", "green", "blue")


@lesson.exercise(
    4,
    hint="Start from zeros: with torch.no_grad(): layer.weight.zero_(); layer.bias.zero_(). The weight has shape "
         "(filters, channels, 3, 3), and photo_batch's channels are R, G, B, so layer.weight[0, 0] is "
         "filter 0 on red and layer.weight[1, 2] is filter 1 on blue. Each takes torch.tensor(sobel_x).",
    solution="""
colour_edges = nn.Conv2d(3, 2, kernel_size=3, padding=1)
with torch.no_grad():
    colour_edges.weight.zero_()
    colour_edges.bias.zero_()
    colour_edges.weight[0, 0] = torch.tensor(sobel_x)      # filter 0 looks at red (channel 0 of an RGB batch)
    colour_edges.weight[1, 2] = torch.tensor(sobel_x)      # filter 1 looks at blue (channel 2)
    red_edges, blue_edges = colour_edges(photo_batch)[0]
filter_plots.show_feature_maps([red_edges, blue_edges, red_edges - blue_edges], ncols=3, signed=True, robust=True,
                               titles=["Sobel x on red", "Sobel x on blue", "red minus blue: where they differ"])
plt.show()
ex.check(4, colour_edges)
""",
)
def check_colour_layer(answer) -> Result:
    """Exercise 4: nn.Conv2d(3, 2, 3) with Sobel x on the red channel (filter 0) and on the blue one (filter 1)."""
    if not isinstance(answer, nn.Conv2d):
        return wrong("hand in the layer itself, an nn.Conv2d(3, 2, kernel_size=3, padding=1), not its output "
                     "or its weights")
    if (answer.in_channels, answer.out_channels, tuple(answer.kernel_size)) != (3, 2, (3, 3)):
        return wrong(f"this layer has {answer.in_channels} input channels, {answer.out_channels} filters and "
                     f"{tuple(answer.kernel_size)} kernels: a colour photo needs 3 input channels, and the "
                     "exercise asks for 2 filters of 3 x 3")
    weight = answer.weight.detach().double().cpu()
    expected = _colour_layer_expected()
    bias = answer.bias.detach().double().cpu() if answer.bias is not None else torch.zeros(2, dtype=torch.float64)
    if not torch.allclose(bias, torch.zeros(2, dtype=torch.float64)):
        return wrong("the biases are not 0: nn.Conv2d starts with random ones; set them with "
                     "layer.bias.zero_() inside torch.no_grad() (or build it with bias=False)")
    swapped = expected[:, [2, 1, 0]]
    if torch.allclose(weight, swapped):
        return wrong("red and blue are swapped: photo_batch was made from photo_rgb, so its channel 0 is red and "
                     "channel 2 blue (it is OpenCV's photo_bgr that has blue first)")
    if torch.allclose(weight, expected.transpose(2, 3)):
        return wrong("that is Sobel y (the transpose) on each channel: use sobel_x")
    if torch.allclose(weight, -expected):
        return wrong("the filters point the wrong way (they are -Sobel x): check the signs")
    for f, colour in ((0, "red"), (1, "blue")):
        used = [CHANNELS[c] for c in range(3) if not torch.allclose(weight[f, c], expected[f, c])]
        if used:
            return wrong(f"filter {f} should be Sobel x on {colour} and 0 on the other channels, but its weights "
                         f"for {', '.join(used)} are not: start from layer.weight.zero_()")
    # it is the right layer; run it on a fresh random colour picture to be sure it computes what it should
    fresh = torch.rand(1, 3, 11, 17, dtype=torch.float32)
    with torch.no_grad():
        got = answer(fresh.to(answer.weight.device, answer.weight.dtype)).double().cpu()
    want = torch.nn.functional.conv2d(fresh.double(), expected, stride=answer.stride, padding=answer.padding)
    if got.shape != want.shape or not torch.allclose(got, want, atol=1e-4):
        return wrong("its weights look right, but it does not compute a plain convolution with them")
    return right("two feature maps from one colour photo: they differ where an edge exists in one colour and not "
                 "in the other (a change of hue with little change of brightness).")


check, hint, solution = lesson.check, lesson.hint, lesson.solution
