"""Layer-wise channel GFS on any traceable CNN (Appendix E's procedure, Ye et al. 2020) and
the user-facing :func:`prune_channels`. Chapter 7; the groups come from
:mod:`labkit.deep.graph`.

The selection rule is :mod:`labkit.deep.channel_gfs`'s: in a group of ``C`` channels with
multiplicities ``n`` (``k = sum n``) the subnetwork reads channel ``c`` at weight
``C n_c / k``; candidate ``c`` is scored by the mini-batch loss with mask
``C (n + e_c) / (k+1)``, the lowest joins (ties to the lowest index), and a layer stops
when the evaluation accuracy is within a relative ``eps`` of its value before the layer.

Exact, batched scoring. Every node of the traced network that the group cannot change
runs once per step. At each consumer whose input ``h`` is in that frozen part, the masked
output is ``b + W (m_0 h) + C/(k+1) W_c h_c``, with ``m_0`` the mask without the candidate;
the candidates' own terms ``W_c h_c`` of a chunk of ``G`` come from one grouped convolution
(or one batched product for a linear layer). Consumers downstream of another consumer (a
squeeze-excitation gate's projection) get each candidate's mask explicitly. Only the nodes
the group can change run per candidate, ``G`` candidates stacked in one batch.
:func:`reference_scores` (one forward pass of the masked model per candidate) is kept to
test against.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from dataclasses import dataclass

import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from labkit.deep.channel_gfs import LayerResult, pick
from labkit.deep.graph import Group, Traced, consumer_mask, find_groups, set_group_mask, shrink
from labkit.deep.nets import count_flops, count_params


def _mask(C: int, counts: torch.Tensor, k: int) -> torch.Tensor:
    return C * counts / k


def _base_mask(cons, C, counts, k):
    """The consumer's input mask without the candidate: the other groups' masks where
    they are, this group's ``C n/(k+1)`` on its slots (zero before any choice)."""
    r = len(cons.index) // C
    base = consumer_mask(cons).clone()
    base[cons.index] = (C * counts / (k + 1)).to(base).repeat_interleave(r)
    return base


def _candidate_masks(cons, C, base, chunk, k):
    """Each candidate's full input mask of ``cons`` (G, width): ``base`` plus
    ``C/(k+1)`` on the candidate's slots."""
    r = len(cons.index) // C
    M = base.repeat(len(chunk), 1)
    slots = cons.index.view(C, r)[chunk].to(M.device)
    M.scatter_add_(1, slots, torch.full(slots.shape, C / (k + 1), dtype=M.dtype,
                                        device=M.device))
    return M


def _own_terms(cons, h, slots):
    """``W_c h_c`` for each candidate's input slots ``slots`` (G, r): (G, B, ...)."""
    m = cons.module
    G, r = slots.shape
    flat = slots.flatten()
    W = m.weight
    if isinstance(m, nn.Conv2d):
        W_c = W[:, flat].view(W.shape[0], G, r, *W.shape[2:]).transpose(0, 1)
        own = F.conv2d(h[:, flat], W_c.reshape(G * W.shape[0], r, *W.shape[2:]), None,
                       m.stride, m.padding, m.dilation, G)
        return own.view(h.shape[0], G, W.shape[0], *own.shape[2:]).transpose(0, 1)
    hs = h[:, flat].view(h.shape[0], G, r)
    return torch.einsum("bgr,ogr->gbo", hs, W[:, flat].view(W.shape[0], G, r))


def _layer(m: nn.Module, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    if mask is not None:
        x = x * (mask.view(-1, 1, 1) if isinstance(m, nn.Conv2d) else mask)
    if isinstance(m, nn.Conv2d):
        return F.conv2d(x, m.weight, m.bias, m.stride, m.padding, m.dilation, m.groups)
    return F.linear(x, m.weight, m.bias)


@torch.no_grad()
def score_candidates(traced: Traced, group: Group, x, y, counts, cands, *,
                     loss_fn: Callable = F.cross_entropy,
                     rows_per_pass: int = 1024) -> torch.Tensor:
    """Mini-batch loss of the network with each candidate channel of ``cands`` blended
    into ``group`` at weight ``1/(k+1)``."""
    C, B, k = group.C, x.shape[0], int(counts.sum())
    cands = torch.as_tensor(cands, dtype=torch.long)
    by_node, cut = traced.cut(group)
    env = traced.prefix(x, cut)
    # once per step: each consumer's candidate-free mask, and for a consumer with a frozen
    # input the candidate-free part of its output, b + W (m_0 h)
    base = {node: _base_mask(cons, C, counts, k) for node, cons in by_node.items()}
    frozen = {}
    for node, cons in by_node.items():
        arg = node.args[0]
        if arg not in cut and (isinstance(cons.module, nn.Conv2d) or env[arg].dim() == 2):
            frozen[node] = (env[arg], _layer(cons.module, env[arg], base[node]))
    G_max = max(1, rows_per_pass // B)
    scores = []
    for lo in range(0, len(cands), G_max):
        chunk = cands[lo:lo + G_max]
        G = len(chunk)

        def replace(node, get, chunk=chunk, G=G):
            cons = by_node.get(node)
            if cons is None:
                return None
            if node in frozen:
                h, z0 = frozen[node]
                slots = cons.index.view(C, -1)[chunk.to(cons.index.device)]
                z = z0.unsqueeze(0) + C / (k + 1) * _own_terms(cons, h, slots)
                return z.reshape(G * B, *z.shape[2:])
            h = get(node.args[0])
            M = _candidate_masks(cons, C, base[node], chunk, k).repeat_interleave(B, 0)
            shape = (G * B, -1, 1, 1) if isinstance(cons.module, nn.Conv2d) else (
                (G * B,) + (1,) * (h.dim() - 2) + (-1,))
            return _layer(cons.module, h * M.view(shape), None)

        logits = traced.suffix(env, cut, G, B, replace)
        loss = loss_fn(logits, y.repeat(G), reduction="none")
        scores.append(loss.view(G, B).mean(1))
    return torch.cat(scores)


@torch.no_grad()
def reference_scores(model, group: Group, x, y, counts, cands, *,
                     loss_fn: Callable = F.cross_entropy) -> torch.Tensor:
    """The reference strategy: one forward pass of the masked model per candidate."""
    C, k = group.C, int(counts.sum())
    old = [consumer_mask(c).clone() for c in group.consumers]
    scores = []
    try:
        for c in cands:
            trial = counts.clone()
            trial[int(c)] += 1
            set_group_mask(group, _mask(C, trial, k + 1))
            scores.append(loss_fn(model(x), y))
    finally:
        for cons, mk in zip(group.consumers, old, strict=True):
            cons.module.channel_mask.copy_(mk)
    return torch.stack(scores)


@torch.no_grad()
def prune_group(model, traced: Traced, group: Group, batches: Callable[[int], tuple],
                eval_fn: Callable[[nn.Module], float], *, eps: float, max_keep: int,
                n_candidates: int | None, gen: torch.Generator,
                loss_fn: Callable = F.cross_entropy, rows_per_pass: int = 1024,
                scorer: Callable | None = None,
                skip_eval: float | None = None,
                acc_before: float | None = None) -> LayerResult:
    """Greedy selection in one group until ``eval_fn(model)`` is within relative ``eps``
    of its value before the group, or ``max_keep`` channels are chosen; leaves the mask
    set. ``scorer`` replaces the batched scorer (the reference, in tests). ``skip_eval``:
    Ye et al.'s shortcut (``skip_eval_converge``), which runs ``eval_fn`` only once the
    step's mini-batch accuracy reaches ``1 - max(skip_eval, eps)`` times the accuracy
    before the group; a skipped step records ``nan``. With Ye's ``eps <= skip_eval`` it is
    his rule; for a larger ``eps`` the check never asks more of the mini-batch than the
    stopping rule asks of the evaluation set (with his rule, a FLOP budget below what a
    5% loss allows could not be reached at any ``eps``). ``acc_before``: ``eval_fn(model)``
    when the caller already knows it."""
    C = group.C
    acc_before = float(eval_fn(model)) if acc_before is None else float(acc_before)
    p = group.consumers[0].module.weight
    counts = torch.zeros(C, dtype=p.dtype, device=p.device)
    order, losses, accs = [], [], []
    while True:
        x, y = batches(len(order))
        pool = torch.nonzero(counts.cpu() == 0).flatten()
        if n_candidates is not None and n_candidates < len(pool):
            pool = pool[torch.randperm(len(pool), generator=gen)[:n_candidates]].sort().values
        if scorer is None:
            scores = score_candidates(traced, group, x, y, counts, pool, loss_fn=loss_fn,
                                      rows_per_pass=rows_per_pass)
        else:
            scores = scorer(model, group, x, y, counts, pool)
        c = pick(scores, pool)
        counts[c] += 1
        order.append(c)
        losses.append(float(scores[int(torch.nonzero(pool == c)[0, 0])]))
        set_group_mask(group, _mask(C, counts, len(order)))
        if skip_eval is not None and float((model(x).argmax(1) == y).double().mean()) < (
                1 - max(skip_eval, eps)) * acc_before:
            accs.append(float("nan"))
        else:
            accs.append(float(eval_fn(model)))
        if accs[-1] >= (1 - eps) * acc_before or len(order) >= max_keep:
            break
    return LayerResult(group.name, C, tuple(order), tuple(losses), tuple(accs), acc_before)


@dataclass(frozen=True)
class PruneReport:
    """What :func:`prune_channels` did: cost and accuracy of the dense and pruned models,
    one :class:`~labkit.deep.channel_gfs.LayerResult` per pruned group, the groups left alone
    with the reason, and the largest output difference between the pruned model and the
    masked one on the example batch (a check that the removal was exact)."""

    flops_before: int
    flops_after: int
    params_before: int
    params_after: int
    acc_before: float
    acc_after: float
    layers: tuple[LayerResult, ...]
    skipped: tuple[tuple[str, str], ...]
    max_abs_diff: float

    def table(self) -> pd.DataFrame:
        """Per-layer choices: channels kept of ``C`` and the accuracy before/after."""
        return pd.DataFrame([{"group": r.name, "C": r.C, "kept": r.kept,
                              "acc_before": r.acc_before, "acc_after": r.accuracies[-1]}
                             for r in self.layers])

    def summary(self) -> pd.Series:
        return pd.Series({"FLOPs": f"{self.flops_before:,} -> {self.flops_after:,}",
                          "params": f"{self.params_before:,} -> {self.params_after:,}",
                          "accuracy": f"{self.acc_before:.4f} -> {self.acc_after:.4f}",
                          "groups pruned": len(self.layers),
                          "groups skipped": len(self.skipped),
                          "max |pruned - masked|": f"{self.max_abs_diff:.1e}"})


class SeededBatches:
    """Mini-batch ``j`` of ``(X, Y)``: ``batch_size`` rows drawn with replacement by a
    generator seeded with ``seed`` and ``j``, so every process of a distributed run (and a
    centralized run) sees the same batches. Picklable, for spawned processes."""

    def __init__(self, X: torch.Tensor, Y: torch.Tensor, batch_size: int, seed: int = 0):
        if not 1 <= batch_size:
            raise ValueError(f"batch_size: must be a positive integer, got {batch_size!r}")
        self.X, self.Y, self.batch_size, self.seed = X, Y, int(batch_size), int(seed)

    def __call__(self, j: int) -> tuple[torch.Tensor, torch.Tensor]:
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + j)
        idx = torch.randint(len(self.X), (self.batch_size,), generator=g)
        return self.X[idx], self.Y[idx]

    def to(self, device) -> SeededBatches:
        return SeededBatches(self.X.to(device), self.Y.to(device), self.batch_size, self.seed)


class Accuracy:
    """``eval_fn`` for :func:`prune_channels`: top-1 accuracy on ``(X, y)``. Picklable."""

    def __init__(self, X: torch.Tensor, y: torch.Tensor):
        self.X, self.y = X, y

    @torch.no_grad()
    def __call__(self, model: nn.Module) -> float:
        return float((model(self.X).argmax(1) == self.y).double().mean())

    def to(self, device) -> Accuracy:
        return Accuracy(self.X.to(device), self.y.to(device))


def _choose(found: list[Group], groups) -> list[Group]:
    if isinstance(groups, str):
        if groups not in ("all", "inner"):
            raise ValueError(f"groups: must be 'all', 'inner' or a list of group names, "
                             f"got {groups!r}")
        return [g for g in found if g.supported and (groups == "all" or g.kind == "inner")]
    by_name = {g.name: g for g in found}
    unknown = [n for n in groups if n not in by_name]
    if unknown:
        raise ValueError(f"groups: unknown group(s) {unknown}; allowed: "
                         f"{', '.join(g.name for g in found if g.supported)}")
    bad = [f"{n}: {by_name[n].reason}" for n in groups if not by_name[n].supported]
    if bad:
        raise ValueError(f"groups: cannot prune {'; '.join(bad)}")
    wanted = set(groups)
    return [g for g in found if g.name in wanted]


def prune_channels(model: nn.Module, batches: Callable[[int], tuple],
                   eval_fn: Callable[[nn.Module], float], *, eps: float = 0.01,
                   budget: float | None = None, groups="all",
                   n_candidates: int | None = None, seed: int = 0,
                   loss_fn: Callable = F.cross_entropy, rows_per_pass: int = 1024,
                   scorer: Callable | None = None) -> tuple[nn.Module, PruneReport]:
    """Prune ``model``'s channels with layer-wise GFS and return a physically smaller copy
    and a :class:`PruneReport`. ``batches(j)`` returns mini-batch ``j`` as ``(x, y)`` (a
    running count over all groups; its first input also fixes the example shape);
    ``eval_fn(model)`` returns an accuracy. ``eps``: each group stops once the accuracy is
    within this relative tolerance of its value before the group. ``budget``: at most this
    fraction of each group's channels is kept (``None``: no cap). ``groups``: ``"all"``
    supported groups, only the ``"inner"`` ones (a block's hidden channels, Appendix E's
    choice), or a list of group names (:func:`~labkit.deep.graph.find_groups`), pruned
    input to output. ``scorer(model, group, x, y, counts, cands)`` replaces the batched
    scorer (the reference in tests, a distributed one in
    :mod:`labkit.distributed.channels`). ``model`` is left unchanged."""
    if not 0 <= eps < 1:
        raise ValueError(f"eps: must be in [0, 1), got {eps!r}")
    if budget is not None and not 0 < budget <= 1:
        raise ValueError(f"budget: must be in (0, 1] or None, got {budget!r}")
    if n_candidates is not None and n_candidates < 1:
        raise ValueError(f"n_candidates: must be positive or None (all), got {n_candidates!r}")
    work = copy.deepcopy(model).eval()
    example = batches(0)[0][:1]
    found = find_groups(work, example)
    chosen = _choose(found, groups)
    skipped = tuple((g.name, g.reason or "not chosen") for g in found if g not in chosen)
    if not chosen:
        reasons = "; ".join(f"{n}: {r}" for n, r in skipped) or "no groups found"
        raise ValueError(f"model: no channel group can be pruned ({reasons})")
    traced = Traced(work) if scorer is None else None
    gen = torch.Generator().manual_seed(seed)
    acc_before = float(eval_fn(work))
    results, used = [], 0
    for g in chosen:
        max_keep = g.C if budget is None else max(1, math.floor(budget * g.C))
        res = prune_group(work, traced, g, lambda j, used=used: batches(used + j), eval_fn,
                          eps=eps, max_keep=max_keep, n_candidates=n_candidates, gen=gen,
                          loss_fn=loss_fn, rows_per_pass=rows_per_pass, scorer=scorer)
        used += len(res.order)
        results.append(res)
    small = shrink(work, example).eval()
    with torch.no_grad():
        diff = float((small(example) - work(example)).abs().max())
    shape = tuple(example.shape[1:])
    return small, PruneReport(count_flops(model, shape), count_flops(small, shape),
                              count_params(model), count_params(small), acc_before,
                              float(eval_fn(small)), tuple(results), skipped, diff)
