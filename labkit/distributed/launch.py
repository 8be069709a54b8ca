"""Distributed GFS in local processes, from a script or a notebook (chapter 8).

:func:`spawn_gfs` / :func:`spawn_gfs_batch` start ``P`` ranks with
``torch.multiprocessing.start_processes`` ("spawn", so it works from a notebook), hand each
rank only its block of rows, and report every rank's outcome when one fails: a rank whose
peer died or went silent notices by itself within the process-group timeout and exits with
its own error; ranks still running after the grace period are terminated. The ranks
rendezvous over TCP on 127.0.0.1; the backend follows the device (gloo on CPU, NCCL with one
GPU per rank). Across machines, use ``torchrun -m labkit.distributed`` instead.
"""

from __future__ import annotations

import contextlib
import datetime
import math
import os
import pickle
import signal
import socket
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from labkit.algorithms.gfs import GFSResult
from labkit.distributed.algorithm import (
    DistributedGFSError,
    _check_inputs,
    _check_nprocs,
    backend_for,
    bytes_per_step,
    distributed_gfs,
    partition_neurons,
)
from labkit.infra.cpu_pins import thread_env as _thread_env
from labkit.infra.runtime import get_device

DEFAULT_TIMEOUT_S = 60.0
# Rendezvous waits for the slowest rank's imports (seconds, more on a loaded machine), so it
# gets at least this long even when the collectives' timeout is short.
STARTUP_TIMEOUT_S = 120.0
_STOPPED = (-signal.SIGTERM, -signal.SIGKILL)  # exit codes of a rank the launcher stopped


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (bind to port 0). Another program
    could take it before the ranks rendezvous; a spawn then fails with an address-in-use
    error and can simply be repeated."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def rank_device(device, local_rank: int) -> torch.device:
    """The rank's device: ``cuda:<local_rank>`` (made current) on CUDA, else ``device``."""
    dev = torch.device(device)
    if dev.type == "cuda":
        dev = torch.device("cuda", local_rank)
        torch.cuda.set_device(dev)
    return dev


def init_group(dev, init_method: str, rank: int, P: int, timeout_s: float):
    """Join the default group with a start-up timeout, then make the group the run uses,
    whose collectives fail after ``timeout_s``."""
    startup = datetime.timedelta(seconds=max(timeout_s, STARTUP_TIMEOUT_S))
    dist.init_process_group(backend_for(dev), init_method=init_method, rank=rank,
                            world_size=P, timeout=startup)
    return dist.new_group(timeout=datetime.timedelta(seconds=timeout_s))


@contextlib.contextmanager
def rank_session(rank, P, port, device, timeout_s, threads):
    """What every spawned rank does around its work: join the group on its device, and
    always leave it. An exception propagates to ``start_processes``, which records the
    rank's traceback for the launcher."""
    torch.set_num_threads(threads)
    try:
        dev = rank_device(device, rank)
        yield dev, init_group(dev, f"tcp://127.0.0.1:{port}", rank, P, timeout_s)
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()


def _worker(rank, P, port, problems, device, timeout_s, threads, outdir):
    """One spawned rank (module level, so that "spawn" can import it, also from a notebook).
    ``problems`` holds this rank's ``(block, y, k, loss, replacement)`` for each problem,
    solved one after the other in one process group, so the start-up (imports, rendezvous:
    seconds) is paid once. Rank 0 writes the results and every rank its timings into
    ``outdir``."""
    out = Path(outdir)
    with rank_session(rank, P, port, device, timeout_s, threads) as (dev, group):
        for n, (block, y, k, loss, replacement) in enumerate(problems):
            res, times = distributed_gfs(torch.from_numpy(block).to(dev),
                                         torch.from_numpy(y).to(dev), k, loss=loss,
                                         replacement=replacement, group=group,
                                         timeout_s=timeout_s)
            np.savez(out / f"times_{n}_{rank}.npz", **times)
            if rank == 0:
                np.savez(out / f"result_{n}.npz", order=res.order, losses=res.losses)


def _error_message(path: str) -> str | None:
    """The exception line(s) of the traceback ``start_processes`` recorded for a rank."""
    if not os.path.exists(path):
        return None
    with open(path, "rb") as fh:
        trace = pickle.load(fh)
    lines = trace.rstrip().splitlines()
    # the exception is the last line that starts at column 0 (messages may span lines)
    start = max((n for n, line in enumerate(lines) if line and not line[0].isspace()
                 and not line.startswith("Traceback")), default=0)
    text = "\n".join(lines[start:])
    return text.split(": ", 1)[1] if ": " in text.split("\n", 1)[0] else text


def _wait(ctx, grace_s: float, deadline_s: float | None) -> None:
    """Wait for every rank. Once one has failed, the others get ``grace_s`` to notice
    (through the process-group timeout) and exit by themselves before ``start_processes``
    terminates them; everything still running after ``deadline_s`` is terminated."""
    end = None if deadline_s is None else time.monotonic() + deadline_s
    try:
        while not ctx.join(timeout=None if end is None else max(end - time.monotonic(), 0.0),
                           grace_period=grace_s):
            if end is not None and time.monotonic() >= end:
                break
    except (mp.ProcessRaisedException, mp.ProcessExitedException):
        pass  # a rank failed; every rank has ended now, and each is reported below
    for p in ctx.processes:  # past the deadline, or interrupted: leave no rank behind
        if p.is_alive():
            p.terminate()
            p.join(timeout=5)
        if p.is_alive():
            p.kill()
            p.join()


def launch(target, rank_args, *, timeout_s, threads, deadline_s, read):
    """Run ``target(rank, P, port, *rank_args[rank], timeout_s, threads, outdir)`` in
    ``P = len(rank_args)`` spawned processes (``torch.multiprocessing.start_processes``),
    wait for all of them, and return ``read(outdir)``; if any rank fails, raise
    :class:`DistributedGFSError` with every rank's outcome."""
    P = len(rank_args)
    with tempfile.TemporaryDirectory(prefix="labkit-dist-") as tmp:
        for r, args in enumerate(rank_args):
            with open(Path(tmp) / f"args_{r}.pkl", "wb") as fh:
                pickle.dump(args, fh, protocol=pickle.HIGHEST_PROTOCOL)
        common = (target, P, free_port(), float(timeout_s), threads, tmp)
        with _thread_env(threads):
            ctx = mp.start_processes(_run_rank, args=common, nprocs=P, join=False,
                                     start_method="spawn")
        try:
            # a survivor notices a dead or silent peer within the process-group timeout
            _wait(ctx, grace_s=timeout_s + 2, deadline_s=deadline_s)
        except BaseException:  # e.g. an interrupted notebook cell: leave no ranks behind
            for p in ctx.processes:
                p.kill()
                p.join()
            raise
        finally:
            outcomes = {}
            for r, p in enumerate(ctx.processes):
                outcomes[r] = {"exitcode": p.exitcode, "terminated": p.exitcode in _STOPPED,
                               "error": _error_message(ctx.error_files[r])}
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(ctx.error_files[r])
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
        return read(Path(tmp))


def _run_rank(rank, target, P, port, timeout_s, threads, outdir):
    """What ``start_processes`` runs on each rank: load this rank's own arguments (written
    by :func:`launch`, so a rank receives its block of rows and no other) and call
    ``target``."""
    with open(Path(outdir) / f"args_{rank}.pkl", "rb") as fh:
        args = pickle.load(fh)
    target(rank, P, port, *args, timeout_s, threads, outdir)


def spawn_gfs_batch(problems, *, nprocs: int = 2, device=None,
                    timeout_s: float = DEFAULT_TIMEOUT_S, threads: int | None = None,
                    deadline_s: float | None = None) -> list:
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
    runs = launch(_worker, [(per_rank[r], dev.type) for r in range(P)], timeout_s=timeout_s,
                  threads=threads, deadline_s=deadline_s, read=read)
    wall = time.perf_counter() - t0
    solve = sum(float(t["step_s"][0].sum()) for _, t in runs)
    for _, t in runs:
        t["start_s"] = wall - solve  # launch, imports, rendezvous, shut-down
    return runs


def spawn_gfs(Phi, y, k: int, *, nprocs: int = 2, loss: str = "mse", replacement: bool = True,
              device=None, timeout_s: float = DEFAULT_TIMEOUT_S, threads: int | None = None,
              deadline_s: float | None = None):
    """Run Algorithm 2 (Appendix D) in ``nprocs`` freshly spawned local processes, from a
    script or a notebook; the backend follows the device (``labkit.infra.runtime.get_device``:
    gloo on CPU, NCCL with one GPU per rank on CUDA).

    Each rank receives only its block of rows of ``Phi``. ``threads``
    (default: the CPU count divided by ``nprocs``, at least 1) caps each rank's BLAS and torch
    threads, so that ``P`` processes share the cores instead of oversubscribing them.
    ``timeout_s`` is the timeout of the run's process group: a rank whose peer dies or stops
    answering fails after at most this long (start-up, which waits for every rank's imports,
    gets at least ``STARTUP_TIMEOUT_S``); ``deadline_s`` (default none) bounds the whole run.

    Returns ``(result, timings)``: the :class:`labkit.algorithms.gfs.GFSResult`, identical to
    ``greedy_forward_selection`` (same input errors too), and a dict with per-rank per-step
    seconds ``score_s``, ``comm_s``, ``step_s`` (arrays of shape ``(P, k)``),
    ``bytes_per_step``, ``nprocs``, ``threads``, ``backend`` and ``start_s`` (launch, imports,
    rendezvous). Raises :class:`DistributedGFSError` naming each rank's outcome if any rank
    fails. Several problems share one launch with :func:`spawn_gfs_batch`. Chapter 8.
    """
    return spawn_gfs_batch([{"Phi": Phi, "y": y, "k": k, "loss": loss,
                             "replacement": replacement}],
                           nprocs=nprocs, device=device, timeout_s=timeout_s, threads=threads,
                           deadline_s=deadline_s)[0]


def usable_nprocs(nprocs, device=None) -> tuple[int, ...]:
    """The process counts of ``nprocs`` this machine can run on ``device``: all of them on
    CPU (more processes than cores is allowed, only slower), at most one per GPU on CUDA."""
    dev = get_device(device=None if device is None else str(device))
    limit = torch.cuda.device_count() if dev.type == "cuda" else math.inf
    return tuple(int(P) for P in nprocs if P <= limit)
