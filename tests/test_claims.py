"""The claims registry (labkit.claims, issue 36): the vocabulary and the robustness rule,
the decision rules on data with a known answer, the pages generated from the registry,
and the ranges of every printed interval."""

from __future__ import annotations

import copy
import json
import re

import numpy as np
import pandas as pd
import pytest

import labkit as lk
from labkit import claims
from labkit.claims import evidence, registry, tested
from labkit.claims.vocabulary import VERDICTS, check, combine

# --- the vocabulary and the sweep -------------------------------------------------------

def test_vocabulary_is_the_design_list():
    assert list(VERDICTS) == ["reproduced", "consistent (weak test)", "partly",
                              "not decided", "not reproduced", "not testable here",
                              "not attempted at this scale"]
    with pytest.raises(ValueError, match="verdict: 'confirmed' is not in the vocabulary"):
        check("confirmed")


def test_a_verdict_stands_only_if_every_setting_gives_it():
    assert combine({"a": "reproduced", "b": "reproduced"}) == ("reproduced", "")
    verdict, varied = combine({"tol 1": "reproduced", "tol 2": "not reproduced",
                               "tol 3": "reproduced"})
    assert verdict == "not decided"
    assert varied == "reproduced at tol 1, tol 3; not reproduced at tol 2"
    with pytest.raises(ValueError, match="per_setting"):
        combine({})


def _claim(outcomes, **kw):
    settings = [(f"s{i}", {"i": i}) for i in range(len(outcomes))]
    return registry.Claim("k", "statement", "source", "TEXT", (1,), "theory", "pre",
                          "rule", "sweep", lambda s: outcomes[s["i"]], lambda: settings,
                          **kw)


def test_a_failing_precondition_makes_the_claim_not_testable():
    out = registry.Outcome
    d = _claim([out("reproduced", "m0", False, "no regime"),
                out("reproduced", "m1")]).decide()
    assert d.verdict == "not testable here" and d.evidence.startswith("no regime")
    # failing elsewhere only leaves that setting out of the vote
    d = _claim([out("reproduced", "m0"), out("not reproduced", "m1", False, "x")]).decide()
    assert d.verdict == "reproduced"
    assert d.tally == "reproduced at 1 of 2 settings (1 outside the precondition)"
    with pytest.raises(ValueError, match="group"):
        registry.Claim("k", "s", "src", "TEXT", (1,), "nowhere", "p", "r", "w",
                       lambda s: None)


# --- the growth-law rule on data with a known law ---------------------------------------

def _runs(law, seeds=10, rng_seed=0):
    rng = np.random.default_rng(rng_seed)
    rows = [{"scaling": "theorem", "d": 10, "N": 4096, "m": m, "seed": s,
             "T_dense": law(m) * (1 + 0.03 * rng.normal()), "dense_censored": False}
            for m in (32, 64, 128, 256, 512, 1024) for s in range(seeds)]
    return pd.DataFrame(rows)


@pytest.mark.parametrize("law, verdict", [
    (lambda m: 100 + 50 * np.log(m), "reproduced"),
    (lambda m: 3.0 * m, "not reproduced"),
])
def test_log_law_rule_on_a_known_law(law, verdict):
    row = lk.growth_table(_runs(law), n_boot=0).iloc[0].to_dict()
    assert evidence.log_law(row)[0] == verdict


def test_log_law_rule_reads_intervals_as_the_design_says():
    def rule(lo, hi, lack=np.nan):
        return evidence.log_law({"p": (lo + hi) / 2, "p_lo": lo, "p_hi": hi,
                                 "lack_of_fit": lack})[0]
    assert rule(-0.4, 0.6) == "reproduced"
    assert rule(-0.4, 1.6) == "consistent (weak test)"
    assert rule(0.2, 1.6) == "not reproduced"
    assert rule(-1.6, -0.2) == "not reproduced"
    assert rule(-0.4, 0.6, lack=0.01) == "not decided"  # the law's shape fails
    assert evidence.log_law({"p": np.nan, "note": "too few"})[0] == "not decided"


def test_grid_read_red_lines_enter_the_fit_as_intervals():
    """chapter 6's red line carries the previous checkpoint; the fit treats each value as
    (t_prev, t_red], so three seeds tied on the grid are not read as no spread."""
    red = pd.DataFrame({"N": 800, "size": np.repeat([500, 1000, 2500, 5000], 3),
                        "seed": np.tile([0, 1, 2], 4),
                        "t_red": np.repeat([500.0, 1000.0, 1500.0, 3000.0], 3),
                        "t_prev": np.repeat([250.0, 500.0, 1000.0, 2000.0], 3)})
    interval = lk.red_line_growth(red, horizon=8000, n_boot=0).iloc[0]
    exact = lk.red_line_growth(red.drop(columns="t_prev"), horizon=8000, n_boot=0).iloc[0]
    assert interval["p_hi"] - interval["p_lo"] > exact["p_hi"] - exact["p_lo"]
    assert np.isfinite(interval["lack_of_fit"])


# --- preconditions ----------------------------------------------------------------------

def _rewind(effect):
    return pd.DataFrame([{"t": t, "minus_step0": m, "low": lo, "high": hi}
                         for t, (m, lo, hi) in effect.items()])


def test_paul_et_al_is_not_testable_where_imp_works_from_step_0(monkeypatch):
    from labkit.experiments.diet import analysis

    monkeypatch.setattr(claims.diet, "_step0_barrier", lambda: "")
    monkeypatch.setattr(claims.diet, "_fields", lambda: {"steps": 300})
    # step 0 as good as every later point: the precondition fails
    monkeypatch.setattr(analysis, "rewind_effect",
                        lambda t, tol: _rewind({10: (-0.001, -0.01, 0.008)}))
    monkeypatch.setattr(claims.diet, "archive", lambda name: (None, None))
    assert not claims.diet.rewind({"tol": 0.01}).precondition_holds
    # step 0 clearly worse, an early point already better: the claim is tested, and holds
    monkeypatch.setattr(analysis, "rewind_effect", lambda t, tol: _rewind(
        {10: (-0.05, -0.08, -0.02), 100: (-0.06, -0.09, -0.03)}))
    out = claims.diet.rewind({"tol": 0.01})
    assert out.precondition_holds and out.verdict == "reproduced"
    # only a late point is better: partly
    monkeypatch.setattr(analysis, "rewind_effect", lambda t, tol: _rewind(
        {10: (0.0, -0.01, 0.01), 100: (-0.06, -0.09, -0.03)}))
    assert claims.diet.rewind({"tol": 0.01}).verdict == "partly"


def test_a_test_decided_claim_names_tests_that_exist():
    assert tested.missing_tests(["tests/test_claims.py::test_vocabulary_is_the_design_list"]
                                ) == []
    bogus = ["tests/test_claims.py::test_no_such_thing", "tests/nowhere.py::test_x"]
    assert tested.missing_tests(bogus) == bogus
    measure = tested.decide_tested("checks", tests=tuple(bogus))
    with pytest.raises(ValueError, match="name no test in the suite"):
        measure({})
    for c in claims.REGISTRY:
        assert tested.missing_tests(c.tests) == [], c.key


# --- intervals stay in their range ------------------------------------------------------

def test_t_interval_stays_inside_the_range_and_keeps_the_mean():
    mean, lo, hi = lk.t_interval([0.97, 1.0, 1.0], bounds=(0.0, 1.0))
    _, raw_lo, raw_hi = lk.t_interval([0.97, 1.0, 1.0])
    assert raw_hi > 1 and hi == 1.0 and lo == raw_lo and lo <= mean <= hi
    with pytest.raises(ValueError, match="outside the quantity's range"):
        lk.t_interval([-0.1, 0.5], bounds=(0.0, 1.0))


def test_a_rule_that_fired_on_some_seeds_reports_median_and_range():
    from labkit.experiments.stopping.analysis import stop_summary

    stop = pd.DataFrame({"testbed": "digits", "setting": "s", "label": "r",
                         "fired": [True, False, False], "saved": [0.9, 0.0, 0.0],
                         "cost": [0.05, 0.0, 0.0]})
    row = stop_summary(stop).iloc[0]
    assert row["stat"] == "median, range"
    assert (row["saved"], row["saved_lo"], row["saved_hi"]) == (0.0, 0.0, 0.9)
    every = stop.assign(fired=True, saved=[0.99, 0.97, 1.0])
    row = stop_summary(every).iloc[0]
    assert row["stat"] == "mean, t-interval" and row["saved_hi"] <= 1.0


# every interval a decision prints: "<v> <unit> [lo, hi]" with the unit's range
RANGES = {"points": (-100.0, 100.0), "Spearman": (-1.0, 1.0)}


NUM = r"([+-]?[\d.]+|[+-]?inf)"
PATTERNS = {"points": [NUM + r" points \[" + NUM + ", " + NUM + r"\]",
                       NUM + r" \[" + NUM + ", " + NUM + r"\] points"],
            "Spearman": [r"Spearman " + NUM + r" \[" + NUM + ", " + NUM + r"\]"],
            "p": [r"p = " + NUM + r" \[" + NUM + ", " + NUM + r"\]"]}
RANGES["p"] = (-np.inf, np.inf)


def _printed_intervals(text: str):
    for unit, patterns in PATTERNS.items():
        for pattern in patterns:
            for m in re.finditer(pattern, text):
                yield (unit, *map(float, m.groups()))


def test_no_printed_interval_leaves_its_range():
    data = claims.load_decisions()
    seen = 0
    for key, d in data.items():
        for row in d["settings"]:
            for unit, v, lo, hi in _printed_intervals(row["measured"]):
                a, b = RANGES[unit]
                assert a <= lo <= v <= hi <= b, (key, row["setting"], row["measured"])
                seen += 1
    assert seen > 80
    # and a wrong interval is caught
    assert list(_printed_intervals("x: +0.5 points [-0.4, +1.2]")) == [
        ("points", 0.5, -0.4, 1.2)]
    unit, v, lo, hi = next(_printed_intervals("saved 98.9 points [94.1, 103.7]"))
    assert not hi <= RANGES[unit][1] or not lo <= v  # a t-interval over a mixture fails


@pytest.mark.parametrize("name", ["prune_init_cpu", "diet_cpu", "stopping_cpu",
                                  "fig1_mnist1d_cpu"])
def test_the_chapters_interval_tables_stay_in_range(name):
    """The tables the chapters print from each archive, every interval inside its range
    (errors, fractions and savings in [0, 1], iterations >= 0)."""
    table, info = lk.load_archive(name)
    frames = []
    if name == "prune_init_cpu":
        frames += [(lk.threshold_summary(lk.prune_thresholds(table, 0.05)), 0, 1),
                   (lk.bridge_summary(table), 0, 1)]
    elif name == "diet_cpu":
        f = info["fields"]
        frames += [(lk.imp_summary(table), 0, 1),
                   (lk.gfs_red_summary(lk.gfs_red_line(table, f["gfs_plateau"][0],
                                                       f["gfs_tolerance"])), 0, np.inf)]
    elif name == "stopping_cpu":
        s = lk.stop_summary(lk.rule_stops(table, lk.config.get(name)))
        frames += [(s.rename(columns={"saved_lo": "low", "saved_hi": "high"}), 0, 1)]
    else:
        f = info["fields"]
        red = lk.red_line(table, plateau_from=f["plateau"][0], tolerance=0.02)
        frames += [(lk.red_line_summary(red), 0, np.inf)]
    for frame, a, b in frames:
        lo, hi = frame["low"].dropna(), frame["high"].dropna()
        assert len(lo) and (lo >= a).all() and (hi <= b).all()


# --- one source for every verdict -------------------------------------------------------

def test_pages_agree_with_the_registry():
    assert claims.disagreements() == []


def test_an_edited_verdict_is_caught():
    data = copy.deepcopy(claims.load_decisions())
    data["fig1-log"]["verdict"] = "reproduced"
    problems = claims.disagreements(data)
    assert any("ledger.md" in p for p in problems)
    assert any("chapter 6: claim 'fig1-log' reads 'not decided'" in p for p in problems)


def test_a_hand_written_verdict_in_the_ledger_is_caught(tmp_path):
    root = claims.DECISIONS.parents[2]
    for sub in ("book", "tests/notebooks"):
        (tmp_path / sub).mkdir(parents=True)
    import shutil

    shutil.copytree(root / "book" / "generated", tmp_path / "book" / "generated")
    for nb in (root / "tests" / "notebooks").glob("*.ipynb"):
        shutil.copy(nb, tmp_path / "tests" / "notebooks" / nb.name)
    text = (root / "book" / "claims.md").read_text()
    (tmp_path / "book" / "claims.md").write_text(text)
    assert claims.disagreements(root=tmp_path) == []
    (tmp_path / "book" / "claims.md").write_text(text + "\nTable 1 is partly done.\n")
    assert claims.disagreements(root=tmp_path) == [
        "book/claims.md: hand-written verdict word 'partly'"]


def test_registry_lists_every_claim_with_its_rule():
    t = lk.claims.table()
    assert len(t) == len(claims.REGISTRY) and t["verdict"].isin(VERDICTS).all()
    assert (t["precondition"].str.len() > 0).all() and (t["rule"].str.len() > 0).all()
    assert "fig1-log" in set(t["key"]) and "paul-rewind" in set(t["key"])
    with pytest.raises(KeyError, match="no claim 'nope'"):
        claims.get("nope")


def test_stored_decisions_are_what_the_archives_give():
    """Recompute every decision from the archived runs (about two minutes) and compare
    with the stored ones the pages were made from."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fresh = claims.decide_all()
    stored = claims.load_decisions()
    fresh = json.loads(json.dumps(fresh, default=float))
    for key in stored:
        assert fresh[key] == stored[key], key


# --- numbers in verdict and summary prose are computed ------------------------------------

SECTIONS = ("Verdicts", "Summary", "What the runs showed")


def typed_numbers(source: str) -> list[tuple[int, str]]:
    """Decimals and percentages typed in the markdown of a chapter's verdict and summary
    sections (math, code and glue roles left out; "95%" is a confidence level, not a
    result)."""
    hits, section = [], None
    for i, line in enumerate(source.splitlines(), 1):
        m = re.match(r"# ## (.*)", line)
        if m:
            section = m.group(1).strip()
            continue
        if section not in SECTIONS or not line.startswith("# ") or line.startswith("# %%"):
            continue
        text = re.sub(r"\{[a-z:]+\}`[^`]*`", "", line)
        text = re.sub(r"`[^`]*`", "", re.sub(r"\$[^$]*\$", "", text))
        hits += [(i, n) for n in re.findall(r"\d+\.\d+|\d[\d,]*%", text) if n != "95%"]
    return hits


def test_verdict_and_summary_sections_type_no_numbers():
    root = claims.DECISIONS.parents[2]
    found = {p.name: typed_numbers(p.read_text())
             for p in sorted((root / "chapters").glob("*.py"))}
    assert {k: v for k, v in found.items() if v} == {}
    # the scan finds a typed result, and leaves glued ones alone
    page = "# ## Summary\n# it saves 96.9% [94.1, 99.0] at {glue:text}`saved` ($p=0.5$)\n"
    assert typed_numbers(page) == [(2, "96.9"), (2, "94.1"), (2, "99.0")]
