"""Row copies and fills for the CPU kernels, as plain loops.

numba compiles a slice assignment (``y[t, r, j0:j1] = h[j0:j1]``) through its
generic broadcasting copy, which LLVM then optimises again at every call site:
the few slice assignments of the step kernels took more than a third of the
cold compile. These loops compile in a fraction of that and run as fast.
"""
from .._jit import kernel


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
