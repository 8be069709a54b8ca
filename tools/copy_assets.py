"""Copy the offline assets the rendered book needs into ``book/assets/`` (gitignored).

MathJax 3.2.2 comes from the PyPI package ``django-static-mathjax`` (pinned in
requirements.txt; its top-level Python package is ``mathjax``, no Django needed). We copy
the combined ``tex-mml-chtml.js`` component plus what it loads at run time: the CHTML
woff-v2 fonts and the TeX extensions (``\\require``/autoload), the menu/a11y components
the right-click menu can switch on. ``_config.yml`` points ``mathjax_path`` at the copy,
so no page asks a CDN for MathJax.

Usage: ``python tools/copy_assets.py`` (idempotent; run before every book build).
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEST = ROOT / "book" / "assets" / "mathjax"

# paths relative to MathJax's es5/ folder: files and whole folders
MATHJAX_FILES = ["tex-mml-chtml.js"]
MATHJAX_DIRS = [
    "output/chtml/fonts/woff-v2",  # fonts CHTML output loads by URL relative to the script
    "input/tex/extensions",  # TeX packages autoloaded on first use (\require, \color, ...)
    "ui",  # menu component (loaded lazily from the right-click menu)
    "a11y",  # accessibility extensions the menu can switch on
]


def mathjax_source() -> Path:
    """Return the ``es5`` folder of the installed MathJax 3 distribution."""
    try:
        import mathjax  # django-static-mathjax's top-level package
    except ImportError:
        sys.exit("copy_assets: package 'django-static-mathjax' is not installed; "
                 "run: pip install -r requirements.txt")
    es5 = Path(mathjax.__file__).parent / "static" / "mathjax" / "es5"
    if not (es5 / "tex-mml-chtml.js").is_file():
        sys.exit(f"copy_assets: no tex-mml-chtml.js under {es5}")
    return es5


def copy_mathjax(dest: Path = DEST) -> Path:
    src = mathjax_source()
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    for name in MATHJAX_FILES:
        shutil.copy2(src / name, dest / name)
    for sub in MATHJAX_DIRS:
        shutil.copytree(src / sub, dest / sub)
    return dest


def main() -> int:
    dest = copy_mathjax()
    n = sum(1 for p in dest.rglob("*") if p.is_file())
    print(f"copy_assets: MathJax -> {dest.relative_to(ROOT)} ({n} files)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
