"""Both backends provide the protocol of docs/backends.md, by the same module names."""
import importlib
import pathlib

import nblstm
from nblstm._protocol import PROTOCOL

PACKAGE = pathlib.Path(nblstm.__file__).parent


def test_cpu_provides_every_protocol_function():
    from nblstm import cpu

    missing = [name for name in PROTOCOL if not callable(getattr(cpu, name, None))]
    assert not missing
    assert set(PROTOCOL) <= set(cpu.__all__)


def test_cuda_names_every_protocol_function_without_importing_numba_cuda():
    """The CUDA face lists the protocol; its functions load on first use (tests/cuda checks them)."""
    cuda = importlib.import_module("nblstm.cuda")
    assert set(PROTOCOL) <= set(cuda.__all__)
    assert set(cuda._MODULE_OF) == set(PROTOCOL)
    for name, module in cuda._MODULE_OF.items():
        assert (PACKAGE / "cuda" / f"{module}.py").is_file(), (name, module)


def test_the_backends_are_twins():
    """The same module for the same job in nblstm/cpu and nblstm/cuda."""
    jobs = {"config", "plan", "layout", "workspace", "forward", "backward", "activations",
            "matmul", "elementwise", "_jit"}
    for backend in ("cpu", "cuda"):
        modules = {p.stem for p in (PACKAGE / backend).glob("*.py")} - {"__init__"}
        assert jobs <= modules, (backend, sorted(jobs - modules))

