"""Lesson 6's pets model trained by several processes at once, with torchrun and DDP (lesson 6).

When one GPU is not enough, PyTorch's standard answer is *data parallelism*: start one process
per GPU, give every process a full copy of the model and its own share (*shard*) of each epoch's
training images, and average the gradients of all processes at every step, so every copy makes
the same update and the copies never drift apart. ``torchrun`` starts the processes;
``DistributedDataParallel`` (DDP) averages the gradients. Run it in the course's folder (or
anywhere, once the course is installed with ``pip install -e .``)::

    torchrun --standalone --nproc_per_node=2 -m course_utils.ddp_train --task breeds
    python -m course_utils.ddp_train --task breeds        # one process, without torchrun

It trains with lesson 6's own pieces: ``pets.pets_datasets`` (data), ``models.build_resnet``
(model), ``optim.make_optimizer`` and ``optim.one_cycle`` (AdamW and one-cycle),
``training.train_one_epoch`` and ``training.evaluate``, and a ``history.History``. What is added
for several processes, from top to bottom:

1. **the recipe** - lesson 6's final model, as ``recipes.pets_recipe`` describes it (architecture,
   image size, batch, epochs, rate), and the phases of ``fit`` or ``fine_tune`` it trains in;
2. **the processes** - which one this is (torchrun's ``RANK``, ``LOCAL_RANK``, ``WORLD_SIZE``),
   NCCL between GPUs (one GPU per process) or gloo between CPU processes;
3. **the shards** - a ``DistributedSampler`` deals each process its share of the training
   images, reshuffled every epoch (``set_epoch``); each image's random augmentation is seeded
   by the epoch and the image, so it does not depend on which process reads it; the validation
   images are dealt out too, and the sums and counts of the loss and metrics are added up over
   all processes (all-reduce), so the table is that of the whole validation set;
4. **training** - each phase wraps the model in DDP; after each epoch the BatchNorm averages of
   process 0 are copied to the others, so every process holds the very same model;
5. **the command line** - only process 0 prints and writes the checkpoint, in the format lesson 7
   loads (``checkpoint``), to ``recipes.checkpoint_path(task)`` unless ``--out`` says otherwise.

**The learning rate follows the global batch.** One step averages the gradients of
``batch-size x processes`` images (the *global batch*): it is one step of one process with that
batch. By default the recipe's rate is scaled in proportion to the global batch (the linear
scaling rule, Goyal et al. 2017), and the one-cycle schedule counts the steps of the global
batch. The learning-rate finder (lesson 4) stays single-process: run it on one GPU with the
global batch size, then pass what it suggests with ``--lr``.

**Never fork from a kernel that has touched CUDA.** A notebook that has used the GPU cannot
give a copy of itself (a fork) to a child process: CUDA cannot be re-initialised in a forked
process. So lesson 6 runs this script as separate processes with ``!torchrun ...`` in a cell,
never by forking the notebook (as ``torch.multiprocessing`` with ``fork`` would); torchrun starts
fresh Python interpreters. Apple's GPU is not supported by DDP: on a Mac this trains on the CPU.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import sys
import time
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Sampler, Subset

from course_utils.checkpoint import Checkpoint, save_checkpoint
from course_utils.env import (
    CAPPED_BATCH,
    DEFAULT_SEED,
    cpu_cores,
    describe_device,
    is_quick,
    seed_everything,
    train_cap,
)
from course_utils.history import History, LiveTable
from course_utils.models import build_resnet
from course_utils.optim import freeze, make_optimizer, one_cycle, unfreeze
from course_utils.pets import TASKS, loader_kwargs, pets_datasets, pets_root
from course_utils.recipes import PetsRecipe, checkpoint_path, pets_recipe
from course_utils.training import error_rate, evaluate, train_one_epoch, use_cuda_speedups
from course_utils.transforms import CROP_SCALE, norm_stats

ARCHS = ("resnet18", "resnet34", "resnet50", "resnet101", "resnet152")
WAIT = timedelta(minutes=30)  # how long a process waits for the others (e.g. for the first download of the photos)

# --- 1. The recipe: lesson 6's, from recipes.pets_recipe ----------------------------------------


def scaled_lr(recipe: PetsRecipe, global_batch: int) -> float:
    """The recipe's rate scaled to the global batch: twice the images per step, twice the rate."""
    return recipe.lr * global_batch / recipe.batch_size


@dataclass(frozen=True)
class Phase:
    """One stretch of training with one optimiser and one one-cycle schedule."""

    epochs: int
    lr: float | slice
    pct_start: float
    div: float
    frozen: bool


def phases(recipe: PetsRecipe, pretrained: bool, epochs: int, lr: float) -> list[Phase]:
    """The recipe's phases: ``fit``'s one from scratch, or ``training.fine_tune``'s two (same rates and shapes).

    Fine-tuning: ``recipe.freeze_epochs`` with the body frozen (the head at ``lr``, the body's
    norms at a tenth), then ``epochs`` with everything training at ``lr / 2``, spread down to
    ``lr / 200`` for the first layers. (Mirrors ``fine_tune``'s settings until ``training``
    offers them as data.)
    """
    if not pretrained:
        return [Phase(epochs, lr, pct_start=0.25, div=25.0, frozen=False)]
    half = lr / 2
    unfrozen = Phase(epochs, slice(half / 100, half), pct_start=0.3, div=5.0, frozen=False)
    if recipe.freeze_epochs == 0:
        return [unfrozen]
    return [Phase(recipe.freeze_epochs, slice(lr), pct_start=0.99, div=25.0, frozen=True), unfrozen]


# --- 2. The processes ----------------------------------------------------------------------------


class UsageError(ValueError):
    """Bad input on the command line: said in one clear line, without a traceback."""


@dataclass(frozen=True)
class Processes:
    """Who this process is among the processes torchrun started (one, without torchrun)."""

    rank: int              # 0 .. world_size - 1, over all machines
    local_rank: int        # 0 .. local_world_size - 1 on this machine: which GPU to use
    world_size: int
    local_world_size: int
    launched: bool         # started by torchrun (else: a single plain process)

    @property
    def is_main(self) -> bool:
        """Process 0 prints, and writes the checkpoint."""
        return self.rank == 0


def processes_from_env() -> Processes:
    """Read torchrun's environment variables; without them, this is the only process."""
    env = os.environ
    if "RANK" not in env or "WORLD_SIZE" not in env:
        return Processes(0, 0, 1, 1, launched=False)
    world = int(env["WORLD_SIZE"])
    return Processes(int(env["RANK"]), int(env.get("LOCAL_RANK", 0)), world,
                     int(env.get("LOCAL_WORLD_SIZE", world)), launched=True)


def process_device(procs: Processes) -> torch.device:
    """One NVIDIA GPU per process (its ``LOCAL_RANK``), else the CPU."""
    return torch.device("cuda", procs.local_rank) if torch.cuda.is_available() else torch.device("cpu")


def check_processes(procs: Processes, device: torch.device) -> None:
    """More processes on this machine than GPUs (or CPU cores) is a mistake: say so."""
    if device.type == "cuda" and procs.local_world_size > torch.cuda.device_count():
        raise UsageError(f"torchrun started {procs.local_world_size} processes on this machine, but it has "
                         f"{torch.cuda.device_count()} GPU(s): use --nproc_per_node={torch.cuda.device_count()} "
                         "(one process per GPU)")
    if device.type == "cpu" and procs.local_world_size > cpu_cores():
        raise UsageError(f"torchrun started {procs.local_world_size} processes on this machine, but only "
                         f"{cpu_cores()} CPU core(s) are free for them: use --nproc_per_node={cpu_cores()} or fewer")


def start_processes(procs: Processes, device: torch.device) -> None:
    """Join the other processes: NCCL between GPUs, gloo between CPU processes.

    torchrun tells every process where to meet (``MASTER_ADDR``, ``MASTER_PORT``). A single
    process without torchrun makes a group of one (an in-memory store), so that the code below
    is the same either way.
    """
    backend = "nccl" if device.type == "cuda" else "gloo"
    if device.type == "cuda":
        torch.cuda.set_device(device)
    if procs.launched:
        dist.init_process_group(backend, timeout=WAIT, device_id=device if device.type == "cuda" else None)
    else:
        dist.init_process_group(backend, store=dist.HashStore(), rank=0, world_size=1, timeout=WAIT)


def comm_device(device: torch.device) -> torch.device:
    """Where the numbers to add up must be: on the GPU for NCCL, on the CPU for gloo."""
    return device if dist.get_backend() == "nccl" else torch.device("cpu")


def from_process_0(flag: bool, device: torch.device) -> bool:
    """Process 0's value of ``flag``, in every process (all must take the same branch)."""
    value = torch.tensor([float(flag)], device=comm_device(device))
    dist.broadcast(value, src=0)
    return bool(value.item())


def prepare_once(procs: Processes, quick: bool, arch: str, pretrained: bool) -> None:
    """Process 0 of each machine fetches the photos (and ImageNet weights); the others wait, then read them.

    Several processes drawing or downloading into one folder at once would trip over each other.
    """
    if procs.local_rank == 0:
        pets_root(quick, quiet=True)
        if pretrained:
            build_resnet(arch, pretrained=True)  # into torch's cache, once
    dist.barrier()


# --- 3. The shards -------------------------------------------------------------------------------


class EpochAndIndex(Sampler):
    """``sampler``'s indices, each paired with the epoch: ``(epoch, index)``, for ``SeededAugmentation``.

    The epoch travels with every index, so that loader worker processes, which keep their own
    copy of the data set from epoch to epoch, still know which epoch it is.
    """

    def __init__(self, sampler: DistributedSampler):
        self.sampler = sampler

    def __len__(self) -> int:
        return len(self.sampler)

    def __iter__(self):
        return ((self.sampler.epoch, i) for i in self.sampler)


class SeededAugmentation(Dataset):
    """``dataset[index]`` with its random augmentation seeded by ``(seed, epoch, index)``.

    Left to itself, each process draws its augmentations from its own random stream, in the
    order of its shard, so N processes would train on other crops and flips than one process.
    Seeded per image, an epoch's augmented images are the same whatever the number of
    processes: a run with N processes sees exactly the images of a one-process run with the
    same global batch (and each epoch, each image still gets a new augmentation).
    """

    def __init__(self, dataset: Dataset, seed: int):
        self.dataset, self.seed = dataset, seed

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key: tuple[int, int]):
        epoch, index = key
        image_seed = np.random.SeedSequence([self.seed, epoch, index]).generate_state(1, np.uint64)[0]
        with torch.random.fork_rng(devices=[]):  # leave the process's own random stream as it was
            torch.manual_seed(int(image_seed))
            return self.dataset[index]


def _loader_settings(device: torch.device, train: bool, quick: bool, procs: Processes) -> dict:
    """``pets.loader_kwargs``, with no more loader workers than this process's share of the CPU cores.

    The sampler does the shuffling, so the loader must not.
    """
    settings = loader_kwargs(device, train, quick)
    settings["shuffle"] = False
    if settings["num_workers"]:
        settings["num_workers"] = min(settings["num_workers"], max(1, cpu_cores() // procs.local_world_size))
    return settings


def valid_shard(n: int, procs: Processes) -> list[int]:
    """Every ``world_size``-th validation image, from ``rank`` on: the shards are disjoint and cover all.

    Unlike ``DistributedSampler`` this pads nothing, so no image is counted twice; the shards
    may differ in size by one.
    """
    return list(range(procs.rank, n, procs.world_size))


def shard_loaders(train_ds, valid_ds, batch_size: int, procs: Processes, device: torch.device, quick: bool,
                  seed: int) -> tuple[DataLoader, DataLoader, DistributedSampler]:
    """This process's training and validation loaders, and the sampler that deals its training shard.

    The sampler shuffles all training images with the same seed in every process and gives this
    one every ``world_size``-th of them; ``set_epoch(epoch)`` reshuffles. ``drop_last`` drops
    the few images (fewer than the number of processes) that would make the shards unequal.
    The training images are augmented with ``SeededAugmentation``.
    """
    sampler = DistributedSampler(train_ds, num_replicas=procs.world_size, rank=procs.rank, shuffle=True,
                                 seed=seed, drop_last=True)
    if batch_size > len(sampler):
        raise UsageError(f"--batch-size {batch_size} is larger than each process's share of the training images "
                         f"({len(sampler)} = {len(train_ds)} / {procs.world_size} processes): use at most "
                         f"{len(sampler)}, or fewer processes")
    if len(valid_ds) < procs.world_size:
        raise UsageError(f"{procs.world_size} processes for {len(valid_ds)} validation images: use fewer processes")
    train_dl = DataLoader(SeededAugmentation(train_ds, seed), batch_size=batch_size, sampler=EpochAndIndex(sampler),
                          **_loader_settings(device, True, quick, procs))
    valid_dl = DataLoader(Subset(valid_ds, valid_shard(len(valid_ds), procs)), batch_size=2 * batch_size,
                          **_loader_settings(device, False, quick, procs))
    return train_dl, valid_dl, sampler


def _steps_per_epoch(loader: DataLoader) -> int:
    """The training steps of one epoch (fewer under ``COURSE_TRAIN_CAP``): what one-cycle counts."""
    return len(loader) if train_cap() is None else min(len(loader), train_cap())


def _images_scored(loader: DataLoader) -> int:
    """How many images ``training.evaluate`` scores in a pass over ``loader`` (fewer under ``COURSE_TRAIN_CAP``)."""
    cap, n, size = train_cap(), len(loader.dataset), loader.batch_size
    if cap is None:
        return n
    return sum(min(size, n - start, CAPPED_BATCH) for start in range(0, n, size)[:cap])  # see training.batches


def evaluate_all(model: nn.Module, valid_dl: DataLoader, loss_fn: nn.Module, metrics: dict,
                 device: torch.device, cuda_speedups: bool) -> dict[str, float]:
    """``training.evaluate`` on this process's shard, added up over all shards: the whole set's averages.

    Each process turns its averages back into sums (average x images scored); the sums and
    the counts are added over the processes (all-reduce) and divided once.
    """
    local = evaluate(model, valid_dl, loss_fn, metrics, device, cuda_speedups)
    count = _images_scored(valid_dl)
    sums = torch.tensor([v * count for v in local.values()] + [count], dtype=torch.float64,
                        device=comm_device(device))
    dist.all_reduce(sums)
    return {name: (sums[i] / sums[-1]).item() for i, name in enumerate(local)}


def mean_over_processes(value: float, device: torch.device) -> float:
    """The mean of ``value`` over all processes (each trained on as many images as the others)."""
    total = torch.tensor([value], dtype=torch.float64, device=comm_device(device))
    dist.all_reduce(total)
    return total.item() / dist.get_world_size()


# --- 4. Training ---------------------------------------------------------------------------------


def copy_buffers_from_process_0(model: nn.Module) -> None:
    """Give every process process 0's BatchNorm averages (running mean and variance).

    DDP averages gradients, so the weights stay equal; but each process updates its BatchNorm
    averages from its own batches. DDP copies process 0's at the start of each step; after the
    last step of an epoch we do it, so that every process evaluates, and keeps, the same model.
    """
    for buffer in model.buffers():
        dist.broadcast(buffer.data, src=0)


def weights_hash(model: nn.Module) -> str:
    """A fingerprint of every weight and buffer: equal fingerprints, equal models (used by the tests)."""
    digest = hashlib.sha256()
    for name, tensor in model.state_dict().items():
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def wrap(model: nn.Module, device: torch.device) -> DistributedDataParallel:
    """The model in DDP: its ``backward`` averages the gradients of all processes.

    Made anew for each phase: DDP averages only the parameters that train when it is made.
    Making it copies process 0's weights to every process.
    """
    return DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)


def train_phase(model: nn.Module, phase: Phase, loaders: tuple[DataLoader, DataLoader, DistributedSampler],
                history: History, procs: Processes, device: torch.device, *, cuda_speedups: bool,
                first_epoch: int, quiet: bool, shards: list | None = None) -> None:
    """Train ``phase.epochs`` epochs, adding one row per epoch (for all processes together) to ``history``.

    The table counts the phase's epochs from 1; the sampler counts on from ``first_epoch``, so
    that every epoch of every phase gets a shuffle of its own. ``shards`` (for tests) collects
    the training images this process is dealt each epoch.
    """
    train_dl, valid_dl, sampler = loaders
    (freeze if phase.frozen else unfreeze)(model)
    ddp = wrap(model, device)
    optimizer = make_optimizer(model, phase.lr)
    scheduler = one_cycle(optimizer, phase.epochs * _steps_per_epoch(train_dl), phase.pct_start, phase.div)
    scaler = torch.amp.GradScaler(device.type, enabled=cuda_speedups)
    loss_fn = nn.CrossEntropyLoss()
    table = LiveTable(history, quiet or not procs.is_main)
    for epoch in range(1, phase.epochs + 1):
        sampler.set_epoch(first_epoch + epoch - 1)
        if shards is not None:
            shards.append(list(sampler))
        start = time.perf_counter()
        loss = train_one_epoch(ddp, train_dl, loss_fn, optimizer, scheduler, scaler, cuda_speedups=cuda_speedups,
                               history=history, quiet=quiet or not procs.is_main)
        copy_buffers_from_process_0(model)
        row = {"epoch": epoch, "train_loss": mean_over_processes(loss, device)}
        row.update(evaluate_all(model, valid_dl, loss_fn, {"error_rate": error_rate}, device, cuda_speedups))
        row["time"] = time.perf_counter() - start
        history.add_epoch(row, model, keep_best=procs.is_main)
        table.new_row()


def summary(procs: Processes, device: torch.device, quick: bool, arch: str, image_size: int, batch_size: int,
            lr: float) -> str:
    """One line that says what runs where, printed first (like ``env.setup()`` in the lessons)."""
    mode = "QUICK (cartoon pets: numbers are not real results)" if quick else "FULL"
    return (f"{procs.world_size} process(es), {dist.get_backend()}, each on {describe_device(device)} | mode: {mode} | "
            f"{arch}, {image_size} px | global batch {batch_size * procs.world_size} = {batch_size} x "
            f"{procs.world_size} | peak learning rate {lr:.3g}")


def train(task: str, epochs: int | None = None, batch_size: int | None = None, lr: float | None = None,
          arch: str | None = None, out: Path | None = None, quiet: bool = False, record: Path | None = None,
          seed: int = DEFAULT_SEED) -> Path | None:
    """Train lesson 6's pets model in this process, together with the others torchrun started.

    Every process runs this function. Returns the checkpoint's path in process 0, ``None`` in
    the others. ``record`` (for tests): each process writes ``rank<N>.json`` there.
    """
    procs = processes_from_env()
    device = process_device(procs)
    check_processes(procs, device)
    quick = is_quick()
    recipe = pets_recipe(quick)
    if recipe.crop_scale != CROP_SCALE:  # pets_datasets augments with train_transform's default crop
        raise ValueError(f"pets_datasets crops with transforms.CROP_SCALE={CROP_SCALE}, not the recipe's "
                         f"{recipe.crop_scale}")
    arch = arch or recipe.arch
    batch_size = batch_size or recipe.batch_size
    global_batch = batch_size * procs.world_size
    lr = lr or scaled_lr(recipe, global_batch)
    epochs = epochs or recipe.epochs
    epochs = epochs if train_cap() is None else min(epochs, train_cap())  # only the rehearsal caps (env.train_cap)
    speedups = use_cuda_speedups(device)
    show = procs.is_main and not quiet
    start_processes(procs, device)
    try:
        if show:
            print(summary(procs, device, quick, arch, recipe.image_size, batch_size, lr), flush=True)
        prepare_once(procs, quick, arch, recipe.pretrained)
        train_ds, valid_ds, names = pets_datasets(task, recipe.image_size, quick, pretrained_norm=True)
        loaders = shard_loaders(train_ds, valid_ds, batch_size, procs, device, quick, seed)
        seed_everything(seed)  # the same starting weights everywhere (DDP copies process 0's anyway)
        model, loaded = build_resnet(arch, pretrained=recipe.pretrained, num_classes=len(names))
        pretrained = from_process_0(loaded, device)
        model.to(device, memory_format=torch.channels_last if speedups else torch.preserve_format)
        if speedups:
            torch.backends.cudnn.benchmark = True  # the images keep one size: time the algorithms once
        initial = weights_hash(model) if record else None
        shards: list | None = [] if record else None
        first_epoch, history = 1, None
        for phase in phases(recipe, pretrained, epochs, lr):
            history = History(metric_names=["error_rate"], steps_per_epoch=_steps_per_epoch(loaders[0]),
                              cuda_speedups=speedups)
            train_phase(model, phase, loaders, history, procs, device, cuda_speedups=speedups,
                        first_epoch=first_epoch, quiet=quiet, shards=shards)
            first_epoch += phase.epochs
        final = weights_hash(model) if record else None
        path = None
        if procs.is_main:
            path = save_best(model, history, task, quick, arch, names, recipe.image_size, pretrained, epochs,
                             procs, global_batch, out)
            if show:
                print(f"saved {path}", flush=True)
        if record:
            write_record(record, procs, shards, initial, final, history, path)
        return path
    finally:
        dist.destroy_process_group()


def save_best(model: nn.Module, history: History, task: str, quick: bool, arch: str, names: list[str],
              image_size: int, pretrained: bool, epochs: int, procs: Processes, global_batch: int,
              out: Path | None) -> Path:
    """Load the best epoch's weights (lowest validation loss) and write the checkpoint lesson 7 loads."""
    if history.best_state is not None:
        model.load_state_dict(history.best_state)
    best = history.rows[history.best_epoch - 1] if history.best_epoch else {}
    info = {"task": task, "quick": quick, "pretrained": pretrained, "epochs": epochs,
            "best_epoch": best.get("epoch", 0), "valid_error_rate": float(best.get("error_rate", math.nan)),
            "processes": procs.world_size, "global_batch": global_batch}
    mean, std = norm_stats(True)
    return save_checkpoint(out or checkpoint_path(task, quick), model,
                           Checkpoint(arch, names, image_size, mean, std, info))


def write_record(folder: Path, procs: Processes, shards: list, initial: str, final: str, history: History,
                 path: Path | None) -> None:
    """For tests: what this process was dealt, its weights' fingerprints, and the table it saw."""
    folder.mkdir(parents=True, exist_ok=True)
    record = {"rank": procs.rank, "world_size": procs.world_size, "shards": shards, "initial_weights": initial,
              "final_weights": final, "rows": history.rows, "checkpoint": None if path is None else str(path)}
    (folder / f"rank{procs.rank}.json").write_text(json.dumps(record))


# --- 5. The command line -------------------------------------------------------------------------


def _positive(kind):
    """An argparse type: a number of ``kind`` above zero."""
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        if not value > 0:
            raise argparse.ArgumentTypeError(f"must be above zero, got {text}")
        return value
    return parse


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    quick_recipe, full_recipe = pets_recipe(True), pets_recipe(False)
    parser = argparse.ArgumentParser(
        prog="torchrun --standalone --nproc_per_node=N -m course_utils.ddp_train",
        description="Train lesson 6's pets classifier with N processes (one per GPU, or CPU processes), "
                    "averaging their gradients at every step (DistributedDataParallel). Quick mode "
                    "(COURSE_QUICK=1): cartoon pets, seconds on a CPU.")
    parser.add_argument("--task", choices=sorted(TASKS), default="breeds",
                        help="breeds (37, or 6 in quick mode) or binary (cat vs dog); default: breeds")
    parser.add_argument("--epochs", type=_positive(int),
                        help=f"epochs with everything training (after {full_recipe.freeze_epochs} with the body "
                             f"frozen, when fine-tuning); default: the recipe's, {full_recipe.epochs} "
                             f"(quick mode: {quick_recipe.epochs}, from scratch)")
    parser.add_argument("--batch-size", type=_positive(int),
                        help=f"images per step IN EACH PROCESS; one step averages the gradients of batch-size x N "
                             f"images, the global batch; default: {full_recipe.batch_size} "
                             f"(quick mode: {quick_recipe.batch_size})")
    parser.add_argument("--lr", type=_positive(float),
                        help=f"peak learning rate, for the GLOBAL batch (batch-size x N); default: the recipe's "
                             f"rate, {full_recipe.lr:g} for {full_recipe.batch_size} images per step "
                             f"(quick mode: {quick_recipe.lr:g} for {quick_recipe.batch_size}), times global batch / "
                             "that batch (the linear scaling rule): N processes, N times the rate. To choose it "
                             "yourself, run lesson 4's learning-rate finder in ONE process with the global batch size")
    parser.add_argument("--arch", choices=ARCHS,
                        help=f"the ResNet to train; default: {full_recipe.arch} (quick mode: {quick_recipe.arch})")
    parser.add_argument("--out", type=Path,
                        help="where to write the checkpoint; default: where lesson 7 looks "
                             "(recipes.checkpoint_path(task), under the data folder)")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED,
                        help=f"seeds the starting weights, the shuffles and the augmentations; default: {DEFAULT_SEED}")
    parser.add_argument("--quiet", action="store_true", help="print nothing (no table, no progress bars)")
    parser.add_argument("--record", type=Path, metavar="DIR",
                        help="for tests: each process writes rank<N>.json into DIR (its shard of each epoch, "
                             "fingerprints of its weights before and after training, the table)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        train(args.task, args.epochs, args.batch_size, args.lr, args.arch, args.out, args.quiet, args.record,
              args.seed)
    except UsageError as e:
        if processes_from_env().is_main:
            print(f"ddp_train: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
