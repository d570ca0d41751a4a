"""The interactive explorer as a reader meets it: in JupyterLab, in headless Chromium (Playwright drives Debian's
``chromium``, as tools/check_pages.py does; nothing downloads a browser). A JupyterLab server on a free local
port serves a one-cell notebook that loads the ShapesWorld CLIP (offline) and shows ``gl.widgets.explorer`` on
a ShapesWorld scene; the test runs the cell with Shift+Enter, waits for the widget, fills its text box with
another prompt (an input event, as typing or pasting makes, and no Enter), and checks that the map's pixels and
the word weights change and that the page reported no JavaScript error (page errors, console errors). Skipped
only where no Chromium is installed (``make browser`` installs it for ``make test``)."""

from __future__ import annotations

import base64
import io
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request

import numpy as np
import pytest
from PIL import Image

CHROMIUM = os.environ.get("CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(not CHROMIUM, reason="no Chromium: install Debian's chromium (make browser), "
                                                     "or set $CHROMIUM to a Chromium executable")

FIRST, SECOND = "a red square", "a purple triangle"  # the scene's two objects (seed 1)
CELL = f"""\
import gradeclip_lib as gl
from gradeclip_lib.synthetic.scenes import make_scenes

clip = gl.load("shapes")
scene = make_scenes(1, seed=1, n_objects=2, size=clip.crop_size)[0]
assert [o.phrase for o in scene.objects] == [{FIRST!r}, {SECOND!r}]
gl.widgets.explorer(clip, {{"two objects": scene.image}}, prompt={FIRST!r})
"""
READY_S = 60  # the server answering
WIDGET_S = 150  # kernel start, imports, the model and the first map, on a busy two-core machine
UPDATE_S = 60  # one new prompt


def _notebook() -> dict:
    return {
        "cells": [{"cell_type": "code", "execution_count": None, "id": "explorer", "metadata": {}, "outputs": [],
                   "source": CELL.splitlines(keepends=True)}],
        "metadata": {"kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
                     "language_info": {"name": "python"}},
        "nbformat": 4, "nbformat_minor": 5,
    }


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def lab(tmp_path):
    """A JupyterLab server over a temporary folder holding ``explorer.ipynb``: yields the notebook's URL; the
    server (and its kernels) is shut down afterwards, whatever happened."""
    root = tmp_path / "notebooks"
    root.mkdir()
    (root / "explorer.ipynb").write_text(json.dumps(_notebook()))
    home = tmp_path / "jupyter"  # no settings, workspaces or kernels of this machine's user
    env = {k: v for k, v in os.environ.items() if k not in ("MPLBACKEND", "GRADECLIP_MEMO_DIR")}  # inline figures
    env.update(JUPYTER_CONFIG_DIR=str(home / "config"), JUPYTER_DATA_DIR=str(home / "data"),
               JUPYTER_RUNTIME_DIR=str(home / "runtime"), JUPYTERLAB_SETTINGS_DIR=str(home / "settings"),
               JUPYTERLAB_WORKSPACES_DIR=str(home / "workspaces"), HF_HUB_OFFLINE="1", PYTHONUNBUFFERED="1")
    port, token = _free_port(), secrets.token_hex(16)
    # no "notified about Jupyter news?" box over the page, no check of the lab's build (seconds of CPU)
    (home / "config" / "labconfig").mkdir(parents=True)
    (home / "config" / "labconfig" / "page_config.json").write_text(json.dumps({
        "disabledExtensions": {"@jupyterlab/apputils-extension:announcements": True},
        "buildCheck": False, "buildAvailable": False}))
    log = (tmp_path / "lab.log").open("w")
    server = subprocess.Popen(
        [sys.executable, "-m", "jupyterlab", "--no-browser", "--ip=127.0.0.1", f"--port={port}",
         "--ServerApp.port_retries=0", "--allow-root", f"--IdentityProvider.token={token}",
         f"--ServerApp.root_dir={root}", "--LabApp.expose_app_in_browser=True",
         "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"],
        cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + READY_S
        while True:
            try:
                with urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=5):
                    break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"JupyterLab did not start:\n{(tmp_path / 'lab.log').read_text()[-3000:]}")
                time.sleep(0.2)
        yield f"{base}/lab/tree/explorer.ipynb?token={token}", tmp_path / "lab.log"
    finally:  # SIGTERM: the server shuts its kernel down and exits (a kernel outliving it exits on its own)
        if server.poll() is None:
            server.send_signal(signal.SIGTERM)
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(server.pid, signal.SIGKILL)
                server.wait(timeout=10)
        log.close()


def _pixels(src: str) -> np.ndarray:
    head, data = src.split(",", 1)
    assert head == "data:image/png;base64", head
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(data))).convert("RGB"), dtype=np.int16)


# JupyterLab's own state (the server exposes the app as window.jupyterapp, as JupyterLab's galata tests have it)
KERNEL_READY = """
() => {
  const panel = window.jupyterapp && window.jupyterapp.shell.currentWidget;
  const session = panel && panel.sessionContext && panel.sessionContext.session;
  const kernel = session && session.kernel;
  return !!kernel && kernel.connectionStatus === 'connected' && kernel.status === 'idle';
}
"""

# The explorer's parts by the classes gradeclip_lib/widgets.py gives them
READ = """
() => {
  const root = document.querySelector('.gradeclip-explorer');
  const img = root && root.querySelector('.gradeclip-map img');
  const words = root ? Array.from(root.querySelectorAll('.gradeclip-words span[title]'),
                                  (s) => [s.textContent, s.getAttribute('title')]) : [];
  return {map: img ? img.getAttribute('src') : null, words: words,
          status: root ? root.querySelector('.gradeclip-status').textContent : null};
}
"""


class _Page:
    """The page with what it reported: page errors and console errors."""

    def __init__(self, page, log):
        self.page, self.log, self.errors = page, log, []
        page.on("pageerror", lambda err: self.errors.append(f"page error: {err}"))
        page.on("console", lambda msg: self.errors.append(f"console {msg.type}: {msg.text}")
                if msg.type == "error" else None)

    def wait(self, condition: str, seconds: float, what: str) -> None:
        """Wait for ``condition`` (JavaScript returning true, or a string that says what went wrong)."""
        from playwright.sync_api import TimeoutError as PlaywrightTimeout

        try:
            found = self.page.wait_for_function(condition, timeout=seconds * 1000).json_value()
        except PlaywrightTimeout:
            found = f"not within {seconds} s"
        if found is not True:
            shot = self.log.with_name("page.png")
            self.page.screenshot(path=str(shot))
            outputs = self.page.locator(".jp-OutputArea").all_inner_texts()
            pytest.fail(f"{what}: {found}\ncell outputs: {outputs}\npage errors: {self.errors}\nscreenshot: "
                        f"{shot}\nJupyterLab's log:\n{self.log.read_text()[-3000:]}")


def test_the_explorer_runs_in_jupyterlab_and_follows_the_prompt(lab):
    from playwright.sync_api import sync_playwright

    url, log = lab
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True)
        try:
            page = _Page(browser.new_page(viewport={"width": 1280, "height": 900}), log)
            page.page.goto(url, timeout=READY_S * 1000)
            # Shift+Enter before the notebook's kernel has connected is dropped silently: wait for it
            page.wait(KERNEL_READY, WIDGET_S, "the notebook's kernel did not connect")
            page.page.locator(".jp-NotebookPanel .jp-CodeCell .cm-content").first.click()
            page.page.keyboard.press("Shift+Enter")
            page.wait(f"""() => {{
                const r = ({READ})();
                if (r.map && r.words.length > 0) return true;
                const out = document.querySelector('.jp-NotebookPanel .jp-OutputArea');
                return out && out.innerText.includes('Traceback') ? 'the cell failed' : false; }}""",
                      WIDGET_S, "no explorer")
            before = page.page.evaluate(READ)
            assert [w for w, _ in before["words"]][-2:] == ["red", "square"], before["words"]

            box = page.page.locator(".gradeclip-explorer .gradeclip-prompt input")
            assert box.input_value() == FIRST
            box.fill(SECOND)  # an input event, as typing or pasting makes; no Enter: the map follows the typing
            page.wait(f"""() => {{
                const r = ({READ})();
                return !!r.map && r.map !== {json.dumps(before["map"])}
                    && r.words.map((w) => w[0]).join(' ').endsWith('purple triangle'); }}""",
                      UPDATE_S, "the explorer did not follow the new prompt")
            after = page.page.evaluate(READ)
        finally:
            browser.close()
    old, new = _pixels(before["map"]), _pixels(after["map"])
    assert old.shape == new.shape and (np.abs(old - new).max(axis=-1) > 8).mean() > 0.01  # the map redrawn
    assert [w for w, _ in after["words"]] != [w for w, _ in before["words"]]
    assert [s for _, s in after["words"]] != [s for _, s in before["words"]]  # the weights, not just the words
    assert after["status"] != before["status"] and after["status"].startswith("cos(image, text) = ")
    assert not page.errors, "\n".join(page.errors)
