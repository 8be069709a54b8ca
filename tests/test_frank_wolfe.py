"""Frank-Wolfe over the marginal polytope: the exact oracle is GFS, the linear oracle is the
classical one (both checked by brute force), both satisfy the re-derived Lemma 1, and
best_multiset against an enumeration written here."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import labkit


def instance(seed, N, m):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(N, m)), rng.uniform(-1, 1, size=m)


def loss(z, y):
    return float(((z - y) ** 2).sum() / len(y))


def check_recursion(Phi, res):
    """iterates[j] = z_{j+1} = z_j + (s_j - z_j)/(j+1), z_0 = 0, s_j = Phi[order[j]]."""
    z = np.zeros(Phi.shape[1])
    for j, i in enumerate(res.order):
        z = z + (Phi[i] - z) / (j + 1)
        np.testing.assert_allclose(res.iterates[j], z, rtol=1e-12, atol=1e-14)


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), N=st.integers(1, 10), m=st.integers(1, 12),
       k=st.integers(1, 20))
def test_exact_oracle_is_gfs(seed, N, m, k):
    Phi, y = instance(seed, N, m)
    fw = labkit.frank_wolfe(Phi, y, k, oracle="exact")
    gfs = labkit.greedy_forward_selection(Phi, y, k)
    np.testing.assert_array_equal(fw.order, gfs.order)
    assert fw.iterates.shape == (k, m)
    check_recursion(Phi, fw)
    # the iterate is the multiset average of the picks so far
    for j in range(k):
        np.testing.assert_allclose(fw.iterates[j], Phi[gfs.order[: j + 1]].mean(0),
                                   rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(fw.losses, [loss(z, y) for z in fw.iterates], rtol=1e-12)
    np.testing.assert_allclose(fw.losses, gfs.losses, rtol=1e-9)
    # and each pick is the best vertex for an exact line step, by brute force
    z = np.zeros(m)
    for j, i in enumerate(fw.order):
        trial = [loss(z + (Phi[v] - z) / (j + 1), y) for v in range(N)]
        assert trial[i] <= min(trial) * (1 + 1e-12) + 1e-15
        z = fw.iterates[j]


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), N=st.integers(1, 10), m=st.integers(1, 12),
       k=st.integers(1, 20))
def test_linear_oracle_brute_force(seed, N, m, k):
    Phi, y = instance(seed, N, m)
    fw = labkit.frank_wolfe(Phi, y, k, oracle="linear")
    check_recursion(Phi, fw)
    z = np.zeros(m)
    for j, i in enumerate(fw.order):
        grad = [2.0 * (z[c] - y[c]) / m for c in range(m)]
        inner = [sum(grad[c] * Phi[v, c] for c in range(m)) for v in range(N)]
        best = min(inner)
        assert inner[i] <= best + 1e-12 * (1 + abs(best))
        assert all(inner[v] > best + 1e-12 * (1 + abs(best)) for v in range(i))  # first min
        z = fw.iterates[j]


def test_linear_oracle_default_and_first_step():
    """From z_0 = 0 the first gradient is -2y/m: the first vertex maximises <Phi_i, y>."""
    Phi, y = instance(4, 9, 7)
    fw = labkit.frank_wolfe(Phi, y, 1)
    assert fw.order[0] == int(np.argmax(Phi @ y))
    np.testing.assert_array_equal(fw.iterates[0], Phi[fw.order[0]])


def lemma1_rhs(l1, lstar, D, m, k):
    H = sum(1.0 / j for j in range(1, k + 1))
    return (l1 - lstar) / k + D**2 * (H - 1) / (m * k)


def diameter(Phi):
    N = len(Phi)
    return max((float(np.sqrt(((Phi[i] - Phi[j]) ** 2).sum()))
                for i in range(N) for j in range(N)), default=0.0)


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), N=st.integers(1, 15), m=st.integers(1, 10),
       scale=st.sampled_from([0.1, 1.0, 5.0]))
def test_lemma1_bound(seed, N, m, scale):
    Phi, y = instance(seed, N, m)
    Phi = Phi * scale
    K = 40
    zstar = Phi.mean(0)
    lstar, D = loss(zstar, y), diameter(Phi)
    runs = {
        "exact": labkit.frank_wolfe(Phi, y, K, oracle="exact").losses,
        "linear": labkit.frank_wolfe(Phi, y, K, oracle="linear").losses,
        "gfs": labkit.greedy_forward_selection(Phi, y, K).losses,
    }
    for name, losses in runs.items():
        for k in range(1, K + 1):
            rhs = lemma1_rhs(losses[0], lstar, D, m, k)
            lhs = losses[k - 1] - lstar
            assert lhs <= rhs + 1e-10 * (1 + abs(lstar)), (name, k, lhs, rhs)


def test_lemma1_is_not_vacuous():
    """The diameter term matters: dropping it breaks the bound on some instance (so the
    check above would notice a wrong diameter or a wrong H_k)."""
    broken = 0
    for seed in range(30):
        Phi, y = instance(seed, 8, 5)
        losses = labkit.frank_wolfe(Phi, y, 30, oracle="linear").losses
        lstar = loss(Phi.mean(0), y)
        broken += any(losses[k - 1] - lstar > (losses[0] - lstar) / k for k in range(1, 31))
    assert broken > 0


def brute_best(Phi, y, k):
    """min over all ordered k-tuples (a superset of multisets), written independently."""
    best, best_loss = None, np.inf
    for T in itertools.product(range(len(Phi)), repeat=k):
        z = sum(Phi[i] for i in T) / k
        value = loss(z, y)
        if value < best_loss - 1e-15:
            best, best_loss = tuple(sorted(T)), value
    return best, best_loss


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), N=st.integers(1, 5), m=st.integers(1, 6),
       k=st.integers(1, 4))
def test_best_multiset_brute_force(seed, N, m, k):
    Phi, y = instance(seed, N, m)
    S, value = labkit.best_multiset(Phi, y, k)
    _, expected = brute_best(Phi, y, k)
    assert len(S) == k and all(0 <= i < N for i in S)
    assert value == pytest.approx(expected, rel=1e-12, abs=1e-15)
    assert loss(Phi[list(S)].mean(0), y) == pytest.approx(value, rel=1e-12, abs=1e-15)
    gfs = labkit.greedy_forward_selection(Phi, y, k)
    assert value <= gfs.losses[-1] * (1 + 1e-12) + 1e-15


def test_gfs_can_be_suboptimal():
    """Exhaustive search is strictly better than GFS on some instance (the comparison
    above is not trivially an equality)."""
    gaps = []
    for seed in range(40):
        Phi, y = instance(seed, 5, 3)
        _, best = labkit.best_multiset(Phi, y, 3)
        gaps.append(labkit.greedy_forward_selection(Phi, y, 3).losses[-1] - best)
    assert min(gaps) >= -1e-12 and max(gaps) > 1e-6


def test_best_multiset_too_large():
    Phi, y = instance(0, 30, 4)
    with pytest.raises(ValueError, match=r"\bk\b"):
        labkit.best_multiset(Phi, y, 10)


def test_frank_wolfe_errors():
    Phi, y = instance(0, 3, 4)
    with pytest.raises(ValueError, match=r"\boracle\b"):
        labkit.frank_wolfe(Phi, y, 2, oracle="away")
    with pytest.raises(ValueError, match=r"\bk\b"):
        labkit.frank_wolfe(Phi, y, 0)


def test_squared_loss():
    assert labkit.squared_loss(np.array([1.0, 3.0]), np.array([0.0, 1.0])) == 2.5
