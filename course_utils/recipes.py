"""Plumbing: lesson 6's recipe as one object, and lessons 5 to 7 in one call each. You need not read this.

Every step here is taught, and written out, in lessons 5 and 6.

- ``PetsRecipe`` / ``pets_recipe(quick)``: every setting of lesson 6's final model (architecture,
  image size, augmentation crop, batch, epochs, learning rate), in one frozen object that lesson
  6's last training cell, ``train_pets_model`` and ``ddp_train`` all read;
- ``checkpoint_path(task)``: where lesson 6 saves the pets classifier and lesson 7 looks for it;
- ``train_pets_model(task)``: lesson 6's recipe in one call (data, model, fine-tuning, the best
  epoch, the checkpoint);
- ``find_or_train_checkpoint(task)``: lesson 7's first cell, which must also work on a fresh Colab
  runtime where lesson 6 never ran.

This is the top of the house: it chains the other modules, and nothing but notebooks,
benchmarks and ``ddp_train`` imports it.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import torch

from course_utils.checkpoint import Checkpoint, save_checkpoint
from course_utils.env import data_dir, is_quick, pick_device
from course_utils.models import build_resnet
from course_utils.pets import pets_dataloaders
from course_utils.training import error_rate, fine_tune, fit
from course_utils.transforms import CROP_SCALE, FULL_IMAGE_SIZE, QUICK_IMAGE_SIZE, norm_stats


@dataclass(frozen=True)
class PetsRecipe:
    """Every setting of lesson 6's final model. Lesson 6 explains the full-mode choice, with its sources.

    - ``arch``: a torchvision ResNet; its head is one new ``nn.Linear`` (``models.build_resnet``);
    - ``pretrained``: start from torchvision's default ImageNet weights (full mode) or from random
      ones (quick mode, which never downloads);
    - ``image_size``: the side of the square images the model sees;
    - ``crop_scale``: the share of the photo that augmentation's random crop keeps
      (``transforms.train_transform``, whose default it is);
    - ``batch_size``: training images per step (validation takes twice as many);
    - ``epochs``: ``fine_tune``'s epochs with everything training, or ``fit``'s epochs from scratch;
    - ``freeze_epochs``: ``fine_tune``'s first epochs, with the body frozen (0: no such phase);
    - ``lr``: ``fine_tune``'s ``base_lr``, or ``fit``'s peak rate from scratch; chosen for one
      process with ``batch_size`` images per step.
    """

    arch: str
    pretrained: bool
    image_size: int
    crop_scale: tuple[float, float]
    batch_size: int
    epochs: int
    freeze_epochs: int
    lr: float


# Full mode: an ImageNet-pretrained ResNet-152 fine-tuned for 1 + 5 epochs at 224 px (lesson 6, section 6).
FULL_RECIPE = PetsRecipe("resnet152", pretrained=True, image_size=FULL_IMAGE_SIZE, crop_scale=CROP_SCALE,
                         batch_size=64, epochs=5, freeze_epochs=1, lr=2e-3)
# Quick mode: cartoon pets, no downloads: a small ResNet from scratch, seconds on a CPU.
QUICK_RECIPE = PetsRecipe("resnet18", pretrained=False, image_size=QUICK_IMAGE_SIZE, crop_scale=CROP_SCALE,
                          batch_size=32, epochs=8, freeze_epochs=0, lr=1e-3)


def pets_recipe(quick: bool | None = None) -> PetsRecipe:
    """The recipe of lesson 6's final model in quick or full mode (default: the course's mode)."""
    return QUICK_RECIPE if (is_quick() if quick is None else quick) else FULL_RECIPE


def checkpoint_path(task: str = "breeds", quick: bool | None = None) -> Path:
    """Where lesson 6 saves, and lesson 7 looks for, the pets classifier of ``task``.

    Quick-mode models get their own file, so a quick run never overwrites a real model.
    """
    quick = is_quick() if quick is None else quick
    return data_dir() / "models" / f"pets_{task}_{'quick' if quick else 'full'}.pt"


def train_pets_model(task: str = "breeds", quick: bool | None = None, epochs: int | None = None,
                     arch: str | None = None, device: torch.device | str | None = None,
                     path: Path | None = None) -> Path:
    """Lesson 6's recipe in one call: train a ResNet on the pets, save the best epoch, return the path.

    The settings are ``pets_recipe(quick)``'s (``epochs`` and ``arch`` replace the recipe's when
    given). Full mode fine-tunes an ImageNet-pretrained ResNet at 224 px (a few minutes on a
    GPU); quick mode trains a small ResNet-18 from scratch on the cartoon pets for a few seconds
    (it learns something, not much). Lesson 7 calls this when it finds no saved model, e.g. on a
    fresh Colab runtime. The checkpoint format is described in ``course_utils.checkpoint``.
    """
    quick = is_quick() if quick is None else quick
    recipe = pets_recipe(quick)
    recipe = dataclasses.replace(recipe, epochs=epochs or recipe.epochs, arch=arch or recipe.arch)
    if recipe.crop_scale != CROP_SCALE:  # pets_dataloaders augments with train_transform's default crop
        raise ValueError(f"pets_dataloaders crops with transforms.CROP_SCALE={CROP_SCALE}, "
                         f"not the recipe's {recipe.crop_scale}")
    device = pick_device() if device is None else torch.device(device)
    train_dl, valid_dl, names = pets_dataloaders(task, recipe.image_size, batch_size=recipe.batch_size, quick=quick,
                                                 pretrained_norm=True, device=device)
    model, pretrained = build_resnet(recipe.arch, pretrained=recipe.pretrained, num_classes=len(names))
    loss_fn = torch.nn.CrossEntropyLoss()
    settings = {"metrics": {"error_rate": error_rate}, "device": device, "keep_best": True}
    if pretrained:
        history = fine_tune(model, train_dl, valid_dl, loss_fn, recipe.epochs, base_lr=recipe.lr,
                            freeze_epochs=recipe.freeze_epochs, **settings)[-1]
    else:  # nothing to preserve in a random body: train everything from the start
        history = fit(model, train_dl, valid_dl, loss_fn, recipe.epochs, lr=recipe.lr, **settings)
    if history is not None and history.best_state is not None:
        model.load_state_dict(history.best_state)
    best = history.rows[history.best_epoch - 1] if history is not None and history.best_epoch else {}
    info = {"task": task, "quick": quick, "pretrained": pretrained, "epochs": recipe.epochs,
            "best_epoch": best.get("epoch", 0), "valid_error_rate": float(best.get("error_rate", float("nan")))}
    mean, std = norm_stats(True)
    return save_checkpoint(path or checkpoint_path(task, quick), model,
                           Checkpoint(recipe.arch, names, recipe.image_size, mean, std, info))


def find_or_train_checkpoint(task: str = "breeds", quick: bool | None = None, train_if_missing: bool = True,
                             device: torch.device | str | None = None) -> Path:
    """The path of the pets classifier lesson 6 saved; if there is none, train one now (or say how).

    Lesson 7 may be opened first, e.g. on a fresh Colab runtime. Then the model is made with
    ``train_pets_model(task)``, lesson 6's recipe in one call: in quick mode a small ResNet-18
    trained from scratch on cartoon pets; in full mode a download of the pet photos (about 800 MB)
    and of the ImageNet weights (once), then fine-tuning, best on a GPU. Its table shows the time
    of each epoch as it goes. With ``train_if_missing=False``
    it raises instead.
    """
    quick = is_quick() if quick is None else quick
    path = checkpoint_path(task, quick)
    if path.is_file():
        print(f"Found the saved model: {path}")
        return path
    call = f"course_utils.recipes.train_pets_model({task!r})"
    recipe = pets_recipe(quick)
    epochs = recipe.freeze_epochs + recipe.epochs
    cost = (f"quick mode: cartoon pets, a small {recipe.arch} from scratch for {epochs} epochs (the table shows "
            "each epoch's time)" if quick else
            f"full mode: downloads the Oxford-IIIT Pet photos once (about 800 MB) and the ImageNet weights of a "
            f"{recipe.arch}, then fine-tunes it for {epochs} epochs: best on a GPU, far slower on a CPU")
    if not train_if_missing:
        raise FileNotFoundError(f"No saved model at {path}. Run lesson 6, or make one with a single call, "
                                f"{call}: {cost}.")
    print(f"No saved model at {path} (lesson 6 saves one there).\nTraining one now with {call}: {cost}.")
    return train_pets_model(task, quick, device=device)
