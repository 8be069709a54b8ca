"""Command line: ``python -m labkit run <experiment> [--mode quick|full] [--device D]
[--out DIR] [--set FIELD=VALUE ...] [--only PARAM=V1,V2 ...] [--dry-run] [--reuse-only]
[--budget SECONDS]``.

Runs are resumable: rerunning skips finished cells, and ``results.csv`` / ``manifest.json``
are rewritten after every finished cell. ``--set`` overrides config fields (validated by the
config class), ``--only`` runs the cells whose parameters take the listed values, and
``--dry-run`` lists the cells, which are done, and an estimate of the cost of the rest;
``--reuse-only`` computes nothing and tabulates the finished cells; ``--budget`` starts no
cell whose estimate would end past that many seconds (a GPU loan's prepared runs).
Progress bars (over cells, and inside a long cell) show at a terminal, never under CI."""

from __future__ import annotations

import argparse
import contextlib
import os
import sys

from labkit import config
from labkit.experiments.threshold.cell import run_threshold
from labkit.infra import cpu_pins, runner
from labkit.infra.runtime import get_device, get_mode
from labkit.infra.store import default_root


def _fig1(cfg, out, device, name, **opts):
    from labkit.experiments.fig1.cell import run_fig1

    return run_fig1(cfg, out=out, device=device, name=name, **opts)


def _fig1_summary(cfg, table, name) -> str:
    from labkit.experiments.fig1.analysis import red_line, red_line_summary

    keys = ["lr", "N", "size"] if "lr" in table.columns else ["N", "size"]
    mean = table.groupby([*keys, "method", "t"])["accuracy"].mean()
    summary = mean.groupby([*keys, "method"]).max().unstack("method")
    text = (f"best checkpoint's accuracy (mean over seeds):\n"
            f"{summary.round(4).to_string()}")
    if not cfg.plateau:
        return text + "\n\n(no plateau checkpoints: no red line)"
    red = red_line_summary(red_line(table, plateau_from=cfg.plateau[0],
                                    tolerance=cfg.tolerance))
    return f"{text}\n\nred line (tolerance {cfg.tolerance:g}):\n{red.to_string(index=False)}"


def _threshold(cfg, out, device, name, **opts):
    return run_threshold(cfg, out=out, device=device, name=name, **opts)


def _threshold_summary(cfg, table, name) -> str:
    from labkit.experiments.threshold.analysis import threshold_runs

    runs = threshold_runs(table, delta=cfg.delta, tol=cfg.tol)
    cols = ["T_dense", "dense_censored", "T_prune", "prune_zero", "kappa", "rel_first"]
    summary = runs.groupby(["scaling", "d", "N", "m"])[cols].mean()
    return (f"thresholds per cell (mean over seeds; delta = {cfg.delta:g}, tol = {cfg.tol:g})"
            f":\n{summary.round(4).to_string()}")


def _threshold_gpu(cfg, out, device, name, **opts):
    from labkit.experiments.threshold.cell_gpu import run_threshold as run_threshold_gpu

    return run_threshold_gpu(cfg, out=out, device=device, name=name, **opts)


def _table(cfg, out, device, name, **opts):
    from labkit.experiments.tables.cell import run_table

    return run_table(cfg, out=out, device=device, name=name, **opts)


def _table_summary(cfg, table, name) -> str:
    from labkit.experiments.tables.analysis import table_view

    view = table_view(table, "size" if name == "table1" else "target").to_string(index=False)
    return f"fine-tuned subnetwork test accuracy (%):\n{view}"


def _prune_init(cfg, out, device, name, **opts):
    from labkit.experiments.prune_init.cell import run_prune_init

    return run_prune_init(cfg, out=out, device=device, name=name, **opts)


def _prune_init_summary(cfg, table, name) -> str:
    sweep = table[table["part"] == "sweep"]
    mean = sweep.groupby(["mu_norm", "fraction"])[["train_error", "test_error"]].mean()
    return f"training and test error (mean over seeds):\n{mean.round(4).to_string()}"


def _diet(cfg, out, device, name, **opts):
    from labkit.experiments.diet.cell import run_diet

    return run_diet(cfg, out=out, device=device, name=name, **opts)


def _diet_summary(cfg, table, name) -> str:
    imp = table[table["part"] == "imp"]
    if not len(imp):
        return "no IMP cell finished"
    mean = imp.groupby(["diet", "t", "round"])["test_error"].mean().unstack("round")
    return f"IMP test error per round (mean over seeds):\n{mean.round(4).to_string()}"


def _stopping(cfg, out, device, name, **opts):
    from labkit.experiments.stopping.cell import run_stopping

    return run_stopping(cfg, out=out, device=device, name=name, **opts)


def _stopping_summary(cfg, table, name) -> str:
    from labkit.experiments.stopping.analysis import rule_stops, stop_summary

    summary = stop_summary(rule_stops(table, cfg))
    view = summary[["testbed", "setting", "rule", "fired", "saved", "cost"]]
    return f"pre-training saved and cost per rule (mean over seeds):\n{view.round(3).to_string()}"


# name -> (the sweep, its printed summary, what it is)
EXPERIMENTS = {
    "threshold": (_threshold, _threshold_summary,
                  "chapter 4: the pre-training threshold (Theorem 3) in the theorem's regime"),
    "threshold_cpu": (_threshold, _threshold_summary,
                      "chapter 4, the archived CPU run: m = 32..1024 at N = 4096 (and to 256 at "
                      "N = 1024), d = 10 and 100, 10 seeds, both step rules, 8K iterations"),
    "threshold_gpu": (_threshold_gpu, _threshold_summary,
                      "chapter 4 at paper scale, for a GPU: m = 512..8192 at N = 32768, "
                      "d = 10, 3 seeds, 20K iterations, spectra and GFS on the device"),
    "threshold_gpu_d100": (_threshold_gpu, _threshold_summary,
                           "chapter 4 at paper scale, for a GPU, d = 100: m = 512..4096 at "
                           "N = 16384, 3 seeds, 20K iterations"),
    "fig1": (_fig1, _fig1_summary, "Figure 1: MNIST, GFS vs pre-training, with baselines"),
    "fig1_mnist1d": (_fig1, _fig1_summary,
                     "Figure 1 on MNIST-1D signals generated offline (the paper's sizes)"),
    "fig1_digits_cpu": (_fig1, _fig1_summary,
                        "Figure 1, archived CPU run: the 5,000 offline digits, k=200, widths "
                        "800 and 1600, 8K iterations (+ plateau to 12K), 3 seeds"),
    "fig1_mnist1d_cpu": (_fig1, _fig1_summary,
                         "Figure 1, archived CPU run: MNIST-1D at 1K-50K, k=200, width 800, 8K "
                         "iterations (+ plateau to 12K), 3 seeds"),
    "fig1_mnist1d_gpu": (_fig1, _fig1_summary,
                         "Figure 1 at the paper's sizes, for a GPU: MNIST-1D at 1K-50K (11 "
                         "sizes), widths 800-3200, k=200, 3 seeds, 8K iterations (+ plateau)"),
    "fig1_lr": (_fig1, _fig1_summary,
                "Figure 1's learning-rate sensitivity, archived: the quick digits run at "
                "N=200 for lr = 0.25, 0.5, 1 and 2"),
    "prune_init": (_prune_init, _prune_init_summary,
                   "chapter 9: random pruning at initialization on signal-plus-noise "
                   "patches (Yang et al. 2023), and GFS at equal size"),
    "prune_init_cpu": (_prune_init, _prune_init_summary,
                       "chapter 9, the archived CPU run: m = 150, d = 3000, three signal "
                       "norms, 10 seeds"),
    "diet": (_diet, _diet_summary,
             "chapter 10: IMP with rewinding, data diets (Paul et al. 2022), linear mode "
             "connectivity, and GFS's threshold against the pre-training data"),
    "diet_cpu": (_diet, _diet_summary,
                 "chapter 10, the archived CPU run: ResNet-8 on 16x16 digits, IMP at 20% to "
                 "2.2%, rewinds 0-100, four diets, 3 seeds"),
    "stopping": (_stopping, _stopping_summary,
                 "chapter 11: stopping rules for pre-training (the bound, GFS selection "
                 "stability, Early-Bird) on every testbed's trajectories"),
    "stopping_cpu": (_stopping, _stopping_summary,
                     "chapter 11, the archived CPU run: teacher-student m = 64-256, digits, "
                     "MNIST-1D, ResNet34 and MobileNetV2 stand-ins, 5 seeds"),
    "table1": (_table, _table_summary,
               "Table 1: channel GFS on ResNet34/MobileNetV2 at pre-training checkpoints, "
               "CIFAR10 sub-datasets ($LABKIT_CIFAR_DIR) in full mode"),
    "table2": (_table, _table_summary,
               "Table 2: the same at two tolerances, ImageNet ($LABKIT_IMAGENET_DIR with "
               "train/ and val/) in full mode"),
}


def _seconds(s: float) -> str:
    if s < 120:
        return f"{s:.0f} s"
    return f"{s / 60:.0f} min" if s < 7200 else f"{s / 3600:.1f} h" if s < 172800 else \
        f"{s / 86400:,.0f} days"


def _plan_text(name: str, mode: str, device, plan) -> str:
    todo = plan[plan["status"] == "todo"]
    basis = ("seconds per operation measured on this run's finished cells"
             if plan["basis"].iloc[0] == "measured" else
             f"an assumed {runner.NOMINAL_FLOPS.get(device.type, 2e10) / 1e9:g} GFLOP/s "
             f"on {device.type} (no cell timed yet: an order of magnitude only)")
    shown = plan.drop(columns=["basis"]).round({"work_gflop": 1, "seconds": 1, "est_s": 1})
    return (f"{name} ({mode}, {device}): {len(plan)} cells, {len(plan) - len(todo)} done, "
            f"{len(todo)} to run\n{shown.to_string(index=False)}\n"
            f"estimated time for the {len(todo)} to run: {_seconds(todo['est_s'].sum())} "
            f"({basis})")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m labkit", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run an experiment",
                         description="experiments: " + "; ".join(
                             f"{k} ({v[2]})" for k, v in EXPERIMENTS.items()))
    run.add_argument("experiment", choices=sorted(EXPERIMENTS))
    run.add_argument("--mode", choices=["quick", "full"], default=None,
                     help="preset (default: $LABKIT_MODE, else quick)")
    run.add_argument("--device", default=None, help="e.g. cpu, cuda (default: by mode)")
    run.add_argument("--out", default=None, help="results folder (default: results/<mode>)")
    run.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                     help="override a config field, e.g. --set k=100 --set seeds=0,1 "
                          "(repeatable; the fields are those of the experiment's config)")
    run.add_argument("--only", action="append", default=[], metavar="PARAM=V1,V2",
                     help="run only the cells whose parameter takes one of the values, e.g. "
                          "--only m=10,20 (repeatable: all must hold)")
    run.add_argument("--dry-run", action="store_true",
                     help="list the cells, which are done, and the estimated cost; run nothing")
    run.add_argument("--reuse-only", action="store_true",
                     help="compute nothing: write results.csv and manifest.json from the "
                          "finished cells (e.g. while other processes fill the rest)")
    run.add_argument("--budget", type=float, default=None, metavar="SECONDS",
                     help="start no cell whose estimated time (the rate measured on the "
                          "finished cells, else an assumed one) would end past SECONDS "
                          "after the start; the skipped cells are left for a later run")
    args = parser.parse_args(argv)
    if argv is None and args.mode and args.mode != get_mode():
        # the mode decides the CPU pins, which `import labkit` set from $LABKIT_MODE before
        # NumPy and PyTorch loaded: start again in the asked mode (full mode is unpinned)
        env = {**cpu_pins.unpinned_env(), "LABKIT_MODE": args.mode}
        os.execve(sys.executable, [sys.executable, "-m", "labkit", *sys.argv[1:]], env)
    mode = get_mode(args.mode)
    try:
        cfg = config.get(args.experiment, mode=mode,
                         **config.parse_overrides(args.experiment, args.set, mode))
        only = runner.parse_only(args.only)
    except ValueError as err:
        run.error(str(err))
    device = get_device(mode, args.device)
    if mode == "full" and device.type == "cpu" and not args.dry_run:
        print(f"labkit run {args.experiment}: warning: full mode on the CPU (no CUDA device "
              "found or --device cpu); paper-scale runs take far longer here",
              file=sys.stderr)
    out = args.out or default_root(mode)
    sweep, summarize, _ = EXPERIMENTS[args.experiment]
    try:
        with runner.reusing_only() if args.reuse_only else contextlib.nullcontext(), \
                runner.within_budget(args.budget):
            table = sweep(cfg, out, device, name=args.experiment, only=only,
                          dry_run=args.dry_run)
    except FileNotFoundError as err:
        # a missing dataset: its message says what to set; a traceback would bury it
        print(f"labkit run {args.experiment}: {err}", file=sys.stderr)
        return 2
    except ValueError as err:  # --only naming no cell
        run.error(str(err))
    if args.dry_run:
        print(_plan_text(args.experiment, mode, device, table))
        return 0
    if not len(table):
        print(f"{args.experiment} ({mode}, {device}): no cell finished within the budget")
        return 0
    print(f"{args.experiment} ({mode}, {device}): {len(table)} rows -> "
          f"{out}/{args.experiment}/results.csv, manifest.json")
    print(summarize(cfg, table, args.experiment))
    return 0


if __name__ == "__main__":
    sys.exit(main())
