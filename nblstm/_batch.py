"""The batch as the kernels see it: sorted by length, rows running per step.

Host code shared by the API and both backends.
"""
import numpy as np

__all__ = ["running_rows"]


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

