"""The CPU backend: ``@njit(parallel=True)`` kernels behind the protocol of docs/backends.md.

One module per job, the same names as in :mod:`nblstm.cuda`:

==================  ==========================================================
``config``          tuning (thresholds, tile sizes), read by host code
``plan``            the step path and the parallel tiling for a layer's sizes
``layout``          the boundary: user arrays <-> the kernels' (T, B, F) layout
``workspace``       where arrays come from; scratch kept between calls
``layers``          CPU only: ``forward_layer``, ``backward_layer`` (plan, then the plan's driver)
``forward``         the forward drivers of the numba-loop and BLAS paths, and their kernels
``backward``        their backward (BPTT) drivers and kernels
``step``            the per-row step math every path shares (gates, store, padding)
``weight_grads``    the weight gradients: products over all steps (numba, MKL)
``activations``     the gate math of :mod:`nblstm._math`, compiled
``matmul``          matrix products: BLAS's ``gemm`` and numba loops
``slices``          the ``"slices"`` path: a slice of hidden units per thread
``mkl``             MKL's sequential GEMM for ``slices`` (the ``mkl`` extra)
``elementwise``     row copies and fills, transposing copies, ``add``
``_jit``            the one decorator policy of every kernel
``_single``         CPU only: one sequence through one layer in one call (lean path)
``_fork``           CPU only: a ``fork`` waits until no layer is in flight (OpenBLAS)
``_lanes``          CPU only: the fixed-order gate products of :mod:`nblstm.jit`
==================  ==========================================================
"""
from .._protocol import PROTOCOL
from .config import config
from .elementwise import add
from .layers import backward_layer, forward_layer
from .layout import (
    as_operand,
    asarray,
    copy_as,
    empty_batch_first,
    expand_dims,
    finite_each,
    from_internal,
    is_device,
    reverse_sequences,
    to_internal,
    to_user,
    view_internal,
    zero_padding,
)
from .plan import PATHS, choose_path, mkl_slices
from .workspace import empty, scratch, zeros, zeros_input

__all__ = ["config", "PATHS", "choose_path", "mkl_slices", *PROTOCOL]
