"""The memory level: loaded kernels by key in this process, with hit and miss counters."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable


class MemoryCache:
    """Kernels by key in front of the disk entries; counts the hits and misses of both levels
    (``stats``: memory_hits, disk_hits, misses, corrupt) and where each kernel came from."""

    def __init__(self) -> None:
        self.memory: dict[str, object] = {}
        self.stats: Counter = Counter()
        self.lock = threading.RLock()
        self.origin: dict[str, str] = {}  # key -> "compiled" / "disk"
        # dicts elsewhere that hold kernels (a backend's kernel per body): emptied with the
        # memory, so that after ``clear_cache(disk=False)`` kernels load as in a new process
        self.memos: list[dict] = []

    def get(self, key: str):
        """The kernel of ``key`` in memory (a hit counted), or None."""
        k = self.memory.get(key)
        if k is not None:
            self.stats["memory_hits"] += 1
        return k

    def put(self, key: str, kernel, origin: str) -> None:
        self.memory[key] = kernel
        self.origin[key] = origin
        self.stats["disk_hits" if origin == "disk" else "misses"] += 1

    def get_or_build(self, key: str, build: Callable[[], tuple[object, str]]):
        """The kernel of ``key``: from memory, else ``build()`` -> (kernel, origin) run once
        under the lock, so threads asking at once share one build."""
        k = self.get(key)
        if k is not None:
            return k
        with self.lock:
            k = self.memory.get(key)
            if k is None:
                k, origin = build()
                self.put(key, k, origin)
            return k

    def hold(self, *memos: dict) -> None:
        """Empty ``memos`` (dicts holding kernels of this cache) whenever the memory is."""
        self.memos += memos

    def clear_memory(self) -> None:
        self.memory.clear()
        self.origin.clear()
        for m in self.memos:
            m.clear()


CACHE = MemoryCache()
