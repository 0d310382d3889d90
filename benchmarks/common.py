"""What bench_fit.py and bench_lr_find.py share: lesson 4's digits data and small CNN on the
CPU, their common options, and how they report a timing against its baseline.

scikit-learn's 8x8 handwritten digits ship with scikit-learn, so this runs offline.
"""

from __future__ import annotations

import argparse
import statistics

import torch
from sklearn.datasets import load_digits
from torch import nn
from torch.utils.data import DataLoader, TensorDataset


def digits_loaders(batch_size: int = 64, seed: int = 0) -> tuple[DataLoader, DataLoader]:
    """80/20 split of the 1,797 digits, standardised with the training set's mean and std."""
    digits = load_digits()
    images = torch.tensor(digits.images, dtype=torch.float32).unsqueeze(1)  # N x 1 x 8 x 8
    labels = torch.tensor(digits.target)
    order = torch.randperm(len(images), generator=torch.Generator().manual_seed(seed))
    train_idx, valid_idx = order[:1437], order[1437:]
    mean, std = images[train_idx].mean(), images[train_idx].std()
    images = (images - mean) / std
    train = DataLoader(TensorDataset(images[train_idx], labels[train_idx]), batch_size=batch_size, shuffle=True,
                       generator=torch.Generator().manual_seed(seed))
    valid = DataLoader(TensorDataset(images[valid_idx], labels[valid_idx]), batch_size=512)
    return train, valid


def small_cnn(seed: int = 0) -> nn.Sequential:
    """Three 3x3 convolutions with BatchNorm (8x8 -> 4x4 -> 2x2), average pooling, a linear head."""
    torch.manual_seed(seed)
    layers: list[nn.Module] = []
    for c_in, c_out, stride in [(1, 16, 1), (16, 32, 2), (32, 64, 2)]:
        layers += [nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1), nn.BatchNorm2d(c_out), nn.ReLU()]
    return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(64, 10))


def add_cpu_options(parser: argparse.ArgumentParser) -> None:
    """The options both scripts take: timed runs, batch size, CPU threads."""
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--threads", type=int, default=None, help="CPU threads for torch (default: torch's own)")


def use_threads(threads: int | None) -> None:
    """Fix torch's CPU thread count when asked (on a busy machine one thread avoids waiting)."""
    if threads:
        torch.set_num_threads(threads)


def print_comparison(ours: tuple[str, list[float]], base: tuple[str, list[float]], ratio_name: str,
                     target: float | None = None) -> None:
    """Median and fastest time of each, then ours / base from the medians and from the fastest runs."""
    width = max(len(ours[0]), len(base[0])) + 1
    for label, times in (base, ours):
        print(f"{label + ':':{width}} median {statistics.median(times):.3f} s  (min {min(times):.3f})")
    line = (f"ratio {ratio_name}: {statistics.median(ours[1]) / statistics.median(base[1]):.3f} (median)  "
            f"{min(ours[1]) / min(base[1]):.3f} (min)")
    print(line + (f"   target <= {target}" if target is not None else ""))
