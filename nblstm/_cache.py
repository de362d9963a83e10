"""What :func:`nblstm.lstm_forward` keeps for :func:`nblstm.lstm_backward`: the cache's types.

A module of their own, below both call paths that make a cache (:mod:`nblstm._api`
and the lean path, :mod:`nblstm._lean`), so that neither imports the other.
``nblstm.LSTMCache`` and ``nblstm._api.LSTMCache`` are these classes (caches
pickled when they lived in ``nblstm._api`` load as before).
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

from ._batch import BatchLayout
from .params import LSTMParams

__all__ = ["CachedDirection", "LSTMCache"]


class CachedDirection(NamedTuple):
    """What the cache keeps of one direction of one layer (internal layout, compute dtype)."""

    x: object             # (T, B, I) the direction's input (reversed for a reverse direction)
    params: LSTMParams    # copies of W_ih, W_hh, b
    h0: object            # (B, H)
    c0: object            # (B, H)
    gates: object         # (T, B, 4H) post-activation [i f g o]
    cells: object         # (T, B, H) c_t
    backwards: bool       # a reverse direction (x, gates and cells in reversed time)


class LSTMCache(NamedTuple):
    """What :func:`lstm_forward` keeps for :func:`lstm_backward`.

    Per layer and direction the gate activations (T, B, 4H) and cell states
    (T, B, H) in the compute dtype, plus copies of the layer's input, weights
    and initial state: for one layer ``T*B*(5H + I) + 4H*(I + H + 1) + 2*B*H``
    numbers, e.g. 17.9 MB for (B, T, I, H) = (32, 100, 32, 128) in float64.

    Attributes
    ----------
    backend : str
        The backend that ran the forward pass (and runs the backward).
    layers : list of list of CachedDirection
        ``layers[l][d]``: direction d of layer l.
    batch : BatchLayout
        Sizes, sorted lengths, batch order and the user's layout.
    single : bool
        ``params`` was one LSTMParams (results are not stacked).
    on_device : bool
        The input was device memory (gradients stay on the device).
    dtype : numpy.dtype
        The compute dtype.
    sizes : tuple of int
        (I, H, L, D): input and hidden size, layers, directions.

    See Also
    --------
    lstm_forward : Makes it.
    lstm_backward : Reads it.
    """

    backend: str
    layers: list
    batch: BatchLayout
    single: bool
    on_device: bool
    dtype: np.dtype
    sizes: tuple
