"""Disk entries: one folder a kernel, ``<cache dir>/<target>/<key>/``, holding the generated
source, the compiler's output and the manifest (see ``manifest``).

An entry appears whole: it is written under a temporary name beside its place, its manifest
last, then renamed into place, so another process sees no entry or a complete one, and two
processes building one kernel both succeed (the first rename wins). A compiler may add files
to an entry later (numba does, per specialization) and then updates the manifest. A cache
folder that cannot be written still runs: its kernels are built in a private folder of this
process, removed at exit.
"""

from __future__ import annotations

import atexit
import logging
import os
import shutil
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from fusejit.store.manifest import TMP_PREFIX, adopt_manifest, verify_entry, write_manifest
from fusejit.store.settings import cache_dir
from fusejit.store.signing import machine_key

log = logging.getLogger("fusejit")


@dataclass(frozen=True)
class Entry:
    """A kernel's entry by its folder (what ``fusejit.save`` ships)."""

    folder: Path


def entry_folder(target: str, key: str) -> Path:
    """Where the entry of ``key`` of ``target`` lives in the current cache folder."""
    return cache_dir() / target / key


def remove_entry(folder: Path) -> None:
    shutil.rmtree(folder, ignore_errors=True)


def build_entry(folder: Path, write: Callable[[Path], None]) -> Path:
    """Have ``write(stage)`` write an entry's files into a new folder, add the manifest and
    move it to ``folder``. Returns the folder now holding the entry: ``folder`` (ours, or an
    equal one another process stored first), or a private one when the cache cannot be
    written. Errors of ``write`` propagate, leaving nothing behind."""
    if not machine_key().persistent:  # (no later process could verify what it signs)
        return _build_private(folder, write)
    try:
        folder.parent.mkdir(parents=True, exist_ok=True)
        stage = Path(tempfile.mkdtemp(prefix=f"{TMP_PREFIX}{folder.name}-", dir=folder.parent))
    except OSError as e:  # a read-only cache folder still runs, uncached
        log.warning("fusejit: cannot write the kernel cache in %s: %s", folder.parent, e)
        return _build_private(folder, write)
    try:
        write(stage)
        write_manifest(stage, folder.parent.name, folder.name)
        if _publish(stage, folder):
            return folder
        # neither ours nor a good entry could be put in place: run ours from a private folder
        log.warning("fusejit: cannot store kernel cache entry %s", folder)
        private = _private(folder)
        shutil.rmtree(private)
        shutil.move(stage, private)
        return private
    finally:
        if stage.exists():
            remove_entry(stage)


def install_entry(target: str, key: str, files: list[tuple[str, bytes, int]]) -> bool:
    """Store an entry received whole (from an archive): ``files`` are (path inside the entry,
    contents, mtime in ns), its manifest among them. True when it was installed; False when a
    good entry is already there, or the files do not match their manifest."""
    folder = entry_folder(target, key)
    if any(p in ("", ".", "..") for rel, _, _ in files for p in rel.split("/")):
        return False  # (a path that leaves the entry)
    if folder.exists() and verify_entry(folder) is None:
        return False
    try:
        folder.parent.mkdir(parents=True, exist_ok=True)
        stage = Path(tempfile.mkdtemp(prefix=f"{TMP_PREFIX}{key}-", dir=folder.parent))
    except OSError as e:  # (the kernel is then compiled when used, and runs uncached)
        log.warning("fusejit: cannot write the kernel cache in %s: %s", folder.parent, e)
        return False
    try:
        for rel, data, mtime_ns in files:
            p = stage / rel
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_bytes(data)
            # numba's cache checks the source file's time stamp: keep the original
            os.utime(p, ns=(mtime_ns, mtime_ns))
        # (the archive's signature verified: the entry is signed with this machine's key)
        return adopt_manifest(stage, target, key) is None and _publish(stage, folder)
    finally:
        if stage.exists():
            remove_entry(stage)


def export_entry(folder: Path) -> tuple[str, str, list[tuple[str, bytes, int]]] | None:
    """(target, key, files as ``install_entry`` takes them) of the complete entry in
    ``folder``; None when it is not an entry of the current cache folder or does not verify."""
    try:
        rel = Path(folder).relative_to(cache_dir())
    except ValueError:
        return None
    if len(rel.parts) != 2 or verify_entry(Path(folder)) is not None:
        return None
    files = []
    for p in sorted(Path(folder).rglob("*")):
        if p.is_file() and not p.name.startswith(TMP_PREFIX):
            files.append((p.relative_to(folder).as_posix(), p.read_bytes(), p.stat().st_mtime_ns))
    return rel.parts[0], rel.parts[1], files


def _publish(stage: Path, folder: Path) -> bool:
    """Rename the complete entry ``stage`` to ``folder``; True when ``folder`` then holds a
    complete entry (ours, or one another process stored first)."""
    for attempt in range(2):
        try:
            os.rename(stage, folder)
            return True
        except OSError:  # (a folder is there: another process's entry, or a broken leftover)
            if verify_entry(folder) is None:
                return True
            if attempt == 0:
                remove_entry(folder)
    return False


def _build_private(folder: Path, write: Callable[[Path], None]) -> Path:
    """``build_entry`` into a private folder of this process, shared with nobody."""
    private = _private(folder)
    write(private)
    write_manifest(private, folder.parent.name, folder.name)
    return private


_PRIVATE: list[Path] = []
_PRIVATE_LOCK = threading.Lock()


def _private(folder: Path) -> Path:
    """A folder of this process for the entry that belongs at ``folder`` (removed at exit)."""
    with _PRIVATE_LOCK:
        if not _PRIVATE:
            root = Path(tempfile.mkdtemp(prefix="fusejit-kernels-"))
            atexit.register(shutil.rmtree, root, ignore_errors=True)
            _PRIVATE.append(root)
    private = _PRIVATE[0] / folder.parent.name / folder.name
    private.mkdir(parents=True, exist_ok=True)
    return private


__all__ = ["Entry", "build_entry", "entry_folder", "export_entry", "install_entry",
           "remove_entry"]  # fmt: skip
