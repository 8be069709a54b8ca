"""SGD for chapter 7's deep networks (Appendix E), resumable to the bit after a crash.

Mini-batch ``t`` is drawn i.i.d. with a generator seeded by ``(seed, t)``, CIFAR's crop and
flip likewise, dropout's generator is reseeded from ``(seed, t)`` before each step, and the
learning rate is a function of ``t`` (cosine over ``total`` iterations, or fixed). So the
training state at iteration ``t`` is the model, the optimizer's momentum buffers and ``t``
itself; :func:`train` writes it atomically every ``checkpoint_every`` iterations (with the
torch RNG state and the schedule, for completeness) and a restarted run continues from the
latest one with bitwise-identical results (tested by killing a run with SIGKILL).
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

from labkit.infra.runner import step_bar


class _Batches:
    """Index lists for iterations ``start..stop-1``; batch ``t`` depends only on
    ``(seed, t)``, which is what makes resuming exact."""

    def __init__(self, pool: np.ndarray, batch_size: int, seed: int, start: int, stop: int):
        self.pool, self.B, self.seed, self.start, self.stop = pool, batch_size, seed, start, stop

    def __len__(self):
        return self.stop - self.start

    def __iter__(self):
        for t in range(self.start, self.stop):
            g = torch.Generator().manual_seed(self.seed * 1_000_003 + t)
            yield self.pool[torch.randint(len(self.pool), (self.B,), generator=g).numpy()].tolist()


def augment(x: torch.Tensor, seed: int) -> torch.Tensor:
    """CIFAR's random 4-pixel-padded crop and horizontal flip, per image."""
    g = torch.Generator().manual_seed(seed)
    padded = F.pad(x, (4, 4, 4, 4))
    off = torch.randint(9, (len(x), 2), generator=g)
    flip = torch.rand(len(x), generator=g) < 0.5
    span = torch.arange(32)
    cols = off[:, 1, None] + span
    cols = torch.where(flip[:, None], cols.flip(-1), cols)  # a flip reads the crop backwards
    rows = off[:, 0, None] + span
    batch = torch.arange(len(x))[:, None, None]
    # one gather for the whole batch: (B, 32, 32, C) -> (B, C, 32, 32)
    return padded.permute(0, 2, 3, 1)[batch, rows[:, :, None], cols[:, None, :]].permute(0, 3, 1, 2)


def batches(data, pool, batch_size: int, seed: int, start: int, stop: int, *,
            device, workers: int = 0):
    """Mini-batches ``t = start..stop-1`` of the training examples ``pool`` of ``data``
    (a :class:`labkit.experiments.tables.cell.Images`), on ``device``."""
    loader = DataLoader(data.train, batch_sampler=_Batches(np.asarray(pool), batch_size, seed,
                                                           start, stop),
                        num_workers=workers)
    for t, (x, y) in enumerate(loader, start):
        if data.augment:
            x = augment(x, seed * 1_000_003 + t)
        yield x.to(device), y.to(device)


def cosine_lr(lr: float, t: int, total: int) -> float:
    return 0.5 * lr * (1 + math.cos(math.pi * t / total))


def rate(schedule: str, lr: float, t: int, total: int) -> float:
    """The learning rate of iteration ``t``: ``cosine`` over ``total`` or ``fixed``."""
    if schedule == "cosine":
        return cosine_lr(lr, t, total)
    if schedule == "fixed":
        return lr
    raise ValueError(f"schedule: must be 'cosine' or 'fixed', got {schedule!r}")


def sgd(model, data, pool, *, start: int, stop: int, total: int, lr: float, cfg, seed: int,
        device, opt: torch.optim.Optimizer | None = None, desc: str = "SGD",
        momentum: float | None = None, weight_decay: float | None = None,
        schedule: str = "cosine", after_step=None):
    """Iterations ``start..stop-1`` of SGD on ``pool`` (batch ``cfg.batch_size``), with
    ``momentum`` and ``weight_decay`` (default: ``cfg``'s) and the rate of ``schedule``;
    ``after_step(t, opt)`` runs after iteration ``t``. Returns the optimizer (its momentum
    is state)."""
    momentum = cfg.momentum if momentum is None else momentum
    weight_decay = cfg.weight_decay if weight_decay is None else weight_decay
    opt = opt or torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum,
                                 weight_decay=weight_decay)
    model.train()
    loader = batches(data, pool, cfg.batch_size, seed, start, stop, device=device,
                     workers=cfg.workers)
    with step_bar(stop - start, desc) as bar:
        for t, (x, y) in enumerate(loader, start):
            for group in opt.param_groups:
                group["lr"] = rate(schedule, lr, t, total)
            torch.manual_seed(seed * 1_000_003 + t)  # dropout (MobileNetV2): exact on resume
            loss = F.cross_entropy(model(x), y)
            if not torch.isfinite(loss):
                raise FloatingPointError(f"training: non-finite loss at iteration {t} "
                                         f"(lr={lr})")
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            bar.update()
            if after_step is not None:
                after_step(t, opt)
    return opt


def atomic_save(obj, path: Path) -> None:
    """``torch.save`` to a temporary file, flushed, then renamed over ``path``: a crash
    leaves the old file or the new one, never half of one."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as f:
        torch.save(obj, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def load_state(path: Path, device):
    # our own files: whole modules (a pruned network's shape is its own) need full pickle
    return torch.load(path, map_location=device, weights_only=False)


def train(model, data, pool, *, stop: int, total: int, lr: float, cfg, seed: int, device,
          folder: Path, momentum: float | None = None, weight_decay: float | None = None,
          schedule: str = "cosine", keep: tuple[int, ...] = (), desc: str = "SGD"):
    """Train ``model`` to iteration ``stop`` with :func:`sgd`, crash-safe: the state (model,
    optimizer, iteration, RNG state, schedule) is written atomically to ``folder/state.pt``
    every ``cfg.checkpoint_every`` iterations and at ``stop``, and a call that finds it
    resumes there (a state past ``stop`` is an error: use a ``keep`` copy). Iterations in
    ``keep`` are also kept as ``folder/t{t}.pt``. Returns the trained model (the stored
    one when resuming, so pass a freshly built ``model`` of the same shape)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    start, opt = 0, None
    momentum = cfg.momentum if momentum is None else momentum
    weight_decay = cfg.weight_decay if weight_decay is None else weight_decay
    state_path = folder / "state.pt"
    if state_path.exists():
        state = load_state(state_path, device)
        start = state["t"]
        if start > stop:
            raise ValueError(f"stop: the stored state in {folder} is at iteration {start}, "
                             f"past {stop}")
        model = state["model"]
        opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum,
                              weight_decay=weight_decay)
        opt.load_state_dict(state["opt"])
        torch.set_rng_state(state["rng"])

    def save(t, opt):
        state = {"model": model, "opt": opt.state_dict(), "t": t,
                 "rng": torch.get_rng_state(),
                 "schedule": {"kind": schedule, "lr": lr, "total": total}}
        atomic_save(state, state_path)
        if t in keep:
            atomic_save(state, folder / f"t{t}.pt")

    def after_step(t, opt):
        done = t + 1
        if done % cfg.checkpoint_every == 0 or done == stop or done in keep:
            save(done, opt)

    if start < stop:
        sgd(model, data, pool, start=start, stop=stop, total=total, lr=lr, cfg=cfg, seed=seed,
            device=device, opt=opt, desc=desc, momentum=momentum, weight_decay=weight_decay,
            schedule=schedule, after_step=after_step)
    return model
