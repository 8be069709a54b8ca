"""How much pre-training is enough (Section 3.2, Theorems 2-3): the threshold experiment of
chapter 4.

For each dataset size ``m`` and width ``N``, ``len(seeds)`` tanh mean-field networks are
pre-trained by full-batch gradient descent (eq. 5) on teacher-student data as one batched
program (:func:`train_batched`, one ``torch.bmm`` per layer for all seeds). At every
checkpoint each network is pruned by exact GFS to ``k`` neurons; the pruned loss, the dense
loss and Lemma 1's quantities are recorded. Each ``(m, N)`` cell is stored as soon as it is
finished (:func:`labkit.runner.run_cells`), so a killed sweep resumes where it stopped.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from labkit.bounds import diameter
from labkit.data import teacher_student
from labkit.gfs import greedy_forward_selection
from labkit.model import TwoLayerNet
from labkit.runner import run_cells, step_bar
from labkit.store import code_digest

EXPERIMENT = "threshold"
# the source files a cell's numbers depend on (see store.code_digest)
CODE_DIGEST = code_digest("pretraining.py", "gfs.py", "bounds.py", "data.py", "model.py")
# column order of a cell's rows: fixed here, since stored JSON sorts its keys
ROW_FIELDS = ["t", "seed", "dense_loss", "pruned_loss", "loss_z1", "D2_over_m"]


def train_batched(X: torch.Tensor, y: torch.Tensor, W: torch.Tensor, b: torch.Tensor, *,
                  steps: int, lr: float) -> np.ndarray:
    """Full-batch mean-field GD on a batch of independent tanh networks, in place.

    ``X``: ``(B, m, d)``, ``y``: ``(B, m)``, ``W``: ``(B, N, d)``, ``b``: ``(B, N)``. Network
    ``j`` is ``f_j(x) = (1/N) sum_i b_ji tanh(w_ji . x)`` with squared loss
    ``(1/m) sum (f_j - y_j)^2``; the step is ``theta <- theta - lr * N * grad`` exactly as
    :func:`labkit.pretrain_gd` takes it, with the gradient written out by hand (no autograd
    graph per step). Returns the loss of every network before each step and after the last,
    shape ``(steps + 1, B)``.
    """
    m, N = X.shape[1], W.shape[1]
    history = np.empty((steps + 1, X.shape[0]))
    A = torch.empty(X.shape[0], m, N, dtype=X.dtype, device=X.device)  # reused every step
    for t in range(steps + 1):
        torch.bmm(X, W.transpose(1, 2), out=A).tanh_()  # (B, m, N)
        r = torch.baddbmm(y.unsqueeze(2), A, b.unsqueeze(2), beta=-1, alpha=1 / N).squeeze(2)
        history[t] = (r * r).mean(1).cpu().numpy()  # r = f - y, the residual (B, m)
        if not np.isfinite(history[t]).all():
            raise FloatingPointError(f"pre-training diverged at iteration {t} (lr={lr}, N={N})")
        if t == steps:
            break
        g = (2 / m) * r  # dL/df
        grad_b = torch.bmm(A.transpose(1, 2), g.unsqueeze(2)).squeeze(2) / N
        # dL/dw_i = (b_i/N) sum_j (1 - A_ji^2) g_j x_j = (b_i/N) [g^T X - (A^2)^T (g X)]_i:
        # one elementwise pass (the square, in place) instead of building dL/dZ, and the
        # product as (gX)^T A^2, (B, d, N), which runs 3x faster than A^2^T (gX) at d = 10
        gX = g.unsqueeze(2) * X  # (B, m, d)
        AgX = torch.bmm(gX.transpose(1, 2), A.square_())  # (B, d, N)
        grad_W = (gX.sum(1).unsqueeze(2) - AgX).transpose(1, 2).mul_(b.unsqueeze(2) / N)
        b -= lr * N * grad_b
        W -= lr * N * grad_W
    return history


def _init_cell(cfg, m: int, N: int, seed: int, dtype):
    X, y = teacher_student(m, cfg.d, teacher_width=cfg.teacher_width, seed=seed, dtype=dtype)
    net = TwoLayerNet(cfg.d, N, generator=torch.Generator().manual_seed(seed), dtype=dtype)
    return X, y, net.W.detach().clone(), net.b.detach().clone()


def _singular_values(X, W):
    """sigma_min and sigma_max of Definition 1's ``Phi_0 = tanh(X W_0^T)`` (``m x N``)."""
    s = torch.linalg.svdvals(torch.tanh(X @ W.T).double())
    return float(s.min()), float(s.max())


def run_cell(cfg, m: int, N: int, device=None) -> dict:
    """One ``(m, N)`` cell for every seed of ``cfg``: returns plain lists (JSON-ready)."""
    device = torch.device(device or "cpu")
    dtype = getattr(torch, cfg.dtype)
    parts = [_init_cell(cfg, m, N, seed, dtype) for seed in cfg.seeds]
    X, y, W, b = (torch.stack([p[i] for p in parts]).to(device) for i in range(4))
    svals = [_singular_values(X[j], W[j]) for j in range(len(cfg.seeds))]
    rows, t, dense_history = [], 0, []
    with step_bar(cfg.checkpoints[-1], f"m={m} N={N}: pre-training") as bar:
        for target in cfg.checkpoints:
            hist = train_batched(X, y, W, b, steps=target - t, lr=cfg.lr)
            dense_history.append(hist[-1].tolist())
            bar.update(target - t)
            t = target
            for j, seed in enumerate(cfg.seeds):
                Phi = b[j, :, None] * torch.tanh(W[j] @ X[j].T)  # (N, m), as TwoLayerNet
                res = greedy_forward_selection(Phi, y[j], cfg.k)
                D, _ = diameter(Phi)
                rows.append({"t": t, "seed": seed, "dense_loss": float(hist[-1, j]),
                             "pruned_loss": float(res.losses[-1]),
                             "loss_z1": float(res.losses[0]), "D2_over_m": D**2 / m})
    return {"rows": rows,
            "sigma_min": [s[0] for s in svals], "sigma_max": [s[1] for s in svals]}


def cell_work(cfg, cell: dict) -> float:
    """Floating-point operations of one cell, roughly (``--dry-run``'s estimate): full-batch
    GD on every seed (forward and backward, ``6 m N d`` per step) and GFS at every checkpoint
    (``2 N m`` per selected neuron)."""
    m, N, S = cell["m"], cell["N"], len(cfg.seeds)
    train = 6 * m * N * cfg.d * cfg.checkpoints[-1]
    return S * (train + len(cfg.checkpoints) * 2 * cfg.k * N * m)


def run_threshold(cfg, *, out, device=None, only: dict | None = None,
                  dry_run: bool = False) -> pd.DataFrame:
    """The whole sweep over ``cfg.m_values x cfg.widths``, resumable under ``out`` (see
    :func:`labkit.runner.run_cells`: finished cells are reused, and ``results.csv`` and
    ``manifest.json`` are rewritten after each). Returns a tidy table: one row per
    ``(m, N, seed, t)``; ``only`` selects cells, ``dry_run`` returns the plan instead."""
    device = torch.device(device or "cpu")
    cells = [{**cfg.cell_params(m, N), "code": CODE_DIGEST}
             for N in cfg.widths for m in cfg.m_values]

    def to_rows(cell, payload):
        df = pd.DataFrame(payload["rows"], columns=ROW_FIELDS)
        smin = dict(zip(cfg.seeds, payload["sigma_min"], strict=True))
        smax = dict(zip(cfg.seeds, payload["sigma_max"], strict=True))
        df["sigma_min"] = df["seed"].map(smin)
        df["kappa"] = df["seed"].map(smax) / df["sigma_min"]
        df.insert(0, "N", cell["N"])
        df.insert(0, "m", cell["m"])
        return df

    return run_cells(EXPERIMENT, cfg, cells,
                     lambda cell: run_cell(cfg, cell["m"], cell["N"], device), to_rows,
                     out=out, device=device, only=only, dry_run=dry_run,
                     work=lambda cell: cell_work(cfg, cell))


def thresholds(df: pd.DataFrame, eps: float) -> pd.DataFrame:
    """``T*`` per ``(m, N, seed)``: the first pre-training iteration at which the pruned loss
    is within ``eps`` of the reference (``pruned <= reference + eps``), the reference being
    the pruned loss after the longest pre-training of that run. Between checkpoints the
    crossing is interpolated linearly in ``(log(1 + t), log loss)``. Also the empirical
    linear rate of the dense loss: minus the slope of ``log L(t)`` against ``t`` over the
    checkpoints before it drops below 1e-12."""
    if not eps > 0:
        raise ValueError(f"eps: must be positive, got {eps!r}")
    out = []
    for (m, N, seed), g in df.groupby(["m", "N", "seed"]):
        g = g.sort_values("t")
        t, loss = g["t"].to_numpy(float), g["pruned_loss"].to_numpy()
        target = loss[-1] + eps
        above = np.flatnonzero(loss > target)
        if len(above) == 0:
            T = 0.0
        else:
            i = above[-1]  # last checkpoint still above; the next one is within
            x0, x1 = np.log1p(t[i]), np.log1p(t[i + 1])
            y0, y1, yt = np.log(loss[i]), np.log(loss[i + 1]), np.log(target)
            T = float(np.expm1(x0 + (x1 - x0) * (y0 - yt) / (y0 - y1)))
        dense = g["dense_loss"].to_numpy()
        ok = dense > 1e-12
        rate = -np.polyfit(t[ok], np.log(dense[ok]), 1)[0] if ok.sum() >= 2 else np.nan
        out.append({"m": m, "N": N, "seed": seed, "T_star": T, "rate": rate,
                    "sigma_min": g["sigma_min"].iloc[0], "kappa": g["kappa"].iloc[0]})
    return pd.DataFrame(out)


def threshold_summary(T: pd.DataFrame, *, n_boot: int = 2000, seed: int = 0) -> pd.DataFrame:
    """Mean ``T*`` per ``(m, N)`` with a 90% bootstrap interval over seeds."""
    rng = np.random.default_rng(seed)
    rows = []
    for (m, N), g in T.groupby(["m", "N"]):
        v = g["T_star"].to_numpy()
        boots = rng.choice(v, size=(n_boot, len(v)), replace=True).mean(1)
        lo, hi = np.quantile(boots, [0.05, 0.95])
        rows.append({"m": m, "N": N, "T_mean": v.mean(), "T_lo": lo, "T_hi": hi,
                     "kappa": g["kappa"].mean(), "sigma_min": g["sigma_min"].mean(),
                     "rate": g["rate"].mean()})
    return pd.DataFrame(rows)


def fit_growth(m, T) -> pd.DataFrame:
    """Least-squares fits of ``T*(m)``: ``a + b log m`` and ``c m^p`` (both in ``T`` space,
    two parameters each), with their residual sum of squares (the smaller is preferred) and
    the fitted parameters ``theta`` (see :func:`growth_law`)."""
    from scipy.optimize import curve_fit

    m, T = np.asarray(m, float), np.asarray(T, float)
    A = np.vstack([np.ones_like(m), np.log(m)]).T
    (a, b_), *_ = np.linalg.lstsq(A, T, rcond=None)
    rss_log = float(np.sum((A @ [a, b_] - T) ** 2))
    pos = T > 0
    p0 = np.polyfit(np.log(m[pos]), np.log(T[pos]), 1) if pos.sum() >= 2 else [1.0, 0.0]
    (c, p), _ = curve_fit(lambda x, c, p: c * x**p, m, T, p0=[np.exp(p0[1]), p0[0]],
                          maxfev=20000)
    rss_pow = float(np.sum((c * m**p - T) ** 2))
    return pd.DataFrame([
        {"model": "a + b log m", "params": f"a={a:.4g}, b={b_:.4g}", "rss": rss_log,
         "theta": (float(a), float(b_))},
        {"model": "c m^p", "params": f"c={c:.4g}, p={p:.4g}", "rss": rss_pow,
         "theta": (float(c), float(p))},
    ]).set_index("model")


def growth_law(model: str, theta):
    """The fitted curve of :func:`fit_growth` as a function of ``m``."""
    u, v = theta
    if model == "a + b log m":
        return lambda m: u + v * np.log(m)
    return lambda m: u * np.asarray(m, float) ** v
