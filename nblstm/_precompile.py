"""``nblstm.precompile``: compile the CPU kernels ahead of their first use."""
import time

import numba
import numpy as np

from . import _api, cpu
from . import params as _params
from ._compile_log import logger

__all__ = ["precompile"]

_DTYPES = ("float32", "float64")


def precompile(dtypes=("float32", "float64"), paths=None):
    """Compile the CPU backend's kernels for these dtypes and step paths now, into numba's cache.

    numba compiles each kernel on its first call with new argument types and
    keeps the machine code in its disk cache, so a cold cache costs seconds
    of compiling per path and dtype, spread over the first calls (logged at
    INFO by ``logging.getLogger("nblstm")``). Run this once where the cache
    is built (a container image, each worker of a cluster before its first
    task), and later processes load the code instead of compiling it. Each
    path runs a few small calls of every kind that takes its own kernels:
    one layer with unsorted ``lengths``, ``reverse``, a bidirectional stack
    of two layers, time-major input, inference and forward + backward, and
    every driver of the path (one row and several; on ``"slices"``, row
    blocks and slices of units); then a one-sequence call, the lean path.

    Parameters
    ----------
    dtypes : sequence of {"float32", "float64"} or numpy dtypes
        The dtypes to compile for.
    paths : sequence of str, or None
        Step paths of :data:`nblstm.cpu.PATHS` (``"serial"``, ``"tiles"``,
        ``"blas"``, ``"slices"``); None for all. ``"slices"`` compiles with
        MKL's route where MKL is installed (:func:`nblstm.cpu.mkl_slices`),
        with numba's loops otherwise.

    Returns
    -------
    dict
        Seconds taken per ``(path, dtype name)``, and per ``("lean", dtype name)``.

    Raises
    ------
    ValueError
        A dtype other than float32 or float64, or a path not in
        :data:`nblstm.cpu.PATHS`; the message names the argument.
    TypeError
        ``dtypes`` or ``paths`` is a single string, not a sequence.

    See Also
    --------
    nblstm.show_config : The path a layer of given sizes takes.

    Notes
    -----
    numba's cache sits next to nblstm's modules (or under ``NUMBA_CACHE_DIR``)
    and is keyed by CPU and numba version: build it on the machine type that
    will use it. The serial twins that a fork child or a concurrent thread
    may run (:mod:`nblstm.cpu._jit`) compile on their first use.
    docs/compile-time.md gives the times.
    """
    dtypes = [_dtype_name(d) for d in _sequence("dtypes", dtypes)]
    paths = list(cpu.PATHS) if paths is None else _sequence("paths", paths)
    for path in paths:
        if path not in cpu.PATHS:
            raise ValueError(f"paths: expected names from {cpu.PATHS}, got {path!r}")
    seconds = {}
    for dtype in dtypes:
        for path in paths:
            t0 = time.perf_counter()
            # slices: one slice of all units in row blocks (small H), then slices of units
            max_H = (cpu.config.row_blocks_max_H, 0) if path == "slices" else (None,)
            for row_blocks_max_H in max_H:
                knobs = {"path": path}
                if row_blocks_max_H is not None:
                    knobs["row_blocks_max_H"] = row_blocks_max_H
                with cpu.config.override(**knobs):
                    _calls(dtype)
            seconds[path, dtype] = time.perf_counter() - t0
            logger.info("precompiled the %r path for %s in %.1f s", path, dtype, seconds[path, dtype])
        t0 = time.perf_counter()
        _lean_calls(dtype)
        seconds["lean", dtype] = time.perf_counter() - t0
        logger.info("precompiled the lean path for %s in %.1f s", dtype, seconds["lean", dtype])
    return seconds


def _sequence(name, value):
    if isinstance(value, (str, bytes)):
        raise TypeError(f"{name}: expected a sequence (a list or tuple), got the string {value!r}")
    return list(value)


def _dtype_name(dtype):
    try:
        name = np.dtype(dtype).name
    except TypeError:
        name = None
    if name not in _DTYPES:
        raise ValueError(f"dtypes: expected float32 or float64, got {dtype!r}")
    return name


def _calls(dtype):
    """The calls that reach every kernel of the forced path: batches of one row and of several."""
    rng = np.random.default_rng(0)
    I, H, T = 3, 8, 4
    layer = _params.init_params(I, H, seed=0, dtype=dtype)
    stack = _params.init_stack(I, H, 2, bidirectional=True, seed=0, dtype=dtype)
    for B in (1, 2 * numba.get_num_threads() + 1):
        x = rng.standard_normal((B, T, I)).astype(dtype)
        lengths = (3 * np.arange(B) + 1) % (T + 1)            # unsorted, with T and with 0
        for p, kw in ((layer, {"lengths": lengths}), (layer, {"reverse": True}), (stack, {}),
                      (stack, {"lengths": lengths}), (layer, {"lengths": lengths, "reverse": True}),
                      (layer, {"time_major": True})):
            xi = x.swapaxes(0, 1) if kw.get("time_major") else x
            # the gathers into sorted order run on the pool that ran the last layer: both
            for last in ("blas", "serial"):
                cpu.plan.record_path(last)
                _api.lstm(xi, p, **kw)
                cpu.plan.record_path(last)
                y, state, cache = _api.lstm_forward(xi, p, **kw)
                _api.lstm_backward(cache, dy=np.ones_like(y), dh_n=np.ones_like(state[0]),
                                   dc_n=np.ones_like(state[1]))


def _lean_calls(dtype):
    """One unbatched sequence with the path chosen by size: the lean path of nblstm._lean."""
    p = _params.init_params(3, 8, seed=0, dtype=dtype)
    x = np.zeros((4, 3), dtype)
    _api.lstm(x, p)
    y, state, cache = _api.lstm_forward(x, p)
    _api.lstm_backward(cache, dy=np.ones_like(y))
