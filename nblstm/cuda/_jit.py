"""The one decorator policy for every CUDA kernel and device function.

All ``@cuda.jit`` code goes through :func:`kernel` or :func:`device` (a test
asserts it), so the options live in one place:

- ``fastmath=False``: reassociation and flush-to-zero would make float32
  results differ from the CPU backend's and from run to run across block sizes.
- no ``cache``: a persistent kernel uses grid synchronisation, which needs the
  device runtime linked at load time; compiling afresh in each process is the
  path numba-cuda tests most.
- ``device=True`` helpers: the scalar functions of :mod:`nblstm._math`
  (compiled in :mod:`nblstm.cuda.activations`) and the kernels' own helpers.
"""
import importlib
import pkgutil

from numba import cuda

FASTMATH = False

#: every kernel and device function compiled through this module *so far*: the package loads
#: its modules on first use (PEP 562), so a module nobody has touched yet is not here. Code that
#: needs them all (counting launches, the policy test, the resource gates) calls :func:`kernels`.
REGISTRY = []


def kernels():
    """Every kernel and device function of the backend, its modules loaded first.

    ``import nblstm.cuda`` loads no kernel module, and each loads on first use,
    so :data:`REGISTRY` alone depends on what the process has run; this imports
    every module of the package (found on disk, so a new module cannot be
    forgotten) and then returns them all, in the order they were compiled.

    Returns
    -------
    tuple of numba CUDA dispatchers
    """
    package = importlib.import_module(__package__)
    for module in pkgutil.iter_modules(package.__path__):
        importlib.import_module(f"{__package__}.{module.name}")
    return tuple(REGISTRY)


def kernel(func):
    """Compile ``func`` as a CUDA kernel with the project's options."""
    compiled = cuda.jit(fastmath=FASTMATH)(func)
    REGISTRY.append(compiled)
    return compiled


def device(func):
    """Compile a scalar helper for use inside kernels."""
    compiled = cuda.jit(device=True, fastmath=FASTMATH)(func)
    REGISTRY.append(compiled)
    return compiled
