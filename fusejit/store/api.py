"""The store's public functions, re-exported as ``fusejit.cache_info`` and
``fusejit.clear_cache``."""

from __future__ import annotations

from fusejit.store.clearing import folder_size, remove_entries
from fusejit.store.memory import CACHE
from fusejit.store.root import forget_roots
from fusejit.store.settings import cache_dir


def cache_info() -> dict:
    """Hits and misses per level, kernels in memory, and the disk folder with its size.

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
        "dir": str(d),
        "disk_bytes": size,
    }


def clear_cache(disk: bool = True) -> None:
    """Empty the in-memory cache (with the kernels each backend holds) and, by default, the
    disk cache folder's kernel entries (safe while other processes compile into it). With
    ``disk=False`` the next calls load their kernels from disk, as a new process would.

    Raises ``CacheError`` (nothing removed) when the folder is not a fusejit cache: one that
    holds files fusejit did not create and not its marker ``CACHEDIR.TAG``."""
    with CACHE.lock:
        CACHE.clear_memory()
        CACHE.stats.clear()
        forget_roots()
        if disk:
            remove_entries(cache_dir())
