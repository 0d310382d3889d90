"""Loading pictures the careful way (lesson 7; the upload widget, batch prediction and the pets cache use it).

Photos from the real world are messy. A learner's folder may hold PNGs with transparency,
greyscale scans, phone pictures stored sideways with an EXIF "rotate me" tag, iPhone HEIC
photos, 16-bit TIFFs, a 100-megapixel panorama, a half-copied JPEG, or a PDF, a video or a
zip file that ended up there by mistake. ``load_image`` turns everything it can into an
upright RGB picture and everything it cannot into one ``BadImageError`` that names the file,
says what it really is (read from its first bytes, not from its name) and what to do.
``folder_files`` lists a folder's files and sub-folders without filtering them, so that
nothing is silently skipped.

**The budget.** Whatever file it is given, loading it here plus preparing it for the model
(``transforms.valid_transform``) plus predicting stays under **1.5 GB of memory above the
model** and **2 seconds** on a 2-core CPU (``benchmarks/bench_images.py`` measures the worst
cases we know of), with one exception that gets **3 seconds**: the biggest phone photo there
is, a 48-megapixel HEIC ("HEIF Max"). HEVC cannot be decoded at a reduced size, and decoding
it alone takes about 1.5 s of CPU time (libheif spreads an iPhone photo's tiles over both
cores); with preparing and predicting it takes 2.0-2.7 s of CPU time.
Three rules keep the budget, each applied before the step it protects:

1. **Pixels are counted before anything is decoded** (the header says how many there are):
   more than ``MAX_PIXELS`` is refused. JPEGs are counted after ``draft`` (libjpeg decodes
   them at 1/2, 1/4 or 1/8 scale for almost nothing), so a 100-megapixel phone JPEG is fine.
2. **Big pictures are shrunk right after decoding**, by a whole factor (``Image.reduce``),
   until the short side is just above ``DECODE_SIZE``: every later copy (upright turn,
   colour conversion, the figure) is small. Sixteen-bit pictures are turned into 8 bits in
   bands, never as one big array of floats.
3. **Extreme shapes are cut to at most ``MAX_ASPECT`` : 1**, keeping the middle. "Resize
   the short side to 256" would otherwise blow a 1 x 100,000 banner (a few hundred bytes
   of PNG) up to 25 billion pixels. We crop rather than refuse because the model only ever
   sees the central square of a photo (``valid_transform`` cuts it out), and the crop keeps
   1.5 times that square on either side: a real panorama is classified as before (its pixels
   land a fraction of a pixel apart after resizing, a few grey levels at most), only the
   picture drawn beside the answer is narrower (``describe_size`` says so).
"""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError, features

MAX_PIXELS = 64_000_000    # decoded pixels allowed: more is a "decompression bomb" or far more than a classifier needs
DECODE_SIZE = 1024         # big pictures are decoded/shrunk to a short side of at least this (the model needs 256)
MAX_ASPECT = 4             # longer than 4:1 (either way): keep the middle 4:1 part
WHITE = (255, 255, 255)    # what transparent pixels are laid over
HEAD_BYTES = 4096          # how much of a file is read to tell what it really is
HIGH_DEPTH = ("I;16", "I;16B", "I;16L", "I;16N", "I", "F")  # 16- and 32-bit greyscale modes

ORIENTATION = 0x0112       # the EXIF tag that says how a phone held the camera
ORIENTATION_KEYS = ("exif", "Raw profile type exif", "xmp", "XML:com.adobe.xmp")  # where Pillow finds it in .info
UPRIGHT = {                # EXIF orientation -> the turn that makes the picture upright (as ImageOps.exif_transpose)
    2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180, 4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE, 6: Image.Transpose.ROTATE_270, 7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}


class BadImageError(ValueError):
    """A file could not be read as a picture. The message names the file and says why."""

    def __init__(self, name: str, reason: str):
        self.name, self.reason = name, reason
        super().__init__(f"{name}: {reason}")


# --- What a file really is, from its first bytes ----------------------------------------------------

CONVERT = "save or export it as JPEG or PNG"
OPEN_AND_SAVE = "if it opens in an image viewer or editor, save a copy as JPEG or PNG and use that"
NOT_IMAGES = {  # kind -> the reason a learner reads
    "pdf": "a PDF document, not an image: export the page as PNG or JPEG, or take a screenshot of it",
    "svg": "an SVG drawing (vector graphics), not a photo Pillow can read: export it as PNG (a web browser or "
           "Inkscape can), or take a screenshot of it",
    "html": "a web page (HTML), not an image: the browser saved the page instead of the picture. Open the "
            "picture on its own and use 'Save image as...'",
    "text": "a text file, not an image",
    "zip": "a ZIP archive, not an image (Word, Excel and PowerPoint files are ZIP files too): unpack it and use "
           "the photos inside",
    "gzip": "a gzip-compressed file (for example a .tar.gz archive), not an image: unpack it first "
            "(tar -xzf, or your file manager) and use the photos inside",
    "tar": "a tar archive, not an image: unpack it first (tar -xf, or your file manager) and use the photos inside",
    "archive": "a compressed archive (7z, RAR, bzip2 or xz), not an image: unpack it first and use the photos inside",
    "video": "a video, not a photo: pause it where you like and take a screenshot, or export that frame as JPEG",
    "audio": "a sound file, not an image",
    "office": "an Office document or a Windows thumbnail cache (Thumbs.db), not an image",
    "program": "a program, not an image",
    "raw": "a camera RAW file, which Pillow cannot develop: export it as JPEG from the camera's app, Lightroom, "
           "darktable or RawTherapee (or in Python with the rawpy package)",
    "jxl": f"a JPEG XL picture, which Pillow cannot read: {CONVERT}",
}
FORMAT_NAMES = {"png": "PNG", "jpeg": "JPEG", "gif": "GIF", "webp": "WebP", "bmp": "BMP", "tiff": "TIFF",
                "heif": "HEIC/HEIF", "avif": "AVIF", "psd": "Photoshop (PSD)", "eps": "PostScript (EPS)"}
HEIF_BRANDS = {b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"hevm", b"hevs", b"mif1", b"msf1", b"mif2"}
AVIF_BRANDS = {b"avif", b"avis"}
AUDIO_BRANDS = {b"M4A ", b"M4B ", b"M4P ", b"F4A ", b"F4B "}
RAW_SUFFIXES = {".cr2", ".cr3", ".crw", ".nef", ".nrw", ".arw", ".srf", ".sr2", ".dng", ".orf", ".rw2", ".raf",
                ".pef", ".srw", ".erf", ".3fr", ".kdc", ".mrw", ".x3f", ".rwl", ".iiq"}


def _iso_media_kind(head: bytes) -> str | None:
    """HEIF, AVIF, MP4/QuickTime video or audio, from an ISO media file's ``ftyp`` box."""
    if head[4:8] in (b"moov", b"mdat", b"wide", b"free", b"skip", b"pnot"):
        return "video"  # an old QuickTime .mov without an ftyp box
    if head[4:8] != b"ftyp":
        return None
    size = int.from_bytes(head[:4], "big")
    brands = [head[8:12]] + [head[i:i + 4] for i in range(16, min(max(size, 16), len(head)), 4)]
    if brands[0] == b"crx ":
        return "raw"  # Canon CR3
    if any(b in AVIF_BRANDS for b in brands[:1]) or (brands[0] in HEIF_BRANDS and AVIF_BRANDS & set(brands)):
        return "avif"
    if any(b in HEIF_BRANDS for b in brands):
        return "heif"
    return "audio" if brands[0] in AUDIO_BRANDS else "video"


def sniff(head: bytes) -> str | None:
    """What a file's first bytes say it is: ``"png"``, ``"heif"``, ``"pdf"``, ``"video"``, ... or ``None``.

    File names lie (a PNG saved as ``.jpg``, a web page saved as ``cat.jpg``), first bytes
    rarely do: most formats start with a fixed signature ("magic number").
    """
    signatures = [
        (b"\x89PNG\r\n\x1a\n", "png"), (b"\xff\xd8\xff", "jpeg"), (b"GIF8", "gif"), (b"BM", "bmp"),
        (b"8BPS", "psd"), (b"%PDF", "pdf"), (b"%!PS", "eps"), (b"\xc5\xd0\xd3\xc6", "eps"),
        (b"PK\x03\x04", "zip"), (b"PK\x05\x06", "zip"), (b"\x1f\x8b", "gzip"), (b"7z\xbc\xaf\x27\x1c", "archive"),
        (b"Rar!\x1a\x07", "archive"), (b"\xfd7zXZ\x00", "archive"), (b"BZh", "archive"),
        (b"\x1a\x45\xdf\xa3", "video"), (b"FLV", "video"), (b"\x00\x00\x01\xba", "video"),
        (b"\x00\x00\x01\xb3", "video"),
        (b"ID3", "audio"), (b"fLaC", "audio"), (b"OggS", "audio"),
        (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", "office"), (b"MZ", "program"), (b"\x7fELF", "program"),
        (b"\xff\x0a", "jxl"), (b"\x00\x00\x00\x0cJXL \r\n\x87\n", "jxl"),
        (b"FUJIFILMCCD-RAW", "raw"), (b"IIRO", "raw"), (b"IIRS", "raw"), (b"MMOR", "raw"), (b"IIU\x00", "raw"),
    ]
    for magic, kind in signatures:
        if head.startswith(magic):
            return kind
    if head[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):
        return "raw" if head[8:10] == b"CR" else "tiff"  # Canon CR2 is a TIFF with "CR" after the header
    if head[:4] == b"RIFF":
        return {b"WEBP": "webp", b"AVI ": "video", b"WAVE": "audio"}.get(head[8:12])
    if len(head) > 262 and head[257:262] == b"ustar":
        return "tar"
    if len(head) >= 188 * 2 and head[0] == head[188] == 0x47:
        return "video"  # an MPEG transport stream (.ts, .mts from camcorders)
    return _iso_media_kind(head) or _text_kind(head)


def _text_kind(head: bytes) -> str | None:
    """``"svg"``, ``"html"`` or ``"text"`` for text, ``None`` for binary data."""
    if b"\x00" in head:
        return None
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError as e:
        if e.start < len(head) - 4:  # not just a character cut in half at the end of the head
            return None
        text = head[:e.start].decode("utf-8")
    lowered = text.lstrip("\ufeff \t\r\n").lower()
    if "<svg" in lowered:
        return "svg"
    if lowered.startswith(("<!doctype html", "<html")) or "<html" in lowered[:512]:
        return "html"
    return "text"


def _pillow_reads_avif() -> bool:
    """Whether Pillow itself reads AVIF (its own AVIF module came with Pillow 11.3)."""
    try:
        return bool(features.check_module("avif"))
    except ValueError:  # "Unknown module": a Pillow before 11.3
        return False


def _heif_opener() -> bool:
    """Teach Pillow to read HEIC/HEIF photos (and AVIF on old Pillow) when pillow-heif is installed."""
    try:
        import pillow_heif
    except ImportError:
        return False
    if "HEIF" not in Image.OPEN:
        pillow_heif.register_heif_opener()
        if not _pillow_reads_avif() and hasattr(pillow_heif, "register_avif_opener"):
            pillow_heif.register_avif_opener()  # pillow-heif before 1.0 also read AVIF
    return True


def _unreadable(kind: str | None, name: str = "") -> str:
    """The reason for a file, sniffed as ``kind``, that Pillow could not open (``name`` is its file name)."""
    if kind in ("text", "gzip") and Path(name).suffix.lower() in (".svg", ".svgz"):
        return NOT_IMAGES["svg"]  # an SVG whose <svg> tag is further in than we look, or a compressed one
    if kind in NOT_IMAGES:
        return NOT_IMAGES[kind]
    if kind == "heif" and "HEIF" not in Image.OPEN:  # pillow-heif is not installed
        return ("an HEIC/HEIF photo (the iPhone's own format); reading it needs the pillow-heif package: run "
                "pip install pillow-heif (in a notebook: %pip install pillow-heif) and try again, or convert it to "
                "JPEG (iPhone: Settings > Camera > Formats > Most Compatible; Mac: Preview > File > Export)")
    if kind == "avif" and "AVIF" not in Image.OPEN:  # a Pillow before 11.3, or one built without libavif
        return (f"an AVIF picture, which this Pillow ({Image.__version__}) cannot read: Pillow 11.3 or later can "
                f"(pip install -U pillow, then restart the kernel), or {CONVERT}")
    if kind in FORMAT_NAMES:
        return (f"it starts like a {FORMAT_NAMES[kind]} file, but it is damaged or truncated (cut off), or a kind "
                f"of {FORMAT_NAMES[kind]} that Pillow cannot read: {OPEN_AND_SAVE}")
    return f"not an image, or a format Pillow cannot read: {OPEN_AND_SAVE}"


def _open(source: str | Path | bytes, name: str) -> tuple[Image.Image, str | None]:
    """Open ``source`` lazily (only the header is read) and sniff it, or raise ``BadImageError``."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
        if not data:
            raise BadImageError(name, "the file is empty (0 bytes)")
        file: io.BytesIO | Path = io.BytesIO(data)
        head = data[:HEAD_BYTES]
    else:
        file = Path(source)
        if file.is_dir():
            raise BadImageError(name, "a folder, not a photo: to classify the photos in it, use "
                                      "predict_folder(predictor, folder), which does not look into sub-folders")
        if not file.exists():
            raise BadImageError(name, "no such file")
        if not file.is_file():
            raise BadImageError(name, "not an ordinary file (a device, a socket or a pipe)")
        try:
            with file.open("rb") as f:
                head = f.read(HEAD_BYTES)
        except OSError as e:
            raise BadImageError(name, f"could not be read: {e.strerror or e}") from None
        if not head:
            raise BadImageError(name, "the file is empty (0 bytes)")
    kind = sniff(head)
    if kind == "tiff" and Path(name).suffix.lower() in RAW_SUFFIXES:
        kind = "raw"  # Nikon, Sony, Pentax and Adobe DNG RAW files are TIFFs inside
    if kind in NOT_IMAGES and kind != "text":  # plain text may still be a picture Pillow reads (XPM, XBM, PPM)
        raise BadImageError(name, _unreadable(kind, name))
    if kind in ("heif", "avif"):
        _heif_opener()
    try:
        with warnings.catch_warnings():  # load_image checks the size itself, with a clearer message
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            return Image.open(file), kind
    except UnidentifiedImageError:
        raise BadImageError(name, _unreadable(kind, name)) from None
    except Image.DecompressionBombError as e:  # Pillow refuses to open more than twice its own limit
        raise BadImageError(name, f"far too many pixels to decode safely ({str(e).split(',')[0]}); resize it") from None
    except Exception as e:  # a damaged header can make a Pillow plugin raise almost anything
        raise BadImageError(name, f"{_unreadable(kind, name)} ({type(e).__name__}: {e})") from None


# --- Turning a decoded picture into what the model and the learner see ------------------------------

BAND_PIXELS = 4_000_000    # big pictures are converted and shrunk this many pixels at a time


def _grey_top(image: Image.Image) -> float:
    """The value that becomes white when 16- or 32-bit greyscale is made 8-bit: 65535, or 255 for 8-bit values."""
    return 65535.0 if image.mode.startswith("I;16") or image.getextrema()[1] > 255 else 255.0


def _to_8bit_grey(image: Image.Image, top: float | None = None) -> Image.Image:
    """16- and 32-bit greyscale (modes I;16, I, F) -> 8-bit ``L``, scaled to 0..255 instead of clipped.

    Done in bands of rows, so that a big picture never exists as one big array of floats.
    """
    top = _grey_top(image) if top is None else top
    grey = Image.new("L", image.size)
    rows = max(1, BAND_PIXELS // max(1, image.width))
    for y in range(0, image.height, rows):
        band = np.asarray(image.crop((0, y, image.width, min(y + rows, image.height))), dtype=np.float64)
        grey.paste(Image.fromarray(np.clip(band / top * 255.0, 0, 255).round().astype(np.uint8)), (0, y))
    return grey


def to_rgb(image: Image.Image, background: tuple[int, int, int] = WHITE) -> Image.Image:
    """Convert any Pillow mode to 8-bit RGB.

    Transparent pixels are laid over ``background`` (otherwise they would turn black);
    16- and 32-bit greyscale is scaled down to 0..255 instead of being clipped.
    """
    if image.mode in HIGH_DEPTH:
        image = _to_8bit_grey(image)
    if image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "PA"):
        image = image.convert("RGBA")
        canvas = Image.new("RGBA", image.size, background + (255,))
        return Image.alpha_composite(canvas, image).convert("RGB")
    return image.convert("RGB")  # L, P, CMYK, YCbCr, 1, RGB


def shrink(image: Image.Image, decode_size: int = DECODE_SIZE) -> Image.Image:
    """Shrink by a whole factor while the short side stays at least ``decode_size`` (unchanged if small).

    ``Image.reduce`` averages blocks of ``factor x factor`` pixels: fast, and every later copy
    is small. It works through the picture in bands of rows, because ``reduce`` copies the whole
    picture first for some modes (RGBA), and palette, 1-bit and 16-bit pictures must be
    converted before averaging (averaging palette numbers would mix up colours): in bands,
    only one band is ever copied at a time.
    """
    factor = min(image.size) // decode_size
    if factor < 2:
        return image
    top = _grey_top(image) if image.mode in HIGH_DEPTH else None
    rows = factor * max(1, BAND_PIXELS // (factor * image.width))  # a whole number of blocks
    out = None
    for y in range(0, image.height, rows):
        band = image.crop((0, y, image.width, min(y + rows, image.height)))
        if band.mode == "P":
            band = band.convert("RGBA" if "transparency" in band.info else "RGB")
        elif band.mode == "PA":
            band = band.convert("RGBA")
        elif band.mode == "1":
            band = band.convert("L")
        elif band.mode in HIGH_DEPTH:
            band = _to_8bit_grey(band, top)
        small = band.reduce(factor)
        if out is None:
            out = Image.new(small.mode, (-(-image.width // factor), -(-image.height // factor)))
            out.info = dict(image.info)
        out.paste(small, (0, y // factor))
    return out


def crop_to_aspect(image: Image.Image, max_aspect: float = MAX_ASPECT) -> Image.Image:
    """The middle part of ``image``, at most ``max_aspect`` times as long as it is wide (unchanged if it is)."""
    width, height = image.size
    if width > max_aspect * height:
        keep = max(1, round(max_aspect * height))
        left = (width - keep) // 2
        return image.crop((left, 0, left + keep, height))
    if height > max_aspect * width:
        keep = max(1, round(max_aspect * width))
        top = (height - keep) // 2
        return image.crop((0, top, width, top + keep))
    return image


def prepare_picture(image: Image.Image, background: tuple[int, int, int] = WHITE,
                    decode_size: int = DECODE_SIZE) -> Image.Image:
    """A decoded picture -> an upright 8-bit RGB copy that is safe to resize (rules 2 and 3 above).

    Shrunk while its short side stays at least ``decode_size``, cut to ``MAX_ASPECT`` : 1,
    turned upright by its EXIF orientation (as ``PIL.ImageOps.exif_transpose`` does, and like it
    leaving no orientation tag in the copy, so that preparing a prepared picture again, as
    ``Predictor.predict`` does with what ``load_image`` gave, turns nothing a second time), and
    converted to RGB with ``to_rgb``. ``load_image`` calls this after decoding a file; the
    predictor calls it for a PIL image it is given directly. A cut picture remembers the
    size of the whole (at the same scale) in ``info["cropped_from"]`` (see ``describe_size``).
    """
    turn = UPRIGHT.get(image.getexif().get(ORIENTATION, 1))  # read first: TIFFs keep it in the file itself
    shrunk = shrink(image, decode_size)
    cropped = crop_to_aspect(shrunk)
    upright = cropped.transpose(turn) if turn is not None else cropped
    rgb = to_rgb(upright, background)  # always a new picture, never the caller's own
    for key in ORIENTATION_KEYS:  # it is upright now: a second pass (predict on it) must not turn it again
        rgb.info.pop(key, None)
    if cropped.size != shrunk.size:  # the whole, at the same scale and upright too
        rgb.info["cropped_from"] = shrunk.size if upright.size == cropped.size else shrunk.size[::-1]
    return rgb


def describe_size(image: Image.Image) -> str:
    """``"640 x 480 pixels"``, and for a picture cut to ``MAX_ASPECT`` : 1 which picture it is the middle of."""
    text = f"{image.width} x {image.height} pixels"
    if "cropped_from" in image.info:
        width, height = image.info["cropped_from"]
        text += f", the middle of {width} x {height}"
    return text


def load_image(
    source: str | Path | bytes,
    name: str | None = None,
    max_pixels: int = MAX_PIXELS,
    background: tuple[int, int, int] = WHITE,
    decode_size: int = DECODE_SIZE,
) -> Image.Image:
    """Load a picture as an upright 8-bit RGB ``PIL.Image``, or raise ``BadImageError``.

    ``source`` is a path or the raw bytes of a file (e.g. from an upload widget); ``name``
    is used in error messages (defaults to the path). Animations (GIF, WebP) give their
    first frame; EXIF orientation is applied; pictures bigger than needed are decoded or shrunk to a
    short side of at least ``decode_size``; shapes beyond ``MAX_ASPECT`` : 1 keep their middle.
    HEIC/HEIF photos need the pillow-heif package (the message says so when it is missing).
    """
    name = name or (str(source) if isinstance(source, (str, Path)) else "uploaded file")
    opened, kind = _open(source, name)
    try:
        width, height = opened.size
        if opened.format == "TIFF" and 50706 in getattr(opened, "tag_v2", {}):  # the DNGVersion tag
            raise BadImageError(name, NOT_IMAGES["raw"])
        opened.draft("RGB", (decode_size, decode_size))  # JPEGs only: libjpeg decodes at 1/2, 1/4 or 1/8 scale
        decoded = opened.size[0] * opened.size[1]
        if decoded > max_pixels:
            raise BadImageError(name, f"{width} x {height} pixels is more than the {max_pixels:,} allowed "
                                      "(a decompression bomb, or far bigger than a classifier needs: resize it)")
        opened.load()
        return prepare_picture(opened, background, decode_size)
    except BadImageError:
        raise
    except Exception as e:  # whatever a damaged file makes a decoder raise, the file is the problem
        reason = str(e) or type(e).__name__
        if "truncated" in reason or "broken data stream" in reason or isinstance(e, EOFError):
            reason = f"the file is truncated or damaged ({reason}): copy or download it again"
        elif kind in FORMAT_NAMES and kind not in ("png", "jpeg", "gif", "webp", "bmp", "tiff"):
            reason = f"{reason}; it is a {FORMAT_NAMES[kind]} file: {CONVERT}"
        else:
            reason = f"{reason}; {OPEN_AND_SAVE}"
        raise BadImageError(name, f"could not decode the image: {reason}") from None
    finally:
        opened.close()  # the file, also when it was bad (what we return is a separate copy)


def folder_files(folder: str | Path) -> list[Path]:
    """Every visible file and sub-folder in ``folder`` (not recursive), sorted by name.

    Not filtered on purpose: a file that is not a picture is reported as such by batch
    prediction, rather than silently ignored. Sub-folders are listed too (batch prediction
    reports each as "a folder"), so a learner whose photos sit in ``cats/`` and ``dogs/``
    sees where they are instead of an empty table. Hidden names (``.DS_Store``, ``.ipynb_checkpoints``)
    are left out.
    """
    folder = Path(folder)
    if folder.is_file():
        raise FileNotFoundError(f"{folder} is a file, not a folder: to classify one photo, use predictor.predict "
                                "or predictor.show with its path")
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder} is not a folder (no such folder)")
    return sorted(p for p in folder.iterdir() if not p.name.startswith("."))
