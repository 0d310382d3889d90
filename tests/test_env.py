import random
import sys

import numpy as np
import pytest
import torch

from course_utils import env


@pytest.mark.parametrize(
    "course_quick, ci, expected",
    [
        (None, None, False),
        ("1", None, True),
        ("true", None, True),
        ("0", None, False),
        (None, "true", True),  # CI switches quick mode on by itself...
        ("0", "true", False),  # ...unless COURSE_QUICK says otherwise
        ("", "false", False),
    ],
)
def test_is_quick(monkeypatch, course_quick, ci, expected):
    for name, value in [("COURSE_QUICK", course_quick), ("CI", ci)]:
        if value is None:
            monkeypatch.delenv(name, raising=False)
        else:
            monkeypatch.setenv(name, value)
    assert env.is_quick() is expected


def test_pick_device_prefers_cuda_then_mps_then_cpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    assert env.pick_device() == torch.device("cpu")
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: True)
    assert env.pick_device() == torch.device("mps")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert env.pick_device() == torch.device("cuda")


def test_describe_device_names_the_gpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "Tesla T4")
    assert env.describe_device(torch.device("cuda")) == "cuda (Tesla T4)"
    assert env.describe_device(torch.device("cpu")).startswith("cpu (")


def test_seed_everything_repeats_every_generator():
    def draw():
        return random.random(), np.random.rand(), torch.rand(1).item()

    env.seed_everything(7)
    first = draw()
    env.seed_everything(7)
    assert draw() == first
    env.seed_everything(8)
    assert draw() != first


def test_in_colab_follows_google_colab_module(monkeypatch):
    monkeypatch.delitem(sys.modules, "google.colab", raising=False)
    assert env.in_colab() is False
    monkeypatch.setitem(sys.modules, "google.colab", object())
    assert env.in_colab() is True


def test_setup_prints_one_summary_line(monkeypatch, capsys):
    monkeypatch.setenv("COURSE_QUICK", "1")
    result = env.setup(seed=3)
    out = capsys.readouterr().out
    assert out.count("\n") == 1
    assert "mode: QUICK" in out and "seed: 3" in out and f"device: {result.device.type}" in out
    assert result.quick and result.seed == 3
    monkeypatch.setenv("COURSE_QUICK", "0")
    assert "mode: FULL" in env.setup(quiet=True).summary()


def test_setup_says_when_training_is_capped(monkeypatch):
    monkeypatch.delenv("COURSE_TRAIN_CAP", raising=False)
    assert env.train_cap() is None and "CAPPED" not in env.setup(quiet=True).summary()
    monkeypatch.setenv("COURSE_TRAIN_CAP", "3")
    assert env.train_cap() == 3 and "training CAPPED at 3" in env.setup(quiet=True).summary()
