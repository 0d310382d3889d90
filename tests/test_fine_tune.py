import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from course_utils import history, optim, training
from course_utils.models import build_resnet


def tiny_resnet():
    torch.manual_seed(0)
    model, _ = build_resnet("resnet18", pretrained=False, num_classes=2)
    return model


def test_fine_tune_freezes_then_spreads_rates(monkeypatch):
    model = tiny_resnet()
    groups = optim.layer_groups(model)
    calls = []

    def fake_fit(model, train_loader, valid_loader, loss_fn, epochs, lr, **kwargs):
        trainable = {name for name, p in model.named_parameters() if p.requires_grad}
        calls.append({"epochs": epochs, "lr": lr, "trainable": trainable, **kwargs})
        return history.History(metric_names=[], steps_per_epoch=1)

    monkeypatch.setattr(training, "fit", fake_fit)
    frozen, unfrozen = training.fine_tune(model, [], None, nn.CrossEntropyLoss(), epochs=3, base_lr=4e-3)
    first, second = calls
    # phase 1: the head and every BatchNorm train, the convolutions of the body do not;
    # as in fastai, the head at base_lr and the body's BatchNorm layers at a tenth of it
    assert first["epochs"] == 1 and first["lr"] == slice(4e-3) and first["pct_start"] == 0.99
    assert optim.spread_lrs(first["lr"], len(groups)) == pytest.approx([4e-4, 4e-4, 4e-3])
    assert "fc.weight" in first["trainable"] and "bn1.weight" in first["trainable"]
    assert "conv1.weight" not in first["trainable"] and "layer4.1.conv2.weight" not in first["trainable"]
    # phase 2: everything trains; rates from base/2/100 (first group) to base/2 (head)
    assert second["epochs"] == 3 and second["trainable"] == {n for n, _ in model.named_parameters()}
    assert second["lr"] == slice(2e-5, 2e-3) and second["pct_start"] == 0.3 and second["div"] == 5.0
    assert optim.spread_lrs(second["lr"], len(groups)) == pytest.approx([2e-5, 2e-4, 2e-3])


def test_fine_tune_really_trains(monkeypatch):
    torch.manual_seed(0)
    x = torch.rand(32, 3, 32, 32)
    y = (x[:, 0].mean(dim=(1, 2)) > x[:, 2].mean(dim=(1, 2))).long()  # red-ish vs blue-ish
    loader = DataLoader(TensorDataset(x, y), batch_size=8, shuffle=True)
    model = tiny_resnet()
    before = model.conv1.weight.detach().clone()
    frozen, unfrozen = training.fine_tune(model, loader, loader, nn.CrossEntropyLoss(), epochs=2,
                                          device="cpu", quiet=True)
    assert len(frozen.rows) == 1 and len(unfrozen.rows) == 2
    assert not torch.equal(before, model.conv1.weight)  # the body moved in phase 2
    assert all(p.requires_grad for p in model.parameters())


def test_interrupted_first_phase_stops(monkeypatch):
    def interrupted_fit(*args, **kwargs):
        stopped = history.History(metric_names=[], steps_per_epoch=1)
        stopped.interrupted = True
        return stopped

    monkeypatch.setattr(training, "fit", interrupted_fit)
    frozen, unfrozen = training.fine_tune(tiny_resnet(), [], None, nn.CrossEntropyLoss(), epochs=2)
    assert frozen.interrupted and unfrozen is None
