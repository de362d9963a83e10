"""The scratch arrays the CPU backend keeps between calls (``nblstm.cpu.workspace``).

Kept scratch must behave like ``np.empty``: whatever it holds from the last
call, or NaN, must not reach a result. Each path is run on poisoned buffers and
compared bit for bit with a run on fresh ones.
"""
import threading

import numpy as np
import pytest

import nblstm
from nblstm import cpu
from nblstm.cpu import workspace

from _helpers import all_arrays, arrays_in, make_problem, run_api


@pytest.fixture(autouse=True)
def empty_workspace():
    workspace.clear()
    yield
    workspace.clear()


def test_a_buffer_is_reused_grown_and_released():
    a = workspace.scratch("w", (3, 4), np.float32, 1 << 20)
    b = workspace.scratch("w", (2, 5), np.float32, 1 << 20)
    assert a.shape == (3, 4) and b.shape == (2, 5) and b.flags.c_contiguous
    assert np.shares_memory(a, b)                                  # same name: reused
    c = workspace.scratch("other", (3, 4), np.float32, 1 << 20)
    assert not np.shares_memory(a, c)                              # another name: its own
    d = workspace.scratch("w", (3, 4), np.float64, 1 << 20)
    assert d.dtype == np.float64 and not np.shares_memory(a, d)    # another dtype: its own
    assert workspace.held_bytes() == 12 * 4 + 12 * 4 + 12 * 8
    e = workspace.scratch("w", (5, 5), np.float32, 1 << 20)        # larger: replaced
    assert e.shape == (5, 5) and workspace.held_bytes() == 25 * 4 + 12 * 4 + 12 * 8
    workspace.clear()
    assert workspace.held_bytes() == 0


def test_requests_over_the_limit_are_not_kept():
    a = workspace.scratch("w", (10,), np.float64, 79)
    b = workspace.scratch("w", (10,), np.float64, 79)
    assert not np.shares_memory(a, b)
    assert workspace.held_bytes() == 0


def test_buffers_start_on_a_cache_line():
    """MKL's order of sums may depend on its operands' alignment (the "slices" path)."""
    for n in (1, 3, 17, 1000):
        for dtype in (np.float32, np.float64):
            kept = workspace.scratch(f"w{n}", (n, 3), dtype, 1 << 20)
            fresh = workspace.scratch(f"w{n}", (n, 3), dtype, 0)      # over the limit
            for a in (kept, fresh, workspace.aligned_empty((n, 3), dtype)):
                assert a.ctypes.data % workspace.ALIGNMENT == 0
                assert a.shape == (n, 3) and a.dtype == dtype and a.flags.c_contiguous


def test_sizes_may_be_numpy_integers():
    """A plan's sizes can come out of NumPy arithmetic (it failed for np.int64 once)."""
    a = workspace.scratch("w", (np.int64(3), 4), np.float32, 1 << 20)
    b = workspace.aligned_empty(np.int64(5), np.float64)
    assert a.shape == (3, 4) and b.shape == (5,)


def test_each_thread_has_its_own_buffers():
    mine = workspace.scratch("w", (8,), np.float64, 1 << 20)
    theirs = []
    thread = threading.Thread(
        target=lambda: theirs.append(workspace.scratch("w", (8,), np.float64, 1 << 20)))
    thread.start()
    thread.join()
    assert not np.shares_memory(mine, theirs[0])


def _poison():
    for buffer in workspace._buffers().values():
        buffer[...] = np.nan


@pytest.mark.parametrize("path", cpu.PATHS)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_results_do_not_depend_on_what_the_scratch_held(cpu_config, path, dtype):  # noqa: F811
    """Training, with padded steps (which the kernels must write too) and a reverse stack."""
    cpu_config.path = path
    p = make_problem(5, 7, 3, 6, dtype=dtype, seed=3, lengths="mixed")
    cpu_config.workspace_bytes = 0
    want = all_arrays(*run_api(p, reverse=True))
    cpu_config.workspace_bytes = 1 << 20
    run_api(p, reverse=True)
    assert workspace.held_bytes() > 0
    _poison()
    got = all_arrays(*run_api(p, reverse=True))
    for name in want:
        np.testing.assert_array_equal(got[name], want[name], err_msg=name)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_inference_projection_buffer_does_not_leak_into_results(cpu_config, dtype):  # noqa: F811
    """The "blas" path's inference projection buffer, in chunks, with rows ending mid-chunk."""
    cpu_config.path = "blas"
    cpu_config.chunk_elements = 4 * 6 * 5 * 2       # two steps a chunk
    p = make_problem(5, 7, 3, 6, dtype=dtype, seed=4, lengths="mixed")
    cpu_config.workspace_bytes = 0
    want = nblstm.lstm(p.x, p.params, p.h0, p.c0, lengths=p.lengths)
    cpu_config.workspace_bytes = 1 << 20
    nblstm.lstm(p.x, p.params, p.h0, p.c0, lengths=p.lengths)
    assert workspace.held_bytes() > 0
    _poison()
    got = nblstm.lstm(p.x, p.params, p.h0, p.c0, lengths=p.lengths)
    for name, a, b in [("y", got[0], want[0]), ("h_n", got[1][0], want[1][0]),
                       ("c_n", got[1][1], want[1][1])]:
        np.testing.assert_array_equal(a, b, err_msg=name)


def _stack_problem(dtype, num_layers=3):
    from nblstm.params import init_stack

    rng = np.random.default_rng(5)
    B, T, I, H = 5, 6, 3, 4
    params = init_stack(I, H, num_layers, bidirectional=True, seed=rng, dtype=dtype)
    x = rng.standard_normal((B, T, I)).astype(dtype)
    dy = rng.standard_normal((B, T, 2 * H)).astype(dtype)
    dh_n = rng.standard_normal((2 * num_layers, B, H)).astype(dtype)
    lengths = np.array([4, 6, 0, 2, 6])
    return params, x, dy, dh_n, lengths


def _stack_run(params, x, dy, dh_n, lengths):
    y_inf, (h_inf, c_inf) = nblstm.lstm(x, params, lengths=lengths)
    y, (h, c), cache = nblstm.lstm_forward(x, params, lengths=lengths)
    g = nblstm.lstm_backward(cache, dy, dh_n=dh_n)
    named = {"lstm.y": y_inf, "lstm.h_n": h_inf, "lstm.c_n": c_inf, "y": y, "h_n": h, "c_n": c,
             "dx": g.dx, "dh0": g.dh0, "dc0": g.dc0}
    for l, layer in enumerate(g.dparams):
        for d, p in enumerate(layer):
            for field, a in zip(p._fields, p):
                named[f"d{field}[{l}][{d}]"] = a
    return named, cache


@pytest.mark.parametrize("path", cpu.PATHS)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_stacks_do_not_depend_on_what_the_scratch_held(cpu_config, path, dtype):  # noqa: F811
    """Three bidirectional layers (each layer's gradient passes through two scratch arrays in turn,
    reversed inputs and outputs are scratch in inference), unsorted lengths with a 0."""
    cpu_config.path = path
    problem = _stack_problem(dtype)
    cpu_config.workspace_bytes = 0
    want, _ = _stack_run(*problem)
    cpu_config.workspace_bytes = 1 << 20
    _stack_run(*problem)
    _poison()
    got, _ = _stack_run(*problem)
    for name in want:
        np.testing.assert_array_equal(got[name], want[name], err_msg=name)


def test_no_result_or_cache_refers_to_a_kept_buffer(cpu_config):  # noqa: F811
    """Results and the cache outlive the call: none may share memory with a buffer that the
    next call overwrites."""
    cpu_config.workspace_bytes = 1 << 20
    named, cache = _stack_run(*_stack_problem(np.float64))
    buffers = list(workspace._buffers().values())
    assert len(buffers) >= 8          # dZ, h_prev, y0, y1, x_reversed, y_steps, dy_steps, dx_steps, ...
    for name, a in list(named.items()) + [(f"cache[{i}]", a) for i, a in enumerate(arrays_in(cache))]:
        assert not any(np.shares_memory(a, b) for b in buffers), name
