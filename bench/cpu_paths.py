"""Time the three CPU step paths (serial, tiles, blas), each forced, against torch.

    python bench/cpu_paths.py float32,float64 inference,training 1,100,32,128 32,50,32,64

The paths and torch run in alternating blocks with pauses, as in compare.py
(``harness.time_blocks``). Prints the steady-state ms per call of each, and each
path's ratio to torch. This is the measurement behind the thresholds in
``nblstm.cpu.config``.
"""
import argparse
import dataclasses

import compare
import harness

from nblstm import cpu

import bench_common as bc


def forced(path, fn):
    def run():
        cpu.config.path = path
        try:
            fn()
        finally:
            cpu.config.path = None
    return run


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("dtypes")
    p.add_argument("modes")
    p.add_argument("points", nargs="+")
    p.add_argument("--blocks", type=int, default=5)
    p.add_argument("--pause", type=float, default=0.1)
    p.add_argument("--min-block", type=float, default=0.05)
    p.add_argument("--paths", default=",".join(cpu.PATHS))
    args = p.parse_args()
    impls = bc.available_implementations(["nblstm", "torch"])
    if "torch" in impls:
        compare._set_torch_threads()
    paths = args.paths.split(",")
    print(f"config: {dataclasses.replace(cpu.config)}")
    print("dtype mode (B,T,I,H) | " + " | ".join(f"{q} ms (/torch)" for q in paths) + " | torch ms")
    for dtype in args.dtypes.split(","):
        for mode in args.modes.split(","):
            for point in args.points:
                case = bc.Case(*map(int, point.split(",")), dtype, mode)
                inputs = bc.make_inputs(case)
                fn, _ = bc.make_callable("nblstm", case, inputs)
                fns = {q: forced(q, fn) for q in paths}
                if "torch" in impls:
                    fns["torch"], _ = bc.make_callable("torch", case, inputs)
                t = harness.time_blocks(fns, args.blocks, args.pause, args.min_block)
                torch_ms = t["torch"].steady * 1e3 if "torch" in t else float("nan")
                cells = [f"{t[q].steady * 1e3:.3f} ({t[q].steady * 1e3 / torch_ms:.2f})"
                         for q in paths]
                print(f"{dtype} {mode} {case.shape} | " + " | ".join(cells)
                      + f" | {torch_ms:.3f}", flush=True)


if __name__ == "__main__":
    main()
