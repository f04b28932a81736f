"""Building, caching and launching CPU kernels (numba) for fused-region bodies.

A kernel is shape-generic: the key holds the body, its rank and the versions, never the sizes,
so a new size with the same dtypes, rank and broadcast pattern reuses the compiled code. numba
itself specializes the compiled code on each array argument's layout (contiguous or strided).
"""

from __future__ import annotations

import importlib.util
import logging
import math
import os
import sys
import threading
from concurrent.futures import ThreadPoolExecutor

import numba
import numpy as np
from fusejit.backends.host_pool import MIN_BYTES, host_empty

from fusejit.base import dtypes as dt
from fusejit.base.errors import CompileError, ShapeError
from fusejit.codegen import rows
from fusejit.codegen.body import KernelBody
from fusejit.codegen.cpu import kernel_source, nd_kernel_source
from fusejit.codegen.cpu_rows import APART, BLOCK, partial_dtypes, row_kernel_source
from fusejit.store.cache import (
    CACHE,
    CODEGEN_VERSION,
    atomic_write,
    cache_dir,
    debug_level,
    make_key,
    remove_entry,
    verify_entry,
    write_manifest,
)

log = logging.getLogger("fusejit")

# A fused kernel's loop is split across threads from this much work: elements times (1 + the
# transcendental steps of its body), since a step like exp or tanh costs several times an add.
# Measured on the 2-core development machine (bench/bench_threads.py, bench/RESULTS.md,
# seventh round, one core's worth of other load): the split won from 2^20 elements for a
# chain of arithmetic and from 2^17 for chain-8op (3 transcendental steps), 1.6-1.9x above;
# a hand-off to the pool costs 0.05-20 ms, more when the cores are busy, hence the margin.
# Override with the environment variable.
PARALLEL_THRESHOLD = int(os.environ.get("FUSEJIT_CPU_PARALLEL_THRESHOLD", 1 << 21))
# Row kernels split their rows across threads from this many elements (R * N) and 2 rows on.
# Measured with bench/bench_rows.py on the 2-core development machine, idle (softmax and layer
# norm, rows of 64 to 4096 float32): a split launch costs ~60-100 us of thread hand-off; at
# 256K elements it wins 1.2x for softmax and loses 3x for layer norm, at 512K it wins 1.3-1.6x,
# at 4M 1.9x.
ROW_PARALLEL_THRESHOLD = int(os.environ.get("FUSEJIT_CPU_ROW_PARALLEL_THRESHOLD", 1 << 19))
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
        self.flat = numba.njit(**_JIT_OPTS)(module.k_flat)
        self.nd: dict = {}  # (rank, inner pattern) -> CpuNdKernel, built on first use
        self._nd_plans: dict = {}  # input shapes and strides -> _NdPlan
        self.out_np = tuple(dt.as_dtype(d).np for d in body.out_dtypes())
        self._one_out = len(self.out_np) == 1
        self._out0 = self.out_np[0].type if self.out_np else None  # (faster for np.empty)
        self.threaded = 0  # launches split across threads (for tests and explain)
        # work per element, in units of an add (see PARALLEL_THRESHOLD)
        self.weight = 1 + sum(rows.expensive(s) for s in body.steps)

    def __call__(self, *arrays):
        a0 = arrays[0]
        shape = a0.shape
        flat = True
        for a in arrays:
            if a.shape != shape or not a.flags.c_contiguous:
                flat = False
                break
        if not flat:
            return self._call_broadcast(arrays)
        n = a0.size
        if self._one_out and len(shape) == 1 and 0 < n < _POOLED_FROM:
            # the small 1-D call, whose time is mostly this method's: one output, no pool,
            # no threads, no reshapes
            fn = self.flat
            before = len(fn.overloads)
            o = np.empty(shape, self._out0)
            fn(*arrays, o)
            if len(fn.overloads) != before:
                self._compiled()
            return (o,)
        alloc = np.empty if n < _POOLED_FROM else host_empty  # (small calls: no pool lookup)
        outs = [alloc(shape, d) for d in self.out_np]
        if n == 0:
            return outs
        fn = self.flat
        before = len(fn.overloads)
        args = (*arrays, *outs) if len(shape) == 1 else (
            *[a.reshape(-1) for a in arrays], *[o.reshape(-1) for o in outs])  # fmt: skip
        threads = THREADS if n * self.weight >= PARALLEL_THRESHOLD and before else 1
        if threads > 1:
            # the same compiled loop on contiguous slices, one per thread (the kernel is
            # nogil); the first call compiles on this thread alone
            self.threaded += 1
            _run_split(_flat_slices, n, threads, (fn, args))
        else:
            fn(*args)
        if len(fn.overloads) != before:
            self._compiled()
        return outs

    def entries(self) -> list:
        """This kernel and the N-D kernels built for it so far (each a cache entry)."""
        return [self, *self.nd.values()]

    def _call_broadcast(self, arrays):
        """Inputs of other shapes (broadcast) or not contiguous: the row-wise N-D kernel."""
        key = tuple((a.shape, a.strides) for a in arrays)
        plan = self._nd_plans.get(key)
        if plan is None:
            plan = _NdPlan(arrays)
            if len(self._nd_plans) < 256:
                self._nd_plans[key] = plan
        size = plan.size
        alloc = np.empty if size < _POOLED_FROM else host_empty
        # the outputs are laid out in the loop's order (the inputs' memory order), as numpy's
        # and PyTorch's elementwise results are: contiguous in that order
        bufs = [alloc(plan.loop_shape, d) for d in self.out_np]
        outs = bufs if plan.perm is None else [b.transpose(plan.inverse) for b in bufs]
        if size == 0:
            return outs
        k = self.nd.get(plan.variant)
        if k is None:
            k = self.nd[plan.variant] = cpu_nd_kernel(self.body, *plan.variant)
        fn = k.fn
        before = len(fn.overloads)
        args = (*plan.flat_inputs(arrays), *[b.reshape(-1) for b in bufs], plan.dims, plan.st)
        rows = plan.loop_shape[0] if len(plan.loop_shape) > 1 else size
        threads = (
            THREADS if size * self.weight >= PARALLEL_THRESHOLD and before and rows >= 2 else 1
        )
        if threads > 1:
            self.threaded += 1
            _run_split(fn, rows, threads, args)
        else:
            fn(0, rows, *args)
        if len(fn.overloads) != before:
            k.compiled()
        return outs

    def _compiled(self) -> None:
        # numba compiled a new specialization (a new argument layout) and wrote it to its
        # cache folder: refresh the manifest so the next process can verify the entry.
        try:
            write_manifest(self.folder)
        except OSError as e:  # a read-only cache folder still runs, uncached
            log.warning("fusejit: cannot write kernel cache manifest in %s: %s", self.folder, e)


_F16, _U16 = np.dtype(np.float16), np.dtype(np.uint16)


class CpuHalfKernel(CpuKernel):
    """A kernel with float16 inputs or outputs: numba has no float16 type, so the compiled
    code reads and writes their bits as uint16 (``codegen/cpu.py`` converts in the loop);
    this call passes such views and gives float16 arrays back."""

    def __init__(self, *args) -> None:
        super().__init__(*args)
        self.half_out = tuple(d == _F16 for d in self.out_np)
        self.out_np = tuple(_U16 if h else d for d, h in zip(self.out_np, self.half_out))
        self._out0 = self.out_np[0].type if self.out_np else None

    def __call__(self, *arrays):
        views = [a.view(_U16) if a.dtype == _F16 else a for a in arrays]
        outs = CpuKernel.__call__(self, *views)
        return [o.view(_F16) if h else o for o, h in zip(outs, self.half_out)]


def _uses_half(body) -> bool:
    return "float16" in (*body.in_dtypes, *body.out_dtypes())


def _numba_version() -> str:
    return numba.__version__


def cpu_kernel(body: KernelBody, rank: int) -> CpuKernel:
    """The compiled kernel for ``body`` at ``rank``, from memory, disk or a fresh compile."""
    rank = max(rank, 1)
    key = make_key("cpu", body.key(), rank, CODEGEN_VERSION, _numba_version(), sys.version_info[:2])
    return _cached(key, body, rank)


def _cached(key: str, body, rank: int, inner: str | None = None):
    """The kernel of cache key ``key``: from memory, else loaded or built once."""

    def build():
        k = _load_or_build(key, body, rank, inner)
        return k, k.origin

    return CACHE.get_or_build(key, build)


def _load_or_build(key: str, body, rank: int, inner: str | None = None):
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
    row = isinstance(body, rows.RowBody)
    if origin == "compiled":
        if row:
            src = row_kernel_source(body)
        elif inner is not None:
            src = nd_kernel_source(body, "k_nd", rank, inner)
        else:
            src = kernel_source(body, "k")
        if debug_level() >= 1:
            log.info("fusejit: compiling CPU %skernel %s (%d ops, rank %d): %s",
                     "row " if row else "", key, len(body.steps), rank, why)  # fmt: skip
        if debug_level() >= 2:
            log.info("fusejit: source of %s:\n%s", key, src)
        try:
            same = src_path.read_bytes() == src.encode()
        except OSError:
            same = False
        if not same:  # (an identical file keeps its mtime, so numba's cache stays valid)
            atomic_write(src_path, src.encode())
        # the entry is usable (and can be shipped in an archive) from now on, even if numba
        # never compiles one of its functions here; numba's files join the manifest later
        try:
            write_manifest(folder)
        except OSError as e:
            log.warning("fusejit: cannot write kernel cache manifest in %s: %s", folder, e)
    try:
        spec = importlib.util.spec_from_file_location(f"fusejit_kernel_{key}", src_path)
        module = importlib.util.module_from_spec(spec)
        # numba's cache rebuilds a kernel's environment by importing its module by name
        sys.modules[spec.name] = module
        spec.loader.exec_module(module)
    except Exception as e:  # generated code that does not load is our bug: say which kernel
        raise CompileError(f"CPU kernel {key} failed to load from {src_path}: {e}") from e
    if row:
        return CpuRowKernel(key, body, folder, module, origin)
    if inner is not None:
        return CpuNdKernel(key, folder, module, origin)
    cls = CpuHalfKernel if _uses_half(body) else CpuKernel
    return cls(key, body, rank, folder, module, origin)


def cpu_nd_kernel(body: KernelBody, rank: int, inner: str) -> CpuNdKernel:
    """The row-wise N-D kernel of ``body`` at ``rank`` for the inputs' ``inner`` pattern
    (see ``codegen/cpu.py``), from memory, disk or a fresh compile."""
    key = make_key("cpu-nd", body.key(), rank, inner, CODEGEN_VERSION, _numba_version(),
                   sys.version_info[:2])  # fmt: skip
    return _cached(key, body, rank, inner)


class CpuNdKernel:
    """A compiled N-D kernel: ``fn(lo, hi, *inputs, *outputs, shape, strides)``."""

    def __init__(self, key: str, folder, module, origin: str) -> None:
        self.key = key
        self.folder = folder
        self.origin = origin
        self.fn = numba.njit(**_JIT_OPTS)(module.k_nd)

    def compiled(self) -> None:
        try:
            write_manifest(self.folder)
        except OSError as e:
            log.warning("fusejit: cannot write kernel cache manifest in %s: %s", self.folder, e)


def _c_strides(shape: tuple, item: int) -> tuple:
    out, step = [], item
    for n in reversed(shape):
        out.append(step)
        step *= max(n, 1)
    return tuple(reversed(out))


def _memory_order(st: np.ndarray) -> list:
    """The output's dims ordered outermost first for a loop that follows the inputs' memory:
    a stable insertion sort in which the first input that moves along both of two dims (a
    stride of 0 is a broadcast or a dim of 1: no say) puts the dim with the larger stride
    outside. Inputs laid out in the output's order keep the identity."""
    n_in, rank = st.shape
    perm = list(range(rank))

    def outer_first(a: int, b: int) -> bool:  # should dim a be looped outside dim b?
        for k in range(n_in):
            sa, sb = abs(int(st[k, a])), abs(int(st[k, b]))
            if sa and sb and sa != sb:
                return sa > sb
        return True  # no input decides: keep the output's order

    for i in range(1, rank):
        j = i
        while j > 0 and not outer_first(perm[j - 1], perm[j]):
            perm[j - 1], perm[j] = perm[j], perm[j - 1]
            j -= 1
    return perm


class _NdPlan:
    """How a call with given input shapes and strides runs the N-D kernel: the dims of its
    loop nest (the output's dims in the inputs' memory order), each input's strides in
    elements over them (0 where broadcast), how each moves along the innermost dim, and how
    to pass it as a 1-D array. The outputs are allocated contiguous in the loop's order and
    handed back as views in the output's order (``perm``, ``inverse``; None: the same)."""

    def __init__(self, arrays) -> None:
        shape = np.broadcast_shapes(*[a.shape for a in arrays])
        self.size = int(np.prod(shape, dtype=np.int64))
        rank = max(len(shape), 1)
        dims = shape if shape else (1,)
        st = np.zeros((len(arrays), rank), np.int64)
        self.copy = []  # inputs passed as a contiguous copy (negative or odd strides)
        self.spans = []  # elements each input's 1-D view covers
        for k, a in enumerate(arrays):
            item = a.itemsize
            odd = any(s < 0 or s % item for s in a.strides)
            self.copy.append(odd)
            strides = _c_strides(a.shape, item) if odd else a.strides
            pad = rank - a.ndim
            span = 1
            for d, (n, s) in enumerate(zip(a.shape, strides)):
                e = 0 if n == 1 else s // item
                st[k, pad + d] = e
                span += (n - 1) * e
            self.spans.append(span)
        # The innermost loop walks the smallest strides: over a transposed input a loop in the
        # output's own order reads a new cache line for every element (5-6x slower than
        # numpy, which also iterates in memory order).
        perm = _memory_order(st)
        self.perm = self.inverse = None
        self.loop_shape = shape
        if perm != list(range(rank)):
            self.perm, self.inverse = perm, tuple(int(i) for i in np.argsort(perm))
            st = st[:, perm]
            dims = self.loop_shape = tuple(dims[d] for d in perm)
        inner = ["b" if s == 0 else ("u" if s == 1 else "s") for s in st[:, rank - 1]]
        self.st = np.ascontiguousarray(st)
        self.dims = np.asarray(dims, np.int64)
        self.variant = (rank, "".join(inner))

    def flat_inputs(self, arrays) -> list:
        out = []
        for a, copy, span in zip(arrays, self.copy, self.spans):
            if copy:
                a = np.ascontiguousarray(a)
            if a.flags.c_contiguous:
                out.append(a.reshape(-1))
            else:  # the elements it reaches, as one 1-D view of its memory
                out.append(np.lib.stride_tricks.as_strided(a, (span,), (a.itemsize,)))
        return out


def cpu_row_kernel(body: rows.RowBody) -> CpuRowKernel:
    """The compiled row kernel for ``body`` (shape-generic: the key holds no sizes)."""
    key = make_key("cpu-rows", body.key(), CODEGEN_VERSION, _numba_version(),
                   sys.version_info[:2])  # fmt: skip
    return _cached(key, body, body.rank)


_POOLED_FROM = MIN_BYTES // 8  # elements: no dtype of fewer than 8 bytes reaches the pool below

# numba's setting (the CPUs this process may use, or NUMBA_NUM_THREADS), read without starting
# numba's own threading layer, which fusejit does not use
THREADS = max(1, int(numba.config.NUMBA_NUM_THREADS))
_POOL = None
_POOL_LOCK = threading.Lock()


def _pool() -> ThreadPoolExecutor:
    global _POOL
    if _POOL is None:
        with _POOL_LOCK:
            if _POOL is None:
                _POOL = ThreadPoolExecutor(max(1, THREADS - 1),
                                           thread_name_prefix="fusejit-cpu")  # fmt: skip
    return _POOL


def _flat_slices(lo: int, hi: int, fn, args: tuple) -> None:
    fn(*[a[lo:hi] for a in args])


def _run_split(fn, R: int, threads: int, args: tuple) -> None:
    """Rows 0..R in ``threads`` contiguous ranges: the first on this thread, the others on the
    pool at the same time (the kernels are ``nogil``). Waits for all; re-raises any error."""
    bounds = [R * t // threads for t in range(threads + 1)]
    futures = [_pool().submit(fn, bounds[t], bounds[t + 1], *args) for t in range(1, threads)]
    try:
        fn(bounds[0], bounds[1], *args)
    finally:
        for f in futures:
            f.result()


def _apart(shape, dtype: np.dtype, n: int) -> np.ndarray:
    """An empty array of ``n`` elements whose start lies ``APART`` bytes or more from any
    other buffer's start (see ``codegen.cpu_rows.APART``): the full outputs of row kernels."""
    pad = APART // dtype.itemsize
    if (n + pad) * dtype.itemsize < MIN_BYTES:  # (small: no pool lookup)
        buf = np.empty(pad + max(n, pad), dtype)
    else:
        buf = host_empty((pad + n,), dtype)
    return buf[pad : pad + n].reshape(shape)


class CpuRowKernel:
    """A compiled row region: ``k(*arrays)`` takes the region's input arrays (any shapes that
    broadcast as traced, any strides) and returns its outputs (see ``codegen/rows.py``)."""

    def __init__(self, key: str, body: rows.RowBody, folder, module, origin: str) -> None:
        self.key = key
        self.body = body
        self.folder = folder
        self.origin = origin
        self.fn = module.k_rows
        # one-pass bodies: a row's elements split over threads (few long rows, a whole tensor)
        self.part = getattr(module, "k_part", None)
        self.final = getattr(module, "k_final", None)
        self.partials = partial_dtypes(body)
        self.threaded = 0  # launches split across threads (for tests and explain)
        self.split = 0  # launches that split rows into parts (for tests)
        self.views = tuple(p[1] for p in body.ports)
        self.port_in = tuple(p[0] for p in body.ports)
        # float16 reaches the kernel as its uint16 bits (numba has no float16 type): known
        # from the body, so a call without float16 pays nothing for it
        out_np = tuple(dt.as_dtype(d).np for d in body.out_dtypes())
        self.half_out = tuple(d == _F16 for d in out_np)
        self.out_np = tuple(_U16 if h else d for d, h in zip(out_np, self.half_out))
        self.half = "float16" in {p[2] for p in body.ports} or any(self.half_out)
        self.forms = tuple(form for _, form in body.outputs)
        self._plans: dict = {}  # input shapes -> launch plan (rows.launch_plan)

    def __call__(self, *arrays):
        if not self.half:
            return self._launch(arrays)
        views = [a.view(_U16) if a.dtype == _F16 else a for a in arrays]
        outs = self._launch(views)
        return [o.view(_F16) if h else o for o, h in zip(outs, self.half_out)]

    def _launch(self, arrays):
        srcs = [arrays[i] for i in self.port_in]
        key = tuple(a.shape for a in srcs)
        plan = self._plans.get(key)
        if plan is None:
            b = self.body
            plan = rows.launch_plan(key, self.views, b.rank, b.k, self.forms)
            if len(self._plans) < 256:
                self._plans[key] = plan
        F, R, N, port_plan, out_plan = plan
        outs = []
        for (shape, _), d, form in zip(out_plan, self.out_np, self.forms):
            n = math.prod(shape)
            if form == "full":
                outs.append(_apart(shape, d, n))
            else:  # (small: no pool lookup, 1.2 us less a call)
                outs.append(np.empty(shape, d) if n < _POOLED_FROM else host_empty(shape, d))
        if R == 0:
            return outs
        if N == 0 and self.body.strict_empty:
            raise ShapeError(
                f"cannot reduce over an empty dimension of a tensor of shape {list(F)} "
                "(amax/amin have no identity)"
            )
        ports = [
            (a if target is None else np.broadcast_to(a, target)).reshape(read)
            for a, (target, read) in zip(srcs, port_plan)
        ]
        flat = [o.reshape(read) for o, (_, read) in zip(outs, out_plan)]
        fn = self.fn
        before = self._compiled()
        args = (N, *ports, *flat)
        threads = 1
        if R >= 2 and R * N >= ROW_PARALLEL_THRESHOLD and before[0]:
            threads = min(R, THREADS)
        if self.part is not None and R < THREADS and R * N >= ROW_PARALLEL_THRESHOLD:
            self._run_parts(R, N, ports, flat, threaded=all(before[1:]))
        elif threads > 1:
            self.threaded += 1
            _run_split(fn, R, threads, args)
        else:
            fn(0, R, *args)
        if self._compiled() != before:
            try:
                write_manifest(self.folder)
            except OSError as e:
                log.warning("fusejit: cannot write kernel cache manifest in %s: %s",
                            self.folder, e)  # fmt: skip
        return outs

    def _compiled(self) -> tuple:
        """How many signatures each function of the module has compiled (0: not yet)."""
        return tuple(len(f.overloads) for f in (self.fn, self.part, self.final) if f is not None)

    def _run_parts(self, R: int, N: int, ports: list, flat: list, threaded: bool) -> None:
        """Rows too few for the threads: each row's elements in ``THREADS`` parts (bounds on
        multiples of ``BLOCK``, so the float sums' blocks are those of one whole row), the
        parts at once on several threads (``threaded``: once compiled), then each row's
        partials combined in order by ``k_final``. The parts do not depend on the timing:
        results repeat exactly on one machine."""
        T = THREADS
        w = [np.empty((R, T), d) for d in self.partials]
        bounds = [min(N, -(-N * t // (T * BLOCK)) * BLOCK) for t in range(T + 1)]
        tasks = [(r, t) for r in range(R) for t in range(T)]
        part, io = self.part, (*ports, *flat)

        def run(lo: int, hi: int) -> None:
            for r, t in tasks[lo:hi]:
                part(r, t, bounds[t], bounds[t + 1], N, *io, *[a[r] for a in w])

        self.split += 1
        if threaded:
            self.threaded += 1
            _run_split(run, len(tasks), min(len(tasks), THREADS), ())
        else:  # (the first call compiles k_part, on this thread)
            run(0, len(tasks))
        for r in range(R):
            self.final(r, T, N, *io, *[a[r] for a in w])
