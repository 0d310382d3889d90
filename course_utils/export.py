"""The same model outside Python's PyTorch, and how fast it answers (lesson 7).

- ``export_torchscript`` / ``load_torchscript``: record the model's operations once (tracing)
  into a file that ``torch.jit.load`` reads, also from C++;
- ``export_onnx`` / ``onnx_runner``: an ONNX file, run by ONNX Runtime (traced with a batch of
  2 so that any batch size works; the classic exporter where the newer one is missing);
- ``max_difference``: how far two engines' answers are apart (they add up in different orders);
- ``measure_latency``: the median time of a call, after a warm-up, synchronising the GPU.
"""

from __future__ import annotations

import contextlib
import copy
import inspect
import io
import statistics
import time
import warnings
from pathlib import Path

import torch
from torch import nn


def _cpu_copy(model: nn.Module) -> nn.Module:
    """A copy of ``model`` on the CPU in eval mode; the caller's model stays where it was (e.g. on the GPU)."""
    return copy.deepcopy(model).cpu().eval()


def export_torchscript(model: nn.Module, path: str | Path, image_size: int) -> Path:
    """Save ``model`` as TorchScript (traced on one example batch) for ``torch.jit.load``.

    TorchScript is deprecated in recent PyTorch in favour of ``torch.export``, but it is
    still what many deployment tools read, and tracing shows the idea: record the
    operations once, keep them without the Python code.
    """
    path = Path(path)
    example = torch.rand(1, 3, image_size, image_size)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # the deprecation notice, said above
        traced = torch.jit.trace(_cpu_copy(model), example)
        traced.save(str(path))
    return path


def load_torchscript(path: str | Path) -> torch.jit.ScriptModule:
    """Load a TorchScript file (made by ``export_torchscript``) on the CPU, quietly.

    ``torch.jit.load`` warns that TorchScript is deprecated; ``export_torchscript`` says why we
    still show it.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        return torch.jit.load(str(path), map_location="cpu").eval()


EXAMPLE_BATCH = 2  # the batch ONNX export traces with (see export_onnx)


def export_onnx(model: nn.Module, path: str | Path, image_size: int, quiet: bool = False) -> Path:
    """Save ``model`` as one ONNX file whose batch size is free, readable by ONNX Runtime.

    The example batch holds 2 images, not 1: ``torch.export`` takes a dimension whose example
    size is 1 for the constant 1 (pytorch issue #133653), and the file would then refuse any
    other batch size. Recent PyTorch exports with the ``torch.export``-based exporter (it needs
    the onnxscript package); where that is missing (``ImportError``), this PyTorch is too old
    for its arguments (``TypeError``, ``AttributeError``), or the newer exporter gives up on the
    model (``torch.onnx.OnnxExporterError``, as early versions of it may), the classic
    TorchScript-based exporter is used instead. One line says which, and why, unless ``quiet``.
    """
    path = Path(path)
    example = torch.rand(EXAMPLE_BATCH, 3, image_size, image_size)
    model = _cpu_copy(model)
    try:  # the torch.export-based exporter (needs the onnxscript package)
        batch = torch.export.Dim("batch", min=1, max=1024)
        with contextlib.redirect_stdout(io.StringIO()):  # it narrates every step
            torch.onnx.export(model, (example,), str(path), dynamo=True, external_data=False,
                              input_names=["image"], output_names=["logits"], dynamic_shapes=({0: batch},))
        used = "the torch.export-based exporter (dynamo=True)"
    except (ImportError, TypeError, AttributeError, torch.onnx.OnnxExporterError) as e:  # see the docstring
        _classic_onnx_export(model, example, path)
        used = f"the classic TorchScript-based exporter (the newer one could not run: {type(e).__name__}: {e})"
    if not quiet:
        print(f"{path.name}: exported with {used}")
    return path


def _classic_onnx_export(model: nn.Module, example: torch.Tensor, path: Path) -> None:
    """``torch.onnx.export`` the TorchScript way, on any PyTorch from 2.0 on.

    Only PyTorch versions that have the newer exporter know the ``dynamo`` argument (and from
    2.9 on it is the default), so it is passed only where it exists.
    """
    options = {"input_names": ["image"], "output_names": ["logits"],
               "dynamic_axes": {"image": {0: "batch"}, "logits": {0: "batch"}}}
    if "dynamo" in inspect.signature(torch.onnx.export).parameters:
        options["dynamo"] = False
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # the classic exporter is deprecated in recent PyTorch
        torch.onnx.export(model, (example,), str(path), **options)


def onnx_runner(path: str | Path, threads: int | None = None):
    """An ONNX Runtime session on the CPU, wrapped as ``run(batch_tensor) -> logits_tensor``.

    ``threads`` fixes how many CPU threads it uses (for a fair race with PyTorch's
    ``torch.get_num_threads()``); by default ONNX Runtime picks for itself.
    """
    import onnxruntime as ort  # imported here: only the export part of the course needs it

    options = ort.SessionOptions()
    if threads is not None:
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    return lambda batch: torch.from_numpy(session.run(None, {name: batch.cpu().numpy()})[0])


def max_difference(a: torch.Tensor, b: torch.Tensor) -> float:
    """The largest absolute difference between two outputs (e.g. PyTorch vs ONNX Runtime logits)."""
    return (a.float().cpu() - b.float().cpu()).abs().max().item()


def measure_latency(run, batch: torch.Tensor, warmup: int = 3, repeats: int = 10) -> dict[str, float]:
    """Time ``run(batch)``: median milliseconds per call and images per second.

    The first calls are slower (memory allocation, kernel selection, caches), so ``warmup``
    calls are made and thrown away. On a GPU the clock is read only after the GPU has
    finished (``torch.cuda.synchronize``), otherwise we would time the launch, not the work.
    """
    cuda = batch.device.type == "cuda"
    times = []
    with torch.inference_mode():
        for i in range(warmup + repeats):
            if cuda:
                torch.cuda.synchronize()
            start = time.perf_counter()
            run(batch)
            if cuda:
                torch.cuda.synchronize()
            if i >= warmup:
                times.append(time.perf_counter() - start)
    median = statistics.median(times)
    return {"median_ms": 1000 * median, "images_per_s": len(batch) / median}
