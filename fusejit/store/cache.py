"""The kernel cache: per device, in memory and on disk.

Disk layout: ``$FUSEJIT_CACHE_DIR`` (default ``~/.cache/fusejit``) / ``<target>`` / ``<key>/``,
one folder per kernel holding the generated source, the compiler's output and ``MANIFEST.json``
(SHA-256 of every file). The key hashes everything that changes the generated code: the
region's structural hash (ops, wiring, dtypes, constants), rank, target and device, the
codegen version and the compiler's version.

Writes are atomic (a temporary name, then ``os.replace``), so two processes building one kernel
both succeed. An entry whose files do not match its manifest is removed and rebuilt, never
loaded.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
import threading
from collections import Counter
from pathlib import Path

log = logging.getLogger("fusejit")


def _generator_fingerprint() -> str:
    """A hash of the code that writes kernels (renderers, math library, op expressions), so
    that a change to any of them changes every key and stale kernels are never served."""
    from fusejit import codegen, kernels, ops

    files = []
    for pkg in (codegen, kernels):
        folder = Path(pkg.__file__).parent
        files += sorted(p for p in folder.iterdir() if p.suffix in (".py", ".cuh"))
    files.append(Path(ops.__file__).parent / "elementwise.py")
    h = hashlib.sha256()
    for f in files:
        h.update(f.name.encode())
        h.update(f.read_bytes())
    return h.hexdigest()[:16]


CODEGEN_VERSION = "1-" + _generator_fingerprint()


def cache_dir() -> Path:
    env = os.environ.get("FUSEJIT_CACHE_DIR")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "fusejit"


def debug_level() -> int:
    try:
        return int(os.environ.get("FUSEJIT_DEBUG", "0") or 0)
    except ValueError:
        return 1


def make_key(*parts) -> str:
    return hashlib.sha256(repr(parts).encode()).hexdigest()[:32]


def atomic_write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
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


def _entry_files(folder: Path):
    for p in sorted(folder.rglob("*")):
        if p.is_file() and p.name != "MANIFEST.json" and not p.name.startswith(".tmp-"):
            yield p


def write_manifest(folder: Path) -> None:
    files = {str(p.relative_to(folder)): _digest(p) for p in _entry_files(folder)}
    atomic_write(folder / "MANIFEST.json", json.dumps(files, sort_keys=True).encode())


def verify_entry(folder: Path) -> str | None:
    """None when the entry matches its manifest, else the reason it does not."""
    man = folder / "MANIFEST.json"
    try:
        files = json.loads(man.read_text())
    except FileNotFoundError:
        return "no manifest"
    except (ValueError, UnicodeDecodeError):
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


def remove_entry(folder: Path) -> None:
    shutil.rmtree(folder, ignore_errors=True)


class KernelCache:
    """In-memory dict in front of the disk folders; counts hits and misses per level."""

    def __init__(self) -> None:
        self.memory: dict[str, object] = {}
        self.stats: Counter = Counter()
        self.lock = threading.RLock()
        self.origin: dict[str, str] = {}  # key -> "compiled" / "disk"
        # dicts elsewhere that hold kernels (a backend's kernel per body): emptied with the
        # memory, so that after ``clear_cache(disk=False)`` kernels load as in a new process
        self.memos: list[dict] = []

    def get(self, key: str):
        k = self.memory.get(key)
        if k is not None:
            self.stats["memory_hits"] += 1
        return k

    def put(self, key: str, kernel, origin: str) -> None:
        self.memory[key] = kernel
        self.origin[key] = origin
        self.stats["disk_hits" if origin == "disk" else "misses"] += 1

    def get_or_build(self, key: str, build):
        """The kernel of ``key``: from memory, else ``build()`` -> (kernel, origin) run once
        under the lock, so threads asking at once share one build."""
        k = self.get(key)
        if k is not None:
            return k
        with self.lock:
            k = self.memory.get(key)
            if k is None:
                k, origin = build()
                self.put(key, k, origin)
            return k

    def clear_memory(self) -> None:
        self.memory.clear()
        self.origin.clear()
        for m in self.memos:
            m.clear()


CACHE = KernelCache()


def cache_info() -> dict:
    """Hits and misses per level, kernels in memory, and the disk folder with its size.

    >>> import fusejit
    >>> sorted(fusejit.cache_info())[:3]
    ['compiled', 'dir', 'disk_bytes']
    """
    d = cache_dir()
    size = sum(p.stat().st_size for p in d.rglob("*") if p.is_file()) if d.exists() else 0
    return {
        "memory_hits": CACHE.stats["memory_hits"],
        "disk_hits": CACHE.stats["disk_hits"],
        "compiled": CACHE.stats["misses"],
        "rebuilt_corrupt": CACHE.stats["corrupt"],
        "in_memory": len(CACHE.memory),
        "dir": str(d),
        "disk_bytes": size,
    }


def clear_cache(disk: bool = True) -> None:
    """Empty the in-memory cache (with the kernels each backend holds) and, by default, the
    disk cache folder. With ``disk=False`` the next calls load their kernels from disk, as a
    new process would."""
    with CACHE.lock:
        CACHE.clear_memory()
        CACHE.stats.clear()
        if disk:
            d = cache_dir()
            if d.exists():
                shutil.rmtree(d, ignore_errors=True)
