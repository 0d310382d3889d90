"""Install what a Colab runtime lacks, without touching what it already has.

Run by every notebook's set-up cell on Colab (and only there). Colab's preinstalled
torch, torchvision, numpy, matplotlib, opencv and ipywidgets 7 are held at the versions
Colab ships with a pip constraints file, so this can never upgrade them (ipywidgets 8
would break Colab's widget front end, a new torch would cost minutes and a restart).
"""

import subprocess
import sys
import tempfile
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

KEEP = ["torch", "torchvision", "numpy", "matplotlib", "opencv-python", "opencv-python-headless",
        "ipywidgets", "pillow", "scikit-learn", "tqdm"]


def main() -> None:
    requirements = Path(__file__).with_name("requirements.txt")
    wanted = [line for line in requirements.read_text().splitlines() if line.strip() and not line.startswith("#")]
    if not wanted:
        return
    pins = []
    for name in KEEP:
        try:
            pins.append(f"{name}=={version(name)}")
        except PackageNotFoundError:
            pass
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as constraints:
        constraints.write("\n".join(pins) + "\n")
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "-r", str(requirements), "-c", constraints.name],
                   check=True)


if __name__ == "__main__":
    main()
