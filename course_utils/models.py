"""torchvision models, with ImageNet weights when they can be had (lessons 1, 2, 5 to 7).

Pretrained weights are a download (45-85 MB for a ResNet). In quick mode, or when the
download fails (offline, firewall), the model is built with random weights instead and
a note says so: the notebook keeps running, and its numbers are those of an untrained
network, which the note makes clear.

``summary(model, input_shape)`` lists each layer with the shape it outputs and how many
parameters it has: the table to look at whenever a model is assembled by hand.
"""

from __future__ import annotations

from dataclasses import dataclass

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


def model_device(model: nn.Module) -> torch.device:
    """The device the model's parameters are on (the CPU for a model without any)."""
    first = next(model.parameters(), None)
    return first.device if first is not None else torch.device("cpu")


def count_parameters(model: nn.Module, trainable_only: bool = False) -> int:
    """How many numbers the model learns (``trainable_only`` skips frozen ones)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


# --- a per-layer summary -------------------------------------------------------------------


@dataclass
class LayerInfo:
    """One row of a ``summary``: a layer, the shape it produced, and the numbers it learns."""

    name: str  # where it sits in the model, e.g. "features.0" ("" for a model that is one layer)
    kind: str  # its class, e.g. "Conv2d"
    output_shape: tuple | None  # for one example, no batch dimension (None: the output is not a tensor)
    parameters: int  # each parameter is counted once (first call), so the rows add up to the total


@dataclass
class ModelSummary:
    """What ``summary`` found; printing it (or leaving it last in a cell) shows the table."""

    input_shape: tuple
    layers: list[LayerInfo]
    total_parameters: int
    trainable_parameters: int

    def table(self) -> str:
        """The summary as a plain-text table."""
        shapes = ["-" if row.output_shape is None else " x ".join(str(s) for s in row.output_shape) or "1"
                  for row in self.layers]
        input_text = " x ".join(str(s) for s in self.input_shape)
        name_w = max([len("layer")] + [len(row.name) for row in self.layers])
        kind_w = max([len("type")] + [len(row.kind) for row in self.layers])
        shape_w = max([len("output shape"), len(input_text)] + [len(s) for s in shapes])
        header = f"{'layer':<{name_w}}  {'type':<{kind_w}}  {'output shape':<{shape_w}}  {'parameters':>10}"
        lines = [header, "-" * len(header),
                 f"{'':<{name_w}}  {'(input)':<{kind_w}}  {input_text:<{shape_w}}  {'':>10}"]
        for row, shape in zip(self.layers, shapes):
            lines.append(f"{row.name:<{name_w}}  {row.kind:<{kind_w}}  {shape:<{shape_w}}  {row.parameters:>10,}")
        lines += ["-" * len(header),
                  f"total parameters: {self.total_parameters:,} (trainable: {self.trainable_parameters:,})",
                  "(shapes are for one example, without the batch dimension)"]
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.table()

    __repr__ = __str__


def summary(model: nn.Module, input_shape: tuple[int, ...]) -> ModelSummary:
    """Run one all-zeros example through ``model`` and record each layer's output shape and parameters.

    ``input_shape`` is the shape of ONE example, without the batch dimension, e.g.
    ``(1, 8, 8)`` for an 8 x 8 grey image or ``(3, 224, 224)`` for a colour photo.
    Layers are the model's innermost modules (``nn.Conv2d``, ``nn.ReLU``, ...), listed in the
    order they run; a layer that runs twice gets two rows. Work done by plain functions
    inside ``forward`` (e.g. ``torch.flatten``) has no row. The model runs in eval mode,
    without gradients, and is put back in the mode it was in.
    """
    input_shape = tuple(int(s) for s in input_shape)
    if not input_shape or any(s < 1 for s in input_shape):
        raise ValueError(f"input_shape must be the positive sizes of one example, e.g. (3, 224, 224); "
                         f"got {input_shape}")
    first = next(model.parameters(), None)
    device = first.device if first is not None else torch.device("cpu")
    dtype = first.dtype if first is not None and first.is_floating_point() else torch.float32

    rows: list[LayerInfo] = []
    counted: set[int] = set()  # ids of parameters already in a row (a layer may run twice, or share weights)

    def record(name: str):
        def hook(module: nn.Module, inputs, output) -> None:
            new = [p for p in module.parameters() if id(p) not in counted]
            counted.update(id(p) for p in new)
            params = sum(p.numel() for p in new)
            shape = tuple(output.shape[1:]) if isinstance(output, torch.Tensor) else None
            rows.append(LayerInfo(name, type(module).__name__, shape, params))
        return hook

    leaves = [(name, m) for name, m in model.named_modules() if next(m.children(), None) is None]
    handles = [m.register_forward_hook(record(name)) for name, m in leaves]
    modes = {m: m.training for m in model.modules()}  # restored one by one (some may be frozen in eval)
    model.eval()
    try:
        with torch.no_grad():
            model(torch.zeros((1, *input_shape), device=device, dtype=dtype))
    except Exception as e:
        raise ValueError(
            f"summary ran the model on one example of shape {input_shape} (batch of 1 added) and it failed: {e}\n"
            "Check that input_shape is the shape of ONE example (e.g. channels, height, width), without the batch "
            "size, and that the model takes inputs of that size (the channels of its first layer, the number of "
            "inputs its first Linear layer expects)."
        ) from e
    finally:
        for handle in handles:
            handle.remove()
        for module, training in modes.items():
            module.train(training)
    total = count_parameters(model)
    return ModelSummary(input_shape, rows, total, count_parameters(model, trainable_only=True))
