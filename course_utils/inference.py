"""Using a trained classifier on new photos: load images safely, predict, report.

Photos from the real world are messy. A learner's folder may hold PNGs with transparency,
greyscale scans, phone pictures stored sideways with an EXIF "rotate me" tag, 16-bit TIFFs,
a 100-megapixel panorama, a half-copied JPEG, or a PDF that ended up there by mistake.
``load_image`` turns everything it can into an upright RGB picture and turns everything it
cannot into one ``BadImageError`` that names the file and the problem.
"""

from __future__ import annotations

import contextlib
import io
import statistics
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError
from torch import nn

MAX_PIXELS = 120_000_000   # above this, refuse: a "decompression bomb" or a photo far too big to need
DECODE_SIZE = 1024         # JPEGs are decoded at a reduced scale when this is enough


class BadImageError(ValueError):
    """A file could not be read as a picture. The message names the file and says why."""

    def __init__(self, name: str, reason: str):
        self.name, self.reason = name, reason
        super().__init__(f"{name}: {reason}")


def _open(source: str | Path | bytes, name: str) -> Image.Image:
    """Open ``source`` lazily (only the header is read) or raise ``BadImageError``."""
    try:
        if isinstance(source, (bytes, bytearray, memoryview)):
            data = bytes(source)
            if not data:
                raise BadImageError(name, "the file is empty (0 bytes)")
            return Image.open(io.BytesIO(data))
        path = Path(source)
        if not path.is_file():
            raise BadImageError(name, "no such file")
        if path.stat().st_size == 0:
            raise BadImageError(name, "the file is empty (0 bytes)")
        return Image.open(path)
    except UnidentifiedImageError:
        raise BadImageError(name, "not an image (or a format Pillow cannot read)") from None


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
    background: tuple[int, int, int] = (255, 255, 255),
) -> Image.Image:
    """Load a picture as an upright 8-bit RGB ``PIL.Image``, or raise ``BadImageError``.

    ``source`` is a path or the raw bytes of a file (e.g. from an upload widget); ``name``
    is used in error messages (defaults to the path). Animated GIFs give their first
    frame; EXIF orientation is applied; huge JPEGs are decoded at reduced resolution.
    """
    name = name or (str(source) if isinstance(source, (str, Path)) else "uploaded file")
    image = _open(source, name)
    try:
        width, height = image.size
        if width * height > max_pixels:
            raise BadImageError(name, f"{width} x {height} pixels is more than the {max_pixels:,} allowed "
                                      "(a decompression bomb, or far bigger than a classifier needs: resize it)")
        if image.format == "JPEG":
            image.draft("RGB", (DECODE_SIZE, DECODE_SIZE))  # let libjpeg decode at 1/2, 1/4 or 1/8 scale
        image.seek(0)  # first frame of an animation
        image = ImageOps.exif_transpose(image)  # also loads the pixels
        return _to_rgb(image, background)
    except BadImageError:
        raise
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as e:
        reason = str(e) or type(e).__name__
        if "truncated" in reason or "broken data stream" in reason or "image file is truncated" in reason:
            reason = f"the file is truncated or damaged ({reason})"
        raise BadImageError(name, f"could not decode the image: {reason}") from None


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
        traced = torch.jit.trace(model.cpu().eval(), example)
        traced.save(str(path))
    return path


def export_onnx(model: nn.Module, path: str | Path, image_size: int) -> Path:
    """Save ``model`` as one ONNX file whose batch size is free, readable by ONNX Runtime."""
    path = Path(path)
    example = torch.rand(1, 3, image_size, image_size)
    model = model.cpu().eval()
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


def onnx_runner(path: str | Path):
    """An ONNX Runtime session on the CPU, wrapped as ``run(batch_tensor) -> logits_tensor``."""
    import onnxruntime as ort  # imported here: only the export part of the course needs it

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
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
