"""The protocol's layer entry points: plan a layer, then run the driver its plan names.

:func:`forward_layer` and :func:`backward_layer` are the CPU backend's
``forward_layer`` and ``backward_layer`` (docs/backends.md). Each plans the
layer for its sizes (:func:`nblstm.cpu.plan.layer_plan`) and calls the driver
that :attr:`nblstm.cpu.plan.Plan.driver` names, from one table per direction:

- ``"serial"``: one tile per step on the calling thread;
- ``"tiles"``: tiles of rows by units, a barrier every step;
- ``"row_groups"``: groups of whole rows, each with its own loop over time;
- ``"blas"``: one BLAS product per step for all rows;

(their forward drivers in :mod:`.forward`, their backward in :mod:`.backward`)

- ``"slices"``: a slice of hidden units per thread, a barrier every step;
- ``"slice_row_blocks"``: one slice of all H units, blocks of rows, each
  with its own loop over time (both in :mod:`.slices`).

To add a driver: write its forward and backward with the signatures of
these (the layer's arguments and its plan), name it in
:data:`nblstm.cpu.plan.DRIVERS`, have :func:`nblstm.cpu.plan.plan` choose it,
and add it to both tables; ``tests/cpu`` runs every path against the
reference and the others.

Every layer runs inside :data:`nblstm.cpu._fork.layers_in_flight`, so a
``fork`` waits until no layer is in flight.
"""
from . import layout, plan, workspace
from ._fork import layers_in_flight
from .backward import backward_blas, backward_row_groups, backward_serial, backward_tiles
from .forward import forward_blas, forward_row_groups, forward_serial, forward_tiles
from .slices import (
    backward_row_blocks,
    backward_slices,
    forward_row_blocks,
    forward_slices,
)

__all__ = ["forward_layer", "backward_layer", "FORWARD_DRIVERS", "BACKWARD_DRIVERS"]

#: the forward driver of each :data:`nblstm.cpu.plan.DRIVERS`
FORWARD_DRIVERS = {
    "serial": forward_serial,
    "tiles": forward_tiles,
    "row_groups": forward_row_groups,
    "blas": forward_blas,
    "slices": forward_slices,
    "slice_row_blocks": forward_row_blocks,
}

#: the backward driver of each :data:`nblstm.cpu.plan.DRIVERS`
BACKWARD_DRIVERS = {
    "serial": backward_serial,
    "tiles": backward_tiles,
    "row_groups": backward_row_groups,
    "blas": backward_blas,
    "slices": backward_slices,
    "slice_row_blocks": backward_row_blocks,
}


def forward_layer(x, W_ih, W_hh, b, h0, c0, lengths, y, h_n, c_n, gates, cells, order=None):
    """One forward-direction layer (the protocol's ``forward_layer``, docs/backends.md).

    Plans the layer for its sizes (:mod:`nblstm.cpu.plan`) and runs its
    steps with the driver the plan names (:data:`FORWARD_DRIVERS`).

    Parameters
    ----------
    x : ndarray, shape (T, B, I)
        Input, batch sorted by length (descending) unless ``order`` is given;
        any strides.
    W_ih, W_hh, b : ndarray, shapes (4H, I), (4H, H), (4H,)
        Layer weights.
    h0, c0 : ndarray, shape (B, H)
        Initial state.
    lengths : ndarray of int64, shape (B,)
        Non-increasing valid lengths.
    y : ndarray, shape (T, B, H)
        Output (may be a strided view).
    h_n, c_n : ndarray, shape (B, H)
        Final-state outputs.
    gates : ndarray, shape (T, B, 4H), or None
        Cache of the gate activations (None for inference).
    cells : ndarray, shape (T, B, H), or None
        Cache of the cell states (None for inference).
    order : ndarray of int64, shape (B,), or None
        Where given, x and y are in the caller's batch order: sorted row r is
        row ``order[r]`` of x and of y (everything else is sorted). The
        ``"slices"`` drivers read and write through it; the others run on a
        sorted copy of x and scatter y.
    """
    T, B, _ = x.shape
    H = W_hh.shape[1]
    if order is not None and plan.choose_path(B, H) != "slices":
        # one gather pass each way (layout.to_internal's); a fancy index and a copy made two
        y_sorted = workspace.scratch("y_layer_sorted", y.shape, y.dtype)
        forward_layer(layout.to_internal(x, order, True, x.dtype), W_ih, W_hh, b, h0, c0, lengths,
                      y_sorted, h_n, c_n, gates, cells)
        layout.scatter_rows(y_sorted, order, y)
        return
    with layers_in_flight, plan.layer_plan(B, H, x.dtype.itemsize) as p:
        h_n[...] = h0
        c_n[...] = c0
        if T > 0 and B > 0:
            FORWARD_DRIVERS[p.driver](x, W_ih, W_hh, b, h0, c0, lengths, y, h_n, c_n,
                                      gates, cells, p, order)


def backward_layer(x, W_ih, W_hh, h0, c0, lengths, gates, cells, dy, dh_n, dc_n,
                   dx, dW_ih, dW_hh, db, dh0, dc0):
    """Gradients of one forward-direction layer (the protocol's ``backward_layer``, docs/backends.md).

    Plans the layer as :func:`forward_layer` does for the same sizes (on the
    ``"slices"`` path, wider slices of units: :func:`nblstm.cpu.plan.slice_units`)
    and walks the steps backwards with the driver the plan names
    (:data:`BACKWARD_DRIVERS`), then makes the weight gradients.

    Parameters
    ----------
    x : ndarray, shape (T, B, I)
        The layer's input, as given to ``forward_layer``.
    W_ih, W_hh : ndarray, shapes (4H, I), (4H, H)
        Layer weights.
    h0, c0 : ndarray, shape (B, H)
        Initial state.
    lengths : ndarray of int64, shape (B,)
        Non-increasing valid lengths.
    gates, cells : ndarray, shapes (T, B, 4H), (T, B, H)
        The cache written by ``forward_layer``.
    dy : ndarray, shape (T, B, H)
        dL/dy (may be a strided view).
    dh_n, dc_n : ndarray, shape (B, H)
        dL/dh_n, dL/dc_n.
    dx : ndarray, shape (T, B, I)
        Output dL/dx, exactly 0 at padded steps.
    dW_ih, dW_hh, db : ndarray, shapes (4H, I), (4H, H), (4H,)
        Output weight gradients (overwritten).
    dh0, dc0 : ndarray, shape (B, H)
        Output dL/dh0, dL/dc0.
    """
    B = x.shape[1]
    H = W_hh.shape[1]
    with layers_in_flight, plan.layer_plan(B, H, gates.dtype.itemsize, backward=True) as p:
        BACKWARD_DRIVERS[p.driver](x, W_ih, W_hh, h0, c0, lengths, gates, cells, dy, dh_n, dc_n,
                                   dx, dW_ih, dW_hh, db, dh0, dc0, p)
