"""The LSTM inside your own numba code: compiled functions for ``@njit`` callers.

``lstm_cell`` (one step of one sequence) and ``lstm_sequence`` (one whole
sequence) are numba dispatchers: call them from Python, or from your own
``@njit`` / ``@njit(parallel=True)`` functions with no Python in between (a
simulation whose dynamics include a trained LSTM, a particle filter with one
sequence per particle in a ``prange`` loop, a training loop written in numba).
They write into output arrays that the caller passes, so a hot loop allocates
nothing: a step's (4H,) pre-activations live on the stack (on the heap only for
H > 256).

The gate math is the CPU backend's own (:func:`nblstm.cpu.step.activate_tile`
on the sigmoid and tanh of :mod:`nblstm._math`); the products
``W_ih x_t + W_hh h_{t-1}`` of each gate row are summed in the fixed lane order
of :mod:`nblstm.cpu._lanes`, which vectorises. Results agree with :func:`nblstm.lstm`
to round-off (not bitwise: the public API sums in another order) and are
bitwise the same run to run and on any number of threads.

Shapes and sizes are checked inside the compiled code: a mismatch fills the
call's outputs with NaN and raises ValueError naming the argument with the
expected and the actual shape. An
argument of the wrong number of dimensions, or a weight or output array of a
non-float dtype, fails when numba compiles the call (numba's ``TypingError``),
as it does for any ``@njit`` function; integer inputs and states are promoted.
Use one float dtype for all arrays of a call (float32 or float64); mixed
dtypes compile a slower, promoting version.
"""
import numpy as np

from .cpu._jit import kernel
from .cpu._lanes import STACK_ELEMENTS, gate_products, stack_scratch
from .cpu.elementwise import copy_row
from .cpu.step import activate_tile

__all__ = ["lstm_cell", "lstm_sequence"]


# The checks take the arrays' shapes, not the arrays: a call with a few integers
# costs less than one with eight arrays, which numba passes as seven values each.


@kernel(contract=False)
def _shape_text(shape):
    """A shape written as Python writes a tuple: ``(3,)``, ``(4, 5)``."""
    if len(shape) == 1:
        return "(" + str(shape[0]) + ",)"
    text = "(" + str(shape[0])
    for axis in range(1, len(shape)):
        text += ", " + str(shape[axis])
    return text + ")"


@kernel(contract=False)
def _invalid(message, out0, out1, out2=None):
    """Fill the outputs with NaN, then raise ``ValueError(message)``.

    Under numba's ``workqueue`` threading layer an exception raised inside a
    ``prange`` loop is dropped (numba issue 9673): the loop returns as if
    nothing happened. The NaN leave no output of an invalid call looking like
    a valid state, whichever layer runs the loop.
    """
    out0.fill(np.nan)
    out1.fill(np.nan)
    if out2 is not None:
        out2.fill(np.nan)
    raise ValueError(message)


@kernel(contract=False)
def _check_weights(W_ih, W_hh, b, out0, out1, out2=None):
    """Check W_hh (4H, H), W_ih (4H, I), b (4H,) (their shapes) and return (I, H); else ``_invalid``."""
    H = W_hh[1]
    if W_hh[0] != 4 * H or H == 0:
        _invalid("W_hh: expected shape (4*H, H) with H >= 1, got " + _shape_text(W_hh), out0, out1, out2)
    if W_ih[0] != 4 * H or W_ih[1] == 0:
        _invalid("W_ih: expected shape (" + str(4 * H) + ", I) with I >= 1 to match W_hh's H="
                 + str(H) + ", got " + _shape_text(W_ih), out0, out1, out2)
    if b[0] != 4 * H:
        _invalid("b: expected shape (" + str(4 * H) + ",) to match W_hh's H=" + str(H)
                 + ", got " + _shape_text(b), out0, out1, out2)
    return W_ih[1], H


@kernel(contract=False)
def _mismatch(shape, rows, n):
    """Whether ``shape`` is not (rows, n), or for ``rows < 0`` not (n,)."""
    if rows < 0:
        return shape[0] != n
    return shape[0] != rows or shape[len(shape) - 1] != n


@kernel(contract=False)
def _expected(shape, rows, n):
    """"expected shape (rows, n), got ..." (rows < 0: (n,)) for the message of a mismatch.

    The caller puts the argument's name in front: a name passed in here would be a
    string literal, and numba compiles a function once per literal argument.
    """
    expected = "(" + str(n) + ",)" if rows < 0 else "(" + str(rows) + ", " + str(n) + ")"
    return "expected shape " + expected + ", got " + _shape_text(shape)


@kernel(contract=False)
def _check_cell(x_t, h, c, W_ih, W_hh, b, h_out, c_out):
    """Check the shapes (the arguments' shapes, the outputs themselves) and return H; else ``_invalid``.

    A function of its own: lstm_cell is inlined into its callers, and a ``raise``
    inlined into a user's ``prange`` loop would keep numba from parallelising it
    (more than one exit from the loop body).
    """
    I, H = _check_weights(W_ih, W_hh, b, h_out, c_out)
    vector = np.int64(-1)   # not a literal -1: see cpu/_jit.py, "Literal arguments"
    if _mismatch(x_t, vector, I):
        _invalid("x_t: " + _expected(x_t, vector, I), h_out, c_out)
    if _mismatch(h, vector, H):
        _invalid("h: " + _expected(h, vector, H), h_out, c_out)
    if _mismatch(c, vector, H):
        _invalid("c: " + _expected(c, vector, H), h_out, c_out)
    if _mismatch(h_out.shape, vector, H):
        _invalid("h_out: " + _expected(h_out.shape, vector, H), h_out, c_out)
    if _mismatch(c_out.shape, vector, H):
        _invalid("c_out: " + _expected(c_out.shape, vector, H), h_out, c_out)
    return H


@kernel(inline="always", contract=False)
def _step(x_t, h, c, W_ih, W_hh, b, z, h_out, c_out):
    """One step into h_out, c_out (checked shapes; h_out may be h, c_out may be c)."""
    H = h.shape[0]
    gate_products(W_ih, x_t, W_hh, h, b, z)                 # z = b + W_ih x_t + W_hh h_{t-1}
    # h is read only above, so h_out may be h; c is copied before the update, which
    # then runs in place in c_out (c_out may be c)
    copy_row(c_out, c)
    activate_tile(z, np.int64(0), H, c_out, h_out)          # gates, c_t, h_t


@kernel(inline="always", contract=False)
def lstm_cell(x_t, h, c, W_ih, W_hh, b, h_out, c_out):
    """One LSTM step of one sequence, written into ``h_out`` and ``c_out``.

    .. math::

        z &= W_{ih} x_t + W_{hh} h + b \\\\
        i &= \\sigma(z_i),\\; f = \\sigma(z_f),\\; g = \\tanh(z_g),\\; o = \\sigma(z_o) \\\\
        c_{out} &= f \\odot c + i \\odot g, \\qquad h_{out} = o \\odot \\tanh(c_{out})

    Callable from Python and from ``@njit`` code (also inside ``prange``).

    Parameters
    ----------
    x_t : ndarray, shape (I,), float32 or float64
        Input of this step.
    h, c : ndarray, shape (H,)
        Hidden and cell state before the step.
    W_ih : ndarray, shape (4H, I)
        Input weights, gate blocks i, f, g, o (``LSTMParams.W_ih``).
    W_hh : ndarray, shape (4H, H)
        Recurrent weights (``LSTMParams.W_hh``).
    b : ndarray, shape (4H,)
        Bias (``LSTMParams.b``, torch's ``bias_ih + bias_hh``).
    h_out, c_out : ndarray, shape (H,)
        Written with the state after the step. ``h_out`` may be ``h`` and
        ``c_out`` may be ``c`` (the state is then updated in place); they
        must not overlap any other argument.

    Returns
    -------
    None
        The results are in ``h_out`` and ``c_out``.

    Raises
    ------
    ValueError
        If a shape does not match (the message names the argument and gives
        the expected and the actual shape). H comes from ``W_hh``, I from
        ``W_ih``. ``h_out`` and ``c_out`` are filled with NaN first: numba's
        ``workqueue`` layer drops an error raised in a ``prange`` loop
        (docs/jit.md).
    numba.core.errors.TypingError
        At compile time, for arguments of the wrong dimension, or weights or
        outputs of a non-float dtype.

    See Also
    --------
    lstm_sequence : All steps of one sequence in one call.
    nblstm.lstm : The batched public API (variable lengths, stacks, CUDA).

    References
    ----------
    .. [1] S. Hochreiter and J. Schmidhuber, "Long Short-Term Memory",
       Neural Computation 9(8), 1997.

    Examples
    --------
    >>> import numpy as np, nblstm, nblstm.jit
    >>> p = nblstm.init_params(3, 4, seed=0)
    >>> h, c = np.zeros(4), np.zeros(4)
    >>> nblstm.jit.lstm_cell(np.ones(3), h, c, p.W_ih, p.W_hh, p.b, h, c)
    >>> bool(np.allclose(h, nblstm.lstm(np.ones((1, 3)), p)[0][0]))
    True
    """
    H = _check_cell(x_t.shape, h.shape, c.shape, W_ih.shape, W_hh.shape, b.shape, h_out, c_out)
    # the 4H pre-activations: on this function's stack (a buffer returned from a helper
    # would point into the helper's finished frame), on the heap only for H > 256
    z = stack_scratch(W_hh, 4 * H) if 4 * H <= STACK_ELEMENTS else np.empty(4 * H, W_hh.dtype)
    _step(x_t, h, c, W_ih, W_hh, b, z, h_out, c_out)


@kernel(contract=False)
def lstm_sequence(x, W_ih, W_hh, b, h0, c0, y, h_n, c_n):
    """All steps of one sequence, written into ``y``, ``h_n`` and ``c_n``.

    The same step as :func:`lstm_cell` for t = 0 .. T-1, from (h0, c0):
    ``y[t]`` is h_t, ``(h_n, c_n)`` the state after the last step (h0, c0
    when T = 0). Equal to ``nblstm.lstm(x, params, h0, c0)`` to round-off.

    Parameters
    ----------
    x : ndarray, shape (T, I), float32 or float64
        The input sequence.
    W_ih, W_hh, b : ndarray, shapes (4H, I), (4H, H), (4H,)
        Weights as in ``LSTMParams``.
    h0, c0 : ndarray, shape (H,)
        Initial state.
    y : ndarray, shape (T, H)
        Written with h_t for every step.
    h_n, c_n : ndarray, shape (H,)
        Written with the final state; ``c_n`` may be ``c0`` and ``h_n`` may
        be ``h0`` (in-place update of a state).

    Returns
    -------
    None
        The results are in ``y``, ``h_n`` and ``c_n``.

    Raises
    ------
    ValueError
        If a shape does not match (the argument, expected and actual shape).
        ``y``, ``h_n`` and ``c_n`` are filled with NaN first, as in
        :func:`lstm_cell`.
    numba.core.errors.TypingError
        At compile time, for arguments of the wrong dimension, or weights or
        outputs of a non-float dtype.

    See Also
    --------
    lstm_cell : One step.
    nblstm.lstm : The batched public API.

    References
    ----------
    .. [1] S. Hochreiter and J. Schmidhuber, "Long Short-Term Memory",
       Neural Computation 9(8), 1997.

    Examples
    --------
    >>> import numpy as np, nblstm, nblstm.jit
    >>> p = nblstm.init_params(3, 4, seed=0)
    >>> x = np.ones((5, 3))
    >>> y, h_n, c_n = np.empty((5, 4)), np.empty(4), np.empty(4)
    >>> nblstm.jit.lstm_sequence(x, p.W_ih, p.W_hh, p.b, np.zeros(4), np.zeros(4), y, h_n, c_n)
    >>> bool(np.allclose(y, nblstm.lstm(x, p)[0]))
    True
    """
    I, H = _check_weights(W_ih.shape, W_hh.shape, b.shape, y, h_n, c_n)
    T = x.shape[0]
    vector = np.int64(-1)   # not a literal -1: see cpu/_jit.py, "Literal arguments"
    if _mismatch(x.shape, T, I):
        _invalid("x: " + _expected(x.shape, T, I), y, h_n, c_n)
    if _mismatch(h0.shape, vector, H):
        _invalid("h0: " + _expected(h0.shape, vector, H), y, h_n, c_n)
    if _mismatch(c0.shape, vector, H):
        _invalid("c0: " + _expected(c0.shape, vector, H), y, h_n, c_n)
    if _mismatch(y.shape, T, H):
        _invalid("y: " + _expected(y.shape, T, H), y, h_n, c_n)
    if _mismatch(h_n.shape, vector, H):
        _invalid("h_n: " + _expected(h_n.shape, vector, H), y, h_n, c_n)
    if _mismatch(c_n.shape, vector, H):
        _invalid("c_n: " + _expected(c_n.shape, vector, H), y, h_n, c_n)
    # the 4H pre-activations: on this function's stack (a buffer returned from a helper
    # would point into the helper's finished frame), on the heap only for H > 256
    z = stack_scratch(W_hh, 4 * H) if 4 * H <= STACK_ELEMENTS else np.empty(4 * H, W_hh.dtype)
    # the cell state lives in c_n; h_t in y[t], which the next step reads
    copy_row(c_n, c0)
    if T == 0:
        copy_row(h_n, h0)
        return
    _step(x[0], h0, c_n, W_ih, W_hh, b, z, y[0], c_n)
    for t in range(1, T):
        _step(x[t], y[t - 1], c_n, W_ih, W_hh, b, z, y[t], c_n)
    copy_row(h_n, y[T - 1])
