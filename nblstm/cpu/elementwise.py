"""Element-wise work for the CPU backend: row copies and fills as plain loops, and ``add``.

The twin of :mod:`nblstm.cuda.elementwise`. numba compiles a slice assignment
(``y[t, r, j0:j1] = h[j0:j1]``) through its generic broadcasting copy, which
LLVM then optimises again at every call site: the few slice assignments of the
step kernels took more than a third of the cold compile. These loops compile
in a fraction of that and run as fast.
"""
import numpy as np

from ._jit import kernel

__all__ = ["copy_row", "zero_row", "add"]


@kernel
def copy_row(dst, src):
    """``dst[:] = src`` for 1-D arrays of the same length."""
    for j in range(dst.shape[0]):
        dst[j] = src[j]


@kernel
def zero_row(dst):
    """``dst[:] = 0`` for a 1-D array."""
    for j in range(dst.shape[0]):
        dst[j] = 0


def add(a, b, out):
    """``out = a + b`` for same-shape arrays (the protocol's ``add``)."""
    np.add(a, b, out=out)
