"""How long does course_utils.lr_finder.lr_find take with num_it=100 on this CPU?

Same setup as bench_fit.py (lesson 4's small CNN on the digits, batch size 64). For scale it
also times 100 plain training steps (AdamW, no schedule) on the same data: lr_find does those
100 steps plus copying and restoring the model, the optimiser and the random-number state,
and it reads each loss as it goes (it must, to know when to stop).

    .venv/bin/python benchmarks/bench_lr_find.py [--repeats 7] [--num-it 100]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import add_cpu_options, digits_loaders, print_comparison, small_cnn, use_threads  # noqa: E402

from course_utils.lr_finder import lr_find  # noqa: E402
from course_utils.optim import fused_adamw_ok  # noqa: E402


def plain_steps(model: nn.Module, train, steps: int) -> None:
    """`steps` ordinary training steps, cycling through the loader."""
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, fused=fused_adamw_ok(model.parameters()))  # as lr_find's
    loss_fn = nn.CrossEntropyLoss()
    done = 0
    model.train()
    while done < steps:
        for x, y in train:
            loss = loss_fn(model(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            loss.item()
            done += 1
            if done == steps:
                break


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_cpu_options(parser)
    parser.add_argument("--num-it", type=int, default=100)
    args = parser.parse_args()
    use_threads(args.threads)

    print(f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads; num_it={args.num_it}, "
          f"batch size {args.batch_size}, {args.repeats} timed runs each")
    times: dict[str, list[float]] = {"lr_find": [], "plain": []}
    steps = []
    for i in range(args.repeats + 1):  # the first round is a warm-up
        train, _ = digits_loaders(args.batch_size)
        model = small_cnn()
        start = time.perf_counter()
        result = lr_find(model, train, nn.CrossEntropyLoss(), num_it=args.num_it, device="cpu", quiet=True)
        elapsed = time.perf_counter() - start
        steps.append(len(result.lrs))
        train, _ = digits_loaders(args.batch_size)
        start_plain = time.perf_counter()
        plain_steps(small_cnn(), train, len(result.lrs))
        if i > 0:
            times["lr_find"].append(elapsed)
            times["plain"].append(time.perf_counter() - start_plain)

    print(f"lr_find ran {steps[-1]} steps ({result.stop_reason}); suggestions: "
          + ", ".join(f"{k} {v:.1e}" for k, v in result.suggestions.items()))
    print_comparison((f"lr_find(num_it={args.num_it})", times["lr_find"]), ("the same steps, plain", times["plain"]),
                     "lr_find / plain")


if __name__ == "__main__":
    main()
