"""Weights in and out of PyTorch, Keras and ONNX.

Pure NumPy: torch, keras and onnx are never imported here. Each converter
copies (the results never share memory with their input) and checks every
shape, raising ``ValueError("<argument>: expected <...>, got <...>")``.

Gate order is where these formats differ, and a wrong order is a silent bug
(the LSTM still runs, just as a different function):

==========  ==========================  ============================  ===========
format      weights                     bias                          gate order
==========  ==========================  ============================  ===========
nblstm      W_ih (4H, I), W_hh (4H, H)  b (4H,)                       i, f, g, o
PyTorch     weight_ih_l{k}, weight_hh   bias_ih_l{k} + bias_hh_l{k}   i, f, g, o
Keras       kernel (I, 4H) = W_ihᵀ,     bias (4H,)                    i, f, c, o
            recurrent_kernel (H, 4H)
ONNX LSTM   W (D, 4H, I), R (D, 4H, H)  B (D, 8H) = [Wb | Rb]         i, o, f, c
==========  ==========================  ============================  ===========

(g and c both name the cell candidate tanh(z_g).)
"""
from __future__ import annotations

import re

import numpy as np
from numpy.typing import ArrayLike

from . import _validate
from .params import LSTMParams

__all__ = ["from_torch", "to_torch_state_dict", "from_keras", "to_keras", "from_onnx", "to_onnx"]

# ONNX stacks the gate blocks i, o, f, c; nblstm i, f, g(=c), o.
_ONNX_FROM_NBLSTM = (0, 3, 1, 2)   # onnx block k  = nblstm block _ONNX_FROM_NBLSTM[k]
_NBLSTM_FROM_ONNX = (0, 2, 3, 1)   # nblstm block k = onnx block _NBLSTM_FROM_ONNX[k]


# ---------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------

def _array(value, name):
    """A fresh NumPy copy of an array, tensor (torch, via ``.detach().cpu()``) or array-like.

    16-bit floats (float16, torch's bfloat16) come back as float32, exactly: the
    LSTM computes them in float32, and a bias sum of two of them (torch's
    ``bias_ih + bias_hh``, ONNX's ``Wb + Rb``) is then rounded once, to float32,
    not again to 16 bits (a float16 sum was 1.2e-4 off the exact one).
    """
    if hasattr(value, "detach") and hasattr(value, "cpu"):         # a torch.Tensor
        value = value.detach().cpu()
        if str(getattr(value, "dtype", "")) == "torch.bfloat16":
            value = value.float()
        value = value.numpy()
    _validate.not_masked(name, value)
    a = np.array(value, copy=True)
    if a.dtype.kind not in "biuf":
        raise TypeError(f"{name}: expected a real numeric array, got dtype {a.dtype}")
    if a.dtype == np.float16:
        a = a.astype(np.float32)
    return a


def _check_shape(a, name, expected):
    if a.shape != tuple(expected):
        raise ValueError(f"{name}: expected shape {tuple(expected)}, got shape {a.shape}")


def _reorder(a, order, axis=0):
    """Permute the four H-wide gate blocks of ``a`` along ``axis``."""
    blocks = np.split(a, 4, axis=axis)
    return np.ascontiguousarray(np.concatenate([blocks[k] for k in order], axis=axis))


class _HostArrays:
    """The one backend function :mod:`nblstm._validate` needs, for plain NumPy arrays."""

    asarray = staticmethod(np.asarray)


def _check_params(p, name="params"):
    """One LSTMParams, shapes checked by :mod:`nblstm._validate`; returns (params, I, H)."""
    (W_ih, W_hh, b), (I, H) = _validate.layer_params(name, p, _HostArrays)
    return LSTMParams(W_ih, W_hh, b), I, H


def _as_layers(params):
    """LSTMParams or a stack -> (list of layers of LSTMParams, was_single), checked as the API does."""
    stack = _validate.stack(params, _HostArrays)
    return [[LSTMParams(*p) for p in layer] for layer in stack.layers], stack.single


def _pack(layers):
    """LSTMParams for one unidirectional layer, else a stack (tuple of tuples)."""
    if len(layers) == 1 and len(layers[0]) == 1:
        return layers[0][0]
    return tuple(tuple(layer) for layer in layers)


# ---------------------------------------------------------------------------
# PyTorch
# ---------------------------------------------------------------------------

_TORCH_KEY = re.compile(r"^(weight_ih|weight_hh|bias_ih|bias_hh|weight_hr)_l(\d+)(_reverse)?$")
#: an nn.LSTM's key under some prefix (``lstm.weight_ih_l0`` in a model's state_dict)
_PREFIXED_TORCH_KEY = re.compile(r"^(.+?)" + _TORCH_KEY.pattern[1:])


def _prefix_hint(keys):
    """Where ``keys`` hold nn.LSTM keys under prefixes: a sentence naming them, else ""."""
    prefixes = sorted({m.group(1) for m in map(_PREFIXED_TORCH_KEY.match, map(str, keys)) if m})
    if not prefixes:
        return ""
    if len(prefixes) == 1:
        return (f"; the keys hold an nn.LSTM under the prefix {prefixes[0]!r}: "
                f"pass from_torch(state_dict, prefix={prefixes[0]!r})")
    return (f"; the keys hold nn.LSTM weights under the prefixes {prefixes}: "
            f"pass one as from_torch(state_dict, prefix=...)")


def from_torch(module_or_state_dict, *, prefix: str = "") -> LSTMParams | tuple[tuple[LSTMParams, ...], ...]:
    """Weights of a ``torch.nn.LSTM`` as nblstm parameters.

    Parameters
    ----------
    module_or_state_dict : torch.nn.LSTM or mapping
        The module, or its ``state_dict()`` (values may be tensors or NumPy
        arrays; torch is not needed for arrays). Keys ``weight_ih_l{k}``
        (4H, I or D*H), ``weight_hh_l{k}`` (4H, H), optional ``bias_ih_l{k}``
        and ``bias_hh_l{k}`` (4H,), each with a ``_reverse`` twin for a
        bidirectional module. Modules with ``proj_size > 0`` (``weight_hr_l{k}``)
        are not supported.
    prefix : str
        Where the LSTM's keys start with a prefix, as in the ``state_dict()``
        of a model that holds the LSTM as ``self.lstm`` (``"lstm."``): only
        the keys that start with it are read, without it; the model's other
        keys are ignored.

    Returns
    -------
    LSTMParams or tuple of tuples of LSTMParams
        LSTMParams for a one-layer unidirectional module, otherwise a stack
        ``stack[l][d]`` (direction 0 forward, 1 reverse), with
        ``b = bias_ih + bias_hh`` (zeros for ``bias=False``). Fresh arrays of
        the module's dtype; float32 for a float16 or bfloat16 module (each
        weight exactly, ``b`` the sum rounded once, to float32).

    Raises
    ------
    ValueError
        A module with ``proj_size > 0``, missing or unknown keys (where the
        keys hold an LSTM under a prefix, the message names it), no key with
        the given ``prefix``, or inconsistent shapes (the message names the
        key).
    TypeError
        A value that is not a real numeric array or tensor; a ``prefix`` that
        is not a str.

    See Also
    --------
    to_torch_state_dict : The other way.
    lstm : Runs the weights; its results match the module's to float64 round-off.

    References
    ----------
    .. [1] PyTorch, ``torch.nn.LSTM`` (parameter names, shapes and gate order),
       https://pytorch.org/docs/stable/generated/torch.nn.LSTM.html
    """
    obj = module_or_state_dict
    if hasattr(obj, "state_dict") and callable(obj.state_dict):
        if getattr(obj, "proj_size", 0):
            raise ValueError(f"module: expected an nn.LSTM with proj_size=0, got proj_size={obj.proj_size}")
        obj = obj.state_dict()
    if not hasattr(obj, "keys"):
        raise ValueError(f"module_or_state_dict: expected a torch.nn.LSTM or its state_dict, "
                         f"got {type(obj).__name__}")
    if not isinstance(prefix, str):
        raise TypeError(f"prefix: expected a str, got {type(prefix).__name__}")
    all_keys = list(obj.keys())
    if prefix:
        obj = {str(key)[len(prefix):]: obj[key] for key in all_keys if str(key).startswith(prefix)}
        if not obj:
            raise ValueError(f"state_dict: expected keys starting with prefix {prefix!r}, got none"
                             f"{_prefix_hint(all_keys)}")
    found = {}
    for key in obj.keys():
        m = _TORCH_KEY.match(str(key))
        if m is None:
            raise ValueError(f"state_dict: expected keys like '{prefix}weight_ih_l0' of an nn.LSTM, "
                             f"got {prefix + str(key)!r}{_prefix_hint(all_keys)}")
        kind, layer, rev = m.group(1), int(m.group(2)), bool(m.group(3))
        if kind == "weight_hr":
            raise ValueError(f"state_dict: expected an nn.LSTM without proj_size, got {key!r}")
        found[(kind, layer, rev)] = _array(obj[key], key)
    if not found:
        raise ValueError("state_dict: expected the weights of an nn.LSTM, got no keys")
    L = 1 + max(layer for _, layer, _ in found)
    D = 2 if any(rev for _, _, rev in found) else 1
    has_bias = any(kind.startswith("bias") for kind, _, _ in found)
    layers = []
    for layer in range(L):
        directions = []
        for d in range(D):
            suffix = f"_l{layer}" + ("_reverse" if d else "")
            needed = ["weight_ih", "weight_hh"] + (["bias_ih", "bias_hh"] if has_bias else [])
            for kind in needed:
                if (kind, layer, bool(d)) not in found:
                    raise ValueError(f"state_dict: expected key {kind + suffix!r}, got keys {sorted(obj.keys())}")
            W_ih = found[("weight_ih", layer, bool(d))]
            W_hh = found[("weight_hh", layer, bool(d))]
            if W_hh.ndim != 2 or W_hh.shape[0] != 4 * W_hh.shape[1]:
                raise ValueError(f"weight_hh{suffix}: expected shape (4*H, H), got shape {W_hh.shape}")
            H = W_hh.shape[1]
            if layers:
                _check_shape(W_hh, f"weight_hh{suffix}", layers[0][0].W_hh.shape)
            if layer > 0:
                _check_shape(W_ih, f"weight_ih{suffix}", (4 * H, D * H))
            elif W_ih.ndim != 2 or W_ih.shape[0] != 4 * H:
                raise ValueError(f"weight_ih{suffix}: expected shape ({4 * H}, I), got shape {W_ih.shape}")
            elif d == 1:
                _check_shape(W_ih, f"weight_ih{suffix}", directions[0].W_ih.shape)
            if has_bias:
                b_ih = found[("bias_ih", layer, bool(d))]
                b_hh = found[("bias_hh", layer, bool(d))]
                _check_shape(b_ih, f"bias_ih{suffix}", (4 * H,))
                _check_shape(b_hh, f"bias_hh{suffix}", (4 * H,))
                b = b_ih + b_hh
            else:
                b = np.zeros(4 * H, W_hh.dtype)
            directions.append(LSTMParams(W_ih, W_hh, b))
        layers.append(directions)
    return _pack(layers)


def to_torch_state_dict(params, *, bias: bool = True) -> dict[str, np.ndarray]:
    """nblstm parameters as a ``torch.nn.LSTM`` state dict of NumPy arrays.

    Parameters
    ----------
    params : LSTMParams or tuple of tuples of LSTMParams
        One layer, or a stack ``stack[l][d]``.
    bias : bool
        Whether the torch module has biases (``nn.LSTM(..., bias=False)``
        has none, and its ``load_state_dict`` refuses bias keys).

    Returns
    -------
    dict of str to ndarray
        Torch's keys in torch's order: per layer ``k`` and direction (forward,
        then ``_reverse``) ``weight_ih_l{k}`` (4H, I), ``weight_hh_l{k}``
        (4H, H) and, with ``bias``, ``bias_ih_l{k}`` = b and ``bias_hh_l{k}`` = 0
        (4H,). Load it into ``nn.LSTM(I, H, num_layers=L, bidirectional=D == 2,
        bias=bias)`` with
        ``module.load_state_dict({k: torch.from_numpy(v) for k, v in sd.items()})``.

    Raises
    ------
    ValueError
        With ``bias=False``, if any layer's ``b`` is not all zeros (the module
        would compute another function).
    TypeError
        If ``bias`` is not a bool.

    See Also
    --------
    from_torch : The other way.

    References
    ----------
    .. [1] PyTorch, ``torch.nn.LSTM`` (parameter names, shapes and gate order),
       https://pytorch.org/docs/stable/generated/torch.nn.LSTM.html
    """
    bias = _validate.flag("bias", bias)
    layers, single = _as_layers(params)
    sd = {}
    for k, layer in enumerate(layers):
        for d, p in enumerate(layer):
            suffix = f"_l{k}" + ("_reverse" if d else "")
            sd["weight_ih" + suffix] = np.array(p.W_ih, copy=True)
            sd["weight_hh" + suffix] = np.array(p.W_hh, copy=True)
            if bias:
                sd["bias_ih" + suffix] = np.array(p.b, copy=True)
                sd["bias_hh" + suffix] = np.zeros_like(p.b)
            elif np.any(np.asarray(p.b) != 0):
                name = "params.b" if single else f"params[{k}][{d}].b"
                raise ValueError(f"{name}: expected all zeros with bias=False (the torch module "
                                 f"has no bias), got {np.count_nonzero(p.b)} nonzero values")
    return sd


# ---------------------------------------------------------------------------
# Keras
# ---------------------------------------------------------------------------

#: Keras LSTM settings that change the function computed, and the value nblstm computes
_KERAS_FUNCTION = {"activation": "tanh", "recurrent_activation": "sigmoid", "go_backwards": False}


def _keras_layer_weights(layer):
    """The weight list of a Keras LSTM layer object, after checking its config (duck-typed)."""
    config = layer.get_config()
    for option, expected in _KERAS_FUNCTION.items():
        got = config.get(option, expected)
        if got != expected:
            hint = " (run the sequence reversed instead: nblstm's reverse=True)" \
                if option == "go_backwards" else ""
            raise ValueError(f"layer.{option}: expected {expected!r}, the function nblstm "
                             f"computes, got {got!r}{hint}")
    weights = list(layer.get_weights())
    if not weights:
        raise ValueError("layer: expected a built Keras LSTM layer with weights, got one with none "
                         "(call it on an input or build it first)")
    expected_count = 3 if config.get("use_bias", True) else 2
    if len(weights) != expected_count:
        raise ValueError(f"layer: expected {expected_count} weight arrays (kernel, recurrent_kernel"
                         f"{', bias' if expected_count == 3 else ''}), got {len(weights)}")
    return weights


def _keras_lstm_of_model(model):
    """The one LSTM layer of a Keras model (anything with ``layers``), else ValueError saying which to pass."""
    layers = list(model.layers)
    found = [i for i, layer in enumerate(layers) if type(layer).__name__ == "LSTM"]
    if len(found) == 1:
        return layers[found[0]]
    where = ", ".join(f"model.layers[{i}]" for i in found) if found else "none"
    raise ValueError(f"weights: expected a Keras LSTM layer or a model with exactly one, got a "
                     f"{type(model).__name__} with {len(found)} LSTM layers ({where}): pass the "
                     f"layer, as from_keras(model.layers[i])")


def from_keras(weights) -> LSTMParams:
    """Weights of a Keras ``LSTM`` layer as LSTMParams.

    Parameters
    ----------
    weights : Keras LSTM layer or model, or sequence of 2 or 3 arrays
        The layer object itself (anything with Keras's ``get_config`` and
        ``get_weights``; keras is not imported), whose config is checked, a
        model (anything with ``layers``) that holds exactly one ``LSTM``
        layer among its layers, read as that layer, or
        its ``layer.get_weights()``: ``kernel`` (I, 4H), ``recurrent_kernel``
        (H, 4H) and, unless the layer has ``use_bias=False``, ``bias`` (4H,);
        gate blocks i, f, c, o (the same order as nblstm). A weight list
        cannot be checked: its layer must use the default activations (tanh,
        sigmoid).

    Returns
    -------
    LSTMParams
        ``W_ih = kernel.T`` (4H, I), ``W_hh = recurrent_kernel.T`` (4H, H),
        ``b = bias`` (4H,), fresh C-contiguous arrays (float32 for float16
        weights).

    Raises
    ------
    ValueError
        For a layer whose ``activation`` is not tanh, ``recurrent_activation``
        not sigmoid, or ``go_backwards`` set (another function), an unbuilt
        layer, a model with no LSTM layer or several (the message names
        them: pass one, ``model.layers[i]``), or weights of the wrong number
        or shapes.
    TypeError
        For weights that are not real numeric arrays (or are masked).

    See Also
    --------
    to_keras : The other way.

    References
    ----------
    .. [1] Keras, ``keras.layers.LSTM`` (``kernel``, ``recurrent_kernel``,
       ``bias``; gate order i, f, c, o), https://keras.io/api/layers/recurrent_layers/lstm/
    """
    if hasattr(weights, "layers") and hasattr(weights, "get_weights"):
        weights = _keras_lstm_of_model(weights)
    if hasattr(weights, "get_weights") and hasattr(weights, "get_config"):
        weights = _keras_layer_weights(weights)
    if not isinstance(weights, (list, tuple)) or len(weights) not in (2, 3):
        got = f"{type(weights).__name__} of length {len(weights)}" if hasattr(weights, "__len__") \
            else type(weights).__name__
        raise ValueError(f"weights: expected [kernel, recurrent_kernel, bias] or "
                         f"[kernel, recurrent_kernel] or a Keras LSTM layer, got {got}")
    kernel = _array(weights[0], "kernel")
    recurrent = _array(weights[1], "recurrent_kernel")
    if recurrent.ndim != 2 or recurrent.shape[1] != 4 * recurrent.shape[0]:
        raise ValueError(f"recurrent_kernel: expected shape (H, 4*H), got shape {recurrent.shape}")
    H = recurrent.shape[0]
    if kernel.ndim != 2 or kernel.shape[1] != 4 * H:
        raise ValueError(f"kernel: expected shape (I, {4 * H}), got shape {kernel.shape}")
    if len(weights) == 3:
        bias = _array(weights[2], "bias")
        _check_shape(bias, "bias", (4 * H,))
    else:
        bias = np.zeros(4 * H, recurrent.dtype)
    return LSTMParams(np.ascontiguousarray(kernel.T), np.ascontiguousarray(recurrent.T), bias)


def to_keras(params: LSTMParams) -> list[np.ndarray]:
    """LSTMParams as the weight list of a Keras ``LSTM`` layer.

    Parameters
    ----------
    params : LSTMParams
        ``W_ih`` (4H, I), ``W_hh`` (4H, H), ``b`` (4H,).

    Returns
    -------
    list of ndarray
        ``[kernel (I, 4H), recurrent_kernel (H, 4H), bias (4H,)]``, ready for
        ``keras.layers.LSTM(H).set_weights(...)`` (after the layer is built
        with input size I).

    Raises
    ------
    TypeError
        ``params`` is not one LSTMParams, or holds a non-numeric array.
    ValueError
        Shapes that do not fit together (checked as :func:`lstm` checks them).

    See Also
    --------
    from_keras : The other way.

    References
    ----------
    .. [1] Keras, ``keras.layers.LSTM`` (``kernel``, ``recurrent_kernel``,
       ``bias``; gate order i, f, c, o), https://keras.io/api/layers/recurrent_layers/lstm/
    """
    p, _, _ = _check_params(params)
    return [np.ascontiguousarray(p.W_ih.T), np.ascontiguousarray(p.W_hh.T), np.array(p.b, copy=True)]


# ---------------------------------------------------------------------------
# ONNX
# ---------------------------------------------------------------------------

def from_onnx(W: ArrayLike, R: ArrayLike, B: ArrayLike | None = None,
              P: ArrayLike | None = None) -> LSTMParams | tuple[tuple[LSTMParams, LSTMParams]]:
    """Inputs of an ONNX ``LSTM`` operator as nblstm parameters.

    The operator (opset 7 and later) computes, per direction,
    ``Z = X Wᵀ + H Rᵀ + Wb + Rb`` with gate blocks i, o, f, c; this converter
    reorders them to i, f, g, o and sums the two biases. Only the default
    activations (Sigmoid, Tanh, Tanh), no ``clip``, ``input_forget=0`` and no
    peepholes are representable.

    Parameters
    ----------
    W : array, shape (D, 4H, I)
        Input weights ``W[iofc]``; D = 1 (``direction`` "forward" or
        "reverse") or D = 2 ("bidirectional": forward, then reverse).
    R : array, shape (D, 4H, H)
        Recurrence weights ``R[iofc]``.
    B : array, shape (D, 8H), optional
        Biases ``[Wb[iofc] | Rb[iofc]]``; zeros if None. Their sum is
        rounded once (float16 inputs come back as float32, exactly).
    P : array, shape (D, 3H), optional
        Peephole weights; only None or all zeros is accepted.

    Returns
    -------
    LSTMParams or tuple of one tuple of two LSTMParams
        For D = 1, LSTMParams (run it with ``reverse=True`` for an operator
        with ``direction="reverse"``); for D = 2, the one-layer bidirectional
        stack ``((forward, reverse),)``, which :func:`nblstm.lstm` runs as the
        operator does (its ``Y`` (T, D, B, H) is nblstm's y (T, B, 2H) with the
        directions side by side).

    Raises
    ------
    ValueError
        Shapes that do not fit together, or nonzero peephole weights ``P``.
    TypeError
        An input that is not a real numeric array.

    See Also
    --------
    to_onnx : The other way.

    References
    ----------
    .. [1] ONNX operator ``LSTM`` (inputs W, R, B, P; gate order i, o, f, c),
       https://onnx.ai/onnx/operators/onnx__LSTM.html
    """
    W = _array(W, "W")
    R = _array(R, "R")
    if R.ndim != 3 or R.shape[0] not in (1, 2) or R.shape[1] != 4 * R.shape[2] or R.shape[2] < 1:
        raise ValueError(f"R: expected shape (D, 4*H, H) with D = 1 or 2, got shape {R.shape}")
    D, H = R.shape[0], R.shape[2]
    if W.ndim != 3 or W.shape[:2] != (D, 4 * H):
        raise ValueError(f"W: expected shape ({D}, {4 * H}, I), got shape {W.shape}")
    if B is None:
        B = np.zeros((D, 8 * H), R.dtype)
    else:
        B = _array(B, "B")
        _check_shape(B, "B", (D, 8 * H))
    if P is not None:
        P = _array(P, "P")
        _check_shape(P, "P", (D, 3 * H))
        if np.any(P != 0):
            raise ValueError("P: expected None or zeros (peepholes are not supported), got nonzero peephole weights")
    directions = []
    for d in range(D):
        directions.append(LSTMParams(
            _reorder(W[d], _NBLSTM_FROM_ONNX),
            _reorder(R[d], _NBLSTM_FROM_ONNX),
            _reorder(B[d, :4 * H] + B[d, 4 * H:], _NBLSTM_FROM_ONNX),
        ))
    return directions[0] if D == 1 else (tuple(directions),)


def to_onnx(params) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """nblstm parameters as the ``W``, ``R``, ``B`` inputs of an ONNX ``LSTM`` operator.

    Parameters
    ----------
    params : LSTMParams, a layer, or a one-layer stack
        LSTMParams (D = 1), a layer ``(forward,)`` / ``(forward, reverse)``,
        or a stack of exactly one such layer. The ONNX operator is one layer:
        export a deeper stack layer by layer (``to_onnx(stack[l])``).

    Returns
    -------
    W : ndarray, shape (D, 4H, I)
        Input weights, gate blocks in ONNX's i, o, f, c order.
    R : ndarray, shape (D, 4H, H)
        Recurrence weights, the same order.
    B : ndarray, shape (D, 8H)
        Biases ``[Wb | Rb]`` with ``Wb = b`` and ``Rb = 0``.
        Use the operator attributes ``hidden_size=H`` and ``direction`` =
        "forward" (or "reverse" for a D = 1 layer run with ``reverse=True``)
        or "bidirectional" for D = 2.

    Raises
    ------
    ValueError
        A stack of more than one layer (export ``stack[l]`` one at a time), or
        shapes that do not fit together.
    TypeError
        ``params`` is not LSTMParams, a layer or a one-layer stack of them.

    See Also
    --------
    from_onnx : The other way.

    References
    ----------
    .. [1] ONNX operator ``LSTM`` (inputs W, R, B, P; gate order i, o, f, c),
       https://onnx.ai/onnx/operators/onnx__LSTM.html
    """
    if isinstance(params, (tuple, list)) and not isinstance(params, LSTMParams) and params \
            and all(isinstance(p, LSTMParams) for p in params):
        params = (tuple(params),)                       # one layer -> one-layer stack
    layers, _ = _as_layers(params)
    if len(layers) != 1:
        raise ValueError(f"params: expected one layer (the ONNX LSTM operator is one layer; "
                         f"export stack[l] one at a time), got {len(layers)} layers")
    layer = layers[0]
    W = np.stack([_reorder(p.W_ih, _ONNX_FROM_NBLSTM) for p in layer])
    R = np.stack([_reorder(p.W_hh, _ONNX_FROM_NBLSTM) for p in layer])
    B = np.stack([np.concatenate([_reorder(p.b, _ONNX_FROM_NBLSTM), np.zeros_like(p.b)]) for p in layer])
    return W, R, B
