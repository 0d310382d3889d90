"""models.summary: each row's shape is what the layer really outputs, and the counts add up."""

import pytest
import torch
import torchvision
from torch import nn

from course_utils.models import count_parameters, summary


def small_cnn() -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(),
        nn.Conv2d(8, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(8, 16, 3, stride=2), nn.ReLU(),
        nn.Flatten(), nn.Linear(16 * 2 * 3, 10),
    )


def test_rows_follow_the_real_forward_pass_on_a_non_square_input():
    model = small_cnn()
    result = summary(model, (1, 12, 14))
    x = torch.randn(2, 1, 12, 14)
    assert [row.name for row in result.layers] == [str(i) for i in range(len(model))]
    for layer, row in zip(model, result.layers):
        x = layer(x)
        assert row.kind == type(layer).__name__
        assert row.output_shape == tuple(x.shape[1:])  # no batch dimension
        assert row.parameters == sum(p.numel() for p in layer.parameters())
    assert result.total_parameters == count_parameters(model) == sum(row.parameters for row in result.layers)


def test_table_lists_every_layer_and_the_totals():
    model = small_cnn()
    model[0].weight.requires_grad_(False)
    text = str(summary(model, (1, 12, 14)))
    lines = text.splitlines()
    assert lines[0].split() == ["layer", "type", "output", "shape", "parameters"]
    assert lines[2].split() == ["(input)", "1", "x", "12", "x", "14"]
    assert lines[3].split() == ["0", "Conv2d", "8", "x", "12", "x", "14", "80"]
    assert lines[-2] == f"total parameters: {count_parameters(model):,} (trainable: {count_parameters(model) - 72:,})"
    assert repr(summary(model, (1, 12, 14))) == text


def test_a_resnet_with_layers_called_twice_still_adds_up():
    model = torchvision.models.resnet18(weights=None)
    result = summary(model, (3, 64, 96))
    assert result.total_parameters == 11_689_512
    assert sum(row.parameters for row in result.layers) == result.total_parameters
    relu_rows = [row for row in result.layers if row.name == "layer1.0.relu"]
    assert len(relu_rows) == 2  # a BasicBlock uses its ReLU twice
    assert result.layers[0].output_shape == (64, 32, 48)
    assert result.layers[-1].output_shape == (1000,)
    assert [row.output_shape for row in result.layers if row.kind == "AdaptiveAvgPool2d"] == [(512, 1, 1)]


def test_the_model_keeps_its_modes_and_loses_the_hooks():
    model = small_cnn()
    model.train()
    model[0].eval()  # e.g. a frozen layer
    summary(model, (1, 12, 14))
    assert model.training and not model[0].training and model[2].training
    assert all(not m._forward_hooks for m in model.modules())


def test_a_wrong_input_shape_says_what_to_check():
    with pytest.raises(ValueError, match="ONE example .*, without the batch"):
        summary(small_cnn(), (3, 12, 14))  # three channels into a one-channel model
    with pytest.raises(ValueError, match="positive sizes"):
        summary(small_cnn(), (1, 0, 8))


def test_models_on_other_devices_get_their_example_there():
    if not torch.cuda.is_available():
        pytest.skip("needs a GPU")
    model = small_cnn().cuda()
    result = summary(model, (1, 12, 14))
    assert result.layers[-1].output_shape == (10,)
