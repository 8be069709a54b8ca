"""Benchmark: the paper's Figure 4 setting on this machine (Appendix D, chapter 8): time of
a channel-GFS step on four ResNet34 blocks, centralized against 2 and 3 processes.

Setting: the book's CIFAR-shaped torchvision ResNet34 (3x3 stem) at ``--width``, random
weights, a batch of ``--batch`` random 3x32x32 inputs, ``--candidates`` random candidate
channels per step, ``--steps`` greedy steps per block (the first step of a block has
``k = 0``). Each process count runs ``labkit.distributed.channels.spawn_prune_channels`` on
the blocks one by one (``groups=[name]``, ``budget`` so that exactly ``--steps`` channels
are chosen); a step's time is the slowest rank's scoring plus its ``all_reduce`` (the
start-up of the processes is not counted). ``P = 1`` runs the same code in one spawned
process. Selections must equal the ``P = 1`` run's (asserted).

The cost model (``labkit.distributed.ChannelCostModel``) is fitted per block from the same
code in this process with all cores: the first step's scoring time at ``n`` and ``n/4``
candidates (the fixed part, the frozen prefix, and the per-candidate part), and the
``all_reduce`` latency of 2 processes (``measure_collectives``). Its predictions for
``P = 2, 3, 4`` devices each as fast as this whole CPU are a model, not a measurement.

On a 2-core CPU, 2 processes get one core each and 3 processes oversubscribe the cores
(each with one thread): the numbers show what splitting buys here, not on GPUs.

Run: ``python benchmarks/channel_gfs_distributed.py [--width 1] [--json out.json]``;
``results/benchmarks/channel_gfs_distributed.json`` is what chapter 8 loads.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time

os.environ.setdefault("LABKIT_PIN_CPU", "0")  # the machine's own kernels (see channel_gfs.py)

import torch

from labkit.deep import graph as cgr
from labkit.deep import nets as dn
from labkit.deep import prune as cp
from labkit.distributed import channels as dch
from labkit.distributed import fit_channel_cost, measure_collectives

BLOCKS = (1, 8, 14, 16)  # of the 16 basic blocks, as in benchmarks/channel_gfs.py


def scoring_time(model, name, batches, n: int, seed: int, repeats: int = 2) -> float:
    """One process's first-step scoring time of ``n`` candidates of group ``name``."""
    group = next(g for g in cgr.find_groups(model, batches(0)[0][:1]) if g.name == name)
    traced = cgr.Traced(model)
    x, y = batches(0)
    cands = torch.randperm(group.C, generator=torch.Generator().manual_seed(seed))[:n]
    counts = torch.zeros(group.C)
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        cp.score_candidates(traced, group, x, y, counts, cands.sort().values)
        best = min(best, time.perf_counter() - t0)
    return best


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--width", type=float, default=1.0)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--candidates", type=int, default=50)
    parser.add_argument("--steps", type=int, default=1)
    parser.add_argument("--nprocs", default="1,2,3")
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)

    model = dn.build("resnet34", width=args.width, in_channels=3, seed=0).eval()
    g = torch.Generator().manual_seed(1)
    X = torch.randn(args.batch, 3, 32, 32, generator=g)
    Y = torch.randint(10, (args.batch,), generator=g)
    batches = cp.SeededBatches(X, Y, args.batch, seed=2)
    acc = cp.Accuracy(X[:32], Y[:32])
    cores = os.cpu_count() or 1
    print(f"ResNet34 (width {args.width}), batch {args.batch}, {args.candidates} candidates, "
          f"{args.steps} step(s) per block, {cores} cores, torch {torch.__version__}, "
          f"{platform.processor() or platform.machine()}")
    print(f"{'block':>6} {'group':>16} {'C':>4} {'P':>2} {'step (s)':>9} {'score (s)':>9} "
          f"{'comm (s)':>9} {'speed-up':>9}")
    latency = float(measure_collectives(2, sizes=(args.candidates,), repeats=20)
                    ["allreduce_s"].iloc[0])
    rows, models, orders = [], [], {}
    names = {m: n for n, m in model.named_modules()}
    for block in BLOCKS:
        hand = dn.channel_groups(model)[block - 1]
        C, name = hand.C, names[hand.block.conv1]  # the group's name: its producer
        n = min(args.candidates, C)
        counts = sorted({max(1, n // 4), n})
        fit = fit_channel_cost(counts, [scoring_time(model, name, batches, c, block)
                                        for c in counts], latency)
        models.append({"block": block, "group": name, "C": C, "n": n,
                       "fixed_s": fit.fixed_s, "per_candidate_s": fit.per_candidate_s,
                       "latency_s": fit.latency_s,
                       "model_step_s": {P: float(fit.step_time(n, P)) for P in (1, 2, 3, 4)}})
        base = None
        for P in (int(p) for p in args.nprocs.split(",")):
            t0 = time.perf_counter()
            _, report, times = dch.spawn_prune_channels(
                model, batches, acc, nprocs=P, groups=[name], eps=0.0,
                budget=(args.steps + 0.5) / C, n_candidates=args.candidates, seed=3,
                threads=max(1, cores // P), timeout_s=600)
            wall = time.perf_counter() - t0
            order = report.layers[0].order
            if block in orders:
                assert order == orders[block], f"block {block}: P={P} selected differently"
            orders.setdefault(block, order)
            score = max(sum(t[2] for t in r) for r in times)
            comm = max(sum(t[3] for t in r) for r in times)
            step = max(sum(t[2] + t[3] for t in r) for r in times) / len(order)
            base = base or step
            rows.append({"block": block, "group": name, "C": C, "nprocs": P,
                         "step_s": step, "score_s": score / len(order),
                         "comm_s": comm / len(order), "wall_s": wall, "speedup": base / step,
                         "oversubscribed": P > cores, "order": list(order)})
            r = rows[-1]
            print(f"{block:>6} {name:>16} {C:>4} {P:>2} {r['step_s']:>9.2f} "
                  f"{r['score_s']:>9.2f} {r['comm_s']:>9.3f} {r['speedup']:>8.2f}x", flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"args": vars(args), "torch": torch.__version__, "cores": cores,
                       "machine": platform.processor() or platform.machine(),
                       "date": time.strftime("%Y-%m-%d"), "rows": rows, "model": models},
                      f, indent=2)
    for mdl in models:
        pred = ", ".join(f"P={P}: {t:.2f} s" for P, t in mdl["model_step_s"].items())
        print(f"model, block {mdl['block']}: fixed {mdl['fixed_s']:.2f} s + "
              f"{mdl['per_candidate_s']:.3f} s per candidate; {pred}")


if __name__ == "__main__":
    main()
