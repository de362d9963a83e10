"""CUDA forward pass of one LSTM layer: ``forward_layer`` and its recurrence kernels.

:func:`forward_layer` computes the input projection ``zx[t, b] = W_ih x[t, b] + b``
for all steps at once (:func:`nblstm.cuda.matmul.matmul`); the recurrence
kernels then add the recurrent term and apply the cell update, gate blocks
[i f g o]:

.. math::

    z_t &= zx_t + W_{hh} h_{t-1} \\\\
    i, f, g, o &= \\sigma(z_i), \\sigma(z_f), \\tanh(z_g), \\sigma(z_o) \\\\
    c_t &= f \\odot c_{t-1} + i \\odot g, \\qquad h_t = o \\odot \\tanh(c_t)

State lives in the outputs: each block first copies h0/c0 of its units into
``h_n``/``c_n`` (no separate copy launches), which are then overwritten at each
row's valid steps, so they end holding the state after its last step;
``h_{t-1}`` of a running row is read from ``y[t-1]`` (rows are sorted by
length, so a row running at t also ran at t-1).
"""
from __future__ import annotations

import numpy as np
from numba import cuda, uint32, uint64

from .. import _math
from .._batch import running_rows
from . import elementwise as ew
from . import shared_arrays, workspace
from ._jit import device, kernel
from .activations import sigmoid, tanh
from .layout import as_operand, device_view, is_device, scatter_rows, swap_first_axes, to_internal
from .matmul import matmul
from .plan import plan

__all__ = ["forward_layer", "forward_recurrence"]


@device
def _load_forward_slice(d_w, smem, j0, U, H, S):
    # smem[(jj*Hp + (k % S) * (Hp / S) + k / S)*4 + g] = W_hh[g*H + j0 + jj, k] (Hp: H rounded
    # up to a multiple of 4 S): the four gates of one (unit, k) side by side, and lane l's
    # k = l, l + S, ... one after another (lane-major, as the stage of h), so the inner loop
    # reads 16-byte vectors. Global reads in W_hh's own order (coalesced); runs once per
    # kernel (uint32 division, inline, no call); the padding is never read.
    tid = uint32(cuda.threadIdx.x)
    nthr = uint32(cuda.blockDim.x)
    q = uint32(uint32(4) * S)
    Hp = uint32(uint32(uint32(H + q - uint32(1)) // q) * q)
    sh = uint32(cuda.popc(uint32(S - uint32(1))))  # log2 S
    per_lane = uint32(Hp >> sh)
    n = uint32(uint32(4) * uint32(U * H))
    e = tid
    while e < n:
        k = uint32(e % H)
        row = uint32(e // H)
        g = uint32(row // U)
        jj = uint32(row % U)
        j = uint32(j0 + jj)
        if j < H:  # rows past H (last slice) are never read
            kl = uint32(uint32(uint32(jj * Hp) + uint32(uint32(k & uint32(S - uint32(1))) * per_lane))
                        + uint32(k >> sh))
            smem[uint32(uint32(uint32(4) * kl) + g)] = d_w[uint32(uint32(uint32(g * H) + j) * H + k)]
        e = uint32(e + nthr)


def _make_forward(w_shared):
    """The step function and both kernels with W_hh in shared memory (``w_shared``) or global.

    ``w_shared`` is a compile-time constant of the closures below, so each kernel has one
    inner loop, reading W_hh with shared loads (LDS) or global loads, never generic ones.
    All index arithmetic is uint32 (every result cast back: numba types uint32 op uint32
    as int64), so no negative-index wraparound code and no 64-bit division; the divisions
    that give a thread its coordinates run once per kernel, before the time loop.
    """

    @device
    def dot4(d_w, w, w_step, gate, smem, z, cnt, acc_i, acc_f, acc_g, acc_o):
        # One k-tile: acc_g += W_hh[g*H + j, k] * h[k] for this lane's k = k0 + lane + S*i,
        # i = 0, 1, ... < cnt, in that order; h[k] side by side in the stage from smem[z]
        # (lane-major, see stage_rows). W_hh: w_shared, the lane-major slice, the four gates
        # of the lane's i-th k at w + 4i + g (the caller moves w on); else global memory,
        # W_hh[(g*H + j)*H + k] at w + g*H*H, w moved on by S per k and returned. Tile after
        # tile, then the tree sum over lanes in a fixed order: the products and the order
        # of the sums of the old single loop over k, so bitwise the same.
        if w_shared:
            # z, w: multiples of 4 (16-byte aligned); i counts in uint64 (never wraps), so
            # NVVM proves the alignment and reads h and the four gates as 16-byte vectors
            i = uint64(0)
            wi = uint64(0)
            while i < uint64(cnt):
                h = smem[z + i]
                acc_i += d_w[w + wi] * h
                acc_f += d_w[w + wi + uint64(1)] * h
                acc_g += d_w[w + wi + uint64(2)] * h
                acc_o += d_w[w + wi + uint64(3)] * h
                i = i + uint64(1)
                wi = wi + uint64(4)
        else:
            i = uint32(0)
            while i < cnt:
                h = smem[uint32(z + i)]
                acc_i += d_w[w] * h
                acc_f += d_w[uint32(w + gate)] * h
                acc_g += d_w[uint32(w + uint32(gate + gate))] * h
                acc_o += d_w[uint32(w + uint32(uint32(gate + gate) + gate))] * h
                i = uint32(i + uint32(1))
                w = uint32(w + w_step)
        return acc_i, acc_f, acc_g, acc_o, w

    @device
    def stage_rows(d_h0, d_y, t, smem, stage, tile, per_lane, S, sh, rb, nrows, k0, klen,
                   st_r, st_c, st_q, st_s):
        # h_{t-1}[rb + r, k0 + c] for r < nrows, c < klen, lane-major within the row: at
        # smem[stage + r*tile + (c % S) * (tile / S) + c / S], so lane l's c = l, l + S, ...
        # lie side by side. Element e = tid + m*nthr of the (r, c) grid, (r, c) carried
        # (nthr = st_q*tile + st_s)
        r = st_r
        c = st_c
        while r < nrows:
            if c < klen:
                b = uint32(rb + r)
                k = uint32(k0 + c)
                if t == uint32(0):
                    v = d_h0[b, k]
                else:
                    v = d_y[uint32(t - uint32(1)), b, k]
                at = uint32(uint32(stage + uint32(r * tile))
                            + uint32(uint32(uint32(c & uint32(S - uint32(1))) * per_lane) + uint32(c >> sh)))
                smem[at] = v
            c = uint32(c + st_s)
            r = uint32(r + st_q)
            if c >= tile:
                c = uint32(c - tile)
                r = uint32(r + uint32(1))

    @device
    def step(t, n_t, d_zx, d_w, d_h0, d_y, d_hn, d_cn, d_gates, d_cells, training,
             j0, U, S, lane, slot, b_first, jj_first, q_u, r_u, smem, red,
             stage, tile, rows, st_r, st_c, st_q, st_s):
        # t, n_t, j0, U, S, lane, slot, b_first, jj_first, q_u, r_u, red, stage, tile, rows,
        # st_*: uint32. Pair p = b*U + jj of this thread starts at slot (b_first, jj_first)
        # and moves on by slots = q_u*U + r_u pairs per round, carried without a division;
        # the round's first pair p0 = rb*U + rj moves on the same way.
        #
        # Shared memory a step touches: [W slice (read only, written before the time loop
        # and a barrier) | scratch at red | stage at stage], three disjoint ranges.
        # Stage, per round and k-tile, in this order, every thread the same trip counts
        # (pairs, H and tile are the block's, so every barrier is reached by all threads):
        #   (A) cuda.syncthreads(): every thread has finished its reads of the stage from the
        #       previous tile or round (the dot of the previous iteration precedes A in
        #       program order), and, at a step's first tile, of the previous step (the grid
        #       sync or the per-step kernel's barriers lie between) -- so no write below
        #       overwrites a value another thread still reads;
        #   write: all threads copy h_{t-1} of the round's rows and the tile into the stage
        #       (each element by exactly one thread). The source, y[t-1] or h0, is not
        #       written during step t (this step writes y[t], h_n, c_n), and every block's
        #       y[t-1] was written before the grid sync (or the previous launch);
        #   (B) cuda.syncthreads(): the stage is complete before any thread reads it;
        #   read: the dot products read the stage, and nothing writes it until the next A.
        # The tree sum uses the scratch only, with its own barriers (below).
        B = uint32(d_hn.shape[0])
        H = uint32(d_hn.shape[1])
        one = _math.one_like(d_hn[0, 0])
        zero = one - one
        tid = uint32(cuda.threadIdx.x)
        nthr = uint32(cuda.blockDim.x)
        slots = uint32(nthr // S)  # S is a power of two: a shift
        pairs = uint32(B * U)
        gate = uint32(H * H)
        q4 = uint32(uint32(4) * S)
        Hp = uint32(uint32(uint32(H + q4 - uint32(1)) // q4) * q4)
        sh = uint32(cuda.popc(uint32(S - uint32(1))))  # log2 S (S a power of two)
        per_lane = uint32(tile >> sh)  # tile / S, a multiple of 4 (Plan.stage_len)
        b = b_first
        jj = jj_first
        rb = uint32(0)
        rj = uint32(0)
        p0 = uint32(0)
        while p0 < pairs:  # the same trip count in every thread (barriers below)
            p = uint32(p0 + slot)
            j = uint32(j0 + jj)
            valid = p < pairs and j < H
            active = valid and b < n_t
            acc_i = zero
            acc_f = zero
            acc_g = zero
            acc_o = zero
            # rows of this round that run at step t (rows are sorted: b < n_t)
            nrows = uint32(0)
            if rb < n_t:
                nrows = uint32(n_t - rb)
                if nrows > rows:
                    nrows = rows
            if w_shared:
                # the lane-major slice: (jj*Hp + lane*(Hp/S) + i)*4 + g; per tile 4*(tile/S)
                w = uint32(uint32(4) * uint32(uint32(jj * Hp) + uint32(lane * uint32(Hp >> sh))))
                w_step = uint32(uint32(4) * per_lane)
            else:
                w = uint32(uint32(j * H) + lane)  # W_hh[(g*H + j)*H + k] = d_w[g*H*H + j*H + k]
                w_step = S
            # this lane's h in the stage: stage + (b - rb)*tile + lane*(tile/S), a multiple of 4
            z = uint32(uint32(stage + uint32(uint32(b - rb) * tile)) + uint32(lane * per_lane))
            k0 = uint32(0)
            while k0 < H:  # the same trip count in every thread
                klen = uint32(H - k0)
                if klen > tile:
                    klen = tile
                cuda.syncthreads()  # (A) see above
                stage_rows(d_h0, d_y, t, smem, stage, tile, per_lane, S, sh, rb, nrows, k0,
                           klen, st_r, st_c, st_q, st_s)
                cuda.syncthreads()  # (B) see above
                if active and lane < klen:
                    # z[gate, b, j] += W_hh[gate*H + j, k] * h_{t-1}[b, k], this lane's cnt k
                    cnt = uint32(uint32(uint32(klen - lane) + S - uint32(1)) >> sh)
                    acc_i, acc_f, acc_g, acc_o, w_next = dot4(d_w, w, w_step, gate, smem, z, cnt,
                                                              acc_i, acc_f, acc_g, acc_o)
                    if w_shared:
                        w = uint32(w + w_step)
                    else:
                        w = w_next
                k0 = uint32(k0 + tile)
            if S > uint32(1):
                # Tree sum over the S lanes of this pair through shared memory, a fixed
                # order (bitwise reproducible). Lane l < off adds slot l + off, which no
                # lane writes at this level, so one barrier per level suffices.
                r0 = uint32(red + tid)
                r1 = uint32(r0 + nthr)
                r2 = uint32(r1 + nthr)
                r3 = uint32(r2 + nthr)
                smem[r0] = acc_i
                smem[r1] = acc_f
                smem[r2] = acc_g
                smem[r3] = acc_o
                cuda.syncthreads()
                off = uint32(S >> uint32(1))
                while off > uint32(0):
                    if lane < off:
                        acc_i += smem[uint32(r0 + off)]
                        acc_f += smem[uint32(r1 + off)]
                        acc_g += smem[uint32(r2 + off)]
                        acc_o += smem[uint32(r3 + off)]
                        smem[r0] = acc_i
                        smem[r1] = acc_f
                        smem[r2] = acc_g
                        smem[r3] = acc_o
                    cuda.syncthreads()
                    off = uint32(off >> uint32(1))
            if valid and lane == uint32(0):
                if active:
                    i = sigmoid(acc_i + d_zx[t, b, j])                        # i = sigma(z_i)
                    f = sigmoid(acc_f + d_zx[t, b, uint32(H + j)])            # f = sigma(z_f)
                    g = tanh(acc_g + d_zx[t, b, uint32(uint32(2) * H + j)])   # g = tanh(z_g)
                    o = sigmoid(acc_o + d_zx[t, b, uint32(uint32(3) * H + j)])  # o = sigma(z_o)
                    c = f * d_cn[b, j] + i * g                   # c_t = f c_{t-1} + i g
                    h = o * tanh(c)                              # h_t = o tanh(c_t)
                    d_y[t, b, j] = h
                    d_hn[b, j] = h
                    d_cn[b, j] = c
                    if training:
                        d_gates[t, b, j] = i
                        d_gates[t, b, uint32(H + j)] = f
                        d_gates[t, b, uint32(uint32(2) * H + j)] = g
                        d_gates[t, b, uint32(uint32(3) * H + j)] = o
                        d_cells[t, b, j] = c
                else:
                    d_y[t, b, j] = zero  # padded step
            p0 = uint32(p0 + slots)
            jj = uint32(jj + r_u)
            b = uint32(b + q_u)
            if jj >= U:
                jj = uint32(jj - U)
                b = uint32(b + uint32(1))
            rj = uint32(rj + r_u)
            rb = uint32(rb + q_u)
            if rj >= U:
                rj = uint32(rj - U)
                rb = uint32(rb + uint32(1))

    @device
    def coordinates(U, S):
        # (lane, slot, b_first, jj_first, q_u, r_u): the only divisions, once per kernel
        tid = uint32(cuda.threadIdx.x)
        slots = uint32(uint32(cuda.blockDim.x) // S)
        slot = uint32(tid // S)
        return (uint32(tid % S), slot, uint32(slot // U), uint32(slot % U),
                uint32(slots // U), uint32(slots % U))

    @device
    def staging(U, S, tile):
        # (rows, st_r, st_c, st_q, st_s): the rows one round of slots pairs can touch
        # (Plan.stage_rows before its clip to B), and this thread's first element (st_r,
        # st_c) of a (rows, tile) grid walked in steps of nthr = st_q*tile + st_s; once
        # per kernel
        tid = uint32(cuda.threadIdx.x)
        nthr = uint32(cuda.blockDim.x)
        slots = uint32(nthr // S)
        rows = uint32(uint32(uint32(slots + U - uint32(2)) // U) + uint32(1))
        return rows, uint32(tid // tile), uint32(tid % tile), uint32(nthr // tile), uint32(nthr % tile)

    @kernel
    def _forward_persistent_kernel(d_zx, d_w, d_h0, d_c0, d_y, d_hn, d_cn, d_gates, d_cells,
                                   training, d_nt, U_, S_, use_shared, red_, stage_, tile_):
        # One launch for all steps; block blockIdx.x owns units [j0, j0 + U) (the host
        # launches exactly ceil(H / U) blocks), with a grid-wide barrier between steps.
        # use_shared equals w_shared (the host picks this kernel by it).
        smem = cuda.shared.array(0, dtype=d_w.dtype)
        grid = cuda.cg.this_grid()
        H = uint32(d_hn.shape[1])
        T = uint32(d_y.shape[0])
        U = uint32(U_)
        S = uint32(S_)
        red = uint32(red_)
        j0 = uint32(uint32(cuda.blockIdx.x) * U)
        stage = uint32(stage_)
        tile = uint32(tile_)
        lane, slot, b_first, jj_first, q_u, r_u = coordinates(U, S)
        rows, st_r, st_c, st_q, st_s = staging(U, S, tile)
        # h_n, c_n of the block's units start as h0, c0 (a row of length 0 keeps them)
        ew.copy_block_units(d_h0, d_hn, j0, U)
        ew.copy_block_units(d_c0, d_cn, j0, U)
        if w_shared:
            _load_forward_slice(d_w, smem, j0, U, H, S)
        cuda.syncthreads()  # the state and the W_hh slice are in place for every thread
        t = uint32(0)
        while t < T:
            # smem itself, not a variable that may hold either array: NVVM then knows the
            # loads are shared and 16-byte aligned (one LDS.128 for the four gates)
            if w_shared:
                step(t, uint32(d_nt[t]), d_zx, smem, d_h0, d_y, d_hn, d_cn, d_gates, d_cells,
                     training, j0, U, S, lane, slot, b_first, jj_first, q_u, r_u, smem, red,
                     stage, tile, rows, st_r, st_c, st_q, st_s)
            else:
                step(t, uint32(d_nt[t]), d_zx, d_w, d_h0, d_y, d_hn, d_cn, d_gates, d_cells,
                     training, j0, U, S, lane, slot, b_first, jj_first, q_u, r_u, smem, red,
                     stage, tile, rows, st_r, st_c, st_q, st_s)
            grid.sync()  # h_t of every unit is in y[t] before any block starts step t + 1
            t = uint32(t + uint32(1))

    return step, coordinates, staging, _forward_persistent_kernel


_step_shared, thread_coordinates, stage_coordinates, _persistent_shared = _make_forward(True)
_step_global, _, _, _persistent_global = _make_forward(False)
#: the persistent kernel by where W_hh lives (Plan.w_shared)
PERSISTENT = {True: _persistent_shared, False: _persistent_global}
_forward_persistent_kernel = _persistent_shared          # the name tests and bench/ plan with
_forward_persistent_global_kernel = _persistent_global


@kernel
def _forward_step_kernel(d_zx, d_w, d_h0, d_c0, d_y, d_hn, d_cn, d_gates, d_cells, training,
                         t_, n_t_, U_, S_, use_shared, red_, stage_, tile_):
    # One step; grid-stride over the ceil(H / U) unit slices.
    smem = cuda.shared.array(0, dtype=d_w.dtype)
    H = uint32(d_hn.shape[1])
    t = uint32(t_)
    n_t = uint32(n_t_)
    U = uint32(U_)
    S = uint32(S_)
    red = uint32(red_)
    stage = uint32(stage_)
    tile = uint32(tile_)
    lane, slot, b_first, jj_first, q_u, r_u = thread_coordinates(U, S)
    rows, st_r, st_c, st_q, st_s = stage_coordinates(U, S, tile)
    n_slices = uint32(uint32(H + U - uint32(1)) // U)
    s = uint32(cuda.blockIdx.x)
    while s < n_slices:
        j0 = uint32(s * U)
        if t == 0:
            ew.copy_block_units(d_h0, d_hn, j0, U)   # the state starts as h0, c0
            ew.copy_block_units(d_c0, d_cn, j0, U)
            cuda.syncthreads()
        if use_shared:
            cuda.syncthreads()  # the previous slice's reads are done
            _load_forward_slice(d_w, smem, j0, U, H, S)
            cuda.syncthreads()
            _step_shared(t, n_t, d_zx, smem, d_h0, d_y, d_hn, d_cn, d_gates, d_cells, training,
                         j0, U, S, lane, slot, b_first, jj_first, q_u, r_u, smem, red,
                         stage, tile, rows, st_r, st_c, st_q, st_s)
        else:
            _step_global(t, n_t, d_zx, d_w, d_h0, d_y, d_hn, d_cn, d_gates, d_cells, training,
                         j0, U, S, lane, slot, b_first, jj_first, q_u, r_u, smem, red,
                         stage, tile, rows, st_r, st_c, st_q, st_s)
        s = uint32(s + uint32(cuda.gridDim.x))


def forward_recurrence(d_zx, d_W_hh, d_h0, d_c0, lengths, d_y, d_hn, d_cn, d_gates, d_cells):
    """Run the recurrence of one layer over all steps.

    Parameters
    ----------
    d_zx : device array, shape (T, B, 4H)
        ``W_ih x_t + b``; may be ``d_gates`` itself (overwritten in place).
    d_W_hh : device array, shape (4H, H), C-contiguous
    d_h0, d_c0 : device arrays, shape (B, H)
        Initial state.
    lengths : ndarray of int64, shape (B,)
        Non-increasing, on the host.
    d_y : device array, shape (T, B, H)
        Output h_t, 0 at padded steps; any strides.
    d_hn, d_cn : device arrays, shape (B, H)
        Output: the state after each row's last step (h0, c0 for length 0);
        the kernels keep c_t in ``d_cn`` as they go.
    d_gates : device array, shape (T, B, 4H), or None
    d_cells : device array, shape (T, B, H), or None
        Post-activation gates and c_t (training), or None (inference).
    """
    T, B, H = d_y.shape
    if B == 0:
        return
    if T == 0:
        ew.copy(d_h0, d_hn)
        ew.copy(d_c0, d_cn)
        return
    training = d_gates is not None
    if not training:
        d_gates = d_zx  # never written; keeps one compiled signature
        d_cells = shared_arrays.placeholder(d_y.dtype)
    d_w = d_W_hh.reshape(d_W_hh.size)
    d_nt = shared_arrays.running_rows(lengths, T)

    def persistent_args(p):
        return (d_zx, d_w, d_h0, d_c0, d_y, d_hn, d_cn, d_gates, d_cells, training, d_nt,
                p.units, p.lanes, p.w_shared, p.red_offset, p.stage_offset, p.stage_len)

    if 4 * H * H >= 2 ** 32:
        raise ValueError(f"hidden size {H}: the CUDA kernels index W_hh (4H x H) with 32 bits")
    p = plan(H, B, d_y.dtype.itemsize, 4, PERSISTENT, persistent_args)
    if p.persistent:
        PERSISTENT[p.w_shared][p.blocks, p.threads, 0, p.shared_bytes](*persistent_args(p))
        return
    n_t = running_rows(lengths, T)
    for t in range(T):
        _forward_step_kernel[p.blocks, p.threads, 0, p.shared_bytes](
            d_zx, d_w, d_h0, d_c0, d_y, d_hn, d_cn, d_gates, d_cells, training,
            t, int(n_t[t]), p.units, p.lanes, p.w_shared, p.red_offset, p.stage_offset,
            p.stage_len)


def forward_layer(x, W_ih, W_hh, b, h0, c0, lengths, y, h_n, c_n, gates, cells, order=None):
    """One forward-direction layer (the protocol's ``forward_layer``, docs/backends.md).

    The input projection of all steps as one matrix product, then the
    recurrence (:func:`forward_recurrence`).

    Parameters
    ----------
    x : device array, shape (T, B, I)
        C-contiguous, or the (T, B, I) view of a C-contiguous (B, T, I) array
        (``view_internal``).
    W_ih : (4H, I), W_hh : (4H, H), b : (4H,)
        Device arrays (host arrays are copied).
    h0, c0 : device arrays, shape (B, H)
    lengths : ndarray of int64, shape (B,), non-increasing (host)
    y : device array, shape (T, B, H)
        Output; may be a strided view.
    h_n, c_n : device arrays, shape (B, H)
        Outputs: state after each row's last valid step.
    gates : device array, shape (T, B, 4H), C-contiguous, or None
    cells : device array, shape (T, B, H), or None
        Outputs for training (post-activation gates, c_t), or None for inference.
    order : ndarray of int64, shape (B,), or None
        Where given, x and y are in the caller's batch order (sorted row r is
        row ``order[r]``): this backend runs on a sorted copy of x and
        scatters y (the CPU's ``"slices"`` path reads and writes through it).
    """
    T, B, I = x.shape
    H = W_hh.shape[1]
    dtype = y.dtype
    if order is not None:
        y_sorted = workspace.scratch("y_layer_sorted", (T, B, H), dtype)
        forward_layer(to_internal(x, order, True, dtype), W_ih, W_hh, b, h0, c0, lengths,
                      y_sorted, h_n, c_n, gates, cells)
        scatter_rows(y_sorted, order, y)
        return
    d_W_ih, d_W_hh, d_b = (as_operand(a, dtype) for a in (W_ih, W_hh, b))
    x_batch_first = _batch_first_source(x, dtype) if gates is None else None
    if x_batch_first is not None:
        # x is the (T, B, I) view of the caller's (B, T, I) array (view_internal):
        # project its rows in (b, t) order, and let the recurrence read zx through
        # the same kind of view
        d_zx_bf = workspace.scratch("zx_batch_first", (B, T, 4 * H), dtype)
        d_in, d_zx_rows = x_batch_first.reshape(B * T, I), d_zx_bf.reshape(B * T, 4 * H)
        d_zx = swap_first_axes(d_zx_bf)
    else:
        d_zx = gates if gates is not None else workspace.scratch("zx", (T, B, 4 * H), dtype)
        d_in, d_zx_rows = as_operand(x, dtype).reshape(T * B, I), d_zx.reshape(T * B, 4 * H)
    if T * B:
        # zx[t, b] = W_ih x[t, b] + b for all steps at once
        matmul(d_in, d_W_ih, d_zx_rows, trans_b=True, d_bias=d_b)
    forward_recurrence(d_zx, d_W_hh, as_operand(h0, dtype), as_operand(c0, dtype), lengths,
                       y, h_n, c_n, gates, cells)


def _batch_first_source(x, dtype):
    """The C-contiguous (B, T, I) array that ``x`` is the swapped view of, or None."""
    if not is_device(x) or x.dtype != np.dtype(dtype) or x.ndim != 3:
        return None
    d_x = device_view(x)
    if d_x.is_c_contiguous() or d_x.size == 0:
        return None
    d_bf = swap_first_axes(d_x)
    return d_bf if d_bf.is_c_contiguous() else None
