#!/usr/bin/env python
"""What the fork gate (nblstm.cpu._fork.layers_in_flight) costs a call.

    PYTHONPATH=$PWD python bench/fork_gate.py [--blocks 7] [--calls 20]

Every CPU layer runs inside the gate, so that a fork waits for the layers in
flight (docs/threads.md, "Processes"). "bare" puts a gate that does nothing in
its place (the code before issue 26); the two are timed in alternating blocks
of back-to-back calls in one process, with a pause before each block, on the
per-step-overhead points of the benchmark grid (bench_common.SMALL) and on a
one-sequence call of the lean path. Reported: the gate alone (minimum of 7
repeats of 200,000), then per point the median over blocks of each block's
median call, and the ratio.
"""
import argparse
import statistics
import sys
import time
import timeit
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import nblstm  # noqa: E402
from nblstm import _lean  # noqa: E402
from nblstm.cpu import _fork, backward, forward  # noqa: E402

import bench_common as bc  # noqa: E402


class _Bare:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def _use(gate):
    forward.layers_in_flight = backward.layers_in_flight = gate
    _lean._cpu()
    _lean._CPU = _lean._CPU[:3] + (gate,)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--blocks", type=int, default=7)
    ap.add_argument("--calls", type=int, default=20)
    ap.add_argument("--pause", type=float, default=0.3)
    args = ap.parse_args()
    gate = _fork.layers_in_flight

    def enter_and_leave():
        with gate:
            pass

    alone = min(timeit.repeat(enter_and_leave, number=200_000, repeat=7)) / 200_000 * 1e9
    print(f"the gate alone: {alone:.0f} ns a layer", flush=True)
    for (B, T, I, H) in [(1, 10, 8, 32)] + list(bc.SMALL):
        for dtype in ("float32", "float64"):
            rng = np.random.default_rng(0)
            params = nblstm.init_params(I, H, seed=0, dtype=dtype)
            x = rng.standard_normal((B, T, I)).astype(dtype)
            calls = {"inference": lambda: nblstm.lstm(x, params),
                     "training": lambda: nblstm.lstm_backward(nblstm.lstm_forward(x, params)[2],
                                                              dy=np.ones((B, T, H), dtype))}
            for mode, call in calls.items():
                samples = {"gated": [], "bare": []}
                call()
                for _ in range(args.blocks):
                    for variant in samples:
                        _use(gate if variant == "gated" else _Bare())
                        time.sleep(args.pause)
                        call()
                        times = []
                        for _ in range(args.calls):
                            t0 = time.perf_counter()
                            call()
                            times.append(time.perf_counter() - t0)
                        samples[variant].append(statistics.median(times))
                _use(gate)
                g, b = (statistics.median(samples[k]) * 1e3 for k in ("gated", "bare"))
                print(f"({B}, {T}, {I}, {H}) {dtype:8s} {mode:9s} gated {g:7.3f} ms  "
                      f"bare {b:7.3f} ms  gated/bare {g / b:5.3f}", flush=True)


if __name__ == "__main__":
    main()
