"""Fewer of numba's threads while other programs keep the cores busy (nblstm.cpu.plan.layer_plan).

A layer whose threads meet at a barrier every step runs on the cores that the
kernel's count of runnable tasks leaves free; the count is faked here through
``plan.LOADAVG``. Results do not depend on the thread count, so the layer's
output must be the same bits under any load.
"""
import numba
import numpy as np
import pytest

from nblstm.cpu import plan

from _helpers import all_arrays, make_problem, run_api

THREADS = numba.config.NUMBA_NUM_THREADS


@pytest.fixture
def runnable(tmp_path, monkeypatch):
    """Set the count of runnable tasks that /proc/loadavg reports."""
    path = tmp_path / "loadavg"

    def set_runnable(n):
        path.write_text(f"1.00 0.80 0.50 {n}/412 12345\n")

    monkeypatch.setattr(plan, "LOADAVG", str(path))
    set_runnable(1)
    return set_runnable


@pytest.fixture(autouse=True)
def two_threads():
    if THREADS < 2:
        pytest.fail("these tests need numba to have at least 2 threads (NUMBA_NUM_THREADS)")
    with plan.numba_threads(2):
        yield


def test_busy_cores_are_the_runnable_tasks_beyond_nblstms_own(runnable, monkeypatch):
    runnable(2)                                   # this thread and one spinning worker
    assert plan.busy_cores() == 0
    runnable(4)                                   # and two busy programs
    assert plan.busy_cores() == 2
    monkeypatch.setattr(plan, "LOADAVG", "/nonexistent/loadavg")
    assert plan.busy_cores() is None              # not on Linux: no count


@pytest.fixture
def two_cores(monkeypatch):
    monkeypatch.setattr(plan.os, "cpu_count", lambda: 2)


def test_threads_under_load(runnable, cpu_config, two_cores, monkeypatch):
    runnable(2)
    assert plan.threads_under_load() == 2
    runnable(3)
    assert plan.threads_under_load() == 1
    runnable(40)
    assert plan.threads_under_load() == 1         # never fewer than one
    cpu_config.adapt_to_load = False
    assert plan.threads_under_load() == 2
    cpu_config.adapt_to_load = True
    monkeypatch.setattr(plan, "LOADAVG", "/nonexistent/loadavg")
    assert plan.threads_under_load() == 2         # no count: nothing adapts


def test_the_count_is_of_the_whole_machine(runnable, monkeypatch):
    """/proc/loadavg counts every core's tasks: compared with the machine's cores, not ours."""
    monkeypatch.setattr(plan.os, "cpu_count", lambda: 64)
    monkeypatch.setattr(plan.os, "sched_getaffinity", lambda pid: {0, 1}, raising=False)
    runnable(40)                                  # 38 busy elsewhere, 26 cores idle
    assert plan.threads_under_load() == 2


@pytest.mark.parametrize("layout, barrier", [("units", True), ("rows", False)])
def test_only_layers_with_a_barrier_every_step_give_up_threads(runnable, cpu_config, two_cores,
                                                                layout, barrier):
    cpu_config.path = "slices"
    cpu_config.row_blocks_max_H = 0 if layout == "units" else 10 ** 6
    runnable(50)
    with plan.layer_plan(32, 64) as p:
        assert p.barrier_per_step == barrier
        assert numba.get_num_threads() == (1 if barrier else 2)
    assert numba.get_num_threads() == 2           # the caller's setting is back


def test_the_callers_threads_come_back_after_an_error(runnable, cpu_config, two_cores):
    cpu_config.path = "slices"
    cpu_config.row_blocks_max_H = 0
    runnable(50)
    with pytest.raises(RuntimeError):
        with plan.layer_plan(32, 64):
            raise RuntimeError
    assert numba.get_num_threads() == 2


@pytest.mark.parametrize("path", ["slices", "tiles"])
def test_results_are_the_same_bits_under_load(runnable, cpu_config, two_cores, monkeypatch, path):
    """Training through a stack, forward and backward, with and without busy programs."""
    cpu_config.path = path
    cpu_config.row_blocks_max_H = 0               # slices of units: a barrier every step
    cpu_config.min_unit_block = 4                 # tiles of part of a row: a barrier every step
    with plan.layer_plan(1, 40) as layer:
        assert layer.barrier_per_step
    p = make_problem(1, 7, 4, 40, dtype=np.float64, seed=5, lengths="mixed")
    set_threads = numba.set_num_threads
    used = []
    monkeypatch.setattr(plan.numba, "set_num_threads", lambda n: (used.append(n), set_threads(n)))
    quiet = all_arrays(*run_api(p, reverse=True))
    assert 1 not in used
    runnable(50)
    busy = all_arrays(*run_api(p, reverse=True))
    assert 1 in used                              # the busy run gave up a thread
    for name in quiet:
        np.testing.assert_array_equal(busy[name], quiet[name], err_msg=name)
