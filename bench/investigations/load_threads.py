"""nblstm and torch on 2 threads and on 1, idle and with two busy processes on the cores.

    PYTHONPATH=$PWD python bench/investigations/load_threads.py 32,50,32,64 64,100,128,256

For each (B, T, I, H) and mode, float32: medians of steady calls (blocks of
back-to-back calls, :func:`harness.time_blocks`), each as a ratio to torch on
its default threads in the same block, and the slowest call over the median.
``nblstm 2`` is nblstm as configured (numba's threads, fewer under load where a
layer meets at every step: ``nblstm.cpu.config.adapt_to_load``); ``nblstm 1``
and ``torch 1`` are held to one thread.
"""
import contextlib
import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))

import compare  # noqa: E402
import harness  # noqa: E402
import numba  # noqa: E402
import torch  # noqa: E402

import bench_common as bc  # noqa: E402


def one_thread(fn, get, set_):
    def run():
        previous = get()
        set_(1)
        try:
            fn()
        finally:
            set_(previous)
    return run


def main():
    compare._set_torch_threads()
    points = [tuple(map(int, p.split(","))) for p in sys.argv[1:]] or [bc.SMALL[1]]
    for loaded in (False, True):
        with harness.competing_load(2) if loaded else contextlib.nullcontext():
            for point in points:
                for mode in bc.MODES:
                    case = bc.Case(*point, "float32", mode)
                    inputs = bc.make_inputs(case)
                    nb, _ = bc.make_callable("nblstm", case, inputs)
                    tc, _ = bc.make_callable("torch", case, inputs)
                    fns = {"nblstm 2": nb,
                           "nblstm 1": one_thread(nb, numba.get_num_threads, numba.set_num_threads),
                           "torch 2": tc,
                           "torch 1": one_thread(tc, torch.get_num_threads, torch.set_num_threads)}
                    t = harness.time_blocks(fns, 5, 0.1, 0.1)
                    base = t["torch 2"].steady
                    print(("busy " if loaded else "idle ") + f"{point} {mode}: " + "  ".join(
                        f"{k} {v.steady * 1e3:.3f} ms ({v.steady / base:.2f}, slowest "
                        f"{v.slowest / v.steady:.0f}x)" for k, v in t.items()), flush=True)


if __name__ == "__main__":
    main()
