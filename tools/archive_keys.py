"""Archived runs against the code that would read them: which stored cells the current
code finds, a recomputation of each archive's cheapest cell, and the re-keying of cells
whose code digest changed while their numbers did not (issue 35: a code move keeps every
archive's cells, or migrates them with a test).

    python tools/archive_keys.py check                  # cells the current code finds
    python tools/archive_keys.py verify [NAME ...] --out F.json
                                                        # recompute each cheapest cell
    python tools/archive_keys.py migrate --verified F.json
                                                        # re-key cells whose check passed

A cell's key is a hash of its parameters, and its parameters hold a digest of the code that
computed it (``labkit.infra.store.code_digest``). When the code moves (or changes in a way that
keeps every number), the digest changes and the store no longer finds the cell. ``verify``
recomputes the archive's cheapest stored cell with the current code (unpinned full mode, as
the archives were run; the archive itself is hidden from the runner, so nothing is copied)
and compares the payload exactly. ``migrate`` then re-saves every cell of an archive whose
cheapest cell came back equal under the key the current code computes, with its payload and
recorded seconds unchanged, and appends what it did to ``results/archive/<name>/
migrations.json`` (old key, new key, old and new digests, the verifying cell). An archive
whose check failed is left as it is, with ``stale.json`` saying so and what differed.
``tests/test_archives.py`` checks that every archive's cells load, or that its
``stale.json`` says why not.

The archives were computed under quick mode's CPU pins (their presets are the same in both
modes), some with ``--workers`` (one-thread processes); ``verify`` recomputes under the pins
with 2 threads and, where that differs, with 1, and records which reproduced the cell.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from labkit.infra.store import ResultStore  # noqa: E402

ARCHIVE = ROOT / "results" / "archive"
DIGEST_FIELDS = ("code", "train")  # cell parameters that hold code digests, not settings


def archives() -> list[str]:
    return sorted(p.name for p in ARCHIVE.iterdir() if (p / "cells" / p.name).is_dir())


def _records(folder: Path) -> list[dict]:
    """Every stored record in ``folder`` (``params``, ``payload``, ...), with its file name."""
    records = []
    for path in sorted(folder.glob("*.json")):
        record = json.loads(path.read_text())
        record["_file"] = path.name
        records.append(record)
    return records


def stored_cells(name: str) -> list[dict]:
    """Every stored cell record of archive ``name``."""
    return _records(ARCHIVE / name / "cells" / name)


def _rekey(store, experiment: str, records: list[dict], by_settings: dict) -> list[dict]:
    """Save each record under the key of the current cell with its settings (same payload
    and recorded seconds), remove the old file, and return the moves."""
    moves = []
    for record in records:
        new = by_settings.get(_settings(record["params"]))
        if new is None or new == record["params"]:
            continue
        store.save(experiment, new, record["payload"], seconds=record.get("seconds"))
        (store.root / experiment / record["_file"]).unlink()
        moves.append({"from": record["_file"].removesuffix(".json"),
                      "to": store.key(experiment, new),
                      **{f"{k}_from": record["params"][k] for k in DIGEST_FIELDS
                         if k in record["params"]},
                      **{f"{k}_to": new[k] for k in DIGEST_FIELDS if k in new}})
    return moves


def _log(path: Path, entry: dict) -> None:
    history = json.loads(path.read_text()) if path.is_file() else []
    path.write_text(json.dumps([*history, entry], indent=1) + "\n")


def _settings(params: dict) -> str:
    """A cell's parameters without its code digests: what it computes, not with what."""
    return json.dumps({k: v for k, v in params.items() if k not in DIGEST_FIELDS},
                      sort_keys=True)


def sweep_parts(name: str, out: Path) -> tuple[list[dict], object]:
    """The cells the current code would compute for archive ``name`` (full parameters,
    code digests included) and the function that computes one, as the experiment's sweep
    hands them to ``labkit.infra.runner.run_cells`` (caught there; nothing is run)."""
    from labkit import __main__ as cli
    from labkit import config
    from labkit.infra import runner

    captured, computes = [], []
    real = runner.run_cells

    def spy(key, cfg, cells, compute, *args, **kwargs):
        captured.extend(json.loads(json.dumps(list(cells))))
        computes.append(compute)
        kwargs["dry_run"] = True
        return real(key, cfg, captured, compute, *args, **kwargs)

    cfg = config.get(name, mode="full")
    sweep = cli.EXPERIMENTS[name][0]
    # a dry run first, unpatched: it imports the sweep's module (the command line imports
    # them on first use), whose own reference to run_cells is then patched below
    sweep(cfg, str(out), "cpu", name=name, only=None, dry_run=True)
    modules = [m for m in list(sys.modules.values())
               if getattr(m, "run_cells", None) is real]
    for m in modules:
        m.run_cells = spy
    try:
        sweep(cfg, str(out), "cpu", name=name, only=None, dry_run=True)
    finally:
        for m in modules:
            m.run_cells = real
    if len(computes) != 1:
        raise RuntimeError(f"{name}: expected one run_cells call, saw {len(computes)}")
    return captured, computes[0]


def current_cells(name: str, out: Path) -> list[dict]:
    return sweep_parts(name, out)[0]


def check() -> dict:
    """For each archive: stored cells, how many the current code finds, and the stored
    cells whose settings match a current cell under another code digest."""
    report = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name in archives():
            store = ResultStore(ARCHIVE / name / "cells")
            cells = current_cells(name, Path(tmp))
            found = sum(store.load(name, c) is not None for c in cells)
            by_settings = {_settings(c): c for c in cells}
            stored = stored_cells(name)
            rekeyable = sum(_settings(r["params"]) in by_settings
                            and r["params"] != by_settings[_settings(r["params"])]
                            for r in stored)
            report[name] = {"stored": len(stored), "current_cells": len(cells),
                            "found": found, "other_digest": rekeyable}
    return report


TIMINGS = ("check_s", "seconds")  # payload fields that are wall-clock times, not results


def _equal(a, b, path="payload") -> list[str]:
    """Where two JSON payloads differ (exactly; NaN equals NaN; timings aside)."""
    if isinstance(a, dict) and isinstance(b, dict):
        if set(a) != set(b):
            return [f"{path}: keys differ"]
        return [d for k in a if k not in TIMINGS for d in _equal(a[k], b[k], f"{path}.{k}")]
    if isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            return [f"{path}: lengths {len(a)} != {len(b)}"]
        return [d for i, (x, y) in enumerate(zip(a, b, strict=True))
                for d in _equal(x, y, f"{path}[{i}]")]
    if isinstance(a, float) and isinstance(b, float) and a != a and b != b:
        return []
    return [] if a == b else [f"{path}: {a!r} != {b!r}"]


def _max_relative(a, b) -> float:
    """The largest relative difference between numbers at the same place of two payloads
    (non-numbers that differ count as infinite)."""
    if isinstance(a, dict) and isinstance(b, dict):
        return max([_max_relative(a[k], b[k]) for k in a if k in b and k not in TIMINGS],
                   default=0.0)
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        return max([_max_relative(x, y) for x, y in zip(a, b, strict=True)], default=0.0)
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        if a == b or (a != a and b != b):
            return 0.0
        return abs(a - b) / max(abs(a), abs(b))
    return 0.0 if a == b else float("inf")


def verify(name: str) -> dict:
    """Recompute the cheapest stored cell of archive ``name`` with the current code (the
    sweep's own compute function, called directly: no store, no archive) and compare it
    with the stored payload, timings aside."""
    stored = [r for r in stored_cells(name) if isinstance(r.get("seconds"), (int, float))]
    cheapest = min(stored, key=lambda r: r["seconds"])
    with tempfile.TemporaryDirectory() as tmp:
        cells, compute = sweep_parts(name, Path(tmp))
        match = [c for c in cells if _settings(c) == _settings(cheapest["params"])]
        if len(match) != 1:
            return {"name": name, "ok": False, "why": f"{len(match)} current cells match"}
        cell = match[0]
        start = time.perf_counter()
        payload = json.loads(json.dumps(compute(cell)))
        seconds = time.perf_counter() - start
    diffs = _equal(cheapest["payload"], payload)
    return {"name": name, "ok": not diffs, "cell": cheapest["_file"],
            "settings": {k: v for k, v in cell.items()
                         if k not in DIGEST_FIELDS and not isinstance(v, (list, dict))},
            "stored_code": {k: cheapest["params"].get(k) for k in DIGEST_FIELDS},
            "current_code": {k: cell.get(k) for k in DIGEST_FIELDS},
            "seconds": round(seconds, 1), "n_differences": len(diffs),
            "max_relative_difference": _max_relative(cheapest["payload"], payload),
            "differences": diffs[:10]}


def migrate(verified: dict, reason: str) -> dict:
    """Re-key every cell of each archive whose verification passed."""
    done = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, result in verified.items():
            if not result.get("ok"):
                # computed by earlier code that the current code does not reproduce: the
                # cells stay as they are (results.csv and the manifest still read), and the
                # record says so, with the measured difference
                info = json.loads((ARCHIVE / name / "manifest.json").read_text())
                record = {"stale": True, "computed_at": info.get("git_revision"),
                          "reason": "its cells were computed by earlier code that the current "
                                    "code does not reproduce; they are not served as current "
                                    "(rerun the archive to recompute them)",
                          "verification": result}
                (ARCHIVE / name / "stale.json").write_text(json.dumps(record, indent=1) + "\n")
                done[name] = "left as it is (stale.json): its cheapest cell differs"
                continue
            by_settings = {_settings(c): c for c in current_cells(name, Path(tmp))}
            moves = _rekey(ResultStore(ARCHIVE / name / "cells"), name, stored_cells(name),
                           by_settings)
            if moves:
                _log(ARCHIVE / name / "migrations.json",
                     {"reason": reason,
                      "verified_by": {k: result[k] for k in ("cell", "settings", "seconds",
                                                             "threads", "stored_code",
                                                             "current_code")},
                      "cells": moves})
            done[name] = f"{len(moves)} cells re-keyed"
    return done


# -- chapter 7's committed calibrations (results/calibration): keyed by the deep code too --

CALIBRATIONS = ROOT / "results" / "calibration"


def _wanted_calibrations() -> list[dict]:
    """The parameters of every calibration chapter 7's quick presets read."""
    from labkit import config
    from labkit.experiments.tables import cell as tables

    out = []
    for name in ("table1", "table2"):
        cfg = config.get(name, mode="quick")
        out += [tables.calibration_params(cfg, a, w, t)
                for a, w in zip(cfg.archs, cfg.widths, strict=True) for t in cfg.targets]
    return out


def verify_calibrations() -> dict:
    """Recompute every committed calibration with the current code, as
    ``tools/calibrate_tables.py`` does (the preset's worker processes), into a scratch
    store, and compare each with the committed one."""
    from labkit import config
    from labkit.experiments.tables import cell as tables

    committed = {_settings(r["params"]): r for r in _records(CALIBRATIONS / "deep")}
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        for name in ("table1", "table2"):
            cfg = config.get(name, mode="quick")
            real = tables.CALIBRATION
            tables.CALIBRATION = Path(tmp) / "none"  # compute, never read the committed ones
            try:
                tables.calibrations(cfg, out=tmp, device="cpu", workers=cfg.processes,
                                    store_root=Path(tmp) / "store")
            finally:
                tables.CALIBRATION = real
        seconds = time.perf_counter() - start
        store = ResultStore(Path(tmp) / "store")
        for params in _wanted_calibrations():
            old = committed.get(_settings(params))
            new = store.load("deep", params)
            key = f"{params['arch']}-{params['target']}"
            if old is None or new is None:
                results[key] = {"ok": False, "why": "no committed or no recomputed record"}
                continue
            diffs = _equal(old["payload"], new)
            results[key] = {"ok": not diffs, "cell": old["_file"], "n_differences": len(diffs),
                            "differences": diffs[:10], "stored_code": old["params"]["code"],
                            "current_code": params["code"]}
    return {"ok": all(r["ok"] for r in results.values()), "seconds": round(seconds, 1),
            "records": results}


def migrate_calibrations(verified: dict) -> str:
    """Re-key the committed calibrations whose recomputation came back equal."""
    if not verified.get("ok"):
        return "left as they are: a recomputed calibration differs"
    by_settings = {_settings(p): p for p in _wanted_calibrations()}
    moves = _rekey(ResultStore(CALIBRATIONS), "deep", _records(CALIBRATIONS / "deep"),
                   by_settings)
    _log(CALIBRATIONS / "migrations.json",
         {"verified_by": {k: v for k, v in verified.items() if k != "records"},
          "cells": moves})
    return f"{len(moves)} calibrations re-keyed"


THREADS = (2, 1)  # quick mode's pinned count, then one thread: the runner's worker processes


def verify_in_subprocess(name: str) -> dict:
    """:func:`verify` in a fresh process under quick mode's CPU pins (the archives were
    computed under them; their presets are the same in both modes), with 2 threads and, if
    that does not reproduce the cell, with 1 (``--workers`` runs compute cells in one-thread
    processes, and some cells' float reductions depend on the thread count)."""
    import subprocess

    result = {}
    for threads in THREADS:
        env = {k: v for k, v in os.environ.items() if k != "LABKIT_MODE"}
        env.update(LABKIT_THREADS=str(threads), LABKIT_PROGRESS="0")
        out = subprocess.run([sys.executable, __file__, "verify-one", name], env=env,
                             capture_output=True, text=True, cwd=ROOT)
        if out.returncode:
            raise RuntimeError(f"{name}: verification failed to run:\n{out.stderr[-2000:]}")
        result = {**json.loads(out.stdout.strip().splitlines()[-1]), "threads": threads}
        if result["ok"]:
            break
    return result


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("check")
    v = sub.add_parser("verify")
    v.add_argument("names", nargs="*")
    v.add_argument("--out", required=True)
    one = sub.add_parser("verify-one")
    one.add_argument("name")
    sub.add_parser("verify-calibrations")
    mc = sub.add_parser("migrate-calibrations")
    mc.add_argument("--verified", required=True)
    m = sub.add_parser("migrate")
    m.add_argument("--verified", required=True)
    m.add_argument("--reason", default="code moved")
    args = parser.parse_args(argv)
    os.environ.setdefault("LABKIT_PROGRESS", "0")
    if args.command == "check":
        print(json.dumps(check(), indent=1))
    elif args.command == "verify-calibrations":
        print(json.dumps(verify_calibrations(), indent=1))
    elif args.command == "migrate-calibrations":
        print(migrate_calibrations(json.loads(Path(args.verified).read_text())))
    elif args.command == "verify-one":
        print(json.dumps(verify(args.name)))
    elif args.command == "verify":
        results = {}
        for name in args.names or archives():
            results[name] = verify_in_subprocess(name)
            print(json.dumps(results[name]), flush=True)
            Path(args.out).write_text(json.dumps(results, indent=1))
    else:
        verified = json.loads(Path(args.verified).read_text())
        print(json.dumps(migrate(verified, args.reason), indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
