"""The paper-scale GPU runs (issue 24, ``tools/gpu_runs/``) as chapters 4 and 6 show them:
which are archived (a loan unpacked by ``tools/gpu_unpack.py``), and their tables, read by
each chapter's own statistics. A run not archived yet is said so, never filled in."""

from __future__ import annotations

import pandas as pd

from labkit.experiments.threshold.analysis import growth_table, threshold_runs


def archive_status(archives: dict) -> pd.DataFrame:
    """One row per run of ``archives`` (name -> :func:`labkit.find_archive`'s answer):
    whether it is archived, how many of its cells, where and at which revision they were
    computed, and their compute time."""
    rows = []
    for name, found in archives.items():
        if found is None:
            rows.append({"run": name, "status": "not run yet (book/running.md: GPU runs)"})
            continue
        info = found[1]
        rows.append({"run": name,
                     "status": "complete" if info.get("complete") else "partial",
                     "cells": f"{info.get('cells_done')} of {info.get('cells_total')}",
                     "device": info.get("device_name") or info.get("device"),
                     "compute_s": info.get("cell_seconds"),
                     "revision": str(info.get("git_revision", ""))[:7]})
    return pd.DataFrame(rows)


def threshold_scale_tables(archives: dict, configs: dict
                           ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Chapter 4's paper-scale runs (``threshold_gpu``, ``threshold_gpu_d100``) read as the
    chapter reads its archived CPU run. ``archives``: name -> ``(table, manifest)`` or
    ``None``; ``configs``: name -> its config (``delta``, ``tol``, ``n_boot``). Returns the
    medians over seeds per ``(scaling, d, N, m)`` (``T_dense`` with its censored runs,
    ``T_prune``, ``kappa``, ``kappa_inf``) and :func:`labkit.growth_table` of ``T_dense``,
    over every archived run (both empty when none is)."""
    medians, growths = [], []
    for name, found in archives.items():
        if found is None:
            continue
        cfg = configs[name]
        runs = threshold_runs(found[0], delta=cfg.delta, tol=cfg.tol)
        g = runs.groupby(["scaling", "d", "N", "m"])
        med = g[["T_dense", "T_prune", "kappa", "kappa_inf"]].median()
        med.insert(1, "censored", g["dense_censored"].sum().astype(int))
        med.insert(0, "seeds", g.size())
        medians.append(med.reset_index().assign(run=name))
        growths.append(growth_table(runs, "T_dense", n_boot=cfg.n_boot).assign(run=name))
    if not medians:
        return pd.DataFrame(), pd.DataFrame()
    return pd.concat(medians, ignore_index=True), pd.concat(growths, ignore_index=True)


def fig1_scale_tables(found) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame] | None:
    """Chapter 6's paper-scale run (``fig1_mnist1d_gpu``) read as the chapter reads its
    archived CPU runs: the red line (:func:`labkit.red_line`, with the plateau and tolerance
    its manifest records), its summary per width and size, and its growth with the size
    (:func:`labkit.red_line_growth`, no seed bootstrap). ``None`` when not archived."""
    from labkit.experiments.fig1.analysis import red_line, red_line_growth, red_line_summary

    if found is None:
        return None
    table, info = found
    fields = info["fields"]
    red = red_line(table, plateau_from=fields["plateau"][0], tolerance=fields["tolerance"])
    growth = red_line_growth(red, horizon=fields["checkpoints"][-1], n_boot=0)
    return red, red_line_summary(red), growth
