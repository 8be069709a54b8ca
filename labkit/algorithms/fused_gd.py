"""The batched trainer's GD step fused into two passes over the activations (CPU, float32).

:func:`labkit.train_batched` on PyTorch runs eight passes over the ``(B, m, N)`` activation
matrix per step (the product ``X W^T``, ``tanh``, the forward product, ``A^T g``, the
square, ``(gX)^T A^2`` and their temporaries), each a separate kernel whose small inner
dimension (``d``) keeps the products far from the machine's GEMM rate. Here one step is
two compiled loops (numba), each row or neuron block kept in cache:

1. per block of 256 neurons (parallel over blocks), its weights kept in L1 for every
   sample row ``j``: ``z = W x_j`` (``d`` multiply-adds per entry, four coordinates per
   pass over the row), ``a = tanh(z)`` stored, and the block's share of
   ``f(x_j) = (1/N) sum_i b_i a_ji``, added over the blocks into the residual
   ``r_j = f(x_j) - y_j``;
2. per block of neurons (parallel over blocks): ``(dL/db)_i = (1/N) sum_j a_ji g_j`` and
   ``(dL/dw_i) = (b_i/N) sum_j (1 - a_ji^2) g_j x_j`` with ``g = (2/m) r``.

Every output element is summed by one thread in a fixed order, so the result does not
depend on the thread count; the vector width of the reductions does, which is why quick
mode pins numba's target CPU (``NUMBA_CPU_NAME``, :mod:`labkit.infra.cpu_pins`). ``tanh`` is
Eigen's float32 13/6 rational interpolant (``generic_fast_tanh_float``, within a few ulp of
the true value on ``[-9, 9]`` and ``+-1`` outside, tested against float64 ``tanh``), which,
unlike libm's ``tanhf``, the compiler vectorizes. Speed: ``benchmarks/batched_pretraining.py``
(issue 16, deliverable 8). Used by chapter 4 through :func:`labkit.train_batched`.
"""

from __future__ import annotations

import numba
import numpy as np

F = np.float32
# Eigen's coefficients (MathFunctionsImpl.h): tanh(x) ~ x p(x^2) / q(x^2) on [-9, 9]
A1, A3, A5, A7 = F(4.89352455891786e-03), F(6.37261928875436e-04), F(1.48572235717979e-05), \
    F(5.12229709037114e-08)
A9, A11, A13 = F(-8.60467152213735e-11), F(2.00018790482477e-13), F(-2.76076847742355e-16)
B0, B2, B4, B6 = F(4.89352518554385e-03), F(2.26843463243900e-03), F(1.18534705686654e-04), \
    F(1.19825839466702e-06)
CLAMP = F(9.0)
ONE = F(1.0)
BLOCK = 256  # neurons per block of the backward pass: d x 256 accumulators stay in L1
# reassociation lets the compiler vectorize the sums (fixed per target CPU); contraction
# fuses multiply-adds; no assumptions about NaN or infinities (divergence must show)
FAST = {"reassoc", "contract"}


@numba.njit(fastmath=FAST, inline="always")
def tanh32(x):
    """Eigen's float32 tanh (see the module docstring); ``x`` a float32 scalar."""
    x = min(max(x, -CLAMP), CLAMP)
    x2 = x * x
    p = x * (A1 + x2 * (A3 + x2 * (A5 + x2 * (A7 + x2 * (A9 + x2 * (A11 + x2 * A13))))))
    q = B0 + x2 * (B2 + x2 * (B4 + x2 * B6))
    # the interpolant overshoots 1 by an ulp near the clamp; tanh never does
    return min(max(p / q, -ONE), ONE)


@numba.njit(parallel=True, fastmath=FAST, cache=True)
def tanh_array(z):
    """``tanh32`` of every entry of a float32 array (for tests and the benchmark)."""
    flat = z.ravel()
    out = np.empty_like(flat)
    for i in numba.prange(flat.size):
        out[i] = tanh32(flat[i])
    return out.reshape(z.shape)


@numba.njit(fastmath=FAST, inline="always")
def _coord(x, k, d):
    """``x[k]``, or 0 past the last of the ``d`` coordinates (``d`` padded to a multiple
    of four)."""
    return x[k] if k < d else F(0.0)


@numba.njit(inline="always")
def _aligned_zeros(size):
    """``size`` float32 zeros starting on a 64-byte boundary (a cache line, and one AVX-512
    vector): malloc promises 16 bytes, and loads that straddle two lines run slower."""
    raw = np.zeros(size + 16, dtype=np.float32)
    skip = ((-raw.ctypes.data) % 64) // 4
    return raw[skip:skip + size]


@numba.njit(parallel=True, fastmath=FAST)  # cached inside _train (see there)
def _forward(X, WT, b, y, A, partial, r, inv_N):
    """Pass 1: ``A[n, blk, j, :] = tanh(W x_nj)`` for the neurons of block ``blk`` and
    ``r[n, j] = f_n(x_nj) - y_nj`` for every network ``n`` and row ``j``. ``WT`` is ``W``
    transposed, ``(B, d, N)`` with ``N`` a multiple of ``BLOCK``; ``A`` is blocked,
    ``(B, N / BLOCK, m, BLOCK)``, so that pass 2 reads each block contiguously. One job per
    block of neurons: its ``d x BLOCK`` weights stay in L1 for all ``m`` rows (row by row,
    every sample would stream all of ``W`` from L2, 1.6x slower). Each row takes the input
    coordinates four at a time (one pass over the row per four multiply-adds); each block
    leaves its share of ``f_n(x_nj)`` in ``partial[n, blk, j]``, summed over the blocks in
    a fixed order at the end, so that the result does not depend on the thread count."""
    B, m, d = X.shape
    n_blocks = A.shape[1]
    d4 = -(-d // 4) * 4
    for job in numba.prange(B * n_blocks):
        n, blk = job // n_blocks, job % n_blocks
        i0 = blk * BLOCK
        # this block's weights (zero rows up to d4 coordinates) and the row being summed,
        # in one buffer whose rows are 64 bytes longer than a block, so that no row of w
        # lies a multiple of 4 KiB from the sum's (a load would wait on an unrelated
        # store: 4K aliasing, up to 1.4x slower, depending on where malloc put them)
        S = BLOCK + 16
        buf = _aligned_zeros((d4 + 1) * S)
        w = buf[:d4 * S].reshape(d4, S)
        row = buf[d4 * S:d4 * S + BLOCK]
        for k in range(d):
            for i in range(BLOCK):
                w[k, i] = WT[n, k, i0 + i]
        bb = b[n, i0:i0 + BLOCK].copy()
        for j in range(m):
            x = X[n, j]
            out = A[n, blk, j]
            # four coordinates per pass, summed as a tree (a chain of four multiply-adds
            # would wait on each other's latency); the first pass initializes the row.
            # Written out here: the same loops in an inlined helper run 1.5x slower.
            x0, x1, x2, x3 = _coord(x, 0, d), _coord(x, 1, d), _coord(x, 2, d), _coord(x, 3, d)
            w0, w1, w2, w3 = w[0], w[1], w[2], w[3]
            for i in range(BLOCK):
                row[i] = (x0 * w0[i] + x1 * w1[i]) + (x2 * w2[i] + x3 * w3[i])
            for k in range(4, d4, 4):
                x0, x1 = _coord(x, k, d), _coord(x, k + 1, d)
                x2, x3 = _coord(x, k + 2, d), _coord(x, k + 3, d)
                w0, w1, w2, w3 = w[k], w[k + 1], w[k + 2], w[k + 3]
                for i in range(BLOCK):
                    row[i] += (x0 * w0[i] + x1 * w1[i]) + (x2 * w2[i] + x3 * w3[i])
            acc = F(0.0)
            for i in range(BLOCK):
                a = tanh32(row[i])
                out[i] = a
                acc += a * bb[i]
            partial[n, blk, j] = acc
    for job in numba.prange(B * m):
        n, j = job // m, job % m
        acc = F(0.0)
        for blk in range(n_blocks):
            acc += partial[n, blk, j]
        r[n, j] = acc * inv_N - y[n, j]


@numba.njit(parallel=True, fastmath=FAST)  # cached inside _train (see there)
def _backward(X, A, r, b, grad_b, grad_WT, inv_N):
    """Pass 2: the gradients of ``(1/m) sum_j r_j^2`` with respect to ``b`` and ``W``
    (stored transposed, ``(B, d, N)``), one block of neurons per job (``A`` as pass 1
    left it); the samples are taken four at a time, so that each pass over the block's
    accumulators does four multiply-adds per entry."""
    B, m, d = X.shape
    n_blocks = A.shape[1]
    two_over_m = F(2.0) / F(m)
    for job in numba.prange(B * n_blocks):
        n, blk = job // n_blocks, job % n_blocks
        i0 = blk * BLOCK
        block = A[n, blk]
        # the accumulators and (1 - a^2) g for four samples, in one aligned buffer with
        # rows 64 bytes longer than a block (against 4K aliasing, as in pass 1)
        S = BLOCK + 16
        buf = _aligned_zeros((d + 5) * S)
        acc_w = buf[:d * S].reshape(d, S)
        c = buf[d * S:(d + 4) * S].reshape(4, S)
        acc_b = buf[(d + 4) * S:(d + 4) * S + BLOCK]
        xs = np.zeros((4, d), dtype=np.float32)
        for j0 in range(0, m, 4):
            for q in range(4):
                if j0 + q < m:
                    g = two_over_m * r[n, j0 + q]
                    a_row = block[j0 + q]
                    cq = c[q]
                    for i in range(BLOCK):
                        a = a_row[i]
                        acc_b[i] += a * g
                        cq[i] = (ONE - a * a) * g
                    for k in range(d):
                        xs[q, k] = X[n, j0 + q, k]
                else:  # past the last sample: contributes nothing
                    c[q] = F(0.0)
            c0, c1, c2, c3 = c[0], c[1], c[2], c[3]
            for k in range(d):
                x0, x1, x2, x3 = xs[0, k], xs[1, k], xs[2, k], xs[3, k]
                acc = acc_w[k]
                for i in range(BLOCK):
                    acc[i] += (c0[i] * x0 + c1[i] * x1) + (c2[i] * x2 + c3[i] * x3)
        for i in range(BLOCK):
            scale = b[n, i0 + i] * inv_N
            grad_b[n, i0 + i] = acc_b[i] * inv_N
            for k in range(d):
                grad_WT[n, k, i0 + i] = acc_w[k, i] * scale


# Cached with the passes compiled into it. The passes are not cached on their own: numba
# 0.68 then links a cached pass into _train, and the next process that loads that _train
# from the cache crashes (measured: benchmark runs after a direct call of _forward).
@numba.njit(cache=True)
def _train(X, y, WT, b, inv_N, steps, step_b, step_W, history):
    B, m, d = X.shape
    N = WT.shape[2]
    A = _aligned_zeros(B * N * m).reshape(B, N // BLOCK, m, BLOCK)
    r = np.empty((B, m), dtype=np.float32)
    partial = np.empty((B, N // BLOCK, m), dtype=np.float32)
    grad_b = np.empty((B, N), dtype=np.float32)
    grad_WT = np.empty((B, d, N), dtype=np.float32)
    for t in range(steps + 1):
        _forward(X, WT, b, y, A, partial, r, inv_N)
        bad = False
        for n in range(B):
            total = 0.0  # float64: the reported loss, not part of the step
            for j in range(m):
                total += float(r[n, j]) ** 2
            history[t, n] = total / m
            bad = bad or not np.isfinite(history[t, n])
        if bad:
            return t
        if t == steps:
            break
        _backward(X, A, r, b, grad_b, grad_WT, inv_N)
        for n in range(B):
            for i in range(N):
                b[n, i] -= step_b[n] * grad_b[n, i]
            for k in range(d):
                for i in range(N):
                    WT[n, k, i] -= step_W[n] * grad_WT[n, k, i]
    return -1


def train(X, y, W, b, steps: int, step_b, step_W):
    """``steps`` full-batch GD steps on a batch of networks ``f_n(x) = (1/N) sum_i b_ni
    tanh(w_ni . x)``, loss ``(1/m) sum_j (f_n(x_nj) - y_nj)^2``, the step ``step_b[n]`` on
    ``b`` and ``step_W[n]`` on ``W``; NumPy float32 arrays ``X (B, m, d)``, ``y (B, m)``,
    ``W (B, N, d)``, ``b (B, N)`` (updated in place). Returns ``(history, bad)``: the loss of
    every network before each step and after the last, ``(steps + 1, B)`` float64, and the
    step at which a loss stopped being finite (``-1``: none). The neurons are padded with
    zero ones to a multiple of ``BLOCK`` (they output ``tanh(0) = 0``, have ``b = 0`` and
    get zero gradients, so they change nothing); the update of the real ones is the same
    as :func:`labkit.train_batched`'s."""
    B, N, d = W.shape
    padded = -(-N // BLOCK) * BLOCK
    WT = np.zeros((B, d, padded), dtype=np.float32)
    WT[:, :, :N] = W.transpose(0, 2, 1)
    bp = np.zeros((B, padded), dtype=np.float32)
    bp[:, :N] = b
    history = np.empty((steps + 1, B))
    # 1/N with the real width N, not the padded one
    bad = _train(np.ascontiguousarray(X), np.ascontiguousarray(y), WT, bp,
                 np.float32(1.0) / np.float32(N), steps,
                 np.ascontiguousarray(step_b, np.float32), np.ascontiguousarray(step_W, np.float32),
                 history)
    W[...] = WT[:, :, :N].transpose(0, 2, 1)
    b[...] = bp[:, :N]
    return history, bad
