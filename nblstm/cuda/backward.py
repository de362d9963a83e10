"""CUDA BPTT of one LSTM layer: ``backward_layer``, its recurrence kernels, the weight gradients.

The recurrence kernels write dZ for every step, then dh0 and dc0;
:func:`backward_layer` then makes the weight gradients and dx as matrix
products (:func:`nblstm.cuda.matmul.matmul`).

Step ``t`` (from T-1 down to 0) for a running row b, unit j:

.. math::

    dh &= dy_t + W_{hh}^T dz_{t+1} \\;(\\text{or } dh_n \\text{ at the row's last step}) \\\\
    do &= dh \\tanh(c_t), \\quad dc = dc_{t+1} f_{t+1} + dh\\, o\\, (1 - \\tanh^2 c_t) \\\\
    di &= dc\\, g, \\quad dg = dc\\, i, \\quad df = dc\\, c_{t-1} \\\\
    dz_t &= [di\\, \\sigma', df\\, \\sigma', dg\\, \\tanh', do\\, \\sigma']

The dot product ``(W_hh^T dz_{t+1})[b, j]`` needs all 4H entries of dz_{t+1},
written by every block at the previous step, hence the grid-wide barrier;
everything else of unit j is the block's own. The kernels also write
``H_prev[t, b] = h_{t-1}`` (recomputed as ``o_{t-1} tanh(c_{t-1})``, or h0) so
that the weight gradients are plain matrix products after the loop:
``dW_ih = dZ^T X``, ``dW_hh = dZ^T H_prev``, ``db = sum dZ``. Padded
entries of dZ and H_prev are written as 0, so they add nothing.
"""
from __future__ import annotations

from numba import cuda, uint32, uint64

from .. import _math
from .._batch import running_rows
from . import elementwise as ew
from . import shared_arrays, workspace
from ._jit import device, kernel
from .activations import cell_backward, tanh
from .forward import stage_coordinates, thread_coordinates
from .layout import as_operand
from .matmul import matmul
from .plan import plan

__all__ = ["backward_layer", "backward_recurrence"]


@device
def _load_backward_slice(d_w, smem, j0, U, H, S):
    # The block's columns of W_hh, lane-major: unit jj's column at jj*Gp (Gp = 4H rounded
    # up to a multiple of 4 S), W_hh[n, j0 + jj] at (n % S) * (Gp / S) + n / S, so lane l's
    # n = l, l + S, l + 2S, ... lie side by side (the stage of dz is laid out the same way,
    # tile by tile: both read as 16-byte vectors). Once per kernel; uint32 division
    # (inline, no call); the padding is never read.
    G = uint32(uint32(4) * H)
    q = uint32(uint32(4) * S)
    Gp = uint32(uint32(uint32(G + q - uint32(1)) // q) * q)
    per_lane = uint32(Gp // S)
    sh = uint32(cuda.popc(uint32(S - uint32(1))))  # log2 S
    n_all = uint32(U * G)
    nthr = uint32(cuda.blockDim.x)
    e = uint32(cuda.threadIdx.x)
    while e < n_all:
        n = uint32(e % G)
        jj = uint32(e // G)
        j = uint32(j0 + jj)
        if j < H:  # columns past H (last slice) are never read
            at = uint32(uint32(jj * Gp) + uint32(uint32(n & uint32(S - uint32(1))) * per_lane)
                        + uint32(n >> sh))
            smem[at] = d_w[uint32(uint32(n * H) + j)]
        e = uint32(e + nthr)


def _make_backward(w_shared):
    """The step function and the persistent kernel with W_hh in shared memory (``w_shared``) or global.

    As :func:`nblstm.cuda.forward._make_forward`: ``w_shared`` a compile-time constant, uint32
    index arithmetic, a thread's coordinates computed once per kernel.
    """

    @device
    def dot(d_w, w, w_step, smem, z4, cnt, acc):
        # One tile: acc += dz_{t+1}[b, n] * W_hh[n, j] for this lane's n = n0 + lane + S*i,
        # i = 0, 1, ... < cnt, in that order. The stage holds them side by side from
        # smem[4*z4] (lane-major, see stage_rows); W_hh's are at 4*w4 + i (w_shared: the
        # lane-major slice, w = w4) or at w + i*w_step (global). Returns w moved on past
        # the tile's cnt elements (global) -- the shared slice's index is moved by the caller.
        # Tile after tile: the products and the order of the old single loop over n.
        if w_shared:
            # z, w0: 16-byte-aligned indices (multiples of 4); i counts in uint64 from 0 in
            # steps of 4, so z + i is a widened multiple of 4 plus a multiple of 4, never
            # wrapping: NVVM reads dz and W_hh with one LDS.128 each (float32) and moves one
            # pointer per array
            z = uint32(uint32(4) * z4)
            w0 = uint32(uint32(4) * w)
            n4 = uint64(cnt & uint32(0xFFFFFFFC))
            i = uint64(0)
            while i < n4:
                acc += smem[z + i] * d_w[w0 + i]
                acc += smem[z + i + uint64(1)] * d_w[w0 + i + uint64(1)]
                acc += smem[z + i + uint64(2)] * d_w[w0 + i + uint64(2)]
                acc += smem[z + i + uint64(3)] * d_w[w0 + i + uint64(3)]
                i = i + uint64(4)
            while i < uint64(cnt):
                acc += smem[z + i] * d_w[w0 + i]
                i = i + uint64(1)
        else:
            z = uint32(uint32(4) * z4)
            i = uint32(0)
            while i < cnt:
                acc += smem[uint32(z + i)] * d_w[w]
                i = uint32(i + uint32(1))
                w = uint32(w + w_step)
        return acc, w

    @device
    def stage_rows(d_dz, tt, smem, stage, tile, per_lane, S, sh, rb, nrows, n0, nlen,
                   st_r, st_c, st_q, st_s):
        # dz_{t+1}[rb + r, n0 + c] for r < nrows, c < nlen, lane-major within the row:
        # at smem[stage + r*tile + (c % S) * (tile / S) + c / S], so lane l's elements
        # c = l, l + S, ... lie side by side. Elements walked as forward's stage_rows.
        r = st_r
        c = st_c
        while r < nrows:
            if c < nlen:
                at = uint32(uint32(stage + uint32(r * tile))
                            + uint32(uint32(uint32(c & uint32(S - uint32(1))) * per_lane) + uint32(c >> sh)))
                smem[at] = d_dz[tt, uint32(rb + r), uint32(n0 + c)]
            c = uint32(c + st_s)
            r = uint32(r + st_q)
            if c >= tile:
                c = uint32(c - tile)
                r = uint32(r + uint32(1))

    @device
    def step(tt, n_t, n_next, d_dz, d_w, d_gates, d_cells, d_h0, d_c0, d_dy, d_dhn, d_dc,
             d_hprev, d_dh0, j0, U, S, lane, slot, b_first, jj_first, q_u, r_u, smem, red,
             stage, tile, rows, st_r, st_c, st_q, st_s):
        # Step t = tt - 1 (tt from T down to 0; tt == 0 only finishes dh0 from dz_0), all
        # indices uint32. Pairs (and the round's first pair rb*U + rj) advance as in
        # forward's step.
        #
        # Shared memory: [W slice (read only after the kernel's first barrier) | scratch at
        # red | stage at stage], disjoint. Per round and tile, every thread the same trip
        # counts: (A) cuda.syncthreads() -- every thread has finished reading the stage of
        # the previous tile, round or step (its dot precedes A; between steps lie the grid
        # sync or the per-step kernel's barriers), so no write overwrites a value still read;
        # then all threads copy dz_{t+1} of the round's carried rows (b < n_next) and the
        # tile into the stage, each element by one thread -- dz_{t+1} = d_dz[tt] is not
        # written during this step (it writes d_dz[tt - 1]) and every block wrote it before
        # the grid sync (or the previous launch); (B) cuda.syncthreads() -- the stage is
        # complete before any read; the dots then read it, and nothing writes it before the
        # next A. The tree sum uses the scratch only.
        B = uint32(d_dhn.shape[0])
        H = uint32(d_dhn.shape[1])
        G = uint32(uint32(4) * H)
        one = _math.one_like(d_dhn[0, 0])
        zero = one - one
        tid = uint32(cuda.threadIdx.x)
        slots = uint32(uint32(cuda.blockDim.x) // S)  # S is a power of two: a shift
        pairs = uint32(B * U)
        q4 = uint32(uint32(4) * S)
        Gp = uint32(uint32(uint32(G + q4 - uint32(1)) // q4) * q4)
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
            carried = valid and b < n_next  # row b ran at step t + 1
            acc = zero
            nrows = uint32(0)  # rows of this round that ran at step t + 1
            if rb < n_next:
                nrows = uint32(n_next - rb)
                if nrows > rows:
                    nrows = rows
            if w_shared:
                # quads (4 elements) of the lane-major slice: jj*Gp + lane*(Gp/S), over 4
                w = uint32(uint32(uint32(jj * Gp) + uint32(lane * uint32(Gp >> sh))) >> uint32(2))
                w_step = uint32(per_lane >> uint32(2))  # quads per lane and tile
            else:
                w = uint32(uint32(lane * H) + j)
                w_step = uint32(S * H)
            # quads: stage + (b - rb)*tile + lane*(tile/S), all multiples of 4
            z4 = uint32(uint32(uint32(stage + uint32(uint32(b - rb) * tile))
                               + uint32(lane * per_lane)) >> uint32(2))
            n0 = uint32(0)
            while n0 < G:  # the same trip count in every thread
                nlen = uint32(G - n0)
                if nlen > tile:
                    nlen = tile
                cuda.syncthreads()  # (A) see above
                stage_rows(d_dz, tt, smem, stage, tile, per_lane, S, sh, rb, nrows, n0, nlen,
                           st_r, st_c, st_q, st_s)
                cuda.syncthreads()  # (B) see above
                if carried and lane < nlen:
                    # dh[b, j] += dz_{t+1}[b, n] * W_hh[n, j], this lane's cnt n of the tile
                    cnt = uint32(uint32(uint32(nlen - lane) + S - uint32(1)) >> sh)
                    acc, w_next = dot(d_w, w, w_step, smem, z4, cnt, acc)
                    if w_shared:
                        w = uint32(w + w_step)
                    else:
                        w = w_next
                n0 = uint32(n0 + tile)
            if S > uint32(1):
                # Tree sum over the S lanes of this pair through shared memory, a fixed
                # order (bitwise reproducible); see forward's step.
                r0 = uint32(red + tid)
                smem[r0] = acc
                cuda.syncthreads()
                off = uint32(S >> uint32(1))
                while off > uint32(0):
                    if lane < off:
                        acc += smem[uint32(r0 + off)]
                        smem[r0] = acc
                    cuda.syncthreads()
                    off = uint32(off >> uint32(1))
            if valid and lane == uint32(0):
                dh = acc if carried else d_dhn[b, j]  # a row's last step gets dh_n
                if tt == uint32(0):
                    d_dh0[b, j] = dh
                elif b < n_t:
                    t = uint32(tt - uint32(1))
                    dh += d_dy[t, b, j]                          # h_t feeds y_t and step t+1
                    i = d_gates[t, b, j]
                    f = d_gates[t, b, uint32(H + j)]
                    g = d_gates[t, b, uint32(uint32(2) * H + j)]
                    o = d_gates[t, b, uint32(uint32(3) * H + j)]
                    tc = tanh(d_cells[t, b, j])
                    if t == uint32(0):
                        c_prev = d_c0[b, j]
                        h_prev = d_h0[b, j]
                    else:
                        tm1 = uint32(t - uint32(1))
                        c_prev = d_cells[tm1, b, j]
                        h_prev = d_gates[tm1, b, uint32(uint32(3) * H + j)] * tanh(c_prev)  # o tanh(c)
                    # dL/dz_t [i f g o] and dL/dc_{t-1} (nblstm._math.cell_backward)
                    dz_i, dz_f, dz_g, dz_o, dc = cell_backward(dh, d_dc[b, j], i, f, g, o, c_prev, tc)
                    d_dz[t, b, j] = dz_i
                    d_dz[t, b, uint32(H + j)] = dz_f
                    d_dz[t, b, uint32(uint32(2) * H + j)] = dz_g
                    d_dz[t, b, uint32(uint32(3) * H + j)] = dz_o
                    d_dc[b, j] = dc
                    d_hprev[t, b, j] = h_prev
                else:
                    # padded step: contributes nothing to the weight gradients
                    t = uint32(tt - uint32(1))
                    d_dz[t, b, j] = zero
                    d_dz[t, b, uint32(H + j)] = zero
                    d_dz[t, b, uint32(uint32(2) * H + j)] = zero
                    d_dz[t, b, uint32(uint32(3) * H + j)] = zero
                    d_hprev[t, b, j] = zero
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

    @kernel
    def _backward_persistent_kernel(d_dz, d_w, d_gates, d_cells, d_h0, d_c0, d_dy, d_dhn, d_dcn,
                                    d_dc, d_hprev, d_dh0, d_nt, U_, S_, use_shared, red_,
                                    stage_, tile_):
        # One launch for all steps; block blockIdx.x owns units [j0, j0 + U) (the host
        # launches exactly ceil(H / U) blocks), with a grid-wide barrier between steps.
        # use_shared equals w_shared (the host picks this kernel by it).
        smem = cuda.shared.array(0, dtype=d_w.dtype)
        grid = cuda.cg.this_grid()
        H = uint32(d_dhn.shape[1])
        T = uint32(d_dz.shape[0])
        U = uint32(U_)
        S = uint32(S_)
        red = uint32(red_)
        j0 = uint32(uint32(cuda.blockIdx.x) * U)
        stage = uint32(stage_)
        tile = uint32(tile_)
        lane, slot, b_first, jj_first, q_u, r_u = thread_coordinates(U, S)
        rows, st_r, st_c, st_q, st_s = stage_coordinates(U, S, tile)
        ew.copy_block_units(d_dcn, d_dc, j0, U)   # dL/dc of the block's units starts as dc_n
        if w_shared:
            _load_backward_slice(d_w, smem, j0, U, H, S)
        cuda.syncthreads()  # dc and the W_hh slice are in place for every thread
        s = uint32(0)
        while s <= T:
            tt = uint32(T - s)  # t + 1 for t = T-1, ..., 0, then -1 for dh0
            n_t = uint32(d_nt[uint32(tt - uint32(1))]) if tt > uint32(0) else uint32(0)
            n_next = uint32(d_nt[tt])
            if w_shared:  # smem itself: shared loads (see forward's persistent kernel)
                step(tt, n_t, n_next, d_dz, smem, d_gates, d_cells, d_h0, d_c0, d_dy, d_dhn,
                     d_dc, d_hprev, d_dh0, j0, U, S, lane, slot, b_first, jj_first, q_u, r_u,
                     smem, red, stage, tile, rows, st_r, st_c, st_q, st_s)
            else:
                step(tt, n_t, n_next, d_dz, d_w, d_gates, d_cells, d_h0, d_c0, d_dy, d_dhn,
                     d_dc, d_hprev, d_dh0, j0, U, S, lane, slot, b_first, jj_first, q_u, r_u,
                     smem, red, stage, tile, rows, st_r, st_c, st_q, st_s)
            grid.sync()  # dz_t of every unit is written before any block starts step t - 1
            s = uint32(s + uint32(1))

    return step, _backward_persistent_kernel


_step_shared, _persistent_shared = _make_backward(True)
_step_global, _persistent_global = _make_backward(False)
#: the persistent kernel by where W_hh lives (Plan.w_shared)
PERSISTENT = {True: _persistent_shared, False: _persistent_global}
_backward_persistent_kernel = _persistent_shared
_backward_persistent_global_kernel = _persistent_global


@kernel
def _backward_step_kernel(d_dz, d_w, d_gates, d_cells, d_h0, d_c0, d_dy, d_dhn, d_dcn, d_dc,
                          d_hprev, d_dh0, t_, n_t_, n_next_, U_, S_, use_shared, red_, stage_,
                          tile_):
    # One step (t_ from T-1 down to -1); grid-stride over the ceil(H / U) unit slices.
    smem = cuda.shared.array(0, dtype=d_w.dtype)
    H = uint32(d_dhn.shape[1])
    tt = uint32(t_ + 1)
    n_t = uint32(n_t_)
    n_next = uint32(n_next_)
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
        if tt == uint32(d_dz.shape[0]):  # the first launch (t = -1 when T = 0)
            ew.copy_block_units(d_dcn, d_dc, j0, U)
            cuda.syncthreads()
        if use_shared:
            cuda.syncthreads()  # the previous slice's reads are done
            _load_backward_slice(d_w, smem, j0, U, H, S)
            cuda.syncthreads()
            _step_shared(tt, n_t, n_next, d_dz, smem, d_gates, d_cells, d_h0, d_c0, d_dy, d_dhn,
                         d_dc, d_hprev, d_dh0, j0, U, S, lane, slot, b_first, jj_first, q_u, r_u,
                         smem, red, stage, tile, rows, st_r, st_c, st_q, st_s)
        else:
            _step_global(tt, n_t, n_next, d_dz, d_w, d_gates, d_cells, d_h0, d_c0, d_dy, d_dhn,
                         d_dc, d_hprev, d_dh0, j0, U, S, lane, slot, b_first, jj_first, q_u, r_u,
                         smem, red, stage, tile, rows, st_r, st_c, st_q, st_s)
        s = uint32(s + uint32(cuda.gridDim.x))


def backward_recurrence(d_W_hh, d_h0, d_c0, lengths, d_gates, d_cells, d_dy, d_dhn, d_dcn,
                        d_dc, d_dz, d_hprev, d_dh0):
    """Run BPTT of one layer over all steps.

    Parameters
    ----------
    d_W_hh : device array, shape (4H, H), C-contiguous
    d_h0, d_c0 : device arrays, shape (B, H)
    lengths : ndarray of int64, shape (B,)
        Non-increasing, on the host.
    d_gates : device array, shape (T, B, 4H)
    d_cells : device array, shape (T, B, H)
        From the forward pass.
    d_dy : device array, shape (T, B, H)
        dL/dy, any strides; read at valid steps only.
    d_dhn, d_dcn : device arrays, shape (B, H)
        dL/dh_n, dL/dc_n.
    d_dc : device array, shape (B, H)
        Output dL/dc0; the kernels carry dL/dc_t in it as they go.
    d_dz : device array, shape (T, B, 4H)
        Output: dL/dz at every step (0 at padded steps).
    d_hprev : device array, shape (T, B, H)
        Output: h_{t-1} at valid steps, 0 at padded ones.
    d_dh0 : device array, shape (B, H)
        Output: dL/dh0.
    """
    T, B, G = d_dz.shape
    H = G // 4
    if B == 0:
        return
    d_w = d_W_hh.reshape(d_W_hh.size)
    d_nt = shared_arrays.running_rows(lengths, T)

    def persistent_args(p):
        return (d_dz, d_w, d_gates, d_cells, d_h0, d_c0, d_dy, d_dhn, d_dcn, d_dc, d_hprev,
                d_dh0, d_nt, p.units, p.lanes, p.w_shared, p.red_offset, p.stage_offset,
                p.stage_len)

    if 4 * H * H >= 2 ** 32:
        raise ValueError(f"hidden size {H}: the CUDA kernels index W_hh (4H x H) with 32 bits")
    p = plan(H, B, d_dz.dtype.itemsize, 1, PERSISTENT, persistent_args)
    if p.persistent:
        PERSISTENT[p.w_shared][p.blocks, p.threads, 0, p.shared_bytes](*persistent_args(p))
        return
    n = running_rows(lengths, T + 1)
    for t in range(T - 1, -2, -1):
        _backward_step_kernel[p.blocks, p.threads, 0, p.shared_bytes](
            d_dz, d_w, d_gates, d_cells, d_h0, d_c0, d_dy, d_dhn, d_dcn, d_dc, d_hprev, d_dh0,
            t, int(n[t]) if t >= 0 else 0, int(n[t + 1]), p.units, p.lanes, p.w_shared,
            p.red_offset, p.stage_offset, p.stage_len)


def backward_layer(x, W_ih, W_hh, h0, c0, lengths, gates, cells, dy, dh_n, dc_n,
                   dx, dW_ih, dW_hh, db, dh0, dc0):
    """BPTT through one forward-direction layer (the protocol's ``backward_layer``, docs/backends.md).

    The recurrence (:func:`backward_recurrence`) writes dL/dz and h_{t-1} of
    every step; the weight gradients and dx are then matrix products over all
    steps at once.

    Parameters
    ----------
    x : device array, shape (T, B, I)
    W_ih : (4H, I), W_hh : (4H, H)
    h0, c0 : device arrays, shape (B, H)
    lengths : ndarray of int64, shape (B,), non-increasing (host)
    gates : (T, B, 4H), cells : (T, B, H)
        From :func:`nblstm.cuda.forward.forward_layer`.
    dy : device array, shape (T, B, H), may be strided
    dh_n, dc_n : device arrays, shape (B, H)
    dx : (T, B, I); dW_ih : (4H, I); dW_hh : (4H, H); db : (4H,); dh0, dc0 : (B, H)
        Outputs, overwritten. dx is exactly 0 at padded steps.
    """
    T, B, I = x.shape
    H = W_hh.shape[1]
    dtype = dx.dtype
    d_x = as_operand(x, dtype)
    d_W_ih, d_W_hh = as_operand(W_ih, dtype), as_operand(W_hh, dtype)
    d_dz = workspace.scratch("dz", (T, B, 4 * H), dtype)
    d_hprev = workspace.scratch("h_prev", (T, B, H), dtype)
    backward_recurrence(d_W_hh, as_operand(h0, dtype), as_operand(c0, dtype), lengths,
                        gates, cells, dy, as_operand(dh_n, dtype), as_operand(dc_n, dtype), dc0,
                        d_dz, d_hprev, dh0)
    d_dz2 = d_dz.reshape(T * B, 4 * H)
    _matmul_into(d_dz2, d_x.reshape(T * B, I), dW_ih, trans_a=True)       # dW_ih = dZ^T X
    _matmul_into(d_dz2, d_hprev.reshape(T * B, H), dW_hh, trans_a=True)   # dW_hh = dZ^T H_prev
    # db = sum over rows of dZ: the same kernel against a column of ones, so the
    # sum runs over the rows in order like every other reduction here
    _matmul_into(d_dz2, shared_arrays.ones(T * B, dtype), db, trans_a=True)
    _matmul_into(d_dz2, d_W_ih, dx)                                       # dx = dZ W_ih


def _matmul_into(d_a, d_b, d_out, trans_a=False):
    """matmul into ``d_out`` of any shape with ``M`` rows first, e.g. (T, B, I) or (4H,)."""
    M = d_a.shape[1] if trans_a else d_a.shape[0]
    N = d_b.shape[1]
    if d_out.is_c_contiguous():
        matmul(d_a, d_b, d_out.reshape(M, N), trans_a=trans_a)
        return
    d_tmp = workspace.empty(d_out.shape, d_out.dtype)
    matmul(d_a, d_b, d_tmp.reshape(M, N), trans_a=trans_a)
    ew.copy(d_tmp, d_out)
