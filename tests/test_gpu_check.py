"""tools/gpu_run.sh and tools/gpu_check.py on this (CPU) machine: the checks a GPU loan
runs first, here at tiny shapes on the CPU, through the same wrapper, packed as on the GPU
machine. A check that fails makes the script exit non-zero (shown with a broken check)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_gpu_run_passes_on_the_cpu_and_packs_one_file_per_run(tmp_path):
    out = tmp_path / "out"
    # one prepared run (issue 24), tools/gpu_runs/10-threshold_gpu.sh at tiny size
    runs = tmp_path / "runs"
    runs.mkdir()
    (runs / "10-tiny.sh").write_text(
        f'exec bash {ROOT}/tools/gpu_runs/10-threshold_gpu.sh "$1" --device cpu '
        "--set 'grid=((64,(4,8)),)' --set seeds=0 --set k=8 "
        "--set checkpoints=0,10,20,60,80,100 --set movement_m=8 --set movement_widths=64,128\n")
    proc = subprocess.run(["bash", "tools/gpu_run.sh", str(out)], cwd=ROOT,
                          env={**os.environ, "PYTHON": sys.executable,
                               "GPU_RUNS_DIR": str(runs)},
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    lines = [line for line in proc.stdout.splitlines() if line.startswith("gpu_check: ")]
    checks = [line.split()[2] for line in lines if line.split()[1] in ("ok", "MISMATCH")]
    assert set(checks) >= {"gfs-mse-rep", "gfs-bce-norep", "batched-training",
                           "threshold-cell", "threshold-gpu-cell", "fig1-cell",
                           "channel-scorer", "shrink",
                           "distributed", "chapter-04"}, lines
    assert all(line.split()[1] == "ok" for line in lines if line.split()[2] in checks)
    # one file back per part
    assert sorted(p.name for p in out.iterdir()) == ["10-tiny.tar.gz", "gpu_check.tar.gz"]
    with tarfile.open(out / "gpu_check.tar.gz") as tar:
        summary = json.load(tar.extractfile("gpu_check/gpu_check.json"))
    assert summary["env"]["device"] == "cpu" and all(c["ok"] for c in summary["checks"])
    # the run's file unpacks into an archive
    unpack = subprocess.run([sys.executable, "tools/gpu_unpack.py", str(out), "--archive",
                             str(tmp_path / "archive")], cwd=ROOT, capture_output=True,
                            text=True, timeout=120)
    assert unpack.returncode == 0, unpack.stdout + unpack.stderr
    assert "10-tiny.tar.gz: threshold_gpu: 4 cells added, 0 already archived, 0 refused; " \
        "4 of 4 cells tabulated (table and manifest replaced)" in unpack.stdout


def test_a_failing_check_fails_the_script(tmp_path):
    code = ("import sys; sys.argv = ['gpu_check', '--device', 'cpu', '--only', 'gfs-mse-rep'];"
            "sys.path.insert(0, 'tools'); import gpu_check as g;"
            "g.reference_gfs = lambda Phi, y, k, loss, rep: (__import__('numpy').zeros(k, int),"
            " __import__('numpy').zeros(k)); sys.exit(g.main())")
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "MISMATCH gfs-mse-rep" in proc.stdout and "selections DIFFER" in proc.stdout
