"""The LSTM in plain NumPy, one time step at a time.

This module is the oracle the tests compare the compiled kernels against and
the baseline the benchmarks time, so it favours being obviously right over
being fast: every line is one equation, applied to the whole batch at once.
It implements one layer in one direction; stacks are compositions of layers.

For one time step, with the gate blocks stacked ``[i; f; g; o]``:

.. math::

    z_t &= W_{ih} x_t + W_{hh} h_{t-1} + b \\\\
    i_t &= \\sigma(z_i), \\; f_t = \\sigma(z_f), \\; g_t = \\tanh(z_g), \\; o_t = \\sigma(z_o) \\\\
    c_t &= f_t \\odot c_{t-1} + i_t \\odot g_t \\\\
    h_t &= o_t \\odot \\tanh(c_t)

Sequence ``b`` has only the steps ``t < lengths[b]``; with ``reverse=True`` it
is read from step ``lengths[b] - 1`` back to step 0, and outputs keep the
input's time positions.
"""
from __future__ import annotations

import numpy as np

from .params import LSTMGrads, LSTMParams

__all__ = ["sigmoid", "lstm_forward", "lstm_backward"]


def sigmoid(z):
    """Logistic sigmoid that never overflows: exp is taken of -|z| only."""
    e = np.exp(-np.abs(z))
    return np.where(z >= 0, 1 / (1 + e), e / (1 + e))


def _time_index(step, lengths, reverse):
    """Time position each sequence visits at processing step ``step``."""
    return lengths - 1 - step if reverse else np.full_like(lengths, step)


def lstm_forward(x, params, h0=None, c0=None, lengths=None, reverse=False):
    """Run one LSTM layer over a batch, keeping what backward needs.

    Parameters
    ----------
    x : ndarray, shape (B, T, I)
        Input sequences, batch first.
    params : LSTMParams
        ``W_ih`` (4H, I), ``W_hh`` (4H, H), ``b`` (4H,).
    h0, c0 : ndarray, shape (B, H), optional
        Initial hidden and cell state (zeros if None).
    lengths : array of int, shape (B,), optional
        Valid steps of each sequence (all T if None).
    reverse : bool
        Read each sequence backwards.

    Returns
    -------
    y : ndarray, shape (B, T, H)
        h_t at every valid step, 0 at padded steps.
    (h_n, c_n) : ndarrays, shape (B, H)
        State after each sequence's last valid step.
    cache : list
        Per step: what :func:`lstm_backward` needs.
    """
    W_ih, W_hh, b = params
    B, T, _ = x.shape
    H = W_hh.shape[1]
    dtype = np.result_type(x, W_ih, W_hh, b)
    h = np.zeros((B, H), dtype) if h0 is None else np.array(h0, dtype)
    c = np.zeros((B, H), dtype) if c0 is None else np.array(c0, dtype)
    lengths = np.full(B, T) if lengths is None else np.asarray(lengths)
    rows = np.arange(B)
    y = np.zeros((B, T, H), dtype)
    cache = []
    for step in range(T):
        active = step < lengths                       # which sequences still run
        t = np.clip(_time_index(step, lengths, reverse), 0, max(T - 1, 0))
        x_t = x[rows, t]                              # (B, I)
        z = x_t @ W_ih.T + h @ W_hh.T + b             # z_t = W_ih x_t + W_hh h_{t-1} + b
        i = sigmoid(z[:, 0 * H:1 * H])                # input gate
        f = sigmoid(z[:, 1 * H:2 * H])                # forget gate
        g = np.tanh(z[:, 2 * H:3 * H])                # cell candidate
        o = sigmoid(z[:, 3 * H:4 * H])                # output gate
        c_new = f * c + i * g                         # c_t = f ⊙ c_{t-1} + i ⊙ g
        tanh_c = np.tanh(c_new)
        h_new = o * tanh_c                            # h_t = o ⊙ tanh(c_t)
        cache.append((active, t, x_t, h, c, i, f, g, o, tanh_c))
        y[rows[active], t[active]] = h_new[active]
        h = np.where(active[:, None], h_new, h)       # finished sequences keep their state
        c = np.where(active[:, None], c_new, c)
    return y, (h, c), (x.shape, dtype, params, cache)


def lstm_backward(cache, dy=None, dh_n=None, dc_n=None):
    """Backpropagation through time for :func:`lstm_forward`.

    Parameters
    ----------
    cache : tuple
        Third result of :func:`lstm_forward`.
    dy : ndarray, shape (B, T, H), optional
        dL/dy; ignored at padded steps.
    dh_n, dc_n : ndarray, shape (B, H), optional
        dL/dh_n and dL/dc_n.

    Returns
    -------
    LSTMGrads
        ``dx`` (B, T, I), ``dparams`` (LSTMParams), ``dh0``, ``dc0`` (B, H).
    """
    x_shape, dtype, (W_ih, W_hh, b), steps = cache
    B, T, _ = x_shape
    H = W_hh.shape[1]
    rows = np.arange(B)
    dh = np.zeros((B, H), dtype) if dh_n is None else np.array(dh_n, dtype)
    dc = np.zeros((B, H), dtype) if dc_n is None else np.array(dc_n, dtype)
    dx = np.zeros(x_shape, dtype)
    dW_ih, dW_hh, db = np.zeros_like(W_ih, dtype), np.zeros_like(W_hh, dtype), np.zeros_like(b, dtype)
    for active, t, x_t, h_prev, c_prev, i, f, g, o, tanh_c in reversed(steps):
        keep = active[:, None]
        if dy is not None:
            dh = dh + np.where(keep, dy[rows, t], 0)  # h_t feeds y_t and step t+1
        do = dh * tanh_c                              # h = o ⊙ tanh(c)
        dc_t = dc + dh * o * (1 - tanh_c ** 2)
        di = dc_t * g                                 # c = f ⊙ c_prev + i ⊙ g
        dg = dc_t * i
        df = dc_t * c_prev
        dz = np.concatenate([
            di * i * (1 - i),                         # sigma' = s(1 - s)
            df * f * (1 - f),
            dg * (1 - g ** 2),                        # tanh' = 1 - t^2
            do * o * (1 - o),
        ], axis=1)
        dz = np.where(keep, dz, 0)                    # padded steps contribute nothing
        dW_ih += dz.T @ x_t                           # z = W_ih x + W_hh h_prev + b
        dW_hh += dz.T @ h_prev
        db += dz.sum(axis=0)
        dx[rows[active], t[active]] = (dz @ W_ih)[active]
        dh = np.where(keep, dz @ W_hh, dh)
        dc = np.where(keep, dc_t * f, dc)
    return LSTMGrads(dx, LSTMParams(dW_ih, dW_hh, db), dh, dc)
