"""Chapter 7's settings: Tables 1-2 (Appendix E), channel GFS on ResNet34 and MobileNetV2
(``DeepConfig``), and its presets.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from labkit.deep import ARCHS as DEEP_ARCHS
from labkit.deep import SOURCES as DEEP_SOURCES
from labkit.infra.settings import _check_schedule, _Config

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
        (and the code: :func:`labkit.experiments.tables.cell.deep_code`)."""
        skip = {"archs", "widths", "sizes", "targets", "param_targets", "workers",
                "processes", "checkpoint_every", "calibration_tol", "calibration_steps"}
        return {k: v for k, v in dataclasses.asdict(self).items() if k not in skip}


PRESETS: dict[str, dict[str, _Config]] = {
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
}
