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
