"""Layer-wise channel GFS for deep networks (Appendix E; Ye et al. 2020's practical
procedure), with an exact, batched candidate scorer. Chapter 7.

Layers are pruned from input to output. In a group of ``C`` channels with ``k`` already
chosen (multiplicities ``n_c``, ``sum n_c = k``), the subnetwork weights channel ``c`` by
``mu_c = C n_c / k`` (the mean-field average over the chosen channels, rescaled so that
``k = C`` distinct channels give back the dense block). Candidate ``c`` is scored by the
mini-batch cross-entropy of the network with the candidate blended in at weight
``1/(k+1)``, i.e. with mask ``C (n + e_c) / (k+1)``; the lowest loss joins (ties to the
lowest channel index). A layer stops when the accuracy on a fixed set of training examples
is within a relative ``eps`` of its accuracy before that layer was pruned.

Scoring cost. The reference code runs the whole network once per candidate. Here, per
step, the frozen prefix (everything before the block) runs once; because the group feeds a
bias-free convolution, ``conv(mu h) = sum_c mu_c conv(h_c)``, so every candidate's
pre-activation is ``k/(k+1) conv(mu_S h) + C/(k+1) conv(h_c)``, and the per-channel terms
``conv(h_c)`` of a chunk of ``G`` candidates come from one grouped convolution. Only the
block's tail and the suffix run per candidate, ``G`` candidates stacked in one batch.
:func:`brute_force_scores` is the reference strategy, kept to test against.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from labkit.deep.nets import ChannelGroup, channel_groups, run_chain, set_mask, stages


def _mask(C: int, counts: torch.Tensor, k: int) -> torch.Tensor:
    return C * counts / k


@torch.no_grad()
def score_candidates(model, group: ChannelGroup, x_in, h, y, counts, cands, *,
                     rows_per_pass: int = 1024) -> torch.Tensor:
    """Mini-batch cross-entropy of the network with each candidate channel of ``cands``
    blended into ``group`` at weight ``1/(k+1)``. ``x_in`` is the block input (the prefix's
    output) and ``h = group.inner(x_in)``, both computed once per step by the caller."""
    chain = stages(model)
    suffix = chain[group.stage + 1:]
    conv, C = group.conv, group.C
    W = conv.weight
    B, k = h.shape[0], int(counts.sum())
    cands = torch.as_tensor(cands, dtype=torch.long, device=h.device)
    if k:
        z_S = F.conv2d(h * _mask(C, counts, k).view(1, -1, 1, 1), W, None, conv.stride,
                       conv.padding, conv.dilation)
    G_max = max(1, rows_per_pass // B)
    scores = []
    for lo in range(0, len(cands), G_max):
        chunk = cands[lo:lo + G_max]
        G, c_out = len(chunk), W.shape[0]
        # one grouped convolution gives every candidate's own term conv(h_c)
        W_c = W[:, chunk].transpose(0, 1).reshape(G * c_out, 1, *W.shape[2:])
        own = F.conv2d(h[:, chunk], W_c, None, conv.stride, conv.padding, conv.dilation, G)
        own = own.view(B, G, c_out, *own.shape[2:]).transpose(0, 1)
        z = C / (k + 1) * own
        if k:
            z = z + k / (k + 1) * z_S
        logits = run_chain(suffix, group.tail(z.reshape(G * B, *z.shape[2:]), x_in))
        loss = F.cross_entropy(logits, y.repeat(G), reduction="none")
        scores.append(loss.view(G, B).mean(1))
    return torch.cat(scores)


@torch.no_grad()
def brute_force_scores(model, group: ChannelGroup, x, y, counts, cands) -> torch.Tensor:
    """The reference strategy: one full forward pass of the masked network per candidate.
    Slow; kept to test :func:`score_candidates` against and for the benchmark."""
    C, k = group.C, int(counts.sum())
    old = getattr(group.conv, "channel_mask", None)
    scores = []
    try:
        for c in cands:
            trial = counts.clone()
            trial[int(c)] += 1
            set_mask(group, _mask(C, trial, k + 1))
            scores.append(F.cross_entropy(model(x), y))
    finally:
        set_mask(group, old)
    return torch.stack(scores)


def pick(scores: torch.Tensor, cands) -> int:
    """The candidate with the lowest score; scores within a few rounding units of the
    minimum count as tied and go to the lowest channel index."""
    tol = 64 * torch.finfo(scores.dtype).eps * (1 + scores.abs().min())
    near = torch.nonzero(scores <= scores.min() + tol).flatten()
    return int(torch.as_tensor(cands)[near.cpu()].min())


@dataclass(frozen=True)
class LayerResult:
    """One group's outcome: channels in selection order, the chosen step's mini-batch loss
    and the eval accuracy after every step, the accuracy before the layer was pruned."""

    name: str
    C: int
    order: tuple[int, ...]
    losses: tuple[float, ...]
    accuracies: tuple[float, ...]
    acc_before: float

    @property
    def kept(self) -> int:
        return len(set(self.order))

    def as_dict(self) -> dict:
        return {"name": self.name, "C": self.C, "order": list(self.order),
                "losses": list(self.losses), "accuracies": list(self.accuracies),
                "acc_before": self.acc_before}


def _accuracy(logits: torch.Tensor, y: torch.Tensor) -> float:
    return float((logits.argmax(1) == y).to(torch.float64).mean())


@torch.no_grad()
def prune_group(model, group: ChannelGroup, batches: Callable[[int], tuple], eval_X, eval_y,
                *, eps: float, n_candidates: int | None, gen: torch.Generator,
                replacement: bool = False, rows_per_pass: int = 1024) -> LayerResult:
    """Greedy selection in one group until the eval accuracy is within relative ``eps``
    of its value before this group; leaves the group's mask set on ``model``.
    ``batches(step)`` returns that step's mini-batch ``(x, y)``; ``n_candidates=None``
    scores every allowed channel, else a random subset drawn with ``gen``."""
    model.eval()
    chain = stages(model)
    prefix, suffix = chain[:group.stage], chain[group.stage + 1:]
    C, conv = group.C, group.conv
    x_ev = run_chain(prefix, eval_X)
    h_ev = group.inner(x_ev)

    def eval_acc(mask):
        z = F.conv2d(h_ev * mask.view(1, -1, 1, 1), conv.weight, None, conv.stride,
                     conv.padding, conv.dilation)
        return _accuracy(run_chain(suffix, group.tail(z, x_ev)), eval_y)

    acc_before = eval_acc(torch.ones(C, dtype=h_ev.dtype, device=h_ev.device))
    counts = torch.zeros(C, dtype=h_ev.dtype, device=h_ev.device)
    order, losses, accs = [], [], []
    while True:
        x, y = batches(len(order))
        x_in = run_chain(prefix, x)
        h = group.inner(x_in)
        pool = torch.arange(C) if replacement else torch.nonzero(counts.cpu() == 0).flatten()
        if n_candidates is not None and n_candidates < len(pool):
            pool = pool[torch.randperm(len(pool), generator=gen)[:n_candidates]].sort().values
        scores = score_candidates(model, group, x_in, h, y, counts, pool,
                                  rows_per_pass=rows_per_pass)
        c = pick(scores, pool)
        counts[c] += 1
        order.append(c)
        losses.append(float(scores[int(torch.nonzero(pool == c)[0, 0])]))
        accs.append(eval_acc(_mask(C, counts, len(order))))
        if accs[-1] >= (1 - eps) * acc_before or (not replacement and len(order) == C):
            break
    set_mask(group, _mask(C, counts, len(order)))
    return LayerResult(group.name, C, tuple(order), tuple(losses), tuple(accs), acc_before)


def prune_network(model, batches, eval_X, eval_y, *, eps: float, n_candidates: int | None,
                  seed: int, finetune: Callable | None = None, replacement: bool = False,
                  rows_per_pass: int = 1024) -> list[LayerResult]:
    """Layer-wise channel GFS over every group of ``model`` (input to output), calling
    ``finetune(model)`` after each group when given. ``batches(j)`` gives mini-batch ``j``
    (a running count over all groups). Masks are left on ``model``; see
    :func:`labkit.deep.nets.shrink` for the smaller network."""
    if not 0 <= eps < 1:
        raise ValueError(f"eps: must be in [0, 1), got {eps!r}")
    if n_candidates is not None and n_candidates < 1:
        raise ValueError(f"n_candidates: must be positive or None (all), got {n_candidates!r}")
    gen = torch.Generator().manual_seed(seed)
    results, used = [], 0
    for group in channel_groups(model):
        res = prune_group(model, group, lambda j, used=used: batches(used + j), eval_X, eval_y,
                          eps=eps, n_candidates=n_candidates, gen=gen,
                          replacement=replacement, rows_per_pass=rows_per_pass)
        used += len(res.order)
        results.append(res)
        if finetune is not None:
            finetune(model)
    return results
