"""What both backends' configurations share: every assignment checked, and knobs set for a block.

``nblstm.cpu.config`` and ``nblstm.cuda.config`` are dataclasses built on
:class:`Knobs`. Assigning a knob checks its type and its allowed values and
names the knob in the error (``slices_gemm="mkll"`` used to mean "auto"
silently); :meth:`Knobs.override` sets knobs for a ``with`` block and restores
them after it. docs/configuration.md lists every knob.
"""
from __future__ import annotations

import contextlib
import dataclasses
import numbers

__all__ = ["Knobs", "knob"]

#: what each name in a knob's annotation admits (the annotations are strings)
_TYPES = {"int": numbers.Integral, "bool": bool, "str": str, "None": type(None)}


def knob(default, *, choices=None, minimum=None, multiple_of=None):
    """A dataclass field with the values a :class:`Knobs` assignment accepts.

    Parameters
    ----------
    default : object
        The default value.
    choices : tuple, optional
        The values allowed besides None (where the annotation admits None).
    minimum : int, optional
        The smallest value allowed.
    multiple_of : int, optional
        Values must be multiples of this.
    """
    return dataclasses.field(default=default, metadata=dict(choices=choices, minimum=minimum,
                                                            multiple_of=multiple_of))


class Knobs:
    """Base of the backends' configuration dataclasses: checked assignment, :meth:`override`.

    Subclasses set ``_NAME`` (``"nblstm.cpu.config"``), the name errors give.
    The configuration is one object per process, shared by all threads, like
    numba's and NumPy's own settings.
    """

    _NAME = "config"

    def __setattr__(self, name, value):
        field = {f.name: f for f in dataclasses.fields(self)}.get(name)
        if field is None:
            raise AttributeError(f"{self._NAME}: no knob {name!r}; the knobs are "
                                 f"{', '.join(f.name for f in dataclasses.fields(self))}")
        object.__setattr__(self, name, _checked(f"{self._NAME}.{name}", field, value))

    @contextlib.contextmanager
    def override(self, **knobs):
        """Set ``knobs`` for the body of a ``with`` block; the previous values come back after it.

        Parameters
        ----------
        **knobs
            Knob names and values, checked as an assignment checks them.

        Yields
        ------
        Knobs
            This configuration.

        Raises
        ------
        AttributeError
            An unknown knob (nothing is changed).
        TypeError, ValueError
            A value of the wrong type or outside the allowed values (the knobs
            set before it are restored).

        Examples
        --------
        >>> import nblstm
        >>> with nblstm.cpu.config.override(path="serial"):
        ...     nblstm.cpu.config.path
        'serial'
        >>> nblstm.cpu.config.path is None
        True
        """
        unknown = [name for name in knobs if name not in {f.name for f in dataclasses.fields(self)}]
        if unknown:
            setattr(self, unknown[0], knobs[unknown[0]])      # raises, naming the knob
        saved = {name: getattr(self, name) for name in knobs}
        try:
            for name, value in knobs.items():
                setattr(self, name, value)
            yield self
        finally:
            for name, value in saved.items():
                object.__setattr__(self, name, value)


def _checked(name, field, value):
    """``value`` if the annotation and the metadata of ``field`` admit it; else TypeError / ValueError."""
    kinds = [k.strip() for k in field.type.split("|")]
    allowed = tuple(_TYPES[k] for k in kinds)
    if not isinstance(value, allowed) or (isinstance(value, bool) and "bool" not in kinds):
        raise TypeError(f"{name}: expected {field.type}, got {type(value).__name__} {value!r}")
    if value is None or isinstance(value, bool):
        return value
    meta = field.metadata
    choices = meta.get("choices")
    if choices is not None and value not in choices:
        extra = " or None" if "None" in kinds else ""
        raise ValueError(f"{name}: expected one of {', '.join(map(repr, choices))}{extra}, got {value!r}")
    if meta.get("minimum") is not None and value < meta["minimum"]:
        raise ValueError(f"{name}: expected at least {meta['minimum']}, got {value!r}")
    if meta.get("multiple_of") and value % meta["multiple_of"]:
        raise ValueError(f"{name}: expected a multiple of {meta['multiple_of']}, got {value!r}")
    return int(value) if isinstance(value, numbers.Integral) else value
