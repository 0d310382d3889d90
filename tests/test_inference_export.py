"""TorchScript and ONNX exports give the eager model's answers, for any batch size, on any supported PyTorch."""

import functools

import onnx
import pytest
import torch

from course_utils import export
from course_utils.models import build_resnet

TOLERANCE = 1e-4  # float32 logits of the three runtimes must agree to this
REAL_EXPORT = torch.onnx.export


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    model, _ = build_resnet("resnet18", pretrained=False, num_classes=3)
    return model.eval()


def test_torchscript_matches_eager(model, tmp_path):
    path = export.export_torchscript(model, tmp_path / "m.pt", image_size=64)
    scripted = export.load_torchscript(path)
    x = torch.rand(4, 3, 64, 64)  # another batch size than the one traced
    with torch.no_grad():
        assert export.max_difference(scripted(x), model(x)) < TOLERANCE


def assert_any_batch_size_matches_eager(model, path):
    assert [d.dim_param for d in onnx.load(str(path)).graph.input[0].type.tensor_type.shape.dim][0]  # symbolic
    for run in (export.onnx_runner(path), export.onnx_runner(path, threads=1)):
        for n in (1, 5):  # neither is the traced batch of 2
            x = torch.rand(n, 3, 64, 64)
            with torch.no_grad():
                assert export.max_difference(run(x), model(x)) < TOLERANCE


def test_onnx_is_traced_with_a_batch_of_two_and_answers_any_batch_size(model, tmp_path, monkeypatch, capsys):
    traced = []

    def spy(module, args, f, **options):
        traced.append((tuple(args[0].shape), options.get("dynamo")))
        return REAL_EXPORT(module, args, f, **options)

    monkeypatch.setattr(torch.onnx, "export", spy)
    path = export.export_onnx(model, tmp_path / "m.onnx", image_size=64)
    # a batch of 1 with a dynamic batch dimension gets specialised to 1 by torch.export (pytorch #133653)
    assert traced == [((2, 3, 64, 64), True)]
    assert "torch.export-based exporter" in capsys.readouterr().out
    assert [p.name for p in tmp_path.iterdir()] == ["m.onnx"]  # one self-contained file
    assert_any_batch_size_matches_eager(model, path)


def old_torch_export(module, args, f, input_names=None, output_names=None, dynamic_axes=None, **unknown):
    """``torch.onnx.export`` as PyTorch 2.2-2.4 has it: no ``dynamo``, ``external_data`` or ``dynamic_shapes``."""
    if unknown:
        raise TypeError(f"export() got an unexpected keyword argument '{next(iter(unknown))}'")
    return REAL_EXPORT(module, args, f, input_names=input_names, output_names=output_names,
                       dynamic_axes=dynamic_axes, dynamo=False)


def export_without_onnxscript(module, args, f, *, dynamo=True, **options):
    """``torch.onnx.export`` where the onnxscript package is missing: the new exporter cannot start."""
    if dynamo:
        raise ImportError("No module named 'onnxscript'")
    return REAL_EXPORT(module, args, f, dynamo=False, **options)


def export_that_gives_up(module, args, f, *, dynamo=True, **options):
    """The newer exporter failing on a model, as its early versions may (torch.onnx.OnnxExporterError)."""
    if dynamo:
        raise torch.onnx.OnnxExporterError("Failed to export the model with torch.export.")
    return REAL_EXPORT(module, args, f, dynamo=False, **options)


@pytest.mark.parametrize("fake, error", [(old_torch_export, "TypeError"), (export_without_onnxscript, "ImportError"),
                                         (export_that_gives_up, "OnnxExporterError")],
                         ids=["older-torch", "no-onnxscript", "exporter-gives-up"])
def test_onnx_falls_back_to_the_classic_exporter_and_says_so(model, tmp_path, monkeypatch, capsys, fake, error):
    shapes = []

    @functools.wraps(fake)  # the same signature, which export_onnx reads
    def recording(module, args, f, **options):
        shapes.append(tuple(args[0].shape))
        return fake(module, args, f, **options)

    monkeypatch.setattr(torch.onnx, "export", recording)
    path = export.export_onnx(model, tmp_path / "m.onnx", image_size=64)
    said = capsys.readouterr().out
    assert "classic TorchScript-based exporter" in said and error in said
    assert shapes[-1] == (2, 3, 64, 64)  # the classic exporter traces the batch of 2 too
    assert_any_batch_size_matches_eager(model, path)
    export.export_onnx(model, tmp_path / "quiet.onnx", image_size=64, quiet=True)
    assert capsys.readouterr().out == ""


def test_onnx_falls_back_where_torch_export_has_no_dim(model, tmp_path, monkeypatch, capsys):
    monkeypatch.delattr(torch.export, "Dim")  # as in a PyTorch from before torch.export.Dim
    path = export.export_onnx(model, tmp_path / "m.onnx", image_size=64)
    assert "classic TorchScript-based exporter" in capsys.readouterr().out
    assert_any_batch_size_matches_eager(model, path)


def test_measure_latency_counts_only_timed_calls():
    calls = []
    result = export.measure_latency(lambda b: calls.append(len(b)), torch.zeros(8, 1), warmup=2, repeats=5)
    assert len(calls) == 7
    assert result["median_ms"] > 0 and result["images_per_s"] == pytest.approx(8 / (result["median_ms"] / 1000))
