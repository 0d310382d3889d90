"""How much time does course_utils.training.fit add on top of a bare PyTorch loop?

Both do the same work on the same CPU: lesson 4's small CNN on the digits, AdamW with the
same parameter groups, the same one-cycle schedule, the same epochs, and after each epoch
the validation loss and accuracy. The bare loop records each batch's loss like fit does.
Runs alternate (bare, fit, bare, fit...) after a warm-up, and the medians are compared.

    .venv/bin/python benchmarks/bench_fit.py [--epochs 5] [--repeats 7] [--batch-size 64]

Target: ratio <= 1.05.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import sys
import time
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import add_cpu_options, digits_loaders, print_comparison, small_cnn, use_threads  # noqa: E402

from course_utils.optim import fused_adamw_ok  # noqa: E402
from course_utils.training import accuracy, fit  # noqa: E402


def bare_loop(model: nn.Module, train, valid, epochs: int, lr: float) -> list[float]:
    """The same training, written as plainly as PyTorch allows."""
    no_decay = {id(m.bias) for m in model.modules() if getattr(m, "bias", None) is not None}
    no_decay |= {id(p) for m in model.modules() if isinstance(m, nn.BatchNorm2d) for p in m.parameters()}
    body, head = model[:-1], model[-1]
    groups = []
    for part in (body, head):
        params = list(part.parameters())
        groups.append({"params": [p for p in params if id(p) not in no_decay], "weight_decay": 0.01})
        groups.append({"params": [p for p in params if id(p) in no_decay], "weight_decay": 0.0})
    # fused where fit's make_optimizer makes it fused: the same update kernel, so only the loop differs
    opt = torch.optim.AdamW(groups, lr=lr, betas=(0.9, 0.99), eps=1e-5, fused=fused_adamw_ok(model.parameters()))
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=epochs * len(train), pct_start=0.25,
                                                div_factor=25, final_div_factor=1e5 / 25)
    loss_fn = nn.CrossEntropyLoss()
    losses, table = [], []
    for _ in range(epochs):
        model.train()
        for x, y in train:
            loss = loss_fn(model(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            losses.append(loss.item())
        model.eval()
        total, correct, count = 0.0, 0, 0
        with torch.inference_mode():
            for x, y in valid:
                out = model(x)
                total += loss_fn(out, y).item() * len(y)
                correct += (out.argmax(1) == y).sum().item()
                count += len(y)
        table.append((total / count, correct / count))
    return losses


def with_fit(model: nn.Module, train, valid, epochs: int, lr: float, quiet: bool) -> list[float]:
    """fit as a lesson calls it: progress bars, a metric, the per-epoch table (made, but not shown here)."""
    with contextlib.redirect_stdout(io.StringIO()):
        history = fit(model, train, valid, nn.CrossEntropyLoss(), epochs, lr, metrics=[accuracy], device="cpu",
                      quiet=quiet)
    return history.batch_losses


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_cpu_options(parser)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--lr", type=float, default=1e-2)
    parser.add_argument("--quiet", action="store_true", help="measure fit without its progress bars and table")
    args = parser.parse_args()
    use_threads(args.threads)

    print(f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads; {args.epochs} epochs, "
          f"batch size {args.batch_size}, {args.repeats} timed runs each")
    runs: dict[str, list[float]] = {"bare": [], "fit": []}
    losses: dict[str, list[float]] = {}
    for i in range(args.repeats + 1):  # the first round warms up (imports, memory) and is not counted
        for name in ("bare", "fit"):
            train, valid = digits_loaders(args.batch_size)
            model = small_cnn()
            start = time.perf_counter()
            if name == "bare":
                losses[name] = bare_loop(model, train, valid, args.epochs, args.lr)
            else:
                losses[name] = with_fit(model, train, valid, args.epochs, args.lr, args.quiet)
            if i > 0:
                runs[name].append(time.perf_counter() - start)
        if i == 0:  # the same work: the same losses, batch by batch
            same = torch.allclose(torch.tensor(losses["bare"]), torch.tensor(losses["fit"]), rtol=1e-5)
            print(f"{len(train)} batches per epoch; both loops give the same batch losses: {same}")

    print_comparison(("course_utils fit", runs["fit"]), ("bare PyTorch loop", runs["bare"]), "fit / bare", 1.05)


if __name__ == "__main__":
    main()
