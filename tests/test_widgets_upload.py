"""The upload classifier without a browser: both ipywidgets value formats, bad uploads, no front end."""

import datetime as dt
import io

import cv2
import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch
from PIL import Image

from course_utils import transforms, widgets
from course_utils.checkpoint import Checkpoint
from course_utils.env import samples_dir
from course_utils.inference import Predictor
from course_utils.models import build_resnet

NAMES = ["cat", "dog", "fox"]


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


def value_v7(name: str, data: bytes) -> dict:
    """What ipywidgets 7 (e.g. on Colab) puts in FileUpload.value."""
    return {name: {"metadata": {"name": name, "type": "image/png", "size": len(data), "lastModified": 1700000000000},
                   "content": data}}


def value_v8(name: str, data: bytes) -> tuple:
    """What ipywidgets 8 puts in FileUpload.value: a tuple of dicts, content as a memoryview."""
    return ({"name": name, "type": "image/png", "size": len(data), "content": memoryview(data),
             "last_modified": dt.datetime(2024, 1, 1, tzinfo=dt.timezone.utc)},)


def decode(png: bytes) -> np.ndarray:
    picture = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR)
    assert picture is not None, "the Image widget does not hold a PNG"
    return picture


def test_uploaded_files_reads_both_formats():
    data = png_bytes()
    assert widgets.uploaded_files(value_v7("a.png", data)) == [("a.png", data)]
    files = widgets.uploaded_files(value_v8("a.png", data))
    assert files == [("a.png", data)] and isinstance(files[0][1], bytes)
    assert widgets.uploaded_files(()) == [] and widgets.uploaded_files({}) == []


@pytest.mark.parametrize("make_value", [value_v7, value_v8], ids=["ipywidgets7", "ipywidgets8"])
def test_an_uploaded_photo_is_classified_and_shown(predictor, make_value):
    classifier = widgets.build_upload_classifier(predictor, k=3)
    assert classifier.upload.accept == "image/*" and not classifier.upload.multiple
    data = png_bytes()
    classifier.classify(make_value("my cat.png", data))
    label, probability, _ = predictor.predict(data)
    assert "my cat.png" in classifier.message.value and label in classifier.message.value
    assert f"{probability:.1%}" in classifier.message.value
    picture = decode(classifier.picture.value)
    assert picture.shape[1] > picture.shape[0]  # photo and chart side by side


def test_setting_the_widgets_value_runs_the_classifier(predictor):
    """The real observer path, as when the browser sends an upload (ipywidgets 8 is installed here)."""
    classifier = widgets.build_upload_classifier(predictor)
    classifier.upload.value = value_v8("photo.png", png_bytes((20, 200, 30)))
    assert "photo.png" in classifier.message.value and classifier.picture.value
    before = (classifier.message.value, classifier.picture.value)
    classifier.upload.value = ()  # cleared: nothing changes
    assert (classifier.message.value, classifier.picture.value) == before


@pytest.mark.parametrize("make_value", [value_v7, value_v8], ids=["ipywidgets7", "ipywidgets8"])
@pytest.mark.parametrize("name, data, reason", [
    ("notes.jpg", b"this is a shopping list, not a photo", "not an image"),
    ("empty.png", b"", "empty"),
    ("half.png", png_bytes(size=(300, 300))[:200], "truncated"),
])
def test_a_bad_upload_gives_a_clear_message_not_a_traceback(predictor, make_value, name, data, reason):
    classifier = widgets.build_upload_classifier(predictor)
    classifier.classify(make_value("good.png", png_bytes()))
    assert classifier.picture.value  # a previous good photo is on show
    classifier.classify(make_value(name, data))  # must not raise
    assert classifier.message.value.startswith(f"Could not use <b>{name}</b>")
    assert reason in classifier.message.value and widgets.UPLOAD_HINT in classifier.message.value
    assert classifier.picture.value == b""  # the old answer is not left next to the new file's name


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
    assert classifier.upload in classifier.ui.children
