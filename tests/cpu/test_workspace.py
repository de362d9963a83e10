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


# ------------------------------------------------------------------ arrays that leave a call
# ``workspace.empty`` cuts large arrays (the cache, results) from buffers the process keeps and
# hands a buffer out again once nothing refers to it. The tests lower the threshold so that
# small arrays take that route.

SMALL = 1024          # bytes: recycle_min_bytes in these tests
KEPT = 4096 + workspace.ALIGNMENT       # the buffer of a 512-element float64 array


@pytest.fixture
def recycling(cpu_config):  # noqa: F811
    cpu_config.recycle_min_bytes = SMALL
    cpu_config.recycle_bytes = 1 << 20
    return cpu_config


def _buffer_of(a):
    """The kept buffer ``a`` was cut from, or None."""
    return next((raw for raw in workspace._recycled if a.base is raw), None)


def test_a_dropped_array_is_handed_out_again(recycling):
    a = workspace.empty((64, 8), np.float64)
    address = a.ctypes.data
    del a
    b = workspace.empty((8, 16, 4), np.float64)            # same bytes, another shape
    assert b.ctypes.data == address and b.shape == (8, 16, 4) and b.flags.c_contiguous
    c = workspace.empty(512, np.float64)                   # b is alive: another buffer
    assert not np.shares_memory(b, c)
    assert workspace.recycled_bytes() == 2 * KEPT
    for a in (b, c):
        assert a.ctypes.data % workspace.ALIGNMENT == 0 and a.dtype == np.float64


def test_recycling_starts_at_recycle_min_bytes(recycling):
    below = workspace.empty(SMALL // 8 - 1, np.float64)
    assert below.base is None and below.flags.owndata
    assert workspace.recycled_bytes() == 0
    at = workspace.empty(SMALL // 8, np.float64)
    assert _buffer_of(at) is not None
    assert workspace.recycled_bytes() == SMALL + workspace.ALIGNMENT


def test_a_free_buffer_somewhat_larger_serves_a_request(recycling):
    """T varies between calls: a buffer up to RECYCLE_SLACK times the request is reused."""
    a = workspace.empty(512, np.float64)
    address = a.ctypes.data
    del a
    smaller = workspace.empty(480, np.float64)             # 3904 bytes: within the slack
    assert smaller.ctypes.data == address
    del smaller
    much_smaller = workspace.empty(200, np.float64)        # 1664 bytes: its own buffer
    assert much_smaller.ctypes.data != address
    assert workspace.recycled_bytes() == KEPT + 1600 + workspace.ALIGNMENT


@pytest.mark.parametrize("source", ["float16", "int64", "bool", "strided float64", "list"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_copy_casts_as_np_array_does_below_and_above_the_threshold(recycling, source, dtype):
    base = np.random.default_rng(1).standard_normal((3, 40, 7)) * 1e3
    a = {"float16": base.astype(np.float16), "int64": base.astype(np.int64), "bool": base > 0,
         "strided float64": base[:, ::-1, ::2], "list": base.tolist()}[source]
    want = np.array(a, dtype=dtype, order="C", copy=True)
    for min_bytes in (1 << 30, SMALL):                     # plain, then recycled
        recycling.recycle_min_bytes = min_bytes
        got = workspace.copy(a, dtype)
        assert got.dtype == dtype and got.flags.c_contiguous and (_buffer_of(got) is None) == (min_bytes > SMALL)
        np.testing.assert_array_equal(got, want)


_HOLDERS = {
    "the array": lambda a: a,
    "a view": lambda a: a[1:],
    "a view of a view": lambda a: a.reshape(8, 64).T[::2],
    "a dtype view": lambda a: a.view(np.int32),
    "as_strided": lambda a: np.lib.stride_tricks.as_strided(a[::2], (100,), (16,)),
    "a memoryview": memoryview,
    "np.frombuffer": lambda a: np.frombuffer(a, np.float64),
    "a tuple": lambda a: (1, (a,)),
    "a cache-like NamedTuple": lambda a: nblstm.LSTMParams(a, a, a),
}


def _an_array_in(held):
    return arrays_in(held)[0] if isinstance(held, tuple) else np.asarray(held)


@pytest.mark.parametrize("holder", list(_HOLDERS))
def test_an_array_something_refers_to_is_never_handed_out_again(recycling, holder):
    a = workspace.empty(512, np.float64)
    a[...] = 7.0
    address = a.ctypes.data
    held = _HOLDERS[holder](a)
    snapshot = _an_array_in(held).copy()
    del a
    others = [workspace.empty(512, np.float64) for _ in range(3)]
    for b in others:
        b[...] = -1.0
        assert b.ctypes.data != address
    np.testing.assert_array_equal(_an_array_in(held), snapshot)
    del held, others
    assert workspace.empty(512, np.float64).ctypes.data == address     # now it is free


def test_the_buffers_are_shared_by_threads_and_a_result_handed_over_is_safe(recycling):
    """One pool for the process: a buffer another thread dropped is reused here, and one whose
    array this thread still holds is not reused by the other thread."""
    handed_over, addresses = [], []

    def worker():
        a = workspace.empty(512, np.float64)
        a[...] = 3.0
        handed_over.append(a)                  # a result passed to the main thread
        b = workspace.empty(512, np.float64)
        addresses.append(b.ctypes.data)
        del b                                  # dropped in the worker

    thread = threading.Thread(target=worker)
    thread.start()
    thread.join()
    assert addresses[0] != handed_over[0].ctypes.data
    c = workspace.empty(512, np.float64)
    assert c.ctypes.data == addresses[0]
    assert np.all(handed_over[0] == 3.0)


def test_the_kept_bytes_are_capped_and_the_least_recently_used_go_first(recycling):
    recycling.recycle_bytes = 3 * KEPT
    alive = [workspace.empty(512, np.float64) for _ in range(5)]       # 2 past the cap: not kept
    assert len({a.ctypes.data for a in alive}) == 5
    assert workspace.recycled_bytes() == 3 * KEPT
    kept = [a for a in alive if _buffer_of(a) is not None]
    assert len(kept) == 3
    oldest, middle, newest = (a.ctypes.data for a in kept)
    del alive, kept
    touched = workspace.empty(512, np.float64)                         # takes the oldest
    assert touched.ctypes.data == oldest
    del touched
    b = workspace.empty(1024, np.float64)      # another size: the least recently used free go
    assert workspace.recycled_bytes() == KEPT + 8192 + workspace.ALIGNMENT
    survivors = [raw for raw in workspace._recycled if raw.size == KEPT]
    assert survivors[0].ctypes.data <= oldest < survivors[0].ctypes.data + KEPT
    workspace.clear()
    assert workspace.recycled_bytes() == 0
    b[...] = 1.0                                                       # b stays valid
    assert b.sum() == b.size


def test_recycle_bytes_zero_keeps_nothing_and_lowering_it_lets_go(recycling):
    a = workspace.empty(512, np.float64)
    del a
    assert workspace.recycled_bytes() == KEPT
    recycling.recycle_bytes = 0
    for _ in range(3):
        a = workspace.empty(512, np.float64)
        assert a.ctypes.data % workspace.ALIGNMENT == 0 and a.base.dtype == np.uint8
        assert _buffer_of(a) is None
        del a
    assert workspace.recycled_bytes() == 0


def test_a_lowered_cap_lets_go_at_the_next_request(recycling):
    kept = [workspace.empty(512, np.float64) for _ in range(3)]
    del kept
    assert workspace.recycled_bytes() == 3 * KEPT
    recycling.recycle_bytes = KEPT + 100
    a = workspace.empty(512, np.float64)                   # served by a free buffer
    assert _buffer_of(a) is not None
    assert workspace.recycled_bytes() <= KEPT + 100
    recycling.recycle_bytes = 2 * KEPT
    b = workspace.empty(1024, np.float64)                  # cannot be kept: a is in use
    assert _buffer_of(b) is None and workspace.recycled_bytes() == KEPT


def test_a_finalizer_that_calls_nblstm_inside_the_pool_does_not_deadlock(recycling, monkeypatch):
    """The garbage collector may run a ``__del__`` on this thread while it holds the pool's
    lock; one that calls nblstm (here forced where a collection could start) must not hang."""
    inner, outer = [], []
    real_free = workspace._free

    def free_with_a_finalizer(buffers):
        if not inner:
            inner.append(workspace.empty(512, np.float64))
            workspace.clear()
        return real_free(buffers)

    monkeypatch.setattr(workspace, "_free", free_with_a_finalizer)
    thread = threading.Thread(target=lambda: outer.append(workspace.empty(512, np.float64)),
                              daemon=True)
    thread.start()
    thread.join(30)
    assert not thread.is_alive() and len(outer) == 1
    assert inner[0].ctypes.data % workspace.ALIGNMENT == 0 and _buffer_of(inner[0]) is None
    assert _buffer_of(outer[0]) is not None                # the nested clear() dropped nothing


def _poison_free_recycled():
    buffers = workspace._recycled
    free = workspace._free(buffers)
    assert free
    for i in free:
        buffers[i][...] = 0xFF                    # NaN in float32 and float64


@pytest.mark.parametrize("path", cpu.PATHS)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_a_held_cache_survives_later_calls_and_results_match_fresh_memory(recycling, path, dtype):
    """Training with the cache's and the results' arrays of 1 KiB or more recycled, the first
    cache and gradients still held while two more calls run, then a run on poisoned buffers."""
    recycling.path = path
    p = make_problem(5, 7, 3, 6, dtype=dtype, seed=6, lengths="mixed")
    recycling.recycle_bytes = 0
    want = all_arrays(*run_api(p, reverse=True))
    recycling.recycle_bytes = 1 << 20
    y, state, cache = nblstm.lstm_forward(p.x, p.params, p.h0, p.c0, lengths=p.lengths, reverse=True)
    first = all_arrays(y, state, nblstm.lstm_backward(cache, **p.loss.cotangents()))
    kept = [a.copy() for a in arrays_in(cache)]
    assert any(_buffer_of(a) is not None for a in arrays_in(cache))
    for seed in (7, 8):
        q = make_problem(5, 7, 3, 6, dtype=dtype, seed=seed, lengths="mixed")
        run_api(q, reverse=True)
        _poison_free_recycled()
    for name in want:
        np.testing.assert_array_equal(first[name], want[name], err_msg=name)
    for a, b in zip(arrays_in(cache), kept):
        np.testing.assert_array_equal(a, b)
    got = all_arrays(*run_api(p, reverse=True))                   # poisoned buffers reused
    for name in want:
        np.testing.assert_array_equal(got[name], want[name], err_msg=name)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_stacks_held_and_poisoned_match_fresh_memory(recycling, dtype):
    """Three bidirectional layers with lengths: results and caches recycled."""
    problem = _stack_problem(dtype)
    recycling.recycle_bytes = 0
    want, _ = _stack_run(*problem)
    recycling.recycle_bytes = 1 << 20
    first, cache = _stack_run(*problem)
    kept = [a.copy() for a in arrays_in(cache)]
    _stack_run(*problem)
    _poison_free_recycled()
    got, _ = _stack_run(*problem)
    for name in want:
        np.testing.assert_array_equal(first[name], want[name], err_msg=name)
        np.testing.assert_array_equal(got[name], want[name], err_msg=name)
    for a, b in zip(arrays_in(cache), kept):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_every_layout_and_path_on_poisoned_buffers_matches_fresh_memory(cpu_config, dtype):  # noqa: F811
    """Every array of any size from ``workspace.empty`` recycled: batch-first and time-major,
    with and without lengths (the unpermuted copies of ``cpu.layout``), B = 1 and 5, reverse."""
    cpu_config.recycle_min_bytes = 1
    for path in cpu.PATHS:
        cpu_config.path = path
        for time_major in (False, True):
            for B, lengths in ((5, None), (5, "mixed"), (1, None)):
                for reverse in (False, True):
                    p = make_problem(B, 7, 3, 6, dtype=dtype, seed=9, time_major=time_major,
                                     lengths=lengths)
                    label = f"{path} time_major={time_major} B={B} {lengths} reverse={reverse}"
                    cpu_config.recycle_bytes = 0
                    want = all_arrays(*run_api(p, reverse=reverse))
                    want_inference = nblstm.lstm(p.x, p.params, p.h0, p.c0, lengths=p.lengths,
                                                 reverse=reverse, time_major=time_major)
                    cpu_config.recycle_bytes = 1 << 20
                    run_api(p, reverse=reverse)
                    _poison_free_recycled()
                    got = all_arrays(*run_api(p, reverse=reverse))
                    _poison_free_recycled()
                    got_inference = nblstm.lstm(p.x, p.params, p.h0, p.c0, lengths=p.lengths,
                                                reverse=reverse, time_major=time_major)
                    for name in want:
                        np.testing.assert_array_equal(got[name], want[name], err_msg=f"{label} {name}")
                    for a, b in zip(arrays_in(got_inference), arrays_in(want_inference)):
                        np.testing.assert_array_equal(a, b, err_msg=f"{label} lstm")


def test_usage_says_what_a_training_loop_keeps():
    """A loop of varying shapes grew RSS by ~200 MiB with no public figure to tell the pool from a leak."""
    workspace.clear()
    assert workspace.usage() == workspace.Usage(0, 0, 0, cpu.config.recycle_bytes)
    params = nblstm.init_params(64, 128, seed=0)
    rng = np.random.default_rng(0)
    for T in (40, 60, 80):
        y, _, cache = nblstm.lstm_forward(rng.standard_normal((64, T, 64)), params)
        nblstm.lstm_backward(cache, dy=np.ones_like(y))
    del y, cache
    held = workspace.usage()
    assert held.recycled > 0 and held.scratch > 0 and held.recycle_cap == cpu.config.recycle_bytes
    assert held.recycled <= held.recycle_cap
    assert held.recycled_free == held.recycled        # cache, y and the gradients are gone
    y, _, cache = nblstm.lstm_forward(rng.standard_normal((64, 80, 64)), params)
    assert workspace.usage().recycled_free < workspace.usage().recycled   # the live cache's buffers
    del y, cache
    workspace.clear()
    assert workspace.usage() == workspace.Usage(0, 0, 0, cpu.config.recycle_bytes)
