"""Fixtures of the CPU backend's tests."""
import dataclasses

import pytest

from nblstm import cpu


@pytest.fixture
def cpu_config():
    """The CPU config (nblstm.cpu.config), restored after the test."""
    saved = dataclasses.replace(cpu.config)
    yield cpu.config
    for field in dataclasses.fields(saved):
        setattr(cpu.config, field.name, getattr(saved, field.name))
