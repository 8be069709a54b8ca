"""The threshold experiment (chapter 4): batched training against the per-network loop, the
result store (atomic, checksummed, resumable), a killed sweep that resumes without
recomputing, the threshold and the fits against hand computations, and config errors."""

from __future__ import annotations

import json
import signal
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import kill_midway_and_resume

import labkit
from labkit import config
from labkit.pretraining import EXPERIMENT, run_cell

TINY = dict(m_values=(6, 9, 12), widths=(8, 16), seeds=(0, 1), d=3, k=8,
            checkpoints=(0, 2, 5, 10, 30), eps=1e-3, dtype="float64")


def tiny(**kw):
    return config.get("threshold", **{**TINY, **kw})


# ------------------------------------------------------------------ batched training


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_batched_training_equals_pretrain_gd_per_network(dtype):
    nets, data = [], []
    for seed in range(3):
        data.append(labkit.teacher_student(11, 4, seed=seed, dtype=dtype))
        nets.append(labkit.TwoLayerNet(4, 13, generator=torch.Generator().manual_seed(seed),
                                       dtype=dtype))
    X = torch.stack([d[0] for d in data])
    y = torch.stack([d[1] for d in data])
    W = torch.stack([n.W.detach().clone() for n in nets])
    b = torch.stack([n.b.detach().clone() for n in nets])
    hist = labkit.train_batched(X, y, W, b, steps=40, lr=0.5)
    tol = 1e-12 if dtype == torch.float64 else 2e-5
    for j, net in enumerate(nets):  # autograd, one network at a time
        ref = labkit.pretrain_gd(net, data[j][0], data[j][1], steps=40, lr=0.5)
        np.testing.assert_allclose(hist[:, j], ref, rtol=tol, atol=tol)
        torch.testing.assert_close(W[j], net.W.detach(), rtol=tol, atol=tol)
        torch.testing.assert_close(b[j], net.b.detach(), rtol=tol, atol=tol)


def test_batched_training_reports_divergence():
    X, y = labkit.teacher_student(5, 3, seed=0)
    net = labkit.TwoLayerNet(3, 4, generator=torch.Generator().manual_seed(0))
    W, b = net.W.detach().clone()[None], net.b.detach().clone()[None]
    with pytest.raises(FloatingPointError, match="iteration"):
        labkit.train_batched(X[None], y[None] * 1e30, W, b, steps=50, lr=1e6)


# ------------------------------------------------------------------ the store


def test_store_roundtrip_and_keys(tmp_path):
    store = labkit.ResultStore(tmp_path)
    params = {"m": 3, "x": [1, 2]}
    assert store.load("e", params) is None
    store.save("e", params, {"v": [1.5, 2]})
    assert store.load("e", params) == {"v": [1.5, 2]}
    assert store.load("e", {"m": 4, "x": [1, 2]}) is None  # other params, other key
    assert store.path("e", params) != store.path("f", params)
    assert not list(tmp_path.rglob("*.tmp"))  # no temporary file left behind
    # readable by the group and others, like any file written with open() (mkstemp: 0600)
    assert store.path("e", params).stat().st_mode & 0o777 == 0o644


@pytest.mark.parametrize("damage", ["truncate", "garbage", "payload", "empty"])
def test_store_never_uses_a_damaged_file(tmp_path, damage):
    store = labkit.ResultStore(tmp_path)
    params = {"m": 3}
    path = store.save("e", params, {"v": [1, 2, 3]})
    text = path.read_text()
    if damage == "truncate":
        path.write_text(text[: len(text) // 2])
    elif damage == "garbage":
        path.write_bytes(b"\x00\xff not json")
    elif damage == "payload":  # valid JSON, altered numbers: the checksum catches it
        record = json.loads(text)
        record["payload"]["v"][0] = 99
        path.write_text(json.dumps(record))
    else:
        path.write_text("")
    assert store.load("e", params) is None
    calls = []
    payload, computed = store.get_or_compute("e", params, lambda: calls.append(1) or {"v": 7})
    assert computed and calls == [1] and payload == {"v": 7}
    assert store.load("e", params) == {"v": 7}


def test_sweep_uses_the_store_and_detects_a_corrupted_cell(tmp_path):
    cfg = tiny()
    first = labkit.run_threshold(cfg, out=tmp_path)
    files = sorted((tmp_path / EXPERIMENT / "cells").rglob("*.json"))
    assert len(files) == len(cfg.m_values) * len(cfg.widths)
    files[0].write_text(files[0].read_text()[:-20])  # a torn write
    stamps = {f: f.stat().st_mtime_ns for f in files[1:]}
    second = labkit.run_threshold(cfg, out=tmp_path)
    pd.testing.assert_frame_equal(first, second)
    assert all(f.stat().st_mtime_ns == stamps[f] for f in files[1:])  # others reused


# ------------------------------------------------------------------ kill and resume

SWEEP = textwrap.dedent("""
    import sys, labkit
    from labkit import config
    cfg = config.get("threshold", **{tiny!r})
    df = labkit.run_threshold(cfg, out=sys.argv[1])
    df.to_pickle(sys.argv[2])
""")


def test_killed_sweep_resumes_without_recomputing(tmp_path):
    kw = {**TINY, "m_values": (6, 9, 12, 15, 18, 21), "checkpoints": (0, 10, 100, 1000, 3000)}
    kill_midway_and_resume(SWEEP.format(tiny=kw), tmp_path,
                           lambda out: out / EXPERIMENT / "cells" / EXPERIMENT,
                           len(kw["m_values"]) * len(kw["widths"]), signal.SIGKILL)


# ------------------------------------------------------------------ threshold and fits


def test_cell_records_gfs_and_dense_losses_of_the_trained_networks():
    cfg = tiny(checkpoints=(0, 7))
    out = run_cell(cfg, 9, 8)
    for seed in cfg.seeds:  # redo one seed by hand with the per-network API
        X, y = labkit.teacher_student(9, cfg.d, teacher_width=cfg.teacher_width, seed=seed,
                                      dtype=torch.float64)
        net = labkit.TwoLayerNet(cfg.d, 8, generator=torch.Generator().manual_seed(seed),
                                 dtype=torch.float64)
        Phi0 = torch.tanh(X @ net.W.detach().T)  # Definition 1, at initialization
        hist = labkit.pretrain_gd(net, X, y, steps=7, lr=cfg.lr)
        with torch.no_grad():
            Phi = net.neuron_outputs(X)
        res = labkit.greedy_forward_selection(Phi, y, cfg.k)
        row = next(r for r in out["rows"] if r["seed"] == seed and r["t"] == 7)
        assert row["dense_loss"] == pytest.approx(hist[-1], rel=1e-10)
        assert row["pruned_loss"] == pytest.approx(res.losses[-1], rel=1e-8)
        s = np.linalg.svd(Phi0.numpy(), compute_uv=False)
        assert out["sigma_min"][cfg.seeds.index(seed)] == pytest.approx(s.min(), rel=1e-10)
        assert out["sigma_max"][cfg.seeds.index(seed)] == pytest.approx(s.max(), rel=1e-10)


def test_threshold_interpolates_the_crossing():
    rows = [{"m": 5, "N": 2, "seed": 0, "t": t, "pruned_loss": v, "dense_loss": 1.0 / (1 + t),
             "sigma_min": 1.0, "kappa": 2.0}
            for t, v in [(0, 1.0), (9, 0.1), (99, 0.01), (999, 0.01)]]
    T = labkit.thresholds(pd.DataFrame(rows), eps=0.09)  # target 0.1: reached at t = 9
    assert T["T_star"].iloc[0] == pytest.approx(9.0)
    # target 0.01 + 0.0216: between t=9 and t=99, log-linear in (log(1+t), log loss)
    T = labkit.thresholds(pd.DataFrame(rows), eps=0.0216)
    x = np.log(10) + (np.log(100) - np.log(10)) * (np.log(0.1) - np.log(0.0316)) / np.log(10)
    assert T["T_star"].iloc[0] == pytest.approx(np.expm1(x))
    assert labkit.thresholds(pd.DataFrame(rows), eps=2.0)["T_star"].iloc[0] == 0.0
    with pytest.raises(ValueError, match="^eps:"):
        labkit.thresholds(pd.DataFrame(rows), eps=0)


def test_fits_recover_the_generating_law():
    m = np.array([10, 20, 40, 80, 160, 320], float)
    log_fit = labkit.fit_growth(m, 5 + 30 * np.log(m))
    assert log_fit.loc["a + b log m", "rss"] < 1e-12 < log_fit.loc["c m^p", "rss"]
    pow_fit = labkit.fit_growth(m, 3 * m**0.7)
    assert pow_fit.loc["c m^p", "rss"] < 1e-6 < pow_fit.loc["a + b log m", "rss"]
    assert "p=0.7" in pow_fit.loc["c m^p", "params"]


def test_bootstrap_interval_contains_the_mean():
    T = pd.DataFrame({"m": 4, "N": 2, "seed": range(5), "T_star": [1.0, 2, 3, 4, 5],
                      "rate": 0.1, "sigma_min": 1.0, "kappa": 3.0})
    s = labkit.threshold_summary(T, n_boot=500).iloc[0]
    assert s["T_mean"] == 3 and 1 <= s["T_lo"] < 3 < s["T_hi"] <= 5


# ------------------------------------------------------------------ bad configs


@pytest.mark.parametrize("kw,field", [
    (dict(m_values=(1, 10)), "m_values"), (dict(m_values=(10,)), "m_values"),
    (dict(eps=0.0), "eps"), (dict(eps=-1e-3), "eps"), (dict(k=0), "k"),
    (dict(checkpoints=(0, 10, 10)), "checkpoints"), (dict(checkpoints=(5, 3)), "checkpoints"),
    (dict(checkpoints=(-1, 3)), "checkpoints"), (dict(widths=(0,)), "widths"),
    (dict(seeds=(0, 0)), "seeds"), (dict(dtype="float16"), "dtype"), (dict(lr=0.0), "lr"),
])
def test_bad_threshold_configs_name_the_field(kw, field):
    with pytest.raises(ValueError, match=f"^{field}:"):
        tiny(**kw)


def test_results_root_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("LABKIT_RESULTS", str(tmp_path))
    assert labkit.default_root("quick") == Path(tmp_path) / "quick"
