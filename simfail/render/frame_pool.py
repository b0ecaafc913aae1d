"""Per-episode frame arrays reused from one group to the next.

Every episode's frames are drawn into ``uint8 (T, H, W, 3)`` arrays, one per view (about 16 MB
per view at 256x256 and 81 frames). Allocated fresh for each episode, the kernel maps new pages
for them and every page faults on its first write: on a 2-core CPU machine a group's fresh
arrays cost about as much system time as drawing a tenth of its frames (``perf`` on one
generate group: 105,885 page faults, 21% of them in the copy into fresh frame arrays; see
docs/scale.md). A :class:`FramePool` keeps the arrays of written episodes and hands them to the
next group's render worker, so their pages stay mapped and warm.

Only arrays the pool itself issued come back into it (a second :meth:`FramePool.give` of the
same array, or an array from elsewhere, is ignored), and it never holds more than ``max_bytes``
of free arrays; what is not given back (an episode whose group failed to write) is simply freed
by Python. Every frame is overwritten before it is read (drawn, or copied from the expert's
prefix), so reused memory cannot change a pixel.
"""

from __future__ import annotations

import threading
import weakref

import numpy as np

__all__ = ["DEFAULT_POOL_BYTES", "FramePool"]

#: free frame memory a pool keeps at most [bytes]: a little more than one group of ten
#: episodes at 3 views x 81 frames x 256x256 (478 MB), the arrays the next group needs while
#: the previous one is encoded
DEFAULT_POOL_BYTES = 768 << 20


class FramePool:
    """Thread-safe free lists of ``uint8`` frame arrays, by shape.

    Args:
        max_bytes: Most bytes of free arrays kept; arrays given back beyond it are dropped.
    """

    def __init__(self, max_bytes: int = DEFAULT_POOL_BYTES):
        self.max_bytes = int(max_bytes)
        self._free: dict[tuple[int, ...], list[np.ndarray]] = {}
        self._free_bytes = 0
        #: arrays issued and not yet given back, by id (weak: a dropped array leaves by itself)
        self._out: weakref.WeakValueDictionary[int, np.ndarray] = weakref.WeakValueDictionary()
        self._lock = threading.Lock()
        #: arrays handed out that were reused / newly allocated (for tests and the bench)
        self.reused = 0
        self.allocated = 0

    @property
    def free_bytes(self) -> int:
        """Bytes of the arrays now held free."""
        return self._free_bytes

    def take(self, shape: tuple[int, ...]) -> np.ndarray:
        """A ``uint8`` array of ``shape`` with undefined contents (reused when one is free)."""
        shape = tuple(int(s) for s in shape)
        with self._lock:
            free = self._free.get(shape)
            if free:
                arr = free.pop()
                self._free_bytes -= arr.nbytes
                self.reused += 1
            else:
                arr = None
        if arr is None:
            arr = np.empty(shape, dtype=np.uint8)
            with self._lock:
                self.allocated += 1
        with self._lock:
            self._out[id(arr)] = arr
        return arr

    def take_frames(self, views: tuple[str, ...], n: int, height: int, width: int) -> dict[str, np.ndarray]:
        """``{view: uint8 (n, height, width, 3)}``, one array per view."""
        return {v: self.take((n, height, width, 3)) for v in views}

    def give(self, arr: np.ndarray) -> bool:
        """Return an array this pool issued once nothing reads or writes it any more.
        Returns whether it was kept (False: not issued here, given twice, or the pool full)."""
        with self._lock:
            if self._out.get(id(arr)) is not arr:
                return False
            del self._out[id(arr)]
            if self._free_bytes + arr.nbytes > self.max_bytes:
                return False
            self._free.setdefault(arr.shape, []).append(arr)
            self._free_bytes += arr.nbytes
            return True

    def give_frames(self, frames: dict[str, np.ndarray]) -> None:
        """:meth:`give` every view's array of one episode."""
        for arr in frames.values():
            self.give(arr)

    def clear(self) -> None:
        """Drop every free array (the memory goes back to Python)."""
        with self._lock:
            self._free.clear()
            self._free_bytes = 0
