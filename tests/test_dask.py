"""nblstm.dask: chunked inference and data-parallel gradients on Dask's schedulers.

Oracles: nblstm.lstm on the in-memory array, and the single-process sum of the
shard losses. The distributed part shares one LocalCluster of two worker
processes (module fixture) and bounds every test with an alarm, so a hung
cluster fails the test instead of the CI job.
"""
from __future__ import annotations

import doctest
import functools
import importlib.util
import os
import pathlib
import pickle
import signal
import subprocess
import sys

import numpy as np
import pytest

import nblstm

from _helpers import assert_close, mixed_lengths

dask = pytest.importorskip("dask")
da = pytest.importorskip("dask.array")
distributed = pytest.importorskip("distributed")
import nblstm.dask as nd  # noqa: E402

RTOL = 1e-13
WORKTREE = pathlib.Path(nblstm.__file__).resolve().parent
EXAMPLES = WORKTREE.parent / "examples"


# --- module-level functions: workers import them from this module by name ---------

def lstm_loss(theta, x, target, lengths, *, unravel):
    """Sum of squared readout errors at the valid steps of one shard, and its gradient."""
    params, W_out = unravel(theta)
    y, _, cache = nblstm.lstm_forward(x, params, lengths=lengths)
    valid = (np.arange(x.shape[1]) < lengths[:, None])[..., None]
    err = (y @ W_out.T - target) * valid
    grads = nblstm.lstm_backward(cache, dy=2 * err @ W_out)
    dW_out = 2 * np.einsum("btk,bth->kh", err, y)
    return np.sum(err ** 2), nblstm.ravel((grads.dparams, dW_out))[0]


def die_once_then_loss(theta, x, target, lengths, *, unravel, marker):
    """lstm_loss, but the first call anywhere kills its own worker process."""
    try:
        fd = os.open(marker, os.O_CREAT | os.O_EXCL)
    except FileExistsError:
        return lstm_loss(theta, x, target, lengths, unravel=unravel)
    os.close(fd)
    os.kill(os.getpid(), signal.SIGKILL)


def quadratic(theta, x):
    """sum over the block of |theta - x_k|^2, and its gradient."""
    d = theta[:, None] - x
    return np.sum(d ** 2), 2 * d.sum(axis=1)


def thread_settings(theta, x):
    """(numba threads, BLAS threads) seen inside a task, as the 'value' and 'gradient'."""
    import numba
    from threadpoolctl import threadpool_info
    blas = max(i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas")
    return float(numba.get_num_threads()), np.array([float(blas)])


def kernel_loads():
    """Per worker: kernels compiled there, and kernels loaded from numba's cache there."""
    from nblstm.cpu._jit import REGISTRY
    compiled = sum(sum(k.stats.cache_misses.values()) for k in REGISTRY)
    loaded = sum(sum(k.stats.cache_hits.values()) for k in REGISTRY)
    return compiled, loaded


def nblstm_location():
    return str(pathlib.Path(nblstm.__file__).resolve().parent)


def boom(block):
    raise RuntimeError("a task ran")


# --- fixtures --------------------------------------------------------------------

@pytest.fixture
def deadline():
    """Fail a test that runs past 90 s (a hung cluster) instead of hanging CI."""
    def expire(signum, frame):
        raise TimeoutError("cluster test ran past its 90 s deadline")
    previous = signal.signal(signal.SIGALRM, expire)
    signal.alarm(90)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, previous)


#: the scheduler's HTTP server on a free port: dashboard_address=None still binds :8787 and,
#: with that port taken (another cluster, a Jupyter session), warns, which fails the start here
DASHBOARD = ":0"


@pytest.fixture(scope="module")
def client():
    # spawn-started workers inherit sys.path, so they import this worktree's nblstm and
    # this module (the test asserts the first)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=DASHBOARD) as cluster, \
            distributed.Client(cluster) as c:
        yield c


@pytest.mark.slow
def test_cluster_starts_with_port_8787_taken():
    import socket

    with socket.socket() as taken:
        try:
            taken.bind(("", 8787))
            taken.listen()
        except OSError:
            pass                                     # someone else holds it: the same situation
        with distributed.LocalCluster(n_workers=0, processes=False, dashboard_address=DASHBOARD):
            pass


def problem(B=9, T=17, I=3, H=4, seed=0):
    rng = np.random.default_rng(seed)
    return rng, rng.standard_normal((B, T, I)), mixed_lengths(B, T, rng)


def fit_problem(B=24, T=12, I=2, H=5, chunk=6):
    rng, x, lengths = problem(B, T, I, seed=3)
    target = rng.standard_normal((B, T, 1))
    theta, unravel = nblstm.ravel((nblstm.init_params(I, H, seed=4), rng.standard_normal((1, H))))
    arrays = [da.from_array(a, chunks=(chunk,) + a.shape[1:]) for a in (x, target, lengths)]
    shards = [tuple(a[i:i + chunk] for a in (x, target, lengths)) for i in range(0, B, chunk)]
    return theta, unravel, arrays, shards


def single_process_sum(fun, theta, shards):
    value, grad = 0.0, np.zeros_like(theta)
    for shard in shards:
        v, g = fun(theta, *shard)
        value, grad = value + v, grad + g
    return value, grad


def assert_lstm_equal(actual, desired):
    (y, (h, c)), (ry, (rh, rc)) = actual, desired
    for name, a, r in (("y", y, ry), ("h_n", h, rh), ("c_n", c, rc)):
        assert_close(a, r, RTOL, name)


# --- nblstm.dask.lstm ------------------------------------------------------------

STACK = nblstm.init_stack(3, 4, 2, bidirectional=True, seed=1)
LAYERS = {
    "forward": (nblstm.init_params(3, 4, seed=1), False),
    "reverse": (nblstm.init_params(3, 4, seed=1), True),
    "bidirectional-stack": (STACK, False),
}


@pytest.mark.parametrize("kind", LAYERS)
@pytest.mark.parametrize("chunks", [(4, 5), (9, 17), (2, 1)])
def test_lstm_equals_in_memory(kind, chunks):
    # uneven chunks in batch and time; lengths 0, T, T-1 and others end inside chunks
    params, reverse = LAYERS[kind]
    rng, x, lengths = problem()
    LD = 1 if kind != "bidirectional-stack" else 4
    shape = (9, 4) if LD == 1 else (LD, 9, 4)
    h0, c0 = rng.standard_normal(shape), rng.standard_normal(shape)
    desired = nblstm.lstm(x, params, h0, c0, lengths=lengths, reverse=reverse)
    y, state = nd.lstm(da.from_array(x, chunks=chunks + (3,)), params, h0, c0, lengths=lengths,
                       reverse=reverse)
    assert y.chunks[:2] == da.from_array(x, chunks=chunks + (3,)).chunks[:2]
    actual = dask.compute(y, state, scheduler="threads")
    assert_lstm_equal(actual, desired)


def test_lstm_dask_state_and_lengths_time_major():
    rng, x, lengths = problem()
    xt = np.ascontiguousarray(x.swapaxes(0, 1))
    h0 = rng.standard_normal((4, 9, 4))
    desired = nblstm.lstm(xt, STACK, h0, lengths=lengths, time_major=True)
    y, state = nd.lstm(da.from_array(xt, chunks=(6, 4, 3)), STACK, da.from_array(h0, chunks=(3, 4, 4)),
                       lengths=da.from_array(lengths, chunks=4), time_major=True)
    assert_lstm_equal(dask.compute(y, state), desired)


def test_lstm_unbatched():
    _, x, _ = problem()
    desired = nblstm.lstm(x[0], STACK)
    actual = nd.lstm(da.from_array(x[0], chunks=(5, 3)), STACK)
    assert actual[0].shape == desired[0].shape and actual[1][0].shape == desired[1][0].shape
    assert_lstm_equal(dask.compute(*actual), desired)


def test_lstm_float32_dtype_and_result_lazy():
    _, x, lengths = problem()
    params = nblstm.LSTMParams(*(a.astype(np.float32) for a in nblstm.init_params(3, 4, seed=1)))
    x32 = x.astype(np.float32)
    y, (h, c) = nd.lstm(da.from_array(x32, chunks=(4, 5, 3)), params, lengths=lengths)
    assert isinstance(y, da.Array) and {y.dtype, h.dtype, c.dtype} == {np.dtype(np.float32)}
    desired = nblstm.lstm(x32, params, lengths=lengths)
    np.testing.assert_allclose(y.compute(), desired[0], rtol=0, atol=1e-6)


def test_lstm_tasks_hold_chunks_not_the_array():
    # One layer over 40 time chunks: the scheduler holds a few chunks at a time, not y.
    from dask.callbacks import Callback
    from dask.sizeof import sizeof

    B, T, I, H, tc = 4, 4000, 3, 8, 100
    x = da.random.default_rng(0).standard_normal((B, T, I), chunks=(B, tc, I))
    y, _ = nd.lstm(x, nblstm.init_params(I, H, seed=0))
    peak = [0]

    class Peak(Callback):
        def _posttask(self, key, result, dsk, state, id):
            peak[0] = max(peak[0], sum(sizeof(v) for v in state["cache"].values()))

    with Peak():
        total = (y ** 2).sum().compute(scheduler="sync")
    chunk_bytes = B * tc * (I + H) * 8
    assert np.isfinite(total) and total > 0
    assert peak[0] < 4 * chunk_bytes < y.nbytes / 5


def test_lstm_bad_input_raises_before_any_task():
    params = nblstm.init_params(3, 4, seed=1)
    x = da.zeros((8, 10, 3), chunks=(4, 5, 3)).map_blocks(boom, dtype=np.float64)
    with pytest.raises(ValueError, match=r"x: expected one chunk along the feature axis"):
        nd.lstm(x.rechunk((4, 5, 1)), params)
    lengths = da.from_array(np.full(8, 10), chunks=2)
    with pytest.raises(ValueError, match=r"lengths: expected chunks \(4, 4\) along the batch"):
        nd.lstm(x, params, lengths=lengths)
    with pytest.raises(ValueError, match=r"lengths: expected values in \[0, T=10\]"):
        nd.lstm(x, params, lengths=np.full(8, 11))
    with pytest.raises(ValueError, match=r"h0: expected chunks \(4, 4\) along the batch"):
        nd.lstm(x, params, da.zeros((8, 4), chunks=(8, 4)))
    with pytest.raises(ValueError, match=r"c0: expected shape \(8, 4\)"):
        nd.lstm(x, params, c0=np.zeros((8, 5)))
    with pytest.raises(ValueError, match=r"x: expected 3 features"):
        nd.lstm(da.zeros((8, 10, 2), chunks=(4, 5, 2)), params)
    with pytest.raises(ValueError, match=r"reverse: expected False with a stack"):
        nd.lstm(x, STACK, reverse=True)
    with pytest.raises(ValueError, match=r"params.W_hh: expected finite values"):
        nd.lstm(x, nblstm.LSTMParams(params.W_ih, params.W_hh * np.nan, params.b))
    with pytest.raises(TypeError, match=r"lengths: expected an integer array"):
        nd.lstm(x, params, lengths=da.from_array(np.full(8, 10.0), chunks=4))
    with pytest.raises(TypeError, match=r"threads: expected an integer"):
        nd.lstm(x, params, threads=1.5)


def test_lstm_bad_values_in_tasks_name_the_argument():
    params = nblstm.init_params(3, 4, seed=1)
    x = np.zeros((8, 10, 3))
    y, _ = nd.lstm(da.from_array(x, chunks=(4, 5, 3)), params, lengths=da.from_array(np.full(8, 11), chunks=4))
    with pytest.raises(ValueError, match=r"lengths: expected values in \[0, T=10\]"):
        y.compute(scheduler="sync")
    x[5, 7, 1] = np.inf
    y, _ = nd.lstm(da.from_array(x, chunks=(4, 5, 3)), params)
    with pytest.raises(ValueError, match=r"x: expected finite values"):
        y.compute(scheduler="sync")


def test_lstm_leaves_inputs_and_uses_weights_at_call_time():
    _, x, lengths = problem()
    params = nblstm.init_params(3, 4, seed=1)
    desired = nblstm.lstm(x, params, lengths=lengths)
    y, _ = nd.lstm(da.from_array(x, chunks=(4, 5, 3)), params, lengths=lengths)
    params.W_hh[...] = 0
    assert_close(y.compute(), desired[0], RTOL, "y")


# --- nblstm.dask.map_grad --------------------------------------------------------

def test_map_grad_equals_single_process_sum():
    theta, unravel, arrays, shards = fit_problem()
    fun = functools.partial(lstm_loss, unravel=unravel)
    value, grad = single_process_sum(fun, theta, shards)
    for split_every in (2, 8):
        v, g = nd.map_grad(fun, theta, *arrays, split_every=split_every)
        assert isinstance(v, np.float64) and g.dtype == np.float64 and g.shape == theta.shape
        assert_close(v, value, 1e-12, "value")
        assert_close(g, grad, 1e-12, "grad")


def test_map_grad_sends_theta_once():
    # theta sits in one graph key; no task carries a copy of it
    from dask.callbacks import Callback
    theta = np.linspace(-1, 1, 20000)                  # large next to the tasks
    x = da.arange(8.0, chunks=2)
    seen = []
    with dask.config.set(scheduler="sync"), Callback(start=lambda dsk: seen.append(dict(dsk))):
        value, grad = nd.map_grad(quadratic, theta, x)
    shards = [(np.arange(i, i + 2.0),) for i in range(0, 8, 2)]
    desired = single_process_sum(quadratic, theta, shards)
    assert_close(value, desired[0], 1e-12, "value")
    assert_close(grad, desired[1], 1e-12, "grad")
    graph, = seen
    big = [k for k, task in graph.items() if len(pickle.dumps(task)) > theta.nbytes / 2]
    assert len(big) == 1 and "theta" in str(big[0])


def test_map_grad_threads_per_task(monkeypatch):
    import numba
    x = da.zeros((6, 2), chunks=(2, 2))
    before = numba.get_num_threads(), thread_settings(None, None)[1][0]
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    v, g = nd.map_grad(thread_settings, np.zeros(1), x)
    assert (v, g[0]) == (3.0, 3.0)                     # one numba and one BLAS thread per task
    if numba.config.NUMBA_NUM_THREADS >= 2:
        v, g = nd.map_grad(thread_settings, np.zeros(1), x, threads=2)
        assert (v, g[0]) == (6.0, 6.0)
        monkeypatch.setenv("OMP_NUM_THREADS", "2")     # what a worker's nanny would set
        v, g = nd.map_grad(thread_settings, np.zeros(1), x)
        assert (v, g[0]) == (6.0, 6.0)
    # the calling thread's numba setting and the process's BLAS limit come back
    assert (numba.get_num_threads(), thread_settings(None, None)[1][0]) == before


def test_map_grad_bad_input_raises_before_any_task():
    theta, unravel, (x, target, lengths), _ = fit_problem()
    fun = functools.partial(lstm_loss, unravel=unravel)
    xb = x.map_blocks(boom, dtype=np.float64)
    with pytest.raises(ValueError, match=r"arrays\[1\]: expected chunks \(6, 6, 6, 6\) along axis 0"):
        nd.map_grad(fun, theta, xb, target.rechunk((8, 12, 1)), lengths)
    with pytest.raises(ValueError, match=r"arrays\[0\]: expected one chunk along axis 1"):
        nd.map_grad(fun, theta, xb.rechunk((6, 4, 2)), target, lengths)
    with pytest.raises(TypeError, match=r"arrays\[2\]: expected a dask.array.Array, got ndarray"):
        nd.map_grad(fun, theta, xb, target, np.zeros(24))
    with pytest.raises(TypeError, match=r"fun: expected a callable"):
        nd.map_grad(None, theta, xb)
    with pytest.raises(TypeError, match=r"theta: expected a real numeric array"):
        nd.map_grad(fun, theta + 0j, xb)
    with pytest.raises(ValueError, match=r"arrays: expected at least one dask array"):
        nd.map_grad(fun, theta)
    with pytest.raises(ValueError, match=r"split_every: expected an integer >= 2"):
        nd.map_grad(fun, theta, xb, split_every=1)


def test_map_grad_checks_what_fun_returns():
    x = da.zeros((4, 2), chunks=(2, 2))
    with pytest.raises(ValueError, match=r"fun: expected a gradient of theta's shape \(3,\)"):
        nd.map_grad(lambda theta, b: (0.0, np.zeros(2)), np.zeros(3), x)
    with pytest.raises(TypeError, match=r"fun: expected to return a tuple \(value, grad\)"):
        nd.map_grad(lambda theta, b: 0.0, np.zeros(3), x)
    # a tuple of the wrong length: the message says how long, not just "got tuple"
    with pytest.raises(TypeError, match=r"expected to return a tuple \(value, grad\), got a tuple of 3 items"):
        nd.map_grad(lambda theta, b: (0.0, theta, 1), np.zeros(3), x)
    with pytest.raises(TypeError, match=r"expected to return a tuple \(value, grad\), got list"):
        nd.map_grad(lambda theta, b: [0.0, theta], np.zeros(3), x)


def test_map_grad_leaves_theta_alone():
    x = da.zeros((4, 2), chunks=(2, 2))
    theta = np.ones(3)

    def writes(theta, b):
        theta[0] = 5.0
        return 0.0, np.zeros(3)

    with pytest.raises(ValueError, match="read-only"):
        nd.map_grad(writes, theta, x)
    assert theta[0] == 1.0


@pytest.mark.slow
def test_only_nblstm_dask_imports_dask():
    # a fresh interpreter importing this worktree's nblstm (cwd first on sys.path)
    code = ("import sys, nblstm, numpy as np; nblstm.lstm(np.zeros((1, 2, 3)), nblstm.init_params(3, 4)); "
            "assert nblstm.__file__.startswith(sys.argv[1]), nblstm.__file__; "
            "assert not {'dask', 'distributed', 'threadpoolctl'} & set(sys.modules)")
    subprocess.run([sys.executable, "-c", code, str(WORKTREE)], cwd=WORKTREE.parent, check=True,
                   env={**os.environ, "PYTHONPATH": str(WORKTREE.parent)})


def test_docstring_examples():
    assert doctest.testmod(nd, raise_on_error=False).failed == 0


# --- on a LocalCluster of two worker processes -------------------------------------

@pytest.mark.slow
def test_cluster_lstm_and_map_grad(client, deadline):
    assert set(client.run(nblstm_location).values()) == {str(WORKTREE)}
    _, x, lengths = problem()
    desired = nblstm.lstm(x, STACK, lengths=lengths)
    y, state = nd.lstm(da.from_array(x, chunks=(4, 5, 3)), STACK, lengths=lengths)
    assert_lstm_equal(client.compute([y, state], sync=True), desired)

    theta, unravel, arrays, shards = fit_problem()
    fun = functools.partial(lstm_loss, unravel=unravel)
    value, grad = single_process_sum(fun, theta, shards)
    for _ in range(2):
        v, g = nd.map_grad(fun, theta, *arrays)
        assert_close(v, value, 1e-12, "value")
        assert_close(g, grad, 1e-12, "grad")
    # every worker loaded the kernels this process had compiled into numba's cache,
    # once, and compiled none itself
    for compiled, loaded in client.run(kernel_loads).values():
        assert compiled == 0 and loaded > 0
    # Dask's nanny gives each worker OMP_NUM_THREADS=1, so one thread per task
    v, g = nd.map_grad(thread_settings, np.zeros(1), arrays[0])
    assert (v, g[0]) == (4.0, 4.0)


@pytest.mark.slow
def test_cluster_example_fit(client, deadline):
    spec = importlib.util.spec_from_file_location("example_dask_fit", EXAMPLES / "dask_fit.py")
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    result, losses, _, whole = example.fit(batch=48, seq_len=12, hidden=4, block=16, maxiter=10)
    assert_close(result.fun, whole, 1e-12, "loss")
    assert len(losses) == result.nit and losses[-1] < 0.7 * losses[0]


@pytest.mark.slow
def test_cluster_worker_death_costs_a_retry(client, deadline, tmp_path):
    theta, unravel, arrays, shards = fit_problem()
    value, grad = single_process_sum(functools.partial(lstm_loss, unravel=unravel), theta, shards)
    fun = functools.partial(die_once_then_loss, unravel=unravel, marker=str(tmp_path / "died"))
    v, g = nd.map_grad(fun, theta, *arrays)
    assert (tmp_path / "died").exists()                # a worker did die mid-evaluation
    assert_close(v, value, 1e-12, "value")
    assert_close(g, grad, 1e-12, "grad")
