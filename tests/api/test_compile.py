"""Compilations are logged, and ``nblstm.precompile`` fills numba's cache so that later calls compile nothing."""
import logging
import os
import subprocess
import sys
import textwrap
import types

import numba
import numpy as np
import pytest

import nblstm
from nblstm import _compile_log


def _as_if_in_nblstm(f):
    """``f`` under a module name of nblstm's, so that the listener takes it for one of ours."""
    g = types.FunctionType(f.__code__, {"np": np}, f.__name__)
    g.__module__ = "nblstm.fake_module"
    return g


def test_a_compilation_is_logged_once_at_its_outermost_function(caplog):
    def inner(a):
        return a + 1.0

    inner_jit = numba.njit(_as_if_in_nblstm(inner))

    namespace = {"helper": inner_jit}
    exec("def outer(a):\n    return helper(a) * 2.0\n", namespace)     # helper: a global of outer's
    outer = namespace["outer"]
    outer.__module__ = "nblstm.fake_module"
    outer_jit = numba.njit(outer)
    with caplog.at_level(logging.INFO, logger="nblstm"):
        assert outer_jit(1.0) == 4.0
        outer_jit(2.0)                                       # compiled: nothing more
    lines = [r.getMessage() for r in caplog.records if r.name == "nblstm"]
    assert len(lines) == 2, lines
    assert lines[0] == "compiling nblstm.fake_module.outer for scalars (not in numba's cache)"
    assert lines[1].startswith("compiled nblstm.fake_module.outer in ")


def test_other_code_is_not_logged(caplog):
    with caplog.at_level(logging.INFO, logger="nblstm"):
        numba.njit(lambda a: a - 1.0)(3.0)
    assert [r for r in caplog.records if r.name == "nblstm"] == []
    assert _compile_log._registered                          # importing the CPU backend registered it


@pytest.mark.parametrize("kwargs, error, message", [
    ({"dtypes": "float32"}, TypeError, "dtypes: expected a sequence"),
    ({"dtypes": ["int32"]}, ValueError, "dtypes: expected float32 or float64, got 'int32'"),
    ({"dtypes": ["float32"], "paths": ["mkll"]}, ValueError, "paths: expected names from"),
    ({"dtypes": ["float32"], "paths": "serial"}, TypeError, "paths: expected a sequence"),
])
def test_precompile_names_the_bad_argument(kwargs, error, message):
    with pytest.raises(error, match=message):
        nblstm.precompile(**kwargs)


AFTER = textwrap.dedent("""
    import logging
    logging.basicConfig(level=logging.INFO, format="%(name)s %(message)s")
    import numpy as np
    import nblstm
    from nblstm import cpu
    cpu.config.path = "serial"
    p = nblstm.init_params(5, 16)
    x = np.ones((6, 7, 5))
    nblstm.lstm(x, p, lengths=[7, 3, 5, 0, 1, 2])
    y, s, c = nblstm.lstm_forward(x, p, reverse=True)
    nblstm.lstm_backward(c, np.ones_like(y))
    stack = nblstm.init_stack(5, 16, 3, bidirectional=True)
    y, s, c = nblstm.lstm_forward(x, stack, lengths=[1, 2, 3, 4, 5, 6])
    nblstm.lstm_backward(c, np.ones_like(y))
    y, s, c = nblstm.lstm_forward(x.swapaxes(0, 1).copy(), p, time_major=True)
    nblstm.lstm_backward(c, np.ones_like(y))
    cpu.config.path = None
    nblstm.lstm(x[0], p)
""")


@pytest.mark.slow
def test_after_precompile_a_new_process_compiles_nothing(tmp_path):
    """A cold cache logs its compilations; after precompile, a fresh process's calls log none."""
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path))

    def run(code):
        done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                              timeout=600)
        assert done.returncode == 0, done.stderr
        return [line for line in done.stderr.splitlines() if line.startswith("nblstm ")]

    cold = run("import logging; logging.basicConfig(level=logging.INFO, format='%(name)s %(message)s')\n"
               "import nblstm; nblstm.precompile(dtypes=['float64'], paths=['serial'])")
    assert any(line.startswith("nblstm compiling nblstm.cpu.") and line.endswith(" for float64, int64 "
                                                                                "(not in numba's cache)")
               for line in cold), cold
    assert any(line.startswith("nblstm precompiled the 'serial' path for float64 in ") for line in cold)
    assert run(AFTER) == []
