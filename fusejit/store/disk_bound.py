"""The disk cache's bound (``FUSEJIT_CACHE_MAX_BYTES``): entries by last use, a running size
tally, pruning.

An entry's last use is its folder's modification time, set when it is stored and touched each
time a process loads it from disk. The folder's size is kept in a tally file at the cache's root
(``.usage``), added to as entries are stored and grow (numba writes each specialization beside
the source), so a compile costs a read and a write of that small file, not a scan of the
cache. When the tally passes the bound, the cache is scanned once: the least recently used
entries are removed until it holds ``LOW_WATER`` of the bound (room for many compiles before
the next scan), and the tally is set to the size found. Entries of kernels alive in this
process are never removed. Processes sharing a folder may lose each other's additions to the
tally (read, add, write); each prune's scan sets it right.
"""

from __future__ import annotations

import logging
import os
import threading
import weakref
from pathlib import Path

from fusejit.store.clearing import folder_size
from fusejit.store.entries import refresh_manifest, remove_entry
from fusejit.store.manifest import atomic_write
from fusejit.store.root import TALLY
from fusejit.store.settings import cache_dir, cache_max_bytes

log = logging.getLogger("fusejit")

LOW_WATER = 0.9  # an automatic prune leaves the cache at this fraction of its bound

_LOCK = threading.Lock()
# folder -> the kernel loaded from it, while that kernel lives: in use, never pruned
_IN_USE: weakref.WeakValueDictionary[str, object] = weakref.WeakValueDictionary()
_SIZES: dict[str, int] = {}  # folder -> its size when last counted by this process


def in_use(folder: Path, kernel: object) -> None:
    """Mark ``folder`` in use while ``kernel`` (loaded from it) lives."""
    try:
        _IN_USE[str(folder)] = kernel
    except TypeError:  # (a kernel type without weak references: not protected)
        pass


def touched(folder: Path) -> None:
    """Record a use of the entry in ``folder`` (loaded from disk): its last-use time is now."""
    try:
        os.utime(folder)
    except OSError:  # a read-only cache still runs; its entries keep their time
        pass
    _SIZES.setdefault(str(folder), folder_size(folder))


def stored(folder: Path) -> None:
    """Count a new entry's bytes in the tally (pruning when it passes the bound)."""
    size = folder_size(folder)
    _SIZES[str(folder)] = size
    charge(size)


def entry_updated(folder: Path) -> None:
    """After a compiler added files to a loaded entry: its manifest rewritten
    (``entries.refresh_manifest``) and its growth counted in the tally."""
    refresh_manifest(folder)
    key = str(folder)
    size = folder_size(folder)
    before = _SIZES.get(key, size)
    _SIZES[key] = size
    charge(size - before)


def charge(nbytes: int) -> None:
    """Add ``nbytes`` to the tally of the cache folder; past the bound, prune it."""
    bound = cache_max_bytes()
    if not bound or nbytes <= 0:
        return
    root = cache_dir()
    with _LOCK:
        total = _read_tally(root)
        if total is None:  # (no tally yet: count once)
            total = sum(size for _, _, size in _entries(root))
        else:
            total += nbytes
        if total > bound:
            _prune(root, int(bound * LOW_WATER))
        else:
            _write_tally(root, total)


def prune(max_bytes: int | None = None) -> dict:
    """Remove the least recently used entries of the cache folder until it holds at most
    ``max_bytes`` (default ``FUSEJIT_CACHE_MAX_BYTES``, and nothing is removed when that is 0:
    no bound). Entries of kernels alive in this process stay. Returns what was done
    (``fusejit.store.prune_cache``).

    >>> import fusejit.store
    >>> sorted(fusejit.store.prune_cache())
    ['bytes', 'entries', 'freed', 'kept_in_use', 'removed']
    """
    bound = cache_max_bytes() if max_bytes is None else max(0, int(max_bytes))
    with _LOCK:
        if max_bytes is None and not bound:
            entries = _entries(cache_dir())
            return {"removed": 0, "freed": 0, "kept_in_use": 0, "entries": len(entries),
                    "bytes": sum(s for _, _, s in entries)}  # fmt: skip
        return _prune(cache_dir(), bound)


def _entries(root: Path) -> list[tuple[float, Path, int]]:
    """(last use, folder, bytes) of every entry under ``root``, least recently used first."""
    out = []
    try:
        targets = [t for t in os.scandir(root) if t.is_dir() and not t.name.startswith(".")]
    except OSError:
        return out
    for t in targets:
        try:
            with os.scandir(t.path) as it:
                for e in it:
                    # (.tmp-...: an entry being written; .trash-...: one being removed)
                    if e.is_dir(follow_symlinks=False) and not e.name.startswith("."):
                        try:
                            mtime = e.stat(follow_symlinks=False).st_mtime
                        except OSError:  # (removed meanwhile)
                            continue
                        out.append((mtime, Path(e.path), folder_size(Path(e.path))))
        except OSError:
            continue
    out.sort(key=lambda e: e[0])
    return out


def _prune(root: Path, bound: int) -> dict:
    entries = _entries(root)
    total = sum(size for _, _, size in entries)
    removed = freed = kept = 0
    for _, folder, size in entries:
        if total <= bound:
            break
        key = str(folder)
        if key in _IN_USE:
            kept += 1
            continue
        remove_entry(folder)  # (renamed away first: safe while others load it)
        if folder.exists():  # (a folder that cannot be removed still counts)
            continue
        _SIZES.pop(key, None)
        total -= size
        freed += size
        removed += 1
    if removed:
        log.info("fusejit: pruned %d kernel cache entries (%d bytes) from %s; %d bytes left",
                 removed, freed, root, total)  # fmt: skip
    _write_tally(root, total)
    return {"removed": removed, "freed": freed, "kept_in_use": kept,
            "entries": len(entries) - removed, "bytes": total}  # fmt: skip


def _read_tally(root: Path) -> int | None:
    try:
        return int((root / TALLY).read_text())
    except (OSError, ValueError):
        return None


def _write_tally(root: Path, total: int) -> None:
    if not root.is_dir():  # (no cache folder yet: pruning it must not create one)
        return
    try:
        atomic_write(root / TALLY, str(int(total)).encode())
    except OSError:  # a read-only cache folder still runs, unbounded by this process
        pass


def forget_sizes() -> None:
    """Forget the entry sizes this process counted (the cache is being emptied)."""
    _SIZES.clear()
