"""What reusing dropped caches and results saves (``nblstm.cpu.workspace.empty``).

    python bench/investigations/recycling.py float64 64,50,512,512 [more shapes ...] [--min-mib 16]

Training calls, in two loops: ``drop`` (the cache dies inside the call, as in
``bench/compare.py``) and ``hold`` (``y, _, cache = lstm_forward(...)`` keeps the
previous cache until the next forward returns). Each setting (``fresh``:
``config.recycle_bytes = 0``; ``recycled``: the default) runs in its own fresh
process, for the reason ``scratch_reuse.py`` gives; the processes alternate and
the medians of their per-call medians are compared, with the page faults and the
system time per call (``getrusage``). For ratios to torch see ``bench/compare.py``
(torch timed after nblstm in one of these processes ran about 2x slower than
there, so it is left out).
"""
import json
import statistics
import subprocess
import sys

WORKER = r"""
import json, resource, sys, time
import numpy as np
import nblstm, nblstm.cpu
B, T, I, H = map(int, sys.argv[1].split(","))
dtype, loop, setting = np.dtype(sys.argv[2]), sys.argv[3], sys.argv[4]
if setting == "fresh":
    nblstm.cpu.config.recycle_bytes = 0
nblstm.cpu.config.recycle_min_bytes = int(float(sys.argv[5]) * 2**20)
rng = np.random.default_rng(0)
p = nblstm.init_params(I, H, dtype=dtype, seed=0)
x = rng.standard_normal((B, T, I)).astype(dtype)
dy = rng.standard_normal((B, T, H)).astype(dtype)
held = {}
def call():
    if loop == "hold":
        held["y"], _, held["cache"] = nblstm.lstm_forward(x, p)
        held["grads"] = nblstm.lstm_backward(held["cache"], dy)
    else:
        y, _, cache = nblstm.lstm_forward(x, p)
        held["grads"] = nblstm.lstm_backward(cache, dy)
def measure(fn, n=9):
    fn(); fn()
    times, faults, system = [], [], []
    for _ in range(n):
        r0 = resource.getrusage(resource.RUSAGE_SELF)
        t0 = time.perf_counter(); fn(); times.append(time.perf_counter() - t0)
        r1 = resource.getrusage(resource.RUSAGE_SELF)
        faults.append(r1.ru_minflt - r0.ru_minflt); system.append(r1.ru_stime - r0.ru_stime)
    return [sorted(v)[n // 2] for v in (times, faults, system)]
out = measure(call)
print(json.dumps(out))
"""


def run(shape, dtype, loop, setting, min_mib):
    out = subprocess.run([sys.executable, "-c", WORKER, shape, dtype, loop, setting, str(min_mib)],
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv):
    min_mib = 4.0                                          # config.recycle_min_bytes's default
    if "--min-mib" in argv:
        k = argv.index("--min-mib")
        min_mib = float(argv[k + 1])
        argv = argv[:k] + argv[k + 2:]
    if len(argv) < 2:
        sys.exit(__doc__)
    dtype, shapes = argv[0], argv[1:]
    print(f"{dtype} training, recycle_min_bytes {min_mib} MiB: medians over 3 processes per setting: ms a call "
          "(page faults, system ms a call)")
    for shape in shapes:
        for loop in ("drop", "hold"):
            results = {"fresh": [], "recycled": []}
            for _ in range(3):
                for setting in results:
                    results[setting].append(run(shape, dtype, loop, setting, min_mib))
            line = []
            for setting, rs in results.items():
                ms, faults, system = (statistics.median(r[k] for r in rs) for k in range(3))
                line.append(f"{setting} {1e3 * ms:8.1f} ms ({faults:5.0f}, {1e3 * system:5.1f})")
            print(f"  ({shape}) {loop}: " + "   ".join(line))


if __name__ == "__main__":
    main(sys.argv[1:])
