"""The launch plan of the recurrence kernels: how a layer is laid out on the device (host code only).

The twin of :mod:`nblstm.cpu.plan`.

A block owns ``U`` consecutive hidden units and computes all four gates of each
(so the cell update needs no other block); the grid has ``ceil(H / U)`` blocks.
Within a block, the work of one time step is ``B * U`` (row, unit) pairs, each
a dot product of length H (forward: four of them, one per gate; backward: one
of length 4H), split over ``S`` consecutive threads and summed by a fixed tree
in shared memory (bitwise reproducible; warp shuffles would be faster but the
CUDA simulator the tests run on has none).

Dynamic shared memory per block:
``[W_hh slice (4 U H) | scratch (A * threads) | stage (R * L)]``
where A is the number of accumulators per thread (4 forward, 1 backward). The
stage holds the vector the dot products read, h_{t-1} (forward, length H) or
dz_{t+1} (backward, length 4H), of the R rows one round of pairs touches
(R = min(B, (slots + U - 2) // U + 1) with slots = threads / S), one k-tile of
L elements at a time: L is the whole vector where it fits half of the budget left
beside the slice and the scratch, else the largest multiple of 4 S that does, and at
least 4 S (so a tile starts at a
multiple of S and every lane's k sequence is unchanged). The slice is left out,
and W_hh read from global memory, when it does not fit ``config.shared_bytes``
beside the scratch and the smallest stage. The scratch and the smallest stage
are always there, even past a budget smaller than them (0 in the tests).

The persistent path launches one cooperative kernel for all time steps, with a
grid-wide barrier between steps; it needs the whole grid resident at once, so
it is taken only if ``ceil(H / U) <= max_cooperative_grid_blocks``. When U is
chosen automatically and that grid is too large, the plan first reads W_hh from
global memory (less shared memory per block, so more blocks resident) and then
doubles U until the grid fits: a persistent launch reading W_hh from L2 costs
less than a launch per step. Only a grid that never fits, or a fixed
``config.units_per_block``, runs the same step function as one launch per step.
"""
from __future__ import annotations

from typing import NamedTuple

import numba
from numba import cuda

from .config import config

__all__ = ["Plan", "plan", "max_cooperative_blocks"]

_SIMULATOR = bool(getattr(numba.config, "ENABLE_CUDASIM", 0))

#: why the last query of max_cooperative_grid_blocks failed (the per-step path was used), or None
LAST_COOPERATIVE_ERROR = None


class Plan(NamedTuple):
    """Launch layout of a recurrence kernel.

    Attributes
    ----------
    units : int
        U, hidden units per block.
    lanes : int
        S, threads sharing one dot product (a power of two, at most 32).
    blocks : int
        ceil(H / U).
    threads : int
        Threads per block, a multiple of 32.
    shared_bytes : int
        Dynamic shared memory per block (W_hh slice and reduction scratch).
    w_shared : bool
        The W_hh slice is in shared memory (else read from global memory).
    red_offset : int
        Element offset of the reduction scratch in shared memory.
    persistent : bool
        One cooperative launch for all steps (else one launch per step).
    stage_offset : int
        Element offset of the stage (a multiple of 4: 16-byte aligned for float32).
    stage_rows : int
        R, rows of the stage.
    stage_len : int
        L, elements per row of the stage (one k-tile; a multiple of 4 S).
    """

    units: int
    lanes: int
    blocks: int
    threads: int
    shared_bytes: int
    w_shared: bool
    red_offset: int
    persistent: bool
    stage_offset: int = 0
    stage_rows: int = 0
    stage_len: int = 0


def _pow2_floor(n):
    return 1 << (max(int(n), 1).bit_length() - 1)


#: answers of the driver, per device: they do not change, and plan() runs on every call
_SM_COUNTS = {}
_COOPERATIVE_LIMITS = {}


def _device_id():
    return getattr(cuda.get_current_device(), "id", 0)


def _sm_count():
    device = cuda.get_current_device()
    key = getattr(device, "id", 0)
    if key not in _SM_COUNTS:
        _SM_COUNTS[key] = int(getattr(device, "MULTIPROCESSOR_COUNT", 1))
    return _SM_COUNTS[key]


def max_cooperative_blocks(kern, args, threads, shared_bytes):
    """``max_cooperative_grid_blocks`` of ``kern`` compiled for ``args``.

    Asked of the driver once per device, kernel, argument types and launch shape.
    """
    if _SIMULATOR:
        # the simulator runs a cooperative grid of one block only
        return kern.overloads[None].max_cooperative_grid_blocks(threads)
    argtypes = tuple(kern.typeof_pyval(a) for a in args)
    key = (_device_id(), kern, argtypes, threads, shared_bytes)
    if key not in _COOPERATIVE_LIMITS:
        try:
            _COOPERATIVE_LIMITS[key] = kern.compile(argtypes).max_cooperative_grid_blocks(
                threads, shared_bytes)
        except Exception as exc:  # noqa: BLE001 (an older numba-cuda, or no cooperative launch)
            # The per-step path needs no cooperative launch; say why it was taken, and
            # do not ask again for this key (plan() may try several layouts per call).
            global LAST_COOPERATIVE_ERROR
            LAST_COOPERATIVE_ERROR = exc
            _COOPERATIVE_LIMITS[key] = 0
    return _COOPERATIVE_LIMITS[key]


def plan(H, B, itemsize, accumulators, persistent_kernel, make_args):
    """Choose U, S, threads, shared memory and the path for one layer.

    Parameters
    ----------
    H, B : int
        Hidden size and batch size.
    itemsize : int
        Bytes per element of the compute dtype.
    accumulators : int
        Partial sums per thread that the reduction scratch holds (4 forward, 1 backward).
    persistent_kernel : CUDA dispatcher, or dict of them by ``Plan.w_shared``
        The cooperative kernel, to ask how many blocks can be resident; a dict gives the
        kernel compiled for each place W_hh can live (True: shared, False: global memory).
    make_args : callable
        ``make_args(plan) -> tuple`` of that kernel's launch arguments.

    Returns
    -------
    Plan
    """
    threads_max = config.rnn_threads
    if threads_max % 32:
        raise ValueError(f"rnn_threads must be a multiple of 32, got {threads_max}")
    scratch_max = accumulators * threads_max * itemsize
    slice_bytes = 4 * H * itemsize  # one unit's four gate rows of W_hh (or column, backward)
    u_shared = min(H, max(0, config.shared_bytes - scratch_max) // slice_bytes)
    # the stage takes room too: fewer units until the slice fits beside it
    while u_shared >= 1 and not _layout(u_shared, H, B, itemsize, accumulators,
                                        threads_max, u_shared).w_shared:
        u_shared -= 1
    if config.units_per_block:
        units = int(config.units_per_block)
    else:
        sms = _sm_count()
        units = -(-H // (sms * config.rnn_blocks_per_sm))
        if 1 <= u_shared < units and -(-H // u_shared) <= 8 * sms:
            units = u_shared  # more, smaller blocks whose W_hh slice stays in shared memory
    p = _layout(max(1, min(units, H)), H, B, itemsize, accumulators, threads_max, u_shared)
    if not config.persistent:
        return p

    def fits(q):
        kern = persistent_kernel[q.w_shared] if isinstance(persistent_kernel, dict) else persistent_kernel
        return q.blocks <= max_cooperative_blocks(kern, make_args(q), q.threads, q.shared_bytes)

    if fits(p):
        return p._replace(persistent=True)
    if not config.units_per_block:
        # A launch per step costs more host time in numba-cuda than reading W_hh from L2 in
        # one persistent launch (docs/performance.md#cuda-persistent). So before giving up the
        # persistent path, try W_hh in global memory (less shared memory per block, so more
        # resident blocks) and then fewer, larger blocks.
        units = p.units
        while True:
            q = _layout(units, H, B, itemsize, accumulators, threads_max, 0)
            if fits(q):
                return q._replace(persistent=True)
            if units >= H:
                break
            units = min(H, 2 * units)
    return p


def _round_up(n, m):
    return -(-n // m) * m


def _layout(units, H, B, itemsize, accumulators, threads_max, u_shared):
    """The Plan (persistent=False) of ``units`` per block.

    W_hh in shared memory if units <= u_shared and the slice fits the budget beside the
    scratch and the smallest stage; the stage then gets what is left (see the module).
    """
    blocks = -(-H // units)
    pairs = B * units
    lanes = max(1, min(32, _pow2_floor(threads_max // max(pairs, 1)), _pow2_floor(H)))
    threads = min(threads_max, -(-(pairs * lanes) // 32) * 32)
    scratch = accumulators * threads if lanes > 1 else 0
    slots = threads // lanes
    rows = max(1, min(B, (slots + units - 2) // units + 1))  # rows one round of pairs touches
    length = 4 * H // accumulators  # the dot's length: H forward (4 sums), 4H backward (1)
    quantum = 4 * lanes
    budget = config.shared_bytes // itemsize
    # each unit's rows (forward: 4 gates by H) or column (backward: 4H) of W_hh lane-major,
    # k padded to a multiple of 4 S
    slice_len = 4 * _round_up(H, quantum) if accumulators == 4 else _round_up(4 * H, quantum)
    w_shared = (units <= u_shared
                and _round_up(units * slice_len + scratch, 4) + rows * quantum <= budget)
    red_offset = units * slice_len if w_shared else 0
    stage_offset = _round_up(red_offset + scratch, 4)
    # at most half of what is left: a stage filling the budget would leave no room for the
    # kernel's static shared memory (over 48 KiB no block launches) and would cut the
    # blocks resident per SM, which the cooperative grid needs, for little gain (a larger
    # tile only saves barriers)
    room = (budget - stage_offset) // 2 // rows // quantum * quantum
    stage_len = max(quantum, min(_round_up(length, quantum), room))
    shared_bytes = (stage_offset + rows * stage_len) * itemsize
    return Plan(units, lanes, blocks, threads, shared_bytes, w_shared, red_offset, False,
                stage_offset, rows, stage_len)

