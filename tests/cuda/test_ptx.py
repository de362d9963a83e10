"""Every kernel compiles with the real CUDA compiler (NVVM, then ptxas for sm_90) without a GPU.

The simulator accepts code that a GPU rejects; this runs ``numba.cuda.compile_ptx``
in a subprocess without the simulator (this process has it on) and checks that
float32 kernels hold no float64 arithmetic (a promoted literal would halve
their speed). The subprocess runs once and reports, as JSON on its last stdout
line, whether NVVM loads, the PTX failures, the ptxas it found and the ptxas
failures; one test checks each step.
"""
import json
import os
import pathlib
import subprocess
import sys

import pytest

HERE = pathlib.Path(__file__).parent

SCRIPT = r"""
import json, pathlib, sys, tempfile
sys.path.insert(0, {here!r})
import _ptx
report = dict(nvvm_error=None, kernels=[], compile_failures=[], ptxas=_ptx.ptxas(),
              ptxas_failures=[])
try:
    from numba.cuda.cudadrv import nvvm
    nvvm.NVVM().get_version()  # loads libNVVM; raises if it is missing
except Exception as exc:
    report["nvvm_error"] = f"{{type(exc).__name__}}: {{exc}}"
if report["nvvm_error"] is None:
    for dtype in ("float32", "float64"):
        for name, kern, sig in _ptx.kernel_signatures(dtype):
            label = f"{{name}}[{{dtype}}]"
            report["kernels"].append(label)
            try:
                ptx = _ptx.compile_ptx(kern.py_func, sig)
            except Exception as exc:
                report["compile_failures"].append(
                    f"{{label}}: {{type(exc).__name__}}: {{str(exc)[-2000:]}}")
                report["ptxas_failures"].append(f"{{label}}: no PTX to assemble")
                continue
            op = _ptx.F64_OP.search(ptx) if dtype == "float32" else None
            if op:
                report["compile_failures"].append(
                    f"{{label}}: float64 instruction {{op.group(0).strip()}}")
            if report["ptxas"]:
                try:
                    _ptx.assemble(ptx, pathlib.Path(tempfile.mkdtemp()))
                except Exception as exc:
                    report["ptxas_failures"].append(
                        f"{{label}}: {{type(exc).__name__}}: {{str(exc)[-2000:]}}")
print(json.dumps(report))
"""


@pytest.fixture(scope="module")
def report():
    pytest.importorskip("numba.cuda")
    env = dict(os.environ, NUMBA_ENABLE_CUDASIM="0")
    out = subprocess.run([sys.executable, "-c", SCRIPT.format(here=str(HERE))], env=env,
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stdout[-6000:] + out.stderr[-6000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_kernels_compile_to_ptx(report):
    if report["nvvm_error"] is not None:
        pytest.skip(f"NVVM (cuda-toolkit[nvvm]) cannot be loaded: {report['nvvm_error']}")
    assert report["kernels"]
    assert report["compile_failures"] == []


def test_kernels_assemble_for_sm90(report):
    if report["ptxas"] is None:
        pytest.skip("no ptxas on PATH or in /usr/local/cuda/bin")
    if report["nvvm_error"] is not None:
        pytest.skip(f"no PTX to assemble: NVVM cannot be loaded: {report['nvvm_error']}")
    assert report["kernels"]
    assert report["ptxas_failures"] == []
