"""The paper's algorithms, one short module per idea: the two-layer network
(:mod:`~labkit.algorithms.model`) and its teacher-student data
(:mod:`~labkit.algorithms.teacher`), GFS (:mod:`~labkit.algorithms.gfs`), Frank-Wolfe over the
marginal polytope (:mod:`~labkit.algorithms.frank_wolfe`), the bounds of Lemmas 1-3 and
Theorem 1 (:mod:`~labkit.algorithms.bounds`), random-matrix tools
(:mod:`~labkit.algorithms.rmt`), growth-law statistics (:mod:`~labkit.algorithms.growth`),
sparsity and IMP tools (:mod:`~labkit.algorithms.sparsity`), full-batch GD
(:mod:`~labkit.algorithms.train`) and its fused CPU step (:mod:`~labkit.algorithms.fused_gd`).
They import only :mod:`labkit.infra`."""
