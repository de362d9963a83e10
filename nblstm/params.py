"""Parameter containers and initialisers.

The four gate blocks of every weight matrix and bias are stacked in the order
input (i), forget (f), cell candidate (g), output (o), each block ``H`` rows:
the layout of ``torch.nn.LSTM`` (``weight_ih_l0``, ``weight_hh_l0``) with the
two PyTorch biases summed into one.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numpy.typing import DTypeLike

from . import _tree
from ._random import generator

__all__ = ["LSTMParams", "LSTMGrads", "init_params", "init_stack", "ravel", "Unravel"]


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

    See Also
    --------
    init_params : Random LSTMParams.
    init_stack : A stack of them, ``stack[l][d]``.
    from_torch, from_keras, from_onnx : LSTMParams from other libraries' weights.
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

    See Also
    --------
    lstm_backward : Returns these.
    ravel : Flattens them, e.g. for ``scipy.optimize.minimize(jac=True)``.
    """

    dx: np.ndarray
    dparams: object
    dh0: np.ndarray
    dc0: np.ndarray


def _check_positive_int(name, value):
    """TypeError for what ``value`` is (a float, a bool, a string), ValueError for its value."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name}: expected a positive integer, got {value!r}")
    if value < 1:
        raise ValueError(f"{name}: expected a positive integer, got {value!r}")


def _check_sizes(input_size, hidden_size):
    _check_positive_int("input_size", input_size)
    _check_positive_int("hidden_size", hidden_size)


def init_params(input_size: int, hidden_size: int, *, dtype: DTypeLike = np.float64, seed=None,
                forget_bias: float = 1.0) -> LSTMParams:
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
        ``W_ih`` (4H, I), ``W_hh`` (4H, H), ``b`` (4H,), of ``dtype``.

    Raises
    ------
    ValueError
        ``input_size`` or ``hidden_size`` is an integer below 1.
        A negative ``seed``.
    TypeError
        ``input_size`` or ``hidden_size`` is not an integer (a float, a bool);
        ``dtype`` is not float32 or float64; ``seed`` is not None, an int,
        a sequence of ints or a Generator.

    See Also
    --------
    init_stack : Several layers and directions.
    lstm : Runs them.

    References
    ----------
    .. [1] PyTorch, ``torch.nn.LSTM``: the U(-1/sqrt(H), 1/sqrt(H)) draw,
       https://pytorch.org/docs/stable/generated/torch.nn.LSTM.html
    .. [2] R. Jozefowicz, W. Zaremba and I. Sutskever, "An empirical
       exploration of recurrent network architectures", ICML 2015 (a forget
       bias of 1).

    Examples
    --------
    >>> p = init_params(3, 5, seed=0)
    >>> p.W_ih.shape, p.W_hh.shape, p.b.shape
    ((20, 3), (20, 5), (20,))
    """
    _check_sizes(input_size, hidden_size)
    dtype = np.dtype(dtype)
    if dtype not in (np.float32, np.float64):
        raise TypeError(f"dtype: expected float32 or float64, got {dtype}")
    rng = generator(seed)
    bound = 1.0 / np.sqrt(hidden_size)
    H = hidden_size
    W_ih = rng.uniform(-bound, bound, (4 * H, input_size))
    W_hh = rng.uniform(-bound, bound, (4 * H, H))
    b = rng.uniform(-bound, bound, 4 * H)
    b[H:2 * H] += forget_bias
    return LSTMParams(W_ih.astype(dtype), W_hh.astype(dtype), b.astype(dtype))


def init_stack(input_size: int, hidden_size: int, num_layers: int = 1, *, bidirectional: bool = False,
               dtype: DTypeLike = np.float64, seed=None,
               forget_bias: float = 1.0) -> tuple[tuple[LSTMParams, ...], ...]:
    """Random weights for a stack of LSTM layers, as ``torch.nn.LSTM`` lays them out.

    Each layer and direction is drawn by :func:`init_params` from one
    ``numpy.random.Generator`` made from ``seed``, layer by layer, forward
    before reverse, so a seed gives the same stack on every machine.

    Parameters
    ----------
    input_size : int
        I, features per time step of the input to layer 0.
    hidden_size : int
        H, the hidden and cell size of every layer.
    num_layers : int
        L, the number of layers.
    bidirectional : bool
        Two directions (forward, reverse) per layer if True, else one.
    dtype : {np.float64, np.float32}
        dtype of the arrays.
    seed : None, int or numpy.random.Generator
        Source of randomness.
    forget_bias : float
        Added to the forget-gate block ``b[H:2H]`` of every layer and direction.

    Returns
    -------
    tuple of tuples of LSTMParams
        ``stack[l][d]``: layer ``l`` (length L), direction ``d`` (length
        D = 2 if ``bidirectional`` else 1). Layer 0 has ``W_ih`` (4H, I), the
        layers above (4H, D*H); every ``W_hh`` is (4H, H), every ``b`` (4H,).

    Raises
    ------
    ValueError
        ``input_size``, ``hidden_size`` or ``num_layers`` is an integer below 1.
        A negative ``seed``.
    TypeError
        ``input_size``, ``hidden_size`` or ``num_layers`` is not an integer;
        ``dtype`` is not float32 or float64; ``seed`` is not None, an int,
        a sequence of ints or a Generator.

    See Also
    --------
    init_params : One layer and direction.
    lstm : Runs the stack (``h0``, ``c0`` of shape (L*D, B, H)).

    References
    ----------
    .. [1] PyTorch, ``torch.nn.LSTM`` (the layout of the stack and its
       initial draw), https://pytorch.org/docs/stable/generated/torch.nn.LSTM.html

    Examples
    --------
    >>> stack = init_stack(3, 5, num_layers=2, bidirectional=True, seed=0)
    >>> [[p.W_ih.shape for p in layer] for layer in stack]
    [[(20, 3), (20, 3)], [(20, 10), (20, 10)]]
    """
    _check_sizes(input_size, hidden_size)
    _check_positive_int("num_layers", num_layers)
    rng = generator(seed)
    D = 2 if bidirectional else 1
    layers = []
    for layer in range(num_layers):
        n_in = input_size if layer == 0 else D * hidden_size
        layers.append(tuple(init_params(n_in, hidden_size, dtype=dtype, seed=rng, forget_bias=forget_bias)
                            for _ in range(D)))
    return tuple(layers)


# ---------------------------------------------------------------------------
# ravel: a tree of arrays <-> one flat vector (jax.flatten_util.ravel_pytree)
# ---------------------------------------------------------------------------

def _leaf_array(path, leaf):
    """A leaf of :func:`ravel`'s tree as a numeric array (None stays None: an empty subtree)."""
    if leaf is None:
        return None
    if isinstance(leaf, (np.ndarray, np.generic, int, float)) or hasattr(leaf, "__array__"):
        a = np.asarray(leaf)
        if a.dtype.kind not in "biufc":
            raise TypeError(f"{path}: expected a numeric array, got dtype {a.dtype}")
        return a
    raise TypeError(f"{path}: expected an array, tuple, list, dict, NamedTuple or None, "
                    f"got {type(leaf).__name__}")


def ravel(tree) -> tuple[np.ndarray, "Unravel"]:
    """Flatten a tree of arrays into one 1-D vector, and a function to undo it.

    Like ``jax.flatten_util.ravel_pytree``: the tree may be an
    :class:`LSTMParams`, a stack (tuple of tuples of LSTMParams), an
    :class:`LSTMGrads`, or any nesting of tuples, lists, dicts (in sorted key
    order), NamedTuples and arrays, e.g. ``(stack, (W_out, b_out))`` to add a
    readout layer. ``None`` is an empty subtree. This is what
    ``scipy.optimize.minimize`` needs: ``theta`` for ``x0`` and the gradient
    tree raveled the same way for ``jac``.

    Parameters
    ----------
    tree : array, tuple, list, dict, NamedTuple or None, nested
        The arrays to flatten; numbers count as 0-d arrays.

    Returns
    -------
    theta : ndarray, shape (N,)
        A new contiguous vector of all N elements, leaf by leaf in tree order
        (each leaf in C order), of the leaves' common dtype
        (``np.result_type``; float64 for an empty tree).
    unravel : Unravel
        A callable that pickles: ``unravel(v)`` takes a vector of shape (N,) and returns a new tree of
        the same nesting, container types (NamedTuples included), shapes and
        dtypes, made of fresh arrays (``v`` is copied, never aliased). ``v`` may
        have any real dtype that casts to the leaves' dtypes with
        ``same_kind`` casting, e.g. the float64 vectors SciPy hands back for
        float32 weights. A vector of another length or of a complex, object or
        string dtype raises ValueError.

    Raises
    ------
    TypeError
        A leaf is not a numeric array (or number), or a node is not a tuple,
        list, dict, NamedTuple or None (the message gives its path, e.g.
        ``tree[1].W_hh``).

    See Also
    --------
    lstm_backward : Its gradients ravel the same way as the parameters.
    nblstm.testing.check_grad : Checks gradients of trees of arrays.

    References
    ----------
    .. [1] JAX, ``jax.flatten_util.ravel_pytree``,
       https://jax.readthedocs.io/en/latest/_autosummary/jax.flatten_util.ravel_pytree.html

    Examples
    --------
    >>> import numpy as np
    >>> params = init_params(2, 3, seed=0)
    >>> theta, unravel = ravel((params, np.zeros(3)))
    >>> theta.shape
    (75,)
    >>> p, w = unravel(theta)
    >>> type(p).__name__, p.W_hh.shape, w.shape
    ('LSTMParams', (12, 3), (3,))
    >>> unravel(theta[:-1])
    Traceback (most recent call last):
    ...
    ValueError: theta: expected a 1-D vector of 75 elements, got shape (74,)
    """
    leaves = []

    def number(path, leaf):
        # the skeleton keeps each leaf's index in ``leaves``, not the user's arrays
        a = _leaf_array(path, leaf)
        if a is None:
            return None
        leaves.append(a)
        return len(leaves) - 1

    skeleton = _tree.map_leaves(number, tree, sort_keys=True)
    shapes = [a.shape for a in leaves]
    dtypes = [a.dtype for a in leaves]
    sizes = [a.size for a in leaves]
    offsets = np.cumsum([0] + sizes)
    n = int(offsets[-1])
    dtype = np.result_type(*dtypes) if leaves else np.dtype(np.float64)
    theta = np.empty(n, dtype)
    for a, start, stop in zip(leaves, offsets[:-1], offsets[1:]):
        theta[start:stop] = a.ravel()

    return theta, Unravel(skeleton, shapes, dtypes, offsets)


class Unravel:
    """The inverse of one :func:`ravel`: ``unravel(v)`` rebuilds the tree from a vector.

    A plain object (the tree's skeleton, the leaves' shapes, dtypes and
    offsets), so it pickles wherever the tree's container types import
    (``multiprocessing``, joblib, Dask send it to workers). Made by
    :func:`ravel`; see its ``unravel`` for what a call takes and raises.
    """

    def __init__(self, skeleton, shapes, dtypes, offsets):
        self.skeleton = skeleton
        self.shapes = list(shapes)
        self.dtypes = list(dtypes)
        self.offsets = np.asarray(offsets, dtype=np.int64)

    @property
    def size(self):
        """The length N of the vectors this takes."""
        return int(self.offsets[-1])

    def __call__(self, v):
        """The tree of fresh arrays that vector ``v`` of shape (N,) holds (see :func:`ravel`)."""
        v = np.asarray(v)
        n, dtypes = self.size, self.dtypes
        if v.shape != (n,):
            raise ValueError(f"theta: expected a 1-D vector of {n} elements, got shape {v.shape}")
        if v.dtype.kind not in "biuf" or not all(np.can_cast(v.dtype, d, "same_kind") for d in dtypes):
            wanted = ", ".join(sorted({str(d) for d in dtypes})) or "float64"
            raise ValueError(f"theta: expected a real vector that casts to {wanted}, got dtype {v.dtype}")
        offsets = self.offsets
        pieces = [v[start:stop].reshape(shape).astype(d, copy=True)
                  for start, stop, shape, d in zip(offsets[:-1], offsets[1:], self.shapes, dtypes)]
        return _tree.map_leaves(lambda _, k: None if k is None else pieces[k], self.skeleton,
                                sort_keys=True)

    def __repr__(self):
        return f"<nblstm.params.Unravel of {len(self.shapes)} arrays, {self.size} elements>"
