import numpy as np
import torch

from course_utils.plots import plot_losses, show_images, to_display_array


def test_to_display_array_reorders_tensor_channels():
    assert to_display_array(torch.zeros(3, 5, 7)).shape == (5, 7, 3)
    assert to_display_array(torch.zeros(1, 5, 7)).shape == (5, 7)
    assert to_display_array(np.zeros((5, 7))).shape == (5, 7)


def test_show_images_grid_and_titles():
    images = [torch.rand(3, 8, 8), np.random.rand(8, 8), np.zeros((8, 8, 3), dtype=np.uint8)]
    fig = show_images(images, titles=["a", "b", "c"], ncols=2, suptitle="grid")
    assert len(fig.axes) == 4  # 2 x 2 grid, one left empty
    assert [ax.get_title() for ax in fig.axes[:3]] == ["a", "b", "c"]


def test_plot_losses_labels_axes():
    ax = plot_losses({"train": [3, 2, 1], "valid": [3, 2.5, 2]}, xlabel="epoch", title="t", log_y=True)
    assert ax.get_xlabel() == "epoch" and ax.get_ylabel() == "loss" and ax.get_yscale() == "log"
    assert [line.get_label() for line in ax.get_lines()] == ["train", "valid"]
