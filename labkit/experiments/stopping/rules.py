"""Stopping rules for pre-training (the paper's open problem, Section 6) and
:class:`EarlyTicket`, the callback that applies them inside a training loop. Chapter 11.

A rule looks at one *observation* per checkpoint (a dict) and says when to stop:

- :class:`BoundRule`: stop once the dense loss is at most ``fraction`` times Lemma 1's
  pruning term ``P = l(z_1)/k + (beta/2) D^2 (H_k - 1)/k`` (eq. 13-15 with ``z*`` the
  dense output; ``beta/2 = 1/m`` for the squared loss, ``1/(8m)`` for binary
  cross-entropy). Then the dense part of the bound is at most ``fraction/(1+fraction)``
  of it: pre-training on can lower the guarantee by no more than that, unless it lowers
  ``P`` itself (chapter 11's Proposition 1).
- :class:`StabilityRule`: stop once the GFS selection at the newest checkpoint differs
  from each of the previous ``window`` selections by at most ``tol``
  (:func:`selection_distance`, as a multiset or as a set): Early-Bird's test on the
  subnetwork GFS would return.
- :class:`EarlyBirdRule`: You et al. (2020)'s rule: the mask keeping the ``keep`` fraction
  of units with the largest scores (``|BN gamma|`` over every batch-norm layer of a
  channel network, ``|b_i| ||w_i||`` for a two-layer one); stop once the normalized
  Hamming distance of the newest mask to each of the previous ``window`` masks is at most
  ``tol`` (their queue of 5 masks, ``tol = 0.1``).

:func:`observe` builds the observation from a model and a batch; :func:`stop_index` is the
offline rule on a whole stored trajectory (vectorized; the callback's streaming test is
checked against it in ``tests/test_stopping.py``).
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from labkit.algorithms.bounds import harmonic
from labkit.algorithms.gfs import greedy_forward_selection
from labkit.algorithms.model import TwoLayerNet

LOSSES = {"mse": 1.0, "bce": 1 / 8}  # beta/2 times m: half the loss's smoothness


# -- Lemma 1's pruning term, measured on the fly ---------------------------------------------

def sweep_diameter(Phi: torch.Tensor) -> float:
    """A two-sweep estimate of ``D = max_ij ||Phi_i - Phi_j||`` in ``O(N m)``: ``i0`` the
    row farthest from the centroid, ``D_hat = max_j ||Phi_j - Phi_i0||``. Always
    ``D_hat <= D <= 2 max_i ||Phi_i - centroid||`` (the exact, ``O(N^2 m)``
    :func:`labkit.diameter` is what the tests hold it to)."""
    Phi = torch.as_tensor(Phi).to(torch.float64)
    i0 = int(((Phi - Phi.mean(0)) ** 2).sum(1).argmax())
    return float(((Phi - Phi[i0]) ** 2).sum(1).max().sqrt())


def vertex_losses(Phi: torch.Tensor, y: torch.Tensor, loss: str) -> torch.Tensor:
    """The loss of every vertex ``Phi_i`` used alone as the output (GFS's first step
    picks the smallest)."""
    if loss == "mse":
        return ((Phi - y) ** 2).mean(1)
    return torch.nn.functional.binary_cross_entropy_with_logits(
        Phi, y.expand_as(Phi), reduction="none").mean(1)


def pruning_term(l1: float, D: float, m: int, k: int, loss: str = "mse") -> float:
    """Lemma 1's pruning term for ``k`` GFS steps with replacement on ``m`` points:
    ``l(z_1)/k + (beta/2) D^2 (H_k - 1)/k`` with ``beta/2 = 1/m`` (squared loss, the
    chapter 3 form) or ``1/(8m)`` (binary cross-entropy on the logits: its second
    derivative is at most 1/4); ``l(z_k) <= P + (1 - 1/k) l(z*)``."""
    if loss not in LOSSES:
        raise ValueError(f"loss: unknown loss {loss!r}; allowed: {', '.join(LOSSES)}")
    if k < 1:
        raise ValueError(f"k: must be a positive number of GFS steps, got {k!r}")
    return float(l1 / k + LOSSES[loss] * D**2 * (harmonic(k)[-1] - 1) / (m * k))


# -- distances --------------------------------------------------------------------------------

def selection_distance(a, b, *, multiset: bool = True) -> float:
    """How much two GFS selections differ, in ``[0, 1]``. As multisets: the fraction of
    selections not shared, ``1 - sum_i min(n_i, n'_i) / max(|a|, |b|)``; as sets: the
    Jaccard distance ``|A ^ B| / |A | B|``."""
    a, b = np.asarray(a, dtype=np.int64), np.asarray(b, dtype=np.int64)
    if multiset:
        size = max(len(a), len(b), 1)
        ua, ca = np.unique(a, return_counts=True)
        ub, cb = np.unique(b, return_counts=True)
        _, ia, ib = np.intersect1d(ua, ub, return_indices=True)
        return float(1 - np.minimum(ca[ia], cb[ib]).sum() / size)
    A, B = set(a.tolist()), set(b.tolist())
    return len(A ^ B) / max(len(A | B), 1)


def mask_distance(a, b, n: int) -> float:
    """Early-Bird's normalized Hamming distance between two masks given as their kept
    indices among ``n`` units."""
    return len(set(np.asarray(a).tolist()) ^ set(np.asarray(b).tolist())) / n


def top_mask(scores, keep: float) -> list[int]:
    """The kept units of Early-Bird's mask: the ``ceil(keep * n)`` largest scores (one
    global threshold; ties to the lower index), sorted."""
    scores = torch.as_tensor(scores, dtype=torch.float64).flatten()
    n = max(1, int(np.ceil(keep * len(scores))))
    order = torch.argsort(-scores, stable=True)
    return sorted(order[:n].tolist())


# -- the rules --------------------------------------------------------------------------------

def _check_window(window: int, tol: float) -> None:
    if not isinstance(window, int) or window < 1:
        raise ValueError(f"window: must be a positive integer of checkpoints, got {window!r}")
    if not 0 <= tol <= 1:
        raise ValueError(f"tol: a distance tolerance must be in [0, 1], got {tol!r}")


@dataclass(frozen=True)
class BoundRule:
    """Stop when ``dense <= fraction * pruning_term`` (see the module docstring)."""

    fraction: float = 0.1
    name = "bound"

    def __post_init__(self):
        if not self.fraction > 0:
            raise ValueError(f"fraction: must be positive, got {self.fraction!r}")

    @property
    def label(self) -> str:
        return f"bound c={self.fraction:g}"


@dataclass(frozen=True)
class StabilityRule:
    """Stop when the newest GFS selection is within ``tol`` of each of the previous
    ``window`` ones."""

    tol: float = 0.1
    window: int = 4
    multiset: bool = True
    name = "stability"

    def __post_init__(self):
        _check_window(self.window, self.tol)

    @property
    def label(self) -> str:
        return f"stability tol={self.tol:g}"


@dataclass(frozen=True)
class EarlyBirdRule:
    """You et al.'s rule: the newest mask within ``tol`` of each of the previous ``window``
    masks (normalized Hamming distance)."""

    tol: float = 0.1
    window: int = 4
    keep: float = 0.5
    name = "early_bird"

    def __post_init__(self):
        _check_window(self.window, self.tol)
        if not 0 < self.keep < 1:
            raise ValueError(f"keep: the kept fraction of units must be in (0, 1), got "
                             f"{self.keep!r}")

    @property
    def label(self) -> str:
        return f"Early-Bird tol={self.tol:g}"


RULES = (BoundRule, StabilityRule, EarlyBirdRule)


def _distances(rule, obs: list[dict]) -> np.ndarray:
    """All pairwise distances of a trajectory's selections or masks (``C x C``)."""
    C = len(obs)
    D = np.zeros((C, C))
    for i in range(C):
        for j in range(i):
            if rule.name == "stability":
                D[i, j] = selection_distance(obs[i]["selection"], obs[j]["selection"],
                                             multiset=rule.multiset)
            else:
                D[i, j] = mask_distance(obs[i]["mask"], obs[j]["mask"], obs[i]["units"])
    return D + D.T


def stop_index(rule, obs: list[dict]) -> int | None:
    """The first checkpoint (index into ``obs``) at which ``rule`` stops on a whole stored
    trajectory, ``None`` if it never does: the offline form of :class:`EarlyTicket`."""
    if rule.name == "bound":
        dense = np.array([o["dense"] for o in obs])
        term = np.array([o["pruning_term"] for o in obs])
        hit = np.flatnonzero(dense <= rule.fraction * term)
        return int(hit[0]) if len(hit) else None
    D = _distances(rule, obs)
    for j in range(rule.window, len(obs)):
        if D[j, j - rule.window:j].max() <= rule.tol:
            return j
    return None


# -- observations -----------------------------------------------------------------------------

def _bn_gammas(model: nn.Module) -> torch.Tensor:
    gammas = [m.weight.detach().abs().flatten() for m in model.modules()
              if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.weight is not None]
    if not gammas:
        raise ValueError("model: Early-Bird's channel rule needs batch-norm layers; this "
                         f"{type(model).__name__} has none")
    return torch.cat(gammas).cpu()


@torch.no_grad()
def channel_selection(model: nn.Module, X: torch.Tensor, y: torch.Tensor, k: int, *,
                      group: int = -1) -> list[int]:
    """Channel GFS (chapter 7's scoring, :func:`labkit.deep.channel_gfs.score_candidates`, every
    channel a candidate, with replacement) of ``k`` steps in one channel group of a
    :func:`labkit.build_deepnet` model on the batch ``(X, y)``: the selection a stability
    rule compares. ``group``: which of :func:`labkit.deep.nets.channel_groups` (default the
    last, nearest the output)."""
    from labkit.deep.channel_gfs import pick, score_candidates
    from labkit.deep.nets import channel_groups, run_chain, stages

    was = model.training
    model.eval()
    g = channel_groups(model)[group]
    x_in = run_chain(stages(model)[:g.stage], X)
    h = g.inner(x_in)
    counts = torch.zeros(g.C, dtype=h.dtype, device=h.device)
    pool, order = torch.arange(g.C), []
    for _ in range(k):
        c = pick(score_candidates(model, g, x_in, h, y, counts, pool), pool)
        counts[c] += 1
        order.append(c)
    model.train(was)
    return order


@torch.no_grad()
def observe(model: nn.Module, X: torch.Tensor, y: torch.Tensor, k: int, *,
            loss: str = "mse", keep: float = 0.5, replacement: bool = True,
            bound: bool = True) -> dict:
    """One checkpoint's observation of ``model`` on ``(X, y)``, what every rule reads.

    A :class:`labkit.TwoLayerNet`: ``dense`` (the dense loss, ``loss`` on the logits),
    ``pruning_term`` (Lemma 1's, with :func:`sweep_diameter`; ``bound=False`` skips it),
    ``selection`` (GFS's ``k`` picks in order), ``mask`` (Early-Bird's, scores
    ``|b_i| ||w_i||``). A channel network (:func:`labkit.build_deepnet`): ``selection``
    from :func:`channel_selection`, ``mask`` over every ``|BN gamma|``; no bound (Lemma 1
    is a two-layer result). ``units``: how many units the mask is over."""
    if isinstance(model, TwoLayerNet):
        Phi = model.neuron_outputs(X)  # (N, m)
        res = greedy_forward_selection(Phi, y, k, loss=loss, replacement=replacement)
        out = {"dense": float(vertex_losses(Phi.mean(0, keepdim=True), y, loss)[0]),
               "selection": res.order.tolist()}
        if bound:
            l1 = float(vertex_losses(Phi, y, loss).min())
            out["pruning_term"] = pruning_term(l1, sweep_diameter(Phi), Phi.shape[1], k, loss)
        scores = model.b.detach().abs() * model.W.detach().norm(dim=1)
    else:
        out = {"selection": channel_selection(model, X, y, k)}
        scores = _bn_gammas(model)
    out.update(mask=top_mask(scores, keep), units=len(scores))
    return out


class EarlyTicket:
    """A stopping rule inside a training loop::

        monitor = lk.EarlyTicket(lk.StabilityRule(tol=0.1), k=32, every=50)
        for step in range(steps):
            ...  # one training step
            if monitor.update(step, model, (X, y)):
                break  # monitor.stopped_at: the step; prune with GFS now

    ``update`` observes the model every ``every`` steps (:func:`observe`; ``loss``,
    ``keep`` and ``replacement`` as there, ``keep`` the rule's own for Early-Bird) and
    returns ``should_stop``. ``observe_step(step, obs)`` feeds a stored observation
    instead (what the tests and chapter 11 replay). ``check_seconds``: the wall time of
    every check, the monitor's cost."""

    def __init__(self, rule, *, k: int, every: int = 1, loss: str = "mse",
                 replacement: bool = True):
        if not isinstance(rule, RULES):
            raise ValueError(f"rule: must be one of {', '.join(r.__name__ for r in RULES)}, "
                             f"got {type(rule).__name__}")
        if not isinstance(every, int) or every < 1:
            raise ValueError(f"every: must be a positive integer of steps, got {every!r}")
        if loss not in LOSSES:
            raise ValueError(f"loss: unknown loss {loss!r}; allowed: {', '.join(LOSSES)}")
        self.rule, self.k, self.every = rule, k, every
        self.loss, self.replacement = loss, replacement
        self.history: deque = deque(maxlen=getattr(rule, "window", 0) + 1)
        self.steps: list[int] = []
        self.check_seconds: list[float] = []
        self.stopped_at: int | None = None

    @property
    def should_stop(self) -> bool:
        return self.stopped_at is not None

    def update(self, step: int, model: nn.Module, batch) -> bool:
        """Observe ``model`` on ``batch = (X, y)`` if ``step`` is a check step; return
        whether to stop (stays ``True`` once it is)."""
        if self.should_stop or step % self.every:
            return self.should_stop
        if self.rule.name == "bound" and not isinstance(model, TwoLayerNet):
            raise ValueError(f"rule: the bound rule needs an lk.TwoLayerNet (Lemma 1 is a "
                             f"two-layer result), got a {type(model).__name__}; use "
                             f"StabilityRule or EarlyBirdRule")
        start = time.perf_counter()
        X, y = batch
        keep = getattr(self.rule, "keep", 0.5)
        obs = observe(model, X, y, self.k, loss=self.loss, keep=keep,
                      replacement=self.replacement, bound=self.rule.name == "bound")
        stop = self.observe_step(step, obs)
        self.check_seconds.append(time.perf_counter() - start)
        return stop

    def observe_step(self, step: int, obs: dict) -> bool:
        """Feed one observation (streaming: only the last ``window + 1`` are kept)."""
        if self.should_stop:
            return True
        self.steps.append(step)
        rule = self.rule
        if rule.name == "bound":
            if obs["dense"] <= rule.fraction * obs["pruning_term"]:
                self.stopped_at = step
            return self.should_stop
        self.history.append(obs)
        if len(self.history) == self.history.maxlen:
            newest, older = self.history[-1], list(self.history)[:-1]
            if rule.name == "stability":
                far = max(selection_distance(newest["selection"], o["selection"],
                                             multiset=rule.multiset) for o in older)
            else:
                far = max(mask_distance(newest["mask"], o["mask"], newest["units"])
                          for o in older)
            if far <= rule.tol:
                self.stopped_at = step
        return self.should_stop

    def __repr__(self) -> str:
        cost = (f", {1e3 * np.mean(self.check_seconds):.1f} ms per check"
                if self.check_seconds else "")
        state = f"stopped at step {self.stopped_at}" if self.should_stop else "running"
        return (f"EarlyTicket({self.rule.label}, k={self.k}, every={self.every}: {state}, "
                f"{len(self.steps)} checks{cost})")
