"""Finite-difference gradient checks, for nblstm's tests and for your own losses.

:func:`check_grad` compares an analytic gradient with float64 central
differences, like :func:`scipy.optimize.check_grad`, but for functions of
several arrays or of trees of arrays (tuples, lists, dicts, NamedTuples such
as :class:`nblstm.LSTMParams`):

- small arrays are checked element by element,

  .. math::

      \\frac{\\partial f}{\\partial x_j} \\approx
      \\frac{f(x + h_j e_j) - f(x - h_j e_j)}{2 h_j};

- large arrays along a few random unit directions :math:`v`, comparing the
  directional derivative with the inner product of the gradient and ``v``,

  .. math::

      \\frac{f(x + h v) - f(x - h v)}{2 h} \\approx \\langle \\nabla f, v \\rangle .

:func:`assert_grad_close` raises an ``AssertionError`` with a report when the
check fails. :class:`LinearLoss` is the test loss of nblstm's own gradient
tests, :math:`L = \\sum w_y \\odot y + \\sum w_h \\odot h_n + \\sum w_c \\odot c_n`
with random weights, whose cotangents are simply the weights; and
:func:`check_lstm_grad` checks :func:`nblstm.lstm_backward` (any backend) with it.

Examples
--------
>>> import numpy as np
>>> from nblstm.testing import check_grad
>>> A = np.array([[2.0, 1.0], [0.0, 3.0]])
>>> fun = lambda x: x @ A @ x
>>> grad = lambda x: (A + A.T) @ x
>>> check_grad(fun, grad, np.array([0.5, -1.0])).ok
True
>>> check_grad(fun, lambda x: A @ x, np.array([0.5, -1.0])).ok
False
"""
from __future__ import annotations

from typing import Any, Callable, NamedTuple

import numpy as np

from . import _tree
from ._api import lstm, lstm_backward, lstm_forward
from ._random import generator

__all__ = [
    "CheckGradResult",
    "LeafCheck",
    "LinearLoss",
    "assert_grad_close",
    "check_grad",
    "check_lstm_grad",
]

#: cube root of float64 machine epsilon: the step that balances the truncation
#: error (~h^2) and the rounding error (~eps/h) of a central difference
DEFAULT_EPS = float(np.finfo(np.float64).eps ** (1.0 / 3.0))
#: arrays with at most this many elements are checked element by element
ELEMENTWISE_MAX = 64
#: random directions per array for larger arrays
DEFAULT_DIRECTIONS = 8


class LeafCheck(NamedTuple):
    """The comparison for one array (leaf) of the arguments.

    Attributes
    ----------
    path : str
        Where the array sits in the arguments, e.g. ``"args[1].W_hh"``.
    mode : {"elementwise", "directional"}
        How it was checked.
    numeric : ndarray
        Central differences: the shape of the array (elementwise), or shape
        ``(k,)`` directional derivatives along ``k`` random directions.
    analytic : ndarray
        The gradient, same shape as ``numeric`` (for directional checks the
        inner products of the gradient with the directions).
    max_abs_err : float
        ``max |numeric - analytic|`` (0 for an empty array).
    max_rel_err : float
        ``max |numeric - analytic| / max(|numeric|, |analytic|)``, 0/0 read as 0.
    ok : bool
        Every entry satisfies
        ``|numeric - analytic| <= atol + rtol * max(|numeric|, |analytic|)``.

    See Also
    --------
    CheckGradResult : Holds one per checked array.
    """

    path: str
    mode: str
    numeric: np.ndarray
    analytic: np.ndarray
    max_abs_err: float
    max_rel_err: float
    ok: bool


class CheckGradResult(NamedTuple):
    """Result of :func:`check_grad`.

    Attributes
    ----------
    ok : bool
        All checked entries of all arrays are within tolerance.
    max_abs_err : float
        Largest absolute difference over all checks.
    max_rel_err : float
        Largest relative difference over all checks.
    worst : str
        The check closest to (or furthest past) its tolerance, with both values.
    n_checks : int
        Number of compared numbers (elements plus directions).
    n_evals : int
        Number of calls of ``fun``.
    atol, rtol : float
        The tolerances used.
    leaves : tuple of LeafCheck
        One entry per checked array, in argument order.

    See Also
    --------
    check_grad : Returns it.
    """

    ok: bool
    max_abs_err: float
    max_rel_err: float
    worst: str
    n_checks: int
    n_evals: int
    atol: float
    rtol: float
    leaves: tuple

    def summary(self) -> str:
        """A multi-line, human-readable report (what :func:`assert_grad_close` raises)."""
        status = "passed" if self.ok else "FAILED"
        lines = [
            f"gradient check {status}: {self.n_checks} checks, {self.n_evals} evaluations, "
            f"max abs err {self.max_abs_err:.3e}, max rel err {self.max_rel_err:.3e} "
            f"(atol {self.atol:.1e}, rtol {self.rtol:.1e})",
            f"  worst: {self.worst}",
        ]
        for leaf in self.leaves:
            mark = "ok  " if leaf.ok else "FAIL"
            lines.append(
                f"  {mark} {leaf.path} ({leaf.mode}, {leaf.numeric.size} checks): "
                f"abs err {leaf.max_abs_err:.3e}, rel err {leaf.max_rel_err:.3e}"
            )
        return "\n".join(lines)


# --------------------------------------------------------------------------- trees

def _is_differentiable(leaf):
    return isinstance(leaf, np.ndarray) and leaf.dtype.kind == "f"


def _working_copy(tree, path):
    """``tree`` with every floating-point array replaced by a float64 C-contiguous copy."""

    def copy(leaf_path, leaf):
        if isinstance(leaf, np.ndarray) and leaf.dtype.kind == "c":
            raise TypeError(f"{leaf_path}: complex arrays are not supported, got {leaf.dtype}")
        if _is_differentiable(leaf):
            return np.array(leaf, dtype=np.float64, order="C", copy=True)
        return leaf

    return _tree.map_leaves(copy, tree, path)


def _pair(work_tree, grad_tree, path, slots):
    """Walk the working arguments and the gradient in lockstep.

    Appends ``(path, work_array, grad_leaf)`` for every differentiable array
    whose gradient is not None; a None subtree of the gradient means "nothing
    below is checked".
    """
    if grad_tree is None:
        return
    children = _tree.children(work_tree)
    if children is None:
        if _is_differentiable(work_tree):
            slots.append((path, work_tree, grad_tree))
        return
    grad_children = _tree.children(grad_tree)
    if grad_children is None or len(grad_children) != len(children):
        raise ValueError(
            f"grad: expected a {type(work_tree).__name__} with {len(children)} entries at {path} "
            f"(shaped like the arguments), got {type(grad_tree).__name__}"
        )
    if isinstance(work_tree, dict):
        if set(grad_tree) != set(work_tree):
            raise ValueError(f"grad: expected keys {list(work_tree)} at {path}, got {list(grad_tree)}")
        grad_values = [grad_tree[k] for k in work_tree]
    else:
        grad_values = [g for _, g in grad_children]
    for (label, child), g in zip(children, grad_values):
        _pair(child, g, path + label, slots)


# --------------------------------------------------------------------------- checker

def _scalar(value):
    out = np.asarray(value)
    if out.size != 1 or out.dtype.kind not in "biuf":
        raise ValueError(f"fun: expected a real scalar, got {type(value).__name__} of shape {out.shape}")
    return float(out.reshape(()))


def _index_text(shape, flat):
    return "[" + ", ".join(str(i) for i in np.unravel_index(flat, shape)) + "]" if shape else ""


def check_grad(fun: Callable[..., Any], grad: Callable[..., Any], args, *, eps=None,
               rtol=1e-6, atol=None, directions=None, seed=None) -> CheckGradResult:
    """Compare an analytic gradient with float64 central differences.

    Parameters
    ----------
    fun : callable
        ``fun(*args) -> float``, the scalar function.
    grad : callable
        ``grad(*args)``, its gradient: a tuple or list with one entry per
        argument, each entry shaped like that argument (an array of the same
        shape for an array, the same container for a tree). An entry (or a
        subtree) that is ``None`` is not checked. If ``args`` is a single
        array, ``grad`` returns a single array.
    args : ndarray or sequence
        The point, a single array or the tuple of positional arguments of
        ``fun``. Every argument may be a tree of tuples, lists, dicts and
        NamedTuples. Floating-point NumPy arrays are differentiated; every other
        leaf (None, integer arrays, Python scalars, strings) is passed through
        unchanged. Differentiated arrays are replaced by float64 copies, so
        ``fun`` and ``grad`` are evaluated in float64 whatever the input
        dtype, and ``args`` is never modified.
    eps : float, optional
        Step. Default: ``DEFAULT_EPS * max(1, |x_j|)`` for element ``j`` and
        ``DEFAULT_EPS * max(1, max|x|)`` for a direction, where
        ``DEFAULT_EPS = eps_float64 ** (1/3)`` (about 6e-6) balances truncation
        and rounding errors. The difference quotient divides by the step as
        actually represented, ``(x + h) - (x - h)``.
    rtol : float
        Relative tolerance: an entry passes if
        ``|numeric - analytic| <= atol + rtol * max(|numeric|, |analytic|)``.
    atol : float, optional
        Absolute tolerance. Default ``1e-7 * max(1, |fun(*args)|)``: the
        rounding error of a central difference grows with the size of ``fun``.
    directions : int, optional
        If None, arrays with at most ``ELEMENTWISE_MAX`` (64) elements are
        checked element by element and larger arrays along
        ``DEFAULT_DIRECTIONS`` (8) random unit directions. An integer ``k``
        checks every array along ``k`` random directions.
    seed : None, int or numpy.random.Generator
        Source of the random directions.

    Returns
    -------
    CheckGradResult
        ``ok``, ``max_abs_err``, ``max_rel_err``, ``worst``, counts and a
        :class:`LeafCheck` per array.

    Raises
    ------
    ValueError
        If ``fun`` does not return a finite real scalar, a gradient has the wrong
        shape or structure, nothing is differentiable, or an option is invalid.
    TypeError
        If an argument holds a complex array.

    See Also
    --------
    assert_grad_close : The same check, raising ``AssertionError`` on failure.
    scipy.optimize.check_grad : The one-array original.

    Notes
    -----
    Element-wise checks cost two evaluations of ``fun`` per element, random
    directions two per direction. A direction check compares
    ``f(x + h v) - f(x - h v)`` with ``<grad, (x + h v) - (x - h v)>`` (both
    divided by ``2 h``), which catches an error in any entry with probability
    one, but an error confined to one entry of an ``n``-element array is
    scaled by about ``1/sqrt(n)``: check small arrays element by element.
    """
    single = isinstance(args, np.ndarray)
    arg_tuple = (args,) if single else tuple(args)
    if eps is not None and not (np.isfinite(eps) and eps > 0):
        raise ValueError(f"eps: expected a positive finite number, got {eps!r}")
    if directions is not None and (isinstance(directions, bool) or not isinstance(directions, (int, np.integer))
                                   or directions < 1):
        raise ValueError(f"directions: expected None or a positive integer, got {directions!r}")
    if not (rtol >= 0) or (atol is not None and not (atol >= 0)):
        raise ValueError(f"rtol, atol: expected non-negative numbers, got {rtol!r}, {atol!r}")
    rng = generator(seed)

    work_args = _working_copy(arg_tuple, "args")
    g = grad(*work_args)
    g_tuple = (g,) if single else g
    if not isinstance(g_tuple, (tuple, list)) or len(g_tuple) != len(arg_tuple):
        n = len(arg_tuple)
        got = (f"a {type(g).__name__} of {len(g)}" if isinstance(g_tuple, (tuple, list))
               else type(g).__name__)
        raise ValueError(f"grad: expected a tuple or list of {n} {'entry' if n == 1 else 'entries'} "
                         f"(one per argument), got {got}")
    grad_slots = []
    for k, (work, g_k) in enumerate(zip(work_args, g_tuple)):
        _pair(work, g_k, f"args[{k}]", grad_slots)
    if not grad_slots:
        raise ValueError("args: expected at least one floating-point array with a gradient, got none")

    def f():
        return _scalar(fun(*work_args))

    f0 = f()
    n_evals = 1
    if not np.isfinite(f0):
        raise ValueError(f"fun: expected a finite value at args, got {f0!r}")
    if atol is None:
        atol = 1e-7 * max(1.0, abs(f0))

    leaves = []
    worst_ratio, worst = -1.0, "no checks"
    total_checks = 0
    for path, work, g_leaf in grad_slots:
        g_arr = np.asarray(g_leaf)
        if g_arr.shape != work.shape:
            raise ValueError(f"grad: expected shape {work.shape} for {path}, got {g_arr.shape}")
        if g_arr.dtype.kind not in "biuf":
            raise TypeError(f"grad: expected a real array for {path}, got {g_arr.dtype}")
        g_arr = g_arr.astype(np.float64)
        flat = work.reshape(-1)   # a view: work is C-contiguous
        elementwise = directions is None and work.size <= ELEMENTWISE_MAX
        if elementwise:
            numeric = np.empty(work.size)
            for j in range(work.size):
                x_j = flat[j]
                h = eps if eps is not None else DEFAULT_EPS * max(1.0, abs(x_j))
                flat[j] = x_j + h
                xp = flat[j]
                fp = f()
                flat[j] = x_j - h
                xm = flat[j]
                fm = f()
                flat[j] = x_j
                numeric[j] = (fp - fm) / (xp - xm)
            n_evals += 2 * work.size
            analytic = g_arr.reshape(-1)
            mode = "elementwise"
        else:
            k = DEFAULT_DIRECTIONS if directions is None else int(directions)
            if work.size == 0:
                k = 0
            numeric = np.empty(k)
            analytic = np.empty(k)
            x0 = flat.copy()
            scale = max(1.0, float(np.max(np.abs(x0)))) if work.size else 1.0
            h = eps if eps is not None else DEFAULT_EPS * scale
            g_flat = g_arr.reshape(-1)
            for d in range(k):
                v = rng.standard_normal(work.size)
                v /= np.linalg.norm(v)
                flat[:] = x0 + h * v
                xp = flat.copy()
                fp = f()
                flat[:] = x0 - h * v
                xm = flat.copy()
                fm = f()
                flat[:] = x0
                numeric[d] = (fp - fm) / (2 * h)
                analytic[d] = np.dot(g_flat, xp - xm) / (2 * h)
            n_evals += 2 * k
            mode = "directional"
        err = np.abs(numeric - analytic)
        scale_arr = np.maximum(np.abs(numeric), np.abs(analytic))
        with np.errstate(invalid="ignore", divide="ignore"):
            rel = np.where(scale_arr > 0, err / np.where(scale_arr > 0, scale_arr, 1.0), 0.0)
        bound = atol + rtol * scale_arr
        passed = bool(np.all(err <= bound)) and bool(np.all(np.isfinite(numeric)))
        if numeric.size:
            ratio = np.where(np.isfinite(err), err / np.where(bound > 0, bound, np.inf), np.inf)
            ratio = np.where(bound > 0, ratio, np.where(err > 0, np.inf, 0.0))
            j = int(np.argmax(ratio))
            if ratio[j] > worst_ratio:
                worst_ratio = float(ratio[j])
                where = _index_text(work.shape, j) if elementwise else f" direction {j}"
                worst = (f"{path}{where}: numeric {numeric[j]:.9g}, analytic {analytic[j]:.9g}, "
                         f"abs err {err[j]:.3e} (allowed {bound[j]:.3e})")
        numeric_out = numeric.reshape(work.shape) if elementwise else numeric
        analytic_out = analytic.reshape(work.shape) if elementwise else analytic
        leaves.append(LeafCheck(path, mode, numeric_out, analytic_out,
                                float(err.max()) if err.size else 0.0,
                                float(rel.max()) if rel.size else 0.0, passed))
        total_checks += numeric.size

    return CheckGradResult(
        ok=all(leaf.ok for leaf in leaves),
        max_abs_err=max((leaf.max_abs_err for leaf in leaves), default=0.0),
        max_rel_err=max((leaf.max_rel_err for leaf in leaves), default=0.0),
        worst=worst,
        n_checks=total_checks,
        n_evals=n_evals,
        atol=float(atol),
        rtol=float(rtol),
        leaves=tuple(leaves),
    )


def assert_grad_close(fun, grad, args, **kwargs) -> CheckGradResult:
    """:func:`check_grad`, raising ``AssertionError`` with its report on failure.

    Parameters
    ----------
    fun, grad : callable
        As for :func:`check_grad`.
    args : tuple
        As for :func:`check_grad`.
    **kwargs
        ``eps``, ``rtol``, ``atol``, ``directions``, ``seed``: as for :func:`check_grad`.

    Returns
    -------
    CheckGradResult
        The result, when the check passed.

    Raises
    ------
    AssertionError
        If any entry is out of tolerance; the message is ``result.summary()``.

    See Also
    --------
    check_grad : The check, returning its result.
    """
    result = check_grad(fun, grad, args, **kwargs)
    if not result.ok:
        raise AssertionError(result.summary())
    return result


# --------------------------------------------------------------------------- LSTM loss

class LinearLoss(NamedTuple):
    """The scalar test loss of an LSTM's outputs, linear with fixed weights.

    .. math::

        L = \\sum w_y \\odot y + \\sum w_h \\odot h_n + \\sum w_c \\odot c_n

    so its cotangents are the weights: ``dy = w_y``, ``dh_n = w_h``,
    ``dc_n = w_c``. Random weights make every output matter with a different
    sign and size, which a plain sum would not.

    Attributes
    ----------
    w_y : ndarray, shape of y
        (B, T, H), (T, B, H) with ``time_major``, or (T, H) unbatched.
    w_h, w_c : ndarray, shape of h_n
        (B, H), or (H,) unbatched.

    See Also
    --------
    check_lstm_grad : Checks nblstm's gradients with it.
    """

    w_y: np.ndarray
    w_h: np.ndarray
    w_c: np.ndarray

    @classmethod
    def random(cls, y_shape, state_shape, *, seed=None, dtype=np.float64):
        """Standard-normal weights.

        Parameters
        ----------
        y_shape : tuple of int
            Shape of ``y``.
        state_shape : tuple of int
            Shape of ``h_n`` (and ``c_n``).
        seed : None, int or numpy.random.Generator
            Source of randomness.
        dtype : dtype
            dtype of the weights.

        Returns
        -------
        LinearLoss
        """
        rng = generator(seed)
        return cls(rng.standard_normal(y_shape).astype(dtype),
                   rng.standard_normal(state_shape).astype(dtype),
                   rng.standard_normal(state_shape).astype(dtype))

    def __call__(self, y, state):
        """L for ``y`` and ``state = (h_n, c_n)``, as a float (summed in float64)."""
        h_n, c_n = state
        return float(np.sum(self.w_y * np.asarray(y, np.float64))
                     + np.sum(self.w_h * np.asarray(h_n, np.float64))
                     + np.sum(self.w_c * np.asarray(c_n, np.float64)))

    def cotangents(self):
        """``dict(dy=w_y, dh_n=w_h, dc_n=w_c)``, the keyword arguments of ``lstm_backward``."""
        return dict(dy=self.w_y, dh_n=self.w_h, dc_n=self.w_c)


def check_lstm_grad(x, params, h0=None, c0=None, *, lengths=None, reverse=False, time_major=False,
                    backend="cpu", loss=None, seed=None, **kwargs) -> CheckGradResult:
    """Check :func:`nblstm.lstm_backward` against central differences of :func:`nblstm.lstm`.

    The gradients of a :class:`LinearLoss` with respect to ``x``, every array
    of ``params``, ``h0`` and ``c0`` are compared with finite differences, all
    in float64 (the arrays are converted).

    Parameters
    ----------
    x : ndarray, shape (B, T, I), (T, B, I) with ``time_major``, or (T, I)
        Input sequences.
    params : LSTMParams or stack
        ``W_ih`` (4H, I), ``W_hh`` (4H, H), ``b`` (4H,); or a stack of layers
        as :func:`nblstm.lstm` takes it (every array is checked).
    h0, c0 : ndarray, shape (B, H), (H,) or (L*D, B, H) for a stack, optional
        Initial state; zeros if None (and then still checked).
    lengths : array_like of int, shape (B,), optional
        Passed to :func:`nblstm.lstm_forward` and :func:`nblstm.lstm`.
    reverse, time_major : bool
        Passed to :func:`nblstm.lstm_forward` and :func:`nblstm.lstm`.
    backend : {"cpu", "cuda"}
        Passed to :func:`nblstm.lstm_forward` and :func:`nblstm.lstm`.
    loss : LinearLoss, optional
        The loss; random standard-normal weights from ``seed`` if None.
    seed : None, int or numpy.random.Generator
        Source of the loss weights and the random directions.
    **kwargs
        ``eps``, ``rtol``, ``atol``, ``directions``: as for :func:`check_grad`.

    Returns
    -------
    CheckGradResult
        Paths name the arrays ``args[0]`` (x), ``args[1].W_ih``,
        ``args[1].W_hh``, ``args[1].b``, ``args[2]`` (h0) and ``args[3]`` (c0).

    Raises
    ------
    TypeError, ValueError
        Bad arguments, as :func:`nblstm.lstm` raises them.

    See Also
    --------
    check_grad : The general check.
    nblstm.lstm_backward : The gradients checked.
    """
    rng = generator(seed)
    x = np.array(x, dtype=np.float64)
    params = _to_float64(params)
    options = dict(lengths=lengths, reverse=reverse, time_major=time_major, backend=backend)
    y, (h_n, _) = lstm(x, params, h0, c0, **options)
    h0 = np.zeros(h_n.shape) if h0 is None else np.array(h0, dtype=np.float64)
    c0 = np.zeros(h_n.shape) if c0 is None else np.array(c0, dtype=np.float64)
    if loss is None:
        loss = LinearLoss.random(y.shape, h_n.shape, seed=rng)

    def fun(x, params, h0, c0):
        y, state = lstm(x, params, h0, c0, **options)
        return loss(y, state)

    def grad(x, params, h0, c0):
        _, _, cache = lstm_forward(x, params, h0, c0, **options)
        g = lstm_backward(cache, **loss.cotangents())
        return g.dx, g.dparams, g.dh0, g.dc0

    return check_grad(fun, grad, (x, params, h0, c0), seed=rng, **kwargs)


def _to_float64(tree):
    """``tree`` (an LSTMParams or a stack of them) with every leaf as a float64 array."""
    return _tree.map_leaves(lambda _, leaf: np.array(leaf, dtype=np.float64), tree)
