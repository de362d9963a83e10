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

from numba import cuda

from .. import _math
from .._batch import running_rows
from . import elementwise as ew
from . import shared_arrays, workspace
from ._jit import device, kernel
from .activations import cell_backward, tanh
from .layout import as_operand
from .matmul import matmul
from .plan import plan

__all__ = ["backward_layer", "backward_recurrence"]


@device
def _load_backward_slice(d_w, smem, j0, U, H):
    # smem[jj*4H + n] = W_hh[n, j0 + jj]: the block's columns of W_hh, n-contiguous
    G = 4 * H
    for e in range(cuda.threadIdx.x, U * G, cuda.blockDim.x):
        n = e % G
        j = j0 + e // G
        if j < H:  # columns past H (last slice) are never read
            smem[e] = d_w[n * H + j]


@device
def _backward_step(t, n_t, n_next, d_dz, d_w, w_off, w_unit_stride, w_n_stride,
                   d_gates, d_cells, d_h0, d_c0, d_dy, d_dhn, d_dc, d_hprev, d_dh0, j0, U, S, smem, red):
    # t == -1 only finishes dh0 from dz_0.
    B = d_dhn.shape[0]
    H = d_dhn.shape[1]
    G = 4 * H
    one = _math.one_like(d_dhn[0, 0])
    zero = one - one
    lane = cuda.threadIdx.x % S
    slots = cuda.blockDim.x // S
    pairs = B * U
    for p0 in range(0, pairs, slots):  # the same trip count in every thread (barriers below)
        p = p0 + cuda.threadIdx.x // S
        b = p // U
        jj = p % U
        j = j0 + jj
        valid = p < pairs and j < H
        carried = valid and b < n_next  # row b ran at step t + 1
        acc = zero
        if carried:
            col = w_off + jj * w_unit_stride
            for n in range(lane, G, S):
                # dh[b, j] += dz_{t+1}[b, n] * W_hh[n, j]
                acc += d_dz[t + 1, b, n] * d_w[col + n * w_n_stride]
        if S > 1:
            # Tree sum over the S lanes of this pair through shared memory, a fixed
            # order (bitwise reproducible); see forward._forward_step.
            tid = cuda.threadIdx.x
            smem[red + tid] = acc
            cuda.syncthreads()
            off = S // 2
            while off > 0:
                if lane < off:
                    acc += smem[red + tid + off]
                    smem[red + tid] = acc
                cuda.syncthreads()
                off //= 2
        if valid and lane == 0:
            dh = acc if carried else d_dhn[b, j]  # a row's last step gets dh_n
            if t < 0:
                d_dh0[b, j] = dh
            elif b < n_t:
                dh += d_dy[t, b, j]                          # h_t feeds y_t and step t+1
                i = d_gates[t, b, j]
                f = d_gates[t, b, H + j]
                g = d_gates[t, b, 2 * H + j]
                o = d_gates[t, b, 3 * H + j]
                tc = tanh(d_cells[t, b, j])
                if t == 0:
                    c_prev = d_c0[b, j]
                    h_prev = d_h0[b, j]
                else:
                    c_prev = d_cells[t - 1, b, j]
                    h_prev = d_gates[t - 1, b, 3 * H + j] * tanh(c_prev)  # h_{t-1} = o tanh(c)
                # dL/dz_t [i f g o] and dL/dc_{t-1} (nblstm._math.cell_backward)
                dz_i, dz_f, dz_g, dz_o, dc = cell_backward(dh, d_dc[b, j], i, f, g, o, c_prev, tc)
                d_dz[t, b, j] = dz_i
                d_dz[t, b, H + j] = dz_f
                d_dz[t, b, 2 * H + j] = dz_g
                d_dz[t, b, 3 * H + j] = dz_o
                d_dc[b, j] = dc
                d_hprev[t, b, j] = h_prev
            else:
                # padded step: contributes nothing to the weight gradients
                d_dz[t, b, j] = zero
                d_dz[t, b, H + j] = zero
                d_dz[t, b, 2 * H + j] = zero
                d_dz[t, b, 3 * H + j] = zero
                d_hprev[t, b, j] = zero


@kernel
def _backward_persistent_kernel(d_dz, d_w, d_gates, d_cells, d_h0, d_c0, d_dy, d_dhn, d_dcn,
                                d_dc, d_hprev, d_dh0, d_nt, U, S, use_shared, red):
    # One launch for all steps; block blockIdx.x owns units [j0, j0 + U) (the host
    # launches exactly ceil(H / U) blocks), with a grid-wide barrier between steps.
    smem = cuda.shared.array(0, dtype=d_w.dtype)
    grid = cuda.cg.this_grid()
    H = d_dhn.shape[1]
    T = d_dz.shape[0]
    j0 = cuda.blockIdx.x * U
    ew.copy_block_units(d_dcn, d_dc, j0, U)   # dL/dc of the block's units starts as dc_n
    if use_shared:
        _load_backward_slice(d_w, smem, j0, U, H)
        w = smem
        w_off = 0
        w_unit_stride = 4 * H
        w_n_stride = 1
    else:
        w = d_w
        w_off = j0
        w_unit_stride = 1
        w_n_stride = H
    cuda.syncthreads()  # dc and the W_hh slice are in place for every thread
    for s in range(T + 1):
        t = T - 1 - s  # T-1, ..., 0, then -1 for dh0
        _backward_step(t, d_nt[t] if t >= 0 else 0, d_nt[t + 1], d_dz, w, w_off, w_unit_stride,
                       w_n_stride, d_gates, d_cells, d_h0, d_c0, d_dy, d_dhn, d_dc, d_hprev,
                       d_dh0, j0, U, S, smem, red)
        grid.sync()  # dz_t of every unit is written before any block starts step t - 1


@kernel
def _backward_step_kernel(d_dz, d_w, d_gates, d_cells, d_h0, d_c0, d_dy, d_dhn, d_dcn, d_dc,
                          d_hprev, d_dh0, t, n_t, n_next, U, S, use_shared, red):
    # One step; grid-stride over the ceil(H / U) unit slices.
    smem = cuda.shared.array(0, dtype=d_w.dtype)
    H = d_dhn.shape[1]
    n_slices = (H + U - 1) // U
    for s in range(cuda.blockIdx.x, n_slices, cuda.gridDim.x):
        j0 = s * U
        if t == d_dz.shape[0] - 1:  # the first launch (t = -1 when T = 0)
            ew.copy_block_units(d_dcn, d_dc, j0, U)
            cuda.syncthreads()
        if use_shared:
            cuda.syncthreads()  # the previous slice's reads are done
            _load_backward_slice(d_w, smem, j0, U, H)
            cuda.syncthreads()
            _backward_step(t, n_t, n_next, d_dz, smem, 0, 4 * H, 1, d_gates, d_cells, d_h0,
                           d_c0, d_dy, d_dhn, d_dc, d_hprev, d_dh0, j0, U, S, smem, red)
        else:
            _backward_step(t, n_t, n_next, d_dz, d_w, j0, 1, H, d_gates, d_cells, d_h0,
                           d_c0, d_dy, d_dhn, d_dc, d_hprev, d_dh0, j0, U, S, smem, red)


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
                d_dh0, d_nt, p.units, p.lanes, p.w_shared, p.red_offset)

    p = plan(H, B, d_dz.dtype.itemsize, 1, _backward_persistent_kernel, persistent_args)
    if p.persistent:
        _backward_persistent_kernel[p.blocks, p.threads, 0, p.shared_bytes](*persistent_args(p))
        return
    n = running_rows(lengths, T + 1)
    for t in range(T - 1, -2, -1):
        _backward_step_kernel[p.blocks, p.threads, 0, p.shared_bytes](
            d_dz, d_w, d_gates, d_cells, d_h0, d_c0, d_dy, d_dhn, d_dcn, d_dc, d_hprev, d_dh0,
            t, int(n[t]) if t >= 0 else 0, int(n[t + 1]), p.units, p.lanes, p.w_shared,
            p.red_offset)


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
