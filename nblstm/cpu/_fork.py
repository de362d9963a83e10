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

Layers do not nest: a thread inside the gate never enters it again (it would
wait for a fork that waits for it).
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
        # one item per layer in flight: list.append and list.pop are atomic under the GIL
        self._inside = []

    def __enter__(self):
        with self._gate:
            self._inside.append(None)
        return self

    def __exit__(self, *exc):
        self._inside.pop()
        return False

    def in_flight(self):
        """How many layers run now, in all threads of the process."""
        return len(self._inside)

    def _before_fork(self):
        self._gate.acquire()
        while self._inside:
            time.sleep(self.POLL)

    def _after_fork(self):
        self._gate.release()

    def _after_fork_in_child(self):
        # the threads that could have entered do not exist in the child
        self._inside.clear()
        self._gate.release()


#: the gate every CPU layer runs inside (see the module's docstring)
layers_in_flight = _LayersInFlight()

os.register_at_fork(before=layers_in_flight._before_fork,
                    after_in_parent=layers_in_flight._after_fork,
                    after_in_child=layers_in_flight._after_fork_in_child)
