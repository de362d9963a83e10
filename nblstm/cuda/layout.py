"""The CUDA backend's boundary: user arrays in, the kernels' (T, B, F) layout, user arrays out.

The twin of :mod:`nblstm.cpu.layout`; docs/backends.md describes each function.
Host code and the batch permutation and sequence reversal kernels.

User arrays: :func:`asarray` leaves NumPy (and anything else without
``__cuda_array_interface__``) on the host, so that validation sees exactly what
the CPU backend sees and raises the same errors; :func:`to_internal` and
:func:`copy_as` copy host data to the device once, already permuted and cast.
Device memory (numba device arrays, CuPy arrays, torch CUDA tensors) is
wrapped without a copy and results then stay on the device.
"""
from __future__ import annotations

import numba
import numpy as np
from numba import cuda

from . import elementwise as ew
from . import shared_arrays
from ._jit import kernel
from .elementwise import launch_shape, unflatten3
from .workspace import empty

_SIMULATOR = bool(getattr(numba.config, "ENABLE_CUDASIM", 0))

__all__ = ["asarray", "is_device", "as_operand", "copy_as", "to_user", "expand_dims",
           "view_internal", "empty_batch_first", "to_internal", "from_internal",
           "scatter_rows", "reverse_sequences", "zero_padding", "finite_each", "device_view", "swap_first_axes"]


def is_device(a):
    """True for device memory: numba device arrays and ``__cuda_array_interface__`` objects."""
    return cuda.devicearray.is_cuda_ndarray(a) or hasattr(a, "__cuda_array_interface__")


def device_view(a):
    """A numba device array over the same memory (zero-copy)."""
    if cuda.devicearray.is_cuda_ndarray(a):
        return a
    return cuda.as_cuda_array(a)             # CuPy arrays, torch CUDA tensors, ...


def asarray(a):
    """Device memory wrapped as a numba device array (zero-copy); anything else as a NumPy array.

    Parameters
    ----------
    a : array_like, numba device array, or object with ``__cuda_array_interface__``

    Returns
    -------
    numba device array or ndarray
        Has ``.shape``, ``.dtype``, ``.ndim``, ``.strides``.
    """
    if is_device(a):
        return device_view(a)
    return np.asarray(a)


def as_operand(a, dtype):
    """``a`` as a C-contiguous device array of ``dtype``; no copy if it already is one.

    For arrays the kernels only read (weights, states): host arrays are copied
    to the device, device arrays of another dtype or layout copied there.
    """
    dtype = np.dtype(dtype)
    if not is_device(a):
        return cuda.to_device(np.ascontiguousarray(a, dtype=dtype))
    d_a = device_view(a)
    if d_a.dtype == dtype and d_a.is_c_contiguous():
        return d_a
    d_out = empty(d_a.shape, dtype)
    ew.copy(d_a, d_out)
    return d_out


def copy_as(a, dtype):
    """A new C-contiguous device array of ``dtype`` holding ``a`` (host or device, 1-d to 3-d)."""
    dtype = np.dtype(dtype)
    if not is_device(a):
        return cuda.to_device(np.array(a, dtype=dtype, order="C", copy=True))
    d_a = device_view(a)
    d_out = empty(d_a.shape, dtype)
    ew.copy(d_a, d_out)
    return d_out


def to_user(a, on_device=False):
    """``a`` itself if ``on_device``, else a NumPy copy."""
    return a if on_device else a.copy_to_host()


def swap_first_axes(d_a):
    """The (n1, n0, n2) view of an (n0, n1, n2) device array, without a copy."""
    if _SIMULATOR:
        return d_a.transpose((1, 0, 2))
    s0, s1, s2 = d_a.strides
    n0, n1, n2 = d_a.shape
    # the way numba-cuda's own reshape makes a view: the same memory, other strides
    return type(d_a)(shape=(n1, n0, n2), strides=(s1, s0, s2), dtype=d_a.dtype,
                     gpu_data=d_a.gpu_data)


def view_internal(a, order, time_major, dtype):
    """(T, B, F) view of a C-contiguous device array in the compute dtype, else None.

    Inference reads x in place: the kernels take the strided (T, B, F) view of
    a batch-first array (``forward_layer`` projects it in (b, t) row order), so
    no permutation launch and no copy. Host arrays are copied by ``to_internal``.
    """
    if order is not None or not is_device(a):
        return None
    d_a = device_view(a)
    if d_a.dtype != np.dtype(dtype) or not d_a.is_c_contiguous():
        return None
    return d_a if time_major else swap_first_axes(d_a)


def empty_batch_first(shape, dtype):
    """A new (B, T, F) device array and its (T, B, F) view, for the kernels to write y into."""
    d_out = empty(shape, dtype)
    return d_out, swap_first_axes(d_out)


def expand_dims(a, axis):
    """``a`` with a new axis of length 1 at ``axis`` (device arrays cannot be indexed with None).

    A view if ``a`` is C-contiguous (or on the host), else a contiguous copy.
    """
    if not is_device(a):
        return np.expand_dims(np.asarray(a), axis)
    d_a = device_view(a)
    shape = list(d_a.shape)
    shape.insert(axis if axis >= 0 else len(shape) + 1 + axis, 1)
    if not d_a.is_c_contiguous():
        d_c = empty(d_a.shape, d_a.dtype)
        ew.copy(d_a, d_c)
        d_a = d_c
    return d_a.reshape(tuple(shape))


def _order_on_device(order, B):
    """``order`` (or the identity) as an int64 device array."""
    if order is None:
        return shared_arrays.identity_order(B)
    return cuda.to_device(np.ascontiguousarray(order, dtype=np.int64))


def to_internal(a, order, time_major, dtype):
    """User (B, T, F) or (T, B, F) [``time_major``] -> new C-contiguous (T, B, F) device array.

    ``out[t, r] = a[order[r], t]`` (or ``a[t, order[r]]``), cast to ``dtype``;
    ``order`` is an int64 host array or None (identity). Host input is permuted
    on the host and copied once.
    """
    dtype = np.dtype(dtype)
    if not is_device(a):
        tm = np.asarray(a) if time_major else np.asarray(a).swapaxes(0, 1)
        if order is not None:
            tm = tm[:, order]
        return cuda.to_device(np.ascontiguousarray(tm, dtype=dtype))
    d_a = device_view(a)
    T, B = (d_a.shape[0], d_a.shape[1]) if time_major else (d_a.shape[1], d_a.shape[0])
    d_out = empty((T, B, d_a.shape[2]), dtype)
    if d_out.size:
        blocks, threads = launch_shape(d_out.size)
        _permute_kernel[blocks, threads](d_a, time_major, _order_on_device(order, B), d_out)
    return d_out


def from_internal(a, order, time_major, on_device):
    """Inverse of :func:`to_internal`: (T, B, F) sorted -> the user's layout.

    ``out[order[r], t] = a[t, r]`` (or ``out[t, order[r]]``); a new device
    array if ``on_device``, else a NumPy array.
    """
    T, B, F = a.shape
    if order is None and time_major:
        return a if on_device else a.copy_to_host()
    d_out = empty((T, B, F) if time_major else (B, T, F), a.dtype)
    _unpermute(a, order, time_major, d_out)
    return d_out if on_device else d_out.copy_to_host()


def scatter_rows(src, order, out):
    """``out[t, order[r]] = src[t, r]`` for (T, B, F) device arrays (``out`` may be a strided view)."""
    _unpermute(src, order, True, out)


def _unpermute(src, order, time_major, out):
    """``out[t, order[r]]`` (or ``out[order[r], t]``) ``= src[t, r]``: one launch, none for an empty ``src``."""
    if src.size:
        blocks, threads = launch_shape(src.size)
        _unpermute_kernel[blocks, threads](src, time_major, _order_on_device(order, src.shape[1]), out)


def reverse_sequences(src, lengths, out):
    """``out[t, b] = src[lengths[b]-1-t, b]`` for ``t < lengths[b]``, else 0 ((T, B, F) device arrays)."""
    if out.size:
        blocks, threads = launch_shape(out.size)
        d_lengths = cuda.to_device(np.ascontiguousarray(lengths, dtype=np.int64))
        _reverse_kernel[blocks, threads](src, d_lengths, out)


def zero_padding(a, lengths):
    """``a[t, b] = 0`` for ``t >= lengths[b]`` in a (T, B, F) device array, in place."""
    if a.size:
        blocks, threads = launch_shape(a.size)
        d_lengths = cuda.to_device(np.ascontiguousarray(lengths, dtype=np.int64))
        _zero_padding_kernel[blocks, threads](a, d_lengths)


def finite_each(arrays):
    """One bool per array (host or device): True if it holds no NaN or Inf.

    Host arrays are checked on the host; the device arrays share one flag
    array and one copy back (:func:`nblstm.cuda.elementwise.nonfinite_each`).
    """
    result = [None] * len(arrays)
    on_device = []
    for i, a in enumerate(arrays):
        if is_device(a):
            on_device.append(i)
        else:
            a = np.asarray(a)
            result[i] = a.dtype.kind not in "fc" or bool(np.isfinite(a).all())
    bad = ew.nonfinite_each([device_view(arrays[i]) for i in on_device]) if on_device else []
    for i, b in zip(on_device, bad):
        result[i] = not b
    return result


@kernel
def _permute_kernel(d_src, time_major, d_order, d_out):
    # out[t, r, f] = src[t, order[r], f] if time_major else src[order[r], t, f]
    T, B, F = d_out.shape
    for e in range(cuda.grid(1), T * B * F, cuda.gridsize(1)):
        t, r, f = unflatten3(e, B, F)
        if time_major:
            d_out[t, r, f] = d_src[t, d_order[r], f]
        else:
            d_out[t, r, f] = d_src[d_order[r], t, f]


@kernel
def _unpermute_kernel(d_src, time_major, d_order, d_out):
    # out[t, order[r], f] = src[t, r, f] if time_major else out[order[r], t, f] = src[t, r, f]
    T, B, F = d_src.shape
    for e in range(cuda.grid(1), T * B * F, cuda.gridsize(1)):
        t, r, f = unflatten3(e, B, F)
        if time_major:
            d_out[t, d_order[r], f] = d_src[t, r, f]
        else:
            d_out[d_order[r], t, f] = d_src[t, r, f]


@kernel
def _reverse_kernel(d_src, d_lengths, d_out):
    # out[t, b] = src[lengths[b] - 1 - t, b] for t < lengths[b], else 0
    T, B, F = d_out.shape
    for e in range(cuda.grid(1), T * B * F, cuda.gridsize(1)):
        t, r, f = unflatten3(e, B, F)
        n = d_lengths[r]
        if t < n:
            d_out[t, r, f] = d_src[n - 1 - t, r, f]
        else:
            d_out[t, r, f] = 0


@kernel
def _zero_padding_kernel(d_a, d_lengths):
    # a[t, b] = 0 for t >= lengths[b]
    T, B, F = d_a.shape
    for e in range(cuda.grid(1), T * B * F, cuda.gridsize(1)):
        t, r, f = unflatten3(e, B, F)
        if t >= d_lengths[r]:
            d_a[t, r, f] = 0
