"""Install what a Colab runtime lacks, without touching what it already has.

Run by every notebook's set-up cell on Colab (and only there). Only the requirements of
colab/requirements.txt that are missing, or installed at a version they do not accept, go to
pip; when nothing is missing (every set-up cell after the first), pip is not called at all.
Colab's preinstalled torch, torchvision, numpy, matplotlib, opencv and ipywidgets 7 are held
at the versions Colab ships with a pip constraints file, so this can never upgrade them
(ipywidgets 8 would break Colab's widget front end, a new torch would cost minutes and a restart).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

try:
    from packaging.requirements import Requirement
except ImportError:  # pip always carries a copy
    from pip._vendor.packaging.requirements import Requirement

REQUIREMENTS = Path(__file__).with_name("requirements.txt")
KEEP = ["torch", "torchvision", "numpy", "matplotlib", "opencv-python", "opencv-python-headless",
        "ipywidgets", "pillow", "scikit-learn", "tqdm"]


def wanted(requirements: Path = REQUIREMENTS) -> list[str]:
    """The requirement lines of ``requirements`` (comments and blank lines dropped)."""
    lines = (line.split("#", 1)[0].strip() for line in requirements.read_text().splitlines())
    return [line for line in lines if line]


def satisfied(line: str) -> bool:
    """Whether the requirement ``line`` (e.g. ``onnx>=1.15``) is installed at a version it accepts."""
    requirement = Requirement(line)
    try:
        installed = version(requirement.name)
    except PackageNotFoundError:
        return False
    return requirement.specifier.contains(installed, prereleases=True)


def missing(requirements: Path = REQUIREMENTS) -> list[str]:
    """The requirements that pip still has to install."""
    return [line for line in wanted(requirements) if not satisfied(line)]


def constraints() -> list[str]:
    """``name==version`` for every preinstalled package we must not change."""
    pins = []
    for name in KEEP:
        try:
            pins.append(f"{name}=={version(name)}")
        except PackageNotFoundError:
            pass
    return pins


def pip_command(packages: list[str], constraints_file: Path) -> list[str]:
    return [sys.executable, "-m", "pip", "install", "-q", *packages, "-c", str(constraints_file)]


def main(requirements: Path = REQUIREMENTS) -> None:
    todo = missing(requirements)
    if not todo:
        return  # nothing missing: no pip call at all
    fd, name = tempfile.mkstemp(suffix=".txt", prefix="colab-constraints-")
    constraints_file = Path(name)
    try:
        with os.fdopen(fd, "w") as f:
            f.write("\n".join(constraints()) + "\n")
        result = subprocess.run(pip_command(todo, constraints_file), capture_output=True, text=True)
    finally:
        constraints_file.unlink(missing_ok=True)
    if result.returncode != 0:
        # Not fatal: only some sections need these; the lessons say so where they are used.
        said = "\n".join((result.stderr or result.stdout or "").strip().splitlines()[-15:])
        print(f"NOTE: could not install {', '.join(todo)} (pip exit code {result.returncode}). pip said:\n{said}\n"
              "Everything else works; the ONNX export in lesson 07 will say what is missing.")


if __name__ == "__main__":
    main()
