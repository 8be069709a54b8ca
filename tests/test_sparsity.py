"""labkit.algorithms.sparsity against independent computations: global magnitude pruning against a
slow NumPy rule, rewinding against the stored weights (bitwise), masked training, EL2N
against SciPy's softmax, and the error barrier against a direct evaluation on a grid."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.special import softmax
from torch import nn

from labkit.algorithms import sparsity as S


def _reference_global(weights: dict, mask: dict, fraction: float) -> dict:
    """The rule written out slowly: remove, one at a time, the kept weight of smallest
    magnitude over every layer (the first in layer order, then flat index, on ties), until
    ceil(fraction * remaining) are gone."""
    names = list(mask)
    mags = [np.abs(weights[n].detach().numpy()).ravel().astype(np.float64) for n in names]
    keep = [mask[n].numpy().ravel().astype(bool).copy() for n in names]
    n_prune = math.ceil(fraction * sum(int(k.sum()) for k in keep))
    for _ in range(n_prune):
        best = None
        for li, (mag, kp) in enumerate(zip(mags, keep, strict=True)):
            for j in np.flatnonzero(kp):
                if best is None or mag[j] < best[0]:
                    best = (mag[j], li, j)
        keep[best[1]][best[2]] = False
    return {n: keep[i].reshape(mask[n].shape) for i, n in enumerate(names)}


def _layerwise(weights: dict, mask: dict, fraction: float) -> dict:
    """A deliberately wrong rule for global IMP: the same fraction from each layer."""
    out = {}
    for n, m in mask.items():
        mag = np.abs(weights[n].detach().numpy()).ravel()
        kp = m.numpy().ravel().astype(bool).copy()
        idx = np.flatnonzero(kp)
        drop = idx[np.argsort(mag[idx], kind="stable")[:math.ceil(fraction * len(idx))]]
        kp[drop] = False
        out[n] = kp.reshape(m.shape)
    return out


def _weights(seed=0):
    g = torch.Generator().manual_seed(seed)
    # rounded, so that magnitudes tie across and within layers; layers of different scales,
    # so that the global and the layer-wise rules disagree
    return {"a.weight": (torch.randn(6, 5, generator=g) * 4).round() / 4,
            "b.weight": (torch.randn(3, 6, generator=g) * 2).round() / 8,
            "c.weight": (torch.randn(4, 2, 3, generator=g) * 8).round() / 8}


def test_global_magnitude_matches_the_slow_rule_over_rounds():
    weights = _weights()
    mask = {n: torch.ones_like(w) for n, w in weights.items()}
    for _ in range(6):
        ours = S.global_magnitude(weights, mask, 0.2)
        ref = _reference_global(weights, mask, 0.2)
        for n in mask:
            assert np.array_equal(ours[n].numpy().astype(bool), ref[n]), n
        mask = ours
    kept = sum(int(m.sum()) for m in mask.values())
    total = sum(m.numel() for m in mask.values())
    expected = total
    for _ in range(6):
        expected -= math.ceil(0.2 * expected)
    assert kept == expected


def test_the_check_fails_against_a_wrong_rule():
    weights = _weights(1)
    mask = {n: torch.ones_like(w) for n, w in weights.items()}
    ref = _reference_global(weights, mask, 0.2)
    wrong = _layerwise(weights, mask, 0.2)
    assert any(not np.array_equal(ref[n], wrong[n]) for n in mask)


def test_global_magnitude_rejects_bad_fractions():
    weights = _weights()
    mask = {n: torch.ones_like(w) for n, w in weights.items()}
    for bad in (0, 1, -0.1, 1.5):
        with pytest.raises(ValueError, match="fraction"):
            S.global_magnitude(weights, mask, bad)


class _Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 3, 3)
        self.bn = nn.BatchNorm2d(3)
        self.hidden = nn.Linear(12, 8)
        self.out = nn.Linear(8, 2)

    def forward(self, x):
        h = torch.relu(self.bn(self.conv(x))).flatten(1)
        return self.out(torch.relu(self.hidden(h)))


def test_prunable_skips_biases_norms_and_ignored_layers():
    net = _Net()
    assert set(S.prunable(net, ignore=("out.weight",))) == {"conv.weight", "hidden.weight"}
    assert set(S.prunable(net)) == {"conv.weight", "hidden.weight", "out.weight"}
    with pytest.raises(ValueError, match="ignore.*fc.weight"):
        S.prunable(net, ignore=("fc.weight",))


def _train(net, mask, steps=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    opt = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-2)
    for _ in range(steps):
        x = torch.randn(8, 1, 4, 4, generator=g)
        y = torch.randint(0, 2, (8,), generator=g)
        opt.zero_grad()
        nn.functional.cross_entropy(net(x), y).backward()
        S.masked_step(net, mask, opt)


def test_imp_rewinds_bitwise_and_keeps_masked_weights_at_zero():
    torch.manual_seed(0)
    net = _Net()
    _train(net, S.full_mask(net, ("out.weight",)), steps=3)  # "step t" of pre-training
    state_t = {k: v.clone() for k, v in net.state_dict().items()}
    seen = []

    def train(model, mask):
        params = dict(model.named_parameters())
        for n, m in mask.items():  # rewound: step-t weights where kept, zero elsewhere
            assert torch.equal(params[n].detach(), state_t[n] * m)
        for n in ("out.weight", "out.bias", "bn.weight"):  # never masked: as stored
            assert torch.equal(params[n].detach(), state_t[n])
        _train(model, mask, steps=4, seed=len(seen) + 1)

    def on_round(r, mask, model):
        params = dict(model.named_parameters())
        for n, m in mask.items():  # momentum and weight decay did not revive a weight
            assert torch.all(params[n].detach()[m == 0] == 0)
        seen.append(S.density(mask))

    masks = S.imp(net, state_t, train, rounds=4, fraction=0.2, ignore=("out.weight",),
                  on_round=on_round)
    assert len(masks) == 4
    assert seen[0] == 1.0
    total = sum(m.numel() for m in masks[0].values())
    kept = total
    for r in range(1, 4):
        kept -= math.ceil(0.2 * kept)
        assert seen[r] == pytest.approx(kept / total)
    for earlier, later in zip(masks, masks[1:], strict=False):  # masks only shrink
        for n in earlier:
            assert torch.all(later[n] <= earlier[n])


def test_random_mask_keeps_the_expected_fraction():
    m = S.random_mask((200, 500), 0.9, torch.Generator().manual_seed(0))
    assert set(m.unique().tolist()) <= {0.0, 1.0}
    assert m.mean().item() == pytest.approx(0.1, abs=0.005)
    with pytest.raises(ValueError, match="fraction"):
        S.random_mask((3,), 1.0, torch.Generator())


def test_el2n_matches_scipy():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(20, 10, generator=g) * 3
    labels = torch.randint(0, 10, (20,), generator=g)
    p = softmax(logits.double().numpy(), axis=1)
    onehot = np.eye(10)[labels.numpy()]
    expected = np.sqrt(((p - onehot) ** 2).sum(1))
    assert np.allclose(S.el2n(logits, labels).numpy(), expected, atol=1e-12)


def test_lmc_path_and_barrier_against_a_direct_grid():
    g = torch.Generator().manual_seed(3)
    X = torch.randn(200, 2, generator=g)
    y = (X[:, 0] * X[:, 1] > 0).long()  # XOR-like: no linear model is good, paths bend
    a, b = nn.Linear(2, 2), nn.Linear(2, 2)
    with torch.no_grad():
        a.weight.copy_(torch.tensor([[2.0, 0.5], [-1.0, 1.0]]))
        b.weight.copy_(torch.tensor([[-1.5, 1.0], [2.0, -0.5]]))
        a.bias.zero_()
        b.bias.copy_(torch.tensor([0.3, -0.3]))
    sa, sb = a.state_dict(), b.state_dict()
    alphas = np.linspace(0, 1, 11)

    def error(model):
        with torch.no_grad():
            return (model(X).argmax(1) != y).float().mean().item()

    path = S.lmc_path(nn.Linear(2, 2), sa, sb, error, alphas)
    Xn, yn = X.numpy().astype(np.float64), y.numpy()
    direct = []
    for alpha in alphas:  # the interpolated weights written out, evaluated by NumPy
        W = (1 - alpha) * sa["weight"].numpy() + alpha * sb["weight"].numpy()
        c = (1 - alpha) * sa["bias"].numpy() + alpha * sb["bias"].numpy()
        direct.append(((Xn @ W.T + c).argmax(1) != yn).mean())
    assert np.allclose(path, direct, atol=1e-6)
    barrier = S.error_barrier(path)
    assert barrier == pytest.approx(max(direct) - (direct[0] + direct[-1]) / 2, abs=1e-6)
    # a wrong definition (the highest error minus the worse endpoint) differs here
    assert max(direct) - max(direct[0], direct[-1]) != pytest.approx(barrier)
    with pytest.raises(ValueError, match="errors"):
        S.error_barrier([0.1, 0.2])


def test_reset_bn_estimates_the_plain_average():
    bn = nn.BatchNorm1d(3, momentum=0.1)
    model = nn.Sequential(bn)
    g = torch.Generator().manual_seed(0)
    batches = [torch.randn(16, 3, generator=g) * 2 + 1 for _ in range(4)]
    S.reset_bn(model, batches)
    assert torch.allclose(bn.running_mean, torch.cat(batches).mean(0), atol=1e-6)
    per_batch_var = torch.stack([b.var(0, unbiased=True) for b in batches]).mean(0)
    assert torch.allclose(bn.running_var, per_batch_var, atol=1e-5)
    assert bn.momentum == 0.1 and model.training  # both as they were
