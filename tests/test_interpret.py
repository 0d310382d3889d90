import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from course_utils import interpret

# A tiny example you can check by hand. Three classes; six samples:
#   actual:    0 0 0 1 1 2
#   predicted: 0 1 0 1 2 2
TARGETS = [0, 0, 0, 1, 1, 2]
PREDICTED = [0, 1, 0, 1, 2, 2]


def test_confusion_matrix_by_hand():
    cm = interpret.confusion_matrix(TARGETS, PREDICTED, num_classes=3)
    assert cm.tolist() == [[2, 1, 0],
                           [0, 1, 1],
                           [0, 0, 1]]


def test_normalized_rows_sum_to_one_and_empty_rows_stay_zero():
    cm = interpret.confusion_matrix([0, 0, 1], [0, 1, 1], num_classes=3, normalize=True)
    np.testing.assert_allclose(cm, [[0.5, 0.5, 0], [0, 1, 0], [0, 0, 0]])


def test_most_confused_orders_off_diagonal_pairs():
    cm = interpret.confusion_matrix([0, 0, 0, 1, 1, 2, 2, 2], [1, 1, 0, 2, 1, 0, 2, 2], num_classes=3)
    pairs = interpret.most_confused(cm, ["cat", "dog", "fox"])
    assert pairs[0] == ("cat", "dog", 2)
    assert set(pairs[1:]) == {("dog", "fox", 1), ("fox", "cat", 1)}
    assert interpret.most_confused(cm, ["cat", "dog", "fox"], min_count=2) == [("cat", "dog", 2)]


class FixedLogits(nn.Module):
    """A 'model' that returns the logits stored for each input index."""

    def __init__(self, logits: torch.Tensor):
        super().__init__()
        self.logits = logits

    def forward(self, x):
        return self.logits[x[:, 0, 0, 0].long()]


def test_collect_predictions_and_top_losses():
    logits = torch.tensor([[4.0, 0.0], [0.0, 4.0], [3.0, 0.0], [0.0, 0.1]])
    labels = torch.tensor([0, 0, 1, 1])  # sample 1 and 2 are confidently wrong
    images = torch.arange(4).float().reshape(4, 1, 1, 1).expand(4, 3, 2, 2).clone()
    loader = DataLoader(TensorDataset(images, labels), batch_size=3)
    preds = interpret.collect_predictions(FixedLogits(logits), loader)
    assert preds.predicted.tolist() == [0, 1, 0, 1]
    assert preds.accuracy == pytest.approx(0.5)
    expected = torch.nn.functional.cross_entropy(logits, labels, reduction="none")
    torch.testing.assert_close(preds.losses, expected)
    assert interpret.top_losses(preds, k=2) == [1, 2]  # loss 4.018 then 3.049
    assert interpret.top_losses(preds, k=10) == [1, 2, 3, 0]
    fig = interpret.plot_top_losses(preds, TensorDataset(images / 3, labels), ["cat", "dog"], k=2)
    titles = [ax.get_title() for ax in fig.axes if ax.get_title()]
    assert titles[0].startswith("predicted: dog\nactual: cat\nloss 4.02")


def test_plot_confusion_matrix_labels():
    cm = interpret.confusion_matrix(TARGETS, PREDICTED, num_classes=3)
    ax = interpret.plot_confusion_matrix(cm, ["a", "b", "c"])
    assert ax.get_xlabel() == "predicted class" and ax.get_ylabel() == "actual class"
    assert [t.get_text() for t in ax.texts][:3] == ["2", "1", "0"]
