"""The upload classifier without a browser: both ipywidgets formats, uploads that arrive empty,
a typed path, Colab's own file picker (a stand-in ``google.colab`` module), bad files, no front end.

The browser side is played by setting the widget's traits the way each ipywidgets version's
front end does. With ipywidgets 8 installed, ipywidgets 7 (Colab's) is played by ``FileUpload7``
below, which does what ipywidgets 7.7's FileUpload does in Python; with ipywidgets 7 installed
the same tests drive the real one.
"""

import datetime as dt
import io
import os
import sys
import types

import cv2
import ipywidgets
import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch
import traitlets
from PIL import Image

from course_utils import transforms, widgets
from course_utils.checkpoint import Checkpoint
from course_utils.env import samples_dir
from course_utils.images import BadImageError
from course_utils.inference import FolderResults, Predictor
from course_utils.models import build_resnet

NAMES = ["cat", "dog", "fox"]
IPYWIDGETS_7 = ipywidgets.__version__.startswith("7.")


@pytest.fixture(scope="module")
def predictor() -> Predictor:
    torch.manual_seed(0)
    model, _ = build_resnet("resnet18", pretrained=False, num_classes=len(NAMES))
    mean, std = transforms.norm_stats(True)
    return Predictor(model, Checkpoint("resnet18", NAMES, 32, mean, std))


def png_bytes(colour=(200, 40, 40), size=(60, 40)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, colour).save(buffer, format="PNG")
    return buffer.getvalue()


def value_v7(name: str, data: bytes, size: int | None = None) -> dict:
    """What ipywidgets 7 (e.g. on Colab) puts in FileUpload.value."""
    size = len(data) if size is None else size
    return {name: {"metadata": {"name": name, "type": "image/png", "size": size, "lastModified": 1700000000000},
                   "content": data}}


def value_v8(name: str, data: bytes, size: int | None = None) -> tuple:
    """What ipywidgets 8 puts in FileUpload.value: a tuple of dicts, content as a memoryview."""
    size = len(data) if size is None else size
    return ({"name": name, "type": "image/png", "size": size, "content": memoryview(data),
             "last_modified": dt.datetime(2024, 1, 1, tzinfo=dt.UTC)},)


def decode(png: bytes) -> np.ndarray:
    picture = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR)
    assert picture is not None, "the Image widget does not hold a PNG"
    return picture


class FileUpload7(ipywidgets.DOMWidget):
    """ipywidgets 7.7's FileUpload, as far as Python sees it: the browser sends ``metadata``, ``data``
    and a ``_counter`` one higher; the counter going up is what fills ``value``."""

    _counter = traitlets.Int().tag(sync=True)
    accept = traitlets.Unicode().tag(sync=True)
    multiple = traitlets.Bool().tag(sync=True)
    description = traitlets.Unicode().tag(sync=True)
    metadata = traitlets.List(traitlets.Dict()).tag(sync=True)
    data = traitlets.List(traitlets.Bytes()).tag(sync=True)
    value = traitlets.Dict(read_only=True)

    @traitlets.observe("_counter")
    def _fill_value(self, change):
        files = {m["name"]: {"metadata": m, "content": c} for m, c in zip(self.metadata, self.data)}
        self.set_trait("value", files)


@pytest.fixture
def ipywidgets7(monkeypatch):
    """Make ``build_upload_classifier`` use ipywidgets 7's FileUpload (the real one when installed)."""
    if not IPYWIDGETS_7:
        monkeypatch.setattr(widgets.widgets, "FileUpload", FileUpload7)


def browser_sends(upload, files: list[tuple[str, bytes, int]]) -> None:
    """What the front end does after a selection of ``(name, bytes that arrive, size announced)``."""
    if "_counter" in upload.trait_names():  # ipywidgets 7: one message with all three
        upload.metadata = [{"name": n, "type": "image/png", "size": s, "lastModified": 0} for n, _, s in files]
        upload.data = [d for _, d, _ in files]
        upload._counter += 1
    else:
        upload.value = tuple(value_v8(n, d, s)[0] for n, d, s in files)


class MessageError(RuntimeError):
    """What google.colab raises when the picker's JavaScript cannot run (e.g. third-party cookies blocked)."""


@pytest.fixture
def colab(monkeypatch, tmp_path):
    """A stand-in ``google.colab`` whose ``files.upload`` 'chooses' ``colab.chosen`` and saves them as Colab does.

    ``colab.target_dir = False`` plays a google.colab from before 2023, whose ``upload()`` takes no
    argument; ``colab.fails`` makes the picker fail to start.
    """
    state = types.SimpleNamespace(chosen={}, calls=[], target_dir=True, fails=False)

    def save_chosen(folder: str) -> dict:
        state.calls.append(folder)
        if state.fails:
            raise MessageError("TypeError: Cannot read properties of undefined (reading '_uploadFiles')")
        saved = {}
        for name, data in state.chosen.items():
            path = f"{folder}/{name}" if folder else name
            if os.path.lexists(path):  # as Colab does: never overwrite, add " (1)"
                path = "{} (1){}".format(*os.path.splitext(path))
            with open(path, "wb") as f:
                f.write(data)
            saved[path] = data
        return saved

    def upload(target_dir=""):  # google.colab's signature since 2023
        return save_chosen(target_dir)

    def old_upload():
        return save_chosen("")

    class Files:
        @property
        def upload(self):
            return upload if state.target_dir else old_upload

    module = types.ModuleType("google.colab")
    module.files = Files()
    if "google" not in sys.modules:
        monkeypatch.setitem(sys.modules, "google", types.ModuleType("google"))
    monkeypatch.setitem(sys.modules, "google.colab", module)
    monkeypatch.setattr(sys.modules["google"], "colab", module, raising=False)
    return state


# --- The upload button -------------------------------------------------------------------------------

def test_uploaded_files_reads_both_formats():
    data = png_bytes()
    assert widgets.uploaded_files(value_v7("a.png", data)) == [("a.png", data)]
    files = widgets.uploaded_files(value_v8("a.png", data))
    assert files == [("a.png", data)] and isinstance(files[0][1], bytes)
    assert widgets.uploaded_files(()) == [] and widgets.uploaded_files({}) == []
    assert widgets.announced_sizes(value_v7("a.png", b"", 5)) == widgets.announced_sizes(value_v8("a.png", b"", 5))


@pytest.mark.parametrize("make_value", [value_v7, value_v8], ids=["ipywidgets7", "ipywidgets8"])
def test_an_uploaded_photo_is_classified_and_shown(predictor, make_value):
    classifier = widgets.build_upload_classifier(predictor, k=3)
    assert classifier.upload.accept == widgets.UPLOAD_ACCEPT and not classifier.upload.multiple
    assert ".heic" in widgets.UPLOAD_ACCEPT
    data = png_bytes()
    classifier.classify(make_value("my cat.png", data))
    label, probability, _ = predictor.predict(data)
    assert "my cat.png" in classifier.message.value and label in classifier.message.value
    assert f"{probability:.1%}" in classifier.message.value
    picture = decode(classifier.picture.value)
    assert picture.shape[1] > picture.shape[0]  # photo and chart side by side


def test_a_selection_from_the_browser_is_classified(predictor):
    """The real observer path of the installed ipywidgets, as when the browser sends an upload."""
    classifier = widgets.build_upload_classifier(predictor)
    browser_sends(classifier.upload, [("photo.png", png_bytes((20, 200, 30)), 200)])
    assert "photo.png" in classifier.message.value and classifier.picture.value


def test_an_ipywidgets_7_selection_is_classified(predictor, ipywidgets7):
    classifier = widgets.build_upload_classifier(predictor)
    assert "_counter" in classifier.upload.trait_names()
    browser_sends(classifier.upload, [("photo.png", png_bytes((20, 200, 30)), 200)])
    assert "photo.png" in classifier.message.value and classifier.picture.value
    classifier.message.value = ""
    browser_sends(classifier.upload, [("photo.png", png_bytes((20, 200, 30)), 200)])  # the same photo again
    assert "photo.png" in classifier.message.value  # value did not change, but the counter went up: answered again


def test_an_ipywidgets_7_selection_that_arrives_empty_says_why_and_what_to_do(predictor, ipywidgets7):
    """After a >1 MB photo on Colab the counter goes up, but nothing (or no bytes) reaches Python."""
    classifier = widgets.build_upload_classifier(predictor)
    browser_sends(classifier.upload, [("good.png", png_bytes(), 200)])
    assert classifier.picture.value
    browser_sends(classifier.upload, [])  # a selection, and no file in it
    assert classifier.message.value.startswith("A photo was chosen, but nothing of it reached Python")
    assert "Type its path in the box" in classifier.message.value and classifier.picture.value == b""
    browser_sends(classifier.upload, [("IMG_1234.HEIC", b"", 3_400_000)])  # announced, but no bytes
    message = classifier.message.value
    assert "IMG_1234.HEIC" in message and "0 of 3,400,000 bytes" in message and "about 1 MB" in message


def test_an_ipywidgets_8_upload_without_its_bytes_says_why(predictor):
    classifier = widgets.build_upload_classifier(predictor)
    classifier.classify(value_v8("IMG_1235.JPG", b"", 4_100_000))
    assert "0 of 4,100,000 bytes" in classifier.message.value and classifier.picture.value == b""


@pytest.mark.parametrize("make_value", [value_v7, value_v8], ids=["ipywidgets7", "ipywidgets8"])
@pytest.mark.parametrize("name, data, reason", [
    ("notes.jpg", b"this is a shopping list, not a photo", "not an image"),
    ("empty.png", b"", "empty"),
    ("half.png", png_bytes(size=(300, 300))[:200], "truncated"),
    ("report.jpg", b"%PDF-1.7\n1 0 obj\n", "PDF"),
    ("clip.jpg", b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom", "video"),
    ("logo.png", b'<svg xmlns="http://www.w3.org/2000/svg"><circle r="4"/></svg>', "SVG"),
    ("photos.zip", b"PK\x03\x04" + bytes(60), "ZIP archive"),
])
def test_a_bad_upload_gives_a_clear_message_not_a_traceback(predictor, make_value, name, data, reason):
    classifier = widgets.build_upload_classifier(predictor)
    classifier.classify(make_value("good.png", png_bytes()))
    assert classifier.picture.value  # a previous good photo is on show
    classifier.classify(make_value(name, data))  # must not raise
    assert classifier.message.value.startswith(f"Could not use <b>{name}</b>")
    assert reason in classifier.message.value and widgets.UPLOAD_HINT in classifier.message.value
    assert classifier.picture.value == b""  # the old answer is not left next to the new file's name


@pytest.mark.parametrize("size, shown", [((100_000, 1), (4, 1)), ((1, 40_000), (1, 4))], ids=["banner", "tower"])
def test_an_uploaded_banner_or_tower_is_classified_within_bounds(predictor, size, shown, monkeypatch):
    data = png_bytes(size=size)
    assert len(data) < 5_000
    seen = []
    real_load = widgets.load_image

    def bounded_load(*args, **kwargs):  # what the widget loads, checked before anything resizes it
        image = real_load(*args, **kwargs)
        seen.append(image.size)
        if max(image.size) > 4 * min(image.size):  # resizing it would take gigabytes: stop here
            raise BadImageError("banner.png", "not cut to 4:1")
        return image

    monkeypatch.setattr(widgets, "load_image", bounded_load)
    classifier = widgets.build_upload_classifier(predictor)
    classifier.classify(value_v8("banner.png", data))
    assert seen == [shown]  # the middle 4:1, never the 'short side to 256' blow-up
    assert classifier.message.value.startswith("<b>banner.png</b>:") and classifier.picture.value


@pytest.mark.parametrize("size, reason", [((8100, 8000), "8100 x 8000 pixels is more than the 64,000,000 allowed"),
                                          ((14_000, 14_000), "far too many pixels to decode safely")])
def test_an_uploaded_decompression_bomb_is_refused_before_it_is_decoded(predictor, size, reason):
    buffer = io.BytesIO()
    Image.new("1", size).save(buffer, format="PNG")  # tens of kilobytes that would decode to 65-196 Mpx
    classifier = widgets.build_upload_classifier(predictor)
    classifier.classify(value_v8("bomb.png", buffer.getvalue()))
    assert classifier.message.value.startswith("Could not use <b>bomb.png</b>") and reason in classifier.message.value
    assert classifier.picture.value == b""


def test_an_uploaded_phone_photo_is_seen_upright_by_the_model(predictor, monkeypatch):
    sideways = Image.fromarray(np.random.default_rng(3).integers(0, 256, (40, 60, 3), dtype=np.uint8))
    exif = Image.Exif()
    exif[0x0112] = 6  # "turn 90 degrees clockwise to show"
    buffer = io.BytesIO()
    sideways.save(buffer, format="JPEG", exif=exif.tobytes(), quality=95)
    data = buffer.getvalue()
    seen = []
    real_preprocess = Predictor.preprocess
    monkeypatch.setattr(predictor, "preprocess", lambda image: seen.append(real_preprocess(predictor, image))
                        or seen[-1])
    classifier = widgets.build_upload_classifier(predictor)
    classifier.classify(value_v7("IMG_3000.JPG", data))
    assert "IMG_3000.JPG" in classifier.message.value and seen
    assert torch.equal(seen[-1], real_preprocess(predictor, data))  # the model saw it upright, turned once


def test_an_uploaded_heic_photo_is_classified(predictor):
    pillow_heif = pytest.importorskip("pillow_heif")
    buffer = io.BytesIO()
    pillow_heif.from_pillow(Image.new("RGB", (64, 48), (200, 40, 40))).save(buffer, quality=90)
    classifier = widgets.build_upload_classifier(predictor)
    classifier.classify(value_v8("IMG_0001.HEIC", buffer.getvalue()))
    assert classifier.message.value.startswith("<b>IMG_0001.HEIC</b>:") and classifier.picture.value


# --- A typed path --------------------------------------------------------------------------------

def test_a_typed_path_is_classified(predictor, tmp_path, monkeypatch):
    (tmp_path / "photos").mkdir()
    (tmp_path / "photos" / "my cat.png").write_bytes(png_bytes((30, 30, 200)))
    (tmp_path / "notebooks").mkdir()
    monkeypatch.chdir(tmp_path / "notebooks")  # where a lesson runs
    classifier = widgets.build_upload_classifier(predictor)
    assert classifier.path_box in classifier.ui.children
    for typed in [str(tmp_path / "photos" / "my cat.png"),       # absolute
                  "../photos/my cat.png",                         # relative to the notebook
                  "photos/my cat.png",                            # JupyterLab's "Copy Path": from the folder above
                  f'  "{tmp_path / "photos" / "my cat.png"}"  ']:  # Windows' "Copy as path" adds quotes
        classifier.message.value, classifier.picture.value = "", b""
        classifier.path_box.value = typed  # as when Enter is pressed in the box
        assert classifier.message.value.startswith("<b>my cat.png</b>:"), typed
        assert decode(classifier.picture.value).shape[1] > 0


def test_a_typed_path_that_is_wrong_says_how_to_get_a_right_one(predictor, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "album.jpg").mkdir()
    (tmp_path / "notes.jpg").write_text("milk, eggs")
    classifier = widgets.build_upload_classifier(predictor)
    classifier.classify_path("no/such/photo.jpg")
    assert "Could not find <b>no/such/photo.jpg</b>" in classifier.message.value
    assert "Copy Path" in classifier.message.value
    classifier.classify_path("album.jpg")
    assert "a folder, not a photo" in classifier.message.value
    classifier.classify_path("notes.jpg")
    assert "a text file, not an image" in classifier.message.value
    before = classifier.message.value
    classifier.classify_path("   ")  # an emptied box: nothing happens
    assert classifier.message.value == before


def test_find_typed_path(tmp_path, monkeypatch):
    (tmp_path / "a" / "b").mkdir(parents=True)
    (tmp_path / "cat.jpg").write_bytes(b"x")
    assert widgets.find_typed_path("cat.jpg", start=tmp_path / "a" / "b") == tmp_path / "cat.jpg"
    assert widgets.find_typed_path(f"file://{tmp_path / 'cat.jpg'}") == tmp_path / "cat.jpg"
    monkeypatch.setenv("HOME", str(tmp_path))
    assert widgets.find_typed_path("~/cat.jpg") == tmp_path / "cat.jpg"
    assert widgets.find_typed_path("dog.jpg", start=tmp_path / "a") == tmp_path / "a" / "dog.jpg"  # none: as typed


# --- Colab ---------------------------------------------------------------------------------------

def test_on_colab_the_controls_say_how_to_send_a_big_photo(predictor, colab):
    note = widgets.build_upload_classifier(predictor).note.value
    assert "1 MB" in note and "classify_uploads(predictor)" in note and "Copy path" in note


def test_elsewhere_the_note_is_about_the_connection_limit(predictor):
    note = widgets.build_upload_classifier(predictor).note.value
    assert "10 MB" in note and "classify_uploads" not in note


def test_classify_uploads_on_colab_takes_photos_of_any_size(predictor, colab, tmp_path, monkeypatch):
    shown = []
    monkeypatch.setattr("IPython.display.display", lambda obj: shown.append(obj))
    big = io.BytesIO()
    Image.effect_noise((1200, 900), 60).convert("RGB").save(big, format="PNG")  # well over 1 MB
    assert len(big.getvalue()) > 1_000_000
    colab.chosen = {"IMG_2001.png": big.getvalue(), "notes.txt": b"not a photo"}
    results = widgets.classify_uploads(predictor, k=3, folder=tmp_path / "uploads")
    assert colab.calls == [str(tmp_path / "uploads")]
    assert isinstance(results, FolderResults) and len(results) == 2
    assert [row.path.name for row in results.predicted] == ["IMG_2001.png"]
    assert "not an image" in results.bad[0].problem
    assert len(shown) == 1 and isinstance(shown[0], plt.Figure)  # one figure per good photo
    assert (tmp_path / "uploads" / "IMG_2001.png").read_bytes() == big.getvalue()


def test_the_same_name_uploaded_twice_is_the_new_photo(predictor, colab, tmp_path, monkeypatch):
    monkeypatch.setattr("IPython.display.display", lambda obj: None)
    first, second = png_bytes((200, 40, 40)), png_bytes((40, 40, 200), size=(80, 50))
    colab.chosen = {"IMG_0001.png": first}
    widgets.classify_uploads(predictor, folder=tmp_path / "uploads")
    colab.chosen = {"IMG_0001.png": second}  # Colab saves it as "IMG_0001 (1).png" and says so
    results = widgets.classify_uploads(predictor, folder=tmp_path / "uploads")
    assert [row.path.name for row in results.rows] == ["IMG_0001 (1).png"]
    torch.testing.assert_close(results.rows[0].probabilities, predictor.predict(second).probabilities)


def test_classify_uploads_with_an_older_colab_and_when_cancelled(predictor, colab, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr("IPython.display.display", lambda obj: None)
    monkeypatch.chdir(tmp_path)
    colab.target_dir = False  # google.colab before files.upload(target_dir=...)
    colab.chosen = {"cat.png": png_bytes()}
    results = widgets.classify_uploads(predictor)
    assert colab.calls == [""] and (tmp_path / "cat.png").is_file() and len(results.predicted) == 1
    colab.chosen = {}  # "Cancel upload"
    assert widgets.classify_uploads(predictor) is None
    said = capsys.readouterr().out
    assert "No photo was chosen" in said and "Run this cell again" in said and "Files panel" in said


def test_when_colabs_picker_cannot_start_it_says_why_and_what_to_do(predictor, colab, tmp_path, capsys):
    colab.fails = True
    assert widgets.classify_uploads(predictor, folder=tmp_path / "uploads") is None  # no traceback
    said = capsys.readouterr().out
    assert "MessageError" in said and "third-party cookies" in said and "type its path" in said


def test_classify_uploads_elsewhere_returns_at_once(predictor, capsys):
    assert widgets.classify_uploads(predictor) is None
    assert "for Google Colab" in capsys.readouterr().out


# --- Without and with a Jupyter kernel -------------------------------------------------------------

def test_without_a_kernel_it_shows_the_static_example(predictor, capsys):
    assert widgets.upload_classifier(predictor, samples_dir() / "chelsea.png") is None
    assert "No Jupyter kernel here" in capsys.readouterr().out
    fig = plt.gcf()
    assert "chelsea.png" in fig._suptitle.get_text() and len(fig.axes) == 2


def test_inside_a_kernel_it_shows_the_example_then_the_controls(predictor, monkeypatch):
    shown = []
    monkeypatch.setattr(widgets, "in_jupyter_kernel", lambda: True)
    monkeypatch.setattr("IPython.display.display", lambda obj: shown.append(obj))
    classifier = widgets.upload_classifier(predictor, samples_dir() / "chelsea.png")
    assert isinstance(shown[0], plt.Figure) and shown[1] is classifier.ui
    assert classifier.upload in classifier.ui.children and classifier.path_box in classifier.ui.children
