"""Advisory locks between processes sharing a cache folder.

An entry is published whole, but a compiler may add files to it afterwards: numba writes each
new specialization of a CPU kernel beside its source, and the manifest is then signed again.
Two processes doing so at once could leave a manifest that lists the other's bytes, and a
reader in between would take the entry for corrupt and remove it. So writers hold the entry's
lock while they add and sign files (``entries.adding_files``), and a reader that finds a
mismatch checks again under it (``protocol``).

The lock is ``flock`` on the entry's folder itself: nothing is added to the cache, and an entry
removed or replaced meanwhile is another folder, with a lock of its own. Where the platform has
no ``flock`` the lock does nothing (a mismatch is then rebuilt, as it was before).
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
    """Hold the lock of the entry in ``folder`` (exclusive, or shared for readers); an entry
    that is not there (removed meanwhile) is not locked."""
    if fcntl is None:
        yield
        return
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        yield
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_SH if shared else fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # (closing releases the lock)
