"""numba's cache of a CPU kernel, kept inside the kernel's store entry.

numba caches a function's compiled code (an index ``.nbi`` and data ``.nbc`` files, both
pickles) where its locators say: beside the source, or under ``$NUMBA_CACHE_DIR`` (or classes
named by ``$NUMBA_CACHE_LOCATOR_CLASSES``). The store verifies an entry's folder only, so
every file numba loads must be in that folder: ``attach`` gives a kernel's dispatcher a cache
whose one locator is the entry's ``__pycache__`` folder, whatever the environment says.
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

from numba.core.caching import CompileResultCacheImpl, FunctionCache, _CacheLocator
from numba.core.dispatcher import Dispatcher

CACHE_FOLDER = "__pycache__"  # inside the entry


class EntryLocator(_CacheLocator):
    """Caches the functions of an entry's ``kernel.py`` in the entry itself."""

    def __init__(self, py_func) -> None:
        self._py_file = py_func.__code__.co_filename  # (numba's warnings name it)
        self._lineno = py_func.__code__.co_firstlineno
        self._cache_path = str(Path(self._py_file).parent / CACHE_FOLDER)

    def get_cache_path(self) -> str:
        return self._cache_path

    def get_source_stamp(self) -> str:
        # the source's contents, not its time stamp: an entry installed from an archive or
        # copied keeps its compiled code, and an edited source never gets stale code
        return hashlib.sha256(Path(self._py_file).read_bytes()).hexdigest()

    def get_disambiguator(self) -> str:
        return str(self._lineno)

    @classmethod
    def from_function(cls, py_func, py_file):
        return cls(py_func)


class _EntryCacheImpl(CompileResultCacheImpl):
    def __init__(self, py_func) -> None:
        # not numba's __init__, which picks the locator from the environment
        self._lineno = py_func.__code__.co_firstlineno
        self._locator = EntryLocator(py_func)
        module = Path(py_func.__code__.co_filename).stem
        fullname = f"{module}.{py_func.__qualname__}"
        self._filename_base = self.get_filename_base(fullname, getattr(sys, "abiflags", ""))


class EntryCache(FunctionCache):
    """numba's function cache, in the entry of the function's source (see ``EntryLocator``)."""

    _impl_class = _EntryCacheImpl

    def save_overload(self, sig, data) -> None:
        try:
            super().save_overload(sig, data)
        except OSError:  # a read-only cache still runs: the code is compiled again next time
            pass


def attach(fn: Dispatcher) -> Dispatcher:
    """Cache ``fn`` (a dispatcher made without ``cache=True``) in the entry its source file
    lives in. Returns ``fn``."""
    # numba's one way to set a dispatcher's cache is ``enable_caching``, which uses its own
    # locators: set the attribute it sets
    fn._cache = EntryCache(fn.py_func)
    return fn
