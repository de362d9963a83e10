"""CPU only: a ``fork`` waits until no nblstm layer is in flight.

OpenBLAS's ``pthread_atfork`` handler, which runs inside ``fork()`` in the
forking thread, waits for OpenBLAS's worker threads. Python's ``os.fork``
calls ``fork()`` holding the GIL, and a thread that has just come back from a
BLAS call made with the GIL released (every nblstm kernel is ``nogil``) waits
for the GIL: both wait forever. A plain ``@njit(nogil=True)`` ``np.dot`` in a
thread does the same, so the root is OpenBLAS, but the promise of
docs/threads.md (threads may call nblstm at once, and workers may be started
with ``fork``) is nblstm's.

So every CPU layer (the forward and backward drivers and the lean path's
one-sequence kernel) runs inside :data:`layers_in_flight`, and an
``os.register_at_fork`` handler, which runs before ``fork()`` and so before
OpenBLAS's handler, closes the gate to new layers and waits until the layers
in flight have returned. It waits by sleeping, which releases the GIL, so the
threads it waits for can finish the Python around their kernels. The gate
opens again after the fork, in the parent and in the child. A layer that
starts while a fork waits waits for that fork (in ``Lock.acquire``, which also
releases the GIL); a fork waits at most for the layers in flight, each of
which ends by itself.

A thread already inside the gate passes through it again without waiting (a
finalizer or a signal handler may call nblstm in the middle of a layer), and
a fork started by such a thread does not wait: it would wait for itself.
"""
import os
import threading
import time

__all__ = ["layers_in_flight"]


class _LayersInFlight:
    """A context manager around one CPU layer; forks wait until none is inside."""

    #: seconds between looks while a fork waits (a layer takes from microseconds to seconds)
    POLL = 50e-6

    def __init__(self):
        # held by a forking thread from its before-fork handler to the fork's end,
        # and by an entering layer only while it counts itself in
        self._gate = threading.Lock()
        # one item per thread inside: list.append and list.pop are atomic under the GIL
        self._inside = []
        # per thread: how deep inside the gate it is, and whether its fork holds the gate
        self._local = threading.local()

    def __enter__(self):
        local = self._local
        depth = getattr(local, "depth", 0)
        if depth == 0:
            with self._gate:
                self._inside.append(None)
        local.depth = depth + 1
        return self

    def __exit__(self, *exc):
        local = self._local
        local.depth -= 1
        if local.depth == 0:
            self._inside.pop()
        return False

    def in_flight(self):
        """How many threads are inside a layer now, in the whole process."""
        return len(self._inside)

    def _before_fork(self):
        local = self._local
        local.holds_gate = False
        if getattr(local, "depth", 0):
            return                      # forking from inside a layer: waiting would never end
        self._gate.acquire()
        local.holds_gate = True
        while self._inside:
            time.sleep(self.POLL)

    def _after_fork(self):
        local = self._local
        if getattr(local, "holds_gate", False):
            local.holds_gate = False
            self._gate.release()

    def _after_fork_in_child(self):
        # only the forking thread exists in the child: the others' entries go, and so
        # does any hold on the gate (a fresh lock, as threading does for its own locks)
        self._inside[:] = [None] if getattr(self._local, "depth", 0) else []
        self._local.holds_gate = False
        self._gate = threading.Lock()


#: the gate every CPU layer runs inside (see the module's docstring)
layers_in_flight = _LayersInFlight()

os.register_at_fork(before=layers_in_flight._before_fork,
                    after_in_parent=layers_in_flight._after_fork,
                    after_in_child=layers_in_flight._after_fork_in_child)
