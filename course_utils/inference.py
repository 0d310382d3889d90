"""Using a trained classifier on new photos: predict one, a batch, a folder (lesson 7).

A ``Predictor`` holds what must travel together: the model in eval mode, its class names and
the preprocessing it was validated with. Lesson 7 first writes the steps out by hand (load,
prepare, add a batch dimension, run in inference mode, softmax), then uses this to predict in
one line. ``plot_top_k`` and ``prediction_figure`` draw the answers; ``predict_files`` and
``predict_folder`` classify many files in batches, reporting unreadable files (and sub-folders)
as rows of the table instead of stopping. Every photo goes through ``images.load_image``, so
each one costs a bounded amount of memory and time whatever the file is.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

import matplotlib.pyplot as plt
import torch
from matplotlib.figure import Figure
from PIL import Image
from torch import nn
from tqdm.auto import tqdm

from course_utils.checkpoint import Checkpoint, load_checkpoint
from course_utils.images import BadImageError, describe_size, folder_files, load_image, prepare_picture
from course_utils.transforms import valid_transform


class Prediction(NamedTuple):
    """One photo's answer: the most likely class, its probability, and every class's probability."""

    label: str
    probability: float
    probabilities: torch.Tensor  # one per class, in the order of ``Predictor.class_names``; they sum to 1


class Predictor:
    """A trained classifier made ready for new photos.

    It holds three things that must travel together: the model (in eval mode, on ``device``),
    the class names (output ``i`` means ``class_names[i]``), and the preprocessing the model
    was validated with, ``transforms.valid_transform(image_size, mean, std)`` with the numbers stored
    in the checkpoint. Using that same function, not a copy of it, is what guarantees that a
    new photo is prepared exactly like the validation photos were.
    """

    def __init__(self, model: nn.Module, meta: Checkpoint, device: torch.device | str = "cpu"):
        self.device = torch.device(device)
        self.model = model.to(self.device).eval()
        self.meta = meta
        self.class_names = list(meta.class_names)
        self.transform = valid_transform(meta.image_size, meta.mean, meta.std)

    @classmethod
    def from_checkpoint(cls, path: str | Path, device: torch.device | str = "cpu") -> Predictor:
        """Load a checkpoint safely (``weights_only=True``, see ``course_utils.checkpoint``) and wrap it."""
        model, meta = load_checkpoint(path, device)
        return cls(model, meta, device)

    def preprocess(self, image: str | Path | bytes | Image.Image) -> torch.Tensor:
        """A photo (path, bytes or PIL image) -> the ``3 x image_size x image_size`` tensor the model expects.

        Paths and bytes go through ``load_image`` (so a bad file raises ``BadImageError``); a PIL
        image goes through the same ``images.prepare_picture``: turned upright, into RGB, and
        safe to resize whatever its size and shape (see ``images``' budget).
        """
        if isinstance(image, Image.Image):
            image = prepare_picture(image)
        else:
            image = load_image(image)
        return self.transform(image)

    def probabilities(self, batch: torch.Tensor) -> torch.Tensor:
        """Class probabilities (``N x classes``, on the CPU) for a preprocessed batch ``N x 3 x H x W``.

        ``torch.inference_mode()`` tells PyTorch not to record anything for backpropagation:
        less memory and a little faster. Softmax turns the model's scores into probabilities.
        """
        with torch.inference_mode():
            probs = self.model(batch.to(self.device)).float().softmax(dim=1).cpu()
        return probs.clone()  # a normal tensor again, usable outside inference mode

    def to_prediction(self, probs: torch.Tensor) -> Prediction:
        """A vector of class probabilities -> ``Prediction(label, probability, probabilities)``."""
        best = int(probs.argmax())
        return Prediction(self.class_names[best], float(probs[best]), probs)

    def predict(self, image: str | Path | bytes | Image.Image) -> Prediction:
        """Classify one photo: ``label, probability, probabilities = predictor.predict("my_cat.jpg")``."""
        return self.to_prediction(self.probabilities(self.preprocess(image).unsqueeze(0))[0])

    def predict_batch(self, images: Sequence[str | Path | bytes | Image.Image]) -> list[Prediction]:
        """Classify several photos in one forward pass (a bad file raises; see ``predict_files``)."""
        batch = torch.stack([self.preprocess(image) for image in images])
        return [self.to_prediction(probs) for probs in self.probabilities(batch)]

    def show(self, image: str | Path | bytes | Image.Image, k: int = 5, title: str | None = None) -> plt.Figure:
        """Classify a photo and draw it beside its top-``k`` chart; returns the figure."""
        picture = prepare_picture(image) if isinstance(image, Image.Image) else load_image(image)
        label, probability, probs = self.predict(picture)
        name = Path(image).name if isinstance(image, (str, Path)) else "the photo"
        return prediction_figure(picture, probs, self.class_names, k,
                                 title or f"{name}: {label} ({probability:.0%})")


def plot_top_k(probabilities: torch.Tensor, class_names: Sequence[str], k: int = 5, ax: plt.Axes | None = None,
               title: str | None = None) -> plt.Axes:
    """A horizontal bar chart of the ``k`` most likely classes, the most likely on top, in percent."""
    ax = ax or plt.gca()
    values, indices = probabilities.float().topk(min(k, len(class_names)))
    names = [class_names[int(i)] for i in indices][::-1]
    percents = (100 * values).tolist()[::-1]
    bars = ax.barh(names, percents, color=["#bbbbbb"] * (len(names) - 1) + ["#1f77b4"])
    ax.bar_label(bars, labels=[f"{p:.1f}%" for p in percents], padding=3)
    ax.set_xlim(0, 125)  # room for a label as long as "100.0%"
    ax.set_xticks(range(0, 101, 20))
    ax.set_xlabel("probability (%)")
    ax.set_title(title or f"Top {len(names)} of {len(class_names)} classes")
    return ax


def prediction_figure(image: Image.Image, probabilities: torch.Tensor, class_names: Sequence[str], k: int = 5,
                      title: str | None = None, fig: Figure | None = None) -> Figure:
    """The photo on the left, its top-``k`` chart on the right.

    Drawn on ``fig`` when given (the upload widget passes a bare ``Figure`` to turn into a
    PNG), else on a new pyplot figure that the notebook shows.
    """
    fig = fig or plt.figure(figsize=(9, 3.2))
    left, right = fig.subplots(1, 2, gridspec_kw={"width_ratios": [1, 1.3]})
    left.imshow(image)
    left.set_title(describe_size(image), fontsize=9)
    left.axis("off")
    plot_top_k(probabilities, class_names, k, ax=right)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


# --- Many photos: a folder, in batches, with bad files reported ------------------------------------

class FileResult(NamedTuple):
    """One row of a folder's results: a prediction, or the reason the file could not be read."""

    path: Path
    label: str | None
    probability: float | None
    probabilities: torch.Tensor | None
    problem: str | None


class FolderResults:
    """The results of ``predict_files`` / ``predict_folder``, in file order, as a small table."""

    columns = ("file", "prediction", "probability", "problem")

    def __init__(self, rows: list[FileResult]):
        self.rows = rows

    @property
    def predicted(self) -> list[FileResult]:
        return [row for row in self.rows if row.problem is None]

    @property
    def bad(self) -> list[FileResult]:
        return [row for row in self.rows if row.problem is not None]

    def _cells(self, row: FileResult) -> tuple[str, str, str, str]:
        if row.problem is not None:
            return row.path.name, "-", "-", row.problem
        return row.path.name, row.label, f"{row.probability:.1%}", ""

    def table(self) -> str:
        """The results as plain text, one line per file."""
        cells = [self.columns] + [self._cells(row) for row in self.rows]
        widths = [max(len(line[i]) for line in cells) for i in range(3)]
        return "\n".join("  ".join(c.ljust(w) for c, w in zip(line[:3], widths)) + "  " + line[3]
                         for line in cells).rstrip()

    def __len__(self) -> int:
        return len(self.rows)

    def __repr__(self) -> str:
        return self.table()

    def _repr_html_(self) -> str:
        head = "".join(f"<th style='text-align:left'>{c}</th>" for c in self.columns)
        body = "".join("<tr>" + "".join(f"<td style='text-align:left'>{html.escape(c)}</td>" for c in self._cells(row))
                       + "</tr>" for row in self.rows)
        caption = f"{len(self.predicted)} predicted, {len(self.bad)} could not be read"
        return f"<table><caption>{caption}</caption><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def predict_files(predictor: Predictor, files: Sequence[str | Path], batch_size: int = 32,
                  quiet: bool = False) -> FolderResults:
    """Classify many files, ``batch_size`` at a time, keeping their order.

    Each batch is loaded one file at a time: a file that cannot be read (``BadImageError``)
    becomes a row that says why, and the other files of its batch are still classified in
    one forward pass. The progress bar counts files.
    """
    files = [Path(f) for f in files]
    rows: list[FileResult] = []
    with tqdm(total=len(files), desc="predicting", unit="img", disable=quiet) as bar:
        for start in range(0, len(files), batch_size):
            chunk = files[start:start + batch_size]
            slots: list[FileResult | None] = []
            tensors, positions = [], []
            for path in chunk:
                try:
                    tensors.append(predictor.preprocess(path))
                    positions.append(len(slots))
                    slots.append(None)  # filled in after the forward pass
                except BadImageError as e:
                    slots.append(FileResult(path, None, None, None, e.reason))
            if tensors:
                for position, probs in zip(positions, predictor.probabilities(torch.stack(tensors))):
                    label, probability, _ = predictor.to_prediction(probs)
                    slots[position] = FileResult(chunk[position], label, probability, probs, None)
            rows += slots
            bar.update(len(chunk))
    return FolderResults(rows)


def predict_folder(predictor: Predictor, folder: str | Path, batch_size: int = 32,
                   quiet: bool = False) -> FolderResults:
    """Classify every file in ``folder`` (see ``folder_files``); bad files and sub-folders are reported, not skipped."""
    return predict_files(predictor, folder_files(folder), batch_size, quiet)
