"""tools/browser_check.py's reader checks on two small pages in headless Chromium: a page
that breaks every rule is reported element by element, a page that follows them passes.
Skipped where Chromium is not installed (CI installs it before the tests)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from matplotlib.image import imsave

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tools"))
import browser_check  # noqa: E402

pytestmark = pytest.mark.skipif(not Path(browser_check.CHROMIUM).is_file(),
                                reason="needs Chromium (apt-get install chromium)")

PAGE = """<!doctype html><html><head><meta charset="utf-8"><style>
body {{ margin: 0; }} article.bd-article {{ width: 600px; padding: 0 20px; }}
pre {{ overflow-x: auto; }} img {{ max-width: {max_width}; }}</style></head>
<body><main><article class="bd-article">{body}</article></main></body></html>"""

BAD = """
<pre>{long}</pre>
<table><tr>{cells}</tr></table>
<img src="wide.png" alt="a wide image">
<p>This chapter is in preparation.</p>
""".format(long="x" * 300, cells="<td style='white-space:nowrap'>" + "y" * 200 + "</td>")

GOOD = """
<p class="executed-notebook"><a href="page.ipynb">Download this chapter</a></p>
<pre>short code</pre>
<figure><img src="wide.png" alt="a figure">
<figcaption><p><span class="caption-number">Fig. 1 </span>A caption that says what is
plotted and at which settings.</p></figcaption></figure>
<p>The threshold grows with the dataset size.</p>
"""


def _site(tmp_path, body, max_width) -> Path:
    html = tmp_path / "html"
    (html / "chapters").mkdir(parents=True)
    imsave(html / "chapters" / "wide.png", np.zeros((20, 800, 3)))
    (html / "chapters" / "page.html").write_text(PAGE.format(body=body, max_width=max_width))
    (html / "chapters" / "page.ipynb").write_text(
        '{"cells": [{"cell_type": "code", "source": "1", "metadata": {}, "outputs": [], '
        '"execution_count": 1}], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}')
    return html


def test_a_page_breaking_every_rule_is_reported(tmp_path):
    html = _site(tmp_path, BAD, "none")
    problems = browser_check.check(html, tmp_path / "shots", reader=True)
    text = "\n".join(problems)
    assert "<pre>" in text and "behind a scroll bar" in text, text
    assert "<table>" in text and "the column 600 px" in text, text
    assert "<img>" in text and "is 800 px wide" in text, text
    assert "image without a numbered figure caption" in text, text
    assert "stale phrase: 'in preparation'" in text, text
    assert "no download link to its executed notebook" in text, text
    assert "at 400 px: <img>" in text, text  # too wide on a phone as well
    assert all(p.startswith("chapters/page.html: ") for p in problems)
    assert (tmp_path / "shots" / "1280" / "chapters__page.png").is_file()
    assert (tmp_path / "shots" / "400" / "chapters__page.png").is_file()


def test_a_page_following_the_rules_passes(tmp_path):
    html = _site(tmp_path, GOOD, "100%")
    assert browser_check.check(html, tmp_path / "shots", reader=True) == []


def test_a_chapter_link_to_a_missing_notebook_is_reported(tmp_path):
    html = _site(tmp_path, GOOD.replace("page.ipynb", "gone.ipynb"), "100%")
    problems = browser_check.check(html, tmp_path / "shots", reader=True)
    assert len(problems) == 1 and "executed notebook link: HTTP 404" in problems[0], problems
