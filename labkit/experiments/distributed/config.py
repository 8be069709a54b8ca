"""Chapter 8's settings: distributed GFS (Appendix D, Algorithm 2) and its cost model
(``DistributedConfig``), and its presets.
"""

from __future__ import annotations

from dataclasses import dataclass

from labkit.algorithms.model import ACTIVATIONS
from labkit.infra.settings import _Config


@dataclass(frozen=True, repr=False)  # _Config's repr: one field per line
class DistributedConfig(_Config):
    """Chapter 8: distributed GFS (Appendix D, Algorithm 2) on ``torch.distributed``.

    A network pre-trained as in chapter 2 (``m, d, N, ...``) gives the equivalence check of
    ``k`` steps; random tanh networks of every width in ``timing_N`` on every number of points
    in ``timing_m`` (pairs with ``N * m`` above ``timing_max_entries`` skipped) give the time of
    ``timing_k`` steps for each process count in ``nprocs`` (1 must be among them: it is
    the baseline), each process using ``threads`` cores (1: the CPU analogue of
    one GPU per process); ``channels`` are the block widths of the Figure 4 setting."""

    m: int = 1000
    d: int = 10
    N: int = 300
    activation: str = "tanh"
    teacher_width: int = 8
    steps: int = 300
    lr: float = 0.5
    k: int = 100
    nprocs: tuple[int, ...] = (1, 2, 3)
    timing_N: tuple[int, ...] = (500, 2000, 8000)
    timing_m: tuple[int, ...] = (2000, 20000)
    timing_max_entries: int = 40_000_000
    timing_k: int = 30
    threads: int = 1
    channels: tuple[int, ...] = (64, 128, 256, 512)
    timeout_s: float = 60.0
    seed: int = 0

    _choices = {"activation": ACTIVATIONS}
    _positive = ("m", "d", "N", "teacher_width", "lr", "k", "timing_k", "timing_max_entries",
                 "threads", "timeout_s")
    _non_negative = ("steps", "seed")

    def validate(self):
        if not self.nprocs or min(self.nprocs) < 1 or 1 not in self.nprocs \
                or list(self.nprocs) != sorted(set(self.nprocs)):
            raise ValueError(f"nprocs: process counts must be distinct, increasing, positive "
                             f"and include 1 (the baseline), got {self.nprocs!r}")
        for field in ("timing_N", "timing_m", "channels"):
            values = getattr(self, field)
            if not values or min(values) < 1:
                raise ValueError(f"{field}: must be positive integers, got {values!r}")
        if not self.timing_sizes():
            raise ValueError(f"timing_max_entries: {self.timing_max_entries} leaves no size "
                             f"N x m of timing_N x timing_m to time")
        if self.timing_k < 2:
            raise ValueError(f"timing_k: need at least 2 steps (the first is warm-up), "
                             f"got {self.timing_k}")

    def timing_sizes(self) -> list[tuple[int, int]]:
        """The ``(N, m)`` sizes timed: ``timing_N x timing_m`` within ``timing_max_entries``."""
        return [(N, m) for N in self.timing_N for m in self.timing_m
                if N * m <= self.timing_max_entries]


PRESETS: dict[str, dict[str, _Config]] = {
    "distributed": {
        "quick": DistributedConfig(),
        # paper-like sizes for GPUs, one per process (NCCL); process counts above the number
        # of visible GPUs are skipped by lk.usable_nprocs
        "full": DistributedConfig(m=5000, d=50, N=2000, steps=2000, k=512, nprocs=(1, 2, 4),
                                  timing_N=(1000, 4000, 16000), timing_m=(10000, 50000),
                                  timing_max_entries=200_000_000, timing_k=50),
    },
}
