"""Where a step of the "slices" path goes: product, gates, barrier, against the whole forward.

    PYTHONPATH=$PWD python bench/investigations/slices_micro.py float32 64,100,128,256 [units]

Times (median of 15 calls, ms per call of T steps) with the threads numba has:
- ``whole``: ``nblstm.lstm`` forced onto the slices path (MKL where installed, else numba loops);
- ``product``: one parallel region per step, each slice's product only (the same micro-kernel);
- ``gates``: one parallel region per step, each slice's gate and cell update only;
- ``regions``: T empty parallel regions over the slices (the barrier and wake-up per step);
- ``torch``: ``nn.LSTM`` inference with as many threads.
It also prints the bytes of packed weights per thread against the product's flops.
"""
import statistics
import sys
import time

import numba
import numpy as np
from numba import njit, prange

import nblstm
from nblstm.cpu import config, mkl, plan, slices, workspace
from nblstm.cpu.matmul import add_products
from nblstm.cpu.step import activate_tile


@njit(parallel=True)
def product_steps(T, xh, Wf, zbuf, units, H, gemm_ptr):
    for _ in range(T):
        for s in prange(Wf.shape[0]):
            w = min(H, (s + 1) * units) - s * units
            if gemm_ptr != 0:
                mkl.gemm(gemm_ptr, xh, Wf[s][:, :4 * w], zbuf[s][:, :4 * w], 1.0)
            else:
                add_products(xh, Wf[s], zbuf[s], np.int64(0), xh.shape[0], np.int64(0), 4 * w)


@njit(parallel=True)
def gate_steps(T, zbuf, c_state, h, units, H):
    for _ in range(T):
        for s in prange(zbuf.shape[0]):
            j0 = s * units
            j1 = min(H, j0 + units)
            w = j1 - j0
            for r in range(zbuf.shape[1]):     # in place: the values stay bounded
                activate_tile(zbuf[s, r][:4 * w], np.int64(0), w, c_state[r][j0:j1],
                               h[r][j0:j1])


@njit(parallel=True)
def empty_regions(T, S, out):
    for t in range(T):
        for s in prange(S):
            out[s] += 1.0


def median_ms(fn, n=15):
    fn()
    ts = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return statistics.median(ts) * 1e3


def main():
    dtype = np.dtype(sys.argv[1])
    B, T, I, H = (int(v) for v in sys.argv[2].split(","))
    units = plan.slice_units(H, int(sys.argv[3]) if len(sys.argv) > 3 else 0, dtype.itemsize,
                             backward=False)
    rng = np.random.default_rng(0)
    p = nblstm.init_params(I, H, dtype=dtype, seed=1)
    x = rng.standard_normal((B, T, I)).astype(dtype)
    Wf, _ = slices.pack_forward(p.W_ih, p.W_hh, p.b, units)
    S = Wf.shape[0]
    xh = workspace.aligned_empty((B, I + H), dtype)
    xh[...] = rng.standard_normal(xh.shape) * 0.1
    zbuf = workspace.aligned_empty((S, B, 4 * units), dtype)
    zbuf[...] = 0
    c_state = np.zeros((B, H), dtype)
    h = np.zeros((B, H), dtype)
    ptr = mkl.gemm_address(dtype)
    config.path, config.slice_units = "slices", units
    flops = 2.0 * B * T * (I + H) * 4 * H
    res = {
        "whole": median_ms(lambda: nblstm.lstm(x, p)),
        "product": median_ms(lambda: product_steps(T, xh, Wf, zbuf, units, H, ptr)),
        "gates": median_ms(lambda: gate_steps(T, zbuf, c_state, h, units, H)),
        "regions": median_ms(lambda: empty_regions(T, S, np.zeros(S))),
    }
    try:
        import torch

        torch.set_num_threads(numba.get_num_threads())
        m = torch.nn.LSTM(I, H, batch_first=True).to(getattr(torch, dtype.name))
        xt = torch.from_numpy(x)
        with torch.no_grad():
            res["torch"] = median_ms(lambda: m(xt))
    except ImportError:
        pass
    print(f"{dtype} (B, T, I, H) = {(B, T, I, H)}, {numba.get_num_threads()} threads, "
          f"{S} slices of {units} units, {mkl.describe()}")
    for k, v in res.items():
        extra = f"  {flops / v / 1e6:.0f} GFLOP/s" if k in ("whole", "product", "torch") else ""
        print(f"  {k:8s} {v:8.2f} ms  ({1e3 * v / T:7.1f} us per step){extra}")
    per_thread = Wf.nbytes / min(S, numba.get_num_threads())
    print(f"  packed weights per thread: {per_thread / 2 ** 10:.0f} KiB, read once per step")


if __name__ == "__main__":
    main()
