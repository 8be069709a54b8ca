"""Benchmark: pre-training all seeds as one batched program vs a Python loop over seeds.

    python benchmarks/batched_pretraining.py              # the quick preset's shapes
    python benchmarks/batched_pretraining.py --steps 500 --seeds 5 --json out.json

For each (m, N), ``S`` tanh mean-field networks (one per seed, each with its own
teacher-student data) are trained for ``--steps`` full-batch GD iterations three ways:

- ``loop``: ``labkit.pretrain_gd`` (autograd) on each network in turn, the plain way;
- ``loop-manual``: ``labkit.train_batched`` on each network alone (batch of one), which
  isolates the gain of batching from that of the hand-written gradient;
- ``batched``: ``labkit.train_batched`` on all ``S`` networks at once (what chapter 4 runs).

All three must give the same losses and weights (max differences printed; float64 by
default, so they agree to rounding). Timings are best of ``--repeats``.

``--roofline MxN`` (default 1024x4096, d = 10, float32, one network) times one GD step of
``labkit.train_batched`` (the fused CPU step of ``labkit.algorithms.fused_gd``, and the unfused
PyTorch
one for comparison) as nanoseconds per entry of the ``m x N`` activation matrix, next to a
roofline measured in the same run: the ``tanh`` of the ``m x N`` pre-activations (timed
alone; the cheaper of PyTorch's and the fused step's own) plus the step's matrix products
(``2 m N d`` flops twice, ``2 m N`` twice) at the GEMM rate of this machine (a 2048^3
float32 product). Target: within 1.5x (issue 16).
"""

from __future__ import annotations

import argparse
import json
import os
import time

# speed is measured with the machine's own fastest kernels and all its cores, not quick
# mode's CPU pins (labkit.infra.cpu_pins), which exist for reproducible numbers
os.environ.setdefault("LABKIT_PIN_CPU", "0")

import numpy as np
import torch

import labkit


def setup(m, N, seeds, d, dtype):
    nets, data = [], []
    for seed in seeds:
        data.append(labkit.teacher_student(m, d, seed=seed, dtype=dtype))
        nets.append(labkit.TwoLayerNet(d, N, generator=torch.Generator().manual_seed(seed),
                                       dtype=dtype))
    return nets, data


def run_loop(m, N, seeds, d, dtype, steps, lr):
    nets, data = setup(m, N, seeds, d, dtype)
    t0 = time.perf_counter()
    hist = [labkit.pretrain_gd(n, X, y, steps=steps, lr=lr) for n, (X, y) in zip(nets, data,
                                                                               strict=True)]
    dt = time.perf_counter() - t0
    return dt, np.stack(hist, 1), torch.stack([n.W.detach() for n in nets])


def run_batched(m, N, seeds, d, dtype, steps, lr, one_at_a_time=False):
    nets, data = setup(m, N, seeds, d, dtype)
    X = torch.stack([x for x, _ in data])
    y = torch.stack([t for _, t in data])
    W = torch.stack([n.W.detach().clone() for n in nets])
    b = torch.stack([n.b.detach().clone() for n in nets])
    t0 = time.perf_counter()
    if one_at_a_time:
        hist = np.concatenate([labkit.train_batched(X[j:j + 1], y[j:j + 1], W[j:j + 1],
                                                    b[j:j + 1], steps=steps, lr=lr)
                               for j in range(len(seeds))], axis=1)
    else:
        hist = labkit.train_batched(X, y, W, b, steps=steps, lr=lr)
    return time.perf_counter() - t0, hist, W


def best(fn, repeats):
    runs = [fn() for _ in range(repeats)]
    return min(r[0] for r in runs), runs[0][1], runs[0][2]


def _best_time(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def roofline(m: int, N: int, d: int, repeats: int = 5) -> dict:
    """One float32 GD step of train_batched at (m, N, d), fused (the CPU default) and
    unfused (PyTorch), against its roofline (see the module docstring). A step's time is
    the difference of a 30-step and a 10-step run over 20, so that the set-up and the final
    loss evaluation cancel. The roofline takes the cheaper of the two ``tanh``s measured
    here (PyTorch's and the fused step's own, ``labkit.algorithms.fused_gd.tanh_array``)."""
    from labkit.algorithms import fused_gd

    g = torch.Generator().manual_seed(0)
    X = torch.randn(1, m, d, generator=g) / d**0.5
    y = torch.randn(1, m, generator=g).clamp(-1, 1)
    W0, b0 = torch.randn(1, N, d, generator=g), torch.sign(torch.randn(1, N, generator=g))

    def step_time(fused):
        def run(steps):
            labkit.train_batched(X, y, W0.clone(), b0.clone(), steps=steps, lr=0.1,
                                 fused=fused)

        run(2)  # warm-up (and numba's compilation)
        return (_best_time(lambda: run(30), repeats) - _best_time(lambda: run(10), repeats)) / 20

    step, step_unfused = step_time(True), step_time(False)
    Z = torch.bmm(X, W0.transpose(1, 2))
    out = torch.empty_like(Z)
    t_tanh_torch = _best_time(lambda: torch.tanh(Z, out=out), 20)
    Zn = Z.numpy()
    fused_gd.tanh_array(Zn)
    t_tanh_own = _best_time(lambda: fused_gd.tanh_array(Zn), 20)
    t_tanh = min(t_tanh_torch, t_tanh_own)
    A = torch.randn(2048, 2048, generator=g)
    t_gemm = _best_time(lambda: A @ A, 10)
    rate = 2 * 2048**3 / t_gemm
    flops = 2 * (2 * m * N * d) + 2 * (2 * m * N)
    bound = t_tanh + flops / rate
    return {"m": m, "N": N, "d": d, "step_s": step, "ns_per_entry": 1e9 * step / (m * N),
            "unfused_step_s": step_unfused, "tanh_torch_s": t_tanh_torch,
            "tanh_own_s": t_tanh_own, "tanh_s": t_tanh, "gemm_flops_per_s": rate,
            "products_s": flops / rate, "roofline_s": bound,
            "roofline_ns_per_entry": 1e9 * bound / (m * N), "ratio": step / bound,
            "unfused_ratio": step_unfused / bound}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--shapes", default="20x200,80x200,320x400",
                   help="comma-separated m x N pairs")
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--d", type=int, default=10)
    p.add_argument("--lr", type=float, default=0.5)
    p.add_argument("--dtype", choices=["float64", "float32"], default="float64")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--json", default=None)
    p.add_argument("--roofline", default="1024x4096",
                   help="m x N of the per-step roofline measurement ('' to skip)")
    args = p.parse_args(argv)
    dtype = getattr(torch, args.dtype)
    seeds = list(range(args.seeds))
    print(f"batched pre-training benchmark: {args.seeds} seeds, {args.steps} steps, "
          f"d={args.d}, {args.dtype}, torch {torch.__version__}, "
          f"threads={torch.get_num_threads()}")
    print(f"{'m x N':>10} {'loop s':>9} {'loop-manual s':>14} {'batched s':>10} "
          f"{'speed-up':>9} {'max |dloss|':>12} {'max |dW|':>10}")
    results = []
    for shape in args.shapes.split(","):
        m, N = (int(v) for v in shape.split("x"))
        common = (m, N, seeds, args.d, dtype, args.steps, args.lr)
        t_loop, h_loop, W_loop = best(lambda c=common: run_loop(*c), args.repeats)
        t_one, h_one, _ = best(lambda c=common: run_batched(*c, one_at_a_time=True),
                               args.repeats)
        t_bat, h_bat, W_bat = best(lambda c=common: run_batched(*c), args.repeats)
        dloss = float(np.abs(h_loop - h_bat).max())
        dW = float((W_loop - W_bat).abs().max())
        assert np.abs(h_one - h_bat).max() <= 1e-12 + 1e-6 * (dtype == torch.float32)
        print(f"{shape:>10} {t_loop:9.3f} {t_one:14.3f} {t_bat:10.3f} {t_loop / t_bat:8.1f}x "
              f"{dloss:12.2e} {dW:10.2e}")
        results.append({"m": m, "N": N, "loop_s": t_loop, "loop_manual_s": t_one,
                        "batched_s": t_bat, "speedup": t_loop / t_bat,
                        "max_abs_loss_diff": dloss, "max_abs_W_diff": dW})
    target = min(r["speedup"] for r in results)
    print(f"smallest speed-up {target:.1f}x (target >= 3x): {'MET' if target >= 3 else 'MISSED'}")
    roof = None
    if args.roofline:
        m, N = (int(v) for v in args.roofline.split("x"))
        roof = roofline(m, N, args.d)
        print(f"\none float32 GD step at m={m}, N={N}, d={args.d}: fused "
              f"{roof['ns_per_entry']:.2f} ns per m x N entry ({1e3 * roof['step_s']:.2f} ms); "
              f"unfused (PyTorch) {1e3 * roof['unfused_step_s']:.2f} ms "
              f"({roof['unfused_ratio']:.2f}x the roofline)")
        print(f"roofline: tanh {1e3 * roof['tanh_s']:.2f} ms (PyTorch's "
              f"{1e3 * roof['tanh_torch_s']:.2f}, the fused step's "
              f"{1e3 * roof['tanh_own_s']:.2f}) + products "
              f"{1e3 * roof['products_s']:.2f} ms at {roof['gemm_flops_per_s'] / 1e9:.0f} "
              f"GFLOP/s = {roof['roofline_ns_per_entry']:.2f} ns per entry")
        print(f"step / roofline = {roof['ratio']:.2f}x (target <= 1.5x): "
              f"{'MET' if roof['ratio'] <= 1.5 else 'MISSED'}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"args": vars(args), "results": results, "roofline": roof}, f,
                      indent=2)


if __name__ == "__main__":
    main()
