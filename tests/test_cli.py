"""The experiment command line, ``python -m labkit run`` (labkit/__main__.py,
labkit/infra/runner.py):
overrides, cell selection, the dry run and its estimate, progress bars, and a run killed
with SIGKILL leaving a results table of every cell it finished.

The runs are chapter 4's threshold sweep shrunk with ``--set`` to a few seconds.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import pandas as pd
import pytest

from labkit import __main__ as cli
from labkit import config
from labkit.infra import runner

TINY = ["--set", "grid=((32, (2, 4, 8)),)", "--set", "d_values=3", "--set", "scalings=theorem",
        "--set", "seeds=0", "--set", "checkpoints=0,20,30,40,50",
        "--set", "k=4", "--set", "n_boot=50"]


def run(tmp_path, *args) -> int:
    return cli.main(["run", "threshold", "--mode", "quick", "--out", str(tmp_path), *TINY,
                     *args])


def cells_of(table: pd.DataFrame) -> set:
    return set(map(tuple, table[["m", "N"]].drop_duplicates().to_numpy().tolist()))


def test_set_overrides_reach_the_config_and_the_manifest(tmp_path, capsys):
    assert run(tmp_path, "--set", "lr_theorem=0.25") == 0
    info = json.loads((tmp_path / "threshold" / "manifest.json").read_text())
    assert info["fields"]["lr_theorem"] == 0.25 and info["fields"]["grid"] == [[32, [2, 4, 8]]]
    assert info["complete"] and info["cells_done"] == info["cells_total"] == 3
    stored = [json.loads(f.read_text())["seconds"]
              for f in (tmp_path / "threshold" / "cells").rglob("*.json")]
    assert info["cell_seconds"] == pytest.approx(sum(stored), abs=1e-3)
    assert info["cell_seconds"] > 0
    expected = config.get("threshold", mode="quick", lr_theorem=0.25, grid=((32, (2, 4, 8)),),
                          d_values=(3,), scalings=("theorem",), seeds=(0,),
                          checkpoints=(0, 20, 30, 40, 50), k=4, n_boot=50)
    assert info["digest"] == expected.digest()


@pytest.mark.parametrize("item, words", [
    ("k=abc", ["k: must be an integer", "'abc'"]),
    ("kk=3", ["kk: not a field of ThresholdConfig", "allowed:", "grid"]),
    ("seeds=0,0", ["seeds: must be distinct"]),
    ("grid=((32, (2, 16)),)", ["grid: m = 16 > N/4 = 8 at width N = 32"]),
    ("k=8", ["k: 8 > N/8 = 4 at width N = 32"]),
    ("k", ["--set: expected FIELD=VALUE"]),
])
def test_bad_set_is_a_usage_error_naming_the_field(tmp_path, capsys, item, words):
    with pytest.raises(SystemExit) as exit_:
        run(tmp_path, "--set", item)
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert all(w in err for w in words), err
    assert "Traceback" not in err and not (tmp_path / "threshold").exists()


def test_parse_overrides_types():
    got = config.parse_overrides("threshold", ["k=100", "seeds=3", "dtype=float64",
                                               "delta=1e-3", "checkpoints=(0, 5)",
                                               "scalings=theorem", "grid=((64, (4, 8)),)"])
    assert got == {"k": 100, "seeds": (3,), "dtype": "float64", "delta": 1e-3,
                   "checkpoints": (0, 5), "scalings": ("theorem",), "grid": ((64, (4, 8)),)}


def test_only_runs_the_selected_cells(tmp_path):
    assert run(tmp_path, "--only", "m=2,8") == 0
    table = pd.read_csv(tmp_path / "threshold" / "results.csv")
    assert cells_of(table) == {(2, 32), (8, 32)}
    info = json.loads((tmp_path / "threshold" / "manifest.json").read_text())
    assert info["only"] == {"m": [2, 8]} and info["cells_total"] == 2
    assert len(list((tmp_path / "threshold" / "cells").rglob("*.json"))) == 2


def test_manifest_records_the_revision_the_run_started_from(tmp_path, monkeypatch):
    """A commit made while a long run computes must not be recorded as the code of the
    cells computed before it: the manifest keeps the revision asked for at the start."""
    answers = iter(["started-here", "committed-later", "committed-later"])
    monkeypatch.setattr(runner, "git_revision", lambda: next(answers, "committed-later"))
    assert run(tmp_path) == 0
    info = json.loads((tmp_path / "threshold" / "manifest.json").read_text())
    assert info["cells_done"] == 3 and info["git_revision"] == "started-here"
    assert info["labkit_modified"] in (True, False, None)


@pytest.mark.parametrize("item, words", [
    ("q=1", ["'q' is not a cell parameter", "allowed:", "m"]),
    ("m=11", ["no cell matches m in [11]", "m: 2, 4, 8"]),
    ("m", ["--only: expected FIELD=VALUE"]),
])
def test_bad_only_is_a_usage_error(tmp_path, capsys, item, words):
    with pytest.raises(SystemExit) as exit_:
        run(tmp_path, "--only", item)
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert all(w in err for w in words), err


def test_dry_run_lists_cells_computes_nothing_and_calibrates(tmp_path, capsys):
    assert run(tmp_path, "--dry-run") == 0
    out = capsys.readouterr().out
    assert "3 cells, 0 done, 3 to run" in out and "assumed" in out
    assert not (tmp_path / "threshold").exists()  # nothing written
    assert run(tmp_path, "--only", "m=2") == 0
    capsys.readouterr()
    assert run(tmp_path, "--dry-run") == 0
    out = capsys.readouterr().out
    assert "3 cells, 1 done, 2 to run" in out and "measured on this run" in out


def test_plan_estimate_is_work_times_the_measured_rate(tmp_path):
    """The estimate against a hand computation: one timed cell fixes seconds per FLOP."""
    store = runner.ResultStore(tmp_path)
    cells = [{"i": 1}, {"i": 2}, {"i": 3}]
    store.save("x", cells[0], {"v": 1}, seconds=2.0)
    plan = runner.plan("x", cells, store=store, work=lambda c: 1e9 * c["i"], device="cpu")
    assert plan["status"].tolist() == ["done", "todo", "todo"]
    assert plan["est_s"].tolist() == [0.0, 4.0, 6.0] and set(plan["basis"]) == {"measured"}
    # nothing timed: the assumed nominal rate, said so
    plan = runner.plan("y", cells, store=store, work=lambda c: 2e10, device="cpu")
    assert plan["est_s"].tolist() == [1.0, 1.0, 1.0] and set(plan["basis"]) == {"assumed"}


@pytest.mark.parametrize("env, tty, notebook, shown", [
    ({}, True, False, True),                      # a terminal
    ({}, False, True, True),                      # a Jupyter kernel
    ({}, False, False, False),                    # output to a file
    ({"CI": "true"}, True, True, False),          # CI
    ({"PYTEST_CURRENT_TEST": "x"}, True, False, False),
    ({"LABKIT_PROGRESS": "0"}, True, True, False),  # what nbval's kernels get
    ({"LABKIT_PROGRESS": "1", "CI": "true"}, False, False, True),
])
def test_progress_enabled(monkeypatch, env, tty, notebook, shown):
    for var in ("CI", "PYTEST_CURRENT_TEST", "LABKIT_PROGRESS"):
        monkeypatch.delenv(var, raising=False)
    for var, value in env.items():
        monkeypatch.setenv(var, value)
    monkeypatch.setattr(sys.stderr, "isatty", lambda: tty, raising=False)
    monkeypatch.setattr(runner, "_in_notebook", lambda: notebook)
    assert runner.progress_enabled() is shown


def test_progress_shows_in_a_notebook_kernel():
    """In a real kernel, with CI and pytest out of its environment, run_cells draws tqdm's
    notebook widget (tqdm.auto), and the bar inside a cell too."""
    import nbformat
    from nbclient import NotebookClient

    code = """
import os
for var in ("CI", "PYTEST_CURRENT_TEST", "LABKIT_PROGRESS"):
    os.environ.pop(var, None)
import tempfile
import pandas as pd
from labkit import config
from labkit.infra import runner

def compute(cell):
    with runner.step_bar(3, "inside the cell") as bar:
        for _ in range(3):
            bar.update()
    return {"i": cell["i"]}

table = runner.run_cells("demo", config.get("threshold"), [{"i": 1}, {"i": 2}], compute,
                         lambda cell, p: pd.DataFrame([p]), out=tempfile.mkdtemp(),
                         device="cpu")
print(len(table))
"""
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(code)])
    NotebookClient(nb, timeout=120, kernel_name="python3").execute()
    outputs = nb.cells[0].outputs
    widgets = [o for o in outputs if "application/vnd.jupyter.widget-view+json"
               in o.get("data", {})]
    assert len(widgets) >= 2, outputs  # the bar over cells and the one inside a cell
    assert any(o.get("text", "").strip() == "2" for o in outputs)


def test_sigkill_leaves_a_table_of_every_finished_cell(tmp_path):
    """kill -9 mid-run: results.csv and manifest.json are whole (atomic rewrites) and hold
    every finished cell. A cell's file is written just before the table, and the table
    just before the manifest, so a kill can land between two of them for at most the one
    cell in hand: the table may hold one cell the manifest does not count yet, and one cell
    file may be missing from both; the rerun reuses it."""
    out = tmp_path / "out"
    args = [sys.executable, "-m", "labkit", "run", "threshold", "--out", str(out),
            "--set", "grid=((128, (4, 8, 16, 32)), (64, (4, 8, 16)))", "--set", "k=8",
            "--set", "d_values=10", "--set", "scalings=theorem,mean_field", "--set", "seeds=0",
            "--set", "checkpoints=0,100,200,300,400,500,600",
            "--set", "n_boot=50"]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    manifest = out / "threshold" / "manifest.json"
    deadline = time.time() + 180
    while time.time() < deadline:
        if manifest.exists() and json.loads(manifest.read_text())["cells_done"] >= 2:
            break
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    info = json.loads(manifest.read_text())
    table = pd.read_csv(out / "threshold" / "results.csv")
    stored = {(c["params"]["m"], c["params"]["N"], c["params"]["scaling"]) for c in
              (json.loads(f.read_text()) for f in (out / "threshold" / "cells").rglob("*.json"))}
    assert not info["complete"] and 2 <= info["cells_done"] < 14, "the kill should land midway"
    got = set(map(tuple, table[["m", "N", "scaling"]].drop_duplicates().to_numpy().tolist()))
    assert got <= stored and len(stored - got) <= 1
    assert info["cells_done"] <= len(got) <= info["cells_done"] + 1
    # seeds x checkpoints per cell: the table holds whole cells only
    assert (table["kind"] == "checkpoint").sum() == len(got) * 1 * 7
    subprocess.run(args, check=True, capture_output=True)
    info = json.loads(manifest.read_text())
    assert info["complete"] and info["cells_reused"] == len(stored)


def test_reuse_only_tabulates_the_finished_cells_and_computes_nothing(tmp_path):
    assert run(tmp_path, "--only", "m=2,8") == 0  # two of the three cells
    stamps = {f: f.stat().st_mtime_ns for f in (tmp_path / "threshold" / "cells").rglob("*.json")}
    assert run(tmp_path, "--reuse-only") == 0
    table = pd.read_csv(tmp_path / "threshold" / "results.csv")
    assert cells_of(table) == {(2, 32), (8, 32)}
    info = json.loads((tmp_path / "threshold" / "manifest.json").read_text())
    assert (info["cells_done"], info["cells_total"], info["complete"]) == (2, 3, False)
    assert info["cells_computed"] == 0
    files = list((tmp_path / "threshold" / "cells").rglob("*.json"))
    assert {f: f.stat().st_mtime_ns for f in files} == stamps  # nothing written or computed


def test_reuse_only_with_nothing_finished_is_a_usage_error(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:
        run(tmp_path, "--reuse-only")
    assert exit_.value.code == 2
    assert "--reuse-only: no finished cell" in capsys.readouterr().err
