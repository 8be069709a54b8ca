"""Unpack what a GPU loan brought back into ``results/archive/`` (issue 24).

    python tools/gpu_unpack.py FILES_AT [--archive results/archive]

``FILES_AT`` is the folder the device's files lie in (``tools/gpu_run.sh`` packed each
prepared run ``tools/gpu_runs/NN-NAME.sh`` into ``NN-NAME.tar.gz``, holding
``NN-NAME/NAME/{cells/, results.csv, manifest.json}`` and ``NN-NAME/log.txt``). For each run:

- every cell that verifies (its checksum, schema and key, as the store reads it) and that
  the archive lacks is added to ``ARCHIVE/NAME/cells/``; a cell the archive has is the same
  computation (a key is its parameters and code digest) and is left as it is; a damaged
  one is refused and named;
- ``results.csv`` and ``manifest.json`` (the device, versions and wall time of the loan)
  replace the archive's when they tabulate at least as many cells: the loan started from
  the committed cells (``prepared.bash``), so its table holds them all;
- the loan's manifest, less its config, is appended to ``ARCHIVE/NAME/loans.json``: the
  record of every loan that added to the run.

``gpu_check.tar.gz`` is left alone (the GPU check's own record). Archives are unpacked with
tarfile's ``data`` filter: no absolute paths, links out of the folder or device files.
Exit code 1 if a cell was refused.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tarfile
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from labkit.infra.store import ResultStore, write_text_atomic  # noqa: E402


def _cells(folder: Path) -> list[Path]:
    return sorted(folder.glob("cells/*/*.json"))


def _merge_run(run: Path, archive: Path) -> dict:
    """Merge one run folder ``run`` (``NAME/`` with ``cells/``) into ``archive/NAME``."""
    dest = archive / run.name
    dest.mkdir(parents=True, exist_ok=True)
    store, added, kept, refused = ResultStore(dest / "cells"), 0, 0, []
    source = ResultStore(run / "cells")
    for path in _cells(run):
        try:
            record = json.loads(path.read_text())
            experiment, params = record["experiment"], record["params"]
        except (OSError, ValueError, KeyError, TypeError):
            refused.append(path.name)
            continue
        payload = source.load(experiment, params)
        if payload is None or source.path(experiment, params) != path:
            refused.append(path.name)
        elif store.load(experiment, params) is not None:
            kept += 1
        else:
            store.save(experiment, params, payload, seconds=record.get("seconds"))
            added += 1
    info = json.loads((run / "manifest.json").read_text()) \
        if (run / "manifest.json").is_file() else None
    old = dest / "manifest.json"
    old_done = json.loads(old.read_text()).get("cells_done", 0) if old.is_file() else -1
    replaced = info is not None and (run / "results.csv").is_file() \
        and info.get("cells_done", 0) >= old_done and not refused
    if replaced:
        shutil.copyfile(run / "results.csv", dest / "results.csv")
        write_text_atomic(dest / "manifest.json", json.dumps(info, indent=2))
    if info is not None:
        loans_path = dest / "loans.json"
        loans = json.loads(loans_path.read_text()) if loans_path.is_file() else []
        loans.append({k: v for k, v in info.items() if k != "fields"})
        write_text_atomic(loans_path, json.dumps(loans, indent=2))
    return {"name": run.name, "added": added, "kept": kept, "refused": refused,
            "table_replaced": replaced,
            "cells_done": None if info is None else info.get("cells_done"),
            "cells_total": None if info is None else info.get("cells_total")}


def unpack(files_at: Path, archive: Path) -> list[dict]:
    """Merge every prepared run packed under ``files_at`` into ``archive``; one summary
    per run."""
    summaries = []
    for packed in sorted(files_at.glob("*.tar.gz")):
        if packed.name == "gpu_check.tar.gz":
            continue
        with tempfile.TemporaryDirectory() as tmp, tarfile.open(packed) as tar:
            tar.extractall(tmp, filter="data")
            for manifest in sorted(Path(tmp).glob("*/*/manifest.json")):
                summaries.append({"packed": packed.name,
                                  **_merge_run(manifest.parent, archive)})
    return summaries


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("files_at", type=Path, help="the folder holding NN-NAME.tar.gz")
    parser.add_argument("--archive", type=Path, default=ROOT / "results" / "archive")
    args = parser.parse_args(argv)
    if not args.files_at.is_dir():
        parser.error(f"files_at: no folder {args.files_at}")
    summaries = unpack(args.files_at, args.archive)
    if not summaries:
        print(f"gpu_unpack: no prepared run under {args.files_at}")
    for s in summaries:
        print(f"{s['packed']}: {s['name']}: {s['added']} cells added, {s['kept']} already "
              f"archived, {len(s['refused'])} refused{': ' if s['refused'] else ''}"
              f"{', '.join(s['refused'])}; {s['cells_done']} of {s['cells_total']} cells "
              f"tabulated{' (table and manifest replaced)' if s['table_replaced'] else ''}")
    return 1 if any(s["refused"] for s in summaries) else 0


if __name__ == "__main__":
    sys.exit(main())
