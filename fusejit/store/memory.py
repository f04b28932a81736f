"""The memory level: loaded kernels by key in this process, least recently used first out,
with hit, miss and eviction counters."""

from __future__ import annotations

import threading
from collections import Counter, OrderedDict
from collections.abc import Callable

from fusejit.store.settings import memory_cache_max


class MemoryCache:
    """Kernels by key in front of the disk entries; counts the hits and misses of both levels
    (``stats``: memory_hits, disk_hits, misses, corrupt, evicted) and where each kernel came
    from. Holds at most ``FUSEJIT_MEMORY_CACHE_MAX`` kernels: a new one evicts the least
    recently used, which a later lookup loads again from its disk entry."""

    def __init__(self) -> None:
        # key -> kernel, least recently used first (``get`` moves a hit to the end)
        self.memory: OrderedDict[str, object] = OrderedDict()
        self.stats: Counter = Counter()
        self.lock = threading.RLock()
        self.origin: dict[str, str] = {}  # key -> "compiled" / "disk"
        # dicts elsewhere that hold kernels (a backend's kernel per body): emptied with the
        # memory, so that after ``clear_cache(disk=False)`` kernels load as in a new process
        self.memos: list[dict] = []

    def get(self, key: str):
        """The kernel of ``key`` in memory (a hit counted, the kernel made the most recently
        used), or None. Called where a plan is built or an eager kernel is looked up, never
        per call of a compiled plan, which holds its kernels."""
        k = self.memory.get(key)
        if k is not None:
            try:
                self.memory.move_to_end(key)
            except KeyError:  # (evicted by another thread just now: still a kernel to use)
                pass
            self.stats["memory_hits"] += 1
        return k

    def put(self, key: str, kernel, origin: str) -> None:
        with self.lock:
            self.memory[key] = kernel
            self.memory.move_to_end(key)
            self.origin[key] = origin
            self.stats["disk_hits" if origin == "disk" else "misses"] += 1
            limit = memory_cache_max()
            while limit and len(self.memory) > limit:
                old, _ = self.memory.popitem(last=False)
                self.origin.pop(old, None)
                self.stats["evicted"] += 1

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
        with self.lock:
            self.memory.clear()
            self.origin.clear()
            for m in self.memos:
                m.clear()


CACHE = MemoryCache()
