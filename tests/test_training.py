"""The training engine: optimiser groups, freezing, the one-cycle schedule and fit itself."""

import math

import numpy as np
import pytest
import torch
import torchvision
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from course_utils import env, optim, training
from course_utils.env import CAPPED_BATCH
from course_utils.history import History, running_mean
from course_utils.lr_finder import lr_find
from course_utils.optim import freeze, layer_groups, make_optimizer, one_cycle, spread_lrs, unfreeze
from course_utils.training import accuracy, error_rate, evaluate, fit, move_batch, use_cuda_speedups


class SmallNet(nn.Module):
    """A body of convolutions with BatchNorm, and an `fc` head: the shape of a ResNet, in miniature."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3)
        self.bn = nn.BatchNorm2d(4)
        self.pool = nn.Sequential(nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.fc = nn.Linear(4, 3)

    def forward(self, x):
        return self.fc(self.pool(self.bn(self.conv(x))))


def _loaders(n=40, batch_size=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 1, 6, 6, generator=g)
    y = torch.randint(0, 3, (n,), generator=g)
    train = DataLoader(TensorDataset(x, y), batch_size=batch_size, shuffle=True,
                       generator=torch.Generator().manual_seed(seed))
    valid = DataLoader(TensorDataset(x[:20], y[:20]), batch_size=6)  # batches of 6, 6, 6, 2
    return train, valid


def _net(seed=0):
    torch.manual_seed(seed)
    return SmallNet()


# ----------------------------------------------------------------------------- small pieces


def test_accuracy_and_error_rate_by_hand():
    outputs = torch.tensor([[2.0, 1.0, 0.0], [0.0, 3.0, 1.0], [0.0, 0.0, 1.0], [5.0, 0.0, 0.0]])
    targets = torch.tensor([0, 1, 1, 2])  # right, right, wrong, wrong
    assert accuracy(outputs, targets).item() == 0.5 and error_rate(outputs, targets).item() == 0.5


@pytest.mark.parametrize("device, expected", [("cpu", False), ("cuda", True), (torch.device("cuda:1"), True),
                                              ("mps", False)])
def test_cuda_speedups_only_on_cuda(device, expected):
    assert use_cuda_speedups(device) is expected


def test_move_batch_uses_channels_last_only_for_images_when_asked():
    x, y = torch.randn(2, 3, 4, 4), torch.tensor([0, 1])
    moved, _ = move_batch((x, y), torch.device("cpu"), channels_last=True)
    assert moved.is_contiguous(memory_format=torch.channels_last)
    assert not x.is_contiguous(memory_format=torch.channels_last)
    assert move_batch((x, y), torch.device("cpu"))[0].is_contiguous()
    flat, _ = move_batch((torch.randn(2, 5), y), torch.device("cpu"), channels_last=True)
    assert flat.shape == (2, 5)
    with pytest.raises(ValueError, match=r"\(inputs, targets\)"):
        move_batch((x, y, y), torch.device("cpu"))


def test_spread_lrs_like_fastai():
    assert spread_lrs(1e-3, 3) == [1e-3] * 3
    assert spread_lrs(slice(1e-5, 1e-3), 3) == pytest.approx(list(np.geomspace(1e-5, 1e-3, 3)), rel=1e-12)
    assert spread_lrs(slice(1e-6, 1e-2), 5) == pytest.approx(list(np.geomspace(1e-6, 1e-2, 5)), rel=1e-12)
    assert spread_lrs(slice(1e-3), 3) == pytest.approx([1e-4, 1e-4, 1e-3])
    assert spread_lrs(slice(1e-5, 1e-3), 1) == [1e-3]
    assert spread_lrs([1e-4, 1e-3], 2) == [1e-4, 1e-3]
    with pytest.raises(ValueError, match="3 learning rates for 2 layer groups"):
        spread_lrs([1e-5, 1e-4, 1e-3], 2)
    with pytest.raises(ValueError, match="upper end"):
        spread_lrs(slice(1e-5, None), 2)


def test_running_mean_matches_numpy():
    values = [3.0, 1.0, 4.0, 1.0, 5.0, 9.0, 2.0]
    assert running_mean(values, 3) == pytest.approx(list(np.convolve(values, np.ones(3) / 3, mode="valid")))
    assert running_mean(values, 1) == pytest.approx(values)
    assert running_mean(values, 7) == pytest.approx([sum(values) / 7])
    with pytest.raises(ValueError, match="window"):
        running_mean(values, 8)


# ----------------------------------------------------------------------------- layer groups and freezing


def test_resnet_is_split_in_three_groups_like_fastai():
    model = torchvision.models.resnet18(weights=None, num_classes=5)
    groups = layer_groups(model)
    assert len(groups) == 3
    ids = [{id(p) for p in g.parameters()} for g in groups]
    assert id(model.conv1.weight) in ids[0] and id(model.layer2[1].conv2.weight) in ids[0]
    assert id(model.layer3[0].conv1.weight) in ids[1] and id(model.layer4[1].bn2.bias) in ids[1]
    assert groups[2] is model.fc
    assert sum(len(i) for i in ids) == len(list(model.parameters()))


def test_other_models_split_into_body_and_head():
    net = SmallNet()
    assert layer_groups(net)[1] is net.fc and id(net.conv.weight) in {id(p) for p in layer_groups(net)[0].parameters()}

    class WithHead(nn.Module):
        def __init__(self):
            super().__init__()
            self.features, self.head = nn.Linear(3, 4), nn.Linear(4, 2)
    model = WithHead()
    assert layer_groups(model)[1] is model.head

    seq = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2), nn.Softmax(dim=1))
    body, head = layer_groups(seq)
    assert list(body) == [seq[0], seq[1]] and list(head) == [seq[2], seq[3]]  # last layer with weights + the rest

    assert layer_groups(nn.Linear(3, 2))[0] is not None and len(layer_groups(nn.Linear(3, 2))) == 1


def test_groups_that_miss_a_parameter_are_refused():
    class Odd(nn.Module):
        def __init__(self):
            super().__init__()
            self.scale = nn.Parameter(torch.ones(1))  # not inside any child layer
            self.fc = nn.Linear(2, 2)
    with pytest.raises(ValueError, match="exactly once"):
        layer_groups(Odd())
    net = SmallNet()
    with pytest.raises(ValueError, match="exactly once"):
        make_optimizer(net, groups=[net.conv, net.fc])  # forgets the BatchNorm


def test_freeze_keeps_the_head_and_normalisation_layers_training():
    model = torchvision.models.resnet18(weights=None, num_classes=5)
    freeze(model)
    for name, p in model.named_parameters():
        is_norm = ".bn" in name or name.startswith("bn1") or ".downsample.1." in name
        assert p.requires_grad == (name.startswith("fc.") or is_norm), name
    unfreeze(model)
    assert all(p.requires_grad for p in model.parameters())


def test_a_frozen_body_does_not_change_but_its_batchnorm_does():
    model, (train, _) = _net(), _loaders()
    freeze(model)
    conv_before, bn_before, fc_before = (m.weight.clone() for m in (model.conv, model.bn, model.fc))
    stats_before = model.bn.running_mean.clone()
    fit(model, train, None, nn.CrossEntropyLoss(), 1, lr=1e-2, device="cpu", quiet=True)
    assert torch.equal(model.conv.weight, conv_before)
    assert not torch.equal(model.bn.weight, bn_before) and not torch.equal(model.fc.weight, fc_before)
    assert not torch.equal(model.bn.running_mean, stats_before)


def test_freeze_needs_a_body_and_a_head():
    with pytest.raises(ValueError, match="cannot tell the body from the head"):
        freeze(nn.Linear(3, 2))


# ----------------------------------------------------------------------------- optimiser and schedule


def test_optimizer_groups_weight_decay_and_rates():
    model = torchvision.models.resnet18(weights=None, num_classes=5)
    opt = make_optimizer(model, lr=slice(1e-5, 1e-3), weight_decay=0.1)
    assert isinstance(opt, torch.optim.AdamW)
    assert opt.defaults["betas"] == (0.9, 0.99) and opt.defaults["eps"] == 1e-5
    seen = [id(p) for g in opt.param_groups for p in g["params"]]
    assert sorted(seen) == sorted(id(p) for p in model.parameters())  # each parameter exactly once
    decayed = {id(p) for g in opt.param_groups if g["weight_decay"] == 0.1 for p in g["params"]}
    not_decayed = {id(p) for g in opt.param_groups if g["weight_decay"] == 0.0 for p in g["params"]}
    for name, p in model.named_parameters():
        plain_weight = name.endswith("weight") and p.dim() > 1  # conv and linear weights
        assert (id(p) in decayed) == plain_weight, name
        assert (id(p) in not_decayed) == (not plain_weight), name
    rates = {g["layer_group"]: g["lr"] for g in opt.param_groups}
    assert [rates[i] for i in range(3)] == pytest.approx([1e-5, 1e-4, 1e-3])


def test_adamw_runs_fused_on_the_cpu_and_takes_the_same_steps(monkeypatch):
    model, twin = _net(), _net()
    fused = make_optimizer(model, 1e-2)
    monkeypatch.setattr(optim, "fused_adamw_ok", lambda parameters: False)
    looped = make_optimizer(twin, 1e-2)
    assert fused.defaults["fused"] is True and not looped.defaults["fused"]
    x, y = torch.randn(8, 1, 6, 6), torch.randint(0, 3, (8,))
    for _ in range(3):
        for net, opt in ((model, fused), (twin, looped)):
            nn.functional.cross_entropy(net(x), y).backward()
            opt.step()
            opt.zero_grad()
    for a, b in zip(model.parameters(), twin.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)  # float rounding: each step moves ~1e-2


def test_adamw_is_not_fused_where_pytorch_may_lack_it():
    assert optim.fused_adamw_ok([torch.zeros(2)])
    assert not optim.fused_adamw_ok([torch.zeros(2), torch.zeros(2, device="meta")])  # not CPU or CUDA
    assert not optim.fused_adamw_ok([torch.zeros(2, dtype=torch.long)])
    assert not optim.fused_adamw_ok([])


def test_layer_norm_and_group_norm_get_no_weight_decay():
    model = nn.Sequential(nn.Linear(3, 4, bias=False), nn.LayerNorm(4), nn.Linear(4, 4, bias=False), nn.GroupNorm(2, 4))
    opt = make_optimizer(model, weight_decay=0.1, groups=[model])
    no_decay = {id(p) for g in opt.param_groups if g["weight_decay"] == 0 for p in g["params"]}
    assert no_decay == {id(p) for i in (1, 3) for p in model[i].parameters()}


def test_one_cycle_has_fastais_shape():
    param = nn.Parameter(torch.zeros(1))
    opt = torch.optim.AdamW([{"params": [param], "lr": 1e-2}], betas=(0.9, 0.99))
    total = 100
    sched = one_cycle(opt, total)
    lrs, moms = [], []
    for _ in range(total):
        lrs.append(opt.param_groups[0]["lr"])
        moms.append(opt.param_groups[0]["betas"][0])
        opt.step()
        sched.step()
    peak = int(np.argmax(lrs))
    assert lrs[0] == pytest.approx(1e-2 / 25) and moms[0] == pytest.approx(0.95)
    assert peak == 24 and lrs[peak] == pytest.approx(1e-2) and moms[peak] == pytest.approx(0.85)  # 25% warm-up
    assert lrs[-1] == pytest.approx(1e-2 / 1e5) and moms[-1] == pytest.approx(0.95)
    assert all(np.diff(lrs[: peak + 1]) > 0) and all(np.diff(lrs[peak:]) < 0)
    # cosine warm-up: half-way through it the rate is half-way between start and peak
    assert lrs[12] == pytest.approx((1e-2 / 25 + 1e-2) / 2, rel=1e-6)


def test_one_cycle_refuses_bad_settings():
    opt = torch.optim.AdamW([nn.Parameter(torch.zeros(1))])
    with pytest.raises(ValueError, match="pct_start"):
        one_cycle(opt, 10, pct_start=1.0)
    with pytest.raises(ValueError, match="moms"):
        one_cycle(opt, 10, moms=(0.95, 0.85, 0.9))


# ----------------------------------------------------------------------------- fit


def _reference_loop(model, train, valid, epochs, lr, grad_clip=None):
    """The same training written in plain PyTorch: AdamW, OneCycleLR, optional clipping."""
    decay = [p for n, p in model.named_parameters() if n in ("conv.weight", "fc.weight")]
    no_decay = [p for n, p in model.named_parameters() if n not in ("conv.weight", "fc.weight")]
    # the same order fit uses: body group (decay, no decay), then head group (decay, no decay)
    groups = [{"params": [model.conv.weight], "weight_decay": 0.01},
              {"params": [model.conv.bias, model.bn.weight, model.bn.bias], "weight_decay": 0.0},
              {"params": [model.fc.weight], "weight_decay": 0.01},
              {"params": [model.fc.bias], "weight_decay": 0.0}]
    assert len(decay) + len(no_decay) == 6
    opt = torch.optim.AdamW(groups, lr=lr, betas=(0.9, 0.99), eps=1e-5)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=epochs * len(train), pct_start=0.25,
                                                div_factor=25, final_div_factor=1e5 / 25)
    losses = []
    for _ in range(epochs):
        model.train()
        for x, y in train:
            loss = nn.functional.cross_entropy(model(x), y)
            opt.zero_grad()
            loss.backward()
            if grad_clip:
                nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
            opt.step()
            sched.step()
            losses.append(loss.item())
    return losses


@pytest.mark.parametrize("grad_clip", [None, 0.05])
def test_fit_does_exactly_what_a_plain_pytorch_loop_does(grad_clip):
    train, valid = _loaders()
    ours, theirs = _net(), _net()
    history = fit(ours, train, valid, nn.CrossEntropyLoss(), 3, lr=3e-3, grad_clip=grad_clip, device="cpu",
                  quiet=True)
    train, valid = _loaders()  # same shuffles
    expected_losses = _reference_loop(theirs, train, valid, 3, 3e-3, grad_clip)
    assert history.batch_losses == pytest.approx(expected_losses, rel=1e-6)
    for (name, a), b in zip(ours.state_dict().items(), theirs.state_dict().values()):
        torch.testing.assert_close(a, b, msg=name)


def test_gradient_clipping_changes_the_result():
    train, _ = _loaders()
    clipped, unclipped = _net(), _net()
    fit(clipped, train, None, nn.CrossEntropyLoss(), 2, lr=3e-3, grad_clip=0.05, device="cpu", quiet=True)
    train, _ = _loaders()
    fit(unclipped, train, None, nn.CrossEntropyLoss(), 2, lr=3e-3, device="cpu", quiet=True)
    assert not torch.allclose(clipped.fc.weight, unclipped.fc.weight)


def test_history_records_every_epoch_and_batch(capsys):
    train, valid = _loaders()
    history = fit(_net(), train, valid, nn.CrossEntropyLoss(), 3, lr=1e-2, metrics=[accuracy, error_rate],
                  device="cpu")
    assert [row["epoch"] for row in history.rows] == [1, 2, 3]
    assert history.columns == ["epoch", "train_loss", "valid_loss", "accuracy", "error_rate", "time"]
    assert len(history.batch_losses) == len(history.batch_lrs) == len(history.batch_moms) == 3 * len(train)
    for row, start in zip(history.rows, range(0, 15, 5)):
        assert row["train_loss"] == pytest.approx(np.mean(history.batch_losses[start:start + 5]))
        assert row["accuracy"] + row["error_rate"] == pytest.approx(1.0)
        assert row["time"] > 0
    assert max(history.batch_lrs) == pytest.approx(1e-2, rel=0.05) and history.batch_lrs[0] == pytest.approx(1e-2 / 25)
    assert history.best_epoch == 1 + int(np.argmin(history.column("valid_loss")))
    assert not history.cuda_speedups and not history.interrupted

    printed = capsys.readouterr().out.splitlines()  # in a terminal: header, then one line per epoch
    assert printed[0].split() == history.columns and len(printed) == 4
    assert printed[1:] == history.table().splitlines()[1:]
    html_table = history._repr_html_()
    assert html_table.startswith("<table>") and html_table.count("<tr>") == 4 and "<th" in html_table
    assert repr(history) == history.table()
    with pytest.raises(KeyError, match="no column 'acc'"):
        history.column("acc")


def test_train_loss_weights_a_smaller_last_batch_by_its_size():
    train, _ = _loaders(n=42)  # batches of 8, 8, 8, 8, 8 and 2
    history = fit(_net(), train, None, nn.CrossEntropyLoss(), 1, device="cpu", quiet=True)
    sizes = [8, 8, 8, 8, 8, 2]
    expected = sum(loss * n for loss, n in zip(history.batch_losses, sizes)) / 42
    assert history.rows[0]["train_loss"] == pytest.approx(expected)
    assert expected != pytest.approx(np.mean(history.batch_losses))


def test_the_table_can_be_hidden(capsys):
    fit(_net(), _loaders()[0], None, nn.CrossEntropyLoss(), 1, device="cpu", quiet=True)
    assert capsys.readouterr().out == ""


def test_constant_rate_without_the_schedule():
    train, _ = _loaders()
    history = fit(_net(), train, None, nn.CrossEntropyLoss(), 2, lr=1e-3, one_cycle_schedule=False, device="cpu",
                  quiet=True)
    assert set(history.batch_lrs) == {1e-3} and set(history.batch_moms) == {0.9}


def test_metric_names_from_a_mapping_or_a_lambda():
    train, valid = _loaders()
    history = fit(_net(), train, valid, nn.CrossEntropyLoss(), 1, metrics={"acc": accuracy}, device="cpu",
                  quiet=True)
    assert history.metric_names == ["acc"]
    history = fit(_net(), train, valid, nn.CrossEntropyLoss(), 1, metrics=[lambda o, t: accuracy(o, t)],
                  device="cpu", quiet=True)
    assert history.metric_names == ["metric1"]


def test_no_validation_data():
    train, _ = _loaders()
    history = fit(_net(), train, None, nn.CrossEntropyLoss(), 2, metrics=[accuracy], device="cpu", quiet=True)
    assert history.best_epoch is None and all(math.isnan(v) for v in history.column("valid_loss"))
    assert history.table().splitlines()[1].split()[2:4] == ["-", "-"]
    history.plot()


def test_evaluate_weights_batches_by_their_size():
    train, valid = _loaders()  # validation batches of 6, 6, 6 and 2
    model = _net().eval()
    x, y = valid.dataset.tensors
    with torch.no_grad():
        outputs = model(x)
    result = evaluate(model, valid, nn.CrossEntropyLoss(), [accuracy], device="cpu")
    assert result["valid_loss"] == pytest.approx(nn.functional.cross_entropy(outputs, y).item(), rel=1e-6)
    assert result["accuracy"] == pytest.approx(accuracy(outputs, y).item())


def test_best_epoch_and_its_weights_are_kept():
    train, valid = _loaders()
    model = _net()
    valid_losses = iter([3.0, 1.0, 2.0])  # epoch 2 is the best
    weights_at_validation = []
    current = {}

    def loss_fn(outputs, targets):
        if torch.is_grad_enabled():  # training
            return nn.functional.cross_entropy(outputs, targets)
        if "value" not in current:  # first validation batch of this epoch
            current["value"] = next(valid_losses)
            weights_at_validation.append({k: v.clone() for k, v in model.state_dict().items()})
        return outputs.sum() * 0 + current["value"]

    def reset_each_epoch(outputs, targets):  # a metric, called after the loss: forget the value at the last batch
        if len(targets) == 2:
            current.clear()
        return accuracy(outputs, targets)

    history = fit(model, train, valid, loss_fn, 3, metrics=[reset_each_epoch], keep_best=True, device="cpu",
                  quiet=True)
    assert history.column("valid_loss") == pytest.approx([3.0, 1.0, 2.0])
    assert history.best_epoch == 2
    for key, value in weights_at_validation[1].items():
        assert torch.equal(history.best_state[key], value), key
    assert not torch.equal(history.best_state["fc.weight"], model.state_dict()["fc.weight"])


class InterruptingLoader:
    """Yields the batches of `loader`, then raises KeyboardInterrupt at a chosen batch of a chosen epoch."""

    def __init__(self, loader, epoch, batch):
        self.loader, self.epoch, self.batch, self.epochs_started = loader, epoch, batch, 0

    def __len__(self):
        return len(self.loader)

    def __iter__(self):
        self.epochs_started += 1
        for i, batch in enumerate(self.loader):
            if self.epochs_started == self.epoch and i == self.batch:
                raise KeyboardInterrupt
            yield batch


def test_keyboard_interrupt_stops_cleanly_and_keeps_the_history(capsys):
    train, valid = _loaders()
    history = fit(_net(), InterruptingLoader(train, epoch=2, batch=3), valid, nn.CrossEntropyLoss(), 4,
                  device="cpu", quiet=True)
    assert history.interrupted and len(history.rows) == 1
    assert len(history.batch_losses) == len(history.batch_lrs) == len(history.batch_moms) == 5 + 3
    assert all(math.isfinite(v) for v in history.batch_losses)
    assert "Interrupted" in capsys.readouterr().out and "(interrupted)" in history.table()


def test_cuda_speedups_are_off_on_the_cpu_by_default():
    train, _ = _loaders()
    model, dtypes = _net(), []
    model.conv.register_forward_hook(lambda module, inputs, output: dtypes.append(output.dtype))
    history = fit(model, train, None, nn.CrossEntropyLoss(), 1, device="cpu", quiet=True)
    assert not history.cuda_speedups and set(dtypes) == {torch.float32}
    assert model.conv.weight.is_contiguous()


def test_the_cuda_speedup_path_runs_when_forced_on_the_cpu():
    """Mixed precision and channels-last, exercised here with the CPU's float16 autocast."""
    train, valid = _loaders()
    model, dtypes = _net(), []
    model.conv.register_forward_hook(lambda module, inputs, output: dtypes.append(output.dtype))
    history = fit(model, train, valid, nn.CrossEntropyLoss(), 2, metrics=[accuracy], device="cpu",
                  cuda_speedups=True, quiet=True)
    assert history.cuda_speedups and set(dtypes) == {torch.float16}
    assert model.conv.weight.is_contiguous(memory_format=torch.channels_last)
    assert model.conv.weight.dtype == torch.float32  # the weights themselves stay 32-bit
    assert all(math.isfinite(v) for v in history.batch_losses + history.column("valid_loss"))


def test_discriminative_rates_reach_fit():
    train, _ = _loaders()
    model = _net()
    history = fit(model, train, None, nn.CrossEntropyLoss(), 4, lr=slice(1e-4, 1e-2), device="cpu", quiet=True)
    assert max(history.batch_lrs) == pytest.approx(1e-2)  # the head's rate is recorded: it peaks at step 5 of 20
    with pytest.raises(ValueError, match="3 learning rates for 2 layer groups"):
        fit(model, train, None, nn.CrossEntropyLoss(), 1, lr=[1e-4, 1e-3, 1e-2], device="cpu", quiet=True)


def test_fit_refuses_what_it_cannot_train():
    train, _ = _loaders()
    with pytest.raises(ValueError, match="nothing to train"):
        fit(_net(), train, None, nn.CrossEntropyLoss(), 0, device="cpu")
    with pytest.raises(TypeError, match="with a length"):
        fit(_net(), (batch for batch in train), None, nn.CrossEntropyLoss(), 1, device="cpu")


def test_history_plot_is_labelled():
    history = History(metric_names=["accuracy"], steps_per_epoch=2,
                      rows=[{"epoch": 1, "train_loss": 1.0, "valid_loss": 0.9, "accuracy": 0.5, "time": 1.0},
                            {"epoch": 2, "train_loss": 0.8, "valid_loss": 0.7, "accuracy": 0.7, "time": 1.0}],
                      batch_losses=[1.2, 1.0, 0.9, 0.8])
    history.steps_per_epoch = 4  # window of 2 batches
    history.batch_losses = [1.2, 1.0, 0.9, 0.8, 0.6, 0.5, 0.5, 0.4]
    fig = history.plot(title="t")
    loss_ax, metric_ax = fig.axes
    assert loss_ax.get_xlabel() and loss_ax.get_ylabel() == "loss" and loss_ax.get_title() == "Loss"
    labels = [t.get_text() for t in loss_ax.get_legend().get_texts()]
    assert labels == ["train (each batch)", "train (mean of 2 batches)", "validation (end of epoch)"]
    mean_line, valid_line = loss_ax.get_lines()[1:3]
    assert len(mean_line.get_xdata()) == len(mean_line.get_ydata()) == 7
    assert mean_line.get_ydata()[0] == pytest.approx(1.1) and mean_line.get_xdata()[0] == pytest.approx(1.5)
    History(metric_names=["accuracy"], steps_per_epoch=4).plot()  # nothing recorded yet: still draws
    assert list(valid_line.get_xdata()) == [4, 8] and list(valid_line.get_ydata()) == [0.9, 0.7]
    assert metric_ax.get_xlabel() == "epoch"
    assert [t.get_text() for t in metric_ax.get_legend().get_texts()] == ["accuracy"]


def test_notebook_detection_is_false_outside_a_kernel():
    assert env.in_jupyter_kernel() is False


def test_progress_bars_do_not_change_the_order_of_batches():
    # tqdm.auto wrapped around a DataLoader starts an extra pass over it (tqdm issue #1598),
    # which would draw a different shuffle; fit's bars must leave the data order alone.
    with_bars = fit(_net(), _loaders()[0], _loaders()[1], nn.CrossEntropyLoss(), 2, device="cpu", quiet=False)
    without = fit(_net(), _loaders()[0], _loaders()[1], nn.CrossEntropyLoss(), 2, device="cpu", quiet=True)
    assert with_bars.batch_losses == without.batch_losses
    assert with_bars.rows[-1]["valid_loss"] == without.rows[-1]["valid_loss"]


# ----------------------------------------------------------------------------- the redesign's promises


class LooseParameter(SmallNet):
    """A head called fc, plus a parameter that belongs to no child module (a learned temperature)."""

    def __init__(self):
        super().__init__()
        self.temperature = nn.Parameter(torch.ones(()))

    def forward(self, x):
        return super().forward(x) / self.temperature


def test_one_rate_needs_no_layer_groups():
    model = LooseParameter()
    optimizer = make_optimizer(model, 1e-3)  # layer_groups would refuse this model; one rate does not ask for them
    assert len(optimizer.param_groups) == 2  # decayed weights, and the rest
    in_optimizer = {id(p) for group in optimizer.param_groups for p in group["params"]}
    assert in_optimizer == {id(p) for p in model.parameters()}
    with pytest.raises(ValueError, match="exactly once"):
        make_optimizer(model, slice(1e-4, 1e-3))  # spread rates do need the body and the head
    history = fit(model, _loaders()[0], None, nn.CrossEntropyLoss(), 1, device="cpu", quiet=True)
    assert len(history.batch_losses) == 5


def test_a_skipped_mixed_precision_update_does_not_advance_the_schedule(recwarn):
    """GradScaler skips the update of a step whose gradients overflow (always, with this huge scale).

    Stepping the scheduler anyway would warn "lr_scheduler.step() before optimizer.step()" and
    shift the schedule; train_one_epoch steps it only after a real update.
    """
    model = _net()
    optimizer = make_optimizer(model, 1e-2)
    scheduler = one_cycle(optimizer, total_steps=10)
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0 ** 100, growth_interval=1)
    history = History()
    training.train_one_epoch(model, _loaders()[0], nn.CrossEntropyLoss(), optimizer, scheduler, scaler,
                             cuda_speedups=True, history=history, quiet=True)
    assert not [w for w in recwarn.list if "lr_scheduler.step()" in str(w.message)]
    skipped = scheduler.last_epoch < 5
    assert skipped and scaler.get_scale() < 2.0 ** 100
    # the rate stayed where it was for every skipped step, then followed the schedule
    assert history.batch_lrs[0] == history.batch_lrs[1] == pytest.approx(1e-2 / 25)


def test_copies_are_asynchronous_only_on_cuda(monkeypatch):
    seen = []
    real_to = torch.Tensor.to

    def recording_to(self, *args, **kwargs):
        seen.append(kwargs.get("non_blocking", False))
        return real_to(self, "cpu")

    monkeypatch.setattr(torch.Tensor, "to", recording_to)
    batch = (torch.zeros(2, 3, 4, 4), torch.zeros(2, dtype=torch.long))
    for device, expected in [("cpu", False), ("mps", False), ("cuda", True)]:
        seen.clear()
        move_batch(batch, torch.device(device))
        assert seen == [expected, expected], device


def test_interrupt_in_the_middle_of_a_batch_keeps_only_finished_batches():
    train, valid = _loaders()
    history = fit(_net(), InterruptingLoader(train, epoch=1, batch=2), valid, nn.CrossEntropyLoss(), 2,
                  device="cpu", quiet=True)
    assert history.interrupted and history.rows == []
    assert len(history.batch_losses) == len(history.batch_lrs) == len(history.batch_moms) == 2


def test_the_rehearsal_cap_cuts_epochs_batches_and_photos_only(monkeypatch):
    monkeypatch.setenv("COURSE_TRAIN_CAP", "2")
    train, valid = _loaders(n=60, batch_size=CAPPED_BATCH + 4)  # training batches bigger than the cap
    valid = DataLoader(valid.dataset, batch_size=CAPPED_BATCH - 1)  # validation batches smaller than it
    seen = []
    model = _net()
    model.conv.register_forward_hook(lambda module, inputs, output: seen.append(len(inputs[0])))
    history = fit(model, train, valid, nn.CrossEntropyLoss(), 4, device="cpu", quiet=True)
    assert len(history.rows) == 2 and len(history.batch_losses) == 4  # 2 epochs of 2 batches
    # each of them cut to its first CAPPED_BATCH photos, then 2 of the validation batches (uncut)
    assert history.steps_per_epoch == 2 and seen == ([CAPPED_BATCH] * 2 + [CAPPED_BATCH - 1] * 2) * 2
    seen.clear()
    lr_find(model, train, nn.CrossEntropyLoss(), device="cpu", quiet=True)
    assert seen == [CAPPED_BATCH, CAPPED_BATCH]  # the finder: 2 steps of CAPPED_BATCH photos
    monkeypatch.setenv("COURSE_TRAIN_CAP", "0")
    with pytest.raises(ValueError, match="COURSE_TRAIN_CAP"):
        fit(_net(), train, valid, nn.CrossEntropyLoss(), 1, device="cpu", quiet=True)


@pytest.mark.parametrize("total_steps", [1, 2, 4, 8])
def test_one_cycle_works_for_the_shortest_runs(total_steps):
    """torch's OneCycleLR divides by zero when pct_start * total_steps is exactly 1 (4 steps at 0.25)."""
    optimizer = make_optimizer(_net(), 1e-2)
    scheduler = one_cycle(optimizer, total_steps)
    rates = []
    for _ in range(total_steps):
        rates.append(optimizer.param_groups[-1]["lr"])
        optimizer.step()
        scheduler.step()
    assert max(rates) <= 1e-2 * (1 + 1e-6) and all(math.isfinite(r) for r in rates)
