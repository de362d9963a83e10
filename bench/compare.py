#!/usr/bin/env python
"""Time nblstm against torch.nn.LSTM and the NumPy reference in one run.

    python bench/compare.py                 # the full grid of issue 4 (several minutes)
    python bench/compare.py --quick         # a smoke-test subset (< 2 minutes)
    python bench/compare.py --out /tmp/r    # write RESULTS.md and results.png elsewhere

Method
------
* Every implementation gets the same inputs and weights; before timing, each
  one's output (and dx in training) is checked against nblstm's.
* JIT compilation is outside the timed region: each callable runs once before
  timing, then once more to choose how many calls ``n`` make one sample
  (at least ``--min-sample`` seconds, as ``timeit`` does).
* Implementations are interleaved (A B C, B C A, C A B, ...) with a pause of
  ``--pause`` seconds before every sample, so the worker threads one library
  leaves spinning (OpenBLAS, OpenMP) have gone to sleep before another library
  runs (CONVENTIONS.md item 13). The reported time is the median sample;
  ratios come from medians of the same run.
* The isolation check times selected cases again with each implementation
  alone in a fresh process and reports interleaved / alone, to show the
  interleaved numbers are not distorted by the other libraries.
* The machine's own GEMM rate (``np.dot`` of two large square matrices) is
  measured in the same run; nblstm's achieved GFLOP/s is reported against it
  (2·steps·(I+H)·4H flops for a forward pass, 3× that for forward + backward).
* Peak memory and start-up time are measured in subprocesses: peak RSS from
  ``/proc/self/status`` (VmHWM, reset through ``/proc/self/clear_refs``), and
  the start-up of a fresh ``python`` with a warm and with an empty numba cache
  (``NUMBA_CACHE_DIR`` pointing at a new temporary directory).
"""
from __future__ import annotations

import argparse
import datetime as _dt
import gc
import json
import math
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_common as bc  # noqa: E402  (puts the repo root on sys.path too)

HERE = Path(__file__).resolve().parent
ROOT = bc.ROOT

TORCH_THREADS = 2


# --------------------------------------------------------------------------- timing

def calibrate(fn, min_sample):
    """Run once (compile / warm-up), then pick calls per sample so one sample >= min_sample."""
    t0 = time.perf_counter()
    fn()
    first = time.perf_counter() - t0
    t0 = time.perf_counter()
    fn()
    one = time.perf_counter() - t0
    n = 1 if one >= min_sample else min(100_000, math.ceil(min_sample / max(one, 1e-7)))
    return n, first


def time_interleaved(fns, repeats, pause, min_sample):
    """Median seconds per call of each callable, interleaved with rotation and pauses.

    Returns ``{name: {"median", "min", "max", "n", "first", "samples"}}``.
    """
    names = list(fns)
    calls, first = {}, {}
    for name in names:
        time.sleep(pause)
        calls[name], first[name] = calibrate(fns[name], min_sample)
    samples = {name: [] for name in names}
    for r in range(repeats):
        k = r % len(names)
        for name in names[k:] + names[:k]:
            fn, n = fns[name], calls[name]
            gc.collect()
            time.sleep(pause)
            gc.disable()
            try:
                t0 = time.perf_counter()
                for _ in range(n):
                    fn()
                dt = time.perf_counter() - t0
            finally:
                gc.enable()
            samples[name].append(dt / n)
    return {name: {"median": statistics.median(s), "min": min(s), "max": max(s),
                   "n": calls[name], "first": first[name], "samples": s}
            for name, s in samples.items()}


def run_case(case, impls, args, extra=None):
    """Time ``impls`` on ``case`` (plus ``extra``: {label: (case, impl)}) interleaved."""
    fns, outputs = {}, {}
    inputs = bc.make_inputs(case)
    for name in impls:
        fns[name], outputs[name] = bc.make_callable(name, case, inputs)
    for label, (other_case, name) in (extra or {}).items():
        fns[label], _ = bc.make_callable(name, other_case)
    # one call each, then the agreement check, before anything is timed
    for fn in fns.values():
        fn()
    problems = bc.check_agreement({n: outputs[n]() for n in impls}, case.dtype)
    for p in problems:
        print(f"  WARNING {case.label()}: {p}", flush=True)
    timings = time_interleaved(fns, args.repeats, args.pause, args.min_sample)
    return {"case": case._asdict(), "times": timings, "problems": problems}


def gemm_rate(dtype, n, repeats, pause):
    """GFLOP/s of np.dot on two n×n matrices (all BLAS threads), median of ``repeats``."""
    rng = np.random.default_rng(0)
    a = rng.standard_normal((n, n)).astype(dtype)
    b = rng.standard_normal((n, n)).astype(dtype)
    out = np.empty((n, n), dtype)
    np.dot(a, b, out=out)
    ts = []
    for _ in range(repeats):
        time.sleep(pause)
        t0 = time.perf_counter()
        np.dot(a, b, out=out)
        ts.append(time.perf_counter() - t0)
    return 2.0 * n ** 3 / statistics.median(ts) / 1e9


# --------------------------------------------------------------------------- subprocess probes

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


def worker_main(spec):
    """Isolation check: time one implementation alone in this fresh process."""
    case = bc.Case(*spec["case"])
    fn, _ = bc.make_callable(spec["impl"], case)
    r = time_interleaved({spec["impl"]: fn}, spec["repeats"], spec["pause"], spec["min_sample"])
    print(json.dumps({"median": r[spec["impl"]]["median"]}))


def isolation_check(results, cases, args):
    """Re-time each implementation of ``cases`` alone in its own process."""
    rows = []
    for case in cases:
        match = next(r for r in results if bc.Case(**r["case"]) == case)
        for impl, t in match["times"].items():
            spec = {"case": list(case), "impl": impl, "repeats": args.repeats,
                    "pause": args.pause, "min_sample": args.min_sample}
            cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", json.dumps(spec)]
            env = dict(os.environ)
            if impl == "torch":
                env["NBLSTM_BENCH_TORCH_THREADS"] = str(TORCH_THREADS)
            proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=900)
            if proc.returncode != 0:
                print(f"  isolation worker failed: {proc.stderr[-2000:]}", flush=True)
                continue
            alone = json.loads(proc.stdout.strip().splitlines()[-1])["median"]
            rows.append({"case": case._asdict(), "impl": impl, "interleaved": t["median"],
                         "alone": alone, "ratio": t["median"] / alone})
            print(f"  {case.label():55s} {impl:10s} interleaved {t['median'] * 1e3:9.3f} ms"
                  f"  alone {alone * 1e3:9.3f} ms  ratio {t['median'] / alone:5.2f}", flush=True)
    return rows


# --------------------------------------------------------------------------- environment

def _cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _mem_total():
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal"):
                    return f"{int(line.split()[1]) / 2 ** 20:.1f} GiB"
    except OSError:
        pass
    return "unknown"


def _git_commit():
    try:
        rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT,
                             capture_output=True, text=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "nblstm"], cwd=ROOT,
                               capture_output=True, text=True).stdout.strip()
        return rev + (" (nblstm/ has uncommitted changes)" if dirty else "")
    except OSError:
        return "unknown"


def environment(impls):
    import numba

    import nblstm

    info = {
        "date": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "command": " ".join([Path(sys.argv[0]).name] + sys.argv[1:]),
        "git": _git_commit(),
        "platform": platform.platform(),
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "memory": _mem_total(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "numba": numba.__version__,
        "nblstm": getattr(nblstm, "__version__", None) or _dist_version("nblstm"),
        "numba_threads": numba.get_num_threads(),
        "numba_threading_layer": _numba_layer(),
        "torch": None,
    }
    try:
        from nblstm import cpu

        info["nblstm_cpu_config"] = repr(cpu.config) if hasattr(cpu, "config") else None
    except Exception:  # noqa: BLE001  (informative only)
        info["nblstm_cpu_config"] = None
    if "torch" in impls:
        import torch

        info["torch"] = torch.__version__
        info["torch_threads"] = torch.get_num_threads()
        info["torch_interop_threads"] = torch.get_num_interop_threads()
        info["torch_mkldnn_available"] = torch.backends.mkldnn.is_available()
        info["torch_mkldnn_enabled"] = torch.backends.mkldnn.enabled
        info["torch_mkl_available"] = torch.backends.mkl.is_available()
    try:
        import threadpoolctl

        info["threadpools"] = [
            f"{p.get('internal_api')} {p.get('version')} ({Path(p.get('filepath', '')).name}): "
            f"{p.get('num_threads')} threads"
            for p in threadpoolctl.threadpool_info()]
    except ImportError:
        info["threadpools"] = ["threadpoolctl not installed"]
    return info


def _dist_version(name):
    try:
        from importlib.metadata import PackageNotFoundError, version

        return version(name)
    except PackageNotFoundError:
        return "not installed (imported from the source tree)"


def _numba_layer():
    try:
        import numba

        return numba.threading_layer()
    except ValueError:  # no parallel function has run yet
        return "not initialised"


# --------------------------------------------------------------------------- targets

def _median(result, impl):
    t = result["times"].get(impl)
    return None if t is None else t["median"]


def _find(results, case):
    for r in results:
        if bc.Case(**r["case"]) == case:
            return r
    return None


def evaluate_targets(res):
    """One row per target of issue 4: (target, measured, verdict, detail lines)."""
    rows = []
    grid = res["grid"]
    have_torch = "torch" in res["impls"]

    def ratio_target(title, points, dtypes, limit):
        worst, details, missing = None, [], 0
        for shape in points:
            for dtype in dtypes:
                for mode in bc.MODES:
                    r = _find(grid, bc.Case(*shape, dtype, mode))
                    if r is None or not have_torch:
                        missing += 1
                        continue
                    ratio = _median(r, "nblstm") / _median(r, "torch")
                    ok = ratio <= limit
                    details.append(f"{shape} {dtype} {mode}: {ratio:.2f} "
                                   f"{'PASS' if ok else f'MISS by {ratio / limit:.2f}x'}")
                    if worst is None or ratio > worst[0]:
                        worst = (ratio, f"{shape} {dtype} {mode}")
        if not have_torch:
            return rows.append((title, "torch not installed", "NOT MEASURED", []))
        if worst is None:
            return rows.append((title, "no point measured", "NOT MEASURED", []))
        verdict = "PASS" if worst[0] <= limit else "MISS"
        note = f" ({missing} of {missing + len(details)} points not run)" if missing else ""
        rows.append((title, f"worst {worst[0]:.2f} at {worst[1]}{note}",
                     verdict if not missing or verdict == "MISS" else f"{verdict} (partial)",
                     details))

    ratio_target("float32: nblstm/torch <= 1.0 on every grid point, inference and training",
                 bc.GRID, ["float32"], 1.0)
    ratio_target("float64: nblstm/torch <= 0.6 on every grid point", bc.GRID, ["float64"], 0.6)
    ratio_target("small points (1,100,32,128), (32,50,32,64): nblstm/torch <= 0.6, both dtypes",
                 bc.SMALL, bc.DTYPES, 0.6)

    # lengths uniform in [T/2, T] vs full length
    details, worst = [], None
    for r in res["lengths"]:
        full, part = r["times"].get("nblstm full"), r["times"].get("nblstm")
        if full is None or part is None:
            continue
        c = bc.Case(**r["case"])
        ratio = part["median"] / full["median"]
        steps = bc.lengths_for(c).sum() / (c.B * c.T)
        details.append(f"{c.shape} {c.dtype} {c.mode}: {ratio:.2f} (work fraction {steps:.2f})"
                       + ("" if ratio <= 0.8 else f" MISS by {ratio / 0.8:.2f}x"))
        if worst is None or ratio > worst[0]:
            worst = (ratio, f"{c.shape} {c.dtype} {c.mode}")
    rows.append(("lengths ~ U[T/2, T]: time <= 0.8 x full length",
                 "not run" if worst is None else f"worst {worst[0]:.2f} at {worst[1]}",
                 "NOT MEASURED" if worst is None else ("PASS" if worst[0] <= 0.8 else "MISS"),
                 details))

    # >= 20x faster than the reference
    details, worst = [], None
    for dtype in bc.DTYPES:
        for mode in bc.MODES:
            r = _find(grid, bc.Case(*bc.REFERENCE_POINT, dtype, mode))
            if r is None or "reference" not in r["times"]:
                continue
            speedup = _median(r, "reference") / _median(r, "nblstm")
            details.append(f"{dtype} {mode}: {speedup:.1f}x")
            if worst is None or speedup < worst[0]:
                worst = (speedup, f"{dtype} {mode}")
    rows.append((f"reference/nblstm >= 20 at {bc.REFERENCE_POINT}",
                 "not run" if worst is None else f"lowest {worst[0]:.1f}x ({worst[1]})",
                 "NOT MEASURED" if worst is None else ("PASS" if worst[0] >= 20 else "MISS"),
                 details))

    # start-up
    st = res.get("startup")
    if st:
        w = st["warm"]
        rows.append(("start-up, warm numba cache: import + first small lstm_forward + "
                     "lstm_backward < 1.5 s",
                     f"{w['wall']:.2f} s process wall (in-process {w['total']:.2f} s: import "
                     f"{w['import']:.2f}, forward {w['forward']:.2f}, backward {w['backward']:.2f})",
                     "PASS" if w["wall"] < 1.5 else "MISS", []))
        if "cold" in st:
            c = st["cold"]
            rows.append(("cold compile (empty numba cache; docs/compile-time.md refers to it)",
                         f"{c['wall']:.1f} s process wall (import {c['import']:.1f}, forward "
                         f"{c['forward']:.1f}, backward {c['backward']:.1f})", "INFO", []))
    else:
        rows.append(("start-up < 1.5 s with warm cache", "not run", "NOT MEASURED", []))

    # memory
    mem = res.get("memory")
    if mem:
        m = mem["lstm"]
        xy = m["x_bytes"] + m["y_bytes"]
        ratio = m["footprint"] / xy
        rows.append((f"memory: lstm at (B,T,I,H)={m['shape']} {m['dtype']} close to x + y "
                     "(<= 1.1x)",
                     f"{m['footprint'] / 2 ** 20:.0f} MiB = {ratio:.2f} x (x + y = "
                     f"{xy / 2 ** 20:.0f} MiB)", "PASS" if ratio <= 1.1 else "MISS", []))
        f = mem["lstm_forward"]
        ideal = f["ideal_cache_bytes"]
        kept = f["cache_extra_bytes"]
        ideal_peak = f["x_bytes"] + f["y_bytes"] + ideal
        rows.append(("memory: lstm_forward keeps only what backward needs "
                     "(cache beyond the caller's x, y <= 1.1 x (4 gates + c + a copy of x) per step)",
                     f"cache {kept / 2 ** 20:.0f} MiB vs {ideal / 2 ** 20:.0f} MiB "
                     f"({kept / ideal:.2f}x); peak {f['footprint'] / 2 ** 20:.0f} MiB vs "
                     f"x + y + cache = {ideal_peak / 2 ** 20:.0f} MiB "
                     f"({f['footprint'] / ideal_peak:.2f}x)",
                     "PASS" if kept <= 1.1 * ideal else "MISS", []))
    else:
        rows.append(("memory: lstm close to x + y", "not run", "NOT MEASURED", []))

    # linear in T (informative)
    per_step = []
    for r in res["t_sweep"]:
        c = bc.Case(**r["case"])
        if c.mode == "inference" and c.dtype == "float32":
            per_step.append((c.T, _median(r, "nblstm") / c.T))
    if len(per_step) >= 2:
        per_step.sort()
        spread = max(p for _, p in per_step[1:]) / min(p for _, p in per_step[1:])
        rows.append(("cost linear in T at (32, T, 32, 64) (float32 inference; per-step time)",
                     ", ".join(f"T={t}: {p * 1e6:.1f} us" for t, p in per_step)
                     + f"; max/min per step for T>={per_step[1][0]}: {spread:.2f}",
                     "INFO", []))
    return rows


# --------------------------------------------------------------------------- output

NOISY = 1.5  # median / fastest sample above this marks a time as noisy


def fmt_ms(t):
    return "—" if t is None else (f"{t * 1e3:.3f}" if t < 0.1 else f"{t * 1e3:.1f}")


def fmt_time(result, impl):
    """Median in ms, with '*' when the samples spread widely (median > NOISY x fastest)."""
    t = result["times"].get(impl)
    if t is None:
        return "—"
    return fmt_ms(t["median"]) + ("*" if t["median"] > NOISY * t["min"] else "")


def table_rows(results, impls, rates, extra_cols=()):
    rows = []
    for r in results:
        c = bc.Case(**r["case"])
        nb = _median(r, "nblstm")
        row = [f"({c.B}, {c.T}, {c.I}, {c.H})" + (" lengths" if c.lengths else ""),
               c.dtype, c.mode]
        row += [fmt_time(r, i) for i in impls]
        for label in extra_cols:
            row.append(fmt_time(r, label))
        tt, rr = _median(r, "torch"), _median(r, "reference")
        row.append("—" if nb is None or tt is None else f"{nb / tt:.2f}")
        row.append("—" if nb is None or rr is None else f"{nb / rr:.3f}")
        if nb is not None:
            g = bc.flops(c) / nb / 1e9
            row.append(f"{g:.1f} ({100 * g / rates[c.dtype]:.0f}%)")
        else:
            row.append("—")
        rows.append(row)
    header = (["(B, T, I, H)", "dtype", "mode"] + [f"{i} ms" for i in impls]
              + [f"{e} ms" for e in extra_cols]
              + ["nblstm/torch", "nblstm/reference", "nblstm GFLOP/s (% of GEMM)"])
    return header, rows


def print_table(title, header, rows):
    print(f"\n{title}")
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows)]
    print("  ".join(h.ljust(w) for h, w in zip(header, widths)))
    for row in rows:
        print("  ".join(str(x).ljust(w) for x, w in zip(row, widths)))


def md_table(header, rows):
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(x) for x in row) + " |" for row in rows]
    return "\n".join(lines)


def write_markdown(path, res, env, targets, sections, plot_name, notes):
    out = ["# nblstm CPU benchmark results", "",
           f"Generated by `python bench/{env['command']}` on {env['date']} "
           f"(nblstm at {env['git']}). Times are medians of {res['repeats']} interleaved "
           f"samples with a {res['pause']} s pause before each; ratios are of medians "
           "from this run. Lower is better for every ratio except reference/nblstm. "
           f"A time marked * had its median above {NOISY} x its fastest sample: the machine "
           "was disturbed during that case.", ""]
    if res.get("busy"):
        out += [f"**WARNING: {res['busy']}**", ""]
    if res["quick"]:
        out += ["**--quick run: a subset of the grid, for smoke testing. Targets marked "
                "(partial) or NOT MEASURED need the full run.**", ""]
    out += ["## Targets (issue 4)", "", "| target | measured | verdict |", "|---|---|---|"]
    for title, measured, verdict, _ in targets:
        out.append(f"| {title} | {measured} | **{verdict}** |")
    out.append("")
    for title, _, verdict, details in targets:
        if details:
            out += [f"<details><summary>{title}</summary>", ""]
            out += [f"- {d}" for d in details]
            out += ["", "</details>", ""]
    out += ["## Machine", ""]
    keys = ["platform", "cpu", "cores", "memory", "python", "numpy", "numba", "nblstm",
            "numba_threads", "numba_threading_layer", "nblstm_cpu_config", "torch",
            "torch_threads", "torch_interop_threads", "torch_mkldnn_available",
            "torch_mkldnn_enabled", "torch_mkl_available"]
    for k in keys:
        if k in env and env[k] is not None:
            out.append(f"- {k}: `{env[k]}`")
    if env.get("torch") is None:
        out.append("- torch: **not installed — ratios against torch were not measured**")
    out.append("- thread pools (threadpoolctl): " + "; ".join(env["threadpools"]))
    out.append(f"- load average before / after: {res['load_before']} / {res['load_after']}")
    out.append(f"- GEMM rate (np.dot, {res['gemm_n']}×{res['gemm_n']}, all BLAS threads): "
               + ", ".join(f"{k} {v:.1f} GFLOP/s" for k, v in res["rates"].items()))
    out.append("")
    for title, header, rows in sections:
        out += [f"## {title}", "", md_table(header, rows), ""]
    if res.get("isolation"):
        out += ["## Isolation check (interleaved vs. alone in a fresh process)", "",
                "A ratio near 1 means interleaving the libraries did not distort the "
                "timings; the machine is shared, so a few percent either way is noise.", ""]
        rows = [[bc.Case(**r["case"]).label(), r["impl"], fmt_ms(r["interleaved"]),
                 fmt_ms(r["alone"]), f"{r['ratio']:.2f}"] for r in res["isolation"]]
        out += [md_table(["case", "impl", "interleaved ms", "alone ms", "ratio"], rows), ""]
    if res.get("memory"):
        out += ["## Peak memory", "",
                "Peak RSS of a fresh process during one call (VmHWM reset before the call), "
                "minus the RSS before it, plus x itself (already resident).", ""]
        rows = []
        for fn, m in res["memory"].items():
            rows.append([fn, str(m["shape"]), m["dtype"], f"{m['x_bytes'] / 2 ** 20:.0f}",
                         f"{m['y_bytes'] / 2 ** 20:.0f}",
                         f"{m['cache_extra_bytes'] / 2 ** 20:.0f}",
                         f"{m['footprint'] / 2 ** 20:.0f}",
                         f"{m['footprint'] / (m['x_bytes'] + m['y_bytes']):.2f}",
                         f"{m['seconds']:.2f}"])
        out += [md_table(["function", "(B, T, I, H)", "dtype", "x MiB", "y MiB",
                          "cache beyond x, y MiB", "footprint MiB", "footprint / (x + y)",
                          "seconds"], rows), ""]
    if res.get("startup"):
        st = res["startup"]
        out += ["## Start-up", "",
                "Fresh `python -c` running `import nblstm` + a first (4, 10, 8)→16 "
                "`lstm_forward` + `lstm_backward` (float64), with `NUMBA_CACHE_DIR` set to a new "
                "temporary directory: the first process compiles (cold), the next ones load "
                "the cache (warm; median of "
                f"{len(st['warm_all'])}: {', '.join(f'{w:.2f}' for w in st['warm_all'])} s).", ""]
        rows = [[k, f"{v['wall']:.2f}", f"{v['import']:.2f}", f"{v['forward']:.2f}",
                 f"{v['backward']:.2f}"] for k, v in st.items() if k in ("cold", "warm")]
        out += [md_table(["cache", "process wall s", "import s", "first forward s",
                          "first backward s"], rows), ""]
    if plot_name:
        out += ["## Plot", "", f"![time vs. hidden size, batch size and T]({plot_name})", ""]
    if notes:
        out += ["## Analysis", "", notes.strip(), ""]
    Path(path).write_text("\n".join(out))


def plot(path, res):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [("h_sweep", "H", "hidden size H at (B, T, I) = (32, 50, 32)"),
              ("b_sweep", "B", "batch size B at (T, I, H) = (50, 32, 128)"),
              ("t_sweep", "T", "sequence length T at (B, I, H) = (32, 32, 64)")]
    panels = [p for p in panels if res.get(p[0])]
    if not panels:
        return None
    fig, axes = plt.subplots(1, len(panels), figsize=(5.5 * len(panels), 4.5), squeeze=False)
    styles = {"nblstm": "-", "torch": "--", "reference": ":"}
    colors = {("float32", "inference"): "C0", ("float32", "training"): "C1",
              ("float64", "inference"): "C2", ("float64", "training"): "C3"}
    for ax, (key, var, title) in zip(axes[0], panels):
        series = {}
        for r in res[key]:
            c = bc.Case(**r["case"])
            for impl, t in r["times"].items():
                series.setdefault((impl, c.dtype, c.mode), []).append((getattr(c, var), t["median"]))
        for (impl, dtype, mode), pts in sorted(series.items()):
            pts.sort()
            ax.plot([p[0] for p in pts], [p[1] * 1e3 for p in pts], styles.get(impl, "-"),
                    marker="o", ms=3, color=colors[(dtype, mode)],
                    label=f"{impl} {dtype} {mode}")
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel(var)
        ax.set_ylabel("time per call (ms)")
        ax.set_title(title, fontsize=10)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return Path(path).name


# --------------------------------------------------------------------------- main

SECTIONS = ["grid", "sweeps", "lengths", "isolation", "memory", "startup"]


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true",
                   help="a small subset with few repeats, for smoke testing (< 2 minutes)")
    p.add_argument("--repeats", type=int, default=None,
                   help="interleaved samples per implementation (default 7; 3 with --quick)")
    p.add_argument("--pause", type=float, default=0.3,
                   help="seconds to sleep before every sample (default 0.3)")
    p.add_argument("--min-sample", type=float, default=None,
                   help="minimum seconds per sample (default 0.05; 0.02 with --quick)")
    p.add_argument("--out", type=Path, default=HERE,
                   help="directory for RESULTS.md and results.png (default bench/)")
    p.add_argument("--impls", default=",".join(bc.IMPLEMENTATIONS),
                   help="comma-separated implementations (default: all available)")
    p.add_argument("--skip", default="",
                   help=f"comma-separated sections to skip, of: {','.join(SECTIONS)}")
    p.add_argument("--notes", type=Path, default=HERE / "notes.md",
                   help="markdown appended to RESULTS.md as 'Analysis' if it exists")
    p.add_argument("--worker", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.repeats is None:
        args.repeats = 3 if args.quick else 7
    if args.min_sample is None:
        args.min_sample = 0.02 if args.quick else 0.05
    args.skip = {s for s in args.skip.split(",") if s}
    unknown = args.skip - set(SECTIONS)
    if unknown:
        p.error(f"unknown sections {sorted(unknown)}; choose from {SECTIONS}")
    return args


def main(argv=None):
    args = parse_args(argv)
    if args.worker:
        _set_torch_threads()
        return worker_main(json.loads(args.worker))

    wanted = [s for s in args.impls.split(",") if s]
    bad = set(wanted) - set(bc.IMPLEMENTATIONS)
    if bad:
        sys.exit(f"unknown implementations {sorted(bad)}; choose from {bc.IMPLEMENTATIONS}")
    impls = bc.available_implementations(wanted)
    if "torch" in wanted and "torch" not in impls:
        print("torch is not installed: timing nblstm and the reference only; "
              "ratios against torch are NOT MEASURED.", flush=True)
    if "torch" in impls:
        _set_torch_threads()
    import nblstm  # noqa: F401  (fail early with a clear error)

    t_start = time.perf_counter()
    busy = _busy()
    if busy:
        print(f"WARNING: {busy}", flush=True)
    res = {"busy": busy, "impls": impls, "repeats": args.repeats, "pause": args.pause, "quick": args.quick,
           "load_before": _load(), "grid": [], "t_sweep": [], "h_sweep": [], "b_sweep": [],
           "lengths": []}
    q = args.quick

    res["gemm_n"] = 1024 if q else 2048
    res["rates"] = {d: gemm_rate(d, res["gemm_n"], 3 if q else 5, args.pause)
                    for d in bc.DTYPES}
    print("GEMM rate: " + ", ".join(f"{k} {v:.1f} GFLOP/s" for k, v in res["rates"].items()),
          flush=True)

    def run_all(key, cases, case_impls):
        for case in cases:
            r = run_case(case, case_impls, args)
            res[key].append(r)
            times = "  ".join(f"{n} {fmt_ms(t['median'])} ms" for n, t in r["times"].items())
            print(f"  {case.label():60s} {times}", flush=True)

    fast = [i for i in impls if i != "reference"]
    if "grid" not in args.skip:
        print("\nGrid", flush=True)
        points = bc.SMALL if q else bc.GRID
        run_all("grid", [bc.Case(*s, d, m) for s in points for d in bc.DTYPES
                         for m in bc.MODES], impls)
    if "sweeps" not in args.skip:
        modes = ["inference"] if q else bc.MODES
        ts = [10, 100, 300] if q else bc.T_SWEEP
        hs = [32, 128, 256] if q else bc.H_SWEEP
        bs = [1, 16, 64] if q else bc.B_SWEEP
        dts = ["float32"] if q else bc.DTYPES
        print("\nT sweep", flush=True)
        run_all("t_sweep", [bc.Case(32, t, 32, 64, d, m) for d in dts for m in modes
                            for t in ts], fast)
        print("\nH sweep", flush=True)
        run_all("h_sweep", [bc.Case(32, 50, 32, h, "float32", m) for m in modes for h in hs],
                fast)
        print("\nB sweep", flush=True)
        run_all("b_sweep", [bc.Case(b, 50, 32, 128, "float32", m) for m in modes for b in bs],
                fast)
    if "lengths" not in args.skip:
        print("\nLengths uniform in [T/2, T] (nblstm full = same batch at full length)",
              flush=True)
        points = bc.LENGTHS_POINTS[:1] if q else bc.LENGTHS_POINTS
        dts = ["float32"] if q else bc.DTYPES
        for s in points:
            for d in dts:
                for m in bc.MODES:
                    case = bc.Case(*s, d, m, lengths=True)
                    extra = {"nblstm full": (case._replace(lengths=False), "nblstm")}
                    if "torch" in fast:
                        extra["torch full"] = (case._replace(lengths=False), "torch")
                    r = run_case(case, fast, args, extra)
                    res["lengths"].append(r)
                    times = "  ".join(f"{n} {fmt_ms(t['median'])} ms"
                                      for n, t in r["times"].items())
                    print(f"  {case.label():60s} {times}", flush=True)
    if "isolation" not in args.skip and res["grid"]:
        print("\nIsolation check: interleaved vs. alone in a fresh process", flush=True)
        # the trap shows where calls are short: every small case, one larger one
        cases = ([bc.Case(*bc.SMALL[1], "float32", "inference")] if q else
                 [bc.Case(*s, d, m) for s in bc.SMALL for d in bc.DTYPES for m in bc.MODES]
                 + [bc.Case(*bc.GRID[2], "float32", m) for m in bc.MODES])
        res["isolation"] = isolation_check(res["grid"], cases, args)
    if "memory" not in args.skip:
        T = 5_000 if q else 100_000
        print(f"\nPeak memory at (B, T, I, H) = (8, {T}, 32, 64) float32", flush=True)
        res["memory"] = memory_probe(T)
        for fn, m in res["memory"].items():
            print(f"  {fn:13s} footprint {m['footprint'] / 2 ** 20:8.1f} MiB, x + y "
                  f"{(m['x_bytes'] + m['y_bytes']) / 2 ** 20:8.1f} MiB, cache beyond x, y "
                  f"{m['cache_extra_bytes'] / 2 ** 20:8.1f} MiB, {m['seconds']:.2f} s", flush=True)
    if "startup" not in args.skip:
        print("\nStart-up (fresh process; cold = empty numba cache)", flush=True)
        res["startup"] = startup_probe(warm_runs=2 if q else 5)
        for k in ("cold", "warm"):
            if k in res["startup"]:
                v = res["startup"][k]
                print(f"  {k}: {v['wall']:.2f} s wall (import {v['import']:.2f}, forward "
                      f"{v['forward']:.2f}, backward {v['backward']:.2f})", flush=True)
    res["load_after"] = _load()

    env = environment(impls)
    rates = res["rates"]
    sections = []
    for key, title in (("grid", "Grid"), ("t_sweep", "T sweep at (32, T, 32, 64)"),
                       ("h_sweep", "H sweep at (32, 50, 32, H)"),
                       ("b_sweep", "B sweep at (B, 50, 32, 128)")):
        if res[key]:
            header, rows = table_rows(res[key], impls if key == "grid" else fast, rates)
            sections.append((title, header, rows))
    if res["lengths"]:
        extra = ["nblstm full"] + (["torch full"] if "torch" in fast else [])
        header, rows = table_rows(res["lengths"], fast, rates, extra)
        header = header[:3] + [h.replace("nblstm ms", "nblstm lengths ms")
                               .replace("torch ms", "torch packed ms") for h in header[3:]]
        for row, r in zip(rows, res["lengths"]):
            row.insert(3 + len(fast) + len(extra),
                       f"{_median(r, 'nblstm') / _median(r, 'nblstm full'):.2f}")
        header.insert(3 + len(fast) + len(extra), "lengths/full")
        sections.append(("Lengths uniform in [T/2, T]", header, rows))
    for title, header, rows in sections:
        print_table(title, header, rows)

    targets = evaluate_targets(res)
    print("\nTargets")
    for title, measured, verdict, _ in targets:
        print(f"  [{verdict}] {title}: {measured}")

    args.out.mkdir(parents=True, exist_ok=True)
    plot_name = plot(args.out / "results.png", res)
    notes = args.notes.read_text() if args.notes and args.notes.exists() else None
    write_markdown(args.out / "RESULTS.md", res, env, targets, sections, plot_name, notes)
    (args.out / "results.json").write_text(json.dumps({"env": env, **res}, default=str,
                                                      indent=1))
    print(f"\nwrote {args.out / 'RESULTS.md'}"
          + (f", {args.out / plot_name}" if plot_name else "")
          + f" in {time.perf_counter() - t_start:.0f} s")


def _set_torch_threads():
    try:
        import torch
    except ImportError:
        return
    torch.set_num_threads(int(os.environ.get("NBLSTM_BENCH_TORCH_THREADS", TORCH_THREADS)))


def _busy():
    """A warning if other processes already keep the cores busy (timings then mean little)."""
    try:
        load = os.getloadavg()[0]
    except OSError:
        return None
    cores = os.cpu_count() or 1
    if load > 0.5 * cores:
        return (f"the machine was busy before this run started (1-minute load average "
                f"{load:.2f} on {cores} cores): timings are inflated and noisy; rerun on an "
                "idle machine before drawing conclusions")
    return None


def _load():
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "unknown"


if __name__ == "__main__":
    main()
