"""nblstm: a Numba LSTM you call like a SciPy function."""
from .params import LSTMGrads, LSTMParams, init_params

__all__ = ["LSTMParams", "LSTMGrads", "init_params"]
