"""Predicting with a saved model: the Predictor, batch prediction over a folder, finding a checkpoint.

Models here are small random ResNets saved by the test itself; what is checked is the plumbing
(same numbers as the model, same preprocessing as validation, bad files reported, order kept).
"""

import io
import warnings

import numpy as np
import pytest
import torch
from PIL import Image

from course_utils import export, images, inference, pets, recipes, transforms
from course_utils.checkpoint import Checkpoint, save_checkpoint
from course_utils.images import BadImageError
from course_utils.inference import Prediction, Predictor
from course_utils.models import build_resnet

NAMES = ["cat", "dog", "fox"]
SIZE = 32


def random_model(seed: int = 0, classes: int = 3) -> torch.nn.Module:
    torch.manual_seed(seed)
    model, _ = build_resnet("resnet18", pretrained=False, num_classes=classes)
    with torch.no_grad():  # non-trivial BatchNorm statistics, so eval and train mode really differ
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.uniform_(-0.2, 0.2)
                module.running_var.uniform_(0.5, 2.0)
    return model.eval()


@pytest.fixture(scope="module")
def model() -> torch.nn.Module:
    return random_model()


@pytest.fixture
def meta() -> Checkpoint:
    mean, std = transforms.norm_stats(pretrained=True)
    return Checkpoint("resnet18", NAMES, SIZE, mean, std, {"epoch": 1})


@pytest.fixture
def predictor(model, meta, tmp_path) -> Predictor:
    return Predictor.from_checkpoint(save_checkpoint(tmp_path / "m.pt", model, meta))


def noise_photo(seed: int, size=(50, 40)) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8))


def test_checkpoint_round_trip_gives_the_models_own_probabilities(model, meta, tmp_path):
    path = save_checkpoint(tmp_path / "models" / "pets.pt", model, meta)
    predictor = Predictor.from_checkpoint(path)
    assert predictor.class_names == NAMES and predictor.meta == meta and not predictor.model.training
    photos = [noise_photo(i) for i in range(4)]
    batch = torch.stack([transforms.valid_transform(SIZE, meta.mean, meta.std)(p) for p in photos])
    with torch.no_grad():
        expected = torch.softmax(model(batch), dim=1)
    torch.testing.assert_close(predictor.probabilities(batch), expected)
    for photo, row in zip(photos, expected):
        label, probability, probs = predictor.predict(photo)
        torch.testing.assert_close(probs, row)
        assert label == NAMES[int(row.argmax())] and probability == pytest.approx(float(row.max()))


def test_predict_structure_and_every_kind_of_source(predictor, tmp_path):
    photo = noise_photo(1)
    path = tmp_path / "photo.png"
    photo.save(path)
    answers = [predictor.predict(path), predictor.predict(str(path)), predictor.predict(path.read_bytes()),
               predictor.predict(photo)]
    for answer in answers:
        assert isinstance(answer, Prediction)
        label, probability, probs = answer
        assert probs.shape == (len(NAMES),) and probs.dtype == torch.float32 and probs.device.type == "cpu"
        assert float(probs.sum()) == pytest.approx(1.0, abs=1e-5) and bool((probs >= 0).all())
        assert label == NAMES[int(probs.argmax())] and probability == pytest.approx(float(probs.max()))
        torch.testing.assert_close(probs, answers[0].probabilities)
    probs = answers[0].probabilities
    probs.add_(0)  # an ordinary tensor, usable outside inference mode (an inference tensor would refuse this)


def test_preprocessing_is_the_validation_transform(predictor, meta, tmp_path):
    photo = noise_photo(2, size=(70, 45))
    path = tmp_path / "p.jpg"
    photo.save(path, quality=95)
    expected = transforms.valid_transform(SIZE, meta.mean, meta.std)(Image.open(path).convert("RGB"))
    assert torch.equal(predictor.preprocess(path), expected)
    assert predictor.preprocess(path).shape == (3, SIZE, SIZE)
    # no normalisation stored -> none applied: values stay in 0..1
    plain = Predictor(random_model(), Checkpoint("resnet18", NAMES, SIZE))
    x = plain.preprocess(path)
    assert torch.equal(x, transforms.valid_transform(SIZE, None, None)(Image.open(path).convert("RGB")))
    assert 0 <= float(x.min()) and float(x.max()) <= 1


def test_preprocessing_matches_the_real_validation_set():
    """The tensor the validation loader gives for a file is exactly what the predictor makes of it."""
    train_ds, valid_ds, names = pets.pets_datasets("breeds", image_size=SIZE, quick=True)
    root = pets.pets_root(quick=True)
    ids = pets.split_ids(root, "trainval")
    mean, std = transforms.norm_stats(True)
    predictor = Predictor(random_model(classes=len(names)), Checkpoint("resnet18", names, SIZE, mean, std))
    for i in (0, len(valid_ds) - 1):
        image, label = valid_ds[i]
        path = root / "oxford-iiit-pet" / "images" / f"{ids[valid_ds.indices[i]]}.jpg"
        assert torch.equal(predictor.preprocess(path), image)


def test_rgba_pil_image_is_composited_on_white(predictor):
    clear = Image.new("RGBA", (40, 40), (0, 0, 0, 0))
    white = Image.new("RGB", (40, 40), (255, 255, 255))
    assert torch.equal(predictor.preprocess(clear), predictor.preprocess(white))


def make_folder(folder):
    """Good photos and bad files, interleaved, with names that sort in this order."""
    folder.mkdir()
    good = {}
    for i, name in enumerate(["a_good.png", "c_good.jpg", "e_good.bmp", "g_good.webp"]):
        good[name] = noise_photo(10 + i)
        good[name].save(folder / name)
    (folder / "b_empty.jpg").write_bytes(b"")
    buffer = io.BytesIO()
    noise_photo(20, (200, 200)).save(buffer, format="JPEG", quality=95)
    (folder / "d_truncated.jpg").write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 2])
    (folder / "f_notes.jpg").write_text("shopping list: milk, eggs")
    return good


@pytest.mark.parametrize("batch_size", [1, 2, 3, 32])
def test_batch_with_bad_files_reports_them_and_predicts_the_rest_in_order(predictor, tmp_path, batch_size):
    make_folder(tmp_path / "photos")
    results = inference.predict_folder(predictor, tmp_path / "photos", batch_size=batch_size, quiet=True)
    names = [row.path.name for row in results.rows]
    assert names == ["a_good.png", "b_empty.jpg", "c_good.jpg", "d_truncated.jpg", "e_good.bmp",
                     "f_notes.jpg", "g_good.webp"]
    problems = {row.path.name: row.problem for row in results.bad}
    assert set(problems) == {"b_empty.jpg", "d_truncated.jpg", "f_notes.jpg"}
    assert "empty" in problems["b_empty.jpg"] and "truncated" in problems["d_truncated.jpg"]
    assert "not an image" in problems["f_notes.jpg"]
    assert all(row.label is None and row.probabilities is None for row in results.bad)
    assert len(results.predicted) == 4 and len(results) == 7
    for row in results.predicted:  # the same answer as predicting the file on its own
        alone = predictor.predict(row.path)
        assert row.label == alone.label
        torch.testing.assert_close(row.probabilities, alone.probabilities, atol=1e-5, rtol=1e-4)
    table = results.table()
    assert len(table.splitlines()) == 8 and all(name in table for name in names)
    assert "could not be read" in results._repr_html_() and "3 could not be read" in results._repr_html_()


def test_a_batch_of_only_bad_files(predictor, tmp_path):
    (tmp_path / "x.jpg").write_bytes(b"")
    (tmp_path / "y.jpg").write_text("no")
    results = inference.predict_files(predictor, [tmp_path / "x.jpg", tmp_path / "y.jpg"], quiet=True)
    assert len(results.bad) == 2 and results.predicted == []


def test_top_k_chart(predictor):
    probs = torch.tensor([0.1, 0.7, 0.2])
    ax = inference.plot_top_k(probs, NAMES, k=2)
    assert [t.get_text() for t in ax.get_yticklabels()] == ["fox", "dog"]  # most likely on top
    assert [round(b.get_width(), 6) for b in ax.patches] == [20.0, 70.0]
    assert ax.get_xlabel() == "probability (%)" and ax.get_title() == "Top 2 of 3 classes"
    fig = predictor.show(noise_photo(3), k=3, title="a test photo")
    assert len(fig.axes) == 2 and fig._suptitle.get_text() == "a test photo"


def test_pillows_own_bomb_limit_gives_bad_image_error_without_a_warning(tmp_path):
    path = tmp_path / "bomb.png"
    Image.new("1", (14000, 14000)).save(path)  # 196 megapixels, but a tiny file
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # Pillow's DecompressionBombWarning must not leak out
        with pytest.raises(BadImageError, match="bomb.png: far too many pixels"):
            images.load_image(path)
        Image.new("1", (11000, 11000)).save(tmp_path / "big.png")  # over our limit and Pillow's warning
        with pytest.raises(BadImageError, match="11000 x 11000 pixels is more than"):
            images.load_image(tmp_path / "big.png")


def test_export_leaves_the_callers_model_alone(tmp_path):
    model = random_model().train()
    export.export_torchscript(model, tmp_path / "m.ts", SIZE)
    export.export_onnx(model, tmp_path / "m.onnx", SIZE)
    assert model.training  # the export worked on a copy (and on a GPU the model would stay there)
    x = torch.rand(2, 3, SIZE, SIZE)
    with torch.no_grad():
        expected = model.eval()(x)
    loaded = export.load_torchscript(tmp_path / "m.ts")
    assert export.max_difference(loaded(x), expected) < 1e-4


def test_find_or_train_checkpoint_uses_the_saved_one(model, meta, monkeypatch, capsys):
    path = save_checkpoint(recipes.checkpoint_path("breeds", quick=True), model, meta)
    monkeypatch.setattr(recipes, "train_pets_model", lambda *a, **k: pytest.fail("must not train"))
    assert recipes.find_or_train_checkpoint("breeds", quick=True) == path
    assert "Found the saved model" in capsys.readouterr().out


def test_find_or_train_checkpoint_when_missing(model, meta, monkeypatch, capsys):
    with pytest.raises(FileNotFoundError, match=r"train_pets_model\('breeds'\)"):
        recipes.find_or_train_checkpoint("breeds", quick=True, train_if_missing=False)
    calls = []

    def fake_training(task, quick, device=None):  # the real recipe is tested in test_pets_model.py
        calls.append((task, quick))
        return save_checkpoint(recipes.checkpoint_path(task, quick), model, meta)

    monkeypatch.setattr(recipes, "train_pets_model", fake_training)
    path = recipes.find_or_train_checkpoint("breeds", quick=True)
    assert calls == [("breeds", True)] and path.is_file()
    out = capsys.readouterr().out
    assert "No saved model" in out and "about 10 seconds" in out
    with pytest.raises(FileNotFoundError, match="800 MB"):
        recipes.find_or_train_checkpoint("binary", quick=False, train_if_missing=False)
