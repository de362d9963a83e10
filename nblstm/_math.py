"""Scalar gate math, written once and compiled for both targets.

These are plain Python functions. ``nblstm.cpu`` compiles them with
``numba.njit`` and ``nblstm.cuda`` with ``numba.cuda.jit(device=True)``; the
NumPy reference (the independent oracle) writes the same formulas on arrays.

Three primitives have a compiled implementation of their own (``@overload``),
while their plain-Python body stays the definition (and is what the CUDA
simulator runs):

- :func:`one_like` gives 1 in the type of its argument, so float32 math stays
  float32 (a bare ``1.0`` literal would promote it to float64);
- :func:`exp_neg` is exp(-a) for a >= 0 as a branch-free polynomial, so that
  LLVM vectorises the gate loops: numba's ``math.exp`` is a scalar libm call,
  and it made the element-wise gate update cost as much as the matrix products;
  :func:`expm1_neg`, exp(-a) - 1, is the same polynomial without its constant term.

sigmoid is built on exp(-|z|) and tanh on exp(-2|z|) - 1, which cannot overflow. The backward
step :func:`cell_backward` writes the derivatives in terms of the activation's
*output*, which is what the forward pass stores:

.. math::

    \\sigma'(z) = s (1 - s), \\quad s = \\sigma(z); \\qquad
    \\tanh'(z) = 1 - t^2, \\quad t = \\tanh(z)
"""
import math
import struct

from llvmlite import ir
from numba import types
from numba.extending import intrinsic, overload


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


def exp_neg(a):
    """exp(-a) for a >= 0 (0 once it underflows)."""
    return math.exp(-a)


def expm1_neg(a):
    """exp(-a) - 1 for a >= 0, to the precision of its own (small) value where a is small."""
    return math.expm1(-a)


# exp(-a) = 2**-n * exp(r), n = round(a / ln 2), r = n ln2 - a in [-ln2/2, ln2/2];
# exp(r) by its Taylor series, which is within 1 ulp at these degrees; 2**-n is
# built from its exponent bits. Above the cut-off (a little before exp(-a) leaves
# the normal numbers, at 87.3 and 708.4) exp_neg gives 0 and expm1_neg -1. n is
# rounded by adding 1.5 * 2**mantissa ("magic"): the sum's last bit is worth 1,
# so the addition rounds a / ln 2 to an integer, and its low bits are that
# integer. numba's int() converted through 64-bit integers instead (vcvttps2qq
# on zmm for a vector of float32), and a float32 sigmoid took 0.52 ns against
# 0.32 this way (float64: 1.02 and 0.93 ns), with the same bits but at ties of
# the rounding (1 in 6 million).
_EXP = {
    64: dict(degree=13, cutoff=708.0, bias=1023, mantissa=52, ln2_hi=0.693147180369123816490,
             ln2_lo=1.90821492927058770002e-10),
    32: dict(degree=7, cutoff=87.0, bias=127, mantissa=23, ln2_hi=0.693145751953125,
             ln2_lo=1.428606765330187045e-06),
}


def _magic(spec):
    """1.5 * 2**mantissa: adding it to a float of magnitude below 2**(mantissa-1) rounds it to an integer."""
    return 1.5 * 2.0 ** spec["mantissa"]


@intrinsic
def _pow2_neg(typingctx, t):
    """2**-n for ``t = n + magic`` (see :func:`_magic`), 0 <= n < bias, in the float type of ``t``."""
    if not isinstance(t, types.Float):
        return None
    spec = _EXP[t.bitwidth]
    magic_bits = struct.unpack("<q" if t.bitwidth == 64 else "<i",
                               struct.pack("<d" if t.bitwidth == 64 else "<f", _magic(spec)))[0]

    def codegen(context, builder, signature, args):
        int_type = ir.IntType(t.bitwidth)
        n = builder.sub(builder.bitcast(args[0], int_type), int_type(magic_bits))
        exponent = builder.sub(int_type(spec["bias"]), n)
        bits = builder.shl(exponent, int_type(spec["mantissa"]))
        return builder.bitcast(bits, context.get_value_type(t))

    return t(t), codegen


def _exp_neg_impl(a, minus_one):
    """The compiled :func:`exp_neg` (``minus_one`` False) or :func:`expm1_neg` (True) for float type ``a``.

    exp(r) = 1 + r q(r), q by Horner's scheme; exp(-a) = 2**-n (1 + r q) and
    exp(-a) - 1 = 2**-n r q + (2**-n - 1), whose terms are exact or small:
    no cancellation where a is small.
    """
    if not isinstance(a, types.Float):
        return None
    spec = _EXP[a.bitwidth]
    float_type = a
    # 1/k! for k = degree .. 1: q(r) = (exp(r) - 1) / r
    inverse_factorials = tuple(1.0 / math.factorial(k) for k in range(spec["degree"], 0, -1))
    cutoff, ln2_hi, ln2_lo = spec["cutoff"], spec["ln2_hi"], spec["ln2_lo"]
    log2e = 1.0 / math.log(2.0)
    magic = _magic(spec)
    beyond = -1.0 if minus_one else 0.0

    def impl(a):
        big = a > float_type(cutoff)
        a = min(a, float_type(cutoff))
        t = a * float_type(log2e) + float_type(magic)      # n + magic, n = round(a / ln 2)
        n = t - float_type(magic)
        r = (n * float_type(ln2_hi) - a) + n * float_type(ln2_lo)
        q = float_type(0)
        for c in inverse_factorials:        # unrolled: the tuple's length is a constant
            q = q * r + float_type(c)
        scale = _pow2_neg(t)
        if minus_one:                       # a constant: numba compiles one branch
            result = (q * r) * scale + (scale - float_type(1))
        else:
            result = (q * r + float_type(1)) * scale
        return float_type(beyond) if big else result

    return impl


@overload(exp_neg, target="generic")
def _exp_neg_overload(a):
    return _exp_neg_impl(a, minus_one=False)


@overload(expm1_neg, target="generic")
def _expm1_neg_overload(a):
    return _exp_neg_impl(a, minus_one=True)


def sigmoid(z):
    """Logistic sigmoid: 1 / (1 + e^-z) for z >= 0, e^z / (1 + e^z) for z < 0."""
    one = one_like(z)
    e = exp_neg(abs(z))
    return (one if z >= 0 else e) / (one + e)


def tanh(z):
    """Hyperbolic tangent as sign(z) (-u) / (2 + u), u = e^-2|z| - 1 (:func:`expm1_neg`).

    Written with u, a small z keeps its digits: 1 - e^-2|z| cancelled them
    (tanh(1e-8) was 0 in float32).
    """
    one = one_like(z)
    u = expm1_neg(abs(z) + abs(z))
    t = abs(u) / (one + one + u)        # -u, but +0 for z = 0 (u is +0 there)
    return t if z >= 0 else -t


def cell_backward(dh, dc, i, f, g, o, c_prev, tanh_c):
    """One unit's step of BPTT through the gates and the cell update.

    Given dL/dh_t (``dh``, what y_t and step t+1 send back), dL/dc_t from step
    t+1 (``dc``), the step's activations i, f, g, o, c_{t-1} and tanh(c_t):

    .. math::

        \\bar c &= dc + dh\\, o\\, (1 - \\tanh^2 c_t) \\\\
        dz_i &= \\bar c\\, g\\, \\sigma'(z_i), \\quad dz_f = \\bar c\\, c_{t-1}\\, \\sigma'(z_f), \\quad
        dz_g = \\bar c\\, i\\, \\tanh'(z_g), \\quad dz_o = dh \\tanh(c_t)\\, \\sigma'(z_o) \\\\
        dc_{t-1} &= \\bar c\\, f

    Returns
    -------
    dz_i, dz_f, dz_g, dz_o, dc_prev : float
        In the type of the arguments. Both backends' backward kernels call
        this, so their arithmetic is the same term by term.
    """
    one = one_like(dh)
    dc_t = dc + dh * o * (one - tanh_c * tanh_c)
    return (dc_t * g * (i * (one - i)),
            dc_t * c_prev * (f * (one - f)),
            dc_t * i * (one - g * g),
            dh * tanh_c * (o * (one - o)),
            dc_t * f)
