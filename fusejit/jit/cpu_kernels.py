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
import time

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
        self._nsigs = 0
        self.compile_seconds = 0.0

    @property
    def par(self):
        if self._par is None:
            self._par = numba.njit(parallel=True, **_JIT_OPTS)(self._par_py)
        return self._par

    def __call__(self, *arrays, shape=None):
        if shape is None:
            shape = arrays[0].shape
            for a in arrays[1:]:
                if a.shape != shape:
                    shape = np.broadcast_shapes(*[x.shape for x in arrays])
                    break
        outs = [np.empty(shape, d) for d in self.out_np]
        n = outs[0].size
        if n == 0:
            return outs
        flat = True
        for a in arrays:
            if a.shape != shape or not a.flags.c_contiguous:
                flat = False
                break
        t0 = time.perf_counter()
        if flat:
            args = [a.reshape(-1) for a in arrays] + [o.reshape(-1) for o in outs]
            (self.par if n >= PARALLEL_THRESHOLD else self.flat)(*args)
        elif len(shape) <= 1:
            args = [np.broadcast_to(a, shape).reshape(-1) if a.ndim else np.broadcast_to(a, (n,))
                    for a in arrays] + [o.reshape(-1) for o in outs]  # fmt: skip
            self.flat(*args)
        else:
            self.nd(*[np.broadcast_to(a, shape) for a in arrays], *outs)
        self._after_call(t0)
        return outs

    def _after_call(self, t0: float) -> None:
        # numba compiles a new specialization on first use of an argument layout and writes it
        # to its cache folder: refresh the manifest so the next process can verify it.
        n = len(self.flat.signatures) + (len(self._par.signatures) if self._par else 0) + (
            len(self.nd.signatures) if self.nd is not None else 0
        )
        if n != self._nsigs:
            self._nsigs = n
            self.compile_seconds += time.perf_counter() - t0
            try:
                write_manifest(self.folder)
            except OSError as e:  # a read-only cache folder still runs, uncached
                log.warning("fusejit: cannot write kernel cache manifest in %s: %s",
                            self.folder, e)  # fmt: skip


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
    if folder.exists():
        reason = verify_entry(folder)
        if reason is None:
            origin = "disk"
        else:
            log.warning("fusejit: kernel cache entry %s is corrupt (%s); rebuilding", key, reason)
            CACHE.stats["corrupt"] += 1
            remove_entry(folder)
    if origin == "compiled":
        src = kernel_source(body, "k", CHUNK)
        if rank > 1:
            src += "\n\n" + nd_kernel_source(body, "k", rank)
        if debug_level() >= 1:
            log.info("fusejit: compiling CPU kernel %s (%d ops, rank %d)", key, len(body.steps),
                     rank)  # fmt: skip
        if debug_level() >= 2:
            log.info("fusejit: source of %s:\n%s", key, src)
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
