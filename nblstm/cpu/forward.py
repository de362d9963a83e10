"""CPU forward pass of one LSTM layer (forward direction, batch sorted by length).

Structure, as the fast LSTM implementations do it:

1. the input projection ``Z_x = X W_ih^T + b`` for a chunk of time steps as one
   BLAS matrix product (``_project_chunk``);
2. a serial loop over the steps of the chunk; each step is one parallel region
   over tiles of (batch row, block of hidden units) that adds the recurrent
   term ``W_hh h_{t-1}`` and applies the fused gate and cell update for those
   units (``_recurrence``). Every tile sums ``W_hh h_{t-1}`` over ``k`` in the
   same order, so the result does not depend on the tiling or thread count.

For large ``B*H`` the recurrent term is one BLAS product per step instead
(``use_blas``), after which the tiles only do the element-wise update.
"""
import numpy as np
from numba import prange

from .._jit import kernel
from ._gates import sigmoid, tanh


@kernel(parallel=True)
def _recurrence(zx, t0, W_hhT, n_active, last_step, h_prev, h_next, c_state,
                y, h_n, c_n, cells, keep_cache, use_blas, rec, unit_block):
    """Run steps ``t0 .. t0 + len(zx) - 1`` of the recurrence.

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
    use_blas : bool
        Take ``W_hh h_{t-1}`` from one BLAS product into ``rec`` per step.
    rec : ndarray, shape (B, 4H)
        Workspace for ``use_blas``.
    unit_block : int
        Hidden units per tile.

    Returns
    -------
    bool
        Whether the final h is in ``h_prev`` (False) or ``h_next`` (True).
    """
    steps, B, H4 = zx.shape
    H = H4 // 4
    n_unit_blocks = (H + unit_block - 1) // unit_block
    swapped = False
    for s in range(steps):
        t = t0 + s
        n = n_active[t]
        hp = h_next if swapped else h_prev
        hn = h_prev if swapped else h_next
        if use_blas and n > 0:
            np.dot(hp[:n], W_hhT, rec[:n])                    # W_hh h_{t-1} for all rows
        for tile in prange(n * n_unit_blocks):
            r = tile // n_unit_blocks
            j0 = (tile % n_unit_blocks) * unit_block
            j1 = min(j0 + unit_block, H)
            z = zx[s, r]
            if use_blas:
                for q in range(4):
                    for j in range(j0, j1):
                        z[q * H + j] += rec[r, q * H + j]
            else:
                for k in range(H):                             # z += W_hh h_{t-1}, k in fixed order
                    hk = hp[r, k]
                    w = W_hhT[k]
                    for q in range(4):
                        for j in range(q * H + j0, q * H + j1):
                            z[j] += w[j] * hk
            # activations in place, one gate block at a time: loops over one array vectorise
            for j in range(j0, j1):
                z[j] = sigmoid(z[j])                           # i = σ(z_i)
            for j in range(H + j0, H + j1):
                z[j] = sigmoid(z[j])                           # f = σ(z_f)
            for j in range(2 * H + j0, 2 * H + j1):
                z[j] = tanh(z[j])                              # g = tanh(z_g)
            for j in range(3 * H + j0, 3 * H + j1):
                z[j] = sigmoid(z[j])                           # o = σ(z_o)
            c_row = c_state[r]
            h_row = hn[r]
            for j in range(j0, j1):
                c_row[j] = z[H + j] * c_row[j] + z[j] * z[2 * H + j]   # c_t = f ⊙ c_{t-1} + i ⊙ g
            for j in range(j0, j1):
                h_row[j] = z[3 * H + j] * tanh(c_row[j])       # h_t = o ⊙ tanh(c_t)
            for j in range(j0, j1):
                y[t, r, j] = h_row[j]
            if keep_cache:
                for j in range(j0, j1):
                    cells[t, r, j] = c_row[j]
            if last_step[r] == t:
                for j in range(j0, j1):
                    h_n[r, j] = h_row[j]
                    c_n[r, j] = c_row[j]
        for r in prange(n, B):                                 # finished rows: y is 0
            for j in range(H):
                y[t, r, j] = 0
        swapped = not swapped
    return swapped


def _project_chunk(x, W_ihT, b, t0, t1, out):
    """out = x[t0:t1] W_ih^T + b as one matrix product: (Tc*B, I) x (I, 4H)."""
    T, B, I = x.shape
    flat = out.reshape((t1 - t0) * B, -1)
    np.dot(x[t0:t1].reshape(-1, I), W_ihT, out=flat)
    flat += b


def forward_layer(x, W_ih, W_hh, b, h0, c0, lengths, y, h_n, c_n, gates, cells,
                  *, use_blas, unit_block, chunk_elements):
    """One forward-direction layer; see docs/backends.md for the contract.

    Parameters
    ----------
    x : ndarray, shape (T, B, I)
        C-contiguous input, batch sorted by length (descending).
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
    use_blas : bool
        Recurrent product through BLAS instead of the fused tile loop.
    unit_block : int
        Hidden units per parallel tile.
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
    W_hhT = np.ascontiguousarray(W_hh.T)
    # rows with lengths > t, i.e. -lengths < -t, are a prefix of the sorted batch
    n_active = np.searchsorted(-lengths, -np.arange(T), side="left").astype(np.int64)
    last_step = lengths - 1
    h_prev = np.array(h0, order="C")
    h_next = np.empty_like(h_prev)
    c_state = np.array(c0, order="C")
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
        swapped = _recurrence(zx, t0, W_hhT, n_active, last_step, h_prev, h_next, c_state,
                              y, h_n, c_n, cells_out, keep_cache, use_blas, rec, unit_block)
        if swapped:
            h_prev, h_next = h_next, h_prev
