#!/usr/bin/env bash
# One command for a machine with an NVIDIA GPU (about 9 minutes at most):
#   (a) tests/cuda on the real GPU, without the simulator: the `gpu`-marked tests
#       and every simulator test again with the shipped block sizes;
#   (b) bench/gpu_calls.py and bench/gpu_overhead.py: what a call costs before its steps;
#   (c) bench/gpu_compare.py: nblstm vs cuDNN, check then timings.
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

# numba-cuda 0.30.4 calls np.row_stack, which NumPy 2.5 removed (the H100 image of
# 2026-11-27 paired them): give it the old name back, for this run only.
if ! python -c "import numpy, sys; sys.exit(not hasattr(numpy, 'row_stack'))"; then
    mkdir -p "$OUT/shim"
    printf 'import numpy as np\nif not hasattr(np, "row_stack"):\n    np.row_stack = np.vstack\n' \
        > "$OUT/shim/sitecustomize.py"
    export PYTHONPATH="$OUT/shim:$PYTHONPATH"
    PYTEST_EXTRA="${PYTEST_EXTRA:--W ignore::DeprecationWarning}"
    echo "numpy has no row_stack: using the shim in $OUT/shim"
fi

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

# (b) per-call work: launches, allocations and copies, then fixed cost against cost per step
echo "== (b) bench/gpu_calls.py, bench/gpu_overhead.py"
timeout 60 python bench/gpu_calls.py > "$OUT/gpu_calls.log" 2>&1
echo "gpu_calls exit status: $?" | tee -a "$OUT/gpu_calls.log"
cat "$OUT/gpu_calls.log"
timeout 90 python bench/gpu_overhead.py > "$OUT/gpu_overhead.log" 2>&1
echo "gpu_overhead exit status: $?" | tee -a "$OUT/gpu_overhead.log"
head -n 40 "$OUT/gpu_overhead.log"

# (c) the comparison with cuDNN
echo "== (c) bench/gpu_compare.py"
timeout 330 python bench/gpu_compare.py --out "$OUT/gpu_compare.md" --budget-s 250 \
    > "$OUT/gpu_compare.log" 2>&1
echo "gpu_compare exit status: $?" | tee -a "$OUT/gpu_compare.log"
tail -n 70 "$OUT/gpu_compare.log"
