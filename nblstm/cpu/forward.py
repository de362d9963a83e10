"""CPU forward drivers of the ``"serial"``, ``"tiles"`` and ``"blas"`` paths (one layer, batch sorted by length).

A serial loop over time; each step computes ``z = b + W_ih x_t + W_hh h_{t-1}``
and the fused gate and cell update. :mod:`nblstm.cpu.layers` picks the driver
by the layer's plan (:mod:`nblstm.cpu.plan`); this module holds four of the six:

- ``"row_groups"`` and ``"tiles"`` (the ``"tiles"`` path): tiles of (batch
  rows, block of hidden units), each computing its part of ``z`` with numba
  loops (``matmul.add_products``), then its gates. Tiles of whole rows depend
  on nothing but their own rows, so one parallel region runs a group of them
  per thread, each group with its own loop over time
  (``_recurrence_row_groups``); tiles of part of a row (more threads than row
  blocks) meet at a barrier every step (``_recurrence_tiles``);
- ``"serial"``: the same step as one tile on the calling thread (the smallest
  sizes, where starting threads every step would cost more than the step);
- ``"blas"``: as the fast LSTM implementations for large sizes do it, the input
  projection of a chunk of steps as one BLAS product (``_project_chunk``), then
  per step one BLAS product ``W_hh h_{t-1}`` for all rows and the element-wise
  update on the calling thread.

The ``"slices"`` path's two drivers are in :mod:`nblstm.cpu.slices`. The
numba-loop drivers call no BLAS at all, the BLAS driver runs no numba
parallel region: numba's and BLAS's worker threads never compete for the
cores (numba issue 6933). Every driver sums each element in an order that
depends only on the sizes, so results do not depend on the thread count;
"tiles", "row_groups" and "serial" are bitwise equal.
"""
import numpy as np
from numba import prange

from .._batch import running_rows
from . import workspace
from ._jit import kernel
from .config import config
from .elementwise import copy_row, transpose
from .matmul import add_products, gemm
from .step import activate_tile, store_tile, zero_ended_rows

__all__ = ["forward_serial", "forward_tiles", "forward_row_groups", "forward_blas", "recurrence_blas"]


@kernel
def _fused_step_tile(t, r0, r1, j0, j1, x, xh, W_cat, b, z, c_state, xh_out,
                     y, cells, keep_cache, last_step, h_n, c_n):
    """The whole step t for batch rows ``r0:r1`` and hidden units ``j0:j1``.

    ``xh`` holds ``[x_t | h_{t-1}]`` per row (the tile copies in its rows'
    ``x_t``) and ``W_cat`` is ``[W_ih^T; W_hh^T]``, so ``b + W_ih x_t + W_hh h_{t-1}``
    is one product. h_t goes to ``xh_out[:, I:]``, the next step's ``xh``. A
    tile of whole rows computes the product over the 4H columns at once, a tile
    of part of a row over its four per-gate column ranges.
    """
    I = x.shape[2]
    H = c_state.shape[1]
    for r in range(r0, r1):
        copy_row(xh[r][:I], x[t, r])
    whole_rows = j1 - j0 == H
    for q in range(1 if whole_rows else 4):
        c0 = 0 if whole_rows else q * H + j0
        c1 = 4 * H if whole_rows else q * H + j1
        for r in range(r0, r1):
            copy_row(z[r][c0:c1], b[c0:c1])
        add_products(xh, W_cat, z, r0, r1, c0, c1)
    for r in range(r0, r1):
        h_row = xh_out[r][I:]
        activate_tile(z[r], j0, j1, c_state[r], h_row)
        store_tile(t, r, r, j0, j1, h_row, c_state[r], y, cells, keep_cache, last_step, h_n,
                    c_n)


@kernel(parallel=True)
def _recurrence_tiles(x, W_cat, b, z_steps, keep_cache, n_active, last_step,
                      xh_prev, xh_next, c_state, y, h_n, c_n, cells, row_block, unit_block):
    """Run all T steps, each step one parallel region over tiles; no BLAS call.

    A tile is (block of ``row_block`` batch rows, block of ``unit_block``
    hidden units) and computes its part of ``b + W_ih x_t + W_hh h_{t-1}`` with
    :func:`add_products`, then the gates and the cell update.

    Parameters
    ----------
    x : ndarray, shape (T, B, I)
        Input (any strides).
    W_cat : ndarray, shape (I + H, 4H)
        ``[W_ih^T; W_hh^T]``, C-contiguous.
    b : ndarray, shape (4H,)
        Bias.
    z_steps : ndarray, shape (T, B, 4H) or (1, B, 4H)
        Where the step's gates go: the ``gates`` cache (``keep_cache``), or one
        step's scratch, reused (inference).
    keep_cache : bool
        Whether to keep the gates and cells of every step.
    n_active : ndarray of int64, shape (T,)
        Running rows per step (rows ``0 .. n_active[t]-1``).
    last_step : ndarray of int64, shape (B,)
        ``lengths - 1``: the step after which a row's state is final.
    xh_prev, xh_next : ndarray, shape (B, I + H)
        Double buffer for ``[x_t | h_{t-1}]``; ``xh_prev[:, I:]`` holds h0 on
        entry. Swapped each step.
    c_state : ndarray, shape (B, H)
        c0 on entry, updated in place.
    y : ndarray, shape (T, B, H)
        Output (any strides): h_t for running rows, 0 for the rest.
    h_n, c_n : ndarray, shape (B, H)
        Written at each row's last step.
    cells : ndarray, shape (T, B, H)
        c_t for the cache (only written when ``keep_cache``).
    row_block, unit_block : int
        Batch rows and hidden units per tile (:func:`nblstm.cpu.plan.tiling`).
    """
    T = x.shape[0]
    H = c_state.shape[1]
    n_unit_blocks = (H + unit_block - 1) // unit_block
    swapped = False
    for t in range(T):
        n = n_active[t]
        xh = xh_next if swapped else xh_prev
        xh_out = xh_prev if swapped else xh_next
        z = z_steps[t if keep_cache else 0]
        n_row_blocks = (n + row_block - 1) // row_block
        for tile in prange(n_row_blocks * n_unit_blocks):
            r0 = (tile // n_unit_blocks) * row_block
            j0 = (tile % n_unit_blocks) * unit_block
            _fused_step_tile(t, r0, min(r0 + row_block, n), j0, min(j0 + unit_block, H),
                             x, xh, W_cat, b, z, c_state, xh_out,
                             y, cells, keep_cache, last_step, h_n, c_n)
        zero_ended_rows(t, n, y.shape[1], y)
        swapped = not swapped


@kernel(parallel=True)
def _recurrence_row_groups(x, W_cat, b, z_steps, keep_cache, n_active, last_step,
                           xh_prev, xh_next, c_state, y, h_n, c_n, cells, row_block, groups):
    """All T steps as ``groups`` independent loops over time, one per group of whole rows.

    The rows of a batch are independent sequences: a tile of whole rows needs
    nothing from other tiles, so each group runs its own time loop and the
    steps need no barrier (with one, a thread descheduled for a moment held
    up the other at every step; without, only its own rows wait).
    Blocks of ``row_block`` rows are dealt to the groups in turn, so that with
    the batch sorted by length every group gets long and short rows alike.
    Each row's arithmetic is that of ``_recurrence_tiles``, so the results
    are bitwise the same. Arguments as for ``_recurrence_tiles``; ``groups``
    is the number of groups (the parallel loop's iterations).
    """
    T = x.shape[0]
    B, H = c_state.shape
    first = np.int64(0)    # typed, not a literal 0: see _jit.py, "Literal arguments"
    n_blocks = (B + row_block - 1) // row_block
    for group in prange(groups):
        swapped = False
        for t in range(T):
            n = n_active[t]
            xh = xh_next if swapped else xh_prev
            xh_out = xh_prev if swapped else xh_next
            z = z_steps[t if keep_cache else 0]
            for block in range(group, n_blocks, groups):
                r0 = block * row_block
                r1 = min(r0 + row_block, B)
                if r0 < n:
                    _fused_step_tile(t, r0, min(r1, n), first, H, x, xh, W_cat, b, z, c_state,
                                     xh_out, y, cells, keep_cache, last_step, h_n, c_n)
                zero_ended_rows(t, max(r0, n), r1, y)
            swapped = not swapped


@kernel
def _recurrence_serial(x, W_cat, b, z_steps, keep_cache, n_active, last_step,
                       xh_prev, xh_next, c_state, y, h_n, c_n, cells):
    """The steps of ``_recurrence_tiles`` on the calling thread, one tile per step.

    For small sizes, where starting threads every step costs more than the
    step. Arguments as for ``_recurrence_tiles``.
    """
    T = x.shape[0]
    H = c_state.shape[1]
    first = np.int64(0)    # typed, not a literal 0: see _jit.py, "Literal arguments"
    swapped = False
    for t in range(T):
        n = n_active[t]
        xh = xh_next if swapped else xh_prev
        xh_out = xh_prev if swapped else xh_next
        _fused_step_tile(t, first, n, first, H, x, xh, W_cat, b, z_steps[t if keep_cache else 0],
                         c_state, xh_out, y, cells, keep_cache, last_step, h_n, c_n)
        zero_ended_rows(t, n, y.shape[1], y)
        swapped = not swapped


@kernel
def recurrence_blas(zx, t0, W_hhT, n_active, last_step, h_prev, h_next, c_state,
                     y, h_n, c_n, cells, keep_cache, rec):
    """Steps ``t0 .. t0 + len(zx) - 1`` with one BLAS product per step for all rows.

    The element-wise update runs on the calling thread; BLAS's own threads are
    the parallelism (large sizes, where the product dominates).

    Parameters
    ----------
    zx : ndarray, shape (Tc, B, 4H)
        ``W_ih x_t + b`` for the chunk's steps; overwritten with the gate
        activations ``[i f g o]`` (which are the cache when ``zx`` is a slice
        of ``gates``).
    t0 : int
        Time index of ``zx[0]``.
    W_hhT : ndarray, shape (H, 4H)
        Transposed recurrent weights (any layout BLAS takes).
    h_prev, h_next : ndarray, shape (B, H)
        Double buffer for h; ``h_prev`` holds h_{t0-1} on entry. Swapped each step.
    rec : ndarray, shape (B, 4H)
        Scratch for ``W_hh h_{t-1}``.

    The other arguments are as for ``_recurrence_tiles``.

    Returns
    -------
    bool
        Whether the last h is in ``h_prev`` (False) or ``h_next`` (True).
    """
    steps, _, H4 = zx.shape
    H = H4 // 4
    first = np.int64(0)    # typed, not a literal 0: see _jit.py, "Literal arguments"
    swapped = False
    for s in range(steps):
        t = t0 + s
        n = n_active[t]
        hp = h_next if swapped else h_prev
        hn = h_prev if swapped else h_next
        if n > 0:
            np.dot(hp[:n], W_hhT, rec[:n])                 # W_hh h_{t-1} for all rows
        for r in range(n):
            z = zx[s, r]
            rec_r = rec[r]
            for j in range(H4):
                z[j] += rec_r[j]
            activate_tile(z, first, H, c_state[r], hn[r])
            store_tile(t, r, r, first, H, hn[r], c_state[r], y, cells, keep_cache, last_step,
                        h_n, c_n)
        zero_ended_rows(t, n, y.shape[1], y)
        swapped = not swapped
    return swapped


def _project_chunk(x, W_ihT, b, t0, t1, out):
    """out = x[t0:t1, :n] W_ih^T + b as one matrix product: (Tc*n, I) x (I, 4H).

    ``n = out.shape[1]`` rows: the rows that have ended before step t0 are not projected.
    """
    I = x.shape[2]
    n = out.shape[1]
    if n == 0:
        return
    flat = out.reshape((t1 - t0) * n, -1)
    # x may be a strided view of the caller's array (inference): copy just this chunk
    gemm(np.ascontiguousarray(x[t0:t1, :n]).reshape(-1, I), W_ihT, flat)
    flat += b


def _loop_operands(x, W_ih, W_hh, b, h0, c0, lengths, gates):
    """The leading arguments of ``_recurrence_serial``, ``_recurrence_tiles`` and ``_recurrence_row_groups``.

    ``(x, W_cat, b, z_steps, keep_cache, n_active, last_step, xh_prev,
    xh_next, c_state)``, built from the layer's arguments.
    """
    T, B, I = x.shape
    H = W_hh.shape[1]
    keep_cache = gates is not None
    W_cat = np.empty((I + H, 4 * H), x.dtype)              # C-contiguous rows for add_products
    transpose(W_ih, W_cat[:I])
    transpose(W_hh, W_cat[I:])
    xh_prev = np.empty((B, I + H), x.dtype)
    xh_prev[:, I:] = h0
    z_steps = gates if keep_cache else np.empty((1, B, 4 * H), x.dtype)
    return (x, W_cat, b, z_steps, keep_cache, running_rows(lengths, T), lengths - 1, xh_prev,
            np.empty_like(xh_prev), np.array(c0, order="C"))


def _cells_out(x, gates, cells):
    """``cells``, or an empty stand-in for inference (the kernels write it only with the cache)."""
    return cells if gates is not None else np.empty((0, 0, 0), x.dtype)


def forward_serial(x, W_ih, W_hh, b, h0, c0, lengths, y, h_n, c_n, gates, cells, p, order=None):
    """The ``"serial"`` driver: every step on the calling thread (``_recurrence_serial``).

    The arguments of :func:`nblstm.cpu.layers.forward_layer`, with T and B
    positive, ``h_n`` and ``c_n`` holding h0 and c0, the batch sorted
    (``order`` None), and the layer's :class:`nblstm.cpu.plan.Plan` ``p``.
    """
    _recurrence_serial(*_loop_operands(x, W_ih, W_hh, b, h0, c0, lengths, gates), y, h_n, c_n,
                       _cells_out(x, gates, cells))


def forward_tiles(x, W_ih, W_hh, b, h0, c0, lengths, y, h_n, c_n, gates, cells, p, order=None):
    """The ``"tiles"`` driver: tiles of ``p.rows`` rows by ``p.units`` units, a barrier every step.

    Arguments as for :func:`forward_serial`.
    """
    _recurrence_tiles(*_loop_operands(x, W_ih, W_hh, b, h0, c0, lengths, gates), y, h_n, c_n,
                      _cells_out(x, gates, cells), p.rows, p.units)


def forward_row_groups(x, W_ih, W_hh, b, h0, c0, lengths, y, h_n, c_n, gates, cells, p,
                       order=None):
    """The ``"row_groups"`` driver: ``p.groups`` groups of blocks of ``p.rows`` whole rows, no barrier.

    Arguments as for :func:`forward_serial`.
    """
    _recurrence_row_groups(*_loop_operands(x, W_ih, W_hh, b, h0, c0, lengths, gates), y, h_n, c_n,
                           _cells_out(x, gates, cells), p.rows, p.groups)


def forward_blas(x, W_ih, W_hh, b, h0, c0, lengths, y, h_n, c_n, gates, cells, p, order=None):
    """The ``"blas"`` driver: chunks of steps projected by one product, then one product per step.

    Arguments as for :func:`forward_serial`. Inference projects
    ``config.chunk_elements`` at a time into a kept buffer
    (:func:`nblstm.cpu.workspace.scratch`); training straight into ``gates``.
    """
    _forward_blas(x, W_ih, W_hh, b, running_rows(lengths, x.shape[0]), lengths - 1,
                  np.array(h0, order="C"), np.empty_like(h0, order="C"), np.array(c0, order="C"),
                  y, h_n, c_n, gates, _cells_out(x, gates, cells), config.chunk_elements)


def _forward_blas(x, W_ih, W_hh, b, n_active, last_step, h_prev, h_next, c_state,
                  y, h_n, c_n, gates, cells, chunk_elements):
    """The ``"blas"`` path: project chunks of steps with one product, then run their steps.

    Inference projects ``chunk_elements`` at a time into a kept buffer
    (:func:`nblstm.cpu.workspace.scratch`); training straight into ``gates``.
    """
    T, B, _ = x.shape
    H = W_hh.shape[1]
    keep_cache = gates is not None
    if keep_cache:
        chunk = T
    else:
        chunk = max(1, min(T, chunk_elements // max(1, B * 4 * H)))
        buffer = workspace.scratch("projection", (chunk, B, 4 * H), x.dtype)
    rec = np.empty((B, 4 * H), x.dtype)
    swapped = False
    for t0 in range(0, T, chunk):
        t1 = min(T, t0 + chunk)
        if keep_cache:
            zx = gates[t0:t1]
        else:
            # rows past n_active[t0] have ended (the batch is sorted by length): skip them
            n = n_active[t0]
            zx = buffer.reshape(-1)[:(t1 - t0) * n * 4 * H].reshape(t1 - t0, n, 4 * H)
        _project_chunk(x, W_ih.T, b, t0, t1, zx)
        # BLAS takes the transposed view of W_hh as it is
        chunk_swapped = recurrence_blas(zx, t0, W_hh.T, n_active, last_step,
                                         h_next if swapped else h_prev,
                                         h_prev if swapped else h_next,
                                         c_state, y, h_n, c_n, cells, keep_cache, rec)
        swapped = swapped != chunk_swapped
