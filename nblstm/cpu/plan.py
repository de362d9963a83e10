"""How a CPU layer runs for its sizes: the step path and the parallel tiling (host code only).

The twin of :mod:`nblstm.cuda.plan`. :func:`plan` gives a layer's
:class:`Plan`: :func:`choose_path` picks how one step runs, :func:`tiling`
how the ``"tiles"`` path splits a step over numba's threads; both read
:data:`nblstm.cpu.config`, :attr:`Plan.driver` names the driver that runs
the layer (:mod:`nblstm.cpu.layers`), and the drivers pass the sizes to the
kernels as arguments. :func:`numba_ran_last` says, per calling thread, which
pool of worker threads (numba's or BLAS's) the last layer ran on.

:func:`layer_plan` is how :mod:`nblstm.cpu.layers` gets a layer's plan: where the threads
would meet at a barrier every step and other programs keep cores busy, it
runs the layer on fewer of numba's threads (:func:`threads_under_load`).
"""
import contextlib
import os
import threading
from typing import NamedTuple

import numba

from . import mkl
from .config import PATHS, config

__all__ = ["PATHS", "DRIVERS", "Plan", "plan", "record_path", "layer_plan", "threads_under_load", "busy_cores",
           "numba_threads", "choose_path", "mkl_slices", "slice_units", "block_rows", "tiling", "numba_ran_last"]

def choose_path(B, H):
    """How one step runs for a batch of B rows and H hidden units.

    The choice depends on the sizes only, the same for inference and training:
    ``"blas"`` rounds differently from the other two (which are bitwise equal),
    and so does ``"slices"`` with MKL (chosen where MKL is installed,
    :func:`mkl_slices`, from two rows: for the sizes of ``"blas"``, and for
    those of ``"tiles"`` from ``config.row_blocks_min_work`` where H is small
    enough for blocks of rows, :func:`block_rows`), so ``lstm`` and
    ``lstm_forward`` give the same bits, and results do not
    depend on ``NUMBA_NUM_THREADS``. A training step's forward and backward
    then also use one pool of threads: numba's and BLAS's each keep spinning
    after they run, and alternating them slowed a training step several times
    (numba issue 6933; docs/performance.md#one-pool-per-call).

    Parameters
    ----------
    B, H : int
        Batch size and hidden size of the layer.

    Returns
    -------
    {"serial", "tiles", "blas", "slices"}
        ``config.path`` where set (its assignment checked it), else the choice by size.
    """
    if config.path is not None:
        return config.path
    work = B * H * 4 * H
    large = work >= config.blas_min_work
    row_blocks = H <= config.row_blocks_max_H and work >= config.row_blocks_min_work
    if (large or row_blocks) and B >= config.numba_min_batch and mkl_slices():
        return "slices"
    if B < config.numba_min_batch or large:
        return "blas"
    return "tiles" if B >= config.tiles_min_batch else "serial"


def mkl_slices():
    """Whether large sizes take ``"slices"`` with MKL's GEMM (where :mod:`nblstm.cpu.mkl` finds MKL).

    Each thread then multiplies its own packed slice of the weights, where the
    ``"blas"`` path's OpenBLAS repacks W_hh at every step: faster than
    ``"blas"`` and than torch's oneDNN at the large sizes
    (docs/performance.md#mkl-slices). ``config.slices_gemm = "numba"`` keeps
    the choice of the other paths.
    """
    return config.slices_gemm != "numba" and mkl.available()


def tiling(B, H):
    """(batch rows, hidden units, row groups) per parallel tile.

    Whole rows per tile when the batch alone gives every thread work: a tile
    that covers part of a row computes four short column ranges, one per gate,
    which runs at a fraction of the speed of one range over the row's 4H
    columns. Two rows per tile where there are rows enough (``add_products``
    computes two at a time). Tiles of whole rows need nothing from each other,
    so they run as one group per thread, each with its own loop over time and
    no barrier between steps; tiles of part of a row meet at a barrier every
    step (the third value 0). The thread count only sets the tiling; results do
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


#: on the ``"slices"`` path, the most bytes of a slice's hidden units (:func:`slice_units`);
#: the results' bits depend on them with MKL (CONTRIBUTING.md, "Constants in the code")
FORWARD_SLICE_BYTES = 512
BACKWARD_SLICE_BYTES = 1024


def slice_units(H, units, itemsize=8, backward=False):
    """Units per slice on the ``"slices"`` path: ``units`` if positive, else H / 2 up to a multiple of 8; capped.

    The cap is ``FORWARD_SLICE_BYTES`` (``BACKWARD_SLICE_BYTES`` for the
    backward) of units of ``itemsize`` bytes: 128 units float32 and 64
    float64 forward, 256 and 128 backward. A multiple of 8 keeps each gate's
    block a whole number of vectors; at least two slices give two threads
    work. A thread makes one MKL product per slice and step, and a GEMM
    copies panels of both operands at every call, so few wide slices beat
    many narrow ones until a slice's weights stop fitting the core's cache
    (the A/B that set these widths: docs/performance.md#slice-width). The
    widths were measured on two cores only: with more cores than slices (two
    at H = 256 float32) the recurrence leaves cores idle. They fix the shapes
    of MKL's products, hence the bits: part of the bitwise contract
    (CONTRIBUTING.md).

    Parameters
    ----------
    H : int
        Hidden size.
    units : int
        ``config.slice_units``: if positive, the answer (at most H).
    itemsize : int
        Bytes per value of the layer's dtype (4 or 8).
    backward : bool
        Whether the slices are the backward's.

    Returns
    -------
    int
    """
    if units > 0:
        return max(1, min(units, H))
    cap = (BACKWARD_SLICE_BYTES if backward else FORWARD_SLICE_BYTES) // itemsize
    return max(1, min(H, cap, max(8, 8 * (-(-H // 16)))))


def block_rows(B, H):
    """Batch rows per block on the ``"slices"`` path when one slice holds all H units, else 0.

    Where the packed weights of all H units stay in one core's cache
    (``H <= config.row_blocks_max_H``), the slice is the whole layer and each
    block of rows runs all its steps with no barrier between them
    (``slices._forward_row_blocks``), faster than slices of units with a
    barrier per step up to H = 128 and slower at H = 256
    (docs/performance.md#row-blocks). Blocks of at most ``config.block_rows``
    rows, split evenly; they depend on B and H only, so MKL's shapes, and the
    results, never depend on the thread count (threads take whole blocks:
    ``slices.block_schedule``). Small blocks let the threads share long and
    short rows (docs/performance.md#block-rows).
    """
    if H > config.row_blocks_max_H or B == 0:
        return 0
    blocks = -(-B // max(1, config.block_rows))
    return -(-B // blocks)


#: the six drivers of a layer's steps (:attr:`Plan.driver`), one each in the forward and the
#: backward (the tables of :mod:`nblstm.cpu.layers`): the four paths, two of which run in two ways
DRIVERS = ("serial", "tiles", "row_groups", "blas", "slices", "slice_row_blocks")


class Plan(NamedTuple):
    """How one layer's forward or backward runs: its driver and that driver's sizes.

    The path is the same for both directions of a layer's pass (it depends
    on B and H only); the driver of ``"tiles"`` and ``"slices"`` may differ
    with the thread count (:func:`layer_plan`) and, on ``"slices"``, the
    backward's slices of units may be wider (:func:`slice_units`).

    Attributes
    ----------
    path : {"serial", "tiles", "blas", "slices"}
        How a step runs (:func:`choose_path`; the names of ``nblstm.cpu.PATHS``).
    driver : str
        One of :data:`DRIVERS`: the path, or how it runs for these sizes:
        ``"row_groups"`` is ``"tiles"`` as groups of whole rows, each with its
        own loop over time (:func:`tiling`); ``"slice_row_blocks"`` is
        ``"slices"`` with one slice of all H units, as blocks of rows each with
        its own loop over time (:func:`block_rows`). ``"tiles"`` and
        ``"slices"`` meet at a barrier every step.
    rows : int
        Batch rows per tile (``"tiles"``, ``"row_groups"``) or per block
        (``"slice_row_blocks"``); 0 for the other drivers.
    units : int
        Hidden units per tile (``"tiles"``; H for ``"row_groups"``) or per slice
        (``"slices"``; H for ``"slice_row_blocks"``); 0 for the other drivers.
    groups : int
        Groups of rows (``"row_groups"``); 0 for the other drivers.
    """

    path: str
    driver: str
    rows: int
    units: int
    groups: int

    @property
    def barrier_per_step(self):
        """Whether numba's threads meet at a barrier every step (tiles or slices of part of H)."""
        return self.driver in ("tiles", "slices")


#: per calling thread: whether its last layer ran on BLAS's threads (``path="blas"``)
_last_layer = threading.local()


def plan(B, H, itemsize=8, backward=False):
    """The :class:`Plan` of a layer of batch B and hidden size H, remembered as the thread's last.

    Parameters
    ----------
    B, H : int
        The layer's batch size and hidden size.
    itemsize : int
        Bytes per value of the layer's dtype (4 or 8): with ``backward``, it
        sets the width of the ``"slices"`` path's slices (:func:`slice_units`).
    backward : bool
        Whether the plan is for the layer's backward.

    Returns
    -------
    Plan
    """
    path = choose_path(B, H)
    if path == "slices":
        # cut by B, H, the dtype and the direction, never by the thread count: MKL's sums
        # depend on the shapes
        rows = block_rows(B, H)
        if rows:
            p = Plan(path, "slice_row_blocks", rows, H, 0)
        else:
            p = Plan(path, "slices", 0, slice_units(H, config.slice_units, itemsize, backward), 0)
    elif path == "tiles":
        rows, units, groups = tiling(B, H)
        p = Plan(path, "row_groups" if groups else "tiles", rows, units, groups)
    else:
        p = Plan(path, path, 0, 0, 0)
    record_path(path)
    return p


def record_path(path):
    """Remember ``path`` as the calling thread's last layer's (read by :func:`numba_ran_last`).

    :func:`plan` calls it; so does a caller that runs a layer's kernels without
    planning (the lean path of :mod:`nblstm._lean`).
    """
    _last_layer.blas = path == "blas"


#: the kernel's count of runnable tasks (Linux); where it cannot be read, nblstm does not adapt
LOADAVG = "/proc/loadavg"


def busy_cores():
    """How many of the machine's cores other programs keep busy now.

    The fourth field of ``/proc/loadavg`` counts the tasks that are running
    or waiting for a core at this instant, on the whole machine (containers
    included): the calling thread, numba's workers while they still spin
    after a parallel region (up to ``numba.get_num_threads() - 1``), and
    everyone else's. All ``numba.get_num_threads()`` are counted as
    nblstm's, spinning or not, so the estimate may take a busy core for a
    free one, never the reverse: it errs towards keeping threads (on two
    cores, one busy program beside sleeping workers goes unnoticed).

    Returns
    -------
    int or None
        The runnable tasks beyond nblstm's own (at least 0); None where the
        count cannot be read (not Linux).
    """
    try:
        with open(LOADAVG) as f:
            runnable = int(f.read().split()[3].split("/")[0])
    except (OSError, ValueError, IndexError):
        return None
    return max(0, runnable - numba.get_num_threads())


def threads_under_load():
    """numba's thread count for a layer whose threads meet every step, given :func:`busy_cores`.

    A barrier every step waits for the slowest thread, and a thread that
    shares its core with a busy program runs a time slice at a time: with
    two busy processes on two cores, one thread took about half the time of
    two (docs/performance.md#adapt-to-load). OpenMP's dynamic mode (``OMP_DYNAMIC``) makes the same choice
    from the load average; the count of runnable tasks, read when a layer
    starts, follows a load that starts or stops between calls. Results do
    not depend on the thread count.

    Returns
    -------
    int
        The machine's cores (``os.cpu_count()``, as the count covers the
        whole machine) less :func:`busy_cores`, at least 1 and at most
        ``numba.get_num_threads()``; that thread count itself where
        ``config.adapt_to_load`` is off or the count cannot be read.
    """
    threads = numba.get_num_threads()
    if not config.adapt_to_load or threads == 1:
        return threads
    busy = busy_cores()
    if busy is None:
        return threads
    return max(1, min(threads, (os.cpu_count() or 1) - busy))


@contextlib.contextmanager
def numba_threads(n):
    """Run the body with ``n`` of numba's threads; the calling thread's setting is restored on exit.

    numba's setting is per calling thread, so concurrent callers (Python
    threads, Dask tasks) each keep their own.

    Parameters
    ----------
    n : int
        From 1 to ``numba.config.NUMBA_NUM_THREADS``.
    """
    previous = numba.get_num_threads()
    numba.set_num_threads(n)
    try:
        yield
    finally:
        numba.set_num_threads(previous)


@contextlib.contextmanager
def layer_plan(B, H, itemsize=8, backward=False):
    """The :class:`Plan` of a layer, run on fewer of numba's threads while others keep the cores busy.

    Where the plan has a barrier every step (:attr:`Plan.barrier_per_step`)
    the whole layer (its steps and the weight-gradient products after them)
    runs with :func:`threads_under_load` threads (:func:`numba_threads`),
    planned again for that many. Blocks and groups of rows, which meet only
    at the end of the layer, keep all the threads.

    Parameters
    ----------
    B, H : int
        The layer's batch size and hidden size.
    itemsize : int
        Bytes per value of the layer's dtype.
    backward : bool
        Whether the plan is for the layer's backward.

    Yields
    ------
    Plan
    """
    p = plan(B, H, itemsize, backward)
    threads = numba.get_num_threads()
    fewer = threads_under_load() if p.barrier_per_step else threads
    if fewer == threads:
        yield p
        return
    with numba_threads(fewer):
        yield plan(B, H, itemsize, backward)


def numba_ran_last():
    """Whether the calling thread's last layer ran on numba's threads (not BLAS's)."""
    return not getattr(_last_layer, "blas", True)
