"""The CPU backend: ``@njit(parallel=True)`` kernels behind the protocol of docs/backends.md.

``config`` holds the tuning choices, read here in host code and passed to the
kernels as arguments (numba freezes globals at compile time). Tests patch it
to force each code path.
"""
from dataclasses import dataclass

import numba
import numpy as np

from . import backward as _backward
from . import forward as _forward
from .layout import from_internal, reverse_sequences, to_internal

__all__ = ["config", "empty", "zeros", "asarray", "is_device", "copy_as", "to_user", "expand_dims",
           "to_internal", "from_internal", "reverse_sequences", "add", "all_finite",
           "forward_layer", "backward_layer"]


@dataclass
class CPUConfig:
    """Tuning of the CPU kernels.

    Attributes
    ----------
    blas_min_work : int
        ``B * H * 4H`` from which the per-step recurrent product goes through
        BLAS instead of the fused tile loop.
    min_unit_block : int
        Smallest number of hidden units per parallel tile.
    tiles_per_thread : int
        Tiles to aim for per numba thread, for load balance.
    chunk_elements : int
        Elements of the inference input-projection buffer (bounds memory for long T).
    """

    blas_min_work: int = 0
    min_unit_block: int = 16
    tiles_per_thread: int = 2
    chunk_elements: int = 1 << 20


config = CPUConfig()


def _unit_block(B, H):
    """Hidden units per tile: whole rows when the batch alone feeds every thread."""
    want_tiles = numba.get_num_threads() * config.tiles_per_thread
    blocks_per_row = max(1, -(-want_tiles // max(B, 1)))
    return max(min(H, config.min_unit_block), -(-H // blocks_per_row))


def _use_blas(B, H):
    return B * H * 4 * H >= config.blas_min_work


def empty(shape, dtype):
    return np.empty(shape, dtype)


def zeros(shape, dtype):
    return np.zeros(shape, dtype)


def asarray(a):
    return np.asarray(a)


def is_device(a):
    return False


def copy_as(a, dtype):
    """A C-contiguous copy in ``dtype`` (the cache must not see later changes to the input)."""
    return np.array(a, dtype=dtype, order="C", copy=True)


def to_user(a, on_device=False):
    return a


def expand_dims(a, axis):
    return np.expand_dims(a, axis)


def add(a, b, out):
    np.add(a, b, out=out)


def all_finite(a):
    return bool(np.isfinite(a).all())


def forward_layer(x, W_ih, W_hh, b, h0, c0, lengths, y, h_n, c_n, gates, cells):
    B, H = x.shape[1], W_hh.shape[1]
    _forward.forward_layer(x, W_ih, W_hh, b, h0, c0, lengths, y, h_n, c_n, gates, cells,
                           use_blas=_use_blas(B, H), unit_block=_unit_block(B, H),
                           chunk_elements=config.chunk_elements)


def backward_layer(x, W_ih, W_hh, h0, c0, lengths, gates, cells, dy, dh_n, dc_n,
                   dx, dW_ih, dW_hh, db, dh0, dc0):
    B, H = x.shape[1], W_hh.shape[1]
    _backward.backward_layer(x, W_ih, W_hh, h0, c0, lengths, gates, cells, dy, dh_n, dc_n,
                             dx, dW_ih, dW_hh, db, dh0, dc0,
                             use_blas=_use_blas(B, H), unit_block=_unit_block(B, H))
