"""Chapter 11's analysis: the stopping rules applied offline to the stored trajectories, when
each fired, what it saved and cost, which rule is reliable where, the cost of a check, and
chapter 4's archive replayed.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd

from labkit.algorithms.growth import t_interval
from labkit.experiments.stopping import rules as stopping
from labkit.experiments.stopping.cell import METRIC, _ints


def chapter4_table(name: str = "threshold_cpu", scaling: str = "theorem") -> pd.DataFrame:
    """Chapter 4's archived run as stored trajectories in this module's schema: its dense
    loss, its GFS loss at its ``k`` and its selection at every checkpoint (Theorem 2's step
    by default, the theorem's regime), no pruning term and no mask (it stored neither), so
    only the stability rule is replayed on it. Every cell is read with its own stored key
    (the code it was computed by) and its checksum verified."""
    import json

    from labkit.infra.runner import ARCHIVE
    from labkit.infra.store import ResultStore

    store, rows = ResultStore(ARCHIVE / name / "cells"), []
    for path in sorted((ARCHIVE / name / "cells" / name).glob("*.json")):
        params = json.loads(path.read_text())["params"]
        payload = store.load(name, params)
        if payload is None:
            raise ValueError(f"{path}: fails its checksum; the archive {name!r} is damaged")
        if params["scaling"] != scaling:
            continue
        setting = f"N={params['N']} m={params['m']} d={params['d']}"
        for r in payload["rows"]:
            rows.append({"testbed": "chapter4", "setting": setting,
                         "horizon": params["steps"], "t": r["t"], "seed": r["seed"],
                         "dense": r["dense_loss"], "outcome": r[f"pruned_{params['k']}"],
                         "pruning_term": np.nan, "D_ratio": np.nan,
                         "selection": _ints(r["selection"]), "mask": "", "units": 0,
                         "check_s": np.nan})
    if not rows:
        raise ValueError(f"scaling: no cell of {name!r} with scaling {scaling!r}")
    df = pd.DataFrame(rows)
    order = df["setting"].str.extract(r"N=(\d+) m=(\d+) d=(\d+)").astype(int)
    df = df.assign(_N=order[0], _m=order[1], _d=order[2])
    return (df.sort_values(["_N", "_d", "_m", "seed", "t"], kind="stable")
            .drop(columns=["_N", "_m", "_d"]).reset_index(drop=True))


def observations(group: pd.DataFrame) -> list[dict]:
    """One trajectory's rows (sorted by ``t``) as the observations the rules read."""
    group = group.sort_values("t")
    return [{"dense": r.dense, "pruning_term": r.pruning_term,
             "selection": [int(v) for v in str(r.selection).split()],
             "mask": [int(v) for v in str(r.mask).split()], "units": int(r.units)}
            for r in group.itertuples()]


def rule_grid(cfg) -> list:
    """Every rule of the evaluation: the bound at each ``bound_fractions``, stability (as
    a multiset where the testbed's GFS has replacement, else as a set) and Early-Bird at
    each ``tols``."""
    return ([stopping.BoundRule(c) for c in cfg.bound_fractions]
            + [stopping.StabilityRule(tol, cfg.window) for tol in cfg.tols]
            + [stopping.EarlyBirdRule(tol, cfg.window, cfg.eb_keep) for tol in cfg.tols])


def rule_stops(table: pd.DataFrame, cfg) -> pd.DataFrame:
    """Where every rule stops on every stored trajectory: one row per (testbed, setting,
    seed, rule) with the stop ``t_stop`` (the horizon when the rule never fires), the
    fraction of pre-training saved and the cost (accuracy points lost, or the relative
    increase of the pruned loss), against pruning at the horizon."""
    rows = []
    for (bed, setting, seed), g in table.groupby(["testbed", "setting", "seed"], sort=False):
        g = g.sort_values("t")
        obs, t = observations(g), g["t"].to_numpy()
        outcome, horizon = g["outcome"].to_numpy(), int(g["horizon"].iloc[0])
        end = outcome[-1]
        has_bound = bool(np.isfinite(g["pruning_term"].to_numpy(dtype=float)).all())
        has_mask = bool(g["mask"].astype(str).str.strip().ne("").all()
                        and g["mask"].notna().all())
        for rule in rule_grid(cfg):
            # Lemma 1 is a two-layer result: no bound for the deep networks; a stored run
            # without masks (chapter 4's archive) has no Early-Bird rule
            if (rule.name == "bound" and not has_bound) or (
                    rule.name == "early_bird" and not has_mask):
                continue
            if rule.name == "stability" and bed in ("digits", "mnist1d"):
                rule = dataclasses.replace(rule, multiset=False)  # k distinct neurons
            j = stopping.stop_index(rule, obs)
            fired = j is not None
            j = len(t) - 1 if j is None else j
            cost = (end - outcome[j] if METRIC[bed] == "accuracy"
                    else (outcome[j] - end) / end)
            rows.append({"testbed": bed, "setting": setting, "seed": seed,
                         "rule": rule.name, "label": rule.label, "fired": fired,
                         "t_stop": int(t[j]), "saved": 1 - t[j] / horizon, "cost": cost})
    return pd.DataFrame(rows)


def stop_summary(stop: pd.DataFrame, level: float = 0.95) -> pd.DataFrame:
    """Per testbed, setting and rule: how many seeds the rule fired on, and the fraction
    saved and the cost over seeds. Where it fired on every seed or on none, each is the
    mean with its ``t`` interval, kept inside the quantity's range (saved in ``[0, 1]``;
    cost in accuracy points in ``[-1, 1]``, or a relative loss change ``>= -1``); where it
    fired on some seeds only, a mean over a mixture of stops and horizons describes
    neither, so each is the **median and the range** (``stat`` says which)."""
    rows = []
    for (bed, setting, label), g in stop.groupby(["testbed", "setting", "label"], sort=False):
        fired = int(g["fired"].sum())
        cost_range = (-1.0, 1.0) if METRIC[bed] == "accuracy" else (-1.0, np.inf)
        if 0 < fired < len(g):
            s = (g["saved"].median(), g["saved"].min(), g["saved"].max())
            c = (g["cost"].median(), g["cost"].min(), g["cost"].max())
            stat = "median, range"
        else:
            s = t_interval(g["saved"], level, bounds=(0.0, 1.0))
            c = t_interval(g["cost"], level, bounds=cost_range)
            stat = "mean, t-interval"
        rows.append({"testbed": bed, "setting": setting, "rule": label,
                     "fired": f"{fired}/{len(g)}", "stat": stat,
                     "saved": s[0], "saved_lo": s[1], "saved_hi": s[2],
                     "cost": c[0], "cost_lo": c[1], "cost_hi": c[2]})
    return pd.DataFrame(rows)


def stop_view(summary: pd.DataFrame) -> pd.DataFrame:
    """:func:`stop_summary` for reading: saved and cost in percent, each ``mean [lo, hi]``
    (95% t-interval), or ``median (lo to hi)`` (the range) where the rule fired on some
    seeds only (cost: accuracy points, or the relative rise of the pruned loss)."""
    def num(v):  # a value that rounds to zero prints as 0.0, not -0.0
        text = f"{v:.1f}"
        return "0.0" if text == "-0.0" else text

    def cell(row, name):
        lo, mid, hi = (100 * row[f"{name}_lo"], 100 * row[name], 100 * row[f"{name}_hi"])
        if row.get("stat") == "median, range":
            return f"median {num(mid)} ({num(lo)} to {num(hi)})"
        return f"{num(mid)} [{num(lo)}, {num(hi)}]"

    out = summary[["testbed", "setting", "rule", "fired"]].copy()
    out["saved %"] = summary.apply(cell, axis=1, name="saved")
    out["cost %"] = summary.apply(cell, axis=1, name="cost")
    return out.set_index(["testbed", "setting", "rule"])


def reliability(summary: pd.DataFrame, cfg) -> pd.DataFrame:
    """Which rule is reliable where: a rule is *safe* on a setting when the upper end of
    its cost interval is within the testbed's tolerance (``acc_tol`` accuracy points,
    ``loss_tol`` relative pruned loss), and *useful* when it is safe and saves at least
    ``min_saved`` of the pre-training (lower end of that interval)."""
    tol = summary["testbed"].map(lambda b: cfg.loss_tol if METRIC[b] == "loss"
                                 else cfg.acc_tol)
    out = summary[["testbed", "setting", "rule"]].copy()
    out["safe"] = summary["cost_hi"] <= tol
    out["useful"] = out["safe"] & (summary["saved_lo"] >= cfg.min_saved)
    return out


def reliability_view(flags: pd.DataFrame) -> pd.DataFrame:
    """:func:`reliability` per rule and testbed, one cell ``useful / safe / settings``:
    on how many of the testbed's settings the rule was useful, safe, and how many it was
    run on."""
    g = flags.groupby(["rule", "testbed"], sort=False)
    cells = g.apply(lambda h: f"{int(h['useful'].sum())} / {int(h['safe'].sum())} / "
                              f"{len(h)}", include_groups=False)
    view = cells.unstack("testbed").fillna("-")
    view.columns.name = None
    return view[[b for b in dict.fromkeys(flags["testbed"])]]


def check_costs(table: pd.DataFrame) -> pd.DataFrame:
    """The monitor's own cost per setting: the median milliseconds of one check (an
    observation with GFS) and the largest ``D_hat / D`` gap of the two-sweep diameter
    (its smallest ratio; NaN on the channel networks, which have no bound rule)."""
    return table.groupby(["testbed", "setting"], sort=False).agg(
        check_ms=("check_s", lambda s: 1e3 * float(np.median(s))),
        D_ratio_min=("D_ratio", "min")).reset_index()
