"""Every bad input: the right exception type and a message naming the argument."""
import re
import warnings

import numpy as np
import pytest

import nblstm
from nblstm.params import LSTMParams

from _helpers import make_problem

P = make_problem(2, 3, 2, 3, seed=0)          # B=2, T=3, I=2, H=3
W_ih, W_hh, b = P.params


def _params(**replace):
    return P.params._replace(**replace)


# (id, keyword arguments of lstm/lstm_forward, exception, regex that must match the message)
FORWARD_CASES = [
    # x
    ("x_1d", dict(x=np.zeros(2)), ValueError, r"^x: expected .*got 1-D"),
    ("x_4d", dict(x=np.zeros((1, 2, 3, 2))), ValueError, r"^x: expected .*got 4-D"),
    ("x_0d", dict(x=np.float64(1.0)), ValueError, r"^x: "),
    ("x_features", dict(x=np.zeros((2, 3, 5))), ValueError, r"^x: expected 2 features.*got shape \(2, 3, 5\)"),
    ("x_features_unbatched", dict(x=np.zeros((3, 5))), ValueError, r"^x: .*\(3, 5\)"),
    ("x_features_time_major", dict(x=np.zeros((3, 2, 4)), time_major=True), ValueError, r"^x: "),
    ("x_complex", dict(x=P.x.astype(complex)), TypeError, r"^x: .*complex"),
    ("x_object", dict(x=P.x.astype(object)), TypeError, r"^x: .*object"),
    ("x_str", dict(x=np.full((2, 3, 2), "a")), TypeError, r"^x: "),
    ("x_str_scalar", dict(x="abc"), TypeError, r"^x: expected a real numeric array"),
    ("x_None", dict(x=None), TypeError, r"^x: "),
    ("x_ragged", dict(x=[[[1.0, 2.0]], [[1.0]]]), TypeError, r"^x: expected an array, got list"),
    ("x_longdouble", dict(x=P.x.astype(np.longdouble)), TypeError, r"^x: ") if np.dtype(np.longdouble).itemsize > 8
    else ("x_datetime", dict(x=np.zeros((2, 3, 2), "datetime64[s]")), TypeError, r"^x: "),
    # params
    ("W_ih_rows", dict(params=_params(W_ih=np.zeros((8, 2)))), ValueError,
     r"^params\.W_ih: expected .*\(12, I\).*\(8, 2\)"),
    ("W_ih_1d", dict(params=_params(W_ih=np.zeros(12))), ValueError, r"^params\.W_ih: "),
    ("W_hh_not_square_blocks", dict(params=_params(W_hh=np.zeros((12, 4)))), ValueError, r"^params\.W_hh: .*\(12, 4\)"),
    ("W_hh_rows", dict(params=_params(W_hh=np.zeros((10, 3)))), ValueError, r"^params\.W_hh: "),
    ("W_hh_3d", dict(params=_params(W_hh=np.zeros((12, 3, 1)))), ValueError, r"^params\.W_hh: "),
    ("b_shape", dict(params=_params(b=np.zeros(11))), ValueError, r"^params\.b: expected .*\(12,\).*\(11,\)"),
    ("b_2d", dict(params=_params(b=np.zeros((1, 12)))), ValueError, r"^params\.b: "),
    ("W_ih_complex", dict(params=_params(W_ih=W_ih.astype(complex))), TypeError, r"^params\.W_ih: .*complex"),
    ("W_hh_object", dict(params=_params(W_hh=W_hh.astype(object))), TypeError, r"^params\.W_hh: "),
    ("b_str", dict(params=_params(b=b.astype(str))), TypeError, r"^params\.b: "),
    ("params_None", dict(params=None), TypeError, r"^params: expected LSTMParams or a non-empty sequence"),
    ("params_array", dict(params=np.zeros((12, 2))), TypeError,
     r"^params: expected LSTMParams or a non-empty sequence of layers, got ndarray"),
    # two arrays read as a two-layer stack whose first layer is not a tuple of LSTMParams
    ("params_two_arrays", dict(params=(W_ih, W_hh)), ValueError,
     r"^params\[0\]: expected a tuple of 1 or 2 LSTMParams"),
    # h0, c0
    ("h0_shape", dict(h0=np.zeros((2, 4))), ValueError, r"^h0: expected shape \(2, 3\).*\(2, 4\)"),
    ("h0_batch", dict(h0=np.zeros((3, 3))), ValueError, r"^h0: "),
    ("h0_1d", dict(h0=np.zeros(3)), ValueError, r"^h0: "),
    ("h0_3d", dict(h0=np.zeros((1, 2, 3))), ValueError, r"^h0: "),
    ("c0_shape", dict(c0=np.zeros((2, 4))), ValueError, r"^c0: expected shape \(2, 3\).*\(2, 4\)"),
    ("c0_complex", dict(c0=P.c0.astype(complex)), TypeError, r"^c0: "),
    ("h0_object", dict(h0=P.h0.astype(object)), TypeError, r"^h0: "),
    ("h0_unbatched", dict(x=P.x[0], h0=np.zeros((1, 3))), ValueError, r"^h0: expected shape \(3,\)"),
    ("c0_time_major", dict(x=P.x.swapaxes(0, 1), time_major=True, h0=np.zeros((2, 3)), c0=np.zeros((3, 3))),
     ValueError, r"^c0: expected shape \(2, 3\).*\(3, 3\)"),
    # lengths
    ("lengths_too_long", dict(lengths=[3, 3, 3]), ValueError, r"^lengths: expected shape \(2,\).*\(3,\)"),
    ("lengths_too_short", dict(lengths=[3]), ValueError, r"^lengths: "),
    ("lengths_2d", dict(lengths=[[3, 3]]), ValueError, r"^lengths: "),
    ("lengths_scalar", dict(lengths=3), ValueError, r"^lengths: "),
    ("lengths_negative", dict(lengths=[3, -1]), ValueError, r"^lengths: expected values in \[0, T=3\]"),
    ("lengths_above_T", dict(lengths=[4, 1]), ValueError, r"^lengths: expected values in \[0, T=3\]"),
    ("lengths_float", dict(lengths=[3.0, 1.0]), TypeError, r"^lengths: .*float"),
    ("lengths_complex", dict(lengths=np.array([3, 1], complex)), TypeError, r"^lengths: "),
    ("lengths_str", dict(lengths=["3", "1"]), TypeError, r"^lengths: "),
    ("lengths_object", dict(lengths=np.array([3, None], object)), TypeError, r"^lengths: "),
    # options
    ("backend_unknown", dict(backend="foo"), ValueError, r"^Unknown backend 'foo'; "),
    ("backend_case", dict(backend="CPU"), ValueError, r"^Unknown backend 'CPU'"),
    ("backend_None", dict(backend=None), ValueError, r"^Unknown backend None"),
    ("reverse_str", dict(reverse="yes"), TypeError, r"^reverse: "),
    ("time_major_int", dict(time_major=2), TypeError, r"^time_major: "),
    ("check_finite_None", dict(check_finite=None), TypeError, r"^check_finite: "),
]


def _call(fn, kwargs):
    kw = dict(x=P.x, params=P.params, h0=P.h0, c0=P.c0)
    kw.update(kwargs)
    return fn(kw.pop("x"), kw.pop("params"), kw.pop("h0"), kw.pop("c0"), **kw)


@pytest.mark.parametrize("fn", [nblstm.lstm, nblstm.lstm_forward], ids=["lstm", "lstm_forward"])
@pytest.mark.parametrize("case", FORWARD_CASES, ids=[c[0] for c in FORWARD_CASES])
def test_forward_bad_input(case, fn):
    _, kwargs, exc, match = case
    with pytest.raises(exc, match=match):
        _call(fn, kwargs)


def test_valid_baseline_runs():
    """The cases above differ from a call that works only in the bad argument."""
    y, (h, c) = _call(nblstm.lstm, {})
    assert y.shape == (2, 3, 3)
    _call(nblstm.lstm, dict(lengths=[3, 0], reverse=np.bool_(True), check_finite=False))
    _call(nblstm.lstm, dict(x=P.x.swapaxes(0, 1), time_major=True, h0=np.zeros((2, 3)), c0=np.zeros((2, 3))))
    _call(nblstm.lstm, dict(x=P.x[0], h0=np.zeros(3), c0=np.zeros(3)))
    _call(nblstm.lstm, dict(params=tuple(P.params)))   # a plain (W_ih, W_hh, b) tuple is fine


# ----------------------------------------------------------------------------- backward

@pytest.fixture(scope="module")
def cache():
    return nblstm.lstm_forward(P.x, P.params, P.h0, P.c0, lengths=[3, 1])[2]


@pytest.fixture(scope="module")
def unbatched_cache():
    return nblstm.lstm_forward(P.x[0], P.params, P.h0[0], P.c0[0])[2]


BACKWARD_CASES = [
    ("dy_shape", dict(dy=np.zeros((2, 3, 4))), ValueError, r"^dy: expected shape \(2, 3, 3\).*\(2, 3, 4\)"),
    ("dy_time_major_layout", dict(dy=np.zeros((3, 2, 3))), ValueError, r"^dy: "),
    ("dy_2d", dict(dy=np.zeros((3, 3))), ValueError, r"^dy: "),
    ("dy_complex", dict(dy=np.zeros((2, 3, 3), complex)), TypeError, r"^dy: "),
    ("dy_object", dict(dy=np.zeros((2, 3, 3), object)), TypeError, r"^dy: "),
    ("dh_n_shape", dict(dh_n=np.zeros((2, 4))), ValueError, r"^dh_n: expected shape \(2, 3\).*\(2, 4\)"),
    ("dh_n_1d", dict(dh_n=np.zeros(3)), ValueError, r"^dh_n: "),
    ("dc_n_shape", dict(dc_n=np.zeros((3, 3))), ValueError, r"^dc_n: expected shape \(2, 3\)"),
    ("dc_n_str", dict(dc_n=np.full((2, 3), "x")), TypeError, r"^dc_n: "),
]


@pytest.mark.parametrize("case", BACKWARD_CASES, ids=[c[0] for c in BACKWARD_CASES])
def test_backward_bad_input(case, cache):
    _, kwargs, exc, match = case
    with pytest.raises(exc, match=match):
        nblstm.lstm_backward(cache, **kwargs)


@pytest.mark.parametrize("name, value", [("dy", np.zeros((1, 3, 3))), ("dh_n", np.zeros((1, 3))),
                                         ("dc_n", np.zeros(4))])
def test_backward_bad_unbatched(name, value, unbatched_cache):
    with pytest.raises(ValueError, match=f"^{name}: expected shape"):
        nblstm.lstm_backward(unbatched_cache, **{name: value})


@pytest.mark.parametrize("not_a_cache", [
    None, (), [1, 2, 3], np.zeros(3), "cache",
    "lstm_output", "lstm_forward_output", "grads",
], ids=["None", "empty_tuple", "list", "array", "str", "lstm_output", "lstm_forward_output", "grads"])
def test_backward_not_a_cache(not_a_cache, cache):
    made = {"lstm_output": lambda: nblstm.lstm(P.x, P.params),
            "lstm_forward_output": lambda: nblstm.lstm_forward(P.x, P.params),  # the triple, not its cache
            "grads": lambda: nblstm.lstm_backward(cache)}
    if isinstance(not_a_cache, str) and not_a_cache in made:
        not_a_cache = made[not_a_cache]()
    with pytest.raises(TypeError, match=r"^cache: expected .*LSTMCache"):
        nblstm.lstm_backward(not_a_cache)


# ----------------------------------------------------------------------------- check_finite

FINITE_TARGETS = ["x", "W_ih", "W_hh", "b", "h0", "c0"]


def _poisoned(target, value):
    kw = dict(x=P.x.copy(), params=LSTMParams(*(a.copy() for a in P.params)), h0=P.h0.copy(), c0=P.c0.copy())
    arr = kw[target] if target in kw else getattr(kw["params"], target)
    arr.flat[arr.size // 2] = value
    return kw


@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf], ids=["nan", "inf", "-inf"])
@pytest.mark.parametrize("target", FINITE_TARGETS)
@pytest.mark.parametrize("fn", [nblstm.lstm, nblstm.lstm_forward], ids=["lstm", "lstm_forward"])
def test_check_finite_rejects(fn, target, value):
    kw = _poisoned(target, value)
    name = re.escape(target if target in ("x", "h0", "c0") else "params." + target)
    with pytest.raises(ValueError, match=rf"^{name}: expected finite values"):
        fn(kw["x"], kw["params"], kw["h0"], kw["c0"])


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("target", FINITE_TARGETS)
def test_check_finite_false_propagates(target, dtype):
    kw = _poisoned(target, np.nan)
    x = kw["x"].astype(dtype)
    params = LSTMParams(*(a.astype(dtype) for a in kw["params"]))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        y, (h, c), cache = nblstm.lstm_forward(x, params, kw["h0"].astype(dtype), kw["c0"].astype(dtype),
                                               check_finite=False)
        g = nblstm.lstm_backward(cache, np.ones(y.shape), np.ones(h.shape), np.ones(c.shape))
        y2, _ = nblstm.lstm(x, params, kw["h0"].astype(dtype), kw["c0"].astype(dtype), check_finite=False)
    assert np.isnan(y).any() and np.isnan(h).any() and np.isnan(g.dparams.W_ih).any()
    assert np.array_equal(y, y2, equal_nan=True)


def test_check_finite_false_inf_in_x():
    x = P.x.copy()
    x[0, 1, 0] = np.inf
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        y, (h, c), cache = nblstm.lstm_forward(x, P.params, check_finite=False)
        nblstm.lstm_backward(cache, np.ones(y.shape))
    assert np.all(np.isfinite(y[1]))   # the other sequence is untouched
    assert np.all(np.isfinite(y[0, 0]))


def test_check_finite_does_not_look_at_padding_or_lengths_order():
    """NaN is still rejected when it sits in a padded step (the whole array is checked)."""
    x = P.x.copy()
    x[1, 2, 0] = np.nan
    with pytest.raises(ValueError, match=r"^x: expected finite"):
        nblstm.lstm(x, P.params, lengths=[3, 1])


def test_zero_input_features_is_rejected_clearly():
    """I = 0 (init_params rejects it too) gets a message naming the weights, not a NumPy reshape error."""
    params = LSTMParams(np.zeros((12, 0)), np.zeros((12, 3)), np.zeros(12))
    with pytest.raises(ValueError, match=r"^(params\.W_ih|x): expected"):
        nblstm.lstm(np.zeros((2, 3, 0)), params)
