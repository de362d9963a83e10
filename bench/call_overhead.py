"""Call overhead: the cost of small calls and of nblstm.jit, against torch.nn.LSTMCell in the same run.

    python bench/call_overhead.py                 # both dtypes, every row
    python bench/call_overhead.py --dtypes float32 --blocks 9

Each row times its implementations in blocks of back-to-back calls (one call
before each block, untimed), the blocks of the implementations of a row
alternating with a short pause between blocks (CONVENTIONS 13: the worker
threads a library leaves spinning slow the next library's call, and a call
after idle pays to wake its pool). A row's figure is the median over its
blocks of the time per call; ratios are of medians from this run. This is the
steady state of a loop of calls, which is what step-by-step use runs; the
first call after idle is not part of it.

Rows, at (B, T, I, H) = (1, 1, 8, 32) unless said:

- ``lstm``: ``nblstm.lstm(x, params, h, c)``; target <= 1.0 x ``torch.nn.LSTMCell``
  under ``no_grad``, and with ``check_finite=False`` <= 0.5 x;
- ``forward + backward``: ``lstm_forward`` + ``lstm_backward`` (dy, dh_n, dc_n given)
  against LSTMCell forward + ``torch.autograd.backward`` of h and c; target <= 1.0 x;
- ``chunked``: 1000 calls of T = 10 passing (h, c) on, against one call of T = 10000;
  target <= 1.2 x;
- ``jit cell``: one ``nblstm.jit.lstm_cell`` step from an ``@njit`` loop (state in
  place); target <= 1 us;
- ``jit sequence``: ``nblstm.jit.lstm_sequence`` at (1, 1000, 8, 32) from Python against
  ``nblstm.lstm`` on the same single sequence; target <= 1.2 x.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from numba import njit

import nblstm
import nblstm.jit

I, H = 8, 32


@njit
def _cell_loop(n, x, h, c, W_ih, W_hh, b):
    for _ in range(n):
        nblstm.jit.lstm_cell(x, h, c, W_ih, W_hh, b, h, c)


def _per_call(fn, calls):
    fn()
    start = time.perf_counter()
    for _ in range(calls):
        fn()
    return (time.perf_counter() - start) / calls


def _row(impls, blocks, pause):
    """{name: median seconds per call} over alternating blocks; impls: name -> (fn, calls per block)."""
    samples = {name: [] for name in impls}
    for _ in range(blocks):
        for name, (fn, calls) in impls.items():
            time.sleep(pause)
            samples[name].append(_per_call(fn, calls))
    return {name: float(np.median(s)) for name, s in samples.items()}


def _torch_cell(dtype):
    import torch
    # one thread: torch's fastest setting at these sizes (with two, its backward took
    # 2.4-5 ms instead of 0.23 ms on the loaded 2-core machine)
    torch.set_num_threads(1)
    tdtype = torch.float32 if dtype == np.float32 else torch.float64
    cell = torch.nn.LSTMCell(I, H).to(tdtype)
    x = torch.randn(1, I, dtype=tdtype)
    h0, c0 = torch.zeros(1, H, dtype=tdtype), torch.zeros(1, H, dtype=tdtype)

    def inference():
        with torch.no_grad():
            return cell(x, (h0, c0))

    xg = x.clone().requires_grad_()
    hg, cg = h0.clone().requires_grad_(), c0.clone().requires_grad_()
    dh, dc = torch.ones(1, H, dtype=tdtype), torch.ones(1, H, dtype=tdtype)

    def training():
        h, c = cell(xg, (hg, cg))
        torch.autograd.backward([h, c], [dh, dc])

    return inference, training


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dtypes", default="float32,float64")
    ap.add_argument("--blocks", type=int, default=7, help="blocks per implementation and row")
    ap.add_argument("--pause", type=float, default=0.05, help="seconds before every block")
    args = ap.parse_args(argv)
    try:
        import torch  # noqa: F401
        have_torch = True
    except ImportError:
        have_torch = False
    print(f"nblstm at {os.popen(f'git -C {ROOT} rev-parse --short HEAD').read().strip()}, "
          f"load average {os.getloadavg()[0]:.2f}, {os.cpu_count()} CPUs; median of {args.blocks} blocks")
    print(f"{'row':<34}{'dtype':<9}{'nblstm':>12}{'baseline':>12}{'ratio':>8}  target")
    for name in args.dtypes.split(","):
        dtype = np.dtype(name).type
        rng = np.random.default_rng(0)
        p = nblstm.LSTMParams(*(a.astype(dtype) for a in nblstm.init_params(I, H, seed=rng)))
        x1 = rng.standard_normal((1, 1, I)).astype(dtype)
        h0, c0 = np.zeros((1, H), dtype), np.zeros((1, H), dtype)
        dy = np.ones((1, 1, H), dtype)

        def lstm_default():
            return nblstm.lstm(x1, p, h0, c0)

        def lstm_unchecked():
            return nblstm.lstm(x1, p, h0, c0, check_finite=False)

        def train():
            _, _, cache = nblstm.lstm_forward(x1, p, h0, c0)
            return nblstm.lstm_backward(cache, dy, h0 + 1, c0 + 1)

        x_long = rng.standard_normal((1, 10000, I)).astype(dtype)

        def chunked():
            h, c = h0, c0
            for t0 in range(0, 10000, 10):
                _, (h, c) = nblstm.lstm(x_long[:, t0:t0 + 10], p, h, c)

        def whole():
            return nblstm.lstm(x_long, p, h0, c0)

        xs = rng.standard_normal((1000, I)).astype(dtype)
        y, h_n, c_n = np.empty((1000, H), dtype), np.empty(H, dtype), np.empty(H, dtype)
        hz, cz = np.zeros(H, dtype), np.zeros(H, dtype)

        def jit_sequence():
            nblstm.jit.lstm_sequence(xs, *p, hz, cz, y, h_n, c_n)

        def api_sequence():
            return nblstm.lstm(xs[None], p)

        rows = []
        if have_torch:
            cell_inf, cell_train = _torch_cell(dtype)
            r = _row({"a": (lstm_default, 2000), "b": (lstm_unchecked, 2000), "t": (cell_inf, 2000)},
                     args.blocks, args.pause)
            rows.append(("lstm (1,1,8,32)", r["a"], r["t"], 1.0, "LSTMCell"))
            rows.append(("lstm check_finite=False", r["b"], r["t"], 0.5, "LSTMCell"))
            r = _row({"a": (train, 1000), "t": (cell_train, 1000)}, args.blocks, args.pause)
            rows.append(("forward + backward (1,1,8,32)", r["a"], r["t"], 1.0, "LSTMCell fw+bw"))
        r = _row({"a": (chunked, 1), "w": (whole, 3)}, args.blocks, args.pause)
        rows.append(("chunked 1000 x T=10", r["a"], r["w"], 1.2, "one T=10000"))
        xc, hc, cc = xs[0].copy(), np.zeros(H, dtype), np.zeros(H, dtype)
        _cell_loop(1, xc, hc, cc, *p)
        steps = 20000
        r = _row({"j": (lambda: _cell_loop(steps, xc, hc, cc, *p), 1)}, args.blocks, args.pause)
        rows.append(("jit lstm_cell from @njit", r["j"] / steps, 1e-6, 1.0, "1 us"))
        r = _row({"j": (jit_sequence, 20), "a": (api_sequence, 20)}, args.blocks, args.pause)
        rows.append(("jit lstm_sequence (1,1000,8,32)", r["j"], r["a"], 1.2, "nblstm.lstm"))
        for label, ours, base, target, what in rows:
            ratio = ours / base
            verdict = "PASS" if ratio <= target else f"MISS by {ratio / target:.2f}x"
            print(f"{label:<34}{name:<9}{ours * 1e6:>10.2f}us{base * 1e6:>10.2f}us{ratio:>8.2f}  "
                  f"<= {target} x {what}: {verdict}")


if __name__ == "__main__":
    main()
