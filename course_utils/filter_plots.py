"""Pictures of kernels, arrays and feature maps (lessons 2, 3 and 5, and the kernel explorer).

Looking at numbers is how these lessons work: ``draw_array`` writes every number of a small
array into its cell, ``draw_kernel`` and ``show_kernels`` draw filters (positive weights red,
negative blue), ``show_feature_maps`` draws what filters produce, ``show_filtered`` puts a
photo, a kernel and the result side by side, and ``show_gradient`` draws an image's gradient
(Sobel x and y, its strength, and its direction as a colour). The grid they fill comes from
``plots.image_grid``.
"""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.colors import hsv_to_rgb

from course_utils.filters import filter_image, kernel_kind
from course_utils.plots import image_grid


def _number(value: float) -> str:
    return f"{value:.0f}" if float(value).is_integer() else f"{value:.2f}"


def _colour_range(values: np.ndarray, signed: bool, robust: bool) -> tuple[float, float]:
    """Colour-scale limits: the full range, or (``robust``) the 0.5th-99.5th percentile range.

    A few extreme pixels (often the zero-padded border) can otherwise wash out everything
    else; a robust scale lets those few saturate instead.
    """
    if signed:
        limit = float(np.percentile(np.abs(values), 99.5) if robust else np.abs(values).max()) or 1.0
        return -limit, limit
    low, high = (np.percentile(values, [0.5, 99.5]) if robust else (values.min(), values.max()))
    return float(low), float(high) if high > low else float(low) + 1.0


def draw_array(ax: plt.Axes, array: np.ndarray, title: str | None = None, cmap: str = "gray",
               signed: bool = False) -> None:
    """Draw a small 2-D array as coloured cells with each number written in its cell (up to 16 x 16).

    For looking at images, kernels and feature maps number by number. ``signed=True``
    centres a red-white-blue scale on zero (positive red, negative blue); otherwise
    ``cmap`` runs from the smallest value to the largest.
    """
    array = np.asarray(array, dtype=np.float64)
    if array.ndim != 2:
        raise ValueError(f"draw_array draws 2-D arrays, got shape {array.shape}")
    low, high = _colour_range(array, signed, robust=False)
    shown = ax.imshow(array, cmap="RdBu_r" if signed else cmap, vmin=low, vmax=high, interpolation="nearest")
    if max(array.shape) <= 16:
        for (r, c), value in np.ndenumerate(array):
            # dark text on light cells, light text on dark ones
            red, green, blue, _ = shown.cmap(shown.norm(value))
            colour = "black" if 0.299 * red + 0.587 * green + 0.114 * blue > 0.5 else "white"
            ax.text(c, r, _number(value), ha="center", va="center", fontsize=9, color=colour)
    ax.set_xticks([])
    ax.set_yticks([])
    if title:
        ax.set_title(title, fontsize=9)


def draw_kernel(ax: plt.Axes, kernel: np.ndarray, title: str | None = None, annotate: bool = True) -> None:
    """Draw one kernel on ``ax``: a 2-D kernel as coloured cells with its numbers, a 3-channel one in colour.

    In a 2-D kernel, positive weights are red, negative blue and zero white, on a scale
    centred on zero. A ``3 x kh x kw`` kernel (for example a colour network's first layer)
    is stretched to 0..1 and shown as a tiny RGB picture.
    """
    kernel = np.asarray(kernel, dtype=np.float64)
    ax.axis("off")
    if kernel.ndim == 3 and kernel.shape[0] == 3:
        low, high = kernel.min(), kernel.max()
        rgb = ((kernel - low) / (high - low + 1e-12)).transpose(1, 2, 0)  # 3 x kh x kw -> kh x kw x 3
        ax.imshow(rgb, interpolation="nearest")
    elif kernel.ndim == 2 and annotate and max(kernel.shape) <= 7:
        draw_array(ax, kernel, signed=True)
        ax.axis("off")
    elif kernel.ndim == 2:
        low, high = _colour_range(kernel, signed=True, robust=False)
        ax.imshow(kernel, cmap="RdBu_r", vmin=low, vmax=high, interpolation="nearest")
    else:
        raise ValueError(f"draw_kernel draws kh x kw or 3 x kh x kw kernels, got shape {kernel.shape}")
    if title:
        ax.set_title(title, fontsize=9)


def show_kernels(
    kernels: Sequence[np.ndarray] | np.ndarray,
    titles: Sequence[str] | None = None,
    ncols: int = 4,
    size: float = 2.0,
    annotate: bool = True,
    suptitle: str | None = None,
) -> plt.Figure:
    """Draw several kernels in a grid (see ``draw_kernel``): weights as colours, and as numbers when small."""
    kernels = [np.asarray(k) for k in kernels]
    if titles is not None and len(titles) != len(kernels):
        raise ValueError(f"got {len(kernels)} kernels but {len(titles)} titles")
    fig, axes = image_grid(len(kernels), ncols, size, size, 0.4 if suptitle else 0.0)
    for i, (ax, kernel) in enumerate(zip(axes, kernels)):
        draw_kernel(ax, kernel, titles[i] if titles else None, annotate)
    if suptitle:
        fig.suptitle(suptitle)
    fig.tight_layout()
    return fig


def show_feature_maps(
    maps: Sequence[np.ndarray] | np.ndarray,
    titles: Sequence[str] | None = None,
    ncols: int = 4,
    size: float = 3.0,
    signed: bool = False,
    robust: bool = False,
    suptitle: str | None = None,
) -> plt.Figure:
    """Draw feature maps (2-D arrays or tensors) in a grid, each with a colour bar of its values.

    ``signed=False`` draws each map in grey from its smallest (black) to its largest value
    (white). ``signed=True`` centres a red-white-blue scale on zero: positive responses
    red, negative blue, zero white, which shows at a glance what ReLU removes.
    ``robust=True`` lets the most extreme 0.5% of values saturate, so faint structure shows.
    ``size`` is the width of one map in inches; the height follows the maps' shape.
    """
    maps = [np.asarray(m.detach().cpu() if hasattr(m, "detach") else m, dtype=np.float64).squeeze() for m in maps]
    if any(m.ndim != 2 for m in maps):
        raise ValueError(f"feature maps must be 2-D, got shapes {[m.shape for m in maps]}")
    if titles is not None and len(titles) != len(maps):
        raise ValueError(f"got {len(maps)} maps but {len(titles)} titles")
    aspect = max(m.shape[0] / m.shape[1] for m in maps)  # height / width
    fig, axes = image_grid(len(maps), ncols, 1.3 * size, size * aspect + 0.6, 0.4 if suptitle else 0.0)
    for i, (ax, fmap) in enumerate(zip(axes, maps)):
        low, high = _colour_range(fmap, signed, robust)
        shown = ax.imshow(fmap, cmap="RdBu_r" if signed else "gray", vmin=low, vmax=high)
        fig.colorbar(shown, ax=ax, fraction=0.046, pad=0.04, shrink=min(1.0, 1.2 * fmap.shape[0] / fmap.shape[1]))
        if titles is not None:
            ax.set_title(titles[i], fontsize=9)
    if suptitle:
        fig.suptitle(suptitle)
    fig.tight_layout()
    return fig


def draw_filtered(ax: plt.Axes, result: np.ndarray, kernel: np.ndarray) -> plt.cm.ScalarMappable:
    """Draw a filtered grey image the way its kernel calls for (see ``filters.kernel_kind``).

    Kernels whose weights add up to 1 (copy, smoothing, image + edges) keep the brightness of
    flat areas, so the result is drawn like a photo: in grey, clipped to 0..255 (an
    "image + edges" kernel can overshoot both ends). Edge kernels give signed answers centred on
    0: red-white-blue. Anything else is drawn in grey from its own smallest to largest value.
    Edge and other results use a robust scale (the most extreme 0.5% saturate): the
    zero-padded border alone would otherwise set the scale and wash out the picture.
    """
    kind = kernel_kind(kernel)
    if kind in ("copy", "smoothing", "image + edges"):
        return ax.imshow(np.clip(result, 0, 255), cmap="gray", vmin=0, vmax=255)
    low, high = _colour_range(result, signed=kind == "edge", robust=True)
    return ax.imshow(result, cmap="RdBu_r" if kind == "edge" else "gray", vmin=low, vmax=high)


def show_filtered(image: np.ndarray, kernel: np.ndarray, title: str | None = None) -> plt.Figure:
    """One row: the grey input, the kernel with its numbers, and the filtered result with a colour bar."""
    image = np.asarray(image, dtype=np.float64)
    if image.ndim != 2:
        raise ValueError(f"show_filtered takes a grey H x W image, got shape {image.shape}")
    result = filter_image(image, kernel)
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.4), gridspec_kw={"width_ratios": [4, 1.8, 4.8]})
    axes[0].imshow(image, cmap="gray", vmin=0, vmax=255)
    axes[0].set_title(f"input ({image.shape[0]} x {image.shape[1]})", fontsize=10)
    axes[0].axis("off")
    draw_kernel(axes[1], kernel, f"kernel\n(weights add up to {np.sum(kernel):.3g})")
    shown = draw_filtered(axes[2], result, kernel)
    axes[2].set_title(f"output ({kernel_kind(kernel)} kernel)", fontsize=10)
    axes[2].axis("off")
    fig.colorbar(shown, ax=axes[2], fraction=0.046, pad=0.04)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def direction_picture(angle: np.ndarray, strength: np.ndarray) -> np.ndarray:
    """An ``H x W x 3`` RGB picture (floats 0..1) of a gradient: colour = direction, brightness = strength.

    ``angle`` is in radians, as ``np.arctan2(gy, gx)`` gives it: 0 (brighter to the right) is
    red, pi/2 (brighter below, since rows count downwards) yellow-green, pi (brighter to the
    left) cyan, -pi/2 (brighter above) violet. ``strength`` is scaled so that its 99th
    percentile is full brightness; the strongest 1% saturate.
    """
    angle, strength = np.asarray(angle, dtype=np.float64), np.asarray(strength, dtype=np.float64)
    if angle.shape != strength.shape or angle.ndim != 2:
        raise ValueError(f"angle and strength must be 2-D arrays of one shape, got {angle.shape} and {strength.shape}")
    top = float(np.percentile(strength, 99)) or 1.0
    hsv = np.stack([np.mod(angle, 2 * np.pi) / (2 * np.pi), np.ones_like(angle),
                    np.clip(strength / top, 0, 1)], axis=-1)
    return hsv_to_rgb(hsv)


def direction_wheel(size: int = 101) -> np.ndarray:
    """The key to ``direction_picture``: a disc whose colour at each point is the direction from its centre."""
    yy, xx = np.mgrid[-1:1:size * 1j, -1:1:size * 1j]  # rows grow downwards, as in an image
    return direction_picture(np.arctan2(yy, xx), (xx ** 2 + yy ** 2 <= 1).astype(float))


def show_gradient(gx: np.ndarray, gy: np.ndarray, magnitude: np.ndarray, direction: np.ndarray,
                  suptitle: str = "Sobel edge detection") -> plt.Figure:
    """Four pictures of an image's gradient: ``gx``, ``gy``, the magnitude, and the direction in colour.

    ``magnitude`` and ``direction`` are what lesson 2 computes from ``gx`` and ``gy``
    (``np.sqrt(gx**2 + gy**2)`` and ``np.arctan2(gy, gx)``); the direction picture
    (``direction_picture``) has its colour key, ``direction_wheel``, in its corner. ``gx`` and
    ``gy`` are drawn red (positive) and blue (negative), letting their 0.5% strongest values
    (often the zero-padded border) saturate.
    """
    arrays = [np.asarray(a, dtype=np.float64) for a in (gx, gy, magnitude, direction)]
    if len({a.shape for a in arrays}) != 1 or arrays[0].ndim != 2:
        raise ValueError(f"gx, gy, magnitude and direction must be 2-D arrays of one shape, got "
                         f"{[a.shape for a in arrays]}")
    gx, gy, magnitude, direction = arrays
    fig, axes = plt.subplots(2, 2, figsize=(12, 8))
    for ax, data, title in [(axes[0, 0], gx, "gx: Sobel x (vertical edges)"),
                            (axes[0, 1], gy, "gy: Sobel y (horizontal edges)")]:
        low, high = _colour_range(data, signed=True, robust=True)
        shown = ax.imshow(data, cmap="RdBu_r", vmin=low, vmax=high)
        fig.colorbar(shown, ax=ax, fraction=0.046, pad=0.04, label="brightness change")
        ax.set_title(title)
    shown = axes[1, 0].imshow(magnitude, cmap="gray_r", vmax=np.percentile(magnitude, 99))
    fig.colorbar(shown, ax=axes[1, 0], fraction=0.046, pad=0.04, label="edge strength")
    axes[1, 0].set_title("gradient magnitude (dark = strong edge)")
    axes[1, 1].imshow(direction_picture(direction, magnitude))
    axes[1, 1].set_title("gradient direction (colour) and strength (brightness)")
    inset = axes[1, 1].inset_axes([0.76, 0.02, 0.22, 0.33])
    inset.imshow(direction_wheel())
    inset.set_title("brighter towards", fontsize=7, color="white")
    inset.axis("off")
    for ax in axes.flat:
        ax.axis("off")
    fig.suptitle(suptitle)
    fig.tight_layout()
    return fig
