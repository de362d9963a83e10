"""The per-row step math every CPU path shares, written once.

The forward's gate activations and cell update of one row (:func:`activate_tile`)
and the store of its h and c (:func:`store_tile`), the backward's gate backward
of one row (:func:`gates_backward_tile`), and the rows that padding takes out
of a step (:func:`zero_ended_rows`, :func:`clear_padded`). The drivers of every
path (:mod:`.forward`, :mod:`.backward`, :mod:`.slices`, :mod:`._single`) and
:mod:`nblstm.jit` call these on the rows and units they own; the scalar math
under them is :mod:`nblstm._math`'s.
"""
from ._jit import kernel
from .activations import cell_backward, sigmoid, tanh
from .elementwise import copy_row, zero_row

__all__ = ["activate_tile", "store_tile", "zero_ended_rows", "gates_backward_tile", "clear_padded"]


@kernel
def activate_tile(z, j0, j1, c_row, h_row):
    """Turn one row's pre-activations ``z`` into ``[i f g o]`` in place for units ``j0:j1``.

    Then update the row's cell state ``c_row`` and write its ``h_row`` for those
    units. Every loop runs over a slice from index 0: numba then knows no index
    is negative, drops its wrap-around check and LLVM vectorises the loop. The
    rows must be typed contiguous (``a[r]`` or ``a[r][k:]``, not ``a[:, k:][r]``):
    on a strided row the loops do not vectorise (docs/performance.md#contiguous-rows).
    """
    H = c_row.shape[0]
    m = j1 - j0
    i = z[j0:j1]
    f = z[H + j0:H + j1]
    g = z[2 * H + j0:2 * H + j1]
    o = z[3 * H + j0:3 * H + j1]
    # activations in place, one gate block at a time: loops over one array vectorise
    for j in range(m):
        i[j] = sigmoid(i[j])                               # i = σ(z_i)
    for j in range(m):
        f[j] = sigmoid(f[j])                               # f = σ(z_f)
    for j in range(m):
        g[j] = tanh(g[j])                                  # g = tanh(z_g)
    for j in range(m):
        o[j] = sigmoid(o[j])                               # o = σ(z_o)
    c = c_row[j0:j1]
    h = h_row[j0:j1]
    for j in range(m):
        c[j] = f[j] * c[j] + i[j] * g[j]                   # c_t = f ⊙ c_{t-1} + i ⊙ g
    for j in range(m):
        h[j] = o[j] * tanh(c[j])                           # h_t = o ⊙ tanh(c_t)


@kernel(inline="always")
def store_tile(t, r, y_row, j0, j1, h_row, c_row, y, cells, keep_cache, last_step, h_n, c_n):
    """Write step t's h (and c) of row r, units j0:j1, to y (its row ``y_row``), the cache and the final state.

    Inlined in numba's IR: called once per row and step, a call passed its six
    arrays as dozens of scalars, and the row blocks' kernel ran faster without
    it (docs/performance.md#store-inlined).
    """
    h, c = h_row[j0:j1], c_row[j0:j1]
    copy_row(y[t, y_row, j0:j1], h)
    if keep_cache:
        copy_row(cells[t, r, j0:j1], c)
    if last_step[r] == t:
        copy_row(h_n[r, j0:j1], h)
        copy_row(c_n[r, j0:j1], c)


@kernel
def zero_ended_rows(t, r0, r1, y):
    """Rows r0:r1 have ended before step t: their y_t is exactly 0."""
    for r in range(r0, r1):
        zero_row(y[t, r])


@kernel
def gates_backward_tile(t, r, j0, j1, gates, cells, h0, c0, dy, dh, dh_offset, dc, dZ, h_prev):
    """Step t's element-wise backward for hidden units ``j0:j1`` of batch row ``r``.

    Reads dL/dh_t, dL/dc_t (from step t+1) in ``dh[:, dh_offset:]``, ``dc``;
    writes dL/dz_t to ``dZ[t, r]``, h_{t-1} to ``h_prev[t, r]`` and dL/dc_{t-1}
    to ``dc``. Loops run over slices from index 0 of rows typed contiguous, so
    that they vectorise (see activate_tile).
    """
    H = cells.shape[2]
    m = j1 - j0
    gz = gates[t, r]
    dz = dZ[t, r]
    i, f = gz[j0:j1], gz[H + j0:H + j1]
    g, o = gz[2 * H + j0:2 * H + j1], gz[3 * H + j0:3 * H + j1]
    di, df = dz[j0:j1], dz[H + j0:H + j1]
    dg, do = dz[2 * H + j0:2 * H + j1], dz[3 * H + j0:3 * H + j1]
    hp = h_prev[t, r, j0:j1]
    if t > 0:
        c_prev = cells[t - 1, r, j0:j1]
        o_prev = gates[t - 1, r, 3 * H + j0:3 * H + j1]
        for j in range(m):
            hp[j] = o_prev[j] * tanh(c_prev[j])                  # h_{t-1} = o ⊙ tanh(c)
    else:
        c_prev = c0[r, j0:j1]
        copy_row(hp, h0[r, j0:j1])
    c = cells[t, r, j0:j1]
    dh_r = dh[r][dh_offset + j0:dh_offset + j1]
    dc_r, dy_r = dc[r, j0:j1], dy[t, r, j0:j1]
    for j in range(m):
        dh_t = dh_r[j] + dy_r[j]                                 # h_t feeds y_t and step t+1
        # dL/dz_t [i f g o] and dL/dc_{t-1} (nblstm._math.cell_backward)
        di[j], df[j], dg[j], do[j], dc_r[j] = cell_backward(
            dh_t, dc_r[j], i[j], f[j], g[j], o[j], c_prev[j], tanh(c[j]))


@kernel
def clear_padded(t, r0, r1, dZ, h_prev, dx):
    """Rows r0:r1 have no step t: no gradient, no h_{t-1} (dW_hh must not see them), dx 0."""
    for r in range(r0, r1):
        zero_row(dZ[t, r])
        zero_row(h_prev[t, r])
        zero_row(dx[t, r])
