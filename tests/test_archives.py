"""Archived runs survive code moves (issue 35): every cell of every archive under
``results/archive/`` is found by the current code (its key, with the code digest, matches
what the experiment computes now), or the archive's ``stale.json`` says why not; one cheap
archived cell recomputed by the current code equals the stored one; and the re-keying tool
(``tools/archive_keys.py``) moves verified cells and leaves unverified ones alone."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))
import archive_keys  # noqa: E402

from labkit.infra.store import ResultStore, code_digest  # noqa: E402


@pytest.fixture(scope="module")
def report():
    return archive_keys.check()


def test_every_archive_is_checked(report):
    names = sorted(p.name for p in (ROOT / "results" / "archive").iterdir() if p.is_dir())
    assert sorted(report) == names


def test_every_archived_cell_loads_or_is_marked_stale(report):
    for name, r in report.items():
        stale = ROOT / "results" / "archive" / name / "stale.json"
        assert r["stored"] == r["current_cells"], (name, r)
        if stale.is_file():
            record = json.loads(stale.read_text())
            # a stale mark must stay true: the current code finds none of its cells, and the
            # recomputation it records differed
            assert r["found"] == 0, (name, r)
            assert record["verification"]["ok"] is False
            assert record["verification"]["n_differences"] > 0
        else:
            assert r["found"] == r["stored"], (name, r)


def test_migrations_point_at_stored_cells():
    """Each archive's latest re-keying moved its cells to files that exist (earlier ones
    may have been moved again since)."""
    logs = sorted((ROOT / "results" / "archive").glob("*/migrations.json"))
    assert logs
    for log in logs:
        folder = log.parent / "cells" / log.parent.name
        steps = json.loads(log.read_text())
        for step in steps:
            assert step["verified_by"]["cell"]
            assert all(move["from"] != move["to"] for move in step["cells"])
        for move in steps[-1]["cells"]:
            assert (folder / f"{move['to']}.json").is_file(), move


def test_cheapest_cell_recomputes_equal():
    """The moved code recomputes an archived cell exactly (chapter 11's teacher-student
    cell, the archives' cheapest: about 3 s)."""
    result = archive_keys.verify("stopping_cpu")
    assert result["ok"], result["differences"]
    assert result["current_code"] == result["stored_code"]


def test_payload_comparison_can_fail():
    assert archive_keys._equal({"a": [1.0, 2.0]}, {"a": [1.0, 2.0]}) == []
    assert archive_keys._equal({"a": [1.0, 2.0]}, {"a": [1.0, 2.5]}) == ["payload.a[1]: 2.0 != 2.5"]
    assert archive_keys._equal({"x": float("nan")}, {"x": float("nan")}) == []
    assert archive_keys._equal({"check_s": 1.0}, {"check_s": 2.0}) == []  # a timing


def test_code_digest_ignores_where_labkit_names_come_from(tmp_path, monkeypatch):
    """A module moved to another folder keeps its digest: labkit's own import lines do not
    count; any other change does."""
    import labkit.infra.store as store

    body = "import numpy as np\n\ndef g(x):\n    return f(x) + 1\n"
    sources = {"a": "from labkit.gfs import f\n" + body,
               "b": "from labkit.algorithms.gfs import f\n" + body}
    sources["c"] = sources["a"].replace("+ 1", "+ 2")
    sources["d"] = sources["a"].replace("import numpy as np", "import numpy as npx")
    # code_digest reads parts relative to the package, the folder above infra/
    monkeypatch.setattr(store, "__file__", str(tmp_path / "infra" / "store.py"))
    digests = {}
    for name, text in sources.items():
        (tmp_path / f"{name}.py").write_text(text)
        digests[name] = code_digest(f"{name}.py")
    assert digests["a"] == digests["b"]
    assert digests["a"] != digests["c"]
    assert digests["a"] != digests["d"]  # a non-labkit import still counts


def test_migrate_rekeys_verified_cells_only(tmp_path, monkeypatch):
    """A fake archive of fig1_lr whose cells carry another code digest: a passing check
    re-keys them (same payloads, now found by the current code); a failing one leaves
    them, and marks the archive stale."""
    cells = archive_keys.current_cells("fig1_lr", tmp_path / "scratch")[:2]
    for name in ("good", "bad"):
        store = ResultStore(tmp_path / name / "fig1_lr" / "cells")
        for i, cell in enumerate(cells):
            store.save("fig1_lr", {**cell, "code": "old-code"}, {"rows": [i]}, seconds=1.0)
        (tmp_path / name / "fig1_lr" / "manifest.json").write_text('{"git_revision": "abc"}')
    verified = {"fig1_lr": {"ok": True, "cell": "x.json", "settings": {}, "seconds": 1.0,
                            "threads": 2, "stored_code": {"code": "old-code"},
                            "current_code": {"code": cells[0]["code"]}}}
    monkeypatch.setattr(archive_keys, "ARCHIVE", tmp_path / "good")
    assert archive_keys.migrate(verified, "test") == {"fig1_lr": "2 cells re-keyed"}
    store = ResultStore(tmp_path / "good" / "fig1_lr" / "cells")
    assert [store.load("fig1_lr", c) for c in cells] == [{"rows": [0]}, {"rows": [1]}]
    assert len(list((store.root / "fig1_lr").glob("*.json"))) == 2  # the old files are gone
    log = json.loads((tmp_path / "good" / "fig1_lr" / "migrations.json").read_text())
    assert len(log[-1]["cells"]) == 2

    failed = {"fig1_lr": {**verified["fig1_lr"], "ok": False, "n_differences": 3}}
    monkeypatch.setattr(archive_keys, "ARCHIVE", tmp_path / "bad")
    before = sorted(p.name for p in (tmp_path / "bad").rglob("*.json"))
    archive_keys.migrate(failed, "test")
    store = ResultStore(tmp_path / "bad" / "fig1_lr" / "cells")
    assert all(store.load("fig1_lr", c) is None for c in cells)
    after = sorted(p.name for p in (tmp_path / "bad").rglob("*.json"))
    assert after == sorted([*before, "stale.json"])
    shutil.rmtree(tmp_path / "scratch", ignore_errors=True)
