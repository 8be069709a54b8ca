"""A claim as data (book design, section 11): its statement as the source states it, the
source and how the book knows it (TEXT/DERIVED/INFERRED), the chapter, the
**precondition** (the regime in which the evidence can test it at all), the **decision
rule**, and the **robustness sweep** (the settings the source does not fix, along which the
evidence is recomputed). :meth:`Claim.decide` runs the precondition and the rule at every
setting of the sweep and combines them with :func:`labkit.claims.vocabulary.combine`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import pandas as pd

from labkit.claims.vocabulary import check, combine

GROUPS = {
    "setting": "Setting and pruning algorithm (Sections 1-2)",
    "theory": "Theory (Section 3 and Appendices A-B)",
    "experiments": "Experiments (Section 5 and Appendices C-E)",
    "prose": "Claims stated in the prose",
    "neighbours": "Neighbouring results (chapters 9-10)",
    "beyond": "Beyond the paper (chapter 11)",
}


@dataclass(frozen=True)
class Outcome:
    """The rule's answer at one setting: a verdict, the measured numbers as a sentence
    (formatted from the computation), and whether the precondition held there."""

    verdict: str
    measured: str
    precondition_holds: bool = True
    reason: str = ""


@dataclass(frozen=True)
class Decision:
    """A claim's verdict with its evidence: the verdict over the sweep, the sentence at the
    base setting, how the verdict varied (empty if it did not), every setting's outcome,
    and the count of each answer over the sweep."""

    verdict: str
    evidence: str
    varied: str
    settings: pd.DataFrame
    tally: str = ""

    def __post_init__(self):
        check(self.verdict)


@dataclass(frozen=True)
class Claim:
    """One claim of the paper, of a neighbouring paper, or of the book.

    ``measure(setting) -> Outcome`` computes the evidence at one setting of ``sweep``
    (a list of ``(label, setting)``; the first is the base setting, the one the chapter
    shows). A claim decided by tests alone has ``tests`` (``"file::test"`` names that check
    it) and a ``measure`` that reports them."""

    key: str
    statement: str
    source: str
    status: str
    chapter: tuple[int, ...]
    group: str
    precondition: str
    rule: str
    sweep_text: str
    measure: Callable[[dict], Outcome]
    sweep: Callable[[], list[tuple[str, dict]]] = field(default=lambda: [("as run", {})])
    labkit: str = ""
    tests: tuple[str, ...] = ()
    multiple: str = ""  # how a family of tests is corrected, stated beside the verdict
    headline: bool = False  # shown in the intro's "What the book found"

    def __post_init__(self):
        if self.group not in GROUPS:
            raise ValueError(f"group: {self.group!r} is not one of {', '.join(GROUPS)}")

    def decide(self) -> Decision:
        """Precondition and rule at every setting of the sweep; the verdict by
        :func:`combine`. A precondition failing at the base setting makes the claim *not
        testable here*; failing at some other setting leaves that setting out of the vote
        (it is listed in the settings table)."""
        rows, votes = [], {}
        settings = self.sweep()
        for label, setting in settings:
            out = self.measure(setting)
            check(out.verdict)
            rows.append({"setting": label, "precondition": out.precondition_holds,
                         "verdict": out.verdict, "measured": out.measured,
                         "reason": out.reason})
            if out.precondition_holds:
                votes[label] = out.verdict
        table = pd.DataFrame(rows)
        base = rows[0]
        tally = _tally(votes, len(rows))
        if not base["precondition"]:
            return Decision("not testable here", f"{base['reason']} ({base['measured']})",
                            "", table, tally)
        verdict, varied = combine(votes)
        return Decision(verdict, base["measured"], varied, table, tally)


def _tally(votes: dict[str, str], n: int) -> str:
    """How the rule answered over the sweep: ``"reproduced at 3, not reproduced at 1 of 4
    settings"`` (settings whose precondition failed are counted apart)."""
    if not votes:
        return f"the precondition fails at all {n} settings"
    counts: dict[str, int] = {}
    for v in votes.values():
        counts[v] = counts.get(v, 0) + 1
    text = ", ".join(f"{v} at {k}" for v, k in counts.items()) + f" of {n} settings"
    if n > len(votes):
        text += f" ({n - len(votes)} outside the precondition)"
    return text
