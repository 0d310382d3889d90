"""Pictures of kernels, arrays and feature maps (lessons 2, 3 and 5, and the kernel explorer).

Looking at numbers is how these lessons work: ``draw_array`` writes every number of a small
array into its cell, ``draw_kernel`` and ``show_kernels`` draw filters (positive weights red,
negative blue), ``show_feature_maps`` draws what filters produce, and ``show_filtered`` puts a
photo, a kernel and the result side by side. The grid they fill comes from ``plots.image_grid``.
"""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np

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
    """Draw a filtered grey image the way its kernel calls for (see ``kernel_kind``).

    Smoothing kernels keep brightness, so the result is clipped to 0..255 and drawn in
    grey. Edge kernels give signed answers centred on 0: red-white-blue. Anything else is
    drawn in grey from its own smallest to largest value. Edge and other results use a
    robust scale (the most extreme 0.5% saturate): the zero-padded border alone would
    otherwise set the scale and wash out the picture.
    """
    kind = kernel_kind(kernel)
    if kind == "smoothing":
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
