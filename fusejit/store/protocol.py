"""The one way every target gets a kernel: ``load_or_build``.

From memory; else from the kernel's disk entry when it matches its manifest (signed with this
machine's key, naming this target and key, listing exactly the entry's files: see
``manifest``) and loads; else built (the compiler writes the entry's files), stored whole and
loaded. An entry that does not match its manifest (damaged, unsigned, planted, moved from
another key), or does not load, is corrupt: it is counted, reported and rebuilt, never used.
One without a manifest was left by an interrupted write: it is rebuilt, not counted; one
removed while it was read (a clear in another process) is rebuilt. Either is removed whole,
with every file a compiler put in it. A cache folder that cannot be written is read (or not
used at all) and its new kernels are kept in memory (``root``); a process without a
persistent machine key (``signing``) neither reads nor writes the disk cache. Loading an
entry marks its last use and a new entry counts toward the disk cache's bound
(``disk_bound``); the entry of a kernel alive in this process is never pruned.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Generic, TypeVar

from fusejit.store import disk_bound
from fusejit.store.entries import build_entry, entry_folder, remove_entry
from fusejit.store.keys import Target
from fusejit.store.locks import entry_lock
from fusejit.store.manifest import verify_entry
from fusejit.store.memory import CACHE
from fusejit.store.root import cache_root
from fusejit.store.settings import debug_level
from fusejit.store.signing import machine_key

log = logging.getLogger("fusejit")

K = TypeVar("K")


@dataclass(frozen=True)
class Recipe(Generic[K]):
    """What a compiler tells the store about one kernel.

    ``what`` names it in the logs ("CPU kernel <key> (3 ops, rank 1)"); ``source()`` is its
    generated source (logged at ``FUSEJIT_DEBUG=2``); ``build(folder, source)`` compiles it and
    writes the entry's files into ``folder``; ``load(folder, origin)`` gives the kernel of a
    complete entry (origin "disk" or "compiled") and raises when the entry cannot be loaded.
    """

    what: str
    source: Callable[[], str]
    build: Callable[[Path, str], None]
    load: Callable[[Path, str], K]


def load_or_build(target: Target, key: str, recipe: Recipe[K], memory_key: str | None = None) -> K:
    """The kernel of ``key`` (see the module docstring), built at most once per
    ``memory_key`` (default ``key``; e.g. one per GPU) in this process even when threads ask
    at once."""
    return CACHE.get_or_build(memory_key or key, lambda: _from_disk_or_build(target, key, recipe))


def _from_disk_or_build(target: Target, key: str, recipe: Recipe[K]) -> tuple[K, str]:
    folder = entry_folder(target.name, key)
    why = "not in the cache"
    root = cache_root()
    if root.readable and folder.exists() and machine_key().persistent:
        reason = verify_entry(folder)
        if reason not in (None, "no manifest"):
            # another process may be adding files to it (``entries.adding_files``): once it
            # has signed them, check again
            with entry_lock(folder, shared=True):
                reason = verify_entry(folder)
        if reason is None:
            try:
                kernel = recipe.load(folder, "disk")
            except Exception as e:  # a binary the driver refuses, a source that fails to load
                reason = f"does not load: {type(e).__name__}: {e}"
            else:
                disk_bound.touched(folder)
                disk_bound.in_use(folder, kernel)
                return kernel, "disk"
        if not folder.exists():  # removed meanwhile (a clear in another process): not corrupt
            why = "cache entry removed while it was read"
        elif reason == "no manifest":
            why = "cache entry incomplete (no manifest yet)"
        else:
            log.warning("fusejit: %s kernel cache entry %s is corrupt (%s); rebuilding",
                        target.name.upper(), key, reason)  # fmt: skip
            CACHE.stats["corrupt"] += 1
            why = f"cache entry corrupt ({reason})"
        if root.writable:
            remove_entry(folder)
    if debug_level() >= 1:
        log.info("fusejit: compiling %s: %s", recipe.what, why)
    src = recipe.source()
    if debug_level() >= 2:
        log.info("fusejit: source of %s:\n%s", key, src)
    stored = build_entry(folder, lambda stage: recipe.build(stage, src))
    try:
        kernel = recipe.load(stored, "compiled")
    except Exception:
        if stored.exists():
            raise
        # the entry was removed between storing and loading it (a clear in another
        # process): this process builds it again in a folder of its own
        stored = build_entry(folder, lambda stage: recipe.build(stage, src), private=True)
        return recipe.load(stored, "compiled"), "compiled"
    if stored == folder:  # (not a private folder of this process: a read-only cache)
        disk_bound.in_use(folder, kernel)
        disk_bound.stored(folder)
    return kernel, "compiled"
