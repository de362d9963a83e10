"""Element-wise work for the CPU backend: row copies and fills as plain loops, transposing copies, ``add``.

The twin of :mod:`nblstm.cuda.elementwise`. numba compiles a slice assignment
(``y[t, r, j0:j1] = h[j0:j1]``) through its generic broadcasting copy, which
LLVM then optimises again at every call site: the few slice assignments of the
step kernels took more than a third of the cold compile. These loops compile
in a fraction of that and run as fast.

A transposing copy (``a[...] = b.T``) reads or writes one element per cache
line, which leaves NumPy's far below the memory's bandwidth
(docs/performance.md#packing-blocked). :func:`transpose_rows` moves a block of :data:`TRANSPOSE_ROWS` rows at a
time, so that each line read from the source fills that many rows of the
destination, and :func:`transpose` spreads the blocks over numba's threads.
"""
import numpy as np
from numba import prange

from ._jit import kernel

__all__ = ["copy_row", "zero_row", "TRANSPOSE_ROWS", "transpose_rows", "transpose", "add"]

#: destination rows per block of a transposing copy: a 64-byte line of float32
TRANSPOSE_ROWS = 16


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


@kernel
def transpose_rows(src, dst, k0, k1):
    """``dst[k, :] = src[:, k]`` for ``k0 <= k < k1``: part of ``dst[...] = src.T``.

    Each row of ``src`` is read ``k1 - k0`` consecutive elements at a time.

    Parameters
    ----------
    src : ndarray, shape (n, m)
        Any strides.
    dst : ndarray, shape (m, n)
        Any strides; rows ``k0:k1`` are written.
    k0, k1 : int
        The rows of ``dst`` (columns of ``src``) to copy.
    """
    for j in range(dst.shape[1]):
        for k in range(k0, k1):
            dst[k, j] = src[j, k]


@kernel(parallel=True)
def _transpose(src, dst):
    blocks = -(-dst.shape[0] // TRANSPOSE_ROWS)
    for block in prange(blocks):
        k0 = block * TRANSPOSE_ROWS
        transpose_rows(src, dst, k0, min(dst.shape[0], k0 + TRANSPOSE_ROWS))


#: elements below which :func:`transpose` leaves the copy to NumPy: the array is
#: in cache, and a parallel region costs more (docs/performance.md#transpose-min-size)
_TRANSPOSE_MIN_SIZE = 1 << 15


def transpose(src, dst):
    """``dst[...] = src.T`` for 2-D arrays, in blocks of rows spread over numba's threads.

    Parameters
    ----------
    src : ndarray, shape (n, m)
    dst : ndarray, shape (m, n)
        Written; any strides (a view into a larger array).
    """
    if dst.size < _TRANSPOSE_MIN_SIZE:
        dst[...] = src.T
    else:
        _transpose(src, dst)


def add(a, b, out):
    """``out = a + b`` for same-shape arrays (the protocol's ``add``)."""
    np.add(a, b, out=out)
