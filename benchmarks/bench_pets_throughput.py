"""Which one limits training on the pets: loading the photos, or the model's arithmetic?

Two numbers, measured separately on the current device (CUDA, Apple GPU or CPU):

(a) **data loading**: images per second out of the pets training loader, with the real
    transforms (read the JPEG, augment, normalise, stack into batches) and the course's loader
    settings (``pets.loader_kwargs``), and no model at all;
(b) **training**: images per second of forward + backward + optimiser step of a ResNet on
    random tensors that are already on the device (no loading), at the same image size and
    batch size, with ``course_utils.training.train_step``, the step ``fit`` runs (mixed
    precision and channels-last on CUDA, as in ``fit``).

The smaller number is the bottleneck: an epoch cannot go faster than it.

    .venv/bin/python benchmarks/bench_pets_throughput.py --quick  # cartoon pets, 64 px, resnet18, batches of 32
    .venv/bin/python benchmarks/bench_pets_throughput.py          # lesson 6: 224 px, resnet34, batches of 64

The full settings read the real photos if they have been prepared (``data/pets/resized-256``,
made by lesson 5 or 6 in full mode); this script never downloads them. Without them it says
so and measures the loader on the quick-mode cartoons, resized to 224 px: the same code and
augmentation, but smaller files to decode, so that number is optimistic.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import torch
from torch.utils.data import DataLoader

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from course_utils.env import describe_device, pick_device, seed_everything
from course_utils.models import build_resnet
from course_utils.optim import make_optimizer
from course_utils.pets import loader_kwargs, pets_datasets
from course_utils.pets_prep import SHORT_SIDE, pets_folder
from course_utils.training import train_step, use_cuda_speedups
from course_utils.transforms import FULL_IMAGE_SIZE, QUICK_IMAGE_SIZE


def synchronize(device: torch.device) -> None:
    """Wait until the device has finished its queued work (GPUs run asynchronously)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


def endless(loader: DataLoader) -> Iterator:
    """Batches forever: start the loader again whenever an epoch ends."""
    while True:
        yield from loader


def loading_rates(loader: DataLoader, batches: int, warmup: int, repeats: int) -> list[float]:
    """Images per second the loader delivers, ``repeats`` times over ``batches`` batches.

    The first ``warmup`` batches are not timed: they include starting the worker processes.
    """
    stream = endless(loader)
    for _ in range(warmup):
        next(stream)
    rates = []
    for _ in range(repeats):
        images = 0
        start = time.perf_counter()
        for _ in range(batches):
            _, labels = next(stream)
            images += len(labels)
        rates.append(images / (time.perf_counter() - start))
    return rates


def training_rates(arch: str, num_classes: int, size: int, batch_size: int, device: torch.device,
                   steps: int, warmup: int, repeats: int) -> list[float]:
    """Images per second of training steps on random tensors already on ``device``."""
    model, _ = build_resnet(arch, pretrained=False, num_classes=num_classes)
    speedups = use_cuda_speedups(device)
    model.to(device)
    memory_format = torch.channels_last if speedups else torch.contiguous_format
    model.to(memory_format=memory_format)
    model.train()
    optimizer = make_optimizer(model, lr=1e-4)
    scaler = torch.amp.GradScaler(device.type, enabled=speedups)
    loss_fn = torch.nn.CrossEntropyLoss()
    inputs = torch.randn(batch_size, 3, size, size, device=device).to(memory_format=memory_format)
    targets = torch.randint(num_classes, (batch_size,), device=device)
    for _ in range(warmup):
        train_step(model, inputs, targets, loss_fn, optimizer, scaler, speedups)
    rates = []
    for _ in range(repeats):
        synchronize(device)
        start = time.perf_counter()
        for _ in range(steps):
            train_step(model, inputs, targets, loss_fn, optimizer, scaler, speedups)
        synchronize(device)
        rates.append(steps * batch_size / (time.perf_counter() - start))
    return rates


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="quick mode's settings: cartoon pets, 64 px, resnet18")
    parser.add_argument("--task", default="breeds", choices=["breeds", "binary"])
    parser.add_argument("--size", type=int, default=None, help="image side in pixels (default 64 quick / 224 full)")
    parser.add_argument("--batch-size", type=int, default=None, help="default 32 quick / 64 full")
    parser.add_argument("--arch", default=None, help="torchvision ResNet (default resnet18 quick / resnet34 full)")
    parser.add_argument("--workers", type=int, default=None,
                        help="loader worker processes (default: the course's choice, pets.loader_kwargs)")
    parser.add_argument("--batches", type=int, default=None, help="loader batches per timed run (default 20 / 10)")
    parser.add_argument("--steps", type=int, default=None,
                        help="training steps per timed run (default 20 on a GPU, 10 quick / 3 full on a CPU)")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs of each; the median and best are shown")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads for torch (default: torch's own)")
    parser.add_argument("--device", default=None, help="cuda, mps or cpu (default: the fastest present)")
    args = parser.parse_args()

    seed_everything(0)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device) if args.device else pick_device()
    size = args.size or (QUICK_IMAGE_SIZE if args.quick else FULL_IMAGE_SIZE)
    batch_size = args.batch_size or (32 if args.quick else 64)
    arch = args.arch or ("resnet18" if args.quick else "resnet34")
    batches = args.batches or (20 if args.quick else 10)
    steps = args.steps or (20 if device.type != "cpu" else 10 if args.quick else 3)

    real_data = (pets_folder() / f"resized-{SHORT_SIDE}").is_dir()
    data_quick = args.quick or not real_data
    if args.quick:
        data_note = "quick-mode cartoon pets"
    elif real_data:
        data_note = "the real Oxford-IIIT Pet photos (resized copies)"
    else:
        data_note = f"quick-mode cartoon pets resized to {size} px"
        print(f"NOTE: the real photos are not prepared ({pets_folder() / f'resized-{SHORT_SIDE}'} is missing; run "
              "lesson 5 or 6 in full mode once). Measuring the loader on the cartoon pets instead: the same code, "
              "but small files to decode, so its number is optimistic.")

    train_ds, _, names = pets_datasets(args.task, size, quick=data_quick)
    settings = loader_kwargs(device, train=True, quick=args.quick)
    if args.workers is not None:
        settings.update(num_workers=args.workers, persistent_workers=args.workers > 0)
    if batch_size > len(train_ds):
        raise SystemExit(f"--batch-size {batch_size} is larger than the {len(train_ds)} training images")
    loader = DataLoader(train_ds, batch_size=batch_size, **settings)

    print(f"torch {torch.__version__} | device {describe_device(device)} | mixed precision + channels-last: "
          f"{'on' if use_cuda_speedups(device) else 'off'}")
    print(f"{'quick' if args.quick else 'full'} settings: task {args.task}, {size} x {size} px, batches of "
          f"{batch_size}, {arch}; data: {data_note} ({len(train_ds)} training images)")
    print(f"loader: {settings['num_workers']} worker process(es), pin_memory={settings['pin_memory']}; "
          f"{args.repeats} timed runs of {batches} batches / {steps} training steps")

    load = loading_rates(loader, batches, warmup=2, repeats=args.repeats)
    print(f"(a) data loading: {statistics.median(load):8.1f} images/s  (best {max(load):.1f})   no model")
    train = training_rates(arch, len(names), size, batch_size, device, steps, warmup=2, repeats=args.repeats)
    print(f"(b) training:     {statistics.median(train):8.1f} images/s  (best {max(train):.1f})   random tensors, "
          "no loading")

    a, b = statistics.median(load), statistics.median(train)
    if a < b:
        print(f"Bottleneck: DATA LOADING. The model could take {b / a:.1f}x more images per second than the loader "
              "gives it. More loader workers (--workers), smaller stored photos or lighter augmentation would help.")
    else:
        print(f"Bottleneck: TRAINING. The loader gives {a / b:.1f}x more images per second than the model can take. "
              "A faster device, mixed precision, a smaller model or smaller images would help.")
    n = len(train_ds)
    print(f"One epoch of these {n} training images takes at least {n / min(a, b):.1f} s (loading fully overlapped "
          f"with training) and at most {n / a + n / b:.1f} s (none overlapped).")
    if settings["num_workers"] == 0:
        print("With no worker processes the loading and the training take turns: expect the slower figure.")
    elif device.type == "cpu":
        print("On a CPU the loader's workers and the training share the same cores: expect something in between.")


if __name__ == "__main__":
    main()
