"""Filters, convolution and pooling, written out in NumPy (lessons 2 and 3).

Lesson 2 builds these ideas by hand in the notebook; this module keeps tested versions that
lesson 3 and the kernel explorer reuse. (Their pictures are in ``filter_plots``.) Everything
works on plain NumPy arrays:

- an image is ``H x W`` (grey) or ``C x H x W`` (channels first, as PyTorch has it);
- a kernel (filter) is ``kh x kw``, or ``C x kh x kw`` for a ``C``-channel image.

Like ``torch.nn.functional.conv2d`` and ``cv2.filter2D``, ``conv2d`` computes a
*cross-correlation*: the kernel slides over the image without being flipped. A true
mathematical convolution flips the kernel first; that is ``convolve2d``. For learned
filters the difference does not matter (the network learns the flipped filter instead).

Contents, top to bottom: the output-size formula, zero padding, convolution, pooling, and a
few classic kernels.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

IntPair = int | tuple[int, int]


def _pair(value: IntPair, name: str, minimum: int) -> tuple[int, int]:
    """``3`` -> ``(3, 3)``; ``(3, 5)`` stays; anything below ``minimum`` is an error."""
    pair = (value, value) if isinstance(value, (int, np.integer)) else tuple(value)
    if len(pair) != 2 or any(int(v) != v or v < minimum for v in pair):
        raise ValueError(f"{name} must be an integer >= {minimum} or a pair of them, got {value!r}")
    return int(pair[0]), int(pair[1])


# --- the output-size formula -------------------------------------------------------------


def conv_output_size(size: int, kernel: int, stride: int = 1, padding: int = 0) -> int:
    """How many positions a window of ``kernel`` pixels takes along one side of ``size`` pixels.

    ``floor((size + 2 * padding - kernel) / stride) + 1``: pad both ends, count how many
    steps of ``stride`` fit before the window runs off the end. The same formula gives
    the output size of pooling. Call it once for the height and once for the width.
    """
    if size < 1 or kernel < 1 or stride < 1 or padding < 0:
        raise ValueError(f"need size, kernel, stride >= 1 and padding >= 0; got {size=}, {kernel=}, "
                         f"{stride=}, {padding=}")
    if size + 2 * padding < kernel:
        raise ValueError(f"a window of {kernel} does not fit in {size} pixels padded by {padding} on each side")
    return (size + 2 * padding - kernel) // stride + 1


# --- zero padding --------------------------------------------------------------------------


def zero_pad(image: np.ndarray, padding: IntPair, value: float = 0.0) -> np.ndarray:
    """Surround the last two axes (height, width) with ``padding`` rows/columns of zeros.

    ``padding`` is one number for all sides, or ``(rows, columns)``: rows go above and
    below, columns left and right. Padding lets the filter reach the border pixels, so
    the output can keep the input's size. (Max pooling pads with ``value=-inf`` instead,
    so that padding never wins a window.)
    """
    ph, pw = _pair(padding, "padding", 0)
    widths = [(0, 0)] * (image.ndim - 2) + [(ph, ph), (pw, pw)]
    return np.pad(image, widths, mode="constant", constant_values=value)


def _check_fits(height: int, width: int, kh: int, kw: int, padding: tuple[int, int]) -> None:
    if height + 2 * padding[0] < kh or width + 2 * padding[1] < kw:
        raise ValueError(f"a {kh}x{kw} kernel does not fit in a {height}x{width} image padded by {padding}: "
                         "use a smaller kernel or more padding")


# --- convolution ---------------------------------------------------------------------------


def conv2d(image: np.ndarray, kernels: np.ndarray, stride: IntPair = 1, padding: IntPair = 0) -> np.ndarray:
    """Slide kernels over an image; at each position multiply element by element and add up.

    The patch of image under the kernel is that output pixel's *receptive field*. This version
    handles channels and many filters at once.

    Shapes (the kernel has one axis more than the image when it is a bank of filters):

    - image ``H x W``,       kernel ``kh x kw``          -> ``H' x W'``
    - image ``H x W``,       kernels ``F x kh x kw``     -> ``F x H' x W'``
    - image ``C x H x W``,   kernel ``C x kh x kw``      -> ``H' x W'`` (a filter is as deep as the image)
    - image ``C x H x W``,   kernels ``F x C x kh x kw`` -> ``F x H' x W'`` (one feature map per filter)

    Instead of looping over positions, ``sliding_window_view`` lists every receptive field
    (without copying) and one ``einsum`` multiplies and sums them all. Returns floats.
    """
    image, kernels = np.asarray(image, dtype=np.float64), np.asarray(kernels, dtype=np.float64)
    if image.ndim not in (2, 3) or kernels.ndim not in (image.ndim, image.ndim + 1):
        raise ValueError(f"image must be HxW or CxHxW and the kernel as deep as the image (one more axis for "
                         f"a bank of filters); got image {image.shape}, kernel {kernels.shape}")
    one_filter = kernels.ndim == image.ndim
    x = image if image.ndim == 3 else image[None]  # C x H x W
    k = kernels[None] if one_filter else kernels
    k = k if image.ndim == 3 else k[:, None]  # F x C x kh x kw
    if k.shape[1] != x.shape[0]:
        raise ValueError(f"the image has {x.shape[0]} channels but the filters have depth {k.shape[1]}: "
                         "a filter must be as deep as its input")
    sh, sw = _pair(stride, "stride", 1)
    ph, pw = _pair(padding, "padding", 0)
    kh, kw = k.shape[2:]
    _check_fits(x.shape[1], x.shape[2], kh, kw, (ph, pw))
    windows = sliding_window_view(zero_pad(x, (ph, pw)), (kh, kw), axis=(1, 2))  # C x H' x W' x kh x kw
    windows = windows[:, ::sh, ::sw]
    out = np.einsum("chwij,fcij->fhw", windows, k, optimize=True)
    return out[0] if one_filter else out


def convolve2d(image: np.ndarray, kernel: np.ndarray, stride: IntPair = 1, padding: IntPair = 0) -> np.ndarray:
    """A true (mathematical) convolution: flip the kernel upside down and left to right, then ``conv2d``.

    Filtering an image that is zero except for one pixel of 1 shows the difference:
    ``convolve2d`` stamps a copy of the kernel there, ``conv2d`` a flipped copy.
    """
    kernel = np.asarray(kernel)
    return conv2d(image, kernel[..., ::-1, ::-1], stride=stride, padding=padding)


def filter_image(image: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """Filter a photo with an odd-sized 2-D kernel and keep its size (zero padding).

    Works on grey ``H x W`` and colour ``H x W x 3`` arrays as loaded by OpenCV (each colour
    channel is filtered on its own). Returns floats: the result may be negative or above
    255, and how to draw it depends on the kernel (see ``show_filtered``).
    """
    image, kernel = np.asarray(image, dtype=np.float64), np.asarray(kernel, dtype=np.float64)
    if kernel.ndim != 2 or kernel.shape[0] % 2 == 0 or kernel.shape[1] % 2 == 0:
        raise ValueError(f"filter_image needs a 2-D kernel with odd sides (3x3, 5x5, ...) so that it has a "
                         f"centre pixel; got shape {kernel.shape}")
    padding = (kernel.shape[0] // 2, kernel.shape[1] // 2)
    if image.ndim == 2:
        return conv2d(image, kernel, padding=padding)
    if image.ndim == 3:
        channels = image.transpose(2, 0, 1)  # H x W x C -> C x H x W
        return np.stack([conv2d(c, kernel, padding=padding) for c in channels], axis=-1)
    raise ValueError(f"expected a grey H x W or colour H x W x C image, got shape {image.shape}")


# --- pooling -------------------------------------------------------------------------------

POOL_MODES = ("max", "avg", "sum")


def pool2d(
    x: np.ndarray,
    size: IntPair = 2,
    stride: IntPair | None = None,
    mode: str = "max",
    padding: IntPair = 0,
) -> np.ndarray:
    """Summarise each ``size x size`` window of a feature map by one number.

    ``mode`` is ``"max"`` (keep the strongest response), ``"avg"`` (the mean) or ``"sum"``.
    ``stride`` defaults to ``size``: windows side by side, not overlapping, so a 2x2
    pool keeps one number in four. ``x`` is ``H x W`` or ``C x H x W`` (each channel on its
    own). Padding, as in PyTorch, counts as minus infinity for max and as zeros for
    avg/sum (and may be at most half the window). Leftover rows/columns that do not fill
    a whole window are dropped, as PyTorch does.
    """
    if mode not in POOL_MODES:
        raise ValueError(f"mode must be one of {POOL_MODES}, got {mode!r}")
    x = np.asarray(x, dtype=np.float64)
    if x.ndim not in (2, 3):
        raise ValueError(f"pool2d takes H x W or C x H x W, got shape {x.shape}")
    kh, kw = _pair(size, "size", 1)
    sh, sw = _pair(size if stride is None else stride, "stride", 1)
    ph, pw = _pair(padding, "padding", 0)
    if 2 * ph > kh or 2 * pw > kw:
        raise ValueError(f"padding {(ph, pw)} is more than half the window {(kh, kw)}: a window could then hold "
                         "only padding")
    _check_fits(x.shape[-2], x.shape[-1], kh, kw, (ph, pw))
    padded = zero_pad(x, (ph, pw), value=-np.inf if mode == "max" else 0.0)
    windows = sliding_window_view(padded, (kh, kw), axis=(-2, -1))[..., ::sh, ::sw, :, :]
    reduce = {"max": np.max, "avg": np.mean, "sum": np.sum}[mode]
    return reduce(windows, axis=(-2, -1))


# --- classic kernels ---------------------------------------------------------------------

SOBEL_X = np.array([[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]], dtype=np.float64)
"""Responds to brightness growing from left to right (vertical edges). Its weights add up to 0."""

SOBEL_Y = SOBEL_X.T.copy()
"""Responds to brightness growing from top to bottom (horizontal edges)."""

SOBEL_X_WRONG = np.array([[-1, 0, 1], [0, 0, 0], [1, 2, 1]], dtype=np.float64)
"""The *wrong* Sobel x of a widely copied article, exactly as it prints it: ``[[-1,0,1],[0,0,0],[1,2,1]]``.

Two of its rows are wrong: the middle one should be ``[-2, 0, 2]`` and the bottom one
``[-1, 0, 1]``. Only its top row still compares right with left; its bottom row adds up the
brightness of the row below (weighted 1-2-1). So its weights add up to 4, it answers mostly
"how bright is it below?", it gives two edges of opposite direction (dark to bright and bright
to dark) answers of the same sign, and it answers to horizontal edges, which Sobel x should
ignore. Kept so that lesson 2 can show what it does.
"""

PRESETS: dict[str, np.ndarray] = {
    "identity": np.array([[0, 0, 0], [0, 1, 0], [0, 0, 0]], dtype=np.float64),
    "box blur": np.full((3, 3), 1 / 9),
    "gaussian blur": np.array([[1, 2, 1], [2, 4, 2], [1, 2, 1]], dtype=np.float64) / 16,
    "sharpen": np.array([[0, -1, 0], [-1, 5, -1], [0, -1, 0]], dtype=np.float64),
    "sobel x": SOBEL_X,
    "sobel y": SOBEL_Y,
    "laplacian (edges)": np.array([[0, 1, 0], [1, -4, 1], [0, 1, 0]], dtype=np.float64),
    "wrong sobel x (article)": SOBEL_X_WRONG,
}
"""Named 3x3 kernels for the lessons and the kernel explorer (read-only: copy one to change it)."""

for _kernel in PRESETS.values():
    _kernel.flags.writeable = False  # shared by everyone who imports them: edit a copy instead


KERNEL_KINDS = ("edge", "copy", "smoothing", "image + edges", "other")
"""What ``kernel_kind`` can answer, in the order it tests them."""


def kernel_kind(kernel: np.ndarray) -> str:
    """What a kernel does to brightness, read from its weights (the explorer's titles and notes).

    - ``"edge"``: the weights add up to 0, so a flat patch gives 0 and only *changes* show
      (Sobel, Laplacian);
    - ``"copy"``: one weight is 1 and all others 0, so the output is the input (moved by one
      pixel if the 1 is not in the centre);
    - ``"smoothing"``: the weights add up to 1 and none is negative, so each output pixel is a
      weighted average of its neighbourhood (the blurs);
    - ``"image + edges"``: the weights add up to 1 and some are negative. A flat patch keeps its
      brightness, and on top of it comes the answer of an edge kernel: any such kernel is the
      identity plus a kernel whose weights add up to 0 (sharpen adds a Laplacian, Sobel x plus
      the identity adds Sobel x's answer);
    - ``"other"``: the weights add up to neither 0 nor 1 (for example the wrong Sobel x, 4).
    """
    kernel = np.asarray(kernel, dtype=np.float64)
    total = float(np.sum(kernel))
    if np.isclose(total, 0.0, atol=1e-9):
        return "edge"
    if not np.isclose(total, 1.0):
        return "other"
    if np.count_nonzero(kernel) == 1:
        return "copy"
    return "smoothing" if bool(np.all(kernel >= 0)) else "image + edges"


def edge_filter_bank() -> np.ndarray:
    """Four hand-made 4x4 edge filters, shape ``4 x 4 x 4`` (filter, row, column).

    The base filter is -1 on its left half and +1 on its right half: it answers
    "is it brighter on the right than on the left?", a vertical edge. The others are its
    negative (brighter on the left), its transpose (brighter below: a horizontal edge) and
    the transpose's negative (brighter above). Lesson 2 builds them step by step.
    """
    base = np.array([[-1, -1, 1, 1]] * 4, dtype=np.float64)
    return np.stack([base, -base, base.T, -base.T])
