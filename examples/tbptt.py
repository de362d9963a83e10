"""Truncated backpropagation through time over one long series.

A series of tens of thousands of steps is too long to backpropagate through
at once (the forward keeps T*B*5H numbers). Truncated BPTT cuts it into
chunks: each chunk starts from the state (h, c) the previous chunk ended in,
so the forward pass sees the whole history, while gradients stop at the chunk
boundary (the chunk's ``dh0`` and ``dc0`` are simply dropped). That is
nblstm's state-in, state-out API as it is::

    y, (h, c), cache = nblstm.lstm_forward(chunk, params, h, c)
    grads = nblstm.lstm_backward(cache, dy=...)      # no dh_n/dc_n from the future

The task: one-step-ahead prediction of a noisy signal whose period drifts
slowly. The batch holds several independent series, so each chunk is
(B, chunk_len, 1). Training is Adam written in NumPy on the flat vector of
``nblstm.ravel``.

Run ``python examples/tbptt.py``.
"""
import time

import numpy as np

import nblstm


def make_series(rng, batch, length):
    """B noisy quasi-periodic series of ``length + 1`` steps: (B, length + 1)."""
    t = np.arange(length + 1)
    phase = rng.uniform(0, 2 * np.pi, (batch, 1))
    period = 20 + 5 * np.sin(2 * np.pi * t / 2000)             # slowly drifting period
    s = np.sin(2 * np.pi * np.cumsum(1 / period) + phase) + 0.5 * np.sin(2 * np.pi * t / 7.0 + phase)
    return s + 0.05 * rng.normal(size=s.shape)


def train(length=4000, batch=8, chunk_len=50, hidden=16, epochs=3, lr=0.01, seed=0):
    """Train with truncated BPTT; returns the mean loss of each epoch."""
    rng = np.random.default_rng(seed)
    series = make_series(rng, batch, length)
    inputs, targets = series[:, :-1, None], series[:, 1:, None]   # predict the next value
    params = nblstm.init_params(1, hidden, seed=rng)
    readout = (rng.normal(0, 1 / np.sqrt(hidden), (1, hidden)), np.zeros(1))
    theta, unravel = nblstm.ravel((params, readout))
    m, v, k = np.zeros_like(theta), np.zeros_like(theta), 0
    epoch_losses = []
    for _ in range(epochs):
        h = c = None                                              # zeros at the start of the series
        losses = []
        for start in range(0, length, chunk_len):
            x = inputs[:, start:start + chunk_len]
            target = targets[:, start:start + chunk_len]
            params, (W_out, c_out) = unravel(theta)
            y, (h, c), cache = nblstm.lstm_forward(x, params, h, c)   # state carried in ...
            err = y @ W_out.T + c_out - target
            losses.append(np.mean(err ** 2))
            dpred = 2 * err / err.size
            g = nblstm.lstm_backward(cache, dy=dpred @ W_out)         # ... gradient cut at the boundary
            grad, _ = nblstm.ravel((g.dparams, (dpred.reshape(-1, 1).T @ y.reshape(-1, hidden),
                                                dpred.sum(axis=(0, 1)))))
            k += 1                                                    # Adam
            m = 0.9 * m + 0.1 * grad
            v = 0.999 * v + 0.001 * grad ** 2
            theta = theta - lr * (m / (1 - 0.9 ** k)) / (np.sqrt(v / (1 - 0.999 ** k)) + 1e-8)
        epoch_losses.append(float(np.mean(losses)))
    return epoch_losses, unravel(theta), series


if __name__ == "__main__":
    t0 = time.perf_counter()
    losses, _, series = train()
    naive = float(np.mean(np.diff(series, axis=1) ** 2))      # "next value = this value"
    for epoch, loss in enumerate(losses, 1):
        print(f"epoch {epoch}: mean one-step-ahead MSE {loss:.4f}")
    print(f"repeat-the-last-value baseline {naive:.4f}, variance of the series {series.var():.4f}; "
          f"{time.perf_counter() - t0:.1f} s")
