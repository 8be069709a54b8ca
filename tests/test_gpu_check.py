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


def test_gpu_run_passes_on_the_cpu_and_packs_one_file(tmp_path):
    out = tmp_path / "out"
    proc = subprocess.run(["bash", "tools/gpu_run.sh", str(out)], cwd=ROOT,
                          env={**os.environ, "PYTHON": sys.executable}, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    lines = [line for line in proc.stdout.splitlines() if line.startswith("gpu_check: ")]
    checks = [line.split()[2] for line in lines if line.split()[1] in ("ok", "MISMATCH")]
    assert set(checks) >= {"gfs-mse-rep", "gfs-bce-norep", "batched-training",
                           "threshold-cell", "fig1-cell", "channel-scorer", "shrink",
                           "distributed", "chapter-04"}, lines
    assert all(line.split()[1] == "ok" for line in lines if line.split()[2] in checks)
    assert sorted(p.name for p in out.iterdir()) == ["gpu_check.tar.gz"]  # one file back
    with tarfile.open(out / "gpu_check.tar.gz") as tar:
        summary = json.load(tar.extractfile("gpu_check/gpu_check.json"))
    assert summary["env"]["device"] == "cpu" and all(c["ok"] for c in summary["checks"])


def test_a_failing_check_fails_the_script(tmp_path):
    code = ("import sys; sys.argv = ['gpu_check', '--device', 'cpu', '--only', 'gfs-mse-rep'];"
            "sys.path.insert(0, 'tools'); import gpu_check as g;"
            "g.reference_gfs = lambda Phi, y, k, loss, rep: (__import__('numpy').zeros(k, int),"
            " __import__('numpy').zeros(k)); sys.exit(g.main())")
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "MISMATCH gfs-mse-rep" in proc.stdout and "selections DIFFER" in proc.stdout
