"""nblstm.jit: the compiled cell and sequence, from Python and from users' @njit code."""
import json
import os
import pathlib
import re
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from numba import njit, prange
from numba.core.registry import CPUDispatcher

import nblstm
import nblstm.jit as nj
from nblstm import reference
from nblstm.cpu import _jit, _lanes
from nblstm.params import LSTMParams

from _helpers import require_layer

ROOT = pathlib.Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
DTYPES = [np.float32, np.float64]
# float64 against the public API and the reference: round-off of a sum over I + H
# terms in another order; float32 against the float64 reference: float32 round-off
RTOL = {np.dtype(np.float64): 1e-13, np.dtype(np.float32): 2e-5}


def _problem(T, I, H, dtype, seed=0):
    rng = np.random.default_rng(seed)
    params = LSTMParams(*(a.astype(dtype) for a in nblstm.init_params(I, H, seed=rng)))
    x = rng.standard_normal((T, I)).astype(dtype)
    h0 = (0.5 * rng.standard_normal(H)).astype(dtype)
    c0 = (0.5 * rng.standard_normal(H)).astype(dtype)
    return x, params, h0, c0


def _sequence(x, params, h0, c0):
    T, H = x.shape[0], h0.shape[0]
    y, h_n, c_n = np.empty((T, H), x.dtype), np.empty(H, x.dtype), np.empty(H, x.dtype)
    nj.lstm_sequence(x, *params, h0, c0, y, h_n, c_n)
    return y, h_n, c_n


def _close(actual, expected, dtype):
    """Relative to the largest magnitude of the expected array (h and c are O(1))."""
    scale = max(np.abs(expected).max(), 1.0)
    np.testing.assert_allclose(actual, expected, rtol=0, atol=RTOL[np.dtype(dtype)] * scale)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("T, I, H", [(30, 8, 32), (7, 5, 13), (4, 19, 3), (3, 1, 1)])
def test_sequence_matches_public_api_and_reference(T, I, H, dtype):
    x, params, h0, c0 = _problem(T, I, H, dtype)
    x_in, h0_in, c0_in = x.copy(), h0.copy(), c0.copy()
    y, h_n, c_n = _sequence(x, params, h0, c0)
    assert y.dtype == h_n.dtype == np.dtype(dtype)
    # inputs are never modified
    for before, after in ((x_in, x), (h0_in, h0), (c0_in, c0)):
        np.testing.assert_array_equal(before, after)

    y_api, (h_api, c_api) = nblstm.lstm(x, params, h0, c0)
    p64 = LSTMParams(*(a.astype(np.float64) for a in params))
    y_ref, (h_ref, c_ref), _ = reference.lstm_forward(x[None].astype(np.float64), p64,
                                                      h0[None].astype(np.float64),
                                                      c0[None].astype(np.float64))
    for ours, api, ref in ((y, y_api, y_ref[0]), (h_n, h_api, h_ref[0]), (c_n, c_api, c_ref[0])):
        _close(ours, api, dtype)
        _close(ours, ref, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_cell_steps_are_the_sequence(dtype):
    """T calls of lstm_cell, from Python, give the sequence's bits (one step function)."""
    x, params, h0, c0 = _problem(6, 8, 32, dtype)
    y, h_n, c_n = _sequence(x, params, h0, c0)
    h, c = h0.copy(), c0.copy()
    h_out, c_out = np.empty_like(h), np.empty_like(c)
    for t in range(len(x)):
        nj.lstm_cell(x[t], h, c, *params, h_out, c_out)
        np.testing.assert_array_equal(h_out, y[t])
        h, c = h_out.copy(), c_out.copy()
    np.testing.assert_array_equal(h, h_n)
    np.testing.assert_array_equal(c, c_n)


@pytest.mark.parametrize("dtype", DTYPES)
def test_cell_in_place(dtype):
    """h_out may be h and c_out may be c: the same bits as separate outputs."""
    x, params, h0, c0 = _problem(1, 8, 32, dtype)
    h_sep, c_sep = np.empty_like(h0), np.empty_like(c0)
    nj.lstm_cell(x[0], h0, c0, *params, h_sep, c_sep)
    for alias_h, alias_c in ((True, True), (True, False), (False, True)):
        h, c = h0.copy(), c0.copy()
        h_out = h if alias_h else np.empty_like(h)
        c_out = c if alias_c else np.empty_like(c)
        nj.lstm_cell(x[0], h, c, *params, h_out, c_out)
        np.testing.assert_array_equal(h_out, h_sep)
        np.testing.assert_array_equal(c_out, c_sep)
    assert not np.array_equal(h_sep, h0)


@pytest.mark.parametrize("dtype", DTYPES)
def test_sequence_state_in_place(dtype):
    x, params, h0, c0 = _problem(5, 4, 6, dtype)
    y_sep, h_sep, c_sep = _sequence(x, params, h0, c0)
    h, c = h0.copy(), c0.copy()
    y = np.empty_like(y_sep)
    nj.lstm_sequence(x, *params, h, c, y, h, c)
    np.testing.assert_array_equal(y, y_sep)
    np.testing.assert_array_equal(h, h_sep)
    np.testing.assert_array_equal(c, c_sep)


def test_empty_sequence_returns_the_initial_state():
    x, params, h0, c0 = _problem(0, 3, 4, np.float64)
    y, h_n, c_n = _sequence(x, params, h0, c0)
    assert y.shape == (0, 4)
    np.testing.assert_array_equal(h_n, h0)
    np.testing.assert_array_equal(c_n, c0)


def test_strided_operands_give_the_same_bits():
    """Non-contiguous arrays take the lane-by-lane loop: the same sums in the same order."""
    x, params, h0, c0 = _problem(5, 9, 12, np.float64)
    y, h_n, c_n = _sequence(x, params, h0, c0)
    x_strided = np.repeat(x, 2, axis=1)[:, ::2]
    W_ih_f = np.asfortranarray(params.W_ih)
    assert not x_strided[0].flags.c_contiguous and not W_ih_f.flags.c_contiguous
    y2, h2, c2 = _sequence(x_strided, LSTMParams(W_ih_f, params.W_hh, params.b), h0, c0)
    np.testing.assert_array_equal(y2, y)
    np.testing.assert_array_equal(h2, h_n)
    np.testing.assert_array_equal(c2, c_n)


def test_large_hidden_size_uses_a_heap_buffer():
    """4H above the stack buffer: the same step, with the gate buffer on the heap."""
    H = _lanes.STACK_ELEMENTS // 4 + 3
    x, params, h0, c0 = _problem(2, 3, H, np.float64)
    y, h_n, c_n = _sequence(x, params, h0, c0)
    y_api, (h_api, c_api) = nblstm.lstm(x, params, h0, c0)
    _close(y, y_api, np.float64)
    _close(h_n, h_api, np.float64)
    _close(c_n, c_api, np.float64)


@njit
def _user_steps(x, h, c, W_ih, W_hh, b):
    """A user's @njit loop: the state updated in place, one step per row of x."""
    for t in range(x.shape[0]):
        nj.lstm_cell(x[t], h, c, W_ih, W_hh, b, h, c)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.slow
def test_cell_from_user_njit_code(dtype):
    x, params, h0, c0 = _problem(9, 8, 32, dtype)
    _, h_n, c_n = _sequence(x, params, h0, c0)
    h, c = h0.copy(), c0.copy()
    _user_steps(x, h, c, *params)
    np.testing.assert_array_equal(h, h_n)
    np.testing.assert_array_equal(c, c_n)


@njit(parallel=True)
def _user_prange(x, W_ih, W_hh, b, h0, c0, y, h_n, c_n):
    """Independent sequences, one per prange iteration (a particle filter's shape)."""
    for p in prange(x.shape[0]):
        nj.lstm_sequence(x[p], W_ih, W_hh, b, h0[p], c0[p], y[p], h_n[p], c_n[p])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.slow
def test_prange_over_sequences_equals_public_calls(dtype):
    P, T, I, H = 64, 12, 8, 32
    rng = np.random.default_rng(3)
    params = LSTMParams(*(a.astype(dtype) for a in nblstm.init_params(I, H, seed=rng)))
    x = rng.standard_normal((P, T, I)).astype(dtype)
    h0 = (0.5 * rng.standard_normal((P, H))).astype(dtype)
    c0 = (0.5 * rng.standard_normal((P, H))).astype(dtype)
    y, h_n, c_n = np.empty((P, T, H), dtype), np.empty((P, H), dtype), np.empty((P, H), dtype)
    _user_prange(x, *params, h0, c0, y, h_n, c_n)
    for p in range(P):
        y_api, (h_api, c_api) = nblstm.lstm(x[p], params, h0[p], c0[p])
        _close(y[p], y_api, dtype)
        _close(h_n[p], h_api, dtype)
        _close(c_n[p], c_api, dtype)
        # and bitwise what one call from Python gives: threads change nothing
        y1, h1, c1 = _sequence(x[p], params, h0[p], c0[p])
        np.testing.assert_array_equal(y[p], y1)
        np.testing.assert_array_equal(h_n[p], h1)
        np.testing.assert_array_equal(c_n[p], c1)


@njit(parallel=True)
def _user_prange_cells(x, h, c, W_ih, W_hh, b):
    """One step of many independent states in place (lstm_cell is inlined: the loop must stay parallel)."""
    for p in prange(h.shape[0]):
        nj.lstm_cell(x[p], h[p], c[p], W_ih, W_hh, b, h[p], c[p])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.slow
def test_prange_over_cells_equals_cells_from_python(dtype):
    """Also: numba parallelises the loop (a NumbaPerformanceWarning would be an error here)."""
    P, I, H = 40, 5, 16
    rng = np.random.default_rng(4)
    params = LSTMParams(*(a.astype(dtype) for a in nblstm.init_params(I, H, seed=rng)))
    x = rng.standard_normal((P, I)).astype(dtype)
    h0, c0 = rng.standard_normal((P, H)).astype(dtype), rng.standard_normal((P, H)).astype(dtype)
    h, c = h0.copy(), c0.copy()
    _user_prange_cells(x, h, c, *params)
    for p in range(P):
        h1, c1 = np.empty(H, dtype), np.empty(H, dtype)
        nj.lstm_cell(x[p], h0[p], c0[p], *params, h1, c1)
        np.testing.assert_array_equal(h[p], h1)
        np.testing.assert_array_equal(c[p], c1)


def test_bad_shape_inside_prange_reaches_the_caller():
    """numba hands an exception raised in a parallel loop back as a SystemError caused by it."""
    x, params, _, _ = _problem(1, 3, 4, np.float64)
    h, c = np.zeros((6, 4)), np.zeros((6, 4))
    with pytest.raises((ValueError, SystemError)) as info:
        _user_prange_cells(np.zeros((6, 2)), h, c, *params)
    error = info.value if isinstance(info.value, ValueError) else info.value.__cause__
    assert isinstance(error, ValueError)
    assert str(error) == "x_t: expected shape (3,), got (2,)"


PRANGE_ERROR = textwrap.dedent('''
    import json

    import numba
    import numpy as np
    from numba import njit, prange

    import nblstm
    import nblstm.jit

    @njit(parallel=True)
    def step_all(x, h, c, W_ih, W_hh, b):
        for p in prange(h.shape[0]):
            nblstm.jit.lstm_cell(x[p], h[p], c[p], W_ih, W_hh, b, h[p], c[p])

    @njit(parallel=True)
    def run_all(x, h0, c0, W_ih, W_hh, b, y, h_n, c_n):
        for p in prange(h0.shape[0]):
            nblstm.jit.lstm_sequence(x[p], W_ih, W_hh, b, h0[p], c0[p], y[p], h_n[p], c_n[p])

    params = nblstm.init_params(8, 32, seed=0)
    h, c = np.zeros((1000, 32)), np.zeros((1000, 32))
    h0 = np.zeros((1000, 32))
    y, h_n, c_n = np.zeros((1000, 5, 32)), np.zeros((1000, 32)), np.zeros((1000, 32))
    outcome = {}
    for name, call, outputs in (
            ("cell", lambda: step_all(np.ones((1000, 7)), h, c, *params), (h, c)),
            ("sequence", lambda: run_all(np.ones((1000, 5, 7)), h0, h0, *params, y, h_n, c_n), (y, h_n, c_n))):
        try:
            call()
            raised = "nothing"
        except SystemError as exc:
            raised = repr(exc.__cause__)
        # NaN in the first iteration of every thread's chunk (numba stops a chunk at its first error)
        nan_first = all(bool(np.isnan(a[0]).all()) for a in outputs)
        outcome[name] = [raised, nan_first, all(bool(np.isnan(a).any()) for a in outputs)]
    print(numba.threading_layer(), json.dumps(outcome))
''')


# Under workqueue numba drops an exception raised in a prange loop (numba#9673): the loop used to
# return with every state unchanged, looking valid. The invalid call's outputs are NaN on every layer.
@pytest.mark.parametrize("layer", ["workqueue", "omp", "tbb"])
@pytest.mark.slow
def test_bad_shape_inside_prange_leaves_no_valid_looking_output(tmp_path, layer):
    env = require_layer(layer)
    env["NUMBA_THREADING_LAYER"] = layer
    env["NUMBA_NUM_THREADS"] = "2"
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT)] + [p for p in [env.get("PYTHONPATH")] if p])
    script = tmp_path / "prange_error.py"
    script.write_text(PRANGE_ERROR)
    proc = subprocess.run([sys.executable, str(script)], env=env, cwd=tmp_path, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    line = proc.stdout.strip().splitlines()[-1]
    assert line.startswith(layer + " "), line
    error = {"cell": "ValueError('x_t: expected shape (8,), got (7,)')",
             "sequence": "ValueError('x: expected shape (5, 8), got (5, 7)')"}
    for name in ("cell", "sequence"):
        raised, nan_first, nan_any = json.loads(line[len(layer) + 1:])[name]
        # omp and tbb hand the error back; workqueue drops it, and then the NaN tell
        assert raised == ("nothing" if layer == "workqueue" else error[name]), (name, raised)
        assert nan_first and nan_any, (name, line)


@pytest.mark.slow
def test_particle_filter_example_tracks_the_signal():
    """examples/particle_filter.py run as a user runs it, small: the filter beats the raw observations.

    In a subprocess, as ``__main__``: its functions are cached by numba under the
    module's name, which an import under another name could not load back.
    """
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT)] + [p for p in [env.get("PYTHONPATH")] if p])
    proc = subprocess.run([sys.executable, str(EXAMPLES / "particle_filter.py"), "--particles", "500",
                           "--steps", "80"], env=env, cwd=ROOT, capture_output=True, text=True,
                          timeout=600, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    match = re.search(r"time per filter step: ([0-9.]+) ms.*RMSE of the filtered signal ([0-9.]+) "
                      r"against ([0-9.]+) for the raw observations", proc.stdout, re.S)
    assert match, proc.stdout
    per_step, rmse_filter, rmse_raw = map(float, match.groups())
    assert per_step > 0
    assert rmse_filter < 0.9 * rmse_raw


@pytest.mark.parametrize("option", ["--particles", "--steps"])
@pytest.mark.slow
def test_particle_filter_example_refuses_zero(option):
    """A usage error from argparse, not a traceback from the filter's first reduction."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT)] + [p for p in [env.get("PYTHONPATH")] if p])
    proc = subprocess.run([sys.executable, str(EXAMPLES / "particle_filter.py"), option, "0"], env=env,
                          cwd=ROOT, capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert f"argument {option}: expected a positive integer, got '0'" in proc.stderr


USER_MODULE = textwrap.dedent('''
    import json, sys
    import numpy as np
    from numba import njit
    import nblstm, nblstm.jit

    @njit(cache=True)
    def rollout(x, W_ih, W_hh, b, h, c, out):
        for t in range(x.shape[0]):
            nblstm.jit.lstm_cell(x[t], h, c, W_ih, W_hh, b, h, c)
            out[t] = h[0]

    if __name__ == "__main__":
        dtype = np.dtype(sys.argv[1])
        rng = np.random.default_rng(0)
        p = [a.astype(dtype) for a in nblstm.init_params(3, 5, seed=rng)]
        x = rng.standard_normal((4, 3)).astype(dtype)
        h, c, out = np.zeros(5, dtype), np.zeros(5, dtype), np.empty(4, dtype)
        rollout(x, *p, h, c, out)
        print(json.dumps({"hits": sum(rollout.stats.cache_hits.values()),
                          "misses": sum(rollout.stats.cache_misses.values()),
                          "h": h.tolist(), "c": c.tolist(), "out": out.tolist()}))
''')


def _run_user(tmp_path, dtype):
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT)] + [p for p in [env.get("PYTHONPATH")] if p])
    env.pop("NUMBA_DISABLE_JIT", None)
    proc = subprocess.run([sys.executable, str(tmp_path / "user_model.py"), dtype], env=env,
                          cwd=tmp_path, capture_output=True, text=True, timeout=600, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.slow
def test_user_cached_function_loads_from_cache_in_a_fresh_process(tmp_path, dtype):
    (tmp_path / "user_model.py").write_text(USER_MODULE)
    first = _run_user(tmp_path, dtype)
    second = _run_user(tmp_path, dtype)
    assert (first["hits"], first["misses"]) == (0, 1)    # compiled and saved
    assert (second["hits"], second["misses"]) == (1, 0)  # loaded, not compiled
    assert list((tmp_path / "__pycache__").glob("user_model.rollout-*.nbc"))
    assert second == {**first, "hits": 1, "misses": 0}
    # and the numbers are those of the public API
    rng = np.random.default_rng(0)
    p = LSTMParams(*(a.astype(dtype) for a in nblstm.init_params(3, 5, seed=rng)))
    x = rng.standard_normal((4, 3)).astype(dtype)
    y, (h, c) = nblstm.lstm(x, p)
    _close(np.array(first["out"], dtype), y[:, 0], dtype)
    _close(np.array(first["h"], dtype), h, dtype)
    _close(np.array(first["c"], dtype), c, dtype)


def _cell_args(I=3, H=4):
    x, params, h0, c0 = _problem(1, I, H, np.float64)
    return dict(x_t=x[0], h=h0, c=c0, W_ih=params.W_ih, W_hh=params.W_hh, b=params.b,
                h_out=np.empty(H), c_out=np.empty(H))


def _sequence_args(T=5, I=3, H=4):
    x, params, h0, c0 = _problem(T, I, H, np.float64)
    return dict(x=x, W_ih=params.W_ih, W_hh=params.W_hh, b=params.b, h0=h0, c0=c0,
                y=np.empty((T, H)), h_n=np.empty(H), c_n=np.empty(H))


CELL_BAD = [
    ("x_t", np.zeros(2), "x_t: expected shape (3,), got (2,)"),
    ("h", np.zeros(5), "h: expected shape (4,), got (5,)"),
    ("c", np.zeros(3), "c: expected shape (4,), got (3,)"),
    ("h_out", np.zeros(5), "h_out: expected shape (4,), got (5,)"),
    ("c_out", np.zeros(1), "c_out: expected shape (4,), got (1,)"),
    ("W_hh", np.zeros((16, 5)), "W_hh: expected shape (4*H, H) with H >= 1, got (16, 5)"),
    ("W_hh", np.zeros((0, 0)), "W_hh: expected shape (4*H, H) with H >= 1, got (0, 0)"),
    ("W_ih", np.zeros((12, 3)), "W_ih: expected shape (16, I) with I >= 1 to match W_hh's H=4, got (12, 3)"),
    ("W_ih", np.zeros((16, 0)), "W_ih: expected shape (16, I) with I >= 1 to match W_hh's H=4, got (16, 0)"),
    ("b", np.zeros(15), "b: expected shape (16,) to match W_hh's H=4, got (15,)"),
]

SEQUENCE_BAD = [
    ("x", np.zeros((5, 2)), "x: expected shape (5, 3), got (5, 2)"),
    ("h0", np.zeros(3), "h0: expected shape (4,), got (3,)"),
    ("c0", np.zeros(5), "c0: expected shape (4,), got (5,)"),
    ("y", np.zeros((4, 4)), "y: expected shape (5, 4), got (4, 4)"),
    ("y", np.zeros((5, 3)), "y: expected shape (5, 4), got (5, 3)"),
    ("h_n", np.zeros(2), "h_n: expected shape (4,), got (2,)"),
    ("c_n", np.zeros(6), "c_n: expected shape (4,), got (6,)"),
    ("W_hh", np.zeros((12, 4)), "W_hh: expected shape (4*H, H) with H >= 1, got (12, 4)"),
    ("W_ih", np.zeros((16, 2)), "x: expected shape (5, 2), got (5, 3)"),
    ("b", np.zeros(4), "b: expected shape (16,) to match W_hh's H=4, got (4,)"),
]


@pytest.mark.parametrize("name, bad, message", CELL_BAD)
def test_cell_bad_shape(name, bad, message):
    args = _cell_args()
    args[name] = bad
    before = {k: v.copy() for k, v in args.items()}
    with pytest.raises(ValueError) as info:
        nj.lstm_cell(*args.values())
    assert str(info.value) == message
    for k, v in args.items():                  # inputs untouched; outputs NaN, no valid-looking state
        if k in ("h_out", "c_out"):
            assert np.isnan(v).all(), k
        else:
            np.testing.assert_array_equal(v, before[k])


@pytest.mark.parametrize("name, bad, message", SEQUENCE_BAD)
def test_sequence_bad_shape(name, bad, message):
    args = _sequence_args()
    args[name] = bad
    before = {k: v.copy() for k, v in args.items()}
    with pytest.raises(ValueError) as info:
        nj.lstm_sequence(*args.values())
    assert str(info.value) == message
    for k, v in args.items():
        if k in ("y", "h_n", "c_n"):
            assert np.isnan(v).all(), k
        else:
            np.testing.assert_array_equal(v, before[k])


@njit
def _user_bad_call(x_t, h, c, W_ih, W_hh, b):
    nj.lstm_cell(x_t, h, c, W_ih, W_hh, b, h, c)


@pytest.mark.slow
def test_bad_shape_raises_inside_user_njit_code():
    args = _cell_args()
    with pytest.raises(ValueError, match=r"^h: expected shape \(4,\), got \(3,\)$"):
        _user_bad_call(args["x_t"], np.zeros(3), args["c"], args["W_ih"], args["W_hh"], args["b"])


def test_every_jit_function_goes_through_the_policy():
    """cache, error model and fastmath as for the backend's kernels (nblstm.cpu._jit)."""
    found = {f"{m.__name__}.{name}": obj for m in (nj, _lanes) for name, obj in vars(m).items()
             if isinstance(obj, CPUDispatcher)}
    assert {"nblstm.jit.lstm_cell", "nblstm.jit.lstm_sequence"} <= set(found)
    assert not [name for name, d in found.items() if d not in _jit.REGISTRY]


def test_lane_order_is_the_documented_one():
    """gate_products sums in the order _lanes documents, written out here in NumPy."""
    rng = np.random.default_rng(5)
    for I, H in ((8, 32), (5, 13), (19, 3)):
        W_ih, W_hh = rng.standard_normal((4 * H, I)), rng.standard_normal((4 * H, H))
        b, x, h = rng.standard_normal(4 * H), rng.standard_normal(I), rng.standard_normal(H)
        z = np.empty(4 * H)
        _gate_products(W_ih, x, W_hh, h, b, z)
        for r in range(4 * H):
            lanes = [0.0] * 8
            for k in range(I):
                lanes[k % 8] += W_ih[r, k] * x[k]
            for k in range(H):
                lanes[k % 8] += W_hh[r, k] * h[k]
            l0, l1, l2, l3, l4, l5, l6, l7 = lanes
            assert z[r] == b[r] + (((l0 + l4) + (l2 + l6)) + ((l1 + l5) + (l3 + l7)))
        assert z[0] == b[0] + _lanes.lane_dot(W_ih[0], x, W_hh[0], h)   # the Python definition


@njit
def _gate_products(W_ih, x, W_hh, h, b, z):
    _lanes.gate_products(W_ih, x, W_hh, h, b, z)
