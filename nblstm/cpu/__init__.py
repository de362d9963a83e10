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
           "to_internal", "from_internal", "view_internal", "empty_batch_first",
           "reverse_sequences", "add", "all_finite", "choose_path", "forward_layer", "backward_layer"]


@dataclass
class CPUConfig:
    """Tuning of the CPU kernels.

    Attributes
    ----------
    serial_max_work : int
        ``B * H * 4H`` (multiply-adds of one step's recurrent product) below
        which a step runs on the calling thread only (``path="serial"``).
    blas_min_work : int
        ``B * H * 4H`` from which the recurrent product is one BLAS call per
        step (``path="blas"``); in between, parallel tiles (``path="tiles"``).
    path : str or None
        Force ``"serial"``, ``"tiles"`` or ``"blas"`` (tests, benchmarks);
        None chooses by size.
    min_unit_block : int
        Smallest number of hidden units per parallel tile.
    tiles_per_thread : int
        Tiles to aim for per numba thread, for load balance.
    chunk_elements : int
        Elements of the inference input-projection buffer (bounds memory for long T).
    """

    # Both 0, so every size takes the BLAS path: on the 2-core reference machine it
    # was fastest at every size measured, from (B, H) = (1, 8) to (64, 512); see
    # bench/RESULTS.md ("CPU paths"). Tiles pay a one-off stall of ~8 ms per call
    # while BLAS's worker threads, still spinning after the input projection,
    # hold the second core (numba issue 6933).
    serial_max_work: int = 0
    blas_min_work: int = 0
    path: str | None = None
    min_unit_block: int = 16
    tiles_per_thread: int = 2
    chunk_elements: int = 1 << 20


config = CPUConfig()

PATHS = ("serial", "tiles", "blas")


def choose_path(B, H):
    """How one step runs for a batch of B rows and H hidden units.

    The choice depends on the sizes only, never on the thread count, so that
    results are the same for any ``NUMBA_NUM_THREADS``.
    """
    if config.path is not None:
        if config.path not in PATHS:
            raise ValueError(f"nblstm.cpu.config.path: expected one of {PATHS} or None, "
                             f"got {config.path!r}")
        return config.path
    work = B * H * 4 * H
    if work < config.serial_max_work:
        return "serial"
    return "blas" if work >= config.blas_min_work else "tiles"


def _unit_block(B, H):
    """Hidden units per tile: whole rows when the batch alone feeds every thread."""
    want_tiles = numba.get_num_threads() * config.tiles_per_thread
    blocks_per_row = max(1, -(-want_tiles // max(B, 1)))
    return max(min(H, config.min_unit_block), -(-H // blocks_per_row))


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


def view_internal(a, order, time_major, dtype):
    """``a`` as a (T, B, F) view when :func:`to_internal` would only transpose, else None."""
    if order is not None or a.dtype != np.dtype(dtype):
        return None
    return a if time_major else a.swapaxes(0, 1)


def empty_batch_first(shape, dtype):
    """A new (B, T, F) array and its (T, B, F) view, for an output the kernels write in place."""
    a = np.empty(shape, dtype)
    return a, a.swapaxes(0, 1)


def expand_dims(a, axis):
    return np.expand_dims(a, axis)


def add(a, b, out):
    np.add(a, b, out=out)


def all_finite(a):
    return bool(np.isfinite(a).all())


def forward_layer(x, W_ih, W_hh, b, h0, c0, lengths, y, h_n, c_n, gates, cells):
    B, H = x.shape[1], W_hh.shape[1]
    _forward.forward_layer(x, W_ih, W_hh, b, h0, c0, lengths, y, h_n, c_n, gates, cells,
                           path=choose_path(B, H), unit_block=_unit_block(B, H),
                           chunk_elements=config.chunk_elements)


def backward_layer(x, W_ih, W_hh, h0, c0, lengths, gates, cells, dy, dh_n, dc_n,
                   dx, dW_ih, dW_hh, db, dh0, dc0):
    B, H = x.shape[1], W_hh.shape[1]
    _backward.backward_layer(x, W_ih, W_hh, h0, c0, lengths, gates, cells, dy, dh_n, dc_n,
                             dx, dW_ih, dW_hh, db, dh0, dc0,
                             path=choose_path(B, H), unit_block=_unit_block(B, H))
