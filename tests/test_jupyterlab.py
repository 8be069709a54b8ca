"""The JupyterLab path, live: a real JupyterLab server started the way ``tools/lab.py``
starts it (the book's ``jupyter/`` settings, quick mode's CPU pins), driven by headless
Chromium through Playwright, the same browser the book's page check uses.

Each chapter is opened *as a notebook* (a double-click on a ``.py`` chapter, through the
settings in ``jupyter/``), every cell is run, and no cell may show an error; in chapter 2
the explorer's slider must render and moving it must redraw the explorer's figure. A
chapter whose cell raises must be reported, so the check can fail.

The server runs on 127.0.0.1 on a free port with a random token, on copies of the
chapters in a temporary folder (a notebook's autosave cannot touch the repository), and
is shut down by process id, with its kernels. Every wait is bounded and says what it was
waiting for. Skipped without Chromium, except under ``CI=true``, where it must run.
"""

from __future__ import annotations

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
from pathlib import Path

import psutil
import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))
import browser_check  # noqa: E402
import lab  # noqa: E402

del sys.path[0]
from labkit.infra import cpu_pins  # noqa: E402

if not Path(browser_check.CHROMIUM).is_file():
    if os.environ.get("CI") == "true":
        raise RuntimeError(f"CI must run the JupyterLab test: {browser_check.CHROMIUM} is "
                           "missing (apt-get install -y chromium)")
    pytest.skip("needs Chromium (apt-get install chromium)", allow_module_level=True)

from playwright.sync_api import sync_playwright  # noqa: E402

CHAPTERS = ("01_network.py", "02_gfs_frank_wolfe.py")
START_S = 90     # server answering /api/status
OPEN_S = 60      # a chapter open as a notebook, its kernel ready
RUN_S = 240      # all cells of one chapter run
WIDGET_S = 30    # the explorer redrawn after a key press
# CI has no network and no need for the extension manager's or the news feed's requests
OFFLINE = ("--LabApp.extension_manager=readonly",
           "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate")
ROOT_USER = ("--allow-root",) if os.geteuid() == 0 else ()  # CI's containers run as root

BROKEN = '''\
# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %%
x = 1
x

# %%
raise RuntimeError("a chapter cell that raises")

# %%
y = 2
'''

# A kernel's environment before anything is imported: the CPU pins come from the server
PINS = """\
# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %%
import json
import os

print(json.dumps({k: os.environ.get(k) for k in %r}))
"""

# In the page: the notebook in the main area, as {path, cells: [{type, count, outputs}]}.
NOTEBOOK = """() => {
  const panel = window.jupyterapp.shell.currentWidget;
  if (!panel || !panel.content || !panel.content.widgets) return null;
  return {
    path: panel.context.path,
    kernel: panel.sessionContext.session?.kernel?.status ?? null,
    cells: panel.content.widgets.map(c => ({
      type: c.model.type,
      count: c.model.type === 'code' ? c.model.executionCount : null,
      outputs: c.model.type === 'code' ? c.model.outputs.toJSON() : [],
    })),
  };
}"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=5) as r:
        return json.loads(r.read())


class Lab:
    """A JupyterLab server on ``root``; ``stop`` ends it and every process it started."""

    def __init__(self, root: Path, log: Path):
        self.port, self.token = _free_port(), secrets.token_hex(16)
        self.url = f"http://127.0.0.1:{self.port}"
        env = lab.lab_env()
        runtime = root.parent / "jupyter-runtime"
        env.update(JUPYTER_RUNTIME_DIR=str(runtime), LABKIT_RESULTS=str(root.parent / "res"),
                   JUPYTERLAB_WORKSPACES_DIR=str(runtime / "workspaces"))
        self.log, self.root = log, root
        self.proc = subprocess.Popen(
            lab.command("--no-browser", "--ServerApp.ip=127.0.0.1",
                        f"--ServerApp.port={self.port}", "--ServerApp.port_retries=0",
                        f"--IdentityProvider.token={self.token}",
                        "--LabApp.expose_app_in_browser=True", *OFFLINE, *ROOT_USER,
                        root_dir=root),
            env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT)
        deadline = time.monotonic() + START_S
        while True:
            if self.proc.poll() is not None:
                raise AssertionError(f"JupyterLab exited ({self.proc.returncode}):\n{self.tail()}")
            try:
                _get(f"{self.url}/api/status?token={self.token}")
                return
            except OSError:
                if time.monotonic() > deadline:
                    self.stop()
                    raise AssertionError(f"JupyterLab did not answer /api/status within "
                                         f"{START_S} s:\n{self.tail()}") from None
                time.sleep(0.5)

    def tail(self, n: int = 4000) -> str:
        return self.log.read_text(errors="replace")[-n:]

    def stop(self) -> None:
        """SIGTERM to the server and to every process below it (kernels run in sessions of
        their own, so a process group would miss them), SIGKILL after 10 s."""
        try:
            procs = [psutil.Process(self.proc.pid)]
            procs += procs[0].children(recursive=True)
        except psutil.NoSuchProcess:
            procs = []
        for p in procs:
            try:
                p.send_signal(signal.SIGTERM)
            except psutil.NoSuchProcess:
                pass
        _, alive = psutil.wait_procs(procs, timeout=10)
        for p in alive:
            p.kill()
        self.proc.wait(timeout=10)


def _wait(page, what: str, js: str, timeout_s: float, arg=None):
    """Poll ``js`` in the page until it returns a truthy value; fail saying ``what``."""
    try:
        return page.wait_for_function(js, arg=arg, timeout=timeout_s * 1000,
                                      polling=250).json_value()
    except Exception as e:  # Playwright's TimeoutError, or the page gone
        raise AssertionError(f"gave up after {timeout_s} s waiting for {what}: {e}") from None


def run_notebook(page, server: Lab, name: str) -> dict:
    """Open ``name`` as a notebook (the default viewer for ``.py``), run all cells and return
    the notebook's state (``NOTEBOOK``) once the run is over."""
    page.goto(f"{server.url}/lab/tree/{name}?token={server.token}&reset")
    _wait(page, f"{name} to open as a notebook with a ready kernel",
          """(name) => { const p = window.jupyterapp?.shell?.currentWidget;
             return p && p.context && p.context.path === name && p.content?.widgets
                    && p.sessionContext?.session?.kernel?.status === 'idle'; }""",
          OPEN_S, arg=name)
    page.evaluate("() => { window.__ran = null; window.jupyterapp.commands"
                  ".execute('notebook:run-all-cells').then(r => { window.__ran = r; }); }")
    # run-all resolves when the last cell is done, or stops at the first error
    _wait(page, f"all cells of {name} to run", "() => window.__ran !== null", RUN_S)
    _wait(page, f"the kernel of {name} to be idle",
          "() => window.jupyterapp.shell.currentWidget.sessionContext"
          ".session.kernel.status === 'idle'", OPEN_S)
    return page.evaluate(NOTEBOOK)


def errors(state: dict) -> list[str]:
    """Every error output and every code cell left unrun, as readable lines."""
    out = []
    for i, cell in enumerate(state["cells"]):
        for o in cell["outputs"]:
            if o.get("output_type") == "error":
                out.append(f"cell {i}: {o['ename']}: {o['evalue']}")
            elif o.get("output_type") == "stream" and o.get("name") == "stderr" \
                    and "Traceback" in "".join(o.get("text", "")):
                out.append(f"cell {i}: a traceback on stderr")
        if cell["type"] == "code" and cell["count"] is None:
            out.append(f"cell {i}: not run")
    return out


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("lab") / "book"
    root.mkdir()
    for name in CHAPTERS:
        shutil.copy(ROOT / "chapters" / name, root / name)
    (root / "broken.py").write_text(BROKEN)
    (root / "pins.py").write_text(PINS % sorted(cpu_pins.pins()))
    s = Lab(root, root.parent / "jupyterlab.log")
    yield s
    s.stop()


@pytest.fixture(scope="module")
def page(server):
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=browser_check.CHROMIUM,
                                     args=browser_check.CHROMIUM_ARGS)
        try:
            yield browser.new_page(viewport={"width": 1280, "height": 900})
        finally:
            browser.close()


def test_chapter_1_runs_as_a_notebook_and_saves_unchanged(server, page):
    state = run_notebook(page, server, "01_network.py")
    assert sum(c["type"] == "code" for c in state["cells"]) > 5, state["cells"]
    assert errors(state) == [], server.tail()
    assert any(o.get("output_type") == "display_data" and "image/png" in o.get("data", {})
               for c in state["cells"] for o in c["outputs"]), "chapter 1 drew no figure"
    # a reader's save after a run writes the chapter back as it was: same cells, same
    # header (jupyter/jupyter_server_config.py's metadata filter), no outputs
    saved = server.root / "01_network.py"
    before = saved.stat().st_mtime_ns
    time.sleep(0.05)  # a save within the same clock tick would not move the time
    page.evaluate("() => window.jupyterapp.commands.execute('docmanager:save')")
    deadline = time.monotonic() + OPEN_S
    while saved.stat().st_mtime_ns == before:  # so that a save that did nothing fails
        assert time.monotonic() < deadline, f"01_network.py not saved within {OPEN_S} s"
        time.sleep(0.2)
    _wait(page, "the save of 01_network.py to finish",
          "() => !window.jupyterapp.shell.currentWidget.context.model.dirty", OPEN_S)
    assert saved.read_text() == (ROOT / "chapters" / "01_network.py").read_text()


def test_the_kernel_has_nbvals_cpu_pins(server, page):
    state = run_notebook(page, server, "pins.py")
    assert errors(state) == []
    seen = json.loads("".join(state["cells"][-1]["outputs"][0]["text"]))
    assert seen == cpu_pins.pins(os.environ) and seen, seen


def test_chapter_2_runs_and_its_explorer_responds(server, page):
    state = run_notebook(page, server, "02_gfs_frank_wolfe.py")
    assert errors(state) == [], server.tail()
    slider = page.locator(".jp-OutputArea .widget-slider").first
    slider.wait_for(state="visible", timeout=WIDGET_S * 1000)
    box = slider.locator("xpath=ancestor::div[contains(@class,'widget-interact')]").first
    readout = box.locator(".widget-readout").first
    image = box.locator(".widget-output img").first
    image.wait_for(state="visible", timeout=WIDGET_S * 1000)
    before = (readout.inner_text(), image.get_attribute("src"))
    assert before[0] == "32", before[0]
    slider.locator(".noUi-handle").first.focus()
    page.keyboard.press("ArrowRight")
    _wait(page, "the explorer's figure to change after the slider moved",
          """([src]) => { const i = document.querySelector(
                 '.widget-interact .widget-output img');
             return i && i.getAttribute('src') !== src; }""", WIDGET_S, arg=[before[1]])
    assert readout.inner_text() == "33"


def test_a_cell_that_raises_is_reported(server, page):
    state = run_notebook(page, server, "broken.py")
    assert errors(state) == ["cell 1: RuntimeError: a chapter cell that raises",
                             "cell 2: not run"]


def test_kernels_are_stopped_with_the_server(tmp_path):
    """The teardown leaves no process behind: a server with a running kernel, stopped by
    ``Lab.stop``, takes the kernel with it."""
    root = tmp_path / "book"
    root.mkdir()
    s = Lab(root, tmp_path / "jupyterlab.log")
    try:
        req = urllib.request.Request(f"{s.url}/api/kernels?token={s.token}", data=b"{}",
                                     method="POST")
        with urllib.request.urlopen(req, timeout=30):
            pass
        kids = psutil.Process(s.proc.pid).children(recursive=True)
        assert kids, "the kernel started no process"
    finally:
        s.stop()
    assert not [k for k in kids if k.is_running() and k.status() != psutil.STATUS_ZOMBIE]
