"""Chapter 7's network side: build and pre-train a network with checkpoints (keyed by the
code, so a changed trainer never reuses a stale one), the groups Ye et al.'s driver prunes,
L1-norm scores, and one layer-wise pruning run (GFS, L1 or random channels, each group
followed by Ye et al.'s short fine-tuning) with its FLOP and parameter reduction."""

from __future__ import annotations

import copy
import hashlib
import json
import math
from pathlib import Path

import torch
from torch.utils.data import DataLoader, Dataset

from labkit.deep.data import Images, subset
from labkit.deep.graph import Traced, find_groups, set_group_mask
from labkit.deep.nets import build, count_flops, count_params
from labkit.deep.prune import prune_group
from labkit.deep.train import atomic_save, batches, load_state, sgd, train
from labkit.infra.store import code_digest


def build_net(cfg, data: Images, arch: str, width: float) -> torch.nn.Module:
    return build(arch, num_classes=data.num_classes, in_channels=data.in_channels,
                 width=width, small_input=data.small_input, seed=cfg.seed,
                 strides=cfg.mnv2_strides if arch == "mobilenet_v2" else None)


@torch.no_grad()
def accuracy(model, dataset: Dataset, device, batch_size: int = 500, workers: int = 0) -> float:
    model.eval()
    hits = n = 0
    for x, y in DataLoader(dataset, batch_size=batch_size, num_workers=workers):
        hits += int((model(x.to(device)).argmax(1) == y.to(device)).sum())
        n += len(y)
    return hits / n


# -- pre-training ---------------------------------------------------------------------------

def pretrain_key(cfg, arch: str, width: float, size: int) -> str:
    """Checkpoints depend on these settings and on the code (not on the pruning)."""
    blob = json.dumps([cfg.source, arch, width, list(cfg.mnv2_strides), size, cfg.val_size,
                       cfg.checkpoints[-1], cfg.lr, cfg.momentum, cfg.weight_decay,
                       cfg.batch_size, cfg.seed, code_digest("deep/nets.py", "deep/train.py",
                                                             "deep/data.py", "infra/data.py")],
                      sort_keys=True)
    return f"{arch}-{size}-{hashlib.sha256(blob.encode()).hexdigest()[:10]}"


def pretrained(cfg, data: Images, arch: str, width: float, size: int, t: int, *, root: Path,
               device) -> torch.nn.Module:
    """The dense network after ``t`` pre-training iterations. One crash-safe run per
    (arch, size) keeps every checkpoint of ``cfg``; a later ``t`` continues it."""
    folder = Path(root) / pretrain_key(cfg, arch, width, size)
    kept = folder / f"t{t}.pt"
    if kept.exists():
        return load_state(kept, device)["model"]
    model = build_net(cfg, data, arch, width).to(device)
    return train(model, data, subset(cfg, data, size), stop=t, total=cfg.checkpoints[-1],
                 lr=cfg.lr, cfg=cfg, seed=cfg.seed, device=device, folder=folder,
                 keep=cfg.checkpoints, desc=f"{arch} size={size}: pre-training to t={t}")


# -- what is pruned -------------------------------------------------------------------------

def _ye_skipped(model) -> set[str]:
    """Producers of the channels Ye et al.'s MobileNetV2 driver never prunes
    (``no_prune_list = [0, 1, 33, 34]`` over its 35 masks): the stem and the first block
    (0, 1), the last block's output (33) and the final 1x1 convolution (34)."""
    n = len(model.features)
    return {"features.0.0", "features.1.conv.1", f"features.{n - 2}.conv.2",
            f"features.{n - 1}.0"}


def prunable_groups(cfg, arch: str, model, example: torch.Tensor) -> list:
    """The channel groups a run prunes, input to output, found from the dependency graph
    (:func:`labkit.deep.graph.find_groups`). ``cfg.groups``: ``paper`` is ResNet34's 16
    block-inner groups, and for MobileNetV2 its 16 hidden groups and the stage streams
    (Ye et al. mask each block's projection output separately; the streams tie those of
    one stage, so here a stage's blocks lose the same channels) without Ye's skipped
    layers; ``inner`` the single-producer groups; ``all`` every supported group."""
    found = [g for g in find_groups(model, example) if g.supported]
    if cfg.groups == "all":
        return found
    if cfg.groups == "inner" or arch == "resnet34":
        return [g for g in found if g.kind == "inner"]
    skip = _ye_skipped(model)
    return [g for g in found if not set(g.producers) & skip]


def l1_scores(model, group) -> torch.Tensor:
    """Li et al.'s filter L1 norm of each channel: the sum of the absolute weights that
    produce it, over every producer of the group."""
    score = torch.zeros(group.C, dtype=torch.float64)
    for name in group.producers:
        W = model.get_submodule(name).weight.detach()
        if W.shape[0] != group.C:
            raise ValueError(f"groups: producer {name} has {W.shape[0]} outputs, the group "
                             f"{group.C}; L1 pruning needs one filter per channel")
        score += W.abs().flatten(1).sum(1).double().cpu()
    return score


# -- one layer-wise pruning run -------------------------------------------------------------

class _Setting:
    """What one cell's runs share: the data pool, the stopping-rule examples, the example
    input, the mini-batch source of the greedy steps."""

    def __init__(self, cfg, data: Images, size: int, t: int, device):
        self.cfg, self.data, self.device = cfg, data, device
        self.pool = subset(cfg, data, size)
        g = torch.Generator().manual_seed(cfg.seed + 7)
        ev = self.pool[torch.randperm(len(self.pool), generator=g)[:cfg.eval_size].numpy()]
        items = [data.train[int(i)] for i in ev]  # ImageNet: with its training transforms
        self.eval_X = torch.stack([x for x, _ in items]).to(device)
        self.eval_y = torch.as_tensor([int(y) for _, y in items]).to(device)
        self.example = self.eval_X[:1]
        self.seed = cfg.seed + 1_000 * (t + 1)
        self.layer_iters = math.ceil(cfg.layer_finetune_epochs * len(self.pool)
                                     / cfg.batch_size)

    @torch.no_grad()
    def eval_fn(self, model) -> float:
        return float((model(self.eval_X).argmax(1) == self.eval_y).double().mean())

    def mini_batch(self, j: int):
        return next(batches(self.data, self.pool, self.cfg.prune_batch, self.seed, j, j + 1,
                            device=self.device))


def layerwise(s: _Setting, arch: str, model, method: str, *, eps: float | None = None,
              kept: dict | None = None, folder: Path) -> tuple[torch.nn.Module, list[dict]]:
    """Prune ``model``'s groups input to output by ``method`` (``gfs`` with tolerance
    ``eps``; ``l1`` or ``random`` keeping ``kept[name]`` channels), each followed by the
    per-layer fine-tuning. The state is saved in ``folder`` after every group, and a call
    that finds it continues. Returns the masked network and one record per group."""
    cfg = s.cfg
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "layers.pt"
    gen = torch.Generator().manual_seed(s.seed + {"gfs": 0, "l1": 1, "random": 2}[method])
    if path.exists():
        state = load_state(path, s.device)
        work, done, used = state["work"], state["done"], state["used"]
        gen.set_state(state["gen"])
    else:
        work, done, used = copy.deepcopy(model).eval(), [], 0
    groups = prunable_groups(cfg, arch, work, s.example)
    traced = Traced(work) if method == "gfs" else None
    # a group starts from the network the previous one left: its accuracy is known
    before = done[-1]["acc_tuned"] if done else s.eval_fn(work)
    for i, g in enumerate(groups[len(done):], start=len(done)):
        if method == "gfs":
            res = prune_group(work, traced, g, lambda j, used=used: s.mini_batch(used + j),
                              s.eval_fn, eps=eps, max_keep=g.C,
                              n_candidates=cfg.n_candidates or None, gen=gen,
                              skip_eval=cfg.skip_eval or None, acc_before=before)
            used += len(res.order)
            k = len(res.order)
        else:
            k = kept[g.name]
            order = (torch.argsort(l1_scores(work, g), descending=True, stable=True)
                     if method == "l1" else torch.randperm(g.C, generator=gen))
            mu = torch.zeros(g.C)
            mu[order[:k]] = 1.0
            set_group_mask(g, mu)
        after = s.eval_fn(work)
        if s.layer_iters and k < g.C:  # Ye: no fine-tuning when every channel came back
            sgd(work, s.data, s.pool, start=0, stop=s.layer_iters, total=s.layer_iters,
                lr=cfg.layer_finetune_lr, cfg=cfg, seed=s.seed + 10 + i, device=s.device,
                momentum=cfg.layer_finetune_momentum, schedule="fixed",
                desc=f"{method} {g.name}: layer fine-tuning")
            work.eval()
        tuned = s.eval_fn(work) if s.layer_iters and k < g.C else after
        done.append({"group": g.name, "C": g.C, "kept": k, "acc_before": before,
                     "acc_pruned": after, "acc_tuned": tuned})
        before = tuned
        atomic_save({"work": work, "done": done, "used": used, "gen": gen.get_state()}, path)
    return work, done


def _reduction(s: _Setting, dense, small) -> dict:
    shape = tuple(s.example.shape[1:])
    return {"flops": count_flops(small, shape) / count_flops(dense, shape),
            "params": count_params(small) / count_params(dense)}
