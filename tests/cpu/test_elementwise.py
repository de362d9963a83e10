"""The CPU backend's element-wise helpers (nblstm.cpu.elementwise)."""
import numpy as np
import pytest

from nblstm.cpu import elementwise


@pytest.mark.parametrize("shape", [(0, 3), (1, 1), (5, 3), (17, 33), (300, 200), (31, 1100)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_transpose_is_numpys_transposing_copy(shape, dtype):
    """Both sides of the size cut (NumPy below it, blocks of rows on numba's threads above)."""
    src = np.random.default_rng(0).standard_normal(shape).astype(dtype)
    dst = np.full(shape[::-1], np.nan, dtype)
    elementwise.transpose(src, dst)
    np.testing.assert_array_equal(dst, src.T)


def test_transpose_writes_into_a_strided_view_and_nothing_else():
    src = np.arange(40 * 1000.0).reshape(40, 1000)
    out = np.full((1000 + 2, 40 + 3), -1.0)
    elementwise.transpose(src, out[1:-1, 2:-1])
    np.testing.assert_array_equal(out[1:-1, 2:-1], src.T)
    outside = np.ones(out.shape, bool)
    outside[1:-1, 2:-1] = False
    assert (out[outside] == -1.0).all()
