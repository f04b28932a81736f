"""The store's public functions, re-exported as ``fusejit.cache_info`` and
``fusejit.clear_cache``."""

from __future__ import annotations

import shutil

from fusejit.store.memory import CACHE
from fusejit.store.settings import cache_dir


def cache_info() -> dict:
    """Hits and misses per level, kernels in memory, and the disk folder with its size.

    >>> import fusejit
    >>> sorted(fusejit.cache_info())[:3]
    ['compiled', 'dir', 'disk_bytes']
    """
    d = cache_dir()
    size = sum(p.stat().st_size for p in d.rglob("*") if p.is_file()) if d.exists() else 0
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
    disk cache folder. With ``disk=False`` the next calls load their kernels from disk, as a
    new process would."""
    with CACHE.lock:
        CACHE.clear_memory()
        CACHE.stats.clear()
        if disk:
            d = cache_dir()
            if d.exists():
                shutil.rmtree(d, ignore_errors=True)
