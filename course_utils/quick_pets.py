"""Plumbing: quick mode's made-up pets, drawn on first use. You need not read this.

Quick mode must run offline, on a CPU, in seconds, through exactly the code full mode uses.
So instead of the 800 MB download it draws a small stand-in: cartoon cat and dog faces of six
made-up breeds, about 100 pixels wide, laid out exactly like the real data set (``images/``,
``annotations/list.txt``, ``trainval.txt``, ``test.txt``) and read by the same
``OxfordIIITPet(root, ...)`` call. Cats and dogs differ in ears and snout, breeds in colours and
markings, so a small network learns them in a few epochs. Lives in ``pets/quick-v1/``.
"""

from __future__ import annotations

import math
import os
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw
from tqdm.auto import tqdm

from course_utils.pets_prep import JPEG_QUALITY, pets_folder, write_annotation_lists


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
