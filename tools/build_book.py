"""Build the book into ``_build/html`` (offline, quick mode by default).

    python tools/build_book.py                    # what the README runs
    python tools/build_book.py --require-cache    # CI: fail if any chapter is executed
    LABKIT_MODE=full python tools/build_book.py   # full mode -> _build/full/_build/html

Steps: copy the offline assets (tools/copy_assets.py); in quick mode prime the
jupyter-cache with the outputs of the reference notebooks tests/notebooks/*.ipynb
(tools/prime_cache.py), so chapters whose code matches their reference are rendered
without executing; then run ``jupyter-book build -W -n --keep-going --all .``. A chapter
that is not primed (edited since its reference was made, or a fresh chapter) is executed
by the build. Full mode never uses the quick-mode references: it builds into a separate
folder, with its own cache, and executes every chapter.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import copy_assets  # noqa: E402
import labkit_env  # noqa: E402
import prime_cache  # noqa: E402

ROOT = prime_cache.ROOT
LOG = re.compile(r"(?P<path>\S+\.py): (?P<what>Using cached notebook|Executing notebook)")


def toc_chapters() -> list[str]:
    import yaml

    from_toc: list[str] = []

    def walk(node):
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "file" and str(value).startswith("chapters/"):
                    from_toc.append(Path(value).stem)
                else:
                    walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(yaml.safe_load((ROOT / "_toc.yml").read_text(encoding="utf8")))
    return from_toc


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--require-cache", action="store_true",
                        help="fail unless every chapter is rendered from the primed cache")
    args = parser.parse_args(argv)

    mode = os.environ.setdefault("LABKIT_MODE", "quick")
    # a chapter the build executes (one not primed from its verified reference) runs in a
    # kernel with the CPU pins, like nbval's, so its numbers are the reference's
    labkit_env.set_kernel_env(mode)
    copy_assets.main()
    # the jupyter-book next to this Python (the venv's), else the one on PATH
    exe = Path(sys.executable).parent / "jupyter-book"
    cmd = [str(exe) if exe.is_file() else "jupyter-book", "build",
           "-W", "-n", "--keep-going", "--all"]
    if mode == "quick":
        out = ROOT / "_build"
        prime_cache.report(prime_cache.prime(out / ".jupyter_cache"))
    else:
        out = ROOT / "_build" / mode
        if args.require_cache:
            sys.exit("build_book: --require-cache only applies to quick mode")
        cache = out / "_build" / ".jupyter_cache"
        if cache.exists():
            import shutil
            shutil.rmtree(cache)
        cmd += ["--path-output", str(out)]
    cmd.append(str(ROOT))
    print(f"build_book: LABKIT_MODE={mode} jupyter-book {' '.join(cmd[1:])}", flush=True)

    start = time.perf_counter()
    out.mkdir(parents=True, exist_ok=True)
    log_path = out / "build_book.log"
    seen: dict[str, str] = {}
    with subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True, bufsize=1) as proc, open(log_path, "w") as log:
        for line in proc.stdout:
            sys.stdout.write(line)
            log.write(line)
            m = LOG.search(line)
            if m:
                seen[Path(m["path"]).stem] = m["what"]
    seconds = time.perf_counter() - start
    rc = proc.returncode
    print(f"build_book: jupyter-book exited {rc} after {seconds:.1f} s; log: "
          f"{log_path.relative_to(ROOT)}")
    for stem in toc_chapters():
        print(f"build_book: {stem}: {seen.get(stem, 'not read')}")
    if rc != 0:
        return rc
    if args.require_cache:
        bad = [s for s in toc_chapters() if seen.get(s) != "Using cached notebook"]
        if bad:
            print(f"build_book: chapters not rendered from the verified cache: {bad}",
                  file=sys.stderr)
            return 1
    print(f"build_book: open {(out / 'html' / 'index.html').relative_to(ROOT)}"
          if mode == "quick" else
          f"build_book: open {(out / '_build' / 'html' / 'index.html').relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
