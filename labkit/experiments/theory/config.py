"""Settings of chapters 1-3 and 5 (the polytope, GFS and Frank-Wolfe, Lemma 1 and Theorem 1,
sigma_min): one frozen dataclass per chapter and its quick and full presets.
"""

from __future__ import annotations

from dataclasses import dataclass

from labkit.algorithms.model import ACTIVATIONS
from labkit.infra.settings import _check_schedule, _check_widths, _Config


@dataclass(frozen=True, repr=False)  # _Config's repr: one field per line
class PolytopeConfig(_Config):
    """Chapter 1: a network drawn in the plane of ``m = 2`` data points."""

    m: int = 2
    d: int = 2
    N: int = 12
    activation: str = "tanh"
    teacher_width: int = 4
    steps: int = 400
    lr: float = 0.5
    seed: int = 1
    k_lattice: int = 3
    sweep_m: tuple[int, ...] = (2, 4, 8, 16, 32, 64)
    sweep_d: int = 10
    sweep_N: int = 64
    sweep_steps: int = 400
    sweep_seeds: int = 5

    _choices = {"activation": ACTIVATIONS}
    _positive = ("m", "d", "N", "teacher_width", "lr", "k_lattice", "sweep_d", "sweep_N",
                 "sweep_seeds")
    _non_negative = ("steps", "seed", "sweep_steps")

    def validate(self):
        if self.m != 2:
            raise ValueError(f"m: the polytope is drawn in the plane, so m must be 2, "
                             f"got {self.m}")
        if not self.sweep_m or any(int(v) != v or v < 1 for v in self.sweep_m):
            raise ValueError(f"sweep_m: must be a non-empty tuple of positive integers, "
                             f"got {self.sweep_m!r}")


@dataclass(frozen=True, repr=False)  # _Config's repr: one field per line
class GFSConfig(_Config):
    """Chapter 2: GFS on a pre-trained teacher-student network (tanh, squared loss)."""

    m: int = 200
    d: int = 10
    N: int = 400
    activation: str = "tanh"
    teacher_width: int = 8
    steps: int = 300
    lr: float = 0.5
    k: int = 256
    k_fw: int = 128
    N_exhaustive: int = 8
    k_exhaustive: int = 5
    exhaustive_trials: int = 20
    seed: int = 0

    _choices = {"activation": ACTIVATIONS}
    _positive = ("m", "d", "N", "teacher_width", "lr", "k", "k_fw", "N_exhaustive",
                 "k_exhaustive", "exhaustive_trials")
    _non_negative = ("steps", "seed")

    def validate(self):
        if self.k_fw > self.k:
            raise ValueError(f"k_fw: must be at most k={self.k}, got {self.k_fw}")
        if self.N_exhaustive > self.N:
            raise ValueError(f"N_exhaustive: must be at most N={self.N}, "
                             f"got {self.N_exhaustive}")


@dataclass(frozen=True, repr=False)  # _Config's repr: one field per line
class Lemma1Config(_Config):
    """Chapter 3: Lemma 1 on pre-trained networks, Lemma 3 measured, Theorem 1's count."""

    m: int = 200
    d: int = 10
    N: int = 400
    teacher_width: int = 8
    lr: float = 0.5
    k: int = 256
    checkpoints: tuple[int, ...] = (0, 10, 100, 1000)
    mnist_m: int = 1000
    mnist_N: int = 200
    mnist_checkpoints: tuple[int, ...] = (0, 30, 300)
    widths: tuple[int, ...] = (50, 200, 800, 3200)
    lemma3_checkpoints: tuple[int, ...] = (0, 10, 100, 1000)
    lr_theorem: float = 1.0  # chapter 4's Theorem 2 step, as a fraction of its largest
    eps: tuple[float, ...] = (0.02, 0.01, 0.005, 0.002)
    seed: int = 0

    _positive = ("m", "d", "N", "teacher_width", "lr", "k", "mnist_m", "mnist_N", "lr_theorem")
    _non_negative = ("seed",)

    def validate(self):
        for field in ("checkpoints", "mnist_checkpoints", "lemma3_checkpoints"):
            _check_schedule(field, getattr(self, field))
        _check_widths(self.widths)
        if not self.eps or min(self.eps) <= 0:
            raise ValueError(f"eps: must be positive, got {self.eps!r}")
        if self.lr_theorem > 1:
            raise ValueError(f"lr_theorem: {self.lr_theorem!r} is above 1, where Theorem 2's "
                             "step stops contracting the residual; allowed: 0 < lr_theorem <= 1")


@dataclass(frozen=True, repr=False)  # _Config's repr: one field per line
class RMTConfig(_Config):
    """Chapter 5: sigma_min and condition numbers of the initial feature matrix (App. C)."""

    activations: tuple[str, ...] = ("tanh", "relu")
    m_values: tuple[int, ...] = (50, 100)
    d_values: tuple[int, ...] = (10, 100, 1000)
    N_values: tuple[int, ...] = (200, 400, 800, 1600, 3200)
    gaussian_m: tuple[int, ...] = (50, 100, 200)
    gaussian_N: tuple[int, ...] = (400, 800, 1600, 3200)
    reps: int = 10
    seed: int = 0

    _positive = ("reps",)
    _non_negative = ("seed",)

    def validate(self):
        for a in self.activations:
            if a not in ACTIVATIONS:
                raise ValueError(f"activations: unknown activation {a!r}; "
                                 f"allowed: {', '.join(ACTIVATIONS)}")
        for field in ("m_values", "d_values", "N_values", "gaussian_m", "gaussian_N"):
            values = getattr(self, field)
            if not values or min(values) < 1:
                raise ValueError(f"{field}: must be positive integers, got {values!r}")
        if self.reps < 2:
            raise ValueError(f"reps: need at least 2 repetitions for error bars, got {self.reps}")


PRESETS: dict[str, dict[str, _Config]] = {
    "polytope": {
        "quick": PolytopeConfig(),
        "full": PolytopeConfig(sweep_m=(2, 4, 8, 16, 32, 64, 128, 256), sweep_N=256,
                               sweep_seeds=20),
    },
    "gfs": {
        "quick": GFSConfig(),
        "full": GFSConfig(m=5000, d=50, N=2000, steps=2000, k=2048, k_exhaustive=6),
    },
    "lemma1": {
        "quick": Lemma1Config(),
        "full": Lemma1Config(m=2000, d=50, N=4000, k=2048, checkpoints=(0, 10, 100, 1000, 10000),
                             mnist_m=5000, mnist_N=1000,
                             mnist_checkpoints=(0, 30, 300, 3000),
                             widths=(100, 400, 1600, 6400, 25600),
                             lemma3_checkpoints=(0, 10, 100, 1000, 10000)),
    },
    "rmt": {
        "quick": RMTConfig(),
        "full": RMTConfig(m_values=(100, 200, 500), d_values=(10, 100, 1000),
                          N_values=(1000, 2000, 4000, 8000, 16000, 32000),
                          gaussian_m=(100, 200, 500, 1000),
                          gaussian_N=(2000, 4000, 8000, 16000, 32000)),
    },
}
