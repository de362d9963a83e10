#!/usr/bin/env python
"""nblstm.sklearn.LSTMRegressor against skorch around torch.nn.LSTM, and against the raw kernels.

    PYTHONPATH=$PWD python bench/estimator.py [--blocks 3] [--epochs 5] [--pause 0.3]

The same data for both (n sequences of T steps of one feature, the next value
of a noisy sum of sines as the target), float32, batch size 32, Adam with
learning rate 1e-3, ``--epochs`` epochs with no early stop; torch and numba on
the machine's cores (``torch.set_num_threads``). Reported:

1. **fit with Adam** (``LSTMRegressor(solver="adam")`` against skorch's
   ``NeuralNetRegressor`` of an ``nn.LSTM`` and a ``nn.Linear`` on its last
   state), each fit timed by harness.time_blocks in alternating blocks: the
   steady median and the ratio (target <= 0.5);
2. **validation error**: ``LSTMRegressor(solver="lbfgs")`` against that torch
   model, both fitted on the first 80 % and scored (mean squared error) on
   the rest (target: nblstm's at most torch's);
3. **overhead of the estimator** at (B, T, H) = (32, 50, 32): an Adam epoch
   of ``fit`` against the kernels alone on the same minibatches
   (``lstm_forward`` and ``lstm_backward``; no readout, loss or update), so
   the overhead is everything the estimator adds (target < 10 %).
"""
import argparse
import sys
import warnings
from pathlib import Path

import numba
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness  # noqa: E402

import nblstm  # noqa: E402
from nblstm.sklearn import LSTMRegressor  # noqa: E402

BATCH, H = 32, 32


def data(n, T, seed=0):
    rng = np.random.default_rng(seed)
    t = np.arange(T + 1) * 0.1 + rng.uniform(0, 100, (n, 1))
    s = np.sin(t) + 0.5 * np.sin(0.31 * t) + 0.05 * rng.standard_normal(t.shape)
    return s[:, :T, None].astype(np.float32), s[:, T].astype(np.float32)


def nblstm_fit(X, y, epochs, solver="adam"):
    # tol 0 and a patience beyond the epochs: every epoch runs, as in skorch
    kw = dict(batch_size=BATCH, learning_rate_init=1e-3, tol=0.0, n_iter_no_change=epochs + 1) \
        if solver == "adam" else {}
    return LSTMRegressor(H, solver=solver, max_iter=epochs, alpha=0.0, random_state=0,
                         dtype="float32", **kw).fit(X, y)


def skorch_fit(X, y, epochs):
    import torch
    from skorch import NeuralNetRegressor

    class Last(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.lstm = torch.nn.LSTM(1, H, batch_first=True)
            self.out = torch.nn.Linear(H, 1)

        def forward(self, x):
            _, (h, _) = self.lstm(x)
            return self.out(h[-1])

    torch.manual_seed(0)
    net = NeuralNetRegressor(Last, max_epochs=epochs, batch_size=BATCH, lr=1e-3,
                             optimizer=torch.optim.Adam, train_split=None, verbose=0)
    return net.fit(X, y[:, None])


def raw_epoch(X, y, model):
    """The kernels of one epoch over the same minibatches: lstm_forward and lstm_backward only."""
    for start in range(0, len(X), BATCH):
        out, (h_n, c_n), cache = nblstm.lstm_forward(X[start:start + BATCH], model.lstm)
        nblstm.lstm_backward(cache, dh_n=np.ones_like(h_n))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--blocks", type=int, default=3)
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--pause", type=float, default=0.3)
    ap.add_argument("--n", type=int, default=512)
    ap.add_argument("--T", type=int, default=50)
    args = ap.parse_args()
    # a fixed number of epochs is the point here, not a warning
    warnings.filterwarnings("ignore", message=".*reached max_iter.*")
    import torch
    torch.set_num_threads(numba.get_num_threads())
    X, y = data(args.n, args.T)
    print(f"commit {harness.git_commit()}, load average before {harness.load_average()}")
    fits = harness.time_blocks({"nblstm": lambda: nblstm_fit(X, y, args.epochs),
                                "skorch": lambda: skorch_fit(X, y, args.epochs)},
                               args.blocks, args.pause, min_block=0.0)
    a, b = fits["nblstm"].steady, fits["skorch"].steady
    print(f"fit, Adam, {args.epochs} epochs, n={args.n}, T={args.T}, H={H}, batch {BATCH}, float32: "
          f"nblstm {a:.3f} s, skorch {b:.3f} s, ratio {a / b:.2f} (target <= 0.5)")

    cut = int(0.8 * args.n)
    lbfgs = nblstm_fit(X[:cut], y[:cut], 200, solver="lbfgs")
    adam_torch = skorch_fit(X[:cut], y[:cut], 50)
    mse_nb = float(np.mean((lbfgs.predict(X[cut:]) - y[cut:]) ** 2))
    mse_torch = float(np.mean((adam_torch.predict(X[cut:])[:, 0] - y[cut:]) ** 2))
    print(f"validation MSE: nblstm L-BFGS (200 iterations) {mse_nb:.2e}, torch via skorch Adam "
          f"(50 epochs) {mse_torch:.2e}: ratio {mse_nb / mse_torch:.2f} (target <= 1)")

    n = 32 * 16
    Xo, yo = X[:n], y[:n]
    model = nblstm.init_model(1, H, 1, seed=0, dtype=np.float32)
    one = harness.time_blocks({"fit, 1 epoch": lambda: nblstm_fit(Xo, yo, 1),
                               "raw epoch": lambda: raw_epoch(Xo, yo, model)},
                              args.blocks, args.pause, min_block=0.2)
    a, b = one["fit, 1 epoch"].steady, one["raw epoch"].steady
    print(f"overhead at (B, T, H) = ({BATCH}, {args.T}, {H}), {n // BATCH} minibatches: fit {a * 1e3:.1f} ms, "
          f"raw {b * 1e3:.1f} ms, overhead {100 * (a / b - 1):.0f} % (target < 10 %)")


if __name__ == "__main__":
    main()
