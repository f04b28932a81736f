"""The cache folder itself: whether this process may write it, only read it, or must not use
it at all, decided once per folder and process and reported in one warning.

A folder is fusejit's when it holds the marker ``CACHEDIR.TAG`` (the cache directory tag that
backup tools know), written when fusejit creates the folder or first uses an empty one; only
a marked folder is ever cleared. As ssh does for its keys, a folder owned by another user or
writable by group or others is not used (another user could plant kernels in it); the process
then keeps its kernels in memory. Folders fusejit creates are 0700.
"""

from __future__ import annotations

import logging
import os
import stat
import threading
from dataclasses import dataclass
from pathlib import Path

from fusejit.store.manifest import TMP_PREFIX, atomic_write
from fusejit.store.settings import cache_dir

log = logging.getLogger("fusejit")

MARKER = "CACHEDIR.TAG"
TALLY = ".usage"  # the bytes of the entries, as last counted (``disk_bound``)
MARKER_TEXT = (
    b"Signature: 8a477f597d28d172789f06886806bc55\n"
    b"# This file is a cache directory tag created by fusejit (its kernel cache).\n"
    b"# For information about cache directory tags, see https://bford.info/cachedir/\n"
)
TRASH_PREFIX = ".trash-"  # entries being removed: renamed here first, then deleted


@dataclass(frozen=True)
class Root:
    """The cache folder ``path`` and what this process may do with it: ``access`` is "write",
    "read" (use its entries, store nothing) or "none" (memory only); ``reason`` says why not
    "write"."""

    path: Path
    access: str
    reason: str | None = None

    @property
    def readable(self) -> bool:
        return self.access != "none"

    @property
    def writable(self) -> bool:
        return self.access == "write"


_ROOTS: dict[str, Root] = {}
_LOCK = threading.Lock()


def cache_root() -> Root:
    """The current cache folder (``settings.cache_dir``), created and marked when it can be,
    with what this process may do with it. Decided once per folder (a warning, once, when it
    cannot be written)."""
    path = cache_dir()
    root = _ROOTS.get(str(path))
    if root is not None:
        return root
    with _LOCK:
        root = _ROOTS.get(str(path))
        if root is None:
            root = _ROOTS[str(path)] = _inspect(path)
            if root.access == "read":
                log.warning("fusejit: kernel cache folder %s is %s; its kernels are used, new "
                            "ones are kept in memory only", path, root.reason)  # fmt: skip
            elif root.access == "none":
                log.warning("fusejit: kernel cache folder %s is not used: %s; kernels are kept "
                            "in memory only (set FUSEJIT_CACHE_DIR to a folder of your own)",
                            path, root.reason)  # fmt: skip
    return root


def forget_roots() -> None:
    """Decide again at the next use (after ``clear_cache``, as a new process would)."""
    with _LOCK:
        _ROOTS.clear()


def demote(root: Root, reason: str) -> None:
    """A write into ``root`` failed although it looked writable (a read-only file system, a
    folder made read-only meanwhile): use it read-only from now on, with one warning."""
    with _LOCK:
        if _ROOTS.get(str(root.path)) is not root:
            return
        _ROOTS[str(root.path)] = Root(root.path, "read", reason)
    log.warning("fusejit: kernel cache folder %s cannot be written (%s); new kernels are kept "
                "in memory only", root.path, reason)  # fmt: skip


def is_marked(path: Path) -> bool:
    """Whether ``path`` holds fusejit's marker (the folder is fusejit's to clear)."""
    try:
        return (Path(path) / MARKER).read_bytes().startswith(MARKER_TEXT[:43])
    except OSError:
        return False


def make_folder(path: Path) -> None:
    """Create ``path`` (one level, mode 0700) unless it is there."""
    try:
        os.mkdir(path, 0o700)
    except FileExistsError:
        pass


def inspect_root(path: Path) -> Root:
    """What ``cache_root`` would decide for ``path``, without creating or marking anything
    (for ``python -m fusejit info``)."""
    return _inspect(Path(path), create=False)


def _inspect(path: Path, create: bool = True) -> Root:
    if os.path.islink(path) and not os.path.exists(path):
        return Root(path, "none", "it is a symbolic link to a missing folder")
    if not os.path.exists(path) and not create:
        parent = next((p for p in path.parents if os.path.exists(p)), None)
        if parent is None or not parent.is_dir():
            return Root(path, "none", "it cannot be created (a part of its path is a file)")
        if not os.access(parent, os.W_OK | os.X_OK):
            return Root(path, "none", f"it cannot be created ({parent} is not writable)")
        return Root(path, "write")
    if not os.path.exists(path):
        try:
            os.makedirs(path.parent, exist_ok=True)
            make_folder(path)
        except (FileExistsError, NotADirectoryError):
            return Root(path, "none", "it cannot be created (a part of its path is a file)")
        except OSError as e:
            return Root(path, "none", f"it cannot be created ({e.strerror or e})")
    if not path.is_dir():
        return Root(path, "none", "it is not a folder")
    st = os.stat(path)
    posix = os.name == "posix"  # (elsewhere the owner and mode bits mean nothing here)
    if posix and st.st_uid != os.geteuid():
        return Root(path, "none", f"it is owned by another user (uid {st.st_uid})")
    if posix and st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        mode = f"{stat.S_IMODE(st.st_mode):o}"
        return Root(path, "none", f"it is writable by group or others (mode {mode}; chmod go-w)")
    if not os.access(path, os.R_OK | os.X_OK):
        return Root(path, "none", "it cannot be read")
    writable = os.access(path, os.W_OK)
    if not is_marked(path):
        try:
            names = os.listdir(path)
        except OSError as e:
            return Root(path, "none", f"it cannot be listed ({e.strerror or e})")
        if names and not looks_like_a_cache(path, names):
            return Root(path, "none", f"it holds files fusejit did not create (no {MARKER})")
        if writable and create:
            try:
                atomic_write(path / MARKER, MARKER_TEXT)
            except OSError as e:
                return Root(path, "read", f"not writable ({e.strerror or e})")
    if not writable:
        return Root(path, "read", "not writable")
    return Root(path, "write")


def looks_like_a_cache(path: Path, names: list[str]) -> bool:
    """Whether the folder ``path`` holding ``names`` is a fusejit cache from before the marker:
    folders (targets) of folders named by hex keys (entries) or being written."""
    try:
        for name in names:
            target = path / name
            if not target.is_dir() or target.is_symlink():
                return False
            for entry in os.listdir(target):
                hexname = len(entry) >= 16 and all(c in "0123456789abcdef" for c in entry)
                if not (hexname or entry.startswith(TMP_PREFIX)) or not (target / entry).is_dir():
                    return False
    except OSError:
        return False
    return True
