"""Measurements that need a fresh interpreter: peak memory and start-up time.

Each probe runs a small program in a new ``python`` (repo root on
``PYTHONPATH``, so the checkout's nblstm is imported) and reads one JSON line
back from it.

* Peak memory: ``/proc/self/status`` VmHWM, reset through ``/proc/self/clear_refs``
  before the call, minus the RSS before it, plus x itself.
* Start-up: ``import nblstm`` + a first small ``lstm_forward`` + ``lstm_backward``
  with an empty numba cache (cold; ``NUMBA_CACHE_DIR`` set to a new temporary
  directory) and then with that cache filled (warm).
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time

import numpy as np
from harness import ROOT


def _python(code, env=None, timeout=900):
    """Run ``code`` in a fresh interpreter from the repo root; (wall seconds, stdout JSON)."""
    full_env = dict(os.environ)
    full_env["PYTHONPATH"] = os.pathsep.join(
        [str(ROOT)] + ([full_env["PYTHONPATH"]] if full_env.get("PYTHONPATH") else []))
    full_env.update(env or {})
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=full_env,
                          capture_output=True, text=True, timeout=timeout)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"subprocess failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    last = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    return wall, (json.loads(last[-1]) if last else None)


STARTUP_CODE = textwrap.dedent("""
    import time
    t0 = time.perf_counter()
    import json
    import numpy as np
    import nblstm
    t1 = time.perf_counter()
    p = nblstm.init_params(8, 16, seed=0)
    x = np.random.default_rng(0).standard_normal((4, 10, 8))
    y, state, cache = nblstm.lstm_forward(x, p)
    t2 = time.perf_counter()
    g = nblstm.lstm_backward(cache, np.ones_like(y))
    t3 = time.perf_counter()
    print(json.dumps({"import": t1 - t0, "forward": t2 - t1, "backward": t3 - t2,
                      "total": t3 - t0}))
""")


def startup_probe(warm_runs, cold=True):
    """Fresh-process start-up with an empty numba cache (cold) and then warm."""
    out = {}
    cache_dir = tempfile.mkdtemp(prefix="nblstm-numba-cache-")
    try:
        env = {"NUMBA_CACHE_DIR": cache_dir}
        if cold:
            wall, inner = _python(STARTUP_CODE, env)
            out["cold"] = {"wall": wall, **inner}
        else:  # still need a populated cache for the warm runs
            _python(STARTUP_CODE, env)
        runs = []
        for _ in range(warm_runs):
            time.sleep(0.3)
            wall, inner = _python(STARTUP_CODE, env)
            runs.append({"wall": wall, **inner})
        runs.sort(key=lambda r: r["wall"])
        out["warm"] = runs[len(runs) // 2]
        out["warm_all"] = [r["wall"] for r in runs]
    finally:
        shutil.rmtree(cache_dir, ignore_errors=True)
    return out


MEMORY_CODE = textwrap.dedent("""
    import gc, json, sys, time
    import numpy as np
    import nblstm
    B, T, I, H, dtype, fn = {args!r}

    def status(key):
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1]) * 1024
        return None

    def reset_peak():
        try:
            with open("/proc/self/clear_refs", "w") as f:
                f.write("5")
            return True
        except OSError:
            return False

    def array_bytes(tree, exclude):
        # bytes of the arrays in the tree (nblstm._tree) that share no memory with `exclude`,
        # each base array counted once
        seen = set()
        total = 0
        for _, a in nblstm._tree.leaves(tree):
            if not isinstance(a, np.ndarray) or any(np.shares_memory(a, e) for e in exclude):
                continue
            base = a
            while isinstance(base.base, np.ndarray):
                base = base.base
            if id(base) not in seen:
                seen.add(id(base))
                total += base.nbytes
        return total

    p = nblstm.init_params(I, H, dtype=dtype, seed=1)
    small = np.zeros((2, 3, I), dtype)
    nblstm.lstm(small, p)                                    # compile outside the measurement
    nblstm.lstm_backward(nblstm.lstm_forward(small, p)[2], np.ones((2, 3, H), dtype))
    x = np.random.default_rng(0).standard_normal((B, T, I)).astype(dtype)
    gc.collect()
    base = status("VmRSS")
    exact = reset_peak()
    t0 = time.perf_counter()
    if fn == "lstm":
        y, (h, c) = nblstm.lstm(x, p)
        kept = 0
    else:
        y, (h, c), cache = nblstm.lstm_forward(x, p)
        kept = array_bytes(cache, [x, y])
    seconds = time.perf_counter() - t0
    peak = status("VmHWM")
    if not exact:  # peak of the whole process; an upper bound
        import resource
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(json.dumps({{"base_rss": base, "peak_rss": peak, "after_rss": status("VmRSS"),
                      "x_bytes": x.nbytes, "y_bytes": y.nbytes, "cache_extra_bytes": kept,
                      "exact_peak": exact, "seconds": seconds}}))
""")


def memory_probe(T, B=8, I=32, H=64, dtype="float32"):
    res = {}
    for fn in ("lstm", "lstm_forward"):
        _, r = _python(MEMORY_CODE.format(args=(B, T, I, H, dtype, fn)))
        itemsize = np.dtype(dtype).itemsize
        r["shape"] = (B, T, I, H)
        r["dtype"] = dtype
        # what backward needs beyond the caller's x and y: four gate activations and c_t
        # per step, plus a private copy of x (the cache must not see later changes to x)
        r["ideal_cache_bytes"] = (5 * H + I) * B * T * itemsize
        # memory the call uses on top of what existed before it, plus x itself
        r["footprint"] = r["peak_rss"] - r["base_rss"] + r["x_bytes"]
        res[fn] = r
    return res


