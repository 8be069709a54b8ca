"""Random-matrix view of the initial feature matrix (Definition 1, Appendix C, chapter 5).

``Phi_0 = sigma(X W^T)`` (``m x N``) with unit-norm Gaussian inputs ``x_j`` and Gaussian
weights ``w_i ~ N(0, I_d)``, so every pre-activation ``w_i . x_j`` is standard normal. Its
smallest singular value ``lambda_0`` and condition number ``kappa`` set the speed of
pre-training (Theorems 2-3). Three predictions are compared with simulation:

- the Gaussian edge ``s (sqrt(N) - sqrt(m))``, ``s`` the standard deviation of
  ``sigma(g)``, ``g ~ N(0, 1)`` (computed by Gauss-Hermite quadrature, not guessed);
- the kernel view ``sigma_min(Phi)^2 ~ N lambda_min(K)`` for ``N >> m``, with
  ``K_jl = E_w[sigma(w . x_j) sigma(w . x_l)]`` (closed form for ReLU, the arc-cosine kernel;
  two-dimensional Gauss-Hermite quadrature for tanh);
- for pure Gaussian ``m x N`` matrices, the Bai-Yin limit of the condition number,
  ``(sqrt(N) + sqrt(m)) / (sqrt(N) - sqrt(m))`` {cite}`bai1993limit`;
- the generalized Marchenko-Pastur edges: ``Phi_0 Phi_0^T / N`` is a sample second-moment
  matrix of ``N`` independent columns with population matrix ``K``, so its extreme
  eigenvalues follow the edges of the Marchenko-Pastur law with population spectrum
  ``eig(K)`` and ratio ``m / N`` (:func:`mp_edges`, a solve of the Silverstein-Choi
  equation, not a fit).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from labkit.algorithms.model import ACTIVATIONS
from labkit.infra.data import unit_sphere


def _sigma(activation: str):
    if activation not in ACTIVATIONS:
        raise ValueError(f"activation: unknown activation {activation!r}; "
                         f"allowed: {', '.join(ACTIVATIONS)}")
    return {"tanh": np.tanh, "relu": lambda v: np.maximum(v, 0.0)}[activation]


def _gauss_hermite(n: int):
    """Nodes and weights for ``E[f(g)]``, ``g ~ N(0, 1)``."""
    z, w = np.polynomial.hermite_e.hermegauss(n)
    return z, w / w.sum()


def activation_moments(activation: str) -> tuple[float, float]:
    """Mean and standard deviation of ``sigma(g)``, ``g ~ N(0, 1)``, by adaptive quadrature
    on each half-line (ReLU's kink at 0 defeats a plain Gauss-Hermite rule)."""
    from scipy.integrate import quad

    f = _sigma(activation)
    pdf = lambda g: np.exp(-g * g / 2) / np.sqrt(2 * np.pi)  # noqa: E731

    def expect(h):
        return sum(quad(lambda g: h(g) * pdf(g), a, b, epsabs=1e-13)[0]
                   for a, b in ((-np.inf, 0.0), (0.0, np.inf)))

    mean = expect(f)
    return mean, float(np.sqrt(expect(lambda g: f(g) ** 2) - mean**2))


def kernel_matrix(X, activation: str, n: int = 40) -> np.ndarray:
    """``K_jl = E_w[sigma(w . x_j) sigma(w . x_l)]`` for unit-norm rows of ``X``.

    The pair ``(w . x_j, w . x_l)`` is standard bivariate normal with correlation
    ``rho = x_j . x_l``. ReLU has the arc-cosine closed form
    ``(sin(theta) + (pi - theta) cos(theta)) / (2 pi)`` (Cho and Saul); tanh uses an
    ``n x n`` Gauss-Hermite rule on ``u = z_1``, ``v = rho z_1 + sqrt(1 - rho^2) z_2``."""
    X = np.asarray(X, dtype=np.float64)
    rho = np.clip(X @ X.T, -1.0, 1.0)
    if activation == "relu":
        theta = np.arccos(rho)
        return (np.sin(theta) + (np.pi - theta) * np.cos(theta)) / (2 * np.pi)
    f = _sigma(activation)
    z, w = _gauss_hermite(n)
    wu = w * f(z)  # weight times sigma(u) at the nodes of z_1
    K = np.empty_like(rho)
    rows = max(1, (1 << 23) // (len(rho) * n * n))  # blocks of at most 8M evaluations
    for lo in range(0, len(rho), rows):
        r = rho[lo:lo + rows, :, None, None]
        v = r * z[:, None] + np.sqrt(1 - r**2) * z[None, :]
        K[lo:lo + rows] = np.einsum("a,b,...ab->...", wu, w, f(v))
    return K


def kappa_infinite(X, activation: str = "tanh", n: int = 40) -> float:
    """The condition number of Definition 1's ``Phi_0 = sigma(X W_0^T)`` as the width goes
    to infinity: ``Phi_0 Phi_0^T / N -> K`` (:func:`kernel_matrix`), so its singular values
    scale like ``sqrt(N lambda(K))`` and ``kappa -> sqrt(lambda_max(K) / lambda_min(K))``
    (``m <= N`` rows, unit-norm). What the data alone impose on Theorem 3's ``kappa^2``,
    whatever the width (chapter 4; chapter 5 reuses it)."""
    eig = np.linalg.eigvalsh(kernel_matrix(X, activation, n))
    if eig[0] <= 0:
        return float("inf")
    return float(np.sqrt(eig[-1] / eig[0]))


def mp_edges(tau, c: float) -> tuple[float, float]:
    """The edges of the generalized Marchenko-Pastur law: the limiting spectrum of
    ``(1/N) sum_i z_i z_i^T`` for ``N`` independent vectors with second-moment matrix of
    eigenvalues ``tau`` (``m`` of them) and ``c = m / N < 1``. By Silverstein and Choi, the
    support's edges are the critical values of
    ``x(u) = -1/u + (c/m) sum_k tau_k / (1 + tau_k u)``; with ``v = -1/u`` the lower edge is
    ``max_{0 < v < min tau} v (1 - (c/m) sum_k tau_k / (tau_k - v))`` and the upper edge
    ``min_{v > max tau} v (1 + (c/m) sum_k tau_k / (v - tau_k))``, one-dimensional concave and
    convex problems (all ``tau_k = 1`` gives ``(1 -+ sqrt(c))^2``). Returns
    ``(lower, upper)``; chapter 5 compares ``sqrt(N lower)`` with ``sigma_min(Phi_0)``."""
    from scipy.optimize import minimize_scalar

    tau = np.sort(np.asarray(tau, dtype=np.float64))
    if tau.ndim != 1 or len(tau) == 0 or tau[0] <= 0:
        raise ValueError("tau: must be a non-empty list of positive eigenvalues")
    if not 0 < c < 1:
        raise ValueError(f"c: the ratio m / N must lie in (0, 1), got {c!r}")
    m, lo, hi = len(tau), tau[0], tau[-1]

    def lower(s):  # v = lo * sigmoid(s) covers (0, lo)
        v = lo / (1 + np.exp(-s))
        return -v * (1 - c / m * np.sum(tau / (tau - v)))

    def upper(s):  # v = hi (1 + e^s) covers (hi, inf)
        v = hi * (1 + np.exp(s))
        return v * (1 + c / m * np.sum(tau / (v - tau)))

    opts = {"xatol": 1e-12, "maxiter": 2000}
    low = minimize_scalar(lower, bounds=(-40.0, 40.0), method="bounded", options=opts)
    up = minimize_scalar(upper, bounds=(-40.0, 10.0), method="bounded", options=opts)
    return float(-low.fun), float(up.fun)


def feature_matrices(m: int, d: int, N: int, reps: int, activation: str, *, seed: int = 0):
    """``reps`` independent draws of ``(X, Phi_0)``: ``X`` of shape ``(reps, m, d)`` with
    unit-norm rows and ``Phi_0 = sigma(X W^T)`` of shape ``(reps, m, N)``, float64."""
    gen = torch.Generator().manual_seed(seed)
    X = torch.stack([unit_sphere(m, d, gen, dtype=torch.float64) for _ in range(reps)])
    W = torch.randn(reps, N, d, generator=gen, dtype=torch.float64)
    return X, ACTIVATIONS[activation](torch.bmm(X, W.transpose(1, 2)))


def singular_stats(Phi: torch.Tensor) -> dict:
    """Mean and standard deviation over the batch of ``sigma_min``, ``sigma_max`` and
    ``kappa``, from one batched ``torch.linalg.svdvals``."""
    s = torch.linalg.svdvals(Phi)
    smin, smax = s[:, -1], s[:, 0]
    out = {}
    for name, v in (("sigma_min", smin), ("sigma_max", smax), ("kappa", smax / smin)):
        out[f"{name}_mean"] = float(v.mean())
        out[f"{name}_std"] = float(v.std()) if len(v) > 1 else 0.0
    return out


def sigma_min_grid(cfg) -> pd.DataFrame:
    """Chapter 5, Figure 2 analog: for every activation, ``m``, ``d`` and ``N`` of ``cfg``,
    ``cfg.reps`` draws of ``Phi_0``; simulated statistics beside the predictions (the
    Gaussian edge, the kernel view, the generalized Marchenko-Pastur edge and the
    condition number it implies, and the infinite-width ``kappa``, each from the draw's own
    ``K``, averaged over draws). For ReLU the matrix with its population mean removed is
    simulated too (``centered``)."""
    rows = []
    for activation in cfg.activations:
        mu, s = activation_moments(activation)
        for m in cfg.m_values:
            for d in cfg.d_values:
                X_first, tau = None, None
                for N in cfg.N_values:
                    X, Phi = feature_matrices(m, d, N, cfg.reps, activation, seed=cfg.seed)
                    # the inputs are drawn before the weights, so every N sees the same X:
                    # K's spectra are computed once per (m, d)
                    if X_first is None or not torch.equal(X, X_first):
                        X_first = X
                        tau = [np.linalg.eigvalsh(kernel_matrix(x, activation)) for x in X]
                    lam = np.array([t[0] for t in tau])
                    kernel = float(np.mean(np.sqrt(N * np.maximum(lam, 0.0))))
                    # the edge law needs m < N (else Phi_0 Phi_0^T is singular): NaN there
                    edges = np.array([mp_edges(t, m / N) if m < N else (np.nan, np.nan)
                                      for t in tau])
                    row = {"activation": activation, "m": m, "d": d, "N": N,
                           **singular_stats(Phi),
                           "edge_prediction": s * (np.sqrt(N) - np.sqrt(m)),
                           "kernel_prediction": kernel,
                           "mp_prediction": float(np.mean(np.sqrt(N * edges[:, 0]))),
                           "mp_kappa": float(np.mean(np.sqrt(edges[:, 1] / edges[:, 0]))),
                           "kappa_inf": float(np.mean([np.sqrt(t[-1] / t[0]) for t in tau]))}
                    if abs(mu) > 1e-12:  # ReLU: remove the rank-one mean spike
                        centered = singular_stats(Phi - mu)
                        row["centered_sigma_min_mean"] = centered["sigma_min_mean"]
                        row["centered_kappa_mean"] = centered["kappa_mean"]
                    rows.append(row)
    return pd.DataFrame(rows)


def gaussian_condition(m_values, N_values, reps: int, *, seed: int = 0) -> pd.DataFrame:
    """Chapter 5, Figure 3 analog: condition numbers of standard Gaussian ``m x N``
    matrices against the Bai-Yin limit."""
    gen = torch.Generator().manual_seed(seed)
    rows = []
    for m in m_values:
        for N in N_values:
            G = torch.randn(reps, m, N, generator=gen, dtype=torch.float64)
            rows.append({"m": m, "N": N, **singular_stats(G),
                         "bai_yin_kappa": (np.sqrt(N) + np.sqrt(m)) / abs(np.sqrt(N) - np.sqrt(m)),
                         "bai_yin_sigma_min": abs(np.sqrt(N) - np.sqrt(m))})
    return pd.DataFrame(rows)


def relative_errors(grid: pd.DataFrame) -> pd.DataFrame:
    """Chapter 5's table: relative error of each prediction against the simulated mean
    ``sigma_min``, per activation, ``m`` and ``d``, at the smallest and largest ``N``."""
    g = grid.assign(edge=grid["edge_prediction"] / grid["sigma_min_mean"] - 1,
                    kernel=grid["kernel_prediction"] / grid["sigma_min_mean"] - 1,
                    mp=grid["mp_prediction"] / grid["sigma_min_mean"] - 1)
    ends = g[g["N"].isin([g["N"].min(), g["N"].max()])]
    return ends.pivot_table(index=["activation", "m", "d"], columns="N",
                            values=["edge", "kernel", "mp"])
