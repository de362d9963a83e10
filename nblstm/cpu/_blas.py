"""Matrix products for the CPU kernels, all through numba's BLAS binding.

numba's ``np.dot`` calls SciPy's OpenBLAS, NumPy's ``np.dot`` NumPy's own copy:
two libraries with two pools of worker threads, which after each call keep
spinning for a while. A NumPy product followed by per-step products inside the
kernels had each pool slow the other several-fold on two cores, so every
product nblstm makes, in host code or in a kernel, goes to the same library.
"""
import numpy as np

from .._jit import kernel


@kernel
def gemm(a, b, out):
    """``out[...] = a @ b`` for 2-D operands (C- or F-contiguous)."""
    np.dot(a, b, out)
