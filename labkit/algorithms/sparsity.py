"""Weight masks and the tools of the lottery-ticket literature: random masks at
initialization (Yang et al. 2023, chapter 9), global magnitude pruning, iterative magnitude
pruning (IMP) with weight rewinding (Frankle et al. 2020; open_lth's ``sparse_global``),
EL2N scores (Paul et al. 2021) and the linear-mode-connectivity error barrier (Frankle et
al. 2020), as chapter 10 uses them.

A *mask* is a dict ``name -> 0/1 tensor`` over some of a model's parameters (the prunable
ones: convolution and linear weights, by default all but the output layer's, as in
open_lth's MNIST setting). Masked training keeps the masked weights at exactly zero: their
gradients are zeroed before each step (so momentum never moves them) and the weights are
multiplied by the mask after it (weight decay and rounding cannot revive them).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

Mask = dict[str, torch.Tensor]


def random_mask(shape, fraction: float, generator: torch.Generator) -> torch.Tensor:
    """Yang et al.'s pruning at initialization: every entry is kept independently with
    probability ``1 - fraction`` (a 0/1 float tensor of ``shape``)."""
    if not 0 <= fraction < 1:
        raise ValueError(f"fraction: the pruning fraction must be in [0, 1), got {fraction!r}")
    return (torch.rand(shape, generator=generator) >= fraction).float()


def prunable(model: nn.Module, ignore: Iterable[str] = ()) -> dict[str, nn.Parameter]:
    """The weights IMP prunes: every convolution's and linear layer's ``weight`` whose
    parameter name is not in ``ignore`` (biases and batch-norm parameters never)."""
    ignore = set(ignore)
    names = {f"{mod}.weight" if mod else "weight" for mod, m in model.named_modules()
             if isinstance(m, (nn.Conv1d, nn.Conv2d, nn.Linear))}
    params = dict(model.named_parameters())
    unknown = ignore - set(params)
    if unknown:
        raise ValueError(f"ignore: {sorted(unknown)[0]!r} is not a parameter of the model; "
                         f"prunable: {', '.join(sorted(names))}")
    return {n: params[n] for n in params if n in names and n not in ignore}


def full_mask(model: nn.Module, ignore: Iterable[str] = ()) -> Mask:
    """The dense mask (all ones) over :func:`prunable`'s weights."""
    return {n: torch.ones_like(p, dtype=torch.float32) for n, p in
            prunable(model, ignore).items()}


def density(mask: Mask) -> float:
    """The fraction of the masked weights that remain."""
    kept = sum(float(m.sum()) for m in mask.values())
    return kept / sum(m.numel() for m in mask.values())


def global_magnitude(weights: dict[str, torch.Tensor], mask: Mask, fraction: float) -> Mask:
    """One round of global magnitude pruning (IMP): of the weights the mask still keeps,
    remove the ``ceil(fraction * remaining)`` of smallest ``|w|`` over all tensors together
    (open_lth's ``sparse_global`` count); ties go to the earlier tensor (in ``mask``'s
    order) and the earlier flat index, so the count is exact."""
    if not 0 < fraction < 1:
        raise ValueError(f"fraction: the fraction pruned per round must be in (0, 1), "
                         f"got {fraction!r}")
    names = list(mask)
    missing = [n for n in names if n not in weights]
    if missing:
        raise ValueError(f"weights: no tensor for masked weight {missing[0]!r}")
    mags = torch.cat([weights[n].detach().abs().flatten().float().cpu() for n in names])
    keep = torch.cat([mask[n].flatten().cpu() > 0 for n in names])
    remaining = int(keep.sum())
    n_prune = math.ceil(fraction * remaining)
    # pruned weights sort last; a stable sort keeps index order among equal magnitudes
    order = torch.sort(torch.where(keep, mags, torch.inf), stable=True).indices
    new = keep.clone()
    new[order[:n_prune]] = False
    out, start = {}, 0
    for n in names:
        size = mask[n].numel()
        out[n] = new[start:start + size].view_as(mask[n]).to(mask[n])
        start += size
    return out


@torch.no_grad()
def apply_mask(model: nn.Module, mask: Mask) -> None:
    """Zero the masked weights of ``model`` in place."""
    params = dict(model.named_parameters())
    for n, m in mask.items():
        params[n].mul_(m.to(params[n]))


def masked_step(model: nn.Module, mask: Mask, opt: torch.optim.Optimizer) -> None:
    """``opt.step()`` that leaves the masked weights at zero (their gradients zeroed
    first, so neither momentum nor the step moves them; the mask reapplied after, against
    weight decay)."""
    params = dict(model.named_parameters())
    for n, m in mask.items():
        if params[n].grad is not None:
            params[n].grad.mul_(m.to(params[n].grad))
    opt.step()
    apply_mask(model, mask)


def rewind(model: nn.Module, state: dict[str, torch.Tensor], mask: Mask) -> None:
    """Weight rewinding: load the stored state (weights and buffers of step ``t``) into
    ``model`` and apply ``mask``, so the kept weights equal the step-``t`` weights bitwise
    and the others are zero."""
    model.load_state_dict(state)
    apply_mask(model, mask)


def imp(model: nn.Module, rewind_state: dict, train: Callable[[nn.Module, Mask], None], *,
        rounds: int, fraction: float = 0.2, ignore: Iterable[str] = (),
        on_round: Callable[[int, Mask, nn.Module], None] | None = None) -> list[Mask]:
    """Iterative magnitude pruning with rewinding: ``rounds`` times, rewind ``model`` to
    ``rewind_state`` under the current mask, ``train(model, mask)`` it (to the end of
    training, keeping the mask), call ``on_round(r, mask, model)`` (evaluate it), then prune
    ``fraction`` of the remaining weights by global magnitude. Round 0 is the dense network.
    Returns the masks of rounds ``0..rounds-1`` (round ``r`` keeps ``(1-fraction)^r``)."""
    if rounds < 1:
        raise ValueError(f"rounds: need at least 1 round, got {rounds!r}")
    mask, masks = full_mask(model, ignore), []
    for r in range(rounds):
        rewind(model, rewind_state, mask)
        train(model, mask)
        masks.append(mask)
        if on_round is not None:
            on_round(r, mask, model)
        if r + 1 < rounds:
            mask = global_magnitude(dict(model.named_parameters()), mask, fraction)
    return masks


def el2n(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """EL2N of each example (Paul et al. 2021): ``|| softmax(logits) - onehot(label) ||_2``;
    the score is its mean over independently trained networks, a few epochs in."""
    p = torch.softmax(logits.double(), dim=1)
    return (p - F.one_hot(labels, logits.shape[1]).double()).norm(dim=1)


def interpolate(state_a: dict, state_b: dict, alpha: float) -> dict:
    """``(1 - alpha) * a + alpha * b`` for every floating-point entry of two state dicts
    (integer buffers, e.g. batch-norm step counters, are taken from ``a``)."""
    if state_a.keys() != state_b.keys():
        raise ValueError("state_b: the two states hold different entries")
    return {k: ((1 - alpha) * v + alpha * state_b[k]) if v.is_floating_point() else v.clone()
            for k, v in state_a.items()}


def error_barrier(errors) -> float:
    """Frankle et al.'s error barrier of a path sampled at alphas 0..1 (endpoints first and
    last): the highest error along it minus the mean of the endpoints' errors."""
    e = np.asarray(errors, dtype=float)
    if len(e) < 3:
        raise ValueError(f"errors: need the two endpoints and a point between, got {len(e)}")
    return float(e.max() - (e[0] + e[-1]) / 2)


def lmc_path(model: nn.Module, state_a: dict, state_b: dict,
             evaluate: Callable[[nn.Module], float], alphas) -> np.ndarray:
    """The error of ``evaluate`` (e.g. test error, after re-estimating batch-norm
    statistics) at each point ``(1-alpha) a + alpha b`` of the linear path between two
    trained networks; ``model`` is overwritten."""
    errors = []
    for alpha in alphas:
        model.load_state_dict(interpolate(state_a, state_b, float(alpha)))
        errors.append(float(evaluate(model)))
    return np.asarray(errors)


@torch.no_grad()
def reset_bn(model: nn.Module, batches: Iterable[torch.Tensor]) -> None:
    """Re-estimate every batch-norm layer's running statistics as the plain average over
    ``batches`` (an interpolated network's statistics are not the interpolated ones)."""
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not norms:
        return
    momenta = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # a cumulative average over the batches
    was = model.training
    model.train()
    for x in batches:
        model(x)
    model.train(was)
    for m, momentum in zip(norms, momenta, strict=True):
        m.momentum = momentum
