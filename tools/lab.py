"""Start JupyterLab on the book, set up as the README says.

    .venv/bin/python tools/lab.py [jupyter lab options]

Three things a plain ``jupyter lab`` lacks:
- ``JUPYTER_CONFIG_PATH`` and ``JUPYTER_PATH`` name ``jupyter/``: jupytext's contents
  manager, with the metadata filter that keeps a saved chapter's header as it was
  (``jupyter_server_config.py``); a double-click opening a ``.py`` chapter as a notebook
  (``labconfig/default_setting_overrides.json``); a "Python 3" kernel spec, the name in
  the chapters' headers (``kernels/python3``);
- the server, and so every kernel it starts, runs with quick mode's CPU pins
  (``labkit/infra/cpu_pins.py``), the same as nbval's (``LABKIT_PIN_CPU=0`` or
  ``LABKIT_MODE=full`` turn them off, as everywhere);
- the file browser starts at the repository root.
``tests/test_jupyterlab.py`` starts JupyterLab through :func:`command` and :func:`lab_env`.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CONFIG = ROOT / "jupyter"
sys.path.insert(0, str(Path(__file__).resolve().parent))
import labkit_env  # noqa: E402

cpu_pins = labkit_env.cpu_pins()  # stdlib only: the pins without loading labkit


def lab_env(environ: dict[str, str] | None = None) -> dict[str, str]:
    """``environ`` (default ``os.environ``) with the pins and the book's Jupyter config
    first on ``JUPYTER_CONFIG_PATH`` and ``JUPYTER_PATH``."""
    env = cpu_pins.pinned_env(environ)
    for var in ("JUPYTER_CONFIG_PATH", "JUPYTER_PATH"):
        rest = env.get(var, "")
        env[var] = os.pathsep.join(p for p in (str(CONFIG), rest) if p)
    return env


def command(*args: str, root_dir: Path = ROOT) -> list[str]:
    """The ``jupyter lab`` command line, from this interpreter's environment, serving
    ``root_dir`` (the repository by default)."""
    return [sys.executable, "-m", "jupyterlab", f"--ServerApp.root_dir={root_dir}", *args]


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    cmd = command(*args)
    os.execve(cmd[0], cmd, lab_env())  # replaces this process: signals reach JupyterLab


if __name__ == "__main__":
    sys.exit(main())
