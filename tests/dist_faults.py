"""Fault injection for tests/test_distributed.py, kept out of labkit's own loop.

One rank crashes, raises or hangs right after the broadcast of a given step (the last
collective of a step) by wrapping ``torch.distributed.broadcast`` in that process only
(``all_reduce``, the score exchange, for channel GFS: :func:`channel_worker`):

- :func:`worker` replaces labkit's spawn worker (``monkeypatch`` on
  ``labkit.distributed.launch._worker``; ``functools.partial(worker, fault=...)``);
- ``python -m torch.distributed.run ... tests/dist_faults.py RANK:STEP:MODE <CLI args>``
  runs the torchrun command line with the fault.
"""

from __future__ import annotations

import os
import sys
import time

import torch.distributed as dist

MODES = ("crash", "raise", "hang")


def parse(text: str) -> tuple[int, int, str]:
    """``"RANK:STEP:MODE"`` -> ``(rank, step, mode)``."""
    parts = text.split(":")
    if len(parts) != 3 or parts[2] not in MODES or not all(p.isdigit() for p in parts[:2]):
        raise ValueError(f"fault: expected RANK:STEP:MODE with MODE one of {', '.join(MODES)}, "
                         f"got {text!r}")
    return int(parts[0]), int(parts[1]), parts[2]


def inject(rank: int, step: int, mode: str, op: str = "broadcast") -> None:
    """From now on, in this process, rank ``rank`` fails after step ``step``'s collective
    ``op`` (``broadcast`` for GFS, ``all_reduce`` for channel GFS's score exchange)."""
    real, seen = getattr(dist, op), [0]

    def wrapped(*args, **kwargs):
        out = real(*args, **kwargs)
        j, seen[0] = seen[0], seen[0] + 1
        if dist.get_rank() == rank and j == step:
            if mode == "crash":  # a hard crash: no Python cleanup, sockets closed by the OS
                os._exit(3)
            if mode == "raise":
                raise RuntimeError(f"injected fault on rank {rank} after step {step}")
            time.sleep(3600)  # "hang": alive but silent; peers notice only by timeout
        return out

    setattr(dist, op, wrapped)


def worker(rank, *args, fault):
    """labkit's spawn worker with ``fault = (rank, step, mode)`` injected."""
    from labkit.distributed import launch

    inject(*fault)
    launch._worker(rank, *args)


def channel_worker(rank, *args, fault):
    """labkit's channel-GFS spawn worker with a fault after a step's ``all_reduce``."""
    from labkit.distributed import channels

    inject(*fault, op="all_reduce")
    channels._worker(rank, *args)


if __name__ == "__main__":
    from labkit.distributed.__main__ import main

    inject(*parse(sys.argv[1]))
    raise SystemExit(main(sys.argv[2:]))
