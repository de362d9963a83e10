"""Every kernel compiles with the real CUDA compiler (NVVM, then ptxas for sm_90) without a GPU.

The simulator accepts code that a GPU rejects; this runs ``numba.cuda.compile_ptx``
in a subprocess without the simulator (this process has it on) and checks that
float32 kernels hold no float64 arithmetic (a promoted literal would halve
their speed).
"""
import os
import pathlib
import subprocess
import sys

import pytest

HERE = pathlib.Path(__file__).parent

SCRIPT = r"""
import pathlib, sys, tempfile
sys.path.insert(0, {here!r})
import _ptx
failures = []
for dtype in ("float32", "float64"):
    for name, kern, sig in _ptx.kernel_signatures(dtype):
        try:
            ptx = _ptx.compile_ptx(kern.py_func, sig)
            if dtype == "float32" and _ptx.F64_OP.search(ptx):
                failures.append(f"{{name}}[{{dtype}}]: float64 instruction "
                                f"{{_ptx.F64_OP.search(ptx).group(0).strip()}}")
            if _ptx.ptxas():
                _ptx.assemble(ptx, pathlib.Path(tempfile.mkdtemp()))
        except Exception as exc:
            failures.append(f"{{name}}[{{dtype}}]: {{type(exc).__name__}}: {{str(exc)[-2000:]}}")
print("ptxas:", _ptx.ptxas())
print("\n".join(failures) if failures else "OK")
sys.exit(1 if failures else 0)
"""


def test_kernels_compile_for_sm90():
    pytest.importorskip("numba.cuda")
    env = dict(os.environ, NUMBA_ENABLE_CUDASIM="0")
    out = subprocess.run([sys.executable, "-c", SCRIPT.format(here=str(HERE))], env=env,
                         capture_output=True, text=True, timeout=600)
    if "libnvvm" in out.stderr.lower() and "not found" in out.stderr.lower():
        pytest.skip("NVVM (cuda-toolkit[nvvm]) is not installed")
    assert out.returncode == 0, out.stdout[-6000:] + out.stderr[-6000:]
