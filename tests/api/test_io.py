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
    with pytest.raises(ValueError, match=r"^path: expected a file written by nblstm.save \(an .npz with a "
                                         r"'__nblstm_structure__' entry\), got .*plain.npz', an .npz without it"):
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


def test_files_that_are_not_npz_archives_get_one_clear_error(tmp_path):
    import pickle
    np.save(tmp_path / "arr.npy", np.zeros(3))
    (tmp_path / "pickled.npz").write_bytes(pickle.dumps({"a": 1}))
    (tmp_path / "text.npz").write_text("hello, not an archive\n")
    (tmp_path / "empty.npz").write_bytes(b"")
    expected = r"^path: expected a file written by nblstm.save \(an .npz with a '__nblstm_structure__' entry\), got "
    with pytest.raises(ValueError, match=expected + r".*arr.npy', a single .npy array of shape \(3,\)"):
        nblstm.load(tmp_path / "arr.npy")
    for name in ("pickled.npz", "text.npz", "empty.npz"):
        with pytest.raises(ValueError, match=expected + f".*{name}', which is neither") as info:
            nblstm.load(tmp_path / name)
        assert "allow_pickle=" not in str(info.value)


def test_load_finds_the_npz_that_save_wrote_for_a_name_without_suffix(tmp_path):
    params = nblstm.init_params(2, 3, seed=0)
    nblstm.save(tmp_path / "noext", params)
    assert (tmp_path / "noext.npz").exists() and not (tmp_path / "noext").exists()
    _same(nblstm.load(tmp_path / "noext"), params)
    _same(nblstm.load(str(tmp_path / "noext")), params)
    with pytest.raises(OSError):
        nblstm.load(tmp_path / "missing")


@pytest.mark.parametrize("field, bad", [("W_hh", np.zeros(12)), ("W_hh", np.zeros((12, 4))),
                                        ("W_ih", np.zeros((8, 2))), ("b", np.zeros(8)), ("b", 1.0)])
def test_lstm_params_of_inconsistent_shapes_are_refused(tmp_path, field, bad):
    nblstm.save(tmp_path / "p.npz", {"layer": nblstm.init_params(2, 3, seed=0)._replace(**{field: bad})})
    with pytest.raises(ValueError, match=r"^tree\['layer'\]: expected LSTMParams with W_ih of shape \(4H, I\), "
                                         r"W_hh \(4H, H\) and b \(4H,\), got W_ih"):
        nblstm.load(tmp_path / "p.npz")
