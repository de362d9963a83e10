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
======================  =========================================  ==============================================

Everything is batch first (the default layout of both APIs) and uses the
same weights, so :func:`check_agreement` can make sure the three compute the
same thing before anything is timed.
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
IMPLEMENTATIONS = ["nblstm", "torch", "reference"]


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
    try:
        import torch  # noqa: F401
    except ImportError:
        return False
    return True


def available_implementations(wanted=None):
    names = list(IMPLEMENTATIONS if wanted is None else wanted)
    if "torch" in names and not torch_available():
        names.remove("torch")
    return names


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


FACTORIES = {"nblstm": _nblstm, "reference": _reference, "torch": _torch}


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
