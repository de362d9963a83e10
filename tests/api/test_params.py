"""init_stack and ravel."""
import re
from typing import NamedTuple

import numpy as np
import pytest

from nblstm.params import LSTMGrads, LSTMParams, init_params, init_stack, ravel

# ---------------------------------------------------------------------------
# init_stack
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("num_layers", [1, 2, 3])
@pytest.mark.parametrize("bidirectional", [False, True])
def test_init_stack_shapes(num_layers, bidirectional):
    I, H = 3, 4
    D = 2 if bidirectional else 1
    stack = init_stack(I, H, num_layers, bidirectional=bidirectional, seed=1)
    assert isinstance(stack, tuple) and len(stack) == num_layers
    for l, layer in enumerate(stack):
        assert isinstance(layer, tuple) and len(layer) == D
        for p in layer:
            assert isinstance(p, LSTMParams)
            assert p.W_ih.shape == (4 * H, I if l == 0 else D * H)
            assert p.W_hh.shape == (4 * H, H)
            assert p.b.shape == (4 * H,)
            assert p.W_ih.dtype == np.float64


def test_init_stack_seed_dtype_forget_bias():
    a = init_stack(2, 3, 2, bidirectional=True, seed=7, dtype=np.float32, forget_bias=0.0)
    b = init_stack(2, 3, 2, bidirectional=True, seed=7, dtype=np.float32, forget_bias=0.0)
    c = init_stack(2, 3, 2, bidirectional=True, seed=8, dtype=np.float32, forget_bias=0.0)
    flat_a, flat_b, flat_c = ravel(a)[0], ravel(b)[0], ravel(c)[0]
    assert flat_a.dtype == np.float32
    np.testing.assert_array_equal(flat_a, flat_b)
    assert not np.array_equal(flat_a, flat_c)
    # one generator for the whole stack: the layers and directions differ from each other
    assert not np.array_equal(a[0][0].W_hh, a[0][1].W_hh)
    assert not np.array_equal(a[0][0].W_hh, a[1][0].W_hh)
    # with forget_bias=0 every entry is inside U(-1/sqrt(H), 1/sqrt(H)); with 1 the f block shifts
    assert np.all(np.abs(flat_a) <= 1 / np.sqrt(3))
    shifted = init_stack(2, 3, 2, seed=7, forget_bias=1.0)
    assert np.all(shifted[1][0].b[3:6] > 1 - 1 / np.sqrt(3))


def test_init_stack_generator_seed():
    rng = np.random.default_rng(0)
    a = init_stack(2, 3, 1, seed=rng)
    b = init_stack(2, 3, 1, seed=rng)
    assert not np.array_equal(a[0][0].W_ih, b[0][0].W_ih)      # the generator advanced


@pytest.mark.parametrize("kwargs, match", [
    (dict(input_size=0, hidden_size=3), "input_size"),
    (dict(input_size=2, hidden_size=-1), "hidden_size"),
    (dict(input_size=2, hidden_size=3, num_layers=0), "num_layers"),
])
def test_init_stack_bad_sizes(kwargs, match):
    with pytest.raises(ValueError, match=match):
        init_stack(**kwargs)


def test_init_stack_bad_dtype():
    with pytest.raises(TypeError, match="dtype"):
        init_stack(2, 3, dtype=np.int32)


# ---------------------------------------------------------------------------
# ravel
# ---------------------------------------------------------------------------

def _assert_same_tree(a, b):
    assert type(a) is type(b)
    if isinstance(a, np.ndarray):
        assert a.shape == b.shape and a.dtype == b.dtype
        np.testing.assert_array_equal(a, b)
    elif isinstance(a, dict):
        assert a.keys() == b.keys()
        for k in a:
            _assert_same_tree(a[k], b[k])
    elif isinstance(a, (tuple, list)):
        assert len(a) == len(b)
        for x, y in zip(a, b):
            _assert_same_tree(x, y)
    else:
        assert a == b


class Readout(NamedTuple):
    W: np.ndarray
    b: np.ndarray


def _trees():
    rng = np.random.default_rng(0)
    p = init_params(2, 3, seed=0)
    stack = init_stack(2, 3, 2, bidirectional=True, seed=1)
    grads = LSTMGrads(rng.normal(size=(4, 5, 2)), stack, rng.normal(size=(4, 4, 3)), rng.normal(size=(4, 4, 3)))
    return {
        "params": p,
        "params32": init_params(2, 3, seed=0, dtype=np.float32),
        "stack": stack,
        "grads": grads,
        "with_readout": (stack, Readout(rng.normal(size=(6, 1)), np.zeros(1))),
        "list_and_dict": [p, {"w": rng.normal(size=(2, 2)), "a": np.arange(3.0)}, None],
    }


@pytest.mark.parametrize("name", list(_trees()))
def test_ravel_round_trip(name):
    tree = _trees()[name]
    theta, unravel = ravel(tree)
    assert theta.ndim == 1 and theta.flags.c_contiguous
    leaves = []

    def collect(t):
        if isinstance(t, np.ndarray):
            leaves.append(t)
        elif isinstance(t, dict):
            for k in sorted(t):
                collect(t[k])
        elif isinstance(t, (tuple, list)):
            for x in t:
                collect(x)
    collect(tree)
    assert theta.size == sum(a.size for a in leaves)
    np.testing.assert_array_equal(theta, np.concatenate([a.ravel() for a in leaves]))
    back = unravel(theta)
    _assert_same_tree(tree, back)
    # fresh arrays: neither theta nor the original leaves are aliased
    collect_back = []
    leaves_orig = list(leaves)
    leaves.clear()
    collect(back)
    collect_back = list(leaves)
    for a, b in zip(leaves_orig, collect_back):
        assert not np.shares_memory(a, b)
        assert not np.shares_memory(theta, b)


def test_ravel_is_a_copy_and_order():
    p = init_params(1, 1, seed=0)
    theta, unravel = ravel(p)
    np.testing.assert_array_equal(theta, np.concatenate([p.W_ih.ravel(), p.W_hh.ravel(), p.b]))
    theta[:] = 0
    assert np.any(p.W_ih != 0)                          # ravel copied
    q = unravel(np.arange(theta.size, dtype=float))
    np.testing.assert_array_equal(q.W_ih.ravel(), [0, 1, 2, 3])
    np.testing.assert_array_equal(q.W_hh.ravel(), [4, 5, 6, 7])
    np.testing.assert_array_equal(q.b, [8, 9, 10, 11])


def test_ravel_non_contiguous_leaves():
    a = np.arange(12.0).reshape(3, 4)
    tree = (a.T, a[::-1, ::2])
    theta, unravel = ravel(tree)
    np.testing.assert_array_equal(theta, np.concatenate([a.T.ravel(), a[::-1, ::2].ravel()]))
    back = unravel(theta)
    np.testing.assert_array_equal(back[0], a.T)
    np.testing.assert_array_equal(back[1], a[::-1, ::2])


def test_ravel_mixed_dtypes():
    tree = (np.ones(2, np.float32), np.ones(3, np.float64))
    theta, unravel = ravel(tree)
    assert theta.dtype == np.float64
    back = unravel(theta)
    assert back[0].dtype == np.float32 and back[1].dtype == np.float64


def test_unravel_accepts_float64_for_float32_leaves():
    # scipy.optimize hands float64 vectors back even for float32 weights
    p32 = init_params(2, 3, seed=0, dtype=np.float32)
    theta, unravel = ravel(p32)
    assert theta.dtype == np.float32
    back = unravel(theta.astype(np.float64))
    assert back.W_ih.dtype == np.float32
    np.testing.assert_array_equal(back.W_ih, p32.W_ih)


def test_ravel_empty_tree():
    theta, unravel = ravel(())
    assert theta.shape == (0,) and theta.dtype == np.float64
    assert unravel(np.zeros(0)) == ()


@pytest.mark.parametrize("bad", [np.zeros(71), np.zeros(73), np.zeros((72, 1)), np.zeros((1, 72)), np.float64(0)])
def test_unravel_wrong_length(bad):
    theta, unravel = ravel(init_params(2, 3, seed=0))
    assert theta.size == 72
    with pytest.raises(ValueError, match=r"theta: expected a 1-D vector of 72 elements, got shape"):
        unravel(bad)


@pytest.mark.parametrize("dtype", [np.complex128, object, "U3"])
def test_unravel_wrong_dtype(dtype):
    theta, unravel = ravel(init_params(2, 3, seed=0))
    with pytest.raises(ValueError, match=r"theta: expected a real vector that casts to float64, got dtype"):
        unravel(np.zeros(theta.size, dtype=dtype))


def test_unravel_float_into_integer_leaves_rejected():
    theta, unravel = ravel((np.arange(3), np.ones(2)))
    with pytest.raises(ValueError, match="int64"):
        unravel(np.zeros(5))


def test_ravel_bad_leaf():
    with pytest.raises(TypeError, match=r"tree\[1\]: expected an array"):
        ravel((np.ones(2), "abc"))
    with pytest.raises(TypeError, match=r"tree\.W_ih: expected a numeric array, got dtype object"):
        ravel(LSTMParams(np.array([None]), np.ones(1), np.ones(1)))


@pytest.mark.parametrize("seed, error", [("a", TypeError), (1.5, TypeError), (-1, ValueError)])
@pytest.mark.parametrize("init", [init_params, init_stack])
def test_bad_seed_names_the_argument(init, seed, error):
    # numpy's own message ("expected non-negative integer") names no argument
    with pytest.raises(error, match=rf"^seed: expected None, an int >= 0 .*got {re.escape(repr(seed))}$"):
        init(2, 3, seed=seed)


def _sized(name, value):
    if name == "num_layers":
        return init_stack(3, 4, value)
    return init_params(**dict(dict(input_size=3, hidden_size=4), **{name: value}))


@pytest.mark.parametrize("name", ["input_size", "hidden_size", "num_layers"])
def test_sizes_of_the_wrong_type_are_a_type_error_and_bad_values_a_value_error(name):
    # The project's rule: TypeError for what an argument is, ValueError for its value.
    for wrong_type in (3.5, "3", True, None):
        with pytest.raises(TypeError, match=rf"^{name}: expected a positive integer, got "):
            _sized(name, wrong_type)
    for wrong_value in (0, -2):
        with pytest.raises(ValueError, match=rf"^{name}: expected a positive integer, got "):
            _sized(name, wrong_value)


def test_unravel_pickles_and_unpickles_to_the_same_inverse():
    """SciPy users send unravel to worker processes (multiprocessing, joblib, Dask): it was a closure."""
    import pickle

    stack = init_stack(3, 4, 2, bidirectional=True, seed=0, dtype=np.float32)
    tree = {"lstm": stack, "readout": (np.ones((2, 8)), None)}
    theta, unravel = ravel(tree)
    again = pickle.loads(pickle.dumps(unravel))
    _assert_same_tree(again(theta), unravel(theta))
    _assert_same_tree(again(theta), tree)
    assert isinstance(again(theta)["lstm"][1][0], LSTMParams)
    with pytest.raises(ValueError, match="expected a 1-D vector of"):
        again(theta[1:])
