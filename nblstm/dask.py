"""nblstm on Dask: chunked inference over dask arrays and data-parallel gradients.

Needs the ``dask`` extra (``pip install "nblstm[dask]"``); nothing else in nblstm
imports this module or Dask. Everything runs on Dask's own schedulers (the threaded
one, a ``distributed`` LocalCluster, or a remote cluster): this module only builds
task graphs. docs/dask.md is the user guide.

:func:`lstm` builds the graph the way ``dask.array.cumreduction`` builds its
sequential scan: a dict of tasks per (batch chunk, time chunk) in which each task
takes the state the previous time chunk's task returned, wrapped in a
``HighLevelGraph`` and returned as ``dask.array.Array`` objects. Every task runs
:func:`nblstm.lstm` on one chunk.
"""
from __future__ import annotations

import os
from contextlib import contextmanager
from operator import getitem

import dask
import dask.array as da
import numba
import numpy as np
from dask.base import tokenize
from dask.highlevelgraph import HighLevelGraph

from . import _validate as v
from . import cpu
from ._api import lstm as _lstm
from .cpu.plan import numba_threads
from .params import LSTMParams

__all__ = ["lstm", "map_grad"]


# --- threads -----------------------------------------------------------------------

def _default_threads():
    """Threads per task when the caller gives none: Dask's own BLAS setting.

    distributed's nanny starts every worker with OMP_NUM_THREADS=1 (and the same
    for OpenBLAS and MKL; its ``distributed.nanny.pre-spawn-environ``), because
    Dask already runs one task per thread of the worker; nblstm follows the same
    setting for numba's threads.
    """
    try:
        return max(1, int(os.environ.get("OMP_NUM_THREADS", "1")))
    except ValueError:
        return 1


def _resolve_threads(threads):
    n = _default_threads() if threads is None else threads
    return min(n, numba.config.NUMBA_NUM_THREADS)


@contextmanager
def _thread_share(threads):
    """Run the body of a task with ``threads`` numba threads.

    numba.set_num_threads is per calling thread, so concurrent tasks in one
    process each get their own setting, and the thread's own is restored.
    BLAS's limit is not set here: OpenBLAS ignored threadpoolctl's limit when
    it was set from a scheduler's pool thread (it holds when set from the
    thread that starts the compute; see map_grad).
    """
    with numba_threads(_resolve_threads(threads)):
        yield


def _threads_arg(threads):
    if threads is None:
        return None
    n = v.index("threads", threads)
    if n < 1:
        v.fail("threads", "None or an integer >= 1", repr(threads))
    return n


# --- inference ---------------------------------------------------------------------

def _initial_state(h0, c0):
    """(h, c) of one batch chunk from (1, b, H) blocks; None stays None (zeros)."""
    return (None if h0 is None else h0[0]), (None if c0 is None else c0[0])


def _chunk_lengths(lengths, t0, steps, T):
    """Valid steps of each row inside the time chunk [t0, t0 + steps)."""
    if lengths is None:
        return None
    # a dask lengths' values are known only here, when its chunk is computed
    lengths = np.asarray(lengths)
    v.lengths_dtype(lengths.dtype)
    v.lengths_range(lengths, T)
    return np.clip(lengths.astype(np.int64) - t0, 0, steps)


def _step(p, x, state, lengths, t0, T, reverse, time_major, check_finite, threads):
    """One layer direction over one (batch chunk, time chunk): (y, (h_n, c_n)).

    Rows whose sequence ended before t0 have no valid step here, so nblstm.lstm
    returns their state unchanged and zeros in y; a reverse direction starts
    each row at its last valid step, which lies in this chunk or an earlier one.
    """
    h, c = state
    local = _chunk_lengths(lengths, t0, x.shape[0 if time_major else 1], T)
    with _thread_share(threads):
        return _lstm(x, p, h, c, lengths=local, reverse=reverse, time_major=time_major,
                     check_finite=check_finite)


def _state_block(state, i):
    return state[i][None]


def _dask_state(name, s, shape, bchunks, B):
    """h0 / c0 as a dask array (L*D, B, H) chunked (1, x's batch chunks, H)."""
    if isinstance(s, da.Array):
        v.float_dtype(name, s.dtype)
        if tuple(s.shape) != tuple(shape):
            v.fail(name, f"shape {tuple(shape)}", f"shape {tuple(s.shape)}")
    else:
        s = v.state(name, s, shape, cpu)
    s = s.reshape((-1, B, s.shape[-1]))
    if isinstance(s, da.Array):
        if s.chunks[1] != bchunks:
            v.fail(name, f"chunks {bchunks} along the batch axis, like x", f"chunks {s.chunks[1]}")
        return s.rechunk((1, bchunks, -1))
    return da.from_array(np.asarray(s), chunks=(1, bchunks, -1))


def _dask_lengths(lengths, B, T, bchunks, unbatched):
    if lengths is None:
        return None
    if not isinstance(lengths, da.Array):
        return da.from_array(v.lengths_array(lengths, B, T, unbatched), chunks=(bchunks,))
    v.lengths_dtype(lengths.dtype)
    if unbatched and lengths.ndim == 0:
        lengths = lengths.reshape(1)
    v.lengths_shape(lengths.shape, B)
    if lengths.chunks[0] != bchunks:
        v.fail("lengths", f"chunks {bchunks} along the batch axis, like x", f"chunks {lengths.chunks[0]}")
    return lengths


def lstm(x, params, h0=None, c0=None, *, lengths=None, reverse=False, time_major=False,
         check_finite=True, threads=None):
    """Run an LSTM over a dask array, lazily, one chunk per task.

    The result is :func:`nblstm.lstm` of the whole array (the state is carried
    from each time chunk to the next, never truncated), computed by tasks that
    each hold one chunk of x, y and the state. Chunks along the batch run in
    parallel; chunks along time run in order within each batch chunk, the
    reverse direction of a layer from the last time chunk to the first.

    .. math::

        z_t = W_{ih} x_t + W_{hh} h_{t-1} + b, \\quad
        c_t = f_t \\odot c_{t-1} + i_t \\odot g_t, \\quad
        h_t = o_t \\odot \\tanh(c_t)

    with the gates :math:`i, f, g, o` of :func:`nblstm.lstm`; the state
    :math:`(h, c)` after the last step of a time chunk is the initial state of
    the next one.

    Parameters
    ----------
    x : dask.array.Array or array_like, shape (B, T, I), (T, B, I) if ``time_major``, or (T, I)
        Input sequences, real floating point or integer. Any chunks along batch
        and time; one chunk along the feature axis. A NumPy array becomes one
        chunk.
    params : LSTMParams or sequence of layers
        As :func:`nblstm.lstm`: one layer, or a stack of layers each of one
        (unidirectional) or two (forward, reverse) LSTMParams. NumPy arrays,
        shipped once per compute as one graph key per layer direction.
    h0, c0 : dask.array.Array or array_like, optional
        Initial state, (B, H) for one LSTMParams, (L*D, B, H) for a stack ((H,)
        / (L*D, H) for unbatched x); zeros if None. A dask state must have x's
        chunks along the batch axis.
    lengths : dask.array.Array or array_like of int, shape (B,), optional
        Valid steps of each sequence, 0 <= lengths[b] <= T; honoured across
        time chunks (a sequence that ends inside a chunk keeps its state through
        the later chunks, and y is 0 there). A dask ``lengths`` must have x's
        chunks along the batch axis; its values are checked when its tasks run.
    reverse : bool
        Read every sequence from its last valid step back to step 0 (one
        LSTMParams only).
    time_major : bool
        ``x`` and ``y`` are (T, B, features).
    check_finite : bool
        Reject NaN and Inf: params and a NumPy h0/c0 now, x and dask states in
        the task that reads them (the error then comes from ``compute``).
    threads : int, optional
        The number of numba threads per task. Default: the ``OMP_NUM_THREADS`` of the process
        that runs the task (distributed's workers start with 1, as Dask already
        runs a task per thread of a worker), else 1. See docs/dask.md for BLAS's
        threads.

    Returns
    -------
    y : dask.array.Array, shape (B, T, D*H), (T, B, D*H) if ``time_major``, or (T, D*H)
        The h_t of the last layer at every valid step, 0 at padded steps; x's
        chunks along batch and time, one chunk along the features. dtype as
        :func:`nblstm.lstm` (float32 or float64).
    (h_n, c_n) : tuple of dask.array.Array, the shape of ``h0``
        State after each sequence's last valid step.

    Raises
    ------
    ValueError
        Before any task runs: shapes, a chunked feature axis, ``lengths``, ``h0``
        or ``c0`` chunked unlike x along the batch, ``reverse`` with a stack,
        non-finite params. When computed: non-finite x, out-of-range dask
        ``lengths``.
    TypeError
        Non-numeric dtypes, non-bool flags, ``threads`` not an integer; a
        masked array (a dask array of masked chunks: when computed).

    See Also
    --------
    nblstm.lstm : The same on in-memory arrays; each task calls it on one chunk.
    map_grad : Data-parallel gradients over the blocks of dask arrays.

    References
    ----------
    .. [1] S. Hochreiter and J. Schmidhuber, "Long Short-Term Memory", Neural
       Computation 9(8), 1997.
    .. [2] Dask Development Team, "Dask: Library for dynamic task scheduling",
       2016, https://dask.org; the graph follows ``dask.array.cumreduction``.

    Examples
    --------
    >>> import dask.array as da, numpy as np, nblstm, nblstm.dask
    >>> params = nblstm.init_params(3, 5, seed=0)
    >>> x = da.ones((4, 10, 3), chunks=(2, 5, 3))
    >>> y, (h_n, c_n) = nblstm.dask.lstm(x, params)
    >>> y.chunks
    ((2, 2), (5, 5), (5,))
    >>> bool(np.allclose(y.compute(scheduler="sync"), nblstm.lstm(np.ones((4, 10, 3)), params)[0]))
    True
    """
    reverse = v.flag("reverse", reverse)
    time_major = v.flag("time_major", time_major)
    check_finite = v.flag("check_finite", check_finite)
    threads = _threads_arg(threads)
    layers, single, I, H, D = v.stack(params, cpu)
    L = len(layers)
    if reverse and not single:
        v.fail("reverse", "False with a stack (its layers give the directions)", "True")
    if not isinstance(x, da.Array):
        x = da.asarray(v.array("x", x, cpu))
    v.float_dtype("x", x.dtype)
    if x.ndim not in (2, 3):
        layout = "(T, B, I)" if time_major else "(B, T, I)"
        v.fail("x", f"a 3-D dask array {layout} or a 2-D one (T, I)", f"{x.ndim}-D array of shape {x.shape}")
    if x.shape[-1] != I:
        v.fail("x", f"{I} features in the last axis (W_ih has shape (4H, {I}))", f"shape {x.shape}")
    if len(x.chunks[-1]) != 1:
        v.fail("x", "one chunk along the feature axis (rechunk it with {-1: -1})",
               f"chunks {x.chunks[-1]}")
    unbatched = x.ndim == 2
    if unbatched:
        x, time_major_run = x[:, None, :], True
    else:
        time_major_run = time_major
    b_axis, t_axis = (1, 0) if time_major_run else (0, 1)
    B, T = x.shape[b_axis], x.shape[t_axis]
    bchunks, tchunks = x.chunks[b_axis], x.chunks[t_axis]
    nb, nt = len(bchunks), len(tchunks)
    dtype = v.compute_dtype([x.dtype] + [a.dtype for layer in layers for p in layer for a in p])

    state_shape = ((B, H) if single else (L * D, B, H))
    if unbatched:
        state_shape = state_shape[:-2] + (H,)
    states = [None if s is None else _dask_state(name, s, state_shape, bchunks, B)
              for name, s in (("h0", h0), ("c0", c0))]
    lengths = _dask_lengths(lengths, B, T, bchunks, unbatched)
    if check_finite:
        named = [(f"params.{f}" if single else f"params[{l}][{d}].{f}", a)
                 for l, layer in enumerate(layers) for d, p in enumerate(layer)
                 for f, a in zip(LSTMParams._fields, p)]
        named += [(name, s) for name, s in zip(("h0", "c0"), (h0, c0))
                  if s is not None and not isinstance(s, da.Array)]
        v.finite(named, cpu)

    deps = [a for a in (x, lengths, *states) if a is not None]
    token = tokenize(x, [[tuple(p) for p in layer] for layer in layers], single, lengths, *states,
                     reverse, time_major, check_finite, threads)
    step, state, ydir, ycat = (f"nblstm-{what}-{token}" for what in ("step", "state", "ydir", "ycat"))
    pname = f"nblstm-params-{token}"
    starts = np.concatenate([[0], np.cumsum(tchunks)[:-1]]).tolist()
    dsk = {}

    def x_key(bi, ki):
        return (x.name, ki, bi, 0) if time_major_run else (x.name, bi, ki, 0)

    below = None      # the previous layer's output block key, by (bi, ki)
    for l, layer in enumerate(layers):
        for d, p in enumerate(layer):
            j = l * D + d
            # a copy: the result is the LSTM of the weights at call time
            dsk[(pname, l, d)] = (LSTMParams, *(np.array(a) for a in p))
            backwards = d == 1 or reverse
            for bi in range(nb):
                init = (state, "init", j, bi)
                dsk[init] = (_initial_state, *(None if s is None else (s.name, j, bi, 0) for s in states))
                prev = init
                for ki in (range(nt - 1, -1, -1) if backwards else range(nt)):
                    inp = x_key(bi, ki) if below is None else below(bi, ki)
                    dsk[(step, l, d, bi, ki)] = (
                        _step, (pname, l, d), inp, prev,
                        None if lengths is None else (lengths.name, bi),
                        starts[ki], T, backwards, time_major_run, check_finite, threads)
                    dsk[(ydir, l, d, bi, ki)] = (getitem, (step, l, d, bi, ki), 0)
                    prev = (state, l, d, bi, ki)
                    dsk[prev] = (getitem, (step, l, d, bi, ki), 1)
        if D == 1:
            def below(bi, ki, l=l):
                return (ydir, l, 0, bi, ki)
        else:
            for bi in range(nb):
                for ki in range(nt):
                    dsk[(ycat, l, bi, ki)] = (np.concatenate, [(ydir, l, 0, bi, ki), (ydir, l, 1, bi, ki)], -1)

            def below(bi, ki, l=l):
                return (ycat, l, bi, ki)

    def array(name, blocks, chunks):
        layer = dict(dsk)
        layer.update(blocks)
        graph = HighLevelGraph.from_collections(name, layer, dependencies=deps)
        return da.Array(graph, name, chunks, dtype=dtype, meta=np.empty((0,) * len(chunks), dtype))

    yname = f"nblstm-y-{token}"
    y = array(yname, {((yname, ki, bi, 0) if time_major_run else (yname, bi, ki, 0)): below(bi, ki)
                      for bi in range(nb) for ki in range(nt)},
              ((tchunks, bchunks) if time_major_run else (bchunks, tchunks)) + ((D * H,),))
    finals = []
    for i, what in enumerate(("h_n", "c_n")):
        name = f"nblstm-{what}-{token}"
        blocks = {}
        for l in range(L):
            for d in range(D):
                last = 0 if (d == 1 or reverse) else nt - 1
                for bi in range(nb):
                    blocks[(name, l * D + d, bi, 0)] = (_state_block, (state, l, d, bi, last), i)
        s = array(name, blocks, ((1,) * (L * D), bchunks, (H,)))
        if unbatched:
            s = s[:, 0]
        finals.append(s[0] if single else s)
    if unbatched:
        y = y[:, 0]
    return y, tuple(finals)


# --- gradients ---------------------------------------------------------------------

def _evaluate(fun, theta, threads, *blocks):
    """fun on one shard, as (float64 value, float64 gradient array)."""
    with _thread_share(threads):
        out = fun(theta, *blocks)
    if not (isinstance(out, tuple) and len(out) == 2):
        got = f"a tuple of {len(out)} items" if isinstance(out, tuple) else type(out).__name__
        v.fail("fun", "to return a tuple (value, grad)", got, TypeError)
    value, grad = out
    grad = np.array(grad, dtype=np.float64)
    if grad.shape != theta.shape:
        v.fail("fun", f"a gradient of theta's shape {theta.shape}", f"shape {grad.shape}")
    return np.float64(value), grad


def _sum(*parts):
    """Sum of (value, grad) pairs in their order (a fixed order: reproducible bits)."""
    value, grad = parts[0]
    grad = grad.copy()
    for v_i, g_i in parts[1:]:
        value = value + v_i
        grad += g_i
    return value, grad


def map_grad(fun, theta, *arrays, split_every=8, threads=None):
    """Sum ``fun(theta, *blocks) -> (value, grad)`` over the blocks of dask arrays.

    For a loss that is a sum over sequences the gradient is the sum of the
    shards' gradients:

    .. math::

        F(\\theta) = \\sum_k f(\\theta; X_k), \\qquad
        \\nabla F(\\theta) = \\sum_k \\nabla f(\\theta; X_k)

    where :math:`X_k` is the k-th block of every array along axis 0. Each block
    is evaluated where it lives (on the worker that holds it, under
    ``distributed``); only theta travels to the tasks, as one graph key per
    evaluation, and only (value, grad) pairs come back, summed in a tree of
    ``split_every`` pairs per task in a fixed order.

    Parameters
    ----------
    fun : callable
        ``fun(theta, *blocks) -> (value, grad)``: a float and an array of
        theta's shape. Define it at module level (it is pickled into every
        task); its data should come through ``arrays``.
    theta : array_like of float
        The point, sent once per evaluation.
    *arrays : dask.array.Array
        At least one; the same chunks along axis 0, one chunk along every
        other axis. Block k of each is passed to ``fun`` as ``blocks[i]``
        (shards of sequences, targets, lengths, ...).
    split_every : int
        Pairs summed per task of the reduction tree (>= 2).
    threads : int, optional
        The number of numba threads per task, as in :func:`lstm` (default: the
        ``OMP_NUM_THREADS`` of the process that runs the task, else 1). BLAS's
        threads in this process are limited to the same number during the
        compute (threadpoolctl), for the threaded scheduler's tasks.

    Returns
    -------
    value : numpy.float64
        Sum of the values.
    grad : ndarray of float64, theta's shape
        Sum of the gradients.

    Raises
    ------
    ValueError
        Before any task runs: no arrays, arrays chunked unlike ``arrays[0]``
        along axis 0 or in more than one chunk along another axis, 0-d arrays,
        ``split_every`` < 2. When computed: a gradient of the wrong shape.
    TypeError
        ``fun`` not callable, a complex or non-numeric ``theta``, an argument
        that is not a dask array, ``fun`` not returning a pair.

    See Also
    --------
    lstm : Chunked inference over dask arrays.
    nblstm.lstm_forward, nblstm.lstm_backward, nblstm.ravel : The pieces of an LSTM loss.
    scipy.optimize.minimize : Takes ``lambda th: map_grad(fun, th, *arrays)`` with ``jac=True``.

    References
    ----------
    .. [1] J. Dean et al., "Large Scale Distributed Deep Networks", NIPS 2012
       (data-parallel gradient sums with L-BFGS).

    Examples
    --------
    >>> import dask.array as da, numpy as np, nblstm.dask
    >>> x = da.arange(6.0, chunks=2)
    >>> def fun(theta, xb):            # sum over the block of (theta - x)^2
    ...     return ((theta - xb) ** 2).sum(), 2 * (theta - xb).sum(keepdims=True)
    >>> nblstm.dask.map_grad(fun, np.array([1.0]), x, threads=1)
    (np.float64(31.0), array([-18.]))
    """
    if not callable(fun):
        v.fail("fun", "a callable", type(fun).__name__, TypeError)
    theta = np.array(theta)
    v.float_dtype("theta", theta.dtype)
    theta = theta.astype(np.float64)
    # one array shared by every task of a threaded scheduler: no task may change it
    theta.flags.writeable = False
    split_every = v.index("split_every", split_every)
    if split_every < 2:
        v.fail("split_every", "an integer >= 2", repr(split_every))
    threads = _threads_arg(threads)
    if not arrays:
        v.fail("arrays", "at least one dask array", "none")
    for i, a in enumerate(arrays):
        if not isinstance(a, da.Array):
            v.fail(f"arrays[{i}]", "a dask.array.Array", type(a).__name__, TypeError)
        if a.ndim == 0:
            v.fail(f"arrays[{i}]", "an array with a batch axis 0", "a 0-d array")
        if a.chunks[0] != arrays[0].chunks[0]:
            v.fail(f"arrays[{i}]", f"chunks {arrays[0].chunks[0]} along axis 0, like arrays[0]",
                   f"chunks {a.chunks[0]}")
        for axis in range(1, a.ndim):
            if len(a.chunks[axis]) != 1:
                v.fail(f"arrays[{i}]", f"one chunk along axis {axis} (rechunk it with {{{axis}: -1}})",
                       f"chunks {a.chunks[axis]}")
    token = tokenize(fun, theta, threads, *arrays)
    theta_d = dask.delayed(theta, name=f"nblstm-theta-{token}")
    blocks = [a.to_delayed().ravel() for a in arrays]
    evaluate = dask.delayed(_evaluate, pure=True)
    add = dask.delayed(_sum, pure=True)
    parts = [evaluate(fun, theta_d, threads, *shard, dask_key_name=(f"nblstm-grad-{token}", k))
             for k, shard in enumerate(zip(*blocks))]
    level = 0
    while len(parts) > 1:
        parts = [add(*parts[i:i + split_every], dask_key_name=(f"nblstm-sum-{token}", level, i))
                 for i in range(0, len(parts), split_every)]
        level += 1
    # BLAS's pools are per process: limited from this thread they hold in the threaded
    # scheduler's pool; distributed's workers start with OPENBLAS_NUM_THREADS=1 anyway
    from threadpoolctl import threadpool_limits
    with threadpool_limits(limits=_resolve_threads(threads), user_api="blas"):
        (value, grad), = dask.compute(parts[0])
    return value, grad
