"""The notebook's environment (every lesson): which device, which mode, which seed, which folders.

Every lesson's second cell is::

    from course_utils import setup
    env = setup()

which picks the fastest device, seeds every random-number generator and prints one
line saying what it chose, so a learner (and a teacher reading a screenshot) always
knows whether the numbers below came from a GPU run on real data or from quick mode.

Quick mode (``COURSE_QUICK=1``, or automatically when ``CI=true``) runs the same code
on small data with few steps, offline, on a CPU. Its numbers show that the code works;
they are not the lesson's real results.

Data lives in one folder, ``data_dir()``: the repository's ``data/`` folder, or whatever the
``COURSE_DATA`` environment variable names. The few files the course ships are in ``samples_dir()``.
"""

from __future__ import annotations

import multiprocessing
import os
import random
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

DEFAULT_SEED = 42
DATA_ENV_VAR = "COURSE_DATA"
CAP_ENV_VAR = "COURSE_TRAIN_CAP"
CAPPED_BATCH = 4  # under COURSE_TRAIN_CAP, a batch's first 4 photos are all that train or are scored (train_cap)
_TRUE = {"1", "true", "yes", "on"}
_REPO = Path(__file__).resolve().parent.parent  # the course's folder, when course_utils sits in a clone


def is_quick() -> bool:
    """True when the course should run in quick mode.

    ``COURSE_QUICK`` decides when it is set (``1``/``0``); otherwise quick mode is on
    when ``CI=true``, so continuous integration never downloads or trains for long.
    """
    flag = os.environ.get("COURSE_QUICK")
    if flag is not None and flag.strip() != "":
        return flag.strip().lower() in _TRUE
    return os.environ.get("CI", "").strip().lower() in _TRUE


def train_cap() -> int | None:
    """The cap ``COURSE_TRAIN_CAP=N`` puts on training runs, or ``None`` (no cap: how learners run).

    The full-mode rehearsal (``make rehearsal``) runs every lesson on a CPU, where one epoch of
    real-size photos takes minutes. With ``COURSE_TRAIN_CAP=N`` each ``training.fit`` runs at most
    ``N`` epochs, each pass over a data loader in ``training``, ``lr_finder`` and ``interpret``
    stops after ``N`` batches, of which only the first ``CAPPED_BATCH`` photos are used (the
    loader still reads and augments whole batches), and each learning-rate finder stops after
    ``N`` steps. Nothing else changes: the data, the image size, the architecture and the code
    path are those of the lesson, and ``setup()`` prints the cap so the numbers are never
    mistaken for results.
    """
    value = os.environ.get(CAP_ENV_VAR, "").strip()
    if not value:
        return None
    if not value.isdigit() or int(value) < 1:
        raise ValueError(f"{CAP_ENV_VAR} must be a whole number of at least 1 (or unset), got {value!r}")
    return int(value)


def data_dir() -> Path:
    """The folder datasets are downloaded to and read from (created if missing).

    ``$COURSE_DATA`` when set, else the ``data/`` folder of the course repository. A copy of
    ``course_utils`` installed outside a clone falls back to a per-user cache folder.
    """
    override = os.environ.get(DATA_ENV_VAR)
    if override:
        path = Path(override).expanduser()
    else:
        path = _REPO / "data" if (_REPO / "data").is_dir() else Path.home() / ".cache" / "deep-learning-course"
    path.mkdir(parents=True, exist_ok=True)
    return path


def samples_dir() -> Path:
    """The small files shipped with the course (``data/samples/`` in the repository).

    Unlike ``data_dir()`` this ignores ``COURSE_DATA``: the samples travel with the code.
    Their sources and licences are listed in ``data/README.md``.
    """
    return _REPO / "data" / "samples"


def in_colab() -> bool:
    """True inside Google Colab (its kernel imports ``google.colab`` at start-up)."""
    return "google.colab" in sys.modules


def in_jupyter_kernel() -> bool:
    """True when this code runs in a Jupyter kernel (JupyterLab, Notebook, Colab, nbval).

    Only there can widgets and HTML tables be shown; in plain Python or a terminal IPython
    there is no front end to draw them.
    """
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    return shell is not None and getattr(shell, "kernel", None) is not None


def pick_device() -> torch.device:
    """The fastest device present: an NVIDIA GPU (cuda), then Apple's GPU (mps), then the CPU."""
    if torch.cuda.is_available():
        return torch.device("cuda")
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def describe_device(device: torch.device) -> str:
    """A short human name for ``device``, e.g. ``cuda (Tesla T4)`` or ``cpu (2 threads)``."""
    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    if device.type == "mps":
        return "mps (Apple GPU)"
    threads = torch.get_num_threads()
    return f"cpu ({threads} thread{'s' if threads != 1 else ''})"


def cpu_cores() -> int:
    """How many CPU cores this process may use (2 on Colab)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def worker_count() -> int:
    """How many worker processes should load or resize photos: one per core, at most 4, and at most 2 when spawned.

    The one place that decides, for ``pets.loader_kwargs`` (the DataLoader's workers) and
    ``pets_prep.resize_pets`` (the resize pool). On Linux a worker is *forked*: a copy of this
    process, ready in milliseconds. On Windows and macOS it is *spawned*: a fresh Python that
    imports torch again, which takes seconds and hundreds of megabytes each, so a laptop with
    12 cores would start 12 of them (and Windows may run out of its paging file). Four workers
    already decode photos faster than a Colab GPU trains on them; two, where they are spawned,
    keep the start-up short.
    """
    method = multiprocessing.get_start_method(allow_none=True) or multiprocessing.get_all_start_methods()[0]
    limit = 4 if method == "fork" else 2
    return max(1, min(cpu_cores(), limit))


def seed_everything(seed: int = DEFAULT_SEED) -> None:
    """Seed Python's, NumPy's and PyTorch's random-number generators (CPU and GPU) at once.

    The same seed gives the same initial weights, the same shuffles and the same
    augmentations, so a rerun draws the same pictures. (Some GPU kernels stay
    non-deterministic; that is fine for a course.)
    """
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)  # also seeds every CUDA device


@dataclass(frozen=True)
class Env:
    """What ``setup()`` chose. Notebooks read ``env.device`` and ``env.quick``."""

    device: torch.device
    quick: bool
    seed: int
    colab: bool
    train_cap: int | None = None

    def summary(self) -> str:
        mode = "QUICK (small data, few steps: numbers are not real results)" if self.quick else "FULL"
        where = " | on Colab" if self.colab else ""
        cap = (f" | training CAPPED at {self.train_cap} (epochs per fit, batches per pass, finder steps; "
               f"{CAPPED_BATCH} photos per batch; {CAP_ENV_VAR}): numbers are not results") if self.train_cap else ""
        return f"device: {describe_device(self.device)} | mode: {mode} | seed: {self.seed}{where}{cap}"


def setup(seed: int = DEFAULT_SEED, quiet: bool = False) -> Env:
    """Pick the device, seed everything, read the mode, and print one summary line (unless ``quiet``)."""
    seed_everything(seed)
    env = Env(device=pick_device(), quick=is_quick(), seed=seed, colab=in_colab(), train_cap=train_cap())
    if not quiet:
        print(env.summary())
    return env
