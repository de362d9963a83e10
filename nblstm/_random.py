"""The one place a ``seed`` argument becomes a :class:`numpy.random.Generator`."""
import numpy as np

__all__ = ["generator"]


def generator(seed):
    """``seed`` itself if it is a Generator, else ``np.random.default_rng(seed)`` (None, int, ...).

    numpy's errors for a bad seed ("expected non-negative integer") do not say
    which argument was wrong; they are raised again, of the same type, naming ``seed``.
    """
    if isinstance(seed, np.random.Generator):
        return seed
    try:
        return np.random.default_rng(seed)
    except (TypeError, ValueError) as exc:
        raise type(exc)(f"seed: expected None, an int >= 0 (or a sequence of them) or a "
                        f"numpy.random.Generator, got {seed!r}") from exc
