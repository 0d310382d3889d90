"""`pip install .` alone must give a working course_utils: every package it imports is a dependency."""

import ast
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# import name -> distribution name, where they differ
DISTRIBUTIONS = {"PIL": "pillow", "cv2": "opencv-python-headless", "sklearn": "scikit-learn"}


def top_level_imports(path: Path) -> set[str]:
    """Third-party packages a module imports when it is imported (not those imported inside functions)."""
    names = set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return {n for n in names if n not in sys.stdlib_module_names and n not in ("course_utils", "__future__")}


def declared() -> set[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    names = set()
    for line in project["dependencies"]:
        names.add(line.split(">")[0].split("<")[0].split("=")[0].split("[")[0].strip().lower())
    return names


def test_every_import_of_the_package_is_a_declared_dependency():
    needed = set()
    for path in (ROOT / "course_utils").glob("*.py"):
        needed |= {DISTRIBUTIONS.get(name, name).lower() for name in top_level_imports(path)}
    assert needed - declared() == set(), "add these to [project] dependencies in pyproject.toml"


def test_a_bare_pytest_never_collects_the_notebooks():
    options = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["pytest"]["ini_options"]
    assert options["testpaths"] == ["tests"]
