"""nblstm: a Numba LSTM you call like a SciPy function.

The public names, and nothing else: see README.md for the math and the API.
"""
from ._api import LSTMCache, cuda_available, lstm, lstm_backward, lstm_forward
from .params import LSTMGrads, LSTMParams, init_params

__all__ = ["lstm", "lstm_forward", "lstm_backward", "cuda_available",
           "LSTMParams", "LSTMGrads", "LSTMCache", "init_params"]
