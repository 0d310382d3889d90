"""The Oxford-IIIT Pet data set for lessons 5 to 7: cats vs dogs, and 37 breeds.

The data set (Parkhi et al., 2012) holds 7,349 labelled photos of 12 cat and 25 dog breeds.
torchvision reads it with ``torchvision.datasets.OxfordIIITPet``; this module hands the lessons
ready-made data sets and loaders. From top to bottom:

1. ``pets_root`` - the folder to read from: the real photos, downloaded and resized once by
   ``pets_prep`` (full mode), or the cartoon pets of ``quick_pets`` (quick mode), both laid out
   exactly as torchvision expects;
2. the **train / validation split**: fixed and seeded, 20% of each breed held out for validation;
3. ``pets_datasets`` and ``pets_dataloaders``, with the preprocessing of ``transforms`` and the
   loader settings that suit the device, chosen in one place (``loader_kwargs``).

Nothing here downloads at import time.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Subset
from torchvision.datasets import OxfordIIITPet

from course_utils.env import is_quick, pick_device, worker_count
from course_utils.pets_prep import annotation_rows, prepare_pets
from course_utils.quick_pets import make_quick_pets
from course_utils.transforms import FULL_IMAGE_SIZE, QUICK_IMAGE_SIZE, norm_stats, train_transform, valid_transform

VALID_FRACTION = 0.2     # the share of each breed's trainval photos kept for validation
SPLIT_SEED = 42          # fixed: everyone, in every lesson, gets the same split

# The two learning tasks, and the ``target_types`` torchvision calls them.
TASKS = {"binary": "binary-category", "breeds": "category"}


def pets_root(quick: bool | None = None, quiet: bool = False) -> Path:
    """The folder to pass to ``OxfordIIITPet(root, ...)``, preparing it first if needed.

    Quick mode: the cartoon pets (drawn once). Full mode: the resized copies of the real photos
    (downloaded, unpacked and resized once; later calls return at once).
    """
    quick = is_quick() if quick is None else quick
    return make_quick_pets(quiet=quiet) if quick else prepare_pets(quiet=quiet)


def split_ids(root: Path, split: str) -> list[str]:
    """The image ids of ``split`` (``"trainval"`` or ``"test"``), e.g. ``"Abyssinian_100"``, in file order."""
    return [row[0] for row in annotation_rows(root, split)]


def split_labels(root: Path, split: str) -> list[int]:
    """The breed number (0-based, torchvision's ``category``) of every image of ``split``, in file order."""
    return [int(row[1]) - 1 for row in annotation_rows(root, split)]


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


def _default_size(quick: bool, image_size: int | None) -> int:
    """``image_size`` as given, else 64 pixels in quick mode and 224 in full mode."""
    return (QUICK_IMAGE_SIZE if quick else FULL_IMAGE_SIZE) if image_size is None else image_size


def _target_type(task: str) -> str:
    """``"binary"`` -> ``"binary-category"``, ``"breeds"`` -> ``"category"`` (with a clear error otherwise)."""
    if task not in TASKS:
        raise ValueError(f"task must be one of {sorted(TASKS)} (cat vs dog, or the breeds), got {task!r}")
    return TASKS[task]


def class_names(dataset: OxfordIIITPet, task: str) -> list[str]:
    """Display names, index = label: ``["Cat", "Dog"]`` or ``["Abyssinian", "American Bulldog", ...]``."""
    return list(dataset.bin_classes if _target_type(task) == "binary-category" else dataset.classes)


def pets_datasets(task: str = "binary", image_size: int | None = None, quick: bool | None = None,
                  pretrained_norm: bool = True, augment: bool = True) -> tuple[Subset, Subset, list[str]]:
    """The training and validation sets and the class names: ``(train_ds, valid_ds, class_names)``.

    ``task`` is ``"binary"`` (cat vs dog) or ``"breeds"``; ``image_size`` defaults to 224 (full mode)
    or 64 (quick mode); ``quick`` defaults to the course's mode; ``pretrained_norm`` picks
    ImageNet normalisation (see ``norm_stats``); ``augment=False`` trains on un-augmented
    images (handy to show overfitting). Both sets are slices of the ``trainval`` split (see
    ``train_valid_indices``); ``dataset[i]`` is ``(image_tensor, label)``.
    """
    target = _target_type(task)
    quick = is_quick() if quick is None else quick
    image_size = _default_size(quick, image_size)
    root = pets_root(quick)
    mean, std = norm_stats(pretrained_norm)
    train_tf = train_transform(image_size, mean, std) if augment else valid_transform(image_size, mean, std)
    train_all = OxfordIIITPet(root, split="trainval", target_types=target, transform=train_tf)
    valid_all = OxfordIIITPet(root, split="trainval", target_types=target,
                              transform=valid_transform(image_size, mean, std))
    train_idx, valid_idx = train_valid_indices(split_labels(root, "trainval"))
    return Subset(train_all, train_idx), Subset(valid_all, valid_idx), class_names(train_all, task)


def pets_test_dataset(task: str = "binary", image_size: int | None = None, quick: bool | None = None,
                      pretrained_norm: bool = True) -> OxfordIIITPet:
    """The ``test`` split with validation preprocessing: for one final number, after all choices are made."""
    target = _target_type(task)
    quick = is_quick() if quick is None else quick
    image_size = _default_size(quick, image_size)
    mean, std = norm_stats(pretrained_norm)
    return OxfordIIITPet(pets_root(quick), split="test", target_types=target,
                         transform=valid_transform(image_size, mean, std))


def loader_kwargs(device: torch.device | str, train: bool, quick: bool = False) -> dict:
    """``DataLoader`` settings that suit ``device``, decided in this one place.

    - ``shuffle`` and ``drop_last`` for training only (dropping a ragged last batch avoids a
      batch of one image, which BatchNorm cannot train on);
    - ``num_workers``: background processes decode and augment the next batches while the
      model trains: one per CPU core (2 on Colab), at most 4, and at most 2 on Windows and
      macOS, where each one starts a new Python (``env.worker_count``); none in quick mode,
      where starting the processes would take longer than the work;
    - ``persistent_workers`` (training only) keeps those processes alive from one epoch to the
      next; a validation loader's workers stop after each pass instead of sitting in memory
      while the next epoch trains;
    - ``pin_memory`` (CUDA only) puts batches in page-locked memory, so that copying them to the
      GPU with ``tensor.to(device, non_blocking=True)`` can overlap with computation.
      ``training.move_batch`` does that copy.
    """
    workers = 0 if quick else worker_count()
    return {
        "shuffle": train,
        "drop_last": train,
        "num_workers": workers,
        "persistent_workers": train and workers > 0,
        "pin_memory": torch.device(device).type == "cuda",
    }


def pets_dataloaders(task: str = "binary", image_size: int | None = None, batch_size: int = 64,
                     quick: bool | None = None, pretrained_norm: bool = True, device: torch.device | str | None = None,
                     augment: bool = True) -> tuple[DataLoader, DataLoader, list[str]]:
    """What lessons 5 and 6 call: ``train_dl, valid_dl, class_names = pets_dataloaders("breeds")``.

    The arguments are those of ``pets_datasets``, plus ``batch_size`` and the ``device`` the
    model trains on (default: the fastest one), which decides the loader settings
    (``loader_kwargs``). Each batch is ``(images, labels)``: ``batch_size x 3 x image_size x image_size``
    floats and ``batch_size`` class numbers. The validation loader uses twice the batch size
    (no gradients are kept, so there is room).
    """
    quick = is_quick() if quick is None else quick
    device = pick_device() if device is None else device
    train_ds, valid_ds, names = pets_datasets(task, image_size, quick, pretrained_norm, augment)
    if batch_size > len(train_ds):
        raise ValueError(f"batch_size={batch_size} is larger than the {len(train_ds)} training images; "
                         "choose a smaller batch size")
    train_dl = DataLoader(train_ds, batch_size=batch_size, **loader_kwargs(device, train=True, quick=quick))
    valid_dl = DataLoader(valid_ds, batch_size=2 * batch_size, **loader_kwargs(device, train=False, quick=quick))
    return train_dl, valid_dl, names


def pets_test_loader(task: str = "binary", image_size: int | None = None, batch_size: int = 128,
                     quick: bool | None = None, pretrained_norm: bool = True,
                     device: torch.device | str | None = None) -> DataLoader:
    """A loader over ``pets_test_dataset``, in file order (class names as from ``pets_dataloaders``)."""
    quick = is_quick() if quick is None else quick
    device = pick_device() if device is None else device
    test_ds = pets_test_dataset(task, image_size, quick, pretrained_norm)
    return DataLoader(test_ds, batch_size=batch_size, **loader_kwargs(device, train=False, quick=quick))
