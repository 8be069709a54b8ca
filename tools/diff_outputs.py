"""Which printed outputs of the reference notebooks changed since a git revision.

    python tools/diff_outputs.py HEAD            # after a refresh: what it changed
    python tools/diff_outputs.py 6ecb65a 07_deep_networks

Compares the text outputs (streams, plain-text and error results; images and cells tagged
``nbval-ignore-output`` are not compared, as under nbval) cell by cell, after the same
sanitize rules nbval applies (``tests/nbval_sanitize.cfg``), and prints each changed line
pair. Cells are matched by their
source, so a refresh that only renumbers cell ids shows nothing. Exit status 0 either way:
this is for reading a refresh before committing it (``book/running.md``).
"""

from __future__ import annotations

import argparse
import configparser
import json
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "tests" / "notebooks"


def sanitizers() -> list[tuple[re.Pattern, str]]:
    cfg = configparser.ConfigParser(interpolation=None)
    cfg.read(ROOT / "tests" / "nbval_sanitize.cfg", encoding="utf8")
    return [(re.compile(cfg[s]["regex"]), cfg[s]["replace"]) for s in cfg.sections()]


def text_outputs(nb: dict, rules) -> dict[str, list[str]]:
    """Source of each code cell -> its sanitized text output lines."""
    found = {}
    for cell in nb["cells"]:
        tags = cell.get("metadata", {}).get("tags", [])
        if cell["cell_type"] != "code" or {"nbval-ignore-output", "nbval-skip"} & set(tags):
            continue  # nbval does not compare these either
        text = []
        for out in cell.get("outputs", []):
            if out["output_type"] == "stream":
                chunk = "".join(out["text"])
                if text and text[-1][0] == out["name"]:  # chunks of one stream join up
                    text[-1] = (out["name"], text[-1][1] + chunk)
                    continue
                text.append((out["name"], chunk))
                continue
            if out["output_type"] in ("execute_result", "display_data"):
                text.append(("", "".join(out.get("data", {}).get("text/plain", ""))))
            elif out["output_type"] == "error":
                text.append(("", f"{out['ename']}: {out['evalue']}"))
        joined = "".join(t if t.endswith("\n") else t + "\n" for _, t in text)
        for regex, replace in rules:
            joined = regex.sub(replace, joined)
        found["".join(cell["source"])] = joined.splitlines()
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("rev", help="git revision holding the old reference notebooks")
    parser.add_argument("chapters", nargs="*", help="chapter names (default: all)")
    args = parser.parse_args(argv)
    rules = sanitizers()
    paths = ([NOTEBOOKS / f"{Path(c).stem}.ipynb" for c in args.chapters]
             or sorted(NOTEBOOKS.glob("*.ipynb")))
    for path in paths:
        rel = path.relative_to(ROOT).as_posix()
        old_text = subprocess.run(["git", "show", f"{args.rev}:{rel}"], cwd=ROOT,
                                  capture_output=True, text=True)
        if old_text.returncode != 0:
            print(f"{path.stem}: not at {args.rev}")
            continue
        old = text_outputs(json.loads(old_text.stdout), rules)
        new = text_outputs(json.loads(path.read_text(encoding="utf8")), rules)
        changed = 0
        for source, lines in new.items():
            before = old.get(source)
            if before is None or before == lines:
                continue
            changed += 1
            first = source.splitlines()[0][:70] if source else "(empty cell)"
            print(f"{path.stem}: cell `{first}`")
            for a, b in zip(before, lines, strict=False):
                if a != b:
                    print(f"    - {a}\n    + {b}")
            if len(before) != len(lines):
                print(f"    ({len(before)} lines before, {len(lines)} now)")
        unmatched = len(set(new) - set(old))
        print(f"{path.stem}: {changed} of {len(new)} code cells print something else"
              + (f"; {unmatched} cells are new or edited" if unmatched else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
