"""Multi-layer and bidirectional stacks through nblstm.lstm / lstm_forward / lstm_backward.

Oracles: torch.nn.LSTM's forward and autograd gradients (float64, when torch is
installed), float64 central differences of a 2-layer bidirectional stack (with
a negative control), and the one-layer API composed by hand.
"""
import numpy as np
import pytest

import nblstm
from nblstm.interop import to_torch_state_dict
from nblstm.params import LSTMParams, init_params, init_stack
from nblstm.testing import LinearLoss, check_grad

RTOL, ATOL = 1e-10, 1e-12


def _close(actual, desired):
    np.testing.assert_allclose(actual, desired, rtol=RTOL, atol=ATOL)


# ---------------------------------------------------------------------------
# against torch.nn.LSTM
# ---------------------------------------------------------------------------

def _torch_run(torch, stack, x, h0, c0, lengths, time_major, w):
    """torch.nn.LSTM with the stack's weights: outputs, and autograd gradients of L = <w, outputs>."""
    L, D = len(stack), len(stack[0])
    I, H = stack[0][0].input_size, stack[0][0].hidden_size
    module = torch.nn.LSTM(I, H, num_layers=L, bidirectional=D == 2, batch_first=not time_major).double()
    module.load_state_dict({k: torch.from_numpy(v) for k, v in to_torch_state_dict(stack).items()})
    xt = torch.tensor(x, requires_grad=True)
    h0t = torch.tensor(h0, requires_grad=True)
    c0t = torch.tensor(c0, requires_grad=True)
    if lengths is None:
        y, (h_n, c_n) = module(xt, (h0t, c0t))
    else:
        packed = torch.nn.utils.rnn.pack_padded_sequence(
            xt, torch.tensor(lengths), batch_first=not time_major, enforce_sorted=False)
        out, (h_n, c_n) = module(packed, (h0t, c0t))
        T = x.shape[0] if time_major else x.shape[1]
        y, _ = torch.nn.utils.rnn.pad_packed_sequence(out, batch_first=not time_major, total_length=T)
    loss = (y * torch.from_numpy(w.w_y)).sum() + (h_n * torch.from_numpy(w.w_h)).sum() \
        + (c_n * torch.from_numpy(w.w_c)).sum()
    loss.backward()
    grads = dict(module.named_parameters())
    dstack = tuple(
        tuple(LSTMParams(*(grads[f"{kind}_l{l}{'_reverse' if d else ''}"].grad.numpy()
                           for kind in ("weight_ih", "weight_hh", "bias_ih")))
              for d in range(D))
        for l in range(L))
    return (y.detach().numpy(), h_n.detach().numpy(), c_n.detach().numpy(),
            xt.grad.numpy(), dstack, h0t.grad.numpy(), c0t.grad.numpy())


CASES = [
    # layout, with lengths
    ("batch_first", False),
    ("batch_first", True),
    ("time_major", False),
    ("time_major", True),
    ("unbatched", False),
]


@pytest.mark.parametrize("num_layers", [1, 2, 3])
@pytest.mark.parametrize("bidirectional", [False, True], ids=["uni", "bi"])
@pytest.mark.parametrize("layout, with_lengths", CASES, ids=[f"{a}-{'lengths' if b else 'full'}" for a, b in CASES])
def test_stack_matches_torch(num_layers, bidirectional, layout, with_lengths):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(100 * num_layers + 10 * bidirectional + CASES.index((layout, with_lengths)))
    B, T, I, H = 4, 6, 3, 5
    D = 2 if bidirectional else 1
    stack = init_stack(I, H, num_layers, bidirectional=bidirectional, seed=rng)
    time_major = layout == "time_major"
    if layout == "unbatched":
        x = rng.normal(size=(T, I))
        state_shape, y_shape = (num_layers * D, H), (T, D * H)
    elif time_major:
        x = rng.normal(size=(T, B, I))
        state_shape, y_shape = (num_layers * D, B, H), (T, B, D * H)
    else:
        x = rng.normal(size=(B, T, I))
        state_shape, y_shape = (num_layers * D, B, H), (B, T, D * H)
    h0, c0 = rng.normal(size=state_shape), rng.normal(size=state_shape)
    lengths = np.array([3, 6, 1, 4]) if with_lengths else None      # unsorted, includes T; torch needs > 0
    w = LinearLoss.random(y_shape, state_shape, seed=rng)

    y_t, h_t, c_t, dx_t, dstack_t, dh0_t, dc0_t = _torch_run(torch, stack, x, h0, c0, lengths, time_major, w)

    y, (h_n, c_n) = nblstm.lstm(x, stack, h0, c0, lengths=lengths, time_major=time_major)
    y2, (h2, c2), cache = nblstm.lstm_forward(x, stack, h0, c0, lengths=lengths, time_major=time_major)
    g = nblstm.lstm_backward(cache, **w.cotangents())

    assert y.shape == y_shape and h_n.shape == state_shape and c_n.shape == state_shape
    _close(y, y_t)
    _close(h_n, h_t)
    _close(c_n, c_t)
    np.testing.assert_array_equal(y2, y)
    np.testing.assert_array_equal(h2, h_n)
    np.testing.assert_array_equal(c2, c_n)
    if with_lengths:
        for b, n in enumerate(lengths):
            yb = y[n:, b] if time_major else y[b, n:]
            dxb = g.dx[n:, b] if time_major else g.dx[b, n:]
            assert np.all(yb == 0) and np.all(dxb == 0)

    assert g.dx.shape == x.shape and g.dh0.shape == state_shape and g.dc0.shape == state_shape
    _close(g.dx, dx_t)
    _close(g.dh0, dh0_t)
    _close(g.dc0, dc0_t)
    assert isinstance(g.dparams, tuple) and len(g.dparams) == num_layers
    for layer, layer_t in zip(g.dparams, dstack_t):
        assert isinstance(layer, tuple) and len(layer) == D
        for p, p_t in zip(layer, layer_t):
            assert isinstance(p, LSTMParams)
            for a, a_t in zip(p, p_t):
                _close(a, a_t)


def test_single_params_and_one_layer_stack_agree():
    """LSTMParams gives (B, H) states and LSTMParams grads; ((p,),) the same numbers, stacked."""
    rng = np.random.default_rng(0)
    p = init_params(3, 4, seed=rng)
    x = rng.normal(size=(2, 5, 3))
    h0, c0 = rng.normal(size=(2, 4)), rng.normal(size=(2, 4))
    w = LinearLoss.random((2, 5, 4), (2, 4), seed=rng)
    y1, (h1, c1), cache1 = nblstm.lstm_forward(x, p, h0, c0, lengths=[5, 2])
    y2, (h2, c2), cache2 = nblstm.lstm_forward(x, ((p,),), h0[None], c0[None], lengths=[5, 2])
    assert h1.shape == (2, 4) and h2.shape == (1, 2, 4)
    np.testing.assert_array_equal(y1, y2)
    np.testing.assert_array_equal(h1, h2[0])
    np.testing.assert_array_equal(c1, c2[0])
    g1 = nblstm.lstm_backward(cache1, **w.cotangents())
    g2 = nblstm.lstm_backward(cache2, dy=w.w_y, dh_n=w.w_h[None], dc_n=w.w_c[None])
    assert isinstance(g1.dparams, LSTMParams)
    assert isinstance(g2.dparams, tuple) and isinstance(g2.dparams[0][0], LSTMParams)
    np.testing.assert_array_equal(g1.dx, g2.dx)
    assert g2.dh0.shape == g2.dc0.shape == (1, 2, 4)
    np.testing.assert_array_equal(g1.dh0, g2.dh0[0])
    np.testing.assert_array_equal(g1.dc0, g2.dc0[0])
    for a, b in zip(g1.dparams, g2.dparams[0][0], strict=True):
        np.testing.assert_array_equal(a, b)


def test_bidirectional_layer_is_forward_and_reverse_side_by_side():
    """A one-layer bidirectional stack = the one-layer API forward | reverse, lengths included."""
    rng = np.random.default_rng(1)
    fwd, rev = init_params(2, 3, seed=rng), init_params(2, 3, seed=rng)
    x = rng.normal(size=(3, 6, 2))
    lengths = [6, 0, 4]
    y, (h, c) = nblstm.lstm(x, ((fwd, rev),), lengths=lengths)
    yf, (hf, cf) = nblstm.lstm(x, fwd, lengths=lengths)
    yr, (hr, cr) = nblstm.lstm(x, rev, lengths=lengths, reverse=True)
    np.testing.assert_array_equal(y, np.concatenate([yf, yr], axis=-1))
    np.testing.assert_array_equal(h, np.stack([hf, hr]))
    np.testing.assert_array_equal(c, np.stack([cf, cr]))


def test_stack_b0_t0_and_float32():
    stack = init_stack(2, 3, 2, bidirectional=True, seed=0, dtype=np.float32)
    y, (h, c) = nblstm.lstm(np.zeros((0, 4, 2), np.float32), stack)
    assert y.shape == (0, 4, 6) and h.shape == (4, 0, 3)
    h0 = np.random.default_rng(0).normal(size=(4, 2, 3)).astype(np.float32)
    y, (h, c) = nblstm.lstm(np.zeros((2, 0, 2), np.float32), stack, h0, h0)
    assert y.shape == (2, 0, 6) and y.dtype == np.float32
    np.testing.assert_array_equal(h, h0)
    x = np.random.default_rng(1).normal(size=(2, 5, 2)).astype(np.float32)
    y, (h, _), cache = nblstm.lstm_forward(x, stack)
    g = nblstm.lstm_backward(cache, dy=np.ones_like(y))
    assert y.dtype == h.dtype == g.dx.dtype == g.dparams[1][1].W_hh.dtype == np.float32


# ---------------------------------------------------------------------------
# finite differences of a 2-layer bidirectional stack
# ---------------------------------------------------------------------------

def _fd_problem(seed=0):
    rng = np.random.default_rng(seed)
    B, T, I, H = 2, 3, 2, 2
    stack = init_stack(I, H, 2, bidirectional=True, seed=rng, forget_bias=0.0)
    x = rng.normal(size=(B, T, I))
    h0, c0 = rng.normal(size=(4, B, H)), rng.normal(size=(4, B, H))
    lengths = np.array([2, 3])
    loss = LinearLoss.random((B, T, 2 * H), (4, B, H), seed=rng)

    def fun(x, stack, h0, c0):
        y, state = nblstm.lstm(x, stack, h0, c0, lengths=lengths)
        return loss(y, state)

    def grad(x, stack, h0, c0):
        _, _, cache = nblstm.lstm_forward(x, stack, h0, c0, lengths=lengths)
        g = nblstm.lstm_backward(cache, **loss.cotangents())
        return g.dx, g.dparams, g.dh0, g.dc0

    return fun, grad, (x, stack, h0, c0)


def test_two_layer_bidirectional_finite_differences():
    fun, grad, args = _fd_problem()
    result = check_grad(fun, grad, args, seed=0)
    assert result.ok, result.summary()
    # every layer, direction and array was checked
    paths = {leaf.path for leaf in result.leaves}
    for l in range(2):
        for d in range(2):
            for field in LSTMParams._fields:
                assert any(f"[{l}][{d}]" in p and p.endswith(field) for p in paths)


def test_two_layer_bidirectional_finite_differences_negative_control():
    """Swapping the two directions' gradients of layer 1 must fail the check."""
    fun, grad, args = _fd_problem()

    def wrong(*a):
        dx, dstack, dh0, dc0 = grad(*a)
        fwd, rev = dstack[1]
        return dx, (dstack[0], (rev, fwd)), dh0, dc0

    assert not check_grad(fun, wrong, args, seed=0).ok


# ---------------------------------------------------------------------------
# bad stacks and states
# ---------------------------------------------------------------------------

def _bad_stack_cases():
    p23, p33, p34, p63 = (init_params(i, h, seed=0) for i, h in ((2, 3), (3, 3), (3, 4), (6, 3)))
    return [
        (((p23,), (p33, p33)), r"params\[1\]: expected 1 direction"),                   # mixed directions
        (((p23,), (p34,)), r"params\[1\]\[0\]\.W_hh: expected hidden size 3"),          # mixed H
        (((p23, p23), (p33, p33)), r"params\[1\]\[0\]\.W_ih: expected 6 input features"),  # wrong input size
        (((p23,), (p63,)), r"params\[1\]\[0\]\.W_ih: expected 3 input features"),
        (((p23, p33),), r"params\[0\]\[1\]\.W_ih: expected 2 input features"),
        (((p23, p23, p23),), r"params\[0\]: expected a tuple of 1 or 2 LSTMParams"),
    ]


@pytest.mark.parametrize("stack, match", _bad_stack_cases())
def test_bad_stack(stack, match):
    with pytest.raises(ValueError, match=match):
        nblstm.lstm(np.zeros((1, 2, 2)), stack)


@pytest.mark.parametrize("x_shape, state_shape, time_major", [
    ((2, 5, 3), (2, 4), False),          # one layer's (B, H) given to a 2-layer bidirectional stack
    ((2, 5, 3), (4, 3, 4), False),       # wrong B
    ((2, 5, 3), (2, 2, 4), False),       # wrong L*D
    ((5, 2, 3), (4, 5, 4), True),        # time_major: B is axis 1 of x
    ((5, 3), (4, 1, 4), False),          # unbatched takes (L*D, H)
])
def test_bad_stack_state(x_shape, state_shape, time_major):
    stack = init_stack(3, 4, 2, bidirectional=True, seed=0)
    for name in ("h0", "c0"):
        kwargs = {name: np.zeros(state_shape)}
        with pytest.raises(ValueError, match=rf"{name}: expected shape \("):
            nblstm.lstm(np.zeros(x_shape), stack, time_major=time_major, **kwargs)


def test_bad_stack_gradient_shapes():
    stack = init_stack(3, 4, 2, bidirectional=True, seed=0)
    _, _, cache = nblstm.lstm_forward(np.zeros((2, 5, 3)), stack)
    with pytest.raises(ValueError, match=r"dh_n: expected shape \(4, 2, 4\)"):
        nblstm.lstm_backward(cache, dh_n=np.zeros((2, 4)))
    with pytest.raises(ValueError, match=r"dy: expected shape \(2, 5, 8\)"):
        nblstm.lstm_backward(cache, dy=np.zeros((2, 5, 4)))
