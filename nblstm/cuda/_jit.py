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
from numba import cuda

FASTMATH = False

#: every kernel and device function compiled through this module, for the policy test
REGISTRY = []


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
