"""Every CPU code path of the speed work against the reference.

The CPU backend runs a step in one of three ways (``nblstm.cpu.choose_path``):
one loop on the calling thread, parallel tiles, or one BLAS product per step;
inference projects the input in bounded chunks of time steps. Each is forced
here through ``nblstm.cpu.config`` and compared with ``nblstm.reference``, and
the automatic choice is checked on both sides of its thresholds.
"""

import numpy as np
import pytest

import nblstm
from nblstm import cpu

from _helpers import RTOL, all_arrays, assert_results_close, make_problem, run_api, run_reference

SHAPES = [(1, 5, 3, 1), (3, 7, 2, 5), (5, 6, 4, 33), (2, 4, 3, 40)]


@pytest.mark.parametrize("path", cpu.PATHS)
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "B{}T{}I{}H{}".format(*s))
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("reverse", [False, True])
def test_each_path_matches_reference(cpu_config, path, shape, dtype, reverse):
    cpu_config.path = path
    cpu_config.min_unit_block = 4       # several tiles per row when a row is split
    p = make_problem(*shape, dtype=dtype, seed=sum(shape), lengths="mixed")
    assert_results_close(run_api(p, reverse=reverse), run_reference(p, reverse=reverse),
                         RTOL[np.dtype(dtype)], dtype=np.dtype(dtype))


@pytest.mark.parametrize("path", ["tiles", "blas"])
def test_paths_agree_with_each_other(cpu_config, path):
    """Same inputs: the other paths give the serial path's results to round-off (tiles: exactly)."""
    p = make_problem(4, 9, 3, 24, seed=7, lengths="mixed")
    cpu_config.path = "serial"
    want = run_api(p)
    cpu_config.path = path
    cpu_config.min_unit_block = 8
    got = run_api(p)
    if path == "blas":
        assert_results_close(got, want, 1e-13)
    else:           # the tiles sum over k in the serial loop's order
        got, want = all_arrays(*got), all_arrays(*want)
        for name in want:
            np.testing.assert_array_equal(got[name], want[name], err_msg=name)


def test_automatic_choice_switches_at_the_thresholds(cpu_config):
    cpu_config.slices_gemm = "numba"               # without MKL's slices (tests/test_slices.py)
    cpu_config.blas_min_work = 5000
    cpu_config.numba_min_batch = 2
    cpu_config.tiles_min_batch = 4
    assert cpu.choose_path(1, 5) == "blas"         # one row: BLAS's matrix-vector product
    assert cpu.choose_path(2, 5) == "serial"       # B*H*4H = 200
    assert cpu.choose_path(3, 20) == "serial"      # 4800
    assert cpu.choose_path(4, 10) == "tiles"       # 1600
    assert cpu.choose_path(2, 25) == "blas"        # 5000
    cpu_config.path = "serial"
    assert cpu.choose_path(2, 25) == "serial"      # forcing wins
    with pytest.raises(ValueError, match=r"^nblstm\.cpu\.config\.path: expected one of"):
        cpu_config.path = "gpu"                    # refused when set, not at the next call
    assert cpu.choose_path(2, 25) == "serial"


@pytest.mark.parametrize("threshold, expected", [(6 * 24 * 4 * 24, "blas"), (6 * 24 * 4 * 24 + 1, "tiles")])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_both_sides_of_the_blas_threshold_match_reference(cpu_config, threshold, expected, dtype):
    """(B, H) = (6, 24) has B*H*4H = 13824: at that threshold it takes BLAS, one above it tiles."""
    cpu_config.slices_gemm = "numba"               # with MKL, "slices" takes BLAS's sizes
    cpu_config.blas_min_work = threshold
    assert cpu.choose_path(6, 24) == expected
    p = make_problem(6, 5, 4, 24, dtype=dtype, seed=3, lengths="mixed")
    assert_results_close(run_api(p), run_reference(p), RTOL[np.dtype(dtype)], dtype=np.dtype(dtype))


def test_default_choice_on_the_benchmark_grid():
    """The defaults send each benchmark point where bench/cpu_paths.py measured it fastest."""
    assert cpu.choose_path(1, 128) == "blas"
    assert cpu.choose_path(2, 256) == "serial"
    assert cpu.choose_path(32, 64) == ("slices" if cpu.mkl_slices() else "tiles")   # row blocks
    assert cpu.choose_path(8, 256) == "tiles"
    assert cpu.choose_path(64, 256) == ("slices" if cpu.mkl_slices() else "blas")


@pytest.mark.parametrize("chunk_elements", [1, 4 * 3 * 5 * 2 + 1, 10 ** 9])
@pytest.mark.parametrize("path", cpu.PATHS)
def test_chunked_inference_projection(cpu_config, chunk_elements, path):
    """lstm projects x in chunks of max(1, chunk_elements // (B*4H)) steps: 1, 2 and all T."""
    cpu_config.chunk_elements = chunk_elements
    cpu_config.path = path
    p = make_problem(3, 11, 4, 5, seed=11, lengths="mixed")
    y, (h, c) = nblstm.lstm(p.x, p.params, p.h0, p.c0, lengths=p.lengths)
    ry, (rh, rc), _ = run_reference(p)
    for a, r in ((y, ry), (h, rh), (c, rc)):
        np.testing.assert_allclose(a, r, rtol=0, atol=1e-12 * np.abs(r).max())


def test_inference_memory_is_close_to_x_plus_y(cpu_config):
    """lstm reads x in place and writes y in the caller's layout: no copy of either.

    tracemalloc sees NumPy's allocations. Beyond y itself the peak may hold a few
    int64 arrays of length T (rows running at each step) and the projection
    chunk; a copy of x and a transposed copy of y would add 1.5x y here.
    """
    import tracemalloc

    cpu_config.chunk_elements = 4096
    B, T, I, H = 2, 40000, 4, 8
    rng = np.random.default_rng(0)
    x = rng.standard_normal((B, T, I))
    params = nblstm.init_params(I, H, seed=1)
    nblstm.lstm(x[:, :10], params)                       # compile outside the traced region
    tracemalloc.start()
    try:
        y, _ = nblstm.lstm(x, params)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert y.shape == (B, T, H) and y.flags.c_contiguous
    allowed = y.nbytes + 4 * T * 8 + 2 * cpu_config.chunk_elements * 8
    assert peak <= allowed, (peak, allowed, y.nbytes, x.nbytes)
    np.testing.assert_array_equal(y[:, :5], nblstm.lstm(np.ascontiguousarray(x[:, :5]), params)[0])


@pytest.mark.parametrize("path", ["serial", "tiles"])
def test_weight_gradients_over_several_blocks(cpu_config, path):
    """T*B = 300 rows of dZ: three blocks in the numba weight gradients, with odd I and H
    so that a group of output rows straddles dW_ih and dW_hh."""
    from nblstm.cpu import weight_grads

    B, T, I, H = 5, 60, 7, 9
    assert B * T > 2 * weight_grads._GRAD_BLOCK_ROWS
    cpu_config.path = path
    p = make_problem(B, T, I, H, seed=5, lengths="mixed")
    assert_results_close(run_api(p), run_reference(p), RTOL[np.dtype(np.float64)])


def test_running_segments_cover_exactly_the_running_rows():
    """The numba weight gradients read dZ over these ranges: every running (step, row), once, in order."""
    from nblstm.cpu.weight_grads import running_segments

    rng = np.random.default_rng(2)
    for B, T, max_rows in [(3, 7, 4), (5, 40, 128), (1, 9, 2), (4, 1, 3)]:
        n_active = np.sort(rng.integers(0, B + 1, T))[::-1].astype(np.int64)
        segments = running_segments(n_active, B, max_rows)
        rows = np.concatenate([np.arange(a, b) for a, b in segments] or [np.zeros(0, int)])
        want = np.concatenate([t * B + np.arange(n) for t, n in enumerate(n_active)])
        np.testing.assert_array_equal(rows, want)
        assert np.all(segments[:, 1] - segments[:, 0] <= max_rows)
        assert np.all(segments[:, 1] > segments[:, 0])
    assert running_segments(np.zeros(0, np.int64), 3, 8).shape == (0, 2)


@pytest.mark.parametrize("row_block, unit_block, row_groups",
                         [(1, 4, 0), (2, 5, 0), (1, 33, 0), (1, 33, 1), (2, 33, 2), (1, 33, 3),
                          (2, 33, 7)])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_every_tiling_equals_the_serial_loop(cpu_config, monkeypatch, row_block, unit_block,
                                            row_groups, dtype):
    """Every tiling of the "tiles" path gives the serial loop's bits.

    Tiles of part of a row (four per-gate column ranges, a barrier every step),
    and groups of whole rows each with its own time loop: one group, as many as
    row blocks, more groups than blocks (some idle). The automatic tiling picks
    by thread count, so the tiling is forced here, whatever the machine's.
    """
    p = make_problem(5, 6, 4, 33, dtype=dtype, seed=8, lengths="mixed")
    cpu_config.path = "serial"
    want = run_api(p, reverse=True)
    cpu_config.path = "tiles"
    monkeypatch.setattr(cpu.plan, "tiling", lambda B, H: (row_block, unit_block, row_groups))
    got = run_api(p, reverse=True)
    want_arrays = all_arrays(*want)
    for name, a in all_arrays(*got).items():
        np.testing.assert_array_equal(a, want_arrays[name], err_msg=name)
    assert_results_close(got, run_reference(p, reverse=True), RTOL[np.dtype(dtype)], dtype=np.dtype(dtype))


def test_every_driver_the_plan_can_name_is_in_both_tables(cpu_config):
    """Plan.driver names an entry of both tables, and each path's sizes pick its drivers."""
    from nblstm.cpu import layers

    assert set(layers.FORWARD_DRIVERS) == set(layers.BACKWARD_DRIVERS) == set(cpu.plan.DRIVERS)
    seen = set()
    cpu_config.block_rows = 8
    for path in cpu.PATHS:
        cpu_config.path = path
        for B, H in ((1, 32), (40, 16), (40, 256)):
            p = cpu.plan.plan(B, H)
            assert (p.path, p.driver in cpu.plan.DRIVERS) == (path, True)
            assert p.barrier_per_step == (p.driver in ("tiles", "slices"))
            seen.add(p.driver)
    cpu_config.path = "slices"
    assert cpu.plan.plan(40, 16)[1:] == ("slice_row_blocks", 8, 16, 0)
    assert cpu.plan.plan(40, 256).driver == "slices"
    cpu_config.path = "tiles"
    rows, units, groups = cpu.plan.tiling(40, 256)
    assert cpu.plan.plan(40, 256)[1:] == ("row_groups" if groups else "tiles", rows, units, groups)
    assert {"serial", "blas", "slices", "slice_row_blocks"} <= seen
