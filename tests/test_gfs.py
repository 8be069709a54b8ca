"""Greedy Forward Selection against a slow reference written here from the definition.

The reference forms each candidate multiset's pruned output directly as the average of its
rows and evaluates the loss from its definition; it shares no code with ``labkit.algorithms.gfs``
(which uses the expanded quadratic / running-sum form).
"""

from __future__ import annotations

import re
from fractions import Fraction

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import labkit

# ---------------------------------------------------------------- reference implementation


def ref_loss(z: np.ndarray, y: np.ndarray, loss: str) -> float:
    if loss == "mse":
        return float(np.mean((z - y) ** 2))
    # log(1 + exp(z)) computed stably: max(z, 0) + log1p(exp(-|z|))
    softplus = np.maximum(z, 0.0) + np.log1p(np.exp(-np.abs(z)))
    return float(np.mean(softplus - y * z))


def ref_gfs(Phi, y, k, loss="mse", replacement=True):
    """Plain GFS: every candidate's multiset output is built from scratch; strict '<' so the
    lowest index wins exact ties."""
    Phi, y = np.asarray(Phi, dtype=np.float64), np.asarray(y, dtype=np.float64)
    N = Phi.shape[0]
    S, losses = [], []
    for _ in range(k):
        best_i, best = None, np.inf
        for i in range(N):
            if not replacement and i in S:
                continue
            value = ref_loss(Phi[S + [i]].mean(axis=0), y, loss)
            if value < best:
                best_i, best = i, value
        S.append(best_i)
        losses.append(best)
    return np.array(S), np.array(losses)


def exact_mse_gfs(Phi_int, y_int, k, replacement=True):
    """GFS in exact rational arithmetic (integer data): ties are exact ties."""
    N, m = len(Phi_int), len(y_int)
    S = []
    for _ in range(k):
        best_i, best = None, None
        for i in range(N):
            if not replacement and i in S:
                continue
            T = S + [i]
            value = sum((Fraction(sum(Phi_int[r][c] for r in T), len(T)) - y_int[c]) ** 2
                        for c in range(m)) / m
            if best is None or value < best:
                best_i, best = i, value
        S.append(best_i)
    return np.array(S)


def random_instance(seed, N, m, loss, scale=1.0):
    rng = np.random.default_rng(seed)
    Phi = rng.normal(size=(N, m)) * scale
    if loss == "mse":
        y = rng.uniform(-1, 1, size=m)
    else:
        y = rng.integers(0, 2, size=m).astype(float)
        if rng.random() < 0.5:  # soft labels too
            y = rng.uniform(0, 1, size=m)
    return Phi, y


def check_against_reference(Phi, y, k, loss, replacement):
    res = labkit.greedy_forward_selection(Phi, y, k, loss=loss, replacement=replacement)
    order, losses = ref_gfs(Phi, y, k, loss, replacement)
    N = Phi.shape[0]
    np.testing.assert_array_equal(np.asarray(res.order), order)
    counts = np.asarray(res.counts)
    assert counts.shape == (N,)
    np.testing.assert_array_equal(counts, np.bincount(order, minlength=N))
    assert counts.sum() == k
    assert len(res.losses) == k
    np.testing.assert_allclose(res.losses, losses, rtol=1e-9, atol=1e-12)
    return res


# ------------------------------------------------------------------- random comparisons


@pytest.mark.parametrize("loss", ["mse", "bce"])
@pytest.mark.parametrize("replacement", [True, False])
@settings(max_examples=80, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), N=st.integers(1, 12), m=st.integers(1, 24),
       k_frac=st.floats(0.0, 1.0), scale=st.sampled_from([0.3, 1.0, 4.0]))
def test_matches_reference(loss, replacement, seed, N, m, k_frac, scale):
    k_max = N if not replacement else 2 * N + 3  # k > N allowed with replacement
    k = 1 + int(k_frac * (k_max - 1))
    Phi, y = random_instance(seed, N, m, loss, scale)
    check_against_reference(Phi, y, k, loss, replacement)


@pytest.mark.parametrize("loss", ["mse", "bce"])
def test_k_larger_than_N_with_replacement(loss):
    Phi, y = random_instance(7, 4, 9, loss)
    res = check_against_reference(Phi, y, 13, loss, True)
    assert res.counts.max() >= 2  # pigeonhole: some neuron repeats


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), N=st.integers(1, 6), m=st.integers(1, 5),
       k=st.integers(1, 7), replacement=st.booleans())
def test_integer_data_exact_ties(seed, N, m, k, replacement):
    """Small-integer data produce many exact ties; an exact rational reference decides them
    (lowest index wins)."""
    if not replacement:
        k = min(k, N)
    rng = np.random.default_rng(seed)
    Phi = rng.integers(-2, 3, size=(N, m))
    y = rng.integers(-2, 3, size=m)
    expected = exact_mse_gfs(Phi.tolist(), y.tolist(), k, replacement)
    res = labkit.greedy_forward_selection(Phi.astype(float), y.astype(float), k,
                                          replacement=replacement)
    np.testing.assert_array_equal(res.order, expected)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("scale", [0.5, 4.0, 60.0])
@pytest.mark.parametrize("m", [1, 63, 64, 65, 1000])
def test_bce_scores_match_the_definition_across_blocks(monkeypatch, dtype, scale, m):
    """The BCE scorer's rewritten sums (relu and log-sigmoid parts, products of 64
    sigmoids) against softplus(z) - y z in float64 from the definition, with blocks of a
    few rows and a partial last block (m not a multiple of 64), at logits large enough to
    saturate the sigmoid; a block of rows scores exactly as the whole matrix does."""
    from labkit.algorithms import gfs

    monkeypatch.setitem(gfs._CHUNK_ELEMENTS, "cpu", 3 * 64 * -(-m // 64))  # 3 rows a block
    Phi, y = random_instance(int(scale * 10) + m, 11, m, "bce", scale)
    s = np.random.default_rng(m).normal(size=m) * scale
    j = 4
    Pt, yt, st_ = (torch.from_numpy(a.astype(dtype)) for a in (Phi, y, s))
    scores = gfs._BCEScores(Pt, yt)(st_, j).double().numpy()
    z = (Pt.double().numpy() + st_.double().numpy()) / (j + 1)
    y64 = yt.double().numpy()
    expected = (np.logaddexp(0.0, z) - y64 * z).mean(1)
    eps = np.finfo(dtype).eps
    # rounding of sums of |z| (up to ~scale) and of 64-sigmoid products, over m
    np.testing.assert_allclose(scores, expected, rtol=0, atol=200 * eps * (1 + scale))
    block = gfs._BCEScores(Pt[4:9], yt)(st_, j).double().numpy()
    np.testing.assert_array_equal(block, scores[4:9])


def test_bce_scores_tolerance_is_not_vacuous(monkeypatch):
    """The check above fails for a scorer that drops the log-sigmoid part (a deliberately
    wrong score), so its tolerance does not hide errors of the size that matter."""
    from labkit.algorithms import gfs

    Phi, y = random_instance(1, 11, 65, "bce", 4.0)
    Pt, yt = torch.from_numpy(Phi), torch.from_numpy(y)
    s = torch.zeros(65, dtype=torch.float64)
    monkeypatch.setattr(torch, "sigmoid", lambda x, out: out.fill_(1.0))
    wrong = gfs._BCEScores(Pt, yt)(s, 0).numpy()
    expected = (np.logaddexp(0.0, Phi) - y * Phi).mean(1)
    assert np.abs(wrong - expected).max() > 200 * np.finfo(np.float64).eps * 5


@pytest.mark.parametrize("replacement", [True, False])
def test_bce_selection_over_many_blocks_matches_reference(monkeypatch, replacement):
    from labkit.algorithms import gfs

    monkeypatch.setitem(gfs._CHUNK_ELEMENTS, "cpu", 7 * 128)  # 7 rows of m_pad = 128
    Phi, y = random_instance(21, 40, 100, "bce", 4.0)
    check_against_reference(Phi, y, 25, "bce", replacement)


# ------------------------------------------------------------------------------- ties


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("loss", ["mse", "bce"])
@pytest.mark.parametrize("m", [7, 1000])
def test_duplicate_rows_resolve_to_lowest_index(dtype, loss, m):
    rng = np.random.default_rng(3)
    N = 20
    Phi = rng.normal(size=(N, m))
    for lo, hi in [(3, 11), (3, 17), (5, 6)]:
        Phi[hi] = Phi[lo]
    y = np.clip(Phi[3] + 0.01 * rng.normal(size=m), -1, 1)
    if loss == "bce":
        y = (Phi[3] > 0).astype(float)
        Phi = 3 * Phi
    res = labkit.greedy_forward_selection(Phi.astype(dtype), y.astype(dtype), 15, loss=loss)
    order = list(res.order)
    assert order[0] == 3
    assert 11 not in order and 17 not in order
    assert 6 not in order
    # without replacement a copy may be picked only after its original
    res = labkit.greedy_forward_selection(Phi.astype(dtype), y.astype(dtype), N, loss=loss,
                                          replacement=False)
    pos = {i: p for p, i in enumerate(res.order)}
    assert pos[3] < pos[11] < pos[17]
    assert pos[5] < pos[6]


def test_all_rows_identical():
    Phi = np.tile(np.arange(5.0), (6, 1))
    res = labkit.greedy_forward_selection(Phi, np.zeros(5), 4)
    np.testing.assert_array_equal(res.order, [0, 0, 0, 0])
    res = labkit.greedy_forward_selection(Phi, np.zeros(5), 6, replacement=False)
    np.testing.assert_array_equal(res.order, np.arange(6))


# ---------------------------------------------------------------- input types and devices


@pytest.mark.parametrize("loss", ["mse", "bce"])
def test_numpy_and_torch_agree(loss):
    Phi, y = random_instance(11, 15, 30, loss)
    a = labkit.greedy_forward_selection(Phi, y, 20, loss=loss)
    b = labkit.greedy_forward_selection(torch.from_numpy(Phi), torch.from_numpy(y), 20,
                                        loss=loss)
    np.testing.assert_array_equal(a.order, b.order)
    np.testing.assert_array_equal(a.counts, b.counts)
    np.testing.assert_array_equal(a.losses, b.losses)
    assert isinstance(b.order, np.ndarray) and isinstance(b.counts, np.ndarray)


@pytest.mark.parametrize("loss", ["mse", "bce"])
@pytest.mark.parametrize("seed", range(5))
def test_float32_input(loss, seed):
    Phi, y = random_instance(100 + seed, 10, 40, loss)
    k = 12
    res = labkit.greedy_forward_selection(Phi.astype(np.float32), y.astype(np.float32), k,
                                          loss=loss)
    order, _ = ref_gfs(Phi.astype(np.float32), y.astype(np.float32), k, loss)
    np.testing.assert_array_equal(res.order, order)
    # the reported losses are those of the selected multisets, to float32 accuracy
    P32 = Phi.astype(np.float32).astype(np.float64)
    y32 = y.astype(np.float32).astype(np.float64)
    direct = [ref_loss(P32[res.order[: j + 1]].mean(0), y32, loss) for j in range(k)]
    np.testing.assert_allclose(res.losses, direct, rtol=2e-5, atol=1e-6)


def test_torch_float32_tensor_on_cpu_device():
    Phi, y = random_instance(5, 12, 50, "mse")
    Pt = torch.tensor(Phi, dtype=torch.float32, device="cpu")
    yt = torch.tensor(y, dtype=torch.float32, device="cpu")
    res = labkit.greedy_forward_selection(Pt, yt, 10)
    order, _ = ref_gfs(Pt.double().numpy(), yt.double().numpy(), 10)
    np.testing.assert_array_equal(res.order, order)


def test_integer_phi_is_accepted():
    Phi = np.array([[0, 1, 2], [2, 2, 2], [1, 0, 1]])
    y = np.array([1.0, 1.0, 1.5])
    res = labkit.greedy_forward_selection(Phi, y, 3)
    np.testing.assert_array_equal(res.order, exact_mse_gfs(Phi.tolist(), [1, 1, Fraction(3, 2)],
                                                           3))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("loss", ["mse", "bce"])
def test_cuda_matches_reference(loss):
    Phi, y = random_instance(9, 30, 200, loss)
    res = labkit.greedy_forward_selection(torch.tensor(Phi, device="cuda"),
                                          torch.tensor(y, device="cuda"), 25, loss=loss)
    order, losses = ref_gfs(Phi, y, 25, loss)
    np.testing.assert_array_equal(res.order, order)
    np.testing.assert_allclose(res.losses, losses, rtol=1e-9)


# ------------------------------------------------------------------------------ properties


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), N=st.integers(1, 15), m=st.integers(1, 20),
       loss=st.sampled_from(["mse", "bce"]))
def test_without_replacement_no_repeats_and_full_permutation(seed, N, m, loss):
    Phi, y = random_instance(seed, N, m, loss)
    res = labkit.greedy_forward_selection(Phi, y, N, loss=loss, replacement=False)
    assert sorted(res.order.tolist()) == list(range(N))
    np.testing.assert_array_equal(res.counts, np.ones(N))
    dense = ref_loss(Phi.mean(0), y, loss)
    assert res.losses[-1] == pytest.approx(dense, rel=1e-9, abs=1e-12)
    k = max(1, N // 2)
    res = labkit.greedy_forward_selection(Phi, y, k, loss=loss, replacement=False)
    assert len(set(res.order.tolist())) == k


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), N=st.integers(1, 30), m=st.integers(1, 30))
def test_first_pick_closed_form(seed, N, m):
    """With one neuron the pruned output is Phi_i itself: the first pick minimises
    ||Phi_i - y||^2, and its loss is that distance over m."""
    Phi, y = random_instance(seed, N, m, "mse")
    res = labkit.greedy_forward_selection(Phi, y, 1)
    dist = ((Phi - y) ** 2).sum(1)
    assert res.order[0] == int(np.argmin(dist))
    assert res.losses[0] == pytest.approx(dist.min() / m, rel=1e-12)


def test_result_repr_and_fields():
    Phi, y = random_instance(1, 5, 6, "mse")
    res = labkit.greedy_forward_selection(Phi, y, 4)
    assert res.k == 4 and res.loss == "mse" and res.replacement is True
    assert "k=4" in repr(res)


# ---------------------------------------------------------------------------------- errors

PHI, Y = random_instance(0, 4, 6, "mse")


@pytest.mark.parametrize("k", [0, -1, 2.0, 1.5, "3", None, True])
def test_bad_k(k):
    with pytest.raises(ValueError, match=r"\bk\b"):
        labkit.greedy_forward_selection(PHI, Y, k)


def test_numpy_integer_k_is_accepted():
    res = labkit.greedy_forward_selection(PHI, Y, np.int64(3))
    assert res.k == 3


def test_k_above_N_without_replacement():
    with pytest.raises(ValueError, match=r"\bk\b") as err:
        labkit.greedy_forward_selection(PHI, Y, 5, replacement=False)
    assert re.search(r"\b4\b", str(err.value)) and "N" in str(err.value)


def test_unknown_loss():
    with pytest.raises(ValueError, match=r"\bloss\b"):
        labkit.greedy_forward_selection(PHI, Y, 2, loss="hinge")


@pytest.mark.parametrize("y", [np.zeros(5), np.zeros(7), np.zeros((6, 1)), np.zeros((1, 6))])
def test_y_shape_mismatch(y):
    with pytest.raises(ValueError, match=r"\by\b"):
        labkit.greedy_forward_selection(PHI, y, 2)


@pytest.mark.parametrize("Phi", [np.zeros(6), np.zeros((2, 3, 6))])
def test_phi_not_2d(Phi):
    with pytest.raises(ValueError, match=r"\bPhi\b"):
        labkit.greedy_forward_selection(Phi, np.zeros(6), 1)


@pytest.mark.parametrize("bad", [-0.1, 1.5, 2.0])
def test_bce_labels_outside_unit_interval(bad):
    y = np.full(6, 0.5)
    y[2] = bad
    with pytest.raises(ValueError, match=r"\by\b"):
        labkit.greedy_forward_selection(PHI, y, 2, loss="bce")
