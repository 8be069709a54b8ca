"""Every CUDA code path of labkit at small size, each compared with a CPU computation made
in the same run: the check for the first minutes of a GPU loan (issue 15).

    python tools/gpu_check.py [--device cuda|cpu] [--out DIR] [--tests] [--only NAME ...]

One line per check, ``ok`` or ``MISMATCH`` with the numbers; exit code 1 if any check fails
or raises. The device defaults to CUDA when there is one, else CPU: on a CPU-only machine
the same checks run at tiny shapes (CI runs them, so this script is always tested). It needs
only what labkit needs at run time (torch, torchvision, numpy, scipy, pandas, matplotlib,
tqdm) and runs from the working tree (``PYTHONPATH=.``), as on the GPU machine, which has
its own Python and packages (``tools/gpu_run.sh`` installs the carried wheels). ``--out``
writes ``gpu_check.json`` (every check's numbers and the versions) there.

The checks:

- ``gfs-*``: GFS, squared loss and binary cross-entropy, with and without replacement,
  against a plain NumPy greedy loop that rebuilds every candidate's output (float64);
- ``batched-training``: ``train_batched`` (hand-written gradient, all networks in one
  program) against ``pretrain_gd`` (autograd) network by network on the CPU;
- ``threshold-cell`` and ``fig1-cell``: one cell of chapters 4 and 6 on the device against
  the same cell on the CPU (float64, synthetic digits for chapter 6);
- ``threshold-gpu-cell``: the paper-scale runs' cell (:mod:`labkit.experiments.threshold.cell_gpu`:
  spectra from the Gram matrix, the kernel and GFS on the device) against chapter 4's CPU
  cell (SVD, NumPy kernel), float64;
- ``channel-scorer`` and ``shrink``: chapter 7's batched channel scorer against one full
  forward pass per candidate, and the physically smaller network against the masked one;
- ``distributed``: ``spawn_gfs`` with NCCL on one GPU (two if visible; gloo with two
  processes on the CPU) against the NumPy loop;
- ``chapter-04``: chapter 4 run as a plain Python script in full mode on the device, sized
  down through ``$LABKIT_OVERRIDES``;
- ``unit-tests`` (``--tests``, default on CUDA): a CPU subset of the unit tests, since the
  GPU machine's torch is not the pinned one.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# comparisons are within this run, so the machine's fastest kernels, not quick mode's pins
os.environ.setdefault("LABKIT_PIN_CPU", "0")
os.environ.setdefault("MPLBACKEND", "Agg")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import torch  # noqa: E402

import labkit as lk  # noqa: E402

CHECKS = {}
TESTS = ["tests/test_gfs.py", "tests/test_bounds.py", "tests/test_frank_wolfe.py",
         "tests/test_model.py", "tests/test_train.py", "tests/test_threshold.py",
         "tests/test_config.py", "tests/test_rmt.py", "tests/test_channels.py"]


def check(name):
    def register(fn):
        CHECKS[name] = fn
        return fn
    return register


def close(a, b, rtol: float, atol: float = 0.0) -> tuple[bool, str]:
    a, b = (np.asarray(v, dtype=float) for v in (a, b))
    if a.shape != b.shape:
        return False, f"shapes {a.shape} and {b.shape}"
    diff = np.abs(a - b)
    ok = bool(np.all(diff <= atol + rtol * np.abs(b)))
    rel = float(np.max(diff / np.maximum(np.abs(b), 1e-300))) if diff.size else 0.0
    return ok, f"max |diff| {float(diff.max(initial=0)):.2e}, max rel {rel:.2e}"


def reference_gfs(Phi, y, k, loss, replacement):
    """Greedy forward selection from its definition: every candidate's pruned output is
    rebuilt as (selected sum + candidate) / (j + 1) and its loss evaluated."""
    Phi, y = np.asarray(Phi, np.float64), np.asarray(y, np.float64)
    total, order, losses = np.zeros_like(y), [], []
    for j in range(k):
        Z = (total + Phi) / (j + 1)
        if loss == "mse":
            scores = ((Z - y) ** 2).mean(1)
        else:
            scores = (np.logaddexp(0, Z) - y * Z).mean(1)
        if not replacement:
            scores[order] = np.inf
        i = int(np.argmin(scores))
        order.append(i)
        losses.append(scores[i])
        total += Phi[i]
    return np.array(order), np.array(losses)


def _gfs_problem(big: bool, loss: str, seed: int = 0):
    g = np.random.default_rng(seed)
    N, m = (400, 300) if big else (40, 30)
    Phi = g.normal(size=(N, m))
    y = g.uniform(-1, 1, m) if loss == "mse" else (g.random(m) > 0.5).astype(float)
    return Phi, y, (60 if big else 12)


for _loss in ("mse", "bce"):
    for _rep in (True, False):
        def _gfs(dev, big, loss=_loss, replacement=_rep):
            Phi, y, k = _gfs_problem(big, loss)
            res = lk.greedy_forward_selection(torch.tensor(Phi, device=dev),
                                              torch.tensor(y, device=dev), k, loss=loss,
                                              replacement=replacement)
            order, losses = reference_gfs(Phi, y, k, loss, replacement)
            same = np.array_equal(res.order, order)
            ok, detail = close(res.losses, losses, rtol=1e-9)
            return same and ok, (f"N={Phi.shape[0]} m={Phi.shape[1]} k={k}: selections "
                                 f"{'identical' if same else 'DIFFER'}; losses {detail}")
        check(f"gfs-{_loss}-{'rep' if _rep else 'norep'}")(_gfs)


@check("batched-training")
def _batched(dev, big):
    B, m, d, N, steps = (4, 200, 10, 300, 100) if big else (2, 20, 4, 16, 20)
    X = torch.stack([lk.teacher_student(m, d, seed=s, dtype=torch.float64)[0] for s in range(B)])
    y = torch.stack([lk.teacher_student(m, d, seed=s, dtype=torch.float64)[1] for s in range(B)])
    nets = [lk.TwoLayerNet(d, N, dtype=torch.float64, generator=torch.Generator().manual_seed(s))
            for s in range(B)]
    W = torch.stack([n.W.detach() for n in nets]).to(dev)
    b = torch.stack([n.b.detach() for n in nets]).to(dev)
    lk.train_batched(X.to(dev), y.to(dev), W, b, steps=steps, lr=0.5)
    for j, net in enumerate(nets):
        lk.pretrain_gd(net, X[j], y[j], steps=steps, lr=0.5)
    ref = torch.stack([n.W.detach() for n in nets])
    return close(W.cpu(), ref, rtol=1e-8, atol=1e-10)


def _threshold_cells(run_cell, dev, m, N, big, seed_keys=(), exact=("T_dense",)):
    """``run_cell`` (a chapter 4 cell) on ``dev`` against chapter 4's CPU cell, float64,
    both step rules: the rows' losses and movement, the per-seed ``seed_keys`` to rounding
    and the per-seed ``exact`` thresholds exactly."""
    from labkit.experiments.threshold.cell import run_cell as cpu_cell

    cfg = lk.config.get("threshold", mode="quick", dtype="float64", seeds=(0, 1), k=8,
                        grid=((N, (m, 2 * m)),),
                        checkpoints=(0, 20, 100, 150, 200) if big else (0, 5, 10, 15, 20))
    keys = ("dense_loss", f"pruned_{cfg.k}", "rel_first", "rel_second")
    ok, details = True, []
    for scaling in cfg.scalings:
        got = run_cell(cfg, m, N, 10, scaling, device=dev)
        ref = cpu_cell(cfg, m, N, 10, scaling, device="cpu")
        a, b = ([r[key] for r in out["rows"] for key in keys] +
                [p[key] for p in out["seeds"] for key in seed_keys] for out in (got, ref))
        same, detail = close(a, b, rtol=1e-7, atol=1e-12)
        same = same and all(p[key] == q[key] for key in exact
                            for p, q in zip(got["seeds"], ref["seeds"], strict=True))
        ok, details = ok and same, details + [f"{scaling}: {detail}"]
    return ok, "; ".join(details)


@check("threshold-cell")
def _threshold(dev, big):
    from labkit.experiments.threshold.cell import run_cell

    # both step rules' hand-written gradients on the device
    return _threshold_cells(run_cell, dev, *((128, 1024) if big else (8, 64)), big)


@check("threshold-gpu-cell")
def _threshold_gpu(dev, big):
    from labkit.experiments.threshold import cell_gpu as pretraining_gpu

    # issue 24's cell (spectra, kernel, GFS on the device)
    return _threshold_cells(pretraining_gpu.run_cell, dev,
                            *((256, 2048) if big else (8, 64)), big,
                            seed_keys=("sigma_min", "sigma_max", "kappa_inf", "L0",
                                       "sigma_min_end"), exact=("T_dense", "T_lin"))


@check("fig1-cell")
def _fig1(dev, big):
    from labkit.experiments.fig1 import cell as fig1

    g = torch.Generator().manual_seed(0)
    n, d = (2000, 784) if big else (200, 64)
    labels = torch.arange(n) % 10
    X = torch.randn(n, d, generator=g) + labels[:, None] * 0.1  # float32, as the digits
    X = X / X.norm(dim=1, keepdim=True)
    cfg = lk.config.get("fig1", mode="quick", sizes=(n // 2,), widths=(50,), seeds=(0, 1),
                        k=12, batch_size=32, checkpoints=(0, 50, 200) if big else (0, 10),
                        plateau=())
    cell = {**cfg.cell_params(), "size": n // 2, "N": 50}
    got = fig1.train_cell(cfg, X, labels, cell, dev)["rows"]
    ref = fig1.train_cell(cfg, X, labels, cell, "cpu")["rows"]
    keys = [k for k in got[0] if isinstance(got[0][k], float)]
    # accuracies may differ by one example where two logits are equal to rounding
    return close([[r[k] for k in keys] for r in got], [[r[k] for k in keys] for r in ref],
                 rtol=0, atol=1.5 / (n // 2))


def _deep_model(arch, dev):
    model = lk.build_deepnet(arch, width=0.0625 if arch == "resnet34" else 0.1,
                             in_channels=1, seed=3).double().to(dev).eval()
    g = torch.Generator().manual_seed(5)
    x = torch.randn(12, 1, 32, 32, generator=g, dtype=torch.float64).to(dev)
    y = torch.randint(10, (12,), generator=g).to(dev)
    return model, x, y


@check("channel-scorer")
def _scorer(dev, big):
    from labkit.deep import channel_gfs as cg

    worst, same = [], True
    for arch in ("resnet34", "mobilenet_v2"):
        model, x, y = _deep_model(arch, dev)
        chain, groups = lk.stages(model), lk.channel_groups(model)
        for group in (groups[0], groups[-1]):
            x_in = lk.run_chain(chain[:group.stage], x)
            h = group.inner(x_in)
            counts = torch.zeros(group.C, dtype=torch.float64, device=dev)
            counts[0] = 2
            cands = torch.arange(min(group.C, 12), device=dev)
            fast = cg.score_candidates(model, group, x_in, h, y, counts, cands)
            slow = cg.brute_force_scores(model, group, x, y, counts, cands)
            worst.append(close(fast.cpu(), slow.cpu(), rtol=1e-9, atol=1e-12))
            same &= cg.pick(fast, cands) == cg.pick(slow, cands)
    ok = all(o for o, _ in worst) and same
    return ok, f"{len(worst)} groups, picks {'identical' if same else 'DIFFER'}; " + \
        "; ".join(d for _, d in worst[:2])


@check("shrink")
def _shrink(dev, big):
    model, x, _ = _deep_model("resnet34", dev)
    g = torch.Generator().manual_seed(6)
    for group in lk.channel_groups(model):
        mask = torch.rand(group.C, generator=g, dtype=torch.float64) * 3
        mask[torch.rand(group.C, generator=g) < 0.5] = 0
        mask[0] = 1.5
        lk.set_mask(group, mask.to(dev))
    small = lk.shrink(model)
    with torch.no_grad():
        return close(small(x).cpu(), model(x).cpu(), rtol=1e-9, atol=1e-10)


@check("distributed")
def _distributed(dev, big):
    Phi, y, k = _gfs_problem(big, "mse", seed=1)
    P = (2 if torch.cuda.device_count() >= 2 else 1) if dev.type == "cuda" else 2
    res, timings = lk.spawn_gfs(Phi, y, k, nprocs=P, device=dev.type, timeout_s=60,
                                deadline_s=180)
    order, losses = reference_gfs(Phi, y, k, "mse", True)
    same = np.array_equal(res.order, order)
    ok, detail = close(res.losses, losses, rtol=1e-9)
    return same and ok, (f"{timings['backend']}, P={P}: selections "
                         f"{'identical' if same else 'DIFFER'}; losses {detail}")


@check("chapter-04")
def _chapter(dev, big):
    """Chapter 4 as a plain script: full mode (so the device is the GPU), small sizes."""
    N = 2048 if big else 256
    sizes = {"grid": [[N, [16, 32, 64]]], "seeds": [0, 1, 2], "k": 32,
             "checkpoints": [0, 10, 50, 100, 200, 500, 1000, 1500, 2000], "n_boot": 50}
    with tempfile.TemporaryDirectory() as results:
        env = {**os.environ, "LABKIT_MODE": "full", "LABKIT_RESULTS": results,
               "LABKIT_OVERRIDES": json.dumps({"threshold": sizes}),
               "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
               "CUDA_VISIBLE_DEVICES": os.environ.get("CUDA_VISIBLE_DEVICES", "0")
               if dev.type == "cuda" else ""}
        proc = subprocess.run([sys.executable, "chapters/04_how_much_pretraining.py"],
                              cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
        table = Path(results) / "full" / "threshold" / "results.csv"
        info = Path(results) / "full" / "threshold" / "manifest.json"
        if proc.returncode != 0 or not table.is_file():
            return False, f"exit {proc.returncode}: {proc.stderr.strip()[-400:]}"
        device = json.loads(info.read_text())["device"]
    ok = device.startswith(dev.type)
    return ok, f"ran in full mode on {device}; results.csv written"


def run_tests() -> tuple[bool, str]:
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           "-o", "addopts=", *TESTS], cwd=ROOT, capture_output=True,
                          text=True, timeout=400)
    tail = proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else proc.stderr[-300:]
    return proc.returncode == 0, tail


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default=None, help="cuda or cpu (default: cuda if any)")
    parser.add_argument("--out", type=Path, default=None, help="write gpu_check.json here")
    parser.add_argument("--tests", action=argparse.BooleanOptionalAction, default=None,
                        help="also run a CPU subset of the unit tests (default: on CUDA)")
    parser.add_argument("--only", nargs="+", choices=sorted(CHECKS), default=None)
    args = parser.parse_args(argv)
    dev = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    big = dev.type == "cuda"
    env = {"python": platform.python_version(), "torch": torch.__version__,
           "cuda": torch.version.cuda, "numpy": np.__version__, "device": str(dev),
           "gpus": torch.cuda.device_count(),
           "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None}
    print("gpu_check: " + ", ".join(f"{k} {v}" for k, v in env.items()), flush=True)
    results, start = [], time.perf_counter()
    names = args.only or list(CHECKS)
    for name in names:
        t0 = time.perf_counter()
        try:
            ok, detail = CHECKS[name](dev, big)
        except Exception as err:  # noqa: BLE001 - a check that raises is a failed check
            ok, detail = False, f"raised {type(err).__name__}: {str(err)[:300]}"
        seconds = time.perf_counter() - t0
        results.append({"check": name, "ok": bool(ok), "detail": detail, "seconds": seconds})
        print(f"gpu_check: {'ok      ' if ok else 'MISMATCH'} {name:18s} {detail} "
              f"({seconds:.1f} s)", flush=True)
    if args.tests if args.tests is not None else big:
        t0 = time.perf_counter()
        ok, detail = run_tests()
        results.append({"check": "unit-tests", "ok": ok, "detail": detail,
                        "seconds": time.perf_counter() - t0})
        print(f"gpu_check: {'ok      ' if ok else 'MISMATCH'} {'unit-tests':18s} {detail}")
    failed = [r["check"] for r in results if not r["ok"]]
    print(f"gpu_check: {len(results) - len(failed)} of {len(results)} ok in "
          f"{time.perf_counter() - start:.0f} s" + (f"; FAILED: {', '.join(failed)}"
                                                     if failed else ""))
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "gpu_check.json").write_text(json.dumps({"env": env, "checks": results},
                                                            indent=1))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
