"""TwoLayerNet (eqs. 1-3) and export_pruned against hand computations in NumPy (float64)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import labkit

SIGMA = {"tanh": np.tanh, "relu": lambda a: np.maximum(a, 0.0)}


def make(d=5, N=7, activation="tanh", output="identity", seed=0, **kw):
    gen = torch.Generator().manual_seed(seed)
    return labkit.TwoLayerNet(d, N, activation=activation, output=output, generator=gen,
                              dtype=torch.float64, **kw)


def inputs(m=9, d=5, seed=1):
    return torch.as_tensor(np.random.default_rng(seed).normal(size=(m, d)))


def hand_neurons(net, X):
    """Phi[i, j] = b_i * sigma(w_i . x_j), one neuron and one point at a time."""
    W, b, Xn = net.W.detach().numpy(), net.b.detach().numpy(), X.numpy()
    sigma = SIGMA[net.activation]
    return np.array([[b[i] * sigma(float(np.dot(W[i], Xn[j]))) for j in range(len(Xn))]
                     for i in range(len(W))])


def hand_out(z, output):
    return 1.0 / (1.0 + np.exp(-z)) if output == "sigmoid" else z


@pytest.mark.parametrize("activation", ["tanh", "relu"])
@pytest.mark.parametrize("output", ["identity", "sigmoid"])
def test_forward_is_mean_of_neurons(activation, output):
    net, X = make(activation=activation, output=output), inputs()
    Phi = hand_neurons(net, X)
    with torch.no_grad():
        np.testing.assert_allclose(net.neuron_outputs(X).numpy(), Phi, rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(net(X).numpy(), hand_out(Phi.mean(0), output),
                                   rtol=1e-12, atol=1e-14)


def test_neuron_outputs_shape():
    net = make(d=3, N=11)
    assert tuple(net.neuron_outputs(inputs(m=4, d=3)).shape) == (11, 4)
    assert net.N == 11 and net.d == 3


def test_sigmoid_output_in_unit_interval():
    net, X = make(output="sigmoid", b_scale=50.0), inputs(m=40)
    with torch.no_grad():
        out = net(X).numpy()
    assert ((out >= 0) & (out <= 1)).all()
    np.testing.assert_allclose(out, hand_out(hand_neurons(net, X).mean(0), "sigmoid"),
                               rtol=1e-12)


def test_initialization_scales():
    net = make(d=4, N=2000, w_scale=0.5, b_scale=3.0)
    b = net.b.detach().numpy()
    np.testing.assert_array_equal(np.abs(b), 3.0)
    assert 0.4 < (b > 0).mean() < 0.6
    assert net.W.detach().numpy().std() == pytest.approx(0.5, rel=0.05)


@pytest.mark.parametrize("activation", ["tanh", "relu"])
@pytest.mark.parametrize("output", ["identity", "sigmoid"])
def test_pruned_forward_weighted_average(activation, output):
    net, X = make(activation=activation, output=output), inputs()
    Phi = hand_neurons(net, X)
    counts = np.array([0, 3, 1, 0, 0, 2, 1])
    expected = sum(counts[i] * Phi[i] for i in range(7)) / counts.sum()
    with torch.no_grad():
        out = net.pruned_forward(X, torch.as_tensor(counts)).numpy()
        np.testing.assert_allclose(out, hand_out(expected, output), rtol=1e-12, atol=1e-14)
        dense = net.pruned_forward(X, torch.ones(7, dtype=torch.long)).numpy()
        np.testing.assert_allclose(dense, net(X).numpy(), rtol=1e-12, atol=1e-14)
        # a numpy / list multiset works too
        np.testing.assert_allclose(net.pruned_forward(X, counts.tolist()).numpy(), out,
                                   rtol=1e-15)


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), N=st.integers(1, 12),
       activation=st.sampled_from(["tanh", "relu"]),
       output=st.sampled_from(["identity", "sigmoid"]))
def test_export_pruned_matches_pruned_forward(seed, N, activation, output):
    rng = np.random.default_rng(seed)
    counts = rng.integers(0, 4, size=N) * (rng.random(N) < 0.6)
    if counts.sum() == 0:
        counts[rng.integers(N)] = rng.integers(1, 4)
    net, X = make(d=4, N=N, activation=activation, output=output, seed=seed % 1000), inputs(
        m=6, d=4, seed=seed % 997)
    small = labkit.export_pruned(net, counts)
    assert small.N == int((counts > 0).sum())
    assert small.activation == activation and small.output == output
    assert small.W.dtype == torch.float64
    with torch.no_grad():
        np.testing.assert_allclose(small(X).numpy(), net.pruned_forward(X, counts).numpy(),
                                   rtol=1e-12, atol=1e-12)
        # and against the hand-computed multiset average
        Phi = hand_neurons(net, X)
        expected = hand_out((counts[:, None] * Phi).sum(0) / counts.sum(), output)
        np.testing.assert_allclose(small(X).numpy(), expected, rtol=1e-12, atol=1e-12)


def test_export_pruned_does_not_touch_original():
    net = make()
    W, b = net.W.detach().clone(), net.b.detach().clone()
    small = labkit.export_pruned(net, [1, 0, 2, 0, 0, 0, 0])
    assert torch.equal(net.W, W) and torch.equal(net.b, b)
    assert torch.equal(small.W.detach(), W[[0, 2]])


BAD_COUNTS = {
    "wrong length": [1, 1, 1],
    "wrong ndim": [[1] * 7],
    "negative": [1, -1, 0, 0, 0, 0, 1],
    "non-integer": [0.5, 1, 0, 0, 0, 0, 0],
    "all zero": [0] * 7,
}


@pytest.mark.parametrize("name", BAD_COUNTS)
def test_invalid_counts(name):
    net, X = make(), inputs()
    counts = torch.as_tensor(BAD_COUNTS[name])
    with pytest.raises(ValueError, match=r"\bcounts\b"):
        net.pruned_forward(X, counts)
    with pytest.raises(ValueError, match=r"\bcounts\b"):
        labkit.export_pruned(net, counts)


@pytest.mark.parametrize("field, kwargs", [
    ("N", dict(d=3, N=0)),
    ("N", dict(d=3, N=-2)),
    ("N", dict(d=3, N=2.5)),
    ("d", dict(d=0, N=3)),
    ("activation", dict(d=3, N=3, activation="sin")),
    ("output", dict(d=3, N=3, output="softmax")),
])
def test_invalid_constructor(field, kwargs):
    with pytest.raises(ValueError, match=rf"\b{field}\b"):
        labkit.TwoLayerNet(**kwargs)
