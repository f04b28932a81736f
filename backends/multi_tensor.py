"""Launching multi-tensor optimizer updates (``fusejit/codegen/multi_tensor.py``): one kernel
updates every tensor of a list, on the CPU (numba, the work list split over fusejit's threads)
and on CUDA (NVRTC, one block per chunk).

``update(spec, lists, tscal, flags, scalars)`` takes, per list of ``spec.lists``, the arrays
of the tensors (numpy or cupy, contiguous, of ``spec.dtype``, one shape per tensor across the
lists), ``tscal`` (float64, ``(T, 2)``: each tensor's two scalars), ``flags`` (int64, ``T``)
and the hyper-parameters (Python floats), and writes the parameters and states in place.
``LAUNCHES`` counts the kernels launched, by ``(device type, dtype)``.
"""

from __future__ import annotations

import collections
import hashlib
import operator
import threading
import weakref
from pathlib import Path

import numpy as np
from fusejit.backends import cpu_kernels as cpk
from fusejit.backends import cuda as cb
from fusejit.backends import cuda_kernels as ck

from fusejit.codegen import cuda as cg
from fusejit.codegen import multi_tensor as mt
from fusejit.store import CACHE, Recipe, atomic_write, entry_updated, load_or_build

# Elements of a chunk of the CPU work list: the unit the threads share out.
CPU_CHUNK = 1 << 16
# A CPU update splits its chunks over the threads from this many elements (float16 counts
# double: its conversions cost). Measured with bench/bench_optim.py on the 2-core development
# machine under heavy load from other processes (load average 9-13, bench/RESULTS.md): the
# update is memory-bound, and a second thread gained nothing at 2^24 elements (50 vs 49 ms) and
# lost below (2^22: 6.7 vs 12 ms), so the split starts late, where a hand-off costs little.
CPU_PARALLEL_THRESHOLD = 1 << 23
LAUNCHES: collections.Counter = collections.Counter()
_LOCK = threading.Lock()


class Addresses:
    """The address table of a multi-tensor update's lists, kept between calls: a row whose
    arrays are the same objects as at the last call (parameters and states, updated in place)
    is reused, the others (gradients, new after each backward) are looked up again. Looking up
    an array's address costs about a microsecond, a step over 148 tensors hundreds of them."""

    def __init__(self) -> None:
        self._rows: dict = {}  # row -> (the arrays, their addresses)
        self._table: np.ndarray | None = None  # (rewritten in place where a row changed)

    def table(self, lists: list, addr_of, keep) -> np.ndarray:
        shape = (len(lists), len(lists[0]))
        t = self._table
        new = t is None or t.shape != shape
        if new:
            t = self._table = np.empty(shape, np.int64)
        for r, arrays in enumerate(lists):
            old = self._rows.get(r)
            if old is not None and len(old[0]) == len(arrays):
                if all(map(operator.is_, old[0], arrays)):
                    if new:
                        t[r] = old[1]
                    continue
            row = np.fromiter(map(addr_of, arrays), np.int64, len(arrays))
            if keep[r]:
                self._rows[r] = (tuple(arrays), row)
            t[r] = row
        return t


def _cpu_addr(a) -> int:
    return a.__array_interface__["data"][0]


def _cuda_addr(a) -> int:
    return a.data.ptr


def update(
    spec: mt.UpdateSpec,
    lists: list,
    tscal: np.ndarray,
    flags: np.ndarray,
    scalars,
    addresses: Addresses | None = None,
):
    """Run ``spec``'s multi-tensor update over ``lists`` (see the module docstring);
    ``addresses`` keeps the address table between calls over the same arrays."""
    arrays = lists[0]
    if not arrays:
        return
    cpu = isinstance(arrays[0], np.ndarray)
    keep = [name != "grad" for name in spec.lists]
    addr_of = _cpu_addr if cpu else _cuda_addr
    if addresses is None:
        addrs = Addresses().table(lists, addr_of, keep)
    else:
        addrs = addresses.table(lists, addr_of, keep)
    if cpu:
        kernel = cpu_kernel(spec)
        kind = "cpu"
    else:
        kernel = CudaMultiTensor.of(spec, arrays[0])
        kind = "cuda"
    kernel(addrs, [a.size for a in arrays], tscal, flags, scalars)
    with _LOCK:
        LAUNCHES[(kind, spec.dtype)] += 1


# ---- CPU -------------------------------------------------------------------------------------
class CpuMultiTensor:
    """A compiled CPU multi-tensor update (``k_multi`` of ``codegen.multi_tensor``)."""

    def __init__(self, key: str, spec: mt.UpdateSpec, folder, module, origin: str) -> None:
        self.key = key
        self.spec = spec
        self.folder = folder
        self.origin = origin
        self.fn = module.function("k_multi", jit=True)  # stored machine code, else numba
        self.np_c = np.dtype(mt.compute_dtype(spec.dtype))
        self.threaded = 0  # launches split across threads (for tests)
        self._work: dict = {}  # sizes -> work list

    def work(self, sizes: tuple) -> np.ndarray:
        w = self._work.get(sizes)
        if w is None:
            w = np.array(mt.chunks(sizes, CPU_CHUNK), dtype=np.int64).reshape(-1, 3)
            if len(self._work) >= 16:
                self._work.clear()
            self._work[sizes] = w
        return w

    def __call__(self, addrs: np.ndarray, sizes, tscal, flags, scalars) -> None:
        """Update the tensors of ``sizes`` whose arrays are at ``addrs[list, tensor]``."""
        half = self.spec.dtype == "float16"
        sizes = tuple(sizes)
        work = self.work(sizes)
        if len(work) == 0:
            return
        c = self.np_c.type
        args = (work, addrs, np.ascontiguousarray(tscal, self.np_c), flags,
                np.array([c(s) for s in scalars], self.np_c))  # fmt: skip
        fn = self.fn
        before = len(fn.overloads)
        total = sum(sizes)
        threads = min(cpk.THREADS, len(work))
        if threads > 1 and before and total * (2 if half else 1) >= CPU_PARALLEL_THRESHOLD:
            self.threaded += 1
            cpk._run_split(fn, len(work), threads, args)
        else:
            fn(0, len(work), *args)
        if len(fn.overloads) != before:
            entry_updated(self.folder)


# spec -> its CPU kernel: a step looks it up without making its key (a hash of the spec and
# the target) and asking the cache; emptied with the memory cache
_CPU_KERNELS: dict = {}
CACHE.hold(_CPU_KERNELS)


def cpu_kernel(spec: mt.UpdateSpec) -> CpuMultiTensor:
    """The compiled CPU kernel of ``spec``, from memory, disk or a fresh compile."""
    k = _CPU_KERNELS.get(spec)
    if k is None:
        k = _CPU_KERNELS[spec] = _load_cpu_kernel(spec)
    return k


def _load_cpu_kernel(spec: mt.UpdateSpec) -> CpuMultiTensor:
    key = cpk.TARGET.key("multi", spec.key())

    def source() -> str:
        return mt.cpu_source(spec)

    def build(folder: Path, src: str) -> None:
        atomic_write(folder / "kernel.py", src.encode())  # (numba compiles on the first call)

    def load(folder: Path, origin: str):
        module = cpk._import(key, folder / "kernel.py")
        k = CpuMultiTensor(key, spec, folder, module, origin)
        weakref.finalize(k, cpk._unregister, module.module)
        return k

    what = f"CPU multi-tensor update {key} ({spec.algo}, {spec.dtype})"
    return load_or_build(cpk.TARGET, key, Recipe(what, source, build, load))


# ---- CUDA ------------------------------------------------------------------------------------
class CudaMultiTensor:
    """A CUDA multi-tensor update on one GPU: the address table, the chunks and the
    per-tensor scalars go to the device as one int64 array (one copy), then one launch of
    one block per chunk."""

    def __init__(self, backend, spec: mt.UpdateSpec) -> None:
        self.backend = backend
        self.spec = spec
        self.c = np.float64 if spec.dtype == "float64" else np.float32
        self.fn = None
        self._chunks: dict = {}  # sizes -> int64 chunk rows

    @staticmethod
    def of(spec: mt.UpdateSpec, array) -> CudaMultiTensor:
        b = cb.get_backend(int(array.device.id))
        kernels = getattr(b, "_multi_tensor", None)
        if kernels is None:
            kernels = b._multi_tensor = {}
        k = kernels.get(spec)
        if k is None:
            k = kernels[spec] = CudaMultiTensor(b, spec)
        return k

    def function(self):
        if self.fn is None:
            self.fn = cuda_function(self.backend, self.spec)
        return self.fn

    def table(self, addrs, sizes, tscal, flags) -> tuple[np.ndarray, int]:
        """The host table (see ``codegen.multi_tensor.cuda_kernel``) and the block count."""
        sizes = tuple(int(n) for n in sizes)
        rows = self._chunks.get(sizes)
        if rows is None:
            rows = np.array(mt.chunks(sizes, mt.CUDA_CHUNK), np.int64).reshape(-1)
            if len(self._chunks) >= 16:
                self._chunks.clear()
            self._chunks[sizes] = rows
        ts = np.ascontiguousarray(tscal, np.float64).view(np.int64).reshape(-1)
        tab = np.concatenate([addrs.reshape(-1), rows, ts, flags.astype(np.int64)])
        return tab, len(rows) // 3

    def __call__(self, addrs, sizes, tscal, flags, scalars) -> None:
        b = self.backend
        tab, blocks = self.table(addrs, sizes, tscal, flags)
        if blocks == 0:
            return
        T = len(sizes)
        with b._on():
            dev = b.xp.asarray(tab)
            self.function()(
                (blocks,),
                (mt.CUDA_BLOCK,),
                (dev, np.int64(T), *[self.c(s) for s in scalars]),
            )


def cuda_function(b, spec: mt.UpdateSpec):
    """The launchable kernel of ``spec`` on backend ``b``'s GPU (through the store, as the
    fused kernels: ``cuda_kernels``)."""
    fp16 = b.fp16_include is not None
    src = mt.cuda_source(spec, cg.prelude(), fp16, ck.KERNEL_NAME)
    key = ck.TARGET.key("multi", spec.key(), b.arch, b.nvrtc_version,
                        hashlib.sha256(src.encode()).hexdigest())  # fmt: skip
    binary = f"kernel.{b.binary}"

    def build(folder: Path, src: str) -> None:
        atomic_write(folder / "kernel.cu", src.encode())
        atomic_write(folder / binary, ck._compile(b, src, key))

    def load(folder: Path, origin: str):
        return ck._load(b, folder / binary)

    what = f"CUDA multi-tensor update {key} ({spec.algo}, {spec.dtype}) for {b.arch}"
    return load_or_build(ck.TARGET, key, Recipe(what, lambda: src, build, load),
                         memory_key=f"{key}@cuda:{b.index}")  # fmt: skip


__all__ = ["update", "Addresses", "cpu_kernel", "cuda_function", "LAUNCHES", "CPU_CHUNK"]
