"""course_utils.digits: scikit-learn's digits as tensors, and on a canvas."""

import pytest
import torch
from sklearn.datasets import load_digits

from course_utils.digits import digit_images, on_canvas


def test_digit_images_are_the_scikit_learn_digits_scaled_to_0_1():
    images, labels = digit_images()
    reference = load_digits()
    assert images.shape == (1797, 1, 8, 8) and images.dtype == torch.float32
    assert labels.shape == (1797,) and labels.dtype == torch.int64
    assert images.min() == 0 and images.max() == 1
    assert torch.equal(images[:, 0] * 16, torch.tensor(reference.images, dtype=torch.float32))
    assert labels.tolist() == reference.target.tolist()


def test_on_canvas_keeps_every_pixel_and_places_the_same_way_for_the_same_seed():
    images, _ = digit_images()
    images = images[:50]
    canvas = on_canvas(images, size=16)
    assert canvas.shape == (50, 1, 16, 16)
    assert torch.allclose(canvas.sum(dim=(1, 2, 3)), images.sum(dim=(1, 2, 3)))  # nothing cut, nothing added
    torch.manual_seed(123)  # the global generator does not matter
    assert torch.equal(on_canvas(images, size=16), canvas)
    assert not torch.equal(on_canvas(images, size=16, seed=1), canvas)


def test_on_canvas_puts_each_digit_somewhere_whole():
    images, _ = digit_images()
    canvas = on_canvas(images[:200], size=12, seed=3)
    found = set()
    for image, placed in zip(images[:200], canvas):
        spots = [(r, c) for r in range(5) for c in range(5)
                 if torch.equal(placed[:, r:r + 8, c:c + 8], image)
                 and placed.sum() == placed[:, r:r + 8, c:c + 8].sum()]
        assert spots, "the digit is not on the canvas as a whole"
        found.add(spots[0])
    assert len(found) > 15  # many of the 25 possible places are used


def test_the_same_size_changes_nothing_and_a_smaller_canvas_is_refused():
    images, _ = digit_images()
    assert torch.equal(on_canvas(images[:5], size=8), images[:5])
    with pytest.raises(ValueError, match="at least as large"):
        on_canvas(images[:5], size=7)
    with pytest.raises(ValueError, match="N x C x height x width"):
        on_canvas(images[0, 0], size=16)
