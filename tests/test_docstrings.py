"""Every public name of nblstm has a complete numpydoc docstring (as numba-stats tests its docs).

numpydoc's own validation (``numpydoc.validate``: sections, their order, every
parameter documented with a type, See Also, ...) less a few checks, and on top
of it what this project asks of a public function: a Raises section and
References to the sources of the math or the formats.
"""
import importlib
import importlib.util
import inspect

import pytest

import nblstm

validate = pytest.importorskip("numpydoc.validate", reason="numpydoc is in the [test] extra").validate
FunctionDoc = pytest.importorskip("numpydoc.docscrape").FunctionDoc

#: numpydoc checks not required here
IGNORED = {
    "ES01",   # an extended summary: the one-line summary often says it all
    "EX01",   # examples: the README and the examples/ folder hold most of them
    "SS05",   # summary starting with a verb: "Weights of a Keras LSTM ..." reads better
    "SS02",   # summary starting with a capital: "nblstm parameters as ..." is a name
}
#: NamedTuples document their fields under Attributes, which numpydoc reads as undocumented parameters
IGNORED_FOR_CLASSES = {"PR01"}
#: public functions that cannot fail on bad input
NEVER_RAISE = {"nblstm.cuda_available"}
#: functions whose References name the papers or formats they implement
NEED_REFERENCES = {"lstm", "lstm_forward", "lstm_backward", "init_params", "init_stack", "ravel",
                   "from_torch", "to_torch_state_dict", "from_keras", "to_keras", "from_onnx", "to_onnx",
                   "jit.lstm_cell", "jit.lstm_sequence", "dask.lstm", "dask.map_grad"}
#: public modules that ``import nblstm`` leaves out (nblstm.jit compiles numba code on import,
#: nblstm.dask imports Dask, an optional extra)
ON_DEMAND = ["jit"] + (["dask"] if importlib.util.find_spec("dask") else [])


def _public_names():
    for name in nblstm.__all__ + ON_DEMAND:
        obj = importlib.import_module(f"nblstm.{name}") if name in ON_DEMAND else getattr(nblstm, name)
        if inspect.ismodule(obj):
            yield from (f"nblstm.{name}.{sub}" for sub in obj.__all__)
        else:
            yield f"nblstm.{name}"


def _resolve(qualname):
    obj = nblstm
    for part in qualname.split(".")[1:]:
        obj = getattr(obj, part)
    return obj


@pytest.mark.parametrize("qualname", list(_public_names()))
def test_numpydoc_validation(qualname):
    obj = _resolve(qualname)
    ignored = IGNORED | (IGNORED_FOR_CLASSES if inspect.isclass(obj) else set())
    errors = [f"{code}: {message}" for code, message in validate(qualname)["errors"]
              if code not in ignored]
    assert not errors, "\n".join(errors)


def _is_function(obj):
    """A Python function, or a numba dispatcher of one (nblstm.jit)."""
    return inspect.isfunction(getattr(obj, "py_func", obj))


@pytest.mark.parametrize("qualname", [q for q in _public_names()
                                      if _is_function(_resolve(q)) and q not in NEVER_RAISE])
def test_functions_say_what_they_raise(qualname):
    assert FunctionDoc(_resolve(qualname))["Raises"]


@pytest.mark.parametrize("name", sorted(NEED_REFERENCES))
def test_functions_cite_their_sources(name):
    assert FunctionDoc(_resolve(f"nblstm.{name}"))["References"]


@pytest.mark.parametrize("name", ["lstm", "lstm_forward"])
def test_the_runs_state_the_dtype_rule_and_the_devices(name):
    doc = inspect.getdoc(getattr(nblstm, name))
    assert "integers compute in float64, float16 in float32" in doc.replace("\n", " ").replace(
        "bool and integers", "integers")
    assert "__cuda_array_interface__" in doc and "device arrays" in doc
