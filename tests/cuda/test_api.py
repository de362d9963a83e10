"""nblstm.lstm / lstm_forward / lstm_backward with backend="cuda" against backend="cpu".

Tiny shapes: the CUDA simulator runs every thread as a Python thread.
"""
import ast
import pathlib
import subprocess
import sys

import numpy as np
import pytest

import nblstm
from nblstm.params import LSTMParams, init_params, init_stack

TOL = {np.dtype(np.float64): 1e-12, np.dtype(np.float32): 2e-5}


def _close(got, want):
    got = _host(got)
    want = np.asarray(want)
    assert got.shape == want.shape and got.dtype == want.dtype
    tol = TOL[want.dtype]
    np.testing.assert_allclose(got, want, rtol=tol, atol=tol)


def _host(a):
    return a.copy_to_host() if hasattr(a, "copy_to_host") else np.asarray(a)


def _flat(tree):
    """Leaves of nested tuples / LSTMParams / LSTMGrads, in order."""
    if isinstance(tree, (tuple, list)):
        return [leaf for t in tree for leaf in _flat(t)]
    return [tree]


def _problem(rng, B, T, I, H, *, dtype, layers=None, bidirectional=False, time_major=False,
             unbatched=False):
    if layers is None:
        params = init_params(I, H, seed=rng)
        params = LSTMParams(*(p.astype(dtype) for p in params))
        LD = None
    else:
        params = init_stack(I, H, layers, bidirectional=bidirectional, seed=rng, dtype=dtype)
        LD = layers * (2 if bidirectional else 1)
    if unbatched:
        x_shape, s_shape = (T, I), (H,)
    else:
        x_shape, s_shape = ((T, B, I) if time_major else (B, T, I)), (B, H)
    if LD is not None:
        s_shape = (LD,) + s_shape
    x = rng.standard_normal(x_shape).astype(dtype)
    h0 = (0.5 * rng.standard_normal(s_shape)).astype(dtype)
    c0 = (0.5 * rng.standard_normal(s_shape)).astype(dtype)
    return x, params, h0, c0


def _both(x, params, h0, c0, rng, **kw):
    """Forward and backward on both backends; asserts they agree."""
    results = {}
    for backend in ("cpu", "cuda"):
        y, (h_n, c_n), cache = nblstm.lstm_forward(x, params, h0, c0, backend=backend, **kw)
        results[backend] = (y, h_n, c_n, cache)
    y, h_n, c_n, _ = results["cpu"]
    for got, want in zip(results["cuda"][:3], (y, h_n, c_n), strict=True):
        _close(got, want)
    grng = np.random.default_rng(7)
    dy, dh_n, dc_n = (grng.standard_normal(np.shape(a)).astype(np.asarray(a).dtype)
                      for a in (y, h_n, c_n))
    g_cpu = nblstm.lstm_backward(results["cpu"][3], dy, dh_n, dc_n)
    g_cuda = nblstm.lstm_backward(results["cuda"][3], dy, dh_n, dc_n)
    for got, want in zip(_flat(g_cuda), _flat(g_cpu), strict=True):
        _close(got, want)
    y2, (h2, c2) = nblstm.lstm(x, params, h0, c0, backend="cuda", **kw)
    for got, want in zip((y2, h2, c2), (y, h_n, c_n), strict=True):
        _close(got, want)


CASES = {
    "plain-f64": dict(dtype=np.float64),
    "plain-f32": dict(dtype=np.float32),
    "lengths": dict(dtype=np.float64, lengths=[2, 4, 0]),
    "reverse-lengths": dict(dtype=np.float64, lengths=[1, 4, 3], reverse=True),
    "time_major-lengths-f32": dict(dtype=np.float32, lengths=[3, 0, 4], time_major=True),
    "unbatched": dict(dtype=np.float64, unbatched=True),
}


@pytest.mark.parametrize("case", list(CASES))
def test_single_layer_matches_cpu(small_config, rng, case):
    kw = dict(CASES[case])
    dtype = kw.pop("dtype")
    unbatched = kw.pop("unbatched", False)
    x, params, h0, c0 = _problem(rng, 3, 4, 2, 3, dtype=dtype, time_major=kw.get("time_major", False),
                                 unbatched=unbatched)
    _both(x, params, h0, c0, rng, **kw)


@pytest.mark.parametrize("layers, bidirectional", [(2, False), (1, True)], ids=["2-layer", "bi"])
def test_stack_matches_cpu(small_config, rng, layers, bidirectional):
    x, params, h0, c0 = _problem(rng, 3, 3, 2, 3, dtype=np.float64, layers=layers,
                                 bidirectional=bidirectional)
    _both(x, params, h0, c0, rng, lengths=[3, 1, 2])


def test_device_inputs_give_device_outputs(small_config, rng):
    from numba import cuda

    x, params, h0, c0 = _problem(rng, 3, 3, 2, 3, dtype=np.float32)
    lengths = [3, 1, 2]
    d = cuda.to_device
    y, (h_n, c_n), cache = nblstm.lstm_forward(d(x), LSTMParams(*(d(p) for p in params)), d(h0), d(c0),
                                               lengths=lengths, backend="cuda")
    y_ref, (h_ref, c_ref), cache_ref = nblstm.lstm_forward(x, params, h0, c0, lengths=lengths)
    for got, want in zip((y, h_n, c_n), (y_ref, h_ref, c_ref), strict=True):
        assert not isinstance(got, np.ndarray) and hasattr(got, "copy_to_host")
        _close(got, want)
    dy = rng.standard_normal(y_ref.shape).astype(np.float32)
    g = nblstm.lstm_backward(cache, d(dy))
    g_ref = nblstm.lstm_backward(cache_ref, dy)
    for got, want in zip(_flat(g), _flat(g_ref), strict=True):
        assert hasattr(got, "copy_to_host")
        _close(got, want)


DEVICE_IN_PLACE = {
    "plain": dict(),
    "sorted-lengths": dict(lengths=[3, 2, 0]),
    "reverse": dict(reverse=True),
    "bidirectional": dict(layers=1, bidirectional=True),
    "2-layer": dict(layers=2),
    "time_major": dict(time_major=True),
    "x-float64": dict(x_dtype=np.float64),     # the compute dtype differs: x is copied
}


@pytest.mark.parametrize("case", list(DEVICE_IN_PLACE))
def test_device_input_read_and_written_in_place(small_config, rng, case):
    """Device x in the batch order it is used in: read through a (T, B, I) view, y written
    through a (T, B, H) view of the (B, T, H) result; the same numbers as the CPU backend."""
    from numba import cuda

    kw = dict(DEVICE_IN_PLACE[case])
    layers, bidirectional = kw.pop("layers", None), kw.pop("bidirectional", False)
    x_dtype = kw.pop("x_dtype", np.float32)
    x, params, h0, c0 = _problem(rng, 3, 4, 2, 3, dtype=np.float32, layers=layers,
                                 bidirectional=bidirectional, time_major=kw.get("time_major", False))
    x = x.astype(x_dtype)
    d = cuda.to_device
    if layers is None:
        d_params = LSTMParams(*(d(p) for p in params))
    else:
        d_params = [tuple(LSTMParams(*(d(a) for a in p)) for p in layer) for layer in params]
    y, (h_n, c_n) = nblstm.lstm(d(x), d_params, backend="cuda", **kw)
    y_ref, (h_ref, c_ref) = nblstm.lstm(x, params, **kw)
    for got, want in zip((y, h_n, c_n), (y_ref, h_ref, c_ref), strict=True):
        assert hasattr(got, "copy_to_host")
        _close(got, want)
    y, _, cache = nblstm.lstm_forward(d(x), d_params, backend="cuda", **kw)
    y_ref, _, cache_ref = nblstm.lstm_forward(x, params, **kw)
    _close(y, y_ref)
    dy = rng.standard_normal(y_ref.shape).astype(y_ref.dtype)
    for got, want in zip(_flat(nblstm.lstm_backward(cache, d(dy))),
                         _flat(nblstm.lstm_backward(cache_ref, dy)), strict=True):
        _close(got, want)


def _error(fn):
    try:
        fn()
    except Exception as exc:  # noqa: BLE001 (comparing whatever is raised)
        return type(exc), str(exc)
    return None


BAD = {
    "x-ndim": lambda x, p, h0: (x[0, 0], p, None, {}),
    "x-complex": lambda x, p, h0: (x.astype(np.complex128), p, None, {}),
    "x-nan": lambda x, p, h0: (np.where(x > 1, np.nan, x), p, None, {}),
    "x-features": lambda x, p, h0: (x[:, :, :1], p, None, {}),
    "h0-shape": lambda x, p, h0: (x, p, h0[:1], {}),
    "lengths-big": lambda x, p, h0: (x, p, None, dict(lengths=[9, 1, 1])),
    "params-shape": lambda x, p, h0: (x, LSTMParams(p.W_ih, p.W_hh[:4], p.b), None, {}),
    "time_major-type": lambda x, p, h0: (x, p, None, dict(time_major="yes")),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_input_errors_match_cpu(small_config, rng, case):
    x, params, h0, _ = _problem(rng, 3, 4, 2, 3, dtype=np.float64)
    x[0, 0, 0] = 2.0
    bx, bp, bh0, kw = BAD[case](x, params, h0)
    cpu = _error(lambda: nblstm.lstm(bx, bp, bh0, backend="cpu", **kw))
    cuda = _error(lambda: nblstm.lstm(bx, bp, bh0, backend="cuda", **kw))
    assert cpu is not None and cuda == cpu


def test_backward_errors_match_cpu(small_config, rng):
    x, params, h0, c0 = _problem(rng, 3, 4, 2, 3, dtype=np.float64)
    caches = {b: nblstm.lstm_forward(x, params, backend=b)[2] for b in ("cpu", "cuda")}
    errs = {b: _error(lambda: nblstm.lstm_backward(c, np.zeros((3, 4, 2)))) for b, c in caches.items()}
    assert errs["cpu"] is not None and errs["cuda"] == errs["cpu"]


def test_a_call_on_device_arrays_makes_no_copies_or_helper_launches(small_config, rng,
                                                                      monkeypatch):
    """Per-call host work stays small: no host-to-device copies, no fill or copy launches.

    On an H100 a small call spent milliseconds before its first step
    (bench/RESULTS-gpu-H100.md); launches, allocations and copies are that
    cost's countable parts, and the same under the simulator as on a GPU.
    Inference on device arrays launches only the input projection and the
    recurrence; training adds the backward's, and the weights' copies for the
    cache.
    """
    from numba import cuda

    from nblstm.cuda import _jit

    monkeypatch.setattr(small_config, "units_per_block", 64)   # the persistent path, one launch
    x, p, *_ = _problem(rng, 3, 4, 5, 6, dtype=np.float32)
    d_p = LSTMParams(*(cuda.to_device(a) for a in p))
    d_x = cuda.to_device(x)
    d_dy = cuda.to_device(np.ones((3, 4, 6), np.float32))
    launched, copies = [], []
    # kernels(), not REGISTRY: nothing above has loaded nblstm.cuda.forward when this test runs alone
    for kernel_type in {type(k) for k in _jit.kernels()}:
        getitem = kernel_type.__getitem__

        def counted(self, config, getitem=getitem):
            launched.append(getattr(self, "py_func", self).__name__)
            return getitem(self, config)
        monkeypatch.setattr(kernel_type, "__getitem__", counted)
    to_device = cuda.to_device
    monkeypatch.setattr(cuda, "to_device", lambda *a, **k: copies.append(a) or to_device(*a, **k))

    def inference():
        nblstm.lstm(d_x, d_p, backend="cuda", check_finite=False)

    def training():
        y, _, cache = nblstm.lstm_forward(d_x, d_p, backend="cuda", check_finite=False)
        nblstm.lstm_backward(cache, d_dy)

    def work_of(call):
        call()                       # the first call makes the shared constants
        launched.clear()
        copies.clear()
        call()
        return list(launched), list(copies)

    launches, host_copies = work_of(inference)
    assert host_copies == []
    # x read and y written in the caller's (B, T, F) arrays: no permutation either way
    assert launches == ["_matmul_kernel", "_forward_persistent_kernel"]
    launches, host_copies = work_of(training)
    assert host_copies == []
    assert launches.count("_forward_persistent_kernel") == 1
    assert launches.count("_backward_persistent_kernel") == 1
    # x is permuted into the cache's own copy; dy is read in place
    assert launches.count("_permute_kernel") == 1
    assert "_fill_kernel" not in launches                         # no zero states, no ones
    # the only element copies: the cache's own copies of W_ih, W_hh (2-d) and b (1-d)
    assert sorted(k for k in launches if k.startswith("_copy")) == [
        "_copy1_kernel", "_copy2_kernel", "_copy2_kernel"]


@pytest.mark.slow
def test_every_kernel_is_counted_in_a_fresh_process():
    """``_jit.kernels()`` loads the kernel modules itself: the counting above needs no earlier call.

    nblstm.cuda loads its modules on first use, so ``_jit.REGISTRY`` holds only the kernels
    a process has already touched: the test above, run alone, patched no kernel type and
    counted no launch, and bench/gpu_calls.py printed no launch line (issue 28). A fresh
    process, as for a test run alone, must see every kernel of every module that compiles
    through ``_jit``.
    """
    import nblstm.cuda as nc
    from nblstm.cuda import _jit

    code = ("import sys; from nblstm.cuda import _jit; "
            "print(sorted({k.py_func.__name__ for k in _jit.kernels()})); "
            "print(sorted(m for m in sys.modules if m.startswith('nblstm.cuda.')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    fresh, loaded = map(ast.literal_eval, out.stdout.strip().splitlines()[-2:])
    assert {"_matmul_kernel", "_forward_persistent_kernel", "_backward_persistent_kernel"} <= set(fresh)
    assert fresh == sorted({k.py_func.__name__ for k in _jit.kernels()})
    package = pathlib.Path(nc.__file__).parent
    compiling = {f"nblstm.cuda.{f.stem}" for f in package.glob("*.py") if "from ._jit import" in f.read_text()}
    assert compiling - set(loaded) == set()


def test_finiteness_of_all_inputs_is_one_copy_back(small_config, rng, monkeypatch):
    """check_finite on device arrays: one flag per array, copied back once for all of them."""
    from numba import cuda

    x, p, h0, c0 = _problem(rng, 3, 4, 5, 6, dtype=np.float32)
    d_args = [cuda.to_device(a) for a in (x, *p, h0, c0)]
    copied = []
    array_type = type(d_args[0])
    copy_to_host = array_type.copy_to_host
    monkeypatch.setattr(array_type, "copy_to_host",
                        lambda self, *a, **k: copied.append(self.shape) or copy_to_host(self, *a, **k))

    def call(d_x, W_ih, W_hh, b, d_h0, d_c0):
        return nblstm.lstm(d_x, LSTMParams(W_ih, W_hh, b), d_h0, d_c0, backend="cuda")

    call(*d_args)
    assert copied == [(6,)]                   # six flags: x, W_ih, W_hh, b, h0, c0
    bad = h0.copy()
    bad[2, 1] = np.inf
    with pytest.raises(ValueError, match="h0: expected finite values"):
        call(*d_args[:4], cuda.to_device(bad), d_args[5])


def test_kept_device_scratch_neither_leaks_into_nor_aliases_results(small_config, rng):
    """The device scratch (nblstm.cuda.workspace) is reused from call to call: poisoned with NaN
    it must not change a result, and a later call must not overwrite an earlier call's results
    or cache (which they would if any of them were a kept buffer)."""
    from numba import cuda

    from nblstm.cuda import workspace

    x, params, h0, c0 = _problem(rng, 3, 4, 2, 3, dtype=np.float64, layers=2, bidirectional=True)
    lengths = np.array([2, 4, 0])
    d_x, d_dy = cuda.to_device(x), cuda.to_device(rng.standard_normal((3, 4, 6)))
    d_params = tuple(tuple(LSTMParams(*(cuda.to_device(a) for a in p)) for p in layer)
                     for layer in params)

    def call(d_x):
        inference = nblstm.lstm(d_x, d_params, lengths=lengths, backend="cuda")
        y, state, cache = nblstm.lstm_forward(d_x, d_params, lengths=lengths, backend="cuda")
        return [*_flat(inference), y, *_flat(state), *_flat(nblstm.lstm_backward(cache, d_dy))], cache

    workspace.clear()
    first, cache = call(d_x)
    first_host = [_host(a).copy() for a in first]
    assert workspace.held_bytes() > 0
    for d_a in workspace._buffers().values():
        d_a.copy_to_device(np.full(d_a.shape, np.nan, d_a.dtype))
    second, _ = call(d_x)
    for a, b in zip(second, first_host, strict=True):
        np.testing.assert_array_equal(_host(a), b)
    call(cuda.to_device(x + 1.0))                 # other inputs, same shapes: same buffers
    for a, b in zip(first, first_host, strict=True):
        np.testing.assert_array_equal(_host(a), b)
    again = _flat(nblstm.lstm_backward(cache, d_dy))  # the first call's cache still holds
    for a, b in zip(again, first_host[-len(again):], strict=True):
        np.testing.assert_array_equal(_host(a), b)
    workspace.clear()
    assert workspace.held_bytes() == 0


@pytest.mark.parametrize("fill", [np.nan, np.inf, -np.inf, 1e300], ids=["nan", "inf", "-inf", "huge"])
@pytest.mark.parametrize("on_device", [False, True], ids=["host", "device"])
def test_padding_never_reaches_a_result(small_config, fill, on_device):
    """NaN / Inf / huge values at padded steps give the results of zeros there (issue 12)."""
    from numba import cuda

    rng = np.random.default_rng(5)
    B, T, I, H = 3, 4, 2, 3
    lengths = np.array([2, 4, 0])
    x = rng.standard_normal((B, T, I))
    x_bad = x.copy()
    for b, n in enumerate(lengths):
        x[b, n:], x_bad[b, n:] = 0.0, fill
    params = init_stack(I, H, 2, bidirectional=True, seed=1)
    dy = rng.standard_normal((B, T, 2 * H))
    results = []
    for a in (x, x_bad):
        a_in = cuda.to_device(a) if on_device else a
        y, state, cache = nblstm.lstm_forward(a_in, params, lengths=lengths, backend="cuda",
                                              check_finite=False)
        y_inf, _ = nblstm.lstm(a_in, params, lengths=lengths, backend="cuda", check_finite=False)
        grads = nblstm.lstm_backward(cache, dy=dy)
        results.append([_host(r) for r in _flat((y, state, y_inf, grads))])
        if on_device:
            np.testing.assert_array_equal(a_in.copy_to_host(), a)    # input left as it was
    for got, want in zip(results[1], results[0]):
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("stack", [False, True], ids=["layer", "stack"])
@pytest.mark.parametrize("on_device", [False, True], ids=["host", "device"])
def test_the_cache_owns_every_array_it_keeps(small_config, rng, stack, on_device):
    """The caller changes x, the weights, h0 and c0 in place between forward and backward (streaming)."""
    from numba import cuda

    x, params, h0, c0 = _problem(rng, 3, 4, 2, 3, dtype=np.float64, layers=2 if stack else None,
                                 bidirectional=stack)
    arrays = [x, h0, c0] + _flat(params)
    inputs = [cuda.to_device(a) for a in arrays] if on_device else arrays
    flat_params = inputs[3:]
    if stack:
        d_params = [tuple(LSTMParams(*flat_params[6 * l + 3 * d:6 * l + 3 * d + 3]) for d in range(2))
                    for l in range(2)]
    else:
        d_params = LSTMParams(*flat_params)
    y, _, cache = nblstm.lstm_forward(inputs[0], d_params, inputs[1], inputs[2], backend="cuda")
    dy = rng.standard_normal(_host(y).shape)
    want = [_host(a) for a in _flat(nblstm.lstm_backward(cache, dy))]
    for a, given in zip(arrays, inputs):
        if on_device:
            given.copy_to_device(a + 0.5)
        else:
            a += 0.5
    got = [_host(a) for a in _flat(nblstm.lstm_backward(cache, dy))]
    for g, w in zip(got, want, strict=True):
        np.testing.assert_array_equal(g, w)
