"""Command line of distributed GFS (Appendix D, Algorithm 2; chapter 8)::

    torchrun --nproc-per-node P -m labkit.distributed --data FILE.npz --k K --out OUT.json

(``python -m labkit.distributed --help``). Every rank reads only its own rows of ``Phi``:
arrays stored uncompressed (``np.savez``, ``np.save``) and ``torch.save`` files are memory
mapped, so a rank touches ``N/P`` rows, not ``N``. Rank 0 writes the result, atomically.
``main`` carries torch.distributed.elastic's ``@record``, so torchrun's failure summary
shows the failing rank's traceback.
"""

from __future__ import annotations

import argparse
import json
import os
import zipfile
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from torch.distributed.elastic.multiprocessing.errors import record

from labkit.algorithms.gfs import LOSSES, _as_tensors, _check_args, _check_labels
from labkit.distributed.algorithm import (
    bytes_per_step,
    distributed_gfs,
    partition_neurons,
)
from labkit.distributed.launch import (
    DEFAULT_TIMEOUT_S,
    STARTUP_TIMEOUT_S,
    free_port,
    init_group,
    rank_device,
)
from labkit.infra.runtime import get_device
from labkit.infra.store import write_text_atomic

_TYPES = (".npz", ".npy", ".pt")


def _npz_member(path: Path, name: str):
    """Array ``name`` of an ``.npz`` archive, memory-mapped when stored uncompressed
    (``np.savez``; a member of ``np.savez_compressed`` has to be read whole)."""
    with zipfile.ZipFile(path) as archive:
        info = archive.getinfo(f"{name}.npy")
    if info.compress_type != zipfile.ZIP_STORED:
        with np.load(path) as data:
            return data[name]
    with open(path, "rb") as fh:
        fh.seek(info.header_offset)
        local = fh.read(30)  # the member's local file header
        fh.seek(info.header_offset + 30 + int.from_bytes(local[26:28], "little")
                + int.from_bytes(local[28:30], "little"))
        version = np.lib.format.read_magic(fh)
        header = {(1, 0): np.lib.format.read_array_header_1_0,
                  (2, 0): np.lib.format.read_array_header_2_0}.get(version)
        if header is None:  # a newer format: read it whole
            with np.load(path) as data:
                return data[name]
        shape, fortran, dtype = header(fh)
        offset = fh.tell()
    return np.memmap(path, dtype=dtype, mode="r", shape=shape, offset=offset,
                     order="F" if fortran else "C")


def _load_table(path: Path, names) -> dict:
    """The arrays ``names`` of ``path`` (``.npz``; ``.pt`` holding a dict; or, for ``.npy``,
    the files ``<name>.npy`` beside it), memory-mapped where the format allows."""
    if path.suffix not in _TYPES:
        raise ValueError(f"--data: unknown file type {path.suffix!r}; allowed: "
                         f"{', '.join(_TYPES)}")
    if path.suffix == ".npz":
        with zipfile.ZipFile(path) as archive:
            stored = {n[:-4] for n in archive.namelist() if n.endswith(".npy")}
        found = {n: _npz_member(path, n) for n in names if n in stored}
    elif path.suffix == ".npy":
        found = {n: np.load(path.with_name(f"{n}.npy"), mmap_mode="r") for n in names
                 if path.with_name(f"{n}.npy").is_file()}
    else:
        data = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        found = {n: data[n] for n in names if n in data}
    missing = [n for n in names if n not in found]
    if missing:
        where = (f"{path.parent} lacks {', '.join(f'{n}.npy' for n in missing)}"
                 if path.suffix == ".npy" else f"{path} lacks {', '.join(missing)}")
        raise ValueError(f"--data: {where}; it needs arrays named {', '.join(names)}")
    return found


def _rank_block(args, rank: int, P: int):
    """This rank's rows of ``Phi`` and the labels, from a stored matrix or a network."""
    from labkit.algorithms.model import ACTIVATIONS, TwoLayerNet

    if args.net is None:
        data = _load_table(args.data, ("Phi", "y"))
        Phi, y = data["Phi"], data["y"]
        if Phi.ndim != 2:
            raise ValueError(f"Phi: expected a 2-D array of shape (N, m), got shape "
                             f"{tuple(Phi.shape)}")
        lo, hi = partition_neurons(Phi.shape[0], P)[rank]
        # only rows lo:hi are read from the file; the checks of the centralized code
        block = np.array(Phi[lo:hi]) if isinstance(Phi, np.ndarray) else Phi[lo:hi].clone()
        block, y = _as_tensors(block, np.array(y))
        _check_args(Phi.shape[0], args.k, args.loss, args.replacement)
        _check_labels(y, args.loss)
        return block.contiguous(), y
    data = _load_table(args.data, ("X", "y"))
    state = torch.load(args.net, map_location="cpu", weights_only=True)
    if not {"W", "b"} <= set(state):
        raise ValueError(f"--net: {args.net} is not a TwoLayerNet state dict (needs W and b)")
    W = state["W"]
    X = torch.as_tensor(data["X"], dtype=W.dtype)
    y = torch.as_tensor(data["y"], dtype=W.dtype)
    if X.ndim != 2 or X.shape[1] != W.shape[1]:
        raise ValueError(f"--data: X must have shape (m, d={W.shape[1]}), got {tuple(X.shape)}")
    N = W.shape[0]
    _check_args(N, args.k, args.loss, args.replacement)
    lo, hi = partition_neurons(N, P)[rank]
    # only this rank's neurons are evaluated: TwoLayerNet.neuron_outputs on rows lo:hi
    net = TwoLayerNet(W.shape[1], N, activation=args.activation, dtype=W.dtype)
    net.load_state_dict(state)
    with torch.no_grad():
        block = net.b[lo:hi, None] * ACTIVATIONS[net.activation](net.W[lo:hi] @ X.T)
    return block.contiguous(), y


def _parser() -> argparse.ArgumentParser:
    from labkit.algorithms.model import ACTIVATIONS

    p = argparse.ArgumentParser(
        prog="torchrun --nproc-per-node P -m labkit.distributed",
        description="Distributed greedy forward selection (Appendix D, Algorithm 2; book "
                    "chapter 8). Every rank reads only its block of neurons (memory-mapped "
                    "where the file allows); rank 0 writes the result (JSON, atomically). "
                    "Without torchrun it runs as a single process.",
        epilog="Input, either: --data FILE.npz|.pt with arrays Phi (N, m) and y (m,) (or "
               "--data DIR/Phi.npy with y.npy beside it); or "
               "--net STATE.pt (a TwoLayerNet state dict, W (N, d) and b (N,)) with --data "
               "holding X (m, d) and y (m,). Output JSON: order, losses, loss, replacement, "
               "N, m, k, nprocs, bytes_per_step, step_s (rank 0's seconds per step).")
    p.add_argument("--data", type=Path, required=True, help="Phi and y, or X and y with --net")
    p.add_argument("--net", type=Path, default=None, help="TwoLayerNet state dict (torch.save)")
    p.add_argument("--activation", default="tanh", choices=sorted(ACTIVATIONS),
                   help="the network's activation (with --net)")
    p.add_argument("--k", type=int, required=True, help="neurons to select")
    p.add_argument("--loss", default="mse", choices=LOSSES)
    p.add_argument("--no-replacement", dest="replacement", action="store_false",
                   help="forbid selecting a neuron twice")
    p.add_argument("--out", type=Path, required=True, help="result file (.json)")
    p.add_argument("--device", default=None, help="cpu or cuda (default: labkit's choice)")
    p.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT_S,
                   help="timeout of the collectives in seconds (default %(default)s; "
                   f"start-up gets at least {STARTUP_TIMEOUT_S:g})")
    p.add_argument("--threads", type=int, default=None, help="torch threads per rank")
    return p


@record  # torchrun's failure summary then shows the failing rank's traceback
def main(argv=None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    for name in ("data", "net"):
        path = getattr(args, name)
        if path is not None and not path.is_file():
            parser.error(f"argument --{name}: no such file: {path}")
    if args.k < 1:
        parser.error(f"argument --k: must be a positive integer, got {args.k}")
    if not args.timeout > 0:
        parser.error(f"argument --timeout: must be positive seconds, got {args.timeout}")
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    # torchrun sets these; without it, a one-process group on a free local port
    rank = int(os.environ.get("RANK", 0))
    P = int(os.environ.get("WORLD_SIZE", 1))
    if "MASTER_ADDR" not in os.environ:
        os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(free_port()))
    try:
        block, y = _rank_block(args, rank, P)
    except ValueError as err:
        parser.error(str(err))
    dev = rank_device(get_device(device=args.device), int(os.environ.get("LOCAL_RANK", 0)))
    group = init_group(dev, "env://", rank, P, args.timeout)
    try:
        res, times = distributed_gfs(block.to(dev), y.to(dev), args.k, loss=args.loss,
                                     replacement=args.replacement, group=group,
                                     timeout_s=args.timeout)
    finally:
        dist.destroy_process_group()
    if rank == 0:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        write_text_atomic(args.out, json.dumps({
            "order": res.order.tolist(), "losses": res.losses.tolist(), "loss": res.loss,
            "replacement": res.replacement, "N": int(len(res.counts)), "m": int(y.shape[0]),
            "k": res.k, "nprocs": P,
            "bytes_per_step": bytes_per_step(int(y.shape[0]), P,
                                             itemsize=block.element_size(), loss=args.loss),
            "step_s": times["step_s"].tolist()}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
