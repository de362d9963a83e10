"""What alternating thread pools costs: numba's, nblstm's BLAS, and NumPy's BLAS.

    python bench/investigations/pool_contention.py float32 32,50,32,64

Each pool keeps spinning for a while after it runs; on a machine with few
cores the next pool then waits for a core. Prints ms per call (median of
samples of 20 back-to-back calls, 0.1 s pause before each sample) for:

- a training step (lstm_forward + lstm_backward) with the forward and the
  backward on the same path or on different ones;
- lstm alone and lstm alternated with a NumPy 256 x 256 matrix product, on
  each path.

docs/threads.md and docs/performance.md (#one-pool-per-call) quote this script.
"""
import statistics
import sys
import time

import numpy as np

import nblstm
from nblstm import cpu


def per_call_ms(fn, samples=7, calls=20, pause=0.1):
    fn()
    times = []
    for _ in range(samples):
        time.sleep(pause)
        t0 = time.perf_counter()
        for _ in range(calls):
            fn()
        times.append((time.perf_counter() - t0) / calls)
    return statistics.median(times) * 1e3


def main():
    dtype = np.dtype(sys.argv[1] if len(sys.argv) > 1 else "float32")
    B, T, I, H = map(int, (sys.argv[2] if len(sys.argv) > 2 else "32,50,32,64").split(","))
    rng = np.random.default_rng(0)
    x = rng.standard_normal((B, T, I)).astype(dtype)
    dy = rng.standard_normal((B, T, H)).astype(dtype)
    params = nblstm.init_params(I, H, dtype=dtype, seed=0)
    square = rng.standard_normal((256, 256)).astype(dtype)

    def training(forward_path, backward_path):
        def step():
            cpu.config.path = forward_path
            y, _, cache = nblstm.lstm_forward(x, params)
            cpu.config.path = backward_path
            nblstm.lstm_backward(cache, dy)
        return step

    def inference(path, with_numpy):
        def call():
            cpu.config.path = path
            nblstm.lstm(x, params)
            if with_numpy:
                square @ square
        return call

    print(f"{dtype.name} (B, T, I, H) = {(B, T, I, H)}")
    for fp, bp in [("blas", "blas"), ("tiles", "tiles"), ("tiles", "blas"), ("blas", "tiles")]:
        print(f"training step, forward {fp:5s} backward {bp:5s}: {per_call_ms(training(fp, bp)):8.3f} ms")
    print(f"NumPy 256x256 product alone: {per_call_ms(lambda: square @ square):8.3f} ms")
    for path in cpu.PATHS:
        alone = per_call_ms(inference(path, False))
        mixed = per_call_ms(inference(path, True))
        print(f"lstm on {path:6s}: alone {alone:8.3f} ms, alternated with the NumPy product {mixed:8.3f} ms")
    cpu.config.path = None


if __name__ == "__main__":
    main()
