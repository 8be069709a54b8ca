"""Chapter 11's experiment: pre-training trajectories on every testbed of the book, with
what each stopping rule (:mod:`labkit.experiments.stopping.rules`) reads at every checkpoint
and what
pruning there would give, so that the rules are evaluated offline on stored runs.

Testbeds (one cell each, all seeds; the deep one a cell per seed):

- ``teacher_student``: chapter 4's regime (``m <= N/4``, ``k <= N/8``, Theorem 2's step,
  :func:`labkit.experiments.threshold.cell.train_batched`); outcome: the GFS loss at ``k``.
- ``digits`` / ``mnist1d``: chapter 6's protocol
(:func:`labkit.experiments.fig1.cell._sgd_step`, binary
  cross-entropy, GFS without replacement, ``k <= N/4``); outcome: the GFS subnetwork's
  accuracy on the training sub-dataset (no fine-tuning, as Figure 1).
- ``deep``: chapter 7's stand-in (:func:`labkit.experiments.tables.cell.prune_cell`, layer-wise
channel GFS
  at the chapter's calibrated tolerance, then its fine-tuning); outcome: the fine-tuned
  test accuracy. Its stability rule reads
  :func:`labkit.experiments.stopping.rules.channel_selection` in the
  last channel group.

A stop at checkpoint ``t`` of a schedule of ``T`` iterations saves ``1 - t/T`` of the
pre-training; its cost is the outcome at ``T`` minus the outcome at ``t`` (accuracy), or
the relative increase of the pruned loss (loss).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import torch

from labkit.algorithms.bounds import diameter
from labkit.algorithms.model import TwoLayerNet
from labkit.experiments.stopping import rules as stopping
from labkit.infra.runner import run_cells, step_bar

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
    from labkit.experiments.threshold.cell import _init_cell, train_batched

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
    from labkit.experiments.fig1 import cell as fig1
    from labkit.infra.data import balanced_subset, binarize

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

    from labkit.experiments.tables import cell as tables

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
