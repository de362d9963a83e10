"""The CUDA backend: numba ``@cuda.jit`` kernels behind ``backend="cuda"``.

One module per job, the same names as in :mod:`nblstm.cpu`:

==================  ==========================================================
``config``          tuning (tile and block sizes), read by host code
``plan``            the launch plan of the recurrence kernels
``layout``          the boundary: user arrays <-> the kernels' (T, B, F) layout
``workspace``       where arrays come from; scratch kept between calls
``forward``         ``forward_layer``: input projection and recurrence kernels
``backward``        ``backward_layer`` (BPTT) and the weight-gradient products
``activations``     the gate math of :mod:`nblstm._math`, compiled
``matmul``          the tiled matrix-multiply kernel
``elementwise``     fill, copy, add, finiteness
``shared_arrays``   a cache of read-only device arrays that calls share
``_jit``            the one decorator policy of every kernel
==================  ==========================================================

Importing this package never imports ``numba.cuda``: :func:`available` tries it
when asked, and the protocol functions of docs/backends.md
(:data:`nblstm._protocol.PROTOCOL`) and the modules of the table above are
loaded on first attribute access (PEP 562), so ``nblstm.cuda_available()``
works on a machine without numba-cuda or without a GPU, and
``nblstm.cuda.workspace.clear()`` works after ``import nblstm``.
"""
import importlib
import importlib.util

from .._protocol import PROTOCOL
from .config import config

__all__ = ["available", "require", "config", *PROTOCOL]

#: the modules of the table above (they import numba.cuda)
_SUBMODULES = ("plan", "layout", "workspace", "forward", "backward", "activations", "matmul",
               "elementwise", "shared_arrays")

#: the module of each protocol function
_MODULE_OF = {name: "layout" for name in PROTOCOL}
_MODULE_OF.update(empty="workspace", zeros="workspace", zeros_input="workspace",
                  scratch="workspace", forward_layer="forward", backward_layer="backward",
                  add="elementwise")

INSTALL_HINT = 'install it with: pip install "nblstm[cuda]"'


def available():
    """Whether the CUDA backend can run here, and why not.

    Returns
    -------
    ok : bool
        True if numba-cuda imports and a CUDA GPU (or the CUDA simulator,
        ``NUMBA_ENABLE_CUDASIM=1``) is usable.
    reason : str
        Empty if ``ok``; otherwise says what is missing: the numba-cuda package
        (with the ``pip install`` line) or a GPU / driver.
    """
    # numba 0.68 still ships a deprecated numba.cuda of its own, which imports (and
    # under NUMBA_ENABLE_CUDASIM=1 even reports a device) without numba-cuda, but
    # lacks what the kernels use: ask for the numba-cuda package itself
    if importlib.util.find_spec("numba_cuda") is None:
        return False, f"numba-cuda is not installed; {INSTALL_HINT}"
    try:
        from numba import cuda
    except ImportError as exc:  # numba itself or the numba-cuda target is missing
        return False, f"numba-cuda is not installed ({exc}); {INSTALL_HINT}"
    if not hasattr(cuda, "is_available") or not hasattr(cuda, "jit"):
        return False, f"numba-cuda is not installed; {INSTALL_HINT}"
    try:
        if cuda.is_available():
            return True, ""
        error = cuda.cuda_error() if hasattr(cuda, "cuda_error") else None
    except Exception as exc:  # a broken driver raises instead of answering
        error = exc
    detail = f": {error}" if error else ""
    return False, ("no usable CUDA GPU: the NVIDIA driver or a CUDA device was not found"
                   f"{detail}".rstrip())


def require():
    """Raise ``RuntimeError`` saying what is missing unless :func:`available`."""
    ok, reason = available()
    if not ok:
        raise RuntimeError(f'backend="cuda" is not available: {reason}')


def __getattr__(name):
    # The protocol functions and the modules import numba.cuda, so they are loaded on first use only.
    module = name if name in _SUBMODULES else _MODULE_OF.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    try:
        loaded = importlib.import_module(f"{__name__}.{module}")
    except ImportError as exc:
        # hasattr, dir() with getattr, and help() expect AttributeError; the message keeps the cause
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}: it needs numba-cuda "
                             f"({INSTALL_HINT}): {exc}") from exc
    if name in _SUBMODULES:
        return loaded
    value = getattr(loaded, name)
    globals()[name] = value
    return value


def __dir__():
    return sorted({*globals(), *_SUBMODULES, *_MODULE_OF})
