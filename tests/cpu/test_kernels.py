"""Static checks on the CPU kernels: the compile policy and how they call each other."""
import ast
import importlib
import pathlib

from numba.core.registry import CPUDispatcher

import nblstm
from nblstm.cpu import _jit

CPU_DIR = pathlib.Path(nblstm.__file__).parent / "cpu"
CPU_MODULES = [f"nblstm.cpu.{p.stem}" for p in sorted(CPU_DIR.glob("*.py")) if p.stem != "__init__"]


def _dispatchers():
    found = {}
    for name in CPU_MODULES + ["nblstm._math"]:
        module = importlib.import_module(name)
        for attr, obj in vars(module).items():
            if isinstance(obj, CPUDispatcher):
                found[f"{name}.{attr}"] = obj
            elif isinstance(obj, _jit.ParallelKernel):    # a parallel driver and its serial twin
                found[f"{name}.{attr}"] = obj.parallel
                found[f"{name}.{attr}(serial)"] = obj.serial
    return found


def test_every_cpu_kernel_goes_through_the_policy():
    """cache, error model and fastmath are set in one place (nblstm.cpu._jit)."""
    dispatchers = _dispatchers()
    assert len(dispatchers) >= 10
    outside = sorted(name for name, d in dispatchers.items() if d not in _jit.REGISTRY)
    assert not outside, f"compiled without nblstm.cpu._jit.kernel: {outside}"


def test_kernels_call_kernels_without_integer_literals():
    """A literal 0 in a call compiles the callee again as Literal[int](0).

    numba types a constant argument as a literal and compiles the called kernel
    for it, beside the int64 version the parallel driver needs (see _jit.py,
    "Literal arguments"); the serial and tiles paths together compiled for
    31.7 s instead of 21.8 s.
    """
    kernel_names = {d.py_func.__name__ for d in _jit.REGISTRY}
    offenders = []
    for path in sorted(CPU_DIR.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
                    and node.func.id in kernel_names):
                continue
            for arg in node.args:
                if isinstance(arg, ast.Constant) and type(arg.value) is int:
                    offenders.append(f"{path.name}:{node.lineno} {node.func.id}(... {arg.value} ...)")
    assert not offenders, offenders
