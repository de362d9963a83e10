"""The one decorator policy for every CPU kernel.

All ``@njit`` kernels go through :func:`kernel` (a test asserts it), so the
cache, error model and fastmath settings live in one place:

- ``cache=True``: a second process loads the compiled code from disk.
- ``error_model="numpy"``: division by zero gives inf/nan instead of raising,
  and numba drops the zero check from inner loops.
- ``fastmath=False``: reassociation would make results depend on
  vectorisation width and break the bitwise-reproducibility promise.
"""
from numba import njit

FASTMATH = False

_OPTIONS = dict(cache=True, error_model="numpy", fastmath=FASTMATH, nogil=True)

#: every function compiled through this module, for the policy test
REGISTRY = []


def kernel(func=None, *, parallel=False):
    """Compile ``func`` with the project's options (``parallel`` for prange drivers)."""

    def wrap(f):
        compiled = njit(parallel=parallel, **_OPTIONS)(f)
        REGISTRY.append(compiled)
        return compiled

    return wrap if func is None else wrap(func)


def device(func):
    """Compile a scalar helper (from :mod:`nblstm._math`) for use inside kernels."""
    compiled = njit(inline="always", **_OPTIONS)(func)
    REGISTRY.append(compiled)
    return compiled
