"""Chapter 10's settings: IMP with rewinding, data diets and linear mode connectivity (Paul et
al. 2022), and GFS's red line against the pre-training data (``DietConfig``), and its
presets.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from labkit.infra.settings import _check_schedule, _check_seeds, _Config

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
        from labkit.deep.train import augment
        from labkit.experiments.diet import cell as D
        from labkit.experiments.diet import resnet as R
        from labkit.infra.store import code_digest

        fields = dataclasses.asdict(self)
        if kind == "gfs":
            keep = [k for k in fields if k.startswith("gfs_") and k != "gfs_seeds"]
            code = code_digest(D._two_layer_data, D._gfs_accuracy, D.gfs_cell, "algorithms/gfs.py",
                               "algorithms/model.py", "infra/data.py")
        else:
            analysis = ("rewinds", "diets", "seeds", "match_tol")
            keep = [k for k in fields if not k.startswith("gfs_") and k not in analysis]
            code = code_digest(R._Block, R.CifarResNet, R.build, D.load_data, D.rate,
                               D._batch, D.train, D._logits, D.test_error, D.el2n_scores,
                               D.diet_pool, D._state, D.lmc, D.run_cell, augment,
                               "algorithms/sparsity.py", "deep/data.py")
        return {**{k: fields[k] for k in keep}, "code": code}


PRESETS: dict[str, dict[str, _Config]] = {
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
}
