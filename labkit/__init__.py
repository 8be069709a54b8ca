"""labkit: the library behind the reproduction book of *How Much Pre-training Is Enough to
Discover a Good Subnetwork?* (Wolfe, Liao, Wang, Kim, Kyrillidis; TMLR 2024).

One flat namespace; modules are organised by concept (``model``, ``gfs``, ``data``, ...).
"""

# First, before anything loads NumPy or PyTorch: quick mode's CPU pins (labkit.cpu_pins).
from labkit import cpu_pins as _cpu_pins  # isort: skip

_cpu_pins.apply()

from labkit import config
from labkit.bounds import (
    Lemma1Bound,
    adversarial_instances,
    diameter,
    harmonic,
    lemma1_bound,
    lemma3_b_bound,
    neurons_needed,
    theorem1_neurons,
)
from labkit.data import balanced_subset, binarize, load_mnist, teacher_student, unit_sphere
from labkit.experiments import (
    gfs_vs_exhaustive,
    lemma1_adversarial,
    lemma1_on_networks,
    lemma3_movement,
    mnist_regression,
    polytope_gap,
    polytope_gap_table,
    pretrained_teacher_student,
    regime_movement,
    theorem1_table,
)
from labkit.fig1 import (
    fig1_verdict_table,
    load_fig1_archive,
    red_line,
    red_line_growth,
    red_line_summary,
    run_fig1,
)
from labkit.frank_wolfe import FWResult, best_multiset, frank_wolfe, polytope_min, squared_loss
from labkit.gfs import GFSResult, greedy_forward_selection
from labkit.gpu_runs import archive_status, fig1_scale_tables, threshold_scale_tables
from labkit.growth import (
    bootstrap_p,
    compare_laws,
    fit_boxcox,
    form_test,
    holdout_error,
    paired_difference,
    t_interval,
)
from labkit.model import TwoLayerNet, export_pruned
from labkit.plotting import (
    draw_polytope,
    plot_channel_distributed,
    plot_condition,
    plot_dense_vs_t,
    plot_fig1,
    plot_fig1_heatmap,
    plot_form,
    plot_gfs_diet,
    plot_imp,
    plot_kappa,
    plot_lemma1,
    plot_lemma3,
    plot_lmc,
    plot_loss_vs_k,
    plot_methods,
    plot_movement,
    plot_polytopes,
    plot_prune_bridge,
    plot_prune_fraction,
    plot_pruned_vs_t,
    plot_red_line_lr,
    plot_sigma_min,
    plot_speedup,
    plot_step_times,
    plot_stop_points,
    plot_stop_tradeoff,
    plot_threshold,
    show,
)
from labkit.pretraining import fit_growth, load_selections, run_threshold, train_batched
from labkit.rmt import (
    activation_moments,
    feature_matrices,
    gaussian_condition,
    kappa_infinite,
    kernel_matrix,
    mp_edges,
    relative_errors,
    sigma_min_grid,
    singular_stats,
)
from labkit.runner import find_archive, load_archive
from labkit.runtime import get_device, get_mode, seed_everything
from labkit.store import ResultStore, default_root
from labkit.thresholds import (
    form_table,
    growth_table,
    prune_threshold,
    theorem_bound,
    threshold_runs,
    threshold_sensitivity,
    verdict_table,
    width_table,
)
from labkit.train import dense_loss, pretrain_gd, weight_movement

__all__ = [
    "FWResult", "GFSResult", "Lemma1Bound", "ResultStore", "TwoLayerNet", "activation_moments",
    "adversarial_instances",
    "balanced_subset", "best_multiset", "binarize", "config", "default_root", "dense_loss",
    "diameter", "draw_polytope", "export_pruned", "feature_matrices", "fit_growth",
    "frank_wolfe", "gaussian_condition", "get_device", "get_mode", "gfs_vs_exhaustive",
    "greedy_forward_selection", "harmonic", "kappa_infinite", "kernel_matrix", "lemma1_bound",
    "mp_edges",
    "lemma1_adversarial", "lemma1_on_networks", "lemma3_b_bound", "lemma3_movement",
    "archive_status", "fig1_scale_tables", "find_archive", "load_archive", "load_mnist",
    "threshold_scale_tables",
    "mnist_regression",
    "neurons_needed", "plot_condition", "plot_fig1", "plot_fig1_heatmap", "plot_lemma1",
    "plot_lemma3",
    "plot_loss_vs_k", "plot_dense_vs_t", "plot_form", "plot_gfs_diet", "plot_imp", "plot_lmc",
    "plot_movement", "plot_methods",
    "plot_movement", "plot_methods",
    "plot_red_line_lr",
    "plot_polytopes", "plot_prune_bridge", "plot_prune_fraction", "plot_pruned_vs_t",
    "plot_sigma_min", "plot_kappa", "plot_speedup", "plot_step_times", "plot_threshold",
    "plot_stop_points", "plot_stop_tradeoff",
    "plot_channel_distributed",
    "polytope_gap",
    "polytope_gap_table", "polytope_min", "pretrained_teacher_student",
    "fig1_verdict_table", "load_fig1_archive", "pretrain_gd", "red_line", "red_line_growth",
    "red_line_summary",
    "relative_errors",
    "run_fig1", "run_threshold",
    "seed_everything", "show", "sigma_min_grid", "singular_stats", "squared_loss",
    "teacher_student",
    "theorem1_neurons", "theorem1_table", "theorem_bound", "threshold_runs",
    "threshold_sensitivity", "train_batched", "bootstrap_p", "compare_laws", "fit_boxcox",
    "form_test", "holdout_error", "paired_difference", "t_interval", "load_selections",
    "prune_threshold", "regime_movement", "form_table", "growth_table", "width_table",
    "verdict_table",
    "unit_sphere", "weight_movement",
]

# Imported on first use (PEP 562): chapter 7's deep-network tools load torchvision, which
# takes a second, so `import labkit` stays fast, e.g. in every distributed rank; chapter 8's
# distributed GFS stays out of `import labkit` so that `torchrun -m labkit.distributed`
# runs its command line once per rank and no rank loads torch.distributed's machinery before
# it needs it.
_LAZY = {
    "ChannelCostModel": ("labkit.distributed", "ChannelCostModel"),
    "CostModel": ("labkit.distributed", "CostModel"),
    "fit_channel_cost": ("labkit.distributed", "fit_channel_cost"),
    "load_figure4": ("labkit.distributed", "load_figure4"),
    "DistributedGFSError": ("labkit.distributed", "DistributedGFSError"),
    "bytes_per_step": ("labkit.distributed", "bytes_per_step"),
    "distributed_gfs": ("labkit.distributed", "distributed_gfs"),
    "fit_cost_model": ("labkit.distributed", "fit_cost_model"),
    "measure_collectives": ("labkit.distributed", "measure_collectives"),
    "measure_steps": ("labkit.distributed", "measure_steps"),
    "partition_neurons": ("labkit.distributed", "partition_neurons"),
    "spawn_gfs": ("labkit.distributed", "spawn_gfs"),
    "spawn_gfs_batch": ("labkit.distributed", "spawn_gfs_batch"),
    "usable_nprocs": ("labkit.distributed", "usable_nprocs"),
    "build_deepnet": ("labkit.deepnets", "build"),
    "channel_groups": ("labkit.deepnets", "channel_groups"),
    "count_flops": ("labkit.deepnets", "count_flops"),
    "count_params": ("labkit.deepnets", "count_params"),
    "set_mask": ("labkit.deepnets", "set_mask"),
    "shrink": ("labkit.deepnets", "shrink"),
    "stages": ("labkit.deepnets", "stages"),
    "run_chain": ("labkit.deepnets", "run_chain"),
    "brute_force_scores": ("labkit.channel_gfs", "brute_force_scores"),
    "prune_network": ("labkit.channel_gfs", "prune_network"),
    "score_candidates": ("labkit.channel_gfs", "score_candidates"),
    "find_groups": ("labkit.channel_graph", "find_groups"),
    "PruneReport": ("labkit.channel_prune", "PruneReport"),
    "prune_channels": ("labkit.channel_prune", "prune_channels"),
    "Accuracy": ("labkit.channel_prune", "Accuracy"),
    "SeededBatches": ("labkit.channel_prune", "SeededBatches"),
    "spawn_prune_channels": ("labkit.distributed.channels", "spawn_prune_channels"),
    "tv_model": ("labkit.zoo", "tv_model"),
    "PAPER_TABLE1": ("labkit.tables", "PAPER_TABLE1"),
    "PAPER_TABLE2": ("labkit.tables", "PAPER_TABLE2"),
    "load_images": ("labkit.deepdata", "load_images"),
    "paper_view": ("labkit.tables", "paper_view"),
    "protocol_table": ("labkit.tables", "protocol_table"),
    "calibration_table": ("labkit.tables", "calibration_table"),
    "load_latency": ("labkit.tables", "load_latency"),
    "run_table": ("labkit.tables", "run_table"),
    "table_view": ("labkit.tables", "table_view"),
    "plot_deep_table": ("labkit.plotting", "plot_deep_table"),
    # chapter 9: pruning before training (Yang et al. 2023)
    "run_prune_init": ("labkit.prune_init", "run_prune_init"),
    "prune_thresholds": ("labkit.prune_init", "prune_thresholds"),
    "threshold_summary": ("labkit.prune_init", "threshold_summary"),
    "improvement": ("labkit.prune_init", "improvement"),
    "bridge_summary": ("labkit.prune_init", "bridge_summary"),
    "bridge_winners": ("labkit.prune_init", "bridge_winners"),
    "prune_init_verdicts": ("labkit.prune_init", "prune_init_verdicts"),
    "patch_data": ("labkit.prune_init", "patch_data"),
    "gfs_classes": ("labkit.prune_init", "gfs_classes"),
    # chapter 10: lottery tickets on a data diet (Paul et al. 2022)
    "run_diet": ("labkit.diet", "run_diet"),
    "imp_summary": ("labkit.diet", "imp_summary"),
    "matching": ("labkit.diet", "matching"),
    "rewind_effect": ("labkit.diet", "rewind_effect"),
    "diet_effect": ("labkit.diet", "diet_effect"),
    "lmc_summary": ("labkit.diet", "lmc_summary"),
    "lmc_predicts": ("labkit.diet", "lmc_predicts"),
    "gfs_red_line": ("labkit.diet", "gfs_red_line"),
    "gfs_red_summary": ("labkit.diet", "gfs_red_summary"),
    "diet_verdicts": ("labkit.diet", "diet_verdicts"),
    "diet_pool": ("labkit.diet", "diet_pool"),
    "load_diet_data": ("labkit.diet", "load_data"),
    # the lottery-ticket tools (chapters 9-10)
    "global_magnitude": ("labkit.sparsity", "global_magnitude"),
    "imp": ("labkit.sparsity", "imp"),
    "el2n": ("labkit.sparsity", "el2n"),
    "error_barrier": ("labkit.sparsity", "error_barrier"),
    "random_mask": ("labkit.sparsity", "random_mask"),
    # chapter 11: stopping rules for pre-training
    "EarlyTicket": ("labkit.stopping", "EarlyTicket"),
    "BoundRule": ("labkit.stopping", "BoundRule"),
    "StabilityRule": ("labkit.stopping", "StabilityRule"),
    "EarlyBirdRule": ("labkit.stopping", "EarlyBirdRule"),
    "stop_index": ("labkit.stopping", "stop_index"),
    "pruning_term": ("labkit.stopping", "pruning_term"),
    "observe_ticket": ("labkit.stopping", "observe"),
    "run_stopping": ("labkit.trajectories", "run_stopping"),
    "rule_stops": ("labkit.trajectories", "rule_stops"),
    "stop_summary": ("labkit.trajectories", "stop_summary"),
    "rule_reliability": ("labkit.trajectories", "reliability"),
    "reliability_view": ("labkit.trajectories", "reliability_view"),
    "stop_view": ("labkit.trajectories", "stop_view"),
    "check_costs": ("labkit.trajectories", "check_costs"),
    "chapter4_trajectories": ("labkit.trajectories", "chapter4_table"),
}
__all__ += sorted(_LAZY)


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        module, attr = _LAZY[name]
        return getattr(importlib.import_module(module), attr)
    raise AttributeError(f"module 'labkit' has no attribute {name!r}")


# quick mode: fail now, with the fix in the message, if the pins did not take effect
_cpu_pins.check()

__version__ = "0.1.0"
