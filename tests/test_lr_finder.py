"""The learning-rate finder: its loop, its exact clean-up, and the suggestion rules."""

import copy
import math
import random

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from course_utils.lr_finder import (
    SUGGESTIONS,
    LRFinderResult,
    NoSuggestionError,
    lr_find,
    minimum,
    slide,
    steep,
    trim_curve,
    valley,
)

LRS_21 = list(10.0 ** np.linspace(-6, 0, 21))


# ----------------------------------------------------------------------------- suggestions


def test_valley_on_a_u_shaped_curve():
    # losses (i-10)^2: the longest downhill run is points 0..10 (length 11, ending at 10).
    # fastai's rule: start = 10 - 11 = -1, third = 11/3 -> idx = -1 + int(3.67) + int(1.83) = 3.
    losses = [(i - 10) ** 2 for i in range(21)]
    lr, (x, y) = valley(LRS_21, losses)
    assert lr == pytest.approx(LRS_21[3]) and x == lr and y == losses[3]


def test_valley_when_the_valley_starts_later():
    # The run 8, 7, 6, 5, 4, 3, 2 (points 3..9) is the longest: length 7, ending at 9.
    # start = 9 - 7 = 2, third = 7/3 -> idx = 2 + int(2.33) + int(1.17) = 5.
    losses = [5, 6, 7, 8, 7, 6, 5, 4, 3, 2, 9]
    assert valley(LRS_21[:11], losses)[0] == pytest.approx(LRS_21[5])


def test_valley_on_a_curve_that_only_falls():
    # 12 points, each lower than the last: run length 12 ends at 11, start = -1,
    # third = 4 -> idx = -1 + 4 + 2 = 5.
    losses = [12 - i for i in range(12)]
    assert valley(LRS_21[:12], losses)[0] == pytest.approx(LRS_21[5])


def test_valley_of_two_falling_points_does_not_wrap_around():
    # fastai's formula gives index -1 here (which Python would read as the last point).
    assert valley([1e-3, 1e-2], [2.0, 1.0])[0] == pytest.approx(1e-3)


def test_steep_divides_by_the_step_in_log_rate():
    # The biggest raw drop (0.9) spans two decades, a slope of 0.45 per decade;
    # the first step drops 0.5 in one decade, so it is the steepest.
    lrs, losses = [1e-4, 1e-3, 1e-1, 1.0], [3.0, 2.5, 1.6, 1.5]
    lr, mark = steep(lrs, losses)
    assert lr == pytest.approx(1e-4) and mark == (pytest.approx(1e-4), 3.0)


def test_steep_picks_the_left_end_of_the_steepest_segment():
    lrs = [1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1]  # equal steps in log(lr)
    losses = [5.0, 4.9, 3.0, 2.5, 2.4, 6.0]      # drops: 0.1, 1.9, 0.5, 0.1, then a rise
    assert steep(lrs, losses)[0] == pytest.approx(1e-5)


def test_minimum_is_a_tenth_of_the_lowest_point_and_takes_the_first_tie():
    losses = [3.0, 2.0, 1.0, 1.0, 4.0]
    lr, (x, y) = minimum(LRS_21[:5], losses)
    assert lr == pytest.approx(LRS_21[2] / 10)
    assert x == lr and y == pytest.approx(3.0)  # marked on the curve (left of the data: first loss)


def test_slide_on_a_straight_line_takes_the_first_window():
    # Every gradient is the same, so the first window (points 14..29) is already calm.
    n = 30
    lrs, losses = 10.0 ** np.linspace(-5, 0, n), np.linspace(3, 1, n)
    assert slide(lrs, losses)[0] == pytest.approx(lrs[n - 1 - 15])


def test_slide_where_the_curve_bends_up():
    # Flat (gradient 0) up to point 19, then a parabola: gradients grow from 0.05 at point 19.
    # Windows (right, left=right-15) slide left until both ends are in the flat part:
    # right = 18, left = 3. The suggestion is the left end of the window before: point 4.
    n = 40
    lrs = 10.0 ** np.linspace(-5, 0, n)
    losses = np.array([0.0 if i <= 19 else 0.1 * (i - 19) ** 2 for i in range(n)]) + 1
    lr, (x, y) = slide(lrs, losses)
    assert lr == pytest.approx(lrs[4]) and y == pytest.approx(1.0)


def test_slide_with_no_calm_window_falls_back_to_the_first_point():
    n = 30
    lrs, losses = 10.0 ** np.linspace(-5, 0, n), 0.01 * np.arange(n) ** 2  # gradients differ by 0.3
    assert slide(lrs, losses)[0] == pytest.approx(lrs[0])


@pytest.mark.parametrize("rule", ["valley", "steep"])
@pytest.mark.parametrize("losses", [[2.0] * 20, list(np.linspace(1, 3, 20))], ids=["flat", "only-rising"])
def test_no_valley_or_steepest_descent_when_the_loss_never_falls(rule, losses):
    with pytest.raises(NoSuggestionError, match="never goes down"):
        SUGGESTIONS[rule](LRS_21[:20], losses)


def test_minimum_and_slide_on_flat_and_rising_curves_give_a_clear_answer():
    lrs = LRS_21[:20]
    assert minimum(lrs, [2.0] * 20)[0] == pytest.approx(lrs[0] / 10)
    assert minimum(lrs, list(np.linspace(1, 3, 20)))[0] == pytest.approx(lrs[0] / 10)
    assert slide(lrs, [2.0] * 20)[0] == pytest.approx(lrs[20 - 1 - 15])


@pytest.mark.parametrize("rule", list(SUGGESTIONS))
@pytest.mark.parametrize("n", [0, 1])
def test_too_short_curves_give_a_clear_error(rule, n):
    with pytest.raises(NoSuggestionError, match="needs at least"):
        SUGGESTIONS[rule](LRS_21[:n], [1.0] * n)


def test_slide_needs_one_more_point_than_its_window():
    with pytest.raises(NoSuggestionError, match="at least 16 points"):
        slide(LRS_21[:15], list(range(15, 0, -1)))


@pytest.mark.parametrize("rule", list(SUGGESTIONS))
def test_nan_in_the_middle_is_a_clear_error(rule):
    losses = [3.0 - 0.1 * i for i in range(20)]
    losses[7] = math.nan
    with pytest.raises(ValueError, match="NaN or infinite at point 7"):
        SUGGESTIONS[rule](LRS_21[:20], losses)


def test_bad_curves_are_clear_errors():
    with pytest.raises(ValueError, match="3 learning rates but 2 losses"):
        valley([1e-3, 1e-2, 1e-1], [1.0, 2.0])
    with pytest.raises(ValueError, match="positive and increasing"):
        steep([1e-2, 1e-3, 1e-1], [3.0, 2.0, 1.0])


@pytest.mark.parametrize("n", range(0, 25))
def test_no_index_error_at_any_length(n):
    rng = np.random.default_rng(n)
    for losses in (rng.normal(2, 0.3, n), np.full(n, 1.0), np.arange(n, dtype=float)):
        for rule in SUGGESTIONS.values():
            try:
                lr, (x, y) = rule(LRS_21[:n] if n <= 21 else 10.0 ** np.linspace(-6, 0, n), losses)
            except NoSuggestionError:
                continue
            assert math.isfinite(lr) and lr > 0 and math.isfinite(y)


def test_trim_curve_drops_the_start_the_end_and_everything_after_a_nan():
    lrs, losses = list(range(1, 101)), [float(i) for i in range(100)]
    t_lrs, t_losses = trim_curve(lrs, losses, num_it=100)
    assert t_lrs == lrs[10:95] and t_losses == losses[10:95]
    losses[40] = math.nan
    t_lrs, t_losses = trim_curve(lrs, losses, num_it=100)
    assert t_lrs == lrs[10:40] and t_losses == losses[10:40]
    assert trim_curve(lrs[:4], losses[:4], num_it=100) == ([], [])  # too short: nothing left, no error


def _fastai_trim(lrs, losses, num_it, skip_end=5):
    """fastai's trimming, written out: its run goes on to num_it batches after a NaN (every later loss is
    NaN too), then it drops the first num_it // 10 and the last skip_end points and cuts at the first NaN."""
    if losses and math.isnan(losses[-1]):
        lrs = list(lrs) + [lrs[-1]] * (num_it - len(lrs))
        losses = list(losses) + [math.nan] * (num_it - len(losses))
    lrs, losses = list(lrs[num_it // 10:len(lrs) - skip_end]), list(losses[num_it // 10:len(losses) - skip_end])
    nan = [i for i, loss in enumerate(losses) if math.isnan(loss)]
    return (lrs[:nan[0]], losses[:nan[0]]) if nan else (lrs, losses)


@pytest.mark.parametrize("stop", [8, 12, 30, 60, 94, 97, 99])
def test_a_run_stopped_by_a_nan_is_trimmed_as_fastai_would_trim_it(stop):
    # lr_find stops at the NaN; fastai trains on to num_it: the suggestions must read the same points.
    lrs, losses = [float(i + 1) for i in range(stop + 1)], [float(100 - i) for i in range(stop)] + [math.nan]
    assert trim_curve(lrs, losses, num_it=100) == _fastai_trim(lrs, losses, num_it=100)
    end = min(stop, 100 - 5)  # up to the NaN, unless fastai's last 5 points would have come first
    assert trim_curve(lrs, losses, num_it=100) == (lrs[10:end], losses[10:end])


def test_a_run_stopped_by_an_explosion_drops_its_last_five_points_as_fastai_does():
    lrs, losses = [float(i + 1) for i in range(40)], [1.0] * 39 + [math.inf]  # fastai stops here too (4x)
    assert trim_curve(lrs, losses, num_it=100) == (lrs[10:35], losses[10:35])


# ----------------------------------------------------------------------------- the finder


def _data(n=96, batch_size=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 1, 6, 6, generator=g)
    y = (x.mean(dim=(1, 2, 3)) > 0).long()
    return DataLoader(TensorDataset(x, y), batch_size=batch_size, shuffle=True)


def _model(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Dropout(0.2),
                         nn.Flatten(), nn.Linear(4 * 4 * 4, 2))


def test_rates_grow_exponentially_and_the_loader_is_cycled():
    loader = _data(n=48)  # 3 batches, far fewer than num_it
    result = lr_find(_model(), loader, nn.CrossEntropyLoss(), num_it=30, stop_div=False, device="cpu", quiet=True)
    assert len(result.lrs) == 30 and "num_it=30" in result.stop_reason
    expected = [1e-7 * (10 / 1e-7) ** (i / 30) for i in range(30)]
    assert result.lrs == pytest.approx(expected, rel=1e-12)


def test_losses_are_smoothed_and_debiased():
    result = lr_find(_model(), _data(), nn.CrossEntropyLoss(), num_it=20, stop_div=False, device="cpu",
                     quiet=True)
    average = 0.0
    for i, (raw, smoothed) in enumerate(zip(result.raw_losses, result.losses)):
        average = 0.98 * average + 0.02 * raw
        assert smoothed == pytest.approx(average / (1 - 0.98 ** (i + 1)), rel=1e-12)


def _scripted_loss(values):
    """A loss function that returns the given numbers one after the other (still differentiable)."""
    values = iter(values)
    return lambda outputs, targets: outputs.sum() * 0 + next(values)


def _loss_for_smoothed(target, k, beta=0.98):
    """The raw loss that, after k losses of exactly 1.0, makes the smoothed loss equal `target`."""
    # un-debiased average after k ones: 1 - beta^k; smoothed = (beta*(1-beta^k) + (1-beta)*L) / (1-beta^(k+1))
    return (target * (1 - beta ** (k + 1)) - beta * (1 - beta**k)) / (1 - beta)


@pytest.mark.parametrize("target, stops", [(3.5, False), (4.5, True)])
def test_stops_when_the_smoothed_loss_exceeds_four_times_the_best(target, stops):
    k = 10
    values = [1.0] * k + [_loss_for_smoothed(target, k)] + [1.0] * 50
    result = lr_find(_model(), _data(), _scripted_loss(values), num_it=40, device="cpu", quiet=True)
    assert result.losses[k] == pytest.approx(target)
    if stops:
        assert len(result.lrs) == k + 1 and "exploded" in result.stop_reason
    else:
        assert len(result.lrs) == 40


def test_stop_div_false_keeps_going_after_an_explosion():
    values = [1.0] * 10 + [1e6] + [1.0] * 50
    result = lr_find(_model(), _data(), _scripted_loss(values), num_it=40, stop_div=False, device="cpu",
                     quiet=True)
    assert len(result.lrs) == 40


@pytest.mark.parametrize("bad", [math.nan, math.inf])
def test_stops_at_a_nan_or_infinite_loss(bad):
    values = [1.0] * 10 + [bad] + [1.0] * 50
    result = lr_find(_model(), _data(), _scripted_loss(values), num_it=40, stop_div=False, device="cpu",
                     quiet=True)
    assert len(result.lrs) == 11 and "NaN or infinite" in result.stop_reason


def _everything(model, optimizer):
    """Deep copies of all the state lr_find promises to put back."""
    return {
        "state": copy.deepcopy(model.state_dict()),
        "grads": [None if p.grad is None else p.grad.clone() for p in model.parameters()],
        "modes": [m.training for m in model.modules()],
        "optimizer": copy.deepcopy(optimizer.state_dict()),
        "torch_rng": torch.get_rng_state(),
        "numpy_rng": np.random.get_state()[1].copy(),
        "python_rng": random.getstate(),
    }


def _assert_same(before, after):
    assert before["state"].keys() == after["state"].keys()
    for key in before["state"]:
        assert torch.equal(before["state"][key], after["state"][key]), key  # incl. BatchNorm running stats
    for a, b in zip(before["grads"], after["grads"]):
        assert (a is None and b is None) or torch.equal(a, b)
    assert before["modes"] == after["modes"]
    opt_a, opt_b = before["optimizer"], after["optimizer"]
    assert opt_a["param_groups"] == opt_b["param_groups"]  # learning rates, betas, weight decay...
    assert opt_a["state"].keys() == opt_b["state"].keys()
    for idx in opt_a["state"]:
        for name, value in opt_a["state"][idx].items():
            assert torch.equal(torch.as_tensor(value), torch.as_tensor(opt_b["state"][idx][name])), name
    assert torch.equal(before["torch_rng"], after["torch_rng"])
    assert np.array_equal(before["numpy_rng"], after["numpy_rng"])
    assert before["python_rng"] == after["python_rng"]


def _trained_a_little(model, loader):
    """A model and optimiser with real history: non-empty Adam state, moved BN statistics, a gradient."""
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    for x, y in list(loader)[:3]:
        optimizer.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        optimizer.step()
    model.train()
    model[3].eval()  # a submodule in another mode must come back in that mode
    return optimizer


def test_everything_is_put_back_bit_for_bit():
    model, loader = _model(), _data()
    optimizer = _trained_a_little(model, loader)
    before = _everything(model, optimizer)

    seen_during = []
    def loss_fn(outputs, targets):  # notes whether the weights really changed during the run
        seen_during.append(torch.equal(model[0].weight, before["state"]["0.weight"]))
        return nn.functional.cross_entropy(outputs, targets)

    result = lr_find(model, loader, loss_fn, optimizer, num_it=50, device="cpu", quiet=True)
    assert len(result.lrs) > 5 and not all(seen_during)  # it did train...
    _assert_same(before, _everything(model, optimizer))   # ...and left no trace


def test_a_fresh_optimizer_stays_fresh_and_random_numbers_continue_as_before():
    model, loader = _model(), _data()
    optimizer = torch.optim.AdamW(model.parameters())
    torch.manual_seed(123)
    expected_next = torch.rand(3)
    torch.manual_seed(123)
    lr_find(model, loader, nn.CrossEntropyLoss(), optimizer, num_it=10, device="cpu", quiet=True)
    assert optimizer.state_dict()["state"] == {}
    assert torch.equal(torch.rand(3), expected_next)


@pytest.mark.parametrize("error", [RuntimeError("boom"), KeyboardInterrupt()])
def test_everything_is_put_back_after_an_error_or_interrupt(error):
    model, loader = _model(), _data()
    optimizer = _trained_a_little(model, loader)
    before = _everything(model, optimizer)
    calls = []
    def loss_fn(outputs, targets):
        calls.append(1)
        if len(calls) == 6:
            raise error
        return nn.functional.cross_entropy(outputs, targets)

    with pytest.raises(type(error)):
        lr_find(model, loader, loss_fn, optimizer, num_it=50, device="cpu", quiet=True)
    _assert_same(before, _everything(model, optimizer))


def test_suggestions_read_the_trimmed_curve():
    result = lr_find(_model(), _data(), nn.CrossEntropyLoss(), num_it=60, stop_div=False, device="cpu",
                     quiet=True)
    lrs, losses = trim_curve(result.lrs, result.losses, 60)
    for name, rule in SUGGESTIONS.items():
        try:
            expected = rule(lrs, losses)
        except NoSuggestionError as e:
            assert result.no_suggestion[name] == str(e)
        else:
            assert result.suggestions[name] == expected[0] and result.marks[name] == expected[1]


def test_suggestions_after_a_nan_read_the_points_up_to_it():
    values = [2.0 - 0.02 * i for i in range(50)] + [math.nan] * 60
    result = lr_find(_model(), _data(), _scripted_loss(values), num_it=100, device="cpu", quiet=True)
    assert len(result.lrs) == 51 and "NaN" in result.stop_reason
    lrs, losses = _fastai_trim(result.lrs, result.losses, 100)
    assert len(losses) == 40  # points 10..49: fastai's curve, not 5 points shorter
    assert result.suggestions["minimum"] == minimum(lrs, losses)[0]
    assert result.suggestions["valley"] == valley(lrs, losses)[0]


def test_all_four_suggestions_by_default():
    result = lr_find(_model(), _data(), nn.CrossEntropyLoss(), num_it=60, stop_div=False, device="cpu", quiet=True)
    assert set(result.suggestions) | set(result.no_suggestion) == {"valley", "steep", "minimum", "slide"}


def test_a_flat_curve_gives_reasons_not_exceptions():
    # (a constant 0 smooths to exactly 0; other constants pick up rounding noise in the average)
    result = lr_find(_model(), _data(), _scripted_loss([0.0] * 100), num_it=40, device="cpu", quiet=True)
    assert set(result.no_suggestion) == {"valley", "steep"}
    assert "never goes down" in result.no_suggestion["valley"]
    assert set(result.suggestions) == {"minimum", "slide"}
    assert "no valley" in repr(result)


def test_a_run_that_explodes_at_once_has_no_suggestions_but_says_why():
    values = [1.0, 1.0, 1e9] + [1.0] * 50
    result = lr_find(_model(), _data(), _scripted_loss(values), num_it=100, device="cpu", quiet=True)
    assert len(result.lrs) == 3 and result.suggestions == {}
    assert all("needs at least" in why for why in result.no_suggestion.values())
    result.plot()  # still draws the curve


def test_bad_arguments():
    with pytest.raises(ValueError, match="start_lr < end_lr"):
        lr_find(_model(), _data(), nn.CrossEntropyLoss(), start_lr=1.0, end_lr=0.1, device="cpu")
    with pytest.raises(ValueError, match="unknown suggestion"):
        lr_find(_model(), _data(), nn.CrossEntropyLoss(), suggest=["valey"], device="cpu")
    empty = DataLoader(TensorDataset(torch.zeros(0, 1, 6, 6), torch.zeros(0).long()), batch_size=4)
    with pytest.raises(ValueError, match="no batches"):
        lr_find(_model(), empty, nn.CrossEntropyLoss(), device="cpu", quiet=True)


def test_plot_has_a_log_axis_labels_and_a_named_mark_per_suggestion():
    result = LRFinderResult(lrs=LRS_21, losses=[(i - 10) ** 2 + 1.0 for i in range(21)], raw_losses=[0.0] * 21,
                            num_it=21, stop_reason="test")
    result.suggestions = {"valley": 1e-4, "minimum": 1e-2}
    result.marks = {"valley": (1e-4, 50.0), "minimum": (1e-2, 5.0)}
    ax = result.plot()
    assert ax.get_xscale() == "log"
    assert "learning rate" in ax.get_xlabel() and "loss" in ax.get_ylabel() and ax.get_title()
    labels = [text.get_text() for text in ax.get_legend().get_texts()]
    assert labels == ["smoothed loss", "valley: 1.0e-04", "minimum: 1.0e-02"]
    marks = [(line.get_xdata()[0], line.get_ydata()[0]) for line in ax.get_lines()[1:]]
    assert marks == [(1e-4, 50.0), (1e-2, 5.0)]
    assert len(ax.get_lines()[0].get_xdata()) == 21 - 5  # the last 5 points are left out, as in fastai
