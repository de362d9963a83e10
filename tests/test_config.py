"""The knobs of both backends: checked assignment, override, show_config, and docs/configuration.md in sync."""
import dataclasses
import io
import re
from pathlib import Path

import pytest

import nblstm
from nblstm import cpu, cuda

PAGE = Path(__file__).resolve().parents[1] / "docs" / "configuration.md"
CONFIGS = {"nblstm.cpu.config": cpu.config, "nblstm.cuda.config": cuda.config}


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_every_knob_is_in_docs_configuration_with_its_default(name):
    page = PAGE.read_text()
    for field in dataclasses.fields(CONFIGS[name]):
        assert f"| `{field.name}` | `{field.default!r}` |" in page, field.name
    rows = re.findall(r"^\| `([a-z_]\w*)` \| `", page, flags=re.M)
    knobs = {f.name for config in CONFIGS.values() for f in dataclasses.fields(config)}
    assert set(rows) == knobs                       # and no row for a knob that is gone


BAD = [
    # the case: a typo in a choice silently meant "auto"
    (cpu.config, "slices_gemm", "mkll", ValueError,
     "nblstm.cpu.config.slices_gemm: expected one of 'auto', 'mkl', 'numba', got 'mkll'"),
    (cpu.config, "path", "fast", ValueError,
     "nblstm.cpu.config.path: expected one of 'serial', 'tiles', 'blas', 'slices' or None, got 'fast'"),
    (cpu.config, "block_rows", 0, ValueError, "nblstm.cpu.config.block_rows: expected at least 1, got 0"),
    (cpu.config, "block_rows", 2.0, TypeError, "nblstm.cpu.config.block_rows: expected int, got float 2.0"),
    (cpu.config, "adapt_to_load", 1, TypeError, "nblstm.cpu.config.adapt_to_load: expected bool, got int 1"),
    (cpu.config, "recycle_bytes", True, TypeError,
     "nblstm.cpu.config.recycle_bytes: expected int, got bool True"),
    (cpu.config, "path", 3, TypeError, "nblstm.cpu.config.path: expected str | None, got int 3"),
    (cuda.config, "rnn_threads", 48, ValueError, "nblstm.cuda.config.rnn_threads: expected a multiple of 32, got 48"),
    (cuda.config, "units_per_block", 0, ValueError,
     "nblstm.cuda.config.units_per_block: expected at least 1, got 0"),
]


@pytest.mark.parametrize("config, name, value, error, message", BAD, ids=lambda v: str(v)[:20])
def test_an_assignment_is_checked_and_names_the_knob(config, name, value, error, message):
    before = getattr(config, name)
    with pytest.raises(error) as info:
        setattr(config, name, value)
    assert str(info.value) == message
    assert getattr(config, name) == before


def test_an_unknown_knob_is_refused():
    with pytest.raises(AttributeError, match=r"^nblstm.cpu.config: no knob 'pathh'; the knobs are blas_min_work, "):
        cpu.config.pathh = "serial"


def test_good_values_are_kept_as_plain_python_values(cpu_config):
    import numpy as np

    cpu_config.block_rows = np.int64(4)
    assert cpu_config.block_rows == 4 and type(cpu_config.block_rows) is int
    cpu_config.path = "tiles"
    cpu_config.path = None
    cuda.config.units_per_block = None


def test_override_sets_knobs_for_a_block_and_restores_them():
    assert cpu.config.path is None and cpu.config.block_rows == 8
    with cpu.config.override(path="serial", block_rows=3) as config:
        assert config is cpu.config and (cpu.config.path, cpu.config.block_rows) == ("serial", 3)
    assert cpu.config.path is None and cpu.config.block_rows == 8
    with pytest.raises(RuntimeError), cpu.config.override(path="tiles"):
        raise RuntimeError("inside")
    assert cpu.config.path is None
    # a bad value after a good one: nothing stays changed
    with pytest.raises(ValueError, match="slices_gemm"), cpu.config.override(path="tiles", slices_gemm="x"):
        pass
    assert cpu.config.path is None and cpu.config.slices_gemm == "auto"
    with pytest.raises(AttributeError, match="no knob 'nope'"), cpu.config.override(path="tiles", nope=1):
        pass
    assert cpu.config.path is None


def test_show_config_prints_what_a_call_would_use():
    out = io.StringIO()
    nblstm.show_config(64, 256, file=out)
    text = out.getvalue()
    assert text.startswith(f"nblstm {nblstm.__version__} (Python ")
    assert f"CPU path for (B, H) = (64, 256): {cpu.choose_path(64, 256)}\n" in text
    assert f"MKL for the slices path: {cpu.mkl.describe()}\n" in text
    for config in CONFIGS.values():
        for field in dataclasses.fields(config):
            assert f"\n  {field.name} = {getattr(config, field.name)!r}\n" in text + "\n"
    with pytest.raises(ValueError, match="^B, H: expected both or neither"):
        nblstm.show_config(64)
    with pytest.raises(ValueError, match="^H: expected a positive int, got 0"):
        nblstm.show_config(64, 0)
    with pytest.raises(TypeError, match="^B: expected an int, got float"):
        nblstm.show_config(64.0, 8)
    import numpy as np

    out = io.StringIO()
    nblstm.show_config(np.int64(2), np.int64(8), file=out)
    assert "CPU path for (B, H) = (2, 8): " in out.getvalue()


def test_version_is_pyprojects():
    declared = re.search(r'^version = "([^"]+)"$', (PAGE.parents[1] / "pyproject.toml").read_text(), re.M)
    assert nblstm.__version__ == declared.group(1)


def _contract_rows():
    text = (Path(__file__).resolve().parents[1] / "CONTRIBUTING.md").read_text()
    return re.findall(r"^\| `(nblstm\.[\w.]+)\.(\w+)` \| ([\d.]+) \|", text, re.M)


def test_the_constants_table_of_contributing_matches_the_code():
    import importlib

    rows = _contract_rows()
    assert len(rows) >= 9
    for module, name, value in rows:
        assert getattr(importlib.import_module(module), name) == float(value), f"{module}.{name}"


def test_dir_lists_the_public_names_and_not_the_modules_imported():
    names = dir(nblstm)
    assert set(nblstm.__all__) <= set(names) and {"cpu", "sklearn", "__version__"} <= set(names)
    assert "importlib" not in names
