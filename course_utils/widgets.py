"""Interactive controls for the notebooks, built with ipywidgets (lessons 2 and 7).

They use only what ipywidgets 7 (Google Colab) and ipywidgets 8 (JupyterLab) both have.
Widgets need a Jupyter front end to be seen, so every function here first draws an
ordinary figure: in a plain terminal, in a test run, or in a notebook viewer that
cannot show widgets, that figure is what the learner gets.

The kernel explorer (lesson 2): pick a preset 3x3 kernel (or type your own nine numbers)
and see the filtered photo change. The upload classifier (lesson 7): upload a photo and see
what a trained model makes of it.
"""

from __future__ import annotations

import html
import io
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import ipywidgets as widgets
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure
from PIL.Image import Image as PILImage

from course_utils.env import in_jupyter_kernel
from course_utils.filter_plots import draw_filtered, show_filtered
from course_utils.filters import PRESETS, filter_image, kernel_kind
from course_utils.images import BadImageError, load_image
from course_utils.inference import Predictor, prediction_figure

__all__ = ["kernel_explorer", "build_kernel_explorer", "Explorer", "upload_classifier", "build_upload_classifier",
           "UploadClassifier", "uploaded_files"]

CUSTOM = "(your own)"
"""The dropdown's entry once a number has been edited by hand."""

KIND_NOTES = {
    "smoothing": "The weights add up to 1: a flat patch keeps its brightness (output drawn in grey, 0..255).",
    "edge": "The weights add up to 0: a flat patch gives 0, only changes show "
            "(output in red for positive, blue for negative).",
    "other": "The weights add up to neither 0 nor 1: brightness and edges are mixed "
             "(output drawn in grey from its smallest to its largest value).",
}


def _grey(image: np.ndarray) -> np.ndarray:
    image = np.asarray(image, dtype=np.float64)
    if image.ndim != 2:
        raise ValueError(f"the kernel explorer takes a grey H x W image, got shape {image.shape}; convert a photo "
                         "first, e.g. cv2.cvtColor(photo, cv2.COLOR_BGR2GRAY)")
    return image


def _presets(presets: dict[str, np.ndarray] | None, preset: str) -> dict[str, np.ndarray]:
    presets = {name: np.asarray(k, dtype=np.float64) for name, k in (PRESETS if presets is None else presets).items()}
    bad = [name for name, k in presets.items() if k.shape != (3, 3)]
    if bad:
        raise ValueError(f"the explorer edits 3x3 kernels; these presets are not 3x3: {bad}")
    if preset not in presets:
        raise KeyError(f"no preset called {preset!r}; choose one of {list(presets)}")
    return presets


def read_kernel(boxes: list[widgets.FloatText]) -> np.ndarray:
    """The 3x3 kernel typed into nine number boxes (row by row)."""
    return np.array([box.value for box in boxes], dtype=np.float64).reshape(3, 3)


def write_kernel(boxes: list[widgets.FloatText], kernel: np.ndarray) -> None:
    """Put a 3x3 kernel's numbers into the nine boxes (row by row)."""
    for box, value in zip(boxes, np.asarray(kernel, dtype=np.float64).ravel()):
        box.value = float(value)


def describe_kernel(kernel: np.ndarray) -> str:
    """One line under the controls: the sum of the weights and what it means."""
    return f"Sum of the weights: {np.sum(kernel):.3g}. {KIND_NOTES[kernel_kind(kernel)]}"


def figure_png(fig: Figure, dpi: int = 72) -> bytes:
    """A figure as PNG bytes, for an ``ipywidgets.Image``.

    Widgets draw on a bare matplotlib ``Figure`` (not ``plt.figure``): pyplot never sees it,
    so nothing is shown twice and no figure stays open after each redraw.
    """
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight")
    return buffer.getvalue()


def render_png(image: np.ndarray, kernel: np.ndarray, dpi: int = 72) -> bytes:
    """The input and the filtered image side by side, as PNG bytes (see ``figure_png``)."""
    image = _grey(image)
    result = filter_image(image, kernel)
    fig = Figure(figsize=(9, 3.2))
    before, after = fig.subplots(1, 2)
    before.imshow(image, cmap="gray", vmin=0, vmax=255)
    before.set_title("input")
    shown = draw_filtered(after, result, kernel)
    after.set_title(f"filtered ({kernel_kind(kernel)} kernel)")
    fig.colorbar(shown, ax=after, fraction=0.046, pad=0.04)
    for ax in (before, after):
        ax.axis("off")
    return figure_png(fig, dpi)


class Explorer(NamedTuple):
    """The parts of a kernel explorer; ``ui`` is the box to display, the rest are inside it."""

    ui: widgets.VBox
    preset: widgets.Dropdown
    boxes: list[widgets.FloatText]
    picture: widgets.Image
    note: widgets.HTML


def build_kernel_explorer(
    image: np.ndarray,
    preset: str = "sobel x",
    presets: dict[str, np.ndarray] | None = None,
) -> Explorer:
    """Make the controls: a preset menu, a 3x3 grid of numbers, a note, and the picture.

    Choosing a preset fills in the nine numbers; editing a number switches the menu to
    "(your own)". Either way the picture is filtered and drawn again. Nothing is
    displayed here (see ``kernel_explorer``), so this also works without a front end.
    """
    image = _grey(image)
    presets = _presets(presets, preset)
    menu = widgets.Dropdown(options=list(presets) + [CUSTOM], value=preset, description="preset:")
    boxes = [widgets.FloatText(value=0.0, layout=widgets.Layout(width="72px")) for _ in range(9)]
    grid = widgets.GridBox(boxes, layout=widgets.Layout(grid_template_columns="repeat(3, 76px)"))
    picture = widgets.Image(format="png")
    note = widgets.HTML()
    busy = {"now": False}  # True while we change the boxes ourselves, so nine edits redraw once

    def redraw() -> None:
        kernel = read_kernel(boxes)
        note.value = describe_kernel(kernel)
        picture.value = render_png(image, kernel)

    def on_preset(change) -> None:
        if busy["now"] or change["new"] == CUSTOM:
            return
        busy["now"] = True
        try:
            write_kernel(boxes, presets[change["new"]])
        finally:
            busy["now"] = False
        redraw()

    def on_number(change) -> None:
        if busy["now"]:
            return
        if menu.value != CUSTOM and not np.array_equal(read_kernel(boxes), presets[menu.value]):
            busy["now"] = True
            try:
                menu.value = CUSTOM
            finally:
                busy["now"] = False
        redraw()

    busy["now"] = True
    write_kernel(boxes, presets[preset])
    busy["now"] = False
    redraw()
    menu.observe(on_preset, names="value")
    for box in boxes:
        box.observe(on_number, names="value")
    controls = widgets.VBox([menu, widgets.HTML("<b>kernel</b> (edit any number):"), grid])
    ui = widgets.VBox([widgets.HBox([controls, picture]), note])
    return Explorer(ui, menu, boxes, picture, note)


def kernel_explorer(
    image: np.ndarray,
    preset: str = "sobel x",
    presets: dict[str, np.ndarray] | None = None,
) -> Explorer | None:
    """Show what a 3x3 kernel does to a grey photo, interactively when possible.

    Always draws a static figure (input, kernel, output) for ``preset`` first. Inside a
    Jupyter kernel it then displays the controls and returns them; elsewhere it says why
    there are none and returns ``None`` (the figure stays open: ``plt.show()`` shows it).
    """
    image = _grey(image)
    presets = _presets(presets, preset)
    fig = show_filtered(image, presets[preset], title=f"The '{preset}' kernel (static picture)")
    if not in_jupyter_kernel():
        print(f"No Jupyter kernel here, so no controls: the figure shows the '{preset}' kernel. "
              "Run this in Jupyter or Colab to change the kernel interactively.")
        return None
    from IPython.display import display

    display(fig)
    plt.close(fig)  # already shown; do not draw it a second time at the end of the cell
    explorer = build_kernel_explorer(image, preset, presets)
    display(explorer.ui)
    return explorer


# --- The photo-upload classifier (lesson 7) ------------------------------------------------------

UPLOAD_HINT = "Choose a photo (JPEG, PNG, WebP, GIF or BMP) with the button above."


def uploaded_files(value) -> list[tuple[str, bytes]]:
    """``(file name, file bytes)`` for each file in a ``FileUpload`` widget's ``value``.

    The two ipywidgets versions store uploads differently:

    - ipywidgets 7 (Colab): a dict ``{name: {"content": bytes, "metadata": {...}}}``;
    - ipywidgets 8 (JupyterLab 4): a tuple of dicts ``{"name", "type", "size", "content", ...}``
      whose ``content`` is a ``memoryview``.
    """
    if isinstance(value, dict):
        return [(name, bytes(item["content"])) for name, item in value.items()]
    return [(item["name"], bytes(item["content"])) for item in value]


def prediction_png(predictor: Predictor, image: PILImage, name: str, k: int = 5, dpi: int = 72) -> tuple[bytes, str]:
    """Classify a loaded photo: its picture-and-chart as PNG bytes (see ``figure_png``), and a one-line answer."""
    label, probability, probs = predictor.predict(image)
    fig = prediction_figure(image, probs, predictor.class_names, k, title=f"{name}: {label} ({probability:.0%})",
                            fig=Figure(figsize=(9, 3.2)))
    return figure_png(fig, dpi), f"<b>{html.escape(name)}</b>: {html.escape(label)} ({probability:.1%})"


class UploadClassifier(NamedTuple):
    """The parts of an upload classifier; ``ui`` is the box to display.

    ``classify(value)`` is what runs when a photo arrives: it takes a ``FileUpload`` value in
    either ipywidgets format, so tests can call it without a browser.
    """

    ui: widgets.VBox
    upload: widgets.FileUpload
    picture: widgets.Image
    message: widgets.HTML
    classify: Callable[[object], None]


def build_upload_classifier(predictor: Predictor, k: int = 5) -> UploadClassifier:
    """Make an upload button, a message line and a picture that show an uploaded photo's top-``k``.

    A file that is not a usable picture gives a message in the widget (a traceback inside a
    widget callback would only reach JupyterLab's log, where a learner never looks).
    Nothing is displayed here (see ``upload_classifier``).
    """
    upload = widgets.FileUpload(accept="image/*", multiple=False, description="Upload a photo",
                                layout=widgets.Layout(width="auto"))
    picture = widgets.Image(format="png")
    message = widgets.HTML(UPLOAD_HINT)

    def classify(value) -> None:
        files = uploaded_files(value)
        if not files:  # the value was cleared
            return
        name, data = files[-1]
        try:
            png, answer = prediction_png(predictor, load_image(data, name=name), name, k)
        except BadImageError as e:
            picture.value = b""
            message.value = (f"Could not use <b>{html.escape(name)}</b>: {html.escape(e.reason)}. "
                             f"{UPLOAD_HINT}")
            return
        except Exception as e:  # anything else: say it where the learner is looking
            picture.value = b""
            message.value = f"Something went wrong with <b>{html.escape(name)}</b>: {html.escape(repr(e))}"
            return
        picture.value = png
        message.value = answer

    upload.observe(lambda change: classify(change["new"]), names="value")
    ui = widgets.VBox([upload, message, picture])
    return UploadClassifier(ui, upload, picture, message, classify)


def upload_classifier(predictor: Predictor, sample: str | Path, k: int = 5) -> UploadClassifier | None:
    """Classify your own photo, interactively when possible.

    Always shows ``sample`` classified first, as an ordinary figure: that is what a terminal,
    a test run or a notebook viewer gets. Inside a Jupyter kernel the upload controls follow
    and are returned; elsewhere it says why there are none and returns ``None``.
    """
    photo = load_image(sample)
    label, probability, probs = predictor.predict(photo)
    fig = prediction_figure(photo, probs, predictor.class_names, k,
                            title=f"Example: {Path(sample).name}: {label} ({probability:.0%}) (static picture)")
    if not in_jupyter_kernel():
        print("No Jupyter kernel here, so no upload button: the figure shows the example photo. "
              "Run this in Jupyter or Colab to classify your own.")
        return None
    from IPython.display import display

    display(fig)
    plt.close(fig)  # already shown
    classifier = build_upload_classifier(predictor, k)
    display(classifier.ui)
    return classifier
