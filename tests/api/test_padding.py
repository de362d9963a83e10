"""What sits in padded steps (t >= lengths[b]) never reaches any result.

With ``check_finite=False``, NaN, +-Inf or a huge finite value at padded steps
of x must give exactly the outputs and gradients of the same call with zeros
there, on every CPU path, in every layer and direction of a stack, forward and
backward; the same for dy at padded steps. The CUDA twin is
tests/cuda/test_api.py::test_padding_never_reaches_a_result.
"""

import numpy as np
import pytest

import nblstm
from nblstm import cpu

FILLS = {"nan": np.nan, "inf": np.inf, "-inf": -np.inf, "huge": 1e300}


def padded_problem(fill, *, B=4, T=5, I=3, H=6):
    """x with ``fill`` at every padded step, the same x zero-padded, lengths, a stack and dy."""
    rng = np.random.default_rng(12)
    lengths = np.array([2, 5, 0, 3])[:B]             # unsorted, with an empty sequence
    x = rng.standard_normal((B, T, I))
    for b, n in enumerate(lengths):
        x[b, n:] = 0.0
    x_bad = x.copy()
    for b, n in enumerate(lengths):
        x_bad[b, n:] = fill
    stack = nblstm.init_stack(I, H, num_layers=2, bidirectional=True, seed=3)
    dy = rng.standard_normal((B, T, 2 * H))
    return x, x_bad, lengths, stack, dy


def run_all(x, params, lengths, dy, **kwargs):
    kwargs = dict(lengths=lengths, check_finite=False, **kwargs)
    y, (h_n, c_n), cache = nblstm.lstm_forward(x, params, **kwargs)
    y_inf, (h_inf, c_inf) = nblstm.lstm(x, params, **kwargs)
    g = nblstm.lstm_backward(cache, dy=dy, dh_n=np.ones_like(h_n))
    out = {"y": y, "h_n": h_n, "c_n": c_n, "y(lstm)": y_inf, "h_n(lstm)": h_inf,
           "c_n(lstm)": c_inf, "dx": g.dx, "dh0": g.dh0, "dc0": g.dc0}
    params_list = [params] if isinstance(params, nblstm.LSTMParams) else None
    grads = [g.dparams] if params_list else [p for layer in g.dparams for p in layer]
    for k, p in enumerate(grads):
        for field, a in zip(p._fields, p):
            out[f"d{field}[{k}]"] = a
    return {name: np.asarray(a) for name, a in out.items()}


def assert_same(got, want):
    for name in want:
        np.testing.assert_array_equal(got[name], want[name], err_msg=name)


@pytest.mark.parametrize("fill", list(FILLS))
@pytest.mark.parametrize("path", cpu.PATHS)
def test_padding_never_reaches_a_result(cpu_config, path, fill):
    cpu_config.path = path
    x, x_bad, lengths, stack, dy = padded_problem(FILLS[fill])
    dy_bad = dy.copy()                                # dy at padded steps is ignored too
    for b, n in enumerate(lengths):
        dy[b, n:], dy_bad[b, n:] = 0.0, FILLS[fill]
    x_before = x_bad.copy()
    want = run_all(x, stack, lengths, dy)
    with np.errstate(all="raise"):                    # and no floating-point warning
        got = run_all(x_bad, stack, lengths, dy_bad)
    assert_same(got, want)
    assert all(np.isfinite(a).all() for a in got.values())
    np.testing.assert_array_equal(x_bad, x_before)    # the input is left as it was


@pytest.mark.parametrize("path", cpu.PATHS)
def test_padding_one_layer_reverse_and_time_major(cpu_config, path):
    """The single-layer API (the issue's example) and a reversed, time-major call."""
    cpu_config.path = path
    p = nblstm.init_params(2, 3, seed=0)
    x = np.ones((1, 4, 2))
    x[0, 2:] = 0.0
    x_bad = x.copy()
    x_bad[0, 2:] = np.nan
    for kwargs in ({}, {"reverse": True}):
        want = run_all(x, p, [2], np.ones((1, 4, 3)), **kwargs)
        got = run_all(x_bad, p, [2], np.ones((1, 4, 3)), **kwargs)
        assert_same(got, want)
    xt, xt_bad = x.swapaxes(0, 1).copy(), x_bad.swapaxes(0, 1).copy()
    for reverse in (False, True):
        outs = [nblstm.lstm_forward(a, p, lengths=[2], time_major=True, reverse=reverse,
                                    check_finite=False) for a in (xt, xt_bad)]
        grads = [nblstm.lstm_backward(o[2], dy=np.ones((4, 1, 3))) for o in outs]
        np.testing.assert_array_equal(grads[1].dparams.W_ih, grads[0].dparams.W_ih)
        np.testing.assert_array_equal(outs[1][0], outs[0][0])


@pytest.mark.parametrize("layout", ["units", "rows"])
@pytest.mark.parametrize("time_major", [False, True])
def test_inference_with_unsorted_lengths_copies_neither_x_nor_y(cpu_config, monkeypatch, time_major,
                                                                 layout):
    """On the slices path one forward layer reads x and writes y in the caller's batch order.

    Before forward_layer took ``order``, x went through a sorted copy and y back
    through a gather: 1.3-1.5 ms of a 21 ms call at (64, 100, 128, 256). Every
    gather of the CPU backend goes through layout._gather; none may see a sequence.
    """
    cpu_config.path = "slices"
    cpu_config.row_blocks_max_H, cpu_config.block_rows = (0, 8) if layout == "units" else (10**6, 2)
    B, T, I, H = 5, 7, 3, 4
    rng = np.random.default_rng(8)
    p = nblstm.init_params(I, H, seed=rng)
    x = rng.standard_normal((T, B, I) if time_major else (B, T, I))
    lengths = np.array([3, 7, 0, 5, 7])
    want = nblstm.lstm_forward(x, p, lengths=lengths, time_major=time_major)
    moved = []
    real_gather = cpu.layout._gather

    def spy(src, index, out):
        if T in src.shape[:2] or T in out.shape[:2]:      # a sequence, not a state
            moved.append(src.shape)
        return real_gather(src, index, out)

    monkeypatch.setattr(cpu.layout, "_gather", spy)
    y, (h_n, c_n) = nblstm.lstm(x, p, lengths=lengths, time_major=time_major)
    assert moved == []
    np.testing.assert_array_equal(y, want[0])
    np.testing.assert_array_equal(h_n, want[1][0])
    np.testing.assert_array_equal(c_n, want[1][1])
