"""The scalar gate math of :mod:`nblstm._math`, compiled for the CPU kernels."""
from .. import _math
from .._jit import device

sigmoid = device(_math.sigmoid)
tanh = device(_math.tanh)
dsigmoid_from_output = device(_math.dsigmoid_from_output)
dtanh_from_output = device(_math.dtanh_from_output)
