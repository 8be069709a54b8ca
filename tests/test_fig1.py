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
from labkit.fig1 import NAME, evaluate, red_line, run_fig1

TINY = dict(sizes=(40, 80), widths=(12, 20), seeds=(0, 1), k=6, batch_size=16,
            checkpoints=(0, 5, 15))


def tiny(**kw):
    return config.get("fig1", mode="quick", **{**TINY, **kw})


def test_evaluate_matches_hand_computation():
    gen = torch.Generator().manual_seed(0)
    net = labkit.TwoLayerNet(5, 9, activation="relu", output="sigmoid", generator=gen,
                             dtype=torch.float64)
    X = torch.randn(30, 5, generator=gen, dtype=torch.float64)
    y = (torch.rand(30, generator=gen) > 0.5).double()
    W, b = net.W.detach(), net.b.detach()
    acc = evaluate(W, b, X, y, 4, torch.Generator().manual_seed(1))
    with torch.no_grad():
        dense = ((net(X) > 0.5).double() == y).double().mean().item()
        res = labkit.greedy_forward_selection(net.neuron_outputs(X), y, 4, loss="bce")
        pruned = ((net.pruned_forward(X, res.counts) > 0.5).double() == y).double().mean()
    assert acc["dense"] == pytest.approx(dense) and acc["gfs"] == pytest.approx(pruned.item())
    top = np.argsort(-(np.abs(b.numpy()) * np.linalg.norm(W.numpy(), axis=1)))[:4]
    counts = np.bincount(top, minlength=9)
    with torch.no_grad():
        mag = ((net.pruned_forward(X, counts) > 0.5).double() == y).double().mean().item()
    assert acc["magnitude"] == pytest.approx(mag)
    assert 0 <= acc["random"] <= 1 and acc["gfs_distinct"] <= 4


def test_run_writes_table_manifest_and_reuses_cells(tmp_path):
    cfg = tiny()
    table = run_fig1(cfg, out=tmp_path)
    assert set(table["method"]) == {"gfs", "magnitude", "random", "dense"}
    assert len(table) == 2 * 2 * 2 * 3 * 4  # sizes x widths x seeds x checkpoints x methods
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
    from labkit.fig1 import run_fig1
    cfg = config.get("fig1", mode="quick", **{kw!r})
    run_fig1(cfg, out=sys.argv[1]).to_pickle(sys.argv[2])
""")


def test_killed_run_resumes_without_recomputing(tmp_path):
    kw = {**TINY, "sizes": (40, 80, 120, 160), "checkpoints": (0, 50, 400)}
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


def test_red_line_is_the_first_checkpoint_reaching_the_full_datasets_best():
    rows = []
    for size, accs in {10: [0.5, 0.9, 0.95], 20: [0.5, 0.8, 0.9], 40: [0.5, 0.7, 0.85]}.items():
        for t, a in zip([0, 10, 20], accs, strict=True):
            rows.append({"N": 5, "size": size, "t": t, "seed": 0, "method": "gfs",
                         "accuracy": a})
    red = red_line(pd.DataFrame(rows)).set_index("size")
    assert red.loc[10, "t_red"] == 10 and red.loc[20, "t_red"] == 20
    assert red.loc[40, "t_red"] == 20 and red["target"].eq(0.85).all()


def test_divergence_names_the_iteration(tmp_path):
    with pytest.raises(FloatingPointError, match="iteration"):
        run_fig1(tiny(lr=1e12), out=tmp_path)


@pytest.mark.parametrize("kw,field", [(dict(k=13), "k"), (dict(sizes=(5,)), "sizes"),
                                      (dict(checkpoints=(0, 5, 5)), "checkpoints"),
                                      (dict(source="cifar"), "source"),
                                      (dict(seeds=(1, 1)), "seeds"), (dict(lr=0), "lr")])
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
