"""Scalar gate math, written once and compiled for both targets.

These are plain Python functions. ``nblstm.cpu`` compiles them with
``numba.njit`` and ``nblstm.cuda`` with ``numba.cuda.jit(device=True)``; the
NumPy reference (the independent oracle) writes the same formulas on arrays.

Two primitives have a compiled implementation of their own (``@overload``),
while their plain-Python body stays the definition (and is what the CUDA
simulator runs):

- :func:`one_like` gives 1 in the type of its argument, so float32 math stays
  float32 (a bare ``1.0`` literal would promote it to float64);
- :func:`exp_neg` is exp(-a) for a >= 0 as a branch-free polynomial, so that
  LLVM vectorises the gate loops: numba's ``math.exp`` is a scalar libm call,
  and it made the element-wise gate update cost as much as the matrix products.

sigmoid and tanh are built on exp(-|z|), which cannot overflow. The backward
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


# exp(-a) = 2**-n * exp(r), n = round(a / ln 2), r = n ln2 - a in [-ln2/2, ln2/2];
# exp(r) by its Taylor series, which is within 1 ulp at these degrees; 2**-n is
# built from its exponent bits. Above the cut-off exp(-a) is below the smallest
# normal number and the result is 0. n is rounded by adding 1.5 * 2**mantissa
# ("magic"): the sum's last bit is worth 1, so the addition rounds a / ln 2 to
# an integer, and its low bits are that integer. numba's int() converted
# through 64-bit integers instead (vcvttps2qq on zmm for a vector of float32),
# and a float32 sigmoid took 0.52 ns against 0.32 this way (float64: 1.02 and
# 0.93 ns), with the same bits but at ties of the rounding (1 in 6 million).
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


@overload(exp_neg, target="generic")
def _exp_neg_overload(a):
    if not isinstance(a, types.Float):
        return None
    spec = _EXP[a.bitwidth]
    float_type = a
    # 1/k! for k = degree .. 0, for Horner's scheme
    inverse_factorials = tuple(1.0 / math.factorial(k) for k in range(spec["degree"], -1, -1))
    cutoff, ln2_hi, ln2_lo = spec["cutoff"], spec["ln2_hi"], spec["ln2_lo"]
    log2e = 1.0 / math.log(2.0)
    magic = _magic(spec)

    def impl(a):
        big = a > float_type(cutoff)
        a = min(a, float_type(cutoff))
        t = a * float_type(log2e) + float_type(magic)      # n + magic, n = round(a / ln 2)
        n = t - float_type(magic)
        r = (n * float_type(ln2_hi) - a) + n * float_type(ln2_lo)
        p = float_type(0)
        for c in inverse_factorials:        # unrolled: the tuple's length is a constant
            p = p * r + float_type(c)
        result = p * _pow2_neg(t)
        return float_type(0) if big else result

    return impl


def sigmoid(z):
    """Logistic sigmoid: 1 / (1 + e^-z) for z >= 0, e^z / (1 + e^z) for z < 0."""
    one = one_like(z)
    e = exp_neg(abs(z))
    return (one if z >= 0 else e) / (one + e)


def tanh(z):
    """Hyperbolic tangent as sign(z) (1 - e^-2|z|) / (1 + e^-2|z|)."""
    one = one_like(z)
    e = exp_neg(abs(z) + abs(z))
    t = (one - e) / (one + e)
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
