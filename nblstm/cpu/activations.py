"""The scalar gate math of :mod:`nblstm._math`, compiled for the CPU kernels.

The twin of :mod:`nblstm.cuda.activations`.
"""
from .. import _math
from ._jit import device

__all__ = ["sigmoid", "tanh", "cell_backward"]

sigmoid = device(_math.sigmoid)
tanh = device(_math.tanh)
cell_backward = device(_math.cell_backward)
