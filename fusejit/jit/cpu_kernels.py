"""Building, caching and launching CPU kernels (numba) for fused-region bodies.

A kernel is shape-generic: the key holds the body, its rank and the versions, never the sizes,
so a new size with the same dtypes, rank and broadcast pattern reuses the compiled code. numba
itself specializes the compiled code on each array argument's layout (contiguous or strided).
"""

from __future__ import annotations

import importlib.util
import logging
import os
import sys

import numba
import numpy as np

from .. import dtypes as dt
from ..codegen.body import KernelBody
from ..codegen.cpu import kernel_source, nd_kernel_source
from ..errors import CompileError
from .cache import CACHE, CODEGEN_VERSION, cache_dir, debug_level, make_key, remove_entry
from .cache import atomic_write, verify_entry, write_manifest

log = logging.getLogger("fusejit")

# Above this many elements a flat kernel splits its loop across threads. Measured on the 2-core
# development machine with bench/bench_threads.py: below ~256K float32 elements the cost of
# waking the thread pool exceeds the gain.
PARALLEL_THRESHOLD = int(os.environ.get("FUSEJIT_CPU_PARALLEL_THRESHOLD", 1 << 18))
CHUNK = 1 << 14
_JIT_OPTS = dict(cache=True, error_model="numpy", nogil=True, boundscheck=False)


class CpuKernel:
    """A compiled fused region: call with input arrays (already in the body's input dtypes)
    and the output shape; returns the output arrays."""

    def __init__(self, key: str, body: KernelBody, rank: int, folder, module, origin: str):
        self.key = key
        self.body = body
        self.rank = rank
        self.folder = folder
        self.origin = origin
        name = "k"
        self.flat = numba.njit(**_JIT_OPTS)(getattr(module, f"{name}_flat"))
        self._par_py = getattr(module, f"{name}_par")
        self._par = None
        nd = getattr(module, f"{name}_nd{rank}", None)
        self.nd = numba.njit(**_JIT_OPTS)(nd) if nd is not None else None
        self.out_np = tuple(dt.as_dtype(d).np for d in body.out_dtypes())

    @property
    def par(self):
        if self._par is None:
            self._par = numba.njit(parallel=True, **_JIT_OPTS)(self._par_py)
        return self._par

    def __call__(self, *arrays):
        shape = arrays[0].shape
        flat = True
        for a in arrays:
            if a.shape != shape or not a.flags.c_contiguous:
                flat = False
                break
        if not flat:
            return self._call_broadcast(arrays)
        outs = [np.empty(shape, d) for d in self.out_np]
        n = outs[0].size
        if n == 0:
            return outs
        fn = self.flat if n < PARALLEL_THRESHOLD else self.par
        before = len(fn.overloads)
        if len(shape) == 1:
            fn(*arrays, *outs)
        else:
            fn(*[a.reshape(-1) for a in arrays], *[o.reshape(-1) for o in outs])
        if len(fn.overloads) != before:
            self._compiled()
        return outs

    def _call_broadcast(self, arrays):
        shape = np.broadcast_shapes(*[a.shape for a in arrays])
        outs = [np.empty(shape, d) for d in self.out_np]
        if outs[0].size == 0:
            return outs
        fn = self.flat if len(shape) <= 1 else self.nd
        before = len(fn.overloads)
        if len(shape) <= 1:
            n = outs[0].size
            fn(*[np.broadcast_to(a, (n,)) for a in arrays], *[o.reshape(-1) for o in outs])
        else:
            fn(*[np.broadcast_to(a, shape) for a in arrays], *outs)
        if len(fn.overloads) != before:
            self._compiled()
        return outs

    def _compiled(self) -> None:
        # numba compiled a new specialization (a new argument layout) and wrote it to its
        # cache folder: refresh the manifest so the next process can verify the entry.
        try:
            write_manifest(self.folder)
        except OSError as e:  # a read-only cache folder still runs, uncached
            log.warning("fusejit: cannot write kernel cache manifest in %s: %s", self.folder, e)


def _numba_version() -> str:
    return numba.__version__


def cpu_kernel(body: KernelBody, rank: int) -> CpuKernel:
    """The compiled kernel for ``body`` at ``rank``, from memory, disk or a fresh compile."""
    rank = max(rank, 1)
    key = make_key("cpu", body.key(), rank, CODEGEN_VERSION, _numba_version(), sys.version_info[:2])
    k = CACHE.get(key)
    if k is not None:
        return k
    with CACHE.lock:
        k = CACHE.memory.get(key)
        if k is not None:
            return k
        k = _load_or_build(key, body, rank)
        CACHE.put(key, k, k.origin)
        return k


def _load_or_build(key: str, body: KernelBody, rank: int) -> CpuKernel:
    folder = cache_dir() / "cpu" / key
    src_path = folder / "kernel.py"
    origin = "compiled"
    why = "not in the cache"
    if folder.exists():
        reason = verify_entry(folder)
        if reason is None and not src_path.is_file():
            reason = "missing kernel.py"
        if reason is None:
            origin = "disk"
        elif reason == "no manifest":
            # not corrupt: another process is building this entry right now (its manifest
            # comes after numba's first compile), or a build was interrupted. Removing the
            # folder would pull the files from under that process; build beside it instead.
            why = "cache entry incomplete (no manifest yet)"
        else:
            log.warning("fusejit: kernel cache entry %s is corrupt (%s); rebuilding", key, reason)
            CACHE.stats["corrupt"] += 1
            remove_entry(folder)
            why = f"cache entry corrupt ({reason})"
    if origin == "compiled":
        src = kernel_source(body, "k", CHUNK)
        if rank > 1:
            src += "\n\n" + nd_kernel_source(body, "k", rank)
        if debug_level() >= 1:
            log.info("fusejit: compiling CPU kernel %s (%d ops, rank %d): %s", key,
                     len(body.steps), rank, why)  # fmt: skip
        if debug_level() >= 2:
            log.info("fusejit: source of %s:\n%s", key, src)
        try:
            same = src_path.read_bytes() == src.encode()
        except OSError:
            same = False
        if not same:  # (an identical file keeps its mtime, so numba's cache stays valid)
            atomic_write(src_path, src.encode())
    try:
        spec = importlib.util.spec_from_file_location(f"fusejit_kernel_{key}", src_path)
        module = importlib.util.module_from_spec(spec)
        # numba's cache rebuilds a kernel's environment by importing its module by name
        sys.modules[spec.name] = module
        spec.loader.exec_module(module)
    except Exception as e:  # generated code that does not load is our bug: say which kernel
        raise CompileError(f"CPU kernel {key} failed to load from {src_path}: {e}") from e
    return CpuKernel(key, body, rank, folder, module, origin)
