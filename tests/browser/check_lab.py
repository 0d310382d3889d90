"""Open lessons in a real browser (headless Chromium) inside JupyterLab, as a learner would.

One JupyterLab server (quick mode) serves a copy of the lessons; for each notebook given the
browser opens it, runs all cells from the Run menu's command, waits for the kernel, and then
checks what a learner sees:

- no error output (reported with the cell and the error), no cell left unrun;
- every figure rendered by the browser;
- every widget drawn by the front end (no "Error displaying widget", no bare text repr);
- where the lesson has the kernel explorer, its dropdown is changed and its picture must change;
- where it has the upload classifier, a phone-sized photo (a 4000 x 3000 JPEG of 4-6 MB, made at
  run time from data/samples/chelsea.png with sensor-like noise) is given to the upload widget's
  file input, and the answer (the file's name, a probability and a new picture) must appear;
- JupyterLab's news prompt is switched off (by setting, not by a click) and must not show.

It also asks the kernel which ipywidgets it imports (``--expect-ipywidgets 7`` makes a wrong
major version a failure) and prints the JupyterLab version. A screenshot of each notebook, at
its widget when it has one, and the server's log go to the output folder.

    make browser-check            # every lesson, ipywidgets 8 / JupyterLab 4 (.venv)
    make browser-check-widgets7   # lessons 2 and 7, ipywidgets 7 / JupyterLab 3 (.venv-widgets7)
    .venv/bin/python tests/browser/check_lab.py notebooks/02_cnn_filters.ipynb --out /tmp/shots
    .venv/bin/python tests/browser/check_lab.py --lessons-dir /tmp/broken   # must fail: checks this check

JupyterLab runs on a copy of notebooks/, so autosave never touches the lessons. Data goes where
``COURSE_DATA`` says (default: data/), as for ``make notebooks``. Needs Chromium, ChromeDriver and
selenium: ``bash tests/browser/install.sh`` installs them (``--widgets7`` also .venv-widgets7).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from selenium import webdriver
from selenium.common.exceptions import TimeoutException, WebDriverException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select, WebDriverWait

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "browser-check"
SAMPLE_PHOTO = ROOT / "data" / "samples" / "chelsea.png"
PHOTO_NAME = "IMG_4032_phone.jpg"
PHOTO_MB = (4.0, 6.0)
NEWS_PROMPT = "official Jupyter news"  # "Would you like to get notified about official Jupyter news?"
# what the upload widget says when a photo cannot be used or did not arrive (course_utils/widgets.py)
COMPLAINT = re.compile(r"could not (use|find)|went wrong|reached python|lost on the way", re.IGNORECASE)
OUTPUT = "ancestor::div[contains(@class, 'jp-OutputArea-output')][1]"  # a widget's own output box


# --- the photo -------------------------------------------------------------------------------------

def make_phone_photo(folder: Path) -> Path:
    """A 4000 x 3000 JPEG of 4-6 MB, like a 12-megapixel phone photo, made from the shipped sample.

    The sample is cropped to 4:3 and enlarged, then given sensor-like noise (per pixel and per
    channel), which is what makes real photos large as JPEGs; the quality is raised until the file
    is in range. Deterministic, about 2-5 s; written to a temporary folder, never committed.
    """
    import numpy as np
    from PIL import Image

    source = Image.open(SAMPLE_PHOTO).convert("RGB")
    width, height = source.size
    crop = min(width, height * 4 // 3)
    left = (width - crop) // 2
    big = np.asarray(source.crop((left, 0, left + crop, crop * 3 // 4)).resize((4000, 3000), Image.BICUBIC),
                     dtype=np.float32)
    rng = np.random.default_rng(0)
    big += rng.standard_normal(big.shape[:2] + (1,), dtype=np.float32) * 5
    big += rng.standard_normal(big.shape, dtype=np.float32) * 6
    photo = Image.fromarray(np.clip(big, 0, 255).astype(np.uint8))
    del big
    exif = Image.Exif()
    exif[0x010F], exif[0x0110], exif[0x0112] = "Browser check", "Phone-sized test photo", 1  # Make, Model, Orientation
    path = folder / PHOTO_NAME
    for quality in range(90, 99):
        photo.save(path, "JPEG", quality=quality, exif=exif)
        if path.stat().st_size >= 4.5e6:  # the middle of the range, whatever the JPEG library
            break
    size = path.stat().st_size / 1e6
    if not PHOTO_MB[0] <= size <= PHOTO_MB[1]:
        raise RuntimeError(f"the test photo came out at {size:.1f} MB, outside {PHOTO_MB} MB: adjust its noise")
    return path


# --- JupyterLab and Chromium -----------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def lab_version(python: str) -> str:
    return subprocess.run([python, "-c", "import jupyterlab; print(jupyterlab.__version__)"], check=True,
                          capture_output=True, text=True).stdout.strip()


def version_tuple(version: str) -> tuple[int, int]:
    major, minor = re.match(r"(\d+)\.(\d+)", version).groups()
    return int(major), int(minor)


def write_settings(folder: Path, version: tuple[int, int]) -> None:
    """User settings for a throw-away JupyterLab: no news prompt, no autosave, every cell in the page.

    JupyterLab 3.6 and later ask soon after the first start whether to fetch Jupyter news (a
    notification that would sit in every screenshot); ``fetchNews: "false"`` answers it in advance
    (``--LabApp.news_url=None`` alone stops the fetching, not the question). JupyterLab 4 draws
    only the cells near the viewport unless ``windowingMode`` is ``"none"``, which would hide
    outputs from the checks. Older versions lack these settings, and reject settings they lack.
    """
    settings = {"@jupyterlab/docmanager-extension/plugin": {"autosave": False}}
    if version >= (3, 6):
        settings["@jupyterlab/apputils-extension/notification"] = {"fetchNews": "false", "checkForUpdates": False}
    if version >= (4, 0):
        settings["@jupyterlab/notebook-extension/tracker"] = {"windowingMode": "none"}
    for plugin, values in settings.items():
        path = folder / f"{plugin}.jupyterlab-settings"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(values))


def start_lab(python: str, version: tuple[int, int], port: int, notebooks: Path, work: Path,
              log: Path) -> subprocess.Popen:
    """Start JupyterLab on 127.0.0.1:port serving ``notebooks``, with settings and workspaces of its own."""
    write_settings(work / "settings", version)
    command = [python, "-m", "jupyterlab", "--no-browser", f"--port={port}", "--ip=127.0.0.1",
               f"--IdentityProvider.token={TOKEN}", f"--ServerApp.root_dir={notebooks}",
               f"--LabApp.user_settings_dir={work / 'settings'}", f"--LabApp.workspaces_dir={work / 'workspaces'}",
               "--LabApp.expose_app_in_browser=True"]
    if version >= (3, 6):  # no news feed, no update check: nothing asks the network for anything
        command += ["--LabApp.news_url=None", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"]
    if os.geteuid() == 0:
        command.append("--allow-root")
    env = dict(os.environ, COURSE_QUICK="1", JUPYTER_CONFIG_DIR=str(work / "config"))
    with open(log, "w") as out:
        return subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT, cwd=notebooks)


def wait_for_lab(lab: subprocess.Popen, port: int, log: Path) -> None:
    """Return once the server answers (polled, not slept)."""
    direct = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if lab.poll() is not None:
            raise RuntimeError(f"JupyterLab exited with {lab.returncode}; its log: {log}")
        try:
            with direct.open(f"http://127.0.0.1:{port}/api/status?token={TOKEN}", timeout=2):
                return
        except OSError:
            time.sleep(0.3)
    lab.kill()
    raise RuntimeError(f"JupyterLab did not answer within 180 s; its log: {log}")


def browser(profile: Path) -> webdriver.Chrome:
    """Headless Chromium that stays off the network: the machines it runs on reach only package registries."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    if not chromium or not driver:
        sys.exit("Chromium or ChromeDriver is missing: run `bash tests/browser/install.sh` (Debian: apt-get install "
                 "chromium chromium-driver)")
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage", f"--user-data-dir={profile}", "--window-size=1400,1000"]:
        options.add_argument(flag)
    chrome = webdriver.Chrome(options=options, service=Service(driver))  # a given driver path: no Selenium Manager
    chrome.set_script_timeout(60)  # for the scripts that wait on the kernel
    return chrome


# --- running a notebook ----------------------------------------------------------------------------

PANEL = "const panel = window.jupyterapp.shell.currentWidget;"

KERNEL_IDLE = PANEL + """
const kernel = panel && panel.sessionContext && panel.sessionContext.session && panel.sessionContext.session.kernel;
return !!(kernel && kernel.status === 'idle');"""

# The "[n]:" prompt of every code cell, in one call.
PROMPTS = PANEL + """
return [...panel.content.node.querySelectorAll('.jp-CodeCell .jp-InputPrompt')].map(e => e.innerText.trim());"""

# A summary of every code cell of the open notebook, from JupyterLab's own model (the same in 3 and 4).
CELLS = PANEL + """
const cells = panel.content.model.cells, found = [];
for (let i = 0; i < cells.length; i++) {
    const cell = cells.get(i);
    if (cell.type !== 'code') continue;
    const source = cell.sharedModel ? cell.sharedModel.getSource() : cell.value.text;
    const outputs = cell.outputs.toJSON().map(o => ({
        type: o.output_type, name: o.name || '', ename: o.ename || '', evalue: o.evalue || '',
        text: (Array.isArray(o.text) ? o.text.join('') : (o.text || '')).slice(0, 2000),
        mimes: Object.keys(o.data || {})}));
    found.push({index: i, count: cell.executionCount, source: source, outputs: outputs});
}
return found;"""

# Runs code in the notebook's own kernel and returns what it printed (for the ipywidgets version).
ASK_KERNEL = PANEL + """
const done = arguments[arguments.length - 1];
const future = panel.sessionContext.session.kernel.requestExecute({code: arguments[0], store_history: false});
let text = '';
future.onIOPub = msg => { if (msg.header.msg_type === 'stream') text += msg.content.text; };
future.done.then(() => done(text), e => done('failed: ' + e));"""

# Stops the notebook's kernel (each holds torch in memory; the next notebook gets its own).
SHUT_DOWN = PANEL + """
const done = arguments[arguments.length - 1];
panel.sessionContext.shutdown().then(() => done(true), () => done(false));"""


def wait_until(driver, condition, timeout: float, poll: float = 0.25):
    return WebDriverWait(driver, timeout, poll_frequency=poll).until(condition)


def run_all(driver, timeout: float) -> None:
    """Run all cells once the kernel is idle; return when nothing is queued or running any more.

    A cell waiting or running shows ``[*]``; an error stops the run and leaves later cells ``[ ]``,
    so "finished" is: the run has begun, no ``[*]`` is left and the kernel is idle (twice in a row).
    """
    wait_until(driver, lambda d: d.find_elements(By.CSS_SELECTOR, ".jp-Notebook .jp-CodeCell"), 60)
    wait_until(driver, lambda d: d.execute_script(KERNEL_IDLE), 120)
    driver.execute_script("window.jupyterapp.commands.execute('notebook:run-all-cells'); return true;")

    def prompts(d) -> list[str]:
        return d.execute_script(PROMPTS)

    wait_until(driver, lambda d: any(p not in ("[ ]:", "") for p in prompts(d)), 60)
    quiet = {"polls": 0}

    def finished(d) -> bool:
        idle = "[*]:" not in prompts(d) and d.execute_script(KERNEL_IDLE)
        quiet["polls"] = quiet["polls"] + 1 if idle else 0
        return quiet["polls"] >= 2

    wait_until(driver, finished, timeout, poll=0.5)


def first_line(source: str) -> str:
    lines = [line for line in source.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    return (lines[0] if lines else source.strip())[:80]


def output_problems(name: str, cells: list[dict]) -> list[str]:
    """Errors in the model's outputs, tracebacks on stderr, cells never run, widgets shown as bare text."""
    problems = []
    for cell in cells:
        where = f"{name}, cell {cell['index']} ({first_line(cell['source'])!r})"
        if cell["count"] is None and cell["source"].strip():
            problems.append(f"{where}: not run (an earlier error stopped the run?)")
        for out in cell["outputs"]:
            if out["type"] == "error":
                problems.append(f"{where}: {out['ename']}: {out['evalue'][:300]}")
            elif out["name"] == "stderr" and ("Traceback" in out["text"] or "Error" in out["text"].split("\n")[0]):
                problems.append(f"{where}: error on stderr: {out['text'][:300]!r}")
    return problems


# What the open notebook shows, in one call (WebDriver's own .text is slow on a page this size).
PAGE = PANEL + """
const nb = panel.content.node, text = nb.innerText;
const images = [...nb.querySelectorAll('.jp-RenderedImage img')];
const bare = text.match(/^(?:VBox|HBox|Dropdown|FileUpload)\\(children=.*$/m);
return {figures: images.length, loading: images.filter(i => !i.complete).length,
        broken: images.filter(i => i.complete && !(i.naturalWidth > 0)).length,
        signs: arguments[0].filter(sign => text.includes(sign)), bare: bare ? bare[0].slice(0, 100) : null};"""

# Front-end messages for widgets it could not draw (JupyterLab 4 / ipywidgets 8, JupyterLab 3 / ipywidgets 7).
DEAD_WIDGET = ["Error displaying widget", "widget state could not be found", "widget could not be displayed"]


def page_problems(driver, name: str, cells: list[dict]) -> tuple[int, list[str]]:
    """Figures the browser could not draw and widget outputs the front end could not draw; and the figure count."""
    try:  # decoding may still be under way
        page = wait_until(driver, lambda d: (p := d.execute_script(PAGE, DEAD_WIDGET))["loading"] == 0 and p, 15)
    except TimeoutException:
        page = driver.execute_script(PAGE, DEAD_WIDGET)
    problems = []
    if page["broken"] or page["loading"]:
        problems.append(f"{name}: {page['broken'] + page['loading']} of {page['figures']} figures did not render")
    views = sum("application/vnd.jupyter.widget-view+json" in o["mimes"] for c in cells for o in c["outputs"])
    problems += [f"{name}: the front end says {sign!r} ({views} widget outputs)" for sign in page["signs"]]
    if page["bare"]:
        problems.append(f"{name}: widgets shown as text, so not drawn: {page['bare']!r}")
    return page["figures"], problems


def text_of(driver, element) -> str:
    return driver.execute_script("return arguments[0].innerText", element)


def drawn_pictures(driver, box) -> set[str]:
    """The ``src`` of each picture inside ``box`` that the browser has decoded."""
    return set(driver.execute_script("return [...arguments[0].querySelectorAll('img')]"
                                     ".filter(i => i.complete && i.naturalWidth > 0).map(i => i.src)", box))


def check_dropdown(driver, name: str, dropdown) -> list[str]:
    """Choose another entry of a dropdown widget; a new picture must be drawn in the same widget."""
    box = dropdown.find_element(By.XPATH, OUTPUT)
    before = drawn_pictures(driver, box)
    if not before:
        return [f"{name}: the dropdown's widget shows no picture"]
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", box)
    select = Select(dropdown)
    chosen = select.first_selected_option.text
    other = next(o.text for o in select.options if o.text != chosen)
    select.select_by_visible_text(other)
    try:
        wait_until(driver, lambda d: drawn_pictures(d, box) - before, 60)
    except TimeoutException:
        return [f"{name}: the picture did not change when the dropdown went from {chosen!r} to {other!r}"]
    print(f"  dropdown {chosen!r} -> {other!r}: picture redrawn", flush=True)
    return []


# ipywidgets' upload button clicks an <input type="file"> that is not in the page, which would open
# the browser's file dialog. This makes such a click put the input into the page instead, where
# WebDriver can type a file's path into it, as if the learner had picked that file.
CATCH_FILE_INPUT = """
if (!window.browserCheckCatch) {
    window.browserCheckCatch = true;
    const click = HTMLInputElement.prototype.click;
    HTMLInputElement.prototype.click = function () {
        if (this.type === 'file' && !this.isConnected) {
            this.classList.add('browser-check-file-input');
            this.style.display = 'none';
            document.body.appendChild(this);
            return;
        }
        return click.call(this);
    };
}"""


def file_input_of(driver, upload, box):
    """The upload widget's file input: inside the widget if it is there, else the one its click asks for."""
    inside = box.find_elements(By.CSS_SELECTOR, "input[type=file]")
    if inside:
        return inside[0]
    driver.execute_script(CATCH_FILE_INPUT)
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'}); arguments[0].click()", upload)
    try:
        return wait_until(driver, lambda d: d.find_element(By.CSS_SELECTOR, "input.browser-check-file-input"), 10)
    except TimeoutException:
        return None


def check_upload(driver, name: str, upload, photo: Path, timeout: float) -> list[str]:
    """Give an upload widget the photo, as a learner picking a file would, and wait for its answer.

    The answer must appear in the widget's own output: the file's name with a probability (and
    no complaint), and a picture the browser has drawn that was not there before.
    """
    box = upload.find_element(By.XPATH, OUTPUT)
    before = drawn_pictures(driver, box)
    file_input = file_input_of(driver, upload, box)
    if file_input is None:
        return [f"{name}: clicking the upload button did not ask for a file"]
    started = time.monotonic()
    file_input.send_keys(str(photo))

    def outcome(d) -> str | None:
        text = " ".join(text_of(d, box).split())
        if COMPLAINT.search(text):
            return "complaint"
        if photo.name in text and re.search(r"\d%", text) and drawn_pictures(d, box) - before:
            return "answer"
        return None

    try:
        result = wait_until(driver, outcome, timeout, poll=0.5)
    except TimeoutException:
        return [f"{name}: no answer {timeout:.0f} s after uploading {photo.name} "
                f"({photo.stat().st_size / 1e6:.1f} MB); the widget says: {text_of(driver, box)[:300]!r}"]
    if result == "complaint":
        return [f"{name}: the upload widget reported a problem: {' '.join(text_of(driver, box).split())[:400]!r}"]
    answer = next((line for line in text_of(driver, box).splitlines() if photo.name in line), "")
    print(f"  upload of {photo.name} ({photo.stat().st_size / 1e6:.1f} MB): answer in "
          f"{time.monotonic() - started:.1f} s: {answer[:120]!r}", flush=True)
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", box)  # for the screenshot
    return []


def check_notebook(driver, port: int, name: str, args, photo: Path) -> list[str]:
    """Open, run and check one lesson; its screenshot is taken and its kernel stopped whatever happens."""
    started = time.monotonic()
    driver.get(f"http://127.0.0.1:{port}/lab/tree/{name}?token={TOKEN}&reset")
    try:
        problems = inspect_notebook(driver, name, args, photo, started)
    finally:
        try:
            driver.save_screenshot(str(args.out / f"{Path(name).stem}.png"))
            driver.execute_async_script(SHUT_DOWN)  # a timed-out lesson must not go on eating the CPU
        except WebDriverException as e:
            print(f"{name}: could not take the screenshot or stop the kernel: {e.msg}", flush=True)
    print(f"{name}: {time.monotonic() - started:.0f} s in all: {'OK' if not problems else 'PROBLEMS'}", flush=True)
    return problems


def inspect_notebook(driver, name: str, args, photo: Path, started: float) -> list[str]:
    try:
        run_all(driver, args.timeout)
    except TimeoutException:
        waiting = [c for c in driver.execute_script(CELLS) if c["count"] is None and c["source"].strip()]
        at = f", still at cell {waiting[0]['index']} ({first_line(waiting[0]['source'])!r})" if waiting else ""
        return [f"{name}: did not finish running within {args.timeout:.0f} s{at}"]
    ran = time.monotonic() - started
    cells = driver.execute_script(CELLS)
    problems = output_problems(name, cells)
    figures, shown = page_problems(driver, name, cells)
    problems += shown

    versions = driver.execute_async_script(
        ASK_KERNEL, "import sys, ipywidgets; print(ipywidgets.__version__, sys.executable)").split()
    widgets_version = versions[0] if versions else "?"
    print(f"{name}: ran in {ran:.0f} s; {figures} figures; JupyterLab "
          f"{driver.execute_script('return window.jupyterapp.version')}, kernel imports ipywidgets {widgets_version} "
          f"({' '.join(versions[1:])})", flush=True)
    if args.expect_ipywidgets and not widgets_version.startswith(f"{args.expect_ipywidgets}."):
        problems.append(f"{name}: the kernel imports ipywidgets {widgets_version}, "
                        f"not {args.expect_ipywidgets}.x")

    code = "\n".join(c["source"] for c in cells)
    dropdowns = driver.find_elements(By.CSS_SELECTOR, ".jp-OutputArea-output .jupyter-widgets select")
    uploads = driver.find_elements(By.CSS_SELECTOR, ".jp-OutputArea-output .widget-upload")
    if "kernel_explorer(" in code and not dropdowns:
        problems.append(f"{name}: calls kernel_explorer but no dropdown widget was drawn")
    if "upload_classifier(" in code and not uploads:
        problems.append(f"{name}: calls upload_classifier but no upload widget was drawn")
    if dropdowns:
        problems += check_dropdown(driver, name, dropdowns[0])
    if uploads:
        problems += check_upload(driver, name, uploads[0], photo, args.upload_timeout)

    if NEWS_PROMPT in driver.execute_script("return document.body.innerText"):
        problems.append(f"{name}: JupyterLab's news prompt is showing")
    return problems


def uses_widgets(notebook: Path) -> bool:
    """Whether a lesson's code imports the course's widgets (the kernel explorer, the upload classifier)."""
    cells = json.loads(notebook.read_text(encoding="utf-8"))["cells"]
    return any("course_utils.widgets" in "".join(c["source"]) for c in cells if c["cell_type"] == "code")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("notebooks", nargs="*", help="default: every lesson")
    parser.add_argument("--lessons-dir", type=Path, default=ROOT / "notebooks",
                        help="where the lessons are (default: notebooks/; another folder to test this check itself)")
    parser.add_argument("--widget-lessons", action="store_true",
                        help="only the lessons whose code uses course_utils.widgets (instead of every lesson)")
    parser.add_argument("--out", type=Path, default=ROOT / ".browser-check", help="folder for screenshots and the log")
    parser.add_argument("--lab-python", default=sys.executable,
                        help="the Python whose JupyterLab (and kernel) to use, e.g. .venv-widgets7/bin/python")
    parser.add_argument("--expect-ipywidgets", choices=["7", "8"], help="fail unless the kernel imports this major")
    parser.add_argument("--timeout", type=float, default=600, help="seconds to run one notebook")
    parser.add_argument("--upload-timeout", type=float, default=120, help="seconds for the upload's answer")
    args = parser.parse_args()
    args.lab_python = os.path.abspath(args.lab_python)  # not resolve(): a venv's python is a symlink out of it
    lessons = sorted(args.lessons_dir.glob("[0-9]*.ipynb"))
    if args.widget_lessons:
        lessons = [p for p in lessons if uses_widgets(p)]
        if not lessons:
            sys.exit("--widget-lessons: no lesson uses course_utils.widgets")
    names = [Path(n).name for n in args.notebooks] or [p.name for p in lessons]
    missing = [n for n in names if not (args.lessons_dir / n).is_file()]
    if missing or not names:
        sys.exit(f"no such lesson in {args.lessons_dir}: {missing or 'none at all'}")
    args.out.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    problems = []
    with tempfile.TemporaryDirectory(prefix="browser-check-") as tmp:
        work = Path(tmp)
        notebooks = work / "notebooks"
        shutil.copytree(args.lessons_dir, notebooks, ignore=shutil.ignore_patterns(".ipynb_checkpoints"))
        version = lab_version(args.lab_python)
        port, log = free_port(), args.out / "jupyterlab.log"
        lab = start_lab(args.lab_python, version_tuple(version), port, notebooks, work, log)
        try:  # the photo and the browser are made while the server starts
            photo = make_phone_photo(work)
            print(f"test photo {photo.name}: {photo.stat().st_size / 1e6:.1f} MB, "
                  f"made in {time.monotonic() - started:.1f} s", flush=True)
            driver = browser(work / "chromium-profile")
            try:
                wait_for_lab(lab, port, log)
                print(f"JupyterLab {version} and Chromium ready at {time.monotonic() - started:.1f} s", flush=True)
                for name in names:
                    problems += check_notebook(driver, port, name, args, photo)
            finally:
                driver.quit()
        finally:
            lab.terminate()
            try:
                lab.wait(timeout=20)
            except subprocess.TimeoutExpired:
                lab.kill()
    for p in problems:
        print("PROBLEM:", p)
    print(f"{len(names)} notebooks in {time.monotonic() - started:.0f} s, {len(problems)} problems; "
          f"screenshots in {args.out}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
