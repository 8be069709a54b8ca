"""Deep networks and channel GFS (chapter 7): the physically smaller network equals the
masked one, the batched scorer equals the one-forward-pass-per-candidate reference, the
pipeline resumes exactly, and bad input gets a clear error."""

from __future__ import annotations

import pytest
import torch

from labkit.deep import channel_gfs as cg
from labkit.deep import nets as dn

SMALL = {"resnet34": 0.0625, "mobilenet_v2": 0.1}


def _random_bn(model, seed: int):
    """Non-trivial BatchNorm statistics, so eval-mode checks exercise them."""
    g = torch.Generator().manual_seed(seed)
    for mod in model.modules():
        if isinstance(mod, torch.nn.BatchNorm2d):
            mod.running_mean.copy_(0.1 * torch.randn(mod.num_features, generator=g))
            mod.running_var.copy_(0.5 + torch.rand(mod.num_features, generator=g))
            mod.weight.data.copy_(0.5 + torch.rand(mod.num_features, generator=g))
            mod.bias.data.copy_(0.1 * torch.randn(mod.num_features, generator=g))
    return model


def _model(arch: str, in_channels: int = 1):
    model = dn.build(arch, width=SMALL[arch], in_channels=in_channels, seed=3).double()
    return _random_bn(model, 4).eval()


def _data(n: int = 12, in_channels: int = 1, seed: int = 5):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(n, in_channels, 32, 32, generator=g, dtype=torch.float64),
            torch.randint(10, (n,), generator=g))


@pytest.mark.parametrize("arch", dn.ARCHS)
def test_stages_compose_to_the_model(arch):
    model, (x, _) = _model(arch), _data()
    torch.testing.assert_close(dn.run_chain(dn.stages(model), x), model(x), rtol=0, atol=0)


def test_models_are_torchvision_resnet34_and_mobilenet_v2():
    from torchvision.models import MobileNetV2, ResNet

    r, m = dn.build("resnet34", width=1.0), dn.build("mobilenet_v2", width=1.0)
    assert isinstance(r, ResNet) and isinstance(m, MobileNetV2)
    # torchvision's ResNet34 has 21.8M parameters at 1000 classes; with a 3x3 stem and 10
    # classes it has 21.28M (the published CIFAR ResNet34 count)
    assert dn.count_params(r) == 21_282_122
    assert [g.C for g in dn.channel_groups(r)] == [64] * 3 + [128] * 4 + [256] * 6 + [512] * 3
    assert [g.C for g in dn.channel_groups(m)][:3] == [96, 144, 144]
    assert r(torch.zeros(2, 3, 32, 32)).shape == (2, 10)


@pytest.mark.parametrize("arch", dn.ARCHS)
def test_shrunk_model_equals_masked_model(arch):
    model, (x, _) = _model(arch), _data()
    g = torch.Generator().manual_seed(6)
    for group in dn.channel_groups(model):
        mask = torch.rand(group.C, generator=g, dtype=torch.float64) * 3
        mask[torch.rand(group.C, generator=g) < 0.5] = 0
        mask[int(torch.randint(group.C, (1,), generator=g))] = 1.5  # at least one kept
        dn.set_mask(group, mask)
    small = dn.shrink(model)
    torch.testing.assert_close(small(x), model(x), rtol=1e-10, atol=1e-10)
    kept = [int((gr.conv.channel_mask > 0).sum()) for gr in dn.channel_groups(model)]
    assert [gr.C for gr in dn.channel_groups(small)] == kept
    assert dn.count_params(small) < dn.count_params(model)
    assert dn.count_flops(small, (1, 32, 32)) < dn.count_flops(model, (1, 32, 32))
    # the masked model is untouched, and removing the masks gives back the dense network
    dense = _model(arch)
    for group in dn.channel_groups(model):
        dn.set_mask(group, None)
    torch.testing.assert_close(model(x), dense(x), rtol=0, atol=0)


def test_resnet_flops_match_a_hand_count():
    """ResNet34 at width 1/16 on 1x32x32: count every convolution and the linear layer
    (2 FLOPs per multiply-add), independently of torch's counter."""
    model = dn.build("resnet34", width=0.0625, in_channels=1)
    total = 0
    convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    x = torch.zeros(1, 1, 32, 32)
    shapes = {}
    hooks = [c.register_forward_hook(lambda mod, i, o: shapes.__setitem__(mod, o.shape))
             for c in convs]
    model.eval()(x)
    for h in hooks:
        h.remove()
    for c in convs:
        _, c_out, H, W = shapes[c]
        total += 2 * c_out * H * W * (c.in_channels // c.groups) * c.kernel_size[0] ** 2
    total += 2 * model.fc.in_features * model.fc.out_features
    assert dn.count_flops(model, (1, 32, 32)) == total


@pytest.mark.parametrize("arch", dn.ARCHS)
def test_scorer_equals_brute_force(arch):
    model, (x, y) = _model(arch), _data()
    chain = dn.stages(model)
    groups = dn.channel_groups(model)
    # first group, a group with a stride (downsampling) and the last group
    strided = next(g for g in groups
                   if any(getattr(m, "stride", (1, 1)) != (1, 1) for m in g.block.modules()))
    for group in (groups[0], strided, groups[-1]):
        x_in = dn.run_chain(chain[:group.stage], x)
        h = group.inner(x_in)
        for counts in (torch.zeros(group.C), torch.eye(group.C)[1] * 2 + torch.eye(group.C)[0]):
            counts = counts.double()
            # every channel of small groups; a spread of 7 in wide ones (brute force is slow)
            cands = torch.arange(group.C) if group.C <= 16 else torch.arange(1, group.C, 7)
            fast = cg.score_candidates(model, group, x_in, h, y, counts, cands, rows_per_pass=30)
            slow = cg.brute_force_scores(model, group, x, y, counts, cands)
            torch.testing.assert_close(fast, slow, rtol=1e-10, atol=1e-12)
            assert cg.pick(fast, cands) == cg.pick(slow, cands)


def _greedy_by_brute_force(model, group, batches, pools, steps):
    """The reference procedure: brute-force scores, first minimum, for given pools."""
    counts = torch.zeros(group.C, dtype=torch.float64)
    order = []
    for j in range(steps):
        x, y = batches(j)
        scores = cg.brute_force_scores(model, group, x, y, counts, pools[j])
        c = cg.pick(scores, pools[j])
        counts[c] += 1
        order.append(c)
    return order


@pytest.mark.parametrize("arch", dn.ARCHS)
def test_prune_group_selects_what_brute_force_selects(arch):
    model = _model(arch)
    group = dn.channel_groups(model)[1]
    def batches(j):
        return _data(8, seed=j)

    eval_X, eval_y = _data(16, seed=99)
    res = cg.prune_group(model, group, batches, eval_X, eval_y, eps=0.0,
                         n_candidates=5, gen=torch.Generator().manual_seed(0))
    # replay the same random candidate pools (drawn from the unselected channels)
    gen, pools, taken = torch.Generator().manual_seed(0), [], set()
    for c in res.order:
        free = torch.tensor([i for i in range(group.C) if i not in taken])
        pools.append(free[torch.randperm(len(free), generator=gen)[:5]].sort().values
                     if len(free) > 5 else free)
        taken.add(c)
    dn.set_mask(group, None)
    assert res.order == tuple(_greedy_by_brute_force(model, group, batches, pools,
                                                     len(res.order)))
    assert len(set(res.order)) == len(res.order)  # without replacement
    # eps = 0: the layer stops once the subnetwork is as accurate as the dense block
    assert res.accuracies[-1] >= res.acc_before or len(res.order) == group.C
    assert all(a < res.acc_before for a in res.accuracies[:-1])


def test_random_candidates_are_random_not_lowest_index():
    """The reference code's 'random' candidates were the lowest unselected indices."""
    model = _model("mobilenet_v2")
    group = dn.channel_groups(model)[0]
    x, y = _data(8)
    seen = set()
    for seed in range(4):
        res = cg.prune_group(model, group, lambda j: (x, y), x, y, eps=0.99, n_candidates=3,
                             gen=torch.Generator().manual_seed(seed))
        seen.add(res.order[0])
        dn.set_mask(group, None)
    assert max(seen) >= 3 or len(seen) > 1


def test_bad_input_errors():
    with pytest.raises(ValueError, match="^arch: unknown architecture 'vgg'"):
        dn.build("vgg")
    with pytest.raises(ValueError, match="^width:"):
        dn.build("resnet34", width=0)
    model = _model("resnet34")
    group = dn.channel_groups(model)[0]
    with pytest.raises(ValueError, match="^mask: expected 4"):
        dn.set_mask(group, torch.ones(3))
    dn.set_mask(group, torch.zeros(group.C))
    with pytest.raises(ValueError, match="keeps no channel"):
        dn.shrink(model)
    with pytest.raises(ValueError, match="^eps:"):
        cg.prune_network(model, None, None, None, eps=1.0, n_candidates=None, seed=0)
    with pytest.raises(ValueError, match="^model: .* no prunable"):
        dn.channel_groups(torch.nn.Sequential(torch.nn.Linear(2, 2)))
