"""Full mode as a reader runs it from JupyterLab (``LABKIT_MODE=full``): CUDA when the
machine has it, and the cells of a committed archive shown instead of recomputed. The
progress bar in a kernel is tested in ``test_cli.py::test_progress_shows_in_a_notebook_kernel``.
The archive here is a small fake one, made by a toy sweep, so the test runs on CPU."""

from __future__ import annotations

import json

import pandas as pd
import pytest
import torch

import labkit
from labkit import config
from labkit.infra import runner

CELLS = [{"i": 1}, {"i": 2}, {"i": 3}]


def compute(cell):
    return {"v": cell["i"] ** 2}


def to_rows(cell, payload):
    return pd.DataFrame([{"i": cell["i"], "v": payload["v"]}])


@pytest.fixture
def archive(tmp_path, monkeypatch):
    """``demo``'s first two cells, archived as ``python -m labkit run demo --out
    results/archive`` would leave them."""
    monkeypatch.setenv("LABKIT_MODE", "quick")
    runner.run_cells("demo", config.get("threshold"), CELLS[:2], compute, to_rows,
                     out=tmp_path / "archive", device="cpu")
    monkeypatch.setattr(runner, "ARCHIVE", tmp_path / "archive")
    return tmp_path / "archive" / "demo" / "cells"


def counting(calls):
    def f(cell):
        calls.append(cell["i"])
        return compute(cell)
    return f


def test_full_mode_shows_archived_cells_and_computes_the_rest(tmp_path, archive,
                                                             monkeypatch, capsys):
    monkeypatch.setenv("LABKIT_MODE", "full")
    calls = []
    table = runner.run_cells("demo", config.get("threshold", "quick"), CELLS, counting(calls),
                             to_rows, out=tmp_path / "full", device="cpu")
    assert calls == [3]  # only the cell the archive lacks
    assert table.to_dict("list") == {"i": [1, 2, 3], "v": [1, 4, 9]}
    info = json.loads((tmp_path / "full" / "demo" / "manifest.json").read_text())
    assert (info["from_archive"], info["cells_computed"]) == (2, 1)
    assert "demo: 2 of 3 cells read from the archived run" in capsys.readouterr().out


def test_quick_mode_never_reads_the_archive(tmp_path, archive, monkeypatch):
    monkeypatch.setenv("LABKIT_MODE", "quick")
    calls = []
    runner.run_cells("demo", config.get("threshold"), CELLS, counting(calls), to_rows,
                     out=tmp_path / "quick", device="cpu")
    assert calls == [1, 2, 3]


def test_a_damaged_archived_cell_is_recomputed(tmp_path, archive, monkeypatch):
    first = sorted(archive.rglob("*.json"))[0]
    record = json.loads(first.read_text())
    record["payload"]["v"] = -1  # the checksum no longer holds
    first.write_text(json.dumps(record))
    monkeypatch.setenv("LABKIT_MODE", "full")
    calls = []
    table = runner.run_cells("demo", config.get("threshold", "quick"), CELLS, counting(calls),
                             to_rows, out=tmp_path / "full", device="cpu")
    assert len(calls) == 2 and -1 not in table["v"].tolist()


@pytest.mark.parametrize("cuda, expected", [(True, "cuda"), (False, "cpu")])
def test_full_mode_picks_cuda_when_present(monkeypatch, cuda, expected):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
    assert labkit.get_device("full") == torch.device(expected)
    assert labkit.get_device("quick") == torch.device("cpu")  # quick mode: CPU always
