"""What one CUDA call asks of the driver: kernel launches, device allocations, copies.

    NUMBA_ENABLE_CUDASIM=1 python bench/gpu_calls.py     # counts only, no GPU needed
    python bench/gpu_calls.py                             # on a GPU

Each of these costs host time in numba-cuda (a launch marshals every argument,
an allocation goes to the driver, a host-to-device copy waits for the GPU), and
on an H100 a small call spent about 3.5 ms (inference) and 8.5 ms (training)
before its first time step (bench/RESULTS-gpu-H100.md). The counts are the same
under the CUDA simulator as on a GPU, so they can be tracked without one; the
times are only meaningful on a GPU (bench/gpu_overhead.py). Prints the counts
per call after a warm-up call: on device arrays (inference, training) and on
NumPy arrays (whose copies to and from the GPU are the user's data).
"""
import os
import sys
from collections import Counter
from pathlib import Path

os.environ.setdefault("NUMBA_CUDA_LOW_OCCUPANCY_WARNINGS", "0")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import numpy as np  # noqa: E402
from numba import cuda  # noqa: E402

import nblstm  # noqa: E402
from nblstm.cuda import _jit  # noqa: E402

counts = Counter()


def _count(owner, name, label):
    original = getattr(owner, name)

    def counted(*args, **kwargs):
        counts[label] += 1
        return original(*args, **kwargs)

    setattr(owner, name, counted)


def instrument():
    """Count launches, allocations and copies made through numba.cuda."""
    # kernels() loads the kernel modules first: before the first call REGISTRY holds none of them
    for kernel_type in {type(k) for k in _jit.kernels()}:
        _count(kernel_type, "__getitem__", "kernel launches")   # kernel[grid, block](...)
    _count(cuda, "device_array", "device allocations")
    _count(cuda, "to_device", "host-to-device copies (each with an allocation)")
    host_array = cuda.device_array(1, np.float32)
    _count(type(host_array), "copy_to_host", "device-to-host copies")


def per_call(fn, label):
    fn()                                  # compile and fill any per-shape state first
    counts.clear()
    fn()
    print(f"{label}:")
    for name, n in sorted(counts.items()):
        print(f"  {name:48s} {n}")


def main():
    instrument()
    B, T, H = 4, 3, 8
    rng = np.random.default_rng(0)
    p = nblstm.init_params(H, H, dtype=np.float32, seed=0)
    d_p = nblstm.LSTMParams(*(cuda.to_device(a) for a in p))
    x = rng.standard_normal((B, T, H)).astype(np.float32)
    d_x = cuda.to_device(x)
    d_dy = cuda.to_device(np.ones((B, T, H), np.float32))

    def inference():
        nblstm.lstm(d_x, d_p, backend="cuda", check_finite=False)

    def training():
        y, _, cache = nblstm.lstm_forward(d_x, d_p, backend="cuda", check_finite=False)
        nblstm.lstm_backward(cache, d_dy)

    def host_inference():
        nblstm.lstm(x, p, backend="cuda")

    print(f"(B, T, I, H) = ({B}, {T}, {H}, {H}) float32"
          + (" (CUDA simulator: a cooperative grid of one block, so one block owns all units)"
             if os.environ.get("NUMBA_ENABLE_CUDASIM") == "1" else ""))
    per_call(inference, "lstm, device arrays in and out, check_finite=False")
    per_call(training, "lstm_forward + lstm_backward, device arrays, check_finite=False")
    per_call(host_inference, "lstm, NumPy arrays in and out, check_finite=True")


if __name__ == "__main__":
    main()
