"""Concurrent Python threads, and bitwise reproducibility across runs and NUMBA_NUM_THREADS.

Each check runs in a subprocess: NUMBA_NUM_THREADS must be set before numba is
imported, and a threading layer that is not thread-safe aborts the whole
process, which must fail one test rather than the test run.
"""
import os
import pathlib
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import nblstm
import nblstm.cpu  # noqa: F401 - nblstm.cpu.PATHS below; the package does not import it

from _helpers import require_layer

ROOT = pathlib.Path(nblstm.__file__).resolve().parent.parent

WORKER = textwrap.dedent('''
    import sys
    import threading

    import numpy as np

    import nblstm
    import nblstm.cpu

    def problems():
        """(name, B, T, I, H, dtype, lengths, reverse).

        Narrow batches (B = 1, 2) are tiled over hidden units when the tiles
        path is forced, differently for 1 and 2 threads. With the automatic
        choice and the threshold set in main(), "one_row_wide" and the "blas"
        problems take BLAS, "two_rows_wide" the serial loop and the others
        parallel tiles.
        """
        yield "f64", 7, 9, 5, 20, np.float64, None, False
        yield "f64_lengths_reverse", 7, 9, 5, 20, np.float64, [9, 0, 4, 9, 1, 8, 3], True
        yield "f32_lengths", 5, 6, 3, 17, np.float32, [2, 6, 0, 6, 5], False
        yield "one_row_wide", 1, 5, 4, 40, np.float64, None, False
        yield "two_rows_wide", 2, 4, 3, 40, np.float64, [4, 3], True
        yield "blas", 6, 5, 4, 24, np.float64, [5, 1, 5, 0, 3, 2], False
        yield "blas_f32", 6, 5, 4, 24, np.float32, None, True

    def run(name, B, T, I, H, dtype, lengths, reverse):
        rng = np.random.default_rng([ord(ch) for ch in name])
        params = nblstm.init_params(I, H, dtype=dtype, seed=rng)
        x = rng.standard_normal((B, T, I)).astype(dtype)
        h0 = rng.standard_normal((B, H)).astype(dtype)
        c0 = rng.standard_normal((B, H)).astype(dtype)
        dy = rng.standard_normal((B, T, H)).astype(dtype)
        dh, dc = rng.standard_normal((2, B, H)).astype(dtype)
        y, (h, c), cache = nblstm.lstm_forward(x, params, h0, c0, lengths=lengths, reverse=reverse)
        y2, (h2, c2) = nblstm.lstm(x, params, h0, c0, lengths=lengths, reverse=reverse)
        g = nblstm.lstm_backward(cache, dy, dh, dc)
        out = dict(y=y, h=h, c=c, y_inf=y2, h_inf=h2, c_inf=c2, dx=g.dx, dh0=g.dh0, dc0=g.dc0)
        out.update({"d" + k: v for k, v in g.dparams._asdict().items()})
        return {f"{name}/{k}": v for k, v in out.items()}

    def run_all(order=None):
        probs = list(problems())
        if order is not None:
            probs = [probs[i % len(probs)] for i in order]
        out = {}
        for prob in probs:
            out.update(run(*prob))
        return out

    def run_paths():
        """Every problem with each path forced (training included), then chosen by size."""
        out = {}
        for path in nblstm.cpu.PATHS:
            nblstm.cpu.config.path = path
            out.update({f"{path}:{k}": v for k, v in run_all().items()})
        nblstm.cpu.config.path = None
        out.update(run_all())
        return out

    def main(threads_check, prefix):
        # one threshold for the whole process (the threads share the config): the "blas"
        # problems (B*H*4H = 13824) take per-step BLAS, the others (at most 12800) do not
        nblstm.cpu.config.blas_min_work = 6 * 24 * 4 * 24
        serial = run_paths()
        again = run_paths()
        report = [f"not repeatable within one process: {k}" for k in serial
                  if not np.array_equal(serial[k], again[k])]
        np.savez(prefix + ".npz", **serial)
        if threads_check:   # several Python threads at once, each in a different order
            n_threads, rounds, n_problems = 4, 3, len(list(problems()))
            barrier = threading.Barrier(n_threads)

            def worker(k):
                try:
                    barrier.wait()
                    for _ in range(rounds):
                        got = run_all(order=range(k, k + n_problems))
                        report.extend(f"thread {k}: {key} differs from the serial run"
                                      for key, value in got.items() if not np.array_equal(value, serial[key]))
                except BaseException as exc:  # noqa: BLE001 - reported to the parent
                    report.append(f"thread {k}: {type(exc).__name__}: {exc}")

            threads = [threading.Thread(target=worker, args=(k,)) for k in range(n_threads)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
        import numba
        report.append(f"numba_threads={numba.get_num_threads()}")
        report.append(f"layer={numba.threading_layer()}")
        with open(prefix + ".txt", "w") as f:
            f.write("\\n".join(report))

    if __name__ == "__main__":
        main(sys.argv[1] == "threads", sys.argv[2])
''')


def _run_worker(tmp_path, mode, name, threads, layer=None, env=None):
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    env = dict(os.environ if env is None else env)
    env["NUMBA_NUM_THREADS"] = str(threads)
    if layer is not None:
        env["NUMBA_THREADING_LAYER"] = layer
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT)] + [p for p in [env.get("PYTHONPATH")] if p])
    prefix = tmp_path / name
    proc = subprocess.run([sys.executable, "-W", "error::RuntimeWarning", str(script), mode, str(prefix)],
                          env=env, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, (f"worker ({mode}, NUMBA_NUM_THREADS={threads}) exited with "
                                  f"{proc.returncode}:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    report = pathlib.Path(str(prefix) + ".txt").read_text()
    return np.load(str(prefix) + ".npz"), [line for line in report.splitlines() if line]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """One process with 1 numba thread, one with 2 that also runs 4 Python threads at once."""
    tmp_path = tmp_path_factory.mktemp("threads")
    return {"t1": _run_worker(tmp_path, "serial", "t1", 1),
            "t2": _run_worker(tmp_path, "threads", "t2", 2)}


@pytest.mark.slow
def test_repeatable_within_a_process(runs):
    assert "numba_threads=1" in runs["t1"][1] and "numba_threads=2" in runs["t2"][1]
    for name, (_, report) in runs.items():
        assert not [line for line in report if line.startswith("not repeatable")], name


@pytest.mark.slow
def test_bitwise_identical_across_thread_counts(runs):
    t1, t2 = runs["t1"][0], runs["t2"][0]
    keys = set(t1.files)
    assert len(keys) == 7 * 12 * (1 + len(nblstm.cpu.PATHS)) and set(t2.files) == keys
    mismatches = [k for k in sorted(keys) if not np.array_equal(t1[k], t2[k])]
    assert not mismatches, "NUMBA_NUM_THREADS=1 and 2 differ in:\n" + "\n".join(mismatches)
    assert np.abs(t1["f64/dW_hh"]).max() > 0 and np.abs(t1["blas/dx"]).max() > 0
    assert np.abs(t1["tiles:f64/dW_hh"]).max() > 0 and np.abs(t1["serial:two_rows_wide/dx"]).max() > 0


@pytest.mark.slow
def test_concurrent_python_threads(runs):
    report = [line for line in runs["t2"][1] if line.startswith("thread ")]
    assert not report, "\n".join(report[:20])


@pytest.mark.parametrize("layer", ["omp", "workqueue", "tbb"])
@pytest.mark.slow
def test_concurrent_python_threads_under_a_chosen_layer(tmp_path, runs, layer):
    """workqueue aborts a process with two threads in parallel regions at once (issue 12).

    numba's default layer is tbb where the loader finds libtbb.so.12, else omp,
    and workqueue where neither loads, so the fixture's default run covers only
    one of them; under each, 4 Python threads must get the serial run's
    results, bitwise.
    """
    env = require_layer(layer)
    results, report = _run_worker(tmp_path, "threads", layer, 2, layer=layer, env=env)
    assert "numba_threads=2" in report and f"layer={layer}" in report, report[-5:]
    threads = [line for line in report if line.startswith(("thread ", "not repeatable"))]
    assert not threads, "\n".join(threads[:20])
    serial = runs["t1"][0]
    mismatches = [k for k in serial.files if not np.array_equal(results[k], serial[k])]
    assert not mismatches, f"{layer} differs from NUMBA_NUM_THREADS=1 in:\n" + "\n".join(mismatches)
