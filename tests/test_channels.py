"""Deep networks and channel GFS (chapter 7): the physically smaller network equals the
masked one, the batched scorer equals the one-forward-pass-per-candidate reference, the
pipeline resumes exactly, and bad input gets a clear error."""

from __future__ import annotations

import dataclasses
import signal
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

import labkit as lk
from labkit import channel_gfs as cg
from labkit import deepnets as dn
from labkit import tables
from tests.conftest import kill_midway_and_resume

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


def test_pretraining_resumes_exactly(tmp_path):
    cfg = lk.config.get("table1", checkpoints=(3, 6), batch_size=8)
    data = tables.load_images("mnist32")
    once = tables.pretrained(cfg, data, "resnet34", 0.0625, 100, 6, root=tmp_path / "a",
                             device="cpu")
    tables.pretrained(cfg, data, "resnet34", 0.0625, 100, 3, root=tmp_path / "b", device="cpu")
    assert sorted(p.name for p in (tmp_path / "b").rglob("*.pt")) == ["t3.pt"]
    twice = tables.pretrained(cfg, data, "resnet34", 0.0625, 100, 6, root=tmp_path / "b",
                              device="cpu")
    for (k, a), b in zip(once.state_dict().items(), twice.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0, msg=k)


TINY = dict(archs=("resnet34",), widths=(0.0625,), sizes=(100,), checkpoints=(2, 4, 6),
            batch_size=8, n_candidates=2, prune_batch=8, eval_size=16,
            layer_finetune_iters=0, finetune_iters=2)

RUN_SCRIPT = textwrap.dedent(f"""
    import sys
    import labkit as lk
    from labkit.tables import run_table
    cfg = lk.config.get("table1", **{TINY!r})
    run_table(cfg, out=sys.argv[1], name="table1").to_pickle(sys.argv[2])
""")


def test_table_run_resumes_after_a_kill(tmp_path):
    kill_midway_and_resume(RUN_SCRIPT, tmp_path,
                           lambda out: Path(out) / "deep" / "cells" / "deep", 3, signal.SIGKILL)


def test_table_rows_and_paper_layout(tmp_path):
    cfg = lk.config.get("table1", **{**TINY, "checkpoints": (2,)})
    table = tables.run_table(cfg, out=tmp_path, name="table1")
    assert list(table.columns[:4]) == ["arch", "size", "eps", "t"] and len(table) == 1
    row = table.iloc[0]
    assert 0 <= row.finetuned_acc <= 1 and row.flops < row.dense_flops
    assert 0 < row.kept_channels < 1
    view = tables.table_view(table)
    assert list(view.columns) == ["model", "size", "t=2", "Dense", "FLOP ratio", "param ratio"]
    assert tables.PAPER_TABLE1.shape == (6, 7) and tables.PAPER_TABLE2.shape == (4, 6)
    # a second call reads every cell back
    again = tables.run_table(cfg, out=tmp_path, name="table1")
    assert again.equals(table)


@pytest.mark.parametrize(("kwargs", "field"), [
    ({"archs": ("vgg16",), "widths": (1.0,)}, "archs"),
    ({"widths": (0.5,)}, "widths"),
    ({"widths": (0.0, 1.0)}, "widths"),
    ({"eps": (1.5,)}, "eps"),
    ({"sizes": (-1,)}, "sizes"),
    ({"checkpoints": (10, 5)}, "checkpoints"),
    ({"source": "svhn"}, "source"),
    ({"n_candidates": -1}, "n_candidates"),
])
def test_deep_config_rejects_bad_values(kwargs, field):
    with pytest.raises(ValueError, match=f"^{field}:"):
        lk.config.get("table1", **kwargs)


def test_bad_input_errors(monkeypatch):
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
    monkeypatch.delenv("LABKIT_CIFAR_DIR", raising=False)
    with pytest.raises(FileNotFoundError, match="LABKIT_CIFAR_DIR"):
        tables.load_images("cifar10")
    monkeypatch.setenv("LABKIT_IMAGENET_DIR", str(Path(__file__).parent))
    with pytest.raises(FileNotFoundError, match="LABKIT_IMAGENET_DIR"):
        tables.load_images("imagenet")
    with pytest.raises(ValueError, match="^source:"):
        tables.load_images("svhn")


def test_mnist32_split_is_balanced_and_disjoint():
    data = tables.load_images("mnist32")
    assert data.input_shape == (1, 32, 32) and len(data.test) == 1000
    test_labels = data.test.tensors[1].numpy()
    assert np.all(np.bincount(test_labels) == 100) and len(data.train) == 4000
    # padding keeps the 28x28 digit in the centre: the border is the background value
    X = data.train.tensors[0]
    assert torch.all(X[:, :, :2] == X[0, 0, 0, 0]) and X[:, :, 2:30, 2:30].std() > 0.5


def test_cli_runs_table1_and_table2(tmp_path, monkeypatch, capsys):
    from labkit import config
    from labkit.__main__ import main

    tiny = lk.config.get("table1", **{**TINY, "checkpoints": (2,)})
    for name, eps in (("table1", (0.05,)), ("table2", (0.05, 0.5))):
        monkeypatch.setitem(config.PRESETS[name], "quick", dataclasses.replace(tiny, eps=eps))
    assert main(["run", "table1", "--mode", "quick", "--out", str(tmp_path)]) == 0
    assert main(["run", "table2", "--mode", "quick", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "fine-tuned subnetwork test accuracy" in out and "eps" in out
    assert (tmp_path / "table2" / "results.csv").exists()
    manifest = (tmp_path / "table2" / "manifest.json").read_text()
    assert '"cells_reused": 1' in manifest  # its eps=0.05 cell is table1's


def test_cifar_augmentation_is_a_padded_crop_and_flip_per_image():
    x = torch.randn(16, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    out = tables._augment(x, seed=3)
    g = torch.Generator().manual_seed(3)  # the same draws, replayed one image at a time
    off = torch.randint(9, (16, 2), generator=g)
    flip = torch.rand(16, generator=g) < 0.5
    padded = torch.nn.functional.pad(x, (4, 4, 4, 4))
    for i in range(16):
        a, b = off[i].tolist()
        ref = padded[i, :, a:a + 32, b:b + 32]
        torch.testing.assert_close(out[i], ref.flip(-1) if flip[i] else ref, rtol=0, atol=0)
    assert flip.any() and not flip.all()
