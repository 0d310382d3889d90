"""Install what a Colab runtime lacks, without touching what it already has.

Run by every notebook's set-up cell on Colab (and only there). Colab's preinstalled
torch, torchvision, numpy, matplotlib, opencv and ipywidgets 7 are held at the versions
Colab ships with a pip constraints file, so this can never upgrade them (ipywidgets 8
would break Colab's widget front end, a new torch would cost minutes and a restart).
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

REQUIREMENTS = Path(__file__).with_name("requirements.txt")
KEEP = ["torch", "torchvision", "numpy", "matplotlib", "opencv-python", "opencv-python-headless",
        "ipywidgets", "pillow", "scikit-learn", "tqdm"]


def wanted(requirements: Path = REQUIREMENTS) -> list[str]:
    """The requirement lines of ``requirements`` (comments and blank lines dropped)."""
    lines = (line.split("#", 1)[0].strip() for line in requirements.read_text().splitlines())
    return [line for line in lines if line]


def constraints() -> list[str]:
    """``name==version`` for every preinstalled package we must not change."""
    pins = []
    for name in KEEP:
        try:
            pins.append(f"{name}=={version(name)}")
        except PackageNotFoundError:
            pass
    return pins


def pip_command(requirements: Path, constraints_file: Path) -> list[str]:
    return [sys.executable, "-m", "pip", "install", "-q", "-r", str(requirements), "-c", str(constraints_file)]


def main(requirements: Path = REQUIREMENTS) -> None:
    if not wanted(requirements):
        return  # nothing missing: no pip call at all
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as f:
        f.write("\n".join(constraints()) + "\n")
    result = subprocess.run(pip_command(requirements, Path(f.name)))
    if result.returncode != 0:
        # Not fatal: only some sections need these; the lessons say so where they are used.
        print(f"NOTE: could not install {', '.join(wanted(requirements))} (pip exit code {result.returncode}).\n"
              "Everything else works; the ONNX export in lesson 07 will say what is missing.")


if __name__ == "__main__":
    main()
