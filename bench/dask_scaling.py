"""nblstm.dask on 1 and 2 worker processes against nblstm in one process.

    python bench/dask_scaling.py              # print the table
    python bench/dask_scaling.py --write      # and put it into bench/RESULTS.md

Two jobs over 4096 sequences, (T, I, H) = (20, 16, 32), float64, chunks of 512
sequences and 10 steps (8 x 2 chunks):

- inference: ``nblstm.dask.lstm`` persisted on the workers (y stays there, as it
  would be written to storage from there) against ``nblstm.lstm`` on the
  in-memory array;
- one gradient evaluation: ``nblstm.dask.map_grad`` of a squared-error loss of
  a linear readout against the same loss on all sequences in one call.

Each cluster is a ``LocalCluster(n_workers=n, threads_per_worker=1,
processes=True)``; the data are persisted on it before timing, the kernels
loaded by one untimed run. The baseline runs in this process with numba's
default threads (all cores) and is timed in the same run, before each cluster
starts (no idle workers around it). Dask's task stream gives the median compute
time of one nblstm task and the seconds spent moving data between workers. A second baseline runs the same blocks one
after the other in this process (a loop of nblstm calls, all cores each): the
difference between it and Dask is Dask's own cost, the difference between it and
the one call is what the block size alone changes (nblstm picks its CPU path
from the rows of a call). Reported: medians, and Dask time / one-call time
(below 1: Dask is faster).
"""
from __future__ import annotations

import argparse
import functools
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import harness  # bench/harness.py: this script's folder is on sys.path

import nblstm

B, T, I, H = 4096, 20, 16, 32
CHUNKS = (512, 10)


def readout_loss(theta, x, target, *, unravel):
    """Sum of squared errors of a linear readout of every h_t, and its gradient."""
    params, W_out = unravel(theta)
    y, _, cache = nblstm.lstm_forward(x, params)
    err = y @ W_out.T - target
    grads = nblstm.lstm_backward(cache, dy=2 * err @ W_out)
    dW_out = 2 * err.reshape(-1, err.shape[-1]).T @ y.reshape(-1, y.shape[-1])
    return np.sum(err ** 2), nblstm.ravel((grads.dparams, dW_out))[0]


def task_costs(records, prefix, runs):
    """Median compute time of the nblstm tasks, and seconds of data transfers per run."""
    compute, transfer = [], 0.0
    for r in records:
        for s in r["startstops"]:
            if s["action"] == "compute" and prefix in str(r["key"]):
                compute.append(s["stop"] - s["start"])
            elif s["action"] == "transfer":
                transfer += s["stop"] - s["start"]
    return statistics.median(compute), transfer / runs


def median_time(fn, repeats):
    fn()                                          # compile / load, wake the pools
    samples = []
    for _ in range(repeats):
        time.sleep(0.3)
        t = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - t)
    return statistics.median(samples), samples


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--write", action="store_true", help="replace the dask section of bench/RESULTS.md")
    args = ap.parse_args()

    import dask.array as da
    import distributed

    import nblstm.dask as nd

    rng = np.random.default_rng(0)
    x = rng.standard_normal((B, T, I))
    target = rng.standard_normal((B, T, 1))
    params = nblstm.init_params(I, H, seed=1)
    theta, unravel = nblstm.ravel((params, 0.1 * rng.standard_normal((1, H))))
    fun = functools.partial(readout_loss, unravel=unravel)

    def loop_inference():
        for b in range(0, B, CHUNKS[0]):
            h = c = None
            for t in range(0, T, CHUNKS[1]):
                _, (h, c) = nblstm.lstm(x[b:b + CHUNKS[0], t:t + CHUNKS[1]], params, h, c)

    def loop_grad():
        value, grad = 0.0, np.zeros_like(theta)
        for b in range(0, B, CHUNKS[0]):
            v, g = fun(theta, x[b:b + CHUNKS[0]], target[b:b + CHUNKS[0]])
            value, grad = value + v, grad + g
        return value, grad

    rows = []
    for n_workers in (1, 2):
        base_inf = median_time(lambda: nblstm.lstm(x, params), args.repeats)
        base_grad = median_time(lambda: fun(theta, x, target), args.repeats)
        loop_inf = median_time(loop_inference, args.repeats)
        loop_g = median_time(loop_grad, args.repeats)
        with distributed.LocalCluster(n_workers=n_workers, threads_per_worker=1, processes=True,
                                      dashboard_address=":0") as cluster, distributed.Client(cluster):
            xd = da.from_array(x, chunks=CHUNKS + (I,)).persist()
            td = da.from_array(target, chunks=(CHUNKS[0], T, 1)).persist()
            xg = xd.rechunk((CHUNKS[0], T, I)).persist()
            distributed.wait([xd, td, xg])

            def infer(xd=xd):
                y, _ = nd.lstm(xd, params)
                y = y.persist()
                distributed.wait(y)
                del y

            with distributed.get_task_stream() as stream:
                dask_inf = median_time(infer, args.repeats)
            inf_tasks = task_costs(stream.data, "nblstm-step", args.repeats + 1)
            with distributed.get_task_stream() as stream:
                dask_grad = median_time(lambda xg=xg, td=td: nd.map_grad(fun, theta, xg, td), args.repeats)
            grad_tasks = task_costs(stream.data, "nblstm-grad", args.repeats + 1)
            v_ref, g_ref = fun(theta, x, target)
            v, g = nd.map_grad(fun, theta, xg, td)
            assert abs(v - v_ref) <= 1e-12 * abs(v_ref)
            assert np.allclose(g, g_ref, rtol=1e-10, atol=1e-10 * np.abs(g_ref).max())
        rows.append((n_workers, "inference", base_inf[0], loop_inf[0], dask_inf[0], *inf_tasks))
        rows.append((n_workers, "map_grad", base_grad[0], loop_g[0], dask_grad[0], *grad_tasks))
        for name, m in (("one call", base_inf), ("loop", loop_inf), ("dask", dask_inf),
                        ("grad one call", base_grad), ("grad loop", loop_g), ("map_grad", dask_grad)):
            print(f"{n_workers} worker(s) {name}: " + " ".join(f"{s:.3f}" for s in m[1]), flush=True)

    import dask
    import numba
    lines = [
        "## Dask scaling (`python bench/dask_scaling.py`)",
        "",
        (f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; {platform.machine()}, "
         f"{os.cpu_count()} cores, shared with other work (load average {os.getloadavg()[0]:.1f} at the end); "
         f"dask {dask.__version__}, numba {numba.__version__} "
         f"({numba.threading_layer()} layer, {numba.config.NUMBA_NUM_THREADS} threads in the baseline). "
         f"{B} sequences, (T, I, H) = ({T}, {I}, {H}), float64, chunks of {CHUNKS[0]} sequences "
         f"(inference also {CHUNKS[1]} steps); workers with 1 thread each; median of {args.repeats}."),
        "",
        ("| workers | job | one call (s) | blocks in a loop (s) | Dask (s) | Dask / one call | Dask / loop "
         "| median task (ms) | transfers per run (s) |"),
        "|---|---|---|---|---|---|---|---|---|",
    ]
    lines += [f"| {n} | {job} | {b:.3f} | {lp:.3f} | {d:.3f} | {d / b:.2f} | {d / lp:.2f} "
              f"| {1e3 * task:.1f} | {xfer:.3f} |"
              for n, job, b, lp, d, task, xfer in rows]
    table = "\n".join(lines)
    print(table)
    if args.write:
        path = ROOT / "bench" / "RESULTS.md"
        harness.write_section(path, "dask_scaling", table)
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
