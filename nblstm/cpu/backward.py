"""CPU backpropagation through time for one LSTM layer.

A serial loop over time from the last step to the first. Each step is the
fused element-wise gate backward, which writes ``dZ_t`` and ``h_{t-1}``, then
the product with ``dZ_t``, in one of the forward pass's four ways (``path``):

- ``"tiles"``: parallel tiles of (batch rows, hidden units) with numba
  products; the step's product is ``[dx_t | dh_{t-1}] = dZ_t [W_ih | W_hh]``,
  rows of I + H (a separate ``dZ W_ih`` would run along rows of only I).
  As in the forward pass, groups of whole rows each walk back through time
  on their own, and tiles of part of a row meet at barriers every step;
- ``"serial"``: the same as one tile on the calling thread;
- ``"blas"``: ``dh_{t-1} = dZ_t W_hh`` as one BLAS product per step, the
  element-wise part on the calling thread, and dx as one product after the loop;
- ``"slices"``: per slice of hidden units, step t+1's product for the slice's
  dh columns, then step t's gate backward on those units (:mod:`nblstm.cpu.slices`).

After the loop come the weight gradients, products over all steps at once: BLAS
on the ``"blas"`` path, ``weight_grads.weight_grads_numba`` (numba, parallel) on the others, so
that those never call BLAS (see forward.py). Each element is summed in a fixed
order, so results do not depend on the thread count.
"""
import numpy as np
from numba import prange

from .._batch import running_rows
from . import plan, slices, workspace
from ._fork import layers_in_flight
from ._jit import kernel
from .config import config
from .elementwise import copy_row, zero_row
from .matmul import add_products, gemm
from .step import clear_padded, gates_backward_tile
from .weight_grads import weight_grads_numba

__all__ = ["backward_layer"]


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
        dL/dy (any strides; ``backward_layer`` passes it contiguous so the loops vectorise).
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
def _recurrence_backward_serial(gates, cells, h0, c0, dy, W, n_active, dxh, dc, dZ, h_prev,
                                dx, use_blas):
    """The steps of ``_recurrence_backward_tiles`` on the calling thread, one tile per step.

    With ``use_blas`` (the ``"blas"`` path), ``W`` is ``W_hh``, ``dxh`` is just
    dh (B, H), and ``dh_{t-1} = W_hh^T dz_t`` for all rows is one BLAS product
    per step, BLAS's threads being the parallelism; dx is left to one product
    after the loop. Without it (``"serial"``) the arguments are as for
    ``_recurrence_backward_tiles`` and no BLAS is called.
    """
    T, B, H4 = gates.shape
    H = H4 // 4
    dh_offset = dxh.shape[1] - H
    first = np.int64(0)    # typed, not a literal 0: see _jit.py, "Literal arguments"
    for t in range(T - 1, -1, -1):
        n = n_active[t]
        for r in range(n):
            gates_backward_tile(t, r, first, H, gates, cells, h0, c0, dy, dxh, dh_offset, dc, dZ,
                                 h_prev)
        clear_padded(t, n, B, dZ, h_prev, dx)
        if not use_blas:
            _dxh_tile(t, first, n, first, dxh.shape[1], dZ, W, dxh, dx)
        elif n > 0:
            np.dot(dZ[t, :n], W, dxh[:n])


def backward_layer(x, W_ih, W_hh, h0, c0, lengths, gates, cells, dy, dh_n, dc_n,
                   dx, dW_ih, dW_hh, db, dh0, dc0):
    """Gradients of one forward-direction layer (the protocol's ``backward_layer``, docs/backends.md).

    Chooses the path and the tiling as :func:`nblstm.cpu.forward.forward_layer`
    does for the same sizes (on the ``"slices"`` path, wider slices of units:
    :func:`nblstm.cpu.plan.slice_units`), and walks the steps backwards.

    Parameters
    ----------
    x : ndarray, shape (T, B, I)
        The layer's input, as given to ``forward_layer``.
    W_ih, W_hh : ndarray, shapes (4H, I), (4H, H)
        Layer weights.
    h0, c0 : ndarray, shape (B, H)
        Initial state.
    lengths : ndarray of int64, shape (B,)
        Non-increasing valid lengths.
    gates, cells : ndarray, shapes (T, B, 4H), (T, B, H)
        The cache written by ``forward_layer``.
    dy : ndarray, shape (T, B, H)
        dL/dy (may be a strided view).
    dh_n, dc_n : ndarray, shape (B, H)
        dL/dh_n, dL/dc_n.
    dx : ndarray, shape (T, B, I)
        Output dL/dx, exactly 0 at padded steps.
    dW_ih, dW_hh, db : ndarray, shapes (4H, I), (4H, H), (4H,)
        Output weight gradients (overwritten).
    dh0, dc0 : ndarray, shape (B, H)
        Output dL/dh0, dL/dc0.
    """
    T, B, I = x.shape
    H = W_hh.shape[1]
    layer = plan.layer_plan(B, H, gates.dtype.itemsize, backward=True)
    with layers_in_flight, layer as (path, row_block, unit_block, row_groups):
        if path == "slices":
            slices.backward_layer(x, W_ih, W_hh, h0, c0, lengths, gates, cells, dy, dh_n, dc_n,
                                  dx, dW_ih, dW_hh, db, dh0, dc0, units=unit_block,
                                  rows=row_block, route=config.slices_gemm)
            return
        dc0[...] = dc_n
        n_active = running_rows(lengths, T)
        dZ = workspace.scratch("dZ", (T, B, 4 * H), gates.dtype)
        h_prev = workspace.scratch("h_prev", (T, B, H), gates.dtype)
        use_blas = path == "blas"
        # dy is often a strided view of the caller's array; typed contiguous, the gate
        # loops vectorise (the recurrence ran 1.4-1.5x faster for one copy of dy)
        dy = np.ascontiguousarray(dy)
        if use_blas:
            dh0[...] = dh_n
            W, dxh = W_hh, dh0                                      # dh alone; dx after the loop
        else:
            W = np.empty((4 * H, I + H), W_hh.dtype)                # [W_ih | W_hh], C-contiguous
            W[:, :I] = W_ih
            W[:, I:] = W_hh
            dxh = np.empty((B, I + H), dh0.dtype)                   # [dx_t | dh] per row
            dxh[:, I:] = dh_n
        if T > 0 and B > 0:
            if path == "tiles" and row_groups > 0:
                _recurrence_backward_row_groups(gates, cells, h0, c0, dy, W, n_active, dxh, dc0, dZ,
                                                h_prev, dx, row_block, row_groups)
            elif path == "tiles":
                _recurrence_backward_tiles(gates, cells, h0, c0, dy, W, n_active, dxh, dc0, dZ,
                                           h_prev, dx, row_block, unit_block)
            else:
                _recurrence_backward_serial(gates, cells, h0, c0, dy, W, n_active, dxh, dc0, dZ,
                                            h_prev, dx, use_blas)
        if not use_blas:
            dh0[...] = dxh[:, I:]
        dZ_flat = dZ.reshape(T * B, 4 * H)
        x_flat = np.ascontiguousarray(x).reshape(T * B, I)
        # With check_finite=False a non-finite input is the caller's choice: it propagates
        # as Inf/NaN, it is not a warning (filterwarnings="error" pipelines would crash).
        with np.errstate(all="ignore"):
            np.sum(dZ_flat, axis=0, out=db)                         # db = Σ_t dz_t
            if use_blas:
                gemm(dZ_flat.T, x_flat, dW_ih)                      # dW_ih = Σ_t dz_t x_tᵀ
                gemm(dZ_flat.T, h_prev.reshape(T * B, H), dW_hh)    # dW_hh = Σ_t dz_t h_{t-1}ᵀ
                gemm(dZ_flat, W_ih, dx.reshape(T * B, I))           # dx_t = W_ihᵀ dz_t
            else:
                weight_grads_numba(dZ_flat, x_flat, h_prev.reshape(T * B, H), n_active, B, dW_ih, dW_hh)
