"""Pictures every lesson needs: a grid of images, and loss curves (lessons 1 to 7).

``image_grid`` makes the empty grid that ``show_images`` here, the kernel and feature-map
pictures of ``filter_plots`` and the top losses of ``interpret`` fill in. Every function
returns the matplotlib object it drew on, so a notebook can add a line or a title afterwards.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np


def to_display_array(image) -> np.ndarray:
    """Turn a torch tensor, PIL image or NumPy array into something ``imshow`` draws.

    Tensors are expected as ``C x H x W`` (PyTorch's order) or ``H x W``; arrays as
    ``H x W x C`` or ``H x W``. Single-channel images come back as ``H x W``.
    """
    if hasattr(image, "detach"):  # a torch tensor (checked by duck typing: this module needs no torch)
        image = image.detach().cpu().float().numpy()
        if image.ndim == 3:
            image = image.transpose(1, 2, 0)  # C x H x W -> H x W x C
    image = np.asarray(image)
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[:, :, 0]
    return image


def image_grid(count: int, ncols: int, width: float, height: float, extra_height: float = 0.0):
    """An empty figure with room for ``count`` pictures, ``ncols`` per row, each ``width`` x ``height`` inches.

    Returns ``(figure, axes)``, the axes in reading order with their ticks and frames hidden;
    ``extra_height`` (inches) leaves room for a title above the grid.
    """
    ncols = max(1, min(ncols, count))
    nrows = max(1, math.ceil(count / ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(width * ncols, height * nrows + extra_height), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    return fig, list(axes.flat)


def show_images(
    images: Sequence,
    titles: Sequence[str] | None = None,
    ncols: int = 4,
    size: float = 2.5,
    cmap: str = "gray",
    suptitle: str | None = None,
) -> plt.Figure:
    """Draw images in a grid, each with its title, and no axis ticks.

    Colour images are drawn as they are; grey ones with ``cmap``, each scaled to its own
    range so that a feature map with values from -3 to 5 is still visible.
    """
    images = list(images)
    fig, axes = image_grid(len(images), ncols, size, size, 0.4 if suptitle else 0.0)
    for i, ax in enumerate(axes[:len(images)]):
        array = to_display_array(images[i])
        if array.ndim == 3 and array.dtype != np.uint8:
            array = np.clip(array, 0, 1)  # imshow expects floats in 0..1 for colour
        ax.imshow(array, cmap=cmap if array.ndim == 2 else None)
        if titles is not None:
            ax.set_title(str(titles[i]), fontsize=10)
    if suptitle:
        fig.suptitle(suptitle)
    fig.tight_layout()
    return fig


def plot_losses(
    curves: Mapping[str, Sequence[float]],
    xlabel: str = "step",
    ylabel: str = "loss",
    title: str | None = None,
    log_y: bool = False,
    ax: plt.Axes | None = None,
) -> plt.Axes:
    """Plot named loss curves (e.g. ``{"train": [...], "validation": [...]}``) on one axis."""
    if ax is None:
        _, ax = plt.subplots(figsize=(6, 4))
    for name, values in curves.items():
        values = [float(v) for v in values]
        ax.plot(range(1, len(values) + 1), values, label=name)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if log_y:
        ax.set_yscale("log")
    if title:
        ax.set_title(title)
    if len(curves) > 1:
        ax.legend()
    ax.grid(alpha=0.3)
    return ax
