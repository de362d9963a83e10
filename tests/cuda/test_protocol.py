"""The protocol functions of nblstm.cuda (docs/backends.md) against nblstm.reference."""
import ast
import subprocess
import sys

import numpy as np
import pytest
from conftest import REAL_GPU, SIMULATOR
from numba import cuda

import nblstm.cuda as nc
from nblstm import init_params, reference
from nblstm.params import LSTMParams

TOL = {np.float64: 1e-12, np.float32: 2e-5}


def _d(a):
    return cuda.to_device(np.ascontiguousarray(a))


def _problem(rng, B, T, I, H, dtype, lengths):
    p = init_params(I, H, seed=rng)
    p = LSTMParams(*(a.astype(dtype) for a in p))
    x = rng.standard_normal((B, T, I)).astype(dtype)
    h0 = (0.5 * rng.standard_normal((B, H))).astype(dtype)
    c0 = (0.5 * rng.standard_normal((B, H))).astype(dtype)
    lengths = np.full(B, T, np.int64) if lengths is None else np.asarray(lengths, np.int64)
    return p, x, h0, c0, lengths


def _forward(p, x, h0, c0, lengths, training=True, y_view=False):
    """Run nc.forward_layer on (B, T, I) host data; returns host results (batch first)."""
    B, T, _ = x.shape
    H = p.W_hh.shape[1]
    dt = x.dtype
    d_x = _d(x.swapaxes(0, 1))
    if y_view:  # y as a strided view, as the API passes for bidirectional layers
        d_yfull = nc.zeros((T, B, 2 * H), dt)
        d_y = d_yfull[:, :, H:]
    else:
        d_y = nc.empty((T, B, H), dt)
    d_hn, d_cn = nc.empty((B, H), dt), nc.empty((B, H), dt)
    d_g = nc.empty((T, B, 4 * H), dt) if training else None
    d_c = nc.empty((T, B, H), dt) if training else None
    nc.forward_layer(d_x, *(_d(a) for a in p), _d(h0), _d(c0), lengths, d_y, d_hn, d_cn, d_g, d_c)
    out = dict(y=d_y.copy_to_host().swapaxes(0, 1), h_n=d_hn.copy_to_host(), c_n=d_cn.copy_to_host(),
               d_x=d_x, d_gates=d_g, d_cells=d_c)
    if y_view:
        out["y_other"] = d_yfull.copy_to_host()[:, :, :H]
    return out


def _backward(p, fw, h0, c0, lengths, dy, dh_n, dc_n):
    B, T, H = dy.shape
    I = p.W_ih.shape[1]
    dt = dy.dtype
    d_dx = nc.empty((T, B, I), dt)
    outs = [nc.empty(s, dt) for s in (p.W_ih.shape, p.W_hh.shape, p.b.shape, (B, H), (B, H))]
    nc.backward_layer(fw["d_x"], _d(p.W_ih), _d(p.W_hh), _d(h0), _d(c0), lengths, fw["d_gates"],
                      fw["d_cells"], _d(dy.swapaxes(0, 1)), _d(dh_n), _d(dc_n), d_dx, *outs)
    dW_ih, dW_hh, db, dh0, dc0 = (o.copy_to_host() for o in outs)
    return d_dx.copy_to_host().swapaxes(0, 1), LSTMParams(dW_ih, dW_hh, db), dh0, dc0


def _close(got, want, dtype):
    np.testing.assert_allclose(got, want, rtol=TOL[dtype], atol=TOL[dtype])


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("lengths", [None, [4, 3, 1, 0]], ids=["full", "ragged"])
def test_layer_matches_reference(path_config, rng, dtype, lengths):
    B, T, I, H = 4, 4, 3, 5
    p, x, h0, c0, lens = _problem(rng, B, T, I, H, dtype, lengths)
    y_ref, (hn_ref, cn_ref), cache = reference.lstm_forward(x, p, h0, c0, lens)
    fw = _forward(p, x, h0, c0, lens)
    _close(fw["y"], y_ref, dtype)
    _close(fw["h_n"], hn_ref, dtype)
    _close(fw["c_n"], cn_ref, dtype)
    for b, n in enumerate(lens):
        assert (fw["y"][b, n:] == 0).all()  # exactly 0 at padded steps

    dy = rng.standard_normal(y_ref.shape).astype(dtype)
    dh_n = rng.standard_normal(hn_ref.shape).astype(dtype)
    dc_n = rng.standard_normal(cn_ref.shape).astype(dtype)
    ref = reference.lstm_backward(cache, dy, dh_n, dc_n)
    dx, dp, dh0, dc0 = _backward(p, fw, h0, c0, lens, dy, dh_n, dc_n)
    _close(dx, ref.dx, dtype)
    for got, want in zip(dp, ref.dparams):
        _close(got, want, dtype)
    _close(dh0, ref.dh0, dtype)
    _close(dc0, ref.dc0, dtype)
    for b, n in enumerate(lens):
        assert (dx[b, n:] == 0).all()


def test_inference_matches_training_and_strided_y(small_config, rng):
    p, x, h0, c0, lens = _problem(rng, 3, 3, 2, 4, np.float64, [3, 2, 2])
    train = _forward(p, x, h0, c0, lens)
    infer = _forward(p, x, h0, c0, lens, training=False, y_view=True)
    for key in ("y", "h_n", "c_n"):
        np.testing.assert_array_equal(infer[key], train[key])
    assert (infer["y_other"] == 0).all()  # the other half of y_full is untouched


def test_order_reads_x_and_writes_y_in_the_callers_order(small_config, rng):
    """forward_layer(order=...) gives the sorted run's bits, with x and y in the caller's order."""
    lengths = np.array([2, 4, 0, 4, 1], np.int64)
    order = np.argsort(-lengths, kind="stable")
    p, x, h0, c0, _ = _problem(rng, 5, 4, 3, 4, np.float64, lengths)
    for b in range(5):
        x[b, lengths[b]:] = np.nan                   # the caller's padding reaches nothing
    sorted_run = _forward(p, x[order], h0, c0, lengths[order], training=False)
    B, T, _ = x.shape
    H = p.W_hh.shape[1]
    d_y = nc.empty((T, B, H), np.float64)
    d_hn, d_cn = nc.empty((B, H), np.float64), nc.empty((B, H), np.float64)
    nc.forward_layer(_d(x.swapaxes(0, 1)), *(_d(a) for a in p), _d(h0), _d(c0), lengths[order],
                     d_y, d_hn, d_cn, None, None, order=order)
    y = d_y.copy_to_host().swapaxes(0, 1)
    np.testing.assert_array_equal(y[order], sorted_run["y"])
    for b in range(5):
        assert (y[b, lengths[b]:] == 0).all() and np.isfinite(y[b]).all()
    np.testing.assert_array_equal(d_hn.copy_to_host(), sorted_run["h_n"])
    np.testing.assert_array_equal(d_cn.copy_to_host(), sorted_run["c_n"])


def test_reverse_composed_from_reverse_sequences(small_config, rng):
    """reverse = reverse_sequences -> forward_layer -> reverse_sequences (what the API does)."""
    B, T, I, H = 3, 4, 2, 3
    p, x, h0, c0, lens = _problem(rng, B, T, I, H, np.float64, [4, 2, 1])
    y_ref, (hn_ref, _), _ = reference.lstm_forward(x, p, h0, c0, lens, reverse=True)
    d_x = _d(x.swapaxes(0, 1))
    d_xr = nc.empty(d_x.shape, np.float64)
    nc.reverse_sequences(d_x, lens, d_xr)
    d_y, d_yr = nc.empty((T, B, H), np.float64), nc.empty((T, B, H), np.float64)
    d_hn, d_cn = nc.empty((B, H), np.float64), nc.empty((B, H), np.float64)
    nc.forward_layer(d_xr, *(_d(a) for a in p), _d(h0), _d(c0), lens, d_yr, d_hn, d_cn, None, None)
    nc.reverse_sequences(d_yr, lens, d_y)
    _close(d_y.copy_to_host().swapaxes(0, 1), y_ref, np.float64)
    _close(d_hn.copy_to_host(), hn_ref, np.float64)


def test_empty_time_and_zero_lengths(small_config, rng):
    p, x, h0, c0, lens = _problem(rng, 2, 0, 2, 3, np.float64, [0, 0])
    fw = _forward(p, x, h0, c0, lens)
    np.testing.assert_array_equal(fw["h_n"], h0)
    np.testing.assert_array_equal(fw["c_n"], c0)
    dy = np.zeros((2, 0, 3))
    dh_n, dc_n = rng.standard_normal((2, 3)), rng.standard_normal((2, 3))
    dx, dp, dh0, dc0 = _backward(p, fw, h0, c0, lens, dy, dh_n, dc_n)
    np.testing.assert_array_equal(dh0, dh_n)
    np.testing.assert_array_equal(dc0, dc_n)
    for g in dp:
        assert (g == 0).all()


def test_bitwise_reproducible(small_config, rng, monkeypatch):
    """Same inputs twice, and with another number of blocks: identical bits (no atomics).

    Both layouts split a dot product over the same number of lanes (4: H caps it);
    the lanes, not the blocks, set the order of the sums.
    """
    monkeypatch.setattr(nc.config, "units_per_block", 2)  # 2 blocks
    p, x, h0, c0, lens = _problem(rng, 3, 3, 3, 4, np.float32, [3, 3, 1])
    dy = rng.standard_normal((3, 3, 4)).astype(np.float32)
    dh_n = dc_n = np.zeros((3, 4), np.float32)

    def run():
        fw = _forward(p, x, h0, c0, lens)
        return fw["y"], _backward(p, fw, h0, c0, lens, dy, dh_n, dc_n)[1]

    y1, g1 = run()
    y2, g2 = run()
    np.testing.assert_array_equal(y1, y2)
    for a, b in zip(g1, g2):
        np.testing.assert_array_equal(a, b)
    monkeypatch.setattr(nc.config, "units_per_block", 1)  # 4 blocks instead of one
    y3, g3 = run()
    np.testing.assert_array_equal(y1, y3)
    for a, b in zip(g1, g3):
        np.testing.assert_array_equal(a, b)


def test_plan_paths(small_config, monkeypatch):
    """The persistent path needs the grid to fit max_cooperative_grid_blocks."""
    from nblstm.cuda import forward, plan

    d_dummy = nc.zeros((1,), np.float64)
    args = lambda p: ()  # noqa: E731 (the simulator answers without compiling)
    monkeypatch.setattr(small_config, "units_per_block", 8)
    whole = plan.plan(8, 2, 8, 4, forward._forward_persistent_kernel, args)
    assert whole.blocks == 1 and whole.units == 8
    monkeypatch.setattr(small_config, "units_per_block", 3)
    split = plan.plan(8, 2, 8, 4, forward._forward_persistent_kernel, args)
    assert split.blocks == 3 and split.threads % 32 == 0 and 1 <= split.lanes <= 32
    if SIMULATOR:
        assert whole.persistent and not split.persistent
    monkeypatch.setattr(small_config, "shared_bytes", 0)
    assert not plan.plan(8, 2, 8, 4, forward._forward_persistent_kernel, args).w_shared
    del d_dummy


def test_plan_keeps_the_persistent_path_when_the_shared_grid_is_too_large(small_config,
                                                                          monkeypatch):
    """An automatic plan reads W_hh from global memory, then takes larger blocks, before
    it falls back to one launch per step; a fixed units_per_block is kept as it is."""
    from nblstm.cuda import forward, plan

    monkeypatch.setattr(plan, "_sm_count", lambda: 16)
    monkeypatch.setattr(small_config, "units_per_block", None)
    monkeypatch.setattr(small_config, "rnn_blocks_per_sm", 2)
    monkeypatch.setattr(small_config, "shared_bytes", 48 * 1024)
    monkeypatch.setattr(small_config, "persistent", True)
    H, B = 64, 2
    limit = {}

    def fake_limit(kern, args, threads, shared_bytes):
        return limit["shared"] if kern is forward.PERSISTENT[True] else limit["global"]

    monkeypatch.setattr(plan, "max_cooperative_blocks", fake_limit)

    def plan_with(shared, global_):
        limit.update({"shared": shared, "global": global_})
        return plan.plan(H, B, 4, 4, forward.PERSISTENT, lambda p: ())

    p = plan_with(32, 32)  # the shared-memory grid (2 units, 32 blocks) fits
    assert (p.units, p.blocks, p.w_shared, p.persistent) == (2, 32, True, True)
    p = plan_with(16, 32)  # less shared memory per block lets all 32 blocks reside
    assert (p.units, p.blocks, p.w_shared, p.persistent) == (2, 32, False, True)
    assert p.red_offset == 0
    p = plan_with(4, 8)    # then larger blocks: 8 units, 8 blocks
    assert (p.units, p.blocks, p.w_shared, p.persistent) == (8, 8, False, True)
    p = plan_with(0, 0)    # nothing fits: one launch per step, with the shared-memory layout
    assert (p.units, p.blocks, p.w_shared, p.persistent) == (2, 32, True, False)
    monkeypatch.setattr(small_config, "units_per_block", 2)
    p = plan_with(4, 8)    # a fixed layout is not changed
    assert (p.units, p.w_shared, p.persistent) == (2, True, False)


@pytest.mark.parametrize("time_major", [False, True])
def test_to_from_internal_roundtrip(small_config, rng, time_major):
    a = rng.standard_normal((3, 4, 2))  # (B, T, F), or (T, B, F) if time_major
    order = rng.permutation(a.shape[1] if time_major else a.shape[0]).astype(np.int64)
    for src in (a, _d(a)):  # host and device input
        d_int = nc.to_internal(src, order, time_major, np.float32)
        got = d_int.copy_to_host()
        want = (a if time_major else a.swapaxes(0, 1))[:, order].astype(np.float32)
        np.testing.assert_array_equal(got, want)
        back = nc.from_internal(d_int, order, time_major, False)
        np.testing.assert_array_equal(back, a.astype(np.float32))
        assert isinstance(back, np.ndarray)
        d_back = nc.from_internal(d_int, order, time_major, True)
        assert nc.is_device(d_back)
        np.testing.assert_array_equal(d_back.copy_to_host(), back)


def test_boundary_helpers(small_config, rng):
    a = rng.standard_normal((2, 3, 4))
    assert not nc.is_device(a) and nc.is_device(_d(a))
    assert isinstance(nc.asarray([1.0, 2.0]), np.ndarray)  # host data stays on the host
    assert nc.asarray(_d(a)).shape == a.shape
    assert nc.finite_each([a, _d(a)]) == [True, True]
    bad = a.copy()
    bad[1, 2, 3] = np.nan
    # host and device arrays mixed, a strided device view: one flag each, in order
    assert nc.finite_each([bad, _d(a), _d(bad), _d(bad)[:, 1:, :], _d(a)[:, 1:, :]]) == [
        False, True, False, False, True]
    d_out = nc.empty(a.shape, np.float64)
    nc.add(_d(a), _d(a), d_out)
    np.testing.assert_array_equal(d_out.copy_to_host(), 2 * a)
    np.testing.assert_array_equal(nc.zeros((2, 3), np.float32).copy_to_host(), 0)
    d_c = nc.copy_as(a[:, 0], np.float32)
    np.testing.assert_array_equal(d_c.copy_to_host(), a[:, 0].astype(np.float32))
    np.testing.assert_array_equal(nc.to_user(d_c), a[:, 0].astype(np.float32))
    np.testing.assert_array_equal(nc.expand_dims(_d(a[0]), 1).copy_to_host(), a[0][:, None, :])


def test_every_kernel_goes_through_the_policy():
    from nblstm.cuda import _jit, backward, elementwise, forward, layout, matmul

    kernels = [obj for mod in (backward, elementwise, forward, layout, matmul) for name, obj in
               vars(mod).items() if name.startswith("_") and name.endswith("_kernel")]
    assert kernels and all(k in _jit.REGISTRY for k in kernels)


def test_import_is_lazy_and_available_reports():
    code = ("import sys, nblstm; assert 'numba.cuda' not in sys.modules; "
            "import nblstm.cuda; assert 'numba.cuda' not in sys.modules; "
            "print(repr(nblstm.cuda.available()))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    ok, why = ast.literal_eval(out.stdout.strip())
    if SIMULATOR or REAL_GPU:
        assert (ok, why) == (True, "")
    else:   # numba-cuda imports (this module did), so only the GPU can be missing
        assert ok is False
        assert why.startswith("no usable CUDA GPU: the NVIDIA driver or a CUDA device was not found")


def test_shared_constants_are_reused_bounded_and_cleared(small_config):
    """The read-only per-size arrays: one per content, at most MAX_ENTRIES, dropped by clear()."""
    from nblstm.cuda import shared_arrays

    shared_arrays.clear()
    lengths = np.array([3, 2, 0], np.int64)
    d_n = shared_arrays.running_rows(lengths, 4)
    assert shared_arrays.running_rows(lengths.copy(), 4) is d_n
    np.testing.assert_array_equal(d_n.copy_to_host(), [2, 2, 1, 0, 0])
    np.testing.assert_array_equal(shared_arrays.identity_order(3).copy_to_host(), [0, 1, 2])
    np.testing.assert_array_equal(shared_arrays.ones(4, np.float32).copy_to_host(), np.ones((4, 1)))
    assert not shared_arrays.zeros((2, 3), np.float64).copy_to_host().any()
    for B in range(shared_arrays.MAX_ENTRIES + 5):
        shared_arrays.identity_order(B + 10)
    assert len(shared_arrays._table) == shared_arrays.MAX_ENTRIES
    assert shared_arrays.running_rows(lengths, 4) is not d_n          # dropped, made again
    shared_arrays.clear()
    assert len(shared_arrays._table) == 0


def test_every_protocol_function_is_provided():
    """The CUDA backend provides every name of nblstm._protocol.PROTOCOL.

    tests/test_backends.py checks the CPU's.
    """
    from nblstm._protocol import PROTOCOL

    missing = [name for name in PROTOCOL if not callable(getattr(nc, name, None))]
    assert not missing
