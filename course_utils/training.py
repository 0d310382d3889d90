"""Training a model: the optimiser, the one-cycle schedule, and a readable ``fit`` loop.

Lessons 4 to 7 train with the pieces in this file, read from top to bottom:

1. **Metrics** - ``accuracy`` and ``error_rate``; any ``f(outputs, targets) -> number`` works too.
2. **Device choices** - mixed precision and channels-last memory help only on an NVIDIA GPU;
   ``use_cuda_speedups`` is the one place that decides.
3. **Layer groups** - a model is cut into groups, from the early layers (the *body*) to the last
   one (the *head*). The convention, in ``layer_groups``:

   - a torchvision ResNet gives three groups: ``conv1 .. layer2``, ``layer3 .. layer4``, ``fc``;
   - any other model with an ``fc`` or ``head`` attribute: everything else, then that head;
   - an ``nn.Sequential``: its layers up to the last one that has parameters, then that one;
   - anything else is one group (pass ``groups=[...]`` yourself to split it).

   ``freeze`` stops training every group but the head (normalisation layers keep training, as
   in fastai); ``unfreeze`` trains everything again.
4. **The optimiser** - AdamW, with one learning rate per layer group (discriminative learning
   rates: ``lr=slice(1e-5, 1e-3)`` spreads the rates geometrically from the first group to the
   head) and no weight decay on biases and normalisation layers.
5. **The one-cycle schedule** - torch's ``OneCycleLR`` with fastai's defaults.
6. **One training step** and **evaluation** on the validation data.
7. **History** - what ``fit`` returns: a table per epoch, the loss and rate of every batch, a plot.
8. **fit** - the loop itself.

There is no callback system: to change what happens in the loop, read ``fit`` and write your
own loop (lesson 6 does exactly that).
"""

from __future__ import annotations

import contextlib
import html
import math
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import matplotlib.pyplot as plt
import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from course_utils.env import in_jupyter_kernel, pick_device

# ---------------------------------------------------------------------------------------------
# 1. Metrics: each takes the model's outputs (one score per class) and the true class numbers.
# ---------------------------------------------------------------------------------------------


def accuracy(outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """The fraction of examples whose highest-scoring class is the true class."""
    return (outputs.argmax(dim=1) == targets).float().mean()


def error_rate(outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """The fraction of examples the model gets wrong: ``1 - accuracy``."""
    return 1 - accuracy(outputs, targets)


# ---------------------------------------------------------------------------------------------
# 2. Device choices
# ---------------------------------------------------------------------------------------------


def use_cuda_speedups(device: torch.device | str) -> bool:
    """Whether to train with mixed precision and channels-last memory on ``device``.

    Both pay off on NVIDIA GPUs (CUDA): half-precision maths runs on the tensor cores, and
    convolutions prefer channels-last images. On a CPU or an Apple GPU they are slower or not
    supported, so there we keep ordinary 32-bit floats.
    """
    return torch.device(device).type == "cuda"


def move_batch(batch: Sequence[torch.Tensor], device: torch.device,
               channels_last: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """Move an ``(inputs, targets)`` batch to ``device``.

    ``non_blocking`` lets the copy overlap with computation when the loader pins memory (CUDA);
    elsewhere it changes nothing. Image batches (4-D) can be stored channels-last.
    """
    if len(batch) != 2:
        raise ValueError(f"expected each batch to be (inputs, targets), got {len(batch)} items")
    inputs, targets = batch
    if channels_last and inputs.dim() == 4:
        inputs = inputs.to(device, non_blocking=True, memory_format=torch.channels_last)
    else:
        inputs = inputs.to(device, non_blocking=True)
    return inputs, targets.to(device, non_blocking=True)


# ---------------------------------------------------------------------------------------------
# 3. Layer groups, freezing and unfreezing
# ---------------------------------------------------------------------------------------------

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


# ---------------------------------------------------------------------------------------------
# 4. The optimiser: AdamW with per-group learning rates
# ---------------------------------------------------------------------------------------------


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
    get the group's learning rate (see ``spread_lrs``). Frozen parameters are included too:
    they have no gradient, so AdamW leaves them alone until they are unfrozen. Each optimiser
    group remembers its ``layer_group`` number. ``betas`` and ``eps`` are fastai's defaults.
    """
    groups = list(groups) if groups is not None else layer_groups(model)
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
    return torch.optim.AdamW(param_groups, lr=lrs[-1], betas=betas, eps=eps, weight_decay=weight_decay)


# ---------------------------------------------------------------------------------------------
# 5. The one-cycle schedule
# ---------------------------------------------------------------------------------------------


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


# ---------------------------------------------------------------------------------------------
# 6. One training step, and evaluation
# ---------------------------------------------------------------------------------------------


def _autocast(device: torch.device, enabled: bool):
    """Half-precision maths where it is safe (torch decides per operation), or nothing at all."""
    return torch.autocast(device.type, dtype=torch.float16) if enabled else contextlib.nullcontext()


def train_step(
    model: nn.Module,
    inputs: torch.Tensor,
    targets: torch.Tensor,
    loss_fn: Callable,
    optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler,
    mixed_precision: bool = False,
    grad_clip: float | None = None,
) -> torch.Tensor:
    """Forward, loss, backward, (clip), update: one mini-batch. Returns the loss, detached.

    With mixed precision the loss is multiplied by a large factor before ``backward`` so small
    half-precision gradients do not round to zero; the scaler divides it out again before the
    update and skips updates whose gradients overflowed. Without it, the scaler does nothing.
    """
    with _autocast(inputs.device, mixed_precision):
        loss = loss_fn(model(inputs), targets)
    optimizer.zero_grad(set_to_none=True)
    scaler.scale(loss).backward()
    if grad_clip is not None:
        scaler.unscale_(optimizer)  # clip the true gradients, not the scaled ones
        nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
    scaler.step(optimizer)
    scaler.update()
    return loss.detach()


def _length(loader: Iterable) -> int | None:
    """How many batches ``loader`` gives, if it can tell (a progress bar's total)."""
    try:
        return len(loader)
    except TypeError:
        return None


def _metric_names(metrics: Sequence[Callable] | Mapping[str, Callable]) -> dict[str, Callable]:
    """Name each metric: the mapping's keys, or each function's own name."""
    if isinstance(metrics, Mapping):
        return dict(metrics)
    named = {}
    for i, fn in enumerate(metrics):
        name = getattr(getattr(fn, "func", fn), "__name__", "")  # functools.partial keeps .func
        named[name if name and name != "<lambda>" else f"metric{i + 1}"] = fn
    return named


def evaluate(
    model: nn.Module,
    loader: Iterable,
    loss_fn: Callable,
    metrics: Sequence[Callable] | Mapping[str, Callable] = (),
    device: torch.device | str | None = None,
    mixed_precision: bool | None = None,
    progress: bool = False,
) -> dict[str, float]:
    """Average loss and metrics of ``model`` over ``loader``, without training.

    Eval mode makes dropout and BatchNorm behave as at prediction time; inference mode skips
    the bookkeeping for gradients. Averages are weighted by batch size, so a smaller last
    batch counts for what it holds. Numbers stay on the device until the end (one wait).
    """
    device = torch.device(device) if device is not None else next(model.parameters()).device
    if mixed_precision is None:
        mixed_precision = use_cuda_speedups(device)
    named = _metric_names(metrics)
    model.eval()
    total_loss, totals, count = torch.zeros((), device=device), [torch.zeros((), device=device) for _ in named], 0
    bar = tqdm(total=_length(loader), desc="valid", leave=False, disable=not progress)
    with torch.inference_mode(), bar:
        for batch in loader:
            inputs, targets = move_batch(batch, device, channels_last=mixed_precision)
            with _autocast(device, mixed_precision):
                outputs = model(inputs)
                loss = loss_fn(outputs, targets)
            n = len(targets)
            total_loss += loss.float() * n
            outputs = outputs.float()  # metrics see full precision (under mixed precision: one copy, not one each)
            for total, fn in zip(totals, named.values()):
                total += torch.as_tensor(fn(outputs, targets), device=device).float() * n
            count += n
            bar.update()
    if count == 0:
        raise ValueError("the validation loader gave no batches")
    values = torch.stack([total_loss, *totals]).div(count).tolist()
    return dict(zip(["valid_loss", *named], values))


# ---------------------------------------------------------------------------------------------
# 7. History: what fit returns
# ---------------------------------------------------------------------------------------------


@dataclass
class History:
    """What happened during ``fit``.

    ``rows`` holds one dict per finished epoch: ``epoch``, ``train_loss`` (the mean loss of the
    epoch's batches, weighted by their size), ``valid_loss``, each metric, ``time`` in seconds.
    ``batch_losses``, ``batch_lrs`` and ``batch_moms`` hold one number per training batch (the
    rate and momentum of the last group, the head).
    ``best_epoch`` is the epoch with the lowest validation loss; with ``fit(keep_best=True)``,
    ``best_state`` is a copy of the model's ``state_dict`` from that epoch (on the CPU).
    In a notebook the history shows as a table; ``plot()`` draws its curves.
    """

    metric_names: list[str] = field(default_factory=list)
    rows: list[dict[str, float]] = field(default_factory=list)
    batch_losses: list[float] = field(default_factory=list)
    batch_lrs: list[float] = field(default_factory=list)
    batch_moms: list[float] = field(default_factory=list)
    steps_per_epoch: int = 0
    best_epoch: int | None = None
    best_state: dict[str, torch.Tensor] | None = field(default=None, repr=False)
    interrupted: bool = False
    mixed_precision: bool = False

    @property
    def columns(self) -> list[str]:
        return ["epoch", "train_loss", "valid_loss", *self.metric_names, "time"]

    def column(self, name: str) -> list[float]:
        """One column of the table, e.g. ``history.column("valid_loss")``."""
        if name not in self.columns:
            raise KeyError(f"no column {name!r}; the columns are {self.columns}")
        return [row.get(name, math.nan) for row in self.rows]

    @staticmethod
    def _cell(name: str, value: float) -> str:
        if name == "epoch":
            return str(int(value))
        if name == "time":
            return f"{int(value) // 60:02d}:{int(value) % 60:02d}"
        return "-" if value is None or math.isnan(value) else f"{value:.4f}"

    def table(self) -> str:
        """The per-epoch table as plain text, one line per epoch."""
        widths = [max(len(c), 10) for c in self.columns]
        lines = ["  ".join(c.rjust(w) for c, w in zip(self.columns, widths))]
        for row in self.rows:
            lines.append("  ".join(self._cell(c, row.get(c, math.nan)).rjust(w) for c, w in zip(self.columns, widths)))
        if self.interrupted:
            lines.append("(interrupted)")
        return "\n".join(lines)

    def __repr__(self) -> str:
        return self.table()

    def _repr_html_(self) -> str:
        head = "".join(f"<th style='text-align:right'>{html.escape(c)}</th>" for c in self.columns)
        body = "".join(
            "<tr>" + "".join(f"<td style='text-align:right'>{self._cell(c, row.get(c, math.nan))}</td>"
                             for c in self.columns) + "</tr>"
            for row in self.rows
        )
        note = "<caption style='caption-side:bottom'>interrupted</caption>" if self.interrupted else ""
        return f"<table>{note}<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"

    def plot(self, title: str | None = None) -> plt.Figure:
        """Training loss per batch with validation loss per epoch; and, with metrics, metrics per epoch."""
        ncols = 2 if self.metric_names else 1
        fig, axes = plt.subplots(1, ncols, figsize=(6.5 * ncols, 4), squeeze=False)
        ax = axes[0, 0]
        steps = np.arange(1, len(self.batch_losses) + 1)
        ax.plot(steps, self.batch_losses, color="tab:blue", alpha=0.3, lw=1, label="train (each batch)")
        window = max(1, self.steps_per_epoch // 2)
        if len(steps) >= window:  # each mean drawn at the middle of its batches
            middles = np.arange(len(steps) - window + 1) + 1 + (window - 1) / 2
            ax.plot(middles, running_mean(self.batch_losses, window), color="tab:blue", lw=2,
                    label=f"train (mean of {window} batch{'es' if window != 1 else ''})")
        if not all(math.isnan(v) for v in self.column("valid_loss")):
            ends = [row["epoch"] * self.steps_per_epoch for row in self.rows]
            ax.plot(ends, self.column("valid_loss"), "s-", color="tab:orange", label="validation (end of epoch)")
        ax.set_xlabel("training step (batch)")
        ax.set_ylabel("loss")
        ax.set_title("Loss")
        ax.grid(alpha=0.3)
        ax.legend()
        if self.metric_names:
            ax = axes[0, 1]
            epochs = self.column("epoch")
            for name in self.metric_names:
                ax.plot(epochs, self.column(name), "o-", label=name)
            ax.set_xlabel("epoch")
            ax.set_ylabel("value on the validation data")
            ax.set_title("Metrics")
            ax.xaxis.set_major_locator(plt.MaxNLocator(integer=True))
            ax.grid(alpha=0.3)
            ax.legend()
        if title:
            fig.suptitle(title)
        fig.tight_layout()
        return fig


def running_mean(values: Sequence[float], window: int) -> list[float]:
    """The mean of each ``window`` consecutive values: a calmer curve that, drawn at the middle
    of each window, does not lag behind the data (a moving average that only looks back does)."""
    if not 1 <= window <= len(values):
        raise ValueError(f"window must be between 1 and the number of values ({len(values)}), got {window}")
    sums = np.cumsum(np.concatenate([[0.0], np.asarray(values, dtype=np.float64)]))
    return list((sums[window:] - sums[:-window]) / window)


# ---------------------------------------------------------------------------------------------
# 8. fit
# ---------------------------------------------------------------------------------------------


def fit(
    model: nn.Module,
    train_loader: Iterable,
    valid_loader: Iterable | None,
    loss_fn: Callable,
    epochs: int,
    lr: float | slice | Sequence[float] = 1e-3,
    *,
    metrics: Sequence[Callable] | Mapping[str, Callable] = (),
    weight_decay: float = 0.01,
    one_cycle_schedule: bool = True,
    pct_start: float = 0.25,
    div: float = 25.0,
    div_final: float = 1e5,
    moms: tuple[float, float, float] = (0.95, 0.85, 0.95),
    grad_clip: float | None = None,
    groups: Sequence[nn.Module] | None = None,
    device: torch.device | str | None = None,
    cuda_speedups: bool | None = None,
    keep_best: bool = False,
    progress: bool = True,
    show_table: bool = True,
) -> History:
    """Train ``model`` for ``epochs`` passes over ``train_loader``; return its ``History``.

    Each batch must be ``(inputs, targets)``. ``lr`` is the peak learning rate: a number, or one
    per layer group (``slice(low, high)`` or a list, see ``spread_lrs``). With
    ``one_cycle_schedule=True`` (the default) the rate follows fastai's one-cycle policy (see
    ``one_cycle``); with ``False`` it stays at ``lr``. A new AdamW optimiser is made for each call.

    After each epoch the model is scored on ``valid_loader`` (skipped when it is ``None``) and
    a row is added to the table. ``device`` defaults to the fastest one present; the model is
    moved there. ``cuda_speedups`` (mixed precision + channels-last) defaults to "only on CUDA".
    ``progress=False`` hides the progress bars, ``show_table=False`` the table.
    Interrupting (Ctrl+C, or the notebook's stop button) ends training cleanly and returns the
    history so far. The model is left in eval mode, ready to predict.
    """
    device = torch.device(device) if device is not None else pick_device()
    speedups = use_cuda_speedups(device) if cuda_speedups is None else cuda_speedups
    model.to(device)
    if speedups:
        model.to(memory_format=torch.channels_last)
    steps_per_epoch = _length(train_loader)
    if steps_per_epoch is None:
        raise TypeError("fit needs a train_loader with a length (a DataLoader has one)")
    if epochs < 1 or steps_per_epoch < 1:
        raise ValueError(f"nothing to train: epochs={epochs}, batches per epoch={steps_per_epoch}")

    optimizer = make_optimizer(model, lr, weight_decay=weight_decay, groups=groups)
    scheduler = one_cycle(optimizer, epochs * steps_per_epoch, pct_start, div, div_final, moms) \
        if one_cycle_schedule else None
    scaler = torch.amp.GradScaler(device.type, enabled=speedups)
    named_metrics = _metric_names(metrics)
    history = History(metric_names=list(named_metrics), steps_per_epoch=steps_per_epoch,
                      mixed_precision=speedups)
    best_loss = math.inf

    # The table: redrawn in place in a notebook, printed line by line in a terminal.
    table = None
    if show_table and in_jupyter_kernel():
        from IPython.display import display
        table = display(history, display_id=True)
    elif show_table:
        tqdm.write(history.table())

    epoch_losses: list[torch.Tensor] = []
    epoch_sizes: list[int] = []
    try:
        for epoch in tqdm(range(1, epochs + 1), desc="epochs", disable=not progress):
            start = time.perf_counter()
            model.train()
            epoch_losses, epoch_sizes = [], []
            # The bar is told the total and advanced by hand: wrapping the loader in tqdm.auto would
            # start an extra, unused pass over it (tqdm issue #1598), shifting its shuffle.
            bar = tqdm(total=steps_per_epoch, desc=f"epoch {epoch}", leave=False, disable=not progress)
            with bar:
                for step, batch in enumerate(train_loader):
                    inputs, targets = move_batch(batch, device, channels_last=speedups)
                    history.batch_lrs.append(optimizer.param_groups[-1]["lr"])
                    history.batch_moms.append(optimizer.param_groups[-1]["betas"][0])
                    loss = train_step(model, inputs, targets, loss_fn, optimizer, scaler, speedups, grad_clip)
                    if scheduler is not None:
                        scheduler.step()
                    epoch_losses.append(loss)  # kept on the device: reading it now would make the GPU wait
                    epoch_sizes.append(len(targets))
                    if progress and step % 25 == 0:
                        bar.set_postfix(loss=f"{loss.item():.3f}", refresh=False)
                    bar.update()

            losses = torch.stack(epoch_losses).float().tolist()  # one wait per epoch
            history.batch_losses += losses
            epoch_losses = []
            train_loss = sum(loss * n for loss, n in zip(losses, epoch_sizes)) / sum(epoch_sizes)
            row = {"epoch": epoch, "train_loss": train_loss}
            if valid_loader is not None:
                row.update(evaluate(model, valid_loader, loss_fn, named_metrics, device, speedups, progress))
            row["time"] = time.perf_counter() - start
            history.rows.append(row)

            if row.get("valid_loss", math.inf) < best_loss:
                best_loss, history.best_epoch = row["valid_loss"], epoch
                if keep_best:
                    history.best_state = {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}
            if table is not None:
                table.update(history)
            elif show_table:
                tqdm.write(history.table().splitlines()[-1])
    except KeyboardInterrupt:
        history.batch_losses += torch.stack(epoch_losses).float().tolist() if epoch_losses else []
        del history.batch_lrs[len(history.batch_losses):]  # drop the rate of a batch that never finished
        del history.batch_moms[len(history.batch_losses):]
        history.interrupted = True
        print(f"Interrupted: kept the {len(history.rows)} finished epoch(s) and "
              f"{len(history.batch_losses)} batch losses.")
        if table is not None:
            table.update(history)
    model.eval()
    return history


# ---------------------------------------------------------------------------------------------
# 9. fine_tune: transfer learning in two phases
# ---------------------------------------------------------------------------------------------


def fine_tune(
    model: nn.Module,
    train_loader: Iterable,
    valid_loader: Iterable | None,
    loss_fn: Callable,
    epochs: int,
    base_lr: float = 2e-3,
    *,
    freeze_epochs: int = 1,
    lr_mult: float = 100.0,
    groups: Sequence[nn.Module] | None = None,
    **fit_kwargs,
) -> tuple[History, History | None]:
    """Adapt a pretrained model to a new task: first the new head alone, then everything.

    1. **Frozen**: only the head (and normalisation layers) train, for ``freeze_epochs`` at
       ``base_lr``. The random new head learns to use the pretrained features without its
       large early errors wrecking them.
    2. **Unfrozen**: every layer trains for ``epochs``, at half the rate, spread over the layer
       groups from ``base_lr / 2 / lr_mult`` (early layers: general features, barely changed)
       to ``base_lr / 2`` (the head).

    These are fastai's defaults, including the one-cycle shapes of each phase (a long warm-up
    while frozen, ``pct_start=0.3`` and ``div=5`` after). Other keyword arguments go to ``fit``.
    Returns both histories (the second is ``None`` if the first phase was interrupted).
    """
    freeze(model, groups)
    frozen = fit(model, train_loader, valid_loader, loss_fn, freeze_epochs, lr=base_lr,
                 pct_start=0.99, groups=groups, **fit_kwargs)
    if frozen.interrupted:
        return frozen, None
    unfreeze(model)
    lr = base_lr / 2
    unfrozen = fit(model, train_loader, valid_loader, loss_fn, epochs, lr=slice(lr / lr_mult, lr),
                   pct_start=0.3, div=5.0, groups=groups, **fit_kwargs)
    return frozen, unfrozen
