"""Where the CPU backend's arrays come from; scratch kept from one call to the next, per thread.

:func:`zeros` and :func:`zeros_input` are plain NumPy allocations, and so is
:func:`empty` below ``config.recycle_min_bytes`` (see the last paragraph);
:func:`scratch` keeps its arrays.

A large array that NumPy allocates afresh is often memory new to the process:
each of its pages faults when first written, and glibc hands freed memory of
that size back to the system, so every call faulted its scratch in again;
keeping the backward's scratch makes a small training call much faster
(docs/performance.md#scratch-kept).

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

:func:`empty` also serves the arrays that leave a call (the cache, results),
and a large one may be memory that an earlier result held. glibc maps blocks
above 32 MiB afresh at every allocation and unmaps them when freed (smaller
ones too when it trims its heap), so a large float64 training loop faulted
its cache in again at every call, whether or not the caller keeps the previous
cache until the next forward returns (docs/performance.md#recycling,
docs/memory.md). An array of at least
``config.recycle_min_bytes`` is cut from a buffer the process keeps; a buffer
is handed out again only when nothing but this module refers to it (its
reference count: every view of it, a view of a view, a memoryview, a cache
that holds it, counts), so a result the caller still holds is never
overwritten. A free buffer up to :data:`RECYCLE_SLACK` times larger than a
request serves it, the smallest such first. The process keeps up to
``config.recycle_bytes`` of such buffers, in use or not, for all threads
together, dropping the least recently used free ones to make room; :func:`clear`
releases them. An array cut from a buffer does not own its data
(``a.flags.owndata`` is False, ``a.resize`` refuses), like any view.
"""
import math
import operator
import sys
import threading
from typing import NamedTuple

import numpy as np

from .._perthread import PerThreadArrays
from .config import config

__all__ = ["empty", "copy", "aligned_empty", "zeros", "zeros_input", "scratch", "clear",
           "held_bytes", "recycled_bytes", "usage", "Usage"]

#: bytes: a cache line, the alignment MKL's documentation asks of operands
ALIGNMENT = 64

_kept = PerThreadArrays()
#: the calling thread's buffers, {(name, dtype): 1-d array}
_buffers = _kept.table
held_bytes = _kept.held_bytes

#: the process's recyclable buffers, least recently handed out first: 1-d uint8
#: arrays that own their memory; read and changed under ``_recycled_lock``
_recycled = []
_recycled_lock = threading.RLock()
#: ``busy``: this thread is inside :func:`_recycled_raw` (a finalizer may re-enter)
_inside = threading.local()

#: a free buffer up to this factor larger than a request serves it (T varies between calls)
RECYCLE_SLACK = 1.25


def _references(buffers, i):
    return sys.getrefcount(buffers[i])


#: what :func:`_references` reads for a buffer that only its list refers to, measured
#: through the same code (the count's baseline differs between Python versions)
_UNREFERENCED = _references([np.empty(0, np.uint8)], 0)


def _free(buffers):
    """Indices of the buffers that nothing outside the list refers to, oldest first."""
    return [i for i in range(len(buffers)) if _references(buffers, i) == _UNREFERENCED]


def _trim(buffers, free, room):
    """Drop free buffers, least recently used first, until ``room`` more bytes fit under the
    cap or none is left.
    """
    held = sum(b.size for b in buffers)
    dropped = set()
    for i in free:
        if held + room <= config.recycle_bytes:
            break
        held -= buffers[i].size
        dropped.add(i)
    buffers[:] = [b for i, b in enumerate(buffers) if i not in dropped]


def clear():
    """Drop the calling thread's scratch and the process's recyclable buffers.

    Arrays in use stay valid: a buffer that an array still refers to is freed
    with its last reference.
    """
    _kept.clear()
    with _recycled_lock:
        if not getattr(_inside, "busy", False):        # not from a finalizer inside the pool
            _recycled.clear()


def recycled_bytes():
    """Bytes of the process's recyclable buffers, in use or not."""
    with _recycled_lock:
        return sum(raw.nbytes for raw in _recycled)


class Usage(NamedTuple):
    """What the CPU backend's memory holds, in bytes (:func:`usage`).

    Attributes
    ----------
    scratch : int
        The calling thread's scratch arrays, kept for its next call (each
        up to ``config.workspace_bytes``).
    recycled : int
        The process's recyclable buffers, in use or not: the memory of large
        caches and results, kept to serve the next ones (up to ``recycle_cap``).
    recycled_free : int
        The part of ``recycled`` that no array refers to any more: what
        :func:`clear` hands back to the allocator at once.
    recycle_cap : int
        ``config.recycle_bytes``, the most ``recycled`` may reach.
    """

    scratch: int
    recycled: int
    recycled_free: int
    recycle_cap: int


def usage():
    """What the CPU backend keeps between calls: a training loop's memory grows by this, not by a leak.

    A loop whose shapes vary fills the recyclable buffers up to their cap
    (``config.recycle_bytes``, 256 MiB by default) and then stays there; the
    process's resident size grows by as much, which can look like a leak.
    :func:`clear` gives the free part back; ``config.recycle_bytes = 0`` and
    ``config.workspace_bytes = 0`` keep nothing at all.

    Returns
    -------
    Usage
        ``scratch`` (this thread's), ``recycled``, ``recycled_free`` and
        ``recycle_cap``, in bytes.

    Examples
    --------
    >>> import nblstm
    >>> nblstm.cpu.workspace.clear()
    >>> nblstm.cpu.workspace.usage().recycled
    0
    """
    with _recycled_lock:
        recycled = recycled_bytes()
        free = sum(_recycled[i].nbytes for i in _free(_recycled))
    return Usage(held_bytes(), recycled, free, config.recycle_bytes)


def _shape(shape):
    return (operator.index(shape),) if np.ndim(shape) == 0 else tuple(map(operator.index, shape))


def _aligned_view(raw, nbytes, dtype, shape):
    start = -raw.__array_interface__["data"][0] % ALIGNMENT
    return raw[start:start + nbytes].view(dtype).reshape(shape)


def _recycled_raw(size):
    """A buffer of ``size`` to ``RECYCLE_SLACK * size`` bytes that nothing outside this module
    refers to: a free one (the smallest that fits), else a new one, kept if the cap allows;
    None where the pool does not serve (above the cap, or re-entered).

    Free buffers over a lowered cap are dropped first. The garbage collector may
    run finalizers on this thread while it holds the lock (any allocation here
    can start a collection); a finalizer that calls nblstm re-enters, and gets
    None instead of changing the list under this call.
    """
    with _recycled_lock:
        if getattr(_inside, "busy", False):
            return None
        _inside.busy = True
        try:
            buffers = _recycled
            free = _free(buffers)
            if sum(b.size for b in buffers) > config.recycle_bytes:
                _trim(buffers, free, 0)
                free = _free(buffers)
            if size > config.recycle_bytes:
                return None
            fits = [i for i in free if size <= buffers[i].size <= RECYCLE_SLACK * size]
            if fits:
                raw = buffers.pop(min(fits, key=lambda i: buffers[i].size))
                buffers.append(raw)                    # the most recently used last
                return raw
            in_use = sum(b.size for b in buffers) - sum(buffers[i].size for i in free)
            if in_use + size > config.recycle_bytes:   # cannot be kept: leave the free ones be
                return np.empty(size, np.uint8)
            _trim(buffers, free, size)                 # make room before allocating
            raw = np.empty(size, np.uint8)
            buffers.append(raw)
            return raw
        finally:
            _inside.busy = False


def empty(shape, dtype):
    """An uninitialised C-contiguous array; a large one may reuse memory the caller dropped.

    Below ``config.recycle_min_bytes`` a plain ``np.empty``; from there on the
    data start on an :data:`ALIGNMENT` boundary and may be a buffer that an
    earlier array held and nothing refers to any more (module docstring).

    Parameters
    ----------
    shape : int or tuple of int
    dtype : dtype

    Returns
    -------
    ndarray, shape ``shape``
    """
    dtype = np.dtype(dtype)
    # small calls make many: the common tuple of sizes is tested without converting it
    nbytes = (math.prod(shape) if type(shape) is tuple else operator.index(shape)) * dtype.itemsize
    if nbytes < config.recycle_min_bytes:
        return np.empty(shape, dtype)
    shape = _shape(shape)
    raw = _recycled_raw(nbytes + ALIGNMENT)
    if raw is None:
        return aligned_empty(shape, dtype)
    return _aligned_view(raw, nbytes, dtype, shape)


def copy(a, dtype):
    """A C-contiguous copy of ``a`` in ``dtype`` (cast as ``np.array`` casts), in :func:`empty`'s memory."""
    a = np.asarray(a)
    dtype = np.dtype(dtype)
    if a.size * dtype.itemsize < config.recycle_min_bytes:
        return np.array(a, dtype=dtype, order="C", copy=True)
    out = empty(a.shape, dtype)
    np.copyto(out, a, casting="unsafe")
    return out


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
    shape = _shape(shape)
    nbytes = math.prod(shape) * dtype.itemsize
    return _aligned_view(np.empty(nbytes + ALIGNMENT, np.uint8), nbytes, dtype, shape)


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
