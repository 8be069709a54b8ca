"""Chapter 4's settings: the pre-training threshold of Theorems 2-3, measured in their regime
(``ThresholdConfig``), and its presets: quick, full, the archived CPU run and the GPU runs.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from labkit.infra.settings import _check_schedule, _check_seeds, _Config

# Theorems 2-3's regime (book design, section 9): an over-parameterized network and a
# subnetwork well below the width
THRESHOLD_M_RATIO = 4  # m <= N / 4
THRESHOLD_K_RATIO = 8  # k <= N / 8
THRESHOLD_SCALINGS = ("theorem", "mean_field")


@dataclass(frozen=True, repr=False)  # _Config's repr: one field per line
class ThresholdConfig(_Config):
    """Chapter 4: how much pre-training Theorem 3's threshold needs, measured in the
    theorem's regime. ``grid`` pairs each width ``N`` with its dataset sizes ``m``; every
    cell must have ``m <= N/4`` and ``k <= N/8``. ``scalings``: Theorem 2's step
    (``"theorem"``, ``lr_theorem`` a fraction of it) and the mean-field step ``lr * N``
    (``"mean_field"``, the contrast). ``deltas``: the dense-loss levels whose first
    crossing is recorded; ``delta``, ``tol`` (the pruned loss's relative distance to its
    plateau) and ``n_boot`` are analysis settings, not part of a cell's key."""

    grid: tuple = ((512, (16, 32, 64, 128)), (256, (16, 32, 64)))
    d_values: tuple[int, ...] = (10, 100)
    scalings: tuple[str, ...] = THRESHOLD_SCALINGS
    seeds: tuple[int, ...] = (0, 1, 2, 3, 4)
    teacher_width: int = 8
    lr_theorem: float = 1.0
    lr_mean_field: float = 0.5
    checkpoints: tuple[int, ...] = (0, 10, 20, 50, 100, 200, 300, 500, 700, 1000, 1250, 1500,
                                    1750, 2000)
    k: int = 32
    deltas: tuple[float, ...] = (1e-2, 3e-3, 1e-3, 3e-4, 1e-4, 3e-5)
    delta: float = 1e-3
    tol: float = 0.1
    n_boot: int = 500
    dtype: str = "float32"
    # the regime check (labkit.regime_movement): weight movement against the width
    movement_m: int = 32
    movement_widths: tuple[int, ...] = (128, 256, 512, 1024, 2048, 4096)
    movement_steps: int = 1000

    _positive = ("teacher_width", "lr_theorem", "lr_mean_field", "k", "delta", "tol",
                 "movement_m", "movement_steps")
    _non_negative = ("n_boot",)  # 0: no seed bootstrap (its columns are then NaN)
    _tied = ("delta",)  # must be one of deltas

    @property
    def steps(self) -> int:
        """The horizon: the last checkpoint."""
        return self.checkpoints[-1]

    def __post_init__(self):
        # the grid is a tuple of (N, (m, ...)) pairs; canonical ints so digests agree
        try:
            grid = tuple((int(N), tuple(int(m) for m in ms)) for N, ms in self.grid)
        except (TypeError, ValueError) as err:
            raise ValueError(f"grid: must be pairs (N, (m, ...)), got {self.grid!r}") from err
        object.__setattr__(self, "grid", grid)
        super().__post_init__()

    def validate(self):
        if not self.grid:
            raise ValueError("grid: need at least one (N, (m, ...)) pair")
        for N, ms in self.grid:
            if len(ms) < 2 or min(ms) < 2 or len(set(ms)) != len(ms):
                raise ValueError(f"grid: need at least two distinct dataset sizes m >= 2 at "
                                 f"N = {N}, got {ms!r}")
            too_big = [m for m in ms if THRESHOLD_M_RATIO * m > N]
            if too_big:
                raise ValueError(
                    f"grid: m = {too_big[0]} > N/{THRESHOLD_M_RATIO} = {N // THRESHOLD_M_RATIO}"
                    f" at width N = {N}; Theorems 2-3 cover an over-parameterized network, "
                    f"m <= N/{THRESHOLD_M_RATIO}")
        if len({N for N, _ in self.grid}) != len(self.grid):
            raise ValueError(f"grid: each width once, got {self.grid!r}")
        narrowest = min(N for N, _ in self.grid)
        if THRESHOLD_K_RATIO * self.k > narrowest:
            raise ValueError(f"k: {self.k} > N/{THRESHOLD_K_RATIO} = "
                             f"{narrowest // THRESHOLD_K_RATIO} at width N = {narrowest}; "
                             f"pruning means k well below N (k <= N/{THRESHOLD_K_RATIO})")
        if len(self.movement_widths) < 2 or \
                THRESHOLD_M_RATIO * self.movement_m > min(self.movement_widths):
            raise ValueError(f"movement_widths: need at least two widths, each at least "
                             f"{THRESHOLD_M_RATIO} x movement_m = "
                             f"{THRESHOLD_M_RATIO * self.movement_m}, got "
                             f"{self.movement_widths!r}")
        if not self.d_values or min(self.d_values) < 1:
            raise ValueError(f"d_values: must be positive integers, got {self.d_values!r}")
        for s in self.scalings:
            if s not in THRESHOLD_SCALINGS:
                raise ValueError(f"scalings: unknown step rule {s!r}; allowed: "
                                 f"{', '.join(THRESHOLD_SCALINGS)}")
        if not self.scalings or len(set(self.scalings)) != len(self.scalings):
            raise ValueError(f"scalings: need distinct step rules, got {self.scalings!r}")
        if self.lr_theorem > 1:
            raise ValueError(f"lr_theorem: a fraction of Theorem 2's step, at most 1 (larger "
                             f"steps are outside the theorem), got {self.lr_theorem}")
        _check_seeds(self.seeds)
        if self.dtype not in ("float32", "float64"):
            raise ValueError(f"dtype: unknown dtype {self.dtype!r}; allowed: float32, float64")
        _check_schedule("checkpoints", self.checkpoints, min_len=2)
        if self.checkpoints[0] != 0:
            raise ValueError(f"checkpoints: must start at 0 (the pruned loss before "
                             f"pre-training), got {self.checkpoints!r}")
        if sum(t >= self.steps / 2 for t in self.checkpoints) < 3:
            raise ValueError("checkpoints: need at least 3 in the second half of the horizon "
                             "(the pruned loss's plateau is read there)")
        if not self.deltas or min(self.deltas) <= 0 or self.delta not in self.deltas:
            raise ValueError(f"delta: must be one of deltas {self.deltas!r} (positive), got "
                             f"{self.delta!r}")

    @property
    def k_values(self) -> tuple[int, ...]:
        """The subnetwork sizes whose GFS loss is kept: powers of two from 8 below ``k``,
        and ``k`` (GFS's path gives every size up to ``k`` at once)."""
        return tuple(sorted({*(2**i for i in range(3, 20) if 2**i < self.k), self.k}))

    def cells(self) -> list[dict]:
        """Every ``(m, N, d, scaling)`` of the sweep, ordered so that one ``(m, d)``'s data
        are reused while they are warm."""
        return [{"m": m, "N": N, "d": d, "scaling": s} for d in self.d_values
                for m in sorted({m for _, ms in self.grid for m in ms})
                for N, ms in self.grid if m in ms for s in self.scalings]

    def cell_params(self, m: int, N: int, d: int, scaling: str) -> dict:
        """Everything one cell's result depends on (its store key)."""
        lr = self.lr_theorem if scaling == "theorem" else self.lr_mean_field
        return {"m": m, "N": N, "d": d, "scaling": scaling, "lr": lr,
                "seeds": list(self.seeds), "teacher_width": self.teacher_width,
                "steps": self.steps, "checkpoints": list(self.checkpoints), "k": self.k,
                "deltas": list(self.deltas), "dtype": self.dtype}


PRESETS_GPU_THRESHOLD = ThresholdConfig(
    grid=((32768, (512, 1024, 2048, 4096, 8192)),), d_values=(10,), seeds=(0, 1, 2), k=128,
    checkpoints=(0, 10, 20, 50, 100, 200, 500, 1000, 2000, 3000, 5000, 7000, 10000, 12500,
                 15000, 17500, 20000),
    n_boot=0)  # an analysis setting, as threshold_cpu's: 3 seeds give no seed bootstrap

PRESETS: dict[str, dict[str, _Config]] = {
    "threshold": {
        "quick": ThresholdConfig(),
        # a GPU-sized grid: m to 4,096 at N = 16,384, 20K iterations
        "full": ThresholdConfig(
            grid=((16384, (32, 64, 128, 256, 512, 1024, 2048, 4096)),
                  (4096, (32, 64, 128, 256, 512, 1024))),
            seeds=tuple(range(10)), k=128,
            checkpoints=(0, 10, 20, 50, 100, 200, 500, 1000, 2000, 3000, 5000, 7000, 10000,
                         12500, 15000, 17500, 20000)),
    },
    # the archived CPU run of chapter 4 (the same in both modes): m = 32..1024 at N = 4096
    # and 32..256 at N = 1024, d = 10 and 100, ten seeds, k = 128, both step rules
    "threshold_cpu": {
        mode: ThresholdConfig(
            grid=((4096, (32, 64, 128, 256, 512, 1024)), (1024, (32, 64, 128, 256))),
            seeds=tuple(range(10)), k=128,
            checkpoints=(0, 10, 20, 50, 100, 200, 300, 500, 700, 1000, 1500, 2000, 3000,
                         4000, 5000, 6000, 7000, 8000),
            # an analysis setting: no seed bootstrap for the 400 archived runs, whose
            # censored Box-Cox refits take seconds each (100 resamples of the 8 groups would
            # take an hour); their profile intervals and t-intervals stand
            n_boot=0)
        for mode in ("quick", "full")
    },
    # chapter 4 at paper scale, prepared for a GPU loan (tools/gpu_runs/, the same in both
    # modes): m = 512..8,192 at one width N = 32,768 (every m <= N/4), d = 10, 3 seeds, the
    # fixed k = 128 (N/256), 20K iterations; run by labkit.experiments.threshold.cell_gpu
    # (spectra, kernel
    # and GFS on the device), analysed by chapter 4's functions
    "threshold_gpu": {mode: PRESETS_GPU_THRESHOLD for mode in ("quick", "full")},
    # the same at d = 100, where chapter 4's pruned loss falls early in pre-training: m to
    # 4,096 at N = 16,384 (the step's products are 10x those at d = 10 per entry)
    "threshold_gpu_d100": {
        mode: dataclasses.replace(PRESETS_GPU_THRESHOLD, d_values=(100,),
                                  grid=((16384, (512, 1024, 2048, 4096)),))
        for mode in ("quick", "full")
    },
}
