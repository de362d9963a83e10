"""Where the CUDA backend's arrays come from; device scratch kept from one call to the next.

The twin of :mod:`nblstm.cpu.workspace`. :func:`empty` and :func:`zeros` make
new device arrays, :func:`zeros_input` returns shared read-only zeros
(:mod:`nblstm.cuda.shared_arrays`), and :func:`scratch` keeps its arrays per
thread, context and name.

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
from . import elementwise as ew
from . import shared_arrays

__all__ = ["empty", "zeros", "zeros_input", "scratch", "clear", "held_bytes"]

_kept = PerThreadArrays()
#: the calling thread's buffers, {(context, name, dtype): device array}
_buffers = _kept.table
clear = _kept.clear
held_bytes = _kept.held_bytes


def empty(shape, dtype):
    """Uninitialised C-contiguous device array."""
    return cuda.device_array(shape, np.dtype(dtype))


def zeros(shape, dtype):
    """Zero-filled C-contiguous device array."""
    d_out = empty(shape, dtype)
    ew.fill(d_out, 0)
    return d_out


def zeros_input(shape, dtype):
    """Zeros that the kernels only read (a state the user left out), shared between calls."""
    return shared_arrays.zeros(shape, dtype)


def scratch(name, shape, dtype):
    """A C-contiguous device array of ``shape`` and ``dtype``, undefined contents, kept per name."""
    dtype = np.dtype(dtype)
    shape = tuple(int(n) for n in shape)
    key = (shared_arrays.context_key(), name, dtype)
    buffers = _buffers()
    d_a = buffers.get(key)
    if d_a is None or d_a.shape != shape:
        d_a = buffers[key] = cuda.device_array(shape, dtype)
    return d_a
