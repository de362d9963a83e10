"""pytest-benchmark suite: nblstm against the NumPy reference and its peers (torch, onnxruntime, JAX).

    python -m pytest bench/ --benchmark-only
    python -m pytest bench/ --benchmark-only -k "float32 and inference" --benchmark-group-by=group

Each test is one (configuration, dtype, mode, implementation); tests of the
same configuration, dtype and mode share a benchmark group, so the report
compares the implementations side by side. Compilation and the first,
thread-waking calls happen before the timed rounds. A peer's tests are
skipped when it is not installed, and onnxruntime's where it does not run the
case (training, float64). For ratios measured in one interleaved run, and
the targets (bench/README.md), use ``python bench/compare.py``.

Not collected by a plain ``python -m pytest`` (testpaths is ``tests``, ``README.md`` and ``docs``).
"""
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_common as bc  # noqa: E402

pytest.importorskip("pytest_benchmark")


def _cases():
    shapes = [(s, False) for s in bc.GRID] + [(s, True) for s in bc.LENGTHS_POINTS]
    for shape, lengths in shapes:
        for dtype in bc.DTYPES:
            for mode in bc.MODES:
                case = bc.Case(*shape, dtype, mode, lengths)
                tag = "-lengths" if lengths else ""
                yield pytest.param(case, id=f"B{shape[0]}-T{shape[1]}-I{shape[2]}-H{shape[3]}"
                                            f"{tag}-{dtype}-{mode}")


@pytest.fixture(params=bc.IMPLEMENTATIONS)
def impl(request):
    why = bc.unavailable(request.param)
    if why:
        pytest.skip(why)
    if request.param == "torch":
        import torch

        torch.set_num_threads(bc.PEER_THREADS)
    return request.param


@pytest.mark.parametrize("case", list(_cases()))
def test_lstm(benchmark, case, impl):
    why = bc.not_applicable(impl, case)
    if why:
        pytest.skip(why)
    fn, output = bc.make_callable(impl, case)
    for _ in range(3):  # compile (nblstm), then wake every library's thread pool
        fn()
    y, _ = output()
    assert y.shape == (case.B, case.T, case.H)
    benchmark.group = case.label()
    benchmark.extra_info.update(impl=impl, flops=bc.flops(case), **case._asdict())
    benchmark.name = impl
    benchmark(fn)
