"""The full-mode rehearsal: every lesson in FULL mode, top to bottom, offline, on a small stand-in (``make rehearsal``).

Learners run full mode: the Oxford-IIIT Pet photos downloaded, ImageNet weights, 224-pixel
training, checkpoints, lesson 7's export. CI has no internet and no GPU, so this script gives
the lessons what the internet would (see ``standin.py``) and runs them as a learner would:

1. builds the stand-in ``images.tar.gz`` / ``annotations.tar.gz`` (37 real breeds, a few photos
   each, the real archive's odd files) and serves them over HTTP from 127.0.0.1;
   ``COURSE_PETS_RESOURCES`` points ``pets_prep.download_pets`` at them and at their md5s, so the
   real download, checksum, unpacking and resize code runs;
2. puts stand-in ImageNet weights where torchvision's cache looks (``TORCH_HOME``), for every
   architecture the notebooks name;
3. executes each notebook in a fresh kernel (nbclient), with ``COURSE_QUICK=0`` (full mode,
   even where ``CI=true`` would choose quick mode), a temporary ``COURSE_DATA`` and ``TORCH_HOME``,
   and any other internet access refused (a dead proxy);
4. fails on any error, on anything written to stderr other than progress bars, on any warning
   a learner would see, on a note that ImageNet weights could not be loaded, and on a notebook
   whose set-up line does not say ``mode: FULL``; then checks that the archives came from the
   local server, the resize cache is complete and upright, and lesson 7 exported its files.

Training is cut by ONE documented setting, ``COURSE_TRAIN_CAP=N`` (``env.train_cap``: at most N
epochs per ``fit``, N batches per pass over a loader, of which only the first ``CAPPED_BATCH`` (4)
photos train or are scored, N learning-rate-finder steps), and by the number of stand-in photos.
The data path, image size (224 px), architectures and code are the lessons' own; the loaders
still read and augment whole batches of 64. The numbers the notebooks print are therefore NOT
results; ``setup()`` says so in every capped notebook. Lessons 1 to 4 (``UNCAPPED``) run with no
cap at all, exactly as a learner runs them: their full mode trains small networks on small data,
which takes under a minute a lesson on a CPU (30-60 s each in the rehearsal; and a finder capped
at N steps would have too few points to suggest a rate).

Why 4 photos: on a 2-core CPU one training step of lesson 6's ResNet-152 on 64 photos at 224 px
took 76-85 s, and the process peaked at 13.8 GB of RAM; on 8 photos, 7-8 s and 3.2 GB. On one
thread, as CI runs it beside the browser checks, a step took 14.7 s on 8 photos and 6.5 s on 4.
So the rehearsal fits CI's time and a machine with 8 GB free. The table at the end shows the
largest process ("peak GB"). Lesson 6's own hand-written loop does not go through the cap: it
trains on the stand-in's one whole batch of 64.

    .venv/bin/python tests/rehearsal/run.py                   # all seven lessons (what `make rehearsal` runs)
    .venv/bin/python tests/rehearsal/run.py --cap 3 05_transfer_learning.ipynb
    .venv/bin/python tests/rehearsal/run.py --keep            # keep the temporary folder to look at
    .venv/bin/python tests/rehearsal/run.py --keep-going 05_transfer_learning.ipynb   # every failing cell
"""

from __future__ import annotations

import argparse
import functools
import http.server
import os
import re
import resource
import shutil
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError, CellTimeoutError
from PIL import Image, ImageOps

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
NOTEBOOKS = ROOT / "notebooks"
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(ROOT))

import standin  # noqa: E402

from course_utils.env import CAP_ENV_VAR, CAPPED_BATCH  # noqa: E402

DEFAULT_CAP = 1                        # what `make rehearsal` and CI use: one batch per pass, one epoch per fit
# Lessons whose full mode needs neither the pet photos nor a large network: run without a cap.
UNCAPPED = ("01_intro.ipynb", "02_cnn_filters.ipynb", "03_pooling.ipynb", "04_lr_find.ipynb")
CELL_TIMEOUT = 900                     # seconds (--cell-timeout); a cell that takes longer is a failure in itself
# A tqdm progress bar drawn as text, e.g. "epochs:  50%|#####     | 1/2 [00:03<00:03,  3.1s/it]".
PROGRESS_BAR = re.compile(r"^.*\d+%\|.*\|.*\[.*\]\s*$")
# What a learner would see as a warning: Python's warning lines, and the image libraries' own.
WARNING_TEXT = re.compile(r"\b\w*Warning: |Corrupt JPEG data|Premature end of JPEG|libpng warning|"
                          r"extraneous bytes before marker")
NO_WEIGHTS = re.compile(r"could not load the ImageNet weights|could not be loaded", re.IGNORECASE)


@dataclass
class Outcome:
    """What happened to one notebook."""

    name: str
    cap: int | None = None       # the COURSE_TRAIN_CAP it ran under (None: no cap)
    seconds: float = 0.0         # wall-clock time
    cpu_seconds: float = 0.0     # CPU time of the kernel and its worker processes (steadier on a busy machine)
    peak_gb: float = 0.0         # the largest memory (RSS) any process of the run has used so far
    setup_line: str = ""
    problems: list[str] = field(default_factory=list)
    slowest: list[tuple[float, str]] = field(default_factory=list)   # (seconds, cell) of the slowest cells


# --- The local "internet" ------------------------------------------------------------------------


def serve(folder: Path) -> tuple[http.server.ThreadingHTTPServer, list[tuple[str, int]]]:
    """Serve ``folder`` on 127.0.0.1 (a free port) in a background thread; return the server and its request log."""
    requests: list[tuple[str, int]] = []

    class Handler(http.server.SimpleHTTPRequestHandler):
        def log_request(self, code="-", size="-"):
            requests.append((self.path, int(code) if str(code).isdigit() else 0))

        def log_message(self, format, *args):  # noqa: A002  (quiet: the table at the end tells)
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Handler, directory=str(folder)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, requests


def prepare(work: Path) -> tuple[http.server.ThreadingHTTPServer, list, dict]:
    """Build the stand-ins under ``work``, start the server, and set the environment the kernels inherit."""
    start = time.perf_counter()
    md5s = standin.build_archives(work / "server")
    server, requests = serve(work / "server")
    base = f"http://127.0.0.1:{server.server_address[1]}"
    resources = standin.write_resources(work / "pets-resources.json", base, md5s)
    sources = [*NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"), *(ROOT / "course_utils").rglob("*.py")]  # recipes name archs
    archs = standin.architectures_named_in(sources)
    weights = standin.write_weight_standins(work / "torch", archs)
    os.environ.update({
        "COURSE_QUICK": "0",                       # full mode, whatever CI=true would choose
        "COURSE_DATA": str(work / "data"),
        "TORCH_HOME": str(work / "torch"),
        "COURSE_PETS_RESOURCES": str(resources),
        # Offline: anything that tries the real internet meets a dead proxy and fails at once.
        "HTTP_PROXY": "http://127.0.0.1:9", "HTTPS_PROXY": "http://127.0.0.1:9",
        "http_proxy": "http://127.0.0.1:9", "https_proxy": "http://127.0.0.1:9",
        "NO_PROXY": "127.0.0.1,localhost", "no_proxy": "127.0.0.1,localhost",
        "PYTHONUNBUFFERED": "1",
        # Memory, not speed: glibc keeps the memory of freed tensors under 32 MB for reuse, so after
        # lesson 6 trains its ResNet-152 on a CPU the kernel would hold ~9 GB it no longer uses while
        # the DDP section's process needs ~12 GB of its own. Handing every block over 1 MB back to the
        # system at once keeps the two within one machine. (On a GPU that memory is the GPU's.)
        "MALLOC_MMAP_THRESHOLD_": str(2**20),
    })
    print(f"stand-in pets: {len(standin.image_rows())} listed photos of {len(standin.BREEDS)} breeds "
          f"({standin.TRAINVAL_PER_BREED} trainval + {standin.TEST_PER_BREED} test each), served at {base}")
    print(f"stand-in ImageNet weights (random) for {', '.join(archs)} in {weights[0].parent if weights else '-'}")
    print(f"made in {time.perf_counter() - start:.0f} s")
    return server, requests, md5s


# --- Running and checking one notebook -------------------------------------------------------------


ANSI = re.compile(r"\x1b\[[0-9;]*m")   # the colours of a traceback


def _texts(output) -> list[tuple[str, str]]:
    """``(kind, text)`` for every piece of text in one cell output: ``stdout``, ``stderr``, ``error`` or ``display``."""
    kind = output.get("output_type")
    if kind == "stream":
        return [(output.get("name", "stdout"), output.get("text", ""))]
    if kind == "error":
        return [("error", ANSI.sub("", f"{output.get('ename')}: {output.get('evalue')}"))]
    text = output.get("data", {}).get("text/plain", "")
    return [("display", "".join(text) if isinstance(text, list) else text)] if text else []


def _excerpt(source: str, lines: int = 3) -> str:
    code = [line for line in source.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    return " | ".join(code[:lines])[:200]


def cap_for(name: str, cap: int) -> int | None:
    """The ``COURSE_TRAIN_CAP`` notebook ``name`` runs under: ``cap``, or ``None`` (no cap) for ``UNCAPPED`` ones."""
    return None if name in UNCAPPED else cap


def check_outputs(nb, cap: int | None, outcome: Outcome) -> None:
    """Add to ``outcome.problems`` everything in ``nb``'s outputs a learner should not see."""
    for index, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        where = f"cell {index} [{_excerpt(cell.source)}]"
        for output in cell.get("outputs", []):
            for kind, text in _texts(output):
                if not outcome.setup_line and "mode:" in text:
                    outcome.setup_line = next(line for line in text.splitlines() if "mode:" in line)
                if kind == "error":
                    outcome.problems.append(f"{where}: {text[:300]}")
                elif kind == "stderr":
                    lines = [seg.strip() for seg in re.split(r"[\r\n]", text)]
                    stray = [seg for seg in lines if seg and not PROGRESS_BAR.match(seg)]
                    if stray:
                        outcome.problems.append(f"{where}: writes to stderr: {' / '.join(stray[:3])[:300]}")
                elif WARNING_TEXT.search(text):
                    line = next(seg for seg in text.splitlines() if WARNING_TEXT.search(seg))
                    outcome.problems.append(f"{where}: shows a warning: {line.strip()[:300]}")
                if NO_WEIGHTS.search(text):
                    outcome.problems.append(f"{where}: ImageNet weights not loaded (a stand-in is missing?): "
                                            f"{text.strip().splitlines()[0][:200]}")
    if "mode: FULL" not in outcome.setup_line:
        outcome.problems.append(f"its set-up line does not say 'mode: FULL': {outcome.setup_line or '(none printed)'}")
    elif cap is not None and f"CAPPED at {cap}" not in outcome.setup_line:
        outcome.problems.append(f"its set-up line does not show the training cap: {outcome.setup_line}")
    elif cap is None and "CAPPED" in outcome.setup_line:
        outcome.problems.append(f"it should run uncapped, but its set-up line says: {outcome.setup_line}")


def _wait_for_the_kernel_to_exit(limit: float = 30) -> None:
    """Reap the finished kernel (this script's only child process), so that its CPU time is counted now.

    After a timeout nbclient kills the kernel without waiting for it; a kernel that is not yet
    reaped would add its CPU time to the next notebook's.
    """
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return  # no child left
        if pid == 0:
            time.sleep(0.2)  # still running (shutting down)


def slowest_cells(nb, n: int = 3) -> list[tuple[float, str]]:
    """The ``n`` slowest code cells, from the timings nbclient records in each cell's metadata."""
    times = []
    for index, cell in enumerate(nb.cells):
        timing = cell.get("metadata", {}).get("execution", {})
        if "iopub.execute_input" in timing and "shell.execute_reply" in timing:
            start, end = (datetime.fromisoformat(timing[k].replace("Z", "+00:00"))
                          for k in ("iopub.execute_input", "shell.execute_reply"))
            times.append(((end - start).total_seconds(), f"cell {index} [{_excerpt(cell.source, 2)[:90]}]"))
    return sorted(times, reverse=True)[:n]


def run_notebook(path: Path, cap: int | None, saved: Path, timeout: int = CELL_TIMEOUT,
                 keep_going: bool = False) -> Outcome:
    """Execute one notebook in a fresh kernel (``COURSE_TRAIN_CAP=cap``, or none), save it under ``saved``, check it."""
    outcome = Outcome(path.name, cap)
    if cap is None:
        os.environ.pop(CAP_ENV_VAR, None)
    else:
        os.environ[CAP_ENV_VAR] = str(cap)   # the kernel inherits this process's environment
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(nb, timeout=timeout, kernel_name="python3", allow_errors=keep_going,
                            resources={"metadata": {"path": str(path.parent)}},
                            extra_arguments=["--IPKernelApp.log_level=ERROR"])  # not its notice about TCP
    start, used = time.perf_counter(), resource.getrusage(resource.RUSAGE_CHILDREN)
    try:
        client.execute()
    except CellExecutionError:
        pass  # the error is in the cell's outputs, where check_outputs finds and reports it
    except CellTimeoutError:
        outcome.problems.append(f"stopped: a cell ran for more than {timeout} s (see the slowest cells below)")
    except Exception as e:  # the kernel died, or would not start
        outcome.problems.append(f"could not run: {type(e).__name__}: {e}")
    outcome.seconds = time.perf_counter() - start
    _wait_for_the_kernel_to_exit()
    now = resource.getrusage(resource.RUSAGE_CHILDREN)  # the kernel has exited: its CPU time is counted here
    outcome.cpu_seconds = (now.ru_utime + now.ru_stime) - (used.ru_utime + used.ru_stime)
    outcome.peak_gb = now.ru_maxrss / 2**20   # kilobytes on Linux; the largest child (kernel, worker, DDP process)
    nbformat.write(nb, saved / path.name)
    check_outputs(nb, cap, outcome)
    outcome.slowest = slowest_cells(nb)
    return outcome


# --- What the whole run must have done -------------------------------------------------------------


def check_artefacts(work: Path, requests: list[tuple[str, int]], md5s: dict, names: list[str]) -> list[str]:
    """Problems with what the lessons left behind: the download, the resize cache, the exported files."""
    problems = []
    lessons_with_pets = {"05_transfer_learning.ipynb", "06_training.ipynb", "07_inference.ipynb"}
    if lessons_with_pets & set(names):
        for name in md5s:
            got = [code for path, code in requests if path == f"/{name}"]
            if got != [200]:
                problems.append(f"{name}: expected one download from the local server, got {got or 'none'}")
        pets = work / "data" / "pets"
        cache = pets / "resized-256" / "oxford-iiit-pet" / "images"
        listed = {row[0] for row in standin.image_rows()}
        made = {p.stem for p in cache.glob("*.jpg")}
        if made != listed:
            problems.append(f"resize cache: {len(made)} photos in {cache}, expected the {len(listed)} listed ones")
        rotated = next(i for i, kind in standin.ODDITIES.items() if kind == "exif-rotated")
        original = pets / "original" / "oxford-iiit-pet" / "images" / f"{rotated}.jpg"
        if original.exists() and (cache / f"{rotated}.jpg").exists():
            with Image.open(original) as a, Image.open(cache / f"{rotated}.jpg") as b:
                upright, copy = ImageOps.exif_transpose(a).size, b.size
            if (upright[0] > upright[1]) != (copy[0] > copy[1]):
                problems.append(f"resize cache: {rotated}.jpg (EXIF orientation 6) is stored {copy[0]} x {copy[1]}, "
                                f"but the photo is {upright[0]} x {upright[1]} upright: the cache ignores EXIF, so "
                                "training sees it sideways while load_image (lesson 7) turns it upright")
    if "07_inference.ipynb" in names:
        for suffix in (".pt", ".torchscript.pt", ".onnx"):
            if not list((work / "data").rglob(f"*{suffix}")):
                problems.append(f"no *{suffix} file under COURSE_DATA: lesson 6's checkpoint or lesson 7's export "
                                "did not happen")
    return problems


def load_average() -> str:
    """The machine's load average, e.g. ``"1.9 1.2 0.8"`` (timings on a busy machine are not the CI's)."""
    return " ".join(f"{x:.1f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "unknown"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument("--cap", type=int, default=DEFAULT_CAP,
                        help=f"COURSE_TRAIN_CAP: epochs, batches per pass and finder steps (default {DEFAULT_CAP}); "
                             f"capped batches keep their first {CAPPED_BATCH} photos")
    parser.add_argument("--cell-timeout", type=int, default=CELL_TIMEOUT,
                        help=f"seconds one cell may run before it counts as a failure (default {CELL_TIMEOUT})")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder (data, weights, notebooks)")
    parser.add_argument("--keep-going", action="store_true",
                        help="run the cells after a failing one too, to see every failure at once (diagnosis only)")
    parser.add_argument("names", nargs="*", help="only these notebooks (default: all, in order)")
    args = parser.parse_args()
    paths = [p for p in sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb")) if not args.names or p.name in args.names]
    if not paths or (args.names and len(paths) != len(args.names)):
        print(f"no such notebook(s) among {[p.name for p in sorted(NOTEBOOKS.glob('*.ipynb'))]}")
        return 2

    s, es = ("", "") if args.cap == 1 else ("s", "es")   # plural endings
    print(f"FULL-MODE REHEARSAL: COURSE_QUICK=0, COURSE_TRAIN_CAP={args.cap} in force: at most {args.cap} "
          f"epoch{s} per fit, {args.cap} batch{es} per pass over a loader, of {CAPPED_BATCH} photos, "
          f"{args.cap} learning-rate-finder step{s} "
          f"(lessons {', '.join(n[:2] for n in UNCAPPED)} uncapped: small networks, under a minute each on a CPU). "
          "Stand-in photos and random stand-in weights: the numbers the notebooks print are not results.")
    total, started_load = time.perf_counter(), load_average()
    work = Path(tempfile.mkdtemp(prefix="course-rehearsal-"))
    saved = work / "executed"
    saved.mkdir()
    server, requests, md5s = prepare(work)
    outcomes = []
    try:
        for path in paths:
            print(f"running {path.name} ...", flush=True)
            outcomes.append(run_notebook(path, cap_for(path.name, args.cap), saved, args.cell_timeout,
                                         args.keep_going))
            o = outcomes[-1]
            print(f"  {o.seconds:.0f} s ({o.cpu_seconds:.0f} CPU-s, load average {load_average()}), "
                  f"{len(o.problems)} problem(s)", flush=True)
        general = check_artefacts(work, requests, md5s, [p.name for p in paths])
    finally:
        server.shutdown()

    print(f"\n{'notebook':28s} {'seconds':>8s} {'CPU-s':>7s}  {'cap':>4s}  {'peak GB':>7s}  result")
    for o in outcomes:
        print(f"{o.name:28s} {o.seconds:8.0f} {o.cpu_seconds:7.0f}  {o.cap or 'none':>4}  {o.peak_gb:7.1f}  "
              f"{'ok' if not o.problems else 'FAILED'}")
        for seconds, cell in o.slowest:
            print(f"{'':28s} {seconds:8.0f}           {cell}")
    cpu = sum(o.cpu_seconds for o in outcomes)
    print(f"{'total, with the stand-ins':28s} {time.perf_counter() - total:8.0f} {cpu:7.0f}"
          "  (CPU-s: the kernels and their workers; wall seconds depend on what else the machine runs;\n"
          f"{'':28s} peak GB: the largest process so far, kernel, loader worker or training process)")
    print(f"load average (1, 5, 15 min): {load_average()} at the end, {started_load} at the start, "
          f"on {os.cpu_count()} CPU(s)")
    failed = [o for o in outcomes if o.problems] or general
    for o in outcomes:
        for problem in o.problems:
            print(f"FAIL {o.name}: {problem}")
    for problem in general:
        print(f"FAIL {problem}")
    if args.keep:
        print(f"kept: {work}")
    else:
        for child in work.iterdir():
            if child != saved or not failed:
                shutil.rmtree(child, ignore_errors=True) if child.is_dir() else child.unlink()
        if failed:
            print(f"the executed notebooks, with their outputs, are in {saved}")
        else:
            work.rmdir()
    print("REHEARSAL " + ("FAILED" if failed else f"PASSED (COURSE_TRAIN_CAP={args.cap}: not results)"))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
