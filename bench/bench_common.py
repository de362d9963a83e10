"""What the benchmarks time, shared by ``compare.py`` and ``test_bench.py``.

A *case* is one configuration (B, T, I, H), a dtype, a mode (``"inference"``
or ``"training"``) and optionally a lengths fraction. An *implementation*
turns a case into a zero-argument callable that does the whole timed job on
inputs prepared once:

======================  =========================================  ==============================================
implementation          inference                                  training
======================  =========================================  ==============================================
``nblstm``              ``nblstm.lstm(x, p, lengths=...)``         ``nblstm.lstm_backward(nblstm.lstm_forward(
                                                                   x, p, lengths=...)[2], dy)``
``reference``           ``reference.lstm_forward`` (it always      ``reference.lstm_backward(reference.lstm_forward(
                        keeps its cache: it has no other mode)     ...)[2], dy)``
``torch``               ``nn.LSTM(x)`` under ``torch.no_grad()``;  forward + ``y.backward(dy)`` with
                        lengths: ``pack_padded_sequence`` →        ``x.requires_grad`` (dx, dW, db as nblstm)
                        LSTM → ``pad_packed_sequence``
``onnxruntime``         an ``InferenceSession`` of Transpose →     not run (onnxruntime has no training here)
                        ``LSTM`` (weights from ``nblstm.to_onnx``,
                        lengths as ``sequence_lens``) → Squeeze →
                        Transpose; float32 only
``jax``                 ``jit`` of ``lax.scan`` over the steps,    ``jit(value_and_grad(sum(y * dy)))`` with
                        the input projection of all steps one      respect to x and the weights (dx, dW, db as
                        product before the scan; lengths: a mask   nblstm: the gradient of sum(y * dy) is the
                                                                   backward pass of ``dy``)
======================  =========================================  ==============================================

Everything is batch first (the default layout of the APIs; onnxruntime's
CPU ``LSTM`` kernel takes only ``layout=0``, time major, so its graph
transposes x in and y out, as a batch-first user's graph would) and uses the
same weights, so :func:`check_agreement` can make sure they all compute the
same thing before anything is timed.

The *peers* (:data:`PEERS`) are the libraries a user would pick instead of
nblstm: torch, onnxruntime and JAX. Each is optional: where one is not
installed, :func:`unavailable` says so and the run goes on without it; where
one cannot run a case (onnxruntime: training, float64) :func:`not_applicable`
gives the reason, which the run records. Threads: torch
``set_num_threads(2)`` (compare.py), onnxruntime ``intra_op_num_threads=2``
and ``inter_op_num_threads=1``; XLA has no flag for a thread count other than
one (``--xla_cpu_multi_thread_eigen=false``): its intra-op pool
(``tf_XLAEigen`` threads) has one thread per schedulable CPU, so on a machine
with more than two cores run the benchmark under ``taskset -c 0,1``
(:func:`jax_pool_threads` reports the pool's size).
"""
from __future__ import annotations

import sys
from pathlib import Path
from typing import NamedTuple

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # `python bench/compare.py` without an installed nblstm
    sys.path.insert(0, str(ROOT))

#: the grid of the issue, (B, T, I, H)
GRID = [(1, 100, 32, 128), (32, 50, 32, 64), (64, 100, 128, 256), (64, 50, 512, 512)]
#: the two points where per-step overhead dominates
SMALL = GRID[:2]
#: the point where nblstm must be >= 20x faster than the NumPy reference
REFERENCE_POINT = (64, 100, 128, 256)
#: T sweep at (32, T, 32, 64)
T_SWEEP = [10, 30, 100, 300, 1000]
#: sweeps for the plot: hidden size at (32, 50, 32, H), batch size at (B, 50, 32, 128)
H_SWEEP = [32, 64, 128, 256, 512]
B_SWEEP = [1, 4, 16, 64, 256]
#: points of the lengths case (lengths uniform in [T/2, T] against full length)
LENGTHS_POINTS = [(32, 100, 32, 64), (64, 100, 128, 256)]
DTYPES = ["float32", "float64"]
MODES = ["inference", "training"]
IMPLEMENTATIONS = ["nblstm", "torch", "reference", "onnxruntime", "jax"]
#: the libraries a user would pick instead of nblstm; "best peer" is the fastest of them at a case
PEERS = ["torch", "onnxruntime", "jax"]
#: threads each peer is given (JAX: see the module docstring)
PEER_THREADS = 2


class Case(NamedTuple):
    B: int
    T: int
    I: int
    H: int
    dtype: str
    mode: str
    lengths: bool = False  # lengths uniform in [T/2, T] (seeded) instead of all T

    @property
    def shape(self):
        return (self.B, self.T, self.I, self.H)

    def label(self):
        s = f"B={self.B} T={self.T} I={self.I} H={self.H} {self.dtype} {self.mode}"
        return s + (" lengths~U[T/2,T]" if self.lengths else "")


def lengths_for(case: Case) -> np.ndarray | None:
    """Lengths spread uniformly over [T/2, T] in a seeded random order, or None.

    The B lengths are the midpoints of B equal slices of [T/2, T] (rounded), so
    the batch holds 3/4 of the full batch's steps whatever B is; random draws
    at B = 32 can land several percent away from that and decide the
    0.8 x target by luck.
    """
    if not case.lengths:
        return None
    half = case.T / 2
    lengths = np.rint(half + half * (np.arange(case.B) + 0.5) / case.B).astype(np.int64)
    return np.random.default_rng(1234).permutation(np.clip(lengths, 0, case.T))


def flops(case: Case) -> float:
    """2·steps·(I+H)·4H for a forward pass; training counts forward + backward ≈ 3×."""
    lengths = lengths_for(case)
    steps = case.B * case.T if lengths is None else int(lengths.sum())
    forward = 2.0 * steps * (case.I + case.H) * 4 * case.H
    return forward if case.mode == "inference" else 3.0 * forward


class Inputs(NamedTuple):
    x: np.ndarray
    params: object
    dy: np.ndarray
    lengths: np.ndarray | None


def make_inputs(case: Case) -> Inputs:
    from nblstm.params import init_params

    rng = np.random.default_rng(0)
    dtype = np.dtype(case.dtype)
    x = rng.standard_normal((case.B, case.T, case.I)).astype(dtype)
    params = init_params(case.I, case.H, dtype=dtype, seed=1)
    dy = rng.standard_normal((case.B, case.T, case.H)).astype(dtype)
    return Inputs(x, params, dy, lengths_for(case))


def torch_available() -> bool:
    return unavailable("torch") is None


#: the modules an implementation needs, beyond nblstm and NumPy
_NEEDS = {"torch": ["torch"], "onnxruntime": ["onnxruntime", "onnx"], "jax": ["jax"]}


def unavailable(name: str) -> str | None:
    """Why implementation ``name`` cannot run in this environment, or None if it can."""
    import importlib

    for module in _NEEDS.get(name, []):
        try:
            importlib.import_module(module)
        except ImportError as e:
            return f"{module} is not installed ({e})"
    return None


def not_applicable(name: str, case: Case) -> str | None:
    """Why implementation ``name`` does not run ``case`` (it is installed), or None if it does."""
    if name == "onnxruntime":
        if case.mode != "inference":
            return "onnxruntime: inference only"
        if case.dtype != "float32":
            return "onnxruntime: its CPU LSTM kernel is float32 only"
    return None


def available_implementations(wanted=None):
    names = list(IMPLEMENTATIONS if wanted is None else wanted)
    return [n for n in names if unavailable(n) is None]


def peer_versions() -> dict:
    """{peer: version} of the installed peers (the environment section of a report)."""
    import importlib

    out = {}
    for name in PEERS:
        if unavailable(name) is None:
            out[name] = getattr(importlib.import_module(name), "__version__", "?")
    return out


def jax_pool_threads() -> int | None:
    """Threads of XLA's CPU intra-op pool in this process (Linux), once JAX has run something."""
    import os

    try:
        tasks = os.listdir("/proc/self/task")
    except OSError:
        return None
    n = 0
    for t in tasks:
        try:
            with open(f"/proc/self/task/{t}/comm") as f:
                n += f.read().startswith("tf_XLAEigen")
        except OSError:
            pass
    return n or None


# --------------------------------------------------------------------------- factories
# Each returns (fn, output) where fn() runs the timed job and output() gives
# (y, dx) of the last call, for the agreement check.

def _nblstm(case: Case, inp: Inputs):
    import nblstm

    x, p, dy, lengths = inp
    last = {}
    if case.mode == "inference":
        def fn():
            last["y"] = nblstm.lstm(x, p, lengths=lengths)[0]
    else:
        def fn():
            y, _, cache = nblstm.lstm_forward(x, p, lengths=lengths)
            last["y"] = y
            last["dx"] = nblstm.lstm_backward(cache, dy).dx
    return fn, lambda: (last.get("y"), last.get("dx"))


def _reference(case: Case, inp: Inputs):
    from nblstm import reference

    x, p, dy, lengths = inp
    last = {}
    if case.mode == "inference":
        def fn():
            last["y"] = reference.lstm_forward(x, p, lengths=lengths)[0]
    else:
        def fn():
            y, _, cache = reference.lstm_forward(x, p, lengths=lengths)
            last["y"] = y
            last["dx"] = reference.lstm_backward(cache, dy).dx
    return fn, lambda: (last.get("y"), last.get("dx"))


def make_torch_module(params, dtype):
    import torch

    W_ih, W_hh, b = params
    H, I = W_hh.shape[1], W_ih.shape[1]
    m = torch.nn.LSTM(I, H, batch_first=True)
    m = m.double() if np.dtype(dtype) == np.float64 else m.float()
    with torch.no_grad():
        m.weight_ih_l0.copy_(torch.from_numpy(np.ascontiguousarray(W_ih)))
        m.weight_hh_l0.copy_(torch.from_numpy(np.ascontiguousarray(W_hh)))
        m.bias_ih_l0.copy_(torch.from_numpy(np.ascontiguousarray(b)))
        m.bias_hh_l0.zero_()
    return m


def _torch(case: Case, inp: Inputs):
    import torch
    from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

    x, p, dy, lengths = inp
    m = make_torch_module(p, x.dtype)
    xt = torch.from_numpy(x.copy())
    dyt = torch.from_numpy(dy.copy())
    lt = None if lengths is None else torch.from_numpy(lengths.copy())
    T = case.T

    def run(inp_t):
        if lt is None:
            return m(inp_t)[0]
        packed = pack_padded_sequence(inp_t, lt, batch_first=True, enforce_sorted=False)
        return pad_packed_sequence(m(packed)[0], batch_first=True, total_length=T)[0]

    last = {}
    if case.mode == "inference":
        def fn():
            with torch.no_grad():
                last["y"] = run(xt)
    else:
        xt.requires_grad_(True)

        def fn():
            m.zero_grad(set_to_none=True)
            xt.grad = None
            y = run(xt)
            y.backward(dyt)
            last["y"] = y
            last["dx"] = xt.grad

    def output():
        y, dx = last.get("y"), last.get("dx")
        return (None if y is None else y.detach().numpy(),
                None if dx is None else dx.numpy())

    return fn, output


def onnx_lstm_model(params, B_dim="B", T_dim="T", lengths=False):
    """An ONNX model, batch first in and out: X (B, T, I) [, L (B,) int32] → Y (B, T, H).

    Transpose → ``LSTM`` (W, R, B of ``nblstm.to_onnx`` as initializers,
    ``layout=0``: onnxruntime's CPU kernel has no ``layout=1``) → Squeeze of
    the direction axis → Transpose.
    """
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    import nblstm

    W, R, Bias = nblstm.to_onnx(params)
    H = R.shape[2]
    I = W.shape[2]
    elem = helper.np_dtype_to_tensor_dtype(W.dtype)
    inits = [numpy_helper.from_array(W, "W"), numpy_helper.from_array(R, "R"),
             numpy_helper.from_array(Bias, "Bias"),
             numpy_helper.from_array(np.array([1], dtype=np.int64), "axis1")]
    nodes = [helper.make_node("Transpose", ["X"], ["Xt"], perm=[1, 0, 2]),
             helper.make_node("LSTM", ["Xt", "W", "R", "Bias"] + (["L"] if lengths else []),
                              ["Yt"], hidden_size=H, direction="forward"),
             helper.make_node("Squeeze", ["Yt", "axis1"], ["Ys"]),
             helper.make_node("Transpose", ["Ys"], ["Y"], perm=[1, 0, 2])]
    inputs = [helper.make_tensor_value_info("X", elem, [B_dim, T_dim, I])]
    if lengths:
        inputs.append(helper.make_tensor_value_info("L", TensorProto.INT32, [B_dim]))
    graph = helper.make_graph(nodes, "nblstm_lstm", inputs,
                              [helper.make_tensor_value_info("Y", elem, [B_dim, T_dim, H])],
                              initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8  # what onnxruntime releases of the last years all read
    onnx.checker.check_model(model)
    return model


def _onnxruntime(case: Case, inp: Inputs):
    import onnxruntime as ort

    reason = not_applicable("onnxruntime", case)
    if reason:
        raise ValueError(reason)
    x, p, _, lengths = inp
    model = onnx_lstm_model(p, lengths=lengths is not None)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = PEER_THREADS
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    sess = ort.InferenceSession(model.SerializeToString(), opts,
                                providers=["CPUExecutionProvider"])
    feed = {"X": np.ascontiguousarray(x)}
    if lengths is not None:
        feed["L"] = lengths.astype(np.int32)
    last = {}

    def fn():
        last["y"] = sess.run(["Y"], feed)[0]

    return fn, lambda: (last.get("y"), None)


_JAX_READY = False


def _jax_setup():
    """Import JAX with float64 enabled (``jax_enable_x64``) on the CPU; the module."""
    global _JAX_READY
    import jax

    if not _JAX_READY:
        jax.config.update("jax_enable_x64", True)   # float64 arrays stay float64
        jax.config.update("jax_platforms", "cpu")
        _JAX_READY = True
    return jax


def jax_lstm(jax, x, W_ih, W_hh, b, lengths=None):
    """y (B, T, H) of one LSTM layer in JAX, gates [i; f; g; o] as nblstm (no conversion).

    The input projection of every step is one product before the scan (what a
    tuned JAX LSTM does); the scan carries (h, c) over the time-major
    projections. With ``lengths``, a step past a row's length keeps its state
    and writes 0 to y, as nblstm does.
    """
    jnp, lax = jax.numpy, jax.lax
    B, T, _ = x.shape
    H = W_hh.shape[1]
    zx = jnp.einsum("bti,gi->tbg", x, W_ih) + b          # (T, B, 4H)
    h0 = jnp.zeros((B, H), x.dtype)
    steps = jnp.arange(T)

    def step(carry, inp):
        h, c = carry
        z_t, t = inp
        z = z_t + h @ W_hh.T
        i = jax.nn.sigmoid(z[:, :H])
        f = jax.nn.sigmoid(z[:, H:2 * H])
        g = jnp.tanh(z[:, 2 * H:3 * H])
        o = jax.nn.sigmoid(z[:, 3 * H:])
        c_new = f * c + i * g
        h_new = o * jnp.tanh(c_new)
        if lengths is None:
            return (h_new, c_new), h_new
        m = (t < lengths)[:, None]
        return ((jnp.where(m, h_new, h), jnp.where(m, c_new, c)),
                jnp.where(m, h_new, jnp.zeros_like(h_new)))

    _, ys = lax.scan(step, (h0, h0), (zx, steps))
    return jnp.swapaxes(ys, 0, 1)                          # (B, T, H)


def _jax(case: Case, inp: Inputs):
    jax = _jax_setup()
    jnp = jax.numpy

    x, p, dy, lengths = inp
    cpu = jax.devices("cpu")[0]
    put = lambda a: jax.device_put(jnp.asarray(np.ascontiguousarray(a)), cpu)  # noqa: E731
    xj, dyj = put(x), put(dy)
    wj = tuple(put(a) for a in p)
    lj = None if lengths is None else put(lengths)
    last = {}
    if case.mode == "inference":
        f = jax.jit(lambda x, w, lens: jax_lstm(jax, x, *w, lengths=lens))

        def fn():
            last["y"] = f(xj, wj, lj).block_until_ready()
    else:
        def loss(w, x, dy, lens):
            y = jax_lstm(jax, x, *w, lengths=lens)
            return jnp.sum(y * dy), y

        g = jax.jit(jax.value_and_grad(loss, argnums=(0, 1), has_aux=True))

        def fn():
            (_, y), (dw, dx) = g(wj, xj, dyj, lj)
            jax.block_until_ready((y, dw, dx))
            last["y"], last["dx"] = y, dx

    def output():
        y, dx = last.get("y"), last.get("dx")
        return (None if y is None else np.asarray(y), None if dx is None else np.asarray(dx))

    return fn, output


FACTORIES = {"nblstm": _nblstm, "reference": _reference, "torch": _torch,
             "onnxruntime": _onnxruntime, "jax": _jax}


def make_callable(name: str, case: Case, inp: Inputs | None = None):
    """(fn, output) for implementation ``name`` on ``case``; inputs made if not given."""
    return FACTORIES[name](case, make_inputs(case) if inp is None else inp)


def check_agreement(outputs: dict, dtype) -> list[str]:
    """Compare every implementation's (y, dx) with nblstm's; messages for mismatches."""
    if "nblstm" not in outputs:
        return []
    tol = 2e-4 if np.dtype(dtype) == np.float32 else 1e-9
    problems = []
    base = outputs["nblstm"]
    for name, out in outputs.items():
        if name == "nblstm":
            continue
        for what, a, b in zip(("y", "dx"), base, out):
            if a is None or b is None:
                continue
            err = np.max(np.abs(a - b)) / max(1.0, float(np.max(np.abs(b))))
            if not err <= tol:
                problems.append(f"{name} {what} differs from nblstm by {err:.2e} (tol {tol:.0e})")
    return problems
