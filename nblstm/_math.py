"""Scalar gate math, written once and compiled for both targets.

These are plain Python functions. ``nblstm.cpu`` compiles them with
``numba.njit`` and ``nblstm.cuda`` with ``numba.cuda.jit(device=True)``; the
NumPy reference applies the same formulas to arrays. Constants are made with
:func:`one_like` so that float32 math stays float32 on both targets (a bare
literal ``1.0`` would promote it to float64).

Derivatives are written in terms of the activation's *output*, which is what
the forward pass stores:

.. math::

    \\sigma'(z) = s (1 - s), \\quad s = \\sigma(z); \\qquad
    \\tanh'(z) = 1 - t^2, \\quad t = \\tanh(z)
"""
import math

from numba import types
from numba.extending import overload


def one_like(z):
    """1 in the floating type of ``z``."""
    return type(z)(1)


@overload(one_like, target="generic")
def _one_like_overload(z):
    if isinstance(z, types.Float):
        float_type = z

        def impl(z):
            return float_type(1)

        return impl
    return None


def sigmoid(z):
    """Logistic sigmoid, finite and warning-free for any finite ``z``.

    exp is only ever taken of a non-positive number, so it cannot overflow:
    sigma(z) = 1 / (1 + e^-z) for z >= 0 and e^z / (1 + e^z) for z < 0.
    """
    one = one_like(z)
    e = math.exp(-abs(z))
    if z >= 0:
        return one / (one + e)
    return e / (one + e)


def tanh(z):
    """Hyperbolic tangent (saturates to +-1, never overflows)."""
    return math.tanh(z)


def dsigmoid_from_output(s):
    """d sigma/dz given s = sigma(z)."""
    return s * (one_like(s) - s)


def dtanh_from_output(t):
    """d tanh/dz given t = tanh(z)."""
    return one_like(t) - t * t
