"""A linear readout on the LSTM, two losses, and their gradients over one flat vector.

The building blocks of a fitted model (and of :mod:`nblstm.sklearn`): an
:class:`LSTMModel` is an LSTM stack and a :class:`Readout` (``W_out``,
``b_out``) of its last valid state or of every step; :func:`model_loss` gives
the loss and its gradient as a tree like the model, the chain rule taken
through :func:`nblstm.lstm_backward`'s ``dh_n`` (last state) or ``dy`` (every
step); :func:`loss_and_grad` is the same over one flat vector, the ``fun`` of
``scipy.optimize.minimize(..., jac=True)`` and of :func:`nblstm.minimize_adam`.
"""
from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np
from numpy.typing import ArrayLike, DTypeLike

from . import _validate as v
from ._api import lstm, lstm_backward, lstm_forward
from ._random import generator
from .params import LSTMParams, init_stack, ravel

__all__ = ["Readout", "LSTMModel", "LOSSES", "init_model", "model_predict", "model_loss", "loss_and_grad"]

#: the losses :func:`model_loss` knows
LOSSES = ("squared_error", "cross_entropy")


class Readout(NamedTuple):
    """A linear readout ``out = features @ W.T + b``.

    Attributes
    ----------
    W : ndarray, shape (K, D*H)
        Weights: K outputs from the D*H features of the top layer (both
        directions side by side, forward first, for D = 2).
    b : ndarray, shape (K,)
        Bias.

    See Also
    --------
    LSTMModel : The LSTM and its readout.
    init_model : Random ones.
    """

    W: np.ndarray
    b: np.ndarray


class LSTMModel(NamedTuple):
    """An LSTM and a linear readout: what :func:`model_loss` differentiates.

    Attributes
    ----------
    lstm : LSTMParams or tuple of tuples of LSTMParams
        One layer's weights or a stack ``stack[l][d]`` (:func:`nblstm.init_stack`).
    readout : Readout
        ``W`` (K, D*H), ``b`` (K,).

    See Also
    --------
    init_model : Random weights.
    model_predict : The outputs.
    model_loss : The loss and its gradient, an LSTMModel of gradients.
    nblstm.ravel : One flat vector of all of its weights.
    """

    lstm: Any
    readout: Readout


def init_model(input_size: int, hidden_size: int, n_outputs: int, *, num_layers: int = 1,
               bidirectional: bool = False, dtype: DTypeLike = np.float64, seed=None,
               forget_bias: float = 1.0) -> LSTMModel:
    """Random weights for an LSTM stack and a linear readout of its top layer.

    The stack is drawn by :func:`nblstm.init_stack`, then the readout, as
    ``torch.nn.Linear`` draws it, from U(-1/sqrt(D*H), 1/sqrt(D*H)), all from
    one ``numpy.random.Generator`` made from ``seed``.

    Parameters
    ----------
    input_size : int
        I, features per time step.
    hidden_size : int
        H, hidden size of every layer.
    n_outputs : int
        K, outputs of the readout (classes for ``"cross_entropy"``).
    num_layers : int
        L, layers of the stack.
    bidirectional : bool
        D = 2 directions per layer if True, else 1.
    dtype : {np.float64, np.float32}
        dtype of every array.
    seed : None, int or numpy.random.Generator
        Source of randomness.
    forget_bias : float
        Added to the forget-gate bias of every layer (see :func:`nblstm.init_params`).

    Returns
    -------
    LSTMModel
        ``lstm``: a stack, tuple of L tuples of D LSTMParams; ``readout``:
        ``W`` (K, D*H), ``b`` (K,).

    Raises
    ------
    TypeError
        A size is not an integer; ``dtype`` is not float32 or float64.
    ValueError
        A size below 1; a negative ``seed``.

    See Also
    --------
    nblstm.init_stack : The LSTM part.
    model_loss : Trains it.

    References
    ----------
    .. [1] PyTorch, ``torch.nn.Linear`` (the readout's initial draw),
       https://pytorch.org/docs/stable/generated/torch.nn.Linear.html

    Examples
    --------
    >>> import nblstm
    >>> model = nblstm.init_model(3, 8, 2, bidirectional=True, seed=0)
    >>> model.readout.W.shape, model.lstm[0][1].W_hh.shape
    ((2, 16), (32, 8))
    """
    rng = generator(seed)
    stack = init_stack(input_size, hidden_size, num_layers, bidirectional=bidirectional, dtype=dtype,
                       seed=rng, forget_bias=forget_bias)
    if isinstance(n_outputs, bool) or not isinstance(n_outputs, (int, np.integer)):
        v.fail("n_outputs", "a positive integer", repr(n_outputs), TypeError)
    if n_outputs < 1:
        v.fail("n_outputs", "a positive integer", repr(n_outputs))
    features = (2 if bidirectional else 1) * hidden_size
    bound = 1.0 / np.sqrt(features)
    W = rng.uniform(-bound, bound, (n_outputs, features)).astype(dtype)
    b = rng.uniform(-bound, bound, n_outputs).astype(dtype)
    return LSTMModel(stack, Readout(W, b))


# --------------------------------------------------------------------------- checks

def _check_model(model):
    """(single, L, D, H, K) of a model; TypeError/ValueError for what does not fit."""
    if not (isinstance(model, tuple) and len(model) == 2):
        v.fail("model", "LSTMModel(lstm, readout)", type(model).__name__, TypeError)
    params, readout = model
    checked = v.stack(params, _Host)
    if not (isinstance(readout, tuple) and len(readout) == 2):
        v.fail("model.readout", "Readout(W, b)", type(readout).__name__, TypeError)
    W, b = (v.array(f"model.readout.{f}", a, _Host) for f, a in zip(Readout._fields, readout))
    features = checked.num_directions * checked.hidden_size
    if W.ndim != 2 or W.shape[1] != features or W.shape[0] == 0:
        v.fail("model.readout.W", f"shape (K, {features}) (D*H of the LSTM's top layer), K >= 1",
               f"shape {W.shape}")
    if b.shape != (W.shape[0],):
        v.fail("model.readout.b", f"shape ({W.shape[0]},) to match W", f"shape {b.shape}")
    return checked.single, len(checked.layers), checked.num_directions, checked.hidden_size, W.shape[0]


class _Host:
    """The host's array functions that :mod:`nblstm._validate` asks a backend for."""

    asarray = staticmethod(np.asarray)


def _check_x(x):
    x = v.array("x", x, _Host)
    if x.ndim != 3:
        v.fail("x", "a 3-D array (B, T, I)", f"{x.ndim}-D array of shape {x.shape}")
    return x


def _check_options(loss, per_step, alpha):
    if loss not in LOSSES:
        v.fail("loss", f"one of {', '.join(map(repr, LOSSES))}", repr(loss))
    per_step = v.flag("per_step", per_step)
    try:
        alpha = float(alpha)
    except (TypeError, ValueError):
        v.fail("alpha", "a number >= 0", repr(alpha), TypeError)
    if not (alpha >= 0 and np.isfinite(alpha)):
        v.fail("alpha", "a finite number >= 0", repr(alpha))
    return per_step, alpha


def _valid_mask(lengths, B, T):
    """(B, T) bool: the steps before each sequence's end."""
    if lengths is None:
        return np.ones((B, T), bool)
    return np.arange(T)[None, :] < np.asarray(lengths).reshape(B, 1)


def _check_target(target, loss, per_step, B, T, K, mask):
    """The target as (B, K) / (B, T, K) floats (squared error) or (B,) / (B, T) int64 labels."""
    target = np.asarray(target)
    lead = (B, T) if per_step else (B,)
    where = "(B, T)" if per_step else "(B,)"
    if loss == "cross_entropy":
        if target.shape != lead:
            v.fail("target", f"class indices of shape {where} = {lead}", f"shape {target.shape}")
        if target.dtype.kind not in "iu":
            v.fail("target", "integer class indices", f"dtype {target.dtype}", TypeError)
        labels = np.where(mask, target, 0) if per_step else target
        if labels.size and (labels.min() < 0 or labels.max() >= K):
            v.fail("target", f"class indices in [0, K={K})", f"values in [{labels.min()}, {labels.max()}]")
        return labels.astype(np.int64)
    v.float_dtype("target", target.dtype)
    if target.shape == lead and K == 1:
        target = target[..., None]
    if target.shape != lead + (K,):
        v.fail("target", f"shape {lead + (K,)}" + (f" or {lead}" if K == 1 else ""), f"shape {target.shape}")
    # what padded steps hold (NaN, say) must reach neither the loss nor the gradient
    return np.where(mask[..., None], target, 0) if per_step else target


# --------------------------------------------------------------------------- forward, loss, gradient

def _features(h_n, single, L, D, H):
    """The top layer's last valid state, (B, D*H): [forward | reverse] for D = 2."""
    if single:
        return h_n
    return np.concatenate([h_n[(L - 1) * D + d] for d in range(D)], axis=1)


def model_predict(x: ArrayLike, model: LSTMModel, *, lengths: ArrayLike | None = None,
                  per_step: bool = False) -> np.ndarray:
    """The readout's outputs: of each sequence's last valid state, or of every step.

    .. math::

        \\text{out} = W_{out}\\, h + b_{out}

    where :math:`h` is the top layer's state after each sequence's last valid
    step (``per_step=False``; for two directions the forward state there and
    the reverse state at step 0, side by side), or its output at every step
    (``per_step=True``).

    Parameters
    ----------
    x : array_like, shape (B, T, I)
        Input sequences, batch first.
    model : LSTMModel
        The LSTM and its readout (:func:`init_model`).
    lengths : array_like of int, shape (B,), optional
        Valid steps of each sequence (see :func:`nblstm.lstm`).
    per_step : bool
        One output per step instead of one per sequence.

    Returns
    -------
    ndarray, shape (B, K), or (B, T, K) if ``per_step``
        The outputs (logits for ``"cross_entropy"``), in the compute dtype of
        the LSTM (:func:`nblstm.lstm`'s dtype rule); exactly ``b_out`` at padded
        steps.

    Raises
    ------
    TypeError
        ``model`` is not an LSTMModel of real arrays; ``per_step`` not a bool.
    ValueError
        ``x`` is not 3-D; the readout's shape does not fit the LSTM; and every
        error of :func:`nblstm.lstm`.

    See Also
    --------
    model_loss : The loss and its gradient.

    References
    ----------
    .. [1] S. Hochreiter and J. Schmidhuber, "Long short-term memory",
       Neural Computation 9(8), pp. 1735-1780, 1997.

    Examples
    --------
    >>> import numpy as np, nblstm
    >>> model = nblstm.init_model(3, 8, 2, seed=0)
    >>> nblstm.model_predict(np.ones((4, 5, 3)), model).shape
    (4, 2)
    """
    single, L, D, H, _ = _check_model(model)
    per_step = v.flag("per_step", per_step)
    x = _check_x(x)
    y, (h_n, _) = lstm(x, model.lstm, lengths=lengths)
    W, b = model.readout
    feats = y if per_step else _features(h_n, single, L, D, H)
    return feats @ np.asarray(W, feats.dtype).T + np.asarray(b, feats.dtype)


def model_loss(model: LSTMModel, x: ArrayLike, target: ArrayLike, *, lengths: ArrayLike | None = None,
               loss: str = "squared_error", per_step: bool = False,
               alpha: float = 0.0) -> tuple[float, LSTMModel]:
    """The loss of a model's outputs against a target, and its gradient.

    With ``out`` the outputs of :func:`model_predict` and N the number of
    scored rows (B sequences, or the sum of the valid steps of all sequences
    if ``per_step``):

    .. math::

        \\text{squared error: } L &= \\frac{1}{2 N K} \\sum_{n,k} (\\text{out}_{nk} - y_{nk})^2 \\\\
        \\text{cross-entropy: } L &= -\\frac{1}{N} \\sum_n \\log \\operatorname{softmax}(\\text{out}_n)_{y_n} \\\\
        &+ \\frac{\\alpha}{2B} \\Big( \\sum \\|W_{ih}\\|^2 + \\|W_{hh}\\|^2 + \\|W_{out}\\|^2 \\Big)

    the L2 term over every weight matrix, not the biases, as in
    ``sklearn.neural_network.MLPRegressor``. The gradient of the readout is
    taken by hand, that of the LSTM by :func:`nblstm.lstm_backward`, fed
    :math:`\\partial L / \\partial h_n = (\\partial L / \\partial \\text{out}) W_{out}`
    at the top layer (``dh_n``) or the same at every step (``dy``).

    Parameters
    ----------
    model : LSTMModel
        The LSTM and its readout; its arrays' dtype sets the compute dtype.
    x : array_like, shape (B, T, I)
        Input sequences, batch first.
    target : array_like
        ``"squared_error"``: real, shape (B, K) (or (B,) for K = 1), or
        (B, T, K) (or (B, T)) if ``per_step``. ``"cross_entropy"``: integer
        class indices in [0, K), shape (B,), or (B, T) if ``per_step``. Values
        at padded steps are ignored.
    lengths : array_like of int, shape (B,), optional
        Valid steps of each sequence; padded steps have no loss.
    loss : {"squared_error", "cross_entropy"}
        The loss (cross-entropy of the softmax of the K outputs).
    per_step : bool
        Score every valid step instead of each sequence's last state.
    alpha : float
        L2 penalty, >= 0.

    Returns
    -------
    loss : float
        The loss L.
    grad : LSTMModel
        The gradient dL/d(weights), nested like ``model`` (a stack's gradient for a stack,
        LSTMParams for LSTMParams), in the compute dtype.

    Raises
    ------
    TypeError
        A target of the wrong kind (real where class indices are needed); a
        model that is not an LSTMModel of real arrays; ``alpha`` not a number.
    ValueError
        An unknown ``loss``; a target of the wrong shape or class indices out
        of range; ``alpha`` negative; and every error of :func:`nblstm.lstm`.

    See Also
    --------
    loss_and_grad : The same over one flat vector, for ``scipy.optimize``.
    nblstm.testing.check_grad : Checks it by central differences.

    References
    ----------
    .. [1] P. J. Werbos, "Backpropagation through time: what it does and how
       to do it", Proceedings of the IEEE 78(10), pp. 1550-1560, 1990.
    .. [2] C. M. Bishop, "Pattern Recognition and Machine Learning",
       Springer, 2006, sections 4.3.4 (softmax cross-entropy and its
       gradient) and 5.5.1 (weight decay).

    Examples
    --------
    >>> import numpy as np, nblstm
    >>> model = nblstm.init_model(3, 8, 1, seed=0)
    >>> x = np.random.default_rng(0).normal(size=(4, 5, 3))
    >>> loss, grad = nblstm.model_loss(model, x, np.zeros(4))
    >>> grad.readout.W.shape, grad.lstm[0][0].W_ih.shape
    ((1, 8), (32, 3))
    """
    single, L, D, H, K = _check_model(model)
    per_step, alpha = _check_options(loss, per_step, alpha)
    x = _check_x(x)
    B, T = x.shape[:2]
    y, (h_n, _), cache = lstm_forward(x, model.lstm, lengths=lengths)
    dtype = y.dtype
    W, b = (np.asarray(a, dtype) for a in model.readout)
    mask = _valid_mask(lengths, B, T)
    target = _check_target(target, loss, per_step, B, T, K, mask)
    feats = y if per_step else _features(h_n, single, L, D, H)
    out = feats @ W.T + b                                           # (B, K) or (B, T, K)
    weight = mask[..., None].astype(dtype) if per_step else np.ones((B, 1), dtype)
    n = max(int(mask.sum()) if per_step else B, 1)
    if loss == "squared_error":
        err = (out - np.asarray(target, dtype)) * weight            # 0 at padded steps
        value = 0.5 * float(np.sum(err * err)) / (n * K)
        dout = err / (n * K)                                        # dL/dout
    else:
        shifted = out - out.max(axis=-1, keepdims=True)
        log_p = shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))
        picked = np.take_along_axis(log_p, target[..., None], axis=-1)
        value = -float(np.sum(picked * weight)) / n
        dout = np.exp(log_p)                                        # softmax - one_hot
        np.put_along_axis(dout, target[..., None], np.take_along_axis(dout, target[..., None], -1) - 1, -1)
        dout = dout * weight / n
    dfeat = dout @ W                                                # dL/d(features)
    dW = dout.reshape(-1, K).T @ feats.reshape(-1, D * H)
    db = dout.reshape(-1, K).sum(axis=0)
    if per_step:
        grads = lstm_backward(cache, dy=dfeat)
    elif single:
        grads = lstm_backward(cache, dh_n=dfeat)
    else:
        dh_n = np.zeros((L * D, B, H), dtype)
        for d in range(D):
            dh_n[(L - 1) * D + d] = dfeat[:, d * H:(d + 1) * H]
        grads = lstm_backward(cache, dh_n=dh_n)
    dparams = grads.dparams
    if alpha:
        scale = alpha / max(B, 1)
        value += 0.5 * scale * (float(np.sum(W * W)) + sum(
            float(np.sum(np.square(a))) for p in _layers(model.lstm, single) for a in (p.W_ih, p.W_hh)))
        dW = dW + scale * W
        dparams = _add_decay(model.lstm, dparams, scale, single)
    return value, LSTMModel(dparams, Readout(dW, db))


def _layers(params, single):
    return [LSTMParams(*params)] if single else [LSTMParams(*p) for layer in params for p in layer]


def _add_decay(params, dparams, scale, single):
    def one(p, g):
        return LSTMParams(g.W_ih + scale * np.asarray(p[0], g.W_ih.dtype),
                          g.W_hh + scale * np.asarray(p[1], g.W_hh.dtype), g.b)
    if single:
        return one(params, dparams)
    return tuple(tuple(one(p, g) for p, g in zip(layer, glayer)) for layer, glayer in zip(params, dparams))


def loss_and_grad(theta: ArrayLike, unravel, x: ArrayLike, target: ArrayLike, lengths: ArrayLike | None = None,
                  loss: str = "squared_error", per_step: bool = False,
                  alpha: float = 0.0) -> tuple[float, np.ndarray]:
    """:func:`model_loss` over one flat parameter vector: the ``fun`` of ``minimize(..., jac=True)``.

    ``theta, unravel = nblstm.ravel(model)`` flattens an :class:`LSTMModel`;
    ``scipy.optimize.minimize(loss_and_grad, theta, args=(unravel, x, target),
    jac=True)`` fits it. The arguments after ``theta`` are positional so that
    ``args`` can carry them all.

    Parameters
    ----------
    theta : array_like, shape (N,)
        The weights, as :func:`nblstm.ravel` of an LSTMModel flattens them.
    unravel : callable
        The second result of that :func:`nblstm.ravel`.
    x : array_like, shape (B, T, I)
        Input sequences.
    target : array_like
        As for :func:`model_loss`.
    lengths : array_like of int, shape (B,), optional
        Valid steps of each sequence.
    loss : {"squared_error", "cross_entropy"}
        As for :func:`model_loss`.
    per_step : bool
        As for :func:`model_loss`.
    alpha : float
        L2 penalty, as for :func:`model_loss`.

    Returns
    -------
    loss : float
        The loss at ``theta``.
    grad : ndarray, shape (N,)
        Its gradient, raveled like ``theta``, in the model's dtype.

    Raises
    ------
    ValueError
        ``theta`` does not fit ``unravel``; and the errors of :func:`model_loss`.
    TypeError
        The errors of :func:`model_loss`.

    See Also
    --------
    model_loss : The same on trees.
    minimize_adam : Adam on this ``fun``, over minibatches.

    References
    ----------
    .. [1] SciPy, ``scipy.optimize.minimize`` (``jac=True``: ``fun`` returns
       the value and the gradient),
       https://docs.scipy.org/doc/scipy/reference/generated/scipy.optimize.minimize.html

    Examples
    --------
    >>> import numpy as np, nblstm
    >>> from scipy import optimize
    >>> x = np.random.default_rng(0).normal(size=(16, 10, 1))
    >>> target = x.sum(axis=(1, 2)) / 4
    >>> theta0, unravel = nblstm.ravel(nblstm.init_model(1, 4, 1, seed=0))
    >>> result = optimize.minimize(nblstm.loss_and_grad, theta0, args=(unravel, x, target), jac=True,
    ...                            method="L-BFGS-B", options=dict(maxiter=50))
    >>> bool(result.fun < 0.1 * 0.5 * np.var(target))
    True
    """
    value, grad = model_loss(unravel(theta), x, target, lengths=lengths, loss=loss, per_step=per_step,
                             alpha=alpha)
    return value, ravel(grad)[0]
