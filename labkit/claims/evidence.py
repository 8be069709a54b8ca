"""The archived runs the claims are decided on, loaded once per process, and the rules
several chapters share (the growth law's verdict from a Box-Cox profile interval)."""

from __future__ import annotations

import math
from functools import cache

import numpy as np

from labkit.claims.registry import Outcome

TOLERANCES = (0.005, 0.01, 0.02, 0.03)  # chapter 6's red-line sweep: 0.5 to 3 points


@cache
def archive(name: str):
    """``(table, manifest)`` of ``results/archive/<name>/`` (:func:`labkit.load_archive`)."""
    from labkit.infra.runner import load_archive

    return load_archive(name)


def fmt_p(p: float, lo: float, hi: float) -> str:
    """``p = 0.62 [0.31, 1.10]``, with an open end written as such."""
    def end(v):
        return "-inf" if v == -math.inf else "inf" if v == math.inf else f"{v:.2f}"
    return f"p = {p:.2f} [{end(lo)}, {end(hi)}]"


def log_law(row) -> tuple[str, str]:
    """The log law's verdict from one Box-Cox fit (a row of :func:`labkit.growth_table`):
    *reproduced* if the 95% profile interval of ``p`` holds 0 and excludes 1 (the log law
    is told from the linear one); *consistent (weak test)* if it holds both; *not
    reproduced* if it excludes 0; *not decided* if the law fails its lack-of-fit test
    (p-value below 0.05: no growth law of this family describes the data) or could not be
    fitted. Returns ``(verdict, measured)``."""
    p = row.get("p", np.nan)
    if p is None or not np.isfinite(p):
        return "not decided", f"no fit ({row.get('note', '')})"
    lo, hi = row["p_lo"], row["p_hi"]
    text = fmt_p(p, lo, hi)
    lack = row.get("lack_of_fit", np.nan)
    if np.isfinite(lack):
        text += f", lack of fit p-value {lack:.2f}"
        if lack < 0.05:
            return "not decided", text
    if lo > 0 or hi < 0:
        return "not reproduced", text
    return ("reproduced" if hi < 1 else "consistent (weak test)"), text


def outcome(verdict: str, measured: str, *, holds: bool = True, reason: str = "") -> Outcome:
    return Outcome(verdict, measured, holds, reason)
