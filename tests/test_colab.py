"""The Colab set-up cell and colab/install.py, exercised without Colab or the network."""

import importlib.util
import os
import re
import shutil
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


class Recorder(list):
    """The calls the set-up cell made, in order; ``options`` holds the keyword arguments of each ``subprocess.run``."""

    def __init__(self):
        super().__init__()
        self.options = []


@pytest.fixture
def recorded(monkeypatch):
    """Run the set-up cell against fakes: every command, folder removal, rename and chdir is recorded, nothing done."""
    calls = Recorder()

    def fake_run(cmd, **kw):
        calls.append(list(cmd))
        calls.options.append(kw)
        return subprocess.CompletedProcess(cmd, 0, "", "")

    monkeypatch.setattr(subprocess, "run", fake_run)
    monkeypatch.setattr(os, "chdir", lambda path: calls.append(["chdir", path]))
    monkeypatch.setattr(os, "rename", lambda a, b: calls.append(["rename", a, b]))
    monkeypatch.setattr(shutil, "rmtree", lambda path, ignore_errors=False: calls.append(["rmtree", path]))
    monkeypatch.setattr(sys, "path", list(sys.path))
    return calls


def run_cell_in(folder: Path, fake_run, monkeypatch) -> None:
    """Run the set-up cell as on Colab, with ``folder`` in the place of ``/content`` and ``fake_run`` for git/pip."""
    monkeypatch.setitem(sys.modules, "google.colab", object())
    monkeypatch.setattr(subprocess, "run", fake_run)
    monkeypatch.setattr(os, "chdir", lambda path: None)
    monkeypatch.setattr(sys, "path", list(sys.path))
    source = sync.setup_cell(CONFIG)
    assert source.count('"/content/"') == 1
    exec(source.replace('"/content/"', repr(f"{folder}/")), {})


def fake_git(cmd, **kw):
    """A ``git clone`` that makes a complete clone (it has colab/install.py); pip and the rest succeed."""
    if cmd[:2] == ["git", "clone"]:
        Path(cmd[-1], "colab").mkdir(parents=True)
        Path(cmd[-1], "colab", "install.py").write_text("# a clone\n")
    return subprocess.CompletedProcess(cmd, 0, "", "")


def test_setup_cell_does_nothing_outside_colab(recorded, monkeypatch):
    monkeypatch.delitem(sys.modules, "google.colab", raising=False)
    exec(sync.setup_cell(CONFIG), {})
    assert recorded == []


def test_setup_cell_on_a_fresh_colab_runtime(recorded, monkeypatch):
    monkeypatch.setitem(sys.modules, "google.colab", object())
    monkeypatch.setattr(os.path, "isdir", lambda path: False)  # nothing cloned yet
    exec(sync.setup_cell(CONFIG), {})
    course = f"/content/{CONFIG['repo'].split('/')[1]}"
    cleanup, clone, rename, run_install, chdir = recorded
    assert cleanup == ["rmtree", course + ".part"]  # whatever an interrupted clone left
    assert clone[:2] == ["git", "clone"] and f"https://github.com/{CONFIG['repo']}" in clone
    assert clone[-1] == course + ".part" and CONFIG["branch"] in clone  # cloned beside, then renamed
    assert rename == ["rename", course + ".part", course]
    assert run_install == [sys.executable, f"{course}/colab/install.py"]
    assert chdir == ["chdir", f"{course}/notebooks"]
    assert sys.path[0] == course


def test_setup_cell_after_a_restart_does_not_clone_again(recorded, monkeypatch):
    monkeypatch.setitem(sys.modules, "google.colab", object())
    monkeypatch.setattr(os.path, "isdir", lambda path: True)
    exec(sync.setup_cell(CONFIG), {})
    assert [cmd[0] for cmd in recorded] == [sys.executable, "chdir"]


def test_git_never_waits_for_a_password(recorded, monkeypatch):
    monkeypatch.setitem(sys.modules, "google.colab", object())
    monkeypatch.setattr(os.path, "isdir", lambda path: False)
    exec(sync.setup_cell(CONFIG), {})
    for options in recorded.options:  # git and pip alike
        assert options["env"]["GIT_TERMINAL_PROMPT"] == "0"  # git fails at once instead of asking
        assert options["stdin"] == subprocess.DEVNULL  # and there is nothing to type into anyway
        assert options["capture_output"]  # so that a failure can show what it said


def test_an_interrupted_clone_is_detected_and_redone(tmp_path, monkeypatch):
    def interrupted(cmd, **kw):  # the learner stops the cell while git is halfway through
        if cmd[:2] == ["git", "clone"]:
            Path(cmd[-1], ".git").mkdir(parents=True)
            raise KeyboardInterrupt
        return subprocess.CompletedProcess(cmd, 0, "", "")

    with pytest.raises(KeyboardInterrupt):
        run_cell_in(tmp_path, interrupted, monkeypatch)
    course = tmp_path / CONFIG["repo"].split("/")[1]
    assert not course.exists()  # the half clone does not look like a course
    run_cell_in(tmp_path, fake_git, monkeypatch)  # running the cell again
    assert (course / "colab" / "install.py").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == [course.name]  # the half clone is gone


def test_a_git_failure_shows_gits_own_words(tmp_path, monkeypatch):
    said = "fatal: unable to access 'https://github.com/dl-course/deep-learning-course/': Could not resolve host"

    def offline(cmd, **kw):
        return subprocess.CompletedProcess(cmd, 128, "", said + "\n")

    with pytest.raises(RuntimeError) as info:
        run_cell_in(tmp_path, offline, monkeypatch)
    message = str(info.value)
    assert message.startswith("git clone failed (exit code 128)") and said in message
    assert not any(tmp_path.iterdir())  # nothing half-made is left to confuse the next run


def test_an_install_failure_shows_its_own_words_and_a_note_is_shown(tmp_path, monkeypatch, capsys):
    def broken_install(cmd, **kw):
        if cmd[0] == sys.executable:
            return subprocess.CompletedProcess(cmd, 1, "NOTE: about to fail\n", "ModuleNotFoundError: No module x")
        return fake_git(cmd, **kw)

    with pytest.raises(RuntimeError, match="install.py failed .exit code 1.:\nModuleNotFoundError: No module x"):
        run_cell_in(tmp_path, broken_install, monkeypatch)
    assert "NOTE: about to fail" in capsys.readouterr().out  # what install.py prints reaches the learner


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


def test_the_drive_tip_keeps_the_photos_on_the_runtimes_own_disk():
    """Drive is a network mount: fast for a model file, very slow for 7,000 resized photos read every epoch.

    So the README's Drive code copies the trained models there and back, and never points the
    course's data folder (``COURSE_DATA``) at Drive or copies the photo cache there.
    """
    readme = (ROOT / "colab" / "README.md").read_text()
    drive_code = [block for block in re.findall(r"```python\n(.*?)```", readme, re.S) if "/content/drive" in block]
    assert len(drive_code) >= 2  # one copy to Drive, one back
    for block in drive_code:
        assert "COURSE_DATA" not in block and "environ" not in block, block
        copies = re.findall(r"shutil\.\w+\(([^)]*)\)", block)
        assert copies, block
        for arguments in copies:
            assert "models" in arguments and not re.search(r"pets|resized|images", arguments), arguments
    assert "Do not point `COURSE_DATA` at Drive" in " ".join(readme.split())
