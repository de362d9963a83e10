"""Shared test helpers: problem generation, the reference in every layout, comparisons."""
from __future__ import annotations

import functools
import importlib.metadata
import os
import subprocess
import sys
from types import SimpleNamespace

import numpy as np
import pytest

import nblstm
from nblstm import _tree, reference
from nblstm.params import LSTMGrads, LSTMParams
from nblstm.testing import LinearLoss

RTOL = {np.dtype(np.float64): 1e-12, np.dtype(np.float32): 1e-5}


def make_problem(B, T, I, H, *, dtype=np.float64, seed=0, time_major=False, unbatched=False,
                 lengths=None, scale=1.0):
    """Random x, params, h0, c0 and loss weights for a (B, T, I) -> H problem.

    ``unbatched`` makes x (T, I) and the states (H,) (B is ignored).
    ``lengths`` is None, an array, or "mixed": unsorted, with 0 and T when B allows.
    """
    rng = np.random.default_rng(seed)
    params = nblstm.init_params(I, H, seed=rng)
    params = LSTMParams(*(p.astype(dtype) for p in params))
    if unbatched:
        x_shape, s_shape, y_shape = (T, I), (H,), (T, H)
    elif time_major:
        x_shape, s_shape, y_shape = (T, B, I), (B, H), (T, B, H)
    else:
        x_shape, s_shape, y_shape = (B, T, I), (B, H), (B, T, H)
    x = (scale * rng.standard_normal(x_shape)).astype(dtype)
    h0 = (0.5 * rng.standard_normal(s_shape)).astype(dtype)
    c0 = (0.5 * rng.standard_normal(s_shape)).astype(dtype)
    if isinstance(lengths, str):
        assert lengths == "mixed"
        lengths = mixed_lengths(B, T, rng)
    loss = LinearLoss.random(y_shape, s_shape, seed=rng, dtype=dtype)
    return SimpleNamespace(x=x, params=params, h0=h0, c0=c0, lengths=lengths, loss=loss,
                           time_major=time_major, unbatched=unbatched, dtype=np.dtype(dtype))


def mixed_lengths(B, T, rng):
    """Unsorted lengths in [0, T] that include 0 and T when B >= 2."""
    lengths = rng.integers(0, T + 1, size=B)
    if B >= 2:
        lengths[0], lengths[-1] = 0, T
    if B >= 3:
        lengths[1] = T
        lengths[B // 2] = max(T - 1, 0)
    return rng.permutation(lengths).astype(np.int64)


def _to_batch_first(a, time_major, unbatched):
    if a is None:
        return None
    a = np.asarray(a, dtype=np.float64)
    if unbatched:
        return a[None]
    return a.swapaxes(0, 1) if time_major and a.ndim == 3 else a


def _from_batch_first(a, time_major, unbatched):
    if unbatched:
        return a[0]
    return a.swapaxes(0, 1) if time_major and a.ndim == 3 else a


def reference_run(x, params, h0=None, c0=None, *, lengths=None, reverse=False, time_major=False,
                  dy=None, dh_n=None, dc_n=None):
    """nblstm.reference forward and backward in the user's layout, in float64.

    Returns ``y, (h_n, c_n), LSTMGrads`` shaped like the public API's results.
    """
    unbatched = np.ndim(x) == 2
    conv = lambda a: _to_batch_first(a, time_major, unbatched)  # noqa: E731
    back = lambda a: _from_batch_first(a, time_major, unbatched)  # noqa: E731
    p64 = LSTMParams(*(np.asarray(p, dtype=np.float64) for p in params))
    lengths = None if lengths is None else np.asarray(lengths, dtype=np.int64)
    y, (h, c), cache = reference.lstm_forward(conv(x), p64, conv(h0), conv(c0), lengths, reverse)
    g = reference.lstm_backward(cache, conv(dy), conv(dh_n), conv(dc_n))
    grads = LSTMGrads(back(g.dx), g.dparams, back(g.dh0), back(g.dc0))
    return back(y), (back(h), back(c)), grads


def run_api(p, *, reverse=False, backend="cpu", with_state=True, **kwargs):
    """nblstm.lstm_forward + lstm_backward on a problem; returns y, (h_n, c_n), grads."""
    h0, c0 = (p.h0, p.c0) if with_state else (None, None)
    y, state, cache = nblstm.lstm_forward(p.x, p.params, h0, c0, lengths=p.lengths, reverse=reverse,
                                          time_major=p.time_major, backend=backend, **kwargs)
    grads = nblstm.lstm_backward(cache, **p.loss.cotangents())
    return y, state, grads


def run_reference(p, *, reverse=False, with_state=True):
    h0, c0 = (p.h0, p.c0) if with_state else (None, None)
    return reference_run(p.x, p.params, h0, c0, lengths=p.lengths, reverse=reverse,
                         time_major=p.time_major, **p.loss.cotangents())


def assert_close(actual, desired, rtol, name=""):
    """|actual - desired| <= rtol * max|desired|, element-wise; exact where desired is all 0."""
    actual = np.asarray(actual)
    desired = np.asarray(desired)
    assert actual.shape == desired.shape, f"{name}: shape {actual.shape} != {desired.shape}"
    scale = float(np.max(np.abs(desired))) if desired.size else 0.0
    np.testing.assert_allclose(actual, desired, rtol=0, atol=rtol * scale, err_msg=name)


def assert_results_close(actual, desired, rtol, dtype=None):
    """Compare ``(y, (h_n, c_n), grads)`` triples (grads may be None) array by array."""
    (y, (h, c), g), (ry, (rh, rc), rg) = actual, desired
    pairs = [("y", y, ry), ("h_n", h, rh), ("c_n", c, rc)]
    if g is not None:
        assert isinstance(g, LSTMGrads)
        assert isinstance(g.dparams, LSTMParams)
        pairs += [("dx", g.dx, rg.dx), ("dW_ih", g.dparams.W_ih, rg.dparams.W_ih),
                  ("dW_hh", g.dparams.W_hh, rg.dparams.W_hh), ("db", g.dparams.b, rg.dparams.b),
                  ("dh0", g.dh0, rg.dh0), ("dc0", g.dc0, rg.dc0)]
    for name, a, r in pairs:
        assert isinstance(a, np.ndarray), f"{name}: {type(a).__name__} is not an ndarray"
        if dtype is not None:
            assert a.dtype == dtype, f"{name}: dtype {a.dtype}, expected {dtype}"
        assert_close(a, r, rtol, name)


def all_arrays(y, state, grads):
    """Every output array of a forward + backward run, named."""
    h, c = state
    return {"y": y, "h_n": h, "c_n": c, "dx": grads.dx, "dW_ih": grads.dparams.W_ih,
            "dW_hh": grads.dparams.W_hh, "db": grads.dparams.b, "dh0": grads.dh0, "dc0": grads.dc0}


def arrays_in(tree):
    """Every ndarray in nested tuples / lists / named tuples (such as an LSTMCache)."""
    return [leaf for _, leaf in _tree.leaves(tree) if isinstance(leaf, np.ndarray)]


@functools.cache
def layer_env(layer):
    """os.environ, extended so that numba can load threading layer ``layer`` in a child, or None.

    ``layer`` is "tbb", "omp" or "workqueue". The ``tbb`` wheel (test extra) puts
    libtbb.so.12 in ``<prefix>/lib``, which is not on the loader's path in a venv,
    and numba then silently uses another layer; LD_LIBRARY_PATH has to name that
    folder before the child starts. Callers set NUMBA_THREADING_LAYER themselves.
    """
    module = {"tbb": "tbbpool", "omp": "omppool", "workqueue": "workqueue"}[layer]
    extras = [[]]
    if layer == "tbb":
        try:
            dist = importlib.metadata.distribution("tbb")
            extras += [[d] for d in sorted({str(dist.locate_file(f).resolve().parent)
                                            for f in dist.files or () if f.name.startswith("libtbb.so")})]
        except importlib.metadata.PackageNotFoundError:
            pass
    for extra in extras:
        env = dict(os.environ)
        path = os.pathsep.join(extra + [p for p in [env.get("LD_LIBRARY_PATH")] if p])
        if path:
            env["LD_LIBRARY_PATH"] = path
        probe = subprocess.run([sys.executable, "-c", f"import numba.np.ufunc.{module}"], env=env,
                               capture_output=True, timeout=120)
        if probe.returncode == 0:
            return env
    return None


def require_layer(layer):
    """layer_env(layer), or a skip of the calling test where numba cannot load ``layer`` here."""
    env = layer_env(layer)
    if env is None:
        pytest.skip(f"numba cannot load its {layer} layer here"
                    + (", even with the tbb wheel's lib folder on LD_LIBRARY_PATH" if layer == "tbb" else ""))
    return dict(env)
