"""Chapter 7's views: the paper's Tables 1-2 (TEXT, Appendix E) beside ours, the protocol
disclosure generated from the presets, and the measured latency table.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from labkit.experiments.tables.cell import NAMES
from labkit.infra.runner import ARCHIVE

# -- the paper's numbers and the side-by-side views -------------------------------------------

# The paper's numbers (TEXT, Appendix E), test accuracy in percent.
PAPER_TABLE1 = pd.DataFrame(
    [("MobileNetV2", "10K", 82.32, 86.18, 86.11, 86.09, 83.13),
     ("MobileNetV2", "30K", 80.19, 87.79, 88.38, 88.67, 87.62),
     ("MobileNetV2", "50K", 86.71, 88.33, 91.79, 91.77, 91.44),
     ("ResNet34", "10K", 75.29, 85.47, 85.56, 85.01, 85.23),
     ("ResNet34", "30K", 84.06, 91.59, 92.31, 92.15, 92.14),
     ("ResNet34", "50K", 89.79, 91.34, 94.28, 94.23, 94.18)],
    columns=["model", "size", "20K", "40K", "60K", "80K", "Dense"])
PAPER_TABLE2 = pd.DataFrame(
    [("MobileNetV2", "60% (80%)", 70.05, 71.14, 71.53, 71.70),
     ("MobileNetV2", "40% (65%)", 69.23, 70.36, 71.10, 71.70),
     ("ResNet34", "60% (80%)", 71.68, 72.56, 72.65, 73.20),
     ("ResNet34", "40% (65%)", 69.87, 71.44, 71.33, 73.20)],
    columns=["model", "FLOP (param) ratio", "50 ep", "100 ep", "150 ep", "Dense"])


def _size_label(size: int) -> str:
    return "all" if size == 0 else f"{size:,}"


def table_view(table: pd.DataFrame, by: str = "size") -> pd.DataFrame:
    """GFS's fine-tuned test accuracy (%) per checkpoint in the paper's layout, the dense
    network at the last checkpoint, the baselines' mean gap to GFS and the achieved FLOP
    and parameter ratios (means over the checkpoints)."""
    rows = []
    for (arch, key), g in table.groupby(["arch", by], sort=False):
        gfs = g[g["method"] == "gfs"].sort_values("t")
        row = {"model": NAMES.get(arch, arch),
               by: _size_label(key) if by == "size" else key}
        row.update({f"t={t}": round(100 * a, 2)
                    for t, a in zip(gfs["t"], gfs["finetuned_acc"], strict=True)})
        row["Dense"] = round(100 * gfs["dense_acc"].iloc[-1], 2)
        for method in sorted(set(g["method"]) - {"gfs"}):
            other = g[g["method"] == method].sort_values("t")
            gap = other["finetuned_acc"].to_numpy() - gfs["finetuned_acc"].to_numpy()
            row[f"{method} - GFS"] = round(100 * float(gap.mean()), 2)
        row["FLOP ratio"] = round(float((gfs["flops"] / gfs["dense_flops"]).mean()), 3)
        row["param ratio"] = round(float((gfs["params"] / gfs["dense_params"]).mean()), 3)
        rows.append(row)
    return pd.DataFrame(rows)


def _align(paper_keys: list, ours: list) -> dict:
    """Our row or checkpoint standing beside each of the paper's: in order when the counts
    agree, else the ends aligned (the last checkpoint is the horizon in both)."""
    if len(paper_keys) == len(ours):
        return dict(zip(paper_keys, ours, strict=True))
    if len(ours) > len(paper_keys):
        return dict(zip(paper_keys, ours[-len(paper_keys):], strict=True))
    pairs = {paper_keys[0]: ours[0], paper_keys[-1]: ours[-1]}
    return {k: pairs.get(k) for k in paper_keys}


def paper_view(table: pd.DataFrame, which: str = "table1") -> pd.DataFrame:
    """The paper's Table 1 or 2 row by row with ours beside it: one row per (model, size or
    budget, checkpoint), the paper's accuracy, then ours for GFS and each baseline and the
    dense network at that checkpoint (fine-tuned test accuracy, %). The last row of each
    block is the dense network at the end of pre-training."""
    paper = PAPER_TABLE1 if which == "table1" else PAPER_TABLE2
    key = "size" if which == "table1" else "FLOP (param) ratio"
    ckpts = [c for c in paper.columns if c not in ("model", key, "Dense")]
    ts = sorted(table["t"].unique())
    by = "size" if which == "table1" else "target"
    # sizes ascending with 0 (all) last; budgets descending (60% before 40%, as printed)
    ours_keys = (sorted(table[by].unique(), key=lambda v: (v == 0, v)) if by == "size"
                 else sorted(table[by].unique(), reverse=True))
    row_map = _align(list(dict.fromkeys(paper[key])), ours_keys)
    t_map = _align(ckpts, ts)
    methods = list(dict.fromkeys(table["method"]))
    rows = []
    for _, prow in paper.iterrows():
        arch = {v: k for k, v in NAMES.items()}[prow["model"]]
        ours_key = row_map.get(prow[key])
        part = table[(table["arch"] == arch) & (table[by] == ours_key)]
        label = (_size_label(ours_key) if by == "size" else f"{ours_key:g}") \
            if ours_key is not None else "-"
        for c in [*ckpts, "Dense"]:
            t = t_map.get(c) if c != "Dense" else (ts[-1] if ts else None)
            row = {"model": prow["model"], f"paper {key}": prow[key], "ours": label,
                   "paper t": c, "t": t if t is not None else "-", "paper": prow[c]}
            at = part[part["t"] == t]
            for m in methods:
                v = at[at["method"] == m]["finetuned_acc"]
                row[m.upper() if m != "random" else "random"] = (
                    round(100 * float(v.iloc[0]), 2) if c != "Dense" and len(v) else None)
            dense = at["dense_acc"]
            row["dense"] = round(100 * float(dense.iloc[0]), 2) if len(dense) else None
            rows.append(row)
    return pd.DataFrame(rows)


# -- the protocol, disclosed ------------------------------------------------------------------

# What the paper (with Ye et al.'s code, which it follows) did, item by item; TEXT is the
# paper's text, INFERRED our reading, YE the reference code (ye2021github)
PAPER_PROTOCOL = {
    "table1": {
        "data": "CIFAR10, validation split held out (footnote 4; size not given)",
        "sub-dataset sizes": "10K, 30K, 50K (TEXT)",
        "networks": "ResNet34, MobileNetV2 at full width (TEXT)",
        "MobileNetV2 strides": "not given (CIFAR adaptation INFERRED)",
        "pre-training": "80K iterations, SGD momentum 0.9, cosine from 0.1, batch 128 (TEXT)",
        "weight decay": "not given; 5e-4 INFERRED (the cited CIFAR recipe)",
        "pruning checkpoints": "20K, 40K, 60K, 80K (TEXT)",
        "channel groups": "as Ye et al.: ResNet34 block-inner channels; MobileNetV2 hidden "
                          "and projection outputs, masks [0, 1, 33, 34] skipped (YE)",
        "budget": "40% fewer FLOPs, 20% fewer parameters; eps tuned per network (TEXT)",
        "candidates per step": "50 random (YE)",
        "stopping check": "on a training subset, once the mini-batch accuracy is within "
                          "0.05 of it (YE)",
        "per-layer fine-tuning": "0.1 epoch, lr 2.5e-3 fixed, no momentum (YE)",
        "final fine-tuning": "2,500 iterations from lr 0.01 (TEXT)",
        "baselines": "none in Tables 1-2",
    },
    "table2": {
        "data": "ImageNet, validation split held out (footnote 4)",
        "sub-dataset sizes": "full training set (TEXT)",
        "networks": "ResNet34, MobileNetV2 at full width (TEXT)",
        "MobileNetV2 strides": "torchvision's ImageNet strides",
        "pre-training": "150 epochs, SGD momentum 0.9, cosine from 0.1, batch 128 (TEXT)",
        "weight decay": "'same settings as [61]': 4e-5 in Ye et al.'s code (YE)",
        "pruning checkpoints": "50, 100, 150 epochs (TEXT)",
        "channel groups": "as Table 1 (YE)",
        "budget": "60% (80%) and 40% (65%) of FLOPs (parameters) kept (TEXT)",
        "candidates per step": "50 random (YE)",
        "stopping check": "on a training subset, once the mini-batch accuracy is within "
                          "0.05 of it (YE)",
        "per-layer fine-tuning": "0.1 epoch, lr 2.5e-3 fixed, no momentum (YE)",
        "final fine-tuning": "80 epochs (TEXT)",
        "baselines": "none in Tables 1-2",
    },
}


def describe(cfg) -> dict[str, str]:
    """The protocol items of a preset, in words, from its fields only."""
    sizes = ", ".join(_size_label(s) for s in cfg.sizes)
    nets = ", ".join(f"{NAMES[a]} x{w:g}" for a, w in zip(cfg.archs, cfg.widths, strict=True))
    groups = {"paper": "ResNet34 block-inner; MobileNetV2 hidden and stage streams, Ye's "
                       "skipped layers out (dependency graph)",
              "inner": "single-producer groups only", "all": "every supported group"}
    targets = ", ".join(f"{f:.0%} ({p:.0%})" for f, p in
                        zip(cfg.targets, cfg.param_targets, strict=True))
    return {
        "data": f"{cfg.source}, {cfg.val_size:,} training images held out for validation",
        "sub-dataset sizes": sizes + (" ('all' = outside the validation split)"
                                      if 0 in cfg.sizes else ""),
        "networks": nets,
        "MobileNetV2 strides": str(tuple(cfg.mnv2_strides)),
        "pre-training": (f"{cfg.checkpoints[-1]:,} iterations, SGD momentum {cfg.momentum:g}, "
                         f"cosine from {cfg.lr:g}, batch {cfg.batch_size}"),
        "weight decay": f"{cfg.weight_decay:g}",
        "pruning checkpoints": ", ".join(f"{t:,}" for t in cfg.checkpoints),
        "channel groups": groups[cfg.groups],
        "budget": (f"FLOPs (params) kept {targets}: eps calibrated per network to the FLOP "
                   f"target within {cfg.calibration_tol:g}; params reported"),
        "candidates per step": ("all" if not cfg.n_candidates
                                else f"{cfg.n_candidates} random"),
        "stopping check": (f"on {cfg.eval_size:,} training images"
                           + (f", once the mini-batch accuracy is within max"
                              f"({cfg.skip_eval:g}, eps) of it" if cfg.skip_eval
                              else ", every step")),
        "per-layer fine-tuning": (f"{cfg.layer_finetune_epochs:g} epoch, lr "
                                  f"{cfg.layer_finetune_lr:g} fixed, momentum "
                                  f"{cfg.layer_finetune_momentum:g}"),
        "final fine-tuning": f"{cfg.finetune_iters:,} iterations from lr {cfg.finetune_lr:g}",
        "baselines": ", ".join(m for m in cfg.methods if m != "gfs") or "none",
    }


def protocol_table(which: str, full, quick) -> pd.DataFrame:
    """item | paper | full preset | quick preset, the presets' columns generated from the
    config objects, so the table cannot go stale."""
    paper, f, q = PAPER_PROTOCOL[which], describe(full), describe(quick)
    return pd.DataFrame([{"item": k, "paper": paper[k], "full preset": f[k],
                          "quick preset": q[k]} for k in paper])


def load_latency(path: Path | None = None) -> pd.DataFrame:
    """``benchmarks/deep_latency.py``'s committed measurement (timings are not compared by
    nbval, so the chapter reads them)."""
    path = path or ARCHIVE.parent / "benchmarks" / "deep_latency.json"
    return pd.DataFrame(json.loads(Path(path).read_text())["rows"])
