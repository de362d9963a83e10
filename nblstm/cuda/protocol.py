"""The backend protocol of docs/backends.md for device arrays.

Host code only: it allocates workspaces, reads :data:`nblstm.cuda.config` and
launches the kernels of :mod:`~nblstm.cuda.matmul`, :mod:`~nblstm.cuda.forward`,
:mod:`~nblstm.cuda.backward` and :mod:`~nblstm.cuda.elementwise`.

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

from . import constants, workspace
from . import elementwise as ew
from .backward import backward_recurrence
from .forward import forward_recurrence
from .matmul import matmul

_SIMULATOR = bool(getattr(numba.config, "ENABLE_CUDASIM", 0))

__all__ = ["empty", "zeros", "zeros_input", "scratch", "asarray", "is_device", "as_operand", "copy_as",
           "to_user", "expand_dims", "view_internal", "empty_batch_first",
           "to_internal", "from_internal", "reverse_sequences", "add", "finite_each",
           "forward_layer", "backward_layer"]


def empty(shape, dtype):
    """Uninitialised C-contiguous device array."""
    return cuda.device_array(shape, np.dtype(dtype))


def scratch(name, shape, dtype):
    """An array no result refers to, kept per thread and name (:mod:`.workspace`)."""
    return workspace.scratch(name, shape, dtype)


def zeros(shape, dtype):
    """Zero-filled C-contiguous device array."""
    d_out = empty(shape, dtype)
    ew.fill(d_out, 0)
    return d_out


def zeros_input(shape, dtype):
    """Zeros that the kernels only read (a state the user left out), shared between calls."""
    return constants.zeros(shape, dtype)


def is_device(a):
    """True for device memory: numba device arrays and ``__cuda_array_interface__`` objects."""
    return cuda.devicearray.is_cuda_ndarray(a) or hasattr(a, "__cuda_array_interface__")


def _device_view(a):
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
        return _device_view(a)
    return np.asarray(a)


def _on_device(a, dtype):
    """``a`` as a C-contiguous device array of ``dtype``: no copy if it already is one."""
    dtype = np.dtype(dtype)
    if not is_device(a):
        return cuda.to_device(np.ascontiguousarray(a, dtype=dtype))
    d_a = _device_view(a)
    if d_a.dtype == dtype and d_a.is_c_contiguous():
        return d_a
    d_out = empty(d_a.shape, dtype)
    ew.copy(d_a, d_out)
    return d_out


def as_operand(a, dtype):
    """``a`` as a C-contiguous device array of ``dtype``; no copy if it already is one.

    For arrays the kernels only read (inference weights).
    """
    return _on_device(a, dtype)


def copy_as(a, dtype):
    """A new C-contiguous device array of ``dtype`` holding ``a`` (host or device, 1-d to 3-d)."""
    dtype = np.dtype(dtype)
    if not is_device(a):
        return cuda.to_device(np.array(a, dtype=dtype, order="C", copy=True))
    d_a = _device_view(a)
    d_out = empty(d_a.shape, dtype)
    ew.copy(d_a, d_out)
    return d_out


def to_user(a, on_device=False):
    """``a`` itself if ``on_device``, else a NumPy copy."""
    return a if on_device else a.copy_to_host()


def _swap_first_axes(d_a):
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
    d_a = _device_view(a)
    if d_a.dtype != np.dtype(dtype) or not d_a.is_c_contiguous():
        return None
    return d_a if time_major else _swap_first_axes(d_a)


def empty_batch_first(shape, dtype):
    """A new (B, T, F) device array and its (T, B, F) view, for the kernels to write y into."""
    d_out = empty(shape, dtype)
    return d_out, _swap_first_axes(d_out)


def expand_dims(a, axis):
    """``a`` with a new axis of length 1 at ``axis`` (device arrays cannot be indexed with None).

    A view if ``a`` is C-contiguous (or on the host), else a contiguous copy.
    """
    if not is_device(a):
        return np.expand_dims(np.asarray(a), axis)
    d_a = _device_view(a)
    shape = list(d_a.shape)
    shape.insert(axis if axis >= 0 else len(shape) + 1 + axis, 1)
    if not d_a.is_c_contiguous():
        d_c = empty(d_a.shape, d_a.dtype)
        ew.copy(d_a, d_c)
        d_a = d_c
    return d_a.reshape(tuple(shape))


def _order_on_device(order, B):
    if order is None:
        return constants.identity_order(B)
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
    d_a = _device_view(a)
    T, B = (d_a.shape[0], d_a.shape[1]) if time_major else (d_a.shape[1], d_a.shape[0])
    d_out = empty((T, B, d_a.shape[2]), dtype)
    ew.permute_batch(d_a, time_major, _order_on_device(order, B), d_out)
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
    ew.unpermute_batch(a, time_major, _order_on_device(order, B), d_out)
    return d_out if on_device else d_out.copy_to_host()


def reverse_sequences(src, lengths, out):
    """``out[t, b] = src[lengths[b]-1-t, b]`` for ``t < lengths[b]``, else 0 ((T, B, F) device arrays)."""
    ew.reverse_sequences(src, cuda.to_device(np.ascontiguousarray(lengths, dtype=np.int64)), out)


def zero_padding(a, lengths):
    """``a[t, b] = 0`` for ``t >= lengths[b]`` in a (T, B, F) device array, in place."""
    ew.zero_padding(a, cuda.to_device(np.ascontiguousarray(lengths, dtype=np.int64)))


def add(a, b, out):
    """``out = a + b`` for same-shape device arrays."""
    ew.add(a, b, out)


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
    bad = ew.nonfinite_each([_device_view(arrays[i]) for i in on_device]) if on_device else []
    for i, b in zip(on_device, bad):
        result[i] = not b
    return result


def forward_layer(x, W_ih, W_hh, b, h0, c0, lengths, y, h_n, c_n, gates, cells):
    """One forward-direction layer; see docs/backends.md.

    Parameters
    ----------
    x : device array, shape (T, B, I)
        C-contiguous, or the (T, B, I) view of a C-contiguous (B, T, I) array
        (``view_internal``).
    W_ih : (4H, I), W_hh : (4H, H), b : (4H,)
        Device arrays (host arrays are copied).
    h0, c0 : device arrays, shape (B, H)
    lengths : ndarray of int64, shape (B,), non-increasing (host)
    y : device array, shape (T, B, H)
        Output; may be a strided view.
    h_n, c_n : device arrays, shape (B, H)
        Outputs: state after each row's last valid step.
    gates : device array, shape (T, B, 4H), C-contiguous, or None
    cells : device array, shape (T, B, H), or None
        Outputs for training (post-activation gates, c_t), or None for inference.
    """
    T, B, I = x.shape
    H = W_hh.shape[1]
    dtype = y.dtype
    d_W_ih, d_W_hh, d_b = (_on_device(a, dtype) for a in (W_ih, W_hh, b))
    x_batch_first = _batch_first_source(x, dtype) if gates is None else None
    if x_batch_first is not None:
        # x is the (T, B, I) view of the caller's (B, T, I) array (view_internal):
        # project its rows in (b, t) order, and let the recurrence read xz through
        # the same kind of view
        d_xz_bf = workspace.scratch("xz_batch_first", (B, T, 4 * H), dtype)
        d_in, d_xz_rows = x_batch_first.reshape(B * T, I), d_xz_bf.reshape(B * T, 4 * H)
        d_xz = _swap_first_axes(d_xz_bf)
    else:
        d_xz = gates if gates is not None else workspace.scratch("xz", (T, B, 4 * H), dtype)
        d_in, d_xz_rows = _on_device(x, dtype).reshape(T * B, I), d_xz.reshape(T * B, 4 * H)
    if T * B:
        # xz[t, b] = W_ih x[t, b] + b for all steps at once
        matmul(d_in, d_W_ih, d_xz_rows, trans_b=True, d_bias=d_b)
    forward_recurrence(d_xz, d_W_hh, _on_device(h0, dtype), _on_device(c0, dtype), lengths,
                       y, h_n, c_n, gates, cells)


def _batch_first_source(x, dtype):
    """The C-contiguous (B, T, I) array that ``x`` is the swapped view of, or None."""
    if not is_device(x) or x.dtype != np.dtype(dtype) or x.ndim != 3:
        return None
    d_x = _device_view(x)
    if d_x.is_c_contiguous() or d_x.size == 0:
        return None
    d_bf = _swap_first_axes(d_x)
    return d_bf if d_bf.is_c_contiguous() else None


def backward_layer(x, W_ih, W_hh, h0, c0, lengths, gates, cells, dy, dh_n, dc_n,
                   dx, dW_ih, dW_hh, db, dh0, dc0):
    """BPTT through one forward-direction layer; see docs/backends.md.

    Parameters
    ----------
    x : device array, shape (T, B, I)
    W_ih : (4H, I), W_hh : (4H, H)
    h0, c0 : device arrays, shape (B, H)
    lengths : ndarray of int64, shape (B,), non-increasing (host)
    gates : (T, B, 4H), cells : (T, B, H)
        From :func:`forward_layer`.
    dy : device array, shape (T, B, H), may be strided
    dh_n, dc_n : device arrays, shape (B, H)
    dx : (T, B, I); dW_ih : (4H, I); dW_hh : (4H, H); db : (4H,); dh0, dc0 : (B, H)
        Outputs, overwritten. dx is exactly 0 at padded steps.
    """
    T, B, I = x.shape
    H = W_hh.shape[1]
    dtype = dx.dtype
    d_x = _on_device(x, dtype)
    d_W_ih, d_W_hh = _on_device(W_ih, dtype), _on_device(W_hh, dtype)
    d_dz = workspace.scratch("dz", (T, B, 4 * H), dtype)
    d_hprev = workspace.scratch("h_prev", (T, B, H), dtype)
    backward_recurrence(d_W_hh, _on_device(h0, dtype), _on_device(c0, dtype), lengths,
                        gates, cells, dy, _on_device(dh_n, dtype), _on_device(dc_n, dtype), dc0,
                        d_dz, d_hprev, dh0)
    d_dz2 = d_dz.reshape(T * B, 4 * H)
    _matmul_into(d_dz2, d_x.reshape(T * B, I), dW_ih, trans_a=True)       # dW_ih = dZ^T X
    _matmul_into(d_dz2, d_hprev.reshape(T * B, H), dW_hh, trans_a=True)   # dW_hh = dZ^T H_prev
    # db = sum over rows of dZ: the same kernel against a column of ones, so the
    # sum runs over the rows in order like every other reduction here
    _matmul_into(d_dz2, constants.ones(T * B, dtype), db, trans_a=True)
    _matmul_into(d_dz2, d_W_ih, dx)                                       # dx = dZ W_ih


def _matmul_into(d_a, d_b, d_out, trans_a=False):
    """matmul into ``d_out`` of any shape with ``M`` rows first, e.g. (T, B, I) or (4H,)."""
    M = d_a.shape[1] if trans_a else d_a.shape[0]
    N = d_b.shape[1]
    if d_out.is_c_contiguous():
        matmul(d_a, d_b, d_out.reshape(M, N), trans_a=trans_a)
        return
    d_tmp = empty(d_out.shape, d_out.dtype)
    matmul(d_a, d_b, d_tmp.reshape(M, N), trans_a=trans_a)
    ew.copy(d_tmp, d_out)
