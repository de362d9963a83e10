#!/usr/bin/env python
"""What the fork gate (nblstm.cpu._fork.layers_in_flight) costs a call.

    PYTHONPATH=$PWD python bench/fork_gate.py [--blocks 7] [--min-block 0.05]

Every CPU layer runs inside the gate, so that a fork waits for the layers in
flight (docs/threads.md, "Processes"). "bare" puts a gate that does nothing in
its place (the code before issue 26); the two are timed by harness.time_blocks
(alternating blocks of back-to-back calls in one process, a pause before each
block) on the per-step-overhead points of the benchmark grid
(bench_common.SMALL) and on a one-sequence call of the lean path. Each timed
call first puts its variant's gate in place (the same few attribute stores for
both). Reported: the gate alone (minimum of 7 repeats of 200,000), then per
point the steady median of each variant and the ratio.
"""
import argparse
import sys
import timeit
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness  # noqa: E402

import nblstm  # noqa: E402
from nblstm import _lean  # noqa: E402
from nblstm.cpu import _fork, layers  # noqa: E402

import bench_common as bc  # noqa: E402


class _Bare:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def _use(gate):
    layers.layers_in_flight = gate
    _lean._cpu()
    _lean._CPU = _lean._CPU[:3] + (gate,)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--blocks", type=int, default=7)
    ap.add_argument("--min-block", type=float, default=0.05)
    ap.add_argument("--pause", type=float, default=0.3)
    args = ap.parse_args()
    gate = _fork.layers_in_flight
    bare = _Bare()

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
                variants = {"gated": lambda call=call: (_use(gate), call()),
                            "bare": lambda call=call: (_use(bare), call())}
                timing = harness.time_blocks(variants, args.blocks, args.pause, args.min_block)
                _use(gate)
                g, b = (timing[k].steady * 1e3 for k in ("gated", "bare"))
                print(f"({B}, {T}, {I}, {H}) {dtype:8s} {mode:9s} gated {g:7.3f} ms  "
                      f"bare {b:7.3f} ms  gated/bare {g / b:5.3f}", flush=True)


if __name__ == "__main__":
    main()
