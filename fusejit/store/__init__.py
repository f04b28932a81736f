"""The kernel store: one load-or-build protocol (memory, disk, manifests, keys) for every target.

Compilers plug in by registering a target (``keys.register_target``: its cache folder and the
source files its kernels are generated from) and asking ``protocol.load_or_build`` for each
kernel with a ``Recipe`` saying how to build and load it. Modules: ``settings`` (cache folder,
debug level), ``keys``, ``manifest`` (checksums signed and bound to a target and key, atomic
writes), ``entries`` (disk entries: written whole, shipped and installed by archives),
``memory`` (the in-process level and its counters, least recently used out past
``FUSEJIT_MEMORY_CACHE_MAX`` kernels), ``disk_bound`` (last use of entries, pruning past
``FUSEJIT_CACHE_MAX_BYTES``), ``root`` (the cache folder: marked, checked, writable or not),
``clearing``, ``signing`` (the machine-local key that signs manifests and archives),
``locks``, ``protocol``, ``api`` (``fusejit.cache_info`` / ``fusejit.clear_cache``).

Disk layout: ``$FUSEJIT_CACHE_DIR`` (default ``~/.cache/fusejit``) / ``<target>`` / ``<key>/``,
the folder marked as fusejit's by ``CACHEDIR.TAG``.
"""

from fusejit.store.api import cache_info, clear_cache
from fusejit.store.clearing import CacheError, folder_size, remove_entries
from fusejit.store.disk_bound import entry_updated
from fusejit.store.disk_bound import prune as prune_cache
from fusejit.store.entries import (
    Entry,
    adding_files,
    build_entry,
    entry_access,
    entry_folder,
    export_entry,
    install_entry,
    refresh_manifest,
    remove_entry,
)
from fusejit.store.keys import Target, make_key, register_target
from fusejit.store.manifest import atomic_write, update_manifest, verify_entry, write_manifest
from fusejit.store.memory import CACHE
from fusejit.store.protocol import Recipe, load_or_build
from fusejit.store.root import MARKER, cache_root
from fusejit.store.settings import cache_dir, debug_level
from fusejit.store.signing import MachineKey, machine_key

__all__ = [
    "CACHE", "MARKER", "CacheError", "Entry", "MachineKey", "Recipe", "Target", "adding_files",
    "atomic_write", "build_entry", "cache_dir", "cache_info", "cache_root", "clear_cache",
    "debug_level", "entry_access", "entry_folder", "entry_updated", "export_entry",
    "folder_size", "install_entry", "load_or_build", "machine_key", "make_key", "prune_cache",
    "refresh_manifest", "register_target", "remove_entries", "remove_entry", "update_manifest",
    "verify_entry", "write_manifest",
]  # fmt: skip
