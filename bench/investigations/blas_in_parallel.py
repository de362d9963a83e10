"""Single-threaded BLAS inside a numba parallel region, against BLAS's own threads.

    python bench/investigations/blas_in_parallel.py [float32|float64] [M,K,N]

Issue 4 names this as a way to keep numba's and BLAS's threads from competing:
call BLAS with one thread from each numba thread. This script times the
product ``a (M x K) @ W_k (K x N)`` for k = 0, 1 (two column blocks of a step's
``h W_hh^T``, default the (64, 100, 128, 256) grid point's 64 x 256 x 512),
100 steps in a row, three ways:

- ``serial``: both products on the calling thread, BLAS with 1 thread;
- ``blas2``: both products on the calling thread, BLAS with 2 threads;
- ``prange``: one product per numba thread in a ``prange`` of 2, BLAS with 1 thread.

and repeats ``prange`` under numba's ``workqueue`` threading layer and with
``OMP_WAIT_POLICY=passive``, each in a fresh process (both must be set before
the threading layer starts). Prints ms per 100 steps (median of 7 samples).
docs/performance.md quotes it (#no-blas-in-numba-threads).
"""
import os
import statistics
import subprocess
import sys
import time

import numpy as np


def median_ms(fn, samples=7):
    fn()
    times = []
    for _ in range(samples):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1e3


def measure(dtype, M, K, N):
    from numba import njit, prange, threading_layer
    from threadpoolctl import ThreadpoolController

    @njit(parallel=True)
    def products_prange(a, W, out, steps):
        for _ in range(steps):
            for k in prange(W.shape[0]):
                np.dot(a, W[k], out[k])

    @njit
    def products_serial(a, W, out, steps):
        for _ in range(steps):
            for k in range(W.shape[0]):
                np.dot(a, W[k], out[k])

    rng = np.random.default_rng(0)
    a = rng.random((M, K)).astype(dtype)
    W = rng.random((2, K, N // 2)).astype(dtype)
    out = np.empty((2, M, N // 2), dtype)
    blas = ThreadpoolController().select(user_api="blas")
    rows = {}
    with blas.limit(limits=1):
        rows["serial"] = median_ms(lambda: products_serial(a, W, out, 100))
        rows["prange"] = median_ms(lambda: products_prange(a, W, out, 100))
    with blas.limit(limits=2):
        rows["blas2"] = median_ms(lambda: products_serial(a, W, out, 100))
    return threading_layer(), rows


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        layer, rows = measure(np.dtype(sys.argv[2]), *map(int, sys.argv[3].split(",")))
        print(layer, " ".join(f"{k}={v:.2f}" for k, v in rows.items()))
        return
    dtype = sys.argv[1] if len(sys.argv) > 1 else "float32"
    shape = sys.argv[2] if len(sys.argv) > 2 else "64,256,512"
    print(f"{dtype} (M, K, N) = ({shape}), ms per 100 steps of two products")
    settings = [("default", {}), ("OMP_WAIT_POLICY=passive", {"OMP_WAIT_POLICY": "passive"}),
                ("NUMBA_THREADING_LAYER=workqueue", {"NUMBA_THREADING_LAYER": "workqueue"})]
    for label, extra in settings:
        env = dict(os.environ, **extra)
        out = subprocess.run([sys.executable, __file__, "--child", dtype, shape], env=env,
                             capture_output=True, text=True, check=True).stdout.strip()
        print(f"{label:32s} {out}")


if __name__ == "__main__":
    main()
