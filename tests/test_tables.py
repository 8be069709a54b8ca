"""Tables 1-2's pipeline (chapter 7, issue 20): crash-safe training resumes to the bit after
SIGKILL, the calibration reaches its FLOP target, the baselines keep GFS's per-layer counts
and L1 keeps the largest filters (against NumPy), MobileNetV2's groups are Ye et al.'s,
FLOPs agree with an independent count, the disclosure table follows the presets, the
committed calibrations are current, and bad input gets a clear error."""

from __future__ import annotations

import dataclasses
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import TensorDataset

import labkit as lk
from labkit.deep import graph as channel_graph
from labkit.deep import train as deeptrain
from labkit.deep.data import Images, subset, validation_split
from labkit.experiments.tables import analysis as tables_analysis
from labkit.experiments.tables import cell as tables
from labkit.experiments.tables import layerwise
from labkit.infra.store import ResultStore
from tests.conftest import kill_midway_and_resume

ROOT = Path(__file__).resolve().parent.parent

# -- crash-safe training ---------------------------------------------------------------------

KILL_SCRIPT = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    import torch
    from tests.test_tables import tiny_setup
    from labkit.deep import train as deeptrain

    model, data, cfg = tiny_setup(slow=float(sys.argv[2]))
    deeptrain.train(model, data, list(range(64)), stop=40, total=40, lr=0.05, cfg=cfg,
                    seed=3, device="cpu", folder=Path(sys.argv[1]))
""")


class _Slow(torch.nn.Module):
    """A tiny float64 CNN whose forward can sleep, so that a kill lands mid-run."""

    def __init__(self, slow: float = 0.0):
        super().__init__()
        self.slow = slow
        self.net = torch.nn.Sequential(
            torch.nn.Conv2d(1, 4, 3, padding=1), torch.nn.BatchNorm2d(4), torch.nn.ReLU(),
            torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Dropout(0.3),
            torch.nn.Linear(4, 3))

    def forward(self, x):
        if self.slow:
            time.sleep(self.slow)
        return self.net(x)


def tiny_setup(slow: float = 0.0):
    torch.manual_seed(0)
    model = _Slow(slow).double()
    g = torch.Generator().manual_seed(1)
    X = torch.randn(64, 1, 6, 6, generator=g, dtype=torch.float64)
    y = torch.randint(3, (64,), generator=g)
    data = Images(TensorDataset(X, y), TensorDataset(X, y), y.numpy(), num_classes=3,
                  in_channels=1, small_input=True, augment=False)
    cfg = lk.config.get("table1", batch_size=8, checkpoint_every=5)
    return model, data, cfg


def test_training_resumes_bitwise_after_sigkill(tmp_path):
    model, data, cfg = tiny_setup()
    clean = deeptrain.train(model, data, list(range(64)), stop=40, total=40, lr=0.05, cfg=cfg,
                            seed=3, device="cpu", folder=tmp_path / "clean")
    folder = tmp_path / "killed"
    proc = subprocess.Popen([sys.executable, "-c", KILL_SCRIPT, str(folder), "0.02"],
                            cwd=ROOT)
    deadline = time.time() + 120
    state = folder / "state.pt"
    while time.time() < deadline:
        if state.exists() and deeptrain.load_state(state, "cpu")["t"] >= 15:
            break
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    t_killed = deeptrain.load_state(state, "cpu")["t"]
    assert 15 <= t_killed < 40, "the kill should land mid-run"
    fresh, _, _ = tiny_setup()
    resumed = deeptrain.train(fresh, data, list(range(64)), stop=40, total=40, lr=0.05,
                              cfg=cfg, seed=3, device="cpu", folder=folder)
    for (k, a), b in zip(clean.state_dict().items(), resumed.state_dict().values(),
                         strict=True):
        assert torch.equal(a, b), k
    # and the check can fail: one iteration fewer is a different network
    short, _, _ = tiny_setup()
    short = deeptrain.train(short, data, list(range(64)), stop=39, total=40, lr=0.05, cfg=cfg,
                            seed=3, device="cpu", folder=tmp_path / "short")
    assert not all(torch.equal(a, b) for a, b in zip(clean.state_dict().values(),
                                                      short.state_dict().values(), strict=True))


def test_training_state_past_stop_is_an_error(tmp_path):
    model, data, cfg = tiny_setup()
    deeptrain.train(model, data, list(range(64)), stop=10, total=10, lr=0.05, cfg=cfg, seed=0,
                    device="cpu", folder=tmp_path)
    with pytest.raises(ValueError, match="^stop: the stored state .* at iteration 10"):
        deeptrain.train(model, data, list(range(64)), stop=5, total=10, lr=0.05, cfg=cfg,
                        seed=0, device="cpu", folder=tmp_path)
    with pytest.raises(ValueError, match="^schedule:"):
        deeptrain.rate("step", 0.1, 0, 10)


def test_pretraining_checkpoints_are_keyed_by_code(tmp_path, monkeypatch):
    cfg = lk.config.get("table1", checkpoints=(3, 6), batch_size=8, val_size=100)
    data = lk.load_images("mnist32")
    once = tables.pretrained(cfg, data, "resnet34", 0.0625, 100, 6, root=tmp_path / "a",
                             device="cpu")
    tables.pretrained(cfg, data, "resnet34", 0.0625, 100, 3, root=tmp_path / "b", device="cpu")
    twice = tables.pretrained(cfg, data, "resnet34", 0.0625, 100, 6, root=tmp_path / "b",
                              device="cpu")
    for (k, a), b in zip(once.state_dict().items(), twice.state_dict().values(), strict=True):
        assert torch.equal(a, b), k
    key = tables.pretrain_key(cfg, "resnet34", 0.0625, 100)
    monkeypatch.setattr(layerwise, "code_digest", lambda *parts: "other-code")
    assert tables.pretrain_key(cfg, "resnet34", 0.0625, 100) != key


# -- what is pruned, and how -------------------------------------------------------------------

def test_mobilenet_groups_are_ye_et_al():
    """Ye's driver masks 35 layers of MobileNetV2 and skips [0, 1, 33, 34]: the 16 hidden
    groups remain, and the projections of the stages with several blocks (24, 32, 64, 96,
    160 channels), which the dependency graph ties into one stream per stage."""
    cfg = lk.config.get("table1")
    net = lk.build_deepnet("mobilenet_v2", width=1.0, in_channels=3).eval()
    groups = tables.prunable_groups(cfg, "mobilenet_v2", net, torch.zeros(1, 3, 32, 32))
    hidden = [g for g in groups if g.kind == "inner"]
    streams = [g for g in groups if g.kind == "coupled"]
    assert len(hidden) == 16 and all(g.name.endswith("conv.1.0") for g in hidden)
    assert sorted(g.C for g in streams) == [24, 32, 64, 96, 160]
    every = {p for g in groups for p in g.producers}
    assert not every & {"features.0.0", "features.1.conv.1", "features.17.conv.2",
                        "features.18.0"}
    res = tables.prunable_groups(cfg, "resnet34", lk.build_deepnet("resnet34").eval(),
                                 torch.zeros(1, 3, 32, 32))
    assert len(res) == 16 and all(g.name.endswith("conv1") and g.kind == "inner" for g in res)


def test_validation_split_is_held_out_of_every_sub_dataset():
    cfg = lk.config.get("table1")
    data = lk.load_images("mnist32")
    pool, val = validation_split(cfg, data)
    assert len(val) == cfg.val_size and not set(pool) & set(val)
    assert np.all(np.bincount(data.labels[val]) == cfg.val_size // 10)
    for size in cfg.sizes:
        assert not set(subset(cfg, data, size)) & set(val)


def _trained(arch="resnet34", **kw):
    cfg = lk.config.get("table1", **kw)
    data = lk.load_images("mnist32")
    width = dict(zip(cfg.archs, cfg.widths, strict=True))[arch]
    return cfg, data, width


def test_baselines_keep_gfs_counts_and_l1_keeps_the_largest_filters(tmp_path):
    cfg, data, width = _trained(layer_finetune_epochs=0.0, sizes=(1000,))
    model = tables.pretrained(cfg, data, "resnet34", width, 1000, 30, root=tmp_path / "ck",
                              device="cpu")
    s = tables._Setting(cfg, data, 1000, 30, "cpu")
    _, gfs = tables.layerwise(s, "resnet34", model, "gfs", eps=0.05, folder=tmp_path / "g")
    kept = {r["group"]: r["kept"] for r in gfs}
    assert 0 < sum(kept.values()) < sum(r["C"] for r in gfs)
    for method in ("l1", "random"):
        work, layers = tables.layerwise(s, "resnet34", model, method, kept=kept,
                                        folder=tmp_path / method)
        assert {r["group"]: r["kept"] for r in layers} == kept
        for g in tables.prunable_groups(cfg, "resnet34", work, s.example):
            mask = g.consumers[0].module.channel_mask.numpy()
            on = np.flatnonzero(mask)
            assert len(on) == kept[g.name] and np.all(mask[on] == 1)
            if method == "l1":  # no fine-tuning between layers: the original weights rank
                W = model.get_submodule(g.producers[0]).weight.detach().numpy()
                norms = np.abs(W.reshape(len(W), -1)).sum(1)
                assert set(on) == set(np.argsort(-norms, kind="stable")[:kept[g.name]])


def _independent_flops(model, shape) -> int:
    """2 x multiply-adds of every convolution and linear layer, from their output shapes
    (forward hooks; not torch.utils.flop_counter, which count_flops uses)."""
    total = []

    def hook(m, args, out):
        if isinstance(m, torch.nn.Conv2d):
            k = m.kernel_size[0] * m.kernel_size[1] * m.in_channels // m.groups
            total.append(2 * out.numel() * k)
        else:
            total.append(2 * out.numel() * m.in_features)

    handles = [m.register_forward_hook(hook) for m in model.modules()
               if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))]
    with torch.no_grad():
        model.eval()(torch.zeros(1, *shape))
    for h in handles:
        h.remove()
    return sum(total)


def test_calibration_reaches_its_flop_target(tmp_path):
    """Acceptance: on the quick stand-in the calibrated eps keeps the target FLOP fraction
    within 2 points, measured by an independent FLOP count of the smaller network."""
    cfg, data, width = _trained(sizes=(1000,), checkpoints=(60,), calibration_steps=10)
    cal = tables.calibrate(cfg, data, "resnet34", width, 0.6, root=tmp_path, device="cpu")
    assert abs(cal["flops"] - 0.6) <= 0.02 and cal["within_tol"]
    # replay the chosen eps and count its FLOPs independently
    model = tables.pretrained(cfg, data, "resnet34", width, 1000, 60,
                              root=tmp_path / "checkpoints", device="cpu")
    s = tables._Setting(cfg, data, 1000, 60, "cpu")
    work, layers = tables.layerwise(s, "resnet34", model, "gfs", eps=cal["eps"],
                                    folder=tmp_path / "replay")
    assert [r["kept"] for r in layers] == cal["kept"]
    small = channel_graph.shrink(work, s.example)
    ratio = _independent_flops(small, (1, 32, 32)) / _independent_flops(model, (1, 32, 32))
    assert abs(ratio - 0.6) <= 0.02 and ratio == pytest.approx(cal["flops"], abs=1e-9)
    # a deliberately wrong target is not met by this eps
    assert abs(ratio - 0.8) > 0.02


def test_committed_calibrations_are_current():
    """The chapter reads results/calibration instead of searching; any change to the code or
    presets a calibration depends on must come with a fresh one."""
    store = ResultStore(tables.CALIBRATION)
    for name in ("table1", "table2"):
        cfg = lk.config.get(name, mode="quick")
        for arch, width in zip(cfg.archs, cfg.widths, strict=True):
            for target in cfg.targets:
                rec = store.load("deep", tables.calibration_params(cfg, arch, width, target))
                assert rec is not None, (f"{name} {arch} {target}: stale or missing; run "
                                         f"python tools/calibrate_tables.py")
                assert rec["within_tol"], f"{name} {arch} {target}: {rec['flops']:.3f}"


# -- the table ---------------------------------------------------------------------------------

TINY = dict(archs=("resnet34",), widths=(0.0625,), sizes=(100,), val_size=100,
            checkpoints=(2, 4, 6), batch_size=8, n_candidates=2, prune_batch=8, eval_size=16,
            layer_finetune_epochs=0.1, finetune_iters=2, processes=1)
EPS = {("resnet34", 0.6): 0.05}

RUN_SCRIPT = textwrap.dedent(f"""
    import sys
    import labkit as lk
    from labkit.experiments.tables.cell import run_table
    cfg = lk.config.get("table1", **{TINY!r})
    run_table(cfg, out=sys.argv[1], name="table1", eps={EPS!r}).to_pickle(sys.argv[2])
""")


def test_table_run_resumes_after_a_kill(tmp_path):
    kill_midway_and_resume(RUN_SCRIPT, tmp_path,
                           lambda out: Path(out) / "deep" / "cells" / "deep", 3, signal.SIGKILL)


def test_table_rows_views_and_two_processes(tmp_path):
    cfg = lk.config.get("table1", **{**TINY, "checkpoints": (2, 4)})
    table = tables.run_table(cfg, out=tmp_path / "one", name="table1", eps=EPS)
    assert list(table.columns[:6]) == ["arch", "size", "target", "t", "eps", "method"]
    assert len(table) == 6 and set(table["method"]) == {"gfs", "l1", "random"}
    for _, cell in table.groupby("t"):
        assert cell["flops"].nunique() == 1 and cell["kept_channels"].nunique() == 1
    row = table.iloc[0]
    assert 0 <= row.finetuned_acc <= 1 and row.flops < row.dense_flops
    view = tables_analysis.table_view(table)
    assert list(view.columns) == ["model", "size", "t=2", "t=4", "Dense", "l1 - GFS",
                                  "random - GFS", "FLOP ratio", "param ratio"]
    side = tables_analysis.paper_view(table, "table1")
    assert len(side) == 6 * 5 and {"paper", "GFS", "L1", "random"} <= set(side.columns)
    assert side["paper"].tolist()[:5] == tables_analysis.PAPER_TABLE1.iloc[0, 2:].tolist()
    # two one-thread processes give the same numbers as one
    two = tables.run_table(cfg, out=tmp_path / "two", name="table1", eps=EPS, workers=2)
    assert two.equals(table)
    again = tables.run_table(cfg, out=tmp_path / "one", name="table1", eps=EPS)
    assert again.equals(table)


def test_cli_runs_table1_and_table2(tmp_path, monkeypatch, capsys):
    from labkit import config
    from labkit.__main__ import main

    tiny = lk.config.get("table1", **{**TINY, "checkpoints": (2,)})
    monkeypatch.setitem(config.PRESETS["table1"], "quick", tiny)
    monkeypatch.setitem(config.PRESETS["table2"], "quick", dataclasses.replace(
        tiny, targets=(0.6, 0.4), param_targets=(0.8, 0.65)))
    calls = []

    def fake(cfg, **kw):  # the calibrations are tested above; here only the plumbing
        calls.append(cfg.targets)
        return {(a, t): {"eps": 0.05 if t == 0.6 else 0.3} for a in cfg.archs
                for t in cfg.targets}

    monkeypatch.setattr(tables, "calibrations", fake)
    assert main(["run", "table1", "--mode", "quick", "--out", str(tmp_path)]) == 0
    assert main(["run", "table2", "--mode", "quick", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "fine-tuned subnetwork test accuracy" in out and calls == [(0.6,), (0.6, 0.4)]
    manifest = (tmp_path / "table2" / "manifest.json").read_text()
    assert '"cells_reused": 1' in manifest  # its 60% cell is table1's


# -- the protocol, disclosed -------------------------------------------------------------------

def test_protocol_table_is_generated_from_the_presets():
    full, quick = lk.config.get("table1", mode="full"), lk.config.get("table1", mode="quick")
    table = tables_analysis.protocol_table("table1", full, quick)
    assert list(table.columns) == ["item", "paper", "full preset", "quick preset"]
    assert set(table["item"]) == set(tables_analysis.PAPER_PROTOCOL["table1"])
    wd = table.set_index("item").loc["weight decay"]
    assert wd["full preset"] == "0.0005"
    changed = tables_analysis.protocol_table("table1", dataclasses.replace(full, weight_decay=4e-5,
                                                                  n_candidates=0), quick)
    diff = table.compare(changed)
    assert set(table.loc[diff.index, "item"]) == {"weight decay", "candidates per step"}
    assert changed.set_index("item").loc["weight decay", "full preset"] == "4e-05"
    imagenet = tables_analysis.protocol_table("table2", lk.config.get("table2", mode="full"),
                                     lk.config.get("table2", mode="quick"))
    assert imagenet.set_index("item").loc["weight decay", "full preset"] == "4e-05"


@pytest.mark.parametrize(("kwargs", "field"), [
    ({"archs": ("vgg16",), "widths": (1.0,)}, "archs"),
    ({"widths": (0.5,)}, "widths"),
    ({"widths": (0.0, 1.0)}, "widths"),
    ({"targets": (1.5,)}, "targets"),
    ({"targets": (0.6, 0.4)}, "param_targets"),
    ({"sizes": (-1,)}, "sizes"),
    ({"checkpoints": (10, 5)}, "checkpoints"),
    ({"source": "svhn"}, "source"),
    ({"n_candidates": -1}, "n_candidates"),
    ({"mnv2_strides": (1, 1, 3, 2, 2, 1, 2, 1)}, "mnv2_strides"),
    ({"groups": "half"}, "groups"),
    ({"methods": ("l1", "gfs")}, "methods"),
    ({"checkpoint_every": 0}, "checkpoint_every"),
    ({"skip_eval": 1.0}, "skip_eval"),
])
def test_deep_config_rejects_bad_values(kwargs, field):
    with pytest.raises(ValueError, match=f"^{field}:"):
        lk.config.get("table1", **kwargs)


def test_data_errors(monkeypatch):
    monkeypatch.delenv("LABKIT_CIFAR_DIR", raising=False)
    with pytest.raises(FileNotFoundError, match="LABKIT_CIFAR_DIR"):
        lk.load_images("cifar10")
    monkeypatch.setenv("LABKIT_IMAGENET_DIR", str(Path(__file__).parent))
    with pytest.raises(FileNotFoundError, match="LABKIT_IMAGENET_DIR"):
        lk.load_images("imagenet")
    with pytest.raises(ValueError, match="^source:"):
        lk.load_images("svhn")
    data = lk.load_images("mnist32")
    with pytest.raises(ValueError, match="^sizes: 3600 exceeds"):
        subset(lk.config.get("table1"), data, 3600)
    with pytest.raises(ValueError, match="^val_size:"):
        validation_split(lk.config.get("table1", val_size=4000), data)
    with pytest.raises(ValueError, match="^strides:"):
        lk.build_deepnet("mobilenet_v2", strides=(1, 2))


def test_mnist32_split_is_balanced_and_disjoint():
    data = lk.load_images("mnist32")
    assert data.input_shape == (1, 32, 32) and len(data.test) == 1000
    test_labels = data.test.tensors[1].numpy()
    assert np.all(np.bincount(test_labels) == 100) and len(data.train) == 4000
    # padding keeps the 28x28 digit in the centre: the border is the background value
    X = data.train.tensors[0]
    assert torch.all(X[:, :, :2] == X[0, 0, 0, 0]) and X[:, :, 2:30, 2:30].std() > 0.5


def test_cifar_augmentation_is_a_padded_crop_and_flip_per_image():
    x = torch.randn(16, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    out = deeptrain.augment(x, seed=3)
    g = torch.Generator().manual_seed(3)  # the same draws, replayed one image at a time
    off = torch.randint(9, (16, 2), generator=g)
    flip = torch.rand(16, generator=g) < 0.5
    padded = torch.nn.functional.pad(x, (4, 4, 4, 4))
    for i in range(16):
        a, b = off[i].tolist()
        ref = padded[i, :, a:a + 32, b:b + 32]
        torch.testing.assert_close(out[i], ref.flip(-1) if flip[i] else ref, rtol=0, atol=0)
    assert flip.any() and not flip.all()
