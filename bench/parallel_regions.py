#!/usr/bin/env python
"""What the serial twins' dispatch (nblstm.cpu._jit.ParallelKernel) costs a call.

    PYTHONPATH=$PWD python bench/parallel_regions.py [--blocks 7] [--calls 20]

Every parallel driver is called through a ParallelKernel, which checks where
this process may start a parallel region before calling numba's dispatcher.
"direct" puts the bare parallel dispatchers back into the modules (the code
before issue 12); the two are timed in alternating blocks of back-to-back
calls in one process, with a pause before each block, on the per-step-overhead
points of the benchmark grid (bench_common.SMALL). Reported: the median over
blocks of each block's median call (steady state), and the ratio. First the
dispatch alone: a parallel driver on a (2, 2, 2) array, wrapped and direct in
alternating samples (minimum and median of 40). Run on a busy shared machine
the end-to-end ratios scatter by +-30%; the dispatch cost is the firmer figure.
"""
import argparse
import importlib
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import nblstm  # noqa: E402
from nblstm.cpu import _jit  # noqa: E402

import bench_common as bc  # noqa: E402

MODULES = ["nblstm.cpu.forward", "nblstm.cpu.backward", "nblstm.cpu.layout", "nblstm.cpu"]


def _swap(direct):
    """Put the bare parallel dispatchers into the modules (direct) or the ParallelKernels back."""
    for name in MODULES:
        module = importlib.import_module(name)
        for attr, obj in list(vars(module).items()):
            if direct and isinstance(obj, _jit.ParallelKernel):
                setattr(module, "_pk_" + attr, obj)
                setattr(module, attr, obj.parallel)
            elif not direct and attr.startswith("_pk_"):
                setattr(module, attr[4:], obj)


def dispatch_cost(samples=40, number=300):
    from nblstm.cpu import layout
    a = np.zeros((2, 2, 2))
    out, lengths = np.zeros_like(a), np.array([2, 1])
    kernel = layout.reverse_sequences
    kernel(a, lengths, out)
    wrapped, direct = [], []
    for _ in range(samples):
        t0 = time.perf_counter()
        for _ in range(number):
            kernel(a, lengths, out)
        t1 = time.perf_counter()
        for _ in range(number):
            kernel.parallel(a, lengths, out)
        t2 = time.perf_counter()
        wrapped.append((t1 - t0) / number * 1e6)
        direct.append((t2 - t1) / number * 1e6)
    print(f"dispatch of one parallel driver: wrapped min {min(wrapped):.2f} us, direct min "
          f"{min(direct):.2f} us; medians {statistics.median(wrapped):.2f} / "
          f"{statistics.median(direct):.2f} us", flush=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--blocks", type=int, default=7)
    ap.add_argument("--calls", type=int, default=20)
    ap.add_argument("--pause", type=float, default=0.3)
    args = ap.parse_args()
    dispatch_cost()
    for (B, T, I, H) in bc.SMALL:
        for dtype in ("float32", "float64"):
            rng = np.random.default_rng(0)
            params = nblstm.init_params(I, H, seed=0, dtype=dtype)
            x = rng.standard_normal((B, T, I)).astype(dtype)
            calls = {"inference": lambda: nblstm.lstm(x, params),
                     "training": lambda: nblstm.lstm_backward(nblstm.lstm_forward(x, params)[2],
                                                              dy=np.ones((B, T, H), dtype))}
            for mode, call in calls.items():
                samples = {"wrapped": [], "direct": []}
                call()
                for _ in range(args.blocks):
                    for variant in ("wrapped", "direct"):
                        _swap(variant == "direct")
                        time.sleep(args.pause)
                        call()
                        times = []
                        for _ in range(args.calls):
                            t0 = time.perf_counter()
                            call()
                            times.append(time.perf_counter() - t0)
                        samples[variant].append(statistics.median(times))
                        _swap(False)
                w, d = (statistics.median(samples[k]) * 1e3 for k in ("wrapped", "direct"))
                print(f"({B}, {T}, {I}, {H}) {dtype:8s} {mode:9s} wrapped {w:7.3f} ms  "
                      f"direct {d:7.3f} ms  wrapped/direct {w / d:5.3f}", flush=True)


if __name__ == "__main__":
    main()
