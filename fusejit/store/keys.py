"""Kernel keys, and the targets (compilers) they belong to.

A key hashes everything that changes a kernel: what the compiler passes (the region's
structural hash, rank, variant, device architecture, compiler versions) and its target's
version, which fingerprints the source files the target's kernels are generated from. A
compiler names those files when it registers its target, so a change to any of them changes
every key of that target and a stale kernel is never served.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

# The layout of a disk entry; part of every key, so entries of another layout are never read
# (2: entries appear whole, with their manifest, see ``entries.build_entry``).
FORMAT = "2"


def make_key(*parts) -> str:
    """A 32-hex-digit hash of ``parts`` (their ``repr``)."""
    return hashlib.sha256(repr(parts).encode()).hexdigest()[:32]


def source_files(modules: Iterable[ModuleType]) -> list[Path]:
    """The files of ``modules``: a package's ``.py`` and ``.cuh`` files, a module's own file."""
    files: list[Path] = []
    for m in modules:
        path = Path(m.__file__)
        if path.name == "__init__.py":
            files += sorted(p for p in path.parent.rglob("*") if p.suffix in (".py", ".cuh"))
        else:
            files.append(path)
    return files


@functools.cache
def _fingerprint(paths: tuple[str, ...]) -> str:
    h = hashlib.sha256()
    for p in map(Path, paths):
        h.update(p.name.encode())
        h.update(p.read_bytes())
    return h.hexdigest()[:16]


def fingerprint(modules: Iterable[ModuleType]) -> str:
    """A hash of the names and contents of ``modules``' files (see ``source_files``)."""
    return _fingerprint(tuple(str(p) for p in source_files(modules)))


@dataclass(frozen=True)
class Target:
    """A compiler plugged into the store: ``name`` is its folder in the cache, ``version``
    what every one of its keys depends on besides the parts a key is made of."""

    name: str
    version: str

    def key(self, *parts) -> str:
        """The key of a kernel of this target described by ``parts``."""
        return make_key(self.name, *parts, self.version)


TARGETS: dict[str, Target] = {}


def register_target(name: str, sources: Iterable[ModuleType], toolchain: tuple = ()) -> Target:
    """The target ``name`` whose kernels are generated from ``sources`` (packages or modules)
    and built by ``toolchain`` (versions of the compiler and runtime). Registering a name again
    replaces it."""
    version = f"{FORMAT}-{fingerprint(sources)}-{toolchain!r}"
    t = TARGETS[name] = Target(name, version)
    return t
