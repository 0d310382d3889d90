"""Interactive controls for the notebooks, built with ipywidgets (lessons 2 and 7).

They use only what ipywidgets 7 (Google Colab) and ipywidgets 8 (JupyterLab) both have.
Widgets need a Jupyter front end to be seen, so every function here first draws an
ordinary figure: in a plain terminal, in a test run, or in a notebook viewer that
cannot show widgets, that figure is what the learner gets.

The kernel explorer (lesson 2): pick a preset 3x3 kernel (or type your own nine numbers)
and see the filtered photo change. The upload classifier (lesson 7): upload a photo (or type
its path) and see what a trained model makes of it; on Colab, whose upload button loses
photos of 1 MB or more, ``classify_uploads`` takes photos of any size.
"""

from __future__ import annotations

import html
import inspect
import io
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import ipywidgets as widgets
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure
from PIL.Image import Image as PILImage

from course_utils.env import data_dir, in_colab, in_jupyter_kernel
from course_utils.filter_plots import draw_filtered, show_filtered
from course_utils.filters import PRESETS, filter_image, kernel_kind
from course_utils.images import BadImageError, load_image
from course_utils.inference import FolderResults, Predictor, predict_files, prediction_figure

__all__ = ["kernel_explorer", "build_kernel_explorer", "Explorer", "upload_classifier", "build_upload_classifier",
           "UploadClassifier", "uploaded_files", "announced_sizes", "classify_uploads", "find_typed_path"]

CUSTOM = "(your own)"
"""The dropdown's entry once a number has been edited by hand."""

KIND_NOTES = {
    "edge": "The weights add up to 0: a flat patch gives 0, only changes show "
            "(output in red for positive, blue for negative).",
    "copy": "One weight is 1, the others 0: the output is the input, moved by a pixel if the 1 is off-centre "
            "(output drawn in grey, 0..255).",
    "smoothing": "The weights add up to 1 and none is negative: each pixel becomes a weighted average of its "
                 "neighbourhood, so flat patches keep their brightness and detail is smoothed away "
                 "(output drawn in grey, 0..255).",
    "image + edges": "The weights add up to 1 and some are negative: flat patches keep their brightness, and "
                     "an edge answer is added on top (the kernel is the identity plus one whose weights add up "
                     "to 0), so edges are exaggerated (output drawn in grey, clipped to 0..255).",
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

UPLOAD_HINT = ("Choose a photo (JPEG, PNG, HEIC, WebP, GIF, BMP...) with the button above, "
               "or type the path of one on this computer and press Enter.")
UPLOAD_ACCEPT = "image/*,.heic,.heif,.avif"  # some systems do not count HEIC and AVIF as image/*
TOO_BIG_NOTE = ("Nothing appears after you chose a photo? It was too big for the notebook's connection, which "
                "drops it without a word (Jupyter's limit is about 10 MB). Type its path in the box instead.")
COLAB_NOTE = ("<b>On Colab, this button loses photos of about 1 MB or more</b> (most phone photos): its counter goes "
              "up and nothing arrives. Two ways that take photos of any size: type "
              "<code>classify_uploads(predictor)</code> in a new cell and run it (Colab's own file picker), or drag "
              "the photo into Colab's <i>Files</i> panel (the folder icon on the left), right-click it, "
              "<i>Copy path</i>, and paste the path into the box above.")
NOTHING_ARRIVED = ("nothing of it reached Python{detail}: the upload was lost on the way, which happens to photos "
                   "too big for the notebook's connection (on Colab: about 1 MB or more). Type its path in the box "
                   "instead{colab}.")


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


def announced_sizes(value) -> dict[str, int]:
    """The size in bytes the browser announced for each file of a ``FileUpload`` value (both versions)."""
    if isinstance(value, dict):
        return {name: int(item.get("metadata", {}).get("size", 0) or 0) for name, item in value.items()}
    return {item["name"]: int(item.get("size", 0) or 0) for item in value}


def find_typed_path(text: str, start: Path | None = None) -> Path:
    """The file a learner means by a path they typed or pasted.

    Spaces and quotes around it are dropped (Windows' "Copy as path" adds quotes), so are a
    ``file://`` prefix and ``~``. A relative path is looked for from ``start`` (default: the
    folder the notebook runs in) and then from each folder above it, because JupyterLab's
    "Copy Path" gives the path from the folder JupyterLab was started in. When none exists,
    the path as typed (from ``start``) is returned, and loading it says "no such file".
    """
    text = text.strip().strip("\"'").strip()
    text = text.removeprefix("file://")
    path = Path(text).expanduser()
    if path.is_absolute():
        return path
    start = Path.cwd() if start is None else Path(start)
    for folder in [start, *start.parents]:
        if (folder / path).exists():
            return folder / path
    return start / path


def prediction_png(predictor: Predictor, image: PILImage, name: str, k: int = 5, dpi: int = 72) -> tuple[bytes, str]:
    """Classify a loaded photo: its picture-and-chart as PNG bytes (see ``figure_png``), and a one-line answer."""
    label, probability, probs = predictor.predict(image)
    fig = prediction_figure(image, probs, predictor.class_names, k, title=f"{name}: {label} ({probability:.0%})",
                            fig=Figure(figsize=(9, 3.2)))
    return figure_png(fig, dpi), f"<b>{html.escape(name)}</b>: {html.escape(label)} ({probability:.1%})"


class UploadClassifier(NamedTuple):
    """The parts of an upload classifier; ``ui`` is the box to display.

    ``classify(value)`` is what runs when a photo arrives: it takes a ``FileUpload`` value in
    either ipywidgets format, so tests can call it without a browser. ``classify_path(text)``
    is what runs when a path is typed into ``path_box``.
    """

    ui: widgets.VBox
    upload: widgets.FileUpload
    picture: widgets.Image
    message: widgets.HTML
    classify: Callable[[object], None]
    path_box: widgets.Text
    classify_path: Callable[[str], None]
    note: widgets.HTML


def build_upload_classifier(predictor: Predictor, k: int = 5) -> UploadClassifier:
    """Make an upload button, a box for a path, a message line and a picture that show a photo's top-``k``.

    Three ways in: the upload button; a path typed or pasted into the box (Enter classifies it),
    for photos the button cannot carry; and, on Colab, ``classify_uploads`` in a
    cell of its own (the note under the controls says when and how). A file that is not a
    usable picture, or an upload that arrived empty, gives a message in the widget (a traceback
    inside a widget callback would only reach JupyterLab's log, where a learner never looks).
    Nothing is displayed here (see ``upload_classifier``).

    Why a note and not an error: when a photo is too big for the connection (ipywidgets issue
    #3452: on Colab from about 1 MB), the browser drops the whole message and Python hears
    nothing at all, so there is no moment at which we could react. What does arrive is handled:
    an entry without its bytes, or (ipywidgets 7) a new selection with no file in it.
    """
    upload = widgets.FileUpload(accept=UPLOAD_ACCEPT, multiple=False, description="Upload a photo",
                                layout=widgets.Layout(width="auto"))
    path_box = widgets.Text(placeholder="or a path, e.g. my_photos/cat.jpg", continuous_update=False,
                            layout=widgets.Layout(width="28em"))
    picture = widgets.Image(format="png")
    message = widgets.HTML(UPLOAD_HINT)
    colab = in_colab()
    note = widgets.HTML(f"<small>{COLAB_NOTE if colab else TOO_BIG_NOTE}</small>")
    colab_tip = " or run classify_uploads(predictor) in a new cell" if colab else ""

    def say(text: str) -> None:
        picture.value = b""  # the old answer is not left next to the new file's name
        message.value = text

    def show(name: str, source: str | Path | bytes) -> None:
        try:
            png, answer = prediction_png(predictor, load_image(source, name=name), name, k)
        except BadImageError as e:
            return say(f"Could not use <b>{html.escape(name)}</b>: {html.escape(e.reason)}. {UPLOAD_HINT}")
        except Exception as e:  # anything else: say it where the learner is looking
            return say(f"Something went wrong with <b>{html.escape(name)}</b>: {html.escape(repr(e))}")
        picture.value = png
        message.value = answer

    def classify(value) -> None:
        files = uploaded_files(value)
        if not files:  # the value was cleared
            return
        name, data = files[-1]
        size = announced_sizes(value).get(name, 0)
        if not data and size > 0:
            return say(f"Could not use <b>{html.escape(name)}</b>: "
                       + html.escape(NOTHING_ARRIVED.format(detail=f" (0 of {size:,} bytes)", colab=colab_tip)))
        show(name, data)

    def on_counter(change) -> None:  # ipywidgets 7 only: a selection was made, value was filled from it
        if uploaded_files(upload.value):
            return classify(upload.value)
        say(html.escape("A photo was chosen, but " + NOTHING_ARRIVED.format(detail="", colab=colab_tip)))

    def classify_path(text: str) -> None:
        if not text.strip():
            return
        path = find_typed_path(text)
        if not path.exists():
            return say(f"Could not find <b>{html.escape(text.strip())}</b> (looked in {html.escape(str(Path.cwd()))} "
                       "and the folders above it). Tip: right-click the file in JupyterLab's file browser (or "
                       "Colab's <i>Files</i> panel) and choose <i>Copy Path</i>, then paste it here.")
        show(path.name, path)

    if "_counter" in upload.trait_names():  # ipywidgets 7: each selection counts up, even one that arrives empty
        upload.observe(on_counter, names="_counter")
    else:
        upload.observe(lambda change: classify(change["new"]), names="value")
    path_box.observe(lambda change: classify_path(change["new"]), names="value")  # on Enter (or leaving the box)
    ui = widgets.VBox([upload, path_box, message, note, picture])
    return UploadClassifier(ui, upload, picture, message, classify, path_box, classify_path, note)


def upload_classifier(predictor: Predictor, sample: str | Path, k: int = 5) -> UploadClassifier | None:
    """Classify your own photo, interactively when possible.

    Always shows ``sample`` classified first, as an ordinary figure: that is what a terminal,
    a test run or a notebook viewer gets. Inside a Jupyter kernel the controls follow (upload
    button, path box; see ``build_upload_classifier``) and are returned; elsewhere it says why
    there are none and returns ``None``.
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


NO_PHOTO_CHOSEN = ("No photo was chosen (the file picker was closed or \"Cancel upload\" was pressed), so there is "
                   "nothing to classify. Run this cell again and choose one or more photos; or drag a photo into "
                   "Colab's Files panel (the folder icon on the left) and type its path into upload_classifier's box.")
PICKER_FAILED = ("Colab's file picker could not start ({error}). It needs the cell to run in a Colab tab that is open "
                 "in your browser, and a browser that lets colab.research.google.com use third-party cookies (Brave, "
                 "Safari and private windows often block them). Run this cell again in that tab; or drag the photo "
                 "into Colab's Files panel (the folder icon on the left) and type its path into upload_classifier's "
                 "box.")


def _colab_upload(files, folder: Path) -> dict[str, bytes]:
    """``google.colab.files.upload`` into ``folder``: ``{path of the saved file: its bytes}``.

    Colab saves each photo under a name of its own choosing (``cat (1).jpg`` when ``cat.jpg`` is
    already there) and returns those paths. A google.colab from before ``target_dir`` (2023)
    saves into the current folder and returns the names as chosen.
    """
    if "target_dir" in inspect.signature(files.upload).parameters:
        return files.upload(target_dir=str(folder))
    return files.upload()


def classify_uploads(predictor: Predictor, k: int = 5, folder: str | Path | None = None) -> FolderResults | None:
    """On Colab: choose photos of any size with Colab's own file picker, and see each one classified.

    Colab's upload button (``upload_classifier``) loses photos of about 1 MB or more;
    ``google.colab.files.upload()`` sends them in small pieces and has no such limit. It waits
    until you have chosen photos (or pressed "Cancel upload"), so call this in a cell of its
    own when you want it, not in a cell that "Run all" reaches. The photos are saved in
    ``folder`` (default ``data_dir() / "uploads"``; Colab forgets it when the runtime resets),
    each good one is drawn with its top-``k``, and the table of all of them is returned
    (``inference.FolderResults``: bad files are rows that say why). When no photo arrives
    (cancelled, or the picker could not start) it says why and what to do, and returns ``None``;
    outside Colab it says what to use instead and returns ``None`` at once.
    """
    if not in_colab():
        print("classify_uploads is for Google Colab. Here, use upload_classifier's button, or type a photo's "
              "path into its box.")
        return None
    from google.colab import files
    from IPython.display import display

    folder = Path(folder) if folder is not None else data_dir() / "uploads"
    folder.mkdir(parents=True, exist_ok=True)
    print('Choose one or more photos ("Cancel upload" to stop).')
    try:
        uploaded = _colab_upload(files, folder)
    except Exception as e:  # e.g. MessageError: the picker's JavaScript did not run in this browser tab
        print(PICKER_FAILED.format(error=f"{type(e).__name__}: {e}"))
        return None
    if not uploaded:
        print(NO_PHOTO_CHOSEN)
        return None
    results = predict_files(predictor, [Path(name) for name in uploaded], quiet=True)
    for row in results.rows:
        if row.problem is None:
            fig = predictor.show(row.path, k)
            display(fig)
            plt.close(fig)
    return results
