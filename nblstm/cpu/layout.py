"""Moving data between the user's layout and the CPU kernels' layout."""
import numpy as np
from numba import prange

from .._jit import kernel
from ._rows import copy_row, zero_row


def running_rows(lengths, T):
    """``n[t]``, the number of rows still running at step t, for t < T.

    The batch is sorted by length (non-increasing), so the rows with
    ``lengths > t``, i.e. ``-lengths < -t``, are the prefix ``0 .. n[t] - 1``.
    Returns an int64 array of shape (T,).
    """
    return np.searchsorted(-lengths, -np.arange(T), side="left").astype(np.int64)


def to_internal(a, order, time_major, dtype):
    """(B, T, F) or (T, B, F) -> new C-contiguous (T, B, F), batch permuted by ``order``."""
    tm = a if time_major else a.swapaxes(0, 1)
    if order is not None:
        tm = tm[:, order]
    return np.array(tm, dtype=dtype, order="C", copy=True)


def from_internal(a, order, time_major, on_device=False, parallel=False):
    """Inverse of :func:`to_internal`: (T, B, F) in sorted order -> the user's layout.

    ``parallel`` gathers with numba's threads: right after a numba parallel
    region, whose workers are still spinning, the calling thread alone took
    5x as long (0.5 ms for a float32 (100, 32, 64) y) as in isolation; right
    after BLAS's threads ran, a numba region would wait for a core instead.
    """
    if order is None:
        return a if time_major else np.ascontiguousarray(a.swapaxes(0, 1))
    inverse = np.empty_like(order)
    inverse[order] = np.arange(len(order))
    T, B, F = a.shape
    out = np.empty((T, B, F) if time_major else (B, T, F), a.dtype)
    # one pass straight into the user's layout; NumPy's scatter and then a transposing
    # copy took 2 ms a call for a float64 (100, 32, 64) y in the profile of the lengths case
    gather = _gather_rows_parallel if parallel else _gather_rows
    gather(a, inverse, out if time_major else out.swapaxes(0, 1))
    return out


@kernel
def _gather_rows(src, index, out):
    """``out[t, i] = src[t, index[i]]`` (``out`` may be a strided view)."""
    for t in range(out.shape[0]):
        _gather_step(src, index, out, t)


@kernel(parallel=True)
def _gather_rows_parallel(src, index, out):
    """:func:`_gather_rows` with the steps spread over numba's threads."""
    for t in prange(out.shape[0]):
        _gather_step(src, index, out, t)


@kernel
def _gather_step(src, index, out, t):
    for i in range(out.shape[1]):
        copy_row(out[t, i], src[t, index[i]])


@kernel
def zero_padding(a, lengths):
    """a[t, b] = 0 for t >= lengths[b], in place; ``a`` is (T, B, F).

    The API's own copy of the input goes through this, so that whatever the
    caller left in padded steps (NaN, Inf) never enters a product over all
    steps, such as the BLAS path's ``dW_ih = dZ^T x`` (0 * NaN is NaN).
    """
    T, B = a.shape[:2]
    for t in range(T):
        for b in range(B):
            if t >= lengths[b]:
                zero_row(a[t, b])


@kernel(parallel=True)
def reverse_sequences(src, lengths, out):
    """out[t, b] = src[lengths[b] - 1 - t, b] for t < lengths[b], else 0.

    Parameters
    ----------
    src : ndarray, shape (T, B, F)
    lengths : ndarray of int64, shape (B,)
    out : ndarray, shape (T, B, F), distinct from ``src`` (may be a strided view)
    """
    T, B = src.shape[:2]
    for b in prange(B):
        n = lengths[b]
        for t in range(T):
            if t < n:
                copy_row(out[t, b], src[n - 1 - t, b])
            else:
                zero_row(out[t, b])
