"""The weight gradients of a layer, as products over all its steps: numba loops and MKL.

``dW_ih = Σ_t dz_t x_tᵀ`` and ``dW_hh = Σ_t dz_t h_{t-1}ᵀ`` over the running
rows only (a padded row of x may hold NaN, and 0 * NaN is NaN), after the
backward's loop over time. :func:`weight_grads_numba` serves the ``"serial"``,
``"tiles"`` and ``"slices"`` paths without MKL, :func:`weight_grads_mkl` the
``"slices"`` path with MKL; the ``"blas"`` path makes the same products with
BLAS (:mod:`.backward`). The rows are cut into blocks by the sizes only, so the
bits do not depend on the thread count.
"""
import numpy as np
from numba import prange

from . import mkl
from ._jit import kernel
from .elementwise import transpose, zero_row
from .matmul import add_products

__all__ = ["running_segments", "weight_grads_numba", "weight_grads_mkl"]


#: rows of dZ per segment in ``_weight_grads``: a segment (at most 128 x 4H) stays
#: in cache while every output row of a group is accumulated from it
_GRAD_BLOCK_ROWS = 128
#: groups of output rows in ``_weight_grads`` (the parallel loop's iterations); neither
#: constant changes the bits (CONTRIBUTING.md, "Constants in the code")
_GRAD_GROUPS = 8


@kernel
def running_segments(n_active, B, max_rows):
    """Row ranges of the flattened (step, row) index that hold running rows.

    Returns an int64 array of shape (S, 2) of [start, stop) ranges, in
    increasing order, each at most ``max_rows`` long: rows that have ended
    (zero in dZ) are skipped, and the steps where the whole batch runs merge
    into long ranges.
    """
    T = n_active.shape[0]
    out = np.empty((T + T * B // max_rows + 1, 2), np.int64)
    count = 0
    start = 0
    stop = 0
    for t in range(T):
        if n_active[t] == 0:
            continue
        if t * B != stop:                          # not contiguous with the open range
            if stop > start:
                out[count, 0] = start
                out[count, 1] = stop
                count += 1
            start = t * B
        stop = t * B + n_active[t]
        while stop - start >= max_rows:
            out[count, 0] = start
            out[count, 1] = start + max_rows
            count += 1
            start += max_rows
    if stop > start:
        out[count, 0] = start
        out[count, 1] = stop
        count += 1
    return out[:count]


@kernel
def _accumulate_transposed(a, dZ, segments, out_T, r0, r1):
    """``out_T[r] = sum_n a[n, r] dZ[n]`` for ``r0 <= r < r1``, n over ``segments``.

    The segments come in increasing order, so the order of each sum is fixed;
    a segment stays in cache across the rows.
    """
    if r0 >= r1:
        return
    a_T = a.T
    for r in range(r0, r1):
        zero_row(out_T[r])
    for k in range(segments.shape[0]):
        n0, n1 = segments[k, 0], segments[k, 1]
        # a typed 0, not a literal: see _jit.py, "Literal arguments"
        add_products(a_T[:, n0:n1], dZ[n0:n1], out_T, r0, r1, np.int64(0), dZ.shape[1])


def weight_grads_numba(dZ, x, h_prev, n_active, B, dW_ih, dW_hh):
    """dW_ih = Σ_t dz_t x_tᵀ and dW_hh = Σ_t dz_t h_{t-1}ᵀ with numba's loops, over running rows only.

    ``dZ`` (T·B, 4H), ``x`` (T·B, I), ``h_prev`` (T·B, H) are the steps' rows;
    ``n_active`` the running rows per step. The rows are cut into fixed blocks
    (``_GRAD_BLOCK_ROWS``), so the bits do not depend on the thread count.
    Host code shared by the ``"serial"``/``"tiles"`` and ``"slices"`` paths.
    """
    dW_ih_T = np.empty((x.shape[1], dZ.shape[1]), dW_ih.dtype)
    dW_hh_T = np.empty((h_prev.shape[1], dZ.shape[1]), dW_hh.dtype)
    segments = running_segments(n_active, B, _GRAD_BLOCK_ROWS)
    _weight_grads(dZ, x, h_prev, segments, dW_ih_T, dW_hh_T)
    transpose(dW_ih_T, dW_ih)
    transpose(dW_hh_T, dW_hh)


@kernel(parallel=True)
def _weight_grads(dZ, x, h_prev, segments, dW_ih_T, dW_hh_T):
    """``dW_ih^T = x^T dZ`` and ``dW_hh^T = h_prev^T dZ`` without BLAS.

    The weight gradients are computed transposed so that the inner loop runs
    along the 4H columns of ``dZ`` rather than the I or H columns of ``x`` or
    ``h_prev`` (short rows keep the vector loop from paying off). The parallel
    loop splits the I + H output rows into equal groups. Only the rows in
    ``segments`` (running rows) are read. Each element
    sums over its index in increasing order (``add_products``), so the result
    does not depend on the thread count.

    Parameters
    ----------
    dZ : ndarray, shape (N, 4H)
        dL/dz of every (step, row), N = T * B.
    x, h_prev : ndarray, shapes (N, I), (N, H)
        The layer's input and h_{t-1} of every (step, row).
    segments : ndarray of int64, shape (S, 2)
        ``running_segments``: the [start, stop) ranges of running rows.
    dW_ih_T, dW_hh_T : ndarray, shapes (I, 4H), (H, 4H)
        Outputs: the transposed weight gradients (overwritten).
    """
    I = x.shape[1]
    rows = I + h_prev.shape[1]                      # x's rows, then h_prev's
    per_group = 2 * ((rows + 2 * _GRAD_GROUPS - 1) // (2 * _GRAD_GROUPS))
    # one call site for both operands: numba re-optimises a callee at every call site
    operands = (x, h_prev)
    results = (dW_ih_T, dW_hh_T)
    for group in prange(_GRAD_GROUPS):
        c0 = min(rows, group * per_group)
        c1 = min(rows, c0 + per_group)
        for which in range(2):
            first = 0 if which == 0 else I          # operand's first row in 0 .. rows
            width = operands[which].shape[1]
            _accumulate_transposed(operands[which], dZ, segments, results[which],
                                   min(max(c0 - first, 0), width), min(max(c1 - first, 0), width))


#: column blocks of dZ in ``_weight_grads_mkl`` (a fixed number, part of the bitwise contract: the shapes, and so
#: MKL's order of sums, must not depend on the thread count). Two beat more blocks
#: and OpenBLAS's single product (docs/performance.md#mkl-weight-grads)
_GRAD_COLUMN_BLOCKS = 2


@kernel(parallel=True)
def _weight_grads_mkl(dZ, x, h_prev, segments, dW_ih_T, dW_hh_T, gemm_ptr):
    """``dW_ih^T = Σ x_t dz_tᵀ`` and ``dW_hh^T = Σ h_{t-1} dz_tᵀ`` with MKL, running rows only.

    One task per (block of dZ's columns, operand): ``operand[seg]ᵀ @ dZ[seg, cols]``
    summed over the segments of running rows in order. The outputs are
    transposed, (I, 4H) and (H, 4H), C-contiguous and zero on entry: the
    products then read x and h_{t-1} along their rows, which MKL does much
    faster than ``dZ[seg, rows]ᵀ @ x[seg]`` in tasks of gate rows
    (docs/performance.md#mkl-weight-grads).
    """
    H4 = dZ.shape[1]
    per_block = -(-H4 // _GRAD_COLUMN_BLOCKS)
    for task in prange(2 * _GRAD_COLUMN_BLOCKS):
        c0 = min(H4, (task // 2) * per_block)
        c1 = min(H4, c0 + per_block)
        for k in range(segments.shape[0]):
            n0, n1 = segments[k, 0], segments[k, 1]
            if task % 2 == 0:
                mkl.gemm_at(gemm_ptr, x[n0:n1], dZ[n0:n1, c0:c1], dW_ih_T[:, c0:c1], 1.0)
            else:
                mkl.gemm_at(gemm_ptr, h_prev[n0:n1], dZ[n0:n1, c0:c1], dW_hh_T[:, c0:c1], 1.0)


def weight_grads_mkl(dZ, x, h_prev, n_active, B, dW_ih, dW_hh, gemm_ptr):
    """dW_ih and dW_hh as :func:`weight_grads_numba` gives them, with MKL's ``?gemm`` at ``gemm_ptr``.

    ``dZ`` (T·B, 4H), ``x`` (T·B, I), ``h_prev`` (T·B, H) must be aligned MKL
    operands (its order of sums may depend on their alignment).
    """
    segments = running_segments(n_active, B, max(1, dZ.shape[0]))
    dW_ih_T = np.zeros((x.shape[1], dZ.shape[1]), dW_ih.dtype)
    dW_hh_T = np.zeros((h_prev.shape[1], dZ.shape[1]), dW_hh.dtype)
    _weight_grads_mkl(dZ, x, h_prev, segments, dW_ih_T, dW_hh_T, gemm_ptr)
    transpose(dW_ih_T, dW_ih)
    transpose(dW_hh_T, dW_hh)
