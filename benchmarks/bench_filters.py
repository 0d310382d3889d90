"""How fast are course_utils.filters' NumPy convolutions and pooling next to plain loops, OpenCV and PyTorch?

    .venv/bin/python benchmarks/bench_filters.py [--repeats 5]

Prints the median time of each on the shipped cat photo (grey, 300 x 451) and on a stack of
feature maps. The loops are there to be read, not to be fast; the numbers show by how much.
"""

from __future__ import annotations

import argparse
import statistics
import time

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from course_utils import filters
from course_utils.env import samples_dir


def conv2d_by_hand(image: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """Lesson 2's plain double loop (zero padding 1 for a 3 x 3 kernel), to time against the rest."""
    padded = np.pad(image, 1)
    out = np.zeros(image.shape)
    for i in range(image.shape[0]):
        for j in range(image.shape[1]):
            out[i, j] = np.sum(padded[i:i + 3, j:j + 3] * kernel)
    return out


def median_ms(fn, repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    photo = cv2.imread(str(samples_dir() / "chelsea.png"))
    grey = cv2.cvtColor(photo, cv2.COLOR_BGR2GRAY).astype(np.float64)
    kernel = filters.SOBEL_X.copy()  # the shared preset is read-only, and torch wants a writable array
    grey_t, kernel_t = torch.from_numpy(grey)[None, None], torch.from_numpy(kernel)[None, None]
    print(f"torch threads: {torch.get_num_threads()}, OpenCV threads: {cv2.getNumThreads()}")
    print(f"\nOne 3 x 3 filter, zero padding 1, on a {grey.shape[0]} x {grey.shape[1]} grey photo (float64):")
    rows = {
        "lesson 2's loops": lambda: conv2d_by_hand(grey, kernel),
        "filters.conv2d (einsum)": lambda: filters.conv2d(grey, kernel, padding=1),
        "cv2.filter2D": lambda: cv2.filter2D(grey, -1, kernel, borderType=cv2.BORDER_CONSTANT),
        "torch F.conv2d": lambda: F.conv2d(grey_t, kernel_t, padding=1),
    }
    for name, fn in rows.items():
        repeats = 1 if "loops" in name else args.repeats
        print(f"  {name:26s} {median_ms(fn, repeats):10.2f} ms")

    maps = np.random.default_rng(0).normal(size=(16, 300, 450))
    maps_t = torch.from_numpy(maps)[None]
    print(f"\n2 x 2 pooling of {maps.shape[0]} maps of {maps.shape[1]} x {maps.shape[2]} (float64):")
    rows = {
        "filters.pool2d max": lambda: filters.pool2d(maps, 2, mode="max"),
        "torch F.max_pool2d": lambda: F.max_pool2d(maps_t, 2),
        "filters.pool2d avg": lambda: filters.pool2d(maps, 2, mode="avg"),
        "torch F.avg_pool2d": lambda: F.avg_pool2d(maps_t, 2),
    }
    for name, fn in rows.items():
        print(f"  {name:26s} {median_ms(fn, args.repeats):10.2f} ms")


if __name__ == "__main__":
    main()
