"""Loading pictures the careful way (lesson 7; the upload widget and batch prediction use it).

Photos from the real world are messy. A learner's folder may hold PNGs with transparency,
greyscale scans, phone pictures stored sideways with an EXIF "rotate me" tag, 16-bit TIFFs,
a 100-megapixel panorama, a half-copied JPEG, or a PDF that ended up there by mistake.
``load_image`` turns everything it can into an upright RGB picture and turns everything it
cannot into one ``BadImageError`` that names the file and the problem. ``folder_files`` lists
a folder's files without filtering them, so that a bad one is reported rather than skipped.
"""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

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


def to_rgb(image: Image.Image, background: tuple[int, int, int] = WHITE) -> Image.Image:
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
        return to_rgb(upright, background)
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
