"""Pre-training by full-batch gradient descent (eq. 5) on the losses of eq. (4).

The network is the mean-field average of eq. (2), so each neuron's gradient carries a
factor ``1/N``. By default (``scaling="mean_field"``) we take the step
``theta_i <- theta_i - lr * N * grad_i L`` (the mean-field time scale), which makes ``lr``
mean the same thing at every width. ``scaling="raw"`` takes the plain step
``theta <- theta - lr * grad L`` of eq. (5) with a width-independent ``lr``, under which each
neuron moves ``O(1/N)`` per step (the regime of the paper's Lemma 3, chapter 3).
Chapters 2-4.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from labkit.algorithms.model import TwoLayerNet

TRAIN_LOSSES = ("mse", "bce")
SCALINGS = ("mean_field", "raw")


def dense_loss(net: TwoLayerNet, X: torch.Tensor, y: torch.Tensor, loss: str = "mse"):
    """Eq. (4): ``(1/m) sum_j (f(x_j) - y_j)^2``, or binary cross-entropy on the logits."""
    if loss not in TRAIN_LOSSES:
        raise ValueError(f"loss: unknown loss {loss!r}; allowed: {', '.join(TRAIN_LOSSES)}")
    z = net.logits(X)
    if loss == "mse":
        return torch.mean((z - y) ** 2)
    return F.binary_cross_entropy_with_logits(z, y)


def pretrain_gd(net: TwoLayerNet, X: torch.Tensor, y: torch.Tensor, *, steps: int,
                lr: float, loss: str = "mse", scaling: str = "mean_field") -> np.ndarray:
    """Run ``steps`` full-batch GD iterations in place; return the dense loss before each
    step and after the last (length ``steps + 1``). A non-finite loss raises an error
    naming the iteration."""
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 0:
        raise ValueError(f"steps: must be a non-negative integer, got {steps!r}")
    if not lr > 0:
        raise ValueError(f"lr: must be positive, got {lr!r}")
    if scaling not in SCALINGS:
        raise ValueError(f"scaling: unknown scaling {scaling!r}; allowed: {', '.join(SCALINGS)}")
    step = lr * net.N if scaling == "mean_field" else lr
    history = np.empty(steps + 1)
    for t in range(steps + 1):
        net.zero_grad(set_to_none=True)
        value = dense_loss(net, X, y, loss)
        history[t] = value.item()
        if not np.isfinite(history[t]):
            raise FloatingPointError(f"pre-training diverged: loss {history[t]} at iteration "
                                     f"{t} (lr={lr}, N={net.N}); lower lr")
        if t == steps:
            break
        value.backward()
        with torch.no_grad():
            for p in net.parameters():
                p -= step * p.grad
    return history


def weight_movement(W0, W, b0=None, b=None) -> dict:
    """How far training moved the weights: the relative Frobenius movement of the first
    layer ``||W - W_0||_F / ||W_0||_F``, the largest movement of one neuron's first-layer
    weights ``max_i ||w_i - w_i0||``, and, given ``b0`` and ``b``, the relative movement of
    the second layer ``||b - b_0|| / ||b_0||``. The quantity Lemma 3 (chapter 3) and the
    regime of Theorems 2-3 (chapter 4) are about; the two chapters share this one
    definition."""
    with torch.no_grad():
        W0, W = torch.as_tensor(W0), torch.as_tensor(W)
        out = {"rel_first": float((W - W0).norm() / W0.norm()),
               "max_neuron": float((W - W0).norm(dim=-1).max())}
        if b0 is not None and b is not None:
            b0, b = torch.as_tensor(b0), torch.as_tensor(b)
            out["rel_second"] = float((b - b0).norm() / b0.norm())
    return out
