"""The CPU backend: ``@njit(parallel=True)`` kernels behind the protocol of docs/backends.md.

``config`` holds the tuning choices, read here in host code and passed to the
kernels as arguments (numba freezes globals at compile time). Tests patch it
to force each code path.
"""
import threading
from dataclasses import dataclass

import numba
import numpy as np

from . import backward as _backward
from . import forward as _forward
from . import layout, workspace
from .layout import reverse_sequences, to_internal, zero_padding

__all__ = ["config", "empty", "zeros", "zeros_input", "scratch", "asarray", "is_device", "as_operand",
           "copy_as", "to_user", "expand_dims", "to_internal", "from_internal", "view_internal",
           "empty_batch_first", "reverse_sequences", "zero_padding", "add", "finite_each", "choose_path",
           "forward_layer", "backward_layer"]


@dataclass
class CPUConfig:
    """Tuning of the CPU kernels.

    The defaults were chosen with ``python bench/cpu_paths.py`` (the three
    paths timed on one shape) on the 2-core machine the benchmarks run on.

    Attributes
    ----------
    blas_min_work : int
        ``B * H * 4H`` (multiply-adds of one step's recurrent product) from
        which a step is one BLAS call (``path="blas"``).
    numba_min_batch : int
        Smaller batches take BLAS too: for one row, BLAS's matrix-vector
        product beats the numba loops.
    tiles_min_batch : int
        Below ``blas_min_work``, batches from this size run in parallel tiles
        (``"tiles"``), smaller ones on the calling thread (``"serial"``).
    path : str or None
        Force ``"serial"``, ``"tiles"`` or ``"blas"`` (tests, benchmarks);
        None chooses by size.
    min_unit_block : int
        Smallest number of hidden units per parallel tile.
    tiles_per_thread : int
        Tiles to aim for per numba thread, for load balance.
    chunk_elements : int
        Elements of the ``"blas"`` path's inference input-projection buffer
        (bounds memory for long T).
    workspace_bytes : int
        Most bytes of each scratch array (the backward's dL/dz and h_{t-1},
        the projection buffer) that a thread keeps for its next call
        (:mod:`nblstm.cpu.workspace`); 0 allocates them on every call.
    """

    blas_min_work: int = 4_000_000
    numba_min_batch: int = 2
    tiles_min_batch: int = 4
    path: str | None = None
    min_unit_block: int = 16
    tiles_per_thread: int = 2
    chunk_elements: int = 1 << 20
    workspace_bytes: int = 64 << 20


config = CPUConfig()

PATHS = ("serial", "tiles", "blas")


def choose_path(B, H):
    """How one step runs for a batch of B rows and H hidden units.

    The choice depends on the sizes only, the same for inference and training:
    ``"blas"`` rounds differently from the other two (which are bitwise equal),
    so ``lstm`` and ``lstm_forward`` give the same bits, and results do not
    depend on ``NUMBA_NUM_THREADS``. A training step's forward and backward
    then also use one pool of threads: numba's and BLAS's each keep spinning
    after they run, and alternating them made a training step 2.5-3.5x slower
    on two cores (numba issue 6933).
    """
    if config.path is not None:
        if config.path not in PATHS:
            raise ValueError(f"nblstm.cpu.config.path: expected one of {PATHS} or None, "
                             f"got {config.path!r}")
        return config.path
    if B < config.numba_min_batch or B * H * 4 * H >= config.blas_min_work:
        return "blas"
    return "tiles" if B >= config.tiles_min_batch else "serial"


def _tiling(B, H):
    """(batch rows, hidden units, row groups) per parallel tile.

    Whole rows per tile when the batch alone gives every thread work: a tile
    that covers part of a row computes four short column ranges, one per gate,
    which runs at a fraction of the speed of one range over the row's 4H
    columns. Two rows per tile where there are rows enough (``add_products``
    computes two at a time). Tiles of whole rows need nothing from each other,
    so they run as one group per thread, each with its own loop over time and
    no barrier between steps; tiles of part of a row meet at a barrier every
    step (``row_groups`` 0). The thread count only sets the tiling; results do
    not depend on it, since every element is summed in the same order.
    """
    threads = numba.get_num_threads()
    want_tiles = threads * config.tiles_per_thread
    row_block = 2 if B >= 2 * want_tiles else 1
    row_blocks = -(-max(B, 1) // row_block)
    if row_blocks >= threads:
        return row_block, H, threads
    blocks_per_row = -(-want_tiles // row_blocks)
    return row_block, max(min(H, config.min_unit_block), -(-H // blocks_per_row)), 0


def empty(shape, dtype):
    return np.empty(shape, dtype)


def zeros(shape, dtype):
    return np.zeros(shape, dtype)


def scratch(name, shape, dtype):
    """An array no result refers to, reused per thread and name (:mod:`.workspace`)."""
    return workspace.scratch(name, shape, dtype, config.workspace_bytes)


def zeros_input(shape, dtype):
    """Zeros that the kernels only read (a state the user left out)."""
    return np.zeros(shape, dtype)


def asarray(a):
    return np.asarray(a)


def is_device(a):
    return False


def as_operand(a, dtype):
    """``a`` as a C-contiguous array of ``dtype``; no copy if it already is one (read only).

    A read-only array is copied too: numba compiles every kernel again for
    read-only argument types.
    """
    a = np.asarray(a)
    if a.dtype == np.dtype(dtype) and a.flags.c_contiguous and a.flags.writeable:
        return a
    return copy_as(a, dtype)


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


def finite_each(arrays):
    """One bool per array: True if it holds no NaN or Inf."""
    return [bool(np.isfinite(a).all()) for a in arrays]


#: per calling thread: whether its last layer ran on BLAS's threads (``path="blas"``)
_last_layer = threading.local()


def from_internal(a, order, time_major, on_device=False):
    """:func:`layout.from_internal`, with numba's threads unless BLAS's ran last.

    Whichever pool ran the layers is still spinning; a gather on the other
    pool would wait for a core (numba issue 6933), on the same pool it shares
    the work.
    """
    parallel = not getattr(_last_layer, "blas", True)
    return layout.from_internal(a, order, time_major, on_device, parallel=parallel)


def forward_layer(x, W_ih, W_hh, b, h0, c0, lengths, y, h_n, c_n, gates, cells):
    B, H = x.shape[1], W_hh.shape[1]
    path = choose_path(B, H)
    row_block, unit_block, row_groups = _tiling(B, H)
    _last_layer.blas = path == "blas"
    _forward.forward_layer(x, W_ih, W_hh, b, h0, c0, lengths, y, h_n, c_n, gates, cells,
                           path=path, row_block=row_block, unit_block=unit_block,
                           row_groups=row_groups, chunk_elements=config.chunk_elements,
                           workspace_bytes=config.workspace_bytes)


def backward_layer(x, W_ih, W_hh, h0, c0, lengths, gates, cells, dy, dh_n, dc_n,
                   dx, dW_ih, dW_hh, db, dh0, dc0):
    B, H = x.shape[1], W_hh.shape[1]
    path = choose_path(B, H)
    row_block, unit_block, row_groups = _tiling(B, H)
    _last_layer.blas = path == "blas"
    _backward.backward_layer(x, W_ih, W_hh, h0, c0, lengths, gates, cells, dy, dh_n, dc_n,
                             dx, dW_ih, dW_hh, db, dh0, dc0,
                             path=path, row_block=row_block, unit_block=unit_block,
                             row_groups=row_groups, workspace_bytes=config.workspace_bytes)
