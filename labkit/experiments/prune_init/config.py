"""Chapter 9's settings: Yang et al.'s pruning at initialization on signal-plus-noise patches
and the bridge to GFS (``PruneInitConfig``), and its presets.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from labkit.infra.settings import _check_schedule, _check_seeds, _Config


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
        from labkit.algorithms.sparsity import random_mask
        from labkit.experiments.prune_init import cell as p
        from labkit.infra.store import code_digest

        fields = dataclasses.asdict(self)
        for name in ("mu_norms", "seeds", "level"):  # the cell's own, or analysis only
            fields.pop(name)
        # the code that computes a cell (not the analysis beside it)
        code = code_digest(p._gen, p.patch_data, p.signs, p.neuron_outputs, p.logits,
                           p.logistic, p.train_gd, p._errors, p._evaluate, p._loss_at,
                           p.run_cell, random_mask, "algorithms/gfs.py")
        return {**fields, "code": code}


PRESETS: dict[str, dict[str, _Config]] = {
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
}
