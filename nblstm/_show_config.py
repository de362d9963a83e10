"""``nblstm.show_config()``: what nblstm will do here, in one printout.

Loaded on first use (``nblstm.show_config``): it imports the CPU backend.
"""
from __future__ import annotations

import dataclasses
import importlib.metadata
import numbers
import platform
import sys

import numba
import numpy as np
import scipy

from . import cpu, cuda

__all__ = ["show_config"]


def _version(distribution):
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def _threading_layer():
    try:
        return numba.threading_layer()
    except ValueError:           # no parallel region has run yet
        return (f"not chosen yet (numba picks one at the first parallel region; "
                f"NUMBA_THREADING_LAYER={numba.config.THREADING_LAYER})")


def _knobs(config):
    return [f"  {f.name} = {getattr(config, f.name)!r}" for f in dataclasses.fields(config)]


def show_config(B=None, H=None, *, file=None):
    """Print the versions, the knobs of both backends, and what a call would use here.

    Parameters
    ----------
    B, H : int, optional
        A batch size and hidden size: the printout then also says which CPU
        step path a layer of those sizes takes (:func:`nblstm.cpu.choose_path`).
    file : file-like, optional
        Where to print (``sys.stdout`` if None).

    Raises
    ------
    TypeError
        ``B`` or ``H`` is not an int.
    ValueError
        Only one of ``B`` and ``H`` given, or one that is not positive.

    See Also
    --------
    nblstm.cpu.config, nblstm.cuda.config : The knobs (docs/configuration.md).

    Examples
    --------
    >>> import io, nblstm
    >>> out = io.StringIO()
    >>> nblstm.show_config(32, 64, file=out)
    >>> "CPU path for (B, H) = (32, 64)" in out.getvalue()
    True
    """
    if (B is None) != (H is None):
        raise ValueError(f"B, H: expected both or neither, got B={B!r}, H={H!r}")
    for name, value in (("B", B), ("H", H)):
        if value is None:
            continue
        if not isinstance(value, numbers.Integral) or isinstance(value, bool):
            raise TypeError(f"{name}: expected an int, got {type(value).__name__}")
        if value < 1:
            raise ValueError(f"{name}: expected a positive int, got {value!r}")
    ok, reason = cuda.available()
    cuda_line = "available" if ok else " ".join(reason.split())
    lines = [
        f"nblstm {_version('nblstm')} (Python {platform.python_version()}, numba {numba.__version__}, "
        f"NumPy {np.__version__}, SciPy {scipy.__version__})",
        f"numba threads: {numba.get_num_threads()} of {numba.config.NUMBA_NUM_THREADS}; "
        f"threading layer: {_threading_layer()}",
        f"MKL for the slices path: {cpu.mkl.describe()}",
        f"CUDA: {cuda_line} (numba-cuda {_version('numba-cuda')})",
    ]
    if B is not None:
        lines.append(f"CPU path for (B, H) = ({B}, {H}): {cpu.choose_path(int(B), int(H))}")
    lines += ["nblstm.cpu.config:", *_knobs(cpu.config), "nblstm.cuda.config:", *_knobs(cuda.config)]
    print("\n".join(lines), file=sys.stdout if file is None else file)
