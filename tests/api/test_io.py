"""nblstm.save / nblstm.load: bitwise round trips, and files that would need pickle refused."""
import numpy as np
import pytest

import nblstm
from nblstm import _tree


def _same(a, b):
    """Same nesting, container types, and arrays with the same dtype, shape and bits."""
    assert type(a) is type(b)
    kids_a, kids_b = _tree.children(a), _tree.children(b)
    if kids_a is None:
        if isinstance(a, np.ndarray):
            assert a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()
        else:
            assert a == b or (a != a and b != b)
        return
    assert [label for label, _ in kids_a] == [label for label, _ in kids_b]
    for (_, x), (_, y) in zip(kids_a, kids_b):
        _same(x, y)


def _trees():
    stack = nblstm.init_stack(3, 4, num_layers=2, bidirectional=True, dtype=np.float32, seed=0)
    x = np.random.default_rng(0).normal(size=(2, 5, 3))
    _, _, cache = nblstm.lstm_forward(x, stack)
    grads = nblstm.lstm_backward(cache, dy=np.ones((2, 5, 8)))
    model = nblstm.init_model(3, 4, 2, seed=0)
    return {
        "params": nblstm.init_params(3, 4, seed=0),
        "stack": stack,
        "grads": grads,
        "model": model,
        "mixed": {"model": model, "steps": [1, 2.5, float("nan"), True, "adam", None],
                  "ints": np.arange(6, dtype=np.int16).reshape(2, 3), "c": np.array([1 + 2j]),
                  "empty": np.zeros((0, 4)), "scalar": -0.0, "b": np.array([True, False])},
    }


@pytest.mark.parametrize("name", list(_trees()))
def test_round_trip_is_bitwise(tmp_path, name):
    tree = _trees()[name]
    nblstm.save(tmp_path / "t.npz", tree)
    _same(tree, nblstm.load(tmp_path / "t.npz"))


def test_a_loaded_model_predicts_the_same(tmp_path):
    model = nblstm.init_model(3, 4, 2, num_layers=2, seed=1)
    x = np.random.default_rng(1).normal(size=(4, 6, 3))
    nblstm.save(tmp_path / "m.npz", model)
    np.testing.assert_array_equal(nblstm.model_predict(x, nblstm.load(tmp_path / "m.npz")),
                                  nblstm.model_predict(x, model))


def test_a_file_with_an_object_array_is_refused(tmp_path):
    path = tmp_path / "evil.npz"
    nblstm.save(path, nblstm.init_params(2, 3, seed=0))
    with np.load(path) as data:
        entries = dict(data)
    entries["a0"] = np.array([{"payload": 1}], dtype=object)      # what only pickle could read
    np.savez(path, **entries)
    with pytest.raises(ValueError, match=r"entry 'a0' is an object array, which only pickle can read; "
                                         r"nblstm.load refuses it \(allow_pickle=False\)"):
        nblstm.load(path)


def test_files_of_other_origins_are_refused(tmp_path):
    np.savez(tmp_path / "plain.npz", w=np.zeros(3))
    with pytest.raises(ValueError, match="not a file of nblstm.save"):
        nblstm.load(tmp_path / "plain.npz")
    np.savez(tmp_path / "cls.npz", __nblstm_structure__=np.array(
        '{"format": 1, "tree": {"namedtuple": "Popen", "fields": []}}'))
    with pytest.raises(ValueError, match="unknown NamedTuple 'Popen'"):
        nblstm.load(tmp_path / "cls.npz")
    np.savez(tmp_path / "v.npz", __nblstm_structure__=np.array('{"format": 99, "tree": null}'))
    with pytest.raises(ValueError, match="expected format 1 of nblstm.save, got 99"):
        nblstm.load(tmp_path / "v.npz")


@pytest.mark.parametrize("tree, match", [
    (np.array(["a"]), r"tree: expected a numeric array, got dtype <U1"),
    ({1: np.zeros(2)}, "tree: expected string dict keys, got 1"),
    ((np.zeros(1), object()), r"tree\[1\]: expected an array, number, string, None"),
    (nblstm.testing.LeafCheck("p", "m", np.zeros(1), np.zeros(1), 0.0, 0.0, True),
     "tree: expected one of the NamedTuples LSTMParams, LSTMGrads, LSTMModel, Readout"),
])
def test_what_cannot_be_saved_is_named(tmp_path, tree, match):
    with pytest.raises(TypeError, match=match):
        nblstm.save(tmp_path / "x.npz", tree)
