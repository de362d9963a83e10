"""Intel MKL's sequential GEMM, callable from numba's threads: an optional extra.

OpenBLAS, which numba's ``np.dot`` calls, is not safe to call from two numba
threads at once (bench/investigations/blas_in_parallel.py corrupted the heap),
and its per-call packing of W_hh cost the ``"blas"`` path a third of its step.
MKL in its sequential threading layer is reentrant: each numba thread of the
``"slices"`` path (:mod:`.slices`) multiplies its own slice of the recurrent
weights with it, the way oneDNN's RNN primitive gives each thread a tile.

MKL is found at run time (``pip install nblstm[mkl]``, which installs the
``mkl`` wheel, or any ``libmkl_rt`` the dynamic loader finds); without it
the numba loops of :mod:`.matmul` do the products. ``NBLSTM_MKL=0`` in
the environment turns it off.

The kernels never see a symbol of MKL: they get the address of
``cblas_sgemm``/``cblas_dgemm`` as an integer argument and call through it
(:func:`gemm`). Compiled code then holds no process-specific address, so
numba's on-disk cache stays valid, and a process without MKL loads the same
compiled kernels (it passes 0 and takes the numba loops).
"""
from __future__ import annotations

import ctypes
import ctypes.util
import glob
import os
import sys

from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

from ._jit import kernel

#: MKL_THREADING_SEQUENTIAL, MKL_INTERFACE_LP64 (mkl_service.h)
_SEQUENTIAL, _LP64 = 1, 0
#: CblasRowMajor, CblasNoTrans, CblasTrans (mkl_cblas.h)
_ROW_MAJOR, _NO_TRANS, _TRANS = 101, 111, 112

_state = {}


def _candidates():
    found = ctypes.util.find_library("mkl_rt")
    if found:
        yield found
    for prefix in dict.fromkeys([sys.prefix, sys.base_prefix]):
        yield from sorted(glob.glob(os.path.join(prefix, "lib", "libmkl_rt.so*")), reverse=True)


def _load():
    if os.environ.get("NBLSTM_MKL", "1") == "0":
        return None, "turned off by NBLSTM_MKL=0"
    for path in _candidates():
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        # must come before any other MKL call; returns the layer in force
        layer = lib.MKL_Set_Threading_Layer(_SEQUENTIAL)
        lib.MKL_Set_Interface_Layer(_LP64)
        if layer != _SEQUENTIAL:
            return None, f"{path} was already loaded with threading layer {layer}, not sequential"
        sgemm = ctypes.cast(lib.cblas_sgemm, ctypes.c_void_p).value
        dgemm = ctypes.cast(lib.cblas_dgemm, ctypes.c_void_p).value
        return (lib, sgemm, dgemm), path
    return None, "libmkl_rt not found (pip install mkl)"


def _loaded():
    if "lib" not in _state:
        _state["lib"], _state["where"] = _load()
    return _state["lib"]


def available():
    """Whether MKL's sequential GEMM can be used in this process."""
    return _loaded() is not None


def describe():
    """One line on where MKL came from, or why it is not used."""
    _loaded()
    return ("MKL sequential from " if _state["lib"] else "no MKL: ") + _state["where"]


def gemm_address(dtype):
    """Address of ``cblas_sgemm`` (float32) or ``cblas_dgemm`` (float64); 0 without MKL."""
    lib = _loaded()
    if lib is None:
        return 0
    return lib[1] if dtype == "float32" or getattr(dtype, "itemsize", 8) == 4 else lib[2]


@intrinsic
def _cblas_gemm(typingctx, fptr, a, b, c, beta, trans_a):
    """``c = op(a) @ b + beta * c`` through the cblas ``?gemm`` at address ``fptr``.

    ``a``, ``b``, ``c`` are 2-D arrays of one float dtype whose rows are
    contiguous (any row stride); ``beta`` is cast to their dtype; ``op(a)`` is
    ``a.T`` where ``trans_a`` (a bool) is true, else ``a``.
    """
    sig = types.void(fptr, a, b, c, beta, trans_a)

    def codegen(context, builder, signature, args):
        fp, av, bv, cv, betav, transv = args
        aty, bty, cty = signature.args[1:4]
        i32 = ir.IntType(32)
        flt = context.get_value_type(cty.dtype)
        ptr = flt.as_pointer()
        fnty = ir.FunctionType(ir.VoidType(), [i32, i32, i32, i32, i32, i32, flt, ptr, i32,
                                                ptr, i32, flt, ptr, i32])
        itemsize = context.get_constant(types.intp, context.get_abi_sizeof(flt))
        arrays = [context.make_array(t)(context, builder, v)
                  for t, v in ((aty, av), (bty, bv), (cty, cv))]
        shapes = [cgutils.unpack_tuple(builder, arr.shape) for arr in arrays]
        lds = [builder.trunc(builder.sdiv(cgutils.unpack_tuple(builder, arr.strides)[0], itemsize),
                             i32) for arr in arrays]
        rows, cols = (builder.trunc(v, i32) for v in shapes[0])
        trans = context.cast(builder, transv, signature.args[5], types.boolean)
        m = builder.select(trans, cols, rows)
        k = builder.select(trans, rows, cols)
        n = builder.trunc(shapes[1][1], i32)
        func = builder.inttoptr(fp, fnty.as_pointer())
        const = lambda v: ir.Constant(i32, v)
        op_a = builder.select(trans, const(_TRANS), const(_NO_TRANS))
        builder.call(func, [const(_ROW_MAJOR), op_a, const(_NO_TRANS), m, n, k,
                            ir.Constant(flt, 1.0), arrays[0].data, lds[0], arrays[1].data, lds[1],
                            context.cast(builder, betav, signature.args[4], cty.dtype),
                            arrays[2].data, lds[2]])
        return context.get_dummy_value()

    return sig, codegen


@kernel
def gemm(fptr, a, b, c, beta):
    """``c = a @ b + beta * c`` with MKL's ``?gemm`` at address ``fptr`` (from :func:`gemm_address`).

    Shapes (M, K), (K, N), (M, N); rows contiguous. Nothing is called for an empty product.
    """
    if a.shape[0] > 0 and c.shape[1] > 0:
        _cblas_gemm(fptr, a, b, c, beta, False)


@kernel
def gemm_at(fptr, a, b, c, beta):
    """``c = a.T @ b + beta * c`` with MKL's ``?gemm``: shapes (K, M), (K, N), (M, N)."""
    if c.shape[0] > 0 and c.shape[1] > 0:
        _cblas_gemm(fptr, a, b, c, beta, True)
