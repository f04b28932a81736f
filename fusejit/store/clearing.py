"""Removing the disk entries of the cache folder: only from a folder that is fusejit's, and
safely while other processes compile into it."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

from fusejit.base.errors import FusejitError
from fusejit.store.entries import remove_entry
from fusejit.store.manifest import TMP_PREFIX
from fusejit.store.root import MARKER, TALLY, TRASH_PREFIX, is_marked, looks_like_a_cache

# A folder being written by a compile is left alone unless it is older than this: it belongs
# to a process still writing it, or to one that was killed.
STALE_STAGE_S = 3600.0


class CacheError(FusejitError, RuntimeError):
    """A cache folder that fusejit will not change (not its own)."""


def remove_entries(root: Path, call: str = "fusejit.clear_cache") -> tuple[int, int]:
    """Remove every kernel entry under ``root`` (each renamed away, then deleted: a process
    compiling meanwhile rebuilds what it loses) and what interrupted writes left; keep the
    marker and anything else fusejit did not put there. Returns (entries, bytes) removed.

    Raises ``CacheError`` when ``root`` is not a fusejit cache folder: unmarked and holding
    files fusejit did not create, or not a folder."""
    if not os.path.lexists(root):
        return 0, 0
    if not root.is_dir():
        raise CacheError(f"{call}: the cache folder {root} (FUSEJIT_CACHE_DIR) is not a folder; "
                         "nothing was removed")  # fmt: skip
    if not is_marked(root) and not looks_like_a_cache(root, os.listdir(root)):
        raise CacheError(
            f"{call}: {root} (FUSEJIT_CACHE_DIR) is not a fusejit kernel cache (it has no "
            f"{MARKER} and holds files fusejit did not create); nothing was removed"
        )
    entries = size = 0
    for target in _listdir(root):
        if target.name == MARKER or target.is_symlink() or not target.is_dir():
            continue
        if not _holds_entries(target):
            continue
        for item in _listdir(target):
            name = item.name
            if name.startswith(TRASH_PREFIX):  # (left by a removal that did not finish)
                shutil.rmtree(item, ignore_errors=True)
            elif name.startswith(TMP_PREFIX):
                if _age_s(item) > STALE_STAGE_S:
                    shutil.rmtree(item, ignore_errors=True)
            elif item.is_dir() and not item.is_symlink():
                n = _size(item)
                remove_entry(item)
                entries, size = entries + 1, size + n
        try:  # (a compile that finds its target folder gone makes it again)
            os.rmdir(target)
        except OSError:
            pass
    try:  # (the entries' size tally: counted again from what is there next time)
        os.unlink(root / TALLY)
    except OSError:
        pass
    return entries, size


def folder_size(root: Path) -> int:
    """Bytes of the files under ``root`` (0 when it is not there); files removed while it is
    counted (a clear in another process) count 0."""
    return _size(root) if root.is_dir() else 0


def _holds_entries(target: Path) -> bool:
    """A target's folder: every item an entry, an entry being written, or a removal's leftover
    (so that a folder of the user's inside a marked cache is never removed)."""
    for item in _listdir(target):
        name = item.name
        if name.startswith((TMP_PREFIX, TRASH_PREFIX)):
            continue
        if not all(c in "0123456789abcdef" for c in name) or not item.is_dir():
            return False
    return True


def _listdir(folder: Path) -> list[Path]:
    try:
        return sorted(folder.iterdir())
    except FileNotFoundError:
        return []


def _age_s(path: Path) -> float:
    try:
        return time.time() - path.stat().st_mtime
    except OSError:
        return 0.0


def _size(folder: Path) -> int:
    total = 0
    for dirpath, _, files in os.walk(folder):
        for f in files:
            try:
                total += os.lstat(os.path.join(dirpath, f)).st_size
            except OSError:
                pass
    return total
