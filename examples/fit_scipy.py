"""Fit an LSTM with scipy.optimize.minimize (L-BFGS-B), gradients from nblstm.

The task is system identification: the LSTM reads a random input signal u and
must reproduce, at every step, the output of an unknown nonlinear filter,
``target = tanh(3 * lfilter(b, a, u))`` (a resonant IIR filter followed by a
saturation). The model is an LSTM and a linear readout of every hidden state,
``pred_t = W_out h_t + c_out``; all of its weights live in one flat vector
``theta`` (``nblstm.ravel``), which is what SciPy's optimizers work on, and
``fun(theta)`` returns the loss and its gradient together (``jac=True``).

Run ``python examples/fit_scipy.py``.
"""
import time

import numpy as np
from scipy import optimize, signal

import nblstm


def make_data(rng, batch, seq_len):
    """Input signals (B, T, 1) and the filter's outputs (B, T, 1)."""
    u = rng.normal(size=(batch, seq_len))
    b, a = [0.3, 0.2], [1.0, -1.2, 0.5]                  # a resonant, stable second-order filter
    target = np.tanh(3 * signal.lfilter(b, a, u, axis=1))
    return u[..., None], target[..., None]


def make_objective(x, target):
    """``fun(theta, unravel) -> (loss, grad)`` for the mean squared error of the readout."""

    def fun(theta, unravel):
        params, (W_out, c_out) = unravel(theta)
        y, _, cache = nblstm.lstm_forward(x, params)           # y (B, T, H)
        err = y @ W_out.T + c_out - target                     # (B, T, 1)
        loss = np.mean(err ** 2)
        dpred = 2 * err / err.size                             # dL/dpred
        grads = nblstm.lstm_backward(cache, dy=dpred @ W_out)  # dL/dy = dL/dpred · W_out
        dW_out = dpred.reshape(-1, 1).T @ y.reshape(-1, y.shape[-1])
        dc_out = dpred.sum(axis=(0, 1))
        g, _ = nblstm.ravel((grads.dparams, (dW_out, dc_out)))  # same layout as theta
        return loss, g

    return fun


def fit(hidden=8, batch=16, seq_len=40, maxiter=150, seed=0):
    """Fit the model; returns (scipy OptimizeResult, baseline MSE, test MSE, unravel)."""
    rng = np.random.default_rng(seed)
    x, target = make_data(rng, batch, seq_len)
    params = nblstm.init_params(1, hidden, seed=rng)
    readout = (rng.normal(0, 1 / np.sqrt(hidden), (1, hidden)), np.zeros(1))
    theta0, unravel = nblstm.ravel((params, readout))
    fun = make_objective(x, target)
    result = optimize.minimize(fun, theta0, args=(unravel,), jac=True, method="L-BFGS-B",
                               options=dict(maxiter=maxiter))
    baseline = float(np.mean((target - target.mean()) ** 2))     # predict-the-mean
    x_test, target_test = make_data(np.random.default_rng([seed, 1]), 64, seq_len)
    params, (W_out, c_out) = unravel(result.x)
    y, _ = nblstm.lstm(x_test, params)
    test_mse = float(np.mean((y @ W_out.T + c_out - target_test) ** 2))
    return result, baseline, test_mse, unravel


if __name__ == "__main__":
    t0 = time.perf_counter()
    result, baseline, test_mse, _ = fit()
    print(f"L-BFGS-B: {result.nit} iterations, {result.nfev} evaluations, {time.perf_counter() - t0:.1f} s")
    print(f"training MSE {result.fun:.4f}, test MSE {test_mse:.4f}, predicting the mean {baseline:.4f}")
