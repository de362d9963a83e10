"""Compile every CUDA kernel to PTX (and SASS with ptxas) without a GPU.

The simulator runs kernels as Python and accepts code that NVVM rejects
(Python objects, float64 constants leaking into float32 code, unsupported
intrinsics). ``numba.cuda.compile_ptx`` runs the real compiler; it only needs a
driver for the compute capability of device functions it compiles on the
way, which :func:`offline_device` supplies. Run in a process *without*
NUMBA_ENABLE_CUDASIM (see test_ptx.py).
"""
from __future__ import annotations

import contextlib
import re
import shutil
import subprocess
import types

CC = (9, 0)

#: an arithmetic or conversion instruction on float64 (register names such as %fd1 do not match)
F64_OP = re.compile(r"^\s*(?:@%p\d+\s+)?[a-z][a-z0-9_.]*\.f64\b", re.M)


@contextlib.contextmanager
def offline_device(cc=CC):
    """Let device functions compile for ``cc`` with no driver (test-only patch)."""
    import numba.cuda.dispatcher as dispatcher

    saved = dispatcher.get_current_device
    dispatcher.get_current_device = lambda: types.SimpleNamespace(compute_capability=cc)
    try:
        yield
    finally:
        dispatcher.get_current_device = saved


def kernel_signatures(dtype_name):
    """(name, python function, argument types) for every kernel, for one float dtype."""
    from numba.cuda import types as nt

    from nblstm.cuda import backward, elementwise, forward, layout, matmul

    f = getattr(nt, dtype_name)
    i64, b1 = nt.int64, nt.boolean
    C1, C2, C3 = nt.Array(f, 1, "C"), nt.Array(f, 2, "C"), nt.Array(f, 3, "C")
    A1, A2, A3 = nt.Array(f, 1, "A"), nt.Array(f, 2, "A"), nt.Array(f, 3, "A")
    L1 = nt.Array(i64, 1, "C")
    I32 = nt.Array(nt.int32, 1, "C")
    return [
        ("matmul", matmul._matmul_kernel, (C2, b1, C2, b1, C1, b1, C2, i64, i64, i64)),
        ("matmul_strided", matmul._matmul_kernel, (A2, b1, A2, b1, A1, b1, A2, i64, i64, i64)),
        ("forward_persistent", forward._forward_persistent_kernel,
         (C3, C1, C2, C2, A3, A2, A2, C3, C3, b1, L1, i64, i64, b1, i64, i64, i64)),
        # inference on a batch-first device x: zx (and the unused gates) through a (T, B, 4H) view
        ("forward_persistent_strided", forward._forward_persistent_kernel,
         (A3, C1, C2, C2, A3, A2, A2, A3, C3, b1, L1, i64, i64, b1, i64, i64, i64)),
        # the same kernel compiled to read W_hh from global memory (Plan.w_shared False)
        ("forward_persistent_global_w", forward._forward_persistent_global_kernel,
         (C3, C1, C2, C2, A3, A2, A2, C3, C3, b1, L1, i64, i64, b1, i64, i64, i64)),
        ("forward_step", forward._forward_step_kernel,
         (C3, C1, C2, C2, A3, A2, A2, C3, C3, b1, i64, i64, i64, i64, b1, i64, i64, i64)),
        ("forward_step_strided", forward._forward_step_kernel,
         (A3, C1, C2, C2, A3, A2, A2, A3, C3, b1, i64, i64, i64, i64, b1, i64, i64, i64)),
        ("backward_persistent", backward._backward_persistent_kernel,
         (C3, C1, C3, C3, C2, C2, A3, C2, C2, A2, C3, A2, L1, i64, i64, b1, i64, i64, i64)),
        ("backward_persistent_global_w", backward._backward_persistent_global_kernel,
         (C3, C1, C3, C3, C2, C2, A3, C2, C2, A2, C3, A2, L1, i64, i64, b1, i64, i64, i64)),
        ("backward_step", backward._backward_step_kernel,
         (C3, C1, C3, C3, C2, C2, A3, C2, C2, A2, C3, A2, i64, i64, i64, i64, i64, b1, i64, i64, i64)),
        ("fill", elementwise._fill_kernel, (C1, f)),
        ("add_flat", elementwise._add_flat_kernel, (C1, C1, C1)),
        ("add3", elementwise._add3_kernel, (A3, A3, A3)),
        ("copy1", elementwise._copy1_kernel, (A1, C1)),
        ("copy2", elementwise._copy2_kernel, (A2, A2)),
        ("copy3", elementwise._copy3_kernel, (A3, A3)),
        ("permute", layout._permute_kernel, (A3, b1, L1, C3)),
        ("unpermute", layout._unpermute_kernel, (C3, b1, L1, C3)),
        ("reverse", layout._reverse_kernel, (A3, L1, A3)),
        ("zero_padding", layout._zero_padding_kernel, (C3, L1)),
        ("nonfinite1", elementwise._nonfinite1_kernel, (A1, I32)),
        ("nonfinite2", elementwise._nonfinite2_kernel, (A2, I32)),
        ("nonfinite3", elementwise._nonfinite3_kernel, (A3, I32)),
    ]


def compile_ptx(pyfunc, argtypes, cc=CC):
    from numba import cuda

    with offline_device(cc):
        ptx, _ = cuda.compile_ptx(pyfunc, argtypes, cc=cc)
    return ptx


def ptxas():
    """Path of ptxas, or None."""
    return shutil.which("ptxas") or (
        "/usr/local/cuda/bin/ptxas" if shutil.which("/usr/local/cuda/bin/ptxas") else None)


def _ptxas_isa():
    """The newest PTX ISA version this ptxas reads (CUDA 12.x/13.x: ISA = major - 4 . minor)."""
    out = subprocess.run([ptxas(), "--version"], capture_output=True, text=True).stdout
    major, minor = map(int, re.search(r"release (\d+)\.(\d+)", out).groups())
    return f"{major - 4}.{minor}"


def assemble(ptx, path, cc=CC):
    """Assemble PTX to a relocatable sm_XX object with ptxas; returns its -v report.

    NVVM (from pip) may be newer than the installed ptxas; the kernels use no
    instruction newer than either, so the ``.version`` line is lowered to what
    this ptxas reads.
    """
    src = path / "k.ptx"
    src.write_text(re.sub(r"^\.version \d+\.\d+", f".version {_ptxas_isa()}", ptx, count=1,
                          flags=re.M))
    out = subprocess.run([ptxas(), f"-arch=sm_{cc[0]}{cc[1]}", "-c", "-v", str(src),
                          "-o", str(path / "k.o")], capture_output=True, text=True)
    if out.returncode:
        raise AssertionError(f"ptxas failed:\n{out.stderr[-4000:]}")
    return out.stderr
