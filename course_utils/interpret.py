"""What did the classifier get wrong? Confusion matrix, most-confused pairs, top losses (lesson 6).

A single accuracy number hides *which* mistakes a model makes. These helpers answer:

- ``confusion_matrix``: for every true class, how often each class was predicted;
- ``most_confused``: the (actual, predicted) pairs that go wrong most often;
- ``top_losses``: the individual images the model was most wrong (or least sure) about,
  which is where mislabelled photos and genuinely hard cases show up.

Everything starts from ``collect_predictions``, one pass over a data loader.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from course_utils.models import model_device
from course_utils.plots import image_grid, to_display_array
from course_utils.training import accuracy, batches


@dataclass
class Predictions:
    """One pass of a model over a data set, sample by sample, in loader order."""

    probs: torch.Tensor    # N x C softmax probabilities
    targets: torch.Tensor  # N true class indices
    losses: torch.Tensor   # N cross-entropy losses

    @property
    def predicted(self) -> torch.Tensor:
        return self.probs.argmax(dim=1)

    @property
    def accuracy(self) -> float:
        return float(accuracy(self.probs, self.targets))


@torch.inference_mode()
def collect_predictions(model: nn.Module, loader) -> Predictions:
    """Run ``model`` over every batch of ``loader`` (no shuffling, please) and keep per-sample results.

    The batches go to the device the model is on.
    """
    device = model_device(model)
    model.eval()
    probs, targets, losses = [], [], []
    for images, labels in batches(loader):
        logits = model(images.to(device)).float().cpu()
        probs.append(logits.softmax(dim=1))
        losses.append(F.cross_entropy(logits, labels, reduction="none"))
        targets.append(labels)
    return Predictions(torch.cat(probs), torch.cat(targets), torch.cat(losses))


def confusion_matrix(targets: Sequence[int], predicted: Sequence[int], num_classes: int,
                     normalize: bool = False) -> np.ndarray:
    """``cm[i, j]`` = how many samples of true class ``i`` were predicted as class ``j``.

    With ``normalize=True`` each row is divided by its total, so ``cm[i, j]`` is the
    fraction of class ``i`` predicted as ``j`` (rows with no samples stay zero).
    """
    t = np.asarray(targets, dtype=np.int64)
    p = np.asarray(predicted, dtype=np.int64)
    cm = np.bincount(t * num_classes + p, minlength=num_classes * num_classes).reshape(num_classes, num_classes)
    if not normalize:
        return cm
    totals = cm.sum(axis=1, keepdims=True)
    return np.divide(cm, totals, out=np.zeros(cm.shape), where=totals > 0)


def plot_confusion_matrix(cm: np.ndarray, class_names: Sequence[str], title: str = "Confusion matrix",
                          ax: plt.Axes | None = None) -> plt.Axes:
    """Draw a confusion matrix with labelled axes; numbers are written in the cells when it is small."""
    n = len(class_names)
    if ax is None:
        side = min(14, 2 + 0.35 * n) if n > 6 else 4.5
        _, ax = plt.subplots(figsize=(side, side))
    normalized = cm.dtype.kind == "f"
    image = ax.imshow(cm, cmap="Blues", vmin=0, vmax=1 if normalized else None)
    ax.figure.colorbar(image, ax=ax, fraction=0.046, pad=0.04,
                       label="fraction of the true class" if normalized else "number of images")
    # Many classes: vertical names. A few: slanted, so that long names like "Russian Blue" do not collide.
    if n > 6:
        ax.set_xticks(range(n), class_names, rotation=90)
    else:
        ax.set_xticks(range(n), class_names, rotation=45, ha="right", rotation_mode="anchor")
    ax.set_yticks(range(n), class_names)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("actual class")
    ax.set_title(title)
    if n <= 12:
        threshold = cm.max() / 2 if cm.size else 0
        for i in range(n):
            for j in range(n):
                text = f"{cm[i, j]:.2f}" if normalized else str(int(cm[i, j]))
                ax.text(j, i, text, ha="center", va="center", color="white" if cm[i, j] > threshold else "black")
    return ax


def most_confused(cm: np.ndarray, class_names: Sequence[str], top: int = 10,
                  min_count: int = 1) -> list[tuple[str, str, int]]:
    """The off-diagonal cells of a (count) confusion matrix, largest first: ``(actual, predicted, count)``."""
    pairs = [(class_names[i], class_names[j], int(cm[i, j]))
             for i in range(len(cm)) for j in range(len(cm)) if i != j and cm[i, j] >= min_count]
    return sorted(pairs, key=lambda pair: -pair[2])[:top]


def top_losses(predictions: Predictions, k: int = 9) -> list[int]:
    """Indices (in loader order) of the ``k`` samples with the highest loss."""
    k = min(k, len(predictions.losses))
    return predictions.losses.topk(k).indices.tolist()


def plot_top_losses(predictions: Predictions, dataset, class_names: Sequence[str], k: int = 9,
                    denormalize: Callable[[torch.Tensor], torch.Tensor] | None = None,
                    ncols: int = 3) -> plt.Figure:
    """Show the ``k`` worst images with predicted / actual class, loss and the probability of the prediction.

    ``dataset[i]`` must return ``(image_tensor, label)`` in the same order the predictions
    were collected; ``denormalize`` undoes the normalisation so the photo looks right.
    """
    indices = top_losses(predictions, k)
    fig, axes = image_grid(len(indices), ncols, 3.2, 3.5)
    for ax, i in zip(axes, indices):
        image, _ = dataset[i]
        if denormalize is not None:
            image = denormalize(image)
        ax.imshow(np.clip(to_display_array(image), 0, 1))
        predicted = int(predictions.predicted[i])
        actual = int(predictions.targets[i])
        ax.set_title(f"predicted: {class_names[predicted]}\nactual: {class_names[actual]}\n"
                     f"loss {predictions.losses[i]:.2f}, p={predictions.probs[i, predicted]:.2f}",
                     fontsize=9, color="black" if predicted == actual else "firebrick")
    fig.suptitle("Top losses: prediction / actual / loss / probability of the prediction")
    fig.tight_layout()
    return fig
