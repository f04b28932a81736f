"""Disk entries: one folder a kernel, ``<cache dir>/<target>/<key>/``, holding the generated
source, the compiler's output and the manifest (see ``manifest``).

An entry appears whole: it is written under a temporary name beside its place, its manifest
last, then renamed into place, so another process sees no entry or a complete one, and two
processes building one kernel both succeed (the first rename wins). A compiler may add files
to an entry later (numba does, per specialization) and then updates the manifest. A cache
folder that cannot be written still runs: its kernels are built in a private folder of this
process, removed at exit. Entries are removed by renaming them away first (``remove_entry``),
so clearing the cache while other processes compile is safe.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import shutil
import tempfile
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from fusejit.store.locks import entry_lock
from fusejit.store.manifest import (
    MANIFEST,
    TMP_PREFIX,
    adopt_manifest,
    update_manifest,
    verify_entry,
    write_manifest,
)
from fusejit.store.root import TRASH_PREFIX, cache_root, demote, forget_roots, make_folder
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


def entry_access(folder: Path) -> str:
    """What this process may do with the entry in ``folder``: "write", "read" (a read-only
    cache folder) or "none" (a private folder of this process, or no usable cache)."""
    root = cache_root()
    if Path(folder).parent.parent != root.path:
        return "none"
    return root.access


def remove_entry(folder: Path) -> None:
    """Remove an entry: renamed away first, so that no process finds it half removed (one
    loading it then fails on a missing file, as a removed entry, and builds it again)."""
    trash = folder.with_name(f"{TRASH_PREFIX}{folder.name}-{uuid.uuid4().hex[:12]}")
    try:
        os.rename(folder, trash)
    except FileNotFoundError:
        return
    except OSError:
        trash = folder
    shutil.rmtree(trash, ignore_errors=True)


def refresh_manifest(folder: Path) -> None:
    """``update_manifest`` after a compiler added files to the entry in ``folder``, when the
    entry is still there and the cache can be written (a cleared entry is not brought back);
    under the entry's lock, so that two processes do not each sign what the other wrote."""
    with entry_lock(folder):
        _refresh(folder)


@contextlib.contextmanager
def adding_files(folder: Path) -> Iterator[None]:
    """Hold the entry's lock while a compiler adds files to the entry in ``folder`` (numba's
    code of a new specialization), and sign them into its manifest before letting go: a
    process that verifies the entry meanwhile waits (``locks``) instead of finding files its
    manifest does not list."""
    with entry_lock(folder):
        yield
        _refresh(folder)


def _refresh(folder: Path) -> None:
    if entry_access(folder) == "write" and (folder / MANIFEST).exists():
        update_manifest(folder)


def build_entry(folder: Path, write: Callable[[Path], None], private: bool = False) -> Path:
    """Have ``write(stage)`` write an entry's files into a new folder, add the manifest and
    move it to ``folder``. Returns the folder now holding the entry: ``folder`` (ours, or an
    equal one another process stored first), or a private one when the cache cannot be
    written (or ``private``). Errors of ``write`` propagate, leaving nothing behind."""
    # (without a persistent machine key no later process could verify what this one signs)
    stage = None if private or not machine_key().persistent else _stage(folder)
    if stage is None:  # (the cache folder is not writable: reported once by ``cache_root``)
        return _build_private(folder, write)
    try:
        write(stage)
        write_manifest(stage, folder.parent.name, folder.name)
        if _publish(stage, folder):
            return folder
        # neither ours nor a good entry could be put in place: run ours from a private folder
        log.warning("fusejit: cannot store kernel cache entry %s", folder)
        private_folder = _private(folder)
        shutil.rmtree(private_folder)
        shutil.move(stage, private_folder)
        return private_folder
    finally:
        if stage.exists():
            remove_entry(stage)


def _stage(folder: Path) -> Path | None:
    """A new empty folder beside ``folder`` to write its entry in; None when the cache folder
    cannot be written."""
    for _ in range(3):  # (a clear may remove the target folder between two steps)
        root = cache_root()
        if not root.writable or folder.parent.parent != root.path:
            return None
        try:
            make_folder(folder.parent)
            return Path(tempfile.mkdtemp(prefix=f"{TMP_PREFIX}{folder.name}-", dir=folder.parent))
        except FileNotFoundError:  # the cache folder was removed meanwhile: make it again
            forget_roots()
        except OSError as e:  # a read-only file system, a target folder made read-only
            demote(root, e.strerror or str(e))
            return None
    return None


def install_entry(target: str, key: str, files: list[tuple[str, bytes, int]]) -> bool:
    """Store an entry received whole (from an archive): ``files`` are (path inside the entry,
    contents, mtime in ns), its manifest among them. True when it was installed; False when a
    good entry is already there, or the files do not match their manifest."""
    folder = entry_folder(target, key)
    if any(p in ("", ".", "..") for rel, _, _ in files for p in rel.split("/")):
        return False  # (a path that leaves the entry)
    if folder.exists() and verify_entry(folder) is None:
        return False
    stage = _stage(folder)
    if stage is None:  # (the kernel is then compiled when used, and runs uncached)
        return False
    try:
        for rel, data, mtime_ns in files:
            p = stage / rel
            p.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as f:
                f.write(data)
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


__all__ = ["Entry", "build_entry", "entry_access", "entry_folder", "export_entry",
           "install_entry", "refresh_manifest", "remove_entry"]  # fmt: skip
