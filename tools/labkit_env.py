"""The environment the tools give the kernels they start (shared by refresh_notebooks.py
and build_book.py).

``labkit/infra/cpu_pins.py`` is loaded from its file: it uses the standard library only, so the
tools set the pins without loading NumPy or PyTorch themselves.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def cpu_pins():
    """The module ``labkit.infra.cpu_pins``, without importing the ``labkit`` package."""
    spec = importlib.util.spec_from_file_location("labkit_cpu_pins",
                                                  ROOT / "labkit" / "infra" / "cpu_pins.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def set_kernel_env(mode: str, results: str | None = None) -> None:
    """Set, in this process's environment (which every kernel it starts inherits): the mode,
    the CPU pins (quick mode; nothing when ``LABKIT_PIN_CPU=0``), no progress bars (stored
    outputs and the built pages hold none) and, if given, the results folder."""
    os.environ["LABKIT_MODE"] = mode
    os.environ["LABKIT_PROGRESS"] = "0"
    cpu_pins().apply()
    if results is not None:
        os.environ["LABKIT_RESULTS"] = results
