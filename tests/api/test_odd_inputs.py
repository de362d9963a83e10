"""Inputs whose meaning nblstm cannot honour are refused; unambiguous ones are accepted (issue 12)."""
import os
import pathlib
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import nblstm

ROOT = pathlib.Path(nblstm.__file__).resolve().parent.parent


@pytest.fixture
def problem():
    p = nblstm.init_params(3, 4, seed=0)
    x = np.random.default_rng(0).standard_normal((2, 5, 3))
    return x, p


def _masked(a):
    return np.ma.masked_array(a, mask=np.zeros(np.shape(a), bool))


@pytest.mark.parametrize("target", ["x", "params.W_ih", "h0", "lengths", "dy"])
def test_masked_arrays_are_refused_by_name(problem, target):
    x, p = problem
    kwargs = dict(h0=np.zeros((2, 4)), lengths=np.array([5, 3]))
    if target == "x":
        x = _masked(x)
    elif target == "params.W_ih":
        p = p._replace(W_ih=_masked(p.W_ih))
    elif target in kwargs:
        kwargs[target] = _masked(kwargs[target])
    with pytest.raises(TypeError, match=rf"^{target}: expected a plain array \(masked arrays"):
        if target == "dy":
            cache = nblstm.lstm_forward(x, p, **kwargs)[2]
            nblstm.lstm_backward(cache, dy=_masked(np.ones((2, 5, 4))))
        else:
            nblstm.lstm(x, p, **kwargs)


def test_masked_weights_refused_by_the_converters():
    kernel = np.zeros((3, 8))
    with pytest.raises(TypeError, match="^kernel: expected a plain array"):
        nblstm.interop.from_keras([_masked(kernel), np.zeros((2, 8)), np.zeros(8)])


def test_a_list_of_three_arrays_is_one_layer(problem):
    x, p = problem
    want_y, (want_h, want_c) = nblstm.lstm(x, p)
    y, (h, c) = nblstm.lstm(x, list(p))
    np.testing.assert_array_equal(y, want_y)
    np.testing.assert_array_equal(h, want_h)
    np.testing.assert_array_equal(c, want_c)
    assert h.shape == (2, 4)                      # one layer: not stacked
    g = nblstm.lstm_backward(nblstm.lstm_forward(x, list(p))[2], dy=np.ones_like(y))
    assert isinstance(g.dparams, nblstm.LSTMParams)
    # a stack given as lists still works: a layer of a stack holds LSTMParams, not arrays
    y2, _ = nblstm.lstm(x, [[p]])
    np.testing.assert_array_equal(y2, want_y)


def test_cudasim_without_numba_cuda_says_what_to_install(tmp_path):
    """numba 0.68's own deprecated numba.cuda must not pass for numba-cuda."""
    script = textwrap.dedent('''
        import sys

        sys.modules["numba_cuda"] = None            # as if the cuda extra were not installed
        import warnings
        warnings.simplefilter("ignore")             # numba's deprecation notice for numba.cuda
        import numpy as np
        import nblstm
        assert nblstm.cuda_available() is False, "cuda_available() said True"
        try:
            nblstm.lstm(np.zeros((1, 2, 3)), nblstm.init_params(3, 2, seed=0), backend="cuda")
        except RuntimeError as exc:
            assert "pip install" in str(exc) and "nblstm[cuda]" in str(exc), str(exc)
            print("ok")
    ''')
    env = dict(os.environ, NUMBA_ENABLE_CUDASIM="1")
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT)] + [p for p in [env.get("PYTHONPATH")] if p])
    proc = subprocess.run([sys.executable, "-c", script], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and "ok" in proc.stdout, proc.stdout + proc.stderr[-3000:]
