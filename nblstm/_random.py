"""The one place a ``seed`` argument becomes a :class:`numpy.random.Generator`."""
import numpy as np

__all__ = ["generator"]


def generator(seed):
    """``seed`` itself if it is a Generator, else ``np.random.default_rng(seed)`` (None, int, ...)."""
    return seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
