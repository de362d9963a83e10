"""Every argument check and error message of the public functions, in one place.

Messages name the argument and quote what was expected and what came, in the
form ``"<argument>: expected <expected>, got <actual>"``. Shapes and values
raise ValueError, dtypes TypeError.
"""
from __future__ import annotations

import operator
import warnings
from typing import NamedTuple

import numpy as np

from .params import LSTMParams

BACKENDS = ("cpu", "cuda")


class Stack(NamedTuple):
    """``params`` checked and normalised by :func:`stack`.

    Attributes
    ----------
    layers : list of list of tuple
        ``layers[l][d]`` is (W_ih, W_hh, b) of direction d of layer l, as the
        backend's arrays (``backend.asarray``).
    single : bool
        True when ``params`` was one LSTMParams (results are not stacked).
    input_size, hidden_size, num_directions : int
        I, H and D.
    """

    layers: list
    single: bool
    input_size: int
    hidden_size: int
    num_directions: int


#: NumPy's warning for an array made from a ragged nested list (NumPy < 1.24; an error from 1.24)
_RAGGED_WARNING = getattr(getattr(np, "exceptions", np), "VisibleDeprecationWarning", DeprecationWarning)

def fail(name, expected, got, error=ValueError):
    raise error(f"{name}: expected {expected}, got {got}")


def backend_name(backend):
    if not isinstance(backend, str) or backend not in BACKENDS:
        raise ValueError(f"Unknown backend {backend!r}; expected one of {', '.join(map(repr, BACKENDS))}")
    return backend


def flag(name, value):
    if not isinstance(value, (bool, np.bool_)):
        fail(name, "a bool", repr(value), TypeError)
    return bool(value)


def float_dtype(name, dtype):
    """Reject what cannot be computed in real floating point."""
    if dtype.kind in "biuf" and dtype.itemsize <= 8:
        return
    fail(name, "a real numeric array (bool, integer, float16/32/64)", f"dtype {dtype}", TypeError)


def compute_dtype(dtypes):
    """np.result_type of the inputs, mapped onto float32 or float64."""
    dtype = np.result_type(*dtypes)
    if dtype.kind in "biu":
        return np.dtype(np.float64)
    if dtype == np.float16:
        return np.dtype(np.float32)
    return dtype


def array(name, a, backend):
    """The backend's array view of ``a``, with a real numeric dtype."""
    if a is None:
        fail(name, "an array", "None", TypeError)
    not_masked(name, a)
    try:
        if isinstance(a, (list, tuple)):
            # NumPy < 1.24 warns about a ragged list (and makes an object array) where later
            # versions raise ValueError: the same error on every NumPy
            with warnings.catch_warnings():
                warnings.simplefilter("error", _RAGGED_WARNING)
                arr = backend.asarray(a)
        else:
            arr = backend.asarray(a)
    except (TypeError, ValueError, _RAGGED_WARNING) as exc:
        fail(name, "an array", f"{type(a).__name__} ({exc})", TypeError)
    float_dtype(name, arr.dtype)
    return arr


def not_masked(name, a):
    """Refuse a masked array, as scipy.linalg does: its values under the mask would be used."""
    if isinstance(a, np.ma.MaskedArray):
        fail(name, "a plain array (masked arrays are not supported: pass lengths for padded "
             "steps, or fill the masked values yourself)", "numpy.ma.MaskedArray", TypeError)


def layer_params(name, p, backend):
    """Validate one LSTMParams; returns (W_ih, W_hh, b) arrays and (I, H)."""
    if not (isinstance(p, LSTMParams) or (isinstance(p, (tuple, list)) and len(p) == 3)):
        fail(name, "LSTMParams(W_ih, W_hh, b)", type(p).__name__, TypeError)
    W_ih, W_hh, b = (array(f"{name}.{field}", a, backend) for field, a in zip(LSTMParams._fields, p))
    if W_hh.ndim != 2 or W_hh.shape[0] != 4 * W_hh.shape[1] or W_hh.shape[1] == 0:
        fail(f"{name}.W_hh", "shape (4*H, H) with H >= 1", f"shape {tuple(W_hh.shape)}")
    H = W_hh.shape[1]
    if W_ih.ndim != 2 or W_ih.shape[0] != 4 * H or W_ih.shape[1] == 0:
        fail(f"{name}.W_ih", f"shape ({4 * H}, I) with I >= 1 to match W_hh's H={H}",
             f"shape {tuple(W_ih.shape)}")
    if tuple(b.shape) != (4 * H,):
        fail(f"{name}.b", f"shape ({4 * H},) to match W_hh's H={H}", f"shape {tuple(b.shape)}")
    return (W_ih, W_hh, b), (W_ih.shape[1], H)


def stack(params, backend):
    """Normalise ``params`` to a list of layers of (W_ih, W_hh, b) triples.

    Returns
    -------
    Stack
    """
    # three arrays, in a tuple or a list, are one layer: a layer of a stack is a tuple
    # of LSTMParams, which has no shape
    single = isinstance(params, LSTMParams) or (
        isinstance(params, (tuple, list)) and len(params) == 3
        and all(hasattr(a, "shape") for a in params))
    layers_in = ((params,),) if single else params
    if not isinstance(layers_in, (tuple, list)) or len(layers_in) == 0:
        fail("params", "LSTMParams or a non-empty sequence of layers", type(params).__name__, TypeError)
    layers, H, D = [], None, None
    for l, layer in enumerate(layers_in):
        if isinstance(layer, LSTMParams) or not isinstance(layer, (tuple, list)) or len(layer) not in (1, 2):
            fail(f"params[{l}]", "a tuple of 1 or 2 LSTMParams (forward, reverse)", _describe(layer))
        if D is None:
            D = len(layer)
        elif len(layer) != D:
            fail(f"params[{l}]", f"{D} direction(s) like layer 0", f"{len(layer)}")
        directions = []
        for d, p in enumerate(layer):
            name = "params" if single else f"params[{l}][{d}]"
            arrays, (I_ld, H_ld) = layer_params(name, p, backend)
            if H is None:
                H, input_size = H_ld, I_ld
            elif H_ld != H:
                fail(f"{name}.W_hh", f"hidden size {H} like params[0][0]", f"hidden size {H_ld}")
            expected_in = input_size if l == 0 else D * H
            if I_ld != expected_in:
                what = "layer 0's input size" if l == 0 else f"num_directions*H = {D}*{H} from the layer below"
                fail(f"{name}.W_ih", f"{expected_in} input features ({what})", f"{I_ld}")
            directions.append(arrays)
        layers.append(directions)
    return Stack(layers, single, input_size, H, D)


def _describe(obj):
    return f"{type(obj).__name__} of length {len(obj)}" if isinstance(obj, (tuple, list)) else type(obj).__name__


def input_x(x, input_size, time_major, backend):
    """Check x's ndim and features; returns (x3, unbatched, B, T)."""
    if x.ndim not in (2, 3):
        layout = "(T, B, I)" if time_major else "(B, T, I)"
        fail("x", f"a 3-D array {layout} or a 2-D array (T, I)", f"{x.ndim}-D array of shape {tuple(x.shape)}")
    if tuple(x.shape)[-1] != input_size:
        fail("x", f"{input_size} features in the last axis (W_ih has shape (4H, {input_size}))",
             f"shape {tuple(x.shape)}")
    unbatched = x.ndim == 2
    # (T, 1, I); time_major is forced for unbatched. expand_dims, not x[:, None]: device arrays
    # cannot be indexed with None
    x3 = backend.expand_dims(x, 1) if unbatched else x
    B = x3.shape[1] if (time_major or unbatched) else x3.shape[0]
    T = x3.shape[0] if (time_major or unbatched) else x3.shape[1]
    return x3, unbatched, B, T


def state(name, s, expected_shape, backend):
    arr = array(name, s, backend)
    if tuple(arr.shape) != tuple(expected_shape):
        fail(name, f"shape {tuple(expected_shape)}", f"shape {tuple(arr.shape)}")
    return arr


def lengths_array(lengths, B, T, unbatched):
    """Host int64 (B,) lengths, checked for dtype, shape and range."""
    if lengths is None:
        return None
    if hasattr(lengths, "__cuda_array_interface__") and not isinstance(lengths, np.ndarray):
        lengths = lengths.copy_to_host() if hasattr(lengths, "copy_to_host") else np.asarray(lengths.cpu())
    not_masked("lengths", lengths)
    try:
        arr = np.asarray(lengths)
    except (TypeError, ValueError):
        fail("lengths", "an integer array-like", type(lengths).__name__, TypeError)
    # np.asarray([]) is float64; an empty list is a fine set of lengths for B = 0
    lengths_dtype(arr.dtype, empty=arr.size == 0)
    if unbatched and arr.ndim == 0:
        arr = arr.reshape(1)
    lengths_shape(arr.shape, B)
    lengths_range(arr, T)
    return arr.astype(np.int64)


def lengths_dtype(dtype, empty=False):
    """Raise TypeError unless ``lengths`` of ``dtype`` hold integers (an empty float array passes)."""
    if dtype.kind not in "iu" and not (empty and dtype.kind == "f"):
        fail("lengths", "an integer array", f"dtype {dtype}", TypeError)


def lengths_shape(shape, B):
    """Raise ValueError unless ``lengths`` has one entry per sequence."""
    if tuple(shape) != (B,):
        fail("lengths", f"shape ({B},), one length per sequence", f"shape {tuple(shape)}")


def lengths_range(arr, T):
    """Raise ValueError unless every entry of the host array ``arr`` lies in [0, T]."""
    if arr.size and (arr.min() < 0 or arr.max() > T):
        fail("lengths", f"values in [0, T={T}]", f"values in [{arr.min()}, {arr.max()}]")


def finite(named, backend):
    """Raise for the first of the ``(name, array)`` pairs that holds NaN or Inf.

    One backend call checks them all (on a GPU, one copy back instead of one per array).
    """
    for (name, _), ok in zip(named, backend.finite_each([a for _, a in named])):
        if not ok:
            raise ValueError(f"{name}: expected finite values, got NaN or Inf "
                             "(pass check_finite=False to let them propagate)")


def gradient(name, g, expected_shape, backend):
    """dy / dh_n / dc_n: None or an array of the output's shape."""
    if g is None:
        return None
    arr = array(name, g, backend)
    if tuple(arr.shape) != tuple(expected_shape):
        fail(name, f"shape {tuple(expected_shape)} (the shape of the matching output)",
             f"shape {tuple(arr.shape)}")
    return arr



def index(name, value):
    """``value`` as an int (``operator.index``); TypeError naming ``name`` otherwise."""
    try:
        return operator.index(value)
    except TypeError:
        fail(name, "an integer", repr(value), TypeError)
