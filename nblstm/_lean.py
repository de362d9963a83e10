"""The lean call path: one sequence through one layer on the CPU, with little Python.

Online filtering, control loops and step-by-step forecasts call ``lstm`` with
one sequence and a few steps, where the general path's Python (normalising a
stack, sorting a batch, layouts, scratch, per-layer dispatch) cost many times
the arithmetic. :func:`forward` takes the calls that are plainly valid and need
none of that, and hands everything else back (None) to ``nblstm._api._run``:

- it raises nothing itself. Any argument it does not recognise as valid at a
  glance (another type, dtype, shape, layout, a read-only array, NaN or Inf
  with ``check_finite``) goes to the general path, whose validation raises the
  same errors as before. Every check there still runs for every input that
  could fail it; this path only skips them for inputs that pass;
- its results are the general path's bits: it runs the CPU backend's
  ``"blas"`` layer path (the one ``choose_path`` takes for one sequence) in
  one compiled call, ``nblstm.cpu._single.forward_one_sequence``, which also
  does the finiteness check.
"""
from __future__ import annotations

import numpy as np

from ._batch import BatchLayout
from ._cache import CachedDirection, LSTMCache
from .params import LSTMParams

_FLOATS = (np.dtype(np.float32), np.dtype(np.float64))
_EMPTY = {dtype: np.empty((0, 0, 0), dtype) for dtype in _FLOATS}


def _cpu():
    """The CPU backend's config, plan and one-sequence kernel, imported on first use (as _api does)."""
    global _CPU
    if _CPU is None:
        from .cpu import _single, plan
        from .cpu._fork import layers_in_flight
        from .cpu.config import config
        _CPU = config, plan, _single, layers_in_flight
    return _CPU


_CPU = None


def _plain(a, dtype):
    """An ndarray of ``dtype`` that the kernels take as it is (C-contiguous, writeable)."""
    return type(a) is np.ndarray and a.dtype == dtype and a.flags.c_contiguous and a.flags.writeable


def forward(x, params, h0, c0, lengths, reverse, time_major, backend, check_finite, keep_cache):
    """``_run``'s result for a plainly valid one-sequence, one-layer CPU call; else None."""
    if (type(backend) is not str or backend != "cpu" or lengths is not None or reverse is not False
            or type(params) is not LSTMParams or type(time_major) is not bool
            or type(check_finite) is not bool or type(x) is not np.ndarray):
        return None
    dtype = x.dtype
    W_ih, W_hh, b = params
    if not (dtype in _FLOATS and _plain(x, dtype) and _plain(W_ih, dtype) and _plain(W_hh, dtype)
            and _plain(b, dtype) and W_hh.ndim == 2 and W_ih.ndim == 2 and b.ndim == 1):
        return None
    H4, H = W_hh.shape
    I = W_ih.shape[1]
    if H == 0 or H4 != 4 * H or W_ih.shape[0] != H4 or I == 0 or b.shape[0] != H4:
        return None
    unbatched = x.ndim == 2
    if unbatched:
        T, B = x.shape[0], 1
        state_shape = (H,)
    elif x.ndim == 3:
        T, B = (x.shape[0], x.shape[1]) if time_major else (x.shape[1], x.shape[0])
        state_shape = (1, H)
    else:
        return None
    if B != 1 or T == 0 or x.shape[-1] != I:
        return None
    for s in (h0, c0):
        if s is not None and not (_plain(s, dtype) and s.shape == state_shape):
            return None
    config, plan, _single, layers_in_flight = _cpu()
    if plan.choose_path(1, H) != "blas":
        return None

    if keep_cache:
        # the cache owns copies: the user may change their arrays before the backward
        x_steps = np.array(x.reshape(T, 1, I), order="C", copy=True)
        W_ih, W_hh, b = (np.array(a, order="C", copy=True) for a in (W_ih, W_hh, b))
        gates, cells = np.empty((T, 1, H4), dtype), np.empty((T, 1, H), dtype)
    else:
        x_steps = x.reshape(T, 1, I)
        gates = cells = _EMPTY[dtype]
    h0t, c0t = (np.zeros((1, H), dtype) if s is None else
                (np.array(s.reshape(1, H), copy=True) if keep_cache else s.reshape(1, H))
                for s in (h0, c0))
    if unbatched or time_major:
        y_user = np.empty((T, 1, H), dtype)
        y_steps = y_user
    else:
        y_user = np.empty((1, T, H), dtype)
        y_steps = y_user.swapaxes(0, 1)
    h_n, c_n = np.empty((1, 1, H), dtype), np.empty((1, 1, H), dtype)
    chunk = max(1, min(T, config.chunk_elements // H4))
    with layers_in_flight:
        finite = _single.forward_one_sequence(x_steps, W_ih, W_hh, b, h0t, c0t, y_steps, h_n[0], c_n[0],
                                              gates, cells, keep_cache, check_finite, chunk)
    if not finite:
        return None                       # NaN or Inf: the general path names the argument
    plan.record_path("blas")              # as plan.plan records for the path forward_layer ran
    if unbatched:
        y, h_out, c_out = y_user[:, 0], h_n[0, 0], c_n[0, 0]
    else:
        y, h_out, c_out = y_user, h_n[0], c_n[0]
    cache = None
    if keep_cache:
        # the cache _run makes for the same call: one layer, one forward direction, all T steps
        layers = [[CachedDirection(x_steps, LSTMParams(W_ih, W_hh, b), h0t, c0t, gates, cells, False)]]
        batch = BatchLayout.of(None, 1, T, time_major, unbatched)
        cache = LSTMCache("cpu", layers, batch, True, False, dtype, (I, H, 1, 1))
    return y, (h_out, c_out), cache
