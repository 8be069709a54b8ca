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
from labkit.experiments.threshold.cell import EXPERIMENT, run_cell

TINY = dict(grid=((16, (2, 3, 4)), (24, (3, 6))), d_values=(3,), seeds=(0, 1), k=2,
            checkpoints=(0, 2, 5, 10, 15, 20, 25, 30), deltas=(1e-1, 1e-2, 1e-3),
            delta=1e-2, dtype="float64", movement_m=4, movement_widths=(16, 64, 256),
            movement_steps=40)


def tiny(**kw):
    return config.get("threshold", **{**TINY, **kw})


def _net(m, d, N, seed, dtype=torch.float64):
    X, y = labkit.teacher_student(m, d, seed=seed, dtype=dtype)
    net = labkit.TwoLayerNet(d, N, generator=torch.Generator().manual_seed(seed), dtype=dtype)
    return X, y, net


# ------------------------------------------------------------------ batched training


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_batched_training_equals_pretrain_gd_per_network(dtype):
    nets, data = [], []
    for seed in range(3):
        X, y, net = _net(11, 4, 13, seed, dtype)
        data.append((X, y))
        nets.append(net)
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


def test_theorem_step_is_song_et_al_gd_on_w_and_v():
    """Theorem 2's step against autograd in Song et al.'s coordinates: ``f = Phi V`` with
    ``V = b / N`` and one step ``eta = lr m / (2 sigma_max(Phi_0)^2)`` on ``(W, V)``."""
    m, d, N, lr, steps = 9, 3, 20, 0.7, 25
    X, y, net = _net(m, d, N, 0)
    W, b = net.W.detach().clone(), net.b.detach().clone()
    smax = float(torch.linalg.svdvals(torch.tanh(X @ W.T))[0])
    eta = lr * m / (2 * smax**2)
    Wr, V = W.clone().requires_grad_(), (b / N).clone().requires_grad_()
    ref = []
    for t in range(steps + 1):
        loss = ((torch.tanh(X @ Wr.T) @ V - y) ** 2).mean()
        ref.append(loss.item())
        if t == steps:
            break
        gW, gV = torch.autograd.grad(loss, (Wr, V))
        with torch.no_grad():
            Wr -= eta * gW
            V -= eta * gV
    hist = labkit.train_batched(X[None], y[None], W[None], b[None], steps=steps, lr=lr,
                                scaling="theorem",
                                sigma_max=torch.tensor([smax], dtype=torch.float64))
    np.testing.assert_allclose(hist[:, 0], ref, rtol=1e-12)
    torch.testing.assert_close(b, (V * N).detach(), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(W, Wr.detach(), rtol=1e-12, atol=1e-12)


def test_training_argument_errors():
    X, y, net = _net(5, 3, 4, 0)
    W, b = net.W.detach().clone()[None], net.b.detach().clone()[None]
    with pytest.raises(ValueError, match="^scaling:"):
        labkit.train_batched(X[None], y[None], W, b, steps=1, lr=0.1, scaling="ntk")
    with pytest.raises(ValueError, match="^sigma_max:"):
        labkit.train_batched(X[None], y[None], W, b, steps=1, lr=0.1, scaling="theorem")


def test_batched_training_reports_divergence():
    X, y, net = _net(5, 3, 4, 0, torch.float32)
    W, b = net.W.detach().clone()[None], net.b.detach().clone()[None]
    with pytest.raises(FloatingPointError, match="iteration"):
        labkit.train_batched(X[None], y[None] * 1e30, W, b, steps=50, lr=1e6)


# ------------------------------------------------------------------ the regime


def test_first_layer_movement_falls_with_the_width_under_the_theorems_step():
    """The acceptance test of the regime: under Theorem 2's step the first layer's relative
    movement falls with N (at least 4x per 4x in width here) and the features'
    sigma_min stays at lambda_0, while the mean-field step moves the first layer by about
    the same amount at every width. The second layer's relative movement does not fall
    in either rule (the mean-field network must move b by O(1) to fit O(1) labels)."""
    cfg = tiny(seeds=(0, 1, 2))
    mv = labkit.regime_movement(cfg).groupby(["scaling", "N"]).mean(numeric_only=True)
    theorem, mean_field = mv.loc["theorem"], mv.loc["mean_field"]
    first = theorem["rel_first"].to_numpy()
    assert np.all(first[1:] < first[:-1] / 4), first
    change = (theorem["sigma_min_t"] / theorem["sigma_min_0"] - 1).abs().to_numpy()
    assert change.max() < 1e-2 and change[-1] < 1e-4, change
    mf = mean_field["rel_first"].to_numpy()
    assert mf.max() < 2 * mf.min() and mf.min() > 100 * first[-1], mf
    second = theorem["rel_second"].to_numpy()
    assert second.min() > 0.5 * second.max(), second


# ------------------------------------------------------------------ the cell


def test_cell_records_gfs_dense_losses_and_crossings_of_the_trained_networks():
    cfg = tiny(scalings=("mean_field",))
    m, N, d = 4, 16, 3
    out = run_cell(cfg, m, N, d, "mean_field")
    for j, seed in enumerate(cfg.seeds):  # redo one seed by hand with the per-network API
        X, y, net = _net(m, d, N, seed)
        Phi0 = torch.tanh(X @ net.W.detach().T)  # Definition 1, at initialization
        W0, b0 = net.W.detach().clone(), net.b.detach().clone()
        hist = labkit.pretrain_gd(net, X, y, steps=cfg.steps, lr=cfg.lr_mean_field)
        with torch.no_grad():
            Phi = net.neuron_outputs(X)
        res = labkit.greedy_forward_selection(Phi, y, cfg.k)
        row = next(r for r in out["rows"] if r["seed"] == seed and r["t"] == cfg.steps)
        assert row["dense_loss"] == pytest.approx(hist[-1], rel=1e-10)
        assert row[f"pruned_{cfg.k}"] == pytest.approx(res.losses[-1], rel=1e-8)
        assert row["selection"] == res.order.tolist()
        with torch.no_grad():
            assert row["rel_first"] == pytest.approx(float((net.W - W0).norm() / W0.norm()))
            assert row["max_b_move"] == pytest.approx(float((net.b - b0).abs().max()))
        s = np.linalg.svd(Phi0.numpy(), compute_uv=False)
        p = out["seeds"][j]
        assert p["sigma_min"] == pytest.approx(s.min(), rel=1e-10)
        assert p["sigma_max"] == pytest.approx(s.max(), rel=1e-10)
        assert p["kappa_inf"] == pytest.approx(labkit.kappa_infinite(X), rel=1e-10)
        for delta, T in zip(cfg.deltas, p["T_dense"], strict=True):  # every step's loss
            below = np.flatnonzero(hist <= delta)
            assert T == (below[0] if len(below) else -1)


def _linear_model_crossings(Phi0, r0, factor, steps, deltas):
    """Second-layer-only GD iterated step by step (the cell uses the SVD's closed form)."""
    r, losses = r0.clone(), []
    for _ in range(steps + 1):
        losses.append(float(r @ r) / len(r))
        r = r - factor * (Phi0 @ (Phi0.T @ r))
    losses = np.array(losses)
    return [int(np.flatnonzero(losses <= dl)[0]) if (losses <= dl).any() else -1
            for dl in deltas]


def test_theorem_cell_matches_the_linear_model_and_its_bound():
    """Under Theorem 2's step the first layer barely moves, so the dense loss's crossings are
    those of the second-layer-only linear model (to a step or two) and below the
    derivation's bound T <= log(L0/delta) / (-2 log(1 - 1/kappa^2)). A deliberately wrong
    bound, with kappa in place of kappa^2, fails."""
    cfg = tiny(checkpoints=(0, 100, 300, 400, 600), deltas=(3e-2, 1e-2, 3e-3),
               delta=1e-2)
    m, N, d = 6, 400, 3
    out = run_cell(cfg, m, N, d, "theorem")
    wrong_holds = []
    for j, seed in enumerate(cfg.seeds):
        X, y, net = _net(m, d, N, seed)
        Phi0 = torch.tanh(X @ net.W.detach().T)
        r0 = Phi0 @ net.b.detach() / N - y
        p = out["seeds"][j]
        ref = _linear_model_crossings(Phi0, r0, 1 / p["sigma_max"] ** 2, cfg.steps, cfg.deltas)
        assert p["T_lin"] == ref
        kappa = p["sigma_max"] / p["sigma_min"]
        for delta, T, T_lin in zip(cfg.deltas, p["T_dense"], ref, strict=True):
            assert T_lin >= 0 and abs(T - T_lin) <= 2
            assert T <= labkit.theorem_bound(p["L0"], kappa, delta)
            wrong = np.log(p["L0"] / delta) / (-2 * np.log1p(-1 / kappa))
            wrong_holds.append(T <= wrong)
    assert not all(wrong_holds)


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


def test_code_digest_ignores_documentation_but_not_code(tmp_path, monkeypatch):
    """The cell key's code digest: a docstring, comment or layout edit keeps an archived
    run's hours; any change to the code makes new cells."""
    from labkit.infra import store

    def digest_of(source):
        # code_digest reads parts relative to the package (the folder above infra/)
        (tmp_path / "infra").mkdir(exist_ok=True)
        (tmp_path / "mod.py").write_text(textwrap.dedent(source))
        monkeypatch.setattr(store, "__file__", str(tmp_path / "infra" / "store.py"))
        return store.code_digest("mod.py")

    base = digest_of('''
        def f(x):
            """Doc."""
            return x + 1
    ''')
    assert digest_of('''
        def f(x):
            """Another doc, longer."""
            # a comment
            return (x +
                    1)
    ''') == base
    assert digest_of('''
        def f(x):
            """Doc."""
            return x + 2
    ''') != base
    assert digest_of('''
        def f(x):
            """Doc."""
            return "x + 1"
    ''') != base  # a string that is not a docstring is code


def test_fig1_cells_keep_their_key_when_the_analysis_changes():
    """Chapter 6's cells are keyed by the functions that compute them, not by the red
    line's analysis in the same module (which the archived runs must survive)."""
    from labkit.experiments.fig1 import cell as fig1
    from labkit.infra import store

    key = config.get("fig1").cell_params()["code"]
    assert key == store.code_digest(fig1.load_data, fig1._accuracy,
                                    fig1.random_baseline_generator, fig1.evaluate,
                                    fig1._sgd_step, fig1.train_cell, "algorithms/gfs.py",
                                    "algorithms/model.py", "infra/data.py")
    assert key != store.code_digest(fig1.load_data, fig1._accuracy, fig1.evaluate,
                                    fig1._sgd_step, fig1.train_cell, "algorithms/gfs.py",
                                    "algorithms/model.py", "infra/data.py")


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
    assert len(files) == len(cfg.cells()) == 5 * len(cfg.scalings)
    files[0].write_text(files[0].read_text()[:-20])  # a torn write
    stamps = {f: f.stat().st_mtime_ns for f in files[1:]}
    second = labkit.run_threshold(cfg, out=tmp_path)
    # a cell read back has its row fields in JSON's sorted order
    pd.testing.assert_frame_equal(first, second, check_like=True)
    assert all(f.stat().st_mtime_ns == stamps[f] for f in files[1:])  # others reused
    sel = labkit.load_selections(cfg, tmp_path)
    assert len(sel) == len(cfg.cells()) * len(cfg.seeds) * len(cfg.checkpoints)
    assert all(len(s) == cfg.k for s in sel["selection"])


# ------------------------------------------------------------------ kill and resume

SWEEP = textwrap.dedent("""
    import sys, labkit
    from labkit import config
    cfg = config.get("threshold", **{tiny!r})
    df = labkit.run_threshold(cfg, out=sys.argv[1])
    df.to_pickle(sys.argv[2])
""")


def test_killed_sweep_resumes_without_recomputing(tmp_path):
    kw = {**TINY, "checkpoints": (0, 10, 100, 1000, 1500, 2000, 3000)}
    kill_midway_and_resume(SWEEP.format(tiny=kw), tmp_path,
                           lambda out: out / EXPERIMENT / "cells" / EXPERIMENT,
                           len(tiny().cells()), signal.SIGKILL)


# ------------------------------------------------------------------ reading thresholds


def test_prune_threshold_rule_by_hand():
    t = [0, 10, 20, 40, 60, 80, 100]
    # plateau = median over t >= 50 of (1.0, 1.0, 1.02) = 1.0; within 10% first at t = 20
    assert labkit.prune_threshold(t, [3, 2, 1.08, 1.0, 1.0, 1.0, 1.02], 0.1) == \
        (20.0, False, 1.0, pytest.approx(0.02))
    # already at its plateau before pre-training: T = 0 (dropped from fits)
    assert labkit.prune_threshold(t, [0.5, 2, 2, 1, 1, 1, 1], 0.1)[:2] == (0.0, False)
    # still falling in the second half: reaches tolerance only after t = 50, censored there
    T, censored, _, drift = labkit.prune_threshold(t, [9, 8, 7, 6, 2, 1.5, 1], 0.1)
    assert (T, censored) == (50.0, True) and drift == pytest.approx(-0.5)
    with pytest.raises(ValueError, match="^tol:"):
        labkit.prune_threshold(t, [1] * 7, 0)


def test_theorem_bound_closed_form():
    # one step contracts the loss by (1 - 1/kappa^2)^2: kappa^2 = 2 -> factor 1/4 per step
    assert labkit.theorem_bound(1.0, np.sqrt(2), 1 / 16) == pytest.approx(2.0)
    assert labkit.theorem_bound(0.01, 10.0, 0.1) == 0.0


def test_threshold_runs_read_every_run_and_censor(tmp_path):
    cfg = tiny()
    df = labkit.run_threshold(cfg, out=tmp_path)
    runs = labkit.threshold_runs(df, delta=cfg.delta, tol=cfg.tol)
    assert len(runs) == len(cfg.cells()) * len(cfg.seeds)
    raw = df[df["kind"] == "checkpoint"].groupby(["scaling", "d", "N", "m", "seed"])
    for key, g in raw:
        r = runs.set_index(["scaling", "d", "N", "m", "seed"]).loc[key]
        T = g[f"T_dense_{cfg.delta:g}"].iloc[0]
        assert r["dense_censored"] == (T < 0)
        assert r["T_dense"] == (cfg.steps if T < 0 else T)
    sens = labkit.threshold_sensitivity(df, tols=(0.05, 0.2))
    assert set(sens["setting"]) == {"delta", "tol, k"}
    with pytest.raises(ValueError, match="^delta:"):
        labkit.threshold_runs(df, delta=0.5, tol=0.1)
    with pytest.raises(ValueError, match="^k:"):
        labkit.threshold_runs(df, delta=cfg.delta, tol=0.1, k=3)


# ------------------------------------------------------------------ bad configs


@pytest.mark.parametrize("kw,field", [
    (dict(grid=((16, (2, 5)),)), "grid"),  # m = 5 > N/4
    (dict(grid=((16, (2,)),)), "grid"), (dict(grid=((16, (1, 2)),)), "grid"),
    (dict(grid=(16, 2)), "grid"), (dict(grid=()), "grid"),
    (dict(k=3), "k"),  # k > N/8 at the narrowest width, 16
    (dict(k=0), "k"), (dict(delta=0.5), "delta"), (dict(tol=0.0), "tol"),
    (dict(checkpoints=(0, 10, 10, 30)), "checkpoints"), (dict(checkpoints=(5, 30)), "checkpoints"),
    (dict(checkpoints=(2, 5, 20)), "checkpoints"),  # does not start at 0
    (dict(grid=((16, (2, 3)), (16, (4,)))), "grid"), (dict(scalings=("theorem",) * 2), "scalings"),
    (dict(checkpoints=(0, 2, 5, 10, 30)), "checkpoints"),  # one in the second half
    (dict(seeds=(0, 0)), "seeds"), (dict(dtype="float16"), "dtype"),
    (dict(lr_theorem=0.0), "lr_theorem"), (dict(lr_theorem=1.5), "lr_theorem"),
    (dict(scalings=("ntk",)), "scalings"), (dict(scalings=()), "scalings"),
    (dict(d_values=(0,)), "d_values"), (dict(movement_widths=(8, 64)), "movement_widths"),
])
def test_bad_threshold_configs_name_the_field(kw, field):
    with pytest.raises(ValueError, match=f"^{field}:"):
        tiny(**kw)


def test_regime_error_says_what_is_allowed():
    with pytest.raises(ValueError, match=r"m = 128 > N/4 = 64 at width N = 256.*m <= N/4"):
        config.get("threshold", grid=((256, (32, 128)),))
    with pytest.raises(ValueError, match=r"k: 64 > N/8 = 32 at width N = 256"):
        config.get("threshold", k=64)
    for name in ("threshold", "threshold_cpu"):  # every preset is inside the regime
        for mode in ("quick", "full"):
            cfg = config.get(name, mode)
            assert all(4 * m <= N for N, ms in cfg.grid for m in ms)
            assert 8 * cfg.k <= min(N for N, _ in cfg.grid)


def test_results_root_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("LABKIT_RESULTS", str(tmp_path))
    assert labkit.default_root("quick") == Path(tmp_path) / "quick"
