"""Public functions: validate -> normalise -> compose layers -> dispatch to a backend.

The LSTM math lives in the backends' kernels; this module only moves arrays
into the kernels' layout (docs/backends.md), runs layers and directions in
order, and puts results back into the caller's layout.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np
from numpy.typing import ArrayLike

from . import _lean
from . import _validate as v
from ._batch import BatchLayout, user_state_shape
from ._cache import CachedDirection, LSTMCache
from .params import LSTMGrads, LSTMParams

__all__ = ["lstm", "lstm_forward", "lstm_backward", "cuda_available", "LSTMCache"]

# The results are annotated Any: NumPy arrays, or numba device arrays where backend="cuda" was
# given device memory.

_MATH_DOC = r"""
    For each layer, direction and time step, with the gate blocks of the
    weights stacked in the order i, f, g, o:

    .. math::

        z_t &= W_{ih} x_t + W_{hh} h_{t-1} + b \\
        i_t &= \sigma(z_i),\; f_t = \sigma(z_f),\; g_t = \tanh(z_g),\; o_t = \sigma(z_o) \\
        c_t &= f_t \odot c_{t-1} + i_t \odot g_t \\
        h_t &= o_t \odot \tanh(c_t)

    ======================  =====================================================
    symbol                  meaning
    ======================  =====================================================
    :math:`x_t`             input at step t, (I,) (layer l > 0: the layer below's h)
    :math:`h_t, c_t`        hidden and cell state, (H,)
    :math:`W_{ih}, W_{hh}`  ``params.W_ih`` (4H, I), ``params.W_hh`` (4H, H)
    :math:`b`               ``params.b`` (4H,) = torch's ``bias_ih + bias_hh``
    :math:`\sigma`          logistic sigmoid; :math:`\odot` element-wise product
    ======================  =====================================================
"""

_PARAMS_DOC = """
    Parameters
    ----------
    x : array_like, shape (B, T, I), (T, B, I) if ``time_major``, or (T, I)
        Input sequences. A 2-D ``x`` is one unbatched sequence.
    params : LSTMParams or sequence of layers
        One layer's weights, or a stack: a sequence of layers, each a tuple of
        one LSTMParams (unidirectional) or two (forward, reverse).
    h0, c0 : array_like, optional
        Initial hidden and cell state (zeros if None): (B, H) for one
        LSTMParams, (L*D, B, H) for a stack of L layers with D directions
        (PyTorch's order); (H,) / (L*D, H) for unbatched input.
    lengths : array_like of int, shape (B,), optional
        Valid steps of each sequence, 0 <= lengths[b] <= T. Steps
        t >= lengths[b] are padding: y is 0 there and the final state is the
        state after the last valid step.
    reverse : bool
        Read every sequence from its last valid step back to step 0 (one
        LSTMParams only; stacks take their directions from the layers). y keeps
        the input's time positions.
    time_major : bool
        ``x`` and ``y`` are (T, B, features).
    backend : {"cpu", "cuda"}
        Where the kernels run.
    check_finite : bool
        Reject NaN and Inf in x, params, h0 and c0 (as scipy.linalg does).
"""


_RAISES_DOC = """
    Raises
    ------
    TypeError
        ``x``, a weight or a state is not a real numeric array (bool, integer,
        float16/32/64); ``params`` is not an LSTMParams or a sequence of
        layers of them; ``reverse``, ``time_major`` or ``check_finite`` is not
        a bool; ``lengths`` is not an integer array; an argument is a masked
        array (``numpy.ma``, whose masked values would be used).
    ValueError
        A shape that does not fit (the message names the argument and quotes
        the expected and the actual shape); ``lengths`` outside [0, T]; NaN or
        Inf in an input with ``check_finite=True``; ``reverse=True`` with a
        stack; an unknown ``backend``.
    RuntimeError
        ``backend="cuda"`` where numba-cuda or a GPU is missing (the message
        says which).
"""

_SEE_ALSO_DOC = """
    See Also
    --------
    lstm : Inference only.
    lstm_forward : The same run, keeping the cache for :func:`lstm_backward`.
    lstm_backward : Gradients by backpropagation through time.
    init_params, init_stack : Random weights.
    from_torch, from_keras, from_onnx : Weights of other libraries.
"""

_NOTES_DOC = """
    Notes
    -----
    Dtypes: the computation runs in ``np.result_type`` of ``x`` and the
    weights, mapped onto floating point: inputs that are all bool or
    integers compute in float64, float16 in float32, float32 and float64 as
    they are (so int16 ``x`` with float32 weights computes in float32, int64
    ``x`` in float64). ``h0`` and ``c0`` do not take part: they are cast to
    that dtype. Every result has that dtype. No input is modified.

    Devices: with ``backend="cuda"``, device memory (numba device arrays and
    anything with ``__cuda_array_interface__``: CuPy arrays, torch CUDA
    tensors) is read where it is and the results are numba device arrays;
    NumPy input is copied to the GPU and the results come back as NumPy
    arrays. ``backend="cpu"`` takes and returns NumPy arrays.
"""

_REFERENCES_DOC = """
    References
    ----------
    .. [1] S. Hochreiter and J. Schmidhuber, "Long short-term memory",
       Neural Computation 9(8), pp. 1735-1780, 1997.
    .. [2] F. A. Gers, J. Schmidhuber and F. Cummins, "Learning to forget:
       continual prediction with LSTM", Neural Computation 12(10),
       pp. 2451-2471, 2000 (the forget gate f).
"""


def _backend(name):
    name = v.backend_name(name)
    if name == "cpu":
        from . import cpu
        return cpu
    from . import cuda
    cuda.require()
    return cuda


def cuda_available() -> bool:
    """Say whether the CUDA backend can run here (numba-cuda installed and a GPU found).

    Never raises; ``nblstm.cuda.available()`` also gives the reason when not.

    Returns
    -------
    bool
        True if ``backend="cuda"`` will run (a GPU, or the CUDA simulator with
        ``NUMBA_ENABLE_CUDASIM=1``).

    See Also
    --------
    lstm : Takes ``backend="cuda"``.
    """
    try:
        from . import cuda
    except ImportError:
        return False
    return cuda.available()[0]


class _Call(NamedTuple):
    """A validated call, in the form the steps of :func:`_run` take it."""

    be: object            # the backend module
    backend: str          # its name, for the cache
    layers: list          # layers[l][d]: LSTMParams, as given
    single: bool          # params was one LSTMParams
    sizes: tuple          # (I, H, L, D)
    x: object             # the user's x, as an array of the backend
    x3: object            # x with a batch axis, in the user's layout
    batch: BatchLayout    # sizes, sorted lengths, batch order, the user's layout
    dtype: np.dtype       # the compute dtype
    on_device: bool       # x was device memory
    states: list          # [h0, c0], each None or checked
    reverse: bool


def _validated(x, params, h0, c0, lengths, reverse, time_major, backend, check_finite):
    """Every check of a call, before any kernel runs (the errors of the docstrings' Raises)."""
    be = _backend(backend)
    reverse = v.flag("reverse", reverse)
    time_major = v.flag("time_major", time_major)
    check_finite = v.flag("check_finite", check_finite)
    layers, single, I, H, D = v.stack(params, be)
    L = len(layers)
    if reverse and not single:
        v.fail("reverse", "False with a stack (its layers give the directions)", "True")
    x = v.array("x", x, be)
    x3, unbatched, B, T = v.input_x(x, I, time_major, be)
    dtype = v.compute_dtype([x.dtype] + [a.dtype for layer in layers for p in layer for a in p])
    state_shape = user_state_shape(B, H, None if single else L * D, unbatched)
    states = [None if s is None else v.state(name, s, state_shape, be) for name, s in (("h0", h0), ("c0", c0))]
    lengths = v.lengths_array(lengths, B, T, unbatched)
    if check_finite:
        named = [("x", x)]
        for l, layer in enumerate(layers):
            for d, p in enumerate(layer):
                for field, a in zip(LSTMParams._fields, p):
                    named.append((f"params.{field}" if single else f"params[{l}][{d}].{field}", a))
        named += [(name, s) for name, s in zip(("h0", "c0"), states) if s is not None]
        v.finite(named, be)
    batch = BatchLayout.of(lengths, B, T, time_major, unbatched)
    return _Call(be, backend, layers, single, (I, H, L, D), x, x3, batch, dtype, be.is_device(x), states,
                 reverse)


def _first_input(call, keep_cache):
    """The first layer's input in the internal layout, and whether it stays in the caller's batch order.

    Inference reads x in place when no reordering or cast is needed (the projection
    copies one bounded chunk at a time); the cache needs its own copy. One forward
    layer reads x and writes y in the caller's order (forward_layer's ``order``), so
    a batch that needs sorting is not copied in and out either.
    """
    be, batch, dtype = call.be, call.batch, call.dtype
    _, _, L, D = call.sizes
    in_user_order = (not keep_cache and batch.order is not None and L == 1 and D == 1
                     and not call.reverse)
    xt = None
    if in_user_order:
        xt = batch.sequences_view_unsorted(be, call.x3, dtype)
        in_user_order = xt is not None
    elif not keep_cache:
        xt = batch.sequences_view(be, call.x3, dtype)
    if xt is None:
        xt = batch.sequences_in(be, call.x3, dtype)
        if batch.lengths.min(initial=batch.T) < batch.T:
            # What the caller left in padded steps must reach no result: some
            # products run over all steps (dW_ih = dZ^T x), where 0 * NaN is NaN.
            # A view of the caller's x (inference) is only read at valid steps.
            be.zero_padding(xt, batch.lengths)
    return xt, in_user_order


def _layer_output(call, l, last_unsorted, keep_cache):
    """Where layer l writes y (T, B, D*H): (the user's (B, T, D*H) result or None, the internal view)."""
    be, batch, dtype = call.be, call.batch, call.dtype
    _, H, L, D = call.sizes
    B, T = batch.B, batch.T
    last = l == L - 1
    if last and last_unsorted and not (batch.time_major or batch.unbatched):
        pair = be.empty_batch_first((B, T, D * H), dtype)
        if pair is not None:
            return pair        # the last layer writes straight into the result, saving a copy of y
    if keep_cache or (last and last_unsorted):
        return None, be.empty((T, B, D * H), dtype)          # cached, or the result
    if last:
        # copied into the user's order afterwards: scratch, not new memory whose
        # pages would fault in during the layer at every call
        return None, be.scratch("y_sorted", (T, B, D * H), dtype)
    return None, be.scratch(f"y{l % 2}", (T, B, D * H), dtype)  # only the next layer reads it


def _run_direction(call, l, d, inp, y, states, finals, keep_cache, y_order):
    """Direction d of layer l from ``inp`` into its H columns of ``y``; its CachedDirection or None."""
    be, dtype, lengths = call.be, call.dtype, call.batch.lengths
    _, H, _, D = call.sizes
    B, T = call.batch.B, call.batch.T
    k = l * D + d
    h0t, c0t = states
    h_n, c_n = finals
    # the cache keeps its own copy; inference only reads the weights
    W_ih, W_hh, b = ((be.copy_as if keep_cache else be.as_operand)(a, dtype) for a in call.layers[l][d])
    gates = be.empty((T, B, 4 * H), dtype) if keep_cache else None
    cells = be.empty((T, B, H), dtype) if keep_cache else None
    backwards = d == 1 or call.reverse
    y_dir = y[:, :, d * H:(d + 1) * H]
    if backwards:
        # the cache keeps the reversed input; inference drops it after the layer
        x_dir = (be.empty(inp.shape, dtype) if keep_cache
                 else be.scratch("x_reversed", inp.shape, dtype))
        be.reverse_sequences(inp, lengths, x_dir)
        y_steps = be.scratch("y_steps", (T, B, H), dtype)
    else:
        x_dir, y_steps = inp, y_dir
    be.forward_layer(x_dir, W_ih, W_hh, b, h0t[k], c0t[k], lengths,
                     y_steps, h_n[k], c_n[k], gates, cells, order=y_order)
    if backwards:
        be.reverse_sequences(y_steps, lengths, y_dir)
    if not keep_cache:
        return None
    return CachedDirection(x_dir, LSTMParams(W_ih, W_hh, b), h0t[k], c0t[k], gates, cells, backwards)


def _run(x, params, h0, c0, lengths, reverse, time_major, backend, check_finite, keep_cache):
    """Validate, bring x into the internal layout, run every layer and direction, hand back the results."""
    call = _validated(x, params, h0, c0, lengths, reverse, time_major, backend, check_finite)
    be, batch, dtype, single, on_device = call.be, call.batch, call.dtype, call.single, call.on_device
    I, H, L, D = call.sizes
    inp, in_user_order = _first_input(call, keep_cache)
    y_order = batch.order if in_user_order else None
    last_unsorted = batch.order is None or in_user_order      # the last layer's y: no gather
    states = [batch.states_in(be, s, single, L * D, H, dtype) for s in call.states]
    finals = (be.empty((L * D, batch.B, H), dtype), be.empty((L * D, batch.B, H), dtype))
    cache_layers = []
    y_user = None
    for l in range(L):
        y_user, y = _layer_output(call, l, last_unsorted, keep_cache)
        cache_layers.append([_run_direction(call, l, d, inp, y, states, finals, keep_cache, y_order)
                             for d in range(D)])
        inp = y

    if y_user is not None:
        y = be.to_user(y_user, on_device)
    elif in_user_order:
        y = be.to_user(inp, on_device)                  # time-major, in the caller's order
    else:
        y = batch.sequences_out(be, inp, on_device)
    h_n, c_n = (batch.states_out(be, s, single, on_device) for s in finals)
    cache = LSTMCache(call.backend, cache_layers, batch, single, on_device, dtype, call.sizes) if keep_cache else None
    return y, (h_n, c_n), cache


def lstm(x: ArrayLike, params: LSTMParams | Sequence[Sequence[LSTMParams]], h0: ArrayLike | None = None,
         c0: ArrayLike | None = None, *, lengths: ArrayLike | None = None, reverse: bool = False,
         time_major: bool = False, backend: str = "cpu",
         check_finite: bool = True) -> tuple[Any, tuple[Any, Any]]:
    # a plainly valid one-sequence call takes the lean path; anything else (and every error) _run
    lean = _lean.forward(x, params, h0, c0, lengths, reverse, time_major, backend, check_finite, False)
    if lean is not None:
        return lean[:2]
    return _run(x, params, h0, c0, lengths, reverse, time_major, backend, check_finite, False)[:2]


def lstm_forward(x: ArrayLike, params: LSTMParams | Sequence[Sequence[LSTMParams]],
                 h0: ArrayLike | None = None, c0: ArrayLike | None = None, *,
                 lengths: ArrayLike | None = None, reverse: bool = False, time_major: bool = False,
                 backend: str = "cpu",
                 check_finite: bool = True) -> tuple[Any, tuple[Any, Any], LSTMCache]:
    lean = _lean.forward(x, params, h0, c0, lengths, reverse, time_major, backend, check_finite, True)
    if lean is not None:
        return lean
    return _run(x, params, h0, c0, lengths, reverse, time_major, backend, check_finite, True)


lstm.__doc__ = f"""Run an LSTM over a batch of sequences (inference: keeps nothing for backward).
{_MATH_DOC}{_PARAMS_DOC}
    Returns
    -------
    y : ndarray, shape (B, T, D*H), (T, B, D*H) if ``time_major``, or (T, D*H)
        The h_t of the last layer at every valid step ([forward | reverse] for
        D = 2 directions), exactly 0 at padded steps.
    state : tuple of (h_n, c_n), each ndarray of the shape of ``h0``
        State after each sequence's last valid step, per layer and direction.
{_RAISES_DOC}{_SEE_ALSO_DOC}{_NOTES_DOC}{_REFERENCES_DOC}
    Examples
    --------
    >>> import numpy as np, nblstm
    >>> params = nblstm.init_params(3, 5, seed=0)
    >>> y, (h_n, c_n) = nblstm.lstm(np.ones((2, 7, 3)), params)
    >>> y.shape, h_n.shape
    ((2, 7, 5), (2, 5))
"""

lstm_forward.__doc__ = f"""Run an LSTM and keep what :func:`lstm_backward` needs.
{_MATH_DOC}{_PARAMS_DOC}
    Returns
    -------
    y : ndarray
        As :func:`lstm`.
    state : tuple of (h_n, c_n)
        As :func:`lstm`.
    cache : LSTMCache
        Gate activations and cell states of every layer and direction
        (T*B*5H numbers each) plus each layer's input, for :func:`lstm_backward`.
{_RAISES_DOC}{_SEE_ALSO_DOC}{_NOTES_DOC}{_REFERENCES_DOC}
    Examples
    --------
    >>> import numpy as np, nblstm
    >>> params = nblstm.init_params(3, 5, seed=0)
    >>> y, (h_n, c_n), cache = nblstm.lstm_forward(np.ones((2, 7, 3)), params)
    >>> grads = nblstm.lstm_backward(cache, dy=np.ones_like(y))
    >>> grads.dx.shape, grads.dparams.W_hh.shape
    ((2, 7, 3), (20, 5))
"""


def lstm_backward(cache: LSTMCache, dy: ArrayLike | None = None, dh_n: ArrayLike | None = None,
                  dc_n: ArrayLike | None = None) -> LSTMGrads:
    """Backpropagation through time: gradients of a scalar loss L.

    .. math::

        \\frac{\\partial L}{\\partial z_t} \\text{ from } \\frac{\\partial L}{\\partial h_t},
        \\frac{\\partial L}{\\partial c_t}; \\quad
        \\frac{\\partial L}{\\partial W_{ih}} = \\sum_t \\frac{\\partial L}{\\partial z_t} x_t^T, \\;
        \\frac{\\partial L}{\\partial W_{hh}} = \\sum_t \\frac{\\partial L}{\\partial z_t} h_{t-1}^T, \\;
        \\frac{\\partial L}{\\partial b} = \\sum_t \\frac{\\partial L}{\\partial z_t}

    Parameters
    ----------
    cache : LSTMCache
        Third result of :func:`lstm_forward`.
    dy : array_like, the shape of y, optional
        The gradient dL/dy (None = 0). Values at padded steps are ignored.
        Any real dtype; cast to the cache's compute dtype.
    dh_n, dc_n : array_like, the shape of h_n / c_n, optional
        The gradients dL/dh_n and dL/dc_n (None = 0).

    Returns
    -------
    LSTMGrads
        ``dx`` (x's shape; exactly 0 at padded steps), ``dparams`` (nested
        like ``params``), ``dh0``, ``dc0`` (the state's shape), all in the
        compute dtype of the forward pass; device arrays if the forward
        pass's ``x`` was device memory, else NumPy arrays.

    Raises
    ------
    TypeError
        ``cache`` is not the LSTMCache of :func:`lstm_forward`; a gradient is
        not a real numeric array.
    ValueError
        A gradient's shape is not that of the matching output (the message
        quotes both).

    See Also
    --------
    lstm_forward : Makes the cache.
    nblstm.testing.check_lstm_grad : Checks these gradients by finite differences.
    ravel : Flattens the gradients for scipy.optimize.
    """
    if not isinstance(cache, LSTMCache):
        v.fail("cache", "the LSTMCache returned by lstm_forward", type(cache).__name__, TypeError)
    be = _backend(cache.backend)
    batch, dtype, single, on_device = cache.batch, cache.dtype, cache.single, cache.on_device
    _, H, L, D = cache.sizes
    B, T, lengths = batch.B, batch.T, batch.lengths
    user_state = batch.state_shape(H, None if single else L * D)
    dy = v.gradient("dy", dy, batch.sequence_shape(D * H), be)
    dh_n = v.gradient("dh_n", dh_n, user_state, be)
    dc_n = v.gradient("dc_n", dc_n, user_state, be)

    if dy is None:
        dy_t = be.zeros((T, B, D * H), dtype)
    else:
        # A device dy is read in place where only its axes differ (the kernels take any
        # strides): no permutation launch. On the host the backward copies dy anyway.
        dy3 = be.expand_dims(dy, 1) if batch.unbatched else dy
        dy_t = batch.sequences_view(be, dy3, dtype) if be.is_device(dy) and not batch.unbatched else None
        if dy_t is None:
            dy_t = batch.sequences_in(be, dy3, dtype)
    dh_t, dc_t = (batch.states_in(be, g, single, L * D, H, dtype) for g in (dh_n, dc_n))
    dh0 = be.empty((L * D, B, H), dtype)
    dc0 = be.empty((L * D, B, H), dtype)
    dparams = [None] * L
    for l in range(L - 1, -1, -1):
        dinp = None
        grads = []
        for d, cached in enumerate(cache.layers[l]):
            k = l * D + d
            x_dir, (W_ih, W_hh, b) = cached.x, cached.params
            dy_dir = dy_t[:, :, d * H:(d + 1) * H]
            if cached.backwards:
                dy_steps = be.scratch("dy_steps", (T, B, H), dtype)
                be.reverse_sequences(dy_dir, lengths, dy_steps)
            else:
                dy_steps = dy_dir
            # Layer 0's input gradient is the result; a layer above hands its own to the
            # layer below and then drops it, so it alternates between two scratch arrays.
            if d > 0:
                dx = be.scratch("dx_direction", x_dir.shape, dtype)
            elif l == 0:
                dx = be.empty(x_dir.shape, dtype)
            else:
                dx = be.scratch(f"dx{l % 2}", x_dir.shape, dtype)
            dx_steps = be.scratch("dx_steps", x_dir.shape, dtype) if cached.backwards else dx
            dW_ih, dW_hh, db = (be.empty(a.shape, dtype) for a in (W_ih, W_hh, b))
            be.backward_layer(x_dir, W_ih, W_hh, cached.h0, cached.c0, lengths, cached.gates,
                              cached.cells, dy_steps, dh_t[k], dc_t[k], dx_steps, dW_ih, dW_hh, db,
                              dh0[k], dc0[k])
            if cached.backwards:
                be.reverse_sequences(dx_steps, lengths, dx)
            if dinp is None:
                dinp = dx
            else:
                be.add(dinp, dx, dinp)
            grads.append(LSTMParams(*(be.to_user(g, on_device) for g in (dW_ih, dW_hh, db))))
        dparams[l] = tuple(grads)
        dy_t = dinp

    dx = batch.sequences_out(be, dy_t, on_device)
    dh0, dc0 = (batch.states_out(be, s, single, on_device) for s in (dh0, dc0))
    dparams = dparams[0][0] if single else tuple(dparams)
    return LSTMGrads(dx, dparams, dh0, dc0)


if lstm_backward.__doc__:    # None under python -OO
    lstm_backward.__doc__ += _REFERENCES_DOC + """\
    .. [3] P. J. Werbos, "Backpropagation through time: what it does and how
       to do it", Proceedings of the IEEE 78(10), pp. 1550-1560, 1990.
"""
