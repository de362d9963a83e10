"""Adam in the style of ``scipy.optimize.minimize``: minibatches, early stopping, a callback that stops.

:func:`minimize_adam` takes the ``fun`` that ``minimize(..., jac=True)`` takes
(``fun(theta, *args) -> (loss, grad)``, e.g. :func:`nblstm.loss_and_grad`) and
returns a ``scipy.optimize.OptimizeResult``. Minibatches are slices along the
first axis of the arguments named by ``batch_args``.
"""
from __future__ import annotations

import importlib
import importlib.util
import sys
from collections.abc import Callable, Sequence

import numpy as np
from scipy.optimize import OptimizeResult

from . import _validate as v
from ._random import generator

__all__ = ["minimize_adam"]

#: the ``status`` codes of the result, and their messages
MESSAGES = {
    0: "Converged: the training loss improved by less than tol for more than n_iter_no_change epochs",
    1: "Maximum number of iterations (epochs) reached",
    2: "Early stopping: the validation score improved by less than tol for more than n_iter_no_change epochs",
    3: "Stopped by the callback",
}


def _positive_int(name, value):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        v.fail(name, "a positive integer", repr(value), TypeError)
    if value < 1:
        v.fail(name, "a positive integer", repr(value))
    return int(value)


def _positive(name, value, upper=None):
    try:
        value = float(value)
    except (TypeError, ValueError):
        v.fail(name, "a number", repr(value), TypeError)
    if not (value > 0 and np.isfinite(value)) or (upper is not None and not value < upper):
        v.fail(name, "a finite number > 0" + (f" and < {upper}" if upper is not None else ""), repr(value))
    return value


def _sliced(args, batch_args, rows):
    """``args`` with the entries at ``batch_args`` indexed by ``rows`` along their first axis."""
    return tuple(a[rows] if k in batch_args and a is not None else a for k, a in enumerate(args))


class _Progress:
    """tqdm's bar over the epochs if tqdm is installed (left on screen), else a line per epoch (as MLPRegressor)."""

    def __init__(self, total, verbose):
        self.bar = None
        self.verbose = bool(verbose)
        if self.verbose and importlib.util.find_spec("tqdm") is not None:
            self.bar = importlib.import_module("tqdm").tqdm(total=total, desc="adam", unit="epoch",
                                                            file=sys.stderr, leave=True)

    def update(self, epoch, loss, val):
        if not self.verbose:
            return
        if self.bar is not None:
            post = {"loss": f"{loss:.4g}"} | ({} if val is None else {"val": f"{val:.4g}"})
            self.bar.set_postfix(post, refresh=False)
            self.bar.update(1)
        else:
            extra = "" if val is None else f", validation {val:.8f}"
            print(f"Iteration {epoch}, loss = {loss:.8f}{extra}", file=sys.stderr, flush=True)

    def close(self):
        if self.bar is not None:                # leave=True: the bar, with the last loss, stays after the run
            self.bar.refresh()
            self.bar.close()


def minimize_adam(fun: Callable, x0, args: tuple = (), *, jac=True, batch_args: Sequence[int] = (),
                  batch_size: int | None = None, shuffle: bool = True, learning_rate: float = 1e-3,
                  beta1: float = 0.9, beta2: float = 0.999, epsilon: float = 1e-8, maxiter: int = 200,
                  tol: float = 1e-4, n_iter_no_change: int = 10, validation=None,
                  validation_fun: Callable | None = None, callback: Callable | None = None, seed=None,
                  verbose: bool = False) -> OptimizeResult:
    """Minimize a function with Adam over minibatches, as ``scipy.optimize.minimize`` is called.

    Each epoch shuffles the samples (the first axis of the arguments at
    ``batch_args``), cuts them into minibatches of ``batch_size`` and takes one
    Adam step per minibatch:

    .. math::

        m &\\leftarrow \\beta_1 m + (1 - \\beta_1) g, \\quad
        v \\leftarrow \\beta_2 v + (1 - \\beta_2) g^2 \\\\
        \\theta &\\leftarrow \\theta - \\eta \\, \\frac{m / (1 - \\beta_1^t)}{\\sqrt{v / (1 - \\beta_2^t)} + \\epsilon}

    The stopping rules are ``sklearn.neural_network.MLPRegressor``'s, on the
    epoch losses of ``loss_curve`` (each the mean minibatch loss of an epoch,
    measured as the steps were taken): without ``validation``, stop (status 0,
    "Converged") when the epoch's training loss has not fallen below the best
    so far minus ``tol`` for more than ``n_iter_no_change`` epochs in a row;
    with it, the same on the validation score (status 2), and ``x`` is the
    parameters of the best validation score. ``fun`` of the result is not an
    epoch mean but ``fun`` evaluated once more at ``x``, over all the (training)
    samples.

    Parameters
    ----------
    fun : callable
        ``fun(theta, *args) -> (loss, grad)`` if ``jac`` is True (the form of
        ``minimize(..., jac=True)`` and :func:`nblstm.loss_and_grad`), else
        ``fun(theta, *args) -> loss``. The loss of a minibatch is its mean.
    x0 : array_like, shape (N,)
        The starting point. Its float dtype (float64 for integers) is the
        dtype of the iterates.
    args : tuple
        Further arguments of ``fun`` (and of ``jac``).
    jac : True or callable
        True: ``fun`` returns the gradient too. A callable:
        ``jac(theta, *args) -> grad``, shape (N,).
    batch_args : sequence of int
        Indices into ``args`` of the arrays that hold one entry per sample
        along their first axis (e.g. ``(1, 2)`` for x and the target of
        ``args=(unravel, x, target)``); they are shuffled and sliced into
        minibatches, the other arguments passed whole. Empty: every step uses
        all of ``args``.
    batch_size : int, optional
        Samples per minibatch (the last one of an epoch may be smaller). None:
        all samples, one step per epoch.
    shuffle : bool
        Shuffle the samples every epoch.
    learning_rate, beta1, beta2, epsilon : float
        Adam's step size :math:`\\eta`, decay rates and :math:`\\epsilon`.
    maxiter : int
        Maximum number of epochs.
    tol : float
        The improvement that counts (>= 0).
    n_iter_no_change : int
        Epochs without an improvement of ``tol`` before stopping.
    validation : None, float or tuple
        None: no validation. A float in (0, 1): that fraction of the samples of
        ``batch_args`` is held out (drawn with ``seed``) and not trained on. A
        tuple: the arguments to evaluate the validation score with, in place
        of ``args``.
    validation_fun : callable, optional
        ``validation_fun(theta, *validation_args) -> float``, the validation
        score, lower is better. Default: the loss of ``fun`` on the validation
        arguments.
    callback : callable, optional
        ``callback(intermediate_result)`` after every epoch, with an
        ``OptimizeResult`` holding ``x`` (a copy of the current iterate),
        ``fun`` (the epoch's mean training loss), ``nit`` and
        ``validation_score`` (None without validation). Returning True, or
        raising ``StopIteration``, stops the run (status 3).
    seed : None, int or numpy.random.Generator
        Source of the shuffles and of the validation split.
    verbose : bool
        Show progress on stderr: tqdm's bar over the epochs when tqdm is
        installed (it stays on screen after the run, with the last epoch's
        loss), else one line per epoch.

    Returns
    -------
    scipy.optimize.OptimizeResult
        ``x`` (shape (N,), the dtype of ``x0``), ``fun`` (the objective at
        ``x``: one evaluation of ``fun`` at the end over all of ``args``, less
        the samples held out by a ``validation`` fraction), ``nit`` (epochs
        run), ``nfev`` (calls of ``fun``, that last one included), ``njev``
        (gradients computed), ``success`` (True
        for status 0 and 2), ``status`` (0: converged on the training loss, 1:
        ``maxiter`` reached, 2: stopped early on the validation score, 3:
        stopped by the callback), ``message``, ``loss_curve`` (ndarray of the
        mean minibatch loss of every epoch, measured before each step), ``validation_curve`` (ndarray of
        the validation score of every epoch, or None) and
        ``best_validation_score`` (float or None).

    Raises
    ------
    TypeError
        ``fun``, ``jac`` or ``callback`` is not callable where it must be; an
        option of the wrong type; ``args`` is not a tuple.
    ValueError
        An option out of range (the message names it); arguments at
        ``batch_args`` with different numbers of samples; a validation split
        that leaves no sample to train on or none to validate on.

    See Also
    --------
    nblstm.loss_and_grad : The ``fun`` for an LSTM and a readout.
    scipy.optimize.minimize : L-BFGS-B and the other full-batch methods.

    References
    ----------
    .. [1] D. P. Kingma and J. Ba, "Adam: a method for stochastic
       optimization", ICLR 2015, arXiv:1412.6980 (algorithm 1).
    .. [2] scikit-learn, ``sklearn.neural_network.MLPRegressor`` (the stopping
       rules, ``tol`` and ``n_iter_no_change``),
       https://scikit-learn.org/stable/modules/generated/sklearn.neural_network.MLPRegressor.html

    Examples
    --------
    >>> import numpy as np, nblstm
    >>> fun = lambda x: (float(np.sum((x - 3.0) ** 2)), 2 * (x - 3.0))
    >>> result = nblstm.minimize_adam(fun, np.zeros(2), learning_rate=0.1, maxiter=500, tol=1e-10,
    ...                               n_iter_no_change=50)
    >>> result.x.round(3), result.status
    (array([3., 3.]), 0)
    """
    if not callable(fun):
        v.fail("fun", "a callable", type(fun).__name__, TypeError)
    if jac is not True and not callable(jac):
        v.fail("jac", "True or a callable", repr(jac), TypeError)
    if callback is not None and not callable(callback):
        v.fail("callback", "None or a callable", type(callback).__name__, TypeError)
    if validation_fun is not None and not callable(validation_fun):
        v.fail("validation_fun", "None or a callable", type(validation_fun).__name__, TypeError)
    if not isinstance(args, tuple):
        v.fail("args", "a tuple", type(args).__name__, TypeError)
    shuffle = v.flag("shuffle", shuffle)
    learning_rate = _positive("learning_rate", learning_rate)
    beta1 = _positive("beta1", beta1, 1.0) if beta1 != 0 else 0.0
    beta2 = _positive("beta2", beta2, 1.0)
    epsilon = _positive("epsilon", epsilon)
    maxiter = _positive_int("maxiter", maxiter)
    n_iter_no_change = _positive_int("n_iter_no_change", n_iter_no_change)
    try:
        tol = float(tol)
    except (TypeError, ValueError):
        v.fail("tol", "a number >= 0", repr(tol), TypeError)
    if not tol >= 0:
        v.fail("tol", "a number >= 0", repr(tol))
    batch_args = tuple(v.index("batch_args", k) for k in batch_args)
    if any(not 0 <= k < len(args) for k in batch_args):
        v.fail("batch_args", f"indices into args (0 to {len(args) - 1})", repr(batch_args))
    x = np.array(x0, copy=True)
    if x.dtype.kind not in "f":
        x = x.astype(np.float64)
    if x.ndim != 1:
        v.fail("x0", "a 1-D array", f"shape {x.shape}")
    rng = generator(seed)

    sizes = {len(args[k]) for k in batch_args if args[k] is not None}
    if len(sizes) > 1:
        v.fail("batch_args", "arrays with the same number of samples (first axis)", f"lengths {sorted(sizes)}")
    n = sizes.pop() if sizes else 1
    validation_args = None
    if isinstance(validation, tuple):
        validation_args = validation
    elif validation is not None:
        fraction = _positive("validation", validation, 1.0)
        if not batch_args:
            v.fail("validation", "a tuple of arguments when batch_args is empty (no samples to split)",
                   repr(validation))
        n_val = int(np.ceil(fraction * n))
        if n_val < 1 or n_val >= n:
            v.fail("validation", f"a fraction that leaves samples to train and to validate on (n = {n})",
                   repr(validation))
        order = rng.permutation(n)
        validation_args = _sliced(args, batch_args, order[:n_val])
        args = _sliced(args, batch_args, order[n_val:])
        n -= n_val
    if batch_size is None or not batch_args:
        batch_size = n
    batch_size = min(_positive_int("batch_size", batch_size), n)

    counts = {"nfev": 0, "njev": 0}

    def value_and_grad(theta, call_args):
        counts["nfev"] += 1
        counts["njev"] += 1
        if jac is True:
            value, grad = fun(theta, *call_args)
        else:
            value, grad = fun(theta, *call_args), jac(theta, *call_args)
        return float(value), np.asarray(grad)

    def score(theta):
        if validation_fun is not None:
            return float(validation_fun(theta, *validation_args))
        counts["nfev"] += 1
        out = fun(theta, *validation_args)
        return float(out[0] if jac is True else out)

    m = np.zeros_like(x)
    s = np.zeros_like(x)
    t = 0
    losses, scores = [], []
    best, best_x, stall = np.inf, x.copy(), 0
    status = 1
    progress = _Progress(maxiter, verbose)
    try:
        for epoch in range(1, maxiter + 1):
            order = rng.permutation(n) if shuffle and batch_args else np.arange(n)
            total = 0.0
            for start in range(0, n, batch_size):
                rows = order[start:start + batch_size]
                step_args = _sliced(args, batch_args, rows) if batch_args else args
                value, g = value_and_grad(x, step_args)
                total += value * len(rows)
                t += 1
                m = beta1 * m + (1 - beta1) * g
                s = beta2 * s + (1 - beta2) * (g * g)
                step = learning_rate * (m / (1 - beta1 ** t)) / (np.sqrt(s / (1 - beta2 ** t)) + epsilon)
                x = x - step.astype(x.dtype, copy=False)
            loss = total / n
            losses.append(loss)
            val = score(x) if validation_args is not None else None
            if val is not None:
                scores.append(val)
            progress.update(epoch, loss, val)
            watched = loss if val is None else val
            stall = stall + 1 if watched > best - tol else 0
            if watched < best:
                best, best_x = watched, x.copy()
            if callback is not None:
                try:
                    stop = callback(OptimizeResult(x=x.copy(), fun=loss, nit=epoch, validation_score=val))
                except StopIteration:
                    stop = True
                if stop:
                    status = 3
                    break
            if stall > n_iter_no_change:
                status = 0 if val is None else 2
                break
    finally:
        progress.close()
    if validation_args is None:
        best_x = x
    counts["nfev"] += 1                         # the objective at the result, over all the training samples
    if jac is True:
        counts["njev"] += 1
        final = float(fun(best_x, *args)[0])
    else:
        final = float(fun(best_x, *args))
    return OptimizeResult(
        x=best_x, fun=final, nit=len(losses), nfev=counts["nfev"], njev=counts["njev"],
        success=status in (0, 2), status=status, message=MESSAGES[status],
        loss_curve=np.asarray(losses), validation_curve=None if validation_args is None else np.asarray(scores),
        best_validation_score=None if validation_args is None else float(best))
