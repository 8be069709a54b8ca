"""Full-batch GD pre-training (eq. 5) with the mean-field step ``theta - lr * N * grad``."""

from __future__ import annotations

import copy
import re

import numpy as np
import pytest
import torch

import labkit


def setup(N=12, d=4, m=40, seed=0, output="identity", activation="tanh"):
    X, y = labkit.teacher_student(m, d, seed=seed, dtype=torch.float64)
    net = labkit.TwoLayerNet(d, N, activation=activation, output=output, dtype=torch.float64,
                             generator=torch.Generator().manual_seed(seed + 1))
    return net, X, y


def independent_loss(W, b, X, y, loss, activation="tanh"):
    """Eq. (4) written out: f(x_j) = (1/N) sum_i b_i sigma(w_i . x_j)."""
    sigma = torch.tanh if activation == "tanh" else torch.relu
    pre = torch.einsum("nd,md->nm", W, X)
    z = (b[:, None] * sigma(pre)).sum(0) / W.shape[0]
    if loss == "mse":
        return ((z - y) ** 2).sum() / len(y)
    softplus = torch.clamp(z, min=0) + torch.log1p(torch.exp(-z.abs()))
    return (softplus - y * z).sum() / len(y)


def test_pretraining_decreases_loss():
    net, X, y = setup(N=50, m=100)
    history = labkit.pretrain_gd(net, X, y, steps=200, lr=0.5)
    assert history.shape == (201,)
    assert np.isfinite(history).all()
    assert history[-1] < 0.5 * history[0]
    with torch.no_grad():
        final = independent_loss(net.W, net.b, X, y, "mse").item()
    assert history[-1] == pytest.approx(final, rel=1e-12)


@pytest.mark.parametrize("loss", ["mse", "bce"])
@pytest.mark.parametrize("activation", ["tanh", "relu"])
def test_one_step_is_mean_field_gd(loss, activation):
    net, X, y = setup(output="sigmoid" if loss == "bce" else "identity", activation=activation)
    if loss == "bce":
        y = (y > 0).to(y.dtype)
    W0 = net.W.detach().clone().requires_grad_(True)
    b0 = net.b.detach().clone().requires_grad_(True)
    L0 = independent_loss(W0, b0, X, y, loss, activation)
    gW, gb = torch.autograd.grad(L0, (W0, b0))
    lr, N = 0.3, net.N
    history = labkit.pretrain_gd(net, X, y, steps=1, lr=lr, loss=loss)
    np.testing.assert_allclose(net.W.detach().numpy(), (W0 - lr * N * gW).detach().numpy(),
                               rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(net.b.detach().numpy(), (b0 - lr * N * gb).detach().numpy(),
                               rtol=1e-12, atol=1e-14)
    assert history[0] == pytest.approx(L0.item(), rel=1e-12)
    with torch.no_grad():
        L1 = independent_loss(net.W, net.b, X, y, loss, activation).item()
    assert history[1] == pytest.approx(L1, rel=1e-12)


def test_lr_means_the_same_at_every_width():
    """Mean-field time scale: duplicating every neuron leaves the network function and its
    GD trajectory unchanged (the gradient per neuron halves, N doubles)."""
    net, X, y = setup(N=6)
    wide = labkit.TwoLayerNet(net.d, 12, dtype=torch.float64)
    with torch.no_grad():
        wide.W.copy_(torch.cat([net.W, net.W]))
        wide.b.copy_(torch.cat([net.b, net.b]))
    h1 = labkit.pretrain_gd(net, X, y, steps=20, lr=0.5)
    h2 = labkit.pretrain_gd(wide, X, y, steps=20, lr=0.5)
    np.testing.assert_allclose(h1, h2, rtol=1e-10)


def test_zero_steps_only_evaluates():
    net, X, y = setup()
    W = net.W.detach().clone()
    history = labkit.pretrain_gd(net, X, y, steps=0, lr=0.1)
    assert history.shape == (1,)
    assert torch.equal(net.W.detach(), W)


@pytest.mark.parametrize("lr", [1e3, 1e10, 1e30])
def test_divergence_names_the_iteration(lr):
    net0, X, y = setup(N=10, m=50)
    net = copy.deepcopy(net0)
    with pytest.raises(FloatingPointError, match=r"iteration \d+") as err:
        labkit.pretrain_gd(net.float(), X.float(), y.float(), steps=2000, lr=lr)
    t = int(re.search(r"iteration (\d+)", str(err.value)).group(1))
    assert t >= 1
    # the named iteration is the first non-finite one: t - 1 steps stay finite
    history = labkit.pretrain_gd(copy.deepcopy(net0).float(), X.float(), y.float(),
                                 steps=t - 1, lr=lr)
    assert np.isfinite(history).all()


@pytest.mark.parametrize("steps", [-1, 2.5, True])
def test_bad_steps(steps):
    net, X, y = setup()
    with pytest.raises(ValueError, match=r"\bsteps\b"):
        labkit.pretrain_gd(net, X, y, steps=steps, lr=0.1)


@pytest.mark.parametrize("lr", [0, -1.0, float("nan")])
def test_bad_lr(lr):
    net, X, y = setup()
    with pytest.raises(ValueError, match=r"\blr\b"):
        labkit.pretrain_gd(net, X, y, steps=1, lr=lr)


def test_unknown_loss():
    net, X, y = setup()
    with pytest.raises(ValueError, match=r"\bloss\b"):
        labkit.pretrain_gd(net, X, y, steps=1, lr=0.1, loss="hinge")


def test_weight_movement_against_a_hand_computation():
    W0 = torch.tensor([[3.0, 4.0], [0.0, 1.0]])
    W = torch.tensor([[3.0, 4.0], [0.0, 3.0]])  # only neuron 2 moves, by 2
    b0, b = torch.tensor([1.0, -1.0]), torch.tensor([1.0, 0.0])
    got = labkit.weight_movement(W0, W, b0, b)
    assert got["rel_first"] == pytest.approx(2 / 26**0.5)
    assert got["max_neuron"] == pytest.approx(2.0)
    assert got["rel_second"] == pytest.approx(1 / 2**0.5)
    assert "rel_second" not in labkit.weight_movement(W0, W)
