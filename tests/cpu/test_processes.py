"""Worker processes started with fork, forkserver and spawn, under each threading layer.

After any nblstm call, a ``fork``-started child of a process whose GNU OpenMP
runtime has started is killed by the runtime when it enters a parallel region
(and a Pool then waits forever). Each check runs in a subprocess with a
timeout, so that a hang fails the test instead of blocking the run.
"""
import os
import pathlib
import subprocess
import sys
import textwrap

import pytest

import nblstm

from _helpers import require_layer

#: every test here starts worker processes
pytestmark = pytest.mark.slow

ROOT = pathlib.Path(nblstm.__file__).resolve().parent.parent

SCRIPT = textwrap.dedent('''
    import multiprocessing
    import os
    import sys

    import numba
    import numpy as np

    import nblstm
    import nblstm.cpu

    # at module level, so that forkserver and spawn children force the path too
    nblstm.cpu.config.path = os.environ.get("NBLSTM_TEST_PATH") or None

    def work(B):
        """Inference and a training step of a 2-layer bidirectional stack (every parallel driver)."""
        rng = np.random.default_rng(B)
        params = nblstm.init_stack(4, 16, num_layers=2, bidirectional=True, seed=1)
        x = rng.standard_normal((B, 10, 4))
        lengths = rng.integers(1, 11, size=B)
        y, _ = nblstm.lstm(x, params, lengths=lengths)
        y2, _, cache = nblstm.lstm_forward(x, params, lengths=lengths)
        g = nblstm.lstm_backward(cache, dy=np.ones_like(y2))
        return [y, y2, g.dx] + [a for layer in g.dparams for p in layer for a in p]

    if __name__ == "__main__":
        parent = {B: work(B) for B in (1, 8)}     # the parent's runtime has started
        layer = numba.threading_layer()
        for method in sys.argv[1:]:
            with multiprocessing.get_context(method).Pool(2) as pool:
                results = [pool.apply_async(work, (B,)) for B in (1, 8, 8)]
                got = [r.get(timeout=240) for r in results]
            for B, arrays in zip((1, 8, 8), got):
                assert all(np.array_equal(a, b) for a, b in zip(arrays, parent[B])), (method, B)
        print("layer", layer, "ok")
''')


# Each layer by name as well as numba's default: which one the default is depends on what the
# loader finds (tbb where libtbb.so.12 is on its path, else omp), and each must hold. The
# "slices" path's drivers under omp, the layer whose runtime kills a fork child.
@pytest.mark.parametrize("layer, path", [(layer, None) for layer in ("default", "omp", "workqueue", "tbb")]
                         + [("omp", "slices")])
def test_workers_with_every_start_method(tmp_path, layer, path):
    script = tmp_path / "fanout.py"
    script.write_text(SCRIPT)
    env = dict(os.environ)
    if layer != "default":
        env = require_layer(layer)
    env.pop("NBLSTM_TEST_PATH", None)
    if path is not None:
        env["NBLSTM_TEST_PATH"] = path
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT)] + [p for p in [env.get("PYTHONPATH")] if p])
    env["NUMBA_NUM_THREADS"] = "2"
    if layer != "default":
        env["NUMBA_THREADING_LAYER"] = layer
    try:
        proc = subprocess.run([sys.executable, str(script), "fork", "forkserver", "spawn"],
                              env=env, cwd=tmp_path, capture_output=True, text=True, timeout=400)
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"workers hung ({layer} layer): {exc.stderr!r}"[-3000:])
    assert proc.returncode == 0, f"{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    assert ("ok" if layer == "default" else f"layer {layer} ok") in proc.stdout, proc.stdout[-3000:]


FORK_DURING_CALLS = textwrap.dedent('''
    import multiprocessing
    import os
    import threading

    import numpy as np

    import nblstm
    from nblstm import cpu

    def train_until(stop, x, params):
        while not stop.is_set():
            y, _, cache = nblstm.lstm_forward(x, params)
            nblstm.lstm_backward(cache, dy=np.ones_like(y))
            nblstm.lstm(x, params)

    def square(i):
        return i * i

    rng = np.random.default_rng(0)
    # (path forced or None, B): B = 1 takes the lean path, B = 64 at H = 256 "blas" or "slices"
    for path, B in [(None, 1), (None, 64)] + [(path, 8 if path == "serial" else 64) for path in cpu.PATHS]:
        cpu.config.path = path
        x = rng.standard_normal((B, 30, 8))
        params = nblstm.init_params(8, 256, seed=0)
        nblstm.lstm(x, params)                           # compiled before the thread starts
        stop = threading.Event()
        worker = threading.Thread(target=train_until, args=(stop, x, params), daemon=True)
        worker.start()
        for _ in range(15):
            pid = os.fork()
            if pid == 0:
                os._exit(0)
            assert os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) == 0
        for _ in range(2):
            with multiprocessing.get_context("fork").Pool(2) as pool:
                assert pool.map(square, range(4)) == [0, 1, 4, 9]
        stop.set()
        worker.join()
        print("forked", path, B, cpu.plan._last_layer.__dict__)
    print("ok")
''')


# OpenBLAS's pre-fork handler waited forever for its threads while nblstm's thread, back from a
# BLAS call, waited for the GIL that os.fork holds ("blas" path, 3 of 3 runs). With MKL (where
# installed) and without it, on every path.
@pytest.mark.parametrize("mkl", ["1", "0"])
def test_fork_while_another_thread_runs(tmp_path, mkl):
    script = tmp_path / "fork_during_calls.py"
    script.write_text(FORK_DURING_CALLS)
    # OpenBLAS with one thread starts no workers, and the hang needs them: two, whatever CI sets
    env = dict(os.environ, NBLSTM_MKL=mkl, NUMBA_NUM_THREADS="2", OPENBLAS_NUM_THREADS="2")
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT)] + [p for p in [env.get("PYTHONPATH")] if p])
    try:
        proc = subprocess.run([sys.executable, str(script)], env=env, cwd=tmp_path,
                              capture_output=True, text=True, timeout=240)
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"a fork hung while another thread ran nblstm: {exc.stdout!r}"[-3000:])
    assert proc.returncode == 0, f"{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    assert proc.stdout.rstrip().endswith("ok"), proc.stdout[-3000:]


GATE = textwrap.dedent('''
    import os
    import threading
    import time

    from nblstm.cpu._fork import layers_in_flight as gate

    with gate:                       # a finalizer calling nblstm inside a layer passes through
        with gate:
            assert gate.in_flight() == 1
    assert gate.in_flight() == 0
    with gate:                       # a fork from inside a layer (a signal handler) does not wait for itself
        pid = os.fork()
        if pid == 0:
            with gate:
                pass
            os._exit(0 if gate.in_flight() == 1 else 3)
        assert os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) == 0
    entered = threading.Event()

    def layer():
        with gate:
            entered.set()
            time.sleep(0.3)

    worker = threading.Thread(target=layer)
    worker.start()
    entered.wait()
    start = time.perf_counter()
    pid = os.fork()                  # waits for the other thread's layer
    if pid == 0:
        os._exit(0 if gate.in_flight() == 0 else 4)
    waited = time.perf_counter() - start
    assert os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) == 0
    worker.join()
    assert waited > 0.2, waited
    print("ok")
''')


def test_the_fork_gate_waits_for_other_threads_only(tmp_path):
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT)] + [p for p in [env.get("PYTHONPATH")] if p])
    proc = subprocess.run([sys.executable, "-c", GATE], env=env, cwd=tmp_path, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stdout + proc.stderr[-3000:]
