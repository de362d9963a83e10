"""Property-based: random shapes and options against nblstm.reference."""
import warnings

import numpy as np
import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

# When a property fails, hypothesis's pytest plugin imports its patch writer
# (libcst), whose import raises a DeprecationWarning from mypy_extensions; under
# filterwarnings=error that turns one failing test into an INTERNALERROR that
# ends the whole run. Import it now, with that warning silenced.
with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    try:
        import hypothesis.extra._patching  # noqa: F401
    except ImportError:   # libcst not installed: the plugin skips the patch too
        pass

import nblstm  # noqa: E402

from _helpers import RTOL, assert_results_close, make_problem, reference_run  # noqa: E402


@st.composite
def problems(draw):
    unbatched = draw(st.booleans())
    B = 1 if unbatched else draw(st.integers(0, 5))
    T = draw(st.integers(0, 6))
    I = draw(st.integers(1, 4))
    H = draw(st.integers(1, 5))
    dtype = draw(st.sampled_from([np.float64, np.float32]))
    time_major = False if unbatched else draw(st.booleans())
    lengths = None
    if not unbatched and draw(st.booleans()):
        lengths = np.array(draw(st.lists(st.integers(0, T), min_size=B, max_size=B)), dtype=np.int64)
    p = make_problem(B, T, I, H, dtype=dtype, seed=draw(st.integers(0, 2**32 - 1)), time_major=time_major,
                     unbatched=unbatched, lengths=lengths, scale=draw(st.sampled_from([0.1, 1.0, 4.0])))
    p.reverse = draw(st.booleans())
    p.with_state = draw(st.booleans())
    p.cotangents = {k: v for k, v in p.loss.cotangents().items() if draw(st.booleans())}
    return p


# derandomize: the same 40 examples on every run, so that CI cannot fail on a draw
# it has not seen before. Exploring further (derandomize=False, max_examples in
# the thousands) finds draws off by more than RTOL that are rounding, not bugs,
# and that torch shares, because RTOL is relative to each array's largest value:
# - a gradient of one element that cancels to below its terms (float32:
#   dx = 5.8e-4 from terms 2.3e-3 and -1.7e-3, 2.2e-5 off relative to itself;
#   float64: 3.4e-12 off);
# - float32 gates saturated by |z| ~ 10, where sigma'(z) = s (1 - s) from a
#   float32 s near 1 keeps only a few digits (dW_ih 2.7e-3 off relative to itself).
@settings(max_examples=40, deadline=None, database=None, derandomize=True)
@given(problems())
def test_matches_reference(p):
    h0, c0 = (p.h0, p.c0) if p.with_state else (None, None)
    options = dict(lengths=p.lengths, reverse=p.reverse, time_major=p.time_major)
    y, state, cache = nblstm.lstm_forward(p.x, p.params, h0, c0, **options)
    grads = nblstm.lstm_backward(cache, **p.cotangents)
    ref = reference_run(p.x, p.params, h0, c0, **options, **p.cotangents)
    assert_results_close((y, state, grads), ref, RTOL[p.dtype], dtype=p.dtype)
    # inference gives the same numbers
    y2, (h2, c2) = nblstm.lstm(p.x, p.params, h0, c0, **options)
    assert np.array_equal(y, y2) and np.array_equal(state[0], h2) and np.array_equal(state[1], c2)
    # padding is exactly 0 in y and dx
    if p.lengths is not None:
        yb = y.swapaxes(0, 1) if p.time_major else y
        dxb = grads.dx.swapaxes(0, 1) if p.time_major else grads.dx
        for b, n in enumerate(p.lengths):
            assert not yb[b, n:].any() and not dxb[b, n:].any()
