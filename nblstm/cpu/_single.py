"""One sequence through one layer in one compiled call: the lean route for small calls.

At (B, T, I, H) = (1, 1, 8, 32) the layer's arithmetic takes about a microsecond,
and a call of ``forward_layer`` cost tens: per call it chose a path, read the
thread count, computed the running rows, copied the state, took scratch, and
made two kernel calls with a few NumPy operations between them.
:func:`forward_one_sequence` does the same work as ``forward_layer``'s
``"blas"`` path for one sequence of full length (the path ``choose_path``
takes for B = 1), in the same order and through the same kernels and BLAS
calls, so its results are the same bits; and it checks the inputs for NaN and
Inf in the same call.
"""
import numpy as np

from ._jit import kernel
from .elementwise import copy_row
from .forward import recurrence_blas
from .matmul import gemm


@kernel
def all_finite(a):
    """No NaN or Inf in ``a`` (any shape, C-contiguous)."""
    flat = a.ravel()
    bad = False
    for j in range(flat.shape[0]):
        v = flat[j]
        bad |= v - v != 0                  # inf - inf and nan - nan are nan, and nan != 0
    return not bad


@kernel
def forward_one_sequence(x, W_ih, W_hh, b, h0, c0, y, h_n, c_n, gates, cells, keep_cache,
                         check_finite, chunk):
    """The ``"blas"`` path of ``forward_layer`` for B = 1 and lengths = [T], T >= 1.

    Parameters
    ----------
    x : ndarray, shape (T, 1, I), C-contiguous
    W_ih, W_hh, b : ndarray, shapes (4H, I), (4H, H), (4H,), C-contiguous
    h0, c0 : ndarray, shape (1, H)
        Initial state (only read).
    y : ndarray, shape (T, 1, H)
        Output (may be a strided view).
    h_n, c_n : ndarray, shape (1, H)
        Final state (outputs).
    gates, cells : ndarray, shapes (T, 1, 4H), (T, 1, H)
        The cache (outputs) when ``keep_cache``; else any arrays of that rank, unused.
    keep_cache : bool
    check_finite : bool
        First check x, the weights and the state for NaN and Inf.
    chunk : int
        Steps projected per BLAS product for inference (``_forward_blas``'s chunk).

    Returns
    -------
    bool
        False, with nothing written, when ``check_finite`` found NaN or Inf (the
        caller then takes the path that raises the error).
    """
    if check_finite and not (all_finite(x) and all_finite(W_ih) and all_finite(W_hh)
                             and all_finite(b) and all_finite(h0) and all_finite(c0)):
        return False
    T, _, I = x.shape
    H4 = W_hh.shape[0]
    first = np.int64(0)    # typed, not a literal 0: see _jit.py, "Literal arguments"
    copy_row(h_n[first], h0[first])
    copy_row(c_n[first], c0[first])
    n_active = np.ones(T, np.int64)        # the one row runs at every step
    last_step = np.full(1, T - 1, np.int64)
    h_prev = h0.copy()
    h_next = np.empty_like(h_prev)
    c_state = c0.copy()
    rec = np.empty((1, H4), x.dtype)
    if keep_cache:
        chunk = T
    buffer = gates if keep_cache else np.empty((chunk, 1, H4), x.dtype)
    W_ihT = W_ih.T
    W_hhT = W_hh.T
    swapped = False
    for t0 in range(0, T, chunk):
        t1 = min(T, t0 + chunk)
        zx = buffer[t0:t1] if keep_cache else buffer[:t1 - t0]
        flat = zx.reshape(t1 - t0, H4)
        gemm(x[t0:t1].reshape(t1 - t0, I), W_ihT, flat)      # W_ih x_t for the chunk's steps
        for s in range(t1 - t0):
            for j in range(H4):
                flat[s, j] += b[j]                           # + b
        chunk_swapped = recurrence_blas(zx, t0, W_hhT, n_active, last_step,
                                         h_next if swapped else h_prev,
                                         h_prev if swapped else h_next,
                                         c_state, y, h_n, c_n, cells, keep_cache, rec)
        swapped = swapped != chunk_swapped
    return True
