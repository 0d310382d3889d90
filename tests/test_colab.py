"""The Colab set-up cell and colab/install.py, exercised without Colab or the network."""

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def load(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "colab" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


sync = load("sync_notebooks")
install = load("install")
CONFIG = sync.load_config()


@pytest.fixture
def recorded(monkeypatch):
    calls = []
    monkeypatch.setattr(subprocess, "run",
                        lambda cmd, **kw: calls.append(cmd) or subprocess.CompletedProcess(cmd, 0, "", ""))
    monkeypatch.setattr(os, "chdir", lambda path: calls.append(["chdir", path]))
    monkeypatch.setattr(sys, "path", list(sys.path))
    return calls


def test_setup_cell_does_nothing_outside_colab(recorded, monkeypatch):
    monkeypatch.delitem(sys.modules, "google.colab", raising=False)
    exec(sync.setup_cell(CONFIG), {})
    assert recorded == []


def test_setup_cell_on_a_fresh_colab_runtime(recorded, monkeypatch):
    monkeypatch.setitem(sys.modules, "google.colab", object())
    monkeypatch.setattr(os.path, "isdir", lambda path: False)  # nothing cloned yet
    exec(sync.setup_cell(CONFIG), {})
    name = CONFIG["repo"].split("/")[1]
    clone, run_install, chdir = recorded
    assert clone[:2] == ["git", "clone"] and f"https://github.com/{CONFIG['repo']}" in clone
    assert clone[-1] == f"/content/{name}" and CONFIG["branch"] in clone
    assert run_install == [sys.executable, f"/content/{name}/colab/install.py"]
    assert chdir == ["chdir", f"/content/{name}/notebooks"]
    assert sys.path[0] == f"/content/{name}"


def test_setup_cell_after_a_restart_does_not_clone_again(recorded, monkeypatch):
    monkeypatch.setitem(sys.modules, "google.colab", object())
    monkeypatch.setattr(os.path, "isdir", lambda path: True)
    exec(sync.setup_cell(CONFIG), {})
    assert [cmd[0] for cmd in recorded] == [sys.executable, "chdir"]


def test_install_holds_preinstalled_packages_and_cleans_up(tmp_path, monkeypatch):
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("# comment\n\nsurely-not-installed-package>=1.16  # what Colab lacks\n")
    assert install.wanted(requirements) == ["surely-not-installed-package>=1.16"]
    pins = install.constraints()
    assert any(p.startswith("torch==") for p in pins) and any(p.startswith("numpy==") for p in pins)
    seen = []

    def fake_pip(cmd, **kw):
        constraints_file = Path(cmd[cmd.index("-c") + 1])
        seen.append((cmd, constraints_file.read_text().splitlines()))
        return subprocess.CompletedProcess(cmd, 0, "", "")

    monkeypatch.setattr(subprocess, "run", fake_pip)
    install.main(requirements)
    ((command, pinned),) = seen
    assert command[1:4] == ["-m", "pip", "install"] and "surely-not-installed-package>=1.16" in command
    assert any(line.startswith("torch==") for line in pinned)
    assert not Path(command[command.index("-c") + 1]).exists()  # the constraints file is removed afterwards


def test_install_with_nothing_missing_runs_no_pip(tmp_path, recorded):
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("# nothing\n")
    install.main(requirements)
    requirements.write_text("numpy>=1.0\ntorch\n")  # installed, at versions these accept: nothing to do
    assert install.missing(requirements) == []
    install.main(requirements)
    assert recorded == []


def test_only_what_is_missing_or_too_old_goes_to_pip(tmp_path):
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("numpy>=1.0\nnumpy>=999\nsurely-not-installed-package\n")
    assert install.missing(requirements) == ["numpy>=999", "surely-not-installed-package"]


def test_colab_requirements_never_name_preinstalled_packages():
    names = {line.split("=")[0].split(">")[0].split("<")[0].strip().lower()
             for line in install.wanted()}
    assert not names & {k.lower() for k in install.KEEP}


def test_failed_install_is_reported_with_pips_own_words_not_fatal(tmp_path, monkeypatch, capsys):
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("surely-not-installed-package>=1.16\n")
    monkeypatch.setattr(subprocess, "run", lambda cmd, **kw: subprocess.CompletedProcess(
        cmd, 1, "", "ERROR: No matching distribution found for surely-not-installed-package>=1.16"))
    install.main(requirements)
    out = capsys.readouterr().out
    assert "could not install surely-not-installed-package>=1.16" in out and "No matching distribution" in out
