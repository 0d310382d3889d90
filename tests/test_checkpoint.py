import pickle

import pytest
import torch

from course_utils.checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from course_utils.models import build_resnet


def test_round_trip_restores_weights_and_metadata(tmp_path):
    torch.manual_seed(0)
    model, _ = build_resnet("resnet18", pretrained=False, num_classes=3)
    model.eval()
    meta = Checkpoint("resnet18", ["cat", "dog", "fox"], 160, [0.5, 0.5, 0.5], [0.25, 0.25, 0.25],
                      {"epoch": 2, "valid_accuracy": 0.75})
    path = save_checkpoint(tmp_path / "models" / "pets.pt", model, meta)
    assert [p.name for p in path.parent.iterdir()] == ["pets.pt"]  # no temporary file left
    loaded, loaded_meta = load_checkpoint(path)
    assert loaded_meta == meta and not loaded.training
    x = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), model(x))


def test_missing_and_unsafe_files_give_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="lesson 6"):
        load_checkpoint(tmp_path / "nope.pt")

    class Evil:  # an arbitrary object: weights_only=True must refuse to unpickle it
        def __reduce__(self):
            return (print, ("this would run on load",))

    evil = tmp_path / "evil.pt"
    torch.save({"format": "course-checkpoint/1", "x": Evil()}, evil)
    with pytest.raises(ValueError, match="safely"):
        load_checkpoint(evil)
    plain = tmp_path / "plain.pt"
    torch.save({"weights": torch.zeros(2)}, plain)
    with pytest.raises(ValueError, match="not a course-checkpoint/1 file"):
        load_checkpoint(plain)
    junk = tmp_path / "junk.pt"
    junk.write_bytes(pickle.dumps("hello")[:3])
    with pytest.raises(ValueError, match="safely"):
        load_checkpoint(junk)


def test_interrupted_save_keeps_the_old_checkpoint(tmp_path, monkeypatch):
    model, _ = build_resnet("resnet18", pretrained=False, num_classes=2)
    meta = Checkpoint("resnet18", ["cat", "dog"], 224)
    path = save_checkpoint(tmp_path / "m.pt", model, meta)
    before = path.read_bytes()

    def broken_save(obj, f):
        f.write(b"half")
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(path, model, meta)
    assert path.read_bytes() == before and [p.name for p in tmp_path.iterdir()] == ["m.pt"]
