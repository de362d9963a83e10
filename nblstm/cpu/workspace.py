"""Where the CPU backend's arrays come from; scratch kept from one call to the next, per thread.

:func:`empty`, :func:`zeros` and :func:`zeros_input` are plain NumPy
allocations; :func:`scratch` keeps its arrays.

A large array that NumPy allocates afresh is often memory new to the process:
each of its pages faults when first written, about 1.5 µs a page on the 2-core
VM we measure on, and glibc hands freed memory of that size back to the system,
so every call faulted its scratch in again. Training at (B, T, I, H) =
(32, 50, 32, 64) float32 took 5.1-5.4 ms a call that way and 3.4-3.6 ms with
the backward's scratch kept (`python bench/investigations/scratch_reuse.py`).

Only arrays that never leave a call are kept: the backward's dL/dz and h_{t-1}
for all steps, the inference projection buffer of the ``"blas"`` path, the
``"slices"`` path's packed weights and bias, its ``[x | h]``, z and product
buffers, and the temporaries that ``nblstm._api`` asks for through the
protocol's ``scratch`` (reversed inputs and outputs of reverse directions, the
gradients a layer of a stack hands down, the outputs of inference layers below
the top, the sorted y of an inference call with lengths). Their contents are
undefined on entry, like ``np.empty``'s; the kernels write every element they
read. Their data start on a 64-byte boundary (:func:`aligned_empty`): MKL's
order of summation may depend on its operands' alignment, and the ``"slices"``
path hands it scratch. Buffers are per thread (several Python threads may call
nblstm at once), per name and dtype, and grow to the largest request up to
``limit`` bytes; a larger request gets a fresh array that is not kept.
"""
import math
import operator

import numpy as np

from .._perthread import PerThreadArrays
from .config import config

__all__ = ["empty", "aligned_empty", "zeros", "zeros_input", "scratch", "clear", "held_bytes"]

#: bytes: a cache line, the alignment MKL's documentation asks of operands
ALIGNMENT = 64

_kept = PerThreadArrays()
#: the calling thread's buffers, {(name, dtype): 1-d array}
_buffers = _kept.table
clear = _kept.clear
held_bytes = _kept.held_bytes


def empty(shape, dtype):
    """An uninitialised C-contiguous array."""
    return np.empty(shape, dtype)


def aligned_empty(shape, dtype):
    """An uninitialised C-contiguous array whose data start on an :data:`ALIGNMENT` boundary.

    Parameters
    ----------
    shape : int or tuple of int
    dtype : dtype

    Returns
    -------
    ndarray, shape ``shape``
    """
    dtype = np.dtype(dtype)
    shape = (operator.index(shape),) if np.ndim(shape) == 0 else tuple(map(operator.index, shape))
    n = math.prod(shape)
    raw = np.empty(n * dtype.itemsize + ALIGNMENT, np.uint8)
    start = -raw.__array_interface__["data"][0] % ALIGNMENT
    return raw[start:start + n * dtype.itemsize].view(dtype).reshape(shape)


def zeros(shape, dtype):
    """A zero-filled C-contiguous array."""
    return np.zeros(shape, dtype)


def zeros_input(shape, dtype):
    """Zeros that the kernels only read (a state the user left out)."""
    return np.zeros(shape, dtype)


def scratch(name, shape, dtype, limit=None):
    """A C-contiguous array of ``shape`` and ``dtype``, undefined contents, reused per thread.

    Its data start on an :data:`ALIGNMENT` boundary.

    Parameters
    ----------
    name : str
        Which buffer: two names never share memory, one name is one array at a time.
    shape : tuple of int
    dtype : dtype
    limit : int, optional
        Most bytes kept for this name; above it the array is allocated per
        call. None reads ``config.workspace_bytes``.

    Returns
    -------
    ndarray, shape ``shape``
    """
    if limit is None:
        limit = config.workspace_bytes
    dtype = np.dtype(dtype)
    size = math.prod(shape)
    if size * dtype.itemsize > limit:
        return aligned_empty(shape, dtype)
    buffers = _buffers()
    buffer = buffers.get((name, dtype))
    if buffer is None or buffer.size < size:
        buffer = buffers[(name, dtype)] = aligned_empty(size, dtype)
    return buffer[:size].reshape(shape)
