"""One set of version floors: requirements.txt, pyproject.toml, colab/requirements.txt, ruff and the README agree.

requirements.txt explains each floor (torch >= 2.5 for the ONNX exporter's arguments, Python >= 3.11
for tomllib); a floor raised in one file and not the other would let pip install a set-up the
code cannot run on, or refuse one it can.
"""

import re
import tomllib
from pathlib import Path

from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parent.parent


def requirement_lines(path: Path) -> dict[str, str]:
    """``{name: specifier}`` for every requirement line of a requirements file."""
    lines = (line.split("#", 1)[0].strip() for line in path.read_text().splitlines())
    return {(r := Requirement(line)).name.lower(): str(r.specifier) for line in lines if line}


def pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def declared() -> dict[str, str]:
    """``{name: specifier}`` of pyproject.toml's dependencies and optional dependencies."""
    project = pyproject()["project"]
    lines = project["dependencies"] + [line for extra in project["optional-dependencies"].values() for line in extra]
    return {(r := Requirement(line)).name.lower(): str(r.specifier) for line in lines}


def test_requirements_and_pyproject_state_the_same_floors():
    learners, package = requirement_lines(ROOT / "requirements.txt"), declared()
    shared = learners.keys() & package.keys()
    assert {"torch", "torchvision"} <= shared
    assert {name: learners[name] for name in shared} == {name: package[name] for name in shared}


def test_colab_requirements_agree_too():
    learners = requirement_lines(ROOT / "requirements.txt")
    for name, specifier in requirement_lines(ROOT / "colab" / "requirements.txt").items():
        assert learners.get(name) == specifier, name


def test_the_floors_the_code_needs():
    floors = requirement_lines(ROOT / "requirements.txt")
    assert floors["torch"] == ">=2.5" and floors["torchvision"] == ">=0.20"  # see the reasons in requirements.txt


def test_python_floor_is_the_same_everywhere():
    config = pyproject()
    assert config["project"]["requires-python"] == ">=3.11"
    assert config["tool"]["ruff"]["target-version"] == "py311"
    readme = (ROOT / "README.md").read_text()
    assert re.findall(r"Python (3\.\d+) or newer", readme) == ["3.11"]
