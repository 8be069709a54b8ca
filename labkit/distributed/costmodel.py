"""Measuring distributed GFS and modelling its time per step (chapter 8).

:func:`measure_collectives` times the collectives of one step alone, :func:`measure_steps`
times whole runs for several process counts (checking each against centralized GFS), and
:class:`CostModel`, fitted by :func:`fit_cost_model`, predicts the time per step and the
speed-up for sizes and process counts this machine cannot run. The figures are
:func:`labkit.plotting.plot_step_times` and :func:`labkit.plotting.plot_speedup`.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist

from labkit.distributed.algorithm import _check_nprocs
from labkit.distributed.launch import DEFAULT_TIMEOUT_S, launch, rank_session, spawn_gfs_batch
from labkit.infra.runtime import get_device

# ------------------------------------------------------------------------- collectives


def _probe_worker(rank, P, port, sizes, repeats, dtype, device, timeout_s, threads, outdir):
    """One rank of :func:`measure_collectives` (module level, for "spawn")."""
    out = Path(outdir)
    with rank_session(rank, P, port, device, timeout_s, threads) as (dev, group):
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

    allreduce, broadcast = launch(
        _probe_worker, [(tuple(int(n) for n in sizes), int(repeats), dtype, dev.type)] * P,
        timeout_s=timeout_s, threads=threads, deadline_s=None, read=read)
    item = torch.finfo(getattr(torch, dtype)).bits // 8
    return pd.DataFrame({"nprocs": P, "numbers": list(sizes),
                         "bytes": [int(n) * item for n in sizes], "allreduce_s": allreduce,
                         "broadcast_s": broadcast})


# ------------------------------------------------------------------------- whole steps


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

    from labkit.algorithms.gfs import greedy_forward_selection

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


@dataclass(frozen=True)
class ChannelCostModel:
    """Time of one step of distributed channel GFS (:mod:`labkit.distributed.channels`) on
    ``P`` devices, each as fast as the one it was fitted on (chapter 8)::

        t(n, P) = fixed_s + per_candidate_s * ceil(n / P)
                  + [P > 1] * ceil(log2 P) * latency_s

    ``fixed_s`` is what every rank pays whatever its share: the frozen part of the network
    (everything before the group) and the per-step bookkeeping; ``per_candidate_s`` is one
    candidate's pass through the part the group changes; the score exchange is one
    ``all_reduce`` of ``n`` numbers, a latency per tree round (its bytes are negligible).
    Unlike Algorithm 2's, the fixed part is not split: the speed-up is at most
    ``(fixed_s + per_candidate_s * n) / fixed_s`` however many devices there are."""

    fixed_s: float
    per_candidate_s: float
    latency_s: float

    def step_time(self, n, P):
        n, P = np.asarray(n, dtype=float), np.asarray(P, dtype=float)
        rounds = np.ceil(np.log2(np.maximum(P, 1)))
        return self.fixed_s + self.per_candidate_s * np.ceil(n / P) + rounds * self.latency_s

    def speedup(self, n, P):
        return self.step_time(n, 1) / self.step_time(n, P)


def fit_channel_cost(n_candidates, score_s, latency_s: float) -> ChannelCostModel:
    """Fit :class:`ChannelCostModel` to one-process scoring times ``score_s`` measured at
    two or more candidate counts ``n_candidates`` (non-negative least squares), with the
    ``all_reduce`` latency measured by :func:`measure_collectives`."""
    from scipy.optimize import nnls

    n, t = np.asarray(n_candidates, dtype=float), np.asarray(score_s, dtype=float)
    if n.shape != t.shape or len(np.unique(n)) < 2:
        raise ValueError(f"n_candidates: need at least two distinct counts with one time "
                         f"each, got {n.tolist()} and {t.tolist()}")
    if not latency_s >= 0:
        raise ValueError(f"latency_s: must be non-negative seconds, got {latency_s!r}")
    (fixed, per), _ = nnls(np.column_stack([np.ones_like(n), n]), t)
    return ChannelCostModel(float(fixed), float(per), float(latency_s))


FIGURE4 = Path(__file__).resolve().parents[2] / "results" / "benchmarks" / \
    "channel_gfs_distributed.json"


def load_figure4(path=None):
    """The committed run of ``benchmarks/channel_gfs_distributed.py`` (the paper's Figure 4
    setting on this book's CPU): ``(measured, model, info)``, the measured rows and the
    fitted :class:`ChannelCostModel` rows as ``pandas.DataFrame`` s and the run's settings.
    Chapter 8."""
    import json

    import pandas as pd

    path = Path(path) if path is not None else FIGURE4
    if not path.exists():
        raise FileNotFoundError(f"path: no benchmark results at {path}; run "
                                f"python benchmarks/channel_gfs_distributed.py --json {path}")
    data = json.loads(path.read_text())
    model = pd.DataFrame(data["model"])
    model["model_step_s"] = [{int(P): t for P, t in d.items()} for d in model["model_step_s"]]
    info = {k: v for k, v in data.items() if k not in ("rows", "model")}
    return pd.DataFrame(data["rows"]), model, info
