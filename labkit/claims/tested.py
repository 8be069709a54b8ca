"""Claims decided by the test suite (chapters 1-3, 5, 7 and 8): a definition implemented,
an algorithm's identity, a bound checked on instances. Each names the tests that check
what holds and, for *partly*, says which part does not show and where the chapter
measures it; a claim whose paper-scale run needs data or hardware the book did not have
names that run's archive, and is *not attempted at this scale* while the archive is
absent.

The rule (:func:`decide_tested`): a named test that does not exist is an error (the
agreement test runs this at every commit); a paper-scale archive that is absent gives *not
attempted at this scale*; otherwise *reproduced*, or *partly* where a part does not show.
"""

from __future__ import annotations

import ast
from functools import cache
from pathlib import Path

from labkit.claims.evidence import outcome
from labkit.claims.registry import Claim

ROOT = Path(__file__).resolve().parents[2]


@cache
def _test_names(path: str) -> frozenset[str]:
    tree = ast.parse((ROOT / path).read_text())
    return frozenset(n.name for n in ast.walk(tree) if isinstance(n, ast.FunctionDef))


def missing_tests(tests) -> list[str]:
    """The ``file::name`` entries of ``tests`` that name no test function."""
    out = []
    for t in tests:
        path, _, name = t.partition("::")
        if not (ROOT / path).exists() or name not in _test_names(path):
            out.append(t)
    return out


def _archived(name: str) -> bool:
    return (ROOT / "results" / "archive" / name / "manifest.json").exists()


def decide_tested(checks: str, *, tests: tuple, gap: str = "", needs: str = ""):
    """The measure of a test-decided claim (see the module docstring)."""
    def measure(_setting):
        lost = missing_tests(tests)
        if lost:
            raise ValueError(f"tests: {', '.join(lost)} name no test in the suite")
        text = checks + (f"; does not show: {gap}" if gap else "")
        if needs and not _archived(needs):
            return outcome("not attempted at this scale",
                           f"{text}; the paper-scale run (archive {needs}) was not made")
        return outcome("partly" if gap else "reproduced", text)
    return measure


def _claim(key, statement, source, status, chapter, group, checks, tests, *, gap="",
           needs="", labkit="", precondition="none (a definition or an identity)"):
    rule = ("the named tests exist and pass in CI" + (f"; paper-scale archive {needs} "
            "present" if needs else ""))
    return Claim(key, statement, source, status, chapter, group, precondition, rule,
                 "none (exact checks)", decide_tested(checks, tests=tests, gap=gap,
                                                      needs=needs),
                 labkit=labkit, tests=tuple(tests))


B, G, F, M, R, D, T, C = ("tests/test_bounds.py", "tests/test_gfs.py",
                          "tests/test_frank_wolfe.py", "tests/test_model.py",
                          "tests/test_rmt.py", "tests/test_distributed.py",
                          "tests/test_tables.py", "tests/test_channels.py")

CLAIMS = [
    _claim("assumption-1", "Assumption 1: bounded, smooth activation; Gaussian first "
           "layer, fixed-magnitude second layer at initialization", "Wolfe et al., "
           "Section 2", "INFERRED form (boundedness is TEXT; tanh is the TEXT example)",
           (1,), "setting", "the network's initialization scales are tested",
           (f"{M}::test_initialization_scales",), labkit="`lk.TwoLayerNet`"),
    _claim("eq-2", "Eq. 2: the dense network is the mean-field average of N neurons "
           "b_i sigma(w_i^T x)", "Wolfe et al., eqs. 1-2", "TEXT", (1,), "setting",
           "the forward pass equals the mean of the neuron outputs",
           (f"{M}::test_forward_is_mean_of_neurons",), labkit="`lk.TwoLayerNet`"),
    _claim("eq-3", "Eq. 3: the pruned network averages a multiset S of neurons",
           "Wolfe et al., eq. 3", "TEXT", (1,), "setting",
           "the pruned forward pass is the weighted average, and the exported network "
           "computes it", (f"{M}::test_pruned_forward_weighted_average",
                           f"{M}::test_export_pruned_matches_pruned_forward"),
           labkit="`lk.TwoLayerNet.pruned_forward`, `lk.export_pruned`"),
    _claim("assumption-2", "Assumption 2: ||x_j|| <= 1 and |y_j| <= 1", "Wolfe et al., "
           "Section 2", "INFERRED form", (1,), "setting",
           "the teacher-student data and the unit-sphere inputs satisfy it",
           ("tests/test_data.py::test_teacher_student_assumption_2",
            "tests/test_data.py::test_unit_sphere"),
           labkit="`lk.teacher_student`, `lk.unit_sphere`"),
    _claim("eq-4-8", "Eqs. 4 and 8: the dense squared loss, and the loss of an output "
           "vector on the marginal polytope (eq. 7)", "Wolfe et al., eqs. 4, 7, 8",
           "TEXT; the 1/m normalization INFERRED", (1, 2), "setting",
           "the squared loss of an output vector matches its definition",
           (f"{F}::test_squared_loss",), labkit="`lk.dense_loss`, `lk.squared_loss`"),
    _claim("eq-5", "Eq. 5: pre-training by full-batch gradient descent (mean-field step)",
           "Wolfe et al., eq. 5", "TEXT; mean-field step scaling INFERRED", (1, 2),
           "setting", "one step equals a hand-derived mean-field gradient step",
           ("tests/test_train.py::test_one_step_is_mean_field_gd",),
           labkit="`lk.pretrain_gd`"),
    _claim("eq-6", "Eq. 6: the best subnetwork of a given size (combinatorial problem)",
           "Wolfe et al., eq. 6", "TEXT", (2,), "setting",
           "the exhaustive search equals brute force, and GFS can be suboptimal",
           (f"{F}::test_best_multiset_brute_force", f"{F}::test_gfs_can_be_suboptimal"),
           labkit="`lk.best_multiset`"),
    _claim("algorithm-1", "Algorithm 1 (eqs. 9-11): greedy forward selection is "
           "Frank-Wolfe over the marginal polytope", "Wolfe et al., Algorithm 1",
           "TEXT; vectorized step DERIVED", (2,), "setting",
           "GFS equals Frank-Wolfe with the exact vertex oracle, and the vectorized GFS "
           "selects what a per-candidate reference selects, ties included",
           (f"{F}::test_exact_oracle_is_gfs", f"{G}::test_matches_reference",
            f"{G}::test_duplicate_rows_resolve_to_lowest_index"),
           labkit="`lk.greedy_forward_selection`, `lk.frank_wolfe`"),
    _claim("lemma-1", "Lemma 1: GFS's loss is at most l(z_1)/k + D^2 ln k/(mk) + L "
           "(eq. 12)", "Wolfe et al., Lemma 1", "DERIVED (from the surviving proof "
           "skeleton)", (3,), "theory",
           "the bound holds on random instances, on pre-trained networks and on stored "
           "adversarial instances; a smaller diameter term is violated",
           (f"{B}::test_lemma1_holds_on_random_instances",
            f"{B}::test_lemma1_holds_on_pretrained_networks",
            f"{B}::test_lemma1_holds_on_adversarial_instances",
            f"{B}::test_lemma1_with_a_smaller_diameter_term_is_violated"),
           labkit="`lk.lemma1_bound`"),
    _claim("lemma-2", "Lemma 2: the diameter of the marginal polytope is attained at "
           "vertices and is at most 2 max_i ||Phi_i||", "Wolfe et al., Appendix A", "TEXT",
           (3,), "theory", "the chunked diameter equals the largest pairwise distance "
           "and obeys the norm bound",
           (f"{B}::test_diameter_is_the_largest_pairwise_distance",
            f"{B}::test_diameter_attained_at_vertices_and_bounded_by_norms"),
           labkit="`lk.diameter`"),
    _claim("lemma-3", "Lemma 3: neuron outputs stay O(sqrt m) along pre-training",
           "Wolfe et al., Lemma 3", "structure TEXT; constants INFERRED", (3,), "theory",
           "our bound on the output weights' movement holds along gradient descent and "
           "is nearly attained (a smaller one fails)",
           (f"{B}::test_lemma3_b_bound_holds_along_gradient_descent",
            f"{B}::test_lemma3_b_bound_is_nearly_attained_and_a_smaller_one_fails"),
           gap="a width-independent constant: under Theorem 2's step the output weights "
               "move by tens (chapter 3's Lemma 3 figure)",
           labkit="`lk.lemma3_b_bound`, `lk.lemma3_movement`"),
    _claim("definition-1", "Definition 1: lambda_0 = sigma_min(Phi_0) and the condition "
           "number kappa of the first-layer output matrix at initialization",
           "Wolfe et al., Definition 1", "INFERRED form", (4, 5), "theory",
           "the singular values match NumPy's, and the infinite-width kappa is the wide "
           "limit", (f"{R}::test_singular_stats_match_numpy",
                     f"{R}::test_kappa_infinite_is_the_wide_limit"),
           labkit="`lk.singular_stats`, `lk.kappa_infinite`"),
    _claim("theorem-1", "Theorem 1: k = O(eps^-1 ln eps^-1) neurons suffice",
           "Wolfe et al., Theorem 1", "structure TEXT", (3,), "theory",
           "the closed form via Lambert W_{-1} equals a scan",
           (f"{B}::test_theorem1_neuron_count_matches_a_scan",),
           labkit="`lk.theorem1_neurons`, `lk.theorem1_table`"),
    _claim("figure-2", "Figure 2: sigma_min of the first-layer output matrix follows the "
           "random-matrix prediction", "Wolfe et al., Appendix C, Figure 2",
           "TEXT protocol; grids INFERRED", (5,), "experiments",
           "the generalized Marchenko-Pastur edge of the kernel's spectrum predicts "
           "sigma_min of tanh features",
           (f"{R}::test_mp_edge_predicts_sigma_min_of_tanh_features",
            f"{R}::test_kernel_view_is_accurate_for_wide_matrices"),
           gap="the Gaussian edge s(sqrt N - sqrt m) holds only near N = 2m with d much "
               "larger than m (chapter 5's sigma_min figure)",
           labkit="`lk.sigma_min_grid`, `lk.mp_edges`"),
    _claim("figure-3", "Figure 3: the condition number of Gaussian matrices falls with N",
           "Wolfe et al., Appendix C, Figure 3", "TEXT", (5,), "experiments",
           "condition numbers follow the Bai-Yin limit and fall with N",
           (f"{R}::test_gaussian_condition_numbers_follow_bai_yin",),
           labkit="`lk.gaussian_condition`"),
    _claim("algorithm-2", "Algorithm 2: distributed GFS gives the iterates of centralized "
           "GFS", "Wolfe et al., Appendix D", "TEXT; aggregation INFERRED", (8,),
           "experiments", "selections and losses identical with 1, 2 and 3 processes, "
           "ties across ranks included",
           (f"{D}::test_one_process_identical", f"{D}::test_spawned_identical",
            f"{D}::test_tie_instances_really_tie_across_ranks"),
           labkit="`lk.spawn_gfs`, `lk.distributed_gfs`"),
    _claim("figure-4", "Figure 4: speed-up of distributed GFS per ResNet34 block on "
           "ImageNet, 2 and 4 GPUs", "Wolfe et al., Appendix D, Figure 4", "TEXT", (8,),
           "experiments", "distributed channel GFS selects what centralized GFS selects",
           (f"{C}::test_prune_group_selects_what_brute_force_selects",),
           needs="figure4", labkit="`lk.spawn_prune_channels`, `lk.fit_channel_cost`"),
    _claim("table-1", "Table 1: on CIFAR10, subnetworks need more pre-training for more "
           "data (MobileNetV2, ResNet34)", "Wolfe et al., Appendix E, Table 1",
           "TEXT; layers and per-layer fine-tuning from Ye et al.'s code", (7,),
           "experiments", "the protocol runs: Ye et al.'s groups, calibrated FLOP "
           "budgets, baselines at GFS's counts, resumable training",
           (f"{T}::test_mobilenet_groups_are_ye_et_al",
            f"{T}::test_calibration_reaches_its_flop_target",
            f"{T}::test_baselines_keep_gfs_counts_and_l1_keeps_the_largest_filters"),
           needs="table1", labkit="`lk.run_table`"),
    _claim("table-2", "Table 2: the same on ImageNet at two FLOP budgets",
           "Wolfe et al., Appendix E, Table 2", "TEXT", (7,), "experiments",
           "the protocol runs at both calibrated budgets on the quick stand-in",
           (f"{T}::test_cli_runs_table1_and_table2",), needs="table2",
           labkit="`lk.run_table`"),
]
