"""Issue 24's prepared GPU runs, on the CPU at tiny size through the same code paths: the
device cell (:mod:`labkit.experiments.threshold.cell_gpu`) against chapter 4's CPU cell and
against SVD
and NumPy references, each script of ``tools/gpu_runs/`` run twice (the second computes
nothing), packed as ``tools/gpu_run.sh`` packs it, unpacked by ``tools/gpu_unpack.py``,
continued from the archive by a later "loan", and read by the chapters' functions; and
``--budget``, which keeps a loan from starting a cell it cannot finish.
``tests/test_gpu_check.py`` runs the whole ``tools/gpu_run.sh`` with one such run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

import labkit as lk
from labkit import config
from labkit.algorithms import rmt
from labkit.algorithms.teacher import teacher_student
from labkit.experiments.threshold import cell as pretraining
from labkit.experiments.threshold import cell_gpu as pretraining_gpu
from labkit.infra import runner

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))
import gpu_unpack  # noqa: E402

# tiny versions of the three presets (the fields a loan runs at paper scale)
TINY = {
    "10-threshold_gpu": ("threshold_gpu", [
        "--set", "grid=((64,(4,8,16)),)", "--set", "seeds=0,1", "--set", "k=8",
        "--set", "checkpoints=0,10,20,60,80,100", "--set", "movement_m=8",
        "--set", "movement_widths=64,128"]),
    "30-threshold_gpu_d100": ("threshold_gpu_d100", [
        "--set", "grid=((64,(4,8,16)),)", "--set", "seeds=0", "--set", "k=8",
        "--set", "checkpoints=0,10,20,60,80,100", "--set", "movement_m=8",
        "--set", "movement_widths=64,128"]),
    "20-fig1_mnist1d_gpu": ("fig1_mnist1d_gpu", [
        "--set", "sizes=100,200,400", "--set", "widths=16,32", "--set", "seeds=0,1",
        "--set", "k=4", "--set", "checkpoints=0,10,20", "--set", "plateau=30,40"]),
}


def tiny_cfg(script: str):
    name, args = TINY[script]
    return config.get(name, **config.parse_overrides(name, args[1::2]))


def run_script(script: str, outdir: Path, archive: Path | None = None, **env):
    """``tools/gpu_runs/<script>.sh OUTDIR`` at tiny size on the CPU, as ``gpu_run.sh``
    calls it (a budget in ``$RUN_BUDGET_S``); returns its output and the manifest."""
    extra = {"ARCHIVE_DIR": str(archive)} if archive else {}
    proc = subprocess.run(
        ["bash", f"tools/gpu_runs/{script}.sh", str(outdir), "--device", "cpu",
         *TINY[script][1]], cwd=ROOT, capture_output=True, text=True, timeout=600,
        env={**os.environ, "PYTHON": sys.executable, "RUN_BUDGET_S": "600", **extra, **env})
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    name = TINY[script][0]
    return proc.stdout, json.loads((outdir / name / "manifest.json").read_text())


def pack(work: Path, script: str, out: Path) -> Path:
    """What ``tools/gpu_run.sh`` brings back for one run: ``OUT/<script>.tar.gz``."""
    out.mkdir(parents=True, exist_ok=True)
    with tarfile.open(out / f"{script}.tar.gz", "w:gz") as tar:
        tar.add(work / script, arcname=script)
    return out / f"{script}.tar.gz"


# --- the device cell against independent computations --------------------------------

def test_gram_spectrum_matches_the_svd():
    gen = torch.Generator().manual_seed(0)
    Phi = torch.tanh(torch.randn(30, 120, generator=gen, dtype=torch.float64))
    U, s = pretraining_gpu.gram_spectrum(Phi)
    U_ref, s_ref, _ = torch.linalg.svd(Phi, full_matrices=False)
    assert torch.allclose(s, s_ref, rtol=1e-10)
    # singular vectors up to sign
    assert torch.allclose((U * U_ref).sum(0).abs(), torch.ones(30, dtype=torch.float64),
                          atol=1e-8)
    assert pretraining_gpu.gram_sigma_min(Phi) == pytest.approx(float(s_ref[-1]), rel=1e-10)
    with pytest.raises(ValueError, match="m <= N"):
        pretraining_gpu.gram_spectrum(Phi.T)


def test_kernel_matrix_matches_numpy_in_blocks(monkeypatch):
    X, _ = teacher_student(40, 10, teacher_width=8, seed=3, dtype=torch.float64)
    monkeypatch.setattr(pretraining_gpu, "KERNEL_BLOCK", 40 * 40 * 40 * 7)  # 6 blocks
    K = pretraining_gpu.kernel_matrix(X).numpy()
    assert np.abs(K - rmt.kernel_matrix(X, "tanh")).max() < 1e-13
    assert pretraining_gpu.kappa_infinite(X) == pytest.approx(rmt.kappa_infinite(X),
                                                              rel=1e-9)


@pytest.mark.parametrize("scaling", ["theorem", "mean_field"])
def test_device_cell_matches_chapter_4s_cell(scaling):
    cfg = tiny_cfg("10-threshold_gpu")
    got = pretraining_gpu.run_cell(cfg, 16, 64, 10, scaling)
    ref = pretraining.run_cell(cfg, 16, 64, 10, scaling)
    assert got["history"] == ref["history"]  # the same training
    for a, b in zip(got["rows"], ref["rows"], strict=True):
        assert a["selection"] == b["selection"]
        for key in a:
            if key != "selection":
                assert a[key] == pytest.approx(b[key], rel=1e-6, abs=1e-12), key
    for a, b in zip(got["seeds"], ref["seeds"], strict=True):
        assert a["T_dense"] == b["T_dense"] and a["T_lin"] == b["T_lin"]
        for key in ("sigma_min", "sigma_max", "kappa_inf", "L0", "sigma_min_end"):
            assert a[key] == pytest.approx(b[key], rel=1e-9), key


def test_the_table_is_chapter_4s(tmp_path, monkeypatch):
    """The paper-scale sweep (one cell per seed) tabulates exactly as chapter 4's."""
    monkeypatch.setenv("LABKIT_MODE", "quick")
    cfg = tiny_cfg("10-threshold_gpu")
    ours = pretraining_gpu.run_threshold(cfg, out=tmp_path)
    ref = pretraining.run_threshold(cfg, out=tmp_path, name="threshold")
    keys = ["kind", "m", "N", "d", "scaling", "seed", "t"]
    ours, ref = (df.sort_values(keys).reset_index(drop=True) for df in (ours, ref))
    assert list(ours.columns) == list(ref.columns)
    pd.testing.assert_frame_equal(ours, ref, rtol=1e-6, check_dtype=False)
    assert len(list((tmp_path / "threshold_gpu" / "cells").rglob("*.json"))) == \
        2 * len(cfg.cells())  # one cell per seed


# --- the scripts, as a loan runs them ---------------------------------------------------

def test_the_d100_run_is_the_same_path(tmp_path):
    out, info = run_script("30-threshold_gpu_d100", tmp_path / "30-threshold_gpu_d100")
    assert info["complete"] and info["cells_computed"] == info["cells_total"] == 6, out
    assert {c["d"] for c in tiny_cfg("30-threshold_gpu_d100").cells()} == {100}


@pytest.mark.parametrize("script", ["10-threshold_gpu", "20-fig1_mnist1d_gpu"])
def test_prepared_run_resumes_packs_unpacks_and_continues(tmp_path, script):
    name = TINY[script][0]
    work = tmp_path / "work"
    out, info = run_script(script, work / script)
    cells = info["cells_total"]
    assert info["complete"] and info["cells_computed"] == cells > 0, out
    assert f"{name} (full, cpu): {cells} cells, 0 done, {cells} to run" in out  # the plan
    out, again = run_script(script, work / script)
    assert again["cells_computed"] == 0 and again["cells_reused"] == cells

    # the loan's file, unpacked into an archive: every cell, the table and the manifest
    archive = tmp_path / "archive"
    pack(work, script, tmp_path / "files")
    summary = gpu_unpack.unpack(tmp_path / "files", archive)
    assert [(s["name"], s["added"], s["refused"]) for s in summary] == [(name, cells, [])]
    table, manifest = lk.load_archive(name, archive)
    assert manifest["device"] == "cpu" and manifest["complete"]
    assert table.equals(pd.read_csv(work / script / name / "results.csv"))
    assert len(json.loads((archive / name / "loans.json").read_text())) == 1
    assert gpu_unpack.unpack(tmp_path / "files", archive)[0]["kept"] == cells  # idempotent

    # a later loan starts from the archive and computes nothing it holds
    out, later = run_script(script, tmp_path / "later" / script, archive=archive)
    assert later["cells_computed"] == 0 and later["complete"], out
    assert f"prepared: {cells} cells from" in out

    # the chapters' reading of it
    found = lk.find_archive(name, archive)
    status = lk.archive_status({name: found, "other": None})
    assert list(status["status"]) == ["complete", "not run yet (book/running.md: GPU runs)"]
    cfg = tiny_cfg(script)
    if name.startswith("threshold"):
        medians, growth = lk.threshold_scale_tables({name: found}, {name: cfg})
        assert len(medians) == len(cfg.cells()) and (medians["seeds"] == len(cfg.seeds)).all()
        assert set(growth["scaling"]) == set(cfg.scalings)
    else:
        red, summary_red, growth = lk.fig1_scale_tables(found)
        assert len(summary_red) == len(cfg.sizes) * len(cfg.widths)
        assert set(growth["N"]) == set(cfg.widths)
    assert lk.find_archive("no_such_run", archive) is None


def test_unpack_refuses_a_damaged_cell(tmp_path, monkeypatch):
    script = "10-threshold_gpu"
    work = tmp_path / "work"
    monkeypatch.setenv("LABKIT_MODE", "quick")
    pretraining_gpu.run_threshold(tiny_cfg(script), out=work / script)
    victim = sorted((work / script / "threshold_gpu" / "cells").rglob("*.json"))[0]
    record = json.loads(victim.read_text())
    record["payload"]["rows"][0]["dense_loss"] += 1.0  # the checksum no longer holds
    victim.write_text(json.dumps(record))
    pack(work, script, tmp_path / "files")
    proc = subprocess.run([sys.executable, "tools/gpu_unpack.py", str(tmp_path / "files"),
                           "--archive", str(tmp_path / "archive")], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert f"1 refused: {victim.name}" in proc.stdout
    assert not (tmp_path / "archive" / "threshold_gpu" / "cells" / "threshold_gpu" /
                victim.name).exists()
    # the refused run's table is not taken either (it would hold the damaged numbers)
    assert not (tmp_path / "archive" / "threshold_gpu" / "results.csv").exists()


# --- the budget --------------------------------------------------------------------------

def test_budget_starts_no_cell_it_cannot_finish(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("LABKIT_MODE", "quick")
    cells = [{"i": i} for i in range(3)]

    def slow(cell):
        time.sleep(0.2)
        return {"v": cell["i"]}

    def rows(cell, payload):
        return pd.DataFrame([{"i": cell["i"], "v": payload["v"]}])

    cfg = config.get("threshold")
    with runner.within_budget(0.3):  # the first cell's 0.2 s leaves too little for more
        table = runner.run_cells("demo", cfg, cells, slow, rows, out=tmp_path, device="cpu",
                                 work=lambda c: 1.0)
    assert list(table["i"]) == [0]
    info = json.loads((tmp_path / "demo" / "manifest.json").read_text())
    assert (info["cells_done"], info["complete"]) == (1, False)
    assert "2 of 3 cells left for a later run" in capsys.readouterr().out
    table = runner.run_cells("demo", cfg, cells, slow, rows, out=tmp_path, device="cpu",
                             work=lambda c: 1.0)  # a later run without a limit finishes
    assert list(table["i"]) == [0, 1, 2]
    with pytest.raises(ValueError, match="--budget: must be a positive number"):
        with runner.within_budget(0):
            pass


def test_every_gpu_preset_is_in_the_regime():
    for name in ("threshold_gpu", "threshold_gpu_d100"):
        cfg = config.get(name, "full")
        assert all(4 * m <= N for N, ms in cfg.grid for m in ms)
        assert 8 * cfg.k <= min(N for N, _ in cfg.grid) and len(cfg.seeds) == 3
    assert max(m for _, ms in config.get("threshold_gpu").grid for m in ms) == 8192
    fig = config.get("fig1_mnist1d_gpu")
    assert (min(fig.sizes), max(fig.sizes), len(fig.sizes)) == (1000, 50000, 11)
    assert 4 * fig.k <= min(fig.widths) and fig.source == "mnist1d"
