"""The kernel explorer's logic, without a widget front end: preset -> numbers -> filtered picture."""

import cv2
import matplotlib.pyplot as plt
import numpy as np
import pytest

from course_utils import filters, widgets
from course_utils.env import samples_dir


@pytest.fixture
def grey() -> np.ndarray:
    photo = cv2.imread(str(samples_dir() / "chelsea.png"))
    return cv2.cvtColor(photo, cv2.COLOR_BGR2GRAY)[::4, ::4]  # small: the test draws many times


@pytest.fixture
def rendered(monkeypatch):
    """Record every (image, kernel) the explorer draws, while still drawing it."""
    calls = []
    real = widgets.render_png

    def spy(image, kernel, dpi=72):
        calls.append((np.array(image), np.array(kernel)))
        return real(image, kernel, dpi)

    monkeypatch.setattr(widgets, "render_png", spy)
    return calls


def decode(png: bytes) -> np.ndarray:
    picture = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR)
    assert picture is not None, "the Image widget does not hold a PNG"
    return picture


def test_explorer_starts_with_the_preset_and_its_picture(grey, rendered):
    explorer = widgets.build_kernel_explorer(grey, preset="sobel x")
    assert explorer.preset.value == "sobel x"
    assert explorer.preset.options[-1] == widgets.CUSTOM
    np.testing.assert_array_equal(widgets.read_kernel(explorer.boxes), filters.SOBEL_X)
    assert len(rendered) == 1  # filling in nine numbers drew once, not nine times
    np.testing.assert_array_equal(rendered[0][1], filters.SOBEL_X)
    assert decode(explorer.picture.value).shape[1] > decode(explorer.picture.value).shape[0]  # two panels
    assert "add up to 0" in explorer.note.value


def test_choosing_a_preset_fills_in_its_numbers_and_redraws(grey, rendered):
    explorer = widgets.build_kernel_explorer(grey, preset="identity")
    before = explorer.picture.value
    explorer.preset.value = "gaussian blur"
    np.testing.assert_allclose(widgets.read_kernel(explorer.boxes), filters.PRESETS["gaussian blur"])
    assert len(rendered) == 2 and explorer.picture.value != before
    image, kernel = rendered[-1]
    np.testing.assert_array_equal(image, grey)
    # what the picture shows is the photo filtered by exactly those numbers (checked against OpenCV)
    expected = cv2.GaussianBlur(grey.astype(float), (3, 3), 0, borderType=cv2.BORDER_CONSTANT)
    np.testing.assert_allclose(filters.filter_image(image, kernel), expected, atol=1e-9)
    assert "add up to 1" in explorer.note.value


def test_editing_a_number_switches_to_your_own_kernel(grey, rendered):
    explorer = widgets.build_kernel_explorer(grey, preset="sobel y")
    explorer.boxes[4].value = 2.0  # the centre weight: the weights now add up to 2
    assert explorer.preset.value == widgets.CUSTOM
    expected = filters.SOBEL_Y.copy()
    expected[1, 1] = 2.0
    np.testing.assert_array_equal(rendered[-1][1], expected)
    assert "neither 0 nor 1" in explorer.note.value
    # going back to a preset overwrites the edit and draws once more
    count = len(rendered)
    explorer.preset.value = "sobel y"
    np.testing.assert_array_equal(widgets.read_kernel(explorer.boxes), filters.SOBEL_Y)
    assert len(rendered) == count + 1


def test_custom_presets_and_bad_input(grey):
    ridge = {"ridge": np.array([[-1, 2, -1]] * 3)}
    explorer = widgets.build_kernel_explorer(grey, preset="ridge", presets=ridge)
    assert list(explorer.preset.options) == ["ridge", widgets.CUSTOM]
    with pytest.raises(KeyError, match="sobel x"):
        widgets.build_kernel_explorer(grey, preset="no such kernel")
    with pytest.raises(ValueError, match="3x3"):
        widgets.build_kernel_explorer(grey, preset="big", presets={"big": np.ones((5, 5))})
    with pytest.raises(ValueError, match="COLOR_BGR2GRAY"):
        widgets.build_kernel_explorer(np.zeros((10, 10, 3)))


def test_without_a_kernel_only_the_static_figure_is_drawn(grey, capsys):
    assert not widgets.in_jupyter_kernel()  # pytest is plain Python
    assert widgets.kernel_explorer(grey, preset="sharpen") is None
    assert "no controls" in capsys.readouterr().out
    fig = plt.gcf()
    assert fig._suptitle.get_text() == "The 'sharpen' kernel (static picture)"
    assert fig.axes[2].get_title() == "output (image + edges kernel)"  # sharpen keeps brightness but does not smooth


def test_the_title_and_note_say_what_kind_of_kernel_it_is(grey):
    """Smoothing (weights >= 0, sum 1) is told apart from other kernels that keep brightness."""
    explorer = widgets.build_kernel_explorer(grey, preset="identity")
    assert "the output is the input" in explorer.note.value
    for preset, kind, words in [("box blur", "smoothing", "weighted average"),
                                ("sharpen", "image + edges", "some are negative"),
                                ("wrong sobel x (article)", "other", "neither 0 nor 1")]:
        explorer.preset.value = preset
        assert words in explorer.note.value and filters.kernel_kind(filters.PRESETS[preset]) == kind
    explorer.preset.value = "sobel x"
    explorer.boxes[4].value = 1.0  # Sobel x plus the identity, the lesson's exercise 3
    assert "some are negative" in explorer.note.value and widgets.describe_kernel(
        filters.SOBEL_X + filters.PRESETS["identity"]).startswith("Sum of the weights: 1.")


def test_inside_a_kernel_the_figure_and_then_the_controls_are_displayed(grey, monkeypatch):
    shown = []
    monkeypatch.setattr(widgets, "in_jupyter_kernel", lambda: True)
    monkeypatch.setattr("IPython.display.display", lambda obj: shown.append(obj))
    explorer = widgets.kernel_explorer(grey, preset="box blur")
    assert isinstance(shown[0], plt.Figure) and shown[1] is explorer.ui
    assert not plt.fignum_exists(shown[0].number)  # closed after display, so not drawn twice
    np.testing.assert_allclose(widgets.read_kernel(explorer.boxes), np.full((3, 3), 1 / 9))
