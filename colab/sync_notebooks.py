"""Keep every notebook in step with the course's single sources, and tidy.

For each notebooks/NN_*.ipynb this tool:

- puts the "Open in Colab" badge (built from colab/course.toml) on the first line of the
  first markdown cell;
- makes the first code cell the shared Colab set-up cell (SETUP_CELL below);
- points every link to a helper module (``[...](course_utils/pets.py)``, or a GitHub URL of
  one) at that module's source on GitHub, built from colab/course.toml, so that the link works
  on GitHub and on Colab alike, and a fork's links follow the fork;
- strips outputs and execution counts from every cell except those nbval checks
  (marked ``# NBVAL_CHECK_OUTPUT``), so diffs stay small;
- rewrites the lesson table in README.md between its ``lessons`` markers.

    python colab/sync_notebooks.py            # rewrite in place
    python colab/sync_notebooks.py --check    # report differences, change nothing (tests use this)
    python colab/sync_notebooks.py --execute  # first rerun each notebook in quick mode, so the
                                              # checked cells keep fresh outputs
    python colab/sync_notebooks.py [--execute] 02_cnn_filters.ipynb   # only this notebook
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import tomllib
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"
README = ROOT / "README.md"
CHECK_MARK = "NBVAL_CHECK_OUTPUT"
BADGE_IMG = "https://colab.research.google.com/assets/colab-badge.svg"
SETUP_FIRST_LINE = (
    "# Colab set-up: on Google Colab this fetches the course and what Colab lacks; elsewhere it does nothing."
)
TABLE_START, TABLE_END = "<!-- lessons:start -->", "<!-- lessons:end -->"
# A markdown link target naming a course_utils module: relative, or any GitHub URL of one.
HELPER_LINK = re.compile(r"\]\((?:https://github\.com/[^/\s)]+/[^/\s)]+/blob/[^/\s)]+/)?course_utils/(\w+)\.py(#[^)\s]*)?\)")

SETUP_CELL = SETUP_FIRST_LINE + '''
# (Written by colab/sync_notebooks.py from colab/course.toml: edit those, not this cell.)
import sys

if "google.colab" in sys.modules:
    import os
    import shutil
    import subprocess

    def run(*command):  # never waits for a password; if it fails, stops with git's or pip's own words
        done = subprocess.run(list(command), capture_output=True, text=True, stdin=subprocess.DEVNULL,
                              env={{**os.environ, "GIT_TERMINAL_PROMPT": "0"}})
        print(done.stdout, end="")
        if done.returncode != 0:
            said = done.stderr.strip() or done.stdout.strip()
            raise RuntimeError(f"{{' '.join(command[:2])}} failed (exit code {{done.returncode}}):\\n{{said}}")

    REPO, BRANCH = "{repo}", "{branch}"
    course = "/content/" + REPO.split("/")[1]
    if not os.path.isdir(course):  # a fresh or reset runtime: fetch the course again
        shutil.rmtree(course + ".part", ignore_errors=True)  # what an interrupted clone left behind
        run("git", "clone", "-q", "--depth", "1", "-b", BRANCH, f"https://github.com/{{REPO}}", course + ".part")
        os.rename(course + ".part", course)  # only a complete clone gets the real name
    run(sys.executable, f"{{course}}/colab/install.py")
    sys.path.insert(0, course)
    os.chdir(f"{{course}}/notebooks")'''


def load_config() -> dict:
    return tomllib.loads((ROOT / "colab" / "course.toml").read_text())


def notebook_paths() -> list[Path]:
    return sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))


def badge(name: str, config: dict) -> str:
    url = f"https://colab.research.google.com/github/{config['repo']}/blob/{config['branch']}/notebooks/{name}"
    return f"[![Open In Colab]({BADGE_IMG})]({url})"


def helper_url(module: str, config: dict) -> str:
    """The GitHub page of ``course_utils/<module>.py`` in the configured repository and branch."""
    return f"https://github.com/{config['repo']}/blob/{config['branch']}/course_utils/{module}.py"


def link_helpers(text: str, config: dict) -> str:
    """Point every helper-module link in a markdown text at its source on GitHub."""
    return HELPER_LINK.sub(lambda m: f"]({helper_url(m.group(1), config)}{m.group(2) or ''})", text)


def helper_links(nb) -> list[str]:
    """The course_utils modules the markdown cells of ``nb`` link to, in order."""
    return [m.group(1) for cell in nb.cells if cell.cell_type == "markdown" for m in HELPER_LINK.finditer(cell.source)]


def broken_links() -> list[str]:
    """``notebook: module`` for every helper link to a module that does not exist."""
    modules = {p.stem for p in (ROOT / "course_utils").glob("*.py")}
    return [f"{path.name}: course_utils/{module}.py" for path in notebook_paths()
            for module in helper_links(nbformat.read(path, as_version=4)) if module not in modules]


def setup_cell(config: dict) -> str:
    return SETUP_CELL.format(repo=config["repo"], branch=config["branch"])


def is_checked(cell) -> bool:
    return cell.cell_type == "code" and CHECK_MARK in cell.source


def tidy(nb, config: dict, name: str):
    """Return the notebook as it should be committed (a new object; ``nb`` is untouched)."""
    nb = nbformat.from_dict(json.loads(json.dumps(nb)))
    # 1. badge on the first line of the first markdown cell
    first_md = next(c for c in nb.cells if c.cell_type == "markdown")
    lines = first_md.source.split("\n")
    if lines and "colab-badge.svg" in lines[0]:
        lines = lines[1:]
    first_md.source = "\n".join([badge(name, config)] + lines)
    # 2. the set-up cell is the first code cell
    code = [c for c in nb.cells if c.cell_type == "code"]
    if code and code[0].source.startswith(SETUP_FIRST_LINE):
        code[0].source = setup_cell(config)
    else:
        position = nb.cells.index(code[0]) if code else len(nb.cells)
        nb.cells.insert(position, nbformat.v4.new_code_cell(setup_cell(config)))
    # 3. helper links point at this repository's sources
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            cell.source = link_helpers(cell.source, config)
    # 4. outputs only where nbval checks them; no execution counts or run metadata
    for cell in nb.cells:
        cell.pop("id", None)
        cell.metadata = {k: v for k, v in cell.metadata.items() if k in ("tags",)}
        if cell.cell_type == "code" and not is_checked(cell):
            # (checked cells keep their execution count: nbval skips a cell it thinks was never run)
            cell.execution_count = None
            cell.outputs = []
    nb.metadata = {
        "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
        "language_info": {"name": "python"},
        "accelerator": "GPU",  # Colab opens the notebook asking for a GPU runtime
        "colab": {"provenance": []},
    }
    nb.nbformat, nb.nbformat_minor = 4, 4
    return nb


def serialise(nb) -> str:
    return json.dumps(nb, indent=1, ensure_ascii=False, sort_keys=True) + "\n"


def lesson_title(nb) -> str:
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            for line in cell.source.splitlines():
                if line.startswith("# "):
                    return line[2:].strip()
    return "(untitled)"


def readme_table(notebooks: list[tuple[str, object]], config: dict) -> str:
    rows = ["| # | Lesson | Notebook | Colab |", "|---|---|---|---|"]
    for name, nb in notebooks:
        number = name.split("_")[0]
        rows.append(f"| {number} | {lesson_title(nb)} | [{name}](notebooks/{name}) | {badge(name, config)} |")
    return "\n".join(rows)


def synced_readme(text: str, table: str) -> str:
    pattern = re.compile(re.escape(TABLE_START) + ".*?" + re.escape(TABLE_END), re.S)
    if not pattern.search(text):
        raise SystemExit(f"README.md lacks the {TABLE_START} ... {TABLE_END} markers")
    return pattern.sub(lambda _: f"{TABLE_START}\n{table}\n{TABLE_END}", text)


def execute(path: Path) -> None:
    """Run a notebook top to bottom in quick mode and save it with its outputs."""
    from nbclient import NotebookClient

    nb = nbformat.read(path, as_version=4)
    NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}).execute()
    nbformat.write(nb, path)


def differences() -> dict[Path, str]:
    """Every file whose committed text differs from what this tool would write, with that text."""
    config = load_config()
    changed, tidied = {}, []
    for path in notebook_paths():
        nb = nbformat.read(path, as_version=4)
        text = serialise(tidy(nb, config, path.name))
        tidied.append((path.name, nbformat.reads(text, as_version=4)))
        if path.read_text() != text:
            changed[path] = text
    readme = synced_readme(README.read_text(), readme_table(tidied, config))
    if README.read_text() != readme:
        changed[README] = readme
    return changed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="report differences and exit 1; change nothing")
    parser.add_argument("--execute", action="store_true", help="rerun every notebook (quick mode) first")
    parser.add_argument("names", nargs="*", help="only these notebooks (run with --execute, and rewrite)")
    args = parser.parse_args()
    if args.execute:
        for path in notebook_paths():
            if not args.names or path.name in args.names:
                print(f"running {path.name} ...", flush=True)
                execute(path)
    changed = differences()
    if args.names:  # leave the other notebooks alone (someone else may be editing them)
        changed = {path: text for path, text in changed.items() if path.name in args.names or path == README}
    for path, text in changed.items():
        if args.check:
            print(f"out of date: {path.relative_to(ROOT)}")
        else:
            path.write_text(text)
            print(f"rewrote {path.relative_to(ROOT)}")
    broken = broken_links()
    for link in broken:
        print(f"broken helper link: {link} (no such module)")
    if args.check and changed:
        print("Run `python colab/sync_notebooks.py` to bring them in line.")
    return 1 if broken or (args.check and changed) else 0


if __name__ == "__main__":
    sys.exit(main())
