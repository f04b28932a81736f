"""The files of a disk entry and its manifest: ``MANIFEST.json`` maps each file's path inside
the entry to its SHA-256, so a damaged entry is detected before anything of it is loaded."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

log = logging.getLogger("fusejit")

MANIFEST = "MANIFEST.json"
TMP_PREFIX = ".tmp-"  # files and folders being written (never part of an entry)


def atomic_write(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` under a temporary name, then rename it into place: a reader
    sees the old file or the new one, never part of it. The folder must exist (an entry
    removed meanwhile is not brought back as a folder holding only this file)."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=TMP_PREFIX)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def entry_files(folder: Path) -> Iterator[Path]:
    """The files of the entry in ``folder``, its manifest excepted, in a stable order."""
    for p in sorted(folder.rglob("*")):
        if p.is_file() and p.name != MANIFEST and not p.name.startswith(TMP_PREFIX):
            yield p


def write_manifest(folder: Path) -> None:
    """List every file of ``folder`` with its checksum (replacing the manifest there)."""
    files = {p.relative_to(folder).as_posix(): _digest(p) for p in entry_files(folder)}
    atomic_write(folder / MANIFEST, json.dumps(files, sort_keys=True).encode())


def update_manifest(folder: Path) -> None:
    """``write_manifest`` after a compiler added files to a loaded entry (numba writes each new
    specialization beside the source); a cache that cannot be written is only reported."""
    try:
        write_manifest(folder)
    except OSError as e:  # a read-only cache folder still runs, uncached
        log.warning("fusejit: cannot write kernel cache manifest in %s: %s", folder, e)


def verify_entry(folder: Path) -> str | None:
    """None when the entry matches its manifest, else the reason it does not."""
    try:
        files = json.loads((folder / MANIFEST).read_text())
    except FileNotFoundError:
        return "no manifest"
    except (OSError, ValueError, UnicodeDecodeError):
        return "unreadable manifest"
    if not isinstance(files, dict):
        return "malformed manifest"
    for rel, digest in files.items():
        p = folder / rel
        if not p.is_file():
            return f"missing {rel}"
        if _digest(p) != digest:
            return f"{rel} does not match its checksum"
    return None
