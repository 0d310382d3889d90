"""torchvision models, with ImageNet weights when they can be had.

Pretrained weights are a download (45-85 MB for a ResNet). In quick mode, or when the
download fails (offline, firewall), the model is built with random weights instead and
a note says so: the notebook keeps running, and its numbers are those of an untrained
network, which the note makes clear.
"""

from __future__ import annotations

import torch
import torchvision
from torch import nn


def build_resnet(
    arch: str = "resnet18",
    pretrained: bool = True,
    num_classes: int | None = None,
) -> tuple[nn.Module, bool]:
    """Build a torchvision ResNet; return ``(model, loaded_pretrained_weights)``.

    ``pretrained=True`` asks for the default ImageNet weights through torchvision's
    weights API (downloaded once into torch's cache). ``num_classes`` replaces the
    final layer (``model.fc``) with a new, randomly initialised one of that size.
    """
    weights = torchvision.models.get_model_weights(arch).DEFAULT if pretrained else None
    model, loaded = None, False
    if weights is not None:
        try:
            model = torchvision.models.get_model(arch, weights=weights)
            loaded = True
        except Exception as e:  # offline, blocked, or a damaged cached file
            cache = f"{torch.hub.get_dir()}/checkpoints/"
            print(
                f"NOTE: could not load the ImageNet weights for {arch} ({type(e).__name__}: {e}).\n"
                f"Using random weights instead: the code runs, but this network has learned nothing yet.\n"
                f"To fix: connect to the internet and rerun, or download {weights.url}\n"
                f"yourself and put the file in {cache}"
            )
    if model is None:
        model = torchvision.models.get_model(arch, weights=None)
    if num_classes is not None:
        model.fc = nn.Linear(model.fc.in_features, num_classes)
    return model, loaded


def count_parameters(model: nn.Module, trainable_only: bool = False) -> int:
    """How many numbers the model learns (``trainable_only`` skips frozen ones)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)
