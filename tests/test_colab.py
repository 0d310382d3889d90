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
    monkeypatch.setattr(subprocess, "run", lambda cmd, **kw: calls.append(cmd) or subprocess.CompletedProcess(cmd, 0))
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


def test_install_holds_preinstalled_packages(tmp_path, recorded):
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("# comment\n\nonnxruntime>=1.16  # what Colab lacks\n")
    assert install.wanted(requirements) == ["onnxruntime>=1.16"]
    pins = install.constraints()
    assert any(p.startswith("torch==") for p in pins) and any(p.startswith("numpy==") for p in pins)
    install.main(requirements)
    (command,) = recorded
    assert command[1:4] == ["-m", "pip", "install"] and "-c" in command and str(requirements) in command
    constraints_file = Path(command[command.index("-c") + 1])
    assert any(line.startswith("torch==") for line in constraints_file.read_text().splitlines())


def test_install_with_nothing_missing_runs_no_pip(tmp_path, recorded):
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("# nothing\n")
    install.main(requirements)
    assert recorded == []


def test_colab_requirements_never_name_preinstalled_packages():
    names = {line.split("=")[0].split(">")[0].split("<")[0].strip().lower()
             for line in install.wanted()}
    assert not names & {k.lower() for k in install.KEEP}


def test_failed_install_is_reported_not_fatal(tmp_path, monkeypatch, capsys):
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("onnxruntime>=1.16\n")
    monkeypatch.setattr(subprocess, "run", lambda cmd, **kw: subprocess.CompletedProcess(cmd, 1))
    install.main(requirements)
    assert "could not install onnxruntime>=1.16" in capsys.readouterr().out
