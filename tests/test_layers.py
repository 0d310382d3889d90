"""The house's order: a course_utils module imports only modules below it (course_utils.LAYERS)."""

import ast
from pathlib import Path

import pytest

import course_utils

PACKAGE = Path(course_utils.__file__).parent
# Modules are the package's files, and its sub-packages (a folder with an __init__.py) as one room each.
MODULES = sorted([p.stem for p in PACKAGE.glob("*.py") if p.stem != "__init__"]
                 + [p.parent.name for p in PACKAGE.glob("*/__init__.py")])


def files_of(name: str) -> list[Path]:
    """The source files of module ``name``: one file, or every file of a sub-package."""
    return [PACKAGE / f"{name}.py"] if (PACKAGE / f"{name}.py").exists() else sorted((PACKAGE / name).glob("*.py"))


def course_imports(path: Path) -> set[str]:
    """The course_utils modules a file imports, wherever in the file (also inside functions)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("course_utils"):
            parts = node.module.split(".")
            if len(parts) > 1:
                found.add(parts[1])
            else:  # from course_utils import filters, setup
                found.update(alias.name for alias in node.names if alias.name in MODULES)
        elif isinstance(node, ast.Import):
            found.update(a.name.split(".")[1] for a in node.names if a.name.startswith("course_utils."))
    return found


def test_every_module_has_its_place():
    assert sorted(course_utils.LAYERS) == MODULES, "add the new module to course_utils.LAYERS"


@pytest.mark.parametrize("name", MODULES)
def test_imports_go_down_only(name):
    level = course_utils.LAYERS.index(name)
    for path in files_of(name):
        imported = course_imports(path) - {name}  # a sub-package's files may import each other
        higher = {m for m in imported if course_utils.LAYERS.index(m) >= level}
        assert not higher, f"{path.name} ({name}) imports {sorted(higher)}, at or above it in course_utils.LAYERS"


@pytest.mark.parametrize("name", MODULES)
def test_each_module_says_which_lessons_use_it_or_that_it_is_plumbing(name):
    for path in files_of(name):
        doc = ast.get_docstring(ast.parse(path.read_text())) or ""
        first = doc.split("\n\n")[0]
        assert "lesson" in first.lower() or "You need not read this" in first, f"{path}: {first}"


def test_the_check_catches_an_upward_import(tmp_path):
    fake = tmp_path / "images.py"
    fake.write_text("def f():\n    from course_utils.training import fit\n")
    assert course_imports(fake) == {"training"}
    assert course_utils.LAYERS.index("training") > course_utils.LAYERS.index("images")
