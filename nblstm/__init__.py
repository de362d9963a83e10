"""nblstm: a Numba LSTM you call like a SciPy function.

The public names, and nothing else: see docs/api.md for the math and the API.
The subpackages and modules that the README and docs name (``nblstm.cpu``,
``nblstm.cuda``, ``nblstm.jit``, ``nblstm.dask``, ``nblstm.reference``,
``nblstm.sklearn``) load on first use (PEP 562): ``import nblstm;
nblstm.cpu.config.path = "serial"`` works, and ``import nblstm`` compiles and
loads no kernel (nor scikit-learn). ``nblstm.cuda`` never needs numba-cuda to
be reached; ``nblstm.dask`` needs the dask extra, ``nblstm.sklearn`` the
sklearn extra.
"""
import importlib
import importlib.metadata

from . import testing
from ._api import LSTMCache, cuda_available, lstm, lstm_backward, lstm_forward
from .interop import from_keras, from_onnx, from_torch, to_keras, to_onnx, to_torch_state_dict
from .io import load, save
from .model import LSTMModel, Readout, init_model, loss_and_grad, model_loss, model_predict
from .optimize import minimize_adam
from .params import LSTMGrads, LSTMParams, init_params, init_stack, ravel

__all__ = ["lstm", "lstm_forward", "lstm_backward", "cuda_available",
           "LSTMParams", "LSTMGrads", "LSTMCache", "init_params", "init_stack", "ravel",
           "from_torch", "to_torch_state_dict", "from_keras", "to_keras", "from_onnx", "to_onnx",
           "LSTMModel", "Readout", "init_model", "model_predict", "model_loss", "loss_and_grad",
           "minimize_adam", "save", "load", "testing", "show_config", "precompile"]

try:
    __version__ = importlib.metadata.version("nblstm")
except importlib.metadata.PackageNotFoundError:      # run from a source tree that is not installed
    __version__ = "unknown"

#: loaded on first attribute access (the backends' kernels, and dask, cost nothing until used)
_SUBMODULES = ("cpu", "cuda", "jit", "dask", "reference", "sklearn")
#: the extras that a lazily loaded module needs, for the message when it is missing
_EXTRAS = {"dask": "dask", "sklearn": "sklearn"}


def __getattr__(name):
    if name in _SUBMODULES:
        try:
            return importlib.import_module(f"{__name__}.{name}")
        except ImportError as exc:
            # hasattr, dir() with getattr, and help() expect AttributeError; the message keeps the cause
            extra = _EXTRAS.get(name)
            hint = f' (the {extra} extra: pip install "nblstm[{extra}]")' if extra else ""
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}: importing "
                                 f"{__name__}.{name} failed{hint}: {exc}") from exc
    if name == "show_config":                         # it imports the CPU backend
        return importlib.import_module(f"{__name__}._show_config").show_config
    if name == "precompile":                          # so does this
        return importlib.import_module(f"{__name__}._precompile").precompile
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    # the public names, not the modules this file imports (importlib)
    return sorted({*__all__, *_SUBMODULES, "__version__"})
