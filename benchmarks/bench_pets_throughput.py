"""Which one limits training on the pets: loading the photos, or the model's arithmetic?

Measured separately on the current device (CUDA, Apple GPU or CPU):

(a) **data loading**: images per second out of lesson 6's training loader, with its transforms
    (read the JPEG, augment, normalise, stack into batches) and the course's loader settings
    (``pets.loader_kwargs``: 2 worker processes on a 2-core machine such as Colab), and no model
    at all. Measured on the 256-pixel resize cache the lessons read and, when the downloaded
    photos are still on disk, on those originals with the same transforms: the difference is
    what the resize cache (``pets_prep``) buys;
(b) **training**: images per second of forward + backward + optimiser step on random tensors
    already on the device (no loading), at the same image size and batch size, with
    ``course_utils.training.train_step``, the step ``fit`` runs (mixed precision and
    channels-last on CUDA, as in ``fit``). For lesson 6's architectures: the recipe's
    (``recipes.FULL_RECIPE.arch``) and resnet34 (``--compare``), the classic fine-tuning model;
(c) **where a loader worker's time goes**: CPU milliseconds per photo of decoding it and of each
    step of the training transform, in one process with one thread (a worker does exactly this,
    photo after photo), and of torchvision's ``ColorJitter``, ``ToImage``, ``ToDtype`` and
    ``Normalize`` one after another, the four steps ``transforms.JitterAndNormalize`` does in one.
    CPU time depends less on what else the machine runs than wall time, so this table is the
    steadiest figure on a busy machine: ``workers x 1000 / total ms`` is what the loader can reach
    on free cores.

The smaller of (a) and (b) is the bottleneck: an epoch cannot go faster than it.

    .venv/bin/python benchmarks/bench_pets_throughput.py --quick  # cartoon pets, 64 px, resnet18, batches of 32
    .venv/bin/python benchmarks/bench_pets_throughput.py          # lesson 6: 224 px, its recipe's ResNet, batches of 64

The full settings read the real photos if they have been prepared (``data/pets/resized-256``,
made by lesson 5 or 6 in full mode); this script never downloads them. Without them it builds
the full-mode rehearsal's stand-in (``tests/rehearsal/standin.py``: photo-like pictures of real
photo size, 500 x 375 and the like, ``--standin-per-breed`` of each of the 37 breeds) in a
temporary folder and prepares it with the course's own code (md5 check, unpacking, resizing to a
short side of 256, as the real photos are): the files the loader decodes are then of the size
and kind of the real ones.

``--target`` compares the loader with the rate a GPU trains at, by default the course's estimate
for a Colab T4 training resnet34 with mixed precision (about 450 images/s, lesson 6): an
estimate to check there, with this script, not a measurement.
"""

from __future__ import annotations

import argparse
import io
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import torch
from torch.utils.data import DataLoader, Subset

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "rehearsal"))

from PIL import Image  # noqa: E402
from torchvision.datasets import OxfordIIITPet  # noqa: E402
from torchvision.transforms import v2  # noqa: E402

from course_utils.env import DATA_ENV_VAR, describe_device, pick_device, seed_everything  # noqa: E402
from course_utils.models import build_resnet  # noqa: E402
from course_utils.optim import make_optimizer  # noqa: E402
from course_utils.pets import TASKS, loader_kwargs, pets_datasets, split_ids  # noqa: E402
from course_utils.pets_prep import RESOURCES_ENV_VAR, SHORT_SIDE, pets_folder, prepare_pets  # noqa: E402
from course_utils.recipes import pets_recipe  # noqa: E402
from course_utils.training import train_step, use_cuda_speedups  # noqa: E402
from course_utils.transforms import JitterAndNormalize  # noqa: E402

T4_ESTIMATE = 450   # images/s: a Colab T4 training resnet34 at 224 px with mixed precision (an estimate, see above)


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
                   steps: int, warmup: int, repeats: int) -> tuple[list[float], float]:
    """Images per second of training steps on random tensors already on ``device``, and CPU seconds per image.

    The CPU time (this process, all its threads) is what an idle machine would need too; the
    wall-clock rate also counts the waits of a machine busy with other work.
    """
    model, _ = build_resnet(arch, pretrained=False, num_classes=num_classes)
    speedups = use_cuda_speedups(device)
    memory_format = torch.channels_last if speedups else torch.contiguous_format
    model.to(device, memory_format=memory_format)
    model.train()
    optimizer = make_optimizer(model, lr=1e-4)
    scaler = torch.amp.GradScaler(device.type, enabled=speedups)
    loss_fn = torch.nn.CrossEntropyLoss()
    inputs = torch.randn(batch_size, 3, size, size, device=device).to(memory_format=memory_format)
    targets = torch.randint(num_classes, (batch_size,), device=device)
    for _ in range(warmup):
        train_step(model, inputs, targets, loss_fn, optimizer, scaler, speedups)
    rates, cpu = [], time.process_time()
    for _ in range(repeats):
        synchronize(device)
        start = time.perf_counter()
        for _ in range(steps):
            train_step(model, inputs, targets, loss_fn, optimizer, scaler, speedups)
        synchronize(device)
        rates.append(steps * batch_size / (time.perf_counter() - start))
    return rates, (time.process_time() - cpu) / (repeats * steps * batch_size)


def prepare_standin(folder: Path, per_breed: int) -> float:
    """Point the course at ``folder`` and prepare the rehearsal's stand-in photos there; return photos/s prepared.

    The archives are built by ``standin.build_archives`` and go through ``pets_prep.prepare_pets``
    (download from a file:// URL, md5 check, unpacking, resizing): the real path, on photo-like files.
    """
    import standin

    os.environ[DATA_ENV_VAR] = str(folder / "data")
    md5s = standin.build_archives(folder / "server", trainval=per_breed, test=1)
    os.environ[RESOURCES_ENV_VAR] = str(standin.write_resources(folder / "resources.json",
                                                                (folder / "server").as_uri(), md5s))
    start = time.perf_counter()
    prepare_pets(quiet=True)
    return 37 * (per_breed + 1) / (time.perf_counter() - start)


def originals_of(train_ds: Subset, task: str) -> Subset | None:
    """The same training photos with the same transform, read from the downloaded originals (no resize cache).

    ``None`` when the originals are not on disk (they may be deleted once the cache is made).
    """
    original = pets_folder() / "original"
    if not (original / "oxford-iiit-pet" / "images").is_dir():
        return None
    full = OxfordIIITPet(original, split="trainval", target_types=TASKS[task], transform=train_ds.dataset.transform)
    return Subset(full, train_ds.indices)


def separate_steps(step: JitterAndNormalize) -> v2.Compose:
    """torchvision's four steps that do ``step``'s work one after another, with its settings (part (c))."""
    s = step.strength
    steps = [v2.ColorJitter(brightness=s, contrast=s, saturation=s), v2.ToImage(),
             v2.ToDtype(torch.float32, scale=True)]
    return v2.Compose(steps + ([v2.Normalize(step.mean, step.std)] if step.mean is not None else []))


def transform_costs(dataset: Subset, samples: int) -> tuple[list[tuple[str, float]], tuple[float, str] | None]:
    """CPU milliseconds per photo of each stage a loader worker runs: read + decode, then each transform step.

    ``dataset`` is a ``Subset`` of an ``OxfordIIITPet`` whose transform is a ``v2.Compose``.
    Measured in this process with one torch thread, as in a DataLoader worker. Also returns the
    milliseconds of ``separate_steps`` on the same pictures and their names, where the transform
    has a ``JitterAndNormalize`` step (else None).
    """
    base = dataset.dataset
    steps = list(base.transform.transforms)
    ids = split_ids(Path(base.root), "trainval")
    totals, separate = [0.0] * (len(steps) + 1), 0.0
    separate_of = {i: separate_steps(step) for i, step in enumerate(steps, start=1)
                   if isinstance(step, JitterAndNormalize)}
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        for k in range(samples):
            path = Path(base.root) / "oxford-iiit-pet" / "images" / f"{ids[dataset.indices[k % len(dataset)]]}.jpg"
            start = time.process_time()
            image = Image.open(io.BytesIO(path.read_bytes())).convert("RGB")   # what OxfordIIITPet does
            totals[0] += time.process_time() - start
            for i, step in enumerate(steps, start=1):
                if i in separate_of:
                    start = time.process_time()
                    separate_of[i](image)
                    separate += time.process_time() - start
                start = time.process_time()
                image = step(image)
                totals[i] += time.process_time() - start
    finally:
        torch.set_num_threads(threads)
    names = ["read + decode JPEG"] + [type(step).__name__ for step in steps]
    costs = [(name, 1000 * t / samples) for name, t in zip(names, totals)]
    if not separate_of:
        return costs, None
    (reference,) = separate_of.values()   # the transform has one JitterAndNormalize
    return costs, (1000 * separate / samples, " + ".join(type(t).__name__ for t in reference.transforms))


def load_average() -> str:
    """The machine's 1, 5 and 15 minute load averages (numbers on a busy machine are lower than on an idle one)."""
    return " ".join(f"{x:.1f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "unknown"


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="quick mode's settings: cartoon pets, 64 px, resnet18")
    parser.add_argument("--task", default="breeds", choices=sorted(TASKS))
    parser.add_argument("--size", type=int, default=None, help="image side in pixels (default: the recipe's)")
    parser.add_argument("--batch-size", type=int, default=None, help="default: the recipe's (64 full, 32 quick)")
    parser.add_argument("--arch", default=None, help="torchvision ResNet (default: recipes.pets_recipe's)")
    parser.add_argument("--compare", default=None,
                        help="comma-separated further architectures to time (default: resnet34 in full mode)")
    parser.add_argument("--workers", type=int, default=None,
                        help="loader worker processes (default: the course's choice, pets.loader_kwargs)")
    parser.add_argument("--batches", type=int, default=None, help="loader batches per timed run (default 20 / 8)")
    parser.add_argument("--steps", type=int, default=None,
                        help="training steps per timed run (default 20 on a GPU, 10 quick / 2 full on a CPU)")
    parser.add_argument("--repeats", type=int, default=3, help="timed loader runs; the median and best are shown")
    parser.add_argument("--train-repeats", type=int, default=None,
                        help="timed training runs (default 3; 1 for full settings on a CPU, where a step takes long)")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads for torch (default: torch's own)")
    parser.add_argument("--device", default=None, help="cuda, mps or cpu (default: the fastest present)")
    parser.add_argument("--standin-per-breed", type=int, default=20,
                        help="without the real photos: stand-in trainval photos per breed (default 20, 740 in all)")
    parser.add_argument("--profile-samples", type=int, default=200, help="photos timed for the cost table")
    parser.add_argument("--target", type=float, default=T4_ESTIMATE,
                        help=f"images/s a GPU trains at, to compare the loader with (default {T4_ESTIMATE}: "
                             "the estimate for a Colab T4, resnet34, mixed precision)")
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    seed_everything(0)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device) if args.device else pick_device()
    recipe = pets_recipe(args.quick)
    size = args.size or recipe.image_size
    batch_size = args.batch_size or recipe.batch_size
    arch = args.arch or recipe.arch
    compare = args.compare.split(",") if args.compare is not None else ([] if args.quick else ["resnet34"])
    archs = [arch] + [a for a in compare if a and a != arch]
    on_cpu_full = device.type == "cpu" and not args.quick
    batches = args.batches or (8 if on_cpu_full else 20)
    steps = args.steps or (20 if device.type != "cpu" else 10 if args.quick else 2)
    train_repeats = args.train_repeats or (1 if on_cpu_full else 3)

    real_data = (pets_folder() / f"resized-{SHORT_SIDE}").is_dir()
    standin_folder = None
    if args.quick:
        data_note = "quick-mode cartoon pets"
    elif real_data:
        data_note = "the real Oxford-IIIT Pet photos (resized copies)"
    else:
        print(f"NOTE: the real photos are not prepared ({pets_folder() / f'resized-{SHORT_SIDE}'} is missing; run "
              "lesson 5 or 6 in full mode once). Measuring on the rehearsal's stand-in instead: photo-like "
              "pictures of real photo size, prepared by the course's own code (in a temporary folder) ...", flush=True)
        standin_folder = Path(tempfile.mkdtemp(prefix="bench-pets-standin-"))
        resize_rate = prepare_standin(standin_folder, args.standin_per_breed)
        data_note = (f"stand-in photo-like JPEGs ({args.standin_per_breed} per breed, originals 500 x 375 and "
                     f"the like, resized to a short side of {SHORT_SIDE} like the real ones; preparing them "
                     f"(copy, md5, unpack, resize) ran at {resize_rate:.0f} photos/s)")
    try:
        run(args, device, size, batch_size, archs, batches, steps, train_repeats, data_note)
    finally:
        if standin_folder is not None:
            shutil.rmtree(standin_folder, ignore_errors=True)


def run(args, device: torch.device, size: int, batch_size: int, archs: list[str], batches: int, steps: int,
        train_repeats: int, data_note: str) -> None:
    """Measure and print (a) loading, (b) training, the verdicts, and (c) where a worker's time goes."""
    train_ds, _, names = pets_datasets(args.task, size, quick=args.quick)
    settings = loader_kwargs(device, train=True, quick=args.quick)
    if args.workers is not None:
        settings.update(num_workers=args.workers, persistent_workers=args.workers > 0)
    if batch_size > len(train_ds):
        raise SystemExit(f"--batch-size {batch_size} is larger than the {len(train_ds)} training images")
    originals = None if args.quick else originals_of(train_ds, args.task)
    workers = settings["num_workers"]

    print(f"torch {torch.__version__} | device {describe_device(device)} | mixed precision + channels-last: "
          f"{'on' if use_cuda_speedups(device) else 'off'} | load average {load_average()} on {os.cpu_count()} CPUs")
    print(f"{'quick' if args.quick else 'full'} settings: task {args.task}, {size} x {size} px, batches of "
          f"{batch_size}; data: {data_note} ({len(train_ds)} training images)")
    print(f"loader: {workers} worker process(es), pin_memory={settings['pin_memory']}; {args.repeats} timed runs of "
          f"{batches} batches; training: {train_repeats} timed run(s) of {steps} steps")

    stored = "cartoon pets" if args.quick else "resize cache"
    loads = {stored: loading_rates(DataLoader(train_ds, batch_size=batch_size, **settings),
                                           batches, warmup=2, repeats=args.repeats)}
    if originals is not None:
        loads["original photos"] = loading_rates(DataLoader(originals, batch_size=batch_size, **settings),
                                                 batches, warmup=2, repeats=args.repeats)
    for what, rates in loads.items():
        print(f"(a) loading, {what + ':':17s} {statistics.median(rates):8.1f} images/s  (best {max(rates):.1f})"
              "   no model")
    trains = {}
    for arch in archs:
        trains[arch], cpu_per_image = training_rates(arch, len(names), size, batch_size, device, steps,
                                                     warmup=1 if device.type == "cpu" else 3, repeats=train_repeats)
        cost = (f", {cpu_per_image:.2f} CPU-s per image ({torch.get_num_threads()} threads)"
                if device.type == "cpu" else "")
        print(f"(b) training, {arch + ':':16s} {statistics.median(trains[arch]):8.1f} images/s  "
              f"(best {max(trains[arch]):.1f})   random tensors, no loading{cost}", flush=True)

    a = statistics.median(loads[stored])
    n = len(train_ds)
    for arch, rates in trains.items():
        b = statistics.median(rates)
        verdict = (f"DATA LOADING limits: {arch} could take {b / a:.1f}x more images per second" if a < b else
                   f"TRAINING limits: the loader gives {a / b:.1f}x more images per second than {arch} takes")
        print(f"{arch} on {device.type}: {verdict}; an epoch of these {n} images takes {n / min(a, b):.1f} s "
              f"(loading fully overlapped) to {n / a + n / b:.1f} s (not at all)")
    if workers == 0:
        print("With no worker processes the loading and the training take turns: expect the slower figure.")
    elif device.type == "cpu":
        print("On a CPU the loader's workers and the training share the same cores: expect something in between.")

    print(f"(c) where a loader worker's time goes, CPU ms per photo ({args.profile_samples} photos, one thread):")
    sources = {stored: train_ds, **({"original photos": originals} if originals is not None else {})}
    totals, separate = {}, {}
    for what, dataset in sources.items():
        costs, separate[what] = transform_costs(dataset, args.profile_samples)
        totals[what] = sum(ms for _, ms in costs)
        print(f"    {what}:")
        for name, ms in costs:
            print(f"      {name:24s} {ms:6.2f} ms  {100 * ms / totals[what]:4.0f}%")
        print(f"      {'total':24s} {totals[what]:6.2f} ms  = at most {1000 / totals[what]:.0f} photos/s per worker "
              f"on a free core, {max(workers, 1) * 1000 / totals[what]:.0f} with {max(workers, 1)} worker(s)")
        if separate[what] is not None:
            separate_ms, separate_names = separate[what]
            before = totals[what] - dict(costs)["JitterAndNormalize"] + separate_ms
            print(f"      (torchvision's {separate_names}, the same "
                  f"work one step after another: {separate_ms:.2f} ms; with them the total would be "
                  f"{before:.2f} ms, at most {max(workers, 1) * 1000 / before:.0f} photos/s with {max(workers, 1)} "
                  "worker(s))")
    if args.target and not args.quick:
        for what, total in totals.items():
            ceiling = max(workers, 1) * 1000 / total
            print(f"against a GPU training at {args.target:.0f} images/s: from the {what}, at most {ceiling:.0f} "
                  f"images/s on {max(workers, 1)} free core(s), "
                  f"{'enough' if ceiling >= args.target else 'NOT enough: loading would limit'}")
    print("(batching, passing batches between processes and the training process's own work come on top of (c); "
          "the main process needs some CPU too, so a 2-core Colab runtime gets less than the ceiling)")


if __name__ == "__main__":
    main()
