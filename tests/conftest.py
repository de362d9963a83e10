import dataclasses
import pathlib
import sys

import pytest

from nblstm import cpu

# The tests are laid out like the package: api/ (nblstm.lstm & co, params, the
# demo), cpu/ and cuda/ (the backends), interop/, testing/ (nblstm.testing and
# the reference oracle); here, what spans the package (the protocol, lint,
# docstrings) and nblstm.dask (a tests/dask folder on sys.path would pass for the
# dask package where dask is not installed). Fixtures live in conftest.py files
# (cpu_config here, as api/ and cpu/ use it); the test modules share the
# helpers of tests/_helpers.py, made importable whatever --import-mode pytest
# runs with.
sys.path.insert(0, str(pathlib.Path(__file__).parent))


@pytest.fixture(autouse=True)
def quiet_machine(monkeypatch):
    """Every test plans its layers as on an idle machine, whatever else the machine runs.

    A layer with a barrier every step gives up threads while other programs keep the cores
    busy (nblstm.cpu.plan.threads_under_load), and then plans again: the code a test covers
    would depend on the load of the machine it runs on. Without a count of runnable tasks
    nothing adapts; tests/cpu/test_load.py fakes one.
    """
    monkeypatch.setattr(cpu.plan, "LOADAVG", "/nonexistent/loadavg")


@pytest.fixture
def cpu_config():
    """The CPU config (nblstm.cpu.config), every knob restored after the test."""
    with cpu.config.override(**dataclasses.asdict(cpu.config)) as config:
        yield config
