"""nblstm.lstm / lstm_forward / lstm_backward (CPU) against nblstm.reference."""
import warnings

import numpy as np
import pytest

import nblstm
from nblstm import cpu
from nblstm.params import LSTMGrads, LSTMParams

from _helpers import (
    RTOL,
    all_arrays,
    arrays_in,
    assert_close,
    assert_results_close,
    make_problem,
    reference_run,
    run_api,
    run_reference,
)

DTYPES = [np.float64, np.float32]

# (B, T, I, H): the edge sizes the issue lists, plus ordinary ones
SHAPES = [
    (3, 4, 2, 3),
    (1, 1, 1, 1),   # B = T = I = H = 1
    (2, 5, 3, 1),   # H = 1
    (3, 2, 1, 4),   # I = 1
    (1, 6, 2, 2),   # B = 1
    (4, 1, 3, 2),   # T = 1
    (0, 3, 2, 2),   # B = 0
    (2, 0, 2, 3),   # T = 0
    (0, 0, 1, 1),   # both empty
    (9, 7, 5, 6),   # more rows than threads
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "B{}T{}I{}H{}".format(*s))
def test_matches_reference(shape, dtype):
    p = make_problem(*shape, dtype=dtype, seed=sum(shape))
    assert_results_close(run_api(p), run_reference(p), RTOL[np.dtype(dtype)], dtype=np.dtype(dtype))


@pytest.mark.parametrize("dtype", DTYPES)
def test_zero_initial_state_by_default(dtype):
    p = make_problem(3, 4, 2, 3, dtype=dtype, seed=1)
    assert_results_close(run_api(p, with_state=False), run_reference(p, with_state=False),
                         RTOL[np.dtype(dtype)], dtype=np.dtype(dtype))
    # None and explicit zeros are the same call
    y0, s0, _ = nblstm.lstm_forward(p.x, p.params)
    zeros = np.zeros_like(p.h0)
    y1, s1, _ = nblstm.lstm_forward(p.x, p.params, zeros, zeros)
    assert np.array_equal(y0, y1) and np.array_equal(s0[0], s1[0]) and np.array_equal(s0[1], s1[1])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("time_major", [False, True], ids=["batch_first", "time_major"])
@pytest.mark.parametrize("lengths", [None, "mixed", "all_T", "all_0"])
@pytest.mark.parametrize("reverse", [False, True], ids=["forward", "reverse"])
def test_options_match_reference(reverse, lengths, time_major, dtype):
    B, T = 6, 5
    if lengths == "all_T":
        lengths = np.full(B, T)
    elif lengths == "all_0":
        lengths = np.zeros(B, dtype=np.int64)
    p = make_problem(B, T, 3, 4, dtype=dtype, seed=7, time_major=time_major, lengths=lengths)
    assert_results_close(run_api(p, reverse=reverse), run_reference(p, reverse=reverse),
                         RTOL[np.dtype(dtype)], dtype=np.dtype(dtype))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reverse", [False, True], ids=["forward", "reverse"])
@pytest.mark.parametrize("T", [0, 1, 5])
def test_unbatched(T, reverse, dtype):
    p = make_problem(1, T, 3, 2, dtype=dtype, seed=T, unbatched=True)
    y, (h, c), g = run_api(p, reverse=reverse)
    assert y.shape == (T, 2) and h.shape == c.shape == (2,)
    assert g.dx.shape == (T, 3) and g.dh0.shape == g.dc0.shape == (2,)
    assert_results_close((y, (h, c), g), run_reference(p, reverse=reverse), RTOL[np.dtype(dtype)],
                         dtype=np.dtype(dtype))


@pytest.mark.parametrize("reverse", [False, True], ids=["forward", "reverse"])
def test_unbatched_equals_batch_of_one(reverse):
    p = make_problem(1, 5, 3, 2, seed=3, unbatched=True)
    y, (h, c), g = run_api(p, reverse=reverse)
    y1, (h1, c1), cache = nblstm.lstm_forward(p.x[None], p.params, p.h0[None], p.c0[None], reverse=reverse)
    g1 = nblstm.lstm_backward(cache, p.loss.w_y[None], p.loss.w_h[None], p.loss.w_c[None])
    for a, b in [(y, y1[0]), (h, h1[0]), (c, c1[0]), (g.dx, g1.dx[0]), (g.dh0, g1.dh0[0]),
                 (g.dc0, g1.dc0[0])] + list(zip(g.dparams, g1.dparams)):
        assert_close(a, b, 1e-14)


@pytest.mark.parametrize("options", [
    dict(), dict(reverse=True), dict(lengths=[3, 0, 5, 1]), dict(lengths=[3, 0, 5, 1], reverse=True),
])
@pytest.mark.parametrize("dtype", DTYPES)
def test_lstm_equals_lstm_forward(options, dtype):
    p = make_problem(4, 5, 3, 2, dtype=dtype, seed=11)
    y, (h, c) = nblstm.lstm(p.x, p.params, p.h0, p.c0, **options)
    y2, (h2, c2), _ = nblstm.lstm_forward(p.x, p.params, p.h0, p.c0, **options)
    assert np.array_equal(y, y2) and np.array_equal(h, h2) and np.array_equal(c, c2)
    assert y.dtype == y2.dtype == h.dtype == c.dtype == np.dtype(dtype)


def test_result_types():
    p = make_problem(2, 3, 2, 2, seed=0)
    out = nblstm.lstm(p.x, p.params, p.h0, p.c0)
    y, (h, c) = out
    assert len(out) == 2
    out = nblstm.lstm_forward(p.x, p.params, p.h0, p.c0)
    assert len(out) == 3
    g = nblstm.lstm_backward(out[2], **p.loss.cotangents())
    assert isinstance(g, LSTMGrads) and isinstance(g.dparams, LSTMParams)
    dx, dparams, dh0, dc0 = g
    assert dx is g.dx and dparams.W_ih.shape == p.params.W_ih.shape
    assert dparams.W_hh.shape == p.params.W_hh.shape and dparams.b.shape == p.params.b.shape


def test_params_as_plain_arrays_in_namedtuple_fields():
    """LSTMParams built by hand from lists of floats behaves like init_params output."""
    p = make_problem(2, 3, 2, 2, seed=4)
    params = LSTMParams(p.params.W_ih.tolist(), p.params.W_hh.tolist(), p.params.b.tolist())
    y, (h, c) = nblstm.lstm(p.x, params, p.h0, p.c0)
    y2, (h2, c2) = nblstm.lstm(p.x, p.params, p.h0, p.c0)
    assert np.array_equal(y, y2) and np.array_equal(h, h2) and np.array_equal(c, c2)


@pytest.mark.parametrize("dtype", DTYPES)
def test_backward_none_means_zero(dtype):
    p = make_problem(3, 4, 2, 3, dtype=dtype, seed=5, lengths=np.array([4, 0, 2]))
    _, _, cache = nblstm.lstm_forward(p.x, p.params, p.h0, p.c0, lengths=p.lengths)
    w = p.loss
    zy, zs = np.zeros_like(w.w_y), np.zeros_like(w.w_h)
    cases = [(dict(dy=w.w_y), dict(dy=w.w_y, dh_n=zs, dc_n=zs)),
             (dict(dh_n=w.w_h), dict(dy=zy, dh_n=w.w_h, dc_n=zs)),
             (dict(dc_n=w.w_c), dict(dy=zy, dh_n=zs, dc_n=w.w_c))]
    for given, explicit in cases:
        a = nblstm.lstm_backward(cache, **given)
        b = nblstm.lstm_backward(cache, **explicit)
        for name in ("dx", "dh0", "dc0"):
            assert np.array_equal(getattr(a, name), getattr(b, name)), (given.keys(), name)
        for ga, gb in zip(a.dparams, b.dparams):
            assert np.array_equal(ga, gb)
    g = nblstm.lstm_backward(cache)
    for name, arr in [("dx", g.dx), ("dh0", g.dh0), ("dc0", g.dc0)] + list(zip("W_ih W_hh b".split(),
                                                                            g.dparams)):
        assert arr.dtype == np.dtype(dtype), name
        assert not np.any(arr), name


def test_backward_is_repeatable_and_positional():
    """The cache is not consumed: backward twice gives the same, positional args work."""
    p = make_problem(3, 4, 2, 3, seed=6, lengths=np.array([1, 4, 0]))
    _, _, cache = nblstm.lstm_forward(p.x, p.params, p.h0, p.c0, lengths=p.lengths, reverse=True)
    a = nblstm.lstm_backward(cache, p.loss.w_y, p.loss.w_h, p.loss.w_c)
    b = nblstm.lstm_backward(cache, **p.loss.cotangents())
    _assert_grads_equal(a, b)


def _assert_grads_equal(a, b):
    for name in ("dx", "dh0", "dc0"):
        assert np.array_equal(getattr(a, name), getattr(b, name)), name
    for name, ga, gb in zip(("W_ih", "W_hh", "b"), a.dparams, b.dparams):
        assert np.array_equal(ga, gb), name


# ----------------------------------------------------------------------------- dtypes

def _cast(p, x_dtype=None, p_dtype=None):
    x = p.x if x_dtype is None else p.x.astype(x_dtype)
    params = p.params if p_dtype is None else LSTMParams(*(a.astype(p_dtype) for a in p.params))
    return x, params


@pytest.mark.parametrize("x_dtype, p_dtype, expected", [
    (np.float32, np.float32, np.float32),
    (np.float64, np.float64, np.float64),
    (np.float32, np.float64, np.float64),
    (np.float64, np.float32, np.float64),
    (np.float16, np.float16, np.float32),
    (np.float16, np.float32, np.float32),
    (np.float16, np.float64, np.float64),
    (np.int64, np.float64, np.float64),
    (np.int32, np.float64, np.float64),
    (np.int64, np.float32, np.float64),
    (np.bool_, np.float64, np.float64),
    (np.int64, np.int64, np.float64),
])
def test_dtype_rules(x_dtype, p_dtype, expected):
    p = make_problem(2, 3, 2, 2, seed=8, scale=2.0)
    x, params = _cast(p, x_dtype, p_dtype)
    if np.dtype(p_dtype).kind in "iu":
        params = LSTMParams(*(np.round(4 * a).astype(p_dtype) for a in p.params))
    y, (h, c), cache = nblstm.lstm_forward(x, params)
    g = nblstm.lstm_backward(cache, dy=np.ones(y.shape))
    for name, arr in all_arrays(y, (h, c), g).items():
        assert arr.dtype == np.dtype(expected), name
    # the values are those of the reference on the same numbers
    ref = reference_run(x.astype(np.float64), params, dy=np.ones(y.shape))
    assert_results_close((y, (h, c), g), ref, RTOL[np.dtype(expected)])


def _read_only(a):
    a = a.copy()
    a.flags.writeable = False
    return a


#: inputs the API accepts that numba's kernels cannot read as they are
UNUSUAL_INPUTS = {
    "float16": lambda a: a.astype(np.float16),
    "big-endian": lambda a: a.astype(a.dtype.newbyteorder(">")),
    "integer": lambda a: np.round(4 * a).astype(np.int32),
    "read-only": _read_only,
}


@pytest.mark.parametrize("kind", sorted(UNUSUAL_INPUTS))
def test_any_accepted_input_with_lengths(kind):
    """The batch's permutation into length order takes every input the API accepts.

    It failed for float16 and big-endian inputs (and states) once the permutation became a numba
    gather, which reads neither.
    """
    p = make_problem(3, 5, 2, 4, dtype=np.float32, seed=11, lengths=[2, 5, 3])
    x, h0, c0 = (UNUSUAL_INPUTS[kind](a) for a in (p.x, p.h0, p.c0))
    want_dtype = np.result_type(x.dtype, np.float32) if x.dtype.kind == "f" else np.float64
    want_dtype = np.float32 if want_dtype == np.float16 else want_dtype
    for args in [(x, p.params), (x, p.params, h0, c0)]:
        y, (h, c), cache = nblstm.lstm_forward(*args, lengths=p.lengths)
        g = nblstm.lstm_backward(cache, dy=np.ones(y.shape))
        plain = [np.asarray(a, want_dtype) for a in args[:1]] + [args[1]] + \
                [np.asarray(a, want_dtype) for a in args[2:]]
        y2, (h2, c2), cache2 = nblstm.lstm_forward(*plain, lengths=p.lengths)
        g2 = nblstm.lstm_backward(cache2, dy=np.ones(y2.shape))
        for name, a in all_arrays(y, (h, c), g).items():
            np.testing.assert_array_equal(a, all_arrays(y2, (h2, c2), g2)[name], err_msg=name)


@pytest.mark.parametrize("dtype", DTYPES)
def test_lists_are_accepted(dtype):
    p = make_problem(2, 3, 2, 2, dtype=dtype, seed=9)
    y, (h, c) = nblstm.lstm(p.x.tolist(), p.params, p.h0.tolist(), p.c0.tolist())
    y2, (h2, c2) = nblstm.lstm(p.x, p.params, p.h0, p.c0)
    # a list of Python floats is float64: the result type follows
    assert y.dtype == h.dtype == c.dtype == np.result_type(np.float64, dtype)
    for name, a, b in [("y", y, y2), ("h_n", h, h2), ("c_n", c, c2)]:
        assert_close(a, b, RTOL[np.dtype(dtype)], name)


@pytest.mark.parametrize("lengths", [[3, 0], (3, 0), np.array([3, 0], np.int32),
                                     np.array([3, 0], np.uint8), np.array([3, 0], np.int64)],
                         ids=["list", "tuple", "int32", "uint8", "int64"])
def test_lengths_integer_types(lengths):
    p = make_problem(2, 3, 2, 2, seed=10)
    y, (h, c) = nblstm.lstm(p.x, p.params, p.h0, p.c0, lengths=lengths)
    ry, (rh, rc), _ = reference_run(p.x, p.params, p.h0, p.c0, lengths=np.array([3, 0]))
    assert_close(y, ry, 1e-12)
    assert_close(h, rh, 1e-12)
    assert_close(c, rc, 1e-12)


# ----------------------------------------------------------------------------- layouts

def _layouts(a, rng):
    """The same values as ``a`` in awkward memory layouts."""
    out = {"fortran": np.asfortranarray(a)}
    ro = a.copy()
    ro.setflags(write=False)
    out["readonly"] = ro
    if a.ndim >= 1 and a.size:
        big = np.zeros(a.shape[:-1] + (2 * a.shape[-1],), a.dtype)
        big[..., ::2] = a
        out["strided"] = big[..., ::2]
        rev = a[..., ::-1].copy()
        out["negative_stride"] = rev[..., ::-1]
    if a.ndim >= 2 and a.size:
        flip = a[::-1].copy()
        out["negative_stride_outer"] = flip[::-1]
    return out


LAYOUTS = ["fortran", "readonly", "strided", "negative_stride", "negative_stride_outer"]


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_awkward_layouts(layout, dtype):
    p = make_problem(3, 4, 3, 2, dtype=dtype, seed=12, lengths=np.array([4, 0, 2]))
    expected = run_api(p)
    rng = np.random.default_rng(0)
    x = _layouts(p.x, rng)[layout]
    params = LSTMParams(*(_layouts(a, rng).get(layout, a) for a in p.params))
    h0, c0 = (_layouts(a, rng)[layout] for a in (p.h0, p.c0))
    lengths = _layouts(p.lengths, rng).get(layout, p.lengths)
    cot = {k: _layouts(v, rng)[layout] for k, v in p.loss.cotangents().items()}
    for a, b in [(x, p.x), (h0, p.h0)] + list(zip(params, p.params)):
        assert np.array_equal(a, b)
    assert not (x.flags.c_contiguous and layout != "readonly")
    y, state, cache = nblstm.lstm_forward(x, params, h0, c0, lengths=lengths)
    g = nblstm.lstm_backward(cache, **cot)
    got, want = all_arrays(y, state, g), all_arrays(*expected)
    for name in want:
        assert np.array_equal(got[name], want[name]), name


@pytest.mark.parametrize("time_major", [False, True], ids=["batch_first", "time_major"])
def test_transposed_views(time_major):
    """x given as a transposed view of the other layout."""
    p = make_problem(3, 4, 2, 2, seed=13, time_major=time_major)
    other = np.ascontiguousarray(p.x.swapaxes(0, 1))
    x = other.swapaxes(0, 1)
    assert not x.flags.c_contiguous
    y, (h, c) = nblstm.lstm(x, p.params, p.h0, p.c0, time_major=time_major)
    y2, (h2, c2) = nblstm.lstm(p.x, p.params, p.h0, p.c0, time_major=time_major)
    assert np.array_equal(y, y2) and np.array_equal(h, h2) and np.array_equal(c, c2)


@pytest.mark.parametrize("reverse", [False, True], ids=["forward", "reverse"])
def test_inputs_never_modified(reverse):
    p = make_problem(3, 4, 3, 2, seed=14, lengths=np.array([2, 4, 0]))
    inputs = [p.x, *p.params, p.h0, p.c0, p.lengths, *p.loss]
    copies = [a.copy() for a in inputs]
    nblstm.lstm(p.x, p.params, p.h0, p.c0, lengths=p.lengths, reverse=reverse)
    _, _, cache = nblstm.lstm_forward(p.x, p.params, p.h0, p.c0, lengths=p.lengths, reverse=reverse)
    nblstm.lstm_backward(cache, **p.loss.cotangents())
    for a, b in zip(inputs, copies):
        assert a.dtype == b.dtype and np.array_equal(a, b)


def test_outputs_do_not_alias_inputs():
    """Writing into results must not change inputs or later results (T=0 returns the state)."""
    p = make_problem(2, 0, 2, 2, seed=15)
    y, (h, c), cache = nblstm.lstm_forward(p.x, p.params, p.h0, p.c0)
    h0, c0 = p.h0.copy(), p.c0.copy()
    g = nblstm.lstm_backward(cache, dh_n=p.loss.w_h, dc_n=p.loss.w_c)
    w_h, w_c = p.loss.w_h.copy(), p.loss.w_c.copy()
    outputs = all_arrays(y, (h, c), g)
    held = [p.x, *p.params, p.h0, p.c0, p.loss.w_h, p.loss.w_c, *arrays_in(cache)]
    for name, arr in outputs.items():
        assert not any(np.shares_memory(arr, a) for a in held), name
    before = {name: arr.copy() for name, arr in outputs.items()}
    for arr in outputs.values():
        arr += 1.0
    assert np.array_equal(p.h0, h0) and np.array_equal(p.c0, c0)
    assert np.array_equal(p.loss.w_h, w_h) and np.array_equal(p.loss.w_c, w_c)
    later = all_arrays(y, (h, c), nblstm.lstm_backward(cache, dh_n=w_h, dc_n=w_c))
    for name in ("dx", "dW_ih", "dW_hh", "db", "dh0", "dc0"):
        assert np.array_equal(later[name], before[name]), name



# ----------------------------------------------------------------------------- padding

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("time_major", [False, True], ids=["batch_first", "time_major"])
@pytest.mark.parametrize("reverse", [False, True], ids=["forward", "reverse"])
def test_padding_is_exact(reverse, time_major, dtype):
    B, T = 5, 6
    lengths = np.array([3, 0, 6, 1, 0])
    p = make_problem(B, T, 2, 3, dtype=dtype, seed=16, lengths=lengths, time_major=time_major)
    y, (h, c), g = run_api(p, reverse=reverse)
    yb = y.swapaxes(0, 1) if time_major else y
    dxb = g.dx.swapaxes(0, 1) if time_major else g.dx
    for b in range(B):
        assert np.all(yb[b, lengths[b]:] == 0), b
        assert np.all(dxb[b, lengths[b]:] == 0), b
        if lengths[b]:
            assert np.all(yb[b, :lengths[b]] != 0), b
    zero = lengths == 0
    # length 0: the initial state comes back and the final-state gradient goes straight through
    assert np.array_equal(h[zero], p.h0[zero]) and np.array_equal(c[zero], p.c0[zero])
    assert np.array_equal(g.dh0[zero], p.loss.w_h[zero]) and np.array_equal(g.dc0[zero], p.loss.w_c[zero])


def test_dy_at_padded_steps_is_ignored():
    p = make_problem(3, 5, 2, 3, seed=17, lengths=np.array([2, 5, 0]))
    _, _, cache = nblstm.lstm_forward(p.x, p.params, p.h0, p.c0, lengths=p.lengths)
    dy = p.loss.w_y.copy()
    g1 = nblstm.lstm_backward(cache, dy, p.loss.w_h, p.loss.w_c)
    for b, n in enumerate(p.lengths):
        dy[b, n:] = 1e6
    g2 = nblstm.lstm_backward(cache, dy, p.loss.w_h, p.loss.w_c)
    _assert_grads_equal(g1, g2)


def test_padded_x_does_not_matter():
    p = make_problem(3, 5, 2, 3, seed=18, lengths=np.array([2, 5, 0]))
    x = p.x.copy()
    for b, n in enumerate(p.lengths):
        x[b, n:] = 1e3
    for reverse in (False, True):
        y1, (h1, c1) = nblstm.lstm(p.x, p.params, p.h0, p.c0, lengths=p.lengths, reverse=reverse)
        y2, (h2, c2) = nblstm.lstm(x, p.params, p.h0, p.c0, lengths=p.lengths, reverse=reverse)
        assert np.array_equal(y1, y2) and np.array_equal(h1, h2) and np.array_equal(c1, c2)


@pytest.mark.parametrize("dtype", DTYPES)
def test_empty_batch_and_time(dtype):
    # T = 0: nothing runs, the state comes back, every weight gradient is 0
    p = make_problem(3, 0, 2, 4, dtype=dtype, seed=19)
    y, (h, c), g = run_api(p)
    assert y.shape == (3, 0, 4) and g.dx.shape == (3, 0, 2)
    assert np.array_equal(h, p.h0) and np.array_equal(c, p.c0)
    assert np.array_equal(g.dh0, p.loss.w_h) and np.array_equal(g.dc0, p.loss.w_c)
    assert all(not np.any(a) for a in g.dparams)
    assert all(a.shape == b.shape for a, b in zip(g.dparams, p.params))
    # B = 0: empty outputs of the right shapes and zero weight gradients
    p = make_problem(0, 4, 2, 3, dtype=dtype, seed=20)
    y, (h, c), g = run_api(p, with_state=False)
    assert y.shape == (0, 4, 3) and h.shape == c.shape == (0, 3)
    assert g.dx.shape == (0, 4, 2) and g.dh0.shape == (0, 3)
    assert all(not np.any(a) and a.dtype == np.dtype(dtype) for a in g.dparams)


# ----------------------------------------------------------------------------- large values

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reverse", [False, True], ids=["forward", "reverse"])
def test_large_values_finite_without_warnings(reverse, dtype):
    p = make_problem(3, 4, 3, 2, dtype=dtype, seed=21, lengths=np.array([4, 2, 0]), scale=1e4)
    params = LSTMParams(*(a * dtype(100) for a in p.params))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        y, (h, c), cache = nblstm.lstm_forward(p.x, params, p.h0 * dtype(1e4), p.c0 * dtype(1e4),
                                               lengths=p.lengths, reverse=reverse)
        g = nblstm.lstm_backward(cache, **p.loss.cotangents())
    for name, arr in all_arrays(y, (h, c), g).items():
        assert np.all(np.isfinite(arr)), name
    # saturated gates: |h| <= 1 at every step
    assert np.all(np.abs(y) <= 1)
    ref = reference_run(p.x, params, p.h0 * dtype(1e4), p.c0 * dtype(1e4), lengths=p.lengths,
                        reverse=reverse, **p.loss.cotangents())
    assert_results_close((y, (h, c), g), ref, RTOL[np.dtype(dtype)], np.dtype(dtype))


@pytest.mark.parametrize("dtype", DTYPES)
def test_small_values_keep_their_relative_precision(dtype):
    """Tiny inputs and states give tiny h and c, each to its own relative precision.

    tanh(z) as (1 - e^-2|z|) / (1 + e^-2|z|) lost the digits of a small z to the
    cancellation in 1 - e^-2|z| (tanh(1e-8) was 0 in float32): h = o tanh(c)
    of a small c was off by 1e-8 of itself in float64 and by all of it in float32.
    """
    p = make_problem(3, 4, 3, 2, dtype=dtype, seed=23, lengths=np.array([4, 2, 0]), scale=1e-6)
    params = LSTMParams(p.params.W_ih, p.params.W_hh, np.zeros_like(p.params.b))
    h0, c0 = p.h0 * dtype(1e-6), p.c0 * dtype(1e-6)
    y, (h, c), cache = nblstm.lstm_forward(p.x, params, h0, c0, lengths=p.lengths)
    g = nblstm.lstm_backward(cache, **p.loss.cotangents())
    assert 0 < np.max(np.abs(y)) < 1e-5
    ref = reference_run(p.x, params, h0, c0, lengths=p.lengths, **p.loss.cotangents())
    assert_results_close((y, (h, c), g), ref, RTOL[np.dtype(dtype)], np.dtype(dtype))


# ----------------------------------------------------------------------------- more contract

@pytest.mark.parametrize("given", ["h0", "c0"])
def test_one_initial_state_given(given):
    p = make_problem(3, 4, 2, 3, seed=22, lengths=np.array([4, 0, 2]))
    h0, c0 = (p.h0, None) if given == "h0" else (None, p.c0)
    y, state, cache = nblstm.lstm_forward(p.x, p.params, h0, c0, lengths=p.lengths)
    g = nblstm.lstm_backward(cache, **p.loss.cotangents())
    ref = reference_run(p.x, p.params, h0, c0, lengths=p.lengths, **p.loss.cotangents())
    assert_results_close((y, state, g), ref, 1e-12)


def test_state_dtype_does_not_set_the_compute_dtype():
    """The compute dtype is the result type of x and the params; h0/c0 are cast to it."""
    p = make_problem(2, 3, 2, 3, dtype=np.float32, seed=23)
    y, (h, c), cache = nblstm.lstm_forward(p.x, p.params, p.h0.astype(np.float64), p.c0.astype(np.float64))
    g = nblstm.lstm_backward(cache, dy=np.ones(y.shape), dh_n=np.ones(h.shape))
    assert y.dtype == h.dtype == c.dtype == g.dx.dtype == g.dh0.dtype == np.float32
    y2, (h2, c2) = nblstm.lstm(p.x, p.params, p.h0, p.c0)
    assert np.array_equal(y, y2) and np.array_equal(h, h2)


def test_cache_does_not_see_later_changes_to_the_inputs():
    p = make_problem(3, 4, 2, 3, seed=24, lengths=np.array([4, 1, 3]))
    x, params, h0, c0 = p.x.copy(), LSTMParams(*(a.copy() for a in p.params)), p.h0.copy(), p.c0.copy()
    _, _, cache = nblstm.lstm_forward(x, params, h0, c0, lengths=p.lengths, reverse=True)
    before = nblstm.lstm_backward(cache, **p.loss.cotangents())
    for a in (x, *params, h0, c0):
        a[...] = 7.0
    after = nblstm.lstm_backward(cache, **p.loss.cotangents())
    _assert_grads_equal(before, after)


@pytest.mark.parametrize("lengths", [[], np.array([], np.int64)], ids=["empty_list", "empty_int_array"])
def test_empty_batch_with_empty_lengths(lengths):
    p = make_problem(0, 4, 2, 3, seed=25)
    y, (h, c) = nblstm.lstm(p.x, p.params, lengths=lengths)
    assert y.shape == (0, 4, 3) and h.shape == (0, 3)


# (B, H, path): B = 1 at H = 32 takes the lean path (nblstm._lean) when the path is not forced
CACHE_CASES = [(1, 32, None)] + [(6, 32, path) for path in cpu.PATHS]


@pytest.mark.parametrize("B, H, path", CACHE_CASES, ids=lambda v: str(v))
@pytest.mark.parametrize("stack", [False, True], ids=["layer", "stack"])
def test_the_cache_owns_every_array_it_keeps(B, H, path, stack, cpu_config):
    """Streaming updates h0 and c0 in place between lstm_forward and lstm_backward.

    A lean-path cache that kept the caller's own h0/c0 passed every test (dW_hh came out 1.38 off):
    the cache's inputs, weights and states must all be its own.
    """
    cpu_config.path = path
    rng = np.random.default_rng(0)
    params = (nblstm.init_stack(5, H, num_layers=2, bidirectional=True, seed=1) if stack
              else nblstm.init_params(5, H, seed=1))
    state = (4, B, H) if stack else (B, H)
    x = rng.standard_normal((B, 7, 5))
    h0, c0 = rng.standard_normal(state), rng.standard_normal(state)
    y, _, cache = nblstm.lstm_forward(x, params, h0, c0)
    dy = rng.standard_normal(y.shape)
    want = nblstm.lstm_backward(cache, dy)
    # the caller changes every array it passed, in place
    for a in [x, h0, c0] + [a for layer in (params if stack else ((params,),)) for p in layer for a in p]:
        a += 0.5
    got = nblstm.lstm_backward(cache, dy)
    for g, w in zip(arrays_in(got), arrays_in(want)):
        np.testing.assert_array_equal(g, w)


def test_a_cache_pickled_when_it_lived_in_api_still_loads():
    """The cache's types moved from nblstm._api to nblstm._cache (so that _lean need not import _api)."""
    import pickle

    x = np.random.default_rng(0).standard_normal((2, 5, 3))
    y, _, cache = nblstm.lstm_forward(x, nblstm.init_params(3, 4, seed=0))
    old = pickle.dumps(cache, protocol=2).replace(b"cnblstm._cache\n", b"cnblstm._api\n")
    assert b"nblstm._cache" not in old                 # the pickle names only the old module
    loaded = pickle.loads(old)
    assert isinstance(loaded, nblstm.LSTMCache)
    want = nblstm.lstm_backward(cache, dy=np.ones_like(y))
    for g, w in zip(arrays_in(nblstm.lstm_backward(loaded, dy=np.ones_like(y))), arrays_in(want)):
        np.testing.assert_array_equal(g, w)
