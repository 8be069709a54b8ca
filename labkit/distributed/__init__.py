"""Distributed greedy forward selection (Appendix D, Algorithm 2) on ``torch.distributed``;
book chapter 8.

- :mod:`~labkit.distributed.algorithm`: one rank's loop, :func:`distributed_gfs` (inside an
  initialised process group), the partition of the neurons and the bytes each step moves;
- :mod:`~labkit.distributed.launch`: :func:`spawn_gfs` / :func:`spawn_gfs_batch`, ``P``
  local processes through ``torch.multiprocessing`` (scripts and notebooks);
- :mod:`~labkit.distributed.costmodel`: timing the collectives and whole steps, and the
  fitted :class:`CostModel`;
- ``python -m labkit.distributed`` (``__main__``): the command line for ``torchrun``;
- :mod:`~labkit.distributed.channels`: channel GFS of deep networks with each step's
  candidates split across ranks (imported on its own: it needs torchvision and
  Torch-Pruning, which the two-layer code does not).

``import labkit`` does not import this package (its names are loaded on first use), so
``torchrun -m labkit.distributed`` runs the command line once per rank. The backend follows
the device: gloo on CPU, NCCL on CUDA (one GPU per rank).
"""

from labkit.distributed.algorithm import (
    DistributedGFSError,
    backend_for,
    bytes_per_step,
    distributed_gfs,
    partition_neurons,
)
from labkit.distributed.costmodel import (
    ChannelCostModel,
    CostModel,
    fit_channel_cost,
    fit_cost_model,
    load_figure4,
    measure_collectives,
    measure_steps,
    step_summary,
)
from labkit.distributed.launch import (
    DEFAULT_TIMEOUT_S,
    STARTUP_TIMEOUT_S,
    free_port,
    spawn_gfs,
    spawn_gfs_batch,
    usable_nprocs,
)

__all__ = [
    "DEFAULT_TIMEOUT_S", "STARTUP_TIMEOUT_S", "ChannelCostModel", "CostModel",
    "DistributedGFSError", "backend_for", "bytes_per_step", "distributed_gfs",
    "fit_channel_cost", "fit_cost_model", "free_port", "load_figure4",
    "measure_collectives", "measure_steps", "partition_neurons", "spawn_gfs",
    "spawn_gfs_batch", "step_summary", "usable_nprocs",
]
