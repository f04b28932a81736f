"""The store's public functions, re-exported as ``fusejit.cache_info`` and
``fusejit.clear_cache``."""

from __future__ import annotations

import gc

from fusejit.store import disk_bound
from fusejit.store.clearing import folder_size, remove_entries
from fusejit.store.memory import CACHE
from fusejit.store.root import forget_roots
from fusejit.store.settings import cache_dir, cache_max_bytes, memory_cache_max


def cache_info() -> dict:
    """Hits and misses per level, kernels in memory and evicted from it, the disk folder with
    its size, and the bounds of both levels.

    >>> import fusejit
    >>> sorted(fusejit.cache_info())[:3]
    ['compiled', 'dir', 'disk_bytes']
    """
    d = cache_dir()
    size = folder_size(d)
    return {
        "memory_hits": CACHE.stats["memory_hits"],
        "disk_hits": CACHE.stats["disk_hits"],
        "compiled": CACHE.stats["misses"],
        "rebuilt_corrupt": CACHE.stats["corrupt"],
        "in_memory": len(CACHE.memory),
        "evicted": CACHE.stats["evicted"],
        "memory_max": memory_cache_max(),
        "dir": str(d),
        "disk_bytes": size,
        "disk_max_bytes": cache_max_bytes(),
    }


def clear_cache(disk: bool = True) -> None:
    """Empty the in-memory cache (with the kernels each backend holds) and, by default, the
    disk cache folder's kernel entries (safe while other processes compile into it). With
    ``disk=False`` the next calls load their kernels from disk, as a new process would.

    Raises ``CacheError`` (nothing removed) when the folder is not a fusejit cache: one that
    holds files fusejit did not create and not its marker ``CACHEDIR.TAG``.

    The kernels the cache held are released, with their generated modules (registered in
    ``sys.modules`` while a kernel lives); kernels that live traced or optimized functions
    hold stay until those are dropped. numba keeps the machine code of every kernel it
    compiled or loaded until the process exits (its JIT engine never frees code).

    >>> import fusejit
    >>> fusejit.clear_cache(disk=False)
    >>> fusejit.cache_info()["in_memory"]
    0
    """
    with CACHE.lock:
        CACHE.clear_memory()
        CACHE.stats.clear()
        forget_roots()
        disk_bound.forget_sizes()
        if disk:
            remove_entries(cache_dir())
    # numba's dispatchers sit in reference cycles: collect them now, so that the kernels'
    # modules leave sys.modules here rather than at some later collection
    gc.collect()
