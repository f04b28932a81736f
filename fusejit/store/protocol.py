"""The one way every target gets a kernel: ``load_or_build``.

From memory; else from the kernel's disk entry when it matches its manifest and loads; else
built (the compiler writes the entry's files), stored whole and loaded. An entry that does not
match its manifest, or does not load, is corrupt: it is counted, reported and rebuilt, never
used. One without a manifest was left by an interrupted write: it is rebuilt, not counted.
Loading an entry marks its last use and a new entry counts toward the disk cache's bound
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
from fusejit.store.manifest import verify_entry
from fusejit.store.memory import CACHE
from fusejit.store.settings import debug_level

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
    if folder.exists():
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
        if reason == "no manifest":
            why = "cache entry incomplete (no manifest yet)"
        else:
            log.warning("fusejit: %s kernel cache entry %s is corrupt (%s); rebuilding",
                        target.name.upper(), key, reason)  # fmt: skip
            CACHE.stats["corrupt"] += 1
            why = f"cache entry corrupt ({reason})"
        remove_entry(folder)
    if debug_level() >= 1:
        log.info("fusejit: compiling %s: %s", recipe.what, why)
    src = recipe.source()
    if debug_level() >= 2:
        log.info("fusejit: source of %s:\n%s", key, src)
    stored = build_entry(folder, lambda stage: recipe.build(stage, src))
    kernel = recipe.load(stored, "compiled")
    if stored == folder:  # (not a private folder of this process: a read-only cache)
        disk_bound.in_use(folder, kernel)
        disk_bound.stored(folder)
    return kernel, "compiled"
