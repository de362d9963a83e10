"""The one decorator policy for every CPU kernel.

All ``@njit`` kernels go through :func:`kernel` (a test asserts it), so the
cache, error model and fastmath settings live in one place:

- ``cache=True``: a second process loads the compiled code from disk.
- ``error_model="numpy"``: division by zero gives inf/nan instead of raising,
  and numba drops the zero check from inner loops.
- ``fastmath=False``: reassociation would make results depend on
  vectorisation width and break the bitwise-reproducibility promise.

Literal arguments: numba compiles a kernel called from another kernel once per
distinct argument type, and a constant such as ``0`` in the call is typed
``Literal[int](0)``, not ``int64``. A serial driver calling a helper with ``0``
where the parallel driver passes a computed index would compile the helper,
and every product loop inside it, twice; the serial and tiles paths together
took 31.7 s to compile cold that way. Drivers pass ``np.int64(0)`` instead.
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
