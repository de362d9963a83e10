"""The one decorator policy for every CPU kernel.

All ``@njit`` kernels go through :func:`kernel` (a test asserts it), so the
cache, error model and fastmath settings live in one place:

- ``cache=True``: a second process loads the compiled code from disk.
- ``error_model="numpy"``: division by zero gives inf/nan instead of raising,
  and numba drops the zero check from inner loops.
- ``fastmath={"contract"}``: a multiply and an add may fuse into one FMA
  (one rounding instead of two). Nothing is reordered, so results still do
  not depend on the vectorisation width or the thread count, and the gate
  loops ran 1.5-1.7x faster (the polynomial of ``_math.exp_neg`` is a chain of
  multiply-adds). Reassociation (full ``fastmath``) would break the
  bitwise-reproducibility promise. Functions that users' code calls
  (:mod:`nblstm.jit`) take ``contract=False``: numba inlines their helpers into
  the caller and compiles them with the caller's flags, which by default do
  not contract, and a user's loop of ``lstm_cell`` must give
  ``lstm_sequence``'s bits.

Literal arguments: numba compiles a kernel called from another kernel once per
distinct argument type, and a constant such as ``0`` in the call is typed
``Literal[int](0)``, not ``int64``. A serial driver calling a helper with ``0``
where the parallel driver passes a computed index would compile the helper,
and every product loop inside it, twice; the serial and tiles paths together
took 31.7 s to compile cold that way. Drivers pass ``np.int64(0)`` instead.

Parallel regions: the process-wide threading layer is the user's choice
(``NUMBA_THREADING_LAYER``), and two of numba's layers cannot start a parallel
region everywhere. GNU OpenMP (``omp``) kills a ``fork``-started child of a
process that has used it ("fork() called from a process already using GNU
OpenMP"), and ``workqueue`` aborts the process when two Python threads are in
parallel regions at once ("Concurrent access has been detected"); numba
documents ``tbb`` and ``omp`` as thread-safe and ``tbb`` as fork-safe. So
``kernel(parallel=True)`` compiles each driver twice: the parallel one and a
serial twin (``parallel=False``: the same code, its ``prange`` run in order),
and :class:`ParallelKernel` runs the twin where a parallel region is unsafe:
in a fork child of a process that used ``omp``, and while another thread of
this process is in a region under a layer not known to be thread-safe. The
twin's arithmetic is the driver's (no fastmath: nothing is reordered), so the
results are bitwise those of the parallel run.
"""
import os
import threading
import types

import numba
from numba import njit

from .._compile_log import listen

FASTMATH = {"contract"}

_OPTIONS = dict(cache=True, error_model="numpy", fastmath=FASTMATH, nogil=True)
_NO_CONTRACT = dict(_OPTIONS, fastmath=False)

#: every function compiled through this module, for the policy test
REGISTRY = []


#: layers numba documents as safe for parallel regions entered from several threads at once
_THREAD_SAFE_LAYERS = ("tbb", "omp")


class _RegionState:
    """Where this process may start parallel regions (see "Parallel regions" above)."""

    #: a fork child of a process whose OpenMP runtime had started: never
    forked_from_omp = False
    #: the layer in use is known to take concurrent regions: no lock needed
    thread_safe = False
    #: held by the thread in a parallel region while ``thread_safe`` is not known
    lock = threading.Lock()


def _layer_in_use():
    """numba's threading layer, or None before its first parallel region."""
    try:
        return numba.threading_layer()
    except ValueError:
        return None


def _after_fork_in_child():
    if _layer_in_use() == "omp":
        _RegionState.forked_from_omp = True
    # a thread of the parent may have held the lock at the fork; it does not exist here
    _RegionState.lock = threading.Lock()


os.register_at_fork(after_in_child=_after_fork_in_child)
listen()                  # compilations of these kernels are logged (nblstm._compile_log)


class ParallelKernel:
    """A ``parallel=True`` driver and its serial twin, called like a dispatcher.

    Runs ``parallel`` unless a parallel region is unsafe here, then ``serial``
    (same arguments, bitwise the same results): in a fork child of a process
    that used the ``omp`` layer, and when another thread holds the region
    lock (layers not known to be thread-safe, such as ``workqueue``, or
    before the first region has shown which layer numba picked). Other
    attributes are the parallel dispatcher's.
    """

    def __init__(self, parallel, serial):
        self.parallel = parallel
        self.serial = serial

    def __call__(self, *args):
        state = _RegionState
        if state.forked_from_omp:
            return self.serial(*args)
        if state.thread_safe:
            return self.parallel(*args)
        lock = state.lock
        if not lock.acquire(blocking=False):
            # another thread is in a region: run on this thread rather than wait
            return self.serial(*args)
        try:
            result = self.parallel(*args)
        finally:
            lock.release()
        state.thread_safe = _layer_in_use() in _THREAD_SAFE_LAYERS
        return result

    def __getattr__(self, name):
        return getattr(self.parallel, name)


def _serial_twin(f, options):
    """``f`` compiled with ``parallel=False``, under its own name.

    numba's cache files are named by qualified name and keyed by bytecode and
    signature, not by compile flags: a twin under the driver's name would load
    the parallel code from the cache (or the driver the serial code).
    """
    twin = types.FunctionType(f.__code__, f.__globals__, f.__name__ + "_serial",
                              f.__defaults__, f.__closure__)
    twin.__qualname__ = f.__qualname__ + "_serial"
    twin.__doc__ = f.__doc__
    twin.__module__ = f.__module__
    return njit(parallel=False, **options)(twin)


def kernel(func=None, *, parallel=False, inline="never", contract=True):
    """Compile ``func`` with the project's options (``parallel`` for prange drivers).

    ``contract=False`` for the functions of :mod:`nblstm.jit`, which run inside
    users' code (see "fastmath" above).

    A ``parallel`` driver comes back as a :class:`ParallelKernel` (the driver
    and its serial twin; the twin compiles on first use only).
    ``inline="always"`` inlines the function into its callers in numba's own IR
    (for the small entry points that users call in hot loops, where LLVM kept the
    call and its dozens of exploded array arguments).
    """

    def wrap(f):
        options = _OPTIONS if contract else _NO_CONTRACT
        compiled = njit(parallel=parallel, inline=inline, **options)(f)
        REGISTRY.append(compiled)
        if not parallel:
            return compiled
        twin = _serial_twin(f, options)
        REGISTRY.append(twin)
        return ParallelKernel(compiled, twin)

    return wrap if func is None else wrap(func)


def device(func):
    """Compile a scalar helper (from :mod:`nblstm._math`) for use inside kernels."""
    compiled = njit(inline="always", **_OPTIONS)(func)
    REGISTRY.append(compiled)
    return compiled
