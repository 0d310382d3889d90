"""Inference speed on this CPU: eager PyTorch vs TorchScript vs ONNX Runtime (lesson 7).

For each of the three paths it prints the single-image latency (median milliseconds per call)
and the batched throughput (images per second at ``--batch``), each measured with warm-up in
several alternating rounds: the median over the rounds and the best round are shown.

The model is lesson 6's saved pets classifier when one exists (the full-mode one first, then
the quick-mode one, at the image size it was trained at), otherwise a ResNet with random
weights at ``--size`` pixels (speed does not depend on the weights). The first line says which.

    .venv/bin/python benchmarks/bench_inference.py
    .venv/bin/python benchmarks/bench_inference.py --random --arch resnet34 --size 224 --threads 1
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from course_utils import export, recipes  # noqa: E402
from course_utils.checkpoint import load_checkpoint  # noqa: E402
from course_utils.models import build_resnet  # noqa: E402


def pick_model(args) -> tuple[torch.nn.Module, int, str]:
    """``(model in eval mode on the CPU, image size, a sentence saying which model it is)``."""
    candidates = [Path(args.checkpoint)] if args.checkpoint else [
        recipes.checkpoint_path("breeds", quick=False), recipes.checkpoint_path("breeds", quick=True)]
    if not args.random:
        for path in candidates:
            if path.is_file():
                model, meta = load_checkpoint(path)
                return model, meta.image_size, f"{meta.arch} from {path} at {meta.image_size} px"
        if args.checkpoint:
            raise SystemExit(f"no checkpoint at {args.checkpoint}")
    torch.manual_seed(0)
    model, _ = build_resnet(args.arch, pretrained=False, num_classes=37)
    why = "asked for" if args.random else "no saved checkpoint found"
    return model.eval(), args.size, f"{args.arch} with random weights ({why}) at {args.size} px"


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", help="a course checkpoint to time (default: lesson 6's, if saved)")
    parser.add_argument("--random", action="store_true", help="ignore saved checkpoints; time a random ResNet")
    parser.add_argument("--arch", default="resnet18", help="architecture of the random model (default resnet18)")
    parser.add_argument("--size", type=int, default=224, help="image size of the random model (default 224)")
    parser.add_argument("--batch", type=int, default=32, help="batch size for the throughput column")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads for PyTorch and ONNX Runtime")
    parser.add_argument("--warmup", type=int, default=3, help="untimed calls before each measurement")
    parser.add_argument("--repeats", type=int, default=10, help="timed calls per measurement (median taken)")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds over the three paths")
    args = parser.parse_args()

    if args.threads:
        torch.set_num_threads(args.threads)
    threads = torch.get_num_threads()
    model, size, which = pick_model(args)
    print(f"model: {which}")
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"CPU: {cpu_name()} | {threads} threads | load average {load:.1f} | torch {torch.__version__}", end="")
    import onnxruntime

    print(f" | onnxruntime {onnxruntime.__version__}")

    with tempfile.TemporaryDirectory() as folder:
        scripted = export.load_torchscript(export.export_torchscript(model, Path(folder) / "m.pt", size))
        onnx = export.onnx_runner(export.export_onnx(model, Path(folder) / "m.onnx", size), threads)
        paths = {"eager PyTorch": model, "TorchScript": scripted, "ONNX Runtime": onnx}

        check = torch.rand(4, 3, size, size)
        with torch.inference_mode():
            reference = model(check)
            differences = {name: export.max_difference(run(check), reference) for name, run in paths.items()}

        one = torch.rand(1, 3, size, size)
        many = torch.rand(args.batch, 3, size, size)
        single = {name: [] for name in paths}
        batched = {name: [] for name in paths}
        for _ in range(args.rounds):  # alternate, so a burst of load elsewhere hits every path alike
            for name, run in paths.items():
                single[name].append(export.measure_latency(run, one, args.warmup, args.repeats)["median_ms"])
                batched[name].append(export.measure_latency(run, many, args.warmup, args.repeats)["images_per_s"])

    print()
    header = (f"{'path':14s} {'1 image: median ms':>19s} {'(best)':>8s}   "
              f"{f'batch {args.batch}: images/s':>20s} {'(best)':>8s}   {'max |logit diff|':>16s}")
    print(header)
    print("-" * len(header))
    for name in paths:
        print(f"{name:14s} {statistics.median(single[name]):19.2f} {min(single[name]):8.2f}   "
              f"{statistics.median(batched[name]):20.0f} {max(batched[name]):8.0f}   {differences[name]:16.1e}")
    print(f"\nmedians of {args.rounds} rounds of {args.repeats} timed calls after {args.warmup} warm-up calls; "
          "the logit difference is against eager PyTorch on 4 random images")


if __name__ == "__main__":
    main()
