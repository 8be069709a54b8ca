"""Calibrate Tables 1-2's tolerance per (network, FLOP target) and store the result in the
repository (``results/calibration``), where chapter 7 reads it instead of repeating the
search (issue 20). Run it after any change to the deep-network code or presets; a test
(``tests/test_tables.py``) fails while a committed calibration is stale.

    python tools/calibrate_tables.py [--mode quick] [--out DIR]
"""

from __future__ import annotations

import argparse
import tempfile

import labkit as lk
from labkit.experiments.tables import cell as tables


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mode", default="quick", choices=("quick", "full"))
    ap.add_argument("--out", default=None, help="pre-training checkpoints (default: a "
                                                "temporary folder)")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        out = args.out or tmp
        for name in ("table1", "table2"):
            cfg = lk.config.get(name, mode=args.mode)
            tables.calibrations(cfg, out=out, device=lk.get_device(), workers=cfg.processes,
                                store_root=tables.CALIBRATION)
            print(name)
            print(tables.calibration_table(cfg, out=out).to_string(index=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
