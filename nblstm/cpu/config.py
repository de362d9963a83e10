"""Tuning of the CPU kernels, read by host code at every call.

Kernels never read these values: numba freezes globals into compiled code, so
host code (:mod:`nblstm.cpu.plan`, the layer drivers) reads them and passes
them to the kernels as arguments. An assignment is checked (type, allowed
values) and names the knob; ``with nblstm.cpu.config.override(path="tiles"):``
sets knobs for a block (:mod:`nblstm._config`). docs/configuration.md lists
every knob.
"""
from __future__ import annotations

from dataclasses import dataclass

from .._config import Knobs, knob

__all__ = ["CPUConfig", "config", "PATHS"]

#: the step paths a layer can take (:func:`nblstm.cpu.plan.choose_path`)
PATHS = ("serial", "tiles", "blas", "slices")


@dataclass
class CPUConfig(Knobs):
    """Tuning of the CPU kernels.

    The defaults were chosen with ``python bench/cpu_paths.py`` (the paths
    timed on one shape) on the 2-core machine the benchmarks run on; each is
    held by a measurement in docs/performance.md#path-choice and the rows after it.

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
        Force ``"serial"``, ``"tiles"``, ``"blas"`` or ``"slices"`` (tests,
        benchmarks); None chooses by size.
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
    recycle_min_bytes : int
        Arrays that leave a call (the cache, results) from this size on are
        cut from buffers the process keeps and hands out again once nothing
        refers to them (:func:`nblstm.cpu.workspace.empty`).
    recycle_bytes : int
        Most bytes of such buffers the process keeps, in use or not, for all
        threads together; 0 allocates every array.
    slice_units : int
        Hidden units per slice on the ``"slices"`` path (:mod:`nblstm.cpu.slices`);
        0 chooses by H, the dtype and the direction (:func:`nblstm.cpu.plan.slice_units`).
        Results depend on it with MKL, never on the thread count.
    row_blocks_max_H : int
        Up to this H, the ``"slices"`` path runs one slice of all H units in
        blocks of batch rows, each block through all steps with no barrier
        (:func:`nblstm.cpu.plan.block_rows`); above it, slices of units with a
        barrier every step.
    row_blocks_min_work : int
        ``B * H * 4H`` from which, where MKL is installed and H is at most
        ``row_blocks_max_H``, a step takes those blocks (``"slices"``) instead
        of ``"tiles"``: below it the tiles are faster, above it the blocks
        (docs/performance.md#row-blocks).
    block_rows : int
        Most batch rows per such block. Results depend on it with MKL, never
        on the thread count.
    slices_gemm : str
        The ``"slices"`` path's products: ``"auto"`` (MKL's sequential GEMM
        where :mod:`nblstm.cpu.mkl` finds it, else numba loops), ``"mkl"``
        (required) or ``"numba"``. Large sizes take ``"slices"`` by themselves
        only with MKL; ``"numba"`` keeps the choice of the other paths.
    adapt_to_load : bool
        Run layers whose threads meet at a barrier every step on fewer of
        numba's threads while other programs keep cores busy
        (:func:`nblstm.cpu.plan.threads_under_load`); results do not change.
    """

    _NAME = "nblstm.cpu.config"

    blas_min_work: int = knob(4_000_000, minimum=0)
    numba_min_batch: int = knob(2, minimum=0)
    tiles_min_batch: int = knob(4, minimum=0)
    path: str | None = knob(None, choices=PATHS)
    min_unit_block: int = knob(16, minimum=1)
    tiles_per_thread: int = knob(2, minimum=1)
    chunk_elements: int = knob(1 << 20, minimum=1)
    workspace_bytes: int = knob(64 << 20, minimum=0)
    recycle_min_bytes: int = knob(4 << 20, minimum=0)
    recycle_bytes: int = knob(256 << 20, minimum=0)
    slice_units: int = knob(0, minimum=0)
    row_blocks_max_H: int = knob(128, minimum=0)
    row_blocks_min_work: int = knob(100_000, minimum=0)
    block_rows: int = knob(8, minimum=1)
    slices_gemm: str = knob("auto", choices=("auto", "mkl", "numba"))
    adapt_to_load: bool = knob(True)


#: the configuration every call reads
config = CPUConfig()
