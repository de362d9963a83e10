"""The compiled gate activations against the exact functions, in ulps.

``nblstm._math.exp_neg`` is a polynomial of our own on the CPU (``@overload``),
so nothing else pins its accuracy: torch comparisons allow far more than a
few ulps. The kernels compile it with FMA contraction and :mod:`nblstm.jit`
without, so both are checked.
"""
import numpy as np
import pytest
from numba import njit

from nblstm.cpu.activations import sigmoid, tanh

#: within this many ulps of the exact value, rounded to the dtype (measured on dense grids:
#: sigmoid 2.25 / 2, tanh 2.55 / 2.86, float32 / float64)
MAX_ULPS = 3.0


def _loops(contract):
    flags = dict(fastmath={"contract"} if contract else False, error_model="numpy")

    @njit(**flags)
    def apply_sigmoid(z, out):
        for j in range(z.shape[0]):
            out[j] = sigmoid(z[j])

    @njit(**flags)
    def apply_tanh(z, out):
        for j in range(z.shape[0]):
            out[j] = tanh(z[j])

    return {"sigmoid": apply_sigmoid, "tanh": apply_tanh}


LOOPS = {contract: _loops(contract) for contract in (True, False)}


def _exact(name, z):
    z = z.astype(np.longdouble)
    if name == "tanh":
        return np.tanh(z)
    return np.where(z >= 0, 1 / (1 + np.exp(-z)), np.exp(z) / (1 + np.exp(z)))


def _ulps(got, exact, dtype):
    """|got - exact| in units of the dtype's spacing at the exact value."""
    spacing = np.spacing(np.abs(exact.astype(dtype))).astype(np.longdouble)
    return np.abs(got.astype(np.longdouble) - exact) / spacing


@pytest.mark.parametrize("contract", [True, False], ids=["contract", "no-contract"])
@pytest.mark.parametrize("name", ["sigmoid", "tanh"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_activation_within_a_few_ulps(dtype, name, contract):
    # exp(-|z|) is kept down to the smallest normal number: |z| <= 87 (float32), 708 (float64)
    limit = 87.0 if dtype == np.float32 else 708.0
    if name == "tanh":
        limit /= 2
    rng = np.random.default_rng(0)
    z = np.concatenate([np.linspace(-10, 10, 400_001), np.linspace(-limit, limit, 200_001),
                        rng.standard_normal(200_000) * 3]).astype(dtype)
    out = np.empty_like(z)
    LOOPS[contract][name](z, out)
    exact = _exact(name, z)
    keep = np.abs(exact) >= np.finfo(dtype).tiny
    assert keep.mean() > 0.99
    worst = _ulps(out[keep], exact[keep], dtype).max()
    assert worst <= MAX_ULPS, f"{name} {np.dtype(dtype).name}: {float(worst):.2f} ulps"


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_activation_limits(dtype):
    """Past exp's cut-off the results are exactly 0 / 1 / -1, never NaN; at 0 exactly 0.5 / 0."""
    z = np.array([-np.inf, -1e30, -800.0, 0.0, 800.0, 1e30, np.inf], dtype)
    out = np.empty_like(z)
    LOOPS[True]["sigmoid"](z, out)
    np.testing.assert_array_equal(out, [0, 0, 0, 0.5, 1, 1, 1])
    assert not np.signbit(out[3])
    LOOPS[True]["tanh"](z, out)
    np.testing.assert_array_equal(out, [-1, -1, -1, 0, 1, 1, 1])
    assert not np.signbit(out[3])          # tanh(+0) is +0, as np.tanh gives
