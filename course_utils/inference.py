"""Using a trained classifier on new photos: load images safely, predict, report.

Photos from the real world are messy. A learner's folder may hold PNGs with transparency,
greyscale scans, phone pictures stored sideways with an EXIF "rotate me" tag, 16-bit TIFFs,
a 100-megapixel panorama, a half-copied JPEG, or a PDF that ended up there by mistake.
``load_image`` turns everything it can into an upright RGB picture and turns everything it
cannot into one ``BadImageError`` that names the file and the problem.

Then, from top to bottom: exporting a model (TorchScript, ONNX) and timing it; a ``Predictor``
that wraps a saved model with its validation preprocessing and class names (``predict``, a
top-k chart); batch prediction over a folder that reports bad files and classifies the rest;
and ``find_or_train_checkpoint``, which finds lesson 6's model or trains one in one call.
"""

from __future__ import annotations

import contextlib
import copy
import html
import io
import statistics
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.figure import Figure
from PIL import Image, ImageOps, UnidentifiedImageError
from torch import nn
from tqdm.auto import tqdm

from course_utils.checkpoint import Checkpoint, load_checkpoint
from course_utils.env import is_quick
from course_utils.pets import checkpoint_path, train_pets_model, valid_transform

MAX_PIXELS = 120_000_000   # above this, refuse: a "decompression bomb" or a photo far too big to need
DECODE_SIZE = 1024         # JPEGs are decoded at a reduced scale when this is enough
WHITE = (255, 255, 255)    # what transparent pixels are laid over


class BadImageError(ValueError):
    """A file could not be read as a picture. The message names the file and says why."""

    def __init__(self, name: str, reason: str):
        self.name, self.reason = name, reason
        super().__init__(f"{name}: {reason}")


def _open(source: str | Path | bytes, name: str) -> Image.Image:
    """Open ``source`` lazily (only the header is read) or raise ``BadImageError``."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
        if not data:
            raise BadImageError(name, "the file is empty (0 bytes)")
        file: io.BytesIO | Path = io.BytesIO(data)
    else:
        file = Path(source)
        if not file.is_file():
            raise BadImageError(name, "no such file")
        if file.stat().st_size == 0:
            raise BadImageError(name, "the file is empty (0 bytes)")
    try:
        with warnings.catch_warnings():  # load_image checks the size itself, with a clearer message
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            return Image.open(file)
    except UnidentifiedImageError:
        raise BadImageError(name, "not an image (or a format Pillow cannot read)") from None
    except Image.DecompressionBombError as e:  # Pillow refuses to open more than twice its own limit
        raise BadImageError(name, f"far too many pixels to decode safely ({str(e).split(',')[0]}); resize it") from None


def _to_rgb(image: Image.Image, background: tuple[int, int, int]) -> Image.Image:
    """Convert any Pillow mode to 8-bit RGB.

    Transparent pixels are laid over ``background`` (otherwise they would turn black);
    16- and 32-bit greyscale is scaled down to 0..255 instead of being clipped.
    """
    if image.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        array = np.asarray(image, dtype=np.float64)
        top = 65535.0 if image.mode.startswith("I;16") or array.max() > 255 else 255.0
        image = Image.fromarray(np.clip(array / top * 255.0, 0, 255).round().astype(np.uint8), mode="L")
    if image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "PA"):
        image = image.convert("RGBA")
        canvas = Image.new("RGBA", image.size, background + (255,))
        return Image.alpha_composite(canvas, image).convert("RGB")
    return image.convert("RGB")  # L, P, CMYK, YCbCr, 1, RGB


def load_image(
    source: str | Path | bytes,
    name: str | None = None,
    max_pixels: int = MAX_PIXELS,
    background: tuple[int, int, int] = WHITE,
) -> Image.Image:
    """Load a picture as an upright 8-bit RGB ``PIL.Image``, or raise ``BadImageError``.

    ``source`` is a path or the raw bytes of a file (e.g. from an upload widget); ``name``
    is used in error messages (defaults to the path). Animated GIFs give their first
    frame; EXIF orientation is applied; huge JPEGs are decoded at reduced resolution.
    """
    name = name or (str(source) if isinstance(source, (str, Path)) else "uploaded file")
    opened = _open(source, name)
    try:
        width, height = opened.size
        if width * height > max_pixels:
            raise BadImageError(name, f"{width} x {height} pixels is more than the {max_pixels:,} allowed "
                                      "(a decompression bomb, or far bigger than a classifier needs: resize it)")
        if opened.format == "JPEG":
            opened.draft("RGB", (DECODE_SIZE, DECODE_SIZE))  # let libjpeg decode at 1/2, 1/4 or 1/8 scale
        opened.seek(0)  # first frame of an animation
        upright = ImageOps.exif_transpose(opened)  # a loaded copy, turned upright
        return _to_rgb(upright, background)
    except BadImageError:
        raise
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as e:
        reason = str(e) or type(e).__name__
        if "truncated" in reason or "broken data stream" in reason:
            reason = f"the file is truncated or damaged ({reason})"
        raise BadImageError(name, f"could not decode the image: {reason}") from None
    finally:
        opened.close()  # the file, also when it was bad (what we return is a separate copy)


def folder_files(folder: str | Path) -> list[Path]:
    """Every visible file in ``folder`` (not recursive), sorted by name.

    Not filtered by suffix on purpose: a file that is not a picture is reported as such
    by batch prediction, rather than silently ignored.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder} is not a folder")
    return sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))


# --- Export: the same model, outside Python's PyTorch ------------------------------------------

def _cpu_copy(model: nn.Module) -> nn.Module:
    """A copy of ``model`` on the CPU in eval mode; the caller's model stays where it was (e.g. on the GPU)."""
    return copy.deepcopy(model).cpu().eval()


def export_torchscript(model: nn.Module, path: str | Path, image_size: int) -> Path:
    """Save ``model`` as TorchScript (traced on one example batch) for ``torch.jit.load``.

    TorchScript is deprecated in recent PyTorch in favour of ``torch.export``, but it is
    still what many deployment tools read, and tracing shows the idea: record the
    operations once, keep them without the Python code.
    """
    path = Path(path)
    example = torch.rand(1, 3, image_size, image_size)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # the deprecation notice, said above
        traced = torch.jit.trace(_cpu_copy(model), example)
        traced.save(str(path))
    return path


def export_onnx(model: nn.Module, path: str | Path, image_size: int) -> Path:
    """Save ``model`` as one ONNX file whose batch size is free, readable by ONNX Runtime."""
    path = Path(path)
    example = torch.rand(1, 3, image_size, image_size)
    model = _cpu_copy(model)
    try:  # the torch.export-based exporter (needs the onnxscript package)
        batch = torch.export.Dim("batch", min=1, max=1024)
        with contextlib.redirect_stdout(io.StringIO()):  # it narrates every step
            torch.onnx.export(model, (example,), str(path), dynamo=True, external_data=False,
                              input_names=["image"], output_names=["logits"], dynamic_shapes=({0: batch},))
    except ImportError:  # older set-ups without onnxscript: the classic exporter
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            torch.onnx.export(model, (example,), str(path), dynamo=False, input_names=["image"],
                              output_names=["logits"], dynamic_axes={"image": {0: "batch"}, "logits": {0: "batch"}})
    return path


def onnx_runner(path: str | Path, threads: int | None = None):
    """An ONNX Runtime session on the CPU, wrapped as ``run(batch_tensor) -> logits_tensor``.

    ``threads`` fixes how many CPU threads it uses (for a fair race with PyTorch's
    ``torch.get_num_threads()``); by default ONNX Runtime picks for itself.
    """
    import onnxruntime as ort  # imported here: only the export part of the course needs it

    options = ort.SessionOptions()
    if threads is not None:
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    return lambda batch: torch.from_numpy(session.run(None, {name: batch.cpu().numpy()})[0])


def max_difference(a: torch.Tensor, b: torch.Tensor) -> float:
    """The largest absolute difference between two outputs (e.g. PyTorch vs ONNX Runtime logits)."""
    return (a.float().cpu() - b.float().cpu()).abs().max().item()


# --- Latency: how long does one prediction take? -------------------------------------------------

def measure_latency(run, batch: torch.Tensor, warmup: int = 3, repeats: int = 10) -> dict[str, float]:
    """Time ``run(batch)``: median milliseconds per call and images per second.

    The first calls are slower (memory allocation, kernel selection, caches), so ``warmup``
    calls are made and thrown away. On a GPU the clock is read only after the GPU has
    finished (``torch.cuda.synchronize``), otherwise we would time the launch, not the work.
    """
    cuda = batch.device.type == "cuda"
    times = []
    with torch.inference_mode():
        for i in range(warmup + repeats):
            if cuda:
                torch.cuda.synchronize()
            start = time.perf_counter()
            run(batch)
            if cuda:
                torch.cuda.synchronize()
            if i >= warmup:
                times.append(time.perf_counter() - start)
    median = statistics.median(times)
    return {"median_ms": 1000 * median, "images_per_s": len(batch) / median}


# --- Predicting: the trained model, its validation preprocessing and its class names -------------
#
# Everything below is what lesson 7 does by hand first, packaged so that later cells (the folder,
# the upload widget, the benchmark) can reuse it in one line.

class Prediction(NamedTuple):
    """One photo's answer: the most likely class, its probability, and every class's probability."""

    label: str
    probability: float
    probabilities: torch.Tensor  # one per class, in the order of ``Predictor.class_names``; they sum to 1


class Predictor:
    """A trained classifier made ready for new photos.

    It holds three things that must travel together: the model (in eval mode, on ``device``),
    the class names (output ``i`` means ``class_names[i]``), and the preprocessing the model
    was validated with, ``pets.valid_transform(image_size, mean, std)`` with the numbers stored
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
        """A photo (path, bytes or PIL image) -> the ``3 x size x size`` tensor the model expects.

        Paths and bytes go through ``load_image`` (so a bad file raises ``BadImageError``); a PIL
        image is turned upright and into RGB the same way.
        """
        if isinstance(image, Image.Image):
            image = _to_rgb(ImageOps.exif_transpose(image), WHITE)
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

    def top_k(self, probabilities: torch.Tensor, k: int = 5) -> list[tuple[str, float]]:
        """The ``k`` most likely classes as ``(name, probability)``, most likely first."""
        values, indices = probabilities.topk(min(k, len(self.class_names)))
        return [(self.class_names[int(i)], float(v)) for v, i in zip(values, indices)]

    def show(self, image: str | Path | bytes | Image.Image, k: int = 5, title: str | None = None) -> plt.Figure:
        """Classify a photo and draw it beside its top-``k`` chart; returns the figure."""
        picture = image if isinstance(image, Image.Image) else load_image(image)
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
    left.set_title(f"{image.width} x {image.height} pixels", fontsize=9)
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
                  progress: bool = True) -> FolderResults:
    """Classify many files, ``batch_size`` at a time, keeping their order.

    Each batch is loaded one file at a time: a file that cannot be read (``BadImageError``)
    becomes a row that says why, and the other files of its batch are still classified in
    one forward pass. The progress bar counts files.
    """
    files = [Path(f) for f in files]
    rows: list[FileResult] = []
    with tqdm(total=len(files), desc="predicting", unit="img", disable=not progress) as bar:
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
                   progress: bool = True) -> FolderResults:
    """Classify every file in ``folder`` (see ``folder_files``); bad files are reported, not skipped."""
    return predict_files(predictor, folder_files(folder), batch_size, progress)


# --- Getting a model: lesson 6's checkpoint, or a new one in one call -----------------------------

def find_or_train_checkpoint(task: str = "breeds", quick: bool | None = None, train_if_missing: bool = True,
                             device: torch.device | str | None = None) -> Path:
    """The path of the pets classifier lesson 6 saved; if there is none, train one now (or say how).

    Lesson 7 may be opened first, e.g. on a fresh Colab runtime. Then the model is made with
    ``pets.train_pets_model(task)``, lesson 6's recipe in one call: about 10 seconds on a CPU
    in quick mode; in full mode a download of the pet photos (about 800 MB, once) and a few
    minutes of fine-tuning on a GPU. With ``train_if_missing=False`` it raises instead.
    """
    quick = is_quick() if quick is None else quick
    path = checkpoint_path(task, quick)
    if path.is_file():
        print(f"Found the saved model: {path}")
        return path
    call = f"course_utils.pets.train_pets_model({task!r})"
    cost = ("about 10 seconds on a CPU (quick mode: cartoon pets, a small ResNet-18 from scratch)" if quick else
            "full mode: downloads the Oxford-IIIT Pet photos once (about 800 MB), then fine-tunes a pretrained "
            "ResNet-34 for a few minutes on a GPU (much longer on a CPU)")
    if not train_if_missing:
        raise FileNotFoundError(f"No saved model at {path}. Run lesson 6, or make one with a single call, "
                                f"{call}: {cost}.")
    print(f"No saved model at {path} (lesson 6 saves one there).\nTraining one now with {call}: {cost}.")
    return train_pets_model(task, quick, device=device)


def load_torchscript(path: str | Path) -> torch.jit.ScriptModule:
    """Load a TorchScript file (made by ``export_torchscript``) on the CPU, quietly.

    ``torch.jit.load`` warns that TorchScript is deprecated; ``export_torchscript`` says why we
    still show it.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        return torch.jit.load(str(path), map_location="cpu").eval()
