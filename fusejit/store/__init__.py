"""The kernel store: one load-or-build protocol (memory, disk, manifests, keys) for every target.

Compilers plug in by registering a target (``keys.register_target``: its cache folder and the
source files its kernels are generated from) and asking ``protocol.load_or_build`` for each
kernel with a ``Recipe`` saying how to build and load it. Modules: ``settings`` (cache folder,
debug level), ``keys``, ``manifest`` (checksums, atomic writes), ``entries`` (disk entries:
written whole, shipped and installed by archives), ``memory`` (the in-process level and its
counters, least recently used out past ``FUSEJIT_MEMORY_CACHE_MAX`` kernels), ``disk_bound``
(last use of entries, pruning past ``FUSEJIT_CACHE_MAX_BYTES``), ``protocol``, ``api``
(``fusejit.cache_info`` / ``fusejit.clear_cache``).

Disk layout: ``$FUSEJIT_CACHE_DIR`` (default ``~/.cache/fusejit``) / ``<target>`` / ``<key>/``.
"""

from fusejit.store.api import cache_info, clear_cache
from fusejit.store.disk_bound import entry_updated
from fusejit.store.disk_bound import prune as prune_cache
from fusejit.store.entries import (
    Entry,
    build_entry,
    entry_folder,
    export_entry,
    install_entry,
    remove_entry,
)
from fusejit.store.keys import Target, make_key, register_target
from fusejit.store.manifest import atomic_write, update_manifest, verify_entry, write_manifest
from fusejit.store.memory import CACHE
from fusejit.store.protocol import Recipe, load_or_build
from fusejit.store.settings import cache_dir, debug_level

__all__ = [
    "CACHE", "Entry", "Recipe", "Target", "atomic_write", "build_entry", "cache_dir",
    "cache_info", "clear_cache", "debug_level", "entry_folder", "entry_updated",
    "export_entry", "install_entry", "load_or_build", "make_key", "prune_cache",
    "register_target", "remove_entry", "update_manifest", "verify_entry", "write_manifest",
]  # fmt: skip
