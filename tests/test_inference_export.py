import pytest
import torch

from course_utils import export
from course_utils.models import build_resnet

TOLERANCE = 1e-4  # float32 logits of the three runtimes must agree to this


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


def test_onnx_matches_eager_for_any_batch_size(model, tmp_path):
    path = export.export_onnx(model, tmp_path / "m.onnx", image_size=64)
    assert [p.name for p in tmp_path.iterdir()] == ["m.onnx"]  # one self-contained file
    for run in (export.onnx_runner(path), export.onnx_runner(path, threads=1)):
        for n in (1, 5):
            x = torch.rand(n, 3, 64, 64)
            with torch.no_grad():
                assert export.max_difference(run(x), model(x)) < TOLERANCE


def test_measure_latency_counts_only_timed_calls():
    calls = []
    result = export.measure_latency(lambda b: calls.append(len(b)), torch.zeros(8, 1), warmup=2, repeats=5)
    assert len(calls) == 7
    assert result["median_ms"] > 0 and result["images_per_s"] == pytest.approx(8 / (result["median_ms"] / 1000))
