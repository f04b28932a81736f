"""Advisory locks between processes sharing a cache folder.

A kernel's entry is published whole, but a compiler may add files to it afterwards: numba
writes each new specialization of a CPU kernel beside its source, and the manifest is then
updated. Two processes doing so at once could leave a manifest that lists the other's bytes,
and a reader in between would take the entry for corrupt. The writers of one entry therefore
take its lock (``<target>/<key>.lock``, beside the entry so that removing or replacing the
entry leaves the lock alone), and a reader that finds a mismatch checks again under it.

POSIX ``flock``; where the platform has none, the lock does nothing (a mismatch is then
rebuilt, as before).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

try:
    import fcntl
except ImportError:  # (not on Windows)
    fcntl = None

__all__ = ["entry_lock"]


@contextlib.contextmanager
def entry_lock(folder: Path, shared: bool = False) -> Iterator[None]:
    """Hold the lock of the entry in ``folder`` (exclusive, or shared for readers). A cache
    folder where the lock file cannot be created runs unlocked."""
    if fcntl is None:
        yield
        return
    try:
        fd = os.open(str(folder) + ".lock", os.O_RDWR | os.O_CREAT, 0o600)
    except OSError:  # (a read-only cache: nobody writes there either)
        yield
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_SH if shared else fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # (closing releases the lock)
