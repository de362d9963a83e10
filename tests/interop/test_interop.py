"""Weight interchange with PyTorch, Keras and ONNX.

Three kinds of check: round trips (nblstm -> format -> nblstm is exact), the
other library's own numbers (torch.nn.LSTM, when installed), and each format's
LSTM written here from its own specification (Keras' and ONNX's gate order),
with a negative control: every swapped pair of gate blocks must be detected.
"""
import itertools

import numpy as np
import pytest

import nblstm
from nblstm import reference
from nblstm.interop import from_keras, from_onnx, from_torch, to_keras, to_onnx, to_torch_state_dict
from nblstm.params import LSTMParams, init_params, init_stack


def _sigmoid(z):
    return 1 / (1 + np.exp(-z))


def _assert_params_equal(a, b):
    assert isinstance(a, LSTMParams) and isinstance(b, LSTMParams)
    for x, y in zip(a, b):
        assert x.shape == y.shape and x.dtype == y.dtype
        np.testing.assert_array_equal(x, y)


def _assert_stack_equal(a, b):
    assert isinstance(a, tuple) and isinstance(b, tuple) and len(a) == len(b)
    for la, lb in zip(a, b):
        assert isinstance(la, tuple) and len(la) == len(lb)
        for pa, pb in zip(la, lb):
            _assert_params_equal(pa, pb)


def _reference_stack(x, stack, h0, c0):
    """A stack composed from the one-layer reference (x (B, T, I), states (L*D, B, H))."""
    hs, cs = [], []
    for l, layer in enumerate(stack):
        ys = []
        for d, p in enumerate(layer):
            k = l * len(layer) + d
            y, (h, c), _ = reference.lstm_forward(x, p, h0[k], c0[k], reverse=bool(d))
            ys.append(y)
            hs.append(h)
            cs.append(c)
        x = np.concatenate(ys, axis=-1)
    return x, np.stack(hs), np.stack(cs)


# ---------------------------------------------------------------------------
# the formats' own LSTMs, written from their documentation
# ---------------------------------------------------------------------------

def _keras_lstm(x, kernel, recurrent_kernel, bias):
    """keras.layers.LSTM(return_sequences=True): z = x·kernel + h·recurrent_kernel + bias, gates i, f, c, o."""
    B, T, _ = x.shape
    H = recurrent_kernel.shape[0]
    h = np.zeros((B, H))
    c = np.zeros((B, H))
    ys = []
    for t in range(T):
        z = x[:, t] @ kernel + h @ recurrent_kernel + bias
        i, f, cc, o = np.split(z, 4, axis=1)
        c = _sigmoid(f) * c + _sigmoid(i) * np.tanh(cc)
        h = _sigmoid(o) * np.tanh(c)
        ys.append(h)
    return np.stack(ys, axis=1)


def _onnx_lstm(X, W, R, B, initial_h, initial_c, direction):
    """The ONNX LSTM operator (opset 14 definition, no peepholes, default activations).

    X (T, batch, I); W (D, 4H, I) = W[iofc]; R (D, 4H, H); B (D, 8H) = [Wb[iofc], Rb[iofc]];
    initial_h, initial_c (D, batch, H). Returns Y (T, D, batch, H), Y_h, Y_c (D, batch, H).
        it = f(Xt*(Wi^T) + Ht-1*(Ri^T) + Wbi + Rbi)
        ft = f(Xt*(Wf^T) + Ht-1*(Rf^T) + Wbf + Rbf)
        ct = g(Xt*(Wc^T) + Ht-1*(Rc^T) + Wbc + Rbc)
        Ct = ft (.) Ct-1 + it (.) ct
        ot = f(Xt*(Wo^T) + Ht-1*(Ro^T) + Wbo + Rbo)
        Ht = ot (.) h(Ct)
    """
    T = X.shape[0]
    D, H4, _ = W.shape
    H = H4 // 4
    Y = np.zeros((T, D, X.shape[1], H))
    Y_h, Y_c = np.zeros_like(initial_h), np.zeros_like(initial_c)
    dirs = ["forward", "reverse"] if direction == "bidirectional" else [direction]
    for d, dname in enumerate(dirs):
        Wi, Wo, Wf, Wc = np.split(W[d], 4)
        Ri, Ro, Rf, Rc = np.split(R[d], 4)
        Wbi, Wbo, Wbf, Wbc, Rbi, Rbo, Rbf, Rbc = np.split(B[d], 8)
        Ht, Ct = initial_h[d], initial_c[d]
        steps = range(T) if dname == "forward" else range(T - 1, -1, -1)
        for t in steps:
            Xt = X[t]
            it = _sigmoid(Xt @ Wi.T + Ht @ Ri.T + Wbi + Rbi)
            ft = _sigmoid(Xt @ Wf.T + Ht @ Rf.T + Wbf + Rbf)
            ct = np.tanh(Xt @ Wc.T + Ht @ Rc.T + Wbc + Rbc)
            Ct = ft * Ct + it * ct
            ot = _sigmoid(Xt @ Wo.T + Ht @ Ro.T + Wbo + Rbo)
            Ht = ot * np.tanh(Ct)
            Y[t, d] = Ht
        Y_h[d], Y_c[d] = Ht, Ct
    return Y, Y_h, Y_c


def _swap(p, a, b):
    """LSTMParams with gate blocks a and b exchanged: the classic converter bug."""
    H = p.hidden_size
    order = list(range(4))
    order[a], order[b] = order[b], order[a]

    def perm(m):
        return np.concatenate([m[k * H:(k + 1) * H] for k in order])
    return LSTMParams(perm(p.W_ih), perm(p.W_hh), perm(p.b))


def _onnx_matches(params, W, R, B, X, h0, c0, direction="forward"):
    Y, Y_h, Y_c = _onnx_lstm(X, W, R, B, h0[None], c0[None], direction)
    y, (h, c), _ = reference.lstm_forward(X.transpose(1, 0, 2), params, h0, c0, reverse=direction == "reverse")
    return (np.allclose(y, Y[:, 0].transpose(1, 0, 2), rtol=1e-12, atol=1e-13)
            and np.allclose(h, Y_h[0], rtol=1e-12, atol=1e-13) and np.allclose(c, Y_c[0], rtol=1e-12, atol=1e-13))


def _keras_matches(params, weights, x):
    y, _, _ = reference.lstm_forward(x, params)
    return np.allclose(y, _keras_lstm(x, *weights), rtol=1e-12, atol=1e-13)


def _onnx_arrays(rng, D, H, I):
    return (rng.normal(size=(D, 4 * H, I)), rng.normal(size=(D, 4 * H, H)) / np.sqrt(H), rng.normal(size=(D, 8 * H)))


# ---------------------------------------------------------------------------
# ONNX
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("direction", ["forward", "reverse"])
def test_from_onnx_matches_operator(direction):
    rng = np.random.default_rng(0)
    T, Bsz, I, H = 6, 3, 2, 4
    W, R, B = _onnx_arrays(rng, 1, H, I)
    X = rng.normal(size=(T, Bsz, I))
    h0, c0 = rng.normal(size=(Bsz, H)), rng.normal(size=(Bsz, H))
    params = from_onnx(W, R, B)
    assert isinstance(params, LSTMParams)
    assert _onnx_matches(params, W, R, B, X, h0, c0, direction)


def test_from_onnx_bidirectional_matches_operator():
    rng = np.random.default_rng(1)
    T, Bsz, I, H = 5, 2, 3, 2
    W, R, B = _onnx_arrays(rng, 2, H, I)
    X = rng.normal(size=(T, Bsz, I))
    h0, c0 = rng.normal(size=(2, Bsz, H)), rng.normal(size=(2, Bsz, H))
    stack = from_onnx(W, R, B)
    assert isinstance(stack, tuple) and len(stack) == 1 and len(stack[0]) == 2
    Y, Y_h, Y_c = _onnx_lstm(X, W, R, B, h0, c0, "bidirectional")
    y, h, c = _reference_stack(X.transpose(1, 0, 2), stack, h0, c0)
    # ONNX Y (T, D, B, H) is nblstm's y (B, T, D*H) with the directions side by side
    np.testing.assert_allclose(y, Y.transpose(2, 0, 1, 3).reshape(Bsz, T, 2 * H), rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(h, Y_h, rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(c, Y_c, rtol=1e-12, atol=1e-13)


@pytest.mark.parametrize("a, b", list(itertools.combinations(range(4), 2)))
def test_onnx_swapped_gates_detected(a, b):
    """Negative control: a converter that mixes up any two gate blocks must fail the check."""
    rng = np.random.default_rng(2)
    T, Bsz, I, H = 6, 3, 2, 4
    W, R, B = _onnx_arrays(rng, 1, H, I)
    X = rng.normal(size=(T, Bsz, I))
    h0, c0 = rng.normal(size=(Bsz, H)), rng.normal(size=(Bsz, H))
    params = from_onnx(W, R, B)
    assert _onnx_matches(params, W, R, B, X, h0, c0)
    assert not _onnx_matches(_swap(params, a, b), W, R, B, X, h0, c0)
    # and exporting swapped weights is caught the same way
    assert not _onnx_matches(params, *to_onnx(_swap(params, a, b)), X, h0, c0)


def test_onnx_naive_order_detected():
    """Reading ONNX's iofc blocks as if they were ifgo is wrong, and the check says so."""
    rng = np.random.default_rng(3)
    W, R, B = _onnx_arrays(rng, 1, 3, 2)
    naive = LSTMParams(W[0], R[0], B[0, :12] + B[0, 12:])
    X = rng.normal(size=(4, 2, 2))
    z = np.zeros((2, 3))
    assert not _onnx_matches(naive, W, R, B, X, z, z)
    assert _onnx_matches(from_onnx(W, R, B), W, R, B, X, z, z)


def test_onnx_round_trips():
    p = init_params(3, 4, seed=0)
    W, R, B = to_onnx(p)
    assert W.shape == (1, 16, 3) and R.shape == (1, 16, 4) and B.shape == (1, 32)
    np.testing.assert_array_equal(B[0, 16:], 0)
    _assert_params_equal(from_onnx(W, R, B), p)
    _assert_params_equal(from_onnx(W, R), LSTMParams(p.W_ih, p.W_hh, np.zeros(16)))
    # a layer tuple and a one-layer stack both export; bidirectional round trip
    stack = init_stack(3, 4, 1, bidirectional=True, seed=1)
    W2, R2, B2 = to_onnx(stack)
    assert W2.shape == (2, 16, 3)
    _assert_stack_equal(from_onnx(W2, R2, B2), stack)
    for got, want in zip(to_onnx(stack[0]), (W2, R2, B2)):
        np.testing.assert_array_equal(got, want)
    # ONNX -> nblstm -> ONNX: W and R exact, the bias folded into Wb
    rng = np.random.default_rng(4)
    W, R, B = _onnx_arrays(rng, 2, 4, 3)
    W_, R_, B_ = to_onnx(from_onnx(W, R, B))
    np.testing.assert_array_equal(W_, W)
    np.testing.assert_array_equal(R_, R)
    np.testing.assert_allclose(B_[:, :16], B[:, :16] + B[:, 16:], rtol=0, atol=0)
    np.testing.assert_array_equal(B_[:, 16:], 0)


def test_onnx_zero_peepholes_accepted():
    rng = np.random.default_rng(5)
    W, R, B = _onnx_arrays(rng, 1, 2, 3)
    _assert_params_equal(from_onnx(W, R, B, P=np.zeros((1, 6))), from_onnx(W, R, B))


@pytest.mark.parametrize("args, match", [
    ((np.zeros((1, 8, 3)), np.zeros((1, 8, 3))), r"R: expected shape \(D, 4\*H, H\) with D = 1 or 2, "
     r"got shape \(1, 8, 3\)"),
    ((np.zeros((1, 8, 3)), np.zeros((3, 8, 2))), r"R: expected shape \(D, 4\*H, H\) with D = 1 or 2, "
     r"got shape \(3, 8, 2\)"),
    ((np.zeros((8, 3)), np.zeros((1, 8, 2))), r"W: expected shape \(1, 8, I\), got shape \(8, 3\)"),
    ((np.zeros((2, 8, 3)), np.zeros((1, 8, 2))), r"W: expected shape \(1, 8, I\), got shape \(2, 8, 3\)"),
    ((np.zeros((1, 8, 3)), np.zeros((1, 8, 2)), np.zeros((1, 8))), r"B: expected shape \(1, 16\), got shape \(1, 8\)"),
    ((np.zeros((1, 8, 3)), np.zeros((1, 8, 2)), None, np.ones((1, 6))), "P: expected None or zeros"),
    ((np.zeros((1, 8, 3)), np.zeros((1, 8, 2)), None, np.zeros((1, 4))),
     r"P: expected shape \(1, 6\), got shape \(1, 4\)"),
])
def test_from_onnx_bad_shapes(args, match):
    with pytest.raises(ValueError, match=match):
        from_onnx(*args)


def test_to_onnx_rejects_deep_stack():
    with pytest.raises(ValueError, match="params: expected one layer .* got 2 layers"):
        to_onnx(init_stack(2, 3, 2, seed=0))


# ---------------------------------------------------------------------------
# Keras
# ---------------------------------------------------------------------------

def test_keras_matches_keras_math_and_round_trips():
    rng = np.random.default_rng(6)
    I, H = 3, 4
    weights = [rng.normal(size=(I, 4 * H)), rng.normal(size=(H, 4 * H)) / 2, rng.normal(size=4 * H)]
    x = rng.normal(size=(2, 5, I))
    p = from_keras(weights)
    assert p.W_ih.shape == (4 * H, I) and p.W_ih.flags.c_contiguous
    assert _keras_matches(p, weights, x)
    back = to_keras(p)
    assert [w.shape for w in back] == [(I, 4 * H), (H, 4 * H), (4 * H,)]
    for got, want in zip(back, weights):
        np.testing.assert_array_equal(got, want)
    q = init_params(I, H, seed=0)
    _assert_params_equal(from_keras(to_keras(q)), q)
    # use_bias=False: two arrays, zero bias
    np.testing.assert_array_equal(from_keras(weights[:2]).b, np.zeros(4 * H))


@pytest.mark.parametrize("a, b", list(itertools.combinations(range(4), 2)))
def test_keras_swapped_gates_detected(a, b):
    rng = np.random.default_rng(7)
    weights = [rng.normal(size=(2, 12)), rng.normal(size=(3, 12)) / 2, rng.normal(size=12)]
    x = rng.normal(size=(2, 5, 2))
    p = from_keras(weights)
    assert _keras_matches(p, weights, x)
    assert not _keras_matches(_swap(p, a, b), weights, x)


@pytest.mark.parametrize("weights, match", [
    ([np.zeros((3, 8))], r"weights: expected \[kernel, recurrent_kernel, bias\]"),
    ("abc", r"weights: expected \[kernel, recurrent_kernel, bias\]"),
    ([np.zeros((3, 8)), np.zeros((2, 6))], r"recurrent_kernel: expected shape \(H, 4\*H\), got shape \(2, 6\)"),
    ([np.zeros((3, 12)), np.zeros((2, 8))], r"kernel: expected shape \(I, 8\), got shape \(3, 12\)"),
    ([np.zeros(8), np.zeros((2, 8))], r"kernel: expected shape \(I, 8\), got shape \(8,\)"),
    ([np.zeros((3, 8)), np.zeros((2, 8)), np.zeros(6)], r"bias: expected shape \(8,\), got shape \(6,\)"),
])
def test_from_keras_bad_shapes(weights, match):
    with pytest.raises(ValueError, match=match):
        from_keras(weights)


def test_from_keras_bad_dtype():
    with pytest.raises(TypeError, match="kernel: expected a real numeric array, got dtype complex128"):
        from_keras([np.zeros((3, 8), complex), np.zeros((2, 8))])


def test_to_keras_bad_params():
    with pytest.raises(ValueError, match=r"params\.b: expected shape \(8,\) .* got shape \(7,\)"):
        to_keras(LSTMParams(np.zeros((8, 3)), np.zeros((8, 2)), np.zeros(7)))
    with pytest.raises(ValueError, match=r"params\.W_ih: expected shape \(8, I\) .* got shape \(12, 3\)"):
        to_keras(LSTMParams(np.zeros((12, 3)), np.zeros((8, 2)), np.zeros(8)))
    with pytest.raises(TypeError, match=r"params: expected LSTMParams"):
        to_keras(init_stack(2, 3, seed=0))


# ---------------------------------------------------------------------------
# PyTorch (state dicts of NumPy arrays need no torch)
# ---------------------------------------------------------------------------

def test_torch_state_dict_round_trip_without_torch():
    p = init_params(3, 4, seed=0)
    sd = to_torch_state_dict(p)
    assert list(sd) == ["weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0"]
    np.testing.assert_array_equal(sd["bias_ih_l0"], p.b)
    np.testing.assert_array_equal(sd["bias_hh_l0"], 0)
    _assert_params_equal(from_torch(sd), p)
    stack = init_stack(3, 4, 3, bidirectional=True, seed=1)
    sd = to_torch_state_dict(stack)
    assert list(sd)[:8] == ["weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0",
                            "weight_ih_l0_reverse", "weight_hh_l0_reverse", "bias_ih_l0_reverse",
                            "bias_hh_l0_reverse"]
    assert sd["weight_ih_l2_reverse"].shape == (16, 8)
    _assert_stack_equal(from_torch(sd), stack)
    # two-layer unidirectional -> a stack, not LSTMParams
    two = init_stack(3, 4, 2, seed=2)
    _assert_stack_equal(from_torch(to_torch_state_dict(two)), two)
    # results never alias the input
    sd = to_torch_state_dict(p)
    q = from_torch(sd)
    assert not np.shares_memory(q.W_ih, sd["weight_ih_l0"])


def test_from_torch_sums_biases_and_no_bias():
    p = init_params(2, 3, seed=0)
    sd = to_torch_state_dict(p)
    sd["bias_ih_l0"], sd["bias_hh_l0"] = p.b - 0.25, np.full(12, 0.25)
    np.testing.assert_allclose(from_torch(sd).b, p.b, rtol=1e-15)
    del sd["bias_ih_l0"], sd["bias_hh_l0"]
    np.testing.assert_array_equal(from_torch(sd).b, np.zeros(12))


def _sd(I=3, H=2, L=1, D=1):
    return to_torch_state_dict(init_stack(I, H, L, bidirectional=D == 2, seed=0))


@pytest.mark.parametrize("edit, match", [
    (lambda sd: sd.update(weight_hr_l0=np.zeros((8, 1))), r"without proj_size, got 'weight_hr_l0'"),
    (lambda sd: sd.update(foo=np.zeros(1)), r"state_dict: expected keys like 'weight_ih_l0' of an nn.LSTM, got 'foo'"),
    (lambda sd: sd.pop("weight_hh_l0"), r"state_dict: expected key 'weight_hh_l0'"),
    (lambda sd: sd.pop("bias_hh_l0"), r"state_dict: expected key 'bias_hh_l0'"),
    (lambda sd: sd.update(weight_hh_l0=np.zeros((8, 3))),
     r"weight_hh_l0: expected shape \(4\*H, H\), got shape \(8, 3\)"),
    (lambda sd: sd.update(weight_ih_l0=np.zeros((12, 3))),
     r"weight_ih_l0: expected shape \(8, I\), got shape \(12, 3\)"),
    (lambda sd: sd.update(bias_ih_l0=np.zeros(7)), r"bias_ih_l0: expected shape \(8,\), got shape \(7,\)"),
    (lambda sd: sd.update(weight_ih_l1=np.zeros((8, 3))), r"weight_ih_l1: expected shape \(8, 2\), got shape \(8, 3\)"),
    (lambda sd: sd.update(weight_hh_l1=np.zeros((12, 3))),
     r"weight_hh_l1: expected shape \(8, 2\), got shape \(12, 3\)"),
])
def test_from_torch_bad_state_dicts(edit, match):
    sd = _sd(L=2)
    edit(sd)
    with pytest.raises(ValueError, match=match):
        from_torch(sd)


def test_from_torch_bad_bidirectional_shapes():
    sd = _sd(L=2, D=2)
    sd["weight_ih_l1_reverse"] = np.zeros((8, 2))
    with pytest.raises(ValueError, match=r"weight_ih_l1_reverse: expected shape \(8, 4\), got shape \(8, 2\)"):
        from_torch(sd)
    sd = _sd(L=1, D=2)
    sd["weight_ih_l0_reverse"] = np.zeros((8, 5))
    with pytest.raises(ValueError, match=r"weight_ih_l0_reverse: expected shape \(8, 3\), got shape \(8, 5\)"):
        from_torch(sd)


def test_from_torch_not_a_state_dict():
    with pytest.raises(ValueError, match="module_or_state_dict: expected a torch.nn.LSTM or its state_dict"):
        from_torch([1, 2])
    with pytest.raises(ValueError, match="got no keys"):
        from_torch({})


@pytest.mark.parametrize("params, error, match", [
    ((), TypeError, r"params: expected LSTMParams or a non-empty sequence of layers"),
    (((init_params(2, 3, seed=0),) * 3,), ValueError, r"params\[0\]: expected a tuple of 1 or 2 LSTMParams"),
    ((init_params(2, 3, seed=0),), ValueError, r"params\[0\]: expected a tuple of 1 or 2 LSTMParams .* got LSTMParams"),
    (((init_params(2, 3, seed=0),), (init_params(3, 3, seed=0),) * 2), ValueError,
     r"params\[1\]: expected 1 direction\(s\) like layer 0, got 2"),
    (((init_params(2, 3, seed=0),), (init_params(3, 4, seed=0),)), ValueError,
     r"params\[1\]\[0\]\.W_hh: expected hidden size 3 .* got hidden size 4"),
    (((init_params(2, 3, seed=0),), (init_params(2, 3, seed=0),)), ValueError,
     r"params\[1\]\[0\]\.W_ih: expected 3 input features .* got 2"),
    (((init_params(2, 3, seed=0), init_params(4, 3, seed=0)),), ValueError,
     r"params\[0\]\[1\]\.W_ih: expected 2 input features .* got 4"),
    (LSTMParams(np.zeros((8, 3)), np.zeros((8, 2)), np.zeros(7)), ValueError,
     r"params\.b: expected shape \(8,\) .* got shape \(7,\)"),
])
def test_to_torch_state_dict_bad_stacks(params, error, match):
    with pytest.raises(error, match=match):
        to_torch_state_dict(params)


# ---------------------------------------------------------------------------
# against torch.nn.LSTM itself
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("L, bidirectional", [(1, False), (1, True), (2, False), (3, True)])
def test_from_torch_module_matches_torch(L, bidirectional):
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    I, H, B, T = 3, 4, 2, 5
    D = 2 if bidirectional else 1
    module = torch.nn.LSTM(I, H, num_layers=L, bidirectional=bidirectional, batch_first=True).double()
    params = from_torch(module)
    if L == 1 and D == 1:
        assert isinstance(params, LSTMParams)
        stack = ((params,),)
    else:
        stack = params
        assert len(stack) == L and all(len(layer) == D for layer in stack)
    assert stack[0][0].W_ih.dtype == np.float64
    rng = np.random.default_rng(0)
    x = rng.normal(size=(B, T, I))
    h0, c0 = rng.normal(size=(L * D, B, H)), rng.normal(size=(L * D, B, H))
    with torch.no_grad():
        y_t, (h_t, c_t) = module(torch.from_numpy(x), (torch.from_numpy(h0), torch.from_numpy(c0)))
    y, h, c = _reference_stack(x, stack, h0, c0)
    np.testing.assert_allclose(y, y_t.numpy(), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(h, h_t.numpy(), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(c, c_t.numpy(), rtol=1e-12, atol=1e-14)


def test_to_torch_state_dict_loads_into_torch():
    torch = pytest.importorskip("torch")
    stack = init_stack(3, 4, 2, bidirectional=True, seed=0)
    module = torch.nn.LSTM(3, 4, num_layers=2, bidirectional=True, batch_first=True).double()
    sd = to_torch_state_dict(stack)
    assert list(sd) == list(module.state_dict())
    module.load_state_dict({k: torch.from_numpy(v) for k, v in sd.items()})
    rng = np.random.default_rng(1)
    x = rng.normal(size=(2, 6, 3))
    with torch.no_grad():
        y_t, (h_t, c_t) = module(torch.from_numpy(x))
    z = np.zeros((4, 2, 4))
    y, h, c = _reference_stack(x, stack, z, z)
    np.testing.assert_allclose(y, y_t.numpy(), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(h, h_t.numpy(), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(c, c_t.numpy(), rtol=1e-12, atol=1e-14)
    _assert_stack_equal(from_torch(module), stack)


def test_from_torch_module_float32_and_tensors_copied():
    torch = pytest.importorskip("torch")
    module = torch.nn.LSTM(2, 3)
    p = from_torch(module)
    assert p.W_ih.dtype == np.float32
    _assert_params_equal(from_torch(module.state_dict()), p)   # a tensor state_dict works too
    with torch.no_grad():
        module.weight_ih_l0.zero_()
    assert np.any(p.W_ih != 0)                            # a copy, not a view of the tensor
    _assert_params_equal(from_torch(module.state_dict()),
                         LSTMParams(np.zeros_like(p.W_ih), p.W_hh, p.b))


def test_from_torch_rejects_proj_size():
    torch = pytest.importorskip("torch")
    module = torch.nn.LSTM(3, 4, proj_size=2)
    with pytest.raises(ValueError, match="proj_size=2"):
        from_torch(module)
    with pytest.raises(ValueError, match="without proj_size"):
        from_torch(module.state_dict())


def test_torch_swapped_gates_detected():
    """Negative control against torch: a swapped pair of gate blocks changes torch's output."""
    torch = pytest.importorskip("torch")
    torch.manual_seed(1)
    module = torch.nn.LSTM(2, 3, batch_first=True).double()
    p = from_torch(module)
    x = np.random.default_rng(0).normal(size=(2, 4, 2))
    with torch.no_grad():
        y_t = module(torch.from_numpy(x))[0].numpy()
    assert np.allclose(reference.lstm_forward(x, p)[0], y_t, rtol=1e-12, atol=1e-14)
    for a, b in itertools.combinations(range(4), 2):
        assert not np.allclose(reference.lstm_forward(x, _swap(p, a, b))[0], y_t, rtol=1e-6, atol=1e-8)


# ---------------------------------------------------------------------------
# issue 12: every configuration of the other side
# ---------------------------------------------------------------------------

def test_to_torch_state_dict_without_bias_loads_into_a_biasless_module():
    torch = pytest.importorskip("torch")
    module = torch.nn.LSTM(3, 4, num_layers=2, bidirectional=True, bias=False).double()
    params = from_torch(module)
    sd = to_torch_state_dict(params, bias=False)
    assert not [k for k in sd if k.startswith("bias")]
    target = torch.nn.LSTM(3, 4, num_layers=2, bidirectional=True, bias=False).double()
    target.load_state_dict({k: torch.from_numpy(v) for k, v in sd.items()})    # strict
    x = np.random.default_rng(0).standard_normal((2, 5, 3))
    with torch.no_grad():
        want = target(torch.from_numpy(x).transpose(0, 1))[0].transpose(0, 1).numpy()
    np.testing.assert_allclose(nblstm.lstm(x, params)[0], want, rtol=1e-12, atol=1e-12)


def test_to_torch_state_dict_without_bias_refuses_a_nonzero_bias():
    stack = nblstm.init_stack(3, 4, num_layers=2, seed=0)
    stack = (stack[0], (stack[1][0]._replace(b=np.zeros(16)),))
    with pytest.raises(ValueError, match=r"^params\[0\]\[0\]\.b: expected all zeros with bias=False"):
        to_torch_state_dict(stack, bias=False)
    one = nblstm.init_params(3, 4, seed=0)
    with pytest.raises(ValueError, match=r"^params\.b: expected all zeros"):
        to_torch_state_dict(one, bias=False)
    with pytest.raises(TypeError, match="^bias: expected a bool"):
        to_torch_state_dict(one, bias="no")
    assert "bias_ih_l0" in to_torch_state_dict(one)


class KerasLikeLSTM:
    """The two methods of a Keras LSTM layer that from_keras reads (the config checks, without keras)."""

    def __init__(self, weights, **config):
        self._weights = weights
        self._config = dict(units=weights[1].shape[0] if weights else 4, activation="tanh",
                            recurrent_activation="sigmoid", use_bias=True, go_backwards=False,
                            return_sequences=True)
        self._config.update(config)

    def get_config(self):
        return dict(self._config)

    def get_weights(self):
        return list(self._weights)


def test_from_keras_takes_the_layer_and_checks_its_config():
    p = nblstm.init_params(3, 4, seed=0)
    weights = to_keras(p)
    _assert_params_equal(from_keras(KerasLikeLSTM(weights)), p)
    _assert_params_equal(from_keras(KerasLikeLSTM(weights[:2], use_bias=False)), p._replace(b=np.zeros(16)))
    for option, value in [("activation", "relu"), ("recurrent_activation", "hard_sigmoid"),
                          ("go_backwards", True)]:
        with pytest.raises(ValueError, match=rf"^layer\.{option}: expected"):
            from_keras(KerasLikeLSTM(weights, **{option: value}))
    with pytest.raises(ValueError, match="^layer: expected a built Keras LSTM layer"):
        from_keras(KerasLikeLSTM([]))


# Keras' torch backend turns tensors into arrays with np.array(tensor), and torch's
# Tensor.__array__ (2.13) lacks NumPy 2's copy keyword, which NumPy reports as
# deprecated; the values are the same.
@pytest.mark.filterwarnings("ignore:__array__ implementation doesn't accept a copy keyword:DeprecationWarning")
@pytest.mark.slow
def test_from_keras_with_a_real_keras_layer():
    """A Keras LSTM layer's own float64 numbers, both ways (KERAS_BACKEND: tests/interop/conftest.py)."""
    keras = pytest.importorskip("keras")
    layer = keras.layers.LSTM(4, activation="relu")
    layer.build((None, 5, 3))
    with pytest.raises(ValueError, match=r"^layer\.activation: expected 'tanh'"):
        from_keras(layer)
    x = np.random.default_rng(0).standard_normal((2, 5, 3))
    for use_bias in (True, False):
        layer = keras.layers.LSTM(4, return_sequences=True, return_state=True, use_bias=use_bias, dtype="float64")
        want = [keras.ops.convert_to_numpy(a) for a in layer(x)]   # y, h_n, c_n
        p = from_keras(layer)
        assert use_bias == bool(np.any(p.b))      # Keras' unit_forget_bias: 1 in the f block
        y, (h, c) = nblstm.lstm(x, p)
        for got, expected in zip((y, h, c), want):
            np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-14)
    # nblstm -> Keras: the layer computes nblstm's function with to_keras' weights, and gives them back exactly
    q = init_params(3, 4, seed=1)
    layer = keras.layers.LSTM(4, return_sequences=True, dtype="float64")
    layer.build((None, 5, 3))
    layer.set_weights(to_keras(q))
    _assert_params_equal(from_keras(layer), q)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(layer(x)), nblstm.lstm(x, q)[0], rtol=1e-12, atol=1e-14)
    assert not np.allclose(nblstm.lstm(x, _swap(p, 0, 1))[0], want[0], rtol=1e-6)   # a gate mix-up shows


# ---------------------------------------------------------------------------
# what users bring: a model's state_dict, a whole Keras model, 16-bit weights
# ---------------------------------------------------------------------------

def test_from_torch_prefix_reads_a_models_state_dict_without_torch():
    stack = init_stack(3, 4, 2, bidirectional=True, seed=0)
    sd = {"embed.weight": np.ones((5, 3))}
    sd.update({"encoder.lstm." + k: v for k, v in to_torch_state_dict(stack).items()})
    sd["head.weight"] = np.ones((1, 8))
    _assert_stack_equal(from_torch(sd, prefix="encoder.lstm."), stack)
    # without the prefix, the error says which prefix holds the LSTM
    with pytest.raises(ValueError, match=r"^state_dict: expected keys like 'weight_ih_l0' of an nn.LSTM, "
                                         r"got 'embed.weight'; the keys hold an nn.LSTM under the prefix "
                                         r"'encoder.lstm.': pass from_torch\(state_dict, prefix='encoder.lstm.'\)$"):
        from_torch(sd)
    two = dict(sd, **{"decoder." + k: v for k, v in to_torch_state_dict(stack).items()})
    with pytest.raises(ValueError, match=r"under the prefixes \['decoder.', 'encoder.lstm.'\]"):
        from_torch(two)
    with pytest.raises(ValueError, match=r"^state_dict: expected keys starting with prefix 'lstm.', got none; "
                                         r"the keys hold an nn.LSTM under the prefix 'encoder.lstm.'"):
        from_torch(sd, prefix="lstm.")
    with pytest.raises(ValueError, match=r"got 'encoder.lstm.extra'"):
        from_torch(dict(sd, **{"encoder.lstm.extra": np.ones(2)}), prefix="encoder.lstm.")
    with pytest.raises(TypeError, match="^prefix: expected a str, got int"):
        from_torch(sd, prefix=1)


def test_from_torch_prefix_with_a_torch_model():
    torch = pytest.importorskip("torch")

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.lstm = torch.nn.LSTM(3, 4, num_layers=2, batch_first=True)
            self.fc = torch.nn.Linear(4, 1)

    net = Net()
    want = from_torch(net.lstm)
    _assert_stack_equal(from_torch(net.state_dict(), prefix="lstm."), want)
    _assert_stack_equal(from_torch(net, prefix="lstm."), want)
    with pytest.raises(ValueError, match=r"prefix='lstm.'"):
        from_torch(net.state_dict())


def test_from_torch_float16_sums_the_biases_once():
    """A float16 module's b was summed in float16: 1.2e-4 off the exact sum, y 4.6e-5 off the module's function."""
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    module = torch.nn.LSTM(8, 64, batch_first=True)
    with torch.no_grad():
        for name, value in module.named_parameters():
            value.normal_(0, 3.0 if name.startswith("bias") else 0.2)
    module = module.half()
    p = from_torch(module)
    assert all(a.dtype == np.float32 for a in p)
    sd = {k: v.numpy() for k, v in module.state_dict().items()}
    exact = sd["bias_ih_l0"].astype(np.float64) + sd["bias_hh_l0"].astype(np.float64)
    np.testing.assert_array_equal(p.b, exact.astype(np.float32))        # rounded once
    np.testing.assert_array_equal(p.W_ih, sd["weight_ih_l0"].astype(np.float32))
    # against the module's function, computed in float64 from its float16 numbers
    x = np.random.default_rng(0).standard_normal((2, 20, 8))
    with torch.no_grad():
        y64 = module.double()(torch.from_numpy(x))[0].numpy()
    y, _ = nblstm.lstm(x.astype(np.float32), p)
    assert np.abs(y - y64).max() < 1e-6


def test_from_onnx_float16_bias_sum_is_rounded_once():
    rng = np.random.default_rng(0)
    H, I = 16, 3
    W = rng.standard_normal((1, 4 * H, I)).astype(np.float16)
    R = rng.standard_normal((1, 4 * H, H)).astype(np.float16)
    B = (3 * rng.standard_normal((1, 8 * H))).astype(np.float16)
    p = from_onnx(W, R, B)
    assert all(a.dtype == np.float32 for a in p)
    exact = B[0, :4 * H].astype(np.float64) + B[0, 4 * H:].astype(np.float64)
    want = from_onnx(W.astype(np.float64), R.astype(np.float64), B.astype(np.float64))
    np.testing.assert_array_equal(p.b, want.b.astype(np.float32))
    np.testing.assert_array_equal(p.b[:H], exact[:H].astype(np.float32))     # the i block is first in both
    np.testing.assert_array_equal(p.W_hh, want.W_hh.astype(np.float32))


class KerasLikeModel:
    """What from_keras reads of a Keras model: its layers, and the weights of all of them."""

    def __init__(self, layers):
        self.layers = layers

    def get_weights(self):
        return [w for layer in self.layers for w in layer.get_weights()]


class Dense:
    def get_weights(self):
        return [np.ones((4, 1)), np.zeros(1)]

    def get_config(self):
        return {}


def test_from_keras_takes_a_model_with_one_lstm_layer():
    p = nblstm.init_params(3, 4, seed=0)
    LSTM = type("LSTM", (KerasLikeLSTM,), {})           # Keras' class name is what identifies the layer
    _assert_params_equal(from_keras(KerasLikeModel([LSTM(to_keras(p)), Dense()])), p)
    q = nblstm.init_params(4, 4, seed=1)
    with pytest.raises(ValueError, match=r"^weights: expected a Keras LSTM layer or a model with exactly one, "
                                         r"got a KerasLikeModel with 2 LSTM layers \(model.layers\[0\], "
                                         r"model.layers\[2\]\): pass the layer, as from_keras\(model.layers\[i\]\)$"):
        from_keras(KerasLikeModel([LSTM(to_keras(p)), Dense(), LSTM(to_keras(q))]))
    with pytest.raises(ValueError, match=r"with 0 LSTM layers \(none\)"):
        from_keras(KerasLikeModel([Dense()]))


@pytest.mark.filterwarnings("ignore:__array__ implementation doesn't accept a copy keyword:DeprecationWarning")
@pytest.mark.slow
def test_from_keras_with_a_real_keras_model():
    """A whole Sequential model failed with 'expected 3 weight arrays ..., got 5' and no hint."""
    keras = pytest.importorskip("keras")
    model = keras.Sequential([keras.Input((5, 3)), keras.layers.LSTM(4), keras.layers.Dense(1)])
    _assert_params_equal(from_keras(model), from_keras(model.layers[0]))
    two = keras.Sequential([keras.Input((5, 3)), keras.layers.LSTM(4, return_sequences=True),
                            keras.layers.LSTM(2)])
    with pytest.raises(ValueError, match=r"2 LSTM layers \(model.layers\[0\], model.layers\[1\]\)"):
        from_keras(two)
