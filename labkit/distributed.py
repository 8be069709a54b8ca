"""Distributed greedy forward selection (Appendix D, Algorithm 2) on ``torch.distributed``.

The ``N`` candidate neurons are split into ``P`` contiguous blocks, one per process (rank),
whose sizes differ by at most one (:func:`partition_neurons`); every rank holds the labels
``y`` (``m`` samples) and the rows of ``Phi`` (``N x m`` neuron outputs) of its own block.
One step of Algorithm 2 (book chapter 8):

1. every rank scores its own candidates with the exact scorer of :mod:`labkit.gfs` (squared
   loss: one ``Phi_block @ u``; binary cross-entropy: chunked softplus);
2. ``all_reduce(MIN)`` of each rank's best score (for the cross-entropy also of its smallest
   ``|score|``, which sets the tie tolerance);
3. every rank names its lowest candidate within the tolerance of the global best, and an
   ``all_reduce(MIN)`` of these global indices picks the winner: the lowest global index,
   the rule of :func:`labkit.gfs.greedy_forward_selection`;
4. the owner ``broadcast``s the winner's row (``m`` values); every rank updates the shared
   iterate.

Steps 2-3 take two collectives, not one, because centralized GFS breaks ties among all scores
within a tolerance of the *global* minimum, which no rank knows before step 2. The per-row
scores are the same numbers the centralized code computes, so the selections and losses are
identical to centralized GFS (tested in ``tests/test_distributed.py``), and with them every
guarantee of chapters 2-3.

Entry points: :func:`distributed_gfs` (inside an initialised process group), :func:`spawn_gfs`
(spawns ``P`` local processes; notebooks) and the command line
``torchrun --nproc-per-node P -m labkit.distributed --data FILE.npz --k K --out OUT.json``
(``python -m labkit.distributed --help``). The backend follows the device: gloo on CPU,
NCCL on CUDA (one GPU per rank). :func:`bytes_per_step` and :class:`CostModel` describe the
communication and the time of one step.
"""

from __future__ import annotations

import argparse
import bisect
import contextlib
import datetime
import json
import math
import os
import socket
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch.distributed.elastic.multiprocessing.errors import record

from labkit.gfs import (
    LOSSES,
    GFSResult,
    _as_tensors,
    _bce_scores,
    _check_args,
    _check_labels,
    _matvec,
    _row_sq_norms,
    _sq_norm,
)
from labkit.runtime import get_device

DEFAULT_TIMEOUT_S = 60.0
# Rendezvous waits for the slowest rank's imports (seconds, more on a loaded machine), so it
# gets at least this long even when the collectives' timeout is short.
STARTUP_TIMEOUT_S = 120.0
FAULT_ENV = "LABKIT_DIST_FAULT"  # test-only fault injection: "RANK:STEP:MODE"
FAULT_MODES = ("crash", "raise", "hang")
_INDEX_BYTES = 8  # the winner's global index travels as int64
# LABKIT_THREADS: the count quick mode's CPU pins give the rank (labkit.cpu_pins)
_THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "LABKIT_THREADS")


class DistributedGFSError(RuntimeError):
    """A rank of a distributed GFS run failed, or a collective timed out.

    ``outcomes`` (set by :func:`spawn_gfs`) maps each rank to its exit code, its error
    message (``None`` if it wrote none) and whether the launcher had to terminate it."""

    outcomes: dict | None = None


# ------------------------------------------------------------------------------ partition


def _check_nprocs(P) -> int:
    if isinstance(P, bool) or not isinstance(P, (int, np.integer)) or P < 1:
        raise ValueError(f"nprocs: must be a positive integer (the number of processes P), "
                         f"got {P!r}")
    return int(P)


def partition_neurons(N: int, P: int) -> list[tuple[int, int]]:
    """Contiguous blocks ``[lo, hi)`` of the ``N`` neurons for ``P`` ranks, sizes differing
    by at most one (the first ``N % P`` blocks get the extra row). With ``P > N`` the last
    ``P - N`` blocks are empty; those ranks still join every collective. Chapter 8."""
    P = _check_nprocs(P)
    if isinstance(N, bool) or not isinstance(N, (int, np.integer)) or N < 1:
        raise ValueError(f"N: must be a positive integer (the number of neurons), got {N!r}")
    q, r = divmod(int(N), P)
    bounds, lo = [], 0
    for p in range(P):
        hi = lo + q + (p < r)
        bounds.append((lo, hi))
        lo = hi
    return bounds


def backend_for(device) -> str:
    """gloo for CPU tensors, NCCL for CUDA tensors."""
    return "nccl" if torch.device(device).type == "cuda" else "gloo"


def _check_inputs(Phi, y, k, loss, replacement):
    """The input checks of :func:`labkit.gfs.greedy_forward_selection`, same order and same
    messages, so that a bad call fails the same way whichever implementation runs it."""
    Phi, y = _as_tensors(Phi, y)
    _check_args(Phi.shape[0], k, loss, replacement)
    _check_labels(y, loss)
    return Phi, y


# -------------------------------------------------------------------------- communication


def bytes_per_step(m: int, P: int, *, itemsize: int = 8, loss: str = "mse") -> int:
    """Payload bytes the collectives of one step move: what the ranks hand to them, summed
    over ranks. Per rank, ``all_reduce`` of its best score (and, for ``bce``, its smallest
    ``|score|``: ``itemsize`` each) and of its candidate index (8 bytes); once per step the
    owner's broadcast row (``m * itemsize``). ``P = 1`` moves nothing across processes.
    Not counted: the transport's own headers and copies, and the one-off start-up
    (``P * 8`` bytes of block sizes, ``P * itemsize`` for the largest row norm). Chapter 8.
    """
    _check_nprocs(P)
    if loss not in LOSSES:
        raise ValueError(f"loss: unknown loss {loss!r}; allowed: {', '.join(LOSSES)}")
    if P == 1:
        return 0
    n_scores = 1 if loss == "mse" else 2
    return P * (n_scores * itemsize + _INDEX_BYTES) + m * itemsize


def _collective(what: str, step: int, rank: int, timeout_s, fn, *args, **kwargs) -> None:
    try:
        fn(*args, **kwargs)
    except RuntimeError as err:  # gloo and NCCL errors (DistBackendError) are RuntimeErrors
        limit = f" ({timeout_s:g} s)" if timeout_s else ""
        raise DistributedGFSError(
            f"rank {rank}: {what} at step {step} failed: a peer process died or did not "
            f"answer within the process-group timeout{limit}. Cause: {err}") from err


def _fault_after_step(fault, rank: int, step: int) -> None:
    if fault is None or fault[0] != rank or fault[1] != step:
        return
    mode = fault[2]
    if mode == "crash":  # a hard crash: no Python cleanup, sockets closed by the OS
        os._exit(3)
    if mode == "raise":
        raise RuntimeError(f"injected fault on rank {rank} after step {step}")
    time.sleep(3600)  # "hang": alive but silent, so peers can only notice by timeout


def parse_fault(text: str | None):
    """``"RANK:STEP:MODE"`` (test-only, from ``$LABKIT_DIST_FAULT``) -> tuple or ``None``."""
    if not text:
        return None
    parts = text.split(":")
    if len(parts) != 3 or parts[2] not in FAULT_MODES or not all(p.isdigit() for p in parts[:2]):
        raise ValueError(f"{FAULT_ENV}: expected RANK:STEP:MODE with MODE one of "
                         f"{', '.join(FAULT_MODES)}, got {text!r}")
    return int(parts[0]), int(parts[1]), parts[2]


# ----------------------------------------------------------------------------- one rank


def distributed_gfs(Phi_block, y, k: int, *, loss: str = "mse", replacement: bool = True,
                    group=None, timeout_s: float | None = None, fault=None):
    """Algorithm 2 (Appendix D) on one rank of an initialised process group; call it on
    every rank, rank ``r`` passing block ``r`` of the rows of ``Phi`` (contiguous, in rank
    order; any sizes, including empty) and the full labels ``y``.

    Returns ``(result, timings)``: the same :class:`labkit.gfs.GFSResult` on every rank,
    equal to ``greedy_forward_selection(Phi, y, k, loss=loss, replacement=replacement)`` on
    the stacked blocks, and this rank's per-step seconds ``score_s`` (its own candidates),
    ``comm_s`` (the three collectives, waiting for slower ranks included) and ``step_s``.
    ``group`` (default: the default group) must hold every rank, in global rank order;
    ``timeout_s`` is its timeout, quoted in errors; ``fault`` is for tests only (see
    :func:`parse_fault`). A failed peer or a timeout raises :class:`DistributedGFSError`.
    Chapter 8.
    """
    Phi_block, y = _as_tensors(Phi_block, y)
    rank, P = dist.get_rank(group), dist.get_world_size(group)
    dev, dtype = Phi_block.device, Phi_block.dtype
    n_local, m = Phi_block.shape

    def coll(what, step, fn, *args, **kwargs):
        _collective(what, step, rank, timeout_s, fn, *args, group=group, **kwargs)

    shapes = [torch.zeros(2, dtype=torch.long, device=dev) for _ in range(P)]
    coll("start-up all_gather of block shapes", -1, dist.all_gather, shapes,
         torch.tensor([n_local, m], device=dev))
    sizes = [int(s[0]) for s in shapes]
    widths = {int(s[1]) for s in shapes}
    if len(widths) != 1:
        raise ValueError(f"Phi_block: every rank's block needs the same number of columns m; "
                         f"got m = {sorted(widths)} across ranks")
    starts = np.concatenate([[0], np.cumsum(sizes)]).tolist()
    offset, N = starts[rank], starts[-1]
    _check_args(N, k, loss, replacement)
    _check_labels(y, loss)

    eps = torch.finfo(dtype).eps
    inf = torch.tensor(math.inf, dtype=dtype, device=dev)
    taken = torch.zeros(n_local, dtype=torch.bool, device=dev)
    order = np.empty(k, dtype=np.int64)
    losses = torch.empty(k, dtype=torch.float64, device=dev)
    times = {key: np.empty(k) for key in ("score_s", "comm_s", "step_s")}
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    row = torch.empty(m, dtype=dtype, device=dev)
    if loss == "mse":
        sq = _row_sq_norms(Phi_block)
        # centralized GFS scales its tie tolerance by the largest row norm over ALL rows
        sq_max = (sq.max() if n_local else torch.zeros((), dtype=dtype, device=dev)).reshape(1)
        coll("start-up all_reduce of the largest row norm", -1, dist.all_reduce, sq_max,
             op=dist.ReduceOp.MAX)
        row_norm_max = sq_max[0].sqrt()
        u = -y.clone()
    else:
        s = torch.zeros_like(y)

    for j in range(k):
        t0 = time.perf_counter()
        # the expressions below are those of greedy_forward_selection, term for term, so
        # that scores and tolerances are the same floating-point numbers
        if loss == "mse":
            scores = 2 * _matvec(Phi_block, u) + sq
            tol = 16 * eps * (2 * _sq_norm(u).sqrt() * row_norm_max + row_norm_max**2)
            best = torch.empty(1, dtype=dtype, device=dev)
        else:
            scores = _bce_scores(Phi_block, s, y, j)
            best = torch.empty(2, dtype=dtype, device=dev)
            best[1] = scores.abs().min() if n_local else inf
        if not replacement:
            scores = scores.masked_fill(taken, math.inf)
        best[0] = scores.min() if n_local else inf
        sync()
        t1 = time.perf_counter()

        coll("all_reduce of the best scores", j, dist.all_reduce, best, op=dist.ReduceOp.MIN)
        if loss == "bce":
            tol = 16 * eps * (1 + best[1])
        near = scores <= best[0] + tol
        first = int(torch.argmax(near.to(torch.uint8))) if n_local else 0
        cand = offset + first if n_local and bool(near[first]) else N
        index = torch.tensor([cand], dtype=torch.long, device=dev)
        coll("all_reduce of the candidate indices", j, dist.all_reduce, index,
             op=dist.ReduceOp.MIN)
        i = int(index.item())
        owner = bisect.bisect_right(starts, i) - 1
        if rank == owner:
            row.copy_(Phi_block[i - offset])
            taken[i - offset] = True
        coll("broadcast of the selected row", j, dist.broadcast, row, src=owner)
        t2 = time.perf_counter()

        order[j] = i
        if loss == "mse":
            u_sel = u + row
            losses[j] = _sq_norm(u_sel) / (m * (j + 1) ** 2)
            u = u_sel - y
        else:
            s = s + row
            z = s / (j + 1)
            losses[j] = (F.softplus(z) - y * z).mean()
        sync()
        t3 = time.perf_counter()
        times["score_s"][j], times["comm_s"][j], times["step_s"][j] = t1 - t0, t2 - t1, t3 - t0
        _fault_after_step(fault, rank, j)

    counts = np.bincount(order, minlength=N)
    return GFSResult(order, counts, losses.cpu().numpy(), loss, replacement), times


# ----------------------------------------------------------------------- local processes


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (bind to port 0). Another program
    could take it before the ranks rendezvous; a spawn then fails with an address-in-use
    error and can simply be repeated."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _rank_device(device, local_rank: int) -> torch.device:
    dev = torch.device(device)
    if dev.type == "cuda":
        dev = torch.device("cuda", local_rank)
        torch.cuda.set_device(dev)
    return dev


def _init_group(dev, init_method: str, rank: int, P: int, timeout_s: float):
    """Join the default group with a start-up timeout, then make the group the run uses,
    whose collectives fail after ``timeout_s``."""
    startup = datetime.timedelta(seconds=max(timeout_s, STARTUP_TIMEOUT_S))
    dist.init_process_group(backend_for(dev), init_method=init_method, rank=rank,
                            world_size=P, timeout=startup)
    return dist.new_group(timeout=datetime.timedelta(seconds=timeout_s))


@contextlib.contextmanager
def _rank_session(rank, P, port, device, timeout_s, threads, outdir):
    """What every spawned rank does around its work: join the group on its device, and on
    any failure write its error message into ``outdir`` and exit non-zero, so the launcher
    can report it; always leave the process group."""
    torch.set_num_threads(threads)
    try:
        dev = _rank_device(device, rank)
        yield dev, _init_group(dev, f"tcp://127.0.0.1:{port}", rank, P, timeout_s)
    except BaseException as err:  # noqa: B036 - report anything, then exit non-zero
        (Path(outdir) / f"error_{rank}.txt").write_text(f"{type(err).__name__}: {err}")
        sys.exit(1)
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()


def _worker(rank, P, port, problems, device, timeout_s, threads, outdir, fault):
    """One spawned rank (module level so that the "spawn" start method can import it, also
    from a notebook). ``problems`` holds this rank's ``(block, y, k, loss, replacement)``
    for each problem, solved one after the other in one process group, so the start-up
    (imports, rendezvous: seconds) is paid once. Rank 0 writes the results, every rank its
    timings, and a failing rank its error message, into ``outdir``."""
    out = Path(outdir)
    with _rank_session(rank, P, port, device, timeout_s, threads, outdir) as (dev, group):
        for n, (block, y, k, loss, replacement) in enumerate(problems):
            res, times = distributed_gfs(torch.from_numpy(block).to(dev),
                                         torch.from_numpy(y).to(dev), k, loss=loss,
                                         replacement=replacement, group=group,
                                         timeout_s=timeout_s, fault=fault)
            np.savez(out / f"times_{n}_{rank}.npz", **times)
            if rank == 0:
                np.savez(out / f"result_{n}.npz", order=res.order, losses=res.losses)


@contextlib.contextmanager
def _thread_env(threads: int):
    """Spawned children read these at import, before any of our code runs: NumPy's
    OpenBLAS (which does the ``Phi @ u`` of every step) takes its thread count from them."""
    saved = {v: os.environ.get(v) for v in _THREAD_VARS}
    os.environ.update({v: str(threads) for v in _THREAD_VARS})
    try:
        yield
    finally:
        for v, value in saved.items():
            if value is None:
                os.environ.pop(v, None)
            else:
                os.environ[v] = value


def _join(procs, grace_s: float, deadline_s: float | None) -> dict:
    """Wait for every process. Once one has failed, the others get ``grace_s`` to notice
    (through the process-group timeout) and exit by themselves; stragglers, and everything
    still running after ``deadline_s``, are terminated. Returns ``rank -> (exitcode,
    terminated)``."""
    start, failed_at, terminated = time.monotonic(), None, set()
    while any(p.is_alive() for p in procs):
        for p in procs:
            p.join(timeout=0.02)
        now = time.monotonic()
        if failed_at is None and any(p.exitcode not in (None, 0) for p in procs):
            failed_at = now
        late = failed_at is not None and now - failed_at > grace_s
        if late or (deadline_s is not None and now - start > deadline_s):
            for r, p in enumerate(procs):
                if p.is_alive():
                    p.terminate()
                    terminated.add(r)
            for p in procs:
                p.join(timeout=5)
                if p.is_alive():
                    p.kill()
                    p.join()
    return {r: (p.exitcode, r in terminated) for r, p in enumerate(procs)}


def _launch(target, rank_args, *, timeout_s, threads, deadline_s, fault, read):
    """Start ``target(rank, P, port, *rank_args[rank], timeout_s, threads, outdir, fault)``
    in ``P = len(rank_args)`` spawned processes, wait for all of them, and return
    ``read(outdir)``; if any rank fails, raise :class:`DistributedGFSError` with every
    rank's outcome."""
    import torch.multiprocessing as mp

    P = len(rank_args)
    ctx = mp.get_context("spawn")
    with tempfile.TemporaryDirectory(prefix="labkit-dist-") as tmp:
        port = free_port()
        procs = [ctx.Process(target=target, daemon=True,
                             args=(r, P, port, *rank_args[r], float(timeout_s), threads, tmp,
                                   fault))
                 for r in range(P)]
        with _thread_env(threads):
            for p in procs:
                p.start()
        try:
            # a survivor notices a dead or silent peer within the process-group timeout
            status = _join(procs, grace_s=timeout_s + 2, deadline_s=deadline_s)
        except BaseException:  # e.g. an interrupted notebook cell: leave no ranks behind
            for p in procs:
                p.kill()
                p.join()
            raise
        out = Path(tmp)
        outcomes = {}
        for r, (code, terminated) in status.items():
            err = out / f"error_{r}.txt"
            outcomes[r] = {"exitcode": code, "terminated": terminated,
                           "error": err.read_text() if err.exists() else None}
        if any(o["exitcode"] != 0 for o in outcomes.values()):
            lines = [f"rank {r}: " + ("terminated by the launcher (grace period or deadline "
                                      "passed)" if o["terminated"]
                                      else f"exit code {o['exitcode']}")
                     + (f": {o['error']}" if o["error"] else "" if o["terminated"]
                        else " (no error message: the process died)")
                     for r, o in outcomes.items()]
            error = DistributedGFSError(f"distributed GFS failed ({P} processes):\n"
                                        + "\n".join(lines))
            error.outcomes = outcomes
            raise error
        return read(out)


def spawn_gfs_batch(problems, *, nprocs: int = 2, device=None,
                    timeout_s: float = DEFAULT_TIMEOUT_S, threads: int | None = None,
                    deadline_s: float | None = None, _fault=None) -> list:
    """:func:`spawn_gfs` for several problems in one launch: ``problems`` is a list of dicts
    with keys ``Phi``, ``y``, ``k`` and optionally ``loss``, ``replacement``. The ``P``
    processes are started once and solve the problems in turn. Returns one
    ``(result, timings)`` pair per problem. Chapter 8."""
    P = _check_nprocs(nprocs)
    checked = []
    for n, prob in enumerate(problems):
        unknown = set(prob) - {"Phi", "y", "k", "loss", "replacement"}
        if unknown or not {"Phi", "y", "k"} <= set(prob):
            raise ValueError(f"problems[{n}]: needs keys Phi, y, k (optional: loss, "
                             f"replacement), got {sorted(prob)}")
        loss, replacement = prob.get("loss", "mse"), prob.get("replacement", True)
        Phi, y = _check_inputs(prob["Phi"], prob["y"], prob["k"], loss, replacement)
        checked.append((Phi, y, int(prob["k"]), loss, bool(replacement)))
    if not checked:
        raise ValueError("problems: empty; give at least one dict with Phi, y, k")
    if not timeout_s > 0:
        raise ValueError(f"timeout_s: must be positive seconds, got {timeout_s!r}")
    dev = get_device(device=None if device is None else str(device))
    if dev.type == "cuda" and P > torch.cuda.device_count():
        raise ValueError(f"nprocs: {P} ranks need {P} GPUs with NCCL, but "
                         f"{torch.cuda.device_count()} are visible; allowed: at most "
                         f"{torch.cuda.device_count()}")
    if threads is None:
        threads = max(1, (os.cpu_count() or 1) // P)
    per_rank = [[] for _ in range(P)]
    for Phi, y, k, loss, replacement in checked:
        Phi_np, y_np = Phi.cpu().numpy(), y.cpu().numpy()
        for r, (lo, hi) in enumerate(partition_neurons(Phi.shape[0], P)):
            per_rank[r].append((np.ascontiguousarray(Phi_np[lo:hi]), y_np, k, loss,
                                replacement))

    def read(out: Path):
        runs = []
        for n, (Phi, _, _, loss, replacement) in enumerate(checked):
            with np.load(out / f"result_{n}.npz") as saved:
                order, losses = saved["order"], saved["losses"]
            timings = {}
            for r in range(P):
                with np.load(out / f"times_{n}_{r}.npz") as t:
                    for key in t.files:
                        timings.setdefault(key, []).append(t[key])
            timings = {key: np.stack(v) for key, v in timings.items()}
            timings.update(nprocs=P, threads=threads, backend=backend_for(dev),
                           bytes_per_step=bytes_per_step(Phi.shape[1], P,
                                                         itemsize=Phi.element_size(),
                                                         loss=loss))
            result = GFSResult(order, np.bincount(order, minlength=Phi.shape[0]), losses,
                               loss, replacement)
            runs.append((result, timings))
        return runs

    t0 = time.perf_counter()
    runs = _launch(_worker, [(per_rank[r], dev.type) for r in range(P)], timeout_s=timeout_s,
                   threads=threads, deadline_s=deadline_s, fault=_fault, read=read)
    wall = time.perf_counter() - t0
    solve = sum(float(t["step_s"][0].sum()) for _, t in runs)
    for _, t in runs:
        t["start_s"] = wall - solve  # launch, imports, rendezvous, shut-down
    return runs


def spawn_gfs(Phi, y, k: int, *, nprocs: int = 2, loss: str = "mse", replacement: bool = True,
              device=None, timeout_s: float = DEFAULT_TIMEOUT_S, threads: int | None = None,
              deadline_s: float | None = None, _fault=None):
    """Run Algorithm 2 (Appendix D) in ``nprocs`` freshly spawned local processes, from a
    script or a notebook; the backend follows the device (``labkit.runtime.get_device``:
    gloo on CPU, NCCL with one GPU per rank on CUDA).

    Each rank receives only its block of rows of ``Phi`` (pickled to it). ``threads``
    (default: the CPU count divided by ``nprocs``, at least 1) caps each rank's BLAS and torch
    threads, so that ``P`` processes share the cores instead of oversubscribing them.
    ``timeout_s`` is the timeout of the run's process group: a rank whose peer dies or stops
    answering fails after at most this long (start-up, which waits for every rank's imports,
    gets at least ``STARTUP_TIMEOUT_S``); ``deadline_s`` (default none) bounds the whole run.
    ``_fault`` is for tests only: ``(rank, step, mode)`` with mode crash, raise or hang.

    Returns ``(result, timings)``: the :class:`labkit.gfs.GFSResult`, identical to
    ``greedy_forward_selection`` (same input errors too), and a dict with per-rank per-step
    seconds ``score_s``, ``comm_s``, ``step_s`` (arrays of shape ``(P, k)``),
    ``bytes_per_step``, ``nprocs``, ``threads``, ``backend`` and ``start_s`` (launch, imports,
    rendezvous). Raises :class:`DistributedGFSError` naming each rank's outcome if any rank
    fails. Several problems share one launch with :func:`spawn_gfs_batch`. Chapter 8.
    """
    return spawn_gfs_batch([{"Phi": Phi, "y": y, "k": k, "loss": loss,
                             "replacement": replacement}],
                           nprocs=nprocs, device=device, timeout_s=timeout_s, threads=threads,
                           deadline_s=deadline_s, _fault=_fault)[0]


def _probe_worker(rank, P, port, sizes, repeats, dtype, device, timeout_s, threads, outdir,
                  fault):
    """One rank of :func:`measure_collectives` (module level, for "spawn")."""
    del fault  # the launcher's signature; nothing to inject here
    out = Path(outdir)
    with _rank_session(rank, P, port, device, timeout_s, threads, outdir) as (dev, group):
        sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
        one = torch.zeros(1, dtype=getattr(torch, dtype), device=dev)

        def reduce():
            dist.all_reduce(one, op=dist.ReduceOp.MIN, group=group)

        def best_time(fn):
            # the fastest repeat is the collective's own cost; slower ones add the
            # scheduler's, which on a shared machine can be many times larger
            times = []
            for _ in range(repeats):
                t0 = time.perf_counter()
                fn()
                sync()
                times.append(time.perf_counter() - t0)
            return float(np.min(times))

        reduce()  # warm-up: first use connects the pairs
        allreduce = best_time(reduce)
        broadcast = []
        for n in sizes:
            buf = torch.zeros(n, dtype=one.dtype, device=dev)
            dist.broadcast(buf, src=0, group=group)
            # the root's broadcast may return before the data arrived; the reduction that
            # follows makes every timed iteration a completed round trip
            both = best_time(lambda b=buf: (dist.broadcast(b, src=0, group=group), reduce()))
            broadcast.append(max(both - allreduce, 0.0))
        if rank == 0:
            np.savez(out / "probe.npz", allreduce=allreduce, broadcast=np.array(broadcast))


def measure_collectives(nprocs: int = 2, sizes=(1_000, 10_000, 100_000, 1_000_000), *,
                        repeats: int = 50, dtype: str = "float64", device=None,
                        timeout_s: float = DEFAULT_TIMEOUT_S, threads: int = 1):
    """Time the collectives of Algorithm 2 in ``nprocs`` spawned processes (fastest of
    ``repeats``): an ``all_reduce`` of one number, and a ``broadcast`` of each length in
    ``sizes`` (numbers of ``dtype``). Returns a ``pandas.DataFrame`` with columns ``nprocs``,
    ``numbers``, ``bytes``, ``allreduce_s`` and ``broadcast_s``, for
    :func:`fit_cost_model`. Chapter 8."""
    import pandas as pd

    P = _check_nprocs(nprocs)
    if P < 2:
        raise ValueError(f"nprocs: collectives need at least 2 processes, got {P}")
    if dtype not in ("float32", "float64"):
        raise ValueError(f"dtype: unknown dtype {dtype!r}; allowed: float32, float64")
    dev = get_device(device=None if device is None else str(device))

    def read(out: Path):
        with np.load(out / "probe.npz") as probe:
            return float(probe["allreduce"]), probe["broadcast"]

    allreduce, broadcast = _launch(
        _probe_worker, [(tuple(int(n) for n in sizes), int(repeats), dtype, dev.type)] * P,
        timeout_s=timeout_s, threads=threads, deadline_s=None, fault=None, read=read)
    item = torch.finfo(getattr(torch, dtype)).bits // 8
    return pd.DataFrame({"nprocs": P, "numbers": list(sizes),
                         "bytes": [int(n) * item for n in sizes], "allreduce_s": allreduce,
                         "broadcast_s": broadcast})


def usable_nprocs(nprocs, device=None) -> tuple[int, ...]:
    """The process counts of ``nprocs`` this machine can run on ``device``: all of them on
    CPU (more processes than cores is allowed, only slower), at most one per GPU on CUDA."""
    dev = get_device(device=None if device is None else str(device))
    limit = torch.cuda.device_count() if dev.type == "cuda" else math.inf
    return tuple(int(P) for P in nprocs if P <= limit)


# ------------------------------------------------------------------------ measurements


def step_summary(timings: dict, skip: int = 1) -> dict:
    """Median seconds per step of one :func:`spawn_gfs` run (first ``skip`` steps dropped as
    warm-up): ``step_s`` on rank 0; ``score_s`` on the slowest rank (the critical path);
    ``comm_s`` on the rank that waited least, i.e. the collectives without load imbalance."""
    def med(key):
        return np.median(timings[key][:, skip:], axis=1)
    return {"nprocs": timings["nprocs"], "step_s": float(med("step_s")[0]),
            "score_s": float(med("score_s").max()), "comm_s": float(med("comm_s").min()),
            "bytes_per_step": timings["bytes_per_step"]}


def measure_steps(instances, k: int, nprocs=(1, 2), *, repeats: int = 1,
                  check: bool = True, **kwargs):
    """Time ``k`` steps of distributed GFS on each ``(Phi, y)`` of ``instances`` for every
    ``P`` in ``nprocs`` (one :func:`spawn_gfs_batch` launch per ``P`` and repeat; the best
    repeat by median step time is kept). With ``check``, every run must select exactly what
    centralized GFS selects. ``kwargs`` go to :func:`spawn_gfs_batch` (``loss`` and
    ``replacement`` to the problems). Returns a ``pandas.DataFrame``, one row per instance
    and ``P``: ``N``, ``m``, ``itemsize``, the columns of :func:`step_summary` and
    ``oversubscribed`` (more ranks than CPU cores). Chapter 8."""
    import pandas as pd

    from labkit.gfs import greedy_forward_selection

    spec = {key: kwargs.pop(key) for key in ("loss", "replacement") if key in kwargs}
    problems = [{"Phi": Phi, "y": y, "k": k, **spec} for Phi, y in instances]
    references = [greedy_forward_selection(p["Phi"], p["y"], k, **spec).order if check else None
                  for p in problems]
    rows = []
    for P in nprocs:
        best = [None] * len(problems)
        for _ in range(repeats):
            runs = spawn_gfs_batch(problems, nprocs=P, **kwargs)
            for n, ((res, timings), ref) in enumerate(zip(runs, references, strict=True)):
                if ref is not None and not np.array_equal(res.order, ref):
                    raise AssertionError(f"nprocs={P}, instance {n}: distributed selection "
                                         "differs from the centralized one")
                row = step_summary(timings)
                if best[n] is None or row["step_s"] < best[n]["step_s"]:
                    best[n] = row
        # more ranks than cores: the timings then measure the scheduler, not the algorithm
        cpu = get_device(device=kwargs.get("device")).type == "cpu"
        over = cpu and P > (os.cpu_count() or 1)
        for p, row in zip(problems, best, strict=True):
            Phi = torch.as_tensor(p["Phi"])
            rows.append({"N": Phi.shape[0], "m": Phi.shape[1], "itemsize": Phi.element_size(),
                         **row, "oversubscribed": over})
    return pd.DataFrame(rows)


@dataclass(frozen=True)
class CostModel:
    """Time of one step of Algorithm 2 on ``P`` ranks (chapter 8)::

        t(N, m, P) = overhead_s + s_per_entry * ceil(N / P) * m
                     + [P > 1] * ceil(log2 P) * (3 * latency_s + m * itemsize / bandwidth_Bps)

    Scoring is one pass over the rank's ``ceil(N/P) x m`` block; the three collectives are
    modelled as binomial trees of ``ceil(log2 P)`` rounds, each round paying a latency, and
    the broadcast also its ``m * itemsize`` bytes. Fitted by :func:`fit_cost_model`."""

    overhead_s: float
    s_per_entry: float
    latency_s: float
    bandwidth_Bps: float

    def step_time(self, N, m, P, itemsize: int = 8):
        N, m, P = (np.asarray(v, dtype=float) for v in (N, m, P))
        rounds = np.ceil(np.log2(np.maximum(P, 1)))
        comm = rounds * (3 * self.latency_s + m * itemsize / self.bandwidth_Bps)
        return self.overhead_s + self.s_per_entry * np.ceil(N / P) * m + comm

    def speedup(self, N, m, P, itemsize: int = 8):
        """Centralized (``P = 1``) time per step over the time on ``P`` ranks."""
        return self.step_time(N, m, 1, itemsize) / self.step_time(N, m, P, itemsize)

    def break_even(self, m, P, itemsize: int = 8):
        """The width ``N`` above which ``P > 1`` ranks beat one: the scoring saved,
        ``s_per_entry * N * m * (1 - 1/P)``, equals the communication added (rounding of
        ``N / P`` ignored)."""
        m, P = np.asarray(m, dtype=float), np.asarray(P, dtype=float)
        comm = self.step_time(0, m, P, itemsize) - self.overhead_s
        return comm / (self.s_per_entry * m * (1 - 1 / P))


def fit_cost_model(table, collectives=None) -> CostModel:
    """Fit :class:`CostModel` by non-negative least squares to rows of :func:`measure_steps`
    (columns ``N, m, nprocs, itemsize, step_s, comm_s``; rows marked ``oversubscribed`` are
    left out). The compute part (``step_s - comm_s`` against ``ceil(N/P) * m``) always comes
    from ``table``. The communication part comes from ``collectives`` when given (rows of
    :func:`measure_collectives`: the latency is the one-number ``all_reduce`` time, the
    bandwidth the slope of the ``broadcast`` time against its bytes, both per tree round),
    otherwise from the ``comm_s`` of the rows with ``P > 1`` (``comm_s / ceil(log2 P)``
    against ``m * itemsize``; infinite bandwidth without two distinct ``m``).
    """
    from scipy.optimize import nnls

    if "oversubscribed" in table:
        table = table[~table["oversubscribed"].astype(bool)]
    N, m, P, item = (np.asarray(table[c], dtype=float) for c in ("N", "m", "nprocs", "itemsize"))
    step, comm = np.asarray(table["step_s"], float), np.asarray(table["comm_s"], float)
    (overhead, per_entry), _ = nnls(np.column_stack([np.ones_like(N), np.ceil(N / P) * m]),
                                    step - comm)
    if collectives is not None:
        rounds = np.ceil(np.log2(np.asarray(collectives["nprocs"], dtype=float)))
        sent = np.asarray(collectives["bytes"], dtype=float)
        (_, inv_bw), _ = nnls(np.column_stack([np.ones_like(sent), sent]),
                              np.asarray(collectives["broadcast_s"], float) / rounds)
        latency = float(np.median(np.asarray(collectives["allreduce_s"], float) / rounds))
        return CostModel(float(overhead), float(per_entry), latency,
                         float(1 / inv_bw) if inv_bw > 0 else math.inf)
    multi = P > 1
    per_round = comm[multi] / np.ceil(np.log2(P[multi]))
    sent = m[multi] * item[multi]
    if len(np.unique(sent)) >= 2:
        (lat3, inv_bw), _ = nnls(np.column_stack([np.ones_like(sent), sent]), per_round)
    else:
        lat3, inv_bw = (float(per_round.mean()) if len(sent) else 0.0), 0.0
    return CostModel(float(overhead), float(per_entry), float(lat3 / 3),
                     float(1 / inv_bw) if inv_bw > 0 else math.inf)


# ------------------------------------------------------------------------------ figures


def plot_step_times(table, model: CostModel | None = None):
    """Measured seconds per step against the number of processes ``P``, one line per size
    ``N x m`` (rows of :func:`measure_steps`), with the fitted ``model`` dashed; hollow
    markers are oversubscribed runs. Chapter 8."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    for n, ((N, m), rows) in enumerate(table.groupby(["N", "m"])):
        rows = rows.sort_values("nprocs")
        color = f"C{n}"
        ax.plot(rows["nprocs"], 1e3 * rows["step_s"], "-", color=color,
                label=f"N = {N:,}, m = {m:,}")
        over = (rows["oversubscribed"].to_numpy(bool) if "oversubscribed" in rows
                else np.zeros(len(rows), bool))
        for part, face in ((rows[~over], color), (rows[over], "white")):
            ax.plot(part["nprocs"], 1e3 * part["step_s"], "o", color=color, mfc=face)
        if model is not None:
            P = np.arange(1, rows["nprocs"].max() + 1)
            t = model.step_time(N, m, P, int(rows["itemsize"].iloc[0]))
            ax.plot(P, 1e3 * t, "--", color=color, lw=1)
    ax.set_yscale("log")
    ax.set_xticks(sorted(table["nprocs"].unique()))
    ax.set_xlabel("processes $P$")
    ax.set_ylabel("time per step (ms)")
    ax.set_title("measured (dots; hollow: more processes than cores)"
                 + (", cost model (dashed)" if model else ""), fontsize=9)
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    return fig


def plot_speedup(model: CostModel, m: int, *, widths, nprocs=(2, 4), channels=(),
                 max_procs: int = 64, itemsize: int = 8):
    """What the fitted ``model`` predicts. Left: time per step against ``P`` up to
    ``max_procs`` for each width in ``widths``; right: the speed-up over ``P = 1`` against
    the width ``N`` for each ``P`` in ``nprocs``, with the block widths ``channels`` marked
    (the Figure 4 setting). Chapter 8."""
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(10.5, 3.8))
    P = np.unique(np.geomspace(1, max_procs, 40).astype(int))
    for n, N in enumerate(widths):
        left.loglog(P, 1e3 * model.step_time(N, m, P, itemsize), color=f"C{n}",
                    label=f"N = {N:,}")
    left.set_xlabel("processes $P$")
    left.set_ylabel("predicted time per step (ms)")
    left.legend(fontsize=8)
    Ns = np.unique(np.geomspace(8, 10 * max(widths), 200).astype(int))
    for n, p in enumerate(nprocs):
        right.semilogx(Ns, model.speedup(Ns, m, p, itemsize), color=f"C{n}", label=f"P = {p}")
        if len(channels):
            right.plot(channels, model.speedup(np.asarray(channels), m, p, itemsize), "o",
                       color=f"C{n}")
    right.axhline(1, color="0.6", lw=0.8)
    for c in channels:
        right.axvline(c, color="0.85", lw=0.8, zorder=0)
    right.set_xlabel("neurons (channels) $N$")
    right.set_ylabel("predicted speed-up over $P=1$")
    right.legend(fontsize=8)
    fig.suptitle(f"cost model fitted on this machine, m = {m:,}", fontsize=10)
    fig.tight_layout()
    return fig


# ------------------------------------------------------------------------- command line


def _load_table(path: Path, names) -> dict:
    if path.suffix == ".npz":
        with np.load(path) as data:
            found = {n: data[n] for n in names if n in data.files}
    elif path.suffix == ".pt":
        data = torch.load(path, map_location="cpu", weights_only=True)
        found = {n: np.asarray(data[n]) for n in names if n in data}
    else:
        raise ValueError(f"--data: unknown file type {path.suffix!r}; allowed: .npz, .pt")
    missing = [n for n in names if n not in found]
    if missing:
        raise ValueError(f"--data: {path} lacks {', '.join(missing)}; it needs arrays named "
                         f"{', '.join(names)}")
    return found


def _rank_block(args, rank: int, P: int):
    """This rank's rows of ``Phi`` and the labels, from a stored matrix or a network."""
    from labkit.model import ACTIVATIONS, TwoLayerNet

    if args.net is None:
        data = _load_table(args.data, ("Phi", "y"))
        Phi, y = _check_inputs(data["Phi"], data["y"], args.k, args.loss, args.replacement)
        lo, hi = partition_neurons(Phi.shape[0], P)[rank]
        return Phi[lo:hi].contiguous(), y
    data = _load_table(args.data, ("X", "y"))
    state = torch.load(args.net, map_location="cpu", weights_only=True)
    if not {"W", "b"} <= set(state):
        raise ValueError(f"--net: {args.net} is not a TwoLayerNet state dict (needs W and b)")
    W = state["W"]
    X = torch.as_tensor(data["X"], dtype=W.dtype)
    y = torch.as_tensor(data["y"], dtype=W.dtype)
    if X.ndim != 2 or X.shape[1] != W.shape[1]:
        raise ValueError(f"--data: X must have shape (m, d={W.shape[1]}), got {tuple(X.shape)}")
    N = W.shape[0]
    _check_args(N, args.k, args.loss, args.replacement)
    lo, hi = partition_neurons(N, P)[rank]
    # only this rank's neurons are evaluated: TwoLayerNet.neuron_outputs on rows lo:hi
    net = TwoLayerNet(W.shape[1], N, activation=args.activation, dtype=W.dtype)
    net.load_state_dict(state)
    with torch.no_grad():
        block = net.b[lo:hi, None] * ACTIVATIONS[net.activation](net.W[lo:hi] @ X.T)
    return block.contiguous(), y


def _write_atomic(path: Path, payload: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(payload, indent=1))
    os.replace(tmp, path)  # readers see the old file or the new one, never half of one


def _parser() -> argparse.ArgumentParser:
    from labkit.model import ACTIVATIONS

    p = argparse.ArgumentParser(
        prog="torchrun --nproc-per-node P -m labkit.distributed",
        description="Distributed greedy forward selection (Appendix D, Algorithm 2; book "
                    "chapter 8). Every rank loads the input and keeps only its block of "
                    "neurons; rank 0 writes the result (JSON, atomically). Without torchrun "
                    "it runs as a single process.",
        epilog="Input, either: --data FILE.npz|.pt with arrays Phi (N, m) and y (m,); or "
               "--net STATE.pt (a TwoLayerNet state dict, W (N, d) and b (N,)) with --data "
               "holding X (m, d) and y (m,). Output JSON: order, losses, loss, replacement, "
               "N, m, k, nprocs, bytes_per_step, step_s (rank 0's seconds per step).")
    p.add_argument("--data", type=Path, required=True, help="Phi and y, or X and y with --net")
    p.add_argument("--net", type=Path, default=None, help="TwoLayerNet state dict (torch.save)")
    p.add_argument("--activation", default="tanh", choices=sorted(ACTIVATIONS),
                   help="the network's activation (with --net)")
    p.add_argument("--k", type=int, required=True, help="neurons to select")
    p.add_argument("--loss", default="mse", choices=LOSSES)
    p.add_argument("--no-replacement", dest="replacement", action="store_false",
                   help="forbid selecting a neuron twice")
    p.add_argument("--out", type=Path, required=True, help="result file (.json)")
    p.add_argument("--device", default=None, help="cpu or cuda (default: labkit's choice)")
    p.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT_S,
                   help="timeout of the collectives in seconds (default %(default)s; "
                   f"start-up gets at least {STARTUP_TIMEOUT_S:g})")
    p.add_argument("--threads", type=int, default=None, help="torch threads per rank")
    return p


@record  # torchrun's failure summary then shows the failing rank's traceback
def main(argv=None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    for name in ("data", "net"):
        path = getattr(args, name)
        if path is not None and not path.is_file():
            parser.error(f"argument --{name}: no such file: {path}")
    if args.k < 1:
        parser.error(f"argument --k: must be a positive integer, got {args.k}")
    if not args.timeout > 0:
        parser.error(f"argument --timeout: must be positive seconds, got {args.timeout}")
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    # torchrun sets these; without it, a one-process group on a free local port
    rank = int(os.environ.get("RANK", 0))
    P = int(os.environ.get("WORLD_SIZE", 1))
    if "MASTER_ADDR" not in os.environ:
        os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(free_port()))
    try:
        block, y = _rank_block(args, rank, P)
    except ValueError as err:
        parser.error(str(err))
    dev = _rank_device(get_device(device=args.device), int(os.environ.get("LOCAL_RANK", 0)))
    group = _init_group(dev, "env://", rank, P, args.timeout)
    try:
        res, times = distributed_gfs(block.to(dev), y.to(dev), args.k, loss=args.loss,
                                     replacement=args.replacement, group=group,
                                     timeout_s=args.timeout,
                                     fault=parse_fault(os.environ.get(FAULT_ENV)))
    finally:
        dist.destroy_process_group()
    if rank == 0:
        _write_atomic(args.out, {
            "order": res.order.tolist(), "losses": res.losses.tolist(), "loss": res.loss,
            "replacement": res.replacement, "N": int(len(res.counts)), "m": int(y.shape[0]),
            "k": res.k, "nprocs": P,
            "bytes_per_step": bytes_per_step(int(y.shape[0]), P,
                                             itemsize=block.element_size(), loss=args.loss),
            "step_s": times["step_s"].tolist()})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
