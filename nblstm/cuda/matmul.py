"""Tiled shared-memory matrix multiply (numba-cuda has no cuBLAS).

One kernel covers every product the backend needs, by reading either operand
transposed:

===============  ======================================  ==========
product          C[m, n] =                               A, B
===============  ======================================  ==========
input projection sum_k X[m, k] W_ih[n, k] + b[n]          A, B^T
dx               sum_k dZ[m, k] W_ih[k, n]                A, B
dW_ih, dW_hh     sum_k dZ[k, m] X[k, n]  (or H_prev)      A^T, B
===============  ======================================  ==========

Each block computes a ``tile_m x tile_n`` tile of C, staging ``tile_k`` deep
slices of both operands in (dynamic) shared memory; each thread accumulates a
4 x 4 register tile whose rows are ``TM`` apart and columns ``TN`` apart, so a
warp reads consecutive shared-memory words. Every C[m, n] is summed by one
thread over k = 0, 1, ..., K-1 in order: the result is bitwise reproducible and
independent of the grid, with no atomics.
"""
from __future__ import annotations

from numba import cuda

from ._jit import kernel
from .config import config

__all__ = ["matmul"]

#: rows and columns of C per thread. A structural constant, not a tuning knob: it
#: sizes the register tile (cuda.local.array needs a compile-time shape).
RM = 4
RN = 4

_MAX_BLOCKS = 65535


@kernel
def _matmul_kernel(d_a, trans_a, d_b, trans_b, d_bias, has_bias, d_c, BM, BN, BK):
    M, N = d_c.shape
    K = d_a.shape[0] if trans_a else d_a.shape[1]
    # [ A tile: BK x BM | B tile: BK x BN ], both k-major so the inner loop reads rows
    smem = cuda.shared.array(0, dtype=d_c.dtype)
    acc = cuda.local.array((RM, RN), dtype=d_c.dtype)
    a_reg = cuda.local.array(RM, dtype=d_c.dtype)
    b_reg = cuda.local.array(RN, dtype=d_c.dtype)
    tid = cuda.threadIdx.x
    nthreads = cuda.blockDim.x
    TM = BM // RM
    TN = BN // RN
    ty = tid // TN
    tx = tid % TN
    tiles_n = (N + BN - 1) // BN
    n_tiles = ((M + BM - 1) // BM) * tiles_n
    b_off = BK * BM
    for tile in range(cuda.blockIdx.x, n_tiles, cuda.gridDim.x):  # grid-stride over C tiles
        m0 = (tile // tiles_n) * BM
        n0 = (tile % tiles_n) * BN
        for i in range(RM):
            for j in range(RN):
                acc[i, j] = 0
        for k0 in range(0, K, BK):
            # As[kk, mm] = opA[m0 + mm, k0 + kk]; consecutive threads read consecutive addresses
            for e in range(tid, BK * BM, nthreads):
                if trans_a:
                    kk = e // BM
                    mm = e % BM
                else:
                    mm = e // BK
                    kk = e % BK
                m = m0 + mm
                k = k0 + kk
                if m < M and k < K:
                    smem[kk * BM + mm] = d_a[k, m] if trans_a else d_a[m, k]
                else:
                    smem[kk * BM + mm] = 0
            # Bs[kk, nn] = opB[k0 + kk, n0 + nn]
            for e in range(tid, BK * BN, nthreads):
                if trans_b:
                    nn = e // BK
                    kk = e % BK
                else:
                    kk = e // BN
                    nn = e % BN
                n = n0 + nn
                k = k0 + kk
                if n < N and k < K:
                    smem[b_off + kk * BN + nn] = d_b[n, k] if trans_b else d_b[k, n]
                else:
                    smem[b_off + kk * BN + nn] = 0
            cuda.syncthreads()
            for kk in range(BK):
                # acc[i, j] += A[m_i, k] * B[k, n_j]: outer product of a column of As and a row of Bs
                for i in range(RM):
                    a_reg[i] = smem[kk * BM + ty + i * TM]
                for j in range(RN):
                    b_reg[j] = smem[b_off + kk * BN + tx + j * TN]
                for i in range(RM):
                    for j in range(RN):
                        acc[i, j] += a_reg[i] * b_reg[j]
            cuda.syncthreads()  # the next k-slice overwrites the tiles
        for i in range(RM):
            m = m0 + ty + i * TM
            for j in range(RN):
                n = n0 + tx + j * TN
                if m < M and n < N:
                    if has_bias:
                        d_c[m, n] = acc[i, j] + d_bias[n]  # C = A B + b
                    else:
                        d_c[m, n] = acc[i, j]


def matmul(d_a, d_b, d_c, *, trans_a=False, trans_b=False, d_bias=None):
    """``C = op(A) @ op(B) (+ bias)`` on the device, into ``d_c``.

    Parameters
    ----------
    d_a : device array, shape (M, K), or (K, M) if ``trans_a``
    d_b : device array, shape (K, N), or (N, K) if ``trans_b``
    d_c : device array, shape (M, N)
        Output, overwritten; any strides.
    trans_a, trans_b : bool
        Read the operand transposed.
    d_bias : device array, shape (N,), optional
        Added to every row of C.
    """
    M, N = d_c.shape
    if M == 0 or N == 0:
        return
    BM, BN, BK = config.tile_m, config.tile_n, config.tile_k
    if BM % RM or BN % RN:
        raise ValueError(f"tile_m and tile_n must be multiples of {RM} and {RN}")
    threads = (BM // RM) * (BN // RN)
    blocks = min(_MAX_BLOCKS, -(-M // BM) * -(-N // BN))
    shared = (BK * BM + BK * BN) * d_c.dtype.itemsize
    has_bias = d_bias is not None
    if not has_bias:
        d_bias = d_c[0]  # never read; keeps one signature per dtype
    _matmul_kernel[blocks, threads, 0, shared](d_a, trans_a, d_b, trans_b, d_bias, has_bias,
                                               d_c, BM, BN, BK)
