"""Lesson 6's recipe: one object for every setting, and the one-call training lesson 7 falls back on (quick mode)."""

import dataclasses
import math

import pytest
import torch
import torchvision
from torchvision.transforms import v2

from course_utils import recipes, transforms
from course_utils.checkpoint import load_checkpoint
from course_utils.optim import layer_groups


def test_train_pets_model_saves_a_loadable_useful_checkpoint():
    torch.manual_seed(0)
    path = recipes.train_pets_model("breeds", quick=True, device="cpu")
    assert path == recipes.checkpoint_path("breeds", quick=True) and path.name == "pets_breeds_quick.pt"
    model, meta = load_checkpoint(path)
    assert meta.class_names == ["Beagle", "Bengal", "Pug", "Russian Blue", "Samoyed", "Siamese"]
    assert meta.arch == recipes.QUICK_RECIPE.arch and meta.image_size == recipes.QUICK_RECIPE.image_size
    assert meta.mean == list(transforms.IMAGENET_MEAN)
    assert meta.info["quick"] is True and meta.info["pretrained"] is False
    assert meta.info["epochs"] == recipes.QUICK_RECIPE.epochs
    assert meta.info["valid_error_rate"] < 0.5  # chance is 5/6: it learned the cartoons
    assert len(layer_groups(model)) == 3


def test_quick_and_full_checkpoints_never_share_a_file():
    assert recipes.checkpoint_path("binary", quick=True) != recipes.checkpoint_path("binary", quick=False)


def test_the_recipe_is_one_frozen_object_per_mode(monkeypatch):
    assert recipes.pets_recipe(quick=True) is recipes.QUICK_RECIPE
    assert recipes.pets_recipe(quick=False) is recipes.FULL_RECIPE
    monkeypatch.setenv("COURSE_QUICK", "1")
    assert recipes.pets_recipe() is recipes.QUICK_RECIPE
    with pytest.raises(dataclasses.FrozenInstanceError):
        recipes.FULL_RECIPE.epochs = 99  # type: ignore[misc]


def test_the_full_recipe_is_the_one_lesson_6_argues_for():
    full = recipes.FULL_RECIPE
    assert (full.arch, full.pretrained, full.image_size, full.batch_size) == ("resnet152", True, 224, 64)
    assert (full.freeze_epochs, full.epochs, full.lr) == (1, 5, 2e-3)
    weights = torchvision.models.get_model_weights(full.arch).DEFAULT  # what build_resnet loads
    assert weights.name == "IMAGENET1K_V2" and weights.transforms().crop_size == [full.image_size]
    quick = recipes.QUICK_RECIPE
    assert (quick.arch, quick.pretrained, quick.image_size, quick.freeze_epochs) == ("resnet18", False, 64, 0)


def test_both_recipes_crop_as_the_loaders_do():
    """pets_datasets augments with train_transform's default crop: the recipes must say the same."""
    for recipe in (recipes.FULL_RECIPE, recipes.QUICK_RECIPE):
        crop = next(t for t in transforms.train_transform(recipe.image_size).transforms
                    if isinstance(t, v2.RandomResizedCrop))
        assert tuple(crop.scale) == recipe.crop_scale == transforms.CROP_SCALE


def test_a_recipe_with_another_crop_is_refused(monkeypatch):
    monkeypatch.setattr(recipes, "QUICK_RECIPE", dataclasses.replace(recipes.QUICK_RECIPE, crop_scale=(0.08, 1.0)))
    with pytest.raises(ValueError, match="CROP_SCALE"):
        recipes.train_pets_model("breeds", quick=True, device="cpu")


def test_the_crop_shows_a_pet_about_as_big_as_validation_does():
    """transforms.CROP_SCALE's reason: on a 256 x 341 copy, a random crop magnifies the photo about as much as
    validation's resize-and-centre-crop (which keeps the 256 pixels' scale), on average."""
    torch.manual_seed(0)
    photo = torch.zeros(3, 256, 341)
    zooms = []
    for _ in range(4000):
        _, _, h, w = v2.RandomResizedCrop.get_params(photo, scale=list(transforms.CROP_SCALE), ratio=[3 / 4, 4 / 3])
        zooms.append(math.sqrt(224 / w * 224 / h))
    validation_zoom = round(224 / 0.875) / 256  # valid_transform resizes the short side to 256 (here: 1x), then crops
    assert abs(sum(zooms) / len(zooms) - validation_zoom) < 0.05
