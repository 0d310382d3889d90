"""The one-call recipe lesson 7 falls back on: quick mode, offline, on the CPU."""

import torch

from course_utils import recipes, transforms
from course_utils.checkpoint import load_checkpoint
from course_utils.optim import layer_groups


def test_train_pets_model_saves_a_loadable_useful_checkpoint():
    torch.manual_seed(0)
    path = recipes.train_pets_model("breeds", quick=True, device="cpu")
    assert path == recipes.checkpoint_path("breeds", quick=True) and path.name == "pets_breeds_quick.pt"
    model, meta = load_checkpoint(path)
    assert meta.class_names == ["Beagle", "Bengal", "Pug", "Russian Blue", "Samoyed", "Siamese"]
    assert meta.image_size == transforms.QUICK_IMAGE_SIZE and meta.mean == list(transforms.IMAGENET_MEAN)
    assert meta.info["quick"] is True and meta.info["pretrained"] is False
    assert meta.info["valid_error_rate"] < 0.5  # chance is 5/6: it learned the cartoons
    assert len(layer_groups(model)) == 3


def test_quick_and_full_checkpoints_never_share_a_file():
    assert recipes.checkpoint_path("binary", quick=True) != recipes.checkpoint_path("binary", quick=False)
