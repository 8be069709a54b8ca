"""Chapter 4's threshold sweep at paper scale (issue 24, the ``threshold_gpu`` preset): the
cell of :func:`labkit.experiments.threshold.cell.run_cell` with all of its linear algebra on
the training
device, so that ``m = 8,192`` points and width ``N = 32,768`` fit one GPU loan.

What differs from the archived CPU cell, and why. At that size the CPU parts of
:func:`~labkit.experiments.threshold.cell.run_cell` would dominate a GPU run. Measured on two
cores at
``m = 2048`` and scaled by ``m^2 N``, the float64 SVD of one seed's ``m x N`` features
would take ~18 min. Scaled by ``m^2``, the infinite-width kernel of
:func:`labkit.algorithms.rmt.kernel_matrix` (single-threaded NumPy) would take ~13 min. So:

- Definition 1's singular values come from ``eigh`` of the ``m x m`` Gram matrix
  ``Phi_0 Phi_0^T`` in float64 (:func:`gram_spectrum`); its eigenvectors are ``Phi_0``'s
  left singular vectors, which the second-layer-only model's crossings need. Squaring
  costs ``kappa^2`` in relative precision of ``sigma_min^2`` (``1e-16 kappa^2``: ``1e-8`` at
  ``kappa = 1e4``);
- the infinite-width kernel is the same Gauss-Hermite rule computed by torch on the device
  (:func:`kernel_matrix`);
- GFS (:func:`labkit.greedy_forward_selection`) runs on the device, in the training dtype
  as on the CPU.

Data, initialization, training (:func:`~labkit.experiments.threshold.cell.train_batched`), the
recorded
quantities and the table's layout are chapter 4's. :mod:`labkit.experiments.threshold.cell`
itself is left
unchanged because its source is part of the keys of two archived CPU runs
(``threshold_cpu``, ``stopping_cpu``: six CPU-hours); ``tests/test_threshold_gpu.py`` checks
that this cell and that one agree on the CPU at small size.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import torch

from labkit.algorithms.gfs import greedy_forward_selection
from labkit.algorithms.rmt import _gauss_hermite
from labkit.algorithms.teacher import teacher_student
from labkit.algorithms.train import weight_movement
from labkit.experiments.threshold import cell as pt
from labkit.infra.runner import run_cells, step_bar
from labkit.infra.store import code_digest

EXPERIMENT = "threshold_gpu"
CODE_DIGEST = code_digest("experiments/threshold/cell_gpu.py", "experiments/threshold/cell.py",
                          "algorithms/fused_gd.py", "algorithms/gfs.py", "algorithms/rmt.py",
                          "infra/data.py", "algorithms/teacher.py", "algorithms/model.py",
                          "algorithms/train.py")
KERNEL_BLOCK = 1 << 26  # Gauss-Hermite evaluations per block of kernel_matrix (512 MB)


def gram_spectrum(Phi0: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(U, s)``: the left singular vectors (columns) and singular values, largest first,
    of ``Phi0`` (``m x N``, ``m <= N``), from ``eigh`` of ``Phi0 Phi0^T`` in float64 on
    ``Phi0``'s device (Definition 1's ``sigma_min``/``sigma_max``)."""
    m, N = Phi0.shape
    if m > N:
        raise ValueError(f"Phi0: the Gram route needs m <= N (full row rank), got m = {m}, "
                         f"N = {N}")
    P = Phi0.double()
    lam, U = torch.linalg.eigh(P @ P.T)
    return U.flip(1), lam.flip(0).clamp_min(0).sqrt()


def gram_sigma_min(Phi: torch.Tensor) -> float:
    """``sigma_min`` of ``Phi`` (``m x N``, ``m <= N``) from the Gram matrix's smallest
    eigenvalue (float64, on ``Phi``'s device)."""
    P = Phi.double()
    return float(torch.linalg.eigvalsh(P @ P.T)[0].clamp_min(0).sqrt())


def kernel_matrix(X: torch.Tensor, n: int = 40) -> torch.Tensor:
    """:func:`labkit.algorithms.rmt.kernel_matrix` for tanh on ``X``'s device: ``K_jl = E_w[tanh(w .
    x_j) tanh(w . x_l)]`` for unit-norm rows, by the same ``n x n`` Gauss-Hermite rule, in
    blocks of rows of at most :data:`KERNEL_BLOCK` evaluations (float64)."""
    X = X.double()
    dev = X.device
    z, w = (torch.as_tensor(v, dtype=torch.float64, device=dev) for v in _gauss_hermite(n))
    wu = w * torch.tanh(z)
    rho = (X @ X.T).clamp_(-1.0, 1.0)
    K = torch.empty_like(rho)
    rows = max(1, KERNEL_BLOCK // (len(rho) * n * n))
    for lo in range(0, len(rho), rows):
        r = rho[lo:lo + rows, :, None, None]
        v = r * z[:, None] + torch.sqrt(1 - r**2) * z[None, :]
        K[lo:lo + rows] = torch.einsum("a,b,...ab->...", wu, w, v.tanh_())
    return K


def kappa_infinite(X: torch.Tensor) -> float:
    """:func:`labkit.algorithms.rmt.kappa_infinite` for tanh, the kernel and its spectrum on ``X``'s
    device."""
    eig = torch.linalg.eigvalsh(kernel_matrix(X))
    return float("inf") if eig[0] <= 0 else float(torch.sqrt(eig[-1] / eig[0]))


def run_cell(cfg, m: int, N: int, d: int, scaling: str, device=None) -> dict:
    """One ``(m, N, d, scaling)`` cell for every seed of ``cfg``, the payload of
    :func:`labkit.experiments.threshold.cell.run_cell` (the same fields, the same meaning),
    computed with
    the spectra, the kernel and GFS on ``device`` (see the module's docstring)."""
    device = torch.device(device or "cpu")
    dtype = getattr(torch, cfg.dtype)
    lr = cfg.lr_theorem if scaling == "theorem" else cfg.lr_mean_field
    parts = [pt._init_cell(cfg, m, N, d, seed, dtype) for seed in cfg.seeds]
    X, y, W, b = (torch.stack([p[i] for p in parts]).to(device) for i in range(4))
    W0, b0 = W.clone(), b.clone()
    per_seed = []
    for j, seed in enumerate(cfg.seeds):
        Phi0 = torch.tanh(X[j] @ W[j].T)  # (m, N), Definition 1
        U, s = gram_spectrum(Phi0)
        r0 = Phi0 @ b[j] / N - y[j]
        factor = (lr / float(s[0]) ** 2 if scaling == "theorem" else 2 * lr / (m * N))
        X64 = teacher_student(m, d, teacher_width=cfg.teacher_width, seed=seed,
                              dtype=torch.float64)[0].to(device)
        per_seed.append({
            "sigma_min": float(s[m - 1]), "sigma_max": float(s[0]),
            "kappa_inf": kappa_infinite(X64), "L0": float(r0 @ r0 / m),
            # the linear model's loss curve on the host: (steps + 1) x m doubles
            "T_lin": pt._linear_crossings(U.cpu(), s.cpu(), r0.cpu(), factor, cfg.steps,
                                          cfg.deltas)})
        del U
    sigma_max = torch.tensor([p["sigma_max"] for p in per_seed], dtype=torch.float64)
    per_group = max(1, pt.BATCH_ENTRIES // (m * N))
    groups = [slice(lo, lo + per_group) for lo in range(0, len(cfg.seeds), per_group)]
    found = np.full((len(cfg.deltas), len(cfg.seeds)), -1)
    keep = pt.history_steps(cfg.steps)
    history, rows, t = {}, [], 0
    with step_bar(cfg.steps, f"m={m} N={N} d={d} {scaling}: pre-training") as bar:
        for target in cfg.checkpoints:
            hist = np.concatenate([
                pt.train_batched(X[g], y[g], W[g], b[g], steps=target - t, lr=lr,
                                 scaling=scaling, sigma_max=sigma_max[g]) for g in groups], 1)
            pt._first_crossings(hist[1:] if target > t else hist, t + (target > t),
                                cfg.deltas, found)
            history.update({s: hist[s - t].tolist() for s in keep if t <= s <= target})
            bar.update(target - t)
            t = target
            for j, seed in enumerate(cfg.seeds):
                Phi = b[j, :, None] * torch.tanh(W[j] @ X[j].T)  # (N, m), as TwoLayerNet
                res = greedy_forward_selection(Phi, y[j], cfg.k)
                rows.append({
                    "t": t, "seed": seed, "dense_loss": float(hist[-1, j]),
                    **{f"pruned_{kk}": float(res.losses[kk - 1]) for kk in cfg.k_values},
                    **weight_movement(W0[j], W[j], b0[j], b[j]),
                    "max_b_move": float((b[j] - b0[j]).abs().max()),
                    "phi_norm2": float((Phi * Phi).sum(1).max()) / m,
                    "selection": res.order.tolist()})
    for j, p in enumerate(per_seed):
        p["T_dense"] = found[:, j].tolist()
        p["sigma_min_end"] = gram_sigma_min(torch.tanh(X[j] @ W[j].T))
    return {"rows": rows, "seeds": per_seed,
            "history": {str(s): v for s, v in sorted(history.items())}}


def cell_rows(cfg, cell: dict, payload: dict) -> pd.DataFrame:
    """One cell's rows of the tidy table, in the layout of
    :func:`labkit.experiments.threshold.cell.run_threshold`'s (the checkpoints with the pruned
    losses,
    then the kept steps of the dense loss; the per-seed quantities repeated), so that
    chapter 4's analysis (:func:`labkit.threshold_runs` and the tables after it) reads both."""
    df = pd.DataFrame(payload["rows"], columns=pt.ROW_FIELDS + [
        f"pruned_{k}" for k in cfg.k_values] + pt.MOVEMENT_FIELDS)
    df.insert(0, "kind", "checkpoint")
    steps = sorted(payload["history"], key=int)
    hist = pd.DataFrame([{"kind": "history", "t": int(s), "seed": seed, "dense_loss": v}
                         for s in steps
                         for seed, v in zip(cfg.seeds, payload["history"][s], strict=True)])
    df = pd.concat([df, hist], ignore_index=True)
    per_seed = pd.DataFrame([{
        "seed": seed, **{key: p[key] for key in ("sigma_min", "sigma_max", "kappa_inf", "L0",
                                                 "sigma_min_end")},
        **{f"{kind}_{delta:g}": v
           for delta, T_dense, T_lin in zip(cfg.deltas, p["T_dense"], p["T_lin"], strict=True)
           for kind, v in (("T_dense", T_dense), ("T_lin", T_lin))}}
        for seed, p in zip(cfg.seeds, payload["seeds"], strict=True)])
    df = df.merge(per_seed, on="seed", how="left", sort=False)
    df["kappa"] = df["sigma_max"] / df["sigma_min"]
    for key in ("scaling", "d", "N", "m"):  # each to the front: m, N, d, scaling, ...
        df.insert(0, key, cell[key])
    return df


def cell_work(cfg, cell: dict) -> float:
    """:func:`labkit.experiments.threshold.cell.cell_work` plus the device's spectra (the Gram
    product and
    ``eigh``, twice per seed) and the infinite-width kernel (1,600 tanh per pair, ~20
    operations each): the floating-point operations ``--dry-run`` prices."""
    m, N, S = cell["m"], cell["N"], len(cfg.seeds)
    spectra = 2 * (2 * m * m * N + 10 * m**3)
    kernel = 20 * 1600 * m * m
    return pt.cell_work(cfg, cell) + S * (spectra + kernel)


def seed_config(cfg, cell: dict):
    """``cfg`` narrowed to the one seed of ``cell``."""
    return dataclasses.replace(cfg, seeds=tuple(cell["seeds"]))


def run_threshold(cfg, *, out, device=None, only: dict | None = None, dry_run: bool = False,
                  name: str = EXPERIMENT) -> pd.DataFrame:
    """The sweep of :func:`labkit.experiments.threshold.cell.run_threshold` (the same cells,
    resumable the
    same way under ``out``) with :func:`run_cell` computing each, one cell per seed: at
    ``m = 8,192`` one seed is a few minutes of a GPU, so a loan's budget (``--budget``)
    loses at most one seed's work when it ends, and ``--only seeds=[0]`` selects one."""
    device = torch.device(device or "cpu")
    cells = [{**cfg.cell_params(**c), "seeds": [seed], "code": CODE_DIGEST}
             for c in cfg.cells() for seed in cfg.seeds]
    return run_cells(
        name, cfg, cells,
        lambda c: run_cell(seed_config(cfg, c), c["m"], c["N"], c["d"], c["scaling"], device),
        lambda c, p: cell_rows(seed_config(cfg, c), c, p), out=out, device=device,
        only=only, dry_run=dry_run, work=lambda c: cell_work(seed_config(cfg, c), c))
