"""Say, through ``logging.getLogger("nblstm")``, when nblstm's kernels compile and for how long.

A cold numba cache costs tens of seconds of compiling, spread over the first
calls of each path and dtype; without a word, that looks like a hang or a slow
library. numba announces every compilation of a function that its disk cache
did not have as a ``numba:compile`` event (``numba.core.event``); a listener
registered here logs, at INFO, the outermost compilation of an nblstm
function on each thread (the helpers it pulls in compile inside it) when it
starts (with its arrays' dtypes; the whole signature at DEBUG) and when it
ends, with the seconds it took. A compilation happens where the cache lacks
the function for these argument types: the first use of a path or dtype, or
a new nblstm or numba. A warm cache logs nothing:
numba loads from disk without the event. ``nblstm.precompile`` compiles ahead
of time instead.

References
----------
numba's event API: https://numba.readthedocs.io/en/stable/developer/event_api.html
"""
import logging
import threading
import time

from numba.core import event

__all__ = ["logger", "CompileLog", "listen"]

logger = logging.getLogger("nblstm")


class CompileLog(event.Listener):
    """The listener: INFO at the start and end of the outermost compilation of an nblstm function."""

    def __init__(self):
        self._local = threading.local()

    def _ours(self, ev):
        dispatcher = (ev.data or {}).get("dispatcher")
        module = getattr(getattr(dispatcher, "py_func", None), "__module__", "") or ""
        return dispatcher if module.split(".")[0] == "nblstm" else None

    def on_start(self, ev):
        depth = getattr(self._local, "depth", 0)
        self._local.depth = depth + 1
        dispatcher = self._ours(ev)
        if depth == 0 and dispatcher is not None:
            self._local.started = (time.perf_counter(), dispatcher)
            args = ev.data.get("args")
            logger.info("compiling %s for %s (not in numba's cache)", _name(dispatcher),
                        _dtypes(args))
            logger.debug("compiling %s for the argument types %s", _name(dispatcher), _types(args))

    def on_end(self, ev):
        self._local.depth = getattr(self._local, "depth", 1) - 1
        started = getattr(self._local, "started", None)
        if self._local.depth == 0 and started is not None:
            self._local.started = None
            t0, dispatcher = started
            # no word on failure: numba's Event.is_failed answers the reverse (numba 0.59-0.61
            # at least), and a failed compilation raises to the caller anyway
            logger.info("compiled %s in %.1f s", _name(dispatcher), time.perf_counter() - t0)


def _name(dispatcher):
    f = dispatcher.py_func
    return f"{f.__module__}.{f.__qualname__}"


def _types(args):
    return "(" + ", ".join(str(a) for a in args or ()) + ")"


def _dtypes(args):
    """The dtypes of the array arguments, e.g. ``float32``: the short form of the signature."""
    found = sorted({str(a.dtype) for a in args or () if hasattr(a, "ndim") and hasattr(a, "dtype")})
    return ", ".join(found) or "scalars"


_registered = []


def listen():
    """Register :class:`CompileLog` with numba, once per process."""
    if not _registered:
        listener = CompileLog()
        event.register("numba:compile", listener)
        _registered.append(listener)
