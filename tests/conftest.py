"""Shared pytest setup.

The reference notebooks in tests/notebooks hold quick-mode outputs, and nbval runs them
with ``--nbval-current-env`` (the kernel inherits this process's environment), so this
process's environment is set here, before any test module loads NumPy or PyTorch:

- the mode: a ``LABKIT_MODE=full`` left in the shell must not turn the test suite into a
  paper-scale run;
- the CPU pins (``labkit.infra.cpu_pins``): the kernels nbval starts, and this process, use the
  same vectorized kernels and thread count on every machine, so the stored outputs match;
- a fresh, empty results folder (``LABKIT_RESULTS``): chapters 4, 6 and 7 reuse stored
  cells, and a check that read cells from an earlier run would compare nothing;
- no progress bars (``LABKIT_PROGRESS=0``): a kernel would draw them as widgets, which the
  stored outputs do not hold.
"""

import atexit
import os
import shutil
import tempfile

os.environ["LABKIT_MODE"] = "quick"
os.environ["LABKIT_PROGRESS"] = "0"
os.environ["LABKIT_RESULTS"] = tempfile.mkdtemp(prefix="labkit-results-")
atexit.register(shutil.rmtree, os.environ["LABKIT_RESULTS"], ignore_errors=True)

# importing labkit first sets the pins in os.environ and checks that they took effect here
from labkit.infra import cpu_pins  # noqa: E402

assert cpu_pins.problems() == []


def kill_midway_and_resume(script: str, tmp_path, cells_of, total: int, sig: int) -> dict:
    """Shared check of every resumable sweep. ``script`` (run as ``python -c script OUT PKL``)
    runs a sweep into OUT and pickles its table to PKL; ``cells_of(OUT)`` is the folder of its
    cell files. The run is stopped with ``sig`` once two cells are done, restarted, and must
    then finish without rewriting a finished cell and equal an uninterrupted run. Returns
    the cells finished before the signal, with their modification times."""
    import subprocess
    import sys
    import time

    import pandas as pd

    env = {**os.environ, "LABKIT_MODE": "quick"}

    def run(out, pkl):
        return [sys.executable, "-c", script, str(tmp_path / out), str(tmp_path / pkl)]

    cells = cells_of(tmp_path / "killed")
    proc = subprocess.Popen(run("killed", "a.pkl"), env=env)
    deadline = time.time() + 180
    while time.time() < deadline and len(list(cells.glob("*.json"))) < 2:
        time.sleep(0.05)
    proc.send_signal(sig)
    proc.wait()
    done = {f: f.stat().st_mtime_ns for f in cells.glob("*.json")}
    assert 2 <= len(done) < total, "the signal should land mid-sweep"
    subprocess.run(run("killed", "b.pkl"), env=env, check=True)
    assert all(f.stat().st_mtime_ns == t for f, t in done.items()), "finished cells redone"
    assert len(list(cells.glob("*.json"))) == total and not list(cells.glob("*.tmp"))
    subprocess.run(run("clean", "c.pkl"), env=env, check=True)
    pd.testing.assert_frame_equal(pd.read_pickle(tmp_path / "b.pkl"),
                                  pd.read_pickle(tmp_path / "c.pkl"))
    return done
