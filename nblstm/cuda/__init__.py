"""CUDA backend: numba ``@cuda.jit`` kernels behind ``backend="cuda"``.

Importing this package never imports ``numba.cuda``: :func:`available` tries it
when asked, and the protocol functions of ``docs/backends.md`` (``forward_layer``,
``backward_layer``, ``asarray``, ...) are loaded from :mod:`nblstm.cuda.protocol`
on first attribute access (PEP 562), so ``nblstm.cuda_available()`` works on a
machine without numba-cuda or without a GPU.

Tuning knobs (block sizes, thresholds) live in :data:`config` and are read by
host code at every call, never by kernels (numba freezes globals at compile
time); tests shrink them so that several blocks and both recurrence paths run.
"""
import importlib.util

from .config import config

__all__ = ["available", "require", "config"] + [
    "empty", "zeros", "zeros_input", "scratch", "forward_layer", "backward_layer", "reverse_sequences", "zero_padding", "add",
    "asarray", "is_device", "as_operand", "copy_as", "to_user", "expand_dims", "to_internal",
    "from_internal", "finite_each", "view_internal", "empty_batch_first",
]

_PROTOCOL = frozenset(__all__[3:])

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
    # The protocol functions import numba.cuda, so they are loaded on first use only.
    if name in _PROTOCOL:
        from . import protocol

        value = getattr(protocol, name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
