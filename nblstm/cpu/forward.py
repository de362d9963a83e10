"""CPU forward pass of one LSTM layer (forward direction, batch sorted by length).

Structure, as the fast LSTM implementations do it:

1. the input projection ``Z_x = X W_ih^T + b`` for a chunk of time steps as one
   BLAS matrix product (``_project_chunk``);
2. a serial loop over the steps of the chunk, each step adding the recurrent
   term ``W_hh h_{t-1}`` and applying the fused gate and cell update, in one of
   three ways (``path``, chosen by size in ``nblstm.cpu.choose_path``):

   - ``"serial"``: the whole step in one loop on the calling thread (small
     sizes, where starting threads every step would cost more than the step);
   - ``"tiles"``: one parallel region per step over tiles of (batch row, block
     of hidden units), each summing ``W_hh h_{t-1}`` itself;
   - ``"blas"``: one BLAS product per step for all rows, then the element-wise
     update on the calling thread (large sizes, where the product dominates).

   BLAS is never called inside a parallel region: numba's and BLAS's worker
   threads would then wait on each other at every step (numba issue 6933).
   Every path sums ``W_hh h_{t-1}`` per element in an order that depends only on
   the sizes, so results do not depend on the thread count.
"""
import numpy as np
from numba import prange

from .._jit import kernel
from ._blas import gemm
from ._gates import sigmoid, tanh


@kernel
def _step_tile(z, r, j0, j1, hp, W_hhT, rec, use_rec, c_state, h_out):
    """One step of the recurrence for hidden units ``j0:j1`` of batch row ``r``.

    Adds ``W_hh h_{t-1}`` to ``z`` (from ``rec`` if ``use_rec``, else summed over
    ``k`` in a fixed order, so the result does not depend on the tiling), turns
    ``z`` into the activations ``[i f g o]`` in place and updates ``c_state[r]``
    and ``h_out[r]`` for those units.

    Every loop runs over a slice from index 0: numba then knows no index is
    negative, drops its wrap-around check and LLVM vectorises the loop.
    """
    H = c_state.shape[1]
    m = j1 - j0
    if use_rec:
        for q in range(4):
            zq = z[q * H + j0:q * H + j1]
            rq = rec[r, q * H + j0:q * H + j1]
            for j in range(m):
                zq[j] += rq[j]
    elif m == H:                                           # whole row: one axpy over 4H
        for k in range(H):                                 # z += W_hh h_{t-1}, k in fixed order
            hk = hp[r, k]
            w = W_hhT[k]
            for j in range(4 * H):
                z[j] += w[j] * hk
    else:
        for k in range(H):
            hk = hp[r, k]
            for q in range(4):
                zq = z[q * H + j0:q * H + j1]
                wq = W_hhT[k, q * H + j0:q * H + j1]
                for j in range(m):
                    zq[j] += wq[j] * hk
    i = z[j0:j1]
    f = z[H + j0:H + j1]
    g = z[2 * H + j0:2 * H + j1]
    o = z[3 * H + j0:3 * H + j1]
    # activations in place, one gate block at a time: loops over one array vectorise
    for j in range(m):
        i[j] = sigmoid(i[j])                               # i = σ(z_i)
    for j in range(m):
        f[j] = sigmoid(f[j])                               # f = σ(z_f)
    for j in range(m):
        g[j] = tanh(g[j])                                  # g = tanh(z_g)
    for j in range(m):
        o[j] = sigmoid(o[j])                               # o = σ(z_o)
    c = c_state[r, j0:j1]
    h = h_out[r, j0:j1]
    for j in range(m):
        c[j] = f[j] * c[j] + i[j] * g[j]                   # c_t = f ⊙ c_{t-1} + i ⊙ g
    for j in range(m):
        h[j] = o[j] * tanh(c[j])                           # h_t = o ⊙ tanh(c_t)


@kernel
def _store_tile(t, r, j0, j1, h_row, c_row, y, cells, keep_cache, last_step, h_n, c_n):
    """Write step t's h (and c) of row r, units j0:j1, to y, the cache and the final state."""
    y[t, r, j0:j1] = h_row[j0:j1]
    if keep_cache:
        cells[t, r, j0:j1] = c_row[j0:j1]
    if last_step[r] == t:
        h_n[r, j0:j1] = h_row[j0:j1]
        c_n[r, j0:j1] = c_row[j0:j1]


@kernel
def _zero_finished_rows(t, n, y):
    """Rows n.. have ended before step t: their y_t is exactly 0."""
    for r in range(n, y.shape[1]):
        y[t, r, :] = 0


@kernel(parallel=True)
def _recurrence_tiles(zx, t0, W_hhT, n_active, last_step, h_prev, h_next, c_state,
                      y, h_n, c_n, cells, keep_cache, unit_block):
    """Run steps ``t0 .. t0 + len(zx) - 1``, each step one parallel region over tiles.

    A tile is (batch row, block of ``unit_block`` hidden units); there is no BLAS
    call in here, so numba's threads never wait on BLAS's.

    Parameters
    ----------
    zx : ndarray, shape (Tc, B, 4H)
        ``W_ih x_t + b`` for the chunk's steps; overwritten with the gate
        activations ``[i f g o]`` (which are the cache when ``zx`` is a slice
        of ``gates``).
    t0 : int
        Time index of ``zx[0]``.
    W_hhT : ndarray, shape (H, 4H)
        Transposed recurrent weights (contiguous rows for the axpy loop).
    n_active : ndarray of int64, shape (T,)
        Running rows per step (rows ``0 .. n_active[t]-1``).
    last_step : ndarray of int64, shape (B,)
        ``lengths - 1``: the step after which a row's state is final.
    h_prev, h_next : ndarray, shape (B, H)
        Double buffer for h; ``h_prev`` holds h_{t0-1} on entry. Swapped each step.
    c_state : ndarray, shape (B, H)
        c_{t0-1} on entry, updated in place.
    y : ndarray, shape (T, B, H)
        Output, written at steps ``t0 ..``: h_t for running rows, 0 for the rest.
    h_n, c_n : ndarray, shape (B, H)
        Written for the rows whose last step is in this chunk.
    cells : ndarray, shape (T, B, H)
        c_t for the cache (only written when ``keep_cache``).
    unit_block : int
        Hidden units per tile.

    Returns
    -------
    bool
        Whether the final h is in ``h_prev`` (False) or ``h_next`` (True).
    """
    steps, _, H4 = zx.shape
    H = H4 // 4
    n_unit_blocks = (H + unit_block - 1) // unit_block
    swapped = False
    for s in range(steps):
        t = t0 + s
        n = n_active[t]
        hp = h_next if swapped else h_prev
        hn = h_prev if swapped else h_next
        for tile in prange(n * n_unit_blocks):
            r = tile // n_unit_blocks
            j0 = (tile % n_unit_blocks) * unit_block
            j1 = min(j0 + unit_block, H)
            # use_rec=False: the rec argument is never read, hp only fills its slot
            _step_tile(zx[s, r], r, j0, j1, hp, W_hhT, hp, False, c_state, hn)
            _store_tile(t, r, j0, j1, hn[r], c_state[r], y, cells, keep_cache, last_step, h_n, c_n)
        _zero_finished_rows(t, n, y)
        swapped = not swapped
    return swapped


@kernel
def _recurrence_serial(zx, t0, W_hhT, n_active, last_step, h_prev, h_next, c_state,
                       y, h_n, c_n, cells, keep_cache, use_blas, rec):
    """The same steps as ``_recurrence_tiles`` on the calling thread only.

    With ``use_blas`` the recurrent term of all rows is one BLAS product per step
    into ``rec`` (shape (B, 4H)), and BLAS's own threads are the parallelism;
    without it (small sizes) the whole step is one loop, with no thread start-up
    at all. Arguments as for ``_recurrence_tiles``.
    """
    steps, _, H4 = zx.shape
    H = H4 // 4
    swapped = False
    for s in range(steps):
        t = t0 + s
        n = n_active[t]
        hp = h_next if swapped else h_prev
        hn = h_prev if swapped else h_next
        if use_blas and n > 0:
            np.dot(hp[:n], W_hhT, rec[:n])                 # W_hh h_{t-1} for all rows
        for r in range(n):
            _step_tile(zx[s, r], r, 0, H, hp, W_hhT, rec, use_blas, c_state, hn)
            _store_tile(t, r, 0, H, hn[r], c_state[r], y, cells, keep_cache, last_step, h_n, c_n)
        _zero_finished_rows(t, n, y)
        swapped = not swapped
    return swapped


def _project_chunk(x, W_ihT, b, t0, t1, out):
    """out = x[t0:t1] W_ih^T + b as one matrix product: (Tc*B, I) x (I, 4H)."""
    T, B, I = x.shape
    flat = out.reshape((t1 - t0) * B, -1)
    # x may be a strided view of the caller's array (inference): copy just this chunk
    gemm(np.ascontiguousarray(x[t0:t1]).reshape(-1, I), W_ihT, flat)
    flat += b


def forward_layer(x, W_ih, W_hh, b, h0, c0, lengths, y, h_n, c_n, gates, cells,
                  *, path, unit_block, chunk_elements):
    """One forward-direction layer; see docs/backends.md for the contract.

    Parameters
    ----------
    x : ndarray, shape (T, B, I)
        Input, batch sorted by length (descending); any strides.
    W_ih, W_hh, b : ndarray, shapes (4H, I), (4H, H), (4H,)
        Layer weights.
    h0, c0 : ndarray, shape (B, H)
        Initial state.
    lengths : ndarray of int64, shape (B,)
        Non-increasing valid lengths.
    y : ndarray, shape (T, B, H)
        Output (may be a strided view).
    h_n, c_n : ndarray, shape (B, H)
        Final-state outputs.
    gates : ndarray, shape (T, B, 4H), or None
        Cache of the gate activations (None for inference).
    cells : ndarray, shape (T, B, H), or None
        Cache of the cell states (None for inference).
    path : {"serial", "tiles", "blas"}
        How a step runs: one loop on the calling thread, parallel tiles, or a
        BLAS product plus a serial element-wise loop (see ``nblstm.cpu.choose_path``).
    unit_block : int
        Hidden units per parallel tile (``path="tiles"``).
    chunk_elements : int
        Bound on the inference projection buffer (elements); the training
        path projects straight into ``gates``.
    """
    T, B, _ = x.shape
    H = W_hh.shape[1]
    h_n[...] = h0
    c_n[...] = c0
    if T == 0 or B == 0:
        return
    W_ihT = W_ih.T
    # the loops of the other paths want contiguous rows of W_hh^T; BLAS takes the
    # transposed view as it is, so the blas path skips the copy (5% of a mid-size call)
    W_hhT = W_hh.T if path == "blas" else np.ascontiguousarray(W_hh.T)
    # rows with lengths > t, i.e. -lengths < -t, are a prefix of the sorted batch
    n_active = np.searchsorted(-lengths, -np.arange(T), side="left").astype(np.int64)
    last_step = lengths - 1
    h_prev = np.array(h0, order="C")
    h_next = np.empty_like(h_prev)
    c_state = np.array(c0, order="C")
    use_blas = path == "blas"
    rec = np.empty((B, 4 * H), x.dtype) if use_blas else np.empty((0, 4 * H), x.dtype)
    keep_cache = gates is not None
    if keep_cache:
        chunk = T
        cells_out = cells
    else:
        chunk = max(1, min(T, chunk_elements // max(1, B * 4 * H)))
        buffer = np.empty((chunk, B, 4 * H), x.dtype)
        cells_out = np.empty((0, 0, 0), x.dtype)
    for t0 in range(0, T, chunk):
        t1 = min(T, t0 + chunk)
        zx = gates[t0:t1] if keep_cache else buffer[:t1 - t0]
        _project_chunk(x, W_ihT, b, t0, t1, zx)
        if path == "tiles":
            swapped = _recurrence_tiles(zx, t0, W_hhT, n_active, last_step, h_prev, h_next,
                                        c_state, y, h_n, c_n, cells_out, keep_cache, unit_block)
        else:
            swapped = _recurrence_serial(zx, t0, W_hhT, n_active, last_step, h_prev, h_next,
                                         c_state, y, h_n, c_n, cells_out, keep_cache, use_blas, rec)
        if swapped:
            h_prev, h_next = h_next, h_prev
