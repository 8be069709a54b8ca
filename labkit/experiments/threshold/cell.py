"""How much pre-training is enough (Section 3.2, Theorems 2-3): the threshold experiment of
chapter 4.

For each dataset size ``m`` and width ``N``, ``len(seeds)`` tanh mean-field networks are
pre-trained by full-batch gradient descent (eq. 5) on teacher-student data as one batched
program (:func:`train_batched`, one ``torch.bmm`` per layer for all seeds). At every
checkpoint each network is pruned by exact GFS to ``k`` neurons; the pruned loss, the dense
loss and Lemma 1's quantities are recorded. Each ``(m, N)`` cell is stored as soon as it is
finished (:func:`labkit.infra.runner.run_cells`), so a killed sweep resumes where it stopped.
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from labkit.algorithms.gfs import greedy_forward_selection
from labkit.algorithms.model import TwoLayerNet
from labkit.algorithms.rmt import kappa_infinite
from labkit.algorithms.teacher import teacher_student
from labkit.algorithms.train import weight_movement
from labkit.infra.runner import run_cells, step_bar
from labkit.infra.store import code_digest

EXPERIMENT = "threshold"
BATCH_ENTRIES = 1 << 22  # activations (B m N) per batched training call
ROW_FIELDS = ["t", "seed", "dense_loss"]
MOVEMENT_FIELDS = ["rel_first", "max_neuron", "rel_second", "max_b_move", "phi_norm2"]
# the source files a cell's numbers depend on (see store.code_digest)
CODE_DIGEST = code_digest("experiments/threshold/cell.py", "algorithms/fused_gd.py",
                          "algorithms/gfs.py", "algorithms/rmt.py", "infra/data.py",
                          "algorithms/teacher.py", "algorithms/model.py", "algorithms/train.py")


SCALINGS = ("theorem", "mean_field")


def train_batched(X: torch.Tensor, y: torch.Tensor, W: torch.Tensor, b: torch.Tensor, *,
                  steps: int, lr: float, scaling: str = "mean_field", sigma_max=None,
                  fused: bool | None = None) -> np.ndarray:
    """Full-batch GD on a batch of independent tanh networks, in place.

    ``X``: ``(B, m, d)``, ``y``: ``(B, m)``, ``W``: ``(B, N, d)``, ``b``: ``(B, N)``. Network
    ``j`` is ``f_j(x) = (1/N) sum_i b_ji tanh(w_ji . x)`` with squared loss
    ``(1/m) sum (f_j - y_j)^2``, the gradient written out by hand (no autograd graph per
    step). Two step rules (chapter 4):

    - ``"mean_field"``: ``theta <- theta - lr * N * grad`` for both layers, exactly as
      :func:`labkit.pretrain_gd` takes it (each neuron moves ``O(1)``: not the NTK regime);
    - ``"theorem"``: Theorem 2's step. Appendix B identifies the network with Song et al.'s
      ``Phi V``, ``V = b / N``; one GD step ``eta`` on ``(W, V)`` is a step ``N^2 eta`` on
      ``b`` and ``eta`` on ``W``, with ``eta = lr * m / (2 sigma_max(Phi_0)^2)`` per network
      (``sigma_max``, shape ``(B,)``), the largest step for which the second layer's residual
      contracts (``lr = 1``: by ``1 - 1/kappa^2`` per step in its slowest direction).

    ``fused``: on the CPU in float32 (the default there) the step runs as two compiled
    passes over the activations (:mod:`labkit.algorithms.fused_gd`, the same update to float32
    rounding, several times faster: ``benchmarks/batched_pretraining.py``); elsewhere
    (CUDA, float64, or ``fused=False``) as the PyTorch program below.

    Returns the loss of every network before each step and after the last, shape
    ``(steps + 1, B)``.
    """
    if scaling not in SCALINGS:
        raise ValueError(f"scaling: unknown step rule {scaling!r}; allowed: {', '.join(SCALINGS)}")
    B, m, N = X.shape[0], X.shape[1], W.shape[1]
    if scaling == "theorem":
        if sigma_max is None:
            raise ValueError("sigma_max: the theorem's step needs sigma_max(Phi_0) per network")
        eta = lr * m / (2 * torch.as_tensor(sigma_max, dtype=X.dtype, device=X.device) ** 2)
        step_b, step_W = (N * N * eta).view(B, 1), eta.view(B, 1, 1)
    else:
        step_b = step_W = lr * N
    cpu32 = X.device.type == "cpu" and X.dtype == torch.float32
    if fused is None:
        fused = cpu32
    if fused:
        if not cpu32:
            raise ValueError(f"fused: the fused step runs on the CPU in float32, not on "
                             f"{X.device.type} in {X.dtype}; use fused=False or None")
        from labkit.algorithms import fused_gd  # loads numba on first use only (a second to import)

        per_net = [torch.as_tensor(s, dtype=torch.float32).flatten().expand(B).numpy()
                   for s in (step_b, step_W)]
        Wn, bn = W.detach().numpy(), b.detach().numpy()  # views: updated in place
        history, bad = fused_gd.train(X.detach().numpy(), y.detach().numpy(), Wn, bn, steps,
                                      *per_net)
        if bad >= 0:
            raise FloatingPointError(f"pre-training diverged at iteration {bad} (lr={lr}, "
                                     f"N={N})")
        return history
    history = np.empty((steps + 1, B))
    A = torch.empty(B, m, N, dtype=X.dtype, device=X.device)  # reused every step
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
        b -= step_b * grad_b
        W -= step_W * grad_W
    return history


def _init_cell(cfg, m: int, N: int, d: int, seed: int, dtype):
    X, y = teacher_student(m, d, teacher_width=cfg.teacher_width, seed=seed, dtype=dtype)
    net = TwoLayerNet(d, N, generator=torch.Generator().manual_seed(seed), dtype=dtype)
    return X, y, net.W.detach().clone(), net.b.detach().clone()


@functools.lru_cache(maxsize=64)
def _kappa_infinite(m: int, d: int, teacher_width: int, seed: int) -> float:
    """The wide-width limit of kappa for one run's data (it does not depend on ``N`` or the
    step rule, so a sweep computes it once per ``(m, d, seed)``)."""
    X, _ = teacher_student(m, d, teacher_width=teacher_width, seed=seed, dtype=torch.float64)
    return kappa_infinite(X)


def _linear_crossings(U, S, r0, factor, steps: int, deltas) -> list[int]:
    """First step at which the loss of the *second-layer-only* linear model falls to each
    ``delta``: with the features frozen at ``Phi_0`` (``m x N``, SVD ``U S V^T``), GD on
    ``b`` multiplies the residual's component along ``u_j`` by ``1 - factor * s_j^2`` per
    step, so ``L(t) = (1/m) sum_j (u_j . r_0)^2 (1 - factor s_j^2)^(2t)`` exactly.
    ``-1``: not within ``steps``."""
    c2 = (U.T @ r0.double()) ** 2
    rest = float(r0.double() @ r0.double() - c2.sum())  # outside the column space (m > N)
    q = (1 - factor * S**2) ** 2
    out, t = [], torch.arange(steps + 1, dtype=torch.float64)
    # (steps + 1, m) at once is at most 8001 x 1024 doubles: 66 MB
    L = ((q[None, :] ** t[:, None]) * c2[None, :]).sum(1).add_(max(rest, 0.0)) / len(r0)
    for delta in deltas:
        hit = torch.nonzero(L <= delta)
        out.append(int(hit[0]) if len(hit) else -1)
    return out


def history_steps(steps: int, n: int = 60) -> list[int]:
    """The steps at which a cell keeps the dense loss for plots: 0 and about ``n``
    log-spaced steps up to ``steps`` (thresholds are read from every step, in the cell)."""
    grid = np.unique(np.round(np.logspace(0, np.log10(max(steps, 1)), n)).astype(int))
    return [0, *[int(v) for v in grid if v <= steps]]


def _first_crossings(history: np.ndarray, offset: int, deltas, found: np.ndarray) -> None:
    """Update ``found[i, j]`` (first step with loss <= ``deltas[i]`` for network ``j``,
    ``-1`` while none) from the losses ``history`` of steps ``offset, offset + 1, ...``."""
    for i, delta in enumerate(deltas):
        below = history <= delta  # (steps, B)
        for j in np.flatnonzero((found[i] < 0) & below.any(0)):
            found[i, j] = offset + int(np.argmax(below[:, j]))


def run_cell(cfg, m: int, N: int, d: int, scaling: str, device=None) -> dict:
    """One ``(m, N, d, scaling)`` cell for every seed of ``cfg``: plain lists (JSON-ready).

    Per seed: ``sigma_min``/``sigma_max`` of ``Phi_0`` (Definition 1), the infinite-width
    kappa, the first step at which the dense loss reaches each ``cfg.deltas`` (read from
    every step's loss, ``-1`` if not within the horizon) and the same for the
    second-layer-only linear model, and ``sigma_min`` of the features at the horizon (how
    far they moved from ``Phi_0``). Per checkpoint and seed: the dense loss, the GFS loss at
    ``cfg.k_values`` neurons, the selection (``cfg.k`` indices in order), the weight
    movement (:func:`labkit.weight_movement`) and Lemma 3's ``max_i ||Phi_i||^2 / m``."""
    device = torch.device(device or "cpu")
    dtype = getattr(torch, cfg.dtype)
    lr = cfg.lr_theorem if scaling == "theorem" else cfg.lr_mean_field
    parts = [_init_cell(cfg, m, N, d, seed, dtype) for seed in cfg.seeds]
    X, y, W, b = (torch.stack([p[i] for p in parts]) for i in range(4))
    W0, b0 = W.clone(), b.clone()
    per_seed = []
    for j, seed in enumerate(cfg.seeds):
        Phi0 = torch.tanh(X[j] @ W[j].T)  # (m, N), Definition 1
        U, s, _ = torch.linalg.svd(Phi0.double(), full_matrices=False)
        r0 = Phi0 @ b[j] / N - y[j]
        factor = (lr / float(s[0]) ** 2 if scaling == "theorem" else 2 * lr / (m * N))
        per_seed.append({
            "sigma_min": float(s[min(m, N) - 1]), "sigma_max": float(s[0]),
            "kappa_inf": _kappa_infinite(m, d, cfg.teacher_width, seed),
            "L0": float(r0 @ r0 / m),
            "T_lin": _linear_crossings(U, s, r0, factor, cfg.steps, cfg.deltas)})
    sigma_max = torch.tensor([p["sigma_max"] for p in per_seed], dtype=torch.float64)
    X, y, W, b = (v.to(device) for v in (X, y, W, b))
    # seeds train in groups of at most BATCH_ENTRIES activations: one network of m = 1024,
    # N = 4096 alone runs 1.9x faster per step than ten batched, whose 168 MB of
    # activations leave the cache (measured on the 2-core CPU)
    per_group = max(1, BATCH_ENTRIES // (m * N))
    groups = [slice(lo, lo + per_group) for lo in range(0, len(cfg.seeds), per_group)]
    found = np.full((len(cfg.deltas), len(cfg.seeds)), -1)
    keep = history_steps(cfg.steps)
    history, rows, t = {}, [], 0
    with step_bar(cfg.steps, f"m={m} N={N} d={d} {scaling}: pre-training") as bar:
        for target in cfg.checkpoints:
            hist = np.concatenate([  # the steps t..target of every seed, (steps + 1, S)
                train_batched(X[g], y[g], W[g], b[g], steps=target - t, lr=lr,
                              scaling=scaling, sigma_max=sigma_max[g]) for g in groups], 1)
            _first_crossings(hist[1:] if target > t else hist, t + (target > t), cfg.deltas,
                             found)
            history.update({s: hist[s - t].tolist() for s in keep if t <= s <= target})
            bar.update(target - t)
            t = target
            for j, seed in enumerate(cfg.seeds):
                Phi = b[j, :, None] * torch.tanh(W[j] @ X[j].T)  # (N, m), as TwoLayerNet
                res = greedy_forward_selection(Phi.cpu(), y[j].cpu(), cfg.k)
                move = weight_movement(W0[j], W[j].cpu(), b0[j], b[j].cpu())
                rows.append({
                    "t": t, "seed": seed, "dense_loss": float(hist[-1, j]),
                    **{f"pruned_{kk}": float(res.losses[kk - 1]) for kk in cfg.k_values},
                    **move, "max_b_move": float((b[j].cpu() - b0[j]).abs().max()),
                    "phi_norm2": float((Phi * Phi).sum(1).max()) / m,
                    "selection": res.order.tolist()})
    for j, p in enumerate(per_seed):
        p["T_dense"] = found[:, j].tolist()
        # how far the features moved from Definition 1's: sigma_min of Phi at the horizon
        Phi_end = torch.tanh(X[j] @ W[j].T).double().cpu()
        p["sigma_min_end"] = float(torch.linalg.svdvals(Phi_end)[min(m, N) - 1])
    return {"rows": rows, "seeds": per_seed,
            "history": {str(s): v for s, v in sorted(history.items())}}


def cell_work(cfg, cell: dict) -> float:
    """Floating-point operations of one cell, roughly (``--dry-run``'s estimate): full-batch
    GD on every seed (the step's products, ``6 m N d``, plus ~20 for tanh and the
    elementwise passes per entry) and GFS at every checkpoint (``2 N m`` per neuron)."""
    m, N, d, S = cell["m"], cell["N"], cell["d"], len(cfg.seeds)
    train = (6 * d + 20) * m * N * cfg.steps
    return S * (train + len(cfg.checkpoints) * 2 * cfg.k * N * m)


def run_threshold(cfg, *, out, device=None, only: dict | None = None,
                  dry_run: bool = False, name: str = EXPERIMENT) -> pd.DataFrame:
    """The whole sweep, one cell per ``(d, m, N, scaling)`` of ``cfg.cells()``, resumable
    under ``out`` (see :func:`labkit.infra.runner.run_cells`: finished cells are reused, and
    ``results.csv`` and ``manifest.json`` are rewritten after each). Returns a tidy table,
    one row per ``(m, N, d, scaling, seed, t)``: the checkpoints (with the pruned losses)
    and the kept steps of the dense loss (``kind``), the per-seed quantities repeated;
    ``only`` selects cells, ``dry_run`` returns the plan instead."""
    device = torch.device(device or "cpu")
    cells = [{**cfg.cell_params(**c), "code": CODE_DIGEST} for c in cfg.cells()]

    def to_rows(cell, payload):
        # fixed column and step order: a cell read back from JSON has its keys sorted
        df = pd.DataFrame(payload["rows"], columns=ROW_FIELDS + [
            f"pruned_{k}" for k in cfg.k_values] + MOVEMENT_FIELDS)
        df.insert(0, "kind", "checkpoint")
        steps = sorted(payload["history"], key=int)
        hist = pd.DataFrame([{"kind": "history", "t": int(s), "seed": seed, "dense_loss": v}
                             for s in steps
                             for seed, v in zip(cfg.seeds, payload["history"][s], strict=True)])
        df = pd.concat([df, hist], ignore_index=True)
        for j, seed in enumerate(cfg.seeds):
            p = payload["seeds"][j]
            sel = df["seed"] == seed
            for key in ("sigma_min", "sigma_max", "kappa_inf", "L0", "sigma_min_end"):
                df.loc[sel, key] = p[key]
            for delta, T_dense, T_lin in zip(cfg.deltas, p["T_dense"], p["T_lin"],
                                             strict=True):
                df.loc[sel, f"T_dense_{delta:g}"] = T_dense
                df.loc[sel, f"T_lin_{delta:g}"] = T_lin
        df["kappa"] = df["sigma_max"] / df["sigma_min"]
        for key in ("scaling", "d", "N", "m"):  # each to the front: m, N, d, scaling, ...
            df.insert(0, key, cell[key])
        return df

    return run_cells(name, cfg, cells,
                     lambda c: run_cell(cfg, c["m"], c["N"], c["d"], c["scaling"], device),
                     to_rows, out=out, device=device, only=only, dry_run=dry_run,
                     work=lambda c: cell_work(cfg, c))


def load_selections(cfg, out, name: str = EXPERIMENT) -> pd.DataFrame:
    """The GFS selection of every checkpoint of a finished sweep under ``out`` (one row per
    ``(m, N, d, scaling, seed, t)``, ``selection`` the ``cfg.k`` neuron indices in order):
    what a stopping rule (a later chapter) is evaluated on."""
    from labkit.infra.store import ResultStore

    store, rows = ResultStore(Path(out) / name / "cells"), []
    for c in cfg.cells():
        payload = store.load(name, {**cfg.cell_params(**c), "code": CODE_DIGEST})
        if payload is None:
            continue
        rows += [{**c, "seed": r["seed"], "t": r["t"], "selection": r["selection"]}
                 for r in payload["rows"]]
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
