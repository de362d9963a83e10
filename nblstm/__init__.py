"""nblstm: a Numba LSTM you call like a SciPy function.

The public names, and nothing else: see README.md for the math and the API.
"""
from . import testing
from ._api import LSTMCache, cuda_available, lstm, lstm_backward, lstm_forward
from .interop import from_keras, from_onnx, from_torch, to_keras, to_onnx, to_torch_state_dict
from .params import LSTMGrads, LSTMParams, init_params, init_stack, ravel

__all__ = ["lstm", "lstm_forward", "lstm_backward", "cuda_available",
           "LSTMParams", "LSTMGrads", "LSTMCache", "init_params", "init_stack", "ravel",
           "from_torch", "to_torch_state_dict", "from_keras", "to_keras", "from_onnx", "to_onnx",
           "testing"]
