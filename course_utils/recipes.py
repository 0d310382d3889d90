"""Plumbing: lessons 5 to 7 in one call each, for when a lesson needs what an earlier one made.

You need not read this: every step here is taught, and written out, in lessons 5 and 6.

- ``checkpoint_path(task)``: where lesson 6 saves the pets classifier and lesson 7 looks for it;
- ``train_pets_model(task)``: lesson 6's recipe in one call (data, model, fine-tuning, the best
  epoch, the checkpoint);
- ``find_or_train_checkpoint(task)``: lesson 7's first cell, which must also work on a fresh Colab
  runtime where lesson 6 never ran.

This is the top of the house: it chains the other modules, and nothing but notebooks and
benchmarks imports it.
"""

from __future__ import annotations

from pathlib import Path

import torch

from course_utils.checkpoint import Checkpoint, save_checkpoint
from course_utils.env import data_dir, is_quick, pick_device
from course_utils.models import build_resnet
from course_utils.pets import pets_dataloaders
from course_utils.training import error_rate, fine_tune, fit
from course_utils.transforms import FULL_IMAGE_SIZE, QUICK_IMAGE_SIZE, norm_stats


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

    Full mode fine-tunes an ImageNet-pretrained ResNet-34 at 224 px (a few minutes on a GPU);
    quick mode trains a small ResNet-18 from scratch on the cartoon pets for a few seconds (it
    learns something, not much). Lesson 7 calls this when it finds no saved model, e.g. on a
    fresh Colab runtime. The checkpoint format is described in ``course_utils.checkpoint``.
    """
    quick = is_quick() if quick is None else quick
    device = pick_device() if device is None else torch.device(device)
    arch = arch or ("resnet18" if quick else "resnet34")
    epochs = epochs or (8 if quick else 4)
    image_size = QUICK_IMAGE_SIZE if quick else FULL_IMAGE_SIZE
    train_dl, valid_dl, names = pets_dataloaders(task, image_size, batch_size=32 if quick else 64, quick=quick,
                                                 pretrained_norm=True, device=device)
    model, pretrained = build_resnet(arch, pretrained=not quick, num_classes=len(names))
    loss_fn = torch.nn.CrossEntropyLoss()
    settings = {"metrics": {"error_rate": error_rate}, "device": device, "keep_best": True}
    if pretrained:
        history = fine_tune(model, train_dl, valid_dl, loss_fn, epochs, **settings)[-1]
    else:  # nothing to preserve in a random body: train everything from the start
        history = fit(model, train_dl, valid_dl, loss_fn, epochs, lr=1e-3, **settings)
    if history is not None and history.best_state is not None:
        model.load_state_dict(history.best_state)
    best = history.rows[history.best_epoch - 1] if history is not None and history.best_epoch else {}
    info = {"task": task, "quick": quick, "pretrained": pretrained, "epochs": epochs,
            "best_epoch": best.get("epoch", 0), "valid_error_rate": float(best.get("error_rate", float("nan")))}
    mean, std = norm_stats(True)
    return save_checkpoint(path or checkpoint_path(task, quick), model,
                           Checkpoint(arch, names, image_size, mean, std, info))


def find_or_train_checkpoint(task: str = "breeds", quick: bool | None = None, train_if_missing: bool = True,
                             device: torch.device | str | None = None) -> Path:
    """The path of the pets classifier lesson 6 saved; if there is none, train one now (or say how).

    Lesson 7 may be opened first, e.g. on a fresh Colab runtime. Then the model is made with
    ``train_pets_model(task)``, lesson 6's recipe in one call: about 10 seconds on a CPU
    in quick mode; in full mode a download of the pet photos (about 800 MB, once) and a few
    minutes of fine-tuning on a GPU. With ``train_if_missing=False`` it raises instead.
    """
    quick = is_quick() if quick is None else quick
    path = checkpoint_path(task, quick)
    if path.is_file():
        print(f"Found the saved model: {path}")
        return path
    call = f"course_utils.recipes.train_pets_model({task!r})"
    cost = ("about 10 seconds on a CPU (quick mode: cartoon pets, a small ResNet-18 from scratch)" if quick else
            "full mode: downloads the Oxford-IIIT Pet photos once (about 800 MB), then fine-tunes a pretrained "
            "ResNet-34 for a few minutes on a GPU (much longer on a CPU)")
    if not train_if_missing:
        raise FileNotFoundError(f"No saved model at {path}. Run lesson 6, or make one with a single call, "
                                f"{call}: {cost}.")
    print(f"No saved model at {path} (lesson 6 saves one there).\nTraining one now with {call}: {cost}.")
    return train_pets_model(task, quick, device=device)
