import urllib.error

import torch
import torchvision

from course_utils import models


def test_random_resnet_with_new_head():
    model, loaded = models.build_resnet("resnet18", pretrained=False, num_classes=2)
    assert loaded is False
    assert model.fc.out_features == 2
    assert model(torch.rand(1, 3, 64, 64)).shape == (1, 2)
    assert models.count_parameters(model) == 11_689_512 - 1000 * 513 + 2 * 513


def test_failed_weight_download_falls_back_with_a_note(monkeypatch, capsys):
    real_get_model = torchvision.models.get_model

    def offline(name, weights=None, **kwargs):
        if weights is not None:
            raise urllib.error.URLError("no network")
        return real_get_model(name, weights=None, **kwargs)

    monkeypatch.setattr(torchvision.models, "get_model", offline)
    model, loaded = models.build_resnet("resnet18", pretrained=True)
    out = capsys.readouterr().out
    assert loaded is False
    assert "random weights" in out and "https://download.pytorch.org" in out and "checkpoints" in out
    assert model.fc.out_features == 1000


def test_count_parameters_trainable_only():
    model = torch.nn.Linear(3, 2)
    model.bias.requires_grad_(False)
    assert models.count_parameters(model) == 8
    assert models.count_parameters(model, trainable_only=True) == 6
