"""Benchmark: does a FLOP saving of channel pruning turn into time? (chapter 7, issue 20).

Dense against physically smaller CIFAR-shaped ResNet34 and MobileNetV2 (the book's 32x32
adaptations, ``labkit.deep.nets.build``), at batch 1 and 64 on this CPU, timed with
``torch.utils.benchmark.Timer.blocked_autorange`` (median; the fastest of ``--rounds``
rounds, the models timed in rotating order), beside the FLOP and parameter ratios. The
smaller networks keep the same fraction ``f`` of every hand-described group
(the channels of largest L1 norm of the producing convolution; latency depends only on the
shapes, not on which channels are kept), removed with ``labkit.deep.nets.shrink``.

Run: ``python benchmarks/deep_latency.py [--fractions 0.75,0.5,0.25] [--json out.json]``
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import time

os.environ.setdefault("LABKIT_PIN_CPU", "0")  # the machine's own kernels (see channel_gfs.py)

import torch
from torch.utils import benchmark

from labkit.deep import nets as dn


def keep_fraction(model, f: float):
    """A copy of ``model`` keeping the fraction ``f`` of every group, by L1 norm."""
    model = copy.deepcopy(model)  # the masks go on the copy: the dense model stays dense
    for g in dn.channel_groups(model):
        producer = g.block.conv1 if hasattr(g.block, "conv1") else g.block.conv[0][0]
        norms = producer.weight.detach().abs().sum(dim=(1, 2, 3))
        keep = norms.argsort(descending=True)[:max(1, round(f * g.C))]
        mask = torch.zeros(g.C)
        mask[keep] = 1.0
        dn.set_mask(g, mask)
    return dn.shrink(model).eval()


def latency(model, batch: int, threads: int) -> float:
    x = torch.randn(batch, 3, 32, 32)
    timer = benchmark.Timer("with torch.no_grad(): model(x)", globals={
        "model": model, "x": x, "torch": torch}, num_threads=threads)
    return timer.blocked_autorange(min_run_time=1.0).median


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fractions", default="0.75,0.5,0.25")
    parser.add_argument("--batches", default="1,64")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)
    fractions = [float(f) for f in args.fractions.split(",")]
    batches = [int(b) for b in args.batches.split(",")]
    print(f"CIFAR-shaped, 32x32 inputs, {args.threads} threads, torch {torch.__version__}, "
          f"{platform.processor() or platform.machine()}")
    print(f"{'arch':>13} {'kept':>5} {'FLOPs':>6} {'params':>6} "
          + " ".join(f"{'B=' + str(b) + ' (ms)':>12} {'time':>6}" for b in batches))
    rows = []
    for arch in dn.ARCHS:
        dense = dn.build(arch, width=1.0, in_channels=3, seed=0).eval()
        flops0, params0 = dn.count_flops(dense, (3, 32, 32)), dn.count_params(dense)
        kept = [1.0, *fractions]
        models = [dense] + [keep_fraction(dense, f) for f in fractions]
        # rounds in rotating order, the fastest median of each: on a shared VM the first
        # model timed after a change is often slower (measured: up to 1.8x), whichever it is
        best = {(i, b): float("inf") for i in range(len(models)) for b in batches}
        for r in range(args.rounds):
            for i in [(j + r) % len(models) for j in range(len(models))]:
                for b in batches:
                    best[i, b] = min(best[i, b], latency(models[i], b, args.threads))
        for i, (f, small) in enumerate(zip(kept, models, strict=True)):
            row = {"arch": arch, "kept": f,
                   "flop_ratio": dn.count_flops(small, (3, 32, 32)) / flops0,
                   "param_ratio": dn.count_params(small) / params0,
                   **{f"ms_b{b}": 1e3 * best[i, b] for b in batches},
                   **{f"time_ratio_b{b}": best[i, b] / best[0, b] for b in batches}}
            rows.append(row)
            print(f"{arch:>13} {f:>5.2f} {row['flop_ratio']:>6.2f} {row['param_ratio']:>6.2f} "
                  + " ".join(f"{row[f'ms_b{b}']:>12.2f} {row[f'time_ratio_b{b}']:>6.2f}"
                             for b in batches), flush=True)
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"args": vars(args), "torch": torch.__version__,
                       "date": time.strftime("%Y-%m-%d"), "rows": rows}, fh, indent=2)


if __name__ == "__main__":
    main()
