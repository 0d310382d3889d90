"""The Oxford-IIIT Pet data set for lessons 5 to 7: cats vs dogs, and 37 breeds.

The data set (Parkhi et al., 2012) holds 7,349 labelled photos of 12 cat and 25 dog breeds.
torchvision reads it with ``torchvision.datasets.OxfordIIITPet``; this module gets it onto the
disk the careful way and hands the lessons ready-made data sets and loaders. From top to bottom:

1. **Settings** - the numbers every lesson shares: ImageNet's mean and std, image sizes, the split.
2. **Download and extract** (full mode) - the two archives whose URLs and checksums torchvision
   lists, fetched with ``course_utils.data.download`` and unpacked safely and atomically.
3. **Resized copies** - once, every photo is shrunk to a short side of 256 pixels, so that an
   epoch on Colab's two CPU cores is not spent decoding 7,000 full-size JPEGs again and again.
4. **Quick mode** - a small made-up stand-in: cartoon cat and dog faces in exactly the same
   folder layout, drawn on first use (no download), learnable in seconds on a CPU.
5. **The train / validation split** - fixed and seeded, 20% of each breed held out for validation.
6. **Transforms** - augmentation for training, resize + centre crop for validation (and for
   lesson 7's predictions), ImageNet normalisation, and ``denormalize`` to look at the results.
7. **Data sets and loaders** - ``pets_datasets``, ``pets_dataloaders`` and the loader settings
   that suit the device, chosen in one place (``loader_kwargs``).

On disk everything lives under ``data_dir() / "pets"``::

    pets/
        images.tar.gz, annotations.tar.gz       the downloads (checked against torchvision's md5)
        original/oxford-iiit-pet/images/        the photos as published
        original/oxford-iiit-pet/annotations/   list.txt, trainval.txt, test.txt, trimaps/, xmls/
        resized-256/oxford-iiit-pet/...         the resized copies that training reads
        quick-v1/oxford-iiit-pet/...            quick mode's cartoon pets

Each ``.../oxford-iiit-pet`` folder has the layout torchvision expects, so the same
``OxfordIIITPet(root, ...)`` call reads the originals, the resized copies and the quick data.
The resized copies and the quick data hold only what classification needs (no ``trimaps/``
or ``xmls/``), so torchvision's ``"segmentation"`` target works on ``original/`` alone. Once
``resized-256/`` exists, the archives and ``original/`` (about 1.6 GB) are no longer read and
may be deleted. Nothing here downloads at import time.
"""

from __future__ import annotations

import json
import math
import multiprocessing
import os
import shutil
import tarfile
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw
from torch.utils.data import DataLoader, Subset
from torchvision.datasets import OxfordIIITPet
from torchvision.transforms import v2
from tqdm.auto import tqdm

from course_utils.data import data_dir, download, written_atomically
from course_utils.env import is_quick, pick_device

# ---------------------------------------------------------------------------------------------
# 1. Settings
# ---------------------------------------------------------------------------------------------

# The mean and standard deviation of each colour channel (R, G, B) over ImageNet's photos.
# A pretrained model saw its inputs normalised with these numbers, so ours must be too.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

FULL_SIZE = 224          # the side of the square images a model sees in full mode
QUICK_SIZE = 64          # ... and in quick mode (small pictures train fast on a CPU)
VALID_FRACTION = 0.2     # the share of each breed's trainval photos kept for validation
SPLIT_SEED = 42          # fixed: everyone, in every lesson, gets the same split
SHORT_SIDE = 256         # the resized copies' shorter side, in pixels
JPEG_QUALITY = 90        # the resized copies' JPEG quality (95 is near-lossless, 75 is the default)

# The two learning tasks, and the ``target_types`` torchvision calls them.
TASKS = {"binary": "binary-category", "breeds": "category"}


def pets_folder() -> Path:
    """The folder that holds everything about the pets data set (``data_dir() / "pets"``)."""
    return data_dir() / "pets"


# ---------------------------------------------------------------------------------------------
# 2. Download and extract (full mode)
# ---------------------------------------------------------------------------------------------


def _archive_folder(url: str) -> str:
    """The folder an archive unpacks into: ``.../images.tar.gz`` -> ``images``."""
    return url.rsplit("/", 1)[-1].removesuffix(".tar.gz")


def _check_member(member: tarfile.TarInfo, dest: Path) -> tarfile.TarInfo:
    """Refuse anything but plain files and folders that stay inside ``dest``.

    A hostile archive can hold names like ``../../.bashrc`` or links that point outside the
    folder. Python 3.12 (and recent 3.10/3.11 releases) check this with ``filter="data"``;
    this is the same idea for older versions.
    """
    target = (dest / member.name).resolve()
    if not (member.isfile() or member.isdir()) or not target.is_relative_to(dest.resolve()):
        raise tarfile.TarError(f"unsafe entry {member.name!r}")
    return member


def extract_archive(archive: Path, dest: Path, folder: str) -> Path:
    """Unpack ``archive`` (which must contain ``folder/``) so that ``dest / folder`` appears at once.

    The archive is unpacked into a temporary folder beside ``dest``, and only when that has
    finished is ``folder`` renamed into place, in one step. An interrupted extraction therefore
    never looks finished: ``dest / folder`` is complete or absent.
    """
    dest.mkdir(parents=True, exist_ok=True)
    for stale in dest.glob(f".extract-{folder}-*"):  # left behind by a run that was killed
        shutil.rmtree(stale, ignore_errors=True)
    tmp = Path(tempfile.mkdtemp(dir=dest, prefix=f".extract-{folder}-"))
    try:
        with tarfile.open(archive) as tar:
            if hasattr(tarfile, "data_filter"):
                tar.extractall(tmp, filter="data")
            else:  # older Pythons: check every entry ourselves
                tar.extractall(tmp, members=[_check_member(m, tmp) for m in tar.getmembers()])
        if not (tmp / folder).is_dir():
            raise tarfile.TarError(f"it has no {folder}/ folder")
        os.replace(tmp / folder, dest / folder)
    except (tarfile.TarError, OSError, EOFError) as e:
        raise RuntimeError(
            f"Could not unpack {archive}: {e}.\nDelete that file and run the cell again to download it afresh."
        ) from e
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return dest / folder


def download_pets(quiet: bool = False) -> Path:
    """Download and unpack the original data set (once); return the root ``OxfordIIITPet`` reads.

    The URLs and md5 checksums come from torchvision (``OxfordIIITPet._RESOURCES``), so there is
    one source of truth. We do not let torchvision download: ``course_utils.data.download``
    never keeps a half-downloaded file and explains failures in plain words (``DownloadError``).
    """
    root = pets_folder() / "original"
    for url, md5 in OxfordIIITPet._RESOURCES:
        folder = _archive_folder(url)
        if (root / "oxford-iiit-pet" / folder).is_dir():
            continue  # unpacked before (the rename makes that all-or-nothing)
        archive = download(url, pets_folder() / url.rsplit("/", 1)[-1], checksum=f"md5:{md5}", quiet=quiet)
        if not quiet:
            print(f"Unpacking {archive.name} ...")
        extract_archive(archive, root / "oxford-iiit-pet", folder)
    return root


# ---------------------------------------------------------------------------------------------
# 3. Resized copies, made once
# ---------------------------------------------------------------------------------------------


def resized_size(width: int, height: int, short_side: int = SHORT_SIDE) -> tuple[int, int]:
    """The size that makes the shorter side ``short_side`` and keeps the shape (never enlarges)."""
    scale = short_side / min(width, height)
    if scale >= 1:
        return width, height
    return max(1, round(width * scale)), max(1, round(height * scale))


def resize_image(src: Path, dst: Path, short_side: int = SHORT_SIDE, quality: int = JPEG_QUALITY) -> None:
    """Save a copy of the photo ``src`` with its short side at most ``short_side`` pixels, as JPEG.

    ``draft`` asks the JPEG decoder for a 1/2, 1/4 or 1/8 scale image when that is still big
    enough: decoding a 3000-pixel photo that way is many times faster. The copy is written to a
    temporary name and renamed, so ``dst`` is either a whole JPEG or absent.
    """
    with Image.open(src) as image:
        size = resized_size(*image.size, short_side)
        image.draft("RGB", size)  # only JPEGs take the hint (a few .jpg files are really PNGs)
        image = image.convert("RGB")
        if image.size != size:
            image = image.resize(size, Image.Resampling.BICUBIC, reducing_gap=3.0)
    with written_atomically(dst) as tmp:
        image.save(tmp, format="JPEG", quality=quality)


def _resize_job(job: tuple[Path, Path, int, int]) -> None:
    """``resize_image`` on one ``(src, dst, short_side, quality)`` tuple (what a worker process runs)."""
    resize_image(*job)


def _split_rows(root: Path, split: str) -> list[list[str]]:
    """The rows of ``annotations/<split>.txt``: ``[image_id, class_id, species, breed_id]``, in file order.

    That is the order ``OxfordIIITPet`` numbers its images in.
    """
    path = Path(root) / "oxford-iiit-pet" / "annotations" / f"{split}.txt"
    return [line.split() for line in path.read_text().splitlines() if line.strip() and not line.startswith("#")]


def split_ids(root: Path, split: str) -> list[str]:
    """The image ids of ``split`` (``"trainval"`` or ``"test"``), e.g. ``"Abyssinian_100"``."""
    return [row[0] for row in _split_rows(root, split)]


def split_labels(root: Path, split: str) -> list[int]:
    """The breed number (0-based, torchvision's ``category``) of every image of ``split``."""
    return [int(row[1]) - 1 for row in _split_rows(root, split)]


def default_workers() -> int:
    """How many CPU cores this process may use (2 on Colab)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def resize_pets(source: Path, short_side: int = SHORT_SIDE, quality: int = JPEG_QUALITY,
                workers: int | None = None, quiet: bool = False) -> Path:
    """Make resized copies of every listed photo under ``source`` (once); return their root.

    The copies are built in ``resized-<short_side>.partial/`` one whole file at a time, and the
    folder is renamed to ``resized-<short_side>/`` only when every file and the annotation lists
    are there. So a finished cache is never half-written, and a run that was interrupted is
    picked up where it stopped: files already made are kept, the rest are made.
    ``workers`` processes share the work (default: one per CPU core; 1 = all in this process).
    """
    final = pets_folder() / f"resized-{short_side}"
    if final.is_dir():
        return final
    partial = final.with_name(final.name + ".partial")
    images = partial / "oxford-iiit-pet" / "images"
    images.mkdir(parents=True, exist_ok=True)
    ids = sorted(set(split_ids(source, "trainval") + split_ids(source, "test")))
    src_images = Path(source) / "oxford-iiit-pet" / "images"
    jobs = [(src_images / f"{i}.jpg", images / f"{i}.jpg", short_side, quality)
            for i in ids if not (images / f"{i}.jpg").exists()]
    workers = default_workers() if workers is None else workers
    bar = tqdm(total=len(ids), initial=len(ids) - len(jobs), desc="Resizing photos", unit="img", disable=quiet)
    with bar:
        if workers > 1 and jobs:
            with multiprocessing.get_context().Pool(workers) as pool:
                for _ in pool.imap_unordered(_resize_job, jobs, chunksize=16):
                    bar.update()
        else:
            for job in jobs:
                _resize_job(job)
                bar.update()
    for leftover in images.glob("*.part"):  # from a worker that was stopped mid-write
        leftover.unlink()
    annotations = partial / "oxford-iiit-pet" / "annotations"
    annotations.mkdir(exist_ok=True)
    for name in ("list.txt", "trainval.txt", "test.txt"):
        shutil.copyfile(Path(source) / "oxford-iiit-pet" / "annotations" / name, annotations / name)
    settings = {"short_side": short_side, "jpeg_quality": quality, "images": len(ids)}
    (partial / "preprocessing.json").write_text(json.dumps(settings, indent=2) + "\n")
    os.replace(partial, final)  # the single step that makes the cache "done"
    return final


# ---------------------------------------------------------------------------------------------
# 4. Quick mode: cartoon pets, drawn on first use
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class QuickBreed:
    """One made-up breed: cats and dogs differ in ears and snout, breeds in colours and markings."""

    name: str                      # as in the real file names: cat breeds Capitalised, dog breeds not
    fur: tuple[int, int, int]      # main fur colour (RGB)
    marks: tuple[int, int, int]    # colour of the markings
    pattern: str                   # "spots", "solid", "points" (cats); "blaze", "mask", "fluffy" (dogs)
    eyes: tuple[int, int, int]

    @property
    def is_cat(self) -> bool:
        return self.name[0].isupper()  # the data set's own convention


QUICK_BREEDS = (
    QuickBreed("Bengal", fur=(220, 150, 60), marks=(80, 45, 20), pattern="spots", eyes=(130, 180, 50)),
    QuickBreed("Russian_Blue", fur=(120, 132, 150), marks=(95, 105, 122), pattern="solid", eyes=(70, 200, 90)),
    QuickBreed("Siamese", fur=(238, 224, 196), marks=(75, 50, 38), pattern="points", eyes=(60, 130, 235)),
    QuickBreed("beagle", fur=(190, 120, 55), marks=(250, 248, 240), pattern="blaze", eyes=(60, 35, 15)),
    QuickBreed("pug", fur=(222, 190, 135), marks=(35, 30, 30), pattern="mask", eyes=(25, 20, 15)),
    QuickBreed("samoyed", fur=(246, 244, 238), marks=(225, 222, 215), pattern="fluffy", eyes=(25, 20, 15)),
)
QUICK_PER_BREED = 40   # 30 go to trainval, 10 to test
QUICK_SEED = 2012      # the generator's seed (the data set's publication year)
QUICK_VERSION = 1      # bump when the drawing changes, so old caches are not reused


def _jitter(colour: tuple[int, int, int], rng: np.random.Generator, amount: int = 18) -> tuple[int, ...]:
    """``colour`` with each channel moved by up to ``amount``: no two animals are identical."""
    return tuple(int(v) for v in np.clip(np.array(colour) + rng.integers(-amount, amount + 1, 3), 0, 255))


def _ellipse(draw: ImageDraw.ImageDraw, cx: float, cy: float, rx: float, ry: float, fill) -> None:
    """An ellipse given by its centre and radii (PIL wants a bounding box)."""
    draw.ellipse((cx - rx, cy - ry, cx + rx, cy + ry), fill=fill)


def _draw_background(draw: ImageDraw.ImageDraw, width: int, height: int, rng: np.random.Generator) -> None:
    """A random flat colour with a few random blobs and bars, so the pet is not alone on a clean page."""
    draw.rectangle((0, 0, width, height), fill=tuple(int(v) for v in rng.integers(40, 215, 3)))
    for _ in range(rng.integers(2, 6)):
        _draw_background_blob(draw, width, height, rng)


def _draw_background_blob(draw: ImageDraw.ImageDraw, width: int, height: int, rng: np.random.Generator) -> None:
    """One random ellipse or bar of a random colour somewhere in the picture."""
    colour = tuple(int(v) for v in rng.integers(0, 256, 3))
    x, y = rng.uniform(0, width), rng.uniform(0, height)
    if rng.random() < 0.5:
        _ellipse(draw, x, y, rng.uniform(0.05, 0.2) * width, rng.uniform(0.05, 0.2) * height, colour)
    else:
        draw.line((x, y, rng.uniform(0, width), rng.uniform(0, height)), fill=colour, width=int(rng.integers(2, 8)))


def _draw_cat(draw: ImageDraw.ImageDraw, b: QuickBreed, cx: float, cy: float, r: float,
              rng: np.random.Generator) -> None:
    """Pointed ears, a round face, slit pupils, a small pink nose and whiskers."""
    fur, marks = _jitter(b.fur, rng), _jitter(b.marks, rng)
    ear = marks if b.pattern == "points" else fur
    for side in (-1, 1):
        draw.polygon([(cx + side * 0.95 * r, cy - 0.25 * r), (cx + side * 0.8 * r, cy - 1.45 * r),
                      (cx + side * 0.2 * r, cy - 0.8 * r)], fill=ear)
        draw.polygon([(cx + side * 0.78 * r, cy - 0.45 * r), (cx + side * 0.72 * r, cy - 1.15 * r),
                      (cx + side * 0.38 * r, cy - 0.75 * r)], fill=(235, 160, 170))
    _ellipse(draw, cx, cy, r, 0.9 * r, fur)
    if b.pattern == "spots":
        for _ in range(rng.integers(7, 12)):
            a, d = rng.uniform(0, 2 * math.pi), rng.uniform(0.2, 0.8) * r
            _ellipse(draw, cx + d * math.cos(a), cy + 0.85 * d * math.sin(a), 0.11 * r, 0.09 * r, marks)
    elif b.pattern == "points":
        _ellipse(draw, cx, cy + 0.25 * r, 0.5 * r, 0.5 * r, marks)
    elif b.pattern == "solid":
        _ellipse(draw, cx, cy + 0.45 * r, 0.45 * r, 0.3 * r, marks)
    eyes = _jitter(b.eyes, rng, 12)
    for side in (-1, 1):
        _ellipse(draw, cx + side * 0.4 * r, cy - 0.15 * r, 0.2 * r, 0.14 * r, eyes)
        _ellipse(draw, cx + side * 0.4 * r, cy - 0.15 * r, 0.04 * r, 0.13 * r, (10, 10, 10))
    draw.polygon([(cx - 0.1 * r, cy + 0.18 * r), (cx + 0.1 * r, cy + 0.18 * r), (cx, cy + 0.3 * r)],
                 fill=(230, 130, 150))
    whisker = (250, 250, 250) if sum(fur) < 450 else (40, 40, 40)
    for side in (-1, 1):
        for dy in (-0.05, 0.1, 0.25):
            draw.line((cx + side * 0.2 * r, cy + 0.35 * r, cx + side * 1.25 * r, cy + (0.3 + dy) * r),
                      fill=whisker, width=max(1, round(0.03 * r)))


def _draw_dog(draw: ImageDraw.ImageDraw, b: QuickBreed, cx: float, cy: float, r: float,
              rng: np.random.Generator) -> None:
    """Floppy hanging ears, a longer face, a pale muzzle with a big black nose, round eyes."""
    fur, marks = _jitter(b.fur, rng), _jitter(b.marks, rng)
    if b.pattern == "fluffy":  # a ruff of fur all around the head
        for k in range(16):
            a = 2 * math.pi * k / 16
            _ellipse(draw, cx + 0.95 * r * math.cos(a), cy + 1.0 * r * math.sin(a), 0.25 * r, 0.25 * r, fur)
    _ellipse(draw, cx, cy, 0.85 * r, r, fur)
    ear = marks if b.pattern == "mask" else tuple(int(0.55 * v) for v in fur)
    for side in (-1, 1):
        draw.polygon([(cx + side * 0.45 * r, cy - 0.85 * r), (cx + side * 1.2 * r, cy - 0.55 * r),
                      (cx + side * 1.15 * r, cy + 0.55 * r), (cx + side * 0.8 * r, cy + 0.6 * r)], fill=ear)
    if b.pattern == "blaze":  # a white stripe from the forehead down to the muzzle
        draw.polygon([(cx - 0.1 * r, cy - 0.9 * r), (cx + 0.1 * r, cy - 0.9 * r),
                      (cx + 0.2 * r, cy + 0.2 * r), (cx - 0.2 * r, cy + 0.2 * r)], fill=marks)
    muzzle = marks if b.pattern in ("blaze", "mask") else tuple(min(255, int(v * 1.1) + 15) for v in fur)
    _ellipse(draw, cx, cy + 0.45 * r, 0.5 * r, 0.42 * r, muzzle)
    _ellipse(draw, cx, cy + 0.28 * r, 0.2 * r, 0.13 * r, (15, 12, 12))
    draw.line((cx, cy + 0.4 * r, cx, cy + 0.65 * r), fill=(15, 12, 12), width=max(1, round(0.04 * r)))
    if rng.random() < 0.5:  # a tongue, sometimes
        _ellipse(draw, cx, cy + 0.78 * r, 0.12 * r, 0.14 * r, (225, 90, 110))
    eyes = _jitter(b.eyes, rng, 12)
    for side in (-1, 1):
        _ellipse(draw, cx + side * 0.36 * r, cy - 0.22 * r, 0.12 * r, 0.12 * r, eyes)
        _ellipse(draw, cx + side * 0.33 * r, cy - 0.26 * r, 0.035 * r, 0.035 * r, (250, 250, 250))


def draw_quick_pet(breed: QuickBreed, rng: np.random.Generator) -> Image.Image:
    """One cartoon pet of ``breed``, at a random size, place and scale on a random background.

    It is drawn at twice the size and shrunk, which smooths the edges like a photo's.
    """
    width, height = int(rng.integers(84, 113)), int(rng.integers(76, 105))
    s = 2  # supersampling factor
    image = Image.new("RGBA", (width * s, height * s))
    _draw_background(ImageDraw.Draw(image), width * s, height * s, rng)
    pet = Image.new("RGBA", image.size, (0, 0, 0, 0))  # the pet on a transparent layer, tilted a little
    r = rng.uniform(0.22, 0.32) * min(width, height) * s
    cx = rng.uniform(1.3 * r, width * s - 1.3 * r)
    cy = rng.uniform(1.45 * r, height * s - 1.1 * r)
    (_draw_cat if breed.is_cat else _draw_dog)(ImageDraw.Draw(pet), breed, cx, cy, r, rng)
    image.alpha_composite(pet.rotate(rng.uniform(-20, 20), Image.Resampling.BICUBIC, center=(cx, cy)))
    if rng.random() < 0.3:  # now and then something in front of the pet
        _draw_background_blob(ImageDraw.Draw(image), width * s, height * s, rng)
    return image.convert("RGB").resize((width, height), Image.Resampling.LANCZOS)


def _annotation_rows(breeds: Sequence[QuickBreed], per_breed: int) -> list[tuple[str, int, int, int]]:
    """``(image_id, class_id, species, breed_id)`` rows, numbered as in the real ``list.txt``.

    Class ids count breeds in alphabetical order ignoring case (1, 2, ...); species is 1 for
    cats and 2 for dogs; breed ids count the breeds of one species separately.
    """
    ordered = sorted(breeds, key=lambda b: b.name.lower())
    rows = []
    for class_id, b in enumerate(ordered, start=1):
        breed_id = [x for x in ordered if x.is_cat == b.is_cat].index(b) + 1
        for n in range(1, per_breed + 1):
            rows.append((f"{b.name}_{n}", class_id, 1 if b.is_cat else 2, breed_id))
    return rows


LIST_HEADER = (
    "#Image CLASS-ID SPECIES BREED ID\n"
    "#ID: 1:37 Class ids\n"
    "#SPECIES: 1:Cat 2:Dog\n"
    "#BREED ID: 1-25:Cat 1:12:Dog\n"
    "#All images with 1st letter as captial are cat images\n"
    "#images with small first letter are dog images\n"
)  # the real list.txt's six header lines, typos included (trainval.txt and test.txt have none)


def write_annotation_lists(folder: Path, rows: Sequence[tuple[str, int, int, int]], test_ids: set[str]) -> None:
    """Write ``list.txt`` (with its header), ``trainval.txt`` and ``test.txt`` in the real format."""
    folder.mkdir(parents=True, exist_ok=True)
    lines = [f"{image_id} {c} {s} {b}\n" for image_id, c, s, b in rows]
    (folder / "list.txt").write_text(LIST_HEADER + "".join(lines))
    (folder / "trainval.txt").write_text("".join(ln for ln, r in zip(lines, rows) if r[0] not in test_ids))
    (folder / "test.txt").write_text("".join(ln for ln, r in zip(lines, rows) if r[0] in test_ids))


def make_quick_pets(seed: int = QUICK_SEED, per_breed: int = QUICK_PER_BREED, quiet: bool = False) -> Path:
    """Draw quick mode's data set on first use (deterministic for a given seed); return its root.

    Six breeds (three cats, three dogs) of ``per_breed`` images each, about 100 pixels wide,
    laid out exactly like the real download and read by the same ``OxfordIIITPet`` code. A
    quarter of each breed is the test split. Built in a temporary folder and renamed when done.
    """
    final = pets_folder() / f"quick-v{QUICK_VERSION}"
    if final.is_dir():
        return final
    pets_folder().mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=pets_folder(), prefix=".quick-"))
    try:
        rng = np.random.default_rng(seed)
        rows = _annotation_rows(QUICK_BREEDS, per_breed)
        by_name = {b.name: b for b in QUICK_BREEDS}
        images = tmp / "oxford-iiit-pet" / "images"
        images.mkdir(parents=True)
        for image_id, *_ in tqdm(rows, desc="Drawing quick-mode pets", unit="img", disable=quiet):
            breed = by_name[image_id.rsplit("_", 1)[0]]
            draw_quick_pet(breed, rng).save(images / f"{image_id}.jpg", quality=JPEG_QUALITY)
        test_ids = {image_id for image_id, *_ in rows if int(image_id.rsplit("_", 1)[1]) % 4 == 0}
        write_annotation_lists(tmp / "oxford-iiit-pet" / "annotations", rows, test_ids)
        os.replace(tmp, final)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return final


def pets_root(quick: bool | None = None, quiet: bool = False) -> Path:
    """The folder to pass to ``OxfordIIITPet(root, ...)``, preparing it first if needed.

    Quick mode: the cartoon pets (drawn once). Full mode: the resized copies (downloaded,
    unpacked and resized once; later calls return at once).
    """
    quick = is_quick() if quick is None else quick
    if quick:
        return make_quick_pets(quiet=quiet)
    done = pets_folder() / f"resized-{SHORT_SIDE}"
    if done.is_dir():
        return done
    return resize_pets(download_pets(quiet=quiet), quiet=quiet)


# ---------------------------------------------------------------------------------------------
# 5. The train / validation split
# ---------------------------------------------------------------------------------------------


def train_valid_indices(labels: Sequence[int], valid_fraction: float = VALID_FRACTION,
                        seed: int = SPLIT_SEED) -> tuple[list[int], list[int]]:
    """Split positions ``0 .. len(labels)-1`` into training and validation, the same way every time.

    Each breed is shuffled with a generator seeded by ``seed`` and ``valid_fraction`` of it
    (at least one image, never all) goes to validation, so every breed is in both parts in
    the same proportion. Both lists come back sorted.
    """
    if not 0 < valid_fraction < 1:
        raise ValueError(f"valid_fraction must be between 0 and 1, got {valid_fraction}")
    rng = np.random.default_rng(seed)
    valid = []
    for label in sorted(set(labels)):
        members = [i for i, x in enumerate(labels) if x == label]
        if len(members) < 2:
            continue  # a breed with one image can only train
        n_valid = min(len(members) - 1, max(1, round(valid_fraction * len(members))))
        valid += rng.permutation(members)[:n_valid].tolist()
    chosen = set(valid)
    return [i for i in range(len(labels)) if i not in chosen], sorted(valid)


# ---------------------------------------------------------------------------------------------
# 6. Transforms: augmentation for training, resize + centre crop for validation
# ---------------------------------------------------------------------------------------------


def norm_stats(pretrained: bool = True) -> tuple[list[float] | None, list[float] | None]:
    """``(mean, std)`` to normalise with: ImageNet's for a pretrained model, else ``(None, None)``.

    These are also what a checkpoint stores (``course_utils.checkpoint``), so lesson 7 can
    prepare new photos exactly as the model saw them in training.
    """
    return (list(IMAGENET_MEAN), list(IMAGENET_STD)) if pretrained else (None, None)


def _to_tensor(mean: Sequence[float] | None, std: Sequence[float] | None) -> list:
    """PIL image -> float tensor in 0..1 (channels first), then normalised when ``mean`` is given."""
    steps = [v2.ToImage(), v2.ToDtype(torch.float32, scale=True)]
    if mean is not None:
        steps.append(v2.Normalize(mean=list(mean), std=list(std)))
    return steps


def valid_transform(size: int = FULL_SIZE, mean: Sequence[float] | None = IMAGENET_MEAN,
                    std: Sequence[float] | None = IMAGENET_STD) -> v2.Compose:
    """The preprocessing for validation, testing and predictions: no randomness at all.

    Resize the short side to ``size / 0.875`` (256 for 224, the classic ImageNet ratio), cut
    out the central ``size x size`` square, turn it into a tensor and normalise it with
    ``mean`` and ``std`` (skipped when ``mean`` is None). Lesson 7 uses exactly this function.
    """
    return v2.Compose([v2.Resize(round(size / 0.875)), v2.CenterCrop(size), *_to_tensor(mean, std)])


def train_transform(size: int = FULL_SIZE, mean: Sequence[float] | None = IMAGENET_MEAN,
                    std: Sequence[float] | None = IMAGENET_STD) -> v2.Compose:
    """Data augmentation: every epoch shows each photo a little differently.

    A small rotation, a random crop of 35% to 100% of the photo stretched to ``size x size``,
    a mirror image half of the time and slightly changed brightness, contrast and saturation.
    A cat stays a cat under all of these, so the model learns what does not change. (No hue
    changes: they would cost as much time as all the rest together, for little gain.)
    """
    return v2.Compose([
        v2.RandomRotation(10),
        v2.RandomResizedCrop(size, scale=(0.35, 1.0)),
        v2.RandomHorizontalFlip(),
        v2.ColorJitter(brightness=0.2, contrast=0.2, saturation=0.2),
        *_to_tensor(mean, std),
    ])


def denormalize(images: torch.Tensor, mean: Sequence[float] | None = IMAGENET_MEAN,
                std: Sequence[float] | None = IMAGENET_STD) -> torch.Tensor:
    """Undo ``Normalize`` so a batch (N x 3 x H x W) or one image (3 x H x W) can be shown.

    Values are clipped to 0..1 (what ``plots.show_images`` and matplotlib expect).
    """
    if mean is None:
        return images.clamp(0, 1)
    shape = (3, 1, 1)
    mean_t = torch.tensor(mean, dtype=images.dtype, device=images.device).view(shape)
    std_t = torch.tensor(std, dtype=images.dtype, device=images.device).view(shape)
    return (images * std_t + mean_t).clamp(0, 1)


# ---------------------------------------------------------------------------------------------
# 7. Data sets and loaders
# ---------------------------------------------------------------------------------------------


def _target_type(task: str) -> str:
    """``"binary"`` -> ``"binary-category"``, ``"breeds"`` -> ``"category"`` (with a clear error otherwise)."""
    if task not in TASKS:
        raise ValueError(f"task must be one of {sorted(TASKS)} (cat vs dog, or the breeds), got {task!r}")
    return TASKS[task]


def class_names(dataset: OxfordIIITPet, task: str) -> list[str]:
    """Display names, index = label: ``["Cat", "Dog"]`` or ``["Abyssinian", "American Bulldog", ...]``."""
    return list(dataset.bin_classes if _target_type(task) == "binary-category" else dataset.classes)


def pets_datasets(task: str = "binary", size: int | None = None, quick: bool | None = None,
                  pretrained_norm: bool = True, augment: bool = True) -> tuple[Subset, Subset, list[str]]:
    """The training and validation sets and the class names: ``(train_ds, valid_ds, class_names)``.

    ``task`` is ``"binary"`` (cat vs dog) or ``"breeds"``; ``size`` defaults to 224 (full mode)
    or 64 (quick mode); ``quick`` defaults to the course's mode; ``pretrained_norm`` picks
    ImageNet normalisation (see ``norm_stats``); ``augment=False`` trains on un-augmented
    images (handy to show overfitting). Both sets are slices of the ``trainval`` split (see
    ``train_valid_indices``); ``dataset[i]`` is ``(image_tensor, label)``.
    """
    target = _target_type(task)
    quick = is_quick() if quick is None else quick
    size = (QUICK_SIZE if quick else FULL_SIZE) if size is None else size
    root = pets_root(quick)
    mean, std = norm_stats(pretrained_norm)
    train_tf = train_transform(size, mean, std) if augment else valid_transform(size, mean, std)
    train_all = OxfordIIITPet(root, split="trainval", target_types=target, transform=train_tf)
    valid_all = OxfordIIITPet(root, split="trainval", target_types=target,
                              transform=valid_transform(size, mean, std))
    train_idx, valid_idx = train_valid_indices(split_labels(root, "trainval"))
    return Subset(train_all, train_idx), Subset(valid_all, valid_idx), class_names(train_all, task)


def pets_test_dataset(task: str = "binary", size: int | None = None, quick: bool | None = None,
                      pretrained_norm: bool = True) -> OxfordIIITPet:
    """The ``test`` split with validation preprocessing: for one final number, after all choices are made."""
    target = _target_type(task)
    quick = is_quick() if quick is None else quick
    size = (QUICK_SIZE if quick else FULL_SIZE) if size is None else size
    mean, std = norm_stats(pretrained_norm)
    return OxfordIIITPet(pets_root(quick), split="test", target_types=target,
                         transform=valid_transform(size, mean, std))


def loader_kwargs(device: torch.device | str, train: bool, quick: bool = False) -> dict:
    """``DataLoader`` settings that suit ``device``, decided in this one place.

    - ``shuffle`` and ``drop_last`` for training only (dropping a ragged last batch avoids a
      batch of one image, which BatchNorm cannot train on);
    - ``num_workers``: one background process per CPU core decodes and augments the next
      batches while the model trains (2 on Colab); none in quick mode, where starting the
      processes would take longer than the work;
    - ``persistent_workers`` keeps those processes alive from one epoch to the next;
    - ``pin_memory`` (CUDA only) puts batches in page-locked memory, so that copying them to the
      GPU with ``tensor.to(device, non_blocking=True)`` can overlap with computation.
      ``course_utils.training.move_batch`` does that copy.
    """
    workers = 0 if quick else default_workers()
    return {
        "shuffle": train,
        "drop_last": train,
        "num_workers": workers,
        "persistent_workers": workers > 0,
        "pin_memory": torch.device(device).type == "cuda",
    }


def pets_dataloaders(task: str = "binary", size: int | None = None, batch_size: int = 64,
                     quick: bool | None = None, pretrained_norm: bool = True, device: torch.device | str | None = None,
                     augment: bool = True) -> tuple[DataLoader, DataLoader, list[str]]:
    """What lessons 5 and 6 call: ``train_dl, valid_dl, class_names = pets_dataloaders("breeds")``.

    The arguments are those of ``pets_datasets``, plus ``batch_size`` and the ``device`` the
    model trains on (default: the fastest one), which decides the loader settings
    (``loader_kwargs``). Each batch is ``(images, labels)``: ``batch_size x 3 x size x size``
    floats and ``batch_size`` class numbers. The validation loader uses twice the batch size
    (no gradients are kept, so there is room).
    """
    quick = is_quick() if quick is None else quick
    device = pick_device() if device is None else device
    train_ds, valid_ds, names = pets_datasets(task, size, quick, pretrained_norm, augment)
    if batch_size > len(train_ds):
        raise ValueError(f"batch_size={batch_size} is larger than the {len(train_ds)} training images; "
                         "choose a smaller batch size")
    train_dl = DataLoader(train_ds, batch_size=batch_size, **loader_kwargs(device, train=True, quick=quick))
    valid_dl = DataLoader(valid_ds, batch_size=2 * batch_size, **loader_kwargs(device, train=False, quick=quick))
    return train_dl, valid_dl, names


def pets_test_loader(task: str = "binary", size: int | None = None, batch_size: int = 128,
                     quick: bool | None = None, pretrained_norm: bool = True,
                     device: torch.device | str | None = None) -> DataLoader:
    """A loader over ``pets_test_dataset``, in file order (class names as from ``pets_dataloaders``)."""
    quick = is_quick() if quick is None else quick
    device = pick_device() if device is None else device
    test_ds = pets_test_dataset(task, size, quick, pretrained_norm)
    return DataLoader(test_ds, batch_size=batch_size, **loader_kwargs(device, train=False, quick=quick))


# --- One call: train and save a pets classifier ----------------------------------------------------

def checkpoint_path(task: str = "breeds", quick: bool | None = None) -> Path:
    """Where lesson 6 saves, and lesson 7 looks for, the pets classifier of ``task``.

    Quick-mode models get their own file, so a quick run never overwrites a real model.
    """
    quick = is_quick() if quick is None else quick
    return data_dir() / "models" / f"pets_{task}_{'quick' if quick else 'full'}.pt"


def train_pets_model(task: str = "breeds", quick: bool | None = None, epochs: int | None = None,
                     arch: str | None = None, device: torch.device | str | None = None,
                     path: Path | None = None) -> Path:
    """Lesson 6's recipe in one call: train a ResNet on the pets, save the best epoch, return the path.

    Full mode fine-tunes an ImageNet-pretrained ResNet-34 at 224 px (a few minutes on a GPU);
    quick mode trains a small ResNet-18 from scratch on the cartoon pets for a few seconds (it
    learns something, not much). Lesson 7 calls this when it finds no saved model, e.g. on a
    fresh Colab runtime. The checkpoint format is described in ``course_utils.checkpoint``.
    """
    from course_utils.checkpoint import Checkpoint, save_checkpoint  # here: only this recipe needs them
    from course_utils.models import build_resnet
    from course_utils.training import error_rate, fine_tune, fit

    quick = is_quick() if quick is None else quick
    device = pick_device() if device is None else torch.device(device)
    arch = arch or ("resnet18" if quick else "resnet34")
    epochs = epochs or (8 if quick else 4)
    size = QUICK_SIZE if quick else FULL_SIZE
    train_dl, valid_dl, names = pets_dataloaders(task, size, batch_size=32 if quick else 64, quick=quick,
                                                 pretrained_norm=True, device=device)
    model, pretrained = build_resnet(arch, pretrained=not quick, num_classes=len(names))
    loss_fn = torch.nn.CrossEntropyLoss()
    settings = {"metrics": {"error_rate": error_rate}, "device": device, "keep_best": True}
    if pretrained:
        history = fine_tune(model, train_dl, valid_dl, loss_fn, epochs, **settings)[-1]
    else:  # nothing to preserve in a random body: train everything from the start
        history = fit(model, train_dl, valid_dl, loss_fn, epochs, lr=1e-3, **settings)
    if history is not None and history.best_state is not None:
        model.load_state_dict(history.best_state)
    best = history.rows[history.best_epoch - 1] if history is not None and history.best_epoch else {}
    info = {"task": task, "quick": quick, "pretrained": pretrained, "epochs": epochs,
            "best_epoch": best.get("epoch", 0), "valid_error_rate": float(best.get("error_rate", float("nan")))}
    mean, std = norm_stats(True)
    return save_checkpoint(path or checkpoint_path(task, quick), model,
                           Checkpoint(arch, names, size, mean, std, info))
