"""Plumbing: writing files safely, downloading them, unpacking archives. You need not read this.

Lessons 5 to 7 fetch the Oxford-IIIT Pet photos through it (see ``pets_prep``), and lessons
6 and 7 save models with ``written_atomically``. What it promises:

- ``written_atomically(path)``: a file appears under its name whole, or not at all;
- ``download(url, path, checksum)``: a verified copy already there is used as it is; otherwise
  the file is streamed into a temporary ``.part`` file with a progress bar, checked (size and
  checksum), and only then renamed onto ``path``. Any failure ends in one ``DownloadError`` that
  names the URL, the path and what to do, with no half-written file left behind;
- ``extract_archive(archive, dest, folder)``: ``dest / folder`` appears complete or not at all,
  and an archive cannot write outside ``dest``.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import os
import shutil
import tarfile
import tempfile
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

from tqdm.auto import tqdm

CHUNK = 1 << 20  # read 1 MiB at a time


@contextlib.contextmanager
def written_atomically(path: Path) -> Iterator[Path]:
    """Write to the temporary ``.part`` file this yields; it becomes ``path`` only if the block finishes.

    The rename is one step on one file system, so ``path`` is always either the old file
    (or absent) or the whole new one; after an error or Ctrl+C the ``.part`` file is removed.
    """
    path = Path(path)
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


class _Refused(Exception):
    """Raised inside the ``written_atomically`` block so the unverified file is not kept."""


def _stream(url: str, out: Path, timeout: float, desc: str, quiet: bool) -> tuple[int, int | None]:
    """Copy ``url`` into the file ``out``; return (bytes received, bytes the server announced)."""
    request = urllib.request.Request(url, headers={"User-Agent": "deep-learning-course"})
    with urllib.request.urlopen(request, timeout=timeout) as response, open(out, "wb") as f:
        announced = response.headers.get("Content-Length")
        total = int(announced) if announced else None  # None when the server does not say
        with tqdm(total=total, unit="B", unit_scale=True, desc=desc, disable=quiet) as bar:
            for block in iter(lambda: response.read(CHUNK), b""):
                f.write(block)
                bar.update(len(block))
    return out.stat().st_size, total


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
    _split_checksum(checksum)  # reject a malformed checksum before any network work
    if path.exists():
        problem = verify(path, checksum, size)
        if problem is None:
            if not quiet:
                print(f"Using the copy already at {path}")
            return path
        if not quiet:
            print(f"The copy at {path} cannot be used ({problem}); downloading it again.")

    path.parent.mkdir(parents=True, exist_ok=True)
    reason = None
    try:
        with written_atomically(path) as tmp:  # renamed onto path only if no exception leaves the block
            received, announced = _stream(url, tmp, timeout, path.name, quiet)
            if announced is not None and received != announced:
                reason = f"the connection closed after {received:,} of {announced:,} bytes"
            elif received == 0 and size is None:
                reason = "the server sent an empty file"
            else:
                problem = verify(tmp, checksum, size)
                if problem is not None:
                    reason = (f"{problem} (the download was cut short or damaged, "
                              "or the server now serves a different file)")
            if reason is not None:
                raise _Refused
    except _Refused:
        pass
    except urllib.error.HTTPError as e:
        reason = f"the server answered HTTP {e.code} {e.reason}"
    except urllib.error.URLError as e:
        reason = f"the server could not be reached ({e.reason}); are you offline?"
    except (http.client.HTTPException, OSError) as e:
        # TimeoutError, ConnectionResetError, IncompleteRead and friends
        reason = f"the connection failed ({type(e).__name__}: {e})"
    if reason is not None:
        raise DownloadError(url, path, reason)
    return path


def _check_member(member: tarfile.TarInfo, dest: Path) -> tarfile.TarInfo:
    """Refuse anything but plain files and folders that stay inside ``dest``.

    A hostile archive can hold names like ``../../.bashrc`` or links that point outside the
    folder. Python 3.12 (and recent 3.10/3.11 releases) check this with ``filter="data"``;
    this is the same idea for older versions.
    """
    target = (dest / member.name).resolve()
    if not (member.isfile() or member.isdir()) or not target.is_relative_to(dest.resolve()):
        raise tarfile.TarError(f"unsafe entry {member.name!r}")
    return member


def extract_archive(archive: Path, dest: Path, folder: str) -> Path:
    """Unpack ``archive`` (which must contain ``folder/``) so that ``dest / folder`` appears at once.

    The archive is unpacked into a temporary folder beside ``dest``, and only when that has
    finished is ``folder`` renamed into place, in one step. An interrupted extraction therefore
    never looks finished: ``dest / folder`` is complete or absent.
    """
    dest.mkdir(parents=True, exist_ok=True)
    for stale in dest.glob(f".extract-{folder}-*"):  # left behind by a run that was killed
        shutil.rmtree(stale, ignore_errors=True)
    tmp = Path(tempfile.mkdtemp(dir=dest, prefix=f".extract-{folder}-"))
    try:
        with tarfile.open(archive) as tar:
            if hasattr(tarfile, "data_filter"):
                tar.extractall(tmp, filter="data")
            else:  # older Pythons: check every entry ourselves
                tar.extractall(tmp, members=[_check_member(m, tmp) for m in tar.getmembers()])
        if not (tmp / folder).is_dir():
            raise tarfile.TarError(f"it has no {folder}/ folder")
        os.replace(tmp / folder, dest / folder)
    except (tarfile.TarError, OSError, EOFError) as e:
        raise RuntimeError(
            f"Could not unpack {archive}: {e}.\nDelete that file and run the cell again to download it afresh."
        ) from e
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return dest / folder
