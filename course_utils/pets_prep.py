"""Plumbing: getting the Oxford-IIIT Pet photos onto the disk, once. You need not read this.

``pets.pets_root()`` calls ``prepare_pets()`` in full mode; lessons 5 to 7 never call it
themselves. It does two things, each resumable and all-or-nothing:

1. **Download and unpack** the two archives whose URLs and md5 checksums torchvision lists
   (``OxfordIIITPet._RESOURCES``), with ``download.download`` (verified, never half-written)
   and ``download.extract_archive`` (safe, atomic). For tests and the rehearsal only,
   ``COURSE_PETS_RESOURCES`` replaces those URLs and checksums (see ``pets_resources``).
2. **Resized copies**: every photo is shrunk once to a short side of 256 pixels, so that an
   epoch on Colab's two CPU cores is not spent decoding 7,000 full-size JPEGs again and again.

On disk everything lives under ``env.data_dir() / "pets"``::

    pets/
        images.tar.gz, annotations.tar.gz       the downloads (checked against torchvision's md5)
        original/oxford-iiit-pet/images/        the photos as published
        original/oxford-iiit-pet/annotations/   list.txt, trainval.txt, test.txt, trimaps/, xmls/
        resized-256/oxford-iiit-pet/...         the resized copies that training reads

Each ``.../oxford-iiit-pet`` folder has the layout torchvision expects, so the same
``OxfordIIITPet(root, ...)`` call reads the originals and the resized copies. Once
``resized-256/`` exists, the archives and ``original/`` (about 1.6 GB) are no longer read and
may be deleted.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import re
import shutil
from collections.abc import Sequence
from pathlib import Path

from PIL import Image
from torchvision.datasets import OxfordIIITPet
from tqdm.auto import tqdm

from course_utils.download import download, extract_archive, written_atomically
from course_utils.env import data_dir, worker_count
from course_utils.images import load_image

SHORT_SIDE = 256         # the resized copies' shorter side, in pixels
JPEG_QUALITY = 90        # the resized copies' JPEG quality (95 is near-lossless, 75 is the default)
RESOURCES_ENV_VAR = "COURSE_PETS_RESOURCES"   # for tests and the rehearsal only: see pets_resources


def pets_folder() -> Path:
    """The folder that holds everything about the pets data set (``data_dir() / "pets"``)."""
    return data_dir() / "pets"


def annotation_rows(root: Path, split: str) -> list[list[str]]:
    """The rows of ``annotations/<split>.txt``: ``[image_id, class_id, species, breed_id]``, in file order.

    That is the order ``OxfordIIITPet`` numbers its images in. Comment lines (``#``) are skipped.
    """
    path = Path(root) / "oxford-iiit-pet" / "annotations" / f"{split}.txt"
    return [line.split() for line in path.read_text().splitlines() if line.strip() and not line.startswith("#")]


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


# --- 1. Download and unpack --------------------------------------------------------------------

def _archive_folder(filename: str) -> str:
    """The folder an archive unpacks into: ``images.tar.gz`` -> ``images``."""
    return filename.removesuffix(".tar.gz")


def _resources_override(path: Path, expected: list[str]) -> dict[str, tuple[str, str]]:
    """``{filename: (url, md5)}`` read from the JSON file ``path``, or a ``ValueError`` that says what is wrong."""
    problem = f"{RESOURCES_ENV_VAR}={path} (for tests and the rehearsal only; unset it to download the real photos)"
    try:
        given = json.loads(Path(path).read_text())
    except (OSError, ValueError) as e:
        raise ValueError(f"{problem} cannot be read as JSON: {e}") from e
    if not isinstance(given, dict) or sorted(given) != sorted(expected):
        raise ValueError(f"{problem} must be a JSON object with exactly the keys {expected}, "
                         'each {"url": ..., "md5": ...}')
    chosen = {}
    for name in expected:
        entry = given[name]
        if not (isinstance(entry, dict) and isinstance(entry.get("url"), str)
                and re.fullmatch(r"[0-9a-f]{32}", str(entry.get("md5", "")))):
            raise ValueError(f'{problem}: {name!r} must be {{"url": "<url>", "md5": "<32 hex digits>"}}, '
                             f"got {entry!r}")
        chosen[name] = (entry["url"], entry["md5"])
    return chosen


def pets_resources() -> list[tuple[str, str, str]]:
    """``(filename, url, md5)`` of the two archives, ``images.tar.gz`` and ``annotations.tar.gz``.

    The URLs and md5 checksums are torchvision's (``OxfordIIITPet._RESOURCES``): one source of
    truth. **For tests and the rehearsal only** (``make rehearsal``), the environment variable
    ``COURSE_PETS_RESOURCES`` may name a JSON file ``{"images.tar.gz": {"url": ..., "md5": ...},
    "annotations.tar.gz": {...}}`` that replaces them, so that a small stand-in served from this
    computer goes through the same download, checksum and unpacking code as the real archives.
    """
    real = [(url.rsplit("/", 1)[-1], url, md5) for url, md5 in OxfordIIITPet._RESOURCES]
    override = os.environ.get(RESOURCES_ENV_VAR, "").strip()
    if not override:
        return real
    chosen = _resources_override(Path(override), [name for name, _, _ in real])
    return [(name, *chosen[name]) for name, _, _ in real]


def download_pets(quiet: bool = False) -> Path:
    """Download and unpack the original data set (once); return the root ``OxfordIIITPet`` reads.

    The URLs and md5 checksums are those of ``pets_resources`` (torchvision's). We do not let
    torchvision download: ``download.download`` never keeps a half-downloaded file and explains
    failures in plain words (``DownloadError``).
    """
    root = pets_folder() / "original"
    for filename, url, md5 in pets_resources():
        folder = _archive_folder(filename)
        if (root / "oxford-iiit-pet" / folder).is_dir():
            continue  # unpacked before (the rename makes that all-or-nothing)
        archive = download(url, pets_folder() / filename, checksum=f"md5:{md5}", quiet=quiet)
        if not quiet:
            print(f"Unpacking {archive.name} ...")
        extract_archive(archive, root / "oxford-iiit-pet", folder)
    return root


# --- 2. Resized copies, made once --------------------------------------------------------------

def resized_size(width: int, height: int, short_side: int = SHORT_SIDE) -> tuple[int, int]:
    """The size that makes the shorter side ``short_side`` and keeps the shape (never enlarges)."""
    scale = short_side / min(width, height)
    if scale >= 1:
        return width, height
    return max(1, round(width * scale)), max(1, round(height * scale))


def resize_image(src: Path, dst: Path, short_side: int = SHORT_SIDE, quality: int = JPEG_QUALITY) -> None:
    """Save a copy of the photo ``src`` with its short side at most ``short_side`` pixels, as JPEG.

    The photo is read by ``images.load_image``, exactly as lesson 7 reads a photo to predict:
    the same EXIF orientation (so training and prediction see it the same way up), the same
    transparency and colour handling, and the same size guard (too many pixels raises
    ``images.BadImageError`` naming the file; a picture of extreme shape keeps its middle).
    Its ``decode_size`` lets the JPEG decoder work at 1/2, 1/4 or 1/8 scale when that is still
    big enough (``draft``): decoding a 3000-pixel photo that way is many times faster. The copy
    is written to a temporary name and renamed, so ``dst`` is either a whole JPEG or absent.
    """
    image = load_image(src, decode_size=short_side)
    size = resized_size(*image.size, short_side)
    if image.size != size:
        image = image.resize(size, Image.Resampling.BICUBIC, reducing_gap=3.0)
    with written_atomically(dst) as tmp:
        image.save(tmp, format="JPEG", quality=quality)


def _resize_job(job: tuple[Path, Path, int, int]) -> None:
    """``resize_image`` on one ``(src, dst, short_side, quality)`` tuple (what a worker process runs)."""
    resize_image(*job)


def resize_pets(source: Path, short_side: int = SHORT_SIDE, quality: int = JPEG_QUALITY,
                workers: int | None = None, quiet: bool = False) -> Path:
    """Make resized copies of every listed photo under ``source`` (once); return their root.

    The copies are built in ``resized-<short_side>.partial/`` one whole file at a time, and the
    folder is renamed to ``resized-<short_side>/`` only when every file and the annotation lists
    are there. So a finished cache is never half-written, and a run that was interrupted is
    picked up where it stopped: files already made are kept, the rest are made.
    ``workers`` processes share the work (default: ``env.worker_count()``; 1 = all in this process).
    """
    final = pets_folder() / f"resized-{short_side}"
    if final.is_dir():
        return final
    partial = final.with_name(final.name + ".partial")
    images = partial / "oxford-iiit-pet" / "images"
    images.mkdir(parents=True, exist_ok=True)
    ids = sorted({row[0] for split in ("trainval", "test") for row in annotation_rows(source, split)})
    src_images = Path(source) / "oxford-iiit-pet" / "images"
    jobs = [(src_images / f"{i}.jpg", images / f"{i}.jpg", short_side, quality)
            for i in ids if not (images / f"{i}.jpg").exists()]
    workers = worker_count() if workers is None else workers
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


def prepare_pets(quiet: bool = False) -> Path:
    """The root of the resized copies: downloaded, unpacked and resized the first time, at once later."""
    done = pets_folder() / f"resized-{SHORT_SIDE}"
    if done.is_dir():
        return done
    return resize_pets(download_pets(quiet=quiet), quiet=quiet)
