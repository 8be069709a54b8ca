"""Benchmark: exact vectorized GFS (``labkit.greedy_forward_selection``) against per-candidate
loops, on the neuron-output matrix of a random tanh two-layer network.

Methods (all squared loss, with replacement, same data, same dtype and device):

- ``fast``: ``labkit.greedy_forward_selection`` (one ``Phi @ u`` product per step);
- ``ref-a``: one full evaluation per candidate, as in the published reference code: at every
  step, for every candidate ``i``, the candidate subnetwork's output is rebuilt from scratch
  as ``Phi[S + [i]].mean(0)`` and its loss evaluated;
- ``ref-b``: a stronger incremental loop: the running sum of the selected rows is kept and
  each candidate costs one O(m) evaluation ``||(s_j - (j+1) y) + Phi_i||^2`` (torch ops).

All three must select the same neurons (asserted). The effective memory traffic of a fast
step is ``N*m*itemsize`` bytes (one pass over ``Phi``) divided by the time per step, shown as
a fraction of this machine's copy bandwidth (read + write bytes of a 1 GiB tensor copy).

Run: ``python benchmarks/gfs_two_layer.py [--m 5000 --N 2000 --k 200] [--json out.json]``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import re
import sys
import time

# speed is measured with the machine's own fastest kernels and all its cores, not quick
# mode's CPU pins (labkit.infra.cpu_pins), which exist for reproducible numbers
os.environ.setdefault("LABKIT_PIN_CPU", "0")

import numpy as np

os.environ.setdefault("KINETO_LOG_LEVEL", "5")  # quiet torch.profiler start/stop logs
import torch  # noqa: E402

import labkit  # noqa: E402

DTYPES = {"float32": torch.float32, "float64": torch.float64}


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def blas_info() -> str:
    cfg = torch.__config__.show()
    match = re.search(r"BLAS_INFO=(\w+)", cfg)
    blas = match.group(1) if match else "unknown"
    if "Math Kernel Library" in cfg:
        mkl = re.search(r"Math Kernel Library Version ([\w.\-]+)", cfg)
        blas += f" (MKL {mkl.group(1)})" if mkl else " (MKL)"
    return blas


def make_phi(m, N, d, dtype, device, seed):
    """Phi (N, m) of a random tanh mean-field net on unit-sphere inputs; y from a tanh
    teacher on the same inputs (labkit.teacher_student)."""
    X, y = labkit.teacher_student(m, d, seed=seed, dtype=torch.float64)
    net = labkit.TwoLayerNet(d, N, activation="tanh", dtype=torch.float64,
                             generator=torch.Generator().manual_seed(seed + 1))
    with torch.no_grad():
        Phi = net.neuron_outputs(X)
    return Phi.to(dtype).contiguous().to(device), y.to(dtype).to(device)


def copy_bandwidth(device, gib=1.0, allocations=3, repeats=5):
    """Bandwidth of ``dst.copy_(src)`` for a ``gib`` GiB float32 tensor, counting read +
    write bytes: best of ``repeats`` copies for each of ``allocations`` fresh tensor pairs
    (on some VMs the rate depends on where the pages land). Returns the best overall and
    the best of each allocation."""
    n = int(gib * (1 << 30)) // 4
    per_alloc = []
    for _ in range(allocations):
        src = torch.ones(n, dtype=torch.float32, device=device)
        dst = torch.empty_like(src)
        dst.copy_(src)  # touch the pages
        best = math.inf
        for _ in range(repeats):
            sync(device)
            t0 = time.perf_counter()
            dst.copy_(src)
            sync(device)
            best = min(best, time.perf_counter() - t0)
        per_alloc.append(2 * n * 4 / best)
        del src, dst
    return max(per_alloc), per_alloc


def run_fast(Phi, y, k, repeats, device):
    times, res = [], None
    for _ in range(repeats):
        sync(device)
        t0 = time.perf_counter()
        res = labkit.greedy_forward_selection(Phi, y, k)
        sync(device)
        times.append(time.perf_counter() - t0)
    return res, min(times), times


def ref_a_step(Phi, y, S):
    """One GFS step, one full evaluation per candidate (the published strategy)."""
    scores = []
    for i in range(Phi.shape[0]):
        z = Phi[S + [i]].mean(0)
        scores.append(((z - y) ** 2).mean())
    return int(torch.argmin(torch.stack(scores)))


def ref_b_step(Phi, y, s, j):
    """One GFS step with the running sum ``s`` kept: one O(m) evaluation per candidate."""
    t = s - (j + 1) * y
    scores = []
    for i in range(Phi.shape[0]):
        diff = t + Phi[i]
        scores.append(torch.dot(diff, diff))
    return int(torch.argmin(torch.stack(scores)))


def run_reference(name, Phi, y, k, budget, device):
    """Run the reference for up to ``k`` steps, stopping early once ``budget`` seconds are
    spent; then extrapolate the remaining steps with a least-squares fit of the step time
    against the step index (ref-a's cost grows linearly in j; ref-b's is flat)."""
    S, step_times = [], []
    s = torch.zeros_like(y)
    t_start = time.perf_counter()
    for j in range(k):
        sync(device)
        t0 = time.perf_counter()
        if name == "ref-a":
            i = ref_a_step(Phi, y, S)
        else:
            i = ref_b_step(Phi, y, s, j)
            s = s + Phi[i]
        sync(device)
        step_times.append(time.perf_counter() - t0)
        S.append(i)
        if time.perf_counter() - t_start > budget and j + 1 < k:
            break
    measured = len(step_times)
    total_measured = float(sum(step_times))
    if measured == k:
        return dict(order=S, steps_measured=k, total_s=total_measured, extrapolated=False)
    js = np.arange(measured)
    slope, intercept = np.polyfit(js, step_times, 1) if measured > 2 else (0.0, np.mean(
        step_times))
    rest = np.arange(measured, k)
    total = total_measured + float(np.sum(np.maximum(intercept + slope * rest, 0.0)))
    return dict(order=S, steps_measured=measured, total_s=total, extrapolated=True,
                fit_intercept_s=float(intercept), fit_slope_s=float(slope))


def gemv_time(Phi, y, repeats, device):
    """Best time of one ``Phi @ u`` (torch), and the CPU-time / wall-time ratio over all
    repeats (about 1 when the BLAS runs the product on one thread)."""
    u = torch.randn_like(y)
    best, wall0, cpu0 = math.inf, time.perf_counter(), time.process_time()
    for _ in range(repeats):
        sync(device)
        t0 = time.perf_counter()
        Phi @ u
        sync(device)
        best = min(best, time.perf_counter() - t0)
    cores = (time.process_time() - cpu0) / (time.perf_counter() - wall0)
    return best, cores


def numpy_gemv_time(Phi, y, repeats):
    """Best time of the same product through NumPy's BLAS (CPU only), for comparison."""
    P, u = Phi.numpy(), torch.randn_like(y).numpy()
    best = math.inf
    for _ in range(repeats):
        t0 = time.perf_counter()
        P @ u
        best = min(best, time.perf_counter() - t0)
    return best


def profile_fast(Phi, y, k, top=8):
    """Per-op self CPU time of one fast run (torch.profiler)."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        labkit.greedy_forward_selection(Phi, y, k)
    rows = []
    for ev in sorted(prof.key_averages(), key=lambda e: -e.self_cpu_time_total)[:top]:
        rows.append(dict(op=ev.key, calls=ev.count, self_cpu_ms=ev.self_cpu_time_total / 1e3))
    return rows


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--m", type=int, default=5000, help="data points (columns of Phi)")
    p.add_argument("--N", type=int, default=2000, help="neurons (rows of Phi)")
    p.add_argument("--k", type=int, default=200, help="GFS steps")
    p.add_argument("--d", type=int, default=50, help="input dimension")
    p.add_argument("--dtype", choices=sorted(DTYPES), default="float32")
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=None, help="torch.set_num_threads")
    p.add_argument("--repeats", type=int, default=7, help="repeats of the fast method")
    p.add_argument("--ref-budget", type=float, default=180.0,
                   help="seconds per reference before timing stops and is extrapolated")
    p.add_argument("--skip-ref-a", action="store_true")
    p.add_argument("--bandwidth-gib", type=float, default=1.0)
    p.add_argument("--no-profile", action="store_true")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", type=str, default=None, help="write the figures to this path")
    args = p.parse_args(argv)

    if args.threads:
        torch.set_num_threads(args.threads)
    device, dtype = torch.device(args.device), DTYPES[args.dtype]
    Phi, y = make_phi(args.m, args.N, args.d, dtype, device, args.seed)
    N, m, k = args.N, args.m, args.k
    itemsize = Phi.element_size()
    step_bytes = N * m * itemsize

    env = dict(python=sys.version.split()[0], torch=torch.__version__,
               threads=torch.get_num_threads(), blas=blas_info(), device=str(device),
               cpu=platform.processor() or platform.machine())
    print(f"GFS benchmark: m={m} N={N} k={k} d={args.d} dtype={args.dtype} device={device}")
    print(f"torch {env['torch']}, torch.get_num_threads()={env['threads']}, BLAS={env['blas']}")

    bw, bw_each = copy_bandwidth(device, args.bandwidth_gib)
    print(f"copy bandwidth ({args.bandwidth_gib:g} GiB float32 tensor copy, read+write bytes): "
          f"{bw / 1e9:.2f} GB/s (best of 5 copies x 3 allocations; per allocation: "
          f"{', '.join(f'{v / 1e9:.1f}' for v in bw_each)} GB/s)")

    fast, fast_t, fast_all = run_fast(Phi, y, k, args.repeats, device)
    fast_order = [int(i) for i in fast.order]
    gemv, gemv_cores = gemv_time(Phi, y, 20, device)
    np_gemv = numpy_gemv_time(Phi, y, 20) if device.type == "cpu" else None

    refs = {}
    for name in ("ref-b", "ref-a"):
        if name == "ref-a" and args.skip_ref_a:
            continue
        print(f"running {name} ...", flush=True)
        r = run_reference(name, Phi, y, k, args.ref_budget, device)
        n = r["steps_measured"]
        if r["order"] != fast_order[:n]:
            bad = next(j for j in range(n) if r["order"][j] != fast_order[j])
            raise AssertionError(f"{name} selects {r['order'][bad]} at step {bad}, "
                                 f"fast selects {fast_order[bad]}")
        refs[name] = r

    rows = [("fast (labkit)", fast_t, False, k)]
    for name, label in (("ref-a", "ref-a: full eval/candidate"),
                        ("ref-b", "ref-b: incremental loop")):
        if name in refs:
            r = refs[name]
            rows.append((label, r["total_s"], r["extrapolated"], r["steps_measured"]))

    print()
    print(f"{'method':<28}{'total s':>12}{'ms/step':>12}{'speed-up':>12}  note")
    for label, total, extrap, n in rows:
        note = (f"EXTRAPOLATED from {n}/{k} measured steps (linear fit in j)" if extrap
                else (f"best of {args.repeats}" if label.startswith("fast")
                      else "measured, full run"))
        print(f"{label:<28}{total:>12.3f}{total / k * 1e3:>12.3f}{total / fast_t:>11.1f}x  "
              f"{note}")
    per_step = fast_t / k
    traffic = step_bytes / per_step
    print()
    print(f"selections identical: yes (fast vs {', '.join(refs)}; "
          f"{len(set(fast_order))} distinct of k={k})")
    print(f"fast: {per_step * 1e3:.3f} ms/step; one pass over Phi = {step_bytes / 1e6:.1f} MB; "
          f"effective traffic {traffic / 1e9:.2f} GB/s = {100 * traffic / bw:.1f}% of copy "
          "bandwidth")
    print(f"torch GEMV Phi@u alone: {gemv * 1e3:.3f} ms ({step_bytes / gemv / 1e9:.2f} GB/s = "
          f"{100 * step_bytes / gemv / bw:.1f}% of copy bandwidth); busy cores "
          f"{gemv_cores:.2f} of {env['threads']} threads")
    if np_gemv is not None:
        print(f"same GEMV through NumPy ({np.__version__}, its own BLAS): {np_gemv * 1e3:.3f} ms "
              f"({step_bytes / np_gemv / 1e9:.2f} GB/s = {100 * step_bytes / np_gemv / bw:.1f}% "
              "of copy bandwidth)")
    # the bare product: the faster of the two kernels, measured in this run
    kernel = gemv if np_gemv is None else min(gemv, np_gemv)
    overhead = per_step / kernel
    print(f"per-step remainder beyond the bare GEMV: {1e3 * (per_step - kernel):.3f} ms "
          f"({100 * (per_step - kernel) / per_step:.0f}% of a step)")
    targets = {}
    if "ref-a" in refs:
        sp = refs["ref-a"]["total_s"] / fast_t
        targets["speedup_vs_ref_a>=100"] = bool(sp >= 100)
        print(f"target speed-up >= 100x vs ref-a: {sp:.0f}x -> "
              f"{'MET' if sp >= 100 else 'MISSED'}")
    targets["step<=1.2x_bare_gemv"] = bool(overhead <= 1.2)
    print(f"target one step <= 1.2x the bare GEMV: {overhead:.2f}x -> "
          f"{'MET' if overhead <= 1.2 else 'MISSED'}")
    frac = traffic / bw
    targets["traffic>=50%_of_copy_bw"] = bool(frac >= 0.5)
    print(f"target traffic >= 50% of copy bandwidth: {100 * frac:.1f}% -> "
          f"{'MET' if frac >= 0.5 else 'MISSED'}")

    prof = []
    if not args.no_profile:
        prof = profile_fast(Phi, y, k)
        print("\nprofile of one fast run (torch.profiler, self CPU time):")
        for row in prof:
            print(f"  {row['op']:<32}{row['calls']:>8} calls{row['self_cpu_ms']:>10.2f} ms")

    if args.json:
        out = dict(
            config=dict(m=m, N=N, k=k, d=args.d, dtype=args.dtype, device=str(device),
                        seed=args.seed),
            env=env,
            copy_bandwidth_Bps=bw,
            copy_bandwidth_per_allocation_Bps=bw_each,
            fast=dict(total_s=fast_t, all_repeats_s=fast_all, per_step_s=per_step,
                      traffic_Bps=traffic, traffic_fraction_of_copy=frac, gemv_s=gemv,
                      gemv_busy_cores=gemv_cores, numpy_gemv_s=np_gemv,
                      step_over_bare_gemv=overhead),
            references={name: {key: val for key, val in r.items() if key != "order"}
                        | dict(speedup=r["total_s"] / fast_t) for name, r in refs.items()},
            selections_identical=True,
            targets=targets,
            profile=prof,
        )
        with open(args.json, "w") as fh:
            json.dump(out, fh, indent=2)
        print(f"\nwrote {args.json}")


if __name__ == "__main__":
    main()
