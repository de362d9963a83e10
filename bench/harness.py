"""The measuring harness of ``compare.py``: timing, competing load, environment, report files.

Nothing here knows about LSTMs; the cases live in ``bench_common.py`` and the
sections of the run in ``compare.py``.

Timing (CONVENTIONS.md item 13)
-------------------------------
Each callable runs in *blocks* of back-to-back calls; the blocks of the
callables alternate, in rotating order, with a pause before every block. Two
figures come out of one run:

* the **steady state**: the median of every call after the first of its block
  (what a training or inference loop sees);
* the **after-idle** cost: the median of the first calls of the blocks, which
  pay for waking the thread pools the pause put to sleep.

Every call is kept, so a caller can also ask how far the slowest call strayed
from its own median (the load column).
"""
from __future__ import annotations

import contextlib
import datetime as _dt
import gc
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import NamedTuple

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent


# --------------------------------------------------------------------------- timing

class Timing(NamedTuple):
    """Seconds per call of one callable, from :func:`time_blocks`."""
    steady: float          # median of the calls after the first of each block
    after_idle: float      # median of the first call of each block
    fastest: float         # fastest steady call
    slowest: float         # slowest steady call
    calls: list            # every steady call, in order
    firsts: list           # the first call of every block

    def as_dict(self):
        return self._asdict()


def calls_per_block(fn, min_block, most=200):
    """Run ``fn`` twice (compile, then time one call); calls that make a block last ``min_block`` s."""
    fn()
    t0 = time.perf_counter()
    fn()
    one = time.perf_counter() - t0
    return int(min(most, max(3, np.ceil(min_block / max(one, 1e-7)) + 1)))


def time_blocks(fns, blocks, pause, min_block):
    """Time each callable of ``fns`` ({name: fn}) in alternating blocks; {name: :class:`Timing`}.

    ``blocks`` blocks per callable, each of at least three calls and about
    ``min_block`` seconds; ``pause`` seconds of sleep before every block.
    The garbage collector is off inside a block.
    """
    names = list(fns)
    n_calls = {}
    for name in names:
        time.sleep(pause)
        n_calls[name] = calls_per_block(fns[name], min_block)
    calls = {name: [] for name in names}
    firsts = {name: [] for name in names}
    for blk in range(blocks):
        k = blk % len(names)
        for name in names[k:] + names[:k]:
            fn = fns[name]
            gc.collect()
            time.sleep(pause)
            gc.disable()
            try:
                ts = []
                for _ in range(n_calls[name]):
                    t0 = time.perf_counter()
                    fn()
                    ts.append(time.perf_counter() - t0)
            finally:
                gc.enable()
            firsts[name].append(ts[0])
            calls[name].extend(ts[1:])
    return {name: Timing(statistics.median(calls[name]), statistics.median(firsts[name]),
                         min(calls[name]), max(calls[name]), calls[name], firsts[name])
            for name in names}


def gemm_rate(dtype, n=2048, repeats=5, pause=0.3):
    """GFLOP/s of NumPy's ``np.dot`` on two n x n matrices (all BLAS threads), median of ``repeats``.

    The ceiling the per-point GFLOP/s are read against: measured in the same
    run, because on a shared machine it moves from run to run.
    """
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


# --------------------------------------------------------------------------- competing load

_SPIN = "import time\nwhile True:\n    sum(range(10000))\n"


@contextlib.contextmanager
def competing_load(processes=2):
    """Run ``processes`` busy Python processes for the duration of the ``with`` block.

    They stand for the other programs of a shared machine; each spins on one
    core until the block ends, when they are killed (even on error).
    """
    procs = [subprocess.Popen([sys.executable, "-c", _SPIN], stdin=subprocess.DEVNULL,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
             for _ in range(processes)]
    try:
        time.sleep(0.5)                  # let them reach the scheduler's steady state
        yield procs
    finally:
        for p in procs:
            p.kill()
        for p in procs:
            p.wait()


# --------------------------------------------------------------------------- environment

def _first_line(path, prefix):
    try:
        with open(path) as f:
            for line in f:
                if line.startswith(prefix):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


def cpu_model():
    return _first_line("/proc/cpuinfo", "model name") or platform.processor() or "unknown"


def mem_total():
    kb = _first_line("/proc/meminfo", "MemTotal")
    return f"{int(kb.split()[0]) / 2 ** 20:.1f} GiB" if kb else "unknown"


def git_commit():
    try:
        rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT,
                             capture_output=True, text=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "nblstm"], cwd=ROOT,
                               capture_output=True, text=True).stdout.strip()
        return rev + (" (nblstm/ has uncommitted changes)" if dirty else "")
    except OSError:
        return "unknown"


def load_average():
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "unknown"


def busy_warning():
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


def environment(with_torch):
    """What the numbers depend on: machine, library versions, thread pools, nblstm's CPU config."""
    import numba

    info = {
        "date": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "command": " ".join([Path(sys.argv[0]).name] + sys.argv[1:]),
        "git": git_commit(),
        "platform": platform.platform(),
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "memory": mem_total(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "numba": numba.__version__,
        "numba_threads": numba.get_num_threads(),
        "torch": None,
    }
    try:
        info["numba_threading_layer"] = numba.threading_layer()
    except ValueError:  # no parallel function has run yet
        info["numba_threading_layer"] = "not initialised"
    try:
        from nblstm import cpu

        info["nblstm_cpu_config"] = repr(cpu.config)
        mkl = getattr(cpu, "_mkl", None)
        if mkl is not None:
            info["nblstm_mkl"] = mkl.describe()
    except Exception:  # noqa: BLE001  (informative only)
        info["nblstm_cpu_config"] = None
    if with_torch:
        import torch

        info["torch"] = torch.__version__
        info["torch_threads"] = torch.get_num_threads()
        info["torch_interop_threads"] = torch.get_num_interop_threads()
        info["torch_mkldnn_available"] = torch.backends.mkldnn.is_available()
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


ENV_KEYS = ["platform", "cpu", "cores", "memory", "python", "numpy", "numba", "numba_threads",
            "numba_threading_layer", "nblstm_cpu_config", "nblstm_mkl", "torch", "torch_threads",
            "torch_interop_threads", "torch_mkldnn_available", "torch_mkl_available"]


def environment_lines(env):
    lines = [f"- {k}: `{env[k]}`" for k in ENV_KEYS if env.get(k) is not None]
    if env.get("torch") is None:
        lines.append("- torch: **not installed — ratios against torch were not measured**")
    lines.append("- thread pools (threadpoolctl): " + "; ".join(env["threadpools"]))
    return lines


# --------------------------------------------------------------------------- report

def fmt_ms(t):
    return "—" if t is None else (f"{t * 1e3:.3f}" if t < 0.1 else f"{t * 1e3:.1f}")


def md_table(header, rows):
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(x) for x in row) + " |" for row in rows]
    return "\n".join(lines)


def print_table(title, header, rows):
    print(f"\n{title}")
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows)]
    print("  ".join(h.ljust(w) for h, w in zip(header, widths)))
    for row in rows:
        print("  ".join(str(x).ljust(w) for x, w in zip(row, widths)))


def output_dir(out, replace):
    """Where a run writes: ``out`` if given, bench/ itself with ``replace``, else a new folder.

    Without ``--replace`` a run never overwrites the committed RESULTS.md: it
    goes to ``bench/runs/<UTC date and time>/`` (ignored by git).
    """
    if out is not None:
        return Path(out)
    if replace:
        return HERE
    stamp = _dt.datetime.now(_dt.timezone.utc).strftime("%Y%m%d-%H%M%S")
    return HERE / "runs" / stamp


def write_section(path, name, text):
    """Put ``text`` between ``<!-- name: begin -->`` and ``<!-- name: end -->`` in the file at ``path``.

    Every script that writes to bench/RESULTS.md writes only its own section,
    so the others' sections and the hand-written analysis around them survive
    a rerun. A file without the section gets it at the end (a new file: only it).
    """
    begin, end = f"<!-- {name}: begin -->", f"<!-- {name}: end -->"
    block = f"{begin}\n{text.strip()}\n{end}"
    path = Path(path)
    old = path.read_text() if path.exists() else ""
    if begin in old and end in old:
        head, rest = old.split(begin, 1)
        new = head + block + rest.split(end, 1)[1]
    else:
        new = (old.rstrip("\n") + "\n\n" if old.strip() else "") + block + "\n"
    path.write_text(new)


def try_plot(plot_fn, path, *args):
    """``plot_fn(path, *args)``, or None with a message when matplotlib is missing.

    The numbers are the result of a run; the figure is a view of them, so a
    missing plotting library must not cost the run.
    """
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        print("matplotlib is not installed: RESULTS.md is written without the plot", flush=True)
        return None
    return plot_fn(path, *args)
