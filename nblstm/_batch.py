"""The batch as the kernels see it: sorted by length, rows running per step.

Host code shared by the API and both backends.
"""
from typing import NamedTuple

import numpy as np

__all__ = ["BatchLayout", "running_rows", "user_state_shape"]


def running_rows(lengths, steps):
    """``n[t]``, the number of rows still running at step t, for ``0 <= t < steps``.

    The batch is sorted by length (non-increasing), so the rows with
    ``lengths > t``, i.e. ``-lengths < -t``, are the prefix ``0 .. n[t] - 1``.
    Steps at or past the longest length count 0 rows, so ``steps = T + 1``
    gives the backward kernels their ``n[T] = 0``.

    Parameters
    ----------
    lengths : ndarray of int64, shape (B,)
        Non-increasing valid lengths.
    steps : int
        How many steps to count.

    Returns
    -------
    ndarray of int64, shape (steps,)
    """
    lengths = np.asarray(lengths, dtype=np.int64)
    return np.searchsorted(-lengths, -np.arange(steps), side="left").astype(np.int64)


def user_state_shape(B, H, stacked, unbatched):
    """The user's shape of a state: (B, H), or (L*D, B, H) for ``stacked = L*D``; no B if unbatched."""
    shape = (stacked, B, H) if stacked else (B, H)
    return shape[:-2] + (H,) if unbatched else shape


class BatchLayout(NamedTuple):
    """How the user's batch maps onto the kernels' layout, computed once per call.

    The kernels see time-major (T, B, F) arrays with the batch sorted by
    length, longest first (docs/backends.md). :func:`nblstm._api._run` makes
    one of these from the user's arguments; the cache keeps it, and
    :func:`nblstm.lstm_backward` moves the gradients with the same one.

    Attributes
    ----------
    B, T : int
        Batch size and steps (B = 1 for an unbatched input).
    lengths : ndarray of int64, shape (B,)
        Valid steps of each row, in sorted (non-increasing) order.
    order : ndarray of int64, shape (B,), or None
        ``order[r]`` is the user's row at sorted row ``r``; None if the
        user's order is already sorted.
    time_major : bool
        The user's sequences are (T, B, F).
    unbatched : bool
        The user gave one sequence (T, F) and states (H,) / (L*D, H).
    """

    B: int
    T: int
    lengths: np.ndarray
    order: object
    time_major: bool
    unbatched: bool

    @classmethod
    def of(cls, lengths, B, T, time_major, unbatched):
        """The layout for validated ``lengths`` (int64 (B,) or None = all T)."""
        order = None
        if lengths is None:
            lengths = np.full(B, T, np.int64)
        elif B > 1 and np.any(np.diff(lengths) > 0):
            order = np.argsort(-lengths, kind="stable")
            lengths = np.ascontiguousarray(lengths[order])
        return cls(B, T, lengths, order, time_major, unbatched)

    def sequence_shape(self, F):
        """The user's shape of a sequence array with F features (x, y, dy, dx)."""
        if self.unbatched:
            return (self.T, F)
        return (self.T, self.B, F) if self.time_major else (self.B, self.T, F)

    def state_shape(self, H, stacked):
        """The user's shape of a state; see :func:`user_state_shape`."""
        return user_state_shape(self.B, H, stacked, self.unbatched)

    def sequences_view(self, be, a, dtype):
        """The backend's strided (T, B, F) view of a user sequence array when it needs no copy, else None.

        ``a`` is 3-D ((T, 1, F) if unbatched). For read-only uses: inference
        x, a device dy.
        """
        return be.view_internal(a, self.order, self.time_major or self.unbatched, dtype)

    def sequences_view_unsorted(self, be, a, dtype):
        """The backend's strided (T, B, F) view of a user sequence array in the user's batch order, else None.

        For a ``forward_layer`` that reads through ``order`` (inference x).
        """
        return be.view_internal(a, None, self.time_major or self.unbatched, dtype)

    def sequences_in(self, be, a, dtype):
        """A user sequence array, 3-D ((T, 1, F) if unbatched), as a new (T, B, F) array of the kernels."""
        return be.to_internal(a, self.order, self.time_major or self.unbatched, dtype)

    def sequences_out(self, be, a, on_device):
        """The kernels' (T, B, F) array back in the user's layout."""
        if self.unbatched:
            return be.from_internal(a, None, True, on_device)[:, 0]
        return be.from_internal(a, self.order, self.time_major, on_device)

    def states_in(self, be, s, single, LD, H, dtype):
        """User state (or its gradient) -> (L*D, B, H) in sorted order; zeros (read only) for None."""
        if s is None:
            return be.zeros_input((LD, self.B, H), dtype)
        if single:
            s = be.expand_dims(s, 0)
        if self.unbatched:
            s = be.expand_dims(s, 1)
        return be.to_internal(s, self.order, True, dtype)

    def states_out(self, be, s, single, on_device):
        """(L*D, B, H) in sorted order -> the user's state shape."""
        s = be.from_internal(s, self.order, True, on_device)
        if self.unbatched:
            s = s[:, 0]
        return s[0] if single else s
