"""Bounded work for any input (lesson 7): peak memory and time of the worst files we know of.

``course_utils.images`` promises a budget for loading + preparing + predicting one file,
whatever the file is: **under 1.5 GB of memory above the loaded model and under 2 seconds
on a 2-core CPU** (its docstring states it). This script makes the worst cases we know of
and runs each one in a fresh process of its own, through:

- ``predict``: ``Predictor.predict(path)`` with a random-weight resnet34 at 224 px, 37 classes
  (what lesson 7 and ``predict_folder`` do; the upload widget does the same with the bytes);
- ``cache``: ``pets_prep.resize_image(path, out)``, the pets resize cache (lessons 5-7).

For each it prints:

- ``peak``: how far the process's resident memory rose above what it was just before (model
  built, one ordinary photo already predicted), everything included (Pillow's and torch's
  buffers). Linux's peak counter (``VmHWM``) is reset first, so this is the case's own peak.
- ``wall`` and ``cpu``: seconds of load + preprocess + predict (for ``cache``: load, resize and
  save), as wall-clock time and as the CPU time of all the process's threads. On a machine that
  other programs keep busy the wall time is stretched by waiting for a core; the CPU time is not,
  and it is what the time budget is checked against (an upper bound of the wall time on an idle
  2-core machine for single-threaded work). libheif decodes an iPhone photo's 512-pixel tiles on
  several threads, so for the tiled HEIC cases the CPU time adds up both cores and the wall time
  on an idle 2-core machine is lower than it; ``decode threads`` in the first lines says how many
  it may use. Torch uses one thread here.
- ``load+prep``: the CPU seconds of loading and preparing alone (without the forward pass).
- whether the case is within the budget, and what happened (predicted / cached / refused).

Each case runs under a hard memory limit (``--limit-gb`` above the process, via
``resource.setrlimit(RLIMIT_AS)``) and a time limit, so a case that would eat the machine's
memory fails inside its own process instead of making the machine swap: it is reported as
over the limit. To measure another checkout (e.g. the committed version, for a before/after
comparison), point ``--tree`` at a copy of its ``course_utils``::

    .venv/bin/python benchmarks/bench_images.py                       # the worst cases
    .venv/bin/python benchmarks/bench_images.py --cases all           # and many more
    mkdir -p /tmp/before && git archive HEAD course_utils | tar -x -C /tmp/before
    .venv/bin/python benchmarks/bench_images.py --tree /tmp/before --cases banner_40000x1.png

The files (about 20 MB in all; making all of them once takes a few minutes) are kept in
``--files`` (default: a folder in the system's temporary directory), so later runs start at
once. Unix only (it needs ``resource``); the peak-memory reset needs Linux.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
GB = 1024 ** 3
BUDGET_GB = 1.5        # memory above the loaded model
BUDGET_SECONDS = 2.0   # load + preprocess + predict, on a 2-core CPU
# HEIF photos get 3 s (course_utils.images says why): decoding 48 megapixels of HEVC alone takes ~1.5 s of CPU
HEIF_BUDGET_SECONDS = 3.0
HEIF_SUFFIXES = (".heic", ".heif")


# --- The cases: (file name, how to make it, what it is) ------------------------------------------

def _gradient(size: tuple[int, int], mode: str = "RGB"):
    """A smooth picture of ``size`` made without holding a second full-size copy in numpy."""
    from PIL import Image

    base = Image.linear_gradient("L")  # 256 x 256
    flipped = base.transpose(Image.Transpose.FLIP_TOP_BOTTOM)
    bands = [base.resize(size), base.rotate(90).resize(size), flipped.resize(size)]
    if mode == "L":
        return bands[0]
    if mode == "RGBA":
        bands.append(base.rotate(180).resize(size))
    return Image.merge(mode, bands[:len(mode)])


def _grey16(size: tuple[int, int]):
    import numpy as np
    from PIL import Image

    return Image.fromarray(np.asarray(_gradient(size, "L"), dtype=np.uint16) * 257)


def _blank(size: tuple[int, int]):
    """A black 1-bit picture: a few bytes per million pixels once compressed."""
    from PIL import Image

    return Image.new("1", size)


def _heic(size: tuple[int, int]):
    import pillow_heif

    pillow_heif.register_heif_opener()
    return _gradient(size)


# name -> (what it is, how to make it: a function returning (picture, save options))
CASES = {
    # The worst cases of issue 14 (the default)
    "banner_40000x1.png": ("a 1-pixel-high banner: 'short side to 256' makes it 10 million x 256",
                           lambda: (_gradient((40_000, 1)), {})),
    "tower_1x40000.png": ("its tall twin", lambda: (_gradient((1, 40_000)), {})),
    "photo_9248x6936.jpg": ("a 64-megapixel phone photo (JPEG: libjpeg decodes it at 1/4)",
                            lambda: (_gradient((9248, 6936)), {"quality": 90})),
    "rgba_8000x8000.png": ("64 megapixels as a PNG, 4 bytes a pixel (decoded in full)",
                           lambda: (_gradient((8000, 8000), "RGBA"), {"compress_level": 1})),
    "rgba_10950x10950.png": ("120 megapixels, just under the old limit", lambda: (
        _gradient((10_950, 10_950), "RGBA"), {"compress_level": 1})),
    "bomb_14000x14000.png": ("a decompression bomb: 196 megapixels in 24 kB",
                             lambda: (_blank((14_000, 14_000)), {})),
    # iPhones store a photo as a grid of 512 x 512 tiles, which libheif decodes on several threads
    "iphone_4032x3024.heic": ("a 12-megapixel iPhone photo (HEIC, 512-pixel tiles)",
                              lambda: (_heic((4032, 3024)), {"quality": 80, "tile_size": 512})),
    "iphone_8064x6048.heic": ("a 48-megapixel iPhone photo (HEIC 'Max', 512-pixel tiles)",
                              lambda: (_heic((8064, 6048)), {"quality": 80, "tile_size": 512})),
    "heic_8064x6048_untiled.heic": ("48 megapixels in one HEVC picture: decoded on one thread only",
                                    lambda: (_heic((8064, 6048)), {"quality": 80})),
    # More (``--cases all``)
    "photo_4032x3024.jpg": ("an ordinary 12-megapixel phone photo", lambda: (_gradient((4032, 3024)), {"quality": 90})),
    "banner_100000x1.png": ("a longer banner", lambda: (_gradient((100_000, 1)), {})),
    "tower_1x100000.png": ("and its twin", lambda: (_gradient((1, 100_000)), {})),
    "strip_40000x3.png": ("a little thicker", lambda: (_gradient((40_000, 3)), {})),
    "strip_20000x20.jpg": ("a thin JPEG strip, 1000:1", lambda: (_gradient((20_000, 20)), {"quality": 90})),
    "panorama_32000x2000.jpg": ("64 Mpx that libjpeg cannot decode reduced (short side 2000)",
                                lambda: (_gradient((32_000, 2000)), {"quality": 85})),
    "panorama_32000x2000_progressive.jpg": ("the same, progressive (libjpeg keeps all coefficients)",
                                            lambda: (_gradient((32_000, 2000)), {"quality": 85, "progressive": True})),
    "panorama_60000x2000.jpg": ("120 Mpx that libjpeg cannot decode reduced",
                                lambda: (_gradient((60_000, 2000)), {"quality": 85})),
    "jpeg_12000x10000.jpg": ("120 Mpx JPEG, decoded at 1/8", lambda: (_gradient((12_000, 10_000)), {"quality": 85})),
    "grey16_8000x8000.png": ("64 Mpx of 16-bit grey", lambda: (_grey16((8000, 8000)), {"compress_level": 1})),
    "palette_8000x8000.gif": ("64 Mpx GIF, 1 byte a pixel on disk, 4 in RGB",
                              lambda: (_gradient((8000, 8000), "L").convert("P"), {})),
    "rgb_8000x8000.webp": ("64 Mpx WebP (its decoder keeps a buffer of its own)",
                           lambda: (_gradient((8000, 8000)), {"quality": 50, "method": 0})),
    "grey16_10950x10950.png": ("120 Mpx of 16-bit grey", lambda: (_grey16((10_950, 10_950)), {"compress_level": 1})),
    "palette_10950x10950.gif": ("120 Mpx GIF", lambda: (_gradient((10_950, 10_950), "L").convert("P"), {})),
    "rgb_10950x10950.webp": ("120 Mpx WebP", lambda: (_gradient((10_950, 10_950)), {"quality": 50, "method": 0})),
}
WORST = list(CASES)[:9]


def make_case(name: str, path: Path) -> None:
    """Write the file for case ``name`` to ``path`` (the suffix of ``path`` tells Pillow the format)."""
    from PIL import Image

    Image.MAX_IMAGE_PIXELS = None  # we are making bombs on purpose
    picture, options = CASES[name][1]()
    picture.save(path, **options)


# --- One case in a child process -----------------------------------------------------------------

def _status(key: str) -> int:
    """A size from /proc/self/status (VmSize, VmRSS, VmHWM) in bytes."""
    match = re.search(rf"^{key}:\s+(\d+) kB", Path("/proc/self/status").read_text(), re.MULTILINE)
    if not match:
        raise RuntimeError(f"no {key} in /proc/self/status")
    return int(match.group(1)) * 1024


def _reset_peak() -> bool:
    """Set Linux's peak-RSS counter (VmHWM) to the current RSS; False where that is not allowed."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def child(args) -> None:
    """Run one case: build the model, predict one small photo, then measure the case."""
    import resource
    import traceback

    sys.path.insert(0, str(Path(args.tree).resolve()))
    import torch
    from PIL import Image

    from course_utils import images, inference, pets_prep, transforms
    from course_utils.checkpoint import Checkpoint
    from course_utils.models import build_resnet

    torch.set_num_threads(1)  # one thread: on a busy machine, torch's threads would wait for each other
    torch.manual_seed(0)
    model, _ = build_resnet("resnet34", pretrained=False, num_classes=37)
    mean, std = transforms.norm_stats(True)
    predictor = inference.Predictor(model, Checkpoint("resnet34", [f"c{i}" for i in range(37)], 224, mean, std))
    warm = io.BytesIO()
    Image.new("RGB", (500, 375), (120, 80, 40)).save(warm, format="JPEG")
    predictor.predict(warm.getvalue())  # model and transforms warmed up
    path, out = Path(args.child), Path(args.out)
    report: dict = {}

    def run() -> str:
        if args.consumer == "predict":  # predictor.predict, in its two steps, the first one timed on its own
            x = predictor.preprocess(path)
            report["prepare_cpu"] = time.process_time() - cpu_start
            answer = predictor.to_prediction(predictor.probabilities(x.unsqueeze(0))[0])
            return f"predicted ({answer.probability:.0%})"
        pets_prep.resize_image(path, out)
        with Image.open(out) as saved:
            return f"cached {saved.width} x {saved.height}"

    limit = _status("VmSize") + int(args.limit_gb * GB)
    resource.setrlimit(resource.RLIMIT_AS, (limit, resource.getrlimit(resource.RLIMIT_AS)[1]))
    report["peak_reset"] = _reset_peak()
    rss_before = _status("VmRSS")
    peak_before = _status("VmHWM")  # = rss_before after a reset; else the peak so far (then peak is an upper bound)
    start, cpu_start = time.perf_counter(), time.process_time()
    try:
        report["outcome"], report["ok"] = run(), True
    except getattr(images, "BadImageError", ValueError) as e:
        report["outcome"], report["ok"] = f"refused: {e.reason}", True
    except BaseException as e:  # noqa: B036 - MemoryError and friends are what we are looking for
        report["ok"] = False
        report["outcome"] = f"FAILED {type(e).__name__}: {str(e)[:100]}"
        report["where"] = traceback.format_exc().strip().splitlines()[-3][:160]
    report["seconds"] = time.perf_counter() - start
    report["cpu"] = time.process_time() - cpu_start
    report.setdefault("prepare_cpu", report["cpu"])  # refused, failed, or the cache (no model)
    report["peak"] = max(_status("VmHWM"), peak_before) - rss_before
    print("RESULT " + json.dumps(report))


# --- The parent: make the files, run each case, print the table ---------------------------------

def run_case(args, path: Path, consumer: str) -> dict:
    out = Path(args.files) / f"out-{os.getpid()}.jpg"
    command = [sys.executable, __file__, "--child", str(path), "--tree", args.tree, "--consumer", consumer,
               "--limit-gb", str(args.limit_gb), "--out", str(out)]
    start = time.perf_counter()
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=args.timeout)
    except subprocess.TimeoutExpired:
        return {"ok": False, "outcome": f"FAILED: still running after {args.timeout:g} s (killed)",
                "seconds": time.perf_counter() - start}
    finally:
        out.unlink(missing_ok=True)
    for line in done.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[7:])
    tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
    return {"ok": False, "outcome": f"FAILED: the process ended with code {done.returncode}: {tail[0][:100]}",
            "seconds": time.perf_counter() - start}


def seconds_budget(name: str) -> float:
    """The time budget of case ``name``: ``HEIF_BUDGET_SECONDS`` for HEIF photos, else ``BUDGET_SECONDS``."""
    return HEIF_BUDGET_SECONDS if name.lower().endswith(HEIF_SUFFIXES) else BUDGET_SECONDS


def verdict(result: dict, name: str = "") -> str:
    """``within`` the budget of case ``name``, or what is over it."""
    if not result["ok"]:
        return "OVER (failed)"
    over = [what for what, bad in [("memory", result["peak"] >= BUDGET_GB * GB),
                                   ("time", result["cpu"] >= seconds_budget(name))] if bad]
    return "OVER (" + " and ".join(over) + ")" if over else "within"


def print_row(name: str, consumer: str, size: int, result: dict) -> None:
    numbers = (f"{result['peak'] / GB:+6.2f} GB  {result['seconds']:6.2f} s  {result['cpu']:6.2f} s  "
               f"{result['prepare_cpu']:6.2f} s" if "peak" in result
               else f"{'?':>9s}  {result.get('seconds', float('nan')):6.2f} s  {'?':>8s}  {'?':>8s}")
    print(f"{name:36s} {consumer:7s} {size / 1e6:7.2f} MB  {numbers}  {verdict(result, name):14s}  "
          f"{result['outcome'][:90]}", flush=True)
    if "where" in result:
        print(f"{'':45s}(in {result['where'].strip()})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tree", default=str(ROOT), help="the folder holding the course_utils to measure")
    parser.add_argument("--files", default=str(Path(tempfile.gettempdir()) / "course-bench-images"),
                        help="where the test files are made (once) and kept")
    parser.add_argument("--cases", default="worst",
                        help=f"comma-separated case names, 'worst' (default: {', '.join(WORST)}) or 'all'")
    parser.add_argument("--consumers", default="predict,cache", help="predict, cache or both (comma-separated)")
    parser.add_argument("--limit-gb", type=float, default=6.0, help="hard memory limit per case above the process")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds before a case is killed")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--consumer", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(args)

    names = {"worst": WORST, "all": list(CASES)}.get(args.cases) or [n for n in args.cases.split(",") if n]
    unknown = [n for n in names if n not in CASES]
    if unknown:
        parser.error(f"unknown case(s) {unknown}; known: {list(CASES)}")
    files = Path(args.files)
    files.mkdir(parents=True, exist_ok=True)
    try:
        from pillow_heif import options
        heif = f"libheif decode threads: {options.DECODE_THREADS}"
    except ImportError:
        heif = "no pillow-heif: the HEIC cases are refused"
    print(f"course_utils from {args.tree}; files in {files}; torch threads: 1; {heif}")
    print(f"budget: < {BUDGET_GB:g} GB above the loaded model and < {BUDGET_SECONDS:g} s of load + preprocess + "
          f"predict ({HEIF_BUDGET_SECONDS:g} s for HEIF photos; checked on CPU time); "
          f"hard limits {args.limit_gb:g} GB and {args.timeout:g} s per case; "
          f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs (wall times are stretched by it)")
    print(f"\n{'file':36s} {'run':7s} {'size':>10s}  {'peak':>9s}  {'wall':>8s}  {'cpu':>8s}  {'load+prep':>8s}  "
          f"{'budget':14s}  outcome")
    rows = []
    for name in names:
        path = files / name
        if not path.exists():
            part = path.with_name("part-" + path.name)  # the same suffix: it tells Pillow the format
            try:
                make_case(name, part)
            except ImportError as e:
                print(f"{name}: skipped ({e})")
                continue
            os.replace(part, path)
        for consumer in args.consumers.split(","):
            result = run_case(args, path, consumer)
            rows.append((name, consumer, result))
            print_row(name, consumer, path.stat().st_size, result)
    measured = [(n, c, r) for n, c, r in rows if "peak" in r and r["ok"]]
    if measured:
        memory = max(measured, key=lambda row: row[2]["peak"])
        cpu = max(measured, key=lambda row: row[2]["cpu"])
        print(f"\nworst memory: {memory[0]} ({memory[1]}): {memory[2]['peak'] / GB:+.2f} GB; worst time: {cpu[0]} "
              f"({cpu[1]}): {cpu[2]['cpu']:.2f} s CPU, {cpu[2]['seconds']:.2f} s wall")
    over = [f"{n} ({c})" for n, c, r in rows if verdict(r, n) != "within"]
    print(f"{len(rows) - len(over)} of {len(rows)} within the budget" + (f"; over: {', '.join(over)}" if over else "")
          + f"; load average now {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
