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
from numba import cuda

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
def _load_forward_slice(d_w, smem, j0, U, H):
    # smem[(g*U + jj)*H + k] = W_hh[g*H + j0 + jj, k]: the block's four gate rows per unit
    tid = cuda.threadIdx.x
    for e in range(tid, 4 * U * H, cuda.blockDim.x):
        k = e % H
        row = e // H
        g = row // U
        jj = row % U
        j = j0 + jj
        if j < H:  # rows past H (last slice) are never read
            smem[e] = d_w[(g * H + j) * H + k]


@device
def _forward_step(t, n_t, d_zx, d_w, w_gate_stride, w_row0, d_h0, d_y, d_hn, d_cn,
                  d_gates, d_cells, training, j0, U, S, smem, red):
    B = d_hn.shape[0]
    H = d_hn.shape[1]
    one = _math.one_like(d_hn[0, 0])
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
        active = valid and b < n_t
        acc_i = zero
        acc_f = zero
        acc_g = zero
        acc_o = zero
        if active:
            row = (w_row0 + jj) * H
            gate = w_gate_stride * H
            for k in range(lane, H, S):
                # z[gate, b, j] += W_hh[gate*H + j, k] * h_{t-1}[b, k]
                h = d_h0[b, k] if t == 0 else d_y[t - 1, b, k]
                acc_i += d_w[row + k] * h
                acc_f += d_w[row + gate + k] * h
                acc_g += d_w[row + 2 * gate + k] * h
                acc_o += d_w[row + 3 * gate + k] * h
        if S > 1:
            # Tree sum over the S lanes of this pair through shared memory, a fixed
            # order (bitwise reproducible). Lane l < off adds slot l + off, which no
            # lane writes at this level, so one barrier per level suffices.
            tid = cuda.threadIdx.x
            nthr = cuda.blockDim.x
            smem[red + tid] = acc_i
            smem[red + nthr + tid] = acc_f
            smem[red + 2 * nthr + tid] = acc_g
            smem[red + 3 * nthr + tid] = acc_o
            cuda.syncthreads()
            off = S // 2
            while off > 0:
                if lane < off:
                    acc_i += smem[red + tid + off]
                    acc_f += smem[red + nthr + tid + off]
                    acc_g += smem[red + 2 * nthr + tid + off]
                    acc_o += smem[red + 3 * nthr + tid + off]
                    smem[red + tid] = acc_i
                    smem[red + nthr + tid] = acc_f
                    smem[red + 2 * nthr + tid] = acc_g
                    smem[red + 3 * nthr + tid] = acc_o
                cuda.syncthreads()
                off //= 2
        if valid and lane == 0:
            if active:
                i = sigmoid(acc_i + d_zx[t, b, j])           # i = sigma(z_i)
                f = sigmoid(acc_f + d_zx[t, b, H + j])       # f = sigma(z_f)
                g = tanh(acc_g + d_zx[t, b, 2 * H + j])      # g = tanh(z_g)
                o = sigmoid(acc_o + d_zx[t, b, 3 * H + j])   # o = sigma(z_o)
                c = f * d_cn[b, j] + i * g                   # c_t = f c_{t-1} + i g
                h = o * tanh(c)                              # h_t = o tanh(c_t)
                d_y[t, b, j] = h
                d_hn[b, j] = h
                d_cn[b, j] = c
                if training:
                    d_gates[t, b, j] = i
                    d_gates[t, b, H + j] = f
                    d_gates[t, b, 2 * H + j] = g
                    d_gates[t, b, 3 * H + j] = o
                    d_cells[t, b, j] = c
            else:
                d_y[t, b, j] = zero  # padded step


@kernel
def _forward_persistent_kernel(d_zx, d_w, d_h0, d_c0, d_y, d_hn, d_cn, d_gates, d_cells,
                               training, d_nt, U, S, use_shared, red):
    # One launch for all steps; block blockIdx.x owns units [j0, j0 + U) (the host
    # launches exactly ceil(H / U) blocks), with a grid-wide barrier between steps.
    smem = cuda.shared.array(0, dtype=d_w.dtype)
    grid = cuda.cg.this_grid()
    H = d_hn.shape[1]
    T = d_y.shape[0]
    j0 = cuda.blockIdx.x * U
    # h_n, c_n of the block's units start as h0, c0 (a row of length 0 keeps them)
    ew.copy_block_units(d_h0, d_hn, j0, U)
    ew.copy_block_units(d_c0, d_cn, j0, U)
    if use_shared:
        _load_forward_slice(d_w, smem, j0, U, H)
        w = smem
        w_gate_stride = U
        w_row0 = 0
    else:
        w = d_w
        w_gate_stride = H
        w_row0 = j0
    cuda.syncthreads()  # the state and the W_hh slice are in place for every thread
    for t in range(T):
        _forward_step(t, d_nt[t], d_zx, w, w_gate_stride, w_row0, d_h0, d_y, d_hn, d_cn,
                      d_gates, d_cells, training, j0, U, S, smem, red)
        grid.sync()  # h_t of every unit is in y[t] before any block starts step t + 1


@kernel
def _forward_step_kernel(d_zx, d_w, d_h0, d_c0, d_y, d_hn, d_cn, d_gates, d_cells, training,
                         t, n_t, U, S, use_shared, red):
    # One step; grid-stride over the ceil(H / U) unit slices.
    smem = cuda.shared.array(0, dtype=d_w.dtype)
    H = d_hn.shape[1]
    n_slices = (H + U - 1) // U
    for s in range(cuda.blockIdx.x, n_slices, cuda.gridDim.x):
        j0 = s * U
        if t == 0:
            ew.copy_block_units(d_h0, d_hn, j0, U)   # the state starts as h0, c0
            ew.copy_block_units(d_c0, d_cn, j0, U)
            cuda.syncthreads()
        if use_shared:
            cuda.syncthreads()  # the previous slice's reads are done
            _load_forward_slice(d_w, smem, j0, U, H)
            cuda.syncthreads()
            _forward_step(t, n_t, d_zx, smem, U, 0, d_h0, d_y, d_hn, d_cn,
                          d_gates, d_cells, training, j0, U, S, smem, red)
        else:
            _forward_step(t, n_t, d_zx, d_w, H, j0, d_h0, d_y, d_hn, d_cn,
                          d_gates, d_cells, training, j0, U, S, smem, red)


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
                p.units, p.lanes, p.w_shared, p.red_offset)

    p = plan(H, B, d_y.dtype.itemsize, 4, _forward_persistent_kernel, persistent_args)
    if p.persistent:
        _forward_persistent_kernel[p.blocks, p.threads, 0, p.shared_bytes](*persistent_args(p))
        return
    n_t = running_rows(lengths, T)
    for t in range(T):
        _forward_step_kernel[p.blocks, p.threads, 0, p.shared_bytes](
            d_zx, d_w, d_h0, d_c0, d_y, d_hn, d_cn, d_gates, d_cells, training,
            t, int(n_t[t]), p.units, p.lanes, p.w_shared, p.red_offset)


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
