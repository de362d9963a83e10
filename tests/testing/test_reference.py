"""The oracle itself: nblstm.reference against torch.nn.LSTM and finite differences."""
import warnings

import numpy as np
import pytest

from nblstm import reference
from nblstm.params import LSTMParams
from nblstm.testing import assert_grad_close, check_grad

from _helpers import assert_close, make_problem

TORCH_RTOL = 1e-10   # two float64 implementations with different summation orders


def _torch_lstm(params, *, bidirectional=False, other=None):
    """A float64 torch.nn.LSTM holding ``params`` (the reverse half when bidirectional)."""
    import torch

    H, I = params.W_hh.shape[1], params.W_ih.shape[1]
    module = torch.nn.LSTM(I, H, batch_first=True, bidirectional=bidirectional, dtype=torch.float64)
    rng = np.random.default_rng(0)
    halves = [("_reverse", params)] + ([("", other)] if bidirectional else [])
    if not bidirectional:
        halves = [("", params)]
    with torch.no_grad():
        for suffix, p in halves:
            # split b into the two PyTorch biases: only their sum matters
            split = rng.standard_normal(p.b.shape)
            getattr(module, "weight_ih_l0" + suffix).copy_(torch.from_numpy(p.W_ih))
            getattr(module, "weight_hh_l0" + suffix).copy_(torch.from_numpy(p.W_hh))
            getattr(module, "bias_ih_l0" + suffix).copy_(torch.from_numpy(p.b - split))
            getattr(module, "bias_hh_l0" + suffix).copy_(torch.from_numpy(split))
    return module


def _torch_run(p, lengths=None, reverse=False):
    """torch forward and autograd gradients of the problem's LinearLoss, as NumPy arrays."""
    import torch

    B, T, _ = p.x.shape
    H = p.params.W_hh.shape[1]
    other = make_problem(B, T, p.x.shape[2], H, seed=99).params if reverse else None
    module = _torch_lstm(p.params, bidirectional=reverse, other=other)
    x = torch.tensor(p.x, requires_grad=True)
    h0 = torch.tensor(p.h0, requires_grad=True)
    c0 = torch.tensor(p.c0, requires_grad=True)
    if reverse:   # the forward half starts from an arbitrary state; only the reverse half is used
        zeros = torch.zeros_like(h0)
        state = (torch.stack([zeros, h0]), torch.stack([zeros, c0]))
    else:
        state = (h0[None], c0[None])
    if lengths is None:
        out, (h_n, c_n) = module(x, state)
    else:
        packed = torch.nn.utils.rnn.pack_padded_sequence(x, torch.as_tensor(lengths), batch_first=True,
                                                         enforce_sorted=False)
        out, (h_n, c_n) = module(packed, state)
        out, _ = torch.nn.utils.rnn.pad_packed_sequence(out, batch_first=True, total_length=T)
    half = 1 if reverse else 0
    y, h_n, c_n = out[..., half * H:(half + 1) * H], h_n[half], c_n[half]
    w = p.loss
    loss = ((torch.from_numpy(w.w_y) * y).sum() + (torch.from_numpy(w.w_h) * h_n).sum()
            + (torch.from_numpy(w.w_c) * c_n).sum())
    loss.backward()
    sfx = "_reverse" if reverse else ""
    grads = [getattr(module, f"weight_ih_l0{sfx}").grad, getattr(module, f"weight_hh_l0{sfx}").grad,
             getattr(module, f"bias_ih_l0{sfx}").grad]
    db_hh = getattr(module, f"bias_hh_l0{sfx}").grad.numpy()
    assert_close(db_hh, grads[2].numpy(), TORCH_RTOL, "bias_hh")   # both biases get the same gradient
    return dict(y=y.detach().numpy(), h_n=h_n.detach().numpy(), c_n=c_n.detach().numpy(),
                dx=x.grad.numpy(), dW_ih=grads[0].numpy(), dW_hh=grads[1].numpy(), db=grads[2].numpy(),
                dh0=h0.grad.numpy(), dc0=c0.grad.numpy())


def _reference_run(p, lengths=None, reverse=False):
    y, (h, c), cache = reference.lstm_forward(p.x, p.params, p.h0, p.c0, lengths, reverse)
    g = reference.lstm_backward(cache, **p.loss.cotangents())
    return dict(y=y, h_n=h, c_n=c, dx=g.dx, dW_ih=g.dparams.W_ih, dW_hh=g.dparams.W_hh, db=g.dparams.b,
                dh0=g.dh0, dc0=g.dc0)


@pytest.mark.parametrize("reverse", [False, True], ids=["forward", "reverse"])
@pytest.mark.parametrize("lengths", [None, [3, 6, 1, 6, 2]], ids=["full", "packed"])
def test_reference_matches_torch(lengths, reverse):
    pytest.importorskip("torch")
    p = make_problem(5, 6, 3, 4, seed=1)
    want = _torch_run(p, lengths, reverse)
    got = _reference_run(p, None if lengths is None else np.array(lengths), reverse)
    for name in want:
        assert_close(got[name], want[name], TORCH_RTOL, name)
    if lengths is not None:   # the padded steps of torch's output are zero as well
        for b, n in enumerate(lengths):
            assert np.all(got["y"][b, n:] == 0) and np.all(want["y"][b, n:] == 0)


def test_torch_reverse_half_is_not_the_forward_half():
    """Negative control: the reverse comparison would notice a forward run."""
    pytest.importorskip("torch")
    p = make_problem(2, 4, 2, 3, seed=2)
    want = _torch_run(p, None, reverse=True)
    got = _reference_run(p, None, reverse=False)
    assert np.max(np.abs(got["y"] - want["y"])) > 1e-3


def _fun_grad(lengths, reverse, loss):
    def fun(x, params, h0, c0):
        y, state, _ = reference.lstm_forward(x, params, h0, c0, lengths, reverse)
        return loss(y, state)

    def grad(x, params, h0, c0):
        _, _, cache = reference.lstm_forward(x, params, h0, c0, lengths, reverse)
        g = reference.lstm_backward(cache, **loss.cotangents())
        return g.dx, g.dparams, g.dh0, g.dc0

    return fun, grad


@pytest.mark.parametrize("reverse", [False, True], ids=["forward", "reverse"])
@pytest.mark.parametrize("lengths", [None, [2, 0, 3]], ids=["full", "lengths"])
def test_reference_gradients_match_finite_differences(lengths, reverse):
    p = make_problem(3, 3, 2, 2, seed=3)
    lengths = None if lengths is None else np.array(lengths)
    fun, grad = _fun_grad(lengths, reverse, p.loss)
    result = assert_grad_close(fun, grad, (p.x, p.params, p.h0, p.c0), rtol=1e-6, atol=1e-8)
    # every element of x, W_ih, W_hh, b, h0, c0 was checked one by one
    assert [leaf.mode for leaf in result.leaves] == ["elementwise"] * 6
    assert result.n_checks == sum(a.size for a in (p.x, *p.params, p.h0, p.c0))


def test_reference_wrong_gradient_fails():
    """Negative control for the test above: dropping the recurrent term must be noticed."""
    p = make_problem(3, 3, 2, 2, seed=3)
    fun, grad = _fun_grad(None, False, p.loss)

    def wrong(*args):
        dx, dparams, dh0, dc0 = grad(*args)
        return dx, LSTMParams(dparams.W_ih, 0.5 * dparams.W_hh, dparams.b), dh0, dc0

    result = check_grad(fun, wrong, (p.x, p.params, p.h0, p.c0), rtol=1e-6, atol=1e-8)
    assert not result.ok
    assert [leaf.ok for leaf in result.leaves] == [True, True, False, True, True, True]
    assert "W_hh" in result.worst


@pytest.mark.parametrize("z", [1e4, -1e4, 750.0, -750.0, 1e308, -1e308, 0.0])
def test_sigmoid_is_stable(z):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        s = reference.sigmoid(np.array([z]))
        s32 = reference.sigmoid(np.array([np.clip(z, -3e38, 3e38)], np.float32))
    assert np.all(np.isfinite(s)) and np.all(np.isfinite(s32))
    expected = 0.5 if z == 0 else (1.0 if z > 0 else 0.0)
    assert s[0] == expected and s32[0] == expected


def test_sigmoid_values():
    z = np.linspace(-30, 30, 121)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        s = reference.sigmoid(z)
    np.testing.assert_allclose(s, 1 / (1 + np.exp(-z)), rtol=1e-15, atol=0)
    np.testing.assert_allclose(s + reference.sigmoid(-z), 1.0, rtol=1e-15)


@pytest.mark.parametrize("reverse", [False, True], ids=["forward", "reverse"])
def test_reference_large_values_finite(reverse):
    p = make_problem(3, 4, 2, 3, seed=4, scale=1e4)
    params = LSTMParams(*(100 * a for a in p.params))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        y, (h, c), cache = reference.lstm_forward(p.x, params, 1e4 * p.h0, 1e4 * p.c0, None, reverse)
        g = reference.lstm_backward(cache, **p.loss.cotangents())
    for arr in (y, h, c, g.dx, *g.dparams, g.dh0, g.dc0):
        assert np.all(np.isfinite(arr))
    assert np.all(np.abs(y) <= 1)


def test_worked_example_by_hand():
    """One step, computed with scalar Python math, independent of NumPy broadcasting."""
    import math
    p = make_problem(1, 1, 2, 3, seed=5)
    y, (h, c), _ = reference.lstm_forward(p.x, p.params, p.h0, p.c0)
    W_ih, W_hh, b = p.params
    x, h0, c0 = p.x[0, 0], p.h0[0], p.c0[0]
    sig = lambda v: 1 / (1 + math.exp(-v))  # noqa: E731
    for k in range(3):
        z = [sum(W_ih[g * 3 + k, j] * x[j] for j in range(2)) + sum(W_hh[g * 3 + k, j] * h0[j] for j in range(3))
             + b[g * 3 + k] for g in range(4)]
        i, f, gg, o = sig(z[0]), sig(z[1]), math.tanh(z[2]), sig(z[3])
        c_k = f * c0[k] + i * gg
        assert c[0, k] == pytest.approx(c_k, rel=1e-14)
        assert h[0, k] == pytest.approx(o * math.tanh(c_k), rel=1e-14)
        assert y[0, 0, k] == h[0, k]
