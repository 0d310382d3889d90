"""A small stand-in for the Oxford-IIIT Pet download and the ImageNet weights (tests and the rehearsal only).

The full-mode rehearsal (``make rehearsal``, ``tests/rehearsal/run.py``) runs every lesson the way a
learner with internet does, on a machine without it. It needs two things the internet would give:

1. **The pet photos**: ``build_archives(folder)`` writes ``images.tar.gz`` and ``annotations.tar.gz``
   laid out and named like the real ones (``images/<id>.jpg``; ``annotations/list.txt`` with the
   real six header lines, ``trainval.txt``, ``test.txt``, ``trimaps/``, ``xmls/``, ``README``), with
   all 37 breeds under their real names and real class, species and breed ids, but only
   ``TRAINVAL_PER_BREED + TEST_PER_BREED`` photos per breed. The photos are photo-sized
   (500 x 375 pixels and the like) and photo-like (smooth light, texture, grain), so decoding
   them costs what decoding the real ones costs, and they carry the real archive's oddities
   (``ODDITIES``): PNG, GIF and RGBA files named ``.jpg``, a CMYK JPEG, a greyscale JPEG, a JPEG
   that libjpeg warns about, a photo rotated by its EXIF tag, stray ``.mat`` files in ``images/``
   and a photo that no list names.
2. **ImageNet weights**: ``write_weight_standins(torch_home, archs)`` saves, for each architecture,
   the randomly initialised weights of ``torchvision.models.get_model(arch, weights=None)`` under
   the file name torchvision's download would have (``$TORCH_HOME/hub/checkpoints/<name>``). A
   file already in that cache is used without a download and without a hash check, so
   ``models.build_resnet(pretrained=True)`` takes its "weights available" branch. The weights
   are random: what the lessons print about them is not a result (the rehearsal says so).

    python tests/rehearsal/standin.py OUT_FOLDER     # write the two archives there and print their md5s
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import sys
import tarfile
import warnings
from collections.abc import Iterable
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from course_utils.pets_prep import LIST_HEADER  # noqa: E402  (the real list.txt's header lines)

# The 37 breeds in the real list.txt's CLASS-ID order (alphabetical, ignoring case). As in the
# real file names, cat breeds are Capitalised and dog breeds are not; SPECIES is 1 for cats and
# 2 for dogs, and BREED ID counts the breeds of each species in the same order (cats 1-12,
# dogs 1-25). torchvision's OxfordIIITPet reads the names from the file names and the class
# from CLASS-ID, so "american_pit_bull_terrier" becomes "American Pit Bull Terrier".
BREEDS = (
    "Abyssinian", "american_bulldog", "american_pit_bull_terrier", "basset_hound", "beagle", "Bengal",
    "Birman", "Bombay", "boxer", "British_Shorthair", "chihuahua", "Egyptian_Mau", "english_cocker_spaniel",
    "english_setter", "german_shorthaired", "great_pyrenees", "havanese", "japanese_chin", "keeshond",
    "leonberger", "Maine_Coon", "miniature_pinscher", "newfoundland", "Persian", "pomeranian", "pug",
    "Ragdoll", "Russian_Blue", "saint_bernard", "samoyed", "scottish_terrier", "shiba_inu", "Siamese",
    "Sphynx", "staffordshire_bull_terrier", "wheaten_terrier", "yorkshire_terrier",
)
TRAINVAL_PER_BREED = 3   # photos <breed>_1 .. _3 are in trainval.txt (enough for batches of 64 after the split)
TEST_PER_BREED = 1       # photo <breed>_4 is in test.txt
SEED = 2012

# The real archive's kinds of odd file, each given to one trainval photo here.
ODDITIES = {
    "Abyssinian_1": "png-rgba",         # a PNG with an alpha channel under a .jpg name
    "Bombay_2": "png",                  # a plain RGB PNG under a .jpg name
    "Egyptian_Mau_1": "gif",            # a GIF (palette colours) under a .jpg name
    "staffordshire_bull_terrier_1": "cmyk",   # a CMYK JPEG (print colours)
    "basset_hound_2": "grey",           # a greyscale JPEG
    "beagle_1": "libjpeg-warning",      # extra bytes before the end marker: "Corrupt JPEG data: ... extraneous bytes"
    "chihuahua_1": "exif-rotated",      # stored sideways, with EXIF orientation 6 ("rotate 90 degrees clockwise")
}
EXTRANEOUS_BYTES = 240                  # the count libjpeg reports for the oddity above
STRAY_FILES = ("Abyssinian_100.mat", "Abyssinian_101.mat", "Abyssinian_102.mat")   # MATLAB files among the photos
UNLISTED_PHOTO = "Bengal_200"           # a photo on disk that no list names
# Photo sizes (width, height), drawn at random: mostly the real set's 500-pixel-wide shapes.
SIZES = ((500, 375),) * 6 + ((375, 500),) * 2 + ((500, 333), (500, 400), (600, 450), (1024, 768))


def breed_rows() -> list[tuple[str, int, int, int]]:
    """``(breed, CLASS-ID, SPECIES, BREED ID)`` for the 37 breeds, as the real list.txt numbers them."""
    counts = {1: 0, 2: 0}
    rows = []
    for class_id, breed in enumerate(BREEDS, start=1):
        species = 1 if breed[0].isupper() else 2
        counts[species] += 1
        rows.append((breed, class_id, species, counts[species]))
    return rows


def image_rows(trainval: int = TRAINVAL_PER_BREED, test: int = TEST_PER_BREED) -> list[tuple[str, int, int, int, bool]]:
    """``(image_id, CLASS-ID, SPECIES, BREED ID, is_test)`` of every listed photo, in list.txt order.

    Each breed has ``trainval`` photos in trainval.txt (``<breed>_1`` ...) and then ``test`` in test.txt.
    """
    return [(f"{breed}_{n}", c, s, b, n > trainval)
            for breed, c, s, b in breed_rows() for n in range(1, trainval + test + 1)]


# --- Photo-like pictures -----------------------------------------------------------------------------


def _smooth(shape: tuple[int, int], cell: tuple[float, float], rng: np.random.Generator) -> np.ndarray:
    """Noise that varies over about ``cell`` (rows, columns) pixels: a coarse random grid, smoothly enlarged."""
    h, w = shape
    coarse = rng.standard_normal((max(2, int(h / cell[0]) + 2), max(2, int(w / cell[1]) + 2))).astype(np.float32)
    return np.asarray(Image.fromarray(coarse, mode="F").resize((w, h), Image.Resampling.BICUBIC))


def photo(width: int, height: int, rng: np.random.Generator) -> Image.Image:
    """A picture with a photo's statistics: soft light, an animal-sized blob of fur-like texture, grain.

    Not a pet, but about as costly to decode and augment as a photo of its size: texture and
    grain make a 500 x 375 JPEG of about 75 KB, where a flat cartoon of that size takes a few.
    """
    h, w = height, width
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    background = rng.uniform(40, 220, 3).astype(np.float32)
    fur = rng.uniform(30, 240, 3).astype(np.float32)
    light = 0.35 * _smooth((h, w), (h / 1.5, w / 1.5), rng)[..., None]            # uneven lighting
    cy, cx = rng.uniform(0.35, 0.65) * h, rng.uniform(0.35, 0.65) * w
    ry, rx = rng.uniform(0.25, 0.4) * h, rng.uniform(0.2, 0.35) * w
    inside = np.clip(1.5 - np.hypot((yy - cy) / ry, (xx - cx) / rx) * 1.5, 0, 1)[..., None]   # soft-edged blob
    scales = ((28, (40, 40)), (16, (10, 10)), (24, (3, 3)), (12, (1.5, 1.5)))     # (strength, size): coarse to fine
    texture = sum(a * _smooth((h, w), c, rng) for a, c in scales)
    strands = 30 * _smooth((h, w), (14, 1.5), rng)                                 # fur: long thin streaks
    image = (1 - inside) * (background + texture[..., None]) + inside * (fur + strands[..., None])
    image = image * (1 + light) + rng.normal(0, 8, (h, w, 3))                      # light and sensor grain
    return Image.fromarray(np.clip(image, 0, 255).astype(np.uint8))


def _jpeg(image: Image.Image, **options) -> bytes:
    out = io.BytesIO()
    image.save(out, format="JPEG", quality=88, **options)
    return out.getvalue()


def encode(image_id: str, rng: np.random.Generator) -> bytes:
    """The bytes of ``images/<image_id>.jpg``: a JPEG, or the oddity ``ODDITIES`` gives that id."""
    width, height = SIZES[rng.integers(len(SIZES))]
    picture = photo(width, height, rng)
    kind = ODDITIES.get(image_id)
    out = io.BytesIO()
    if kind == "png-rgba":
        alpha = Image.fromarray(np.full((height, width), 255, np.uint8))
        alpha.paste(0, (0, 0, width // 6, height // 6))             # a transparent corner
        picture.putalpha(alpha)
        picture.save(out, format="PNG")
    elif kind == "png":
        picture.save(out, format="PNG")
    elif kind == "gif":
        picture.convert("P", palette=Image.Palette.ADAPTIVE).save(out, format="GIF")
    elif kind == "cmyk":
        return _jpeg(picture.convert("CMYK"))
    elif kind == "grey":
        return _jpeg(picture.convert("L"))
    elif kind == "libjpeg-warning":
        data = _jpeg(picture)
        assert data.endswith(b"\xff\xd9")
        return data[:-2] + b"\x00" * EXTRANEOUS_BYTES + b"\xff\xd9"
    elif kind == "exif-rotated":
        exif = Image.Exif()
        exif[0x0112] = 6                                            # shown after turning 90 degrees clockwise
        return _jpeg(picture.transpose(Image.Transpose.ROTATE_90), exif=exif.tobytes())
    else:
        return _jpeg(picture)
    return out.getvalue()


# --- The two archives ---------------------------------------------------------------------------------


def _add(tar: tarfile.TarFile, name: str, data: bytes | None = None) -> None:
    """Add a file (``data``) or, with ``data=None``, a folder to ``tar``."""
    info = tarfile.TarInfo(name)
    info.mtime, info.mode = 1_330_000_000, 0o644 if data is not None else 0o755
    if data is None:
        info.type = tarfile.DIRTYPE
        tar.addfile(info)
    else:
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))


def _png(array: np.ndarray) -> bytes:
    out = io.BytesIO()
    Image.fromarray(array).save(out, format="PNG")
    return out.getvalue()


def _trimap(size: tuple[int, int]) -> bytes:
    """A trimap like the real ones: 1 pet, 2 background, 3 the border between them."""
    w, h = size
    yy, xx = np.mgrid[0:h, 0:w]
    r = np.hypot((yy - h / 2) / (0.35 * h), (xx - w / 2) / (0.3 * w))
    return _png(np.where(r < 0.95, 1, np.where(r < 1.05, 3, 2)).astype(np.uint8))


def _annotation_lists(rows: list[tuple[str, int, int, int, bool]]) -> dict[str, str]:
    lines = [(f"{i} {c} {s} {b}\n", test) for i, c, s, b, test in rows]
    return {"list.txt": LIST_HEADER + "".join(line for line, _ in lines),
            "trainval.txt": "".join(line for line, test in lines if not test),
            "test.txt": "".join(line for line, test in lines if test)}


def build_archives(folder: Path, seed: int = SEED, trainval: int = TRAINVAL_PER_BREED,
                   test: int = TEST_PER_BREED) -> dict[str, str]:
    """Write ``images.tar.gz`` and ``annotations.tar.gz`` into ``folder``; return ``{file name: md5}``.

    ``trainval`` and ``test`` are photos per breed (the rehearsal's defaults; the loader benchmark
    asks for more). The same ``seed`` gives the same photos (the archives' bytes may differ only in
    gzip's header).
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    rows = image_rows(trainval, test)
    sizes = {}
    with tarfile.open(folder / "images.tar.gz", "w:gz") as tar:
        _add(tar, "images")
        for image_id, *_ in rows + [(UNLISTED_PHOTO,)]:
            data = encode(image_id, rng)
            with Image.open(io.BytesIO(data)) as image:
                sizes[image_id] = image.size
            _add(tar, f"images/{image_id}.jpg", data)
        for name in STRAY_FILES:
            _add(tar, f"images/{name}", b"MATLAB 5.0 MAT-file, Platform: GLNXA64 (a stand-in)\n" + bytes(64))
    with tarfile.open(folder / "annotations.tar.gz", "w:gz") as tar:
        _add(tar, "annotations")
        _add(tar, "annotations/README", b"OXFORD-IIIT PET Dataset\n(a small stand-in for the course's rehearsal)\n")
        for name, text in _annotation_lists(rows).items():
            _add(tar, f"annotations/{name}", text.encode())
        _add(tar, "annotations/._trimaps", b"\x00\x05\x16\x07 macOS resource fork")
        _add(tar, "annotations/trimaps")
        _add(tar, "annotations/xmls")
        for image_id, *_, test in rows:
            _add(tar, f"annotations/trimaps/{image_id}.png", _trimap(sizes[image_id]))
            _add(tar, f"annotations/trimaps/._{image_id}.png", b"\x00\x05\x16\x07 macOS resource fork")
            if not test:  # head boxes exist for trainval photos only, as in the real archive
                w, h = sizes[image_id]
                _add(tar, f"annotations/xmls/{image_id}.xml",
                     (f"<annotation><filename>{image_id}.jpg</filename><size><width>{w}</width>"
                      f"<height>{h}</height><depth>3</depth></size></annotation>").encode())
    return {name: hashlib.md5((folder / name).read_bytes()).hexdigest()
            for name in ("images.tar.gz", "annotations.tar.gz")}


def write_resources(path: Path, base_url: str, md5s: dict[str, str]) -> Path:
    """Write the ``COURSE_PETS_RESOURCES`` file (``pets_prep.pets_resources``): each archive's URL and md5."""
    Path(path).write_text(json.dumps(
        {name: {"url": f"{base_url.rstrip('/')}/{name}", "md5": md5} for name, md5 in md5s.items()}, indent=2))
    return Path(path)


# --- ImageNet weights -----------------------------------------------------------------------------------


def architectures_named_in(paths: Iterable[Path]) -> list[str]:
    """Every torchvision classification architecture named in a string literal of these notebooks or modules.

    ``"resnet34"`` in a notebook's ``ARCH = "resnet18" if env.quick else "resnet34"`` counts, and so
    does ``"resnet152"`` in ``course_utils/recipes.py``'s full-mode recipe: a lesson that switches to
    another architecture gets its stand-in without anyone editing a list here. (A name that is only
    mentioned gets a stand-in too; that costs a file, never a failure.)
    """
    import torchvision

    known = set(torchvision.models.list_models(module=torchvision.models))
    found = set()
    for path in paths:
        path = Path(path)
        if path.suffix == ".ipynb":
            cells = json.loads(path.read_text())["cells"]
            sources = ["".join(cell["source"]) for cell in cells if cell["cell_type"] == "code"]
        else:
            sources = [path.read_text()]
        for source in sources:
            found |= {name for name in re.findall(r"""["']([a-z][a-z0-9_]*)["']""", source) if name in known}
    return sorted(found)


def weight_file(arch: str) -> str:
    """The file name torchvision's download of ``arch``'s default ImageNet weights would have."""
    import torchvision

    return torchvision.models.get_model_weights(arch).DEFAULT.url.rsplit("/", 1)[-1]


def write_weight_standins(torch_home: Path, archs: Iterable[str]) -> list[Path]:
    """Save random-weight stand-ins for ``archs`` where torchvision's cache looks (``$TORCH_HOME/hub/checkpoints``)."""
    import torch
    import torchvision

    checkpoints = Path(torch_home) / "hub" / "checkpoints"
    checkpoints.mkdir(parents=True, exist_ok=True)
    written = []
    torch.manual_seed(0)
    for arch in archs:
        path = checkpoints / weight_file(arch)
        with warnings.catch_warnings():  # e.g. GoogLeNet's notice that its default initialisation will change
            warnings.simplefilter("ignore")
            model = torchvision.models.get_model(arch, weights=None)
        torch.save(model.state_dict(), path)
        written.append(path)
    return written


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__.rstrip().rsplit("\n", 1)[-1].strip())
    for filename, md5 in build_archives(Path(sys.argv[1])).items():
        print(f"{md5}  {filename}")
