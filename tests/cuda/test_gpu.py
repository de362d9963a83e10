"""Checks that only mean something on a real GPU (marker ``gpu``; skipped elsewhere).

Shipped block sizes, shapes big enough for many blocks, the persistent
cooperative path actually taken, device inputs from other libraries.
"""
import numpy as np
import pytest

import nblstm
from nblstm.params import LSTMParams, init_params

pytestmark = pytest.mark.gpu

TOL = {np.float64: 1e-11, np.float32: 1e-4}


def _problem(B, T, I, H, dtype, seed=0):
    rng = np.random.default_rng(seed)
    p = LSTMParams(*(a.astype(dtype) for a in init_params(I, H, seed=rng)))
    x = rng.standard_normal((B, T, I)).astype(dtype)
    lengths = rng.integers(0, T + 1, B)
    lengths[0] = T
    return x, p, lengths


def _host(a):
    return a.copy_to_host() if hasattr(a, "copy_to_host") else np.asarray(a)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("persistent", [True, False], ids=["persistent", "per_step"])
def test_medium_problem_matches_cpu(dtype, persistent, monkeypatch):
    import nblstm.cuda as nc

    monkeypatch.setattr(nc.config, "persistent", persistent)
    x, p, lengths = _problem(16, 12, 40, 96, dtype)
    y, (h, c), cache = nblstm.lstm_forward(x, p, lengths=lengths, backend="cuda")
    y0, (h0, c0), cache0 = nblstm.lstm_forward(x, p, lengths=lengths)
    tol = TOL[dtype]
    for got, want in zip((y, h, c), (y0, h0, c0)):
        np.testing.assert_allclose(_host(got), want, rtol=tol, atol=tol)
    dy = np.random.default_rng(1).standard_normal(y0.shape).astype(dtype)
    g, g0 = nblstm.lstm_backward(cache, dy), nblstm.lstm_backward(cache0, dy)
    for got, want in zip((g.dx, *g.dparams, g.dh0, g.dc0), (g0.dx, *g0.dparams, g0.dh0, g0.dc0)):
        np.testing.assert_allclose(_host(got), want, rtol=10 * tol, atol=10 * tol)


def test_persistent_path_is_taken_for_benchmark_shapes():
    import nblstm.cuda as nc
    from nblstm.cuda import forward, plan

    # every shape of bench/gpu_compare.py: where the shared-memory grid is too large to be
    # resident, the plan reads W_hh from global memory or takes larger blocks instead
    for H in (256, 512, 1024):
        for B in (1, 4, 16, 64):
            p = plan.plan(H, B, 4, 4, forward._forward_persistent_kernel, _args_for(H, B))
            assert p.persistent, (H, B, p, plan.LAST_COOPERATIVE_ERROR)
    assert nc.config.persistent


def _args_for(H, B):
    from numba import cuda

    T = 2
    f = np.float32

    def make(p):
        d = lambda *s: cuda.device_array(s, f)  # noqa: E731
        # d_zx, d_w, d_h0, d_c0, d_y, d_hn, d_cn, d_gates, d_cells, training, d_nt, ...
        return (d(T, B, 4 * H), d(4 * H * H), d(B, H), d(B, H), d(T, B, H), d(B, H), d(B, H),
                d(T, B, 4 * H), d(T, B, H), True, cuda.to_device(np.zeros(T + 1, np.int64)),
                p.units, p.lanes, p.w_shared, p.red_offset, p.stage_offset, p.stage_len)
    return make


def test_bitwise_reproducible_on_gpu():
    x, p, lengths = _problem(8, 10, 64, 128, np.float32, seed=3)
    runs = []
    for _ in range(2):
        y, _, cache = nblstm.lstm_forward(x, p, lengths=lengths, backend="cuda")
        g = nblstm.lstm_backward(cache, np.ones_like(y))
        runs.append([_host(a) for a in (y, g.dx, *g.dparams)])
    for a, b in zip(*runs):
        np.testing.assert_array_equal(a, b)


def test_device_arrays_unbatched_and_strided():
    from numba import cuda

    x, p, _ = _problem(1, 6, 4, 8, np.float64)
    d_p = LSTMParams(*(cuda.to_device(a) for a in p))
    y, (h, c), cache = nblstm.lstm_forward(cuda.to_device(x[0]), d_p, backend="cuda")
    y0, (h0, c0), cache0 = nblstm.lstm_forward(x[0], p)
    np.testing.assert_allclose(y.copy_to_host(), y0, rtol=1e-12, atol=1e-12)
    g = nblstm.lstm_backward(cache, cuda.to_device(np.ones_like(y0)))
    g0 = nblstm.lstm_backward(cache0, np.ones_like(y0))
    np.testing.assert_allclose(g.dx.copy_to_host(), g0.dx, rtol=1e-11, atol=1e-12)
    # a non-contiguous device view as input
    xb = np.random.default_rng(0).standard_normal((3, 6, 8))
    d_view = cuda.to_device(xb)[:, :, ::2]
    y, _ = nblstm.lstm(d_view, d_p, backend="cuda")
    np.testing.assert_allclose(y.copy_to_host(), nblstm.lstm(xb[:, :, ::2], p)[0], rtol=1e-12, atol=1e-12)


def test_torch_cuda_tensors_as_input():
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("torch without CUDA")
    x, p, lengths = _problem(4, 5, 6, 7, np.float32)
    tx = torch.from_numpy(x).cuda()
    tp = LSTMParams(*(torch.from_numpy(a).cuda() for a in p))
    y, (h, c) = nblstm.lstm(tx, tp, lengths=lengths, backend="cuda")
    np.testing.assert_allclose(y.copy_to_host(), nblstm.lstm(x, p, lengths=lengths)[0],
                               rtol=1e-4, atol=1e-5)
