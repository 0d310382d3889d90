"""Where the course keeps its data, and a download you can trust.

``data_dir()`` is the folder every lesson reads and writes: the repository's ``data/``
folder, or whatever the ``COURSE_DATA`` environment variable names.

``download()`` fetches one file into that cache the careful way:

1. if a copy is already there and passes its checks, it is used as it is;
2. otherwise the file is streamed into a temporary ``.part`` file beside the target,
   with a progress bar, while its checksum is computed;
3. only when the size and checksum match is it renamed onto the target, in one step.

So an interrupted or failed download never leaves a half-written file where a good one
is expected, and any failure ends in one ``DownloadError`` that says which URL, which
path, and what to do about it.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import os
import tempfile
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

from tqdm.auto import tqdm

DATA_ENV_VAR = "COURSE_DATA"
CHUNK = 1 << 20  # read 1 MiB at a time


def data_dir() -> Path:
    """The folder datasets are downloaded to and read from (created if missing).

    ``$COURSE_DATA`` when set, else the ``data/`` folder of the course repository.
    """
    override = os.environ.get(DATA_ENV_VAR)
    if override:
        path = Path(override).expanduser()
    else:
        repo_data = Path(__file__).resolve().parent.parent / "data"
        # In a clone of the course (and on Colab) that is the repo's data/ folder; a
        # copy of course_utils installed elsewhere falls back to a per-user cache.
        path = repo_data if repo_data.is_dir() else Path.home() / ".cache" / "deep-learning-course"
    path.mkdir(parents=True, exist_ok=True)
    return path


def samples_dir() -> Path:
    """The small files shipped with the course (``data/samples/`` in the repository).

    Unlike ``data_dir()`` this ignores ``COURSE_DATA``: the samples travel with the code.
    Their sources and licences are listed in ``data/README.md``.
    """
    return Path(__file__).resolve().parent.parent / "data" / "samples"


@contextlib.contextmanager
def written_atomically(path: Path) -> Iterator[Path]:
    """Write to the temporary ``.part`` file this yields; it becomes ``path`` only if the block finishes.

    The rename is one step on one file system, so ``path`` is always either the old file
    (or absent) or the whole new one; after an error or Ctrl+C the ``.part`` file is removed.
    (``download`` below works the same way, with checks before its rename.)
    """
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=".part")
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


class DownloadError(RuntimeError):
    """A download failed. The message names the URL, the target path and the fix."""

    def __init__(self, url: str, path: Path, reason: str):
        self.url, self.path, self.reason = url, Path(path), reason
        super().__init__(
            f"Could not download\n    {url}\nto\n    {path}\nbecause {reason}.\n\n"
            "What you can do:\n"
            "  - check the internet connection and run the cell again (nothing half-written was kept);\n"
            "  - or download the file yourself (browser, curl, wget) from the URL above and put it\n"
            "    at the path above: it is checked and then used as it is;\n"
            "  - or run in quick mode (set COURSE_QUICK=1 before starting Jupyter), which needs no downloads."
        )


def file_digest(path: Path, algorithm: str) -> str:
    """The hex checksum of a file (``algorithm`` is e.g. ``'sha256'`` or ``'md5'``)."""
    digest = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def _split_checksum(checksum: str | None) -> tuple[str, str] | None:
    """``'sha256:ab12...'`` -> ``('sha256', 'ab12...')``; ``None`` stays ``None``."""
    if checksum is None:
        return None
    algorithm, sep, value = checksum.partition(":")
    if not sep or algorithm not in hashlib.algorithms_available:
        raise ValueError(f"checksum must look like 'sha256:<hex>' or 'md5:<hex>', got {checksum!r}")
    return algorithm, value.lower()


def verify(path: Path, checksum: str | None = None, size: int | None = None) -> str | None:
    """Check a file against an expected size and checksum.

    Returns ``None`` when it passes, else a short reason it does not (used in messages).
    """
    path = Path(path)
    if not path.is_file():
        return "the file does not exist"
    actual_size = path.stat().st_size
    if size is not None and actual_size != size:
        return f"its size is {actual_size:,} bytes, expected {size:,}"
    expected = _split_checksum(checksum)
    if expected is not None:
        algorithm, value = expected
        actual = file_digest(path, algorithm)
        if actual != value:
            return f"its {algorithm} checksum is {actual}, expected {value}"
    if size is None and expected is None and actual_size == 0:
        return "the file is empty"
    return None


def download(
    url: str,
    path: str | Path,
    checksum: str | None = None,
    size: int | None = None,
    timeout: float = 30,
    quiet: bool = False,
) -> Path:
    """Download ``url`` to ``path`` unless a verified copy is already there; return ``path``.

    ``checksum`` is ``'sha256:<hex>'`` or ``'md5:<hex>'``; ``size`` is in bytes. Either
    may be omitted, but a checksum is what lets a cached copy be trusted.
    """
    path = Path(path)
    expected = _split_checksum(checksum)  # reject a malformed checksum before any network work
    if path.exists():
        problem = verify(path, checksum, size)
        if problem is None:
            if not quiet:
                print(f"Using the copy already at {path}")
            return path
        if not quiet:
            print(f"The copy at {path} cannot be used ({problem}); downloading it again.")

    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=".part")
    tmp = Path(tmp_name)
    digest = hashlib.new(expected[0]) if expected else None
    reason = None
    try:
        with os.fdopen(fd, "wb") as out:
            request = urllib.request.Request(url, headers={"User-Agent": "deep-learning-course"})
            with urllib.request.urlopen(request, timeout=timeout) as response:
                announced = response.headers.get("Content-Length")
                total = int(announced) if announced else None  # None when the server does not say
                with tqdm(total=total, unit="B", unit_scale=True, desc=path.name, disable=quiet) as bar:
                    for block in iter(lambda: response.read(CHUNK), b""):
                        out.write(block)
                        if digest is not None:
                            digest.update(block)
                        bar.update(len(block))
        received = tmp.stat().st_size
        if total is not None and received != total:
            reason = f"the connection closed after {received:,} of {total:,} bytes"
        elif size is not None and received != size:
            reason = f"{received:,} bytes arrived, expected {size:,} (the download was cut short or the file changed)"
        elif digest is not None and digest.hexdigest() != expected[1]:
            reason = (
                f"its {expected[0]} checksum is {digest.hexdigest()}, expected {expected[1]} "
                "(the file is damaged, or the server now serves a different file)"
            )
        elif received == 0 and size is None:
            reason = "the server sent an empty file"
        else:
            os.replace(tmp, path)  # atomic on one file system: the target is whole or absent
    except urllib.error.HTTPError as e:
        reason = f"the server answered HTTP {e.code} {e.reason}"
    except urllib.error.URLError as e:
        reason = f"the server could not be reached ({e.reason}); are you offline?"
    except (http.client.HTTPException, OSError) as e:
        # TimeoutError, ConnectionResetError, IncompleteRead and friends
        reason = f"the connection failed ({type(e).__name__}: {e})"
    finally:
        tmp.unlink(missing_ok=True)  # also runs on KeyboardInterrupt
    if reason is not None:
        raise DownloadError(url, path, reason)
    return path
