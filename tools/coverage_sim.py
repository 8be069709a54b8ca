"""Coverage of the growth-law interval for ``p`` on the book's own grid (issue 36, item 5;
book design, section 11): simulate per-seed thresholds from a known log law (``p = 0``) and a
known power law (``p = 1``), read them on chapter 6's checkpoint grid as chapter 6 does (the
first checkpoint at or past the crossing), fit ``p`` with the interval-censored likelihood
(``lower`` = the previous checkpoint) and with the exact-value Gaussian fit, and count how
often each 95% profile interval covers the generating ``p``.

    python tools/coverage_sim.py [--sims 200] [--out results/coverage/growth_p.json]

The design is the one in ``tests/test_growth.py`` (``on_grid``): sizes 1K-50K, the threshold
rising from 300 to 2,300 iterations, noise of standard deviation 150 (below the grid's
spacing, so seeds tie), 3 and 10 seeds. Each simulation draws from its own seeded stream.
``tests/test_growth.py`` checks the committed result against the current code's digest.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import labkit  # noqa: F401, I001  # isort: skip  (first: quick mode's CPU pins, before NumPy)
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "results" / "coverage" / "growth_p.json"
CHECKPOINTS = np.array([0, 250, 500, 1000, 1500, 2000, 3000, 4000, 5000, 6000, 7000, 8000])
SIZES = np.array([1000, 5000, 10000, 25000, 50000])
SIGMA = 150.0
DESIGNS = [(p, seeds) for p in (0.0, 1.0) for seeds in (3, 10)]


def on_grid(p: float, seeds: int, sigma: float, rng):
    """Thresholds ``300 + b (m^p - 1)/p + N(0, sigma^2)`` (2,300 at the largest m), read on
    the grid: ``(m, checkpoint, previous checkpoint)``."""
    from labkit.algorithms import growth

    m = np.repeat(SIZES, seeds).astype(float)
    b = 2000.0 / growth.boxcox_term(50000, p)
    T = 300.0 + b * growth.boxcox_term(m, p) + rng.normal(0, sigma, len(m))
    i = np.clip(np.searchsorted(CHECKPOINTS, T), 1, len(CHECKPOINTS) - 1)
    return m, CHECKPOINTS[i].astype(float), CHECKPOINTS[i - 1].astype(float)


def one(args) -> dict:
    """One simulation: both fits' intervals and whether they cover the generating p."""
    from labkit.algorithms import growth

    p, seeds, sim = args
    rng = np.random.default_rng([int(p * 10), seeds, sim])
    m, U, L = on_grid(p, seeds, SIGMA, rng)
    out = {"p": p, "seeds": seeds, "sim": sim}
    for name, lower in (("interval", L), ("exact", None)):
        fit = growth.fit_boxcox(m, U, lower=lower, grid=growth.COARSE_GRID)
        lo, hi = fit.p_interval
        out[name] = {"lo": lo, "hi": hi, "covers": bool(lo <= p <= hi)}
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sims", type=int, default=200)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--out", default=str(OUT))
    args = ap.parse_args(argv)
    from labkit.infra.store import code_digest

    start = time.perf_counter()
    jobs = [(p, s, i) for p, s in DESIGNS for i in range(args.sims)]
    with ProcessPoolExecutor(args.workers) as ex:
        runs = list(ex.map(one, jobs, chunksize=8))
    summary = []
    for p, seeds in DESIGNS:
        sel = [r for r in runs if r["p"] == p and r["seeds"] == seeds]
        summary.append({"p": p, "seeds": seeds, "sims": len(sel),
                        **{f"coverage_{k}": float(np.mean([r[k]["covers"] for r in sel]))
                           for k in ("interval", "exact")}})
    record = {"code": code_digest("algorithms/growth.py"), "sigma": SIGMA,
              "checkpoints": CHECKPOINTS.tolist(), "sizes": SIZES.tolist(),
              "seconds": round(time.perf_counter() - start, 1), "summary": summary,
              "runs": runs}
    path = Path(args.out)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record, indent=1) + "\n")
    for row in summary:
        print(row)
    return 0


if __name__ == "__main__":
    sys.exit(main())
