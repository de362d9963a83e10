"""The ``"slices"`` path (nblstm.cpu.slices) with both of its micro-kernels and both of its layouts.

Layouts: slices of units with a barrier every step, and (for small H) one
slice of all units in blocks of batch rows, each block through all its steps.

With the numba loops every element is summed in the serial path's order, so
the results are that path's bits, for any slice width. With MKL (an optional
extra; CI runs this file with and without it) they match the reference and
torch at the usual tolerances. Either way no NaN in a padded step reaches a
result, and the results are the same bits for 1 and 2 numba threads.
"""
import os
import pathlib
import subprocess
import sys
import textwrap

import numba
import numpy as np
import pytest

import nblstm
from nblstm import cpu
from nblstm.cpu import layers, mkl, plan, slices, workspace

from _helpers import (
    RTOL,
    all_arrays,
    assert_results_close,
    make_problem,
    run_api,
    run_reference,
)

ROOT = pathlib.Path(nblstm.__file__).resolve().parent.parent
SHAPES = [(1, 5, 3, 1), (3, 7, 2, 5), (5, 6, 4, 33), (6, 9, 3, 40)]
ROUTES = ["numba", "auto"]          # "auto" is MKL where it is installed
#: cpu.config settings of the two layouts: slices of units; blocks of 2 rows of all units
LAYOUTS = {"units": dict(row_blocks_max_H=0), "rows": dict(row_blocks_max_H=10**6, block_rows=2)}


@pytest.fixture(params=sorted(LAYOUTS))
def layout(request, cpu_config):
    """Each layout of the slices path in turn (cpu.config set, restored after the test)."""
    for name, value in LAYOUTS[request.param].items():
        setattr(cpu_config, name, value)
    return request.param


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "B{}T{}I{}H{}".format(*s))
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("units", [0, 8, 3])
def test_numba_loops_give_the_serial_paths_bits(cpu_config, layout, shape, dtype, units):
    p = make_problem(*shape, dtype=dtype, seed=sum(shape), lengths="mixed")
    cpu_config.path = "serial"
    want = all_arrays(*run_api(p, reverse=units == 3))
    cpu_config.path, cpu_config.slices_gemm, cpu_config.slice_units = "slices", "numba", units
    got = all_arrays(*run_api(p, reverse=units == 3))
    for name in want:
        np.testing.assert_array_equal(got[name], want[name], err_msg=name)


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "B{}T{}I{}H{}".format(*s))
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_mkl_matches_the_reference_or_is_refused(cpu_config, layout, shape, dtype):
    p = make_problem(*shape, dtype=dtype, seed=sum(shape) + 1, lengths="mixed")
    cpu_config.path, cpu_config.slices_gemm, cpu_config.slice_units = "slices", "mkl", 8
    if mkl.available():
        assert_results_close(run_api(p), run_reference(p), RTOL[np.dtype(dtype)],
                             dtype=np.dtype(dtype))
    else:
        with pytest.raises(RuntimeError, match="slices_gemm='mkl' but no MKL"):
            run_api(p)


@pytest.mark.parametrize("route", ROUTES)
def test_matches_torch(cpu_config, layout, route):
    torch = pytest.importorskip("torch")
    p = make_problem(4, 7, 5, 24, seed=11)
    cpu_config.path, cpu_config.slices_gemm = "slices", route
    W_ih, W_hh, b = p.params
    m = torch.nn.LSTM(5, 24, batch_first=True, dtype=torch.float64)
    with torch.no_grad():
        m.weight_ih_l0.copy_(torch.from_numpy(W_ih))
        m.weight_hh_l0.copy_(torch.from_numpy(W_hh))
        m.bias_ih_l0.copy_(torch.from_numpy(b))
        m.bias_hh_l0.zero_()
    x = torch.from_numpy(p.x.copy()).requires_grad_(True)
    state = (torch.from_numpy(p.h0[None].copy()), torch.from_numpy(p.c0[None].copy()))
    yt, _ = m(x, state)
    dy = np.random.default_rng(0).standard_normal(yt.shape)
    yt.backward(torch.from_numpy(dy))
    y, _, cache = nblstm.lstm_forward(p.x, p.params, p.h0, p.c0)
    g = nblstm.lstm_backward(cache, dy)
    for name, ours, theirs in [("y", y, yt), ("dx", g.dx, x.grad),
                               ("dW_ih", g.dparams.W_ih, m.weight_ih_l0.grad),
                               ("dW_hh", g.dparams.W_hh, m.weight_hh_l0.grad),
                               ("db", g.dparams.b, m.bias_ih_l0.grad)]:
        theirs = theirs.detach().numpy()
        np.testing.assert_allclose(ours, theirs, rtol=0,
                                   atol=RTOL[np.dtype(np.float64)] * np.abs(theirs).max(),
                                   err_msg=name)


#: every CPU path; the slices path in both layouts
ORDER_CASES = {"slices/units": dict(path="slices", row_blocks_max_H=0),
               "slices/rows": dict(path="slices", row_blocks_max_H=10**6, block_rows=2),
               "tiles": dict(path="tiles"), "serial": dict(path="serial"), "blas": dict(path="blas")}


@pytest.mark.parametrize("route", ROUTES)
@pytest.mark.parametrize("case", sorted(ORDER_CASES))
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_order_reads_x_and_writes_y_in_the_callers_order(cpu_config, case, route, dtype):
    """forward_layer(order=...) gives the bits of the run on a sorted copy; y is 0 where padded.

    The slices path reads x and writes y through ``order``; the other paths
    gather and scatter. NaN in the caller's padded steps reaches nothing.
    """
    for name, value in ORDER_CASES[case].items():
        setattr(cpu_config, name, value)
    cpu_config.slices_gemm = route
    B, T, I, H = 7, 6, 3, 5
    rng = np.random.default_rng(5)
    p = nblstm.init_params(I, H, dtype=dtype, seed=rng)
    lengths = np.array([2, 6, 0, 6, 1, 5, 3], np.int64)
    order = np.argsort(-lengths, kind="stable")
    x = rng.standard_normal((B, T, I)).astype(dtype)
    for b in range(B):
        x[b, lengths[b]:] = np.nan
    h0, c0 = (rng.standard_normal((B, H)).astype(dtype) for _ in range(2))
    sorted_out = [np.empty((T, B, H), dtype), np.empty((B, H), dtype), np.empty((B, H), dtype)]
    cpu.forward_layer(np.ascontiguousarray(x[order].swapaxes(0, 1)), p.W_ih, p.W_hh, p.b, h0, c0,
                      lengths[order], *sorted_out, None, None)
    y = np.full((B, T, H), np.nan, dtype)
    h_n, c_n = np.empty((B, H), dtype), np.empty((B, H), dtype)
    cpu.forward_layer(x.swapaxes(0, 1), p.W_ih, p.W_hh, p.b, h0, c0, lengths[order],
                      y.swapaxes(0, 1), h_n, c_n, None, None, order=order)
    np.testing.assert_array_equal(y[order].swapaxes(0, 1), sorted_out[0])
    np.testing.assert_array_equal(h_n, sorted_out[1])
    np.testing.assert_array_equal(c_n, sorted_out[2])
    for b in range(B):
        assert (y[b, lengths[b]:] == 0).all() and np.isfinite(y[b]).all()


@pytest.mark.parametrize("route", ROUTES)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_nan_in_padded_steps_reaches_no_result(cpu_config, layout, route, dtype):
    """Padded x is NaN: every result equals the run with zeros there, and is finite."""
    p = make_problem(5, 8, 3, 20, dtype=dtype, seed=5, lengths=np.array([8, 3, 0, 5, 8]))
    cpu_config.path, cpu_config.slices_gemm, cpu_config.slice_units = "slices", route, 8
    padded = np.arange(8)[None, :] >= p.lengths[:, None]
    p.x[padded] = 0
    want = all_arrays(*run_api(p, check_finite=False))
    p.x[padded] = np.nan
    got = all_arrays(*run_api(p, check_finite=False))
    for name in want:
        assert np.isfinite(got[name]).all(), name
        np.testing.assert_array_equal(got[name], want[name], err_msg=name)


def test_large_sizes_take_the_slices_path_with_mkl_only(cpu_config):
    """Where B*H*4H reaches blas_min_work: "slices" with MKL, "blas" without it or when told."""
    cpu_config.blas_min_work = 5000
    assert cpu.choose_path(2, 25) == ("slices" if mkl.available() else "blas")
    assert cpu.choose_path(1, 25) == "blas"              # one row: BLAS's matrix-vector product
    assert cpu.choose_path(4, 10) == "tiles"             # below the threshold: unchanged
    cpu_config.slices_gemm = "numba"
    assert cpu.choose_path(2, 25) == "blas"


def test_small_hidden_sizes_take_row_blocks_with_mkl_only(cpu_config):
    """Below blas_min_work, H <= row_blocks_max_H from row_blocks_min_work: "slices" with MKL only."""
    cpu_config.row_blocks_min_work, cpu_config.row_blocks_max_H = 1000, 16
    assert cpu.choose_path(4, 16) == ("slices" if mkl.available() else "tiles")
    assert cpu.choose_path(4, 17) == "tiles"             # H above the limit
    assert cpu.choose_path(2, 8) == "serial"             # work below the threshold
    assert cpu.choose_path(1, 16) == "blas"              # one row: BLAS's matrix-vector product
    cpu_config.slices_gemm = "numba"
    assert cpu.choose_path(4, 16) == "tiles"


@pytest.mark.parametrize("B, rows", [(1, 16), (5, 2), (32, 8), (64, 8), (100, 7)])
def test_block_schedule_deals_every_block_once_in_snake_order(B, rows):
    threads = numba.get_num_threads()
    blocks = -(-B // rows)
    try:
        for n in sorted({1, 2, threads}):
            numba.set_num_threads(n)
            schedule = slices.block_schedule(B, rows)
            assert schedule.shape[0] == min(n, blocks)
            dealt = schedule[schedule >= 0]
            np.testing.assert_array_equal(np.sort(dealt), np.arange(blocks))
            # round r goes to the workers forwards for even r, backwards for odd r
            for r in range(schedule.shape[1]):
                col = schedule[:, r] if r % 2 == 0 else schedule[::-1, r]
                col = col[col >= 0]
                np.testing.assert_array_equal(col, np.arange(r * schedule.shape[0],
                                                             r * schedule.shape[0] + len(col)))
    finally:
        numba.set_num_threads(threads)


def test_row_blocks_cover_the_batch_evenly_whatever_the_threads(cpu_config):
    cpu_config.block_rows = 16
    for B, want in ((1, 1), (16, 16), (17, 9), (32, 16), (33, 11), (64, 16)):
        assert plan.block_rows(B, 64) == want
    assert plan.block_rows(32, cpu_config.row_blocks_max_H + 1) == 0    # slices of units
    cpu_config.path = "slices"
    threads = numba.get_num_threads()
    try:
        seen = set()
        for n in (1, threads):
            numba.set_num_threads(n)
            seen.add(plan.plan(33, 64))
    finally:
        numba.set_num_threads(threads)
    assert len(seen) == 1
    assert seen.pop()[1:] == ("slice_row_blocks", 11, 64, 0)     # driver, rows, units (all H), groups


def test_slices_are_wider_for_float32_and_for_the_backward():
    # 512 bytes of units forward, 1024 backward, and never fewer than two slices
    assert [plan.slice_units(512, 0, 4), plan.slice_units(512, 0, 4, backward=True)] == [128, 256]
    assert [plan.slice_units(512, 0, 8), plan.slice_units(512, 0, 8, backward=True)] == [64, 128]
    assert [plan.slice_units(256, 0, 4), plan.slice_units(256, 0, 4, backward=True)] == [128, 128]
    assert plan.slice_units(40, 0, 4, backward=True) == 24
    assert plan.slice_units(512, 32, 4, backward=True) == 32          # config.slice_units wins


@pytest.mark.parametrize("route", ROUTES)
def test_backward_slices_of_another_width_than_the_forwards(cpu_config, monkeypatch, route):
    # float64 at H = 136: the forward cuts slices of 64 units (64, 64, 8), the backward of 72 (72, 64)
    widths = {}
    for name, table in (("forward_layer", layers.FORWARD_DRIVERS), ("backward_layer", layers.BACKWARD_DRIVERS)):
        def spy(*args, _run=table["slices"], _name=name):
            widths[_name] = next(a for a in args if isinstance(a, plan.Plan)).units
            return _run(*args)
        monkeypatch.setitem(table, "slices", spy)
    p = make_problem(3, 4, 5, 136, seed=7, lengths="mixed")
    cpu_config.path = "serial"
    want = all_arrays(*run_api(p))
    cpu_config.path, cpu_config.slices_gemm, cpu_config.row_blocks_max_H = "slices", route, 0
    got = all_arrays(*run_api(p))
    assert widths == {"forward_layer": 64, "backward_layer": 72}
    for name in want:
        if route == "numba" or not mkl.available():      # the numba loops: the serial path's bits
            np.testing.assert_array_equal(got[name], want[name], err_msg=name)
        else:
            np.testing.assert_allclose(got[name], want[name], rtol=RTOL[np.dtype(np.float64)],
                                       atol=1e-14, err_msg=name)


def test_slice_plan_covers_every_unit_once():
    for H in (1, 5, 8, 40, 64, 65, 256, 512):
        for units in (0, 3, 8, 1000):
            u = plan.slice_units(H, units)
            assert 1 <= u <= H
            Wf, bf = slices.pack_forward(np.arange(4 * H * 2.0).reshape(4 * H, 2),
                                          np.zeros((4 * H, H)), np.arange(4.0 * H), u)
            assert Wf.shape[0] == -(-H // u) and Wf.ctypes.data % 64 == 0
            # every (gate, unit) of b appears once across the slices
            seen = np.sort(np.concatenate([bf[s, :4 * (min(H, (s + 1) * u) - s * u)]
                                           for s in range(Wf.shape[0])]))
            np.testing.assert_array_equal(seen, np.arange(4.0 * H))


@pytest.mark.parametrize("I, H, units", [(3, 5, 2), (2, 40, 16), (37, 20, 20), (130, 70, 32)])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_packed_weights_are_the_slices_rows_and_columns(I, H, units, dtype):
    """pack_forward / pack_backward against the layout written out with NumPy slicing.

    Into scratch that held NaN: every element the path reads is written.
    """
    rng = np.random.default_rng(I * H)
    W_ih, W_hh, b = (rng.standard_normal(shape).astype(dtype)
                     for shape in ((4 * H, I), (4 * H, H), (4 * H,)))
    slices.pack_forward(W_ih, W_hh, b, units)
    slices.pack_backward(W_ih, W_hh, units)
    for buffer in workspace._buffers().values():
        buffer[...] = np.nan
    Wf, bf = slices.pack_forward(W_ih, W_hh, b, units)
    Wb = slices.pack_backward(W_ih, W_hh, units)
    S = -(-H // units)
    assert Wf.shape[0] == Wb.shape[0] == S
    for s in range(S):
        j0, j1 = s * units, min(H, (s + 1) * units)
        rows = np.concatenate([np.arange(q * H + j0, q * H + j1) for q in range(4)])
        w4 = rows.size
        np.testing.assert_array_equal(Wf[s, :, :w4], np.concatenate([W_ih[rows].T, W_hh[rows].T]))
        np.testing.assert_array_equal(bf[s, :w4], b[rows])
        k0, k1 = slices.dx_columns(I, S, s)
        np.testing.assert_array_equal(Wb[s, :, :k1 - k0 + j1 - j0],
                                      np.hstack([W_ih[:, k0:k1], W_hh[:, j0:j1]]))


WORKER = textwrap.dedent('''
    import sys
    import numpy as np
    import numba
    import nblstm
    from nblstm import cpu

    out = {}
    for route, layout in [(r, m) for r in ("numba", "auto") for m in ("units", "rows")]:
        cpu.config.row_blocks_max_H, cpu.config.block_rows = (0, 16) if layout == "units" else (999, 3)
        for dtype in (np.float64, np.float32):
            # H = 136: float64 slices of 64 units forward, 72 backward
            for B, T, I, H, lengths in ((7, 9, 5, 20, [9, 0, 4, 9, 1, 8, 3]), (3, 6, 4, 70, None),
                                        (2, 4, 3, 136, [4, 2])):
                rng = np.random.default_rng(B * H)
                p = nblstm.init_params(I, H, dtype=dtype, seed=rng)
                x = rng.standard_normal((B, T, I)).astype(dtype)
                dy = rng.standard_normal((B, T, H)).astype(dtype)
                cpu.config.path, cpu.config.slices_gemm = "slices", route
                y, (h, c), cache = nblstm.lstm_forward(x, p, lengths=lengths)
                g = nblstm.lstm_backward(cache, dy)
                key = f"{route}/{layout}/{np.dtype(dtype).name}/{H}"
                out.update({key + "/y": y, key + "/h": h, key + "/c": c, key + "/dx": g.dx,
                            key + "/dW_ih": g.dparams.W_ih, key + "/dW_hh": g.dparams.W_hh,
                            key + "/db": g.dparams.b, key + "/dh0": g.dh0})
    assert numba.get_num_threads() == int(sys.argv[2])
    np.savez(sys.argv[1], **out)
''')


@pytest.mark.slow
def test_bitwise_identical_for_1_and_2_threads(tmp_path):
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    results = {}
    for threads in (1, 2):
        env = dict(os.environ, NUMBA_NUM_THREADS=str(threads))
        env["PYTHONPATH"] = os.pathsep.join([str(ROOT)] + [p for p in [env.get("PYTHONPATH")] if p])
        out = tmp_path / f"t{threads}.npz"
        proc = subprocess.run([sys.executable, str(script), str(out), str(threads)], env=env,
                              cwd=tmp_path, capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, proc.stderr[-3000:]
        results[threads] = np.load(out)
    keys = set(results[1].files)
    assert len(keys) == 2 * 2 * 2 * 3 * 8 and set(results[2].files) == keys
    differ = [k for k in sorted(keys) if not np.array_equal(results[1][k], results[2][k])]
    assert not differ, "NUMBA_NUM_THREADS=1 and 2 differ in:\n" + "\n".join(differ)
