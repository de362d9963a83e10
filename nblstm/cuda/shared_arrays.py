"""A cache of small read-only device arrays that calls share instead of making each time.

Every call needs a few arrays whose contents depend only on sizes: the running
rows per step, the identity batch order, a column of ones for ``db``, zero
initial states, a placeholder for the cache a call does not keep. Copying one from the host
costs an allocation and a host-to-device copy that waits for the GPU, and on an
H100 a small call spent milliseconds in such per-call work
(bench/RESULTS-gpu-H100.md). These are made once per device and content and
kept in a small least-recently-used table.

No kernel writes them (each function's docstring says who reads what); the
table holds at most :data:`MAX_ENTRIES` arrays, none larger than the call's
own batch-sized arrays.
"""
from __future__ import annotations

import threading
from collections import OrderedDict

import numba
import numpy as np
from numba import cuda

from .._batch import running_rows as _running_rows_host

__all__ = ["running_rows", "identity_order", "ones", "zeros", "placeholder", "clear",
           "context_key", "MAX_ENTRIES"]

_SIMULATOR = bool(getattr(numba.config, "ENABLE_CUDASIM", 0))

#: arrays kept at most (least recently used dropped first)
MAX_ENTRIES = 32

_table: OrderedDict = OrderedDict()
_lock = threading.Lock()


def context_key():
    """A key for the current CUDA context (device memory belongs to one).

    A different device, or a context made after ``cuda.close()``, must not see
    arrays made in another. The simulator makes a new context object per
    query and has one device.
    """
    if _SIMULATOR:
        return 0
    context = cuda.current_context()     # numba-cuda keeps one object per context
    return context.device.id, id(context)


def _shared(key, make):
    """The device array for ``key``, made by ``make() -> host ndarray`` on first use."""
    key = (context_key(),) + key
    with _lock:
        d_a = _table.get(key)
        if d_a is not None:
            _table.move_to_end(key)
            return d_a
    d_a = cuda.to_device(make())
    with _lock:
        _table[key] = d_a
        while len(_table) > MAX_ENTRIES:
            _table.popitem(last=False)
    return d_a


def clear():
    """Drop every shared array (they are freed once no call uses them)."""
    with _lock:
        _table.clear()


def running_rows(lengths, T):
    """``n[t] = #(lengths > t)`` for t = 0..T, with ``n[T] = 0``, on the device.

    :func:`nblstm._batch.running_rows` for ``T + 1`` steps.

    Parameters
    ----------
    lengths : ndarray of int64, shape (B,)
        Non-increasing lengths (host).
    T : int

    Returns
    -------
    device array of int64, shape (T + 1,)
        Read by the recurrence kernels (forward and backward).
    """
    lengths = np.ascontiguousarray(lengths, dtype=np.int64)
    return _shared(("steps", T, lengths.tobytes()), lambda: _running_rows_host(lengths, T + 1))


def identity_order(B):
    """``arange(B)`` as int64 on the device: the batch order of unsorted-free calls.

    Read by the permutation kernels of :mod:`nblstm.cuda.elementwise`.
    """
    return _shared(("order", B), lambda: np.arange(B, dtype=np.int64))


def ones(n, dtype):
    """An (n, 1) column of ones: ``db = dZ^T 1`` with the matrix-multiply kernel."""
    dtype = np.dtype(dtype)
    return _shared(("ones", n, dtype.str), lambda: np.ones((n, 1), dtype))


def zeros(shape, dtype):
    """Zeros of ``shape``: the initial state (or its gradient) a user left out."""
    dtype = np.dtype(dtype)
    shape = tuple(int(n) for n in shape)
    return _shared(("zeros", shape, dtype.str), lambda: np.zeros(shape, dtype))


def placeholder(dtype):
    """A (1, 1, 1) array passed where a kernel takes the cache but the call keeps none."""
    dtype = np.dtype(dtype)
    return _shared(("placeholder", dtype.str), lambda: np.zeros((1, 1, 1), dtype))
