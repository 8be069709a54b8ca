"""Benchmark: time per step of distributed GFS (Appendix D, Algorithm 2; book chapter 8)
against the number of processes P, on this machine, with the cost model fitted to it.

For every size ``N x m`` (the neuron outputs of a random tanh mean-field network on
unit-sphere inputs, float64 by default) and every ``P``, ``labkit.measure_steps`` launches P
local processes (gloo on CPU, ``torch.multiprocessing`` "spawn") that run ``--k`` steps; the
selections are asserted identical to centralized ``labkit.greedy_forward_selection``. Per
size and P the table shows the median time per step on rank 0 (first step dropped), its
scoring part on the slowest rank, its collective part on the rank that waited least, the
bytes the collectives move per step (``labkit.bytes_per_step``) and the speed-up over P = 1.
Each rank uses ``--threads`` BLAS/torch threads (default 1: one core per process, the CPU
analogue of one GPU per process), so P larger than the core count oversubscribes the cores:
on a 2-core machine P = 3 and 4 only show the cost of doing so (marked *, left out of the
fit). The line "centralized" times ``greedy_forward_selection`` in this process (all cores).
``labkit.measure_collectives`` times the collectives alone (2 processes: a one-number
all_reduce, broadcasts of 1e3-1e6 numbers); ``labkit.fit_cost_model`` takes latency and
bandwidth from it and the scoring rate from the table, and its prediction is printed beside
each measurement.

Run: ``python benchmarks/distributed_gfs.py [--sizes 500x2000,2000x2000,8000x2000,2000x20000]
[--nprocs 1,2,3] [--k 30] [--repeats 2] [--threads 1] [--dtype float64] [--json out.json]``.
Timings are only comparable on an otherwise idle machine.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time

# speed is measured with the machine's own fastest kernels and all its cores, not quick
# mode's CPU pins (labkit.infra.cpu_pins), which exist for reproducible numbers
os.environ.setdefault("LABKIT_PIN_CPU", "0")

import numpy as np
import torch
from gfs_two_layer import DTYPES, make_phi  # same instances as the centralized benchmark

import labkit


def centralized_step(Phi, y, k, repeats):
    best = np.inf
    for _ in range(repeats):
        t0 = time.perf_counter()
        labkit.greedy_forward_selection(Phi, y, k)
        best = min(best, time.perf_counter() - t0)
    return best / k


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", default="500x2000,2000x2000,8000x2000,2000x20000",
                   help="comma-separated NxM sizes of Phi")
    p.add_argument("--nprocs", default="1,2,3", help="comma-separated process counts")
    p.add_argument("--k", type=int, default=30, help="GFS steps per run")
    p.add_argument("--d", type=int, default=10, help="input dimension")
    p.add_argument("--dtype", choices=sorted(DTYPES), default="float64")
    p.add_argument("--repeats", type=int, default=2, help="launches per P (best kept)")
    p.add_argument("--threads", type=int, default=1, help="BLAS/torch threads per process")
    p.add_argument("--timeout", type=float, default=60.0, help="collective timeout, seconds")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", default=None, help="write the table and the fit to this path")
    args = p.parse_args(argv)

    sizes = [tuple(int(v) for v in s.split("x")) for s in args.sizes.split(",")]
    nprocs = tuple(int(v) for v in args.nprocs.split(","))
    if 1 not in nprocs:
        p.error("--nprocs: must include 1 (the baseline of the speed-ups)")
    cores = os.cpu_count()
    cpu = platform.processor() or platform.machine()
    print(f"distributed GFS benchmark: sizes {args.sizes}, P in {nprocs}, k={args.k}, "
          f"{args.dtype}, gloo on CPU; {cores} cores ({cpu}), torch {torch.__version__}, "
          f"python {sys.version.split()[0]}")
    if max(nprocs) * args.threads > cores:
        print(f"note: more than {cores} threads in all oversubscribes the cores; rows with "
              f"P > {cores} are marked * and left out of the cost-model fit")

    instances = [make_phi(m, N, args.d, DTYPES[args.dtype], "cpu", args.seed)
                 for N, m in sizes]
    central = [centralized_step(Phi, y, args.k, args.repeats) for Phi, y in instances]
    table = labkit.measure_steps(instances, args.k, nprocs, repeats=args.repeats,
                                 threads=args.threads, timeout_s=args.timeout)
    collectives = labkit.measure_collectives(2, dtype=args.dtype, threads=args.threads,
                                             timeout_s=args.timeout)
    model = labkit.fit_cost_model(table, collectives)
    table["model_s"] = model.step_time(table["N"], table["m"], table["nprocs"],
                                       table["itemsize"])
    base = table[table["nprocs"] == 1].set_index(["N", "m"])["step_s"]
    table["speedup"] = [base[(r.N, r.m)] / r.step_s for r in table.itertuples()]

    print()
    print(f"{'N':>6}{'m':>7}{'P':>4}{'ms/step':>10}{'score ms':>10}{'comm ms':>10}"
          f"{'model ms':>10}{'bytes/step':>12}{'speed-up':>10}")
    for (N, m), c in zip(sizes, central, strict=True):
        print(f"{N:>6}{m:>7}{'-':>4}{1e3 * c:>10.3f}{'':>10}{'':>10}{'':>10}{0:>12}"
              f"{'':>10}  centralized, in process")
        for r in table[(table["N"] == N) & (table["m"] == m)].itertuples():
            print(f"{N:>6}{m:>7}{r.nprocs:>4}{1e3 * r.step_s:>10.3f}{1e3 * r.score_s:>10.3f}"
                  f"{1e3 * r.comm_s:>10.3f}{1e3 * r.model_s:>10.3f}{r.bytes_per_step:>12,}"
                  f"{r.speedup:>9.2f}x{' *' if r.oversubscribed else ''}")
    print()
    print("collectives alone (2 processes, fastest of 50):")
    for r in collectives.itertuples():
        print(f"  broadcast of {r.bytes:>9,} bytes: {1e6 * r.broadcast_s:8.1f} us   "
              f"(one-number all_reduce: {1e6 * r.allreduce_s:.1f} us)")
    print()
    print("selections identical to centralized GFS: yes (asserted for every run)")
    print(f"cost model: overhead {1e6 * model.overhead_s:.1f} us/step, scoring "
          f"{1e9 * model.s_per_entry:.3f} ns per entry of Phi, latency "
          f"{1e6 * model.latency_s:.1f} us per collective round, broadcast bandwidth "
          f"{model.bandwidth_Bps / 1e9:.2f} GB/s")

    if args.json:
        out = dict(config=vars(args), cores=cores, torch=torch.__version__,
                   centralized_step_s=dict(zip(args.sizes.split(","), central, strict=True)),
                   table=table.to_dict(orient="records"),
                   collectives=collectives.to_dict(orient="records"), model=model.__dict__)
        with open(args.json, "w") as fh:
            json.dump(out, fh, indent=2, default=float)
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
