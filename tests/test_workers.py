"""Full mode on the learner's own machine: worker counts, the CPU time note, and cuDNN's autotuner on CUDA.

On Linux workers are forked (cheap); on Windows and macOS (and Linux from Python 3.14) they are
started afresh and each imports torch, so a laptop must not get one per core (``env.worker_count``).
A laptop without a GPU is told how long full-mode training will take, with the ways out; on a GPU
the convolution algorithms are timed once for the fixed image size (``cudnn.benchmark``).
(The loader settings themselves are tested in test_pets_data.py, the copies in test_training.py.)
"""

import multiprocessing
import os
import warnings
from types import SimpleNamespace

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from course_utils import env, training


def machine(monkeypatch, cores: int, method: str | None, default: str = "fork") -> None:
    """Pretend to have ``cores`` cores and the multiprocessing start method ``method`` (``None``: not chosen yet)."""
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(cores)), raising=False)
    monkeypatch.setattr(os, "cpu_count", lambda: cores)
    monkeypatch.setattr(multiprocessing, "get_start_method", lambda allow_none=False: method)
    monkeypatch.setattr(multiprocessing, "get_all_start_methods", lambda: [default, "spawn"])


@pytest.mark.parametrize("cores, method, expected", [
    (2, "fork", 2),        # Colab: one per core
    (16, "fork", 4),       # a big Linux machine: capped
    (12, "spawn", 2),      # a Windows or macOS laptop: each worker is a new Python that imports torch
    (16, "forkserver", 2),
    (1, "spawn", 1),
])
def test_worker_count(monkeypatch, cores, method, expected):
    machine(monkeypatch, cores, method)
    assert env.worker_count() == expected


def test_worker_count_reads_the_default_start_method_without_fixing_it(monkeypatch):
    machine(monkeypatch, 8, None, default="spawn")  # macOS / Windows default, nothing chosen yet
    assert env.worker_count() == 2
    machine(monkeypatch, 8, None, default="fork")
    assert env.worker_count() == 4


# --- fit on a CPU and on CUDA ----------------------------------------------------------------------


def tiny_run() -> tuple[nn.Module, DataLoader]:
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 2))
    data = TensorDataset(torch.randn(16, 3, 8, 8), torch.randint(2, (16,)))
    return model, DataLoader(data, batch_size=8)


def slow_clock(monkeypatch, seconds_per_reading: float) -> None:
    """Make every reading of ``training``'s clock ``seconds_per_reading`` later than the last: each epoch seems long."""
    now = [0.0]

    def clock():
        now[0] += seconds_per_reading
        return now[0]

    monkeypatch.setattr(training, "time", SimpleNamespace(perf_counter=clock))   # training's clock only


@pytest.mark.parametrize("epochs, seconds, told", [(5, 200, True), (5, 30, False), (1, 1000, False)])
def test_full_training_on_a_cpu_says_how_long_and_the_ways_out(monkeypatch, capsys, epochs, seconds, told):
    """Minutes of epochs ahead on a CPU: the learner is told the time, quick mode and a GPU (Colab)."""
    model, loader = tiny_run()
    slow_clock(monkeypatch, seconds)
    training.fit(model, loader, None, nn.CrossEntropyLoss(), epochs, device="cpu")
    out = capsys.readouterr().out
    if told:
        assert "On the CPU" in out and "COURSE_QUICK=1" in out and "Colab" in out and "GPU" in out
        assert f"{epochs - 1} epochs left" in out
    else:  # a few minutes at most, or nothing left to wait for: no note
        assert "On the CPU" not in out


def test_no_time_note_when_quiet(monkeypatch, capsys):
    model, loader = tiny_run()
    slow_clock(monkeypatch, 500)
    training.fit(model, loader, None, nn.CrossEntropyLoss(), 3, device="cpu", quiet=True)
    assert capsys.readouterr().out == ""


def test_fit_on_cuda_turns_on_cudnn_autotuning(monkeypatch):
    """Lesson 6's images keep one size, so cuDNN may time its convolution algorithms once and keep the fastest.

    No GPU is needed: the model and the batches stay on the CPU, while ``fit`` is told it trains on
    CUDA (GradScaler and autocast then disable themselves, with a warning this test ignores).
    """
    model, loader = tiny_run()
    monkeypatch.setattr(torch.backends.cudnn, "benchmark", False)
    monkeypatch.setattr(model, "to", lambda *args, **kwargs: model)
    monkeypatch.setattr(training, "move_batch", lambda batch, device, channels_last=False: tuple(batch))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        training.fit(model, loader, None, nn.CrossEntropyLoss(), 1, device="cpu", quiet=True)
        assert not torch.backends.cudnn.benchmark  # not on a CPU
        training.fit(model, loader, None, nn.CrossEntropyLoss(), 1, device="cuda", quiet=True)
    assert torch.backends.cudnn.benchmark
