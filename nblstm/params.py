"""Parameter containers and initialisers.

The four gate blocks of every weight matrix and bias are stacked in the order
input (i), forget (f), cell candidate (g), output (o), each block ``H`` rows:
the layout of ``torch.nn.LSTM`` (``weight_ih_l0``, ``weight_hh_l0``) with the
two PyTorch biases summed into one.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

__all__ = ["LSTMParams", "LSTMGrads", "init_params", "init_stack", "ravel"]

GATES = "ifgo"


class LSTMParams(NamedTuple):
    """Weights of one LSTM layer in one direction.

    Attributes
    ----------
    W_ih : ndarray, shape (4*H, I)
        Input-to-hidden weights, gate blocks stacked ``[i; f; g; o]``.
    W_hh : ndarray, shape (4*H, H)
        Hidden-to-hidden (recurrent) weights, same block order.
    b : ndarray, shape (4*H,)
        Bias, same block order (PyTorch: ``bias_ih + bias_hh``).
    """

    W_ih: np.ndarray
    W_hh: np.ndarray
    b: np.ndarray

    @property
    def hidden_size(self) -> int:
        return self.W_hh.shape[1]

    @property
    def input_size(self) -> int:
        return self.W_ih.shape[1]


class LSTMGrads(NamedTuple):
    """Gradients returned by :func:`nblstm.lstm_backward`.

    Attributes
    ----------
    dx : ndarray
        dL/dx, the shape of ``x``; exactly 0 at padded steps.
    dparams : LSTMParams or tuple of tuples of LSTMParams
        dL/d(weights), nested like the ``params`` that were passed in.
    dh0, dc0 : ndarray
        dL/dh0 and dL/dc0, the shape of the initial state.
    """

    dx: np.ndarray
    dparams: object
    dh0: np.ndarray
    dc0: np.ndarray


def _rng(seed):
    return seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)


def _check_sizes(input_size, hidden_size):
    for name, value in (("input_size", input_size), ("hidden_size", hidden_size)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")


def init_params(input_size, hidden_size, *, dtype=np.float64, seed=None, forget_bias=1.0):
    """Random weights for one LSTM layer.

    Every weight and bias is drawn from U(-1/sqrt(H), 1/sqrt(H)), as
    ``torch.nn.LSTM`` does; ``forget_bias`` is then added to the forget-gate
    block of ``b`` (Keras' ``unit_forget_bias``), which helps gradients flow
    through long sequences early in training.

    Parameters
    ----------
    input_size : int
        I, features per time step of the input.
    hidden_size : int
        H, the size of the hidden and cell states.
    dtype : {np.float64, np.float32}
        dtype of the arrays.
    seed : None, int or numpy.random.Generator
        Source of randomness.
    forget_bias : float
        Added to ``b[H:2H]``.

    Returns
    -------
    LSTMParams
        ``W_ih`` (4H, I), ``W_hh`` (4H, H), ``b`` (4H,).
    """
    _check_sizes(input_size, hidden_size)
    dtype = np.dtype(dtype)
    if dtype not in (np.float32, np.float64):
        raise TypeError(f"dtype must be float32 or float64, got {dtype}")
    rng = _rng(seed)
    bound = 1.0 / np.sqrt(hidden_size)
    H = hidden_size
    W_ih = rng.uniform(-bound, bound, (4 * H, input_size))
    W_hh = rng.uniform(-bound, bound, (4 * H, H))
    b = rng.uniform(-bound, bound, 4 * H)
    b[H:2 * H] += forget_bias
    return LSTMParams(W_ih.astype(dtype), W_hh.astype(dtype), b.astype(dtype))
