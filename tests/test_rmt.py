"""labkit.algorithms.rmt against closed forms, Monte Carlo and the Bai-Yin law (chapter 5)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import labkit
from labkit import config


@pytest.mark.parametrize("m,N", [(200, 800), (200, 3200), (100, 1600)])
def test_gaussian_condition_numbers_follow_bai_yin(m, N):
    """At these sizes the Bai-Yin edges are accurate to a few percent (finite-size
    corrections are O(m^(-2/3)) relative), so 4% is a meaningful tolerance."""
    g = labkit.gaussian_condition([m], [N], reps=10, seed=3).iloc[0]
    kappa = (np.sqrt(N) + np.sqrt(m)) / (np.sqrt(N) - np.sqrt(m))
    assert g["kappa_mean"] == pytest.approx(kappa, rel=0.04)
    assert g["sigma_min_mean"] == pytest.approx(np.sqrt(N) - np.sqrt(m), rel=0.04)
    assert g["sigma_max_mean"] == pytest.approx(np.sqrt(N) + np.sqrt(m), rel=0.04)


def test_singular_stats_match_numpy():
    rng = np.random.default_rng(0)
    A = rng.normal(size=(4, 7, 12))
    stats = labkit.singular_stats(torch.from_numpy(A))
    s = np.linalg.svd(A, compute_uv=False)
    assert stats["sigma_min_mean"] == pytest.approx(s[:, -1].mean())
    assert stats["kappa_std"] == pytest.approx((s[:, 0] / s[:, -1]).std(ddof=1))


def test_activation_moments():
    mean, sd = labkit.activation_moments("relu")
    assert mean == pytest.approx(1 / np.sqrt(2 * np.pi), rel=1e-3)
    assert sd == pytest.approx(np.sqrt(0.5 - 1 / (2 * np.pi)), rel=1e-3)
    g = np.random.default_rng(0).normal(size=2_000_000)
    mean, sd = labkit.activation_moments("tanh")
    assert mean == pytest.approx(0.0, abs=1e-12)
    assert sd == pytest.approx(np.tanh(g).std(), abs=2e-3)
    with pytest.raises(ValueError, match="^activation:"):
        labkit.activation_moments("sin")


@pytest.mark.parametrize("activation", ["tanh", "relu"])
def test_kernel_matrix_against_monte_carlo(activation):
    rng = np.random.default_rng(1)
    X = rng.normal(size=(6, 5))
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    X[1] = X[0]  # rho = 1
    X[2] = -X[0]  # rho = -1
    K = labkit.kernel_matrix(X, activation)
    W = rng.normal(size=(400_000, 5))
    f = np.tanh if activation == "tanh" else (lambda v: np.maximum(v, 0))
    A = f(W @ X.T)
    K_mc = A.T @ A / len(W)
    # per entry, five standard errors of the Monte Carlo mean (not a fixed atol, which at
    # 4e-3 would exceed the smallest eigenvalues of K that chapter 5 is about)
    se = np.sqrt(((A[:, :, None] * A[:, None, :]) ** 2).mean(0) - K_mc**2) / np.sqrt(len(W))
    assert np.all(np.abs(K - K_mc) <= 5 * se + 1e-12)
    # a kernel off by 2% at every entry is caught at this sample size
    assert np.any(np.abs(1.02 * K - K_mc) > 5 * se)
    np.testing.assert_allclose(K, K.T, atol=1e-12)


def _pair(rho):
    return np.array([[1.0, 0.0], [rho, np.sqrt(1 - rho * rho)]])


@pytest.mark.parametrize("rho", [0.99, 0.9, 0.3, -0.5])
def test_tanh_kernel_against_gauss_legendre_quadrature(rho):
    """K(rho) = E[tanh(u) tanh(rho u + sqrt(1 - rho^2) v)] by a 400 x 400 Gauss-Legendre
    rule on [-10, 10]^2 (another rule than labkit's Gauss-Hermite one; the integrand is
    smooth and its tails below 1e-20), to a relative 1e-5, which a coarser labkit rule
    (4 Gauss-Hermite nodes) fails."""
    z, w = np.polynomial.legendre.leggauss(400)
    u, wu = 10 * z, 10 * w * np.exp(-50 * z * z) / np.sqrt(2 * np.pi)  # nodes, weights x pdf
    s = np.sqrt(1 - rho * rho)
    ref = wu @ (np.tanh(u)[:, None] * np.tanh(rho * u[:, None] + s * u[None, :])) @ wu
    diag = wu @ np.tanh(u) ** 2
    K = labkit.kernel_matrix(_pair(rho), "tanh")
    np.testing.assert_allclose([K[0, 1], K[0, 0]], [ref, diag], rtol=1e-5)
    coarse = labkit.kernel_matrix(_pair(rho), "tanh", n=4)
    assert abs(coarse[0, 1] / ref - 1) > 1e-5 or abs(coarse[0, 0] / diag - 1) > 1e-5


@pytest.mark.parametrize("rho", [0.95, 0.4, -0.3, -0.9])
def test_relu_closed_form_against_one_dimensional_quadrature(rho):
    """E[relu(u) relu(rho u + s v)] = int_0^inf u phi(u) g(rho u) du with the closed form
    g(a) = E[relu(a + s v)] = a Phi(a/s) + s phi(a/s): an independent route to the
    arc-cosine kernel, to a relative 1e-9."""
    from scipy import integrate, stats

    s = np.sqrt(1 - rho * rho)
    g = lambda a: a * stats.norm.cdf(a / s) + s * stats.norm.pdf(a / s)  # noqa: E731
    ref = integrate.quad(lambda u: u * stats.norm.pdf(u) * g(rho * u), 0, np.inf,
                         epsabs=1e-15, epsrel=1e-12)[0]
    K = labkit.kernel_matrix(_pair(rho), "relu")
    assert K[0, 1] == pytest.approx(ref, rel=1e-9)
    assert K[0, 0] == pytest.approx(0.5, rel=1e-12)  # E[relu(g)^2] = 1/2


def test_relu_kernel_quadrature_agrees_with_closed_form():
    """The tanh path (2-D Gauss-Hermite) applied to ReLU must reproduce the arc-cosine
    closed form: two independent routes to the same matrix."""
    from labkit.algorithms import rmt

    rng = np.random.default_rng(2)
    X = rng.normal(size=(5, 4))
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    closed = labkit.kernel_matrix(X, "relu")
    rho = np.clip(X @ X.T, -1, 1)
    z, w = rmt._gauss_hermite(200)
    relu = lambda v: np.maximum(v, 0)  # noqa: E731
    quad = np.array([[w @ (relu(z) * (relu(r * z[:, None] + np.sqrt(1 - r * r) * z[None, :])
                                      @ w)) for r in row] for row in rho])
    # ReLU's kink limits a 200-node rule to about 1% on these entries (the closed form
    # itself is checked to 1e-9 against adaptive quadrature below); 2% still fails a kernel
    # that is 5% off
    np.testing.assert_allclose(quad, closed, rtol=2e-2, atol=1e-4)
    assert not np.allclose(quad, 1.05 * closed, rtol=2e-2, atol=1e-4)


def test_feature_matrices_follow_the_definition():
    X, Phi = labkit.feature_matrices(7, 4, 9, 3, "relu", seed=5)
    assert X.shape == (3, 7, 4) and Phi.shape == (3, 7, 9)
    torch.testing.assert_close(X.norm(dim=2), torch.ones(3, 7, dtype=torch.float64))
    X2, Phi2 = labkit.feature_matrices(7, 4, 9, 3, "relu", seed=5)
    assert torch.equal(Phi, Phi2) and (Phi >= 0).all()


def test_kernel_view_is_accurate_for_wide_matrices():
    cfg = config.get("rmt", activations=("tanh",), m_values=(30,), d_values=(10,),
                     N_values=(60, 3000), reps=4)
    grid = labkit.sigma_min_grid(cfg)
    wide = grid[grid["N"] == 3000].iloc[0]
    narrow = grid[grid["N"] == 60].iloc[0]
    err = lambda r: abs(r["kernel_prediction"] / r["sigma_min_mean"] - 1)  # noqa: E731
    assert err(wide) < 0.08 and err(wide) < err(narrow)
    table = labkit.relative_errors(grid)
    assert table.loc[("tanh", 30, 10), ("kernel", 3000)] == pytest.approx(
        wide["kernel_prediction"] / wide["sigma_min_mean"] - 1)


@pytest.mark.parametrize("kw,field", [(dict(activations=("sin",)), "activations"),
                                      (dict(N_values=(0, 10)), "N_values"),
                                      (dict(reps=1), "reps"), (dict(m_values=()), "m_values")])
def test_bad_rmt_configs_name_the_field(kw, field):
    with pytest.raises(ValueError, match=f"^{field}:"):
        config.get("rmt", **kw)


@pytest.mark.parametrize("activation", ["tanh", "relu"])
def test_kappa_infinite_is_the_wide_limit(activation):
    """kappa of Phi_0 = sigma(X W^T) for N = 200,000 random neurons approaches
    kappa_infinite; the square of it (the condition number of K itself) does not."""
    rng = np.random.default_rng(2)
    X = rng.normal(size=(12, 5))
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    W = rng.normal(size=(200_000, 5))
    f = np.tanh if activation == "tanh" else (lambda v: np.maximum(v, 0))
    A = f(X @ W.T)  # (m, N), Definition 1's orientation
    eig = np.linalg.eigvalsh(A @ A.T / W.shape[0])
    kappa_mc = np.sqrt(eig[-1] / eig[0])
    got = labkit.kappa_infinite(X, activation)
    assert got == pytest.approx(kappa_mc, rel=0.03)
    assert not got**2 == pytest.approx(kappa_mc, rel=0.5)  # a wrong formula is told apart


def test_kappa_infinite_grows_with_m_at_fixed_d():
    rng = np.random.default_rng(3)
    values = []
    for m in (20, 80):
        X = rng.normal(size=(m, 10))
        values.append(labkit.kappa_infinite(X / np.linalg.norm(X, axis=1, keepdims=True)))
    assert values[1] > 1.5 * values[0]


# ------------------------------------------------------------------ generalized Marchenko-Pastur


@pytest.mark.parametrize("c", [0.05, 0.25, 0.5, 0.9])
def test_mp_edges_reduce_to_the_marchenko_pastur_law(c):
    """All population eigenvalues equal to s: the edges are s (1 -+ sqrt(c))^2."""
    lower, upper = labkit.mp_edges(np.full(37, 2.5), c)
    assert lower == pytest.approx(2.5 * (1 - np.sqrt(c)) ** 2, rel=1e-9)
    assert upper == pytest.approx(2.5 * (1 + np.sqrt(c)) ** 2, rel=1e-9)


def test_mp_edges_match_a_gaussian_simulation_with_a_two_point_spectrum():
    """Gaussian vectors with covariance diag(tau): the extreme eigenvalues of their sample
    covariance, an independent computation, against the solved edges."""
    rng = np.random.default_rng(0)
    m, N = 300, 1200
    tau = np.r_[np.full(150, 1.0), np.full(150, 4.0)]
    Z = rng.standard_normal((m, N)) * np.sqrt(tau)[:, None]
    ev = np.linalg.eigvalsh(Z @ Z.T / N)
    lower, upper = labkit.mp_edges(tau, m / N)
    assert ev[0] == pytest.approx(lower, rel=0.05)
    assert ev[-1] == pytest.approx(upper, rel=0.03)
    # a wrong law, the kernel view (no finite-N correction), misses by far more
    assert abs(tau.min() / ev[0] - 1) > 1.0


@pytest.mark.parametrize("m,d,N", [(100, 100, 800), (100, 1000, 3200)])
def test_mp_edge_predicts_sigma_min_of_tanh_features(m, d, N):
    """The acceptance check of issue 17: within 10% of a direct simulation."""
    X, Phi = labkit.feature_matrices(m, d, N, 8, "tanh", seed=3)
    smin = torch.linalg.svdvals(Phi)[:, -1].numpy()
    pred = [np.sqrt(N * labkit.mp_edges(np.linalg.eigvalsh(labkit.kernel_matrix(x, "tanh")),
                                    m / N)[0]) for x in X.numpy()]
    assert np.mean(pred) == pytest.approx(smin.mean(), rel=0.10)


def test_mp_edges_reject_bad_input():
    with pytest.raises(ValueError, match="^c:"):
        labkit.mp_edges([1.0, 2.0], 1.5)
    with pytest.raises(ValueError, match="^tau:"):
        labkit.mp_edges([0.0, 1.0], 0.5)
