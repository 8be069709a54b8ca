"""Chapter 11's claims (stopping rules for pre-training: the book's own and You et al.'s
Early-Bird), decided on the archived run ``stopping_cpu`` (every testbed, 5 seeds) and,
for the stability rule, on chapter 4's archive, over each rule's own parameter and a
doubled cost tolerance."""

from __future__ import annotations

import dataclasses
from functools import cache

import pandas as pd

from labkit.claims.evidence import archive, outcome
from labkit.claims.registry import Claim

NAME = "stopping_cpu"


def _cfg():
    """The archived run's preset (the same in both modes; ``labkit.config`` sits above
    this layer, so the experiment's own table is read)."""
    from labkit.experiments.stopping.config import PRESETS

    return PRESETS[NAME]["full"]


@cache
def summary(with_chapter4: bool) -> pd.DataFrame:
    from labkit.experiments.stopping.analysis import chapter4_table, rule_stops, stop_summary

    frames = [stop_summary(rule_stops(archive(NAME)[0], _cfg()))]
    if with_chapter4:
        frames.append(stop_summary(rule_stops(chapter4_table(), _cfg())))
    return pd.concat(frames, ignore_index=True)


def _settings(prefix: str, values) -> list[tuple[str, dict]]:
    return [(f"{prefix}={v:g}, cost tolerance x{k}", {"rule": f"{prefix}={v:g}", "scale": k})
            for k in (1, 2) for v in values]


def _flags(s: dict, with_chapter4: bool = False) -> pd.DataFrame:
    from labkit.experiments.stopping.analysis import reliability

    cfg = _cfg()
    cfg = dataclasses.replace(cfg, acc_tol=cfg.acc_tol * s["scale"],
                              loss_tol=cfg.loss_tol * s["scale"])
    sm = summary(with_chapter4)
    sm = sm[sm["rule"] == s["rule"]]
    return sm.join(reliability(sm, cfg)[["safe", "useful"]])


def bound_rule(s: dict):
    """The bound rule on the two-layer testbeds: useful (safe and saving at least a tenth)
    on every setting -> reproduced; safe on none -> not reproduced; otherwise partly."""
    f = _flags(s)
    text = (f"{s['rule']}: safe on {int(f['safe'].sum())} of {len(f)} settings, useful on "
            f"{int(f['useful'].sum())}")
    verdict = ("reproduced" if f["useful"].all() else "not reproduced"
               if not f["safe"].any() else "partly")
    return outcome(verdict, text)


def stability(s: dict):
    """Precondition: the rule fires on every seed of at least one setting (otherwise it
    says nothing about safety). Then: safe on every setting where it fired on every seed
    -> reproduced; on none -> not reproduced; otherwise partly."""
    f = _flags(s, with_chapter4=True)
    fired_all = f["fired"].map(lambda x: x.split("/")[0] == x.split("/")[1])
    text = (f"{s['rule']}: fires on every seed of {int(fired_all.sum())} of {len(f)} "
            f"settings, safe on {int(f.loc[fired_all, 'safe'].sum())} of those, useful on "
            f"{int(f.loc[fired_all, 'useful'].sum())}")
    if not fired_all.any():
        return outcome("not decided", text, holds=False,
                       reason="the rule fires on every seed of no setting")
    safe = f.loc[fired_all, "safe"]
    verdict = "reproduced" if safe.all() else "not reproduced" if not safe.any() else "partly"
    return outcome(verdict, text)


def early_bird(s: dict):
    """Early-Bird: useful on every setting -> reproduced; on none -> not reproduced;
    otherwise partly."""
    f = _flags(s)
    text = (f"{s['rule']}: useful on {int(f['useful'].sum())} of {len(f)} settings, safe "
            f"on {int(f['safe'].sum())}")
    verdict = ("reproduced" if f["useful"].all() else "not reproduced"
               if not f["useful"].any() else "partly")
    return outcome(verdict, text)


CLAIMS = [
    Claim("stop-bound", "(Ours) Stopping when the dense loss falls below a fraction c of "
          "Lemma 1's pruning term saves pre-training without hurting the pruned network",
          "chapter 11 (the paper's open problem)", "DERIVED", (11,), "beyond",
          "two-layer testbeds (Lemma 1 is a two-layer result)",
          "useful (cost within tolerance, at least a tenth saved) on every setting "
          "(reproduced); safe on none (not reproduced); otherwise partly",
          "c = 0.1, 0.3, 1; cost tolerance as set and doubled",
          lambda s: bound_rule(s),
          lambda: _settings("bound c", _cfg().bound_fractions),
          labkit="`lk.BoundRule`, `lk.rule_stops`"),
    Claim("stop-stability", "(Ours) Stopping when GFS's selection stops changing is safe",
          "chapter 11", "DERIVED", (11,), "beyond",
          "the rule fires on every seed of at least one setting",
          "safe on every setting where it fired on every seed (reproduced), on none (not "
          "reproduced), otherwise partly",
          "tau = 0.05, 0.1, 0.2; cost tolerance as set and doubled; the archived testbeds "
          "and chapter 4's archive",
          lambda s: stability(s),
          lambda: _settings("stability tol", _cfg().tols),
          labkit="`lk.StabilityRule`, `lk.chapter4_trajectories`"),
    Claim("stop-early-bird", "You et al.: Early-Bird's mask distance finds the ticket early "
          "at little cost", "You et al. (2020)", "TEXT", (11,), "beyond",
          "testbeds with a mask (every archived testbed)",
          "useful on every setting (reproduced), on none (not reproduced), otherwise partly",
          "tau = 0.05, 0.1, 0.2; cost tolerance as set and doubled",
          lambda s: early_bird(s),
          lambda: _settings("Early-Bird tol", _cfg().tols),
          labkit="`lk.EarlyBirdRule`, `lk.rule_stops`"),
]
