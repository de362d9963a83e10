"""The lean call path (nblstm._lean): same bits as the general path, which it hands everything else to."""
import numpy as np
import pytest

import nblstm
from nblstm import _api, _lean, cpu
from nblstm.params import LSTMParams


def _inputs(layout, T, dtype, states, seed=0):
    rng = np.random.default_rng(seed)
    params = LSTMParams(*(a.astype(dtype) for a in nblstm.init_params(8, 32, seed=rng)))
    shape = {"batch_first": (1, T, 8), "time_major": (T, 1, 8), "unbatched": (T, 8)}[layout]
    state = (32,) if layout == "unbatched" else (1, 32)
    x = rng.standard_normal(shape).astype(dtype)
    h0 = rng.standard_normal(state).astype(dtype) if states else None
    c0 = rng.standard_normal(state).astype(dtype) if states else None
    return x, params, h0, c0, layout == "time_major"


def _equal(a, b):
    """Same types, shapes, dtypes and bits, through tuples, lists and NamedTuples (the cache too)."""
    assert type(a) is type(b)
    if isinstance(a, np.ndarray):
        assert a.shape == b.shape and a.dtype == b.dtype
        np.testing.assert_array_equal(a, b)
    elif isinstance(a, (tuple, list)):
        assert len(a) == len(b)
        for u, w in zip(a, b):
            _equal(u, w)
    else:
        assert a == b


@pytest.fixture
def general_only(monkeypatch):
    """Calls that must not take the lean path: it fails the test if they do."""
    def refuse(*args):
        raise AssertionError("took the lean path")
    monkeypatch.setattr(cpu._single, "forward_one_sequence", refuse)


@pytest.fixture
def small_chunks(cpu_config):
    # several projection chunks in one inference call, as T = 10,000 at H = 32 has
    cpu_config.chunk_elements = 3 * 4 * 32


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("layout", ["batch_first", "time_major", "unbatched"])
@pytest.mark.parametrize("states", [False, True])
@pytest.mark.parametrize("T", [1, 10])
def test_same_bits_as_the_general_path(dtype, layout, states, T, small_chunks):
    x, params, h0, c0, tm = _inputs(layout, T, dtype, states)
    args = (x, params, h0, c0, None, False, tm, "cpu", True)
    lean_inference = _lean.forward(*args, False)
    lean_training = _lean.forward(*args, True)
    assert lean_inference is not None and lean_training is not None
    general_inference = _api._run(*args, False)
    general_training = _api._run(*args, True)
    _equal(lean_inference[:2], general_inference[:2])
    _equal(lean_training[:2], general_training[:2])
    # the cache as _run makes it: LSTMCache, CachedDirection, LSTMParams, BatchLayout, all fields
    _equal(lean_training[2], general_training[2])
    if T <= 3:      # one projection chunk: the training forward's bits (BLAS rounds per product)
        _equal(lean_inference[:2], lean_training[:2])
    # the cache: the same backward, bit for bit
    rng = np.random.default_rng(1)
    dy = rng.standard_normal(lean_training[0].shape).astype(dtype)
    dh = rng.standard_normal(lean_training[1][0].shape).astype(dtype)
    grads = [nblstm.lstm_backward(result[2], dy, dh, dh) for result in (lean_training, general_training)]
    _equal(grads[0], grads[1])
    # the cache owns its arrays: changing the inputs afterwards changes nothing
    x[...] = 0
    params.W_hh[...] = 0
    _equal(nblstm.lstm_backward(lean_training[2], dy, dh, dh), grads[1])


def test_public_functions_take_the_lean_path(monkeypatch):
    x, params, h0, c0, _ = _inputs("batch_first", 3, np.float32, True)
    def refuse(*args):
        raise AssertionError("took the general path")
    monkeypatch.setattr(_api, "_run", refuse)
    y, (h_n, _) = nblstm.lstm(x, params, h0, c0)
    _, _, cache = nblstm.lstm_forward(x, params, h0, c0)
    assert y.shape == (1, 3, 32) and h_n.shape == (1, 32) and isinstance(cache, nblstm.LSTMCache)


def _variants():
    """Valid calls the lean path leaves to the general one, and invalid ones (whose errors it must not raise)."""
    x, params, h0, c0, _ = _inputs("batch_first", 3, np.float64, True)
    read_only = x.copy()
    read_only.flags.writeable = False
    return {
        "two sequences": dict(x=np.concatenate([x, x]), h0=None, c0=None),
        "lengths": dict(lengths=[2]),
        "reverse": dict(reverse=True),
        "stack": dict(params=[(params,)]),
        "tuple params": dict(params=tuple(params)),
        "list x": dict(x=x.tolist()),
        "mixed dtypes": dict(x=x.astype(np.float32)),
        "integer x": dict(x=np.ones((1, 3, 8), np.int64), h0=None, c0=None),
        "strided x": dict(x=np.repeat(x, 2, axis=2)[:, :, ::2]),
        "read-only x": dict(x=read_only),
        "empty sequence": dict(x=x[:, :0]),
        "wrong features": dict(x=x[:, :, :5]),
        "wrong state": dict(h0=h0[:, :5]),
        "3-D state": dict(h0=h0[None]),
        "numpy bool flag": dict(time_major=np.bool_(False)),
        "backend": dict(backend="tpu"),
        "backend array": dict(backend=np.array(["cpu"])),
    }, dict(x=x, params=params, h0=h0, c0=c0)


VARIANTS, BASE = _variants()


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_everything_else_goes_to_the_general_path(name, general_only):
    """Same result or same error as the general path, which now is the only one taking them."""
    kwargs = {**BASE, **VARIANTS[name]}
    x, params, h0, c0 = (kwargs.pop(k) for k in ("x", "params", "h0", "c0"))
    try:
        expected = _api._run(x, params, h0, c0, kwargs.get("lengths"), kwargs.get("reverse", False),
                             kwargs.get("time_major", False), kwargs.get("backend", "cpu"), True, False)[:2]
    except (ValueError, TypeError) as error:
        with pytest.raises(type(error)) as info:
            nblstm.lstm(x, params, h0, c0, **kwargs)
        assert str(info.value) == str(error)
    else:
        _equal(nblstm.lstm(x, params, h0, c0, **kwargs), expected)


def test_a_forced_cpu_path_goes_to_the_general_path(cpu_config, general_only):
    cpu_config.path = "serial"
    x, params, h0, c0, _ = _inputs("batch_first", 3, np.float64, True)
    assert nblstm.lstm(x, params, h0, c0)[0].shape == (1, 3, 32)


@pytest.mark.parametrize("where", ["x", "W_ih", "W_hh", "b", "h0", "c0"])
@pytest.mark.parametrize("value", [np.nan, np.inf])
def test_non_finite_input_raises_the_general_error(where, value):
    """The lean kernel finds it, writes nothing, and the general path raises its error."""
    x, params, h0, c0, _ = _inputs("batch_first", 3, np.float64, True)
    arrays = dict(x=x, h0=h0, c0=c0, **params._asdict())
    arrays[where].reshape(-1)[1] = value
    params = LSTMParams(arrays["W_ih"], arrays["W_hh"], arrays["b"])
    with pytest.raises(ValueError) as expected:
        _api._run(x, params, h0, c0, None, False, False, "cpu", True, False)
    for function in (nblstm.lstm, nblstm.lstm_forward):
        with pytest.raises(ValueError) as info:
            function(x, params, h0, c0)
        assert str(info.value) == str(expected.value)
    # and with check_finite=False the values propagate, as on the general path
    y, _ = nblstm.lstm(x, params, h0, c0, check_finite=False)
    y_general, _, _ = _api._run(x, params, h0, c0, None, False, False, "cpu", False, False)
    np.testing.assert_array_equal(y, y_general)
