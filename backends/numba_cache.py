"""numba's disk cache of a CPU kernel, kept in the kernel's store entry and nowhere else.

numba's own ``cache=True`` looks for a folder itself: ``$NUMBA_CACHE_DIR``, else the source's
``__pycache__``, else ``~/.cache/numba``, and fails ("no locator available") when none can be
written. A kernel's compiled code belongs in its entry (the manifest covers it, ``cache
clear`` removes it, archives ship it), so the kernels are jitted without numba's cache and
given this one: ``<entry>/__pycache__``, read and written when the entry may be written,
only read in a read-only cache folder, none at all for a kernel kept in memory.
"""

from __future__ import annotations

import hashlib
import os
import sys
from pathlib import Path

from fusejit.backends import native
from numba.core.caching import (
    CompileResultCacheImpl,
    FunctionCache,
    IndexDataCacheFile,
    _CacheLocator,
)

from fusejit.store import adding_files


def source_stamp(source: bytes) -> bytes:
    """The stamp numba's index files hold for a source file: the SHA-256 of its bytes (as
    numba computes it), so entries written by numba's own locator stay valid."""
    return hashlib.sha256(source).digest()


class _EntryLocator(_CacheLocator):
    """``<entry>/__pycache__`` for a function of the entry's ``kernel.py``, stamped with the
    source the module was made from (read once: the file may be removed meanwhile)."""

    def __init__(self, py_func, folder: Path, stamp: bytes) -> None:
        self._py_file = py_func.__code__.co_filename
        self._lineno = py_func.__code__.co_firstlineno
        self._path = str(Path(folder) / "__pycache__")
        self._stamp = stamp

    def ensure_cache_path(self) -> None:
        # one level only: an entry removed meanwhile (a clear) is not made again around it
        try:
            os.mkdir(self._path, 0o700)
        except FileExistsError:
            pass

    def get_cache_path(self) -> str:
        return self._path

    def get_source_stamp(self) -> bytes:
        return self._stamp

    def get_disambiguator(self) -> str:
        return str(self._lineno)  # (as numba's in-tree locator: the same file names)


class _EntryImpl(CompileResultCacheImpl):
    def __init__(self, py_func, locator: _EntryLocator) -> None:  # (no search for a locator)
        self._lineno = py_func.__code__.co_firstlineno
        self._locator = locator
        modname = os.path.splitext(os.path.basename(py_func.__code__.co_filename))[0]
        fullname = f"{modname}.{py_func.__qualname__}"
        self._filename_base = self.get_filename_base(fullname, getattr(sys, "abiflags", ""))


class EntryCache(FunctionCache):
    """numba's function cache in an entry's folder; saves only when ``writable``, and a save
    that fails (the entry removed by a clear meanwhile) leaves the kernel in memory."""

    def __init__(self, py_func, folder: Path, stamp: bytes, writable: bool) -> None:
        self._name = repr(py_func)
        self._py_func = py_func
        self._impl = _EntryImpl(py_func, _EntryLocator(py_func, folder, stamp))
        self._cache_path = self._impl.locator.get_cache_path()
        self._cache_file = IndexDataCacheFile(cache_path=self._cache_path,
                                              filename_base=self._impl.filename_base,
                                              source_stamp=stamp)  # fmt: skip
        self.writable = writable
        self._folder = Path(folder)
        self._stamp = stamp
        self.enable()

    def save_overload(self, sig, data) -> None:
        if not self.writable:
            return
        try:
            with adding_files(self._folder):  # (signed into the manifest under its lock)
                super().save_overload(sig, data)
                for name in os.listdir(self._cache_path):  # (numba writes them 0666 less umask)
                    os.chmod(os.path.join(self._cache_path, name), 0o600)
                # and its machine code, which a new process loads without numba (``native``)
                native.save(self._folder, self._py_func.__name__, data, self._stamp.hex())
        except OSError:
            pass  # (the kernel was compiled and runs; only its disk copy is missing)


def attach(dispatcher, folder: Path, stamp: bytes, access: str):
    """Give the numba ``dispatcher`` (jitted without ``cache=True``) the cache in the entry
    ``folder`` for ``access`` ("write", "read" or "none": no cache); returns it."""
    if access != "none":
        # numba's Dispatcher.enable_caching sets this same attribute to its own cache
        dispatcher._cache = EntryCache(dispatcher.py_func, folder, stamp, access == "write")
    return dispatcher
