"""Trees of arrays (nested tuples, lists, dicts, NamedTuples), walked in one place.

:func:`nblstm.ravel`, :mod:`nblstm.testing`, the tests and the benchmarks'
memory probe all walk trees through these functions. Labels follow Python's
syntax for reaching a child: ``.W_hh`` (NamedTuple field), ``[1]`` (sequence
index), ``['key']`` (dict key).
"""

__all__ = ["is_namedtuple", "children", "rebuild", "map_leaves", "leaves"]


def is_namedtuple(obj):
    """True for an instance of a NamedTuple class."""
    return isinstance(obj, tuple) and hasattr(type(obj), "_fields")


def children(tree, sort_keys=False):
    """(label, child) pairs of a container, or None for a leaf (anything else, None included).

    Dict entries come in insertion order, or sorted by key with ``sort_keys``.
    """
    if is_namedtuple(tree):
        return [(f".{name}", value) for name, value in zip(tree._fields, tree)]
    if isinstance(tree, (tuple, list)):
        return [(f"[{k}]", value) for k, value in enumerate(tree)]
    if isinstance(tree, dict):
        keys = sorted(tree) if sort_keys else list(tree)
        return [(f"[{k!r}]", tree[k]) for k in keys]
    return None


def rebuild(tree, values, sort_keys=False):
    """A container like ``tree`` (same type, NamedTuple class, dict keys) holding ``values``."""
    if is_namedtuple(tree):
        return type(tree)(*values)
    if isinstance(tree, dict):
        return dict(zip(sorted(tree) if sort_keys else tree.keys(), values))
    return type(tree)(values)


def map_leaves(fn, tree, path="tree", sort_keys=False):
    """``tree`` with every leaf replaced by ``fn(path, leaf)``, containers rebuilt."""
    kids = children(tree, sort_keys)
    if kids is None:
        return fn(path, tree)
    return rebuild(tree, [map_leaves(fn, child, path + label, sort_keys) for label, child in kids],
                   sort_keys)


def leaves(tree, path="tree", sort_keys=False):
    """Every leaf of ``tree`` as a (path, leaf) pair, in tree order."""
    kids = children(tree, sort_keys)
    if kids is None:
        return [(path, tree)]
    return [pair for label, child in kids for pair in leaves(child, path + label, sort_keys)]
