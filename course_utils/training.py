"""Training a model: metrics, one step, one epoch, evaluation, ``fit`` and ``fine_tune`` (lessons 4 to 7).

Lesson 6 writes the training loop by hand; this is the same loop, read from top to bottom:

1. **Metrics** - ``accuracy`` and ``error_rate``; any ``f(outputs, targets) -> number`` works too.
2. **CUDA speed-ups** - mixed precision, channels-last memory and cuDNN's autotuner help only
   on an NVIDIA GPU; ``use_cuda_speedups`` is the one place that decides.
3. **One training step** - forward, loss, backward, (clip), update.
4. **One epoch** - ``train_one_epoch``: a step for every batch, then the schedule's step.
5. **Evaluation** - the validation loss and metrics, without training.
6. **fit** - epochs of ``train_one_epoch`` and ``evaluate``, with AdamW and the one-cycle
   schedule of ``optim``, a table that grows after each epoch (``history``), and a clean stop
   on Ctrl+C.
7. **fine_tune** - transfer learning in two phases (lesson 5): the head alone, then everything.

There is no callback system: to change what happens in the loop, read ``fit`` and write your
own loop (lesson 6 does exactly that).
"""

from __future__ import annotations

import contextlib
import itertools
import time
from collections.abc import Callable, Iterable, Mapping, Sequence

import torch
from torch import nn
from tqdm.auto import tqdm

from course_utils.env import CAPPED_BATCH, pick_device, train_cap
from course_utils.history import History, LiveTable
from course_utils.models import model_device
from course_utils.optim import freeze, make_optimizer, one_cycle, unfreeze

# --- 1. Metrics: each takes the model's outputs (one score per class) and the true class numbers ---


def accuracy(outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """The fraction of examples whose highest-scoring class is the true class."""
    return (outputs.argmax(dim=1) == targets).float().mean()


def error_rate(outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """The fraction of examples the model gets wrong: ``1 - accuracy``."""
    return 1 - accuracy(outputs, targets)


# --- 2. CUDA speed-ups ---------------------------------------------------------------------------


def use_cuda_speedups(device: torch.device | str) -> bool:
    """Whether to train with the CUDA speed-ups on ``device``: only on an NVIDIA GPU.

    The speed-ups are mixed precision (half-precision maths on the tensor cores, where it is
    safe), channels-last memory (the layout convolutions prefer there) and, in ``fit``, cuDNN's
    autotuner (``cudnn.benchmark``: it times the convolution algorithms once for the fixed image
    size and keeps the fastest). On a CPU or an Apple GPU they are slower or not supported.
    """
    return torch.device(device).type == "cuda"


def move_batch(batch: Sequence[torch.Tensor], device: torch.device,
               channels_last: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """Move an ``(inputs, targets)`` batch to ``device``.

    On CUDA the copy is ``non_blocking``: from the pinned memory the loader gives there, it
    overlaps with computation. Elsewhere it is an ordinary copy (asynchronous copies are known
    to corrupt data on Apple's GPU). Image batches (4-D) can be stored channels-last.
    """
    if len(batch) != 2:
        raise ValueError(f"expected each batch to be (inputs, targets), got {len(batch)} items")
    inputs, targets = batch
    device = torch.device(device)
    asynchronous = device.type == "cuda"
    layout = torch.channels_last if channels_last and inputs.dim() == 4 else torch.preserve_format
    inputs = inputs.to(device, non_blocking=asynchronous, memory_format=layout)
    return inputs, targets.to(device, non_blocking=asynchronous)


def _autocast(device: torch.device, enabled: bool):
    """Half-precision maths where it is safe (torch decides per operation), or nothing at all."""
    return torch.autocast(device.type, dtype=torch.float16) if enabled else contextlib.nullcontext()


# --- 3. One training step ------------------------------------------------------------------------


def train_step(
    model: nn.Module,
    inputs: torch.Tensor,
    targets: torch.Tensor,
    loss_fn: Callable,
    optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler,
    cuda_speedups: bool = False,
    grad_clip: float | None = None,
) -> torch.Tensor:
    """Forward, loss, backward, (clip), update: one mini-batch. Returns the loss, detached.

    With the CUDA speed-ups (mixed precision) the loss is multiplied by a large factor before
    ``backward`` so small half-precision gradients do not round to zero; the scaler divides it
    out again before the update and skips updates whose gradients overflowed. Without them,
    the scaler does nothing.
    """
    with _autocast(inputs.device, cuda_speedups):
        loss = loss_fn(model(inputs), targets)
    optimizer.zero_grad(set_to_none=True)
    scaler.scale(loss).backward()
    if grad_clip is not None:
        scaler.unscale_(optimizer)  # clip the true gradients, not the scaled ones
        nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
    scaler.step(optimizer)
    scaler.update()
    return loss.detach()


# --- 4. One epoch --------------------------------------------------------------------------------


def _length(loader: Iterable) -> int | None:
    """How many batches a pass over ``loader`` gives, if it can tell (a progress bar's total)."""
    try:
        n = len(loader)
    except TypeError:
        return None
    cap = train_cap()
    return n if cap is None else min(n, cap)


def batches(loader: Iterable) -> Iterable:
    """The batches of one pass over ``loader``: all of them, unless ``COURSE_TRAIN_CAP`` cuts the pass short.

    (Only the full-mode rehearsal sets that cap, which also keeps the first ``CAPPED_BATCH``
    photos of each batch; see ``env.train_cap``.)
    """
    cap = train_cap()
    if cap is None:
        return loader
    return (type(batch)(part[:CAPPED_BATCH] for part in batch) for batch in itertools.islice(loader, cap))


def train_one_epoch(
    model: nn.Module,
    loader: Iterable,
    loss_fn: Callable,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler | None = None,
    scaler: torch.amp.GradScaler | None = None,
    *,
    cuda_speedups: bool = False,
    grad_clip: float | None = None,
    history: History | None = None,
    quiet: bool = False,
) -> float:
    """One pass over ``loader``: ``train_step`` on every batch, then the schedule's step.

    Returns the epoch's training loss: the mean over its batches, weighted by their size. With a
    ``history``, each batch's loss, learning rate and momentum are added to it, also when the
    epoch is interrupted. The losses stay on the device until the epoch ends (one wait for the
    GPU per epoch, not one per batch).
    """
    device = model_device(model)
    scaler = scaler or torch.amp.GradScaler(device.type, enabled=False)
    model.train()
    losses, sizes = [], []
    # The bar is told the total and advanced by hand: wrapping the loader in tqdm.auto would
    # start an extra, unused pass over it (tqdm issue #1598), shifting its shuffle.
    bar = tqdm(total=_length(loader), desc="train", leave=False, disable=quiet)
    try:
        with bar:
            for step, batch in enumerate(batches(loader)):
                inputs, targets = move_batch(batch, device, channels_last=cuda_speedups)
                if history is not None:
                    history.record_rate(optimizer)
                scale = scaler.get_scale() if scaler.is_enabled() else None
                loss = train_step(model, inputs, targets, loss_fn, optimizer, scaler, cuda_speedups, grad_clip)
                if scheduler is not None and (scale is None or scaler.get_scale() >= scale):
                    scheduler.step()  # an update skipped by mixed precision (overflow) does not advance it
                losses.append(loss)
                sizes.append(len(targets))
                if not quiet and step % 25 == 0:
                    bar.set_postfix(loss=f"{loss.item():.3f}", refresh=False)
                bar.update()
    finally:
        values = torch.stack(losses).float().tolist() if losses else []
        if history is not None:
            history.add_batch_losses(values)
    if not values:
        raise ValueError("the training loader gave no batches")
    return sum(v * n for v, n in zip(values, sizes)) / sum(sizes)


# --- 5. Evaluation -------------------------------------------------------------------------------


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
    cuda_speedups: bool | None = None,
    quiet: bool = True,
) -> dict[str, float]:
    """Average loss and metrics of ``model`` over ``loader``, without training.

    Eval mode makes dropout and BatchNorm behave as at prediction time; inference mode skips
    the bookkeeping for gradients. Averages are weighted by batch size, so a smaller last
    batch counts for what it holds. Numbers stay on the device until the end (one wait).
    """
    device = torch.device(device) if device is not None else model_device(model)
    cuda_speedups = use_cuda_speedups(device) if cuda_speedups is None else cuda_speedups
    named = _metric_names(metrics)
    model.eval()
    total_loss, totals, count = torch.zeros((), device=device), [torch.zeros((), device=device) for _ in named], 0
    bar = tqdm(total=_length(loader), desc="valid", leave=False, disable=quiet)
    with torch.inference_mode(), bar:
        for batch in batches(loader):
            inputs, targets = move_batch(batch, device, channels_last=cuda_speedups)
            with _autocast(device, cuda_speedups):
                outputs = model(inputs)
                loss = loss_fn(outputs, targets)
            n = len(targets)
            total_loss += loss.float() * n
            outputs = outputs.float()  # metrics see full precision (one copy for all of them)
            for total, fn in zip(totals, named.values()):
                total += torch.as_tensor(fn(outputs, targets), device=device).float() * n
            count += n
            bar.update()
    if count == 0:
        raise ValueError("the validation loader gave no batches")
    values = torch.stack([total_loss, *totals]).div(count).tolist()
    return dict(zip(["valid_loss", *named], values))


# --- 6. fit --------------------------------------------------------------------------------------


def _say_how_long_on_a_cpu(device: torch.device, epochs: int, first_epoch_seconds: float) -> None:
    """After the first epoch on a CPU, say how long the rest will take when it is more than a few minutes."""
    left = (epochs - 1) * first_epoch_seconds
    if device.type == "cpu" and left > 300:
        tqdm.write(f"On the CPU: the first epoch took {first_epoch_seconds / 60:.0f} min, so the "
                   f"{epochs - 1} epochs left will take about {left / 60:.0f} min. For a fast pass, use quick mode "
                   "(COURSE_QUICK=1); for real speed, a GPU (on Colab: Runtime > Change runtime type > GPU).")


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
    grad_clip: float | None = None,
    groups: Sequence[nn.Module] | None = None,
    device: torch.device | str | None = None,
    cuda_speedups: bool | None = None,
    keep_best: bool = False,
    quiet: bool = False,
) -> History:
    """Train ``model`` for ``epochs`` passes over ``train_loader``; return its ``History``.

    Each batch must be ``(inputs, targets)``. ``lr`` is the peak learning rate: a number, or one
    per layer group (``slice(low, high)`` or a list, see ``optim.spread_lrs``). With
    ``one_cycle_schedule=True`` (the default) the rate follows fastai's one-cycle policy,
    warming up over the first ``pct_start`` of the steps from ``lr / div`` (see
    ``optim.one_cycle``); with ``False`` it stays at ``lr``. A new AdamW optimiser is made for
    each call (``optim.make_optimizer``).

    After each epoch the model is scored on ``valid_loader`` (skipped when it is ``None``) and
    a row is added to the table. ``device`` defaults to the fastest one present; the model is
    moved there. ``cuda_speedups`` defaults to "only on CUDA" (see ``use_cuda_speedups``).
    ``keep_best`` keeps a copy of the weights of the epoch with the lowest validation loss
    (``history.best_state``). ``quiet=True`` shows neither progress bars nor the table.
    Interrupting (Ctrl+C, or the notebook's stop button) ends training cleanly and returns the
    history so far. The model is left in eval mode, ready to predict.
    """
    device = torch.device(device) if device is not None else pick_device()
    speedups = use_cuda_speedups(device) if cuda_speedups is None else cuda_speedups
    epochs = epochs if train_cap() is None else min(epochs, train_cap())  # only the rehearsal caps (env.train_cap)
    steps_per_epoch = _length(train_loader)
    if steps_per_epoch is None:
        raise TypeError("fit needs a train_loader with a length (a DataLoader has one)")
    if epochs < 1 or steps_per_epoch < 1:
        raise ValueError(f"nothing to train: epochs={epochs}, batches per epoch={steps_per_epoch}")
    model.to(device, memory_format=torch.channels_last if speedups else torch.preserve_format)
    if speedups and device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # the images keep one size: time the algorithms once

    optimizer = make_optimizer(model, lr, weight_decay=weight_decay, groups=groups)
    scheduler = one_cycle(optimizer, epochs * steps_per_epoch, pct_start, div) if one_cycle_schedule else None
    scaler = torch.amp.GradScaler(device.type, enabled=speedups)
    named_metrics = _metric_names(metrics)
    history = History(metric_names=list(named_metrics), steps_per_epoch=steps_per_epoch, cuda_speedups=speedups)
    table = LiveTable(history, quiet)
    try:
        for epoch in tqdm(range(1, epochs + 1), desc="epochs", disable=quiet):
            start = time.perf_counter()
            row = {"epoch": epoch, "train_loss": train_one_epoch(
                model, train_loader, loss_fn, optimizer, scheduler, scaler,
                cuda_speedups=speedups, grad_clip=grad_clip, history=history, quiet=quiet)}
            if valid_loader is not None:
                row.update(evaluate(model, valid_loader, loss_fn, named_metrics, device, speedups, quiet))
            row["time"] = time.perf_counter() - start
            history.add_epoch(row, model, keep_best)
            table.new_row()
            if epoch == 1 and not quiet:
                _say_how_long_on_a_cpu(device, epochs, row["time"])
    except KeyboardInterrupt:
        history.interrupted = True
        print(f"Interrupted: kept the {len(history.rows)} finished epoch(s) and "
              f"{len(history.batch_losses)} batch losses.")
        table.redraw()
    model.eval()
    return history


# --- 7. fine_tune: transfer learning in two phases -----------------------------------------------


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

    1. **Frozen**: only the head (and normalisation layers) train, for ``freeze_epochs``: the
       head at ``base_lr``, the body's normalisation layers at a tenth of it (``slice(base_lr)``).
       The random new head learns to use the pretrained features without its large early
       errors wrecking them.
    2. **Unfrozen**: every layer trains for ``epochs``, at half the rate, spread over the layer
       groups from ``base_lr / 2 / lr_mult`` (early layers: general features, barely changed)
       to ``base_lr / 2`` (the head).

    The rates and the one-cycle shapes of each phase (a long warm-up while frozen,
    ``pct_start=0.99``; ``pct_start=0.3`` and ``div=5`` after) are those of fastai's
    ``fine_tune``. Other keyword arguments go to ``fit``. Returns both histories (the second is
    ``None`` if the first phase was interrupted).
    """
    freeze(model, groups)
    frozen = fit(model, train_loader, valid_loader, loss_fn, freeze_epochs, lr=slice(base_lr),
                 pct_start=0.99, groups=groups, **fit_kwargs)
    if frozen.interrupted:
        return frozen, None
    unfreeze(model)
    lr = base_lr / 2
    unfrozen = fit(model, train_loader, valid_loader, loss_fn, epochs, lr=slice(lr / lr_mult, lr),
                   pct_start=0.3, div=5.0, groups=groups, **fit_kwargs)
    return frozen, unfrozen
