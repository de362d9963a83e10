"""Device scratch arrays kept from one call to the next, per thread, context and name.

Each device allocation is a driver call made from Python, and on an H100 a small
call spent milliseconds in per-call host work (bench/RESULTS-gpu-H100.md). The
arrays no result refers to (the input projection of inference, the backward's
dL/dz and h_{t-1}, the API's temporaries through the protocol's ``scratch``)
are therefore kept: a request for the shape and dtype a name last had returns
the same array, with its old contents, and any other shape replaces it.

Reuse is safe because every kernel of nblstm runs on the default stream, in
order: the next call's kernels start after the last call's have finished with
the array. Buffers are per host thread, so two threads' calls never share one.
:func:`clear` drops the calling thread's buffers.
"""
from __future__ import annotations

import numpy as np
from numba import cuda

from .._perthread import PerThreadArrays
from .constants import _context_key

__all__ = ["scratch", "clear", "held_bytes"]

_kept = PerThreadArrays()
#: the calling thread's buffers, {(context, name, dtype): device array}
_buffers = _kept.table
clear = _kept.clear
held_bytes = _kept.held_bytes


def scratch(name, shape, dtype):
    """A C-contiguous device array of ``shape`` and ``dtype``, undefined contents, kept per name."""
    dtype = np.dtype(dtype)
    shape = tuple(int(n) for n in shape)
    key = (_context_key(), name, dtype)
    buffers = _buffers()
    d_a = buffers.get(key)
    if d_a is None or d_a.shape != shape:
        d_a = buffers[key] = cuda.device_array(shape, dtype)
    return d_a
