"""The fused CPU step of the batched trainer (labkit.algorithms.fused_gd) against independent
computations: float64 ``tanh``, PyTorch's unfused step and autograd (tests/test_threshold.py
covers the last through :func:`labkit.train_batched`'s float32 path)."""

from __future__ import annotations

import os
import subprocess
import sys

import numba
import numpy as np
import pytest
import torch

import labkit
from labkit.algorithms import fused_gd


def test_tanh32_is_within_a_few_ulp_of_float64_tanh():
    z = np.concatenate([np.linspace(-12, 12, 400_001), np.geomspace(1e-8, 12, 2001),
                        -np.geomspace(1e-8, 12, 2001), [0.0]]).astype(np.float32)
    exact = np.tanh(z.astype(np.float64))
    got = fused_gd.tanh_array(z).astype(np.float64)
    # the spacing of float32 numbers at |tanh(z)| (at least that of 2^-126), so "ulp"
    ulp = np.spacing(np.abs(exact).astype(np.float32)).astype(np.float64)
    assert np.max(np.abs(got - exact) / ulp) <= 6
    assert np.max(np.abs(got - exact)) <= 4e-7
    assert np.all(np.abs(got) <= 1) and np.all(got[z == 0] == 0)
    # odd, like tanh
    np.testing.assert_array_equal(fused_gd.tanh_array(-z), -got.astype(np.float32))


def test_tanh32_check_would_catch_a_cruder_approximation():
    """The tolerance above is tight enough to reject a visibly worse tanh (a rational
    approximation with one coefficient rounded to four significant digits)."""
    z = np.linspace(-12, 12, 100_001)
    x = np.clip(z, -9, 9)
    x2 = x * x
    a1 = round(float(fused_gd.A1), 6)  # 4.894e-3 instead of 4.8935246e-3
    p = x * (a1 + x2 * (fused_gd.A3 + x2 * (fused_gd.A5 + x2 * (fused_gd.A7 + x2 * (
        fused_gd.A9 + x2 * (fused_gd.A11 + x2 * fused_gd.A13))))))
    q = fused_gd.B0 + x2 * (fused_gd.B2 + x2 * (fused_gd.B4 + x2 * fused_gd.B6))
    assert np.max(np.abs(p / q - np.tanh(z))) > 4e-7


def _problem(B, m, N, d, seed=0):
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(B, m, d, generator=g) / d**0.5
    y = torch.randn(B, m, generator=g).clamp(-1, 1)
    W = torch.randn(B, N, d, generator=g)
    b = torch.sign(torch.randn(B, N, generator=g))
    return X, y, W, b


@pytest.mark.parametrize("shape", [(3, 40, 512, 10), (2, 13, 300, 7), (1, 6, 70, 1),
                                   (2, 9, 257, 100)])
@pytest.mark.parametrize("scaling", ["mean_field", "theorem"])
def test_fused_step_equals_the_unfused_step(shape, scaling):
    """Widths that are not a multiple of the block (300, 70, 257) exercise the padding."""
    X, y, W, b = _problem(*shape)
    smax = torch.stack([torch.linalg.svdvals(torch.tanh(X[j] @ W[j].T))[0]
                        for j in range(shape[0])])
    kwargs = {"steps": 30, "lr": 0.5, "scaling": scaling, "sigma_max": smax}
    W1, b1, W2, b2 = W.clone(), b.clone(), W.clone(), b.clone()
    h_fused = labkit.train_batched(X, y, W1, b1, fused=True, **kwargs)
    h_torch = labkit.train_batched(X, y, W2, b2, fused=False, **kwargs)
    assert h_fused.shape == h_torch.shape == (31, shape[0])
    np.testing.assert_allclose(h_fused, h_torch, rtol=2e-5, atol=1e-7)
    torch.testing.assert_close(W1, W2, rtol=1e-4, atol=2e-5)
    torch.testing.assert_close(b1, b2, rtol=1e-4, atol=2e-5)
    assert not torch.equal(W1, W)  # it trained


def test_fused_step_does_not_depend_on_the_thread_count():
    """Each output is summed by one thread in a fixed order (module docstring)."""
    X, y, W, b = _problem(2, 37, 700, 10)
    before = numba.get_num_threads()
    out = []
    try:
        for threads in sorted({1, numba.config.NUMBA_NUM_THREADS}):
            numba.set_num_threads(threads)
            W1, b1 = W.clone(), b.clone()
            hist = labkit.train_batched(X, y, W1, b1, steps=20, lr=0.5, fused=True)
            out.append((hist, W1, b1))
    finally:
        numba.set_num_threads(before)
    for hist, W1, b1 in out[1:]:
        np.testing.assert_array_equal(hist, out[0][0])
        assert torch.equal(W1, out[0][1]) and torch.equal(b1, out[0][2])


def test_fused_step_argument_errors_and_divergence():
    X, y, W, b = _problem(1, 5, 8, 3)
    with pytest.raises(ValueError, match="^fused:"):
        labkit.train_batched(X.double(), y.double(), W.double(), b.double(), steps=1,
                             lr=0.1, fused=True)
    with pytest.raises(FloatingPointError, match="iteration"):
        labkit.train_batched(X, y * 1e30, W, b, steps=50, lr=1e6, fused=True)


def test_cached_code_gives_the_same_numbers_in_a_new_process(tmp_path):
    """numba's cache (``cache=True``): the process that compiles the step and the later ones
    that load it print the same losses. A first process calls the two passes on their own:
    when they were cached too, the next process linked those cached passes into ``_train``,
    and every process after it crashed loading that ``_train`` (segmentation fault)."""
    script = (
        "import sys\nimport numpy as np\nfrom labkit.algorithms import fused_gd as fg\n"
        "rng = np.random.default_rng(0)\n"
        "X = rng.standard_normal((1, 20, 10)).astype(np.float32)\n"
        "y = rng.standard_normal((1, 20)).astype(np.float32)\n"
        "W = rng.standard_normal((1, 300, 10)).astype(np.float32)\n"
        "b = rng.standard_normal((1, 300)).astype(np.float32)\n"
        "if sys.argv[1:] == ['passes']:\n"
        "    WT, bp = np.zeros((1, 10, 512), np.float32), np.zeros((1, 512), np.float32)\n"
        "    A, r = np.zeros((1, 2, 20, 256), np.float32), np.zeros((1, 20), np.float32)\n"
        "    inv, gb = np.float32(1 / 300), np.zeros((1, 512), np.float32)\n"
        "    fg._forward(X, WT, bp, y, A, np.zeros((1, 2, 20), np.float32), r, inv)\n"
        "    fg._backward(X, A, r, bp, gb, np.zeros_like(WT), inv)\n"
        "else:\n"
        "    hist, bad = fg.train(X, y, W, b, 20, np.full(1, 0.1), np.full(1, 0.1))\n"
        "    print(hist[:, 0].tobytes().hex(), bad)\n")
    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path)}
    runs = [subprocess.run([sys.executable, "-c", script, *args], env=env, capture_output=True,
                           text=True, timeout=300)
            for args in (["passes"], [], [], [])]
    for run in runs:
        assert run.returncode == 0, (run.returncode, run.stderr[-2000:])
    trains = {run.stdout for run in runs[1:]}
    assert len(trains) == 1 and len(trains.pop()) > 100
    assert any(tmp_path.rglob("*_train*.nbc"))  # the later runs loaded _train from it
