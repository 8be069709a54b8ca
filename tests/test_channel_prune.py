"""Channel GFS on any torchvision CNN (chapter 7): groups found by Torch-Pruning's
DependencyGraph include the hand-described ones, the batched scorer equals one forward
pass of the masked model per candidate, GFS selects what the reference would, and the
physically smaller model equals the masked one, on seven torchvision families."""

from __future__ import annotations

import functools
import time

import pytest
import torch
from torch import nn

import labkit as lk
from labkit.deep import graph as cgr
from labkit.deep import nets as dn
from labkit.deep import prune as cp
from labkit.deep import zoo
from labkit.distributed import DistributedGFSError
from labkit.distributed import channels as dch
from tests import dist_faults

WIDTH = {"resnet18": 0.125, "resnet34": 0.0625, "mobilenet_v2": 0.25,
         "mobilenet_v3_small": 0.25, "vgg11_bn": 0.0625, "resnext": 0.125,
         "regnet_x": 0.25}


def _random_bn(model, seed: int):
    """Non-trivial BatchNorm statistics, so eval-mode checks exercise them."""
    g = torch.Generator().manual_seed(seed)
    for mod in model.modules():
        if isinstance(mod, nn.BatchNorm2d):
            n = mod.num_features
            mod.running_mean.copy_(0.3 * torch.randn(n, generator=g))
            mod.running_var.copy_(0.5 + torch.rand(n, generator=g))
            mod.weight.data.copy_(0.5 + torch.rand(n, generator=g))
            mod.bias.data.copy_(0.3 * torch.randn(n, generator=g))
    return model


def _model(family: str):
    return _random_bn(zoo.tv_model(family, width=WIDTH[family], seed=1), 2).double().eval()


def _data(n: int = 6, seed: int = 3, channels: int = 3):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(n, channels, 32, 32, generator=g, dtype=torch.float64),
            torch.randint(10, (n,), generator=g))


def _counts(C: int, k: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    counts = torch.zeros(C, dtype=torch.float64)
    for c in torch.randint(C, (k,), generator=g):
        counts[c] += 1
    return counts


@pytest.mark.parametrize("family", zoo.FAMILIES)
def test_batched_scores_equal_one_pass_per_candidate(family):
    model, (x, y) = _model(family), _data()
    groups = [g for g in cgr.find_groups(model, x[:1]) if g.supported]
    traced = cgr.Traced(model)
    spread = 0.0
    for i, g in enumerate(groups):
        # a mask already set on the previous group, as in layer-wise pruning
        if i:
            cgr.set_group_mask(groups[i - 1], torch.rand(groups[i - 1].C, dtype=torch.float64))
        # up to 7 candidates, the first and the last channel among them
        cands = torch.unique(torch.linspace(0, g.C - 1, min(g.C, 7)).round().long())
        for k in (0, 3):
            counts = _counts(g.C, k, i)
            ours = cp.score_candidates(traced, g, x, y, counts, cands, rows_per_pass=2 * len(x))
            ref = cp.reference_scores(model, g, x, y, counts, cands)
            torch.testing.assert_close(ours, ref, rtol=0, atol=1e-10)
            spread = max(spread, float(ref.max() - ref.min()))
    # the test can fail: candidates' losses differ by far more than the tolerance
    assert spread > 1e-5


@pytest.mark.parametrize("family", zoo.FAMILIES)
def test_physically_smaller_model_equals_masked(family):
    model, (x, _) = _model(family), _data()
    groups = [g for g in cgr.find_groups(model, x[:1]) if g.supported]
    g = torch.Generator().manual_seed(0)
    for grp in groups:
        mu = torch.rand(grp.C, generator=g, dtype=torch.float64)
        mu[torch.rand(grp.C, generator=g) < 0.4] = 0
        mu[0] = 1.5  # every group keeps a channel
        cgr.set_group_mask(grp, mu)
    small = cgr.shrink(model, x[:1]).eval()
    with torch.no_grad():
        torch.testing.assert_close(small(x), model(x), rtol=0, atol=1e-10)
        assert lk.count_params(small) < lk.count_params(model)
        # a removal that forgot to fold the weights would be caught
        cgr.clear_masks(model)
        assert float((small(x) - model(x)).abs().max()) > 1e-3


def _prune(model, x, y, scorer=None):
    def batches(j):
        g = torch.Generator().manual_seed(j)
        idx = torch.randint(len(x), (len(x),), generator=g)
        return x[idx], y[idx]

    def eval_fn(net):
        # minus the loss: a score that pruning lowers, so every group runs to its budget
        with torch.no_grad():
            return -float(nn.functional.cross_entropy(net(x), y))

    return cp.prune_channels(model, batches, eval_fn, eps=0.0, budget=0.1, n_candidates=5,
                             seed=4, scorer=scorer)


@pytest.mark.parametrize("family", zoo.FAMILIES)
def test_selection_equals_the_reference(family):
    model, (x, y) = _model(family), _data(8)
    small, report = _prune(model, x, y)
    _, ref = _prune(model, x, y, scorer=cp.reference_scores)
    assert [r.order for r in report.layers] == [r.order for r in ref.layers]
    assert sum(len(r.order) for r in report.layers) > len(report.layers)  # real choices
    assert all(len(r.order) >= 1 for r in report.layers)
    assert report.max_abs_diff < 1e-10
    assert report.flops_after < report.flops_before
    assert report.params_after < report.params_before
    assert report.acc_after == pytest.approx(report.layers[-1].accuracies[-1], abs=1e-10)


def test_groups_include_the_hand_described_ones():
    for arch, width in (("resnet34", 0.0625), ("mobilenet_v2", 0.1)):
        model = dn.build(arch, width=width, in_channels=1).eval()
        found = cgr.find_groups(model, torch.zeros(1, 1, 32, 32))
        inner = {tuple(c.module for c in g.consumers): g for g in found if g.kind == "inner"}
        for hand in dn.channel_groups(model):
            g = inner[(hand.conv,)]
            assert g.supported and g.C == hand.C
            producer = hand.block.conv1 if arch == "resnet34" else hand.block.conv[0][0]
            assert model.get_submodule(g.producers[0]) is producer
        if arch == "mobilenet_v2":  # and the projection outputs, tied by residual additions
            produced = {p for g in found if g.supported for p in g.producers}
            for block in dn.stages(model)[1:-2]:
                name = next(n for n, m in model.named_modules() if m is block.conv[-2])
                assert name in produced


def test_grouped_convolutions_are_reported_not_pruned():
    model, (x, _) = _model("resnext"), _data()
    found = cgr.find_groups(model, x[:1])
    skipped = [g for g in found if not g.supported]
    assert skipped and all("grouped convolution" in g.reason for g in skipped)
    assert any(g.supported for g in found)


def test_unsupported_layers_get_a_clear_error():
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.GroupNorm(2, 4), nn.Flatten(),
                        nn.Linear(4 * 30 * 30, 10))
    with pytest.raises(ValueError, match=r"'1' is a GroupNorm"):
        cgr.find_groups(net, torch.zeros(1, 3, 32, 32))

    class Branchy(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 4, 3)

        def forward(self, x):
            return self.conv(x) if x.sum() > 0 else x  # data-dependent: fx cannot trace

    with pytest.raises(ValueError, match="torch.fx cannot trace Branchy"):
        cgr.Traced(Branchy())


def test_prune_channels_rejects_bad_arguments():
    model, (x, y) = _model("vgg11_bn"), _data()

    def batches(j):
        return x, y

    for kw, field in (({"eps": 1.0}, "eps"), ({"budget": 0}, "budget"),
                      ({"groups": "some"}, "groups"), ({"n_candidates": 0}, "n_candidates")):
        with pytest.raises(ValueError, match=f"^{field}:"):
            cp.prune_channels(model, batches, lambda net: 1.0, **kw)
    with pytest.raises(ValueError, match="mu: expected"):
        cgr.set_group_mask(cgr.find_groups(model, x[:1])[0], torch.ones(3))


# ------------------------------------------------------------------ distributed channel GFS

def _dist_problem():
    model = _random_bn(zoo.tv_model("resnet18", width=0.125, seed=1), 2).eval()
    g = torch.Generator().manual_seed(0)
    X, Y = torch.randn(64, 3, 32, 32, generator=g), torch.randint(10, (64,), generator=g)
    opts = {"eps": 0.0, "budget": 0.1, "n_candidates": 7, "seed": 3,
            "groups": ["layer1.0.conv1", "layer3.0.conv1", "layer4.1.conv1"]}
    return model, cp.SeededBatches(X, Y, 8, seed=1), cp.Accuracy(X[:16], Y[:16]), opts


@pytest.fixture(scope="module")
def centralized():
    model, batches, acc, opts = _dist_problem()
    return cp.prune_channels(model, batches, acc, **opts)


@pytest.mark.parametrize("nprocs", [1, 2, 3])
def test_distributed_selection_equals_centralized(centralized, nprocs):
    model, batches, acc, opts = _dist_problem()
    small, report, times = dch.spawn_prune_channels(model, batches, acc, nprocs=nprocs,
                                                    timeout_s=30, deadline_s=120, **opts)
    ref_small, ref = centralized
    assert [r.order for r in report.layers] == [r.order for r in ref.layers]
    assert [r.losses for r in report.layers] == [r.losses for r in ref.layers]
    assert len(times) == nprocs and len(times[0]) == sum(len(r.order) for r in ref.layers)
    x = batches(0)[0]
    with torch.no_grad():
        torch.testing.assert_close(small(x), ref_small(x))


def test_distributed_dead_rank_is_a_clear_error(monkeypatch):
    model, batches, acc, opts = _dist_problem()
    monkeypatch.setattr(dch, "_worker", functools.partial(dist_faults.channel_worker,
                                                          fault=(1, 1, "crash")))
    start = time.monotonic()
    with pytest.raises(DistributedGFSError) as err:
        dch.spawn_prune_channels(model, batches, acc, nprocs=2, timeout_s=5, deadline_s=90,
                                 **opts)
    outcomes = err.value.outcomes
    assert outcomes[1]["exitcode"] == 3
    assert outcomes[0]["exitcode"] == 1 and not outcomes[0]["terminated"]
    assert "all_reduce of the candidate scores" in outcomes[0]["error"]
    assert time.monotonic() - start < 90


def test_distributed_bad_input():
    model, batches, acc, opts = _dist_problem()
    with pytest.raises(ValueError, match="^batches, accuracy:"):
        dch.spawn_prune_channels(model, lambda j: batches(j), acc, **opts)
    with pytest.raises(ValueError, match="^nprocs:"):
        dch.spawn_prune_channels(model, batches, acc, nprocs=0, **opts)
