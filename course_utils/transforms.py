"""How a photo becomes the tensor a network sees (lessons 5 to 7).

- ImageNet's colour statistics, which a pretrained network expects its inputs normalised with;
- ``train_transform``: data augmentation, a little different every time a photo is read;
- ``JitterAndNormalize``: its last step, random colours and normalisation in one pass;
- ``valid_transform``: no randomness, for validation, testing and every later prediction;
- ``denormalize``: undo the normalisation, to look at what the network saw.

Lesson 6 prints and draws both transforms; lesson 7 predicts with ``valid_transform`` itself,
not a copy, so a new photo is prepared exactly as the validation photos were.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from PIL import Image
from torchvision.transforms import v2

# The mean and standard deviation of each colour channel (R, G, B) over ImageNet's photos.
# A pretrained model saw its inputs normalised with these numbers, so ours must be too.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

FULL_IMAGE_SIZE = 224    # the side of the square images a model sees in full mode
QUICK_IMAGE_SIZE = 64    # ... and in quick mode (small pictures train fast on a CPU)
# The share of a photo's area that augmentation's random crop keeps, at least and at most. With
# the 256-pixel copies and 224-pixel crops, a pet then looks on average about as big in training
# as in validation's resize-and-centre-crop (tests/test_pets_model.py checks it). Lessons 5 and 6.
CROP_SCALE = (0.35, 1.0)
# How a colour pixel counts as grey (ITU-R 601 luma): the weights torchvision's colour changes use too.
GREY_WEIGHTS = (0.299, 0.587, 0.114)


def norm_stats(pretrained: bool = True) -> tuple[list[float] | None, list[float] | None]:
    """``(mean, std)`` to normalise with: ImageNet's for a pretrained model, else ``(None, None)``.

    These are also what a checkpoint stores (see ``checkpoint``), so lesson 7 can
    prepare new photos exactly as the model saw them in training.
    """
    return (list(IMAGENET_MEAN), list(IMAGENET_STD)) if pretrained else (None, None)


def _to_tensor(mean: Sequence[float] | None, std: Sequence[float] | None) -> list:
    """PIL image -> float tensor in 0..1 (channels first), then normalised when ``mean`` is given."""
    steps = [v2.ToImage(), v2.ToDtype(torch.float32, scale=True)]
    if mean is not None:
        steps.append(v2.Normalize(mean=list(mean), std=list(std)))
    return steps


def valid_transform(image_size: int = FULL_IMAGE_SIZE, mean: Sequence[float] | None = IMAGENET_MEAN,
                    std: Sequence[float] | None = IMAGENET_STD) -> v2.Compose:
    """The preprocessing for validation, testing and predictions: no randomness at all.

    Resize the short side to ``image_size / 0.875`` (256 for 224, the classic ImageNet ratio), cut
    out the central ``image_size x image_size`` square, turn it into a tensor and normalise it with
    ``mean`` and ``std`` (skipped when ``mean`` is None). Lesson 7 uses exactly this function.
    """
    return v2.Compose([v2.Resize(round(image_size / 0.875)), v2.CenterCrop(image_size), *_to_tensor(mean, std)])


class JitterAndNormalize(torch.nn.Module):
    """A photo's brightness, contrast and saturation changed at random, then normalised: one pass.

    Each of the three is multiplied by its own random factor between ``1 - strength`` and
    ``1 + strength``, as torchvision's ``ColorJitter`` does. All three are linear in the pixel
    values, and so is normalising, so for each photo they make ONE 3 x 3 colour matrix and an
    offset, applied to every pixel at once:

    - brightness ``b``: ``x -> b x``;
    - contrast ``c``: ``x -> c x + (1 - c) m``, with ``m`` the photo's mean grey level;
    - saturation ``s``: ``x -> s x + (1 - s) grey(x)``, with ``grey(x)`` the pixel's grey level;
    - then the values are clipped to 0..1 and normalised with ``mean`` and ``std`` (skipped when
      ``mean`` is None).

    Without clipping between them the three steps commute, so their order does not matter
    (``ColorJitter`` draws one at random and clips after each step). Done one after another, with
    ``ToImage``, ``ToDtype`` and ``Normalize``, these steps were the slowest part of a loader
    worker's work; done at once they take less than half as long (part (c) of
    ``benchmarks/bench_pets_throughput.py`` times both).
    Takes a PIL image or a ``3 x H x W`` tensor (8-bit, or floats in 0..1); returns floats.
    """

    def __init__(self, strength: float = 0.2, mean: Sequence[float] | None = IMAGENET_MEAN,
                 std: Sequence[float] | None = IMAGENET_STD) -> None:
        super().__init__()
        if not 0 <= strength < 1:
            raise ValueError(f"strength must be in [0, 1), got {strength}")
        self.strength, self.mean, self.std = strength, mean, std
        self._grey = torch.tensor(GREY_WEIGHTS)
        # Normalising as a matrix and offset too: y = x / std - mean / std, and where 0..1 goes.
        inv_std = torch.ones(3) if mean is None else 1 / torch.tensor(std)
        shift = torch.zeros(3) if mean is None else -torch.tensor(mean) * inv_std
        self._normalise = (inv_std, shift)
        self._bounds = list(zip(shift.tolist(), (inv_std + shift).tolist()))

    def colour_matrix(self, mean_grey: float) -> tuple[torch.Tensor, torch.Tensor]:
        """Draw the three factors; return the matrix ``M`` and offset ``t`` that make ``M x + t`` of a pixel ``x``."""
        b, c, s = torch.empty(3).uniform_(1 - self.strength, 1 + self.strength).tolist()
        grey_rows = self._grey.expand(3, 3)                          # grey(x), copied into all 3 channels
        matrix = (b * c * s) * torch.eye(3) + (b * c * (1 - s)) * grey_rows   # brightness, contrast, saturation
        offset = torch.full((3,), (1 - c) * b * mean_grey)           # contrast's pull towards the (brighter) mean
        return matrix, offset

    def forward(self, image: Image.Image | torch.Tensor) -> torch.Tensor:
        if isinstance(image, Image.Image):
            rgb = image if image.mode == "RGB" else image.convert("RGB")
            image = torch.from_numpy(np.array(rgb)).permute(2, 0, 1)  # H x W x 3 -> 3 x H x W, 0..255
        scale = 1 / 255 if image.dtype == torch.uint8 else 1.0
        _, height, width = image.shape
        # A row per channel, a column per pixel, each row in one piece of memory: the matrix product
        # is several times faster on this layout than on the photo's own, where a pixel's 3 colours sit together.
        pixels = image.reshape(3, -1).to(torch.float32, memory_format=torch.contiguous_format)
        mean_grey = float(self._grey @ pixels.mean(dim=1)) * scale
        matrix, offset = self.colour_matrix(mean_grey)
        inv_std, shift = self._normalise                              # then normalise, in the same pass
        out = torch.addmm((offset * inv_std + shift)[:, None], matrix * (inv_std[:, None] * scale), pixels)
        for channel, (low, high) in zip(out, self._bounds):           # clip to what 0..1 became
            channel.clamp_(low, high)
        return out.reshape(3, height, width)

    def extra_repr(self) -> str:
        return f"strength={self.strength}, mean={self.mean}, std={self.std}"


def train_transform(image_size: int = FULL_IMAGE_SIZE, mean: Sequence[float] | None = IMAGENET_MEAN,
                    std: Sequence[float] | None = IMAGENET_STD) -> v2.Compose:
    """Data augmentation: every epoch shows each photo a little differently.

    A random crop of 35% to 100% of the photo (``CROP_SCALE``) stretched to ``image_size``
    squared and a mirror image half of the time (torchvision's own ImageNet training recipe
    starts with these two), then slightly changed brightness, contrast and saturation, done
    together with turning the photo into normalised numbers (``JitterAndNormalize``; no
    normalising when ``mean`` is None). A cat stays a cat under all of these, so the model
    learns what does not change. No small rotations: they cost a loader worker about a sixth of
    its time per photo, and the loader must keep up with a GPU; no hue changes, which are not
    linear in the pixel values and cost more still.
    """
    return v2.Compose([
        v2.RandomResizedCrop(image_size, scale=CROP_SCALE),
        v2.RandomHorizontalFlip(),
        JitterAndNormalize(0.2, mean, std),
    ])


def denormalize(images: torch.Tensor, mean: Sequence[float] | None = IMAGENET_MEAN,
                std: Sequence[float] | None = IMAGENET_STD) -> torch.Tensor:
    """Undo ``Normalize`` so a batch (N x 3 x H x W) or one image (3 x H x W) can be shown.

    Values are clipped to 0..1 (what ``plots.show_images`` and matplotlib expect).
    """
    if mean is None:
        return images.clamp(0, 1)
    shape = (3, 1, 1)
    mean_t = torch.tensor(mean, dtype=images.dtype, device=images.device).view(shape)
    std_t = torch.tensor(std, dtype=images.dtype, device=images.device).view(shape)
    return (images * std_t + mean_t).clamp(0, 1)
