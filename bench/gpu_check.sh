#!/usr/bin/env bash
# One command for a machine with an NVIDIA GPU (about 7 minutes at most):
#   (a) tests/cuda on the real GPU, without the simulator: the `gpu`-marked tests
#       and every simulator test again with the shipped block sizes;
#   (b) bench/gpu_compare.py: nblstm vs cuDNN, check then timings.
# Logs and the results table go to $OUT (default bench/out). Each part has its own
# time limit, and a failure in (a) does not stop (b).
#
#   OUT=/some/dir bash bench/gpu_check.sh
set -uo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-bench/out}"
mkdir -p "$OUT"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
export NUMBA_ENABLE_CUDASIM=0
export NUMBA_CUDA_LOW_OCCUPANCY_WARNINGS=0
export PYTHONUNBUFFERED=1

{
    date -u
    nvidia-smi || true
    python - <<'PY'
import sys, numpy, numba
print("python", sys.version.split()[0], "numpy", numpy.__version__, "numba", numba.__version__)
try:
    import importlib.metadata as md
    print("numba-cuda", md.version("numba-cuda"))
except Exception as exc:
    print("numba-cuda version unknown:", exc)
try:
    import torch
    print("torch", torch.__version__, "cuda", torch.version.cuda, "cudnn", torch.backends.cudnn.version())
except Exception as exc:
    print("torch:", exc)
import nblstm.cuda as nc
print("nblstm.cuda.available():", nc.available())
PY
} > "$OUT/env.txt" 2>&1
cat "$OUT/env.txt"

# (a) real-GPU tests. test_ptx.py is left out: it compiles offline what this run compiles for real.
echo "== (a) tests/cuda on the GPU"
timeout 240 python -m pytest tests/cuda -p no:cacheprovider -o addopts="--strict-markers -ra" \
    -q --durations=10 ${PYTEST_EXTRA:-} --deselect tests/cuda/test_ptx.py::test_kernels_compile_for_sm90 \
    > "$OUT/tests_gpu.log" 2>&1
echo "tests exit status: $?" | tee -a "$OUT/tests_gpu.log"
tail -n 25 "$OUT/tests_gpu.log"

# (b) the comparison with cuDNN
echo "== (b) bench/gpu_compare.py"
timeout 330 python bench/gpu_compare.py --out "$OUT/gpu_compare.md" --budget-s 250 \
    > "$OUT/gpu_compare.log" 2>&1
echo "gpu_compare exit status: $?" | tee -a "$OUT/gpu_compare.log"
tail -n 70 "$OUT/gpu_compare.log"
