"""A sequence run in two chunks, carrying (h, c) forward and (dh, dc) backward, equals the whole run."""
import numpy as np
import pytest

import nblstm

from _helpers import RTOL, all_arrays, assert_close, make_problem


def _chunked(p, split, reverse):
    """Run [0, split) and [split, T) as two calls; returns the same arrays as a whole run."""
    tm = p.time_major
    T = p.x.shape[0] if tm else p.x.shape[1]
    time_axis = 0 if tm else 1
    xs = np.split(p.x, [split], axis=time_axis)
    ws = np.split(p.loss.w_y, [split], axis=time_axis)
    if p.lengths is None:
        lens = [None, None]
    else:   # per chunk: the valid steps that fall into it
        lens = [np.clip(p.lengths, 0, split), np.clip(p.lengths - split, 0, T - split)]
    # forward in time: chunk 0 then chunk 1; reverse: chunk 1 then chunk 0
    first, second = (1, 0) if reverse else (0, 1)
    ys, caches = [None, None], [None, None]
    ys[first], (h, c), caches[first] = nblstm.lstm_forward(
        xs[first], p.params, p.h0, p.c0, lengths=lens[first], reverse=reverse, time_major=tm)
    ys[second], (h_n, c_n), caches[second] = nblstm.lstm_forward(
        xs[second], p.params, h, c, lengths=lens[second], reverse=reverse, time_major=tm)
    g2 = nblstm.lstm_backward(caches[second], ws[second], p.loss.w_h, p.loss.w_c)
    g1 = nblstm.lstm_backward(caches[first], ws[first], g2.dh0, g2.dc0)
    gs = [None, None]
    gs[first], gs[second] = g1, g2
    dparams = type(g1.dparams)(*(a + b for a, b in zip(g1.dparams, g2.dparams)))
    grads = g1._replace(dx=np.concatenate([gs[0].dx, gs[1].dx], axis=time_axis), dparams=dparams)
    return np.concatenate(ys, axis=time_axis), (h_n, c_n), grads


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("split", [0, 1, 3, 6])
@pytest.mark.parametrize("lengths", [None, np.array([6, 0, 3, 1, 4])], ids=["full", "lengths"])
@pytest.mark.parametrize("reverse", [False, True], ids=["forward", "reverse"])
def test_two_chunks_equal_whole_run(reverse, lengths, split, dtype):
    p = make_problem(5, 6, 3, 4, dtype=dtype, seed=split, lengths=lengths)
    whole = nblstm.lstm_forward(p.x, p.params, p.h0, p.c0, lengths=p.lengths, reverse=reverse)
    g = nblstm.lstm_backward(whole[2], **p.loss.cotangents())
    want = all_arrays(whole[0], whole[1], g)
    got = all_arrays(*_chunked(p, split, reverse))
    for name in want:
        assert got[name].dtype == want[name].dtype
        assert_close(got[name], want[name], 1e-14 if dtype == np.float64 else RTOL[np.dtype(dtype)], name)


def test_two_chunks_time_major():
    p = make_problem(3, 7, 2, 3, seed=5, time_major=True, lengths=np.array([7, 2, 5]))
    whole = nblstm.lstm_forward(p.x, p.params, p.h0, p.c0, lengths=p.lengths, time_major=True)
    g = nblstm.lstm_backward(whole[2], **p.loss.cotangents())
    want = all_arrays(whole[0], whole[1], g)
    got = all_arrays(*_chunked(p, 4, False))
    for name in want:
        assert_close(got[name], want[name], 1e-14, name)


def test_chunks_without_carrying_the_state_differ():
    """Negative control: dropping the carried state is noticed."""
    p = make_problem(2, 6, 3, 4, seed=6)
    y, _ = nblstm.lstm(p.x, p.params, p.h0, p.c0)
    y2, _ = nblstm.lstm(p.x[:, 3:], p.params, p.h0, p.c0)
    assert np.max(np.abs(y[:, 3:] - y2)) > 1e-3
