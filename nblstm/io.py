"""Save and load trees of arrays without pickle: one ``.npz``, the structure as JSON beside the arrays.

:func:`save` writes the arrays of an :class:`nblstm.LSTMParams`, a stack, an
:class:`nblstm.LSTMGrads`, an :class:`nblstm.LSTMModel`, or any nesting of
tuples, lists, dicts with string keys and those NamedTuples, with numbers,
strings, booleans and None among the leaves. :func:`load` reads them back with
``numpy.load(..., allow_pickle=False)``: a file from elsewhere is data, never code.
"""
from __future__ import annotations

import json
import os
import zipfile

import numpy as np

from . import _tree
from .model import LSTMModel, Readout
from .params import LSTMGrads, LSTMParams

__all__ = ["save", "load"]

#: the NamedTuple classes a file may name; load builds nothing else
NAMEDTUPLES = {cls.__name__: cls for cls in (LSTMParams, LSTMGrads, LSTMModel, Readout)}
#: the key of the JSON structure in the .npz, and the format's version
STRUCTURE_KEY = "__nblstm_structure__"
FORMAT = 1


def _encode(node, arrays, path):
    if node is None:
        return None
    if isinstance(node, (bool, np.bool_)):
        return {"bool": bool(node)}
    if isinstance(node, (int, np.integer)):
        return {"int": int(node)}
    if isinstance(node, (float, np.floating)):
        return {"float": float(node)}                  # json writes NaN and Infinity, and reads them back
    if isinstance(node, str):
        return {"str": node}
    if isinstance(node, np.ndarray):
        if node.dtype.kind not in "biufc":
            raise TypeError(f"{path}: expected a numeric array, got dtype {node.dtype}")
        arrays[f"a{len(arrays)}"] = node
        return {"array": f"a{len(arrays) - 1}"}
    if _tree.is_namedtuple(node):
        name = type(node).__name__
        if NAMEDTUPLES.get(name) is not type(node):
            raise TypeError(f"{path}: expected one of the NamedTuples {', '.join(NAMEDTUPLES)}, got "
                            f"{type(node).__module__}.{name} (save it as a tuple or a dict)")
        return {"namedtuple": name, "fields": [_encode(v, arrays, f"{path}.{f}") for f, v in zip(node._fields, node)]}
    if isinstance(node, (tuple, list)):
        kind = "tuple" if isinstance(node, tuple) else "list"
        return {kind: [_encode(v, arrays, f"{path}[{k}]") for k, v in enumerate(node)]}
    if isinstance(node, dict):
        bad = [k for k in node if not isinstance(k, str)]
        if bad:
            raise TypeError(f"{path}: expected string dict keys, got {bad[0]!r}")
        return {"dict": [[k, _encode(v, arrays, f"{path}[{k!r}]")] for k, v in node.items()]}
    raise TypeError(f"{path}: expected an array, number, string, None, tuple, list, dict or one of the "
                    f"NamedTuples {', '.join(NAMEDTUPLES)}, got {type(node).__name__}")


def save(path: str | os.PathLike, tree) -> None:
    """Write a tree of arrays to one ``.npz`` file that :func:`load` reads without pickle.

    Parameters
    ----------
    path : str or os.PathLike
        The file (``numpy.savez`` adds ``.npz`` to a name without it).
    tree : array, tuple, list, dict, NamedTuple, number, str or None, nested
        What to save: LSTMParams, a stack, LSTMGrads, an LSTMModel, or any
        nesting of tuples, lists, dicts with string keys and those
        NamedTuples. Leaves are numeric NumPy arrays (any shape and dtype,
        bool to complex, saved bit for bit), Python or NumPy numbers,
        booleans, strings and None.

    Raises
    ------
    TypeError
        A leaf or a node of another kind (an object or string array, a class
        other than the four NamedTuples, a dict key that is not a string); the
        message gives its path, e.g. ``tree[1].W_hh``.
    OSError
        The file cannot be written.

    See Also
    --------
    load : Reads the file back.
    numpy.savez : The container.

    References
    ----------
    .. [1] NumPy, "NPY format" (``.npz`` is a zip of ``.npy`` files; object
       arrays need pickle, which ``allow_pickle=False`` refuses),
       https://numpy.org/doc/stable/reference/generated/numpy.lib.format.html

    Examples
    --------
    >>> import nblstm, tempfile, os
    >>> stack = nblstm.init_stack(3, 4, num_layers=2, seed=0)
    >>> path = os.path.join(tempfile.mkdtemp(), "stack.npz")
    >>> nblstm.save(path, stack)
    >>> nblstm.load(path)[1][0].W_ih.shape
    (16, 4)
    """
    arrays = {}
    structure = _encode(tree, arrays, "tree")
    text = json.dumps({"format": FORMAT, "tree": structure})
    np.savez(path, **{STRUCTURE_KEY: np.array(text)}, **arrays)


def _decode(node, arrays, path):
    if node is None:
        return None
    if not isinstance(node, dict) or len(node) not in (1, 2):
        raise ValueError(f"{path}: not a node of nblstm.save's structure: {node!r:.80}")
    if "array" in node:
        if node["array"] not in arrays:
            raise ValueError(f"{path}: the file has no array {node['array']!r}")
        return arrays[node["array"]]
    for kind, cast in (("bool", bool), ("int", int), ("float", float), ("str", str)):
        if kind in node:
            return cast(node[kind])
    if "namedtuple" in node:
        cls = NAMEDTUPLES.get(node["namedtuple"])
        if cls is None:
            raise ValueError(f"{path}: unknown NamedTuple {node['namedtuple']!r}; nblstm.load builds only "
                             f"{', '.join(NAMEDTUPLES)}")
        built = cls(*(_decode(v, arrays, f"{path}.{f}") for f, v in zip(cls._fields, node["fields"])))
        if cls is LSTMParams:
            _check_layer(built, path)
        return built
    if "tuple" in node:
        return tuple(_decode(v, arrays, f"{path}[{k}]") for k, v in enumerate(node["tuple"]))
    if "list" in node:
        return [_decode(v, arrays, f"{path}[{k}]") for k, v in enumerate(node["list"])]
    if "dict" in node:
        return {k: _decode(v, arrays, f"{path}[{k!r}]") for k, v in node["dict"]}
    raise ValueError(f"{path}: not a node of nblstm.save's structure: {node!r:.80}")


def _check_layer(p, path):
    """Refuse an LSTMParams whose arrays do not fit together: W_ih (4H, I), W_hh (4H, H), b (4H,)."""
    shapes = [getattr(a, "shape", None) for a in p]
    ok = all(shape is not None for shape in shapes) and len(shapes[1]) == 2 and shapes[1][1] >= 1
    if ok:
        H = shapes[1][1]
        ok = (shapes[1][0] == 4 * H and len(shapes[0]) == 2 and shapes[0][0] == 4 * H and shapes[0][1] >= 1
              and shapes[2] == (4 * H,))
    if not ok:
        got = ", ".join(f"{f} {s if s is not None else type(a).__name__}" for f, s, a in zip(p._fields, shapes, p))
        raise ValueError(f"{path}: expected LSTMParams with W_ih of shape (4H, I), W_hh (4H, H) and b (4H,), "
                         f"got {got}")


def _not_ours(name, got):
    raise ValueError(f"path: expected a file written by nblstm.save (an .npz with a {STRUCTURE_KEY!r} entry), "
                     f"got {got}")


def _open(path):
    """``numpy.load``'s NpzFile of ``path`` (or of ``path + ".npz"``, the name save gave it)."""
    name = os.fspath(path)
    if not os.path.exists(name) and os.path.exists(f"{name}.npz"):
        name = f"{name}.npz"                     # save("model", ...) wrote model.npz, as numpy.savez does
    try:
        data = np.load(name, allow_pickle=False)
    except (ValueError, EOFError, zipfile.BadZipFile):   # a pickle, text, an empty or broken file
        _not_ours(name, f"{name!r}, which is neither an .npz archive nor an .npy array")
    if not isinstance(data, np.lib.npyio.NpzFile):
        _not_ours(name, f"{name!r}, a single .npy array of shape {data.shape}")
    return name, data


def load(path: str | os.PathLike):
    """Read a tree written by :func:`save`, with ``allow_pickle=False``.

    Parameters
    ----------
    path : str or os.PathLike
        A file written by :func:`save`. When it does not exist but
        ``path + ".npz"`` does (the name :func:`save` gives a path without
        the suffix), that file is read.

    Returns
    -------
    object
        The tree: the same nesting, container types and NamedTuples, with
        arrays of the saved shapes, dtypes and bits (NumPy scalars among the
        leaves come back as Python numbers).

    Raises
    ------
    ValueError
        The file is not one of :func:`save`'s (not an .npz, e.g. an .npy, a
        pickle or a text file; no structure; another format version; a
        structure that names an unknown class or a missing array), an
        LSTMParams whose array shapes do not fit together (W_ih (4H, I), W_hh
        (4H, H), b (4H,)), or it holds an object array (which only pickle
        could read: refused).
    OSError
        The file cannot be read.

    See Also
    --------
    save : Writes the file.

    References
    ----------
    .. [1] NumPy, ``numpy.load`` (``allow_pickle=False``: "loading
       object arrays [...] can execute arbitrary code"),
       https://numpy.org/doc/stable/reference/generated/numpy.load.html
    """
    path, data = _open(path)
    with data:
        if STRUCTURE_KEY not in data.files:
            _not_ours(path, f"{path!r}, an .npz without it")
        arrays = {}
        for name in data.files:
            try:
                arrays[name] = data[name]
            except ValueError as exc:
                raise ValueError(f"{os.fspath(path)}: entry {name!r} is an object array, which only pickle "
                                 f"can read; nblstm.load refuses it (allow_pickle=False): {exc}") from exc
    meta = arrays.pop(STRUCTURE_KEY)
    if meta.dtype.kind != "U" or meta.shape != ():
        raise ValueError(f"{os.fspath(path)}: the structure entry is not a JSON string")
    try:
        meta = json.loads(str(meta[()]))
    except json.JSONDecodeError as exc:
        raise ValueError(f"{os.fspath(path)}: the structure is not valid JSON: {exc}") from exc
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise ValueError(f"{os.fspath(path)}: expected format {FORMAT} of nblstm.save, got "
                         f"{meta.get('format') if isinstance(meta, dict) else meta!r}")
    for name, a in arrays.items():
        if a.dtype.kind not in "biufc":
            raise ValueError(f"{os.fspath(path)}: entry {name!r}: expected a numeric array, got dtype {a.dtype}")
    return _decode(meta["tree"], arrays, "tree")
