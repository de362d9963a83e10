"""CUDA tests: under the CUDA simulator unless told otherwise.

NUMBA_ENABLE_CUDASIM must be set before numba.cuda is first imported, so it is
set here, at the top of the first module pytest loads for this directory; run
this directory in its own process (``.ci/run`` does)::

    NUMBA_ENABLE_CUDASIM=1 python -m pytest tests/cuda

On a machine with a GPU, ``NUMBA_ENABLE_CUDASIM=0 python -m pytest tests/cuda``
runs the same tests on the real device, and ``-m gpu`` the ones that only make
sense there (bench/gpu_check.sh does both).
"""
import os

os.environ.setdefault("NUMBA_ENABLE_CUDASIM", "1")
# Tiny test grids would make numba warn about low occupancy; filterwarnings=error
# would turn that into failures.
os.environ.setdefault("NUMBA_CUDA_LOW_OCCUPANCY_WARNINGS", "0")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

SIMULATOR = os.environ["NUMBA_ENABLE_CUDASIM"] not in ("", "0")


def _real_gpu():
    if SIMULATOR:
        return False
    try:
        from numba import cuda
        return bool(cuda.is_available())
    except Exception:
        return False


REAL_GPU = _real_gpu()


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "gpu: needs a real NVIDIA GPU (skipped without one and under the CUDA simulator)")


def pytest_collection_modifyitems(config, items):
    if REAL_GPU:
        return
    skip = pytest.mark.skip(reason="needs a real GPU (NUMBA_ENABLE_CUDASIM=0 and a CUDA device)")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def small_config(monkeypatch):
    """Shrink every block size so that tiny problems still run several blocks."""
    import nblstm.cuda as nc

    if not SIMULATOR:
        return nc.config  # real GPU: keep the shipped configuration
    for name, value in dict(tile_m=8, tile_n=8, tile_k=4, rnn_threads=32,
                            elementwise_threads=32).items():
        monkeypatch.setattr(nc.config, name, value)
    return nc.config


#: recurrence layouts every kernel test runs: (units_per_block, shared_bytes, persistent).
#: The simulator runs a cooperative grid of one block only, so "one_block" (units >= H)
#: takes the persistent path, and "blocks" (several blocks) finds the grid too large
#: and falls back to one launch per step; on a real GPU "blocks" runs the persistent
#: kernel with several blocks. "per_step" forces the per-step path everywhere.
PATHS = {
    "one_block-shared": (64, 48 * 1024, True),
    "one_block-global": (64, 0, True),
    "blocks-shared": (2, 48 * 1024, True),
    "per_step-global": (2, 0, False),
}


@pytest.fixture(params=list(PATHS))
def path_config(request, small_config, monkeypatch):
    units, shared, persistent = PATHS[request.param]
    monkeypatch.setattr(small_config, "units_per_block", units)
    monkeypatch.setattr(small_config, "shared_bytes", shared)
    monkeypatch.setattr(small_config, "persistent", persistent)
    return request.param


@pytest.fixture
def rng():
    return np.random.default_rng(1234)
