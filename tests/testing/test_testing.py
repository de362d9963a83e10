"""nblstm.testing: the public gradient checker and the LSTM test loss."""
from typing import NamedTuple

import numpy as np
import pytest

from nblstm.testing import (
    DEFAULT_DIRECTIONS,
    ELEMENTWISE_MAX,
    CheckGradResult,
    LinearLoss,
    assert_grad_close,
    check_grad,
)

A = np.array([[2.0, 1.0, 0.0], [0.5, 3.0, -1.0], [0.0, 0.0, 1.0]])
X = np.array([0.5, -1.0, 2.0])


def quad(x):
    return x @ A @ x


def quad_grad(x):
    return (A + A.T) @ x


def test_correct_gradient_passes():
    result = check_grad(quad, quad_grad, X)
    assert isinstance(result, CheckGradResult)
    assert result.ok and result.max_abs_err < 1e-8 and result.max_rel_err < 1e-8
    assert result.n_checks == 3 and result.n_evals == 1 + 2 * 3
    assert result.leaves[0].mode == "elementwise" and result.leaves[0].numeric.shape == (3,)
    assert "passed" in result.summary()


def test_wrong_gradient_fails():
    result = check_grad(quad, lambda x: A @ x, X)
    assert not result.ok and result.max_abs_err > 0.1
    assert "FAILED" in result.summary() and result.worst.startswith("args[0][")


def test_small_error_in_one_element_is_located():
    def grad(x):
        g = quad_grad(x)
        g[2] += 1e-4
        return g
    result = check_grad(quad, grad, X)
    assert not result.ok and result.worst.startswith("args[0][2]:")


def test_too_large_step_fails():
    """SciPy's negative control: a bad step must make a correct gradient fail."""
    fun, grad = (lambda x: np.sum(np.exp(3 * x))), (lambda x: 3 * np.exp(3 * x))
    assert check_grad(fun, grad, X).ok
    assert not check_grad(fun, grad, X, eps=0.1).ok


def test_accuracy_of_central_differences():
    x = np.linspace(-2, 2, 7)
    result = check_grad(lambda x: np.sum(np.sin(x) * x), lambda x: np.cos(x) * x + np.sin(x), x)
    assert result.ok and result.max_rel_err < 1e-8


class Pair(NamedTuple):
    a: np.ndarray
    b: np.ndarray


def _tree_fun(x, pair, opts, n):
    return float(np.sum(x ** 2) * n + np.sum(pair.a * pair.b) + np.sum(np.tanh(opts["w"])) + opts["k"])


def _tree_grad(x, pair, opts, n):
    return 2 * x * n, Pair(pair.b, pair.a), {"w": 1 - np.tanh(opts["w"]) ** 2, "k": None}, None


def _tree_args(rng):
    return (rng.standard_normal((2, 3)), Pair(rng.standard_normal(4), rng.standard_normal(4)),
            {"w": rng.standard_normal(5), "k": 3}, 2)


def test_trees():
    rng = np.random.default_rng(0)
    args = _tree_args(rng)
    result = check_grad(_tree_fun, _tree_grad, args)
    assert result.ok, result.summary()
    assert [leaf.path for leaf in result.leaves] == ["args[0]", "args[1].a", "args[1].b", "args[2]['w']"]
    assert result.leaves[0].numeric.shape == (2, 3)

    def wrong(*args):
        g = _tree_grad(*args)
        return g[0], Pair(g[1].a, 2 * g[1].b), g[2], g[3]
    result = check_grad(_tree_fun, wrong, args)
    assert [leaf.ok for leaf in result.leaves] == [True, True, False, True]


def test_none_gradient_skips_an_argument():
    rng = np.random.default_rng(1)
    args = _tree_args(rng)

    def partial(*args):
        g = _tree_grad(*args)
        return (None, g[1], None, None)
    result = check_grad(_tree_fun, partial, args)
    assert result.ok and [leaf.path for leaf in result.leaves] == ["args[1].a", "args[1].b"]


def test_integer_and_none_leaves_pass_through():
    def fun(x, idx, nothing):
        assert nothing is None and idx.dtype.kind == "i"
        return float(np.sum(x[idx] ** 3))

    def grad(x, idx, nothing):
        g = np.zeros_like(x)
        np.add.at(g, idx, 3 * x[idx] ** 2)
        return g, np.zeros(idx.shape), None

    result = check_grad(fun, grad, (np.array([1.0, -2.0, 0.5]), np.array([0, 2, 2]), None))
    assert result.ok and [leaf.path for leaf in result.leaves] == ["args[0]"]


def test_arguments_are_not_modified_and_float32_is_promoted():
    x = np.array([0.5, -1.0, 2.0], dtype=np.float32)
    x.setflags(write=False)
    copy = x.copy()
    seen = []

    def fun(x):
        seen.append(x.dtype)
        return float(np.sum(x ** 2))
    result = check_grad(fun, lambda x: 2 * x, x)
    assert result.ok and np.array_equal(x, copy) and x.dtype == np.float32
    assert set(seen) == {np.dtype(np.float64)}


def test_directions():
    rng = np.random.default_rng(2)
    small, large = rng.standard_normal(ELEMENTWISE_MAX), rng.standard_normal(ELEMENTWISE_MAX + 1)
    fun = lambda a, b: float(np.sum(np.sin(a)) + np.sum(b ** 3))  # noqa: E731
    grad = lambda a, b: (np.cos(a), 3 * b ** 2)  # noqa: E731
    result = check_grad(fun, grad, (small, large), seed=0)
    assert result.ok
    assert [leaf.mode for leaf in result.leaves] == ["elementwise", "directional"]
    assert result.leaves[1].numeric.shape == (DEFAULT_DIRECTIONS,)
    result = check_grad(fun, grad, (small, large), directions=3, seed=0)
    assert result.ok and [leaf.numeric.shape for leaf in result.leaves] == [(3,), (3,)]
    assert result.n_evals == 1 + 2 * 6
    # the seed fixes the directions
    again = check_grad(fun, grad, (small, large), directions=3, seed=0)
    assert np.array_equal(result.leaves[1].numeric, again.leaves[1].numeric)
    # negative control in directional mode
    bad = check_grad(fun, lambda a, b: (np.cos(a), 3.03 * b ** 2), (small, large), seed=0)
    assert not bad.ok and bad.worst.startswith("args[1] direction")


def test_assert_grad_close():
    result = assert_grad_close(quad, quad_grad, X)
    assert result.ok
    with pytest.raises(AssertionError, match=r"gradient check FAILED(.|\n)*FAIL args\[0\]"):
        assert_grad_close(quad, lambda x: A @ x, X)


def test_tolerances():
    def grad(x):
        return quad_grad(x) * (1 + 1e-5)
    assert not check_grad(quad, grad, X).ok
    assert check_grad(quad, grad, X, rtol=1e-4).ok
    assert check_grad(quad, grad, X, rtol=0, atol=1e-3).ok
    result = check_grad(quad, quad_grad, X, rtol=0, atol=1e-12)
    assert result.atol == 1e-12 and result.rtol == 0


@pytest.mark.parametrize("fun, grad, args, exc, match", [
    (quad, lambda x: quad_grad(x)[:2], X, ValueError, r"grad: expected shape \(3,\)"),
    (lambda x: x, quad_grad, X, ValueError, r"fun: expected a real scalar"),
    (lambda x: np.nan, quad_grad, X, ValueError, r"fun: expected a finite value"),
    (quad, quad_grad, X.astype(complex), TypeError, r"complex"),
    (lambda n: 1.0, lambda n: (0,), (3,), ValueError, r"at least one floating-point array"),
    (lambda a, b: 1.0, lambda a, b: (a,), (X, X), ValueError,
     r"grad: expected a tuple or list of 2 entries \(one per argument\), got a tuple of 1$"),
    # args a 1-tuple, grad one array: say what grad should have returned instead
    (lambda a: 1.0, lambda a: a, (X,), ValueError,
     r"grad: expected a tuple or list of 1 entry \(one per argument\), got ndarray$"),
    (lambda p: 1.0, lambda p: (p.a,), (Pair(X, X),), ValueError, r"grad: expected a Pair with 2 entries"),
    (quad, quad_grad, X, ValueError, r"directions"),
    (quad, quad_grad, X, ValueError, r"eps"),
], ids=["grad_shape", "fun_not_scalar", "fun_nan", "complex", "nothing_to_check", "grad_count",
        "grad_one_array", "grad_structure", "directions", "eps"])
def test_errors(fun, grad, args, exc, match):
    kwargs = {"directions": dict(directions=0), "eps": dict(eps=-1.0)}.get(match, {})
    with pytest.raises(exc, match=match):
        check_grad(fun, grad, args, **kwargs)


def test_linear_loss():
    loss = LinearLoss.random((2, 3, 4), (2, 4), seed=0)
    assert loss.w_y.shape == (2, 3, 4) and loss.w_h.shape == loss.w_c.shape == (2, 4)
    again = LinearLoss.random((2, 3, 4), (2, 4), seed=0)
    assert all(np.array_equal(a, b) for a, b in zip(loss, again))
    rng = np.random.default_rng(1)
    y, h, c = rng.standard_normal((2, 3, 4)), rng.standard_normal((2, 4)), rng.standard_normal((2, 4))
    expected = (loss.w_y * y).sum() + (loss.w_h * h).sum() + (loss.w_c * c).sum()
    assert loss(y, (h, c)) == pytest.approx(expected, rel=1e-14)
    cot = loss.cotangents()
    assert set(cot) == {"dy", "dh_n", "dc_n"} and cot["dy"] is loss.w_y
    # its gradient is its weights
    result = check_grad(lambda y, h, c: loss(y, (h, c)), lambda y, h, c: (loss.w_y, loss.w_h, loss.w_c),
                        (y, h, c), seed=0)
    assert result.ok
    assert LinearLoss.random((3,), (1,), dtype=np.float32).w_y.dtype == np.float32
