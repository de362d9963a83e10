"""The scalar gate math of :mod:`nblstm._math`, compiled as CUDA device functions.

The twin of :mod:`nblstm.cpu.activations`.
"""
from .. import _math
from ._jit import device

__all__ = ["sigmoid", "tanh", "cell_backward"]

sigmoid = device(_math.sigmoid)
tanh = device(_math.tanh)
cell_backward = device(_math.cell_backward)
