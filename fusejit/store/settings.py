"""The store's settings, read from the environment at each use (tests and users change them
while a process runs): the cache folder, the debug level and the bounds of both levels."""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    """``$FUSEJIT_CACHE_DIR``, else ``$XDG_CACHE_HOME/fusejit`` (``~/.cache/fusejit``)."""
    env = os.environ.get("FUSEJIT_CACHE_DIR")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "fusejit"


def debug_level() -> int:
    """``$FUSEJIT_DEBUG``: 0 silent, 1 logs each compile and its reason, 2 also the source."""
    try:
        return int(os.environ.get("FUSEJIT_DEBUG", "0") or 0)
    except ValueError:
        return 1


def _int_env(name: str, default: int) -> int:
    try:
        return int(os.environ.get(name, "") or default)
    except ValueError:
        return default


# Measured (bench/bench_cache_bounds.py, 200 kernels): a CPU kernel costs 0.17 MB of RSS loaded
# from disk and 1.6 MB compiled, most of it numba's machine code, which numba never frees; the
# memory level holds ~350 KB (compiled) or ~32 KB (loaded) of Python heap a kernel.
MEMORY_CACHE_MAX = 512
DISK_CACHE_MAX_BYTES = 4 << 30  # ~200,000 CPU kernels of ~21 KB


def memory_cache_max() -> int:
    """``$FUSEJIT_MEMORY_CACHE_MAX``: kernels kept in memory (default 512; 0: no bound)."""
    return max(0, _int_env("FUSEJIT_MEMORY_CACHE_MAX", MEMORY_CACHE_MAX))


def cache_max_bytes() -> int:
    """``$FUSEJIT_CACHE_MAX_BYTES``: the disk cache's bound (default 4 GiB; 0: no bound)."""
    return max(0, _int_env("FUSEJIT_CACHE_MAX_BYTES", DISK_CACHE_MAX_BYTES))
