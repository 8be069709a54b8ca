"""The claims registry (book design, section 11): every claim of the paper, of the
neighbouring papers and of the book, as data, with its verdict decided by a stated rule,
under a stated precondition, across a robustness sweep.

- :data:`REGISTRY`: every :class:`Claim`, in ledger order;
- :func:`decide`: one claim's :class:`Decision` on the archived runs (minutes for the
  growth-law sweeps; ``tools/decide_claims.py`` stores every decision in
  ``results/claims/decisions.json``, which the pages read and a test recomputes);
- :func:`table`: every claim with its verdict, precondition, rule and sweep (from the
  stored decisions); :func:`chapter_table`: one chapter's verdict table;
- :func:`ledger_markdown`, :func:`findings_markdown`: the claims ledger's tables and the
  intro's "What the book found", generated (``tools/decide_claims.py --pages``);
- :data:`VERDICTS`: the vocabulary with its definitions.

``lk.claims.table()`` lists them all.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd

from labkit.claims import diet, fig1, prune_init, stopping, tested, threshold
from labkit.claims.evidence import log_law
from labkit.claims.registry import GROUPS, Claim, Decision
from labkit.claims.vocabulary import VERDICTS, combine

REGISTRY: tuple[Claim, ...] = (*tested.CLAIMS, *threshold.CLAIMS, *fig1.CLAIMS,
                               *prune_init.CLAIMS, *diet.CLAIMS, *stopping.CLAIMS)
_KEYS = [c.key for c in REGISTRY]
if len(set(_KEYS)) != len(_KEYS):
    raise ImportError("labkit.claims: a claim key is used twice")
DECISIONS = Path(__file__).resolve().parents[2] / "results" / "claims" / "decisions.json"

__all__ = ["REGISTRY", "VERDICTS", "Claim", "Decision", "chapter_table", "combine",
           "decide", "decide_all", "describe_growth", "disagreements", "findings_markdown",
           "get", "ledger_markdown", "load_decisions", "log_law", "table"]


def describe_growth(growth: pd.DataFrame, keys=("N",)) -> str:
    """One sentence per fitted growth law (rows of :func:`labkit.growth_table` or
    :func:`labkit.red_line_growth`): ``p`` with its profile interval, the likelihood-ratio
    p-value of the log law, and what the registry's log-law rule reads from it
    (:func:`log_law`); the pages glue it where the prose cites the fit."""
    parts = []
    for _, row in growth.iterrows():
        where = ", ".join(f"{k} = {row[k]:g}" for k in keys)
        verdict, text = log_law(row.to_dict())
        if not np.isfinite(row.get("p", np.nan)):
            parts.append(f"at {where} no law is fitted")
            continue
        parts.append(f"at {where}: {text}, likelihood-ratio p-value of the log law "
                     f"{row['lr_pvalue_p0']:.2g} (the log-law rule reads: {verdict})")
    return "; ".join(parts)


def get(key: str) -> Claim:
    """The claim named ``key``; a clear error listing the keys otherwise."""
    for c in REGISTRY:
        if c.key == key:
            return c
    raise KeyError(f"key: no claim {key!r}; claims: {', '.join(_KEYS)}")


def decide(key: str) -> Decision:
    """Decide one claim now, on the archived runs."""
    return get(key).decide()


def decide_all() -> dict[str, dict]:
    """Every claim decided now: ``key -> record`` (verdict, evidence, how it varied, the
    settings table as records), the form ``results/claims/decisions.json`` stores."""
    out = {}
    for c in REGISTRY:
        d = c.decide()
        out[c.key] = {"verdict": d.verdict, "evidence": d.evidence, "varied": d.varied,
                      "tally": d.tally, "settings": d.settings.to_dict(orient="records")}
    return out


@lru_cache(maxsize=1)
def load_decisions(path: str | None = None) -> dict[str, dict]:
    """The stored decisions (``tools/decide_claims.py``); every claim must be there."""
    p = Path(path) if path else DECISIONS
    if not p.exists():
        raise FileNotFoundError(f"{p}: no stored decisions; run python tools/"
                                "decide_claims.py")
    data = json.loads(p.read_text())["claims"]
    lost = [k for k in _KEYS if k not in data]
    if lost:
        raise ValueError(f"{p}: no decision for {', '.join(lost)}; rerun "
                         "tools/decide_claims.py")
    return data


def table(chapter: int | None = None, decisions: dict | None = None) -> pd.DataFrame:
    """Every claim (or one chapter's) with its stored verdict, the evidence at the base
    setting, how the verdict varied over the sweep, and the precondition, rule and sweep
    it was decided by. ``decisions``: the stored ones by default."""
    data = load_decisions() if decisions is None else decisions
    rows = []
    for c in REGISTRY:
        if chapter is not None and chapter not in c.chapter:
            continue
        d = data[c.key]
        rows.append({"key": c.key, "claim": c.statement, "source": c.source,
                     "status": c.status, "chapter": ", ".join(map(str, c.chapter)),
                     "verdict": d["verdict"], "evidence": d["evidence"],
                     "varied": d["varied"], "over the sweep": d["tally"],
                     "precondition": c.precondition, "rule": c.rule,
                     "sweep": c.sweep_text, "multiple comparisons": c.multiple})
    return pd.DataFrame(rows)


def chapter_table(chapter: int) -> pd.DataFrame:
    """One chapter's verdict table for the page: claim, verdict, the archived evidence
    at the base setting, and how the verdict moved over the sweep."""
    t = table(chapter)
    out = t[["claim", "verdict", "evidence", "over the sweep", "varied"]].rename(
        columns={"evidence": "evidence (archived run, base setting)",
                 "varied": "where the sweep disagrees"})
    return out.set_index("claim")


def _md(text: str) -> str:
    return " ".join(str(text).split()).replace("|", "\\|")


def _list_table(header: list[str], rows: list[list[str]], widths: str) -> str:
    lines = ["```{list-table}", ":header-rows: 1", f":widths: {widths}", ""]
    for row in [header, *rows]:
        lines.append(f"* - {_md(row[0])}")
        lines.extend(f"  - {_md(cell)}" for cell in row[1:])
    lines.append("```")
    return "\n".join(lines)


def ledger_markdown(decisions: dict | None = None) -> str:
    """The claims ledger's tables (one per group), from the stored decisions: what
    ``book/generated/ledger.md`` holds."""
    data = load_decisions() if decisions is None else decisions
    parts = ["<!-- generated by tools/decide_claims.py --pages from labkit.claims; do not "
             "edit -->", ""]
    for group, title in GROUPS.items():
        claims = [c for c in REGISTRY if c.group == group]
        if not claims:
            continue
        rows = []
        for c in claims:
            d = data[c.key]
            evidence = (d["evidence"] + f". Over the sweep: {d['tally']}"
                        + (f"; {d['varied']}" if d["varied"] else ""))
            rule = (f"Precondition: {c.precondition}. Rule: {c.rule}. Sweep: "
                    f"{c.sweep_text}." + (f" Multiple comparisons: {c.multiple}."
                                          if c.multiple else ""))
            rows.append([c.statement, d["verdict"], evidence, rule,
                         f"{c.source} ({c.status})",
                         ", ".join(map(str, c.chapter)), c.labkit or "-"])
        parts += [f"## {title}", "", _list_table(
            ["Claim", "Verdict", "Evidence (archived runs)", "How it is decided", "Source",
             "Ch.", "labkit"], rows, "20 10 24 22 12 4 8"), ""]
    return "\n".join(parts)


def legend_markdown() -> str:
    """The vocabulary as a list, for the ledger's legend."""
    return "\n".join(f"- **{w}**: {meaning}." for w, meaning in VERDICTS.items())


def findings_markdown(decisions: dict | None = None) -> str:
    """The intro's "What the book found": the headline claims' verdicts and evidence."""
    data = load_decisions() if decisions is None else decisions
    rows = [[c.statement, data[c.key]["verdict"],
             f"{data[c.key]['evidence']} (base setting); over the sweep: "
             f"{data[c.key]['tally']}", ", ".join(map(str, c.chapter))]
            for c in REGISTRY if c.headline]
    return ("<!-- generated by tools/decide_claims.py --pages from labkit.claims; do not "
            "edit -->\n\n" + _list_table(["Claim", "Verdict", "Evidence", "Ch."], rows,
                                         "36 14 42 8"))


def _notebook_text(path: Path) -> str:
    """Every output text of a reference notebook (plain-text reprs and HTML tables)."""
    nb = json.loads(path.read_text())
    out = []
    for c in nb["cells"]:
        for o in c.get("outputs", []):
            data = o.get("data", {})
            out.append("".join(data.get("text/plain", "")) + "".join(data.get("text/html", "")))
            out.append("".join(o.get("text", "")))
    return "\n".join(out)


def disagreements(decisions: dict | None = None, root: Path | None = None) -> list[str]:
    """Where a page disagrees with the registry's decisions (``decisions``: the stored
    ones by default): the generated ledger, legend and findings must be what the
    decisions give; each chapter's reference notebook must show, for every claim of the
    chapter, its statement and its verdict in the same table row; ``book/claims.md``'s
    own text must hold no verdict word (its verdicts come from the included tables)."""
    import html
    import re

    root = root or DECISIONS.parents[2]
    data = decisions if decisions is not None else load_decisions()
    problems = []
    expected = {"ledger.md": ledger_markdown(data) + "\n",
                "legend.md": legend_markdown() + "\n",
                "findings.md": findings_markdown(data) + "\n"}
    for name, text in expected.items():
        path = root / "book" / "generated" / name
        if not path.exists() or path.read_text() != text:
            problems.append(f"book/generated/{name} differs from the registry's decisions")
    for chapter in sorted({ch for c in REGISTRY for ch in c.chapter}):
        claims = [c for c in REGISTRY if chapter in c.chapter]
        if all(c.tests for c in claims):
            continue  # decided by tests alone: the chapter prints no verdict table
        found = sorted((root / "tests" / "notebooks").glob(f"{chapter:02d}_*.ipynb"))
        if not found:
            problems.append(f"chapter {chapter}: no reference notebook")
            continue
        text = _notebook_text(found[0])
        for c in claims:
            row = re.search(re.escape(html.escape(c.statement, quote=False)) + r"</th>\s*"
                            r"<td>([^<]*)</td>", text)
            if row is None:
                problems.append(f"chapter {chapter}: claim {c.key!r} is not in its verdict "
                                "table")
            elif html.unescape(row.group(1)) != data[c.key]["verdict"]:
                problems.append(f"chapter {chapter}: claim {c.key!r} reads "
                                f"{html.unescape(row.group(1))!r}, the registry says "
                                f"{data[c.key]['verdict']!r}")
    own = (root / "book" / "claims.md").read_text()
    own = re.sub(r"```\{include\}.*?```", "", own, flags=re.S)
    for word in VERDICTS:
        if re.search(rf"\b{re.escape(word)}\b", own.replace("*", "")):
            problems.append(f"book/claims.md: hand-written verdict word {word!r}")
    return problems
