"""Run mode, seeding and device choice: the one place that decides them.

Every chapter runs in one of two modes (book design, section 2):

- ``quick`` (default): CPU, fixed seeds, small sizes, offline data only;
- ``full``: paper scale, on a GPU when one is present.

The mode comes from the ``LABKIT_MODE`` environment variable unless passed explicitly.
"""

from __future__ import annotations

import os
import random

import numpy as np
import torch

MODES = ("quick", "full")


def get_mode(mode: str | None = None) -> str:
    """Return the run mode: ``mode`` if given, else ``$LABKIT_MODE``, else ``quick``."""
    if mode is None:
        mode = os.environ.get("LABKIT_MODE", "quick").strip().lower() or "quick"
    if mode not in MODES:
        raise ValueError(
            f"mode: unknown mode {mode!r}; allowed: {', '.join(MODES)} "
            "(set LABKIT_MODE or pass mode=...)"
        )
    return mode


def get_device(mode: str | None = None, device: str | None = None) -> torch.device:
    """Choose the device: CPU in quick mode (reproducible outputs for nbval), CUDA in full
    mode when available. An explicit ``device`` wins over both."""
    if device is not None:
        return torch.device(device)
    if get_mode(mode) == "full" and torch.cuda.is_available():
        return torch.device("cuda")
    return torch.device("cpu")


def seed_everything(seed: int) -> torch.Generator:
    """Seed Python, NumPy and torch; return a CPU ``torch.Generator`` seeded the same way,
    for code that wants its own stream."""
    if not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed: must be a non-negative integer, got {seed!r}")
    random.seed(int(seed))
    np.random.seed(int(seed) % 2**32)
    torch.manual_seed(int(seed))
    return torch.Generator().manual_seed(int(seed))
