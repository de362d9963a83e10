"""Fit an LSTM with L-BFGS-B over a dataset held as a chunked dask array.

The model and the task are those of ``examples/fit_scipy.py`` (an LSTM and a
linear readout learn a nonlinear IIR filter), but the sequences live in a dask
array on a ``LocalCluster`` of two worker processes, in blocks of sequences.
Every evaluation of the loss sends theta to the workers once, each worker runs
``shard_loss`` on the blocks it holds, and ``nblstm.dask.map_grad`` sums the
(loss, gradient) pairs; SciPy's L-BFGS-B sees an ordinary ``fun(theta) -> (loss,
grad)``. The same code runs on a multi-machine cluster: create the client with
``distributed.Client("tcp://scheduler:8786")`` and load the data on the workers
(``dask.array.from_zarr``, ...) instead of from this process.

Run ``python examples/dask_fit.py``: it prints the loss curve and the time per
evaluation, against the same loss computed in this process in one call.
"""
import functools
import sys
import time
from pathlib import Path

import dask.array as da
import numpy as np
from distributed import Client, LocalCluster
from scipy import optimize

import nblstm
import nblstm.dask

sys.path.insert(0, str(Path(__file__).resolve().parent))
from fit_scipy import make_data  # the sibling example's data


def shard_loss(theta, x, target, *, unravel, n):
    """Sum over one block of the squared readout errors / n, and its gradient.

    With n the number of values in the whole dataset, the sum over the blocks is
    the mean squared error of fit_scipy.py.
    """
    params, (W_out, c_out) = unravel(theta)
    y, _, cache = nblstm.lstm_forward(x, params)
    err = y @ W_out.T + c_out - target
    dpred = 2 * err / n
    grads = nblstm.lstm_backward(cache, dy=dpred @ W_out)
    dW_out = dpred.reshape(-1, 1).T @ y.reshape(-1, y.shape[-1])
    g, _ = nblstm.ravel((grads.dparams, (dW_out, dpred.sum(axis=(0, 1)))))
    return np.sum(err ** 2) / n, g


def fit(batch=1024, seq_len=50, hidden=8, block=128, maxiter=60, seed=0):
    """Fit on whatever Dask scheduler is active.

    Returns the SciPy result, the loss after each iteration, the seconds per
    evaluation ("dask": map_grad during the fit; "one call": the same loss over
    the in-memory arrays in this process) and that one call's loss at the
    optimum (equal to ``result.fun``: the blocks' sum is the whole loss).
    """
    rng = np.random.default_rng(seed)
    x, target = make_data(rng, batch, seq_len)
    theta0, unravel = nblstm.ravel((nblstm.init_params(1, hidden, seed=rng),
                                    (rng.normal(0, 1 / np.sqrt(hidden), (1, hidden)), np.zeros(1))))
    # persist: the blocks are sent to the workers once and stay there for every evaluation
    xd = da.from_array(x, chunks=(block, seq_len, 1)).persist()
    td = da.from_array(target, chunks=(block, seq_len, 1)).persist()
    loss = functools.partial(shard_loss, unravel=unravel, n=target.size)
    times, losses = [], []

    def fun(theta):
        t = time.perf_counter()
        value, grad = nblstm.dask.map_grad(loss, theta, xd, td)
        times.append(time.perf_counter() - t)
        return value, grad

    result = optimize.minimize(fun, theta0, jac=True, method="L-BFGS-B", options={"maxiter": maxiter},
                               callback=lambda intermediate_result: losses.append(intermediate_result.fun))
    one_call = []
    for _ in range(5):
        t = time.perf_counter()
        whole, _ = loss(result.x, x, target)
        one_call.append(time.perf_counter() - t)
    seconds = {"dask": float(np.mean(times[1:])), "one call": float(np.median(one_call))}
    return result, losses, seconds, whole


if __name__ == "__main__":
    # the dashboard on a free port: None still binds :8787, and warns when that is taken
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0") as cluster, \
            Client(cluster):
        t0 = time.perf_counter()
        result, losses, seconds, _ = fit()
    print(f"L-BFGS-B: {result.nit} iterations, {result.nfev} evaluations, {time.perf_counter() - t0:.1f} s")
    for i in range(0, len(losses), 5):
        print(f"  iteration {i + 1:3d}: MSE {losses[i]:.4f}")
    print(f"  final:         MSE {result.fun:.4f}")
    print(f"per evaluation: {1e3 * seconds['dask']:.0f} ms on 2 worker processes, "
          f"{1e3 * seconds['one call']:.0f} ms in one call in this process")
