"""Checks on the committed notebooks themselves (nbval runs them; this checks how they are stored)."""

import ast
import importlib.util
import re
import sys
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parent.parent
spec = importlib.util.spec_from_file_location("sync_notebooks", ROOT / "colab" / "sync_notebooks.py")
sync = importlib.util.module_from_spec(spec)
sys.modules["sync_notebooks"] = sync
spec.loader.exec_module(sync)

NOTEBOOKS = sync.notebook_paths()
CONFIG = sync.load_config()


def test_there_are_notebooks():
    assert NOTEBOOKS, "no notebooks found in notebooks/"


def test_everything_agrees_with_the_sync_tool():
    """Badges, set-up cells, stripped outputs and the README table are all as the tool writes them."""
    out_of_date = [str(p.relative_to(ROOT)) for p in sync.differences()]
    assert out_of_date == [], f"run `python colab/sync_notebooks.py`; out of date: {out_of_date}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_badge_and_setup_cell(path):
    nb = nbformat.read(path, as_version=4)
    first_md = next(c for c in nb.cells if c.cell_type == "markdown")
    first_code = next(c for c in nb.cells if c.cell_type == "code")
    url = f"https://colab.research.google.com/github/{CONFIG['repo']}/blob/{CONFIG['branch']}/notebooks/{path.name}"
    assert first_md.source.splitlines()[0] == f"[![Open In Colab]({sync.BADGE_IMG})]({url})"
    assert f'REPO, BRANCH = "{CONFIG["repo"]}", "{CONFIG["branch"]}"' in first_code.source
    ast.parse(first_code.source)  # the set-up cell is valid Python


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_only_checked_cells_keep_outputs(path):
    nb = nbformat.read(path, as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "code" and "NBVAL_CHECK_OUTPUT" not in cell.source:
            kept = cell.outputs or cell.execution_count is not None
            assert not kept, f"unchecked cell keeps output: {cell.source[:60]!r}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_checked_cells_have_reference_outputs(path):
    """A checked cell without stored output would check nothing."""
    nb = nbformat.read(path, as_version=4)
    for cell in nb.cells:
        if sync.is_checked(cell):
            assert cell.outputs, f"checked cell has no stored output: {cell.source[:60]!r}"
            assert cell.execution_count is not None, "nbval skips a checked cell stored as never run"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_mode_switch_is_visible_near_the_top(path):
    nb = nbformat.read(path, as_version=4)
    code = [c.source for c in nb.cells if c.cell_type == "code"]
    assert 'os.environ["COURSE_QUICK"]' in code[1] and "setup()" in code[1]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_ends_with_recap_and_checked_exercises(path):
    """A recap, then 2-4 exercises, each an answer cell tagged "exercise" whose check is registered."""
    nb = nbformat.read(path, as_version=4)
    text = "\n".join(c.source for c in nb.cells if c.cell_type == "markdown")
    assert re.search(r"^## Recap", text, re.M) and re.search(r"^## Exercises", text, re.M)
    lesson = importlib.import_module(f"course_utils.exercises.lesson{int(path.name[:2])}").lesson
    numbers = []
    for cell in nb.cells:
        if "exercise" in cell.metadata.get("tags", []):
            assert cell.cell_type == "code"
            calls = re.findall(r"\bex\.check\((\d+)\s*,", cell.source)
            assert len(calls) == 1, f"an exercise cell makes exactly one ex.check(n, ...) call: {cell.source[:80]!r}"
            numbers.append(int(calls[0]))
    assert 2 <= len(numbers) <= 4 and len(set(numbers)) == len(numbers), numbers
    assert sorted(numbers) == sorted(lesson.exercises), "each registered exercise has its cell, and no more"
    for number in numbers:  # the solution can follow the blank cell (conftest.py adds it in the nbval run)
        assert re.search(rf"\bex\.check\({number}\s*,", lesson.exercises[number].solution)
    imports = [c.source for c in nb.cells if c.cell_type == "code"
               and f"from course_utils.exercises import lesson{int(path.name[:2])} as ex" in c.source]
    assert imports, "the exercises section imports its checks as `ex`"


def test_sync_tool_fixes_a_wrong_badge(tmp_path):
    nb = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_markdown_cell("[![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)]"
                                      "(https://colab.research.google.com/github/someone/else/blob/main/x.ipynb)\n# T"),
        nbformat.v4.new_code_cell("print(1)", outputs=[nbformat.v4.new_output("stream", text="1\n")]),
    ])
    fixed = sync.tidy(nb, CONFIG, "99_test.ipynb")
    assert CONFIG["repo"] in fixed.cells[0].source and "someone/else" not in fixed.cells[0].source
    assert fixed.cells[1].source.startswith(sync.SETUP_FIRST_LINE)  # set-up cell inserted
    assert fixed.cells[2].outputs == []  # unchecked output stripped


def _course_modules_imported(nb) -> set[str]:
    """The course_utils modules a notebook's code cells import."""
    found = set()
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        for line in cell.source.splitlines():
            match = re.match(r"\s*from course_utils\.(\w+) import", line)
            if match:
                found.add(match.group(1))
            match = re.match(r"\s*from course_utils import (.+)", line)
            if match:
                found.update(name.strip(" ()") for name in match.group(1).split(","))
    return found - {"setup", "Env", "exercises"}  # the exercises (answers inside!) need no link


def test_helper_links_point_at_modules_that_exist():
    assert sync.broken_links() == []


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_every_helper_a_lesson_uses_is_linked(path):
    """A learner can click through to the source of every course_utils module the lesson imports."""
    nb = nbformat.read(path, as_version=4)
    missing = _course_modules_imported(nb) - set(sync.helper_links(nb))
    assert not missing, f"{path.name} uses course_utils.{sorted(missing)} without a link to its source"


def test_sync_tool_points_helper_links_at_this_repository():
    nb = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_markdown_cell("# T\nSee [pets](course_utils/pets.py) and "
                                      "[old](https://github.com/someone/else/blob/dev/course_utils/training.py#L10)."),
    ])
    text = sync.tidy(nb, CONFIG, "99_test.ipynb").cells[0].source
    assert f"(https://github.com/{CONFIG['repo']}/blob/{CONFIG['branch']}/course_utils/pets.py)" in text
    assert f"(https://github.com/{CONFIG['repo']}/blob/{CONFIG['branch']}/course_utils/training.py#L10)" in text
    assert "someone/else" not in text


def test_a_link_to_a_missing_module_is_reported(tmp_path, monkeypatch):
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("# T\n[gone](course_utils/data.py)")])
    (tmp_path / "99_test.ipynb").write_text(nbformat.writes(nb))
    monkeypatch.setattr(sync, "NOTEBOOKS", tmp_path)
    assert sync.broken_links() == ["99_test.ipynb: course_utils/data.py"]
