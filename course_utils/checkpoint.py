"""Saving a trained classifier so that it can be used later with nothing else at hand (lessons 6, 7).

A checkpoint is one file written with ``torch.save``. It holds only tensors and plain
Python values (no pickled classes), so it loads with ``torch.load(..., weights_only=True)``,
which cannot run code hidden in a file someone sent you. The format::

    {
        "format": "course-checkpoint/1",
        "arch": "resnet34",                        # a torchvision architecture name
        "class_names": ["cat", "dog"],             # index -> name, in output order
        "image_size": 224,                         # validation preprocessing: resize + centre crop
        "mean": [0.485, 0.456, 0.406] or None,     # normalisation used in training (None = none)
        "std":  [0.229, 0.224, 0.225] or None,
        "state_dict": {...},                       # model.state_dict(), tensors on the CPU
        "info": {"epoch": 3, "valid_accuracy": 0.99, ...},  # numbers and strings, for humans
    }

The file is written to a temporary name and renamed, so an interruption never leaves a
half-written checkpoint where a good one was.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from course_utils.download import written_atomically
from course_utils.models import build_resnet

FORMAT = "course-checkpoint/1"


@dataclass
class Checkpoint:
    """What is stored beside the weights: everything needed to rebuild and feed the model."""

    arch: str
    class_names: list[str]
    image_size: int
    mean: list[float] | None = None
    std: list[float] | None = None
    info: dict = field(default_factory=dict)


def save_checkpoint(path: str | Path, model: nn.Module, meta: Checkpoint) -> Path:
    """Write ``model``'s weights and ``meta`` to ``path`` atomically; return the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "format": FORMAT,
        "arch": meta.arch,
        "class_names": list(meta.class_names),
        "image_size": int(meta.image_size),
        "mean": None if meta.mean is None else [float(v) for v in meta.mean],
        "std": None if meta.std is None else [float(v) for v in meta.std],
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "info": dict(meta.info),
    }
    with written_atomically(path) as tmp, open(tmp, "wb") as f:
        torch.save(payload, f)
    return path


def load_checkpoint(path: str | Path, device: torch.device | str = "cpu") -> tuple[nn.Module, Checkpoint]:
    """Rebuild the model stored at ``path`` (safely: ``weights_only=True``), in eval mode on ``device``."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"No checkpoint at {path}. Train and save a model first (lesson 6).")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # damaged file, or one holding arbitrary pickled objects
        raise ValueError(f"{path} is not a checkpoint this course can load safely ({type(e).__name__}: {e})") from None
    found = payload.get("format") if isinstance(payload, dict) else type(payload).__name__
    if found != FORMAT:
        raise ValueError(f"{path} is not a {FORMAT} file (its format is {found!r})")
    meta = Checkpoint(arch=payload["arch"], class_names=list(payload["class_names"]),
                      image_size=payload["image_size"], mean=payload["mean"], std=payload["std"],
                      info=payload.get("info", {}))
    model, _ = build_resnet(meta.arch, pretrained=False, num_classes=len(meta.class_names))
    model.load_state_dict(payload["state_dict"])
    return model.to(device).eval(), meta
