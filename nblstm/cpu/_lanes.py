"""The dot products of one gate row, in eight lanes, for :mod:`nblstm.jit`.

``lane_dot(w1, v1, w2, v2)`` is ``w1 . v1 + w2 . v2`` summed in a fixed order
that is written out here, not left to the compiler:

- lane ``j`` (``j = 0 .. 7``) starts at 0 and adds ``w1[k] * v1[k]`` for
  ``k = j, j + 8, j + 16, ...`` in increasing k, then ``w2[k] * v2[k]`` the
  same way;
- the lanes are added as ``((l0 + l4) + (l2 + l6)) + ((l1 + l5) + (l3 + l7))``.

A dot product summed strictly left to right is a chain of dependent additions
that LLVM will not vectorise without reassociation (``fastmath``), which would
make the order depend on the vector width the compiler picks. With the order
above, eight consecutive products go into eight independent sums, which is one
vector multiply and one vector add: a step of ``lstm_cell`` at (I, H) = (8, 32)
runs several times faster this way, eight rows at a time, than with one scalar
sum per row (docs/performance.md#jit-lanes).

For contiguous operands of one float dtype an ``@intrinsic`` emits that
order as LLVM vector instructions (numba's loops stay scalar there); other
operands (strided rows, mixed dtypes) take a loop over each lane in turn that
performs the same operations in the same order, so both give the same bits.
"""
import numpy as np
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic, overload
from numba.np.numpy_support import as_dtype, from_dtype

from ._jit import kernel

LANES = 8
#: gate rows computed together (sharing each block of x and h), a multiple of 4
ROWS = 8


def lane_dot(w1, v1, w2, v2):
    """``w1 . v1 + w2 . v2`` in the lane order of this module (1-D arrays, len(w) == len(v))."""
    lanes = [0.0] * LANES
    for w, v in ((w1, v1), (w2, v2)):
        for k in range(len(w)):
            lanes[k % LANES] += w[k] * v[k]
    l0, l1, l2, l3, l4, l5, l6, l7 = lanes
    return ((l0 + l4) + (l2 + l6)) + ((l1 + l5) + (l3 + l7))


def _contiguous_float(*arrays):
    first = arrays[0]
    return all(isinstance(a, types.Array) and a.layout == "C" and isinstance(a.dtype, types.Float)
               and a.dtype == first.dtype for a in arrays)


def _accumulate_rows(context, builder, accumulators, W_type, W_value, v_type, v_value, r0):
    """Emit ``lanes_i += W[r0 + i] * v`` for the rows i of ``accumulators`` (allocas of vectors).

    Whole blocks of eight columns as vector operations, each block of ``v``
    loaded once for all the rows; then the columns left, each into its lane.
    """
    W = context.make_array(W_type)(context, builder, W_value)
    v = context.make_array(v_type)(context, builder, v_value)
    n = builder.extract_value(W.shape, 1)
    vector = ir.VectorType(context.get_value_type(W_type.dtype), LANES)
    align = W_type.dtype.bitwidth // 8                     # rows start anywhere: unaligned loads
    rows = [builder.mul(builder.add(r0, r0.type(i)), n) for i in range(len(accumulators))]

    def load_block(data, start):
        return builder.load(builder.bitcast(builder.gep(data, [start]), vector.as_pointer()), align=align)

    blocks = builder.sdiv(n, n.type(LANES))
    with cgutils.for_range(builder, blocks) as loop:
        start = builder.mul(loop.index, n.type(LANES))
        v_block = load_block(v.data, start)
        for acc, row in zip(accumulators, rows):
            w_block = load_block(W.data, builder.add(row, start))
            builder.store(builder.fadd(builder.load(acc), builder.fmul(w_block, v_block)), acc)
    done = builder.mul(blocks, n.type(LANES))
    with cgutils.for_range(builder, builder.sub(n, done)) as loop:
        k = builder.add(done, loop.index)
        v_k = builder.load(builder.gep(v.data, [k]))
        lane = builder.trunc(loop.index, ir.IntType(32))
        for acc, row in zip(accumulators, rows):
            product = builder.fmul(builder.load(builder.gep(W.data, [builder.add(row, k)])), v_k)
            lanes = builder.load(acc)
            total = builder.fadd(builder.extract_element(lanes, lane), product)
            builder.store(builder.insert_element(lanes, total, lane), acc)


@intrinsic
def _row_block(typingctx, W_ih, x, W_hh, h, b, z, r0):
    """``z[r] = b[r] + lane_dot(W_ih[r], x, W_hh[r], h)`` for ``r0 <= r < r0 + ROWS``.

    Each block of eight columns of x and h is loaded once for the ROWS rows; the
    lanes of four rows at a time are then added up as one vector of four sums.
    """
    if not (_contiguous_float(W_ih, x, W_hh, h, b, z) and isinstance(r0, types.Integer)
            and W_ih.ndim == W_hh.ndim == 2 and x.ndim == h.ndim == b.ndim == z.ndim == 1):
        return None
    dtype = W_ih.dtype

    def codegen(context, builder, signature, args):
        W_ih_v, x_v, W_hh_v, h_v, b_v, z_v, r0_v = args
        r0_v = context.cast(builder, r0_v, signature.args[6], types.intp)
        scalar = context.get_value_type(dtype)
        vector = ir.VectorType(scalar, LANES)
        zero = ir.Constant(vector, [ir.Constant(scalar, 0.0)] * LANES)
        accumulators = [cgutils.alloca_once_value(builder, zero) for _ in range(ROWS)]
        _accumulate_rows(context, builder, accumulators, signature.args[0], W_ih_v, signature.args[1], x_v, r0_v)
        _accumulate_rows(context, builder, accumulators, signature.args[2], W_hh_v, signature.args[3], h_v, r0_v)

        def pick(a, b, indices):
            return builder.shuffle_vector(a, b, ir.Constant(ir.VectorType(ir.IntType(32), len(indices)), indices))

        # per row, pairs p_j = l_j + l_{j+4}; then q = (p0 + p2, p1 + p3) and the sum q0 + q1,
        # for four rows at once: ((l0 + l4) + (l2 + l6)) + ((l1 + l5) + (l3 + l7))
        four = ir.VectorType(scalar, 4)
        align = dtype.bitwidth // 8
        b_arr = context.make_array(signature.args[4])(context, builder, b_v)
        z_arr = context.make_array(signature.args[5])(context, builder, z_v)
        for group in range(0, ROWS, 4):
            pairs = []
            for acc in accumulators[group:group + 4]:
                lanes = builder.load(acc)
                pairs.append(builder.fadd(pick(lanes, lanes, [0, 1, 2, 3]), pick(lanes, lanes, [4, 5, 6, 7])))
            q01 = builder.fadd(pick(pairs[0], pairs[1], [0, 1, 4, 5]), pick(pairs[0], pairs[1], [2, 3, 6, 7]))
            q23 = builder.fadd(pick(pairs[2], pairs[3], [0, 1, 4, 5]), pick(pairs[2], pairs[3], [2, 3, 6, 7]))
            sums = builder.fadd(pick(q01, q23, [0, 2, 4, 6]), pick(q01, q23, [1, 3, 5, 7]))
            r = builder.add(r0_v, r0_v.type(group))
            bias = builder.load(builder.bitcast(builder.gep(b_arr.data, [r]), four.as_pointer()), align=align)
            builder.store(builder.fadd(bias, sums),
                          builder.bitcast(builder.gep(z_arr.data, [r]), four.as_pointer()), align=align)
        return context.get_dummy_value()

    return types.none(W_ih, x, W_hh, h, b, z, r0), codegen


def gate_products(W_ih, x, W_hh, h, b, z):
    """``z[r] = b[r] + lane_dot(W_ih[r], x, W_hh[r], h)`` for every row r (shapes checked by the caller)."""
    for r in range(len(z)):
        z[r] = b[r] + lane_dot(W_ih[r], x, W_hh[r], h)


@overload(lane_dot, inline="always", jit_options={"error_model": "numpy", "fastmath": False})
def _lane_dot_overload(w1, v1, w2, v2):
    result = from_dtype(np.result_type(*(as_dtype(a.dtype) for a in (w1, v1, w2, v2))))

    def lane_by_lane_impl(w1, v1, w2, v2):
        zero = result(0)
        lane = np.int64(0)     # typed, not literal 0, 1, ...: see cpu/_jit.py, "Literal arguments"
        l0, l1, l2, l3 = (_lane_sum(w1, v1, w2, v2, lane, zero), _lane_sum(w1, v1, w2, v2, lane + 1, zero),
                          _lane_sum(w1, v1, w2, v2, lane + 2, zero), _lane_sum(w1, v1, w2, v2, lane + 3, zero))
        l4, l5, l6, l7 = (_lane_sum(w1, v1, w2, v2, lane + 4, zero), _lane_sum(w1, v1, w2, v2, lane + 5, zero),
                          _lane_sum(w1, v1, w2, v2, lane + 6, zero), _lane_sum(w1, v1, w2, v2, lane + 7, zero))
        return ((l0 + l4) + (l2 + l6)) + ((l1 + l5) + (l3 + l7))

    return lane_by_lane_impl


@kernel(contract=False)
def _lane_sum(w1, v1, w2, v2, lane, zero):
    """Lane ``lane`` of :func:`lane_dot`, one term at a time in increasing k."""
    total = zero
    for k in range(lane, len(w1), LANES):
        total += w1[k] * v1[k]
    for k in range(lane, len(w2), LANES):
        total += w2[k] * v2[k]
    return total


@overload(gate_products, inline="always", jit_options={"error_model": "numpy", "fastmath": False})
def _gate_products_overload(W_ih, x, W_hh, h, b, z):
    if _contiguous_float(W_ih, x, W_hh, h, b, z):
        def row_block_impl(W_ih, x, W_hh, h, b, z):
            R = z.shape[0]
            R_blocks = R - R % ROWS
            for r0 in range(0, R_blocks, ROWS):
                _row_block(W_ih, x, W_hh, h, b, z, r0)
            for r in range(R_blocks, R):
                z[r] = b[r] + lane_dot(W_ih[r], x, W_hh[r], h)
        return row_block_impl

    def row_by_row_impl(W_ih, x, W_hh, h, b, z):
        for r in range(z.shape[0]):
            z[r] = b[r] + lane_dot(W_ih[r], x, W_hh[r], h)
    return row_by_row_impl


#: elements of the stack buffer that :func:`stack_scratch` hands out (4H <= this: H <= 256)
STACK_ELEMENTS = 1024


@intrinsic
def stack_scratch(typingctx, like, n):
    """A 1-D array of ``n <= STACK_ELEMENTS`` elements of ``like``'s dtype on the caller's stack.

    For the (4H,) gate buffer of one step: a call from a user's hot loop then
    allocates nothing (a heap array costs an allocation and a free per step, and
    a lock in the allocator when the steps run in a ``prange`` loop). The buffer
    is a fixed-size ``alloca`` in the function's entry block, so calling the
    function in a loop does not grow the stack; its contents are undefined and
    it lives until the calling function returns. The caller checks ``n``.
    """
    if not (isinstance(like, types.Array) and isinstance(like.dtype, types.Float)
            and isinstance(n, types.Integer)):
        return None
    array_type = types.Array(like.dtype, 1, "C")

    def codegen(context, builder, signature, args):
        scalar = context.get_value_type(like.dtype)
        data = cgutils.alloca_once(builder, scalar, size=STACK_ELEMENTS, name="stack_scratch")
        length = context.cast(builder, args[1], signature.args[1], types.intp)
        itemsize = context.get_constant(types.intp, like.dtype.bitwidth // 8)
        array = context.make_array(array_type)(context, builder)
        context.populate_array(array, data=data, shape=cgutils.pack_array(builder, [length]),
                               strides=cgutils.pack_array(builder, [itemsize]), itemsize=itemsize,
                               meminfo=None)
        return array._getvalue()

    return array_type(like, n), codegen
