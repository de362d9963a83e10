"""CPU backward drivers (backpropagation through time) of the ``"serial"``, ``"tiles"`` and ``"blas"`` paths.

A serial loop over time from the last step to the first. Each step is the
fused element-wise gate backward, which writes ``dZ_t`` and ``h_{t-1}``, then
the product with ``dZ_t``, in the way of the forward driver of the same name
(:mod:`nblstm.cpu.layers` picks it by the layer's plan):

- ``"tiles"`` and ``"row_groups"``: parallel tiles of (batch rows, hidden
  units) with numba products; the step's product is ``[dx_t | dh_{t-1}] =
  dZ_t [W_ih | W_hh]``, rows of I + H (a separate ``dZ W_ih`` would run along
  rows of only I). As in the forward pass, groups of whole rows each walk
  back through time on their own, and tiles of part of a row meet at
  barriers every step;
- ``"serial"``: the same as one tile on the calling thread;
- ``"blas"``: ``dh_{t-1} = dZ_t W_hh`` as one BLAS product per step, the
  element-wise part on the calling thread, and dx as one product after the loop.

The ``"slices"`` path's backward drivers are in :mod:`nblstm.cpu.slices`.
After the loop come the weight gradients, products over all steps at once: BLAS
in the ``"blas"`` driver, ``weight_grads.weight_grads_numba`` (numba, parallel) in the others, so
that those never call BLAS (see forward.py). Each element is summed in a fixed
order, so results do not depend on the thread count.
"""
import numpy as np
from numba import prange

from .._batch import running_rows
from . import workspace
from ._jit import kernel
from .elementwise import copy_row, zero_row
from .matmul import add_products, gemm
from .step import clear_padded, gates_backward_tile
from .weight_grads import weight_grads_numba

__all__ = ["backward_serial", "backward_tiles", "backward_row_groups", "backward_blas"]


@kernel
def _dxh_tile(t, r0, r1, k0, k1, dZ, W_bwd, dxh, dx):
    """``[dx_t | dh_{t-1}][r, k0:k1] = (dz_t [W_ih | W_hh])[k0:k1]`` for rows r0:r1.

    ``dxh`` holds ``[dx_t | dh]`` per row (I + H columns) and ``W_bwd`` is
    ``[W_ih | W_hh]``, so dx_t comes out of the product the step makes anyway,
    along rows of I + H instead of the short rows of a separate ``dZ W_ih``.
    Each element is summed over q in order; the dx columns are copied to ``dx[t]``.
    """
    I = dx.shape[2]
    for r in range(r0, r1):
        zero_row(dxh[r][k0:k1])
    add_products(dZ[t], W_bwd, dxh, r0, r1, k0, k1)
    if k0 < I:
        for r in range(r0, r1):
            copy_row(dx[t, r][k0:min(k1, I)], dxh[r][k0:min(k1, I)])


@kernel(parallel=True)
def _recurrence_backward_tiles(gates, cells, h0, c0, dy, W_bwd, n_active, dxh, dc, dZ, h_prev,
                               dx, row_block, unit_block):
    """Walk the steps backwards, filling ``dZ``, ``h_prev`` and ``dx``; no BLAS call.

    A tile is (block of ``row_block`` batch rows, block of ``unit_block``
    hidden units). A step is two parallel regions: ``[dx_t | dh_{t-1}]`` of a
    row needs that row's whole ``dz_t``, which tiles of part of a row each
    compute part of.

    Parameters
    ----------
    gates : ndarray, shape (T, B, 4H)
        Cached activations ``[i f g o]``.
    cells : ndarray, shape (T, B, H)
        Cached c_t.
    h0, c0 : ndarray, shape (B, H)
        Initial state.
    dy : ndarray, shape (T, B, H)
        dL/dy (any strides; the drivers pass it contiguous so the loops vectorise).
    W_bwd : ndarray, shape (4H, I + H)
        ``[W_ih | W_hh]``, C-contiguous.
    n_active : ndarray of int64, shape (T,)
        Running rows per step.
    dxh : ndarray, shape (B, I + H)
        ``[dx_t | dh]`` per row: ``dxh[:, I:]`` holds dL/dh_n on entry and
        dL/dh0 on exit.
    dc : ndarray, shape (B, H)
        dL/dc_n on entry; dL/dc0 on exit.
    dZ : ndarray, shape (T, B, 4H)
        Output: dL/dz_t, 0 at padded steps.
    h_prev : ndarray, shape (T, B, H)
        Output: h_{t-1} (0 at padded steps), the operand of dW_hh.
    dx : ndarray, shape (T, B, I)
        Output: dL/dx_t, 0 at padded steps.
    row_block, unit_block : int
        Batch rows and hidden units per tile.
    """
    T, B, H4 = gates.shape
    H = H4 // 4
    I = dx.shape[2]
    n_unit_blocks = (H + unit_block - 1) // unit_block
    # the product's I + H columns: whole rows, or blocks of unit_block columns
    col_block = I + H if unit_block >= H else unit_block
    n_col_blocks = (I + H + col_block - 1) // col_block
    for t in range(T - 1, -1, -1):
        n = n_active[t]
        n_row_blocks = (n + row_block - 1) // row_block
        for tile in prange(n_row_blocks * n_unit_blocks):
            r0 = (tile // n_unit_blocks) * row_block
            j0 = (tile % n_unit_blocks) * unit_block
            for r in range(r0, min(r0 + row_block, n)):
                gates_backward_tile(t, r, j0, min(j0 + unit_block, H), gates, cells, h0, c0, dy,
                                     dxh, I, dc, dZ, h_prev)
        clear_padded(t, n, B, dZ, h_prev, dx)
        for tile in prange(n_row_blocks * n_col_blocks):          # [dx_t | dh_{t-1}] = dz_t W_bwd
            r0 = (tile // n_col_blocks) * row_block
            k0 = (tile % n_col_blocks) * col_block
            _dxh_tile(t, r0, min(r0 + row_block, n), k0, min(k0 + col_block, I + H),
                      dZ, W_bwd, dxh, dx)


@kernel(parallel=True)
def _recurrence_backward_row_groups(gates, cells, h0, c0, dy, W_bwd, n_active, dxh, dc, dZ,
                                    h_prev, dx, row_block, groups):
    """The steps of ``_recurrence_backward_tiles`` as one time loop per group of whole rows.

    As in the forward ``_recurrence_row_groups``: rows are independent, so
    each group walks its own rows back through time with no barrier between
    steps; blocks of ``row_block`` rows are dealt to the ``groups`` groups in
    turn. Each row's arithmetic is that of ``_recurrence_backward_tiles``
    (bitwise the same results). Arguments as for ``_recurrence_backward_tiles``.
    """
    T, B, H4 = gates.shape
    H = H4 // 4
    I = dx.shape[2]
    first = np.int64(0)    # typed, not a literal 0: see _jit.py, "Literal arguments"
    n_blocks = (B + row_block - 1) // row_block
    for group in prange(groups):
        for t in range(T - 1, -1, -1):
            n = n_active[t]
            for block in range(group, n_blocks, groups):
                r0 = block * row_block
                r1 = min(r0 + row_block, B)
                running = min(r1, n)
                for r in range(r0, running):
                    gates_backward_tile(t, r, first, H, gates, cells, h0, c0, dy, dxh, I, dc,
                                         dZ, h_prev)
                clear_padded(t, max(r0, n), r1, dZ, h_prev, dx)
                if r0 < running:                        # [dx_t | dh_{t-1}] = dz_t W_bwd
                    _dxh_tile(t, r0, running, first, I + H, dZ, W_bwd, dxh, dx)


@kernel
def _recurrence_backward_serial(gates, cells, h0, c0, dy, W_bwd, n_active, dxh, dc, dZ, h_prev, dx):
    """The steps of ``_recurrence_backward_tiles`` on the calling thread, one tile per step.

    Arguments as for ``_recurrence_backward_tiles``; no BLAS call.
    """
    T, B, H4 = gates.shape
    H = H4 // 4
    I = dx.shape[2]
    first = np.int64(0)    # typed, not a literal 0: see _jit.py, "Literal arguments"
    for t in range(T - 1, -1, -1):
        n = n_active[t]
        for r in range(n):
            gates_backward_tile(t, r, first, H, gates, cells, h0, c0, dy, dxh, I, dc, dZ, h_prev)
        clear_padded(t, n, B, dZ, h_prev, dx)
        _dxh_tile(t, first, n, first, I + H, dZ, W_bwd, dxh, dx)


@kernel
def _recurrence_backward_blas(gates, cells, h0, c0, dy, W_hh, n_active, dh, dc, dZ, h_prev, dx):
    """The steps backwards with ``dh_{t-1} = W_hh^T dz_t`` as one BLAS product per step for all rows.

    BLAS's threads are the parallelism (the ``"blas"`` path); the gate
    backward runs on the calling thread. ``dh`` (B, H) holds dL/dh_n on
    entry and dL/dh0 on exit; dx is left to one product after the loop (its
    padded steps are set to 0 here). The other arguments are as for
    ``_recurrence_backward_tiles``.
    """
    T, B, H4 = gates.shape
    H = H4 // 4
    first = np.int64(0)    # typed, not a literal 0: see _jit.py, "Literal arguments"
    no_offset = np.int64(0)
    for t in range(T - 1, -1, -1):
        n = n_active[t]
        for r in range(n):
            gates_backward_tile(t, r, first, H, gates, cells, h0, c0, dy, dh, no_offset, dc, dZ,
                                 h_prev)
        clear_padded(t, n, B, dZ, h_prev, dx)
        if n > 0:
            np.dot(dZ[t, :n], W_hh, dh[:n])


def _numba_loops(x, W_ih, W_hh, lengths, gates, dy, dh_n, dc_n, dx, dW_ih, dW_hh, db, dh0, dc0,
                 steps):
    """Run ``steps`` and the weight gradients of a numba-loop driver (serial, tiles, row groups).

    ``steps(dy, W_bwd, n_active, dxh, dc, dZ, h_prev)`` calls one of the
    recurrence kernels with those and the cache; ``W_bwd`` is ``[W_ih |
    W_hh]`` and ``dxh`` holds ``[dx_t | dh]`` per row. The weight gradients
    are products over all steps in numba (``weight_grads_numba``), so that
    these drivers never call BLAS (see forward.py).
    """
    T, B, I = x.shape
    H = W_hh.shape[1]
    dc0[...] = dc_n
    n_active = running_rows(lengths, T)
    dZ = workspace.scratch("dZ", (T, B, 4 * H), gates.dtype)
    h_prev = workspace.scratch("h_prev", (T, B, H), gates.dtype)
    W_bwd = np.empty((4 * H, I + H), W_hh.dtype)                 # [W_ih | W_hh], C-contiguous
    W_bwd[:, :I] = W_ih
    W_bwd[:, I:] = W_hh
    dxh = np.empty((B, I + H), dh0.dtype)
    dxh[:, I:] = dh_n
    if T > 0 and B > 0:
        # typed contiguous, the gate loops vectorise (docs/performance.md#contiguous-dy)
        steps(np.ascontiguousarray(dy), W_bwd, n_active, dxh, dc0, dZ, h_prev)
    dh0[...] = dxh[:, I:]
    dZ_flat = dZ.reshape(T * B, 4 * H)
    # With check_finite=False a non-finite input is the caller's choice: it propagates
    # as Inf/NaN, it is not a warning (filterwarnings="error" pipelines would crash).
    with np.errstate(all="ignore"):
        np.sum(dZ_flat, axis=0, out=db)                          # db = Σ_t dz_t
        weight_grads_numba(dZ_flat, np.ascontiguousarray(x).reshape(T * B, I),
                           h_prev.reshape(T * B, H), n_active, B, dW_ih, dW_hh)


def backward_serial(x, W_ih, W_hh, h0, c0, lengths, gates, cells, dy, dh_n, dc_n,
                    dx, dW_ih, dW_hh, db, dh0, dc0, p):
    """The ``"serial"`` driver: every step on the calling thread (``_recurrence_backward_serial``).

    The arguments of :func:`nblstm.cpu.layers.backward_layer` (T or B may be
    0) and the layer's :class:`nblstm.cpu.plan.Plan` ``p``.
    """
    _numba_loops(x, W_ih, W_hh, lengths, gates, dy, dh_n, dc_n, dx, dW_ih, dW_hh, db, dh0, dc0,
                 lambda dy, *rest: _recurrence_backward_serial(gates, cells, h0, c0, dy, *rest, dx))


def backward_tiles(x, W_ih, W_hh, h0, c0, lengths, gates, cells, dy, dh_n, dc_n,
                   dx, dW_ih, dW_hh, db, dh0, dc0, p):
    """The ``"tiles"`` driver: tiles of ``p.rows`` rows by ``p.units`` units, barriers every step.

    Arguments as for :func:`backward_serial`.
    """
    _numba_loops(x, W_ih, W_hh, lengths, gates, dy, dh_n, dc_n, dx, dW_ih, dW_hh, db, dh0, dc0,
                 lambda dy, *rest: _recurrence_backward_tiles(gates, cells, h0, c0, dy, *rest, dx,
                                                              p.rows, p.units))


def backward_row_groups(x, W_ih, W_hh, h0, c0, lengths, gates, cells, dy, dh_n, dc_n,
                        dx, dW_ih, dW_hh, db, dh0, dc0, p):
    """The ``"row_groups"`` driver: ``p.groups`` groups of blocks of ``p.rows`` whole rows, no barrier.

    Arguments as for :func:`backward_serial`.
    """
    _numba_loops(x, W_ih, W_hh, lengths, gates, dy, dh_n, dc_n, dx, dW_ih, dW_hh, db, dh0, dc0,
                 lambda dy, *rest: _recurrence_backward_row_groups(gates, cells, h0, c0, dy, *rest,
                                                                   dx, p.rows, p.groups))


def backward_blas(x, W_ih, W_hh, h0, c0, lengths, gates, cells, dy, dh_n, dc_n,
                  dx, dW_ih, dW_hh, db, dh0, dc0, p):
    """The ``"blas"`` driver: one BLAS product per step, the weight gradients and dx by BLAS after the loop.

    Arguments as for :func:`backward_serial`.
    """
    T, B, I = x.shape
    H = W_hh.shape[1]
    dc0[...] = dc_n
    dh0[...] = dh_n
    n_active = running_rows(lengths, T)
    dZ = workspace.scratch("dZ", (T, B, 4 * H), gates.dtype)
    h_prev = workspace.scratch("h_prev", (T, B, H), gates.dtype)
    if T > 0 and B > 0:
        _recurrence_backward_blas(gates, cells, h0, c0, np.ascontiguousarray(dy), W_hh, n_active,
                                  dh0, dc0, dZ, h_prev, dx)
    dZ_flat = dZ.reshape(T * B, 4 * H)
    with np.errstate(all="ignore"):                              # as in _numba_loops
        np.sum(dZ_flat, axis=0, out=db)                          # db = Σ_t dz_t
        gemm(dZ_flat.T, np.ascontiguousarray(x).reshape(T * B, I), dW_ih)   # Σ_t dz_t x_tᵀ
        gemm(dZ_flat.T, h_prev.reshape(T * B, H), dW_hh)         # dW_hh = Σ_t dz_t h_{t-1}ᵀ
        gemm(dZ_flat, W_ih, dx.reshape(T * B, I))                # dx_t = W_ihᵀ dz_t
