"""``python -m nblstm``: train an LSTM on the adding problem with nblstm's gradients.

The adding problem (Hochreiter & Schmidhuber, 1997): each input is a sequence
of T pairs (value, marker), the values uniform in [0, 1], exactly two markers
set (one in each half of the sequence); the target is the sum of the two marked
values. Predicting the mean (1) scores MSE Var(u1 + u2) = 1/6 ≈ 0.167; getting
well below that needs the LSTM to carry information across the sequence.

The model is one LSTM layer and a linear readout of its last hidden state,
``pred = h_T · w + c``, trained with Adam (written in NumPy below) on fresh
batches, the gradients from :func:`nblstm.lstm_backward`. The run ends with the
test MSE, the time taken, a finite-difference check of the gradient
(:mod:`nblstm.testing`) and the time of one batch against the NumPy reference.
"""
from __future__ import annotations

import argparse
import sys
import threading
import time

import numpy as np

from . import _api, reference
from .params import init_params, ravel
from .testing import check_grad

BASELINE_MSE = 1.0 / 6.0
BATCH = 32
LEARNING_RATE = 0.01
CLIP_NORM = 1.0
N_TEST = 2000
GRAD_CHECK_BATCH = 8


def adding_problem(rng, batch, seq_len):
    """A batch of the adding problem.

    Parameters
    ----------
    rng : numpy.random.Generator
    batch : int
        B, sequences in the batch.
    seq_len : int
        T >= 2, steps per sequence.

    Returns
    -------
    x : ndarray, shape (B, T, 2)
        ``x[..., 0]`` values in U(0, 1), ``x[..., 1]`` markers: one 1 in the
        first half of each sequence, one in the second half.
    target : ndarray, shape (B,)
        Sum of the two marked values.
    """
    values = rng.uniform(0.0, 1.0, (batch, seq_len))
    markers = np.zeros((batch, seq_len))
    rows = np.arange(batch)
    markers[rows, rng.integers(0, seq_len // 2, batch)] = 1.0
    markers[rows, rng.integers(seq_len // 2, seq_len, batch)] = 1.0
    return np.stack([values, markers], axis=-1), (values * markers).sum(axis=1)


def loss_and_grad(params, w, c, x, target, forward=_api.lstm_forward, backward=_api.lstm_backward):
    """Mean squared error of ``h_T · w + c`` and its gradient.

    Parameters
    ----------
    params : LSTMParams
        The LSTM, input size 2, hidden size H.
    w : ndarray, shape (H,)
        Readout weights.
    c : ndarray, shape ()
        Readout bias.
    x : ndarray, shape (B, T, 2)
    target : ndarray, shape (B,)
    forward, backward : callable
        :func:`nblstm.lstm_forward` / :func:`nblstm.lstm_backward`, or the
        reference's (whose forward takes no keyword options).

    Returns
    -------
    loss : float
    grads : tuple
        ``(dparams, dw, dc)``, shaped like ``(params, w, c)``.
    """
    _, (h_n, _), cache = forward(x, params)
    err = h_n @ w + c - target                       # (B,)
    loss = float(np.mean(err ** 2))
    dpred = 2.0 * err / err.size                     # dL/dpred
    g = backward(cache, dh_n=np.outer(dpred, w))     # dL/dh_T = dL/dpred · w
    return loss, (g.dparams, h_n.T @ dpred, np.asarray(dpred.sum()))


def _progress(steps):
    """tqdm's bar on a terminal if tqdm is installed, else a plain progress line.

    tqdm redraws its bar with carriage returns, which a log file or a pipe gets as
    one long line, so it is used on a terminal only. Both have .update/.set_loss/.close.
    """
    isatty = getattr(sys.stdout, "isatty", None)
    if not (isatty and isatty()):
        return _PlainProgress(steps)
    try:
        from tqdm import tqdm
    except ImportError:
        return _PlainProgress(steps)
    bar = tqdm(total=steps, desc="training", unit="step", file=sys.stdout, ascii=True,
               mininterval=0.5, dynamic_ncols=False, ncols=80)
    bar.set_loss = lambda loss: bar.set_postfix(loss=f"{loss:.4f}", refresh=False)
    return bar


class _PlainProgress:
    """One line rewritten in place on a terminal; whole lines (every 10 %) in a log file or pipe.

    A carriage return turns a log file into one long line, so it is used only on a tty.
    """

    def __init__(self, steps, stream=None):
        self.steps, self.n, self.loss, self.t0, self.shown = steps, 0, float("nan"), time.perf_counter(), -1
        self.stream = sys.stdout if stream is None else stream
        isatty = getattr(self.stream, "isatty", None)
        self.in_place = bool(isatty and isatty())

    def set_loss(self, loss):
        self.loss = loss

    def update(self, k=1):
        self.n += k
        percent = 100 * self.n // self.steps
        every = 5 if self.in_place else 10
        if percent != self.shown and (percent % every == 0 or self.n == self.steps):
            self.shown = percent
            line = (f"training: {self.n}/{self.steps} steps ({percent:3d}%), loss {self.loss:.4f}, "
                    f"{time.perf_counter() - self.t0:.1f} s")
            if self.in_place:
                print("\r" + line, end="", file=self.stream, flush=True)
            else:
                print(line, file=self.stream, flush=True)

    def close(self):
        if self.in_place:
            print(file=self.stream, flush=True)


def _warm_up(hidden):
    """Run every kernel the demo will run once; say "compiling" if that takes long.

    The first run, before numba's cache, compiles. The kernels depend on the
    batch size (``nblstm.cpu.choose_path``) and not on T, so the warm-up runs
    the training batch, the gradient check's and the test set's on 3 steps:
    then the notice covers all the compiling.
    """
    done = threading.Event()
    errors = []

    def work():
        try:
            rng = np.random.default_rng(0)
            params = init_params(2, hidden, seed=0)
            for batch in (BATCH, GRAD_CHECK_BATCH):
                x, target = adding_problem(rng, batch, 3)
                loss_and_grad(params, np.zeros(hidden), np.zeros(()), x, target)
            _api.lstm(adding_problem(rng, N_TEST, 3)[0], params)
        except BaseException as exc:              # re-raised in the main thread
            errors.append(exc)
        finally:
            done.set()

    t0 = time.perf_counter()
    thread = threading.Thread(target=work, daemon=True)
    thread.start()
    if not done.wait(3.0):                       # loading from the cache takes well under 1 s
        print("compiling nblstm's kernels (first run only: numba caches them for the next) ...", flush=True)
        thread.join()
        print(f"compiled in {time.perf_counter() - t0:.1f} s", flush=True)
    thread.join()
    if errors:
        raise errors[0]


def _best_time(f, repeat):
    best = np.inf
    for _ in range(repeat):
        t0 = time.perf_counter()
        f()
        best = min(best, time.perf_counter() - t0)
    return best


def _adam(steps, theta, unravel, grad_at, progress):
    """Adam (Kingma & Ba) with global-norm clipping on the flat parameter vector ``theta``."""
    beta1, beta2, eps = 0.9, 0.999, 1e-8
    m = np.zeros_like(theta)
    v = np.zeros_like(theta)
    for k in range(1, steps + 1):
        loss, grads = grad_at(unravel(theta))
        g, _ = ravel(grads)
        norm = np.linalg.norm(g)
        if norm > CLIP_NORM:                         # clip: the adding problem has rare huge gradients
            g *= CLIP_NORM / norm
        m = beta1 * m + (1 - beta1) * g
        v = beta2 * v + (1 - beta2) * g * g
        theta = theta - LEARNING_RATE * (m / (1 - beta1 ** k)) / (np.sqrt(v / (1 - beta2 ** k)) + eps)
        progress.set_loss(loss)
        progress.update(1)
    progress.close()
    return theta


def main(argv=None):
    """Run the demo; returns the exit status (0, or 1 if the gradient check fails)."""
    parser = argparse.ArgumentParser(
        prog="python -m nblstm",
        description="Train an LSTM on Hochreiter & Schmidhuber's adding problem with nblstm's "
                    "forward and backward passes, then check a gradient against finite differences "
                    "and time nblstm against the NumPy reference.")
    parser.add_argument("--steps", type=int, default=1000,
                        help=f"training steps (batches of {BATCH}); default %(default)s")
    parser.add_argument("--seq-len", type=int, default=50, help="T, steps per sequence (>= 2); default %(default)s")
    parser.add_argument("--hidden", type=int, default=16, help="H, LSTM hidden size; default %(default)s")
    parser.add_argument("--seed", type=int, default=0, help="random seed; default %(default)s")
    args = parser.parse_args(argv)
    for name, value, low in (("--steps", args.steps, 1), ("--seq-len", args.seq_len, 2), ("--hidden", args.hidden, 1)):
        if value < low:
            parser.error(f"{name}: expected an integer >= {low}, got {value}")
    T, H = args.seq_len, args.hidden

    rng = np.random.default_rng(args.seed)
    params = init_params(2, H, seed=rng)
    tree = (params, rng.normal(0.0, 1.0 / np.sqrt(H), H), np.asarray(1.0))   # readout starts at the mean
    theta, unravel = ravel(tree)
    print("nblstm demo: the adding problem (Hochreiter & Schmidhuber 1997)")
    print(f"  {T} numbers in [0, 1] per sequence, two of them marked; target: the sum of the marked two")
    print(f"  model: LSTM(2 -> {H}) + linear readout of h_T, {theta.size} parameters, float64")
    print(f"  training: Adam (lr {LEARNING_RATE}), {args.steps} steps of {BATCH} fresh sequences")
    sys.stdout.flush()

    _warm_up(H)

    def grad_at(tree):
        x, target = adding_problem(rng, BATCH, T)
        return loss_and_grad(*tree, x, target)

    t0 = time.perf_counter()
    theta = _adam(args.steps, theta, unravel, grad_at, _progress(args.steps))
    elapsed = time.perf_counter() - t0
    params, w, c = unravel(theta)

    x_test, y_test = adding_problem(np.random.default_rng([args.seed, 1]), N_TEST, T)
    _, (h_n, _) = _api.lstm(x_test, params)
    mse = float(np.mean((h_n @ w + c - y_test) ** 2))
    verdict = "solved" if mse < 0.05 else "not solved yet: try more --steps"
    print(f"test MSE {mse:.4f} on {N_TEST} new sequences (predicting the mean: {BASELINE_MSE:.3f}) -> {verdict}")
    print(f"time: {elapsed:.1f} s for {args.steps} training steps ({1e3 * elapsed / args.steps:.1f} ms per step)")

    # gradient check: the backward pass against central differences of the loss on one batch
    x, target = adding_problem(np.random.default_rng([args.seed, 2]), GRAD_CHECK_BATCH, T)
    result = check_grad(lambda p, w, c: loss_and_grad(p, w, c, x, target)[0],
                        lambda p, w, c: loss_and_grad(p, w, c, x, target)[1],
                        (params, w, c), directions=4, seed=args.seed)
    print(f"gradient check against central differences ({result.n_checks} directional derivatives of the "
          f"loss): max relative error {result.max_rel_err:.1e} -> {'OK' if result.ok else 'FAILED'}")

    # one batch, forward + backward: nblstm against the NumPy reference
    x, target = adding_problem(rng, BATCH, T)
    fast = _best_time(lambda: loss_and_grad(params, w, c, x, target), 5)
    time.sleep(0.3)                                  # let BLAS/numba worker threads settle between libraries
    slow = _best_time(lambda: loss_and_grad(params, w, c, x, target,
                                            lambda x, p: reference.lstm_forward(x, p),
                                            reference.lstm_backward), 3)
    print(f"timing, forward + backward of one batch (B={BATCH}, T={T}, H={H}): nblstm {1e3 * fast:.2f} ms, "
          f"NumPy reference {1e3 * slow:.2f} ms (speed-up {slow / fast:.1f}x)")
    return 0 if result.ok else 1


if __name__ == "__main__":
    sys.exit(main())
