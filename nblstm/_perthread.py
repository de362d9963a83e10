"""Arrays a backend keeps per thread between calls (its scratch), in one small class.

Both backends keep the arrays that no result refers to, so that the next call
neither allocates them nor faults their pages in again (nblstm.cpu.workspace,
nblstm.cuda.workspace). Each Python thread has its own table: two threads'
calls never share an array.
"""
import threading

__all__ = ["PerThreadArrays"]


class PerThreadArrays:
    """A dict of arrays per thread; the backends choose the keys and when to replace one."""

    def __init__(self):
        self._local = threading.local()

    def table(self):
        """The calling thread's dict (made on first use)."""
        table = getattr(self._local, "table", None)
        if table is None:
            table = self._local.table = {}
        return table

    def clear(self):
        """Drop the calling thread's arrays."""
        self._local.table = {}

    def held_bytes(self):
        """Bytes the calling thread's arrays hold."""
        return sum(a.nbytes for a in self.table().values())
