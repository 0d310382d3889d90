"""Open lessons in a real browser (headless Chromium) inside JupyterLab, as a learner would.

For each notebook given, this starts JupyterLab in quick mode, opens the notebook, runs
all cells from the Run menu, waits for the kernel, and then checks what a learner sees:
no error output, every figure rendered, and (where the lesson has widgets) that the
widgets were drawn by the front end and respond to input: a dropdown is changed and its
picture must change; a photo-upload button is given data/samples/chelsea.png through its
file input and an answer must appear. A screenshot of each notebook is written to the
output folder.

    make browser-check                      # all lessons, screenshots in .browser-check/
    .venv/bin/python tests/browser/check_lab.py notebooks/02_cnn_filters.ipynb --out /tmp/shots

Needs Chromium and ChromeDriver (Debian: apt-get install chromium chromium-driver) and
the selenium package; not part of `make test`, which must run without a browser.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

from selenium import webdriver
from selenium.common.exceptions import TimeoutException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select, WebDriverWait

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "browser-check"
SAMPLE_PHOTO = ROOT / "data" / "samples" / "chelsea.png"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_lab(port: int) -> subprocess.Popen:
    env = dict(os.environ, COURSE_QUICK="1")
    command = [sys.executable, "-m", "jupyterlab", "--no-browser", f"--port={port}", "--ip=127.0.0.1",
               f"--IdentityProvider.token={TOKEN}", f"--ServerApp.root_dir={ROOT / 'notebooks'}",
               "--LabApp.news_url=", "--LabApp.expose_app_in_browser=True",
               "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"]
    if os.geteuid() == 0:
        command.append("--allow-root")
    lab = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(120):
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return lab
        except OSError:
            time.sleep(0.5)
    lab.kill()
    raise RuntimeError("JupyterLab did not start")


def browser() -> webdriver.Chrome:
    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium") or "/usr/bin/chromium"
    for flag in ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--window-size=1400,1000"]:
        options.add_argument(flag)
    service = Service(shutil.which("chromedriver") or "/usr/bin/chromedriver")
    return webdriver.Chrome(options=options, service=service)


def run_all(driver, timeout: float) -> None:
    """Wait for the kernel, run all cells, then wait until no cell prompt shows [*] or [ ]."""
    WebDriverWait(driver, 60).until(lambda d: d.find_elements(By.CSS_SELECTOR, ".jp-Notebook .jp-Cell"))
    WebDriverWait(driver, 60).until(lambda d: d.execute_script(
        "const p = window.jupyterapp?.shell?.currentWidget?.sessionContext;"
        "return !!(p && p.session && p.session.kernel && p.session.kernel.status === 'idle');"))
    # the same command as the menu's Run > Run All Cells
    driver.execute_script("window.jupyterapp.commands.execute('notebook:run-all-cells'); return true;")
    time.sleep(2)

    def finished(d):
        prompts = [e.text for e in d.find_elements(By.CSS_SELECTOR, ".jp-CodeCell .jp-InputPrompt")]
        return prompts and all(p.strip() not in ("[*]:", "[ ]:", "") for p in prompts)

    WebDriverWait(driver, timeout, poll_frequency=1).until(finished)


# ipywidgets' upload button clicks an <input type="file"> that is not in the page, which opens the
# browser's file dialog. This makes such a click attach the input to the page instead, where
# WebDriver can type a file's path into it, as if the learner had picked that file.
CATCH_FILE_INPUT = """
const click = HTMLInputElement.prototype.click;
HTMLInputElement.prototype.click = function () {
    if (this.type === 'file' && !this.isConnected) {
        this.classList.add('browser-check-file-input');
        document.body.appendChild(this);
        return;
    }
    return click.call(this);
};
"""


def check_upload(driver, name: str, button) -> list[str]:
    """Give an upload widget the sample photo, as a learner picking a file would, and wait for its answer.

    The answer must appear in the widget's own box: a message naming the file (not an error
    message) and a picture that the browser has drawn.
    """
    box = button.find_element(By.XPATH, "./ancestor::div[contains(@class, 'widget-vbox')][1]")
    driver.execute_script(CATCH_FILE_INPUT)
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'}); arguments[0].click()", button)
    try:
        file_input = WebDriverWait(driver, 10).until(
            lambda d: d.find_element(By.CSS_SELECTOR, "input.browser-check-file-input"))
    except TimeoutException:
        return [f"{name}: clicking the upload button did not ask for a file"]
    file_input.send_keys(str(SAMPLE_PHOTO))

    def answered(_) -> bool:
        text = box.text
        pictures = box.find_elements(By.CSS_SELECTOR, "img")
        drawn = any(driver.execute_script("return arguments[0].naturalWidth > 0", p) for p in pictures)
        return SAMPLE_PHOTO.name in text and drawn

    try:
        WebDriverWait(driver, 60, poll_frequency=1).until(answered)
    except TimeoutException:
        return [f"{name}: no answer appeared after uploading {SAMPLE_PHOTO.name} (widget says: {box.text[:200]!r})"]
    if "Could not use" in box.text or "went wrong" in box.text:
        return [f"{name}: the upload widget reported a problem: {box.text[:200]!r}"]
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", box)  # for the screenshot
    time.sleep(1)
    return []


def check_notebook(driver, port: int, name: str, out: Path, timeout: float) -> list[str]:
    problems = []
    driver.get(f"http://127.0.0.1:{port}/lab/tree/{name}?token={TOKEN}&reset")
    run_all(driver, timeout)
    time.sleep(2)
    stderr = ".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']"
    errors = driver.find_elements(By.CSS_SELECTOR, stderr)
    tracebacks = [e.text[:300] for e in errors if "Traceback" in e.text or "Error" in e.text.split("\n")[0]]
    problems += [f"{name}: error output: {t}" for t in tracebacks]
    images = driver.find_elements(By.CSS_SELECTOR, ".jp-RenderedImage img")
    broken = [i for i in images if not driver.execute_script("return arguments[0].naturalWidth > 0", i)]
    if broken:
        problems.append(f"{name}: {len(broken)} of {len(images)} figures did not render")
    widget_errors = driver.find_elements(By.XPATH, "//*[contains(text(), 'Error displaying widget')]")
    if widget_errors:
        problems.append(f"{name}: {len(widget_errors)} widgets failed to display")
    dropdowns = driver.find_elements(By.CSS_SELECTOR, ".jupyter-widgets select, .widget-dropdown select")
    if dropdowns:  # a live widget: change it and check the picture beside it changes
        pictures = "img.widget-image, .jupyter-widgets img"
        before = [i.get_attribute("src") for i in driver.find_elements(By.CSS_SELECTOR, pictures)]
        select = Select(dropdowns[0])
        current = [o.text for o in select.options].index(select.first_selected_option.text)
        select.select_by_index(1 if current == 0 else 0)  # another preset
        time.sleep(3)
        after = [i.get_attribute("src") for i in driver.find_elements(By.CSS_SELECTOR, pictures)]
        if before and before == after:
            problems.append(f"{name}: the widget's picture did not change when its dropdown did")
    uploads = driver.find_elements(By.CSS_SELECTOR, "button.widget-upload")
    if uploads:  # a photo-upload widget: upload the sample photo and wait for the answer
        problems += check_upload(driver, name, uploads[0])
    driver.save_screenshot(str(out / f"{Path(name).stem}.png"))
    print(f"{name}: {len(images)} figures, {len(dropdowns)} dropdown widgets, {len(uploads)} upload widgets, "
          f"{'OK' if not problems else 'PROBLEMS'}", flush=True)
    return problems


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("notebooks", nargs="*", help="default: every lesson")
    parser.add_argument("--out", default=str(ROOT / ".browser-check"), help="folder for screenshots")
    parser.add_argument("--timeout", type=float, default=300, help="seconds per notebook")
    args = parser.parse_args()
    lessons = sorted((ROOT / "notebooks").glob("[0-9]*.ipynb"))
    names = [Path(n).name for n in args.notebooks] or [p.name for p in lessons]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    port = free_port()
    lab = start_lab(port)
    driver = browser()
    problems = []
    try:
        for name in names:
            problems += check_notebook(driver, port, name, out, args.timeout)
    finally:
        driver.quit()
        lab.terminate()
        lab.wait(timeout=30)
    for p in problems:
        print("PROBLEM:", p)
    print(f"screenshots in {out}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
