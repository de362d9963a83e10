"""CPU backpropagation through time for one LSTM layer.

A serial loop over time from the last step to the first. Each step is the
fused element-wise gate backward, which writes ``dZ_t`` and ``h_{t-1}``, then
``dh_{t-1} = W_hh^T dZ_t``; as in the forward pass (``path``) either both on the
calling thread (small sizes), both as parallel regions over tiles of (batch
row, block of hidden units), or the product as one BLAS call per step with the
element-wise part on the calling thread. After the loop the weight gradients
are three large matrix products over all steps at once; BLAS sums each
element in a fixed order, so results do not depend on the thread count.
"""
import numpy as np
from numba import prange

from .._jit import kernel
from ._blas import gemm
from ._gates import dsigmoid_from_output, dtanh_from_output, tanh


@kernel
def _gates_backward_tile(t, r, j0, j1, gates, cells, h0, c0, dy, dh, dc, dZ, h_prev):
    """Step t's element-wise backward for hidden units ``j0:j1`` of batch row ``r``.

    Reads dL/dh_t, dL/dc_t (from step t+1) in ``dh``, ``dc``; writes dL/dz_t to
    ``dZ[t, r]``, h_{t-1} to ``h_prev[t, r]`` and dL/dc_{t-1} to ``dc``. Loops
    run over slices from index 0 so that they vectorise (see forward._step_tile).
    """
    H = cells.shape[2]
    m = j1 - j0
    gz = gates[t, r]
    dz = dZ[t, r]
    i, f = gz[j0:j1], gz[H + j0:H + j1]
    g, o = gz[2 * H + j0:2 * H + j1], gz[3 * H + j0:3 * H + j1]
    di, df = dz[j0:j1], dz[H + j0:H + j1]
    dg, do = dz[2 * H + j0:2 * H + j1], dz[3 * H + j0:3 * H + j1]
    hp = h_prev[t, r, j0:j1]
    if t > 0:
        c_prev = cells[t - 1, r, j0:j1]
        o_prev = gates[t - 1, r, 3 * H + j0:3 * H + j1]
        for j in range(m):
            hp[j] = o_prev[j] * tanh(c_prev[j])                  # h_{t-1} = o ⊙ tanh(c)
    else:
        c_prev = c0[r, j0:j1]
        hp[:] = h0[r, j0:j1]
    c = cells[t, r, j0:j1]
    dh_r, dc_r, dy_r = dh[r, j0:j1], dc[r, j0:j1], dy[t, r, j0:j1]
    for j in range(m):
        tanh_c = tanh(c[j])
        dh_t = dh_r[j] + dy_r[j]                                 # h_t feeds y_t and step t+1
        dc_t = dc_r[j] + dh_t * o[j] * dtanh_from_output(tanh_c)
        di[j] = dc_t * g[j] * dsigmoid_from_output(i[j])         # dL/dz_i
        df[j] = dc_t * c_prev[j] * dsigmoid_from_output(f[j])    # dL/dz_f
        dg[j] = dc_t * i[j] * dtanh_from_output(g[j])            # dL/dz_g
        do[j] = dh_t * tanh_c * dsigmoid_from_output(o[j])       # dL/dz_o
        dc_r[j] = dc_t * f[j]                                    # dL/dc_{t-1}


@kernel
def _dh_tile(dz, W_hh, dh_row, k0, k1):
    """``dh_row[k0:k1] = (W_hh^T dz)[k0:k1]``, summed over q in a fixed order."""
    out = dh_row[k0:k1]
    out[:] = 0
    for q in range(W_hh.shape[0]):
        d = dz[q]
        w = W_hh[q, k0:k1]
        for k in range(k1 - k0):
            out[k] += w[k] * d


@kernel
def _clear_padded(t, n, dZ, h_prev):
    """Rows n.. have no step t: no gradient and no h_{t-1} (dW_hh must not see them)."""
    for r in range(n, dZ.shape[1]):
        dZ[t, r, :] = 0
        h_prev[t, r, :] = 0


@kernel(parallel=True)
def _recurrence_backward_tiles(gates, cells, h0, c0, dy, W_hh, n_active, dh, dc, dZ, h_prev,
                               unit_block):
    """Walk the steps backwards, filling ``dZ`` and ``h_prev``; two parallel regions a step.

    Parameters
    ----------
    gates : ndarray, shape (T, B, 4H)
        Cached activations ``[i f g o]``.
    cells : ndarray, shape (T, B, H)
        Cached c_t.
    h0, c0 : ndarray, shape (B, H)
        Initial state.
    dy : ndarray, shape (T, B, H)
        dL/dy (any strides).
    W_hh : ndarray, shape (4H, H)
        Recurrent weights.
    n_active : ndarray of int64, shape (T,)
        Running rows per step.
    dh, dc : ndarray, shape (B, H)
        dL/dh_n, dL/dc_n on entry; dL/dh0, dL/dc0 on exit.
    dZ : ndarray, shape (T, B, 4H)
        Output: dL/dz_t, 0 at padded steps.
    h_prev : ndarray, shape (T, B, H)
        Output: h_{t-1} (0 at padded steps), the operand of dW_hh.
    unit_block : int
        Hidden units per parallel tile.
    """
    T, B, H4 = gates.shape
    H = H4 // 4
    n_unit_blocks = (H + unit_block - 1) // unit_block
    for t in range(T - 1, -1, -1):
        n = n_active[t]
        for tile in prange(n * n_unit_blocks):
            r = tile // n_unit_blocks
            j0 = (tile % n_unit_blocks) * unit_block
            _gates_backward_tile(t, r, j0, min(j0 + unit_block, H), gates, cells, h0, c0, dy,
                                 dh, dc, dZ, h_prev)
        _clear_padded(t, n, dZ, h_prev)
        for tile in prange(n * n_unit_blocks):                   # dh_{t-1} = W_hh^T dz_t
            r = tile // n_unit_blocks
            k0 = (tile % n_unit_blocks) * unit_block
            _dh_tile(dZ[t, r], W_hh, dh[r], k0, min(k0 + unit_block, H))


@kernel
def _recurrence_backward_serial(gates, cells, h0, c0, dy, W_hh, n_active, dh, dc, dZ, h_prev,
                                use_blas):
    """The steps of ``_recurrence_backward_tiles`` on the calling thread only.

    With ``use_blas``, ``dh_{t-1} = W_hh^T dz_t`` for all rows is one BLAS product
    per step (BLAS's threads are the parallelism). Arguments as there.
    """
    T, B, H4 = gates.shape
    H = H4 // 4
    for t in range(T - 1, -1, -1):
        n = n_active[t]
        for r in range(n):
            _gates_backward_tile(t, r, 0, H, gates, cells, h0, c0, dy, dh, dc, dZ, h_prev)
        _clear_padded(t, n, dZ, h_prev)
        if use_blas:
            if n > 0:
                np.dot(dZ[t, :n], W_hh, dh[:n])                  # dh_{t-1} = W_hh^T dz_t
        else:
            for r in range(n):
                _dh_tile(dZ[t, r], W_hh, dh[r], 0, H)


def backward_layer(x, W_ih, W_hh, h0, c0, lengths, gates, cells, dy, dh_n, dc_n,
                   dx, dW_ih, dW_hh, db, dh0, dc0, *, path, unit_block):
    """Gradients of one forward-direction layer; see docs/backends.md for the contract.

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
    path : {"serial", "tiles", "blas"}
        How a step runs, as in ``forward_layer``.
    unit_block : int
        Hidden units per parallel tile (``path="tiles"``).
    """
    T, B, I = x.shape
    H = W_hh.shape[1]
    dh0[...] = dh_n
    dc0[...] = dc_n
    n_active = np.searchsorted(-lengths, -np.arange(T), side="left").astype(np.int64)
    dZ = np.empty((T, B, 4 * H), gates.dtype)
    h_prev = np.empty((T, B, H), gates.dtype)
    if T > 0 and B > 0:
        if path == "tiles":
            _recurrence_backward_tiles(gates, cells, h0, c0, dy, W_hh, n_active, dh0, dc0, dZ,
                                       h_prev, unit_block)
        else:
            _recurrence_backward_serial(gates, cells, h0, c0, dy, W_hh, n_active, dh0, dc0, dZ,
                                        h_prev, path == "blas")
    dZ_flat = dZ.reshape(T * B, 4 * H)
    # With check_finite=False a non-finite input is the caller's choice: it propagates
    # as Inf/NaN, it is not a warning (filterwarnings="error" pipelines would crash).
    with np.errstate(all="ignore"):
        gemm(dZ_flat.T, x.reshape(T * B, I), dW_ih)             # dW_ih = Σ_t dz_t x_tᵀ
        gemm(dZ_flat.T, h_prev.reshape(T * B, H), dW_hh)        # dW_hh = Σ_t dz_t h_{t-1}ᵀ
        np.sum(dZ_flat, axis=0, out=db)                         # db = Σ_t dz_t
        gemm(dZ_flat, W_ih, dx.reshape(T * B, I))               # dx_t = W_ihᵀ dz_t
