"""Launch configuration of the CUDA kernels, read by host code at every call.

Kernels never read these values: numba freezes globals into compiled code, so
host code reads them and passes them as kernel arguments (or uses them for the
launch configuration). An assignment is checked and names the knob; tests patch
them small, e.g. ``monkeypatch.setattr(nblstm.cuda.config, "rnn_threads", 32)``,
and ``with nblstm.cuda.config.override(...)`` sets knobs for a block
(:mod:`nblstm._config`). docs/configuration.md lists every knob.
"""
from __future__ import annotations

from dataclasses import dataclass

from .._config import Knobs, knob


@dataclass
class Config(Knobs):
    """Tuning knobs of the CUDA backend.

    Attributes
    ----------
    tile_m, tile_n, tile_k : int
        Block tile of the matrix-multiply kernel (output rows, output columns,
        reduction depth staged in shared memory). ``tile_m`` and ``tile_n`` must
        be multiples of 4: each thread computes a 4 x 4 register tile, so a
        block has ``(tile_m // 4) * (tile_n // 4)`` threads.
    rnn_threads : int
        Threads per block of the recurrence kernels, a multiple of 32.
    units_per_block : int or None
        Hidden units owned by one block of the recurrence kernels (all four
        gates of each, so the cell update is fused). None picks it from the
        device: about ``rnn_blocks_per_sm`` blocks per multiprocessor, or
        fewer units where that lets the W_hh slice live in shared memory, and
        more units (W_hh from global memory) where the grid would otherwise be
        too large for one cooperative launch.
    rnn_blocks_per_sm : int
        Target blocks per multiprocessor when ``units_per_block`` is None.
    shared_bytes : int
        Shared memory a block may use for its W_hh slice (4 * units * H
        elements), its reduction scratch and the staged h_{t-1} (forward) or
        dz_{t+1} (backward), in tiles of at most half of what is left; where
        the slice does not fit beside the scratch and the smallest tile, the
        kernels read W_hh from global memory (L2).
        48 KiB is the most a kernel gets without an opt-in attribute, which
        numba-cuda does not expose.
    persistent : bool
        Allow the persistent cooperative kernel (one launch for all time steps,
        a grid-wide barrier between steps). False uses one launch per step, as
        does a grid larger than the device's ``max_cooperative_grid_blocks``
        when ``units_per_block`` is fixed; with it None, ``plan.plan``
        first tries W_hh in global memory and larger blocks.
    elementwise_threads : int
        Threads per block of the elementwise kernels (copy, add, fill).
    """

    _NAME = "nblstm.cuda.config"

    tile_m: int = knob(64, minimum=4, multiple_of=4)
    tile_n: int = knob(64, minimum=4, multiple_of=4)
    tile_k: int = knob(16, minimum=1)
    rnn_threads: int = knob(256, minimum=32, multiple_of=32)
    units_per_block: int | None = knob(None, minimum=1)
    rnn_blocks_per_sm: int = knob(2, minimum=1)
    shared_bytes: int = knob(48 * 1024, minimum=0)
    persistent: bool = knob(True)
    elementwise_threads: int = knob(256, minimum=1)


#: the configuration every call reads
config = Config()
