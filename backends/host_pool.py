"""A caching allocator for large host (CPU) buffers.

Why: a large numpy array is a fresh ``mmap`` each time, and the kernel zero-fills and maps its
pages on first touch. For a fused kernel that reads and writes memory once, that first touch
costs as much as the kernel itself (measured in bench/RESULTS.md). The pool keeps the buffers of
dead CPU tensors and hands them out again, as PyTorch's caching allocator does on the GPU.

Rules, all checked before a buffer is reused:

* Only buffers the pool handed out come back, and only when the tensor that owned the array
  dies while nothing else refers to the array or to any view of the same memory (an array
  returned by ``Tensor.numpy()``, a numpy view, a DLPack or buffer-protocol export all hold a
  reference and keep the buffer out of the pool).
* Buffers under ``MIN_BYTES`` are not pooled (malloc reuses small blocks already).
* At most ``FUSEJIT_HOST_POOL_BYTES`` bytes (default 1 GiB; 0 turns the pool off) are kept;
  beyond that a released buffer is freed. ``fusejit.empty_cache()`` frees all kept buffers.

>>> import numpy as np
>>> a = host_empty((1 << 20,), np.float32)
>>> a.shape, a.dtype
((1048576,), dtype('float32'))
"""

from __future__ import annotations

import os
import sys
import threading
import weakref

import numpy as np

MIN_BYTES = 1 << 20
# sizes are rounded up to this so that arrays of nearly the same size share buffers
_GRAIN = 1 << 16
LIMIT_BYTES = int(os.environ.get("FUSEJIT_HOST_POOL_BYTES", 1 << 30))


class HostPool:
    def __init__(self, limit: int = LIMIT_BYTES) -> None:
        self.limit = limit
        self._free: dict[int, list] = {}
        # id -> weak reference of every buffer handed out and still alive: how a release
        # recognizes a pooled buffer without keeping it alive
        self.ids: dict[int, weakref.ref] = {}
        self._lock = threading.Lock()
        self.cached_bytes = 0
        self.stats = {"reused": 0, "allocated": 0, "released": 0}

    def empty(self, shape, dtype) -> np.ndarray:
        dtype = np.dtype(dtype)
        n = 1
        for s in shape:
            n *= s
        nbytes = n * dtype.itemsize
        if nbytes < MIN_BYTES or self.limit <= 0:
            return np.empty(shape, dtype)
        size = -(-nbytes // _GRAIN) * _GRAIN
        with self._lock:
            free = self._free.get(size)
            buf = free.pop() if free else None
            if buf is not None:
                self.cached_bytes -= size
                self.stats["reused"] += 1
            else:
                self.stats["allocated"] += 1
        if buf is None:
            buf = np.empty(size, np.uint8)
            key = id(buf)
            self.ids[key] = weakref.ref(buf, lambda _r, k=key: self.ids.pop(k, None))
        # numpy points every view at the owner: arr.base is buf, and so is any view's base
        return buf[:nbytes].view(dtype).reshape(shape)

    def release(self, arr: np.ndarray) -> None:
        """Take back ``arr``'s buffer if ``arr`` came from the pool and nothing else uses it.
        Called by a dying tensor with its array (references: the tensor's slot, this
        argument and getrefcount's own)."""
        buf = arr.base
        ref = self.ids.get(id(buf))
        if ref is None or ref() is not buf or sys.getrefcount(arr) > 3:
            return
        # references to the buffer: arr.base, ``buf`` and getrefcount's argument; any other
        # array viewing the same memory adds one. (The pool keeps no reference to buffers in
        # use: one whose tensor dies while a view lives is freed by numpy as usual.)
        if sys.getrefcount(buf) > 3:
            return
        size = buf.nbytes
        with self._lock:
            self.stats["released"] += 1
            if self.cached_bytes + size <= self.limit:
                self._free.setdefault(size, []).append(buf)
                self.cached_bytes += size

    def clear(self) -> None:
        """Free every kept buffer (buffers in use stay with their tensors)."""
        with self._lock:
            self._free.clear()
            self.cached_bytes = 0


POOL = HostPool()
host_empty = POOL.empty
