"""What keeping the CPU backend's scratch between calls saves (``nblstm.cpu.workspace``).

    python bench/investigations/scratch_reuse.py float32 training 32,50,32,64 [more shapes ...]

Each setting runs in its own fresh process, as a user's loop would: the state of
the process's heap, not just this library, decides whether a freed array's
pages go back to the system and fault again on the next call, so the two
settings cannot share a process. The processes alternate (fresh, kept, fresh,
kept, ...) and the medians of their per-call medians are compared, with the
page faults per call (``ru_minflt``).
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
dtype, mode, keep = np.dtype(sys.argv[2]), sys.argv[3], sys.argv[4] == "kept"
if not keep:
    nblstm.cpu.config.workspace_bytes = 0
rng = np.random.default_rng(0)
p = nblstm.init_params(I, H, dtype=dtype, seed=0)
x = rng.standard_normal((B, T, I)).astype(dtype)
dy = rng.standard_normal((B, T, H)).astype(dtype)
def call():
    if mode == "inference":
        return nblstm.lstm(x, p)
    y, _, cache = nblstm.lstm_forward(x, p)
    return nblstm.lstm_backward(cache, dy)
call(); call()
times, faults = [], []
for _ in range(15):
    f0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    t0 = time.perf_counter(); call(); times.append(time.perf_counter() - t0)
    faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - f0)
print(json.dumps([sorted(times)[len(times) // 2], sorted(faults)[len(faults) // 2]]))
"""


def run(shape, dtype, mode, setting):
    out = subprocess.run([sys.executable, "-c", WORKER, shape, dtype, mode, setting],
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv):
    if len(argv) < 3:
        sys.exit(__doc__)
    dtype, mode, shapes = argv[0], argv[1], argv[2:]
    print(f"{dtype} {mode}: median ms per call over 3 processes per setting (page faults per call)")
    for shape in shapes:
        results = {"fresh": [], "kept": []}
        for _ in range(3):
            for setting in results:
                results[setting].append(run(shape, dtype, mode, setting))
        ms = {s: 1e3 * statistics.median(r[0] for r in rs) for s, rs in results.items()}
        faults = {s: statistics.median(r[1] for r in rs) for s, rs in results.items()}
        print(f"  ({shape}): fresh {ms['fresh']:8.3f} ms ({faults['fresh']:5.0f})   "
              f"kept {ms['kept']:8.3f} ms ({faults['kept']:5.0f})   kept/fresh {ms['kept'] / ms['fresh']:.2f}")


if __name__ == "__main__":
    main(sys.argv[1:])
