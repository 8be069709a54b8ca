"""Teacher-student regression data (chapters 1-5): inputs on the unit sphere and labels from
a tanh mean-field teacher with ``|b_i| = 1``, so Assumption 2 (``||x_j|| <= 1``,
``|y_j| <= 1``, our reconstruction) holds by construction."""

from __future__ import annotations

import torch

from labkit.algorithms.model import TwoLayerNet
from labkit.infra.data import _positive_int, unit_sphere


def teacher_student(m: int, d: int, *, teacher_width: int = 8, teacher_scale: float = 2.0,
                    seed: int = 0, dtype: torch.dtype = torch.float32):
    """Regression data ``(X, y)``: ``X`` of shape ``(m, d)`` with unit-norm rows,
    ``y = teacher(X)`` with a tanh mean-field teacher of width ``teacher_width`` whose
    first-layer weights are ``N(0, teacher_scale^2 I_d)`` (pre-activations of standard
    deviation ``teacher_scale``, so the target is genuinely non-linear), and ``|y_j| <= 1``
    (Assumption 2)."""
    _positive_int("teacher_width", teacher_width)
    gen = torch.Generator().manual_seed(seed)
    X = unit_sphere(m, d, gen, dtype=torch.float64)
    teacher = TwoLayerNet(d, teacher_width, activation="tanh", w_scale=teacher_scale,
                          generator=gen, dtype=torch.float64)
    with torch.no_grad():
        y = teacher(X)
    return X.to(dtype), y.to(dtype)
