"""Predicting with a saved model: the Predictor, batch prediction over a folder, finding a checkpoint.

Models here are small random ResNets saved by the test itself; what is checked is the plumbing
(same numbers as the model, same preprocessing as validation, bad files reported, order kept).
"""

import io
import warnings
import zipfile

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


def test_a_rotated_photo_is_seen_upright_whichever_way_it_is_given(predictor, tmp_path):
    """A path, its bytes, the picture load_image gave, and what show() draws: the same upright photo."""
    sideways = noise_photo(5, size=(60, 40))
    exif = Image.Exif()
    exif[images.ORIENTATION] = 6
    path = tmp_path / "phone.jpg"
    sideways.save(path, exif=exif.tobytes(), quality=95)
    expected = predictor.preprocess(path)
    loaded = images.load_image(path)
    assert loaded.size == (40, 60)
    for source in (path.read_bytes(), loaded, images.load_image(path.read_bytes())):
        assert torch.equal(predictor.preprocess(source), expected)  # not turned a second time
    fig = predictor.show(loaded, k=3)
    assert fig.axes[0].get_title() == "40 x 60 pixels"
    torch.testing.assert_close(predictor.predict(loaded).probabilities, predictor.predict(path).probabilities)


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


def make_messy_folder(folder):
    """Photos mixed with every kind of thing that is not one, sorted in this order."""
    folder.mkdir()
    noise_photo(30).save(folder / "a_good.png")
    (folder / "b_holiday.jpg").mkdir()                        # a folder whose name ends in .jpg
    (folder / "c_report.pdf").write_bytes(b"%PDF-1.7\n1 0 obj\n<<>>\nendobj\n")
    (folder / "d_logo.svg").write_text('<svg xmlns="http://www.w3.org/2000/svg"><rect width="4"/></svg>')
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("cat.jpg", b"x")
    (folder / "e_photos.zip").write_bytes(buffer.getvalue())
    (folder / "f_clip.mov").write_bytes(b"\x00\x00\x00\x14ftypqt  \x00\x00\x02\x00qt  \x00\x00\x00\x08mdat")
    Image.new("RGB", (100_000, 1), (200, 90, 40)).save(folder / "g_banner.png")  # a few hundred bytes
    noise_photo(31, (90, 60)).save(folder / "h_good.jpg", quality=95)
    (folder / "i_cats").mkdir()                                # photos in a sub-folder are not looked into


def test_a_messy_folder_reports_every_non_image_and_classifies_the_rest(predictor, tmp_path):
    make_messy_folder(tmp_path / "mess")
    results = inference.predict_folder(predictor, tmp_path / "mess", batch_size=4, quiet=True)
    names = [row.path.name for row in results.rows]
    assert names == ["a_good.png", "b_holiday.jpg", "c_report.pdf", "d_logo.svg", "e_photos.zip", "f_clip.mov",
                     "g_banner.png", "h_good.jpg", "i_cats"]
    problems = {row.path.name: row.problem for row in results.bad}
    assert set(problems) == {"b_holiday.jpg", "c_report.pdf", "d_logo.svg", "e_photos.zip", "f_clip.mov", "i_cats"}
    for name, words in [("b_holiday.jpg", "a folder"), ("i_cats", "a folder"), ("c_report.pdf", "PDF"),
                        ("d_logo.svg", "SVG"), ("e_photos.zip", "ZIP"), ("f_clip.mov", "video")]:
        assert words in problems[name]
    assert [row.path.name for row in results.predicted] == ["a_good.png", "g_banner.png", "h_good.jpg"]
    banner = predictor.predict(tmp_path / "mess" / "g_banner.png")
    assert results.predicted[1].label == banner.label


def test_extreme_shapes_are_prepared_within_bounds(predictor, tmp_path):
    for size in [(100_000, 1), (1, 100_000), (40_000, 3)]:
        path = tmp_path / f"strip_{size[0]}x{size[1]}.png"
        Image.new("RGB", size, (10, 200, 90)).save(path)
        picture = images.load_image(path)
        assert max(picture.size) <= 4 * min(picture.size)  # checked first: the old code would blow up below
        assert predictor.preprocess(path).shape == (3, SIZE, SIZE)
        assert predictor.preprocess(Image.open(path)).shape == (3, SIZE, SIZE)  # a PIL image given directly


@pytest.mark.parametrize("size", [(1234, 97), (97, 1234), (5000, 300)])
def test_cutting_a_panorama_to_4_to_1_hardly_changes_what_the_model_sees(predictor, meta, size):
    panorama = noise_photo(40, size)  # noise: the hardest case for resampling
    whole = transforms.valid_transform(SIZE, meta.mean, meta.std)(panorama)  # the old way: resize all of it
    cut = predictor.preprocess(panorama)
    difference = (cut - whole).abs()
    assert float(difference.mean()) < 0.02 and float(difference.max()) < 0.1  # normalised units (1 = about 57 levels)


def test_the_figure_says_when_a_picture_is_the_middle_of_a_longer_one(predictor, tmp_path):
    path = tmp_path / "banner.png"
    Image.new("RGB", (3000, 100), (200, 90, 40)).save(path)
    fig = predictor.show(path, k=3)
    assert fig.axes[0].get_title() == "400 x 100 pixels, the middle of 3000 x 100"


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
    assert "No saved model" in out and "from scratch" in out
    with pytest.raises(FileNotFoundError, match="800 MB"):
        recipes.find_or_train_checkpoint("binary", quick=False, train_if_missing=False)
