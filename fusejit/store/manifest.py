"""The files of a disk entry and its manifest, ``MANIFEST.json``: the entry's target and key,
each file's path inside the entry with its SHA-256, and an HMAC of all that under this
machine's key (``signing``). An entry is loaded only when its manifest is signed with this
machine's key, names the target and key it is looked up under (an entry moved to another key's
folder is refused) and lists exactly the files there, each matching its checksum: a damaged,
unsigned (written by an earlier fusejit) or planted entry is detected before anything of it is
loaded.

Format: ``{"format": "fusejit-entry", "version": 1, "target": str, "key": str,
"files": {path: sha256}, "hmac": hex}``, the HMAC over the canonical JSON of the other fields.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from fusejit.store.signing import machine_key

log = logging.getLogger("fusejit")

MANIFEST = "MANIFEST.json"
TMP_PREFIX = ".tmp-"  # files and folders being written (never part of an entry)
FORMAT = "fusejit-entry"
VERSION = 1


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


def _listing(folder: Path) -> dict[str, str]:
    return {p.relative_to(folder).as_posix(): _digest(p) for p in entry_files(folder)}


def _signed_part(target: str, key: str, files: dict) -> bytes:
    body = {"format": FORMAT, "version": VERSION, "target": target, "key": key, "files": files}
    return json.dumps(body, sort_keys=True).encode()


def _where(folder: Path, target: str | None, key: str | None) -> tuple[str, str]:
    """The target and key of the entry in ``folder``: as given, else from its place in the
    cache, ``<target>/<key>``."""
    return target or folder.parent.name, key or folder.name


def write_manifest(folder: Path, target: str | None = None, key: str | None = None) -> None:
    """List every file of ``folder`` with its checksum, for the entry of ``key`` of
    ``target`` (by default those its place names, see ``_where``), signed with this
    machine's key (replacing the manifest there)."""
    target, key = _where(folder, target, key)
    files = _listing(folder)
    body = json.loads(_signed_part(target, key, files))
    body["hmac"] = machine_key().sign(_signed_part(target, key, files))
    atomic_write(folder / MANIFEST, json.dumps(body, sort_keys=True).encode())


def update_manifest(folder: Path) -> None:
    """``write_manifest`` after a compiler added files to a loaded entry (numba writes each new
    specialization beside the source); a cache that cannot be written is only reported."""
    try:
        write_manifest(folder)
    except OSError as e:  # a read-only cache folder still runs, uncached
        log.warning("fusejit: cannot write kernel cache manifest in %s: %s", folder, e)


def _read(folder: Path) -> dict | str:
    """The manifest of ``folder`` as a dict, or why it cannot be read."""
    try:
        m = json.loads((folder / MANIFEST).read_text())
    except FileNotFoundError:
        return "no manifest"
    except (OSError, ValueError, UnicodeDecodeError, RecursionError):
        return "unreadable manifest"
    return m if isinstance(m, dict) else "malformed manifest"


def _check_files(folder: Path, files: object) -> str | None:
    """None when ``files`` (path -> sha256) lists exactly the files of ``folder``, each
    matching its checksum; else what does not."""
    if not isinstance(files, dict) or not all(
        isinstance(r, str) and isinstance(d, str) for r, d in files.items()
    ):
        return "malformed manifest"
    present = {p.relative_to(folder).as_posix(): p for p in entry_files(folder)}
    for rel, digest in files.items():
        p = present.get(rel)
        if p is None:
            return f"missing {rel}"
        if _digest(p) != digest:
            return f"{rel} does not match its checksum"
    extra = sorted(set(present) - set(files))
    if extra:  # (numba would load a planted index file beside the listed ones)
        return f"{extra[0]} is not in the manifest"
    return None


def verify_entry(folder: Path, target: str | None = None, key: str | None = None) -> str | None:
    """None when ``folder`` holds the entry of ``key`` of ``target`` (by default those its
    place names) signed with this machine's key, with exactly the files its manifest lists;
    else the reason it does not."""
    target, key = _where(folder, target, key)
    m = _read(folder)
    if isinstance(m, str):
        return m
    if "hmac" not in m:
        return "unsigned manifest (an entry of an earlier fusejit, or not written by fusejit)"
    if m.get("format") != FORMAT or m.get("version") != VERSION:
        return "malformed manifest"
    files = m.get("files")
    if not isinstance(files, dict):
        return "malformed manifest"
    if not machine_key().verify(_signed_part(m.get("target"), m.get("key"), files), m["hmac"]):
        return "manifest not signed with this machine's key"
    if (m.get("target"), m.get("key")) != (target, key):
        return f"the entry of {m.get('target')}/{m.get('key')}, not of {target}/{key}"
    return _check_files(folder, files)


def adopt_manifest(folder: Path, target: str, key: str) -> str | None:
    """Sign, with this machine's key, the entry of ``key`` of ``target`` shipped in an archive
    whose own signature has verified (the archive is the trust decision): its manifest, signed
    on the machine that wrote it (or unsigned, from an earlier fusejit), must list exactly the
    files in ``folder`` with their checksums, and name this target and key if it names any.
    None when the entry is now signed, else why it is refused."""
    m = _read(folder)
    if isinstance(m, str):
        return m
    if "hmac" in m:
        if (m.get("target"), m.get("key")) != (target, key):
            return f"the entry of {m.get('target')}/{m.get('key')}, not of {target}/{key}"
        files = m.get("files")
    else:  # an earlier fusejit's manifest: the listing only
        files = m
    why = _check_files(folder, files)
    if why is None:
        write_manifest(folder, target, key)
    return why
