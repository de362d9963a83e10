"""CPU backpropagation through time for one LSTM layer.

A serial loop over time from the last step to the first. Each step is two
parallel regions: the fused element-wise gate backward over tiles of (batch
row, block of hidden units), which writes ``dZ_t`` and ``h_{t-1}``; then
``dh_{t-1} = W_hh^T dZ_t`` over tiles of (row, block of hidden units) (or one
BLAS product per step for large sizes). After the loop the weight gradients
are three large matrix products over all steps at once; BLAS sums each
element in a fixed order, so results do not depend on the thread count.
"""
import numpy as np
from numba import prange

from .._jit import kernel
from ._gates import dsigmoid_from_output, dtanh_from_output, tanh


@kernel(parallel=True)
def _recurrence_backward(gates, cells, h0, c0, dy, W_hh, n_active, dh, dc, dZ, h_prev,
                         use_blas, unit_block):
    """Walk the steps backwards, filling ``dZ`` and ``h_prev``.

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
    use_blas : bool
        ``dh_{t-1}`` from one BLAS product per step.
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
            j1 = min(j0 + unit_block, H)
            gz = gates[t, r]
            dz = dZ[t, r]
            for j in range(j0, j1):
                i = gz[j]
                f = gz[H + j]
                g = gz[2 * H + j]
                o = gz[3 * H + j]
                if t > 0:
                    c_prev = cells[t - 1, r, j]
                    h_prev[t, r, j] = gates[t - 1, r, 3 * H + j] * tanh(c_prev)  # h = o ⊙ tanh(c)
                else:
                    c_prev = c0[r, j]
                    h_prev[t, r, j] = h0[r, j]
                tanh_c = tanh(cells[t, r, j])
                dh_t = dh[r, j] + dy[t, r, j]                        # h_t feeds y_t and step t+1
                dc_t = dc[r, j] + dh_t * o * dtanh_from_output(tanh_c)
                dz[j] = dc_t * g * dsigmoid_from_output(i)             # dL/dz_i
                dz[H + j] = dc_t * c_prev * dsigmoid_from_output(f)    # dL/dz_f
                dz[2 * H + j] = dc_t * i * dtanh_from_output(g)        # dL/dz_g
                dz[3 * H + j] = dh_t * tanh_c * dsigmoid_from_output(o)  # dL/dz_o
                dc[r, j] = dc_t * f                                    # dL/dc_{t-1}
        for r in prange(n, B):                                       # padded: no gradient
            for q in range(H4):
                dZ[t, r, q] = 0
            for j in range(H):
                h_prev[t, r, j] = 0
        if use_blas:
            if n > 0:
                np.dot(dZ[t, :n], W_hh, dh[:n])                      # dh_{t-1} = W_hh^T dz_t
        else:
            for tile in prange(n * n_unit_blocks):
                r = tile // n_unit_blocks
                k0 = (tile % n_unit_blocks) * unit_block
                k1 = min(k0 + unit_block, H)
                for k in range(k0, k1):
                    dh[r, k] = 0
                dz = dZ[t, r]
                for q in range(H4):                                  # dh_{t-1} = W_hh^T dz_t, q in fixed order
                    d = dz[q]
                    w = W_hh[q]
                    for k in range(k0, k1):
                        dh[r, k] += w[k] * d


def backward_layer(x, W_ih, W_hh, h0, c0, lengths, gates, cells, dy, dh_n, dc_n,
                   dx, dW_ih, dW_hh, db, dh0, dc0, *, use_blas, unit_block):
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
    use_blas : bool
        Per-step ``W_hh^T dz`` through BLAS instead of the tile loop.
    unit_block : int
        Hidden units per parallel tile.
    """
    T, B, I = x.shape
    H = W_hh.shape[1]
    dh0[...] = dh_n
    dc0[...] = dc_n
    n_active = np.searchsorted(-lengths, -np.arange(T), side="left").astype(np.int64)
    dZ = np.empty((T, B, 4 * H), gates.dtype)
    h_prev = np.empty((T, B, H), gates.dtype)
    if T > 0 and B > 0:
        _recurrence_backward(gates, cells, h0, c0, dy, W_hh, n_active, dh0, dc0, dZ, h_prev,
                             use_blas, unit_block)
    dZ_flat = dZ.reshape(T * B, 4 * H)
    # With check_finite=False a non-finite input is the caller's choice: it propagates
    # as Inf/NaN, it is not a warning (filterwarnings="error" pipelines would crash).
    with np.errstate(all="ignore"):
        np.dot(dZ_flat.T, x.reshape(T * B, I), out=dW_ih)      # dW_ih = Σ_t dz_t x_tᵀ
        np.dot(dZ_flat.T, h_prev.reshape(T * B, H), out=dW_hh)  # dW_hh = Σ_t dz_t h_{t-1}ᵀ
        np.sum(dZ_flat, axis=0, out=db)                         # db = Σ_t dz_t
        np.dot(dZ_flat, W_ih, out=dx.reshape(T * B, I))         # dx_t = W_ihᵀ dz_t
