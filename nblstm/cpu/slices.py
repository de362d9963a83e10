"""The ``"slices"`` path: each thread owns a slice of hidden units, as in oneDNN's RNN primitive.

The H hidden units are cut into ``S`` slices of ``units`` units each (the last
may be shorter). The cut depends on H, the dtype and the direction (the
backward's slices are wider, :func:`nblstm.cpu.plan.slice_units`), never on
the thread count, and numba's static schedule hands every thread the same
slices at every step, so a slice's weights stay in its core's cache.

Forward, step t, slice s (units ``j0:j1``, width w):

- ``z_s = b_s + [x_t | h_{t-1}] Wf_s`` for the running rows, where ``Wf_s``
  ((I + H) x 4w) holds the rows of ``[W_ih; W_hh]^T`` of the four gates of the
  slice's units, packed once per call, contiguous and 64-byte aligned;
- the gates and the cell update on the slice while ``z_s`` is in cache, writing
  h_t's units ``j0:j1`` into the next step's ``[x | h]`` buffer, and y, the
  cache and the final state;
- the slice's share of the running rows of ``x_{t+1}`` copied into that buffer.

One parallel region per step: its end is the step's only barrier, where h_t
becomes whole.

Row blocks (``plan.block_rows``, for small H): one slice holds all H units,
and the batch is cut into blocks of rows, dealt to the threads so that each
gets long and short sequences (:func:`block_schedule`). A block's h_t needs
nothing from the other blocks, so each block runs all its steps inside one parallel region
(:func:`_forward_row_blocks`, :func:`_backward_row_blocks`), with no barrier
between steps, as the ``"tiles"`` path's row groups do. The step code is the
same (:func:`_forward_slice_step` and :func:`_backward_slice_product` take
the rows they run).

Backward, step t, slice s (mirrored): the product of step t+1,
``[dx_{t+1} | dh_t] = dz_{t+1} [W_ih | W_hh]``, for the slice's dh columns
``j0:j1`` (and a share of the I dx columns), then the gate backward of step t
for units ``j0:j1``, which needs exactly those dh columns. The dz of step t
is whole at the region's end, the step's one barrier. The weight gradients
follow as products over all steps (:mod:`.weight_grads`).

Each product comes from one of two micro-kernels, chosen per call:

- ``add_products`` (numba loops): every element is summed over k in the same
  order as on the ``"serial"`` and ``"tiles"`` paths, so the results are
  bitwise those paths' results;
- MKL's sequential ``?gemm`` (:mod:`.mkl`, an optional extra), called from
  numba's threads on the slice's aligned operands. Its order of summation is
  MKL's, fixed for a given shape: each slice's product has the same shape
  whatever the thread count, so results do not depend on it.

Padded steps: only the running rows (``n_active[t]``, the batch being sorted
by length) enter a product; a row's x is copied in only while it runs, so a
NaN in a padded x never reaches any result.
"""
import functools

import numba
import numpy as np
from numba import prange

from .._batch import running_rows
from . import mkl, workspace
from ._jit import kernel
from .config import config
from .elementwise import TRANSPOSE_ROWS, copy_row, transpose_rows, zero_row
from .matmul import add_products
from .step import activate_tile, clear_padded, gates_backward_tile, store_tile
from .weight_grads import weight_grads_mkl, weight_grads_numba


@kernel(parallel=True)
def _pack_forward(W_ih, W_hh, b, units, Wf, bf):
    """Fill ``Wf`` and ``bf`` (see :func:`pack_forward`): transposing copies in blocks of rows.

    A task is (slice, block of :data:`elementwise.TRANSPOSE_ROWS` rows of
    ``Wf``). Element by element the packing read a cache line of W per
    element; NumPy's copies took several times as long as these blocks on
    two threads (docs/performance.md#packing-blocked).
    """
    I = W_ih.shape[1]
    H = W_hh.shape[1]
    S = Wf.shape[0]
    per_slice = -(-(I + H) // TRANSPOSE_ROWS)
    for task in prange(S * per_slice):
        s = task // per_slice
        k0 = (task % per_slice) * TRANSPOSE_ROWS
        k1 = min(I + H, k0 + TRANSPOSE_ROWS)
        j0 = s * units
        w = min(H, j0 + units) - j0
        for q in range(4):
            cols = Wf[s, :, q * w:(q + 1) * w]
            transpose_rows(W_ih[q * H + j0:q * H + j0 + w], cols[:I], min(k0, I), min(k1, I))
            transpose_rows(W_hh[q * H + j0:q * H + j0 + w], cols[I:], max(k0, I) - I,
                           max(k1, I) - I)
            if k0 == 0:
                copy_row(bf[s, q * w:(q + 1) * w], b[q * H + j0:q * H + j0 + w])


def pack_forward(W_ih, W_hh, b, units):
    """``Wf`` (S, I + H, 4u) and ``bf`` (S, 4u): each slice's rows of ``[W_ih; W_hh]^T`` and ``b``.

    Slice s covers units ``s*u : min(H, (s+1)*u)``; its width w gives the
    columns ``q*w : (q+1)*w`` to gate q of (i, f, g, o). Both are scratch
    (:func:`workspace.scratch`, 64-byte aligned); columns past ``4w`` are
    undefined.
    """
    H4, I = W_ih.shape
    H = H4 // 4
    S = -(-H // units)
    Wf = workspace.scratch("slices_Wf", (S, I + H, 4 * units), W_ih.dtype)
    bf = workspace.scratch("slices_bf", (S, 4 * units), W_ih.dtype)
    _pack_forward(W_ih, W_hh, b, units, Wf, bf)
    return Wf, bf


@kernel
def dx_columns(I, S, s):
    """The dx columns ``k0:k1`` that slice s computes in the backward step's product."""
    return s * I // S, (s + 1) * I // S


@kernel(parallel=True)
def _pack_backward(W_ih, W_hh, units, Wb):
    """Fill ``Wb`` (see :func:`pack_backward`), its rows spread over numba's threads."""
    I = W_ih.shape[1]
    H = W_hh.shape[1]
    S = Wb.shape[0]
    H4 = W_ih.shape[0]
    for task in prange(S * H4):
        s = task // H4
        r = task % H4
        k0, k1 = dx_columns(I, S, s)
        j0 = s * units
        j1 = min(H, j0 + units)
        out = Wb[s, r]
        copy_row(out[:k1 - k0], W_ih[r, k0:k1])
        copy_row(out[k1 - k0:k1 - k0 + j1 - j0], W_hh[r, j0:j1])


def pack_backward(W_ih, W_hh, units):
    """``Wb`` (S, 4H, I_s + u): each slice's columns of ``[W_ih | W_hh]`` (its dx share, its units).

    Scratch (:func:`workspace.scratch`, 64-byte aligned); columns past a
    slice's own are undefined.
    """
    H4, I = W_ih.shape
    H = H4 // 4
    S = -(-H // units)
    widest = -(-I // S)                   # the widest share of dx_columns
    Wb = workspace.scratch("slices_Wb", (S, H4, widest + units), W_ih.dtype)
    _pack_backward(W_ih, W_hh, units, Wb)
    return Wb


@kernel
def _forward_slice_step(t, s, units, r0, r1, r_next, x, xh, xh_out, Wf, bf, zbuf, c_state,
                        y, gates, cells, keep_cache, last_step, h_n, c_n, gemm_ptr, order):
    """Step t for slice s and the rows ``r0:r1`` running at t (``r0:r_next`` at t+1).

    Its product, its gates and cell update, and its share of those rows of
    x_{t+1}. Sorted row r is row ``order[r]`` of x and y.
    """
    T, _, I = x.shape
    S = Wf.shape[0]
    H = c_state.shape[1]
    j0 = s * units
    j1 = min(H, j0 + units)
    w = j1 - j0
    first = np.int64(0)    # typed, not a literal 0: see _jit.py, "Literal arguments"
    z = zbuf[s]
    b = bf[s][:4 * w]
    for r in range(r0, r1):
        copy_row(z[r][:4 * w], b)                               # z = b
    if gemm_ptr != 0:                                           # z += [x_t | h_{t-1}] Wf_s
        mkl.gemm(gemm_ptr, xh[r0:r1], Wf[s][:, :4 * w], z[r0:r1, :4 * w], 1.0)
    else:
        add_products(xh, Wf[s], z, r0, r1, first, 4 * w)
    for r in range(r0, r1):
        zr = z[r][:4 * w]
        c_row = c_state[r]
        h_row = xh_out[r][I:]
        activate_tile(zr, first, w, c_row[j0:j1], h_row[j0:j1])
        store_tile(t, r, order[r], j0, j1, h_row, c_row, y, cells, keep_cache, last_step, h_n,
                    c_n)
        if keep_cache:
            g = gates[t, r]
            for q in range(4):
                copy_row(g[q * H + j0:q * H + j1], zr[q * w:(q + 1) * w])
    if t + 1 < T:                              # only running rows: a padded x never enters
        n_next = r_next - r0
        for r in range(r0 + s * n_next // S, r0 + (s + 1) * n_next // S):
            copy_row(xh_out[r][:I], x[t + 1, order[r]])


@kernel(parallel=True)
def _forward_slices(x, Wf, bf, units, n_active, last_step, xh_prev, xh_next, zbuf, c_state,
                    y, gates, cells, keep_cache, h_n, c_n, gemm_ptr, order):
    """All T steps, one parallel region over the slices per step.

    ``xh_prev`` holds ``[x_0 | h0]`` for the rows running at step 0; ``zbuf``
    (S, B, 4u) is each slice's z; the other arguments are those of
    ``forward._recurrence_tiles``, ``gemm_ptr`` is MKL's ``?gemm`` or 0, and
    sorted row r is row ``order[r]`` of x and y.
    """
    T, B, _ = x.shape
    S = Wf.shape[0]
    first = np.int64(0)
    swapped = False
    for t in range(T):
        n = n_active[t]
        n_next = n_active[t + 1] if t + 1 < T else 0
        xh = xh_next if swapped else xh_prev
        xh_out = xh_prev if swapped else xh_next
        for s in prange(S):
            _forward_slice_step(t, s, units, first, n, n_next, x, xh, xh_out, Wf, bf, zbuf,
                                c_state, y, gates, cells, keep_cache, last_step, h_n, c_n,
                                gemm_ptr, order)
        _zero_ended_rows_of(t, n, B, y, order)
        swapped = not swapped


@kernel
def _zero_ended_rows_of(t, r0, r1, y, order):
    """Sorted rows r0:r1 have ended before step t: their y_t (row ``order[r]`` of y) is exactly 0."""
    for r in range(r0, r1):
        zero_row(y[t, order[r]])


@kernel
def _block_end(n_running, r0, r1):
    """The end of block ``r0:r1``'s running rows when rows ``0:n_running`` run (r0 if none)."""
    return min(max(n_running, r0), r1)


@kernel
def _forward_block(r0, r1, x, Wf, bf, n_active, last_step, xh_prev, xh_next, zbuf, c_state, y,
                   gates, cells, keep_cache, h_n, c_n, gemm_ptr, order):
    """All T steps of batch rows ``r0:r1`` with one slice of all H units."""
    T = x.shape[0]
    H = c_state.shape[1]
    first = np.int64(0)
    swapped = False
    for t in range(T):
        n = _block_end(n_active[t], r0, r1)
        n_next = _block_end(n_active[t + 1], r0, r1) if t + 1 < T else r0
        xh = xh_next if swapped else xh_prev
        xh_out = xh_prev if swapped else xh_next
        _forward_slice_step(t, first, H, r0, n, n_next, x, xh, xh_out, Wf, bf, zbuf, c_state,
                            y, gates, cells, keep_cache, last_step, h_n, c_n, gemm_ptr, order)
        _zero_ended_rows_of(t, n, r1, y, order)
        swapped = not swapped


@kernel(parallel=True)
def _forward_row_blocks(x, Wf, bf, rows, schedule, n_active, last_step, xh_prev, xh_next, zbuf,
                        c_state, y, gates, cells, keep_cache, h_n, c_n, gemm_ptr, order):
    """All T steps with one slice of all H units, per block of ``rows`` batch rows.

    A block's rows need nothing from the other blocks' rows, so each block
    runs all its steps inside one parallel region, with no barrier between
    steps: a thread that loses its core delays only its own blocks. Worker w
    runs the blocks ``schedule[w]`` (-1: none; :func:`block_schedule`). The
    blocks depend on B and H only, never on the thread count, and which
    thread runs a block does not change its results. Arguments as for
    :func:`_forward_slices` with ``Wf``, ``bf`` and ``zbuf`` of one slice.
    """
    B = x.shape[1]
    for w in prange(schedule.shape[0]):
        for k in schedule[w]:
            if k >= 0:
                _forward_block(k * rows, min(B, (k + 1) * rows), x, Wf, bf, n_active, last_step,
                               xh_prev, xh_next, zbuf, c_state, y, gates, cells, keep_cache,
                               h_n, c_n, gemm_ptr, order)


def block_schedule(B, rows):
    """Which blocks of ``rows`` rows each of numba's threads runs: (workers, per worker), -1 padded.

    The batch is sorted by length, so block k's rows are longer than block
    k+1's. Blocks are dealt in a snake order (thread 0 takes blocks 0 and
    2W-1, thread 1 blocks 1 and 2W-2, ...), so that every thread gets long
    and short blocks alike and, with lengths, the threads finish together.
    The array is shared between calls (read it, do not write it).
    """
    return _block_schedule(B, rows, numba.get_num_threads())


@functools.lru_cache(maxsize=64)
def _block_schedule(B, rows, threads):
    """:func:`block_schedule` for ``threads`` of numba's threads, computed once per sizes."""
    blocks = -(-B // rows)
    workers = max(1, min(threads, blocks))
    rounds = -(-blocks // workers)
    schedule = np.full((workers, rounds), -1, np.int64)
    for k in range(blocks):
        r, w = divmod(k, workers)
        schedule[w if r % 2 == 0 else workers - 1 - w, r] = k
    return schedule


@kernel
def _backward_slice_product(t, s, units, r0, r1, dZ, Wb, buf, dxh, dx, gemm_ptr):
    """``[dx_t | dh_{t-1}]`` for slice s's columns and rows ``r0:r1``: ``dz_t Wb_s``."""
    I = dx.shape[2]
    H = dxh.shape[1] - I
    S = Wb.shape[0]
    k0, k1 = dx_columns(I, S, s)
    j0 = s * units
    j1 = min(H, j0 + units)
    cols = k1 - k0 + j1 - j0
    first = np.int64(0)    # typed, not a literal 0: see _jit.py, "Literal arguments"
    out = buf[s]
    if gemm_ptr != 0:
        mkl.gemm(gemm_ptr, dZ[t][r0:r1], Wb[s][:, :cols], out[r0:r1, :cols], 0.0)
    else:
        for r in range(r0, r1):
            zero_row(out[r][:cols])
        add_products(dZ[t], Wb[s], out, r0, r1, first, cols)
    for r in range(r0, r1):
        o = out[r]
        copy_row(dx[t, r][k0:k1], o[:k1 - k0])
        copy_row(dxh[r][I + j0:I + j1], o[k1 - k0:cols])


@kernel(parallel=True)
def _backward_slices(gates, cells, h0, c0, dy, Wb, units, n_active, dxh, dc, dZ, h_prev, dx,
                     buf, gemm_ptr):
    """Walk the steps backwards, one parallel region per step; fills dZ, h_prev, dx, dxh, dc.

    Region t: slice s makes step t+1's product for its columns (its units'
    dL/dh_t and a share of dx_{t+1}), then step t's gate backward for its
    units. A last region makes step 0's product (dL/dh0 and dx_0). Arguments
    as for ``backward._recurrence_backward_tiles``; ``Wb`` (S, 4H, I_s + u)
    from :func:`pack_backward`, ``buf`` (S, B, I_s + u) the products' scratch.
    """
    T, B, H4 = gates.shape
    H = H4 // 4
    I = dx.shape[2]
    S = Wb.shape[0]
    first = np.int64(0)
    for t in range(T - 1, -1, -1):
        n = n_active[t]
        for s in prange(S):
            if t + 1 < T:
                _backward_slice_product(t + 1, s, units, first, n_active[t + 1], dZ, Wb, buf,
                                        dxh, dx, gemm_ptr)
            j0 = s * units
            j1 = min(H, j0 + units)
            for r in range(n):
                gates_backward_tile(t, r, j0, j1, gates, cells, h0, c0, dy, dxh, I, dc, dZ,
                                     h_prev)
        clear_padded(t, n, B, dZ, h_prev, dx)
    for s in prange(S):
        _backward_slice_product(first, s, units, first, n_active[0], dZ, Wb, buf, dxh, dx,
                                gemm_ptr)


@kernel
def _backward_block(r0, r1, gates, cells, h0, c0, dy, Wb, n_active, dxh, dc, dZ, h_prev, dx, buf,
                    gemm_ptr):
    """All T steps backwards of batch rows ``r0:r1`` with one slice of all H units."""
    T, _, H4 = gates.shape
    H = H4 // 4
    I = dx.shape[2]
    first = np.int64(0)
    for t in range(T - 1, -1, -1):
        n = _block_end(n_active[t], r0, r1)
        if t + 1 < T:
            _backward_slice_product(t + 1, first, H, r0, _block_end(n_active[t + 1], r0, r1), dZ,
                                    Wb, buf, dxh, dx, gemm_ptr)
        for r in range(r0, n):
            gates_backward_tile(t, r, first, H, gates, cells, h0, c0, dy, dxh, I, dc, dZ, h_prev)
        clear_padded(t, n, r1, dZ, h_prev, dx)
    _backward_slice_product(first, first, H, r0, _block_end(n_active[0], r0, r1), dZ, Wb, buf,
                            dxh, dx, gemm_ptr)


@kernel(parallel=True)
def _backward_row_blocks(gates, cells, h0, c0, dy, Wb, rows, schedule, n_active, dxh, dc, dZ,
                         h_prev, dx, buf, gemm_ptr):
    """Walk the steps backwards with one slice of all H units, per block of ``rows`` batch rows.

    The mirror of :func:`_forward_row_blocks` (the same blocks and schedule):
    each block walks all its steps inside one parallel region, with no
    barrier between steps. Arguments as for :func:`_backward_slices` with
    ``Wb`` and ``buf`` of one slice.
    """
    B = gates.shape[1]
    for w in prange(schedule.shape[0]):
        for k in schedule[w]:
            if k >= 0:
                _backward_block(k * rows, min(B, (k + 1) * rows), gates, cells, h0, c0, dy, Wb,
                                n_active, dxh, dc, dZ, h_prev, dx, buf, gemm_ptr)


@functools.lru_cache(maxsize=64)
def _identity(B):
    """``arange(B)`` (int64), shared between calls: read it, do not write it."""
    return np.arange(B, dtype=np.int64)


def _gemm_ptr(dtype, route):
    """MKL's ``?gemm`` address for ``route`` ("auto", "mkl", "numba"), or 0 for the numba loops."""
    if route == "numba":
        return 0
    ptr = mkl.gemm_address(np.dtype(dtype))
    if route == "mkl" and ptr == 0:
        raise RuntimeError(f"nblstm.cpu.config.slices_gemm='mkl' but {mkl.describe()}")
    return ptr


def _forward_operands(x, W_ih, W_hh, b, h0, c0, lengths, y, h_n, c_n, gates, cells, units, order):
    """``(Wf, bf, rest)``: the packed weights and the arguments after the sizes of the forward kernels.

    ``rest`` ends the arguments of ``_forward_slices`` and ``_forward_row_blocks``.

    ``order`` (or None, the identity): the kernels read x and write y at row
    ``order[r]`` for sorted row r, so a batch that needed sorting is neither
    copied in nor out.
    """
    T, B, I = x.shape
    H = W_hh.shape[1]
    n_active = running_rows(lengths, T)
    keep_cache = gates is not None
    dtype = x.dtype
    Wf, bf = pack_forward(W_ih, W_hh, b, units)
    xh_prev = workspace.scratch("slices_xh_prev", (B, I + H), dtype)
    xh_next = workspace.scratch("slices_xh_next", (B, I + H), dtype)
    order = _identity(B) if order is None else np.ascontiguousarray(order, dtype=np.int64)
    n0 = n_active[0]
    xh_prev[:n0, :I] = x[0, order[:n0]]
    xh_prev[:, I:] = h0
    zbuf = workspace.scratch("slices_z", (Wf.shape[0], B, 4 * units), dtype)
    c_state = np.array(c0, order="C")
    empty = np.empty((0, 0, 0), dtype)
    return Wf, bf, (n_active, lengths - 1, xh_prev, xh_next, zbuf, c_state, y,
                    gates if keep_cache else empty, cells if keep_cache else empty, keep_cache,
                    h_n, c_n, _gemm_ptr(dtype, config.slices_gemm), order)


def forward_slices(x, W_ih, W_hh, b, h0, c0, lengths, y, h_n, c_n, gates, cells, p, order=None):
    """The ``"slices"`` driver: slices of ``p.units`` units (``plan.slice_units``), a barrier every step.

    The arguments of :func:`nblstm.cpu.layers.forward_layer`, with T and B
    positive, ``h_n`` and ``c_n`` holding h0 and c0, and the layer's
    :class:`nblstm.cpu.plan.Plan` ``p``; ``order`` as for
    :func:`_forward_operands`.
    """
    Wf, bf, rest = _forward_operands(x, W_ih, W_hh, b, h0, c0, lengths, y, h_n, c_n, gates, cells,
                                     p.units, order)
    _forward_slices(x, Wf, bf, p.units, *rest)


def forward_row_blocks(x, W_ih, W_hh, b, h0, c0, lengths, y, h_n, c_n, gates, cells, p,
                       order=None):
    """The ``"slice_row_blocks"`` driver: one slice of all H units, blocks of ``p.rows`` rows, no barrier.

    Arguments as for :func:`forward_slices` (``p.units`` is H; ``plan.block_rows``).
    """
    Wf, bf, rest = _forward_operands(x, W_ih, W_hh, b, h0, c0, lengths, y, h_n, c_n, gates, cells,
                                     p.units, order)
    _forward_row_blocks(x, Wf, bf, p.rows, block_schedule(x.shape[1], p.rows), *rest)


def _backward(x, W_ih, W_hh, lengths, gates, dy, dh_n, dc_n, dx, dW_ih, dW_hh, db, dh0, dc0,
              units, steps):
    """Run ``steps`` and the weight gradients of a ``"slices"`` driver.

    ``steps(dy, Wb, rest)`` calls ``_backward_slices`` or
    ``_backward_row_blocks`` with ``Wb``, the backward's weights packed in
    slices of ``units``, and ``rest``, the arguments after the sizes.
    """
    T, B, I = x.shape
    H = W_hh.shape[1]
    dc0[...] = dc_n
    n_active = running_rows(lengths, T)
    # dZ is an operand of MKL's products: aligned, so that its order of sums stays fixed
    dZ = workspace.scratch("dZ", (T, B, 4 * H), gates.dtype)
    h_prev = workspace.scratch("h_prev", (T, B, H), gates.dtype)
    dxh = workspace.scratch("slices_dxh", (B, I + H), dh0.dtype)
    dxh[:, I:] = dh_n
    gemm_ptr = _gemm_ptr(gates.dtype, config.slices_gemm)
    if T > 0 and B > 0:
        Wb = pack_backward(W_ih, W_hh, units)
        buf = workspace.scratch("slices_products", (Wb.shape[0], B, Wb.shape[2]), gates.dtype)
        # typed contiguous, the gate loops vectorise (docs/performance.md#contiguous-dy)
        steps(np.ascontiguousarray(dy), Wb, (n_active, dxh, dc0, dZ, h_prev, dx, buf, gemm_ptr))
    dh0[...] = dxh[:, I:]
    dZ_flat = dZ.reshape(T * B, 4 * H)
    x_flat = workspace.scratch("slices_x", (T * B, I), x.dtype)   # an aligned MKL operand
    x_flat.reshape(T, B, I)[...] = x
    with np.errstate(all="ignore"):
        np.sum(dZ_flat, axis=0, out=db)                          # db = Σ_t dz_t
        if gemm_ptr != 0:
            weight_grads_mkl(dZ_flat, x_flat, h_prev.reshape(T * B, H), n_active, B, dW_ih, dW_hh,
                             gemm_ptr)
        else:
            weight_grads_numba(dZ_flat, x_flat, h_prev.reshape(T * B, H), n_active, B, dW_ih, dW_hh)


def backward_slices(x, W_ih, W_hh, h0, c0, lengths, gates, cells, dy, dh_n, dc_n,
                    dx, dW_ih, dW_hh, db, dh0, dc0, p):
    """The ``"slices"`` driver of the backward: slices of ``p.units`` units, a barrier every step.

    The arguments of :func:`nblstm.cpu.layers.backward_layer` and the
    layer's :class:`nblstm.cpu.plan.Plan` ``p``.
    """
    _backward(x, W_ih, W_hh, lengths, gates, dy, dh_n, dc_n, dx, dW_ih, dW_hh, db, dh0, dc0,
              p.units,
              lambda dy, Wb, rest: _backward_slices(gates, cells, h0, c0, dy, Wb, p.units, *rest))


def backward_row_blocks(x, W_ih, W_hh, h0, c0, lengths, gates, cells, dy, dh_n, dc_n,
                        dx, dW_ih, dW_hh, db, dh0, dc0, p):
    """The ``"slice_row_blocks"`` driver of the backward: blocks of ``p.rows`` rows, no barrier.

    Arguments as for :func:`backward_slices` (``p.units`` is H).
    """
    schedule = block_schedule(x.shape[1], p.rows)
    _backward(x, W_ih, W_hh, lengths, gates, dy, dh_n, dc_n, dx, dW_ih, dW_hh, db, dh0, dc0,
              p.units,
              lambda dy, Wb, rest: _backward_row_blocks(gates, cells, h0, c0, dy, Wb, p.rows,
                                                        schedule, *rest))
