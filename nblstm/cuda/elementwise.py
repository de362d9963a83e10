"""Element-wise device kernels: fill, copy, add, finiteness, and the blocks' copy of their units.

The twin of :mod:`nblstm.cpu.elementwise`. (The batch permutation and the
sequence reversal are in :mod:`nblstm.cuda.layout`, as on the CPU.)

Every kernel is a grid-stride loop over a flat index, so any grid size covers
any array; host wrappers pick the grid from :data:`nblstm.cuda.config`.
"""
from __future__ import annotations

import math

import numpy as np
from numba import cuda, uint32

from ._jit import device, kernel
from .config import config

__all__ = ["fill", "copy", "add", "nonfinite_each", "copy_block_units", "unflatten3",
           "launch_shape"]

_MAX_BLOCKS = 4096  # grid-stride loops cover the rest; more blocks only cost scheduling


def launch_shape(n):
    """(blocks, threads) for a grid-stride loop over ``n`` elements."""
    threads = config.elementwise_threads
    return max(1, min(_MAX_BLOCKS, -(-n // threads))), threads


@device
def unflatten3(e, B, F):
    """The (t, r, f) index of flat element ``e`` of a (T, B, F) array, for grid-stride loops."""
    return e // (B * F), (e // F) % B, e % F


@device
def copy_block_units(d_src, d_dst, j0, U):
    """``dst[b, j] = src[b, j]`` for every row b and the block's units ``j0 <= j < j0 + U``.

    A recurrence block's own part of a (B, H) state, copied by the block's
    threads; the caller syncs the block before other threads read it.
    """
    # uint32 indices (each result cast back: numba types uint32 op uint32 as int64), so the
    # division is a 32-bit one, inline, not a call to the 64-bit routine
    B = uint32(d_dst.shape[0])
    H = uint32(d_dst.shape[1])
    U = uint32(U)
    j0 = uint32(j0)
    n = uint32(B * U)
    step = uint32(cuda.blockDim.x)
    e = uint32(cuda.threadIdx.x)
    while e < n:
        b = uint32(e // U)
        j = uint32(j0 + uint32(e % U))
        if j < H:
            d_dst[b, j] = d_src[b, j]
        e = uint32(e + step)


@kernel
def _fill_kernel(d_out, value):
    # out[i] = value for every i of a flat (contiguous) array
    for i in range(cuda.grid(1), d_out.shape[0], cuda.gridsize(1)):
        d_out[i] = value


@kernel
def _add_flat_kernel(d_a, d_b, d_out):
    # out[i] = a[i] + b[i]
    for i in range(cuda.grid(1), d_out.shape[0], cuda.gridsize(1)):
        d_out[i] = d_a[i] + d_b[i]


@kernel
def _add3_kernel(d_a, d_b, d_out):
    # out[t, b, f] = a[t, b, f] + b[t, b, f] for strided 3-d arrays
    T, B, F = d_out.shape
    for e in range(cuda.grid(1), T * B * F, cuda.gridsize(1)):
        t, r, f = unflatten3(e, B, F)
        d_out[t, r, f] = d_a[t, r, f] + d_b[t, r, f]


@kernel
def _copy1_kernel(d_src, d_out):
    # out[i] = src[i] (any strides, casting to out's dtype)
    for i in range(cuda.grid(1), d_out.shape[0], cuda.gridsize(1)):
        d_out[i] = d_src[i]


@kernel
def _copy2_kernel(d_src, d_out):
    # out[i, j] = src[i, j] (any strides, casting to out's dtype)
    M, N = d_out.shape
    for e in range(cuda.grid(1), M * N, cuda.gridsize(1)):
        d_out[e // N, e % N] = d_src[e // N, e % N]


@kernel
def _copy3_kernel(d_src, d_out):
    # out[t, b, f] = src[t, b, f] (any strides, casting to out's dtype)
    T, B, F = d_out.shape
    for e in range(cuda.grid(1), T * B * F, cuda.gridsize(1)):
        t, r, f = unflatten3(e, B, F)
        d_out[t, r, f] = d_src[t, r, f]


@kernel
def _nonfinite1_kernel(d_a, d_flag):
    # flag[0] = 1 if any a[i] is NaN or +-Inf (plain stores of the same value: no race matters)
    for i in range(cuda.grid(1), d_a.shape[0], cuda.gridsize(1)):
        if not math.isfinite(d_a[i]):
            d_flag[0] = 1


@kernel
def _nonfinite2_kernel(d_a, d_flag):
    # flag[0] = 1 if any a[i, j] is not finite
    M, N = d_a.shape
    for e in range(cuda.grid(1), M * N, cuda.gridsize(1)):
        if not math.isfinite(d_a[e // N, e % N]):
            d_flag[0] = 1


@kernel
def _nonfinite3_kernel(d_a, d_flag):
    # flag[0] = 1 if any a[t, b, f] is not finite
    T, B, F = d_a.shape
    for e in range(cuda.grid(1), T * B * F, cuda.gridsize(1)):
        t, r, f = unflatten3(e, B, F)
        if not math.isfinite(d_a[t, r, f]):
            d_flag[0] = 1


def _flat(d_a):
    return d_a.reshape(d_a.size)


def _contiguous(*arrays):
    return all(a.is_c_contiguous() for a in arrays)


def fill(d_out, value):
    """Set every element of the C-contiguous device array ``d_out`` to ``value``."""
    if d_out.size:
        blocks, threads = launch_shape(d_out.size)
        _fill_kernel[blocks, threads](_flat(d_out), d_out.dtype.type(value))


def copy(d_src, d_out):
    """``out[...] = src[...]`` for same-shape 1-d to 3-d device arrays of any strides and dtypes."""
    if d_out.size:
        blocks, threads = launch_shape(d_out.size)
        if d_out.ndim == 1:
            _copy1_kernel[blocks, threads](d_src, d_out)
        elif d_out.ndim == 2:
            _copy2_kernel[blocks, threads](d_src, d_out)
        elif d_out.ndim == 3:
            _copy3_kernel[blocks, threads](d_src, d_out)
        else:
            raise ValueError(f"copy: 1-d to 3-d arrays only, got {d_out.ndim}-d")


def add(d_a, d_b, d_out):
    """``out = a + b`` for same-shape device arrays (C-contiguous, or any 3-d strides)."""
    if not d_out.size:
        return
    blocks, threads = launch_shape(d_out.size)
    if _contiguous(d_a, d_b, d_out):
        _add_flat_kernel[blocks, threads](_flat(d_a), _flat(d_b), _flat(d_out))
    elif d_out.ndim == 3:
        _add3_kernel[blocks, threads](d_a, d_b, d_out)
    else:
        raise ValueError("add: non-contiguous arrays must be 3-d")


def nonfinite_each(arrays):
    """One bool per device array (any dtype, any strides): whether it holds NaN or Inf.

    One flag array, one launch per float array and one copy back for all: every
    copy back waits for the GPU, and the API checks x and each weight.
    """
    bad = [False] * len(arrays)
    d_flags = cuda.to_device(np.zeros(max(len(arrays), 1), np.int32))
    launched = False
    for i, d_a in enumerate(arrays):
        if d_a.size == 0 or np.dtype(d_a.dtype).kind != "f":
            continue
        d_flag = d_flags[i:i + 1]
        blocks, threads = launch_shape(d_a.size)
        if d_a.is_c_contiguous():
            _nonfinite1_kernel[blocks, threads](_flat(d_a), d_flag)
        elif d_a.ndim == 1:
            _nonfinite1_kernel[blocks, threads](d_a, d_flag)
        elif d_a.ndim == 2:
            _nonfinite2_kernel[blocks, threads](d_a, d_flag)
        elif d_a.ndim == 3:
            _nonfinite3_kernel[blocks, threads](d_a, d_flag)
        else:
            bad[i] = not np.isfinite(d_a.copy_to_host()).all()
            continue
        launched = True
    if launched:
        flags = d_flags.copy_to_host()
        bad = [b or bool(f) for b, f in zip(bad, flags)]
    return bad
