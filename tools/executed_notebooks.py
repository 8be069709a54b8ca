"""Sphinx extension: every chapter page links to its executed notebook.

The notebook is ``tests/notebooks/NN_name.ipynb``, the quick-mode run that nbval
verified and the book's pages were rendered from (``tools/prime_cache.py``), so a reader
can open in JupyterLab exactly what the page shows. The build copies it to
``_downloads/notebooks/`` and puts a download link under the chapter's title. A chapter
without a reference notebook fails the build (every chapter has one; ``tools/
refresh_notebooks.py`` makes it). ``tools/browser_check.py`` checks the links in the built
pages. Registered in ``_config.yml`` (``sphinx.local_extensions``).
"""

from __future__ import annotations

import shutil
from pathlib import Path

from sphinx.errors import ExtensionError

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "tests" / "notebooks"
TARGET = "_downloads/notebooks"
LINK = ('<p class="executed-notebook"><a class="reference download" href="{href}" '
        'download="{name}">Download this chapter as an executed notebook</a> '
        '(<code>{name}</code>, quick mode, with the outputs shown on this page)</p>')


def _link(app, pagename: str, templatename, context: dict, doctree) -> None:
    if app.builder.format != "html" or not pagename.startswith("chapters/"):
        return
    name = Path(pagename).name + ".ipynb"
    source = NOTEBOOKS / name
    if not source.is_file():
        raise ExtensionError(f"executed_notebooks: {pagename} has no reference notebook "
                             f"{source.relative_to(ROOT)} (make it: python "
                             f"tools/refresh_notebooks.py {Path(pagename).name})")
    target = Path(app.outdir) / TARGET / name
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, target)
    link = LINK.format(href=context["pathto"](f"{TARGET}/{name}", 1), name=name)
    body = context.get("body", "")
    head = body.find("</h1>")
    if head < 0:
        raise ExtensionError(f"executed_notebooks: {pagename} has no title to put the "
                             "download link under")
    head += len("</h1>")
    context["body"] = body[:head] + link + body[head:]


def setup(app):
    app.connect("html-page-context", _link)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
