"""How a photo becomes the tensor a network sees (lessons 5 to 7).

- ImageNet's colour statistics, which a pretrained network expects its inputs normalised with;
- ``train_transform``: data augmentation, a little different every time a photo is read;
- ``valid_transform``: no randomness, for validation, testing and every later prediction;
- ``denormalize``: undo the normalisation, to look at what the network saw.

Lesson 6 prints and draws both transforms; lesson 7 predicts with ``valid_transform`` itself,
not a copy, so a new photo is prepared exactly as the validation photos were.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
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


def train_transform(image_size: int = FULL_IMAGE_SIZE, mean: Sequence[float] | None = IMAGENET_MEAN,
                    std: Sequence[float] | None = IMAGENET_STD) -> v2.Compose:
    """Data augmentation: every epoch shows each photo a little differently.

    A small rotation, a random crop of 35% to 100% of the photo (``CROP_SCALE``) stretched to
    ``image_size`` squared, a mirror image half of the time and slightly changed brightness,
    contrast and saturation.
    A cat stays a cat under all of these, so the model learns what does not change. (No hue
    changes: they would cost as much time as all the rest together, for little gain.)
    """
    return v2.Compose([
        v2.RandomRotation(10),
        v2.RandomResizedCrop(image_size, scale=CROP_SCALE),
        v2.RandomHorizontalFlip(),
        v2.ColorJitter(brightness=0.2, contrast=0.2, saturation=0.2),
        *_to_tensor(mean, std),
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
