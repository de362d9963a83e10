"""nblstm's gradients against float64 central differences (nblstm.testing)."""
import re

import numpy as np
import pytest

import nblstm
from nblstm.params import LSTMParams
from nblstm.testing import assert_grad_close, check_grad, check_lstm_grad

from _helpers import make_problem

FIELDS = ["args[0]", "args[1].W_ih", "args[1].W_hh", "args[1].b", "args[2]", "args[3]"]


def _fun_grad(p, **options):
    def fun(x, params, h0, c0):
        return p.loss(*nblstm.lstm(x, params, h0, c0, lengths=p.lengths, time_major=p.time_major,
                                   **options))

    def grad(x, params, h0, c0):
        _, _, cache = nblstm.lstm_forward(x, params, h0, c0, lengths=p.lengths,
                                          time_major=p.time_major, **options)
        g = nblstm.lstm_backward(cache, **p.loss.cotangents())
        return g.dx, g.dparams, g.dh0, g.dc0

    return fun, grad


@pytest.mark.parametrize("case", [
    dict(),
    dict(reverse=True),
    dict(lengths=np.array([3, 0, 1])),
    dict(lengths=np.array([3, 0, 1]), reverse=True),
    dict(time_major=True, lengths=np.array([2, 3, 0])),
    dict(unbatched=True),
    dict(unbatched=True, reverse=True),
], ids=["plain", "reverse", "lengths", "lengths_reverse", "time_major", "unbatched", "unbatched_reverse"])
def test_every_element(case):
    case = dict(case)
    reverse = case.pop("reverse", False)
    p = make_problem(3, 3, 2, 2, seed=1, **case)
    result = check_lstm_grad(p.x, p.params, p.h0, p.c0, lengths=p.lengths, reverse=reverse,
                             time_major=p.time_major, loss=p.loss, rtol=1e-6, atol=1e-8)
    assert result.ok, result.summary()
    assert [leaf.path for leaf in result.leaves] == FIELDS
    assert all(leaf.mode == "elementwise" for leaf in result.leaves)
    assert result.n_checks == sum(a.size for a in (p.x, *p.params, p.h0, p.c0))


@pytest.mark.parametrize("reverse", [False, True], ids=["forward", "reverse"])
def test_random_directions_larger(reverse):
    p = make_problem(4, 6, 5, 6, seed=2, lengths=np.array([6, 0, 3, 6]))
    result = check_lstm_grad(p.x, p.params, p.h0, p.c0, lengths=p.lengths, reverse=reverse,
                             loss=p.loss, seed=3, rtol=1e-6, atol=1e-8)
    assert result.ok, result.summary()
    modes = {leaf.path: leaf.mode for leaf in result.leaves}
    assert modes["args[0]"] == modes["args[1].W_ih"] == modes["args[1].W_hh"] == "directional"
    assert modes["args[1].b"] == "elementwise"


def test_float32_inputs_are_checked_in_float64():
    p = make_problem(2, 3, 2, 2, dtype=np.float32, seed=4)
    result = check_lstm_grad(p.x, p.params, p.h0, p.c0, seed=5, rtol=1e-6, atol=1e-8)
    assert result.ok, result.summary()


def test_default_state_is_checked():
    p = make_problem(2, 3, 2, 2, seed=6)
    result = check_lstm_grad(p.x, p.params, seed=7)
    assert result.ok, result.summary()
    assert [leaf.path for leaf in result.leaves] == FIELDS


# ----------------------------------------------------------------------------- negative controls

def _wrong(grad, edit):
    def wrong(*args):
        dx, dparams, dh0, dc0 = grad(*args)
        return edit(dx.copy(), LSTMParams(*(a.copy() for a in dparams)), dh0.copy(), dc0.copy())
    return wrong


@pytest.mark.parametrize("edit, bad", [
    (lambda dx, dp, dh0, dc0: (dx, dp._replace(W_hh=0.5 * dp.W_hh), dh0, dc0), ("args[1].W_hh",)),
    (lambda dx, dp, dh0, dc0: (dx, dp._replace(b=dp.b * (1 + 1e-4)), dh0, dc0), ("args[1].b",)),
    (lambda dx, dp, dh0, dc0: (dx, dp, dc0, dh0), ("args[2]", "args[3]")),
    (lambda dx, dp, dh0, dc0: (dx + np.where(np.arange(dx.size).reshape(dx.shape) == 5, 1e-5, 0),
                               dp, dh0, dc0), ("args[0]",)),
], ids=["half_dW_hh", "db_off_by_1e-4", "dh0_dc0_swapped", "one_dx_element_off_by_1e-5"])
def test_negative_control_elementwise(edit, bad):
    p = make_problem(3, 3, 2, 2, seed=8)
    fun, grad = _fun_grad(p)
    args = (p.x, p.params, p.h0, p.c0)
    assert check_grad(fun, grad, args, rtol=1e-6, atol=1e-8).ok   # the control's control
    result = check_grad(fun, _wrong(grad, edit), args, rtol=1e-6, atol=1e-8)
    assert not result.ok
    assert result.worst.startswith(bad)
    assert tuple(leaf.path for leaf in result.leaves if not leaf.ok) == bad
    with pytest.raises(AssertionError, match=r"FAILED(.|\n)*FAIL " + re.escape(bad[0])):
        assert_grad_close(fun, _wrong(grad, edit), args, rtol=1e-6, atol=1e-8)


def test_negative_control_one_element_exact_location():
    p = make_problem(3, 3, 2, 2, seed=9)
    fun, grad = _fun_grad(p)

    def wrong(*args):
        dx, dparams, dh0, dc0 = grad(*args)
        W_ih = dparams.W_ih.copy()
        W_ih[5, 1] += 1e-4
        return dx, dparams._replace(W_ih=W_ih), dh0, dc0

    result = check_grad(fun, wrong, (p.x, p.params, p.h0, p.c0), rtol=1e-6, atol=1e-8)
    leaf = result.leaves[1]
    assert not leaf.ok and result.worst.startswith("args[1].W_ih[5, 1]")
    err = np.abs(leaf.numeric - leaf.analytic)
    assert np.unravel_index(np.argmax(err), err.shape) == (5, 1)
    assert err[5, 1] == pytest.approx(1e-4, rel=1e-3)


def test_negative_control_directional():
    p = make_problem(3, 5, 5, 6, seed=10, lengths=np.array([5, 2, 0]))
    fun, grad = _fun_grad(p, reverse=True)
    args = (p.x, p.params, p.h0, p.c0)
    assert check_grad(fun, grad, args, seed=0, rtol=1e-6, atol=1e-8).ok
    result = check_grad(fun, _wrong(grad, lambda dx, dp, dh0, dc0: (dx, dp._replace(W_ih=dp.W_ih * 1.001),
                                                                     dh0, dc0)),
                        args, seed=0, rtol=1e-6, atol=1e-8)
    assert not result.ok and result.worst.startswith("args[1].W_ih direction")


def test_negative_control_wrong_direction_of_time():
    """Gradients of the forward run do not pass for the reverse run."""
    p = make_problem(3, 3, 2, 2, seed=11, lengths=np.array([3, 2, 0]))
    fun, _ = _fun_grad(p, reverse=True)
    _, grad = _fun_grad(p, reverse=False)
    assert not check_grad(fun, grad, (p.x, p.params, p.h0, p.c0), rtol=1e-6, atol=1e-8).ok


def test_check_lstm_grad_accepts_a_stack():
    stack = nblstm.params.init_stack(2, 2, num_layers=2, bidirectional=True, seed=12)
    x = np.random.default_rng(12).standard_normal((2, 3, 2))
    result = check_lstm_grad(x, stack, lengths=[3, 1], seed=13, directions=2)
    assert result.ok, result.summary()
    assert len(result.leaves) == 1 + 2 * 2 * 3 + 2
    assert result.leaves[-3].path == "args[1][1][1].b"
