"""nblstm.model: the readout, the losses and their gradients (central differences, torch autograd)."""
import numpy as np
import pytest
from scipy import optimize

import nblstm
from nblstm import _tree
from nblstm.testing import assert_grad_close, check_grad

CASES = [  # (num_layers, bidirectional, single LSTMParams, per_step, loss, lengths, alpha)
    (1, False, True, False, "squared_error", None, 0.0),
    (1, False, True, True, "cross_entropy", [5, 3, 0], 0.0),
    (2, True, False, False, "squared_error", [5, 2, 4], 0.3),
    (2, True, False, True, "squared_error", [1, 5, 3], 0.0),
    (1, True, False, False, "cross_entropy", [5, 2, 4], 0.1),
    (2, False, False, True, "cross_entropy", None, 0.2),
]


def _problem(num_layers, bidirectional, single, per_step, loss, lengths, seed=0, dtype=np.float64):
    rng = np.random.default_rng(seed)
    B, T, I, H, K = 3, 5, 2, 3, 3
    model = nblstm.init_model(I, H, K, num_layers=num_layers, bidirectional=bidirectional, seed=rng, dtype=dtype)
    if single:
        model = nblstm.LSTMModel(model.lstm[0][0], model.readout)
    x = rng.normal(size=(B, T, I)).astype(dtype)
    lead = (B, T) if per_step else (B,)
    target = rng.integers(0, K, lead) if loss == "cross_entropy" else rng.normal(size=lead + (K,))
    return model, x, target


@pytest.mark.parametrize("case", CASES)
def test_gradient_matches_central_differences(case):
    *shape, loss, lengths, alpha = case
    model, x, target = _problem(*shape, loss, lengths)
    kw = dict(lengths=lengths, loss=loss, per_step=shape[3], alpha=alpha)
    fun = lambda m: nblstm.model_loss(m, x, target, **kw)[0]
    grad = lambda m: (nblstm.model_loss(m, x, target, **kw)[1],)
    assert_grad_close(fun, grad, (model,), seed=0, rtol=1e-6)


def test_a_wrong_gradient_fails_the_check():
    """Negative control: the readout's gradient off by a factor fails."""
    model, x, target = _problem(1, False, True, False, "squared_error", None)

    def wrong(m):
        g = nblstm.model_loss(m, x, target)[1]
        return (g._replace(readout=g.readout._replace(W=1.01 * g.readout.W)),)

    assert not check_grad(lambda m: nblstm.model_loss(m, x, target)[0], wrong, (model,), seed=0).ok


def test_flat_loss_and_grad_is_model_loss_raveled():
    model, x, target = _problem(2, True, False, False, "squared_error", None)
    theta, unravel = nblstm.ravel(model)
    value, grad = nblstm.loss_and_grad(theta, unravel, x, target, None, "squared_error", False, 0.1)
    value2, tree = nblstm.model_loss(model, x, target, alpha=0.1)
    assert value == value2
    np.testing.assert_array_equal(grad, nblstm.ravel(tree)[0])
    assert grad.shape == theta.shape


def test_scipy_fits_with_the_flat_loss():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(32, 12, 1))
    target = np.tanh(x.sum(axis=(1, 2)) / 3)
    theta0, unravel = nblstm.ravel(nblstm.init_model(1, 6, 1, seed=0))
    result = optimize.minimize(nblstm.loss_and_grad, theta0, args=(unravel, x, target), jac=True,
                               method="L-BFGS-B", options=dict(maxiter=200))
    assert result.fun < 0.02 * 0.5 * np.var(target)


def test_predict_is_the_readout_of_the_last_valid_state_and_of_every_step():
    model, x, _ = _problem(2, True, False, False, "squared_error", None)
    lengths = [5, 2, 4]
    y, (h_n, _) = nblstm.lstm(x, model.lstm, lengths=lengths)
    W, b = model.readout
    last = np.concatenate([h_n[2], h_n[3]], axis=1) @ W.T + b
    np.testing.assert_allclose(nblstm.model_predict(x, model, lengths=lengths), last, rtol=1e-14)
    per_step = nblstm.model_predict(x, model, lengths=lengths, per_step=True)
    np.testing.assert_allclose(per_step, y @ W.T + b, rtol=1e-14)
    np.testing.assert_array_equal(per_step[1, 2:], np.broadcast_to(b, (3, 3)))
    # padded steps of the target are ignored
    _, x2, target = _problem(2, True, False, True, "squared_error", None)
    target2 = target.copy()
    target2[1, 2:] = np.nan
    assert (nblstm.model_loss(model, x2, target, lengths=lengths, per_step=True)[0]
            == nblstm.model_loss(model, x2, target2, lengths=lengths, per_step=True)[0])


def test_float32_model_gives_float32_gradients():
    model, x, target = _problem(1, False, False, False, "squared_error", None, dtype=np.float32)
    loss, grad = nblstm.model_loss(model, x, target)
    assert isinstance(loss, float)
    assert {a.dtype for _, a in _tree.leaves(grad)} == {np.dtype(np.float32)}


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(loss="mse"), ValueError, "loss: expected one of 'squared_error', 'cross_entropy', got 'mse'"),
    (dict(alpha=-1.0), ValueError, "alpha: expected a finite number >= 0"),
    (dict(per_step=1), TypeError, "per_step: expected a bool"),
    (dict(target=np.zeros((3, 2))), ValueError, r"target: expected shape \(3, 3\), got shape \(3, 2\)"),
    (dict(loss="cross_entropy", target=np.zeros(3)), TypeError, "target: expected integer class indices"),
    (dict(loss="cross_entropy", target=np.array([0, 1, 3])), ValueError, r"class indices in \[0, K=3\)"),
    (dict(x=np.zeros((5, 2))), ValueError, "x: expected a 3-D array"),
])
def test_errors_name_the_argument(kwargs, error, match):
    model, x, target = _problem(1, False, False, False, "squared_error", None)
    args = dict(x=x, target=target)
    args.update({k: kwargs.pop(k) for k in ("x", "target") if k in kwargs})
    with pytest.raises(error, match=match):
        nblstm.model_loss(model, args["x"], args["target"], **kwargs)


def test_readout_that_does_not_fit_the_lstm_is_refused():
    model, x, target = _problem(1, True, False, False, "squared_error", None)
    bad = model._replace(readout=nblstm.Readout(np.zeros((3, 3)), np.zeros(3)))
    with pytest.raises(ValueError, match=r"model.readout.W: expected shape \(K, 6\)"):
        nblstm.model_predict(x, bad)


@pytest.mark.parametrize("case", [CASES[1], CASES[2], CASES[3], CASES[4]])
def test_loss_and_gradient_equal_torch_autograd(case):
    torch = pytest.importorskip("torch", reason="torch (the [test] extra) is the autograd oracle")
    num_layers, bidirectional, single, per_step, loss, lengths, alpha = case
    model, x, target = _problem(num_layers, bidirectional, single, per_step, loss, lengths)
    value, grad = nblstm.model_loss(model, x, target, lengths=lengths, loss=loss, per_step=per_step, alpha=alpha)

    B, T, I = x.shape
    stack = ((model.lstm,),) if single else model.lstm
    H, D, L = stack[0][0].hidden_size, len(stack[0]), len(stack)
    module = torch.nn.LSTM(I, H, num_layers=L, bidirectional=D == 2, batch_first=True).double()
    module.load_state_dict({k: torch.from_numpy(np.array(a)) for k, a in nblstm.to_torch_state_dict(stack).items()})
    W = torch.tensor(model.readout.W, requires_grad=True)
    b = torch.tensor(model.readout.b, requires_grad=True)
    n_lengths = np.full(B, T) if lengths is None else np.asarray(lengths)
    mask = torch.from_numpy(np.arange(T)[None] < n_lengths[:, None])
    # torch's packed sequences refuse length 0: run sequence by sequence, unpadded
    outs = []
    for i in range(B):
        n = int(n_lengths[i])
        if n == 0:
            feats = torch.zeros((T, D * H) if per_step else (D * H,), dtype=torch.float64)
        else:
            y, (h_n, _) = module(torch.from_numpy(x[i:i + 1, :n]))
            if per_step:
                feats = torch.cat([y[0], torch.zeros((T - n, D * H), dtype=torch.float64)])
            else:
                feats = torch.cat([h_n[(L - 1) * D + d, 0] for d in range(D)])
        outs.append(feats @ W.T + b)
    out = torch.stack(outs)
    if loss == "squared_error":
        err = out - torch.from_numpy(np.asarray(target, float))
        m = mask[..., None] if per_step else torch.ones((B, 1), dtype=torch.bool)
        n = int(mask.sum()) if per_step else B
        total = 0.5 * (err * m).pow(2).sum() / (n * out.shape[-1])
    else:
        log_p = torch.log_softmax(out, dim=-1)
        picked = torch.gather(log_p, -1, torch.from_numpy(np.where(mask.numpy(), target, 0) if per_step
                                                          else target)[..., None])[..., 0]
        if per_step:
            total = -(picked * mask).sum() / mask.sum()
        else:
            total = -picked.mean()
    weights = [p for name, p in module.named_parameters() if name.startswith("weight")] + [W]
    total = total + 0.5 * alpha / B * sum(p.pow(2).sum() for p in weights)
    total.backward()
    np.testing.assert_allclose(value, total.item(), rtol=1e-12)
    torch_grads = {name: p.grad.numpy() for name, p in module.named_parameters()}
    for l in range(L):
        for d in range(D):
            suffix = f"_l{l}" + ("_reverse" if d else "")
            g = grad.lstm if single else grad.lstm[l][d]
            np.testing.assert_allclose(g.W_ih, torch_grads["weight_ih" + suffix], rtol=1e-10, atol=1e-13)
            np.testing.assert_allclose(g.W_hh, torch_grads["weight_hh" + suffix], rtol=1e-10, atol=1e-13)
            np.testing.assert_allclose(g.b, torch_grads["bias_ih" + suffix], rtol=1e-10, atol=1e-13)
    np.testing.assert_allclose(grad.readout.W, W.grad.numpy(), rtol=1e-10, atol=1e-13)
    np.testing.assert_allclose(grad.readout.b, b.grad.numpy(), rtol=1e-10, atol=1e-13)
