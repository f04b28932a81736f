"""The store's public functions, re-exported as ``fusejit.cache_info`` and
``fusejit.clear_cache``."""

from __future__ import annotations

import gc
import shutil

from fusejit.store import disk_bound
from fusejit.store.memory import CACHE
from fusejit.store.settings import cache_dir, cache_max_bytes, memory_cache_max


def cache_info() -> dict:
    """Hits and misses per level, kernels in memory and evicted from it, the disk folder with
    its size, and the bounds of both levels.

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
        "evicted": CACHE.stats["evicted"],
        "memory_max": memory_cache_max(),
        "dir": str(d),
        "disk_bytes": size,
        "disk_max_bytes": cache_max_bytes(),
    }


def clear_cache(disk: bool = True) -> None:
    """Empty the in-memory cache (with the kernels each backend holds) and, by default, the
    disk cache folder. With ``disk=False`` the next calls load their kernels from disk, as a
    new process would.

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
        disk_bound.forget_sizes()
        if disk:
            d = cache_dir()
            if d.exists():
                shutil.rmtree(d, ignore_errors=True)
    # numba's dispatchers sit in reference cycles: collect them now, so that the kernels'
    # modules leave sys.modules here rather than at some later collection
    gc.collect()
