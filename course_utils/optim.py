"""How the weights move: layer groups, freezing, learning rates, AdamW and one-cycle (lessons 4 to 7).

1. **Layer groups** - a model is cut into groups, from the early layers (the *body*) to the last
   one (the *head*). The convention, in ``layer_groups``:

   - a torchvision ResNet gives three groups: ``conv1 .. layer2``, ``layer3 .. layer4``, ``fc``;
   - any other model with an ``fc`` or ``head`` attribute: everything else, then that head;
   - an ``nn.Sequential``: its layers up to the last one that has parameters, then that one;
   - anything else is one group (pass ``groups=[...]`` yourself to split it).

   ``freeze`` stops training every group but the head (normalisation layers keep training, as
   in fastai); ``unfreeze`` trains everything again. Lesson 5 uses both.
2. **The optimiser** - AdamW, with one learning rate per layer group (discriminative learning
   rates: ``lr=slice(1e-5, 1e-3)`` spreads the rates geometrically from the first group to the
   head) and no weight decay on biases and normalisation layers; fused on the CPU and CUDA.
3. **The one-cycle schedule** - torch's ``OneCycleLR`` with fastai's defaults (lesson 4).

``training.fit`` builds its optimiser and schedule with these two functions.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import torch
from torch import nn

# Normalisation layers: they keep training when the body is frozen, and get no weight decay.
NORM_TYPES = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.InstanceNorm1d, nn.InstanceNorm2d,
              nn.InstanceNorm3d, nn.LayerNorm, nn.GroupNorm)

_RESNET_PARTS = ("conv1", "bn1", "layer1", "layer2", "layer3", "layer4", "fc")


def layer_groups(model: nn.Module) -> list[nn.Module]:
    """Cut ``model`` into layer groups, from the first layers (the body) to the head (last).

    See the module's docstring for the convention. Each group is a module that holds layers of
    ``model`` itself (not copies), so freezing a group freezes those layers in the model.
    """
    if all(hasattr(model, part) for part in _RESNET_PARTS):  # a torchvision ResNet, as fastai splits it
        groups = [nn.Sequential(model.conv1, model.bn1, model.layer1, model.layer2),
                  nn.Sequential(model.layer3, model.layer4), model.fc]
    elif isinstance(getattr(model, "fc", None), nn.Module) or isinstance(getattr(model, "head", None), nn.Module):
        head_name = "fc" if isinstance(getattr(model, "fc", None), nn.Module) else "head"
        body = [child for name, child in model.named_children() if name != head_name]
        groups = [nn.Sequential(*body), getattr(model, head_name)]
    elif isinstance(model, nn.Sequential) and len(model) > 1:
        with_params = [i for i, layer in enumerate(model) if any(True for _ in layer.parameters())]
        last = with_params[-1] if with_params else len(model) - 1
        groups = [model[:last], model[last:]] if last > 0 else [model]
    else:
        groups = [model]
    _check_groups_cover(model, groups)
    return groups


def _check_groups_cover(model: nn.Module, groups: Sequence[nn.Module]) -> None:
    """Every parameter of ``model`` must be in exactly one group, or training would skip some."""
    in_groups = [id(p) for group in groups for p in group.parameters()]
    in_model = {id(p) for p in model.parameters()}
    if len(in_groups) != len(set(in_groups)) or set(in_groups) != in_model:
        raise ValueError(
            "the layer groups do not hold each parameter of the model exactly once; "
            "pass groups=[...] with modules that together hold every parameter once"
        )


def freeze(model: nn.Module, groups: Sequence[nn.Module] | None = None) -> None:
    """Train only the head (the last group): the body's weights stay as they are.

    Normalisation layers (BatchNorm...) in the body keep training, as in fastai: their few
    parameters adapt the pretrained features to the new data's statistics cheaply.
    """
    groups = list(groups) if groups is not None else layer_groups(model)
    if len(groups) < 2:
        raise ValueError(
            f"cannot tell the body from the head of {type(model).__name__}: give it an `fc` or `head` "
            "attribute, make it an nn.Sequential, or pass groups=[body, head]"
        )
    for group in groups[:-1]:
        for module in group.modules():
            keeps_training = isinstance(module, NORM_TYPES)
            for p in module.parameters(recurse=False):
                p.requires_grad_(keeps_training)
    for p in groups[-1].parameters():
        p.requires_grad_(True)


def unfreeze(model: nn.Module) -> None:
    """Train every parameter of the model again."""
    for p in model.parameters():
        p.requires_grad_(True)


def spread_lrs(lr: float | slice | Sequence[float], n_groups: int) -> list[float]:
    """One learning rate per layer group, as fastai reads them.

    - a number: the same rate for every group;
    - ``slice(low, high)``: rates spread geometrically from ``low`` (first group) to ``high`` (head);
    - ``slice(high)``: ``high / 10`` for the body groups and ``high`` for the head;
    - a list: one rate per group, as given.
    """
    if isinstance(lr, slice):
        if lr.stop is None:
            raise ValueError("a slice of learning rates needs an upper end, e.g. slice(1e-5, 1e-3)")
        if n_groups == 1:
            return [float(lr.stop)]
        if lr.start is None:
            return [lr.stop / 10] * (n_groups - 1) + [float(lr.stop)]
        ratio = lr.stop / lr.start
        return [lr.start * ratio ** (i / (n_groups - 1)) for i in range(n_groups)]
    if isinstance(lr, Sequence):
        if len(lr) != n_groups:
            raise ValueError(f"got {len(lr)} learning rates for {n_groups} layer groups")
        return [float(x) for x in lr]
    return [float(lr)] * n_groups


def no_weight_decay(model: nn.Module) -> set[int]:
    """The ids of the parameters that should not be decayed: biases and normalisation layers.

    Weight decay pulls weights towards zero to keep the model simple; a bias or a BatchNorm
    scale is a single number per channel that should sit wherever the data puts it.
    """
    skip = set()
    for module in model.modules():
        if isinstance(module, NORM_TYPES):
            skip.update(id(p) for p in module.parameters(recurse=False))
        elif isinstance(getattr(module, "bias", None), nn.Parameter):
            skip.add(id(module.bias))
    return skip


def make_optimizer(
    model: nn.Module,
    lr: float | slice | Sequence[float] = 1e-3,
    weight_decay: float = 0.01,
    groups: Sequence[nn.Module] | None = None,
    betas: tuple[float, float] = (0.9, 0.99),
    eps: float = 1e-5,
) -> torch.optim.AdamW:
    """AdamW over every parameter of ``model``, with two optimiser groups per layer group.

    In each layer group, weights are decayed and biases/normalisation parameters are not; both
    get the group's learning rate (see ``spread_lrs``). One learning rate for everything needs
    no layer groups at all: the whole model is then one group. Frozen parameters are included
    too: they have no gradient, so AdamW leaves them alone until they are unfrozen. Each
    optimiser group remembers its ``layer_group`` number. ``betas`` and ``eps`` are fastai's defaults.
    Make it after moving the model to its device: where every parameter is on the CPU or a CUDA
    GPU, AdamW runs *fused* (see ``fused_adamw_ok``).
    """
    one_rate = not isinstance(lr, (slice, Sequence))
    if groups is None:
        groups = [model] if one_rate else layer_groups(model)
    groups = list(groups)
    _check_groups_cover(model, groups)
    lrs = spread_lrs(lr, len(groups))
    skip = no_weight_decay(model)
    param_groups = []
    for i, (group, group_lr) in enumerate(zip(groups, lrs)):
        params = list(group.parameters())
        decay = [p for p in params if id(p) not in skip]
        no_decay = [p for p in params if id(p) in skip]
        for ps, wd in ((decay, weight_decay), (no_decay, 0.0)):
            if ps:
                param_groups.append({"params": ps, "lr": group_lr, "weight_decay": wd, "layer_group": i})
    return torch.optim.AdamW(param_groups, lr=lrs[-1], betas=betas, eps=eps, weight_decay=weight_decay,
                             fused=fused_adamw_ok(model.parameters()))


def fused_adamw_ok(parameters: Iterable[torch.Tensor]) -> bool:
    """Whether AdamW may run fused: the same update, in one kernel for all the parameters.

    By default torch's AdamW on the CPU loops over the parameters in Python; fused, a step of a
    ResNet-18 takes about 16 ms instead of 70 on a 2-core CPU. PyTorch has fused AdamW for float
    parameters on CUDA (since 2.0) and on the CPU (since 2.4); elsewhere (Apple's MPS, for one)
    the default stays.
    """
    parameters = list(parameters)
    return bool(parameters) and all(p.is_floating_point() and p.device.type in ("cpu", "cuda") for p in parameters)


def one_cycle(
    optimizer: torch.optim.Optimizer,
    total_steps: int,
    pct_start: float = 0.25,
    div: float = 25.0,
    div_final: float = 1e5,
    moms: tuple[float, float, float] = (0.95, 0.85, 0.95),
) -> torch.optim.lr_scheduler.OneCycleLR:
    """torch's one-cycle schedule with fastai's defaults, for ``total_steps`` batches.

    Each optimiser group's rate (its current ``lr`` is the peak) warms up from ``peak / div``
    to the peak over the first ``pct_start`` of training, then anneals to ``peak / div_final``,
    both along a cosine. Adam's ``beta1`` (its momentum) moves the other way:
    ``moms[0] -> moms[1] -> moms[2]``. (torch divides the final rate by ``div`` first, hence
    ``final_div_factor = div_final / div``.)
    """
    if not 0 < pct_start < 1:
        raise ValueError(f"pct_start must be between 0 and 1, got {pct_start}")
    if moms[0] != moms[2]:
        raise ValueError("torch's one-cycle schedule ends at the momentum it starts with: use moms=(a, b, a)")
    if pct_start * total_steps == 1:  # a warm-up of exactly one step makes torch divide by zero: lengthen it a hair
        pct_start += 1e-6
    return torch.optim.lr_scheduler.OneCycleLR(
        optimizer,
        max_lr=[group["lr"] for group in optimizer.param_groups],
        total_steps=total_steps,
        pct_start=float(pct_start),
        div_factor=div,
        final_div_factor=div_final / div,
        base_momentum=moms[1],
        max_momentum=moms[0],
    )
