"""labkit: the library behind the reproduction book of *How Much Pre-training Is Enough to
Discover a Good Subnetwork?* (Wolfe, Liao, Wang, Kim, Kyrillidis; TMLR 2024).

One flat namespace, ``lk.<name>``, over folders that show the library's layers (lowest
first; a module imports only from its own layer or lower ones, ``tests/test_layers.py``):

- ``infra/``: CPU pins, mode and device, the settings base, result store, runner, data;
- ``algorithms/``: the paper's algorithms, one short module per idea;
- ``deep/``: deep-network tools (channel groups, channel GFS, pruning, torchvision, training);
- ``distributed/``: GFS across processes (chapter 8);
- ``experiments/``: one subpackage per chapter's experiment (config, cell, analysis);
- ``plotting/``: the figures;
- ``config`` (the registry of experiment names), ``__main__`` (the command line) and this
  namespace.
"""

# First, before anything loads NumPy or PyTorch: quick mode's CPU pins (labkit.infra.cpu_pins).
from labkit.infra import cpu_pins as _cpu_pins  # isort: skip

_cpu_pins.apply()

import importlib

from labkit import config

EAGER, LAZY = False, True
# The flat namespace, defined once: module -> (loaded on first use?, the names it gives
# ``lk.``; "name=attr" where the public name differs from the module's). LAZY modules are
# imported on first use (PEP 562): chapter 7's deep-network tools load torchvision, which
# takes a second, so ``import labkit`` stays fast, e.g. in every distributed rank; chapter
# 8's distributed GFS stays out of ``import labkit`` so that ``torchrun -m
# labkit.distributed`` runs its command line once per rank and no rank loads
# torch.distributed's machinery before it needs it.
_API: dict[str, tuple[bool, tuple[str, ...]]] = {
    # infrastructure: mode, seeds and device; the result store and archived runs; data
    "labkit.infra.runtime": (EAGER, ("get_device", "get_mode", "seed_everything")),
    "labkit.infra.store": (EAGER, ("ResultStore", "default_root")),
    "labkit.infra.runner": (EAGER, ("find_archive", "load_archive")),
    "labkit.infra.data": (EAGER, ("balanced_subset", "binarize", "load_mnist",
        "load_mnist1d", "unit_sphere")),
    # the paper's algorithms
    "labkit.algorithms.model": (EAGER, ("TwoLayerNet", "export_pruned")),
    "labkit.algorithms.teacher": (EAGER, ("teacher_student",)),
    "labkit.algorithms.gfs": (EAGER, ("GFSResult", "greedy_forward_selection")),
    "labkit.algorithms.frank_wolfe": (EAGER, ("FWResult", "best_multiset",
        "frank_wolfe", "polytope_min", "squared_loss")),
    "labkit.algorithms.bounds": (EAGER, ("Lemma1Bound", "adversarial_instances",
        "diameter", "harmonic", "lemma1_bound", "lemma3_b_bound", "neurons_needed",
        "theorem1_neurons")),
    "labkit.algorithms.train": (EAGER, ("dense_loss", "pretrain_gd",
        "weight_movement")),
    "labkit.algorithms.rmt": (EAGER, ("activation_moments", "feature_matrices",
        "gaussian_condition", "kappa_infinite", "kernel_matrix", "mp_edges",
        "relative_errors", "sigma_min_grid", "singular_stats")),
    "labkit.algorithms.growth": (EAGER, ("bootstrap_p", "compare_laws", "fit_boxcox",
        "form_test", "holdout_error", "lack_of_fit", "paired_difference", "t_interval")),
    # the lottery-ticket tools (chapters 9-10)
    "labkit.algorithms.sparsity": (LAZY, ("global_magnitude", "imp", "el2n",
        "error_barrier", "random_mask")),
    # chapters 1-6 and the GPU archives: the experiments
    "labkit.experiments.theory.runs": (EAGER, ("gfs_vs_exhaustive",
        "lemma1_adversarial", "lemma1_on_networks", "lemma3_movement",
        "mnist_regression", "polytope_gap", "polytope_gap_table",
        "pretrained_teacher_student", "regime_movement", "theorem1_table")),
    "labkit.experiments.threshold.cell": (EAGER, ("fit_growth", "load_selections",
        "run_threshold", "train_batched")),
    "labkit.experiments.threshold.analysis": (EAGER, ("form_table", "growth_table",
        "prune_threshold", "theorem_bound", "threshold_runs", "threshold_sensitivity",
        "width_table")),
    "labkit.experiments.fig1.cell": (EAGER, ("run_fig1",)),
    "labkit.experiments.fig1.analysis": (EAGER, ("load_fig1_archive", "red_line",
        "red_line_growth", "red_line_summary")),
    "labkit.experiments.gpu_runs": (EAGER, ("archive_status", "fig1_scale_tables",
        "threshold_scale_tables")),
    # chapter 7: deep networks (torchvision, loaded on first use)
    "labkit.deep.nets": (LAZY, ("build_deepnet=build", "channel_groups", "count_flops",
        "count_params", "set_mask", "shrink", "stages", "run_chain")),
    "labkit.deep.graph": (LAZY, ("find_groups",)),
    "labkit.deep.channel_gfs": (LAZY, ("brute_force_scores", "prune_network",
        "score_candidates")),
    "labkit.deep.prune": (LAZY, ("PruneReport", "prune_channels", "Accuracy",
        "SeededBatches")),
    "labkit.deep.zoo": (LAZY, ("tv_model",)),
    "labkit.deep.data": (LAZY, ("load_images",)),
    "labkit.experiments.tables.cell": (LAZY, ("calibration_table", "run_table",
        "build_net", "prunable_groups")),
    "labkit.experiments.tables.analysis": (LAZY, ("PAPER_TABLE1", "PAPER_TABLE2",
        "paper_view", "protocol_table", "load_latency", "table_view")),
    # chapter 8: distributed GFS (torch.distributed, loaded on first use)
    "labkit.distributed": (LAZY, ("ChannelCostModel", "CostModel", "fit_channel_cost",
        "load_figure4", "DistributedGFSError", "bytes_per_step", "distributed_gfs",
        "fit_cost_model", "measure_collectives", "measure_steps", "partition_neurons",
        "spawn_gfs", "spawn_gfs_batch", "usable_nprocs")),
    "labkit.distributed.channels": (LAZY, ("spawn_prune_channels",)),
    # chapter 9: pruning before training (Yang et al. 2023)
    "labkit.experiments.prune_init.cell": (LAZY, ("run_prune_init", "patch_data",
        "gfs_classes")),
    "labkit.experiments.prune_init.analysis": (LAZY, ("prune_thresholds",
        "threshold_summary", "improvement", "bridge_summary", "bridge_winners")),
    # chapter 10: lottery tickets on a data diet (Paul et al. 2022)
    "labkit.experiments.diet.cell": (LAZY, ("run_diet", "diet_pool",
        "load_diet_data=load_data")),
    "labkit.experiments.diet.analysis": (LAZY, ("imp_summary", "matching",
        "rewind_effect", "diet_effect", "lmc_summary", "lmc_predicts", "gfs_red_line",
        "gfs_red_summary")),
    # chapter 11: when to stop pre-training
    "labkit.experiments.stopping.rules": (LAZY, ("EarlyTicket", "BoundRule",
        "StabilityRule", "EarlyBirdRule", "stop_index", "pruning_term",
        "observe_ticket=observe")),
    "labkit.experiments.stopping.cell": (LAZY, ("run_stopping",)),
    "labkit.experiments.stopping.analysis": (LAZY, ("rule_stops", "stop_summary",
        "rule_reliability=reliability", "reliability_view", "stop_view", "check_costs",
        "chapter4_trajectories=chapter4_table")),
    # the figures, one function per paper figure (labkit.plotting)
    "labkit.plotting": (EAGER, ("draw_polytope", "plot_channel_distributed",
        "plot_condition", "plot_deep_table", "plot_dense_vs_t", "plot_fig1",
        "plot_fig1_heatmap", "plot_form", "plot_gfs_diet", "plot_imp", "plot_kappa", "plot_lemma1",
        "plot_lemma3", "plot_lmc", "plot_loss_vs_k", "plot_methods", "plot_movement",
        "plot_polytopes", "plot_prune_bridge", "plot_prune_fraction",
        "plot_pruned_vs_t", "plot_red_line_lr", "plot_sigma_min", "plot_speedup",
        "plot_step_times", "plot_stop_points", "plot_stop_tradeoff", "plot_threshold",
        "show", "glue_text")),
}


def _flatten() -> dict[str, tuple[str, str, bool]]:
    """public name -> (module, attribute, lazy); a name given twice is an error."""
    names: dict[str, tuple[str, str, bool]] = {}
    for module, (lazy, listed) in _API.items():
        for entry in listed:
            public, _, attr = entry.partition("=")
            if public in names:
                raise ImportError(f"labkit: {public!r} is given by both {names[public][0]} "
                                  f"and {module}")
            names[public] = (module, attr or public, lazy)
    return names


_NAMES = _flatten()
for _public, (_module, _attr, _lazy) in _NAMES.items():
    if not _lazy:
        globals()[_public] = getattr(importlib.import_module(_module), _attr)

# subpackages reached as ``lk.<name>`` and loaded on first use: the claims registry
# (``lk.claims.table()``) sits above the experiments it decides on
_SUBPACKAGES = ("claims",)
__all__ = ["config", *_SUBPACKAGES, *_NAMES]


def __getattr__(name: str):
    if name in _NAMES:
        module, attr, _ = _NAMES[name]
        return getattr(importlib.import_module(module), attr)
    if name in _SUBPACKAGES:
        return importlib.import_module(f"labkit.{name}")
    raise AttributeError(f"module 'labkit' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *_SUBPACKAGES, *_NAMES})


# quick mode: fail now, with the fix in the message, if the pins did not take effect
_cpu_pins.check()

__version__ = "0.1.0"
