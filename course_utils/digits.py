"""scikit-learn's handwritten digits as tensors, centred or placed anywhere on a canvas (lesson 5).

scikit-learn ships 1,797 grey 8 x 8 pictures of the digits 0 to 9 inside its package (the UCI
"optical recognition of handwritten digits" set, written by 43 people), so they need no
download and work offline. Lessons 3 and 4 train their first CNNs on them. Lesson 5 uses them
to watch transfer learning happen in seconds: a small network learns the digits 0-4, and its
body is reused for the digits 5-9.

- ``digit_images`` - all of them: images ``N x 1 x 8 x 8`` with values 0..1, and labels 0..9;
- ``on_canvas`` - each digit pasted at a random place on a larger black canvas, the same place
  for the same seed. The digits of scikit-learn are all centred and scaled to fill their box;
  in photos, the subject can be anywhere. The canvas brings back a little of that.
"""

from __future__ import annotations

import torch

DIGIT_SIZE = 8        # scikit-learn's digits are 8 x 8 pixels
DIGIT_MAX = 16.0      # ... with whole-number values 0 (white paper) to 16 (black ink)
CANVAS_SEED = 0       # where each digit lands on the canvas: fixed, so every run and every check agrees


def digit_images() -> tuple[torch.Tensor, torch.Tensor]:
    """All 1,797 digits: ``(images, labels)``.

    ``images`` is a float tensor ``N x 1 x 8 x 8`` (one grey channel) with ink = 1 and paper = 0
    (scikit-learn stores 0..16); ``labels`` holds each digit's value, 0 to 9 (int64, as
    ``nn.CrossEntropyLoss`` wants). The order is scikit-learn's, the same everywhere.
    """
    from sklearn.datasets import load_digits  # imported here: only the lessons that use digits need it

    digits = load_digits()
    images = torch.tensor(digits.images, dtype=torch.float32).unsqueeze(1) / DIGIT_MAX
    return images, torch.tensor(digits.target, dtype=torch.int64)


def on_canvas(images: torch.Tensor, size: int = 16, seed: int = CANVAS_SEED) -> torch.Tensor:
    """Paste each image (``N x C x h x w``) at a random place on a black ``size x size`` canvas.

    Every position that keeps the whole digit on the canvas is equally likely; image ``i`` lands
    at the same place for the same ``seed``, whatever else the program has drawn from its random
    generators. Nothing is scaled or cut: the canvas holds each digit's pixels exactly.
    """
    if images.dim() != 4:
        raise ValueError(f"expected a batch of images N x C x height x width, got shape {tuple(images.shape)}")
    n, channels, height, width = images.shape
    if size < max(height, width):
        raise ValueError(f"the canvas ({size} x {size}) must be at least as large as the images ({height} x {width})")
    generator = torch.Generator().manual_seed(seed)
    rows = torch.randint(0, size - height + 1, (n,), generator=generator).tolist()
    cols = torch.randint(0, size - width + 1, (n,), generator=generator).tolist()
    canvas = images.new_zeros(n, channels, size, size)
    for i, (r, c) in enumerate(zip(rows, cols)):
        canvas[i, :, r:r + height, c:c + width] = images[i]
    return canvas
