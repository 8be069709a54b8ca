"""Chapter 11's experiment: pre-training trajectories on every testbed of the book, with
what each stopping rule (:mod:`labkit.stopping`) reads at every checkpoint and what
pruning there would give, so that the rules are evaluated offline on stored runs.

Testbeds (one cell each, all seeds; the deep one a cell per seed):

- ``teacher_student``: chapter 4's regime (``m <= N/4``, ``k <= N/8``, Theorem 2's step,
  :func:`labkit.pretraining.train_batched`); outcome: the GFS loss at ``k``.
- ``digits`` / ``mnist1d``: chapter 6's protocol (:func:`labkit.fig1._sgd_step`, binary
  cross-entropy, GFS without replacement, ``k <= N/4``); outcome: the GFS subnetwork's
  accuracy on the training sub-dataset (no fine-tuning, as Figure 1).
- ``deep``: chapter 7's stand-in (:func:`labkit.tables.prune_cell`, layer-wise channel GFS
  at the chapter's calibrated tolerance, then its fine-tuning); outcome: the fine-tuned
  test accuracy. Its stability rule reads :func:`labkit.stopping.channel_selection` in the
  last channel group.

A stop at checkpoint ``t`` of a schedule of ``T`` iterations saves ``1 - t/T`` of the
pre-training; its cost is the outcome at ``T`` minus the outcome at ``t`` (accuracy), or
the relative increase of the pruned loss (loss).
"""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from labkit import stopping
from labkit.bounds import diameter
from labkit.growth import t_interval
from labkit.model import TwoLayerNet
from labkit.runner import run_cells, step_bar

NAME = "stopping"
TESTBEDS = ("teacher_student", "digits", "mnist1d", "deep")
METRIC = {"teacher_student": "loss", "chapter4": "loss", "digits": "accuracy",
          "mnist1d": "accuracy", "deep": "accuracy"}
COLUMNS = ["t", "seed", "dense", "outcome", "pruning_term", "D_ratio", "selection", "mask",
           "units", "check_s"]


def _ints(values) -> str:
    return " ".join(str(int(v)) for v in values)


def _net(W, b, activation: str, output: str) -> TwoLayerNet:
    net = TwoLayerNet(W.shape[1], W.shape[0], activation=activation, output=output)
    net.W.data, net.b.data = W.detach().cpu().clone(), b.detach().cpu().clone()
    return net


def _two_layer_row(cfg, net, X, y, k, *, loss, replacement, t, seed) -> dict:
    """One checkpoint of a two-layer network: the rules' observation (timed, the cost of
    a check), the outcome, and how close the two-sweep diameter is to the exact one."""
    import time

    start = time.perf_counter()
    obs = stopping.observe(net, X, y, k, loss=loss, keep=cfg.eb_keep,
                           replacement=replacement)
    check_s = time.perf_counter() - start
    with torch.no_grad():
        Phi = net.neuron_outputs(X)
        counts = torch.bincount(torch.as_tensor(obs["selection"]), minlength=net.N).to(Phi)
        z = counts @ Phi / k
        if loss == "mse":
            outcome = float(((z - y) ** 2).mean())
        else:
            outcome = float(((z > 0).to(y.dtype) == y).double().mean())
        ratio = stopping.sweep_diameter(Phi) / max(diameter(Phi)[0], 1e-300)
    return {"t": t, "seed": seed, "dense": obs["dense"], "outcome": outcome,
            "pruning_term": obs["pruning_term"], "D_ratio": ratio,
            "selection": _ints(obs["selection"]), "mask": _ints(obs["mask"]),
            "units": obs["units"], "check_s": check_s}


def teacher_student_cell(cfg, m: int, device) -> dict:
    from labkit.pretraining import _init_cell, train_batched

    N, d, k = cfg.ts_N, cfg.ts_d, cfg.ts_k
    parts = [_init_cell(cfg, m, N, d, s, torch.float32) for s in cfg.seeds]
    X, y, W, b = (torch.stack([p[i] for p in parts]).to(device) for i in range(4))
    sigma_max = torch.stack([torch.linalg.matrix_norm(torch.tanh(X[j] @ W[j].T).double(),
                                                      ord=2) for j in range(len(parts))])
    rows, t = [], 0
    with step_bar(cfg.ts_steps, f"teacher-student m={m}: pre-training") as bar:
        for target in cfg.checkpoints("teacher_student"):
            if target > t:
                train_batched(X, y, W, b, steps=target - t, lr=cfg.ts_lr, scaling="theorem",
                              sigma_max=sigma_max)
                bar.update(target - t)
            t = target
            for j, seed in enumerate(cfg.seeds):
                rows.append(_two_layer_row(cfg, _net(W[j], b[j], "tanh", "identity"),
                                           X[j].cpu(), y[j].cpu(), k, loss="mse",
                                           replacement=True, t=t, seed=seed))
    return {"rows": rows}


def fig1_cell(cfg, source: str, size: int, device) -> dict:
    from labkit import fig1
    from labkit.data import balanced_subset, binarize

    f1 = cfg.fig1_config(source)
    X_all, labels = fig1.load_data(f1)
    subsets = [balanced_subset(labels, size, seed=s) for s in cfg.seeds]
    X = torch.stack([X_all[i] for i in subsets]).to(device)
    y = torch.stack([binarize(labels[i]) for i in subsets]).to(device)
    nets = [TwoLayerNet(X.shape[2], cfg.fig1_N, activation="relu", output="sigmoid",
                        generator=torch.Generator().manual_seed(s)) for s in cfg.seeds]
    W = torch.stack([n.W.detach() for n in nets]).to(device).requires_grad_()
    b = torch.stack([n.b.detach() for n in nets]).to(device).requires_grad_()
    gens = [torch.Generator().manual_seed(10_000 + s) for s in cfg.seeds]  # as chapter 6
    rows, t = [], 0
    with step_bar(cfg.fig1_steps, f"{source} size={size}: pre-training") as bar:
        for target in cfg.checkpoints(source):
            for it in range(t, target):
                fig1._sgd_step(f1, X, y, W, b, gens, it)
                bar.update()
            t = target
            for j, seed in enumerate(cfg.seeds):
                rows.append(_two_layer_row(cfg, _net(W[j], b[j], "relu", "sigmoid"),
                                           X[j].cpu(), y[j].cpu(), cfg.fig1_k, loss="bce",
                                           replacement=False, t=t, seed=seed))
    return {"rows": rows}


def deep_cell(cfg, arch: str, seed: int, *, root: Path, device) -> dict:
    import time

    from labkit import tables

    deep = cfg.deep_config(seed)
    data = tables._images(deep.source)
    width = dict(zip(deep.archs, deep.widths, strict=True))[arch]
    rows = []
    for t in deep.checkpoints:
        cell = {**deep.cell_params(), "code": tables.deep_code(), "arch": arch,
                "width": width, "size": cfg.deep_size, "target": deep.targets[0],
                "eps": cfg.deep_eps[arch], "t": t}
        out = tables.prune_cell(deep, data, cell, root=root, device=device)
        model = tables.pretrained(deep, data, arch, width, cfg.deep_size, t,
                                  root=root / "checkpoints", device=device)
        s = tables._Setting(deep, data, cfg.deep_size, t, device)
        start = time.perf_counter()
        obs = stopping.observe(model, s.eval_X, s.eval_y, cfg.deep_k, keep=cfg.eb_keep)
        rows.append({"t": t, "seed": seed, "dense": out["dense_acc"],
                     "outcome": out["methods"]["gfs"]["finetuned_acc"],
                     "pruning_term": float("nan"), "D_ratio": float("nan"),
                     "selection": _ints(obs["selection"]), "mask": _ints(obs["mask"]),
                     "units": obs["units"], "check_s": time.perf_counter() - start})
    shutil.rmtree(root / "checkpoints", ignore_errors=True)  # 13 networks a seed: rebuilt
    return {"rows": rows}


def cells(cfg) -> list[dict]:
    out = []
    for bed in cfg.testbeds:
        if bed == "teacher_student":
            out += [{"testbed": bed, "setting": f"m={m}", "m": m} for m in cfg.ts_m]
        elif bed in ("digits", "mnist1d"):
            size = cfg.digits_size if bed == "digits" else cfg.mnist1d_size
            out.append({"testbed": bed, "setting": f"size={size}", "size": size})
        else:
            out += [{"testbed": bed, "setting": arch, "arch": arch, "seed": s}
                    for arch in cfg.deep_archs for s in cfg.seeds]
    return [{**cfg.cell_params(c["testbed"]), **c} for c in out]


def run_stopping(cfg, *, out, device=None, name: str = NAME, only: dict | None = None,
                 dry_run: bool = False) -> pd.DataFrame:
    """Every testbed's trajectories, resumable under ``out`` (one cell per testbed and
    setting; the deep testbed one per architecture and seed). Returns the tidy table, one
    row per testbed, setting, seed and checkpoint."""
    device = torch.device(device or "cpu")

    def compute(cell):
        bed = cell["testbed"]
        if bed == "teacher_student":
            return teacher_student_cell(cfg, cell["m"], device)
        if bed in ("digits", "mnist1d"):
            return fig1_cell(cfg, bed, cell["size"], device)
        root = Path(out) / name / "deep_work" / f"{cell['arch']}-{cell['seed']}"
        try:
            return deep_cell(cfg, cell["arch"], cell["seed"], root=root, device=device)
        finally:
            shutil.rmtree(root, ignore_errors=True)

    def to_rows(cell, payload):
        df = pd.DataFrame(payload["rows"], columns=COLUMNS)
        df.insert(0, "horizon", cfg.horizon(cell["testbed"]))
        df.insert(0, "setting", cell["setting"])
        df.insert(0, "testbed", cell["testbed"])
        return df

    return run_cells(name, cfg, cells(cfg), compute, to_rows, out=out, device=device,
                     only=only, dry_run=dry_run, work=lambda c: cfg.cell_work(c))


# -- the rules on stored trajectories ---------------------------------------------------------

def chapter4_table(name: str = "threshold_cpu", scaling: str = "theorem") -> pd.DataFrame:
    """Chapter 4's archived run as stored trajectories in this module's schema: its dense
    loss, its GFS loss at its ``k`` and its selection at every checkpoint (Theorem 2's step
    by default, the theorem's regime), no pruning term and no mask (it stored neither), so
    only the stability rule is replayed on it. Every cell is read with its own stored key
    (the code it was computed by) and its checksum verified."""
    import json

    from labkit.runner import ARCHIVE
    from labkit.store import ResultStore

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
    """Per testbed, setting and rule: the mean fraction saved and mean cost over seeds,
    each with its ``t`` interval, and how many seeds the rule fired on."""
    rows = []
    for (bed, setting, label), g in stop.groupby(["testbed", "setting", "label"], sort=False):
        s, c = t_interval(g["saved"], level), t_interval(g["cost"], level)
        rows.append({"testbed": bed, "setting": setting, "rule": label,
                     "fired": f"{int(g['fired'].sum())}/{len(g)}",
                     "saved": s[0], "saved_lo": s[1], "saved_hi": s[2],
                     "cost": c[0], "cost_lo": c[1], "cost_hi": c[2]})
    return pd.DataFrame(rows)


def stop_view(summary: pd.DataFrame) -> pd.DataFrame:
    """:func:`stop_summary` for reading: saved and cost in percent, each ``mean [lo, hi]``
    (cost: accuracy points, or the relative rise of the pruned loss)."""
    def cell(row, name):
        lo, mid, hi = (100 * row[f"{name}_lo"], 100 * row[name], 100 * row[f"{name}_hi"])
        return f"{mid:.1f} [{lo:.1f}, {hi:.1f}]"

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
