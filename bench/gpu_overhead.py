"""Where a small CUDA call spends its time: fixed per-call cost (T = 1) against the
cost per step (T = 100), and the host-side profile of one call.

    python bench/gpu_overhead.py
"""
import cProfile
import pstats
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import numpy as np  # noqa: E402
from numba import cuda  # noqa: E402

import nblstm  # noqa: E402


def median_ms(f, n=20):
    f()
    cuda.synchronize()
    ts = []
    for _ in range(n):
        t = time.perf_counter()
        f()
        cuda.synchronize()
        ts.append(time.perf_counter() - t)
    return 1e3 * statistics.median(ts)


H = 256
p = nblstm.init_params(H, H, dtype=np.float32, seed=0)
d_p = nblstm.LSTMParams(*(cuda.to_device(a) for a in p))
for B in (1, 64):
    for T in (1, 25, 100):
        d_x = cuda.to_device(np.random.default_rng(0).standard_normal((B, T, H)).astype(np.float32))
        inf = median_ms(lambda: nblstm.lstm(d_x, d_p, backend="cuda", check_finite=False))

        def train():
            y, _, c = nblstm.lstm_forward(d_x, d_p, backend="cuda", check_finite=False)
            nblstm.lstm_backward(c, y)
        print(f"B={B:3d} T={T:3d} H={H}: inference {inf:8.3f} ms  training {median_ms(train):8.3f} ms")
d_x = cuda.to_device(np.zeros((1, 25, H), np.float32))
prof = cProfile.Profile()
prof.enable()
for _ in range(20):
    nblstm.lstm(d_x, d_p, backend="cuda", check_finite=False)
cuda.synchronize()
prof.disable()
pstats.Stats(prof).sort_stats("tottime").print_stats(18)
