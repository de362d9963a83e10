"""Matrix products for the CPU kernels: BLAS's ``gemm`` and numba loops.

BLAS: numba's ``np.dot`` calls SciPy's OpenBLAS, NumPy's ``np.dot`` NumPy's own
copy: two libraries with two pools of worker threads, which after each call
keep spinning for a while. A NumPy product followed by per-step products inside
the kernels had each pool slow the other several-fold on two cores, so every
BLAS product nblstm makes, in host code or in a kernel, goes through
:func:`gemm` (numba's binding).

Loops: the ``"serial"`` and ``"tiles"`` paths compute every product with
:func:`add_products` instead of BLAS: BLAS's worker threads keep spinning after
a call, and a numba parallel region that starts while they spin waits for a
core (numba issue 6933; docs/performance.md#one-pool-per-call). Without BLAS those paths
never share the cores with a second thread pool, in one call or across calls.

Each output element of :func:`add_products` is summed over ``k`` in increasing
order, one term at a time, however the loops are blocked: the result does not
depend on the tiling or the thread count, and equals the plain triple loop
bitwise.
"""
import numpy as np

from ._jit import kernel


@kernel
def gemm(a, b, out):
    """``out[...] = a @ b`` for 2-D operands (C- or F-contiguous), through BLAS."""
    np.dot(a, b, out)


@kernel
def add_products(a, M, out, r0, r1, c0, c1):
    """``out[r, c0:c1] += sum_k a[r, k] * M[k, c0:c1]`` for ``r0 <= r < r1``.

    Two rows and four ``k`` at a time: each element of ``out`` is loaded and
    stored once per four terms and each element of ``M`` serves two rows, so
    the inner loop is bound by the arithmetic, not by loads and stores. The
    inner loop runs over slices from index 0, so LLVM vectorises it.

    Parameters
    ----------
    a : ndarray, shape (R, K)
        Left factor (any strides: it is read one scalar at a time).
    M : ndarray, shape (K, N)
        Right factor; its rows should be contiguous.
    out : ndarray, shape (R, N)
        Accumulated into; its rows should be contiguous.
    r0, r1 : int
        Rows of ``a`` and ``out`` to compute.
    c0, c1 : int
        Columns of ``M`` and ``out`` to compute.
    """
    K = a.shape[1]
    K4 = K - K % 4
    n = c1 - c0
    r = r0
    while r + 2 <= r1:
        o0 = out[r, c0:c1]
        o1 = out[r + 1, c0:c1]
        for k in range(0, K4, 4):
            m0, m1, m2, m3 = M[k, c0:c1], M[k + 1, c0:c1], M[k + 2, c0:c1], M[k + 3, c0:c1]
            p0, p1, p2, p3 = a[r, k], a[r, k + 1], a[r, k + 2], a[r, k + 3]
            q0, q1, q2, q3 = a[r + 1, k], a[r + 1, k + 1], a[r + 1, k + 2], a[r + 1, k + 3]
            for j in range(n):
                w0, w1, w2, w3 = m0[j], m1[j], m2[j], m3[j]
                o0[j] = (((o0[j] + w0 * p0) + w1 * p1) + w2 * p2) + w3 * p3
                o1[j] = (((o1[j] + w0 * q0) + w1 * q1) + w2 * q2) + w3 * q3
        for k in range(K4, K):
            m0 = M[k, c0:c1]
            p0, q0 = a[r, k], a[r + 1, k]
            for j in range(n):
                o0[j] += m0[j] * p0
                o1[j] += m0[j] * q0
        r += 2
    if r < r1:                                             # an odd row left over
        o0 = out[r, c0:c1]
        for k in range(0, K4, 4):
            m0, m1, m2, m3 = M[k, c0:c1], M[k + 1, c0:c1], M[k + 2, c0:c1], M[k + 3, c0:c1]
            p0, p1, p2, p3 = a[r, k], a[r, k + 1], a[r, k + 2], a[r, k + 3]
            for j in range(n):
                o0[j] = (((o0[j] + m0[j] * p0) + m1[j] * p1) + m2[j] * p2) + m3[j] * p3
        for k in range(K4, K):
            m0 = M[k, c0:c1]
            p0 = a[r, k]
            for j in range(n):
                o0[j] += m0[j] * p0
