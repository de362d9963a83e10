"""The CPU backend's boundary: user arrays in, the kernels' (T, B, F) layout, user arrays out.

The twin of :mod:`nblstm.cuda.layout`; docs/backends.md describes each
function. For the CPU every array is a NumPy array, so most of these are thin;
the batch permutations and the sequence reversal are numba loops.
"""
import numpy as np
from numba import prange

from . import plan, workspace
from ._jit import kernel
from .elementwise import copy_row, zero_row

__all__ = ["asarray", "is_device", "as_operand", "copy_as", "to_user", "expand_dims",
           "view_internal", "empty_batch_first", "to_internal", "from_internal",
           "scatter_rows", "finite_each", "reverse_sequences"]


def asarray(a):
    """``a`` as a NumPy array (before validation)."""
    return np.asarray(a)


def is_device(a):
    """False: the CPU backend has no device memory."""
    return False


def as_operand(a, dtype):
    """``a`` as a C-contiguous array of ``dtype``; no copy if it already is one (read only).

    A read-only array is copied too: numba compiles every kernel again for
    read-only argument types.
    """
    a = np.asarray(a)
    if a.dtype == np.dtype(dtype) and a.flags.c_contiguous and a.flags.writeable:
        return a
    return copy_as(a, dtype)


def copy_as(a, dtype):
    """A C-contiguous copy in ``dtype`` (the cache must not see later changes to the input)."""
    return workspace.copy(a, dtype)


def to_user(a, on_device=False):
    """``a`` itself (results are NumPy arrays)."""
    return a


def expand_dims(a, axis):
    """``np.expand_dims(a, axis)``."""
    return np.expand_dims(a, axis)


def view_internal(a, order, time_major, dtype):
    """``a`` as a (T, B, F) view when :func:`to_internal` would only transpose, else None."""
    if order is not None or a.dtype != np.dtype(dtype):
        return None
    return a if time_major else a.swapaxes(0, 1)


def empty_batch_first(shape, dtype):
    """A new (B, T, F) array and its (T, B, F) view, for an output the kernels write in place."""
    a = workspace.empty(shape, dtype)
    return a, a.swapaxes(0, 1)


def to_internal(a, order, time_major, dtype):
    """(B, T, F) or (T, B, F) -> new C-contiguous (T, B, F), batch permuted by ``order``.

    A permutation of an array already in ``dtype`` (float32 or float64, in
    native byte order, writeable) is one gather pass (:func:`_gather`);
    NumPy's fancy index and then the cast and layout copy made two. Other
    inputs (float16, integers, another byte order, read-only) keep NumPy's
    two passes: numba reads neither float16 nor a foreign byte order, and
    each other type would compile the gather again.
    """
    tm = a if time_major else a.swapaxes(0, 1)
    if order is None:
        return copy_as(tm, dtype)
    if tm.dtype != dtype or not tm.flags.writeable:      # dtype is a native float
        return copy_as(tm[:, order], dtype)
    out = workspace.empty(tm.shape, dtype)
    _gather(tm, order, out)
    return out


def from_internal(a, order, time_major, on_device=False):
    """Inverse of :func:`to_internal`: (T, B, F) in sorted order -> the user's layout.

    The gather runs on numba's threads unless BLAS's ran the last layer
    (:func:`nblstm.cpu.plan.numba_ran_last`): whichever pool ran the layers
    is still spinning. Right after a numba parallel region the calling thread
    alone is several times slower than in isolation; right after BLAS's
    threads ran, a numba region would wait for a core instead (numba issue
    6933; docs/performance.md#parallel-gather).
    """
    if order is None:
        if time_major:
            return a
        swapped = a.swapaxes(0, 1)                      # contiguous already where B or T is 1
        return swapped if swapped.flags.c_contiguous else copy_as(swapped, a.dtype)
    T, B, F = a.shape
    out = workspace.empty((T, B, F) if time_major else (B, T, F), a.dtype)
    # one pass straight into the user's layout, not NumPy's scatter and then a transposing
    # copy (docs/performance.md#one-pass-gather)
    scatter_rows(a, order, out if time_major else out.swapaxes(0, 1))
    return out


def scatter_rows(src, order, out):
    """``out[t, order[r]] = src[t, r]`` for (T, B, F) arrays (``out`` may be a strided view), one pass."""
    inverse = np.empty_like(order)
    inverse[order] = np.arange(len(order))
    _gather(src, inverse, out)


def _gather(src, index, out):
    """``out[t, i] = src[t, index[i]]``, on the pool of threads that ran the last layer (see :func:`from_internal`)."""
    (_gather_rows_parallel if plan.numba_ran_last() else _gather_rows)(src, index, out)


def finite_each(arrays):
    """One bool per array: True if it holds no NaN or Inf."""
    return [bool(np.isfinite(a).all()) for a in arrays]


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
