"""The verdict vocabulary, defined once (book design, section 11), and the robustness rule
that turns a verdict per setting into the claim's verdict.

Every verdict a reader sees, in a chapter's verdict table, in the claims ledger and in the
intro's findings, is one of :data:`VERDICTS`; :func:`combine` is the only place a sweep's
verdicts become one.
"""

from __future__ import annotations

# word -> what it means (the ledger's legend prints this table)
VERDICTS: dict[str, str] = {
    "reproduced": "the decision rule gives the claim at every setting of its sweep, "
                  "inside the claim's regime",
    "consistent (weak test)": "the evidence agrees with the claim at every setting of the "
                              "sweep, but could not have told it from its main alternative "
                              "(e.g. an interval holding both the claimed and the "
                              "competing value)",
    "partly": "the rule gives part of the claim (named in the evidence) at every setting; "
              "the other part does not show",
    "not decided": "the rule's verdict changes across the sweep (the settings where it "
                   "flips are named), or the intervals hold both outcomes",
    "not reproduced": "inside the claim's regime the rule gives the opposite at every "
                      "setting of the sweep",
    "not testable here": "the claim's precondition fails on the book's testbed (the reason "
                         "is given): the runs cannot speak to it",
    "not attempted at this scale": "the claim needs data or hardware the book's runs did "
                                   "not have",
}


def check(verdict: str) -> str:
    """``verdict`` if it is a word of the vocabulary; a clear error otherwise."""
    if verdict not in VERDICTS:
        raise ValueError(f"verdict: {verdict!r} is not in the vocabulary; allowed: "
                         f"{', '.join(VERDICTS)}")
    return verdict


def combine(per_setting: dict[str, str]) -> tuple[str, str]:
    """The claim's verdict from its rule's verdict at each setting of the sweep (setting
    label -> verdict): the common verdict if every setting gives the same one, otherwise
    *not decided*. Returns ``(verdict, how it varied)``; the second is empty when the
    sweep agreed, else names the settings behind each verdict."""
    if not per_setting:
        raise ValueError("per_setting: a sweep needs at least one setting")
    for v in per_setting.values():
        check(v)
    words = list(dict.fromkeys(per_setting.values()))
    if len(words) == 1:
        return words[0], ""
    parts = []
    for w in words:
        where = [s for s, v in per_setting.items() if v == w]
        shown = ", ".join(where[:4]) + (f" and {len(where) - 4} more" if len(where) > 4 else "")
        parts.append(f"{w} at {shown}")
    return "not decided", "; ".join(parts)
