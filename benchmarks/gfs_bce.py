"""Benchmark: binary cross-entropy GFS (chapter 6's Figure 1 pruning) against the cost of
evaluating softplus once per entry, on this machine, in the same run.

One BCE GFS step scores every candidate ``i`` by ``mean_c softplus(z_c) - y_c z_c`` with
``z = (s_j + Phi_i)/(j+1)``: one softplus per entry of the ``N x m`` matrix ``Phi``. So the
step's floor is the machine's softplus cost per entry. Methods:

- ``fast``: ``labkit.greedy_forward_selection(..., loss="bce")``
(``labkit.algorithms.gfs._BCEScores``);
- ``ref``: the same greedy loop scoring from the definition, ``(F.softplus(Z) - y Z).mean(1)``
  per block of rows (the implementation ``labkit`` had before), kept here as the reference.

Both must select the same neurons (asserted). The softplus cost per entry is timed two ways
on cache-sized blocks of ``Phi`` written into a preallocated buffer: torch's ``F.softplus``
and the cheapest softplus we know, ``|z|`` then ``sigmoid`` then ``log``, three vectorized
passes (what ``log(1 + exp(-|z|))`` costs); the faster is the reference. Target: one fast
step per entry within 1.5x of it.

Run: ``python benchmarks/gfs_bce.py [--N 2000 --m 50000 --k 6] [--json out.json]``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time

# speed is measured with the machine's own fastest kernels and all its cores, not quick
# mode's CPU pins (labkit.infra.cpu_pins), which exist for reproducible numbers
os.environ.setdefault("LABKIT_PIN_CPU", "0")

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

import labkit  # noqa: E402

DTYPES = {"float32": torch.float32, "float64": torch.float64}
BLOCK_ELEMENTS = 1 << 18  # softplus timed on blocks of 1 MiB (float32): cache-resident


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def make_problem(N, m, dtype, device, seed=0):
    """Pre-sigmoid contributions of a random ReLU network on unit-norm inputs, scaled so
    that the logits spread over a few units as in chapter 6, and binary labels."""
    g = torch.Generator().manual_seed(seed)
    d = 40
    X = torch.randn(m, d, generator=g)
    X /= X.norm(dim=1, keepdim=True)
    W = torch.randn(N, d, generator=g)
    b = torch.randn(N, generator=g) * 3
    Phi = b[:, None] * torch.relu(W @ X.T)
    y = (Phi.mean(0) + 0.3 * torch.randn(m, generator=g) > 0).to(Phi.dtype)
    return Phi.to(dtype=dtype, device=device), y.to(dtype=dtype, device=device)


def ref_gfs(Phi, y, k):
    """Greedy selection without replacement, scored from the definition per block of rows:
    the reference the fast scorer must agree with."""
    N, m = Phi.shape
    rows = max(1, (1 << 22) // m)
    s = torch.zeros_like(y)
    taken = torch.zeros(N, dtype=torch.bool, device=Phi.device)
    order = []
    for j in range(k):
        scores = torch.empty(N, dtype=Phi.dtype, device=Phi.device)
        for lo in range(0, N, rows):
            Z = (Phi[lo:lo + rows] + s) / (j + 1)
            scores[lo:lo + rows] = (F.softplus(Z) - y * Z).mean(1)
        scores = scores.masked_fill(taken, float("inf"))
        i = int(torch.argmin(scores))
        order.append(i)
        taken[i] = True
        s = s + Phi[i]
    return np.array(order)


def timed(fn, repeats, device):
    best = float("inf")
    for _ in range(repeats):
        sync(device)
        t0 = time.perf_counter()
        out = fn()
        sync(device)
        best = min(best, time.perf_counter() - t0)
    return best, out


def softplus_costs(Phi, repeats, device):
    """ns per entry of softplus over all of ``Phi``, block by block into one buffer:
    torch's ``F.softplus``, and ``|z|``, ``sigmoid``, ``log`` (three in-place passes)."""
    N, m = Phi.shape
    rows = max(1, BLOCK_ELEMENTS // m)
    buf = torch.empty(min(rows, N), m, dtype=Phi.dtype, device=device)

    def torch_softplus():
        for lo in range(0, N, rows):
            n = min(rows, N - lo)
            torch._C._nn.softplus(Phi[lo:lo + n], 1, 20, out=buf[:n])

    def composite():
        for lo in range(0, N, rows):
            n = min(rows, N - lo)
            out = buf[:n]
            torch.abs(Phi[lo:lo + n], out=out)
            torch.sigmoid(out, out=out)
            out.log_()

    entries = N * m
    return {name: timed(fn, repeats, device)[0] / entries * 1e9
            for name, fn in (("torch F.softplus", torch_softplus),
                             ("abs-sigmoid-log", composite))}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--N", type=int, default=2000, help="neurons (rows of Phi)")
    p.add_argument("--m", type=int, default=50000, help="data points (columns of Phi)")
    p.add_argument("--k", type=int, default=6, help="GFS steps timed per run")
    p.add_argument("--dtype", choices=sorted(DTYPES), default="float32")
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: all)")
    p.add_argument("--repeats", type=int, default=3, help="best of this many runs")
    p.add_argument("--json", type=str, default=None, help="write the figures to this path")
    args = p.parse_args(argv)
    for name in ("N", "m", "k", "repeats"):
        if getattr(args, name) < 1:
            p.error(f"--{name}: must be a positive integer, got {getattr(args, name)}")
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    N, m, k = args.N, args.m, args.k
    Phi, y = make_problem(N, m, DTYPES[args.dtype], device)
    entries = N * m
    print(f"BCE GFS benchmark: N={N} m={m} k={k} dtype={args.dtype} device={device}, "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"{platform.machine()}")

    fast_t, res = timed(lambda: labkit.greedy_forward_selection(
        Phi, y, k, loss="bce", replacement=False), args.repeats, device)
    ref_t, ref_order = timed(lambda: ref_gfs(Phi, y, k), 1, device)
    if not np.array_equal(res.order, ref_order):
        raise AssertionError(f"selections differ: fast {res.order.tolist()} vs reference "
                             f"{ref_order.tolist()}")
    costs = softplus_costs(Phi, args.repeats, device)
    softplus = min(costs.values())
    step_ms = fast_t / k * 1e3
    fast_ns = fast_t / k / entries * 1e9
    ref_ns = ref_t / k / entries * 1e9
    ratio = fast_ns / softplus

    print(f"selections identical: yes ({k} steps, fast vs reference)")
    print(f"{'':<32}{'ms/step':>10}{'ns/entry':>10}")
    print(f"{'fast (labkit)':<32}{step_ms:>10.1f}{fast_ns:>10.3f}")
    print(f"{'reference (F.softplus scores)':<32}{ref_t / k * 1e3:>10.1f}{ref_ns:>10.3f}")
    for name, ns in costs.items():
        print(f"{'softplus alone: ' + name:<32}{ns * entries / 1e6:>10.1f}{ns:>10.3f}")
    print(f"speed-up over the reference: {ref_t / fast_t:.1f}x")
    print(f"target one step per entry <= 1.5x the softplus per entry: {ratio:.2f}x -> "
          f"{'MET' if ratio <= 1.5 else 'NOT MET'}")
    if args.json:
        out = {"N": N, "m": m, "k": k, "dtype": args.dtype, "device": str(device),
               "threads": torch.get_num_threads(), "torch": torch.__version__,
               "fast": {"ms_per_step": step_ms, "ns_per_entry": fast_ns,
                        "step_over_softplus": ratio},
               "reference": {"ms_per_step": ref_t / k * 1e3, "ns_per_entry": ref_ns},
               "softplus_ns_per_entry": costs, "speedup_over_reference": ref_t / fast_t}
        with open(args.json, "w") as fh:
            json.dump(out, fh, indent=2)
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
