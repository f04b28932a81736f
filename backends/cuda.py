"""The CUDA backend: cupy arrays as storage, cupy's functions for the ops it has, and kernels
generated from the op table's expressions for fused regions and the ops cupy lacks.

Kernels are CUDA C from ``fusejit.codegen.cuda``, compiled by NVRTC straight to a cubin for the
device's compute capability (PTX for the newest NVRTC arch when the device is newer than
NVRTC knows). The binary is kept in the disk cache beside its source and a manifest, so a new
process loads it with ``cupy.RawModule(path=...)`` instead of compiling.

Importing this module never needs cupy: ``device_count()`` answers 0 without it (or without a
GPU, a driver or NVRTC), and ``get_backend`` raises one ``DeviceError`` naming what is missing.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import shutil
import sys
import tempfile
import threading
from pathlib import Path

import numpy as np

from fusejit.base import dtypes as dt
from fusejit.base.errors import CompileError, DeviceError
from fusejit.codegen import cuda as cg
from fusejit.codegen import cuda_rows as cr
from fusejit.codegen import rows
from fusejit.codegen.body import KernelBody, Step
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

_BACKENDS: dict = {}
_LOCK = threading.Lock()
_NULL = contextlib.nullcontext()
_MISSING = object()
_I64 = np.int64
_BLOCK = (cg.BLOCK,)
KERNEL_NAME = "fj_kernel"
# Ops that have a cupy function but run as generated kernels: cupy's float floor division is
# floor(x / y) (numpy snaps the divmod quotient, so 1.0 // 0.1 is 9.0, not 10.0), and its
# integer versions divide MIN by -1 unguarded; the generated kernels follow numpy exactly
# (checked against it on the CPU by tests/test_cuda_codegen.py), so eager equals fused too.
OWN_KERNEL_OPS = frozenset({"floor_divide", "remainder", "maximum", "minimum", "sign"})
# cupy (like numpy) rounds integers through float64, which loses int64 precision: the table
# makes rounding an integer the identity
_ROUNDING = frozenset({"floor", "ceil", "trunc", "round"})
# Launch shape, tunable per backend (bench/gpu_bench.py compares settings): a cap on the grid
# of elementwise kernels in blocks per SM (0: none, one chunk per thread), and the bytes of the
# widest array a thread moves per iteration (16: one 16-byte load or store per array; 32: two).
# Measured on an H200 (bench/RESULTS.md): uncapped 16-byte chunks are the fastest on every
# standard workload (capped at 32 blocks per SM: 1-4 points of the copy bandwidth slower;
# 32-byte chunks: 2-13 points slower).
GRID_CAP = int(os.environ.get("FUSEJIT_CUDA_GRID_CAP", 0))
VEC_BYTES = int(os.environ.get("FUSEJIT_CUDA_VEC_BYTES", 16))
_INSTALL_HINT = "pip install 'fusejit[cuda12]' (CUDA 12) or 'fusejit[cuda13]' (CUDA 13)"


def _nvrtc():
    from cupy_backends.cuda.libs import nvrtc

    return nvrtc


def _problem(index: int | None) -> str | None:
    """None when CUDA can be used (on GPU ``index`` when given), else what is missing."""
    where = f"cuda:{index}" if index is not None else "CUDA"
    try:
        import cupy
    except ImportError:
        return f"{where} needs cupy, which is not installed; install it with {_INSTALL_HINT}"
    except Exception as e:  # a broken install raises other errors from its extension modules
        return f"{where}: cupy failed to import ({type(e).__name__}: {e}); reinstall it"
    try:
        n = cupy.cuda.runtime.getDeviceCount()
    except Exception as e:
        return (
            f"{where}: no usable NVIDIA GPU: the CUDA driver could not be initialized "
            f"({type(e).__name__}: {e}); check that a GPU and its driver are present (nvidia-smi)"
        )
    if n == 0:
        return f"{where}: the CUDA driver reports no GPU"
    if index is not None and not 0 <= index < n:
        return f"{where}: no such GPU; this machine has {n} (cuda:0 to cuda:{n - 1})"
    try:
        _nvrtc().getVersion()
    except Exception as e:
        return (
            f"{where}: NVRTC, the CUDA runtime compiler fusejit builds its kernels with, could "
            f"not be loaded ({type(e).__name__}: {e}); install the CUDA toolkit or its NVRTC "
            "wheel (nvidia-cuda-nvrtc-cu12 for CUDA 12, nvidia-cuda-nvrtc for CUDA 13)"
        )
    return None


def device_count() -> int:
    """GPUs fusejit can use: 0 when cupy, a driver, a GPU or NVRTC is missing (never raises)."""
    if _problem(None) is not None:
        return 0
    import cupy

    return int(cupy.cuda.runtime.getDeviceCount())


def get_backend(index: int = 0) -> CudaBackend:
    """The backend of GPU ``index`` (one per GPU, made on first use)."""
    b = _BACKENDS.get(index)
    if b is None:
        with _LOCK:
            b = _BACKENDS.get(index)
            if b is None:
                problem = _problem(index)
                if problem is not None:
                    raise DeviceError(problem)
                b = _BACKENDS[index] = CudaBackend(index)
    return b


# ---- the toolkit: target architecture and float16 headers --------------------------------------
def _target(nvrtc, cc: str) -> tuple[str, str]:
    """(``--gpu-architecture`` value, binary kind) for compute capability ``cc`` ("90")."""
    try:
        archs = {int(a) for a in nvrtc.getSupportedArchs()}
    except Exception:  # NVRTC < 11.2 cannot list them: ask for the device's own
        archs = set()
    want = int(cc)
    if not archs or want in archs:
        return f"sm_{cc}", "cubin"
    older = [a for a in archs if a <= want]
    if not older:
        raise DeviceError(f"NVRTC supports no architecture up to the GPU's sm_{cc}")
    # a GPU newer than NVRTC: PTX of the newest arch NVRTC knows, finished by the driver
    return f"compute_{max(older)}", "ptx"


def _fp16_include_dir() -> str | None:
    """A folder holding ``cuda_fp16.h`` (CUDA toolkit, cupy's CUDA path or the NVIDIA pip
    wheels), or None: kernels then convert float16 with inline PTX instead."""
    cands = []
    for var in ("CUDA_PATH", "CUDA_HOME", "CUDA_ROOT"):
        if os.environ.get(var):
            cands.append(Path(os.environ[var]) / "include")
    try:
        import cupy

        p = cupy.cuda.get_cuda_path()
        if p:
            cands.append(Path(p) / "include")
    except Exception:
        pass
    cands.append(Path("/usr/local/cuda/include"))
    for entry in sys.path:
        nv = Path(entry or ".") / "nvidia"
        if nv.is_dir():
            cands += sorted(nv.glob("cu*/include")) + [nv / "cuda_runtime" / "include"]
    for c in cands:
        if (c / "cuda_fp16.h").is_file():
            return str(c)
    return None


class CudaBackend:
    """One GPU: storage, eager elementwise ops, and fused kernels (see the module docstring)."""

    name = "cuda"

    def __init__(self, index: int) -> None:
        import cupy

        self.xp = cupy
        self.index = index
        self.device = cupy.cuda.Device(index)
        self._get_device = cupy.cuda.runtime.getDevice
        self._ndarray = cupy.ndarray
        self.cc = str(self.device.compute_capability)
        self.sm_count = int(self.device.attributes["MultiProcessorCount"])
        self.grid_cap = GRID_CAP
        self.max_grid = cg.MAX_GRID  # (the tests lower it to make threads loop)
        self.vec_bytes = VEC_BYTES
        nvrtc = _nvrtc()
        self.nvrtc_version = tuple(nvrtc.getVersion())
        self.arch, self.binary = _target(nvrtc, self.cc)
        self.fp16_include = _fp16_include_dir()
        self._ufuncs: dict = {}
        self._expr_kernels: dict = {}
        self._fused: dict = {}
        self._modules: list = []
        self._scalars: dict = {}  # (type, value, dtype) -> 0-d device array
        self._split_scratch: dict = {}  # stream -> (partials, counters) of split row kernels
        CACHE.memos += [self._expr_kernels, self._fused]

    def __repr__(self) -> str:
        return f"<CudaBackend cuda:{self.index} sm_{self.cc} NVRTC {self.nvrtc_version}>"

    def _on(self):
        """This GPU as the current device, for the calls that allocate or launch."""
        return _NULL if self._get_device() == self.index else self.device

    scope = _on  # (the name the other modules use)

    # storage ----------------------------------------------------------------------------
    # cupy makes a 0-d array from a host value with ``fill``, which writes zeros with a memset:
    # -0.0 would arrive as +0.0. Host scalars travel as one-element arrays, fills are mended.
    def asarray(self, data, dtype: dt.DType):
        if isinstance(data, (bool, int, float, complex, np.generic)) or (
            isinstance(data, np.ndarray) and data.ndim == 0
        ):
            return self._one_value(data, dtype.np)
        with self._on():
            return self.xp.asarray(data, dtype=dtype.np)

    def from_numpy(self, arr: np.ndarray):
        """Host to device (a copy on this GPU)."""
        if arr.ndim == 0:
            return self._one_value(arr, arr.dtype)
        with self._on():
            return self.xp.asarray(arr)

    def _one_value(self, v, np_dtype):
        """A 0-d device array of the host value ``v``: cupy's own way, but a -0.0 copied as
        one element."""
        h = np.asarray(v, dtype=np_dtype)
        with self._on():
            if h.dtype.kind == "f" and h == 0 and np.signbit(h):
                return self.xp.asarray(h.reshape(1)).reshape(())
            return self.xp.asarray(h)

    def fill(self, arr, value) -> None:
        """``arr.fill(value)``, keeping the sign of a -0.0."""
        with self._on():
            arr.fill(value)
            if isinstance(value, (float, np.floating)) and value == 0 and np.signbit(value):
                if arr.dtype.kind == "f":
                    self.xp.negative(arr, out=arr)

    def to_numpy(self, arr) -> np.ndarray:
        """Device to host (a copy; waits for the work that writes ``arr``)."""
        return self.xp.asnumpy(arr)

    def from_dlpack(self, obj):
        """A cupy array sharing memory with ``obj`` (any DLPack producer on this GPU)."""
        with self._on():
            return self.xp.from_dlpack(obj)

    def synchronize(self) -> None:
        self.device.synchronize()

    # elementwise ------------------------------------------------------------------------
    def elementwise(self, op, vals, compute: dt.DType, out: dt.DType, attrs):
        if op.rule == "cast":
            with self._on():
                return vals[0].astype(out.np)
        if op.name in _ROUNDING and not compute.is_floating_point:
            with self._on():
                return vals[0].astype(out.np, copy=True)
        fn = self._ufuncs.get(op, _MISSING)
        if fn is _MISSING:
            fn = None
            if op.np_name and op.name not in OWN_KERNEL_OPS:
                fn = getattr(self.xp, op.np_name, None)
            self._ufuncs[op] = fn
        if fn is None:
            return self.run_expr_op(op, vals, compute, out, attrs)
        nd = self._ndarray
        args = [v if isinstance(v, nd) else _scalar(v, op, compute) for v in vals]
        with self._on():
            res = fn(*args)
            # cupy may return another dtype than the table's rule (e.g. rint of ints is float)
            return res if res.dtype == out.np else res.astype(out.np)

    def run_expr_op(self, op, vals, compute: dt.DType, out: dt.DType, attrs=None):
        """An op cupy lacks, as a one-step generated kernel (float16 stays float16 in memory)."""
        arrays, args = [], []
        for v in vals:
            if not isinstance(v, self._ndarray):
                # a 0-d device array, not a baked constant: one kernel serves every value
                v = self._device_scalar(v, dt.bool_ if op.rule == "logical" else compute)
            args.append(("in", len(arrays)))
            arrays.append(v)
        step_attrs = tuple(
            (k, a.name if k == "dtype" else a) for k, a in sorted((attrs or {}).items())
        )
        in_dtypes = tuple(dt.as_dtype(a.dtype).name for a in arrays)
        key = (op.name, in_dtypes, tuple(args), step_attrs, compute.name, out.name)
        k = self._expr_kernels.get(key)
        if k is None:
            step = Step(op.name, tuple(args), step_attrs, compute.name, out.name)
            body = KernelBody(in_dtypes, (step,), (("t", 0),))
            k = self._expr_kernels[key] = self.fused_kernel(body, max(a.ndim for a in arrays))
        return k(*arrays)[0]

    def _device_scalar(self, v, d: dt.DType):
        key = (type(v), repr(v), d.name)  # (repr: 0.0 == -0.0 would share an entry)
        a = self._scalars.get(key)
        if a is None:
            a = self._one_value(v, d.np)
            if len(self._scalars) < 1024:
                self._scalars[key] = a
        return a

    def fused_kernel(self, body: KernelBody, rank: int) -> CudaKernel:
        """The kernel of a fused region: ``k(*arrays) -> [outputs]`` (see ``CudaKernel``)."""
        # by the structural key: bodies compare equal when constants do (0.0 == -0.0, 1 == True)
        key = body.key()
        k = self._fused.get(key)
        if k is None:
            k = self._fused[key] = CudaKernel(self, body, rank)
        return k

    def row_kernel(self, body: rows.RowBody) -> CudaRowKernel:
        """The kernel of a fused row region (see ``CudaRowKernel``)."""
        key = body.key()
        k = self._fused.get(key)
        if k is None:
            k = self._fused[key] = CudaRowKernel(self, body)
        return k

    def split_scratch(self, slots: int, counters: int) -> tuple:
        """Work arrays of split row kernels on the current stream: ``slots`` 8-byte partials
        and ``counters`` zero counters (each launch leaves its counters zero again). One pair
        per stream, grown as needed: launches on one stream run in order, so they share it."""
        cuda = getattr(self.xp, "cuda", None)
        stream = cuda.get_current_stream().ptr if cuda is not None else 0
        ws, cnt = self._split_scratch.get(stream, (None, None))
        with self._on():
            if ws is None or ws.size < slots:
                ws = self.xp.empty(max(slots, 1024), np.uint64)
            if cnt is None or cnt.size < counters:
                cnt = self.xp.zeros(max(counters, 64), np.uint32)
        self._split_scratch[stream] = (ws, cnt)
        return ws, cnt

    # compiling and loading ----------------------------------------------------------------
    def function(self, body, v):
        """The launchable function of ``body`` (a ``KernelBody`` in a ``Variant``, or a
        ``RowBody`` in a ``RowVariant``): from memory, the disk cache or a fresh NVRTC
        compile."""
        key, src = self._key(body, v)
        mem_key = f"{key}@cuda:{self.index}"  # a loaded module belongs to one GPU's context
        return CACHE.get_or_build(mem_key, lambda: self._load_or_build(key, src, body, v))

    def _key(self, body, v) -> tuple[str, str]:
        """The cache key of ``body`` in variant ``v`` on this GPU's toolchain, and its source."""
        fp16 = self.fp16_include is not None
        if isinstance(body, rows.RowBody):
            src = cr.kernel_source(body, v, KERNEL_NAME, fp16_header=fp16)
            parts = ("cuda-rows", body.key(), v.tag, cr.CUDA_ROWS_VERSION)
        else:
            src = cg.kernel_source(body, v, KERNEL_NAME, fp16_header=fp16)
            parts = ("cuda", body.key(), v.tag, v.rank, body.in_dtypes)
        key = make_key(
            *parts, body.out_dtypes(), self.arch, self.nvrtc_version, CODEGEN_VERSION,
            cg.CUDA_CODEGEN_VERSION, hashlib.sha256(src.encode()).hexdigest(),
        )  # fmt: skip
        return key, src

    def entries(self, body, variants) -> list:
        """The disk cache entries of ``body``'s compiled ``variants`` (objects with a
        ``folder``), for archives that ship the kernels they use."""
        root = cache_dir() / "cuda"
        return [_Entry(root / self._key(body, v)[0]) for v in variants]

    def _load_or_build(self, key: str, src: str, body: KernelBody, v: cg.Variant):
        folder = cache_dir() / "cuda" / key
        binary_name = f"kernel.{self.binary}"
        if folder.exists():
            reason = verify_entry(folder)
            if reason is None:
                try:
                    return self._load(folder / binary_name), "disk"
                except Exception as e:  # a valid manifest but a binary the driver refuses
                    reason = f"{binary_name} does not load ({type(e).__name__}: {e})"
            log.warning("fusejit: CUDA kernel cache entry %s is corrupt (%s); rebuilding",
                        key, reason)  # fmt: skip
            CACHE.stats["corrupt"] += 1
            remove_entry(folder)
        if debug_level() >= 1:
            log.info("fusejit: compiling CUDA kernel %s (%d ops, %s) for %s", key,
                     len(body.steps), v.tag, self.arch)  # fmt: skip
        if debug_level() >= 2:
            log.info("fusejit: source of %s:\n%s", key, src)
        binary = self._compile(src, key)
        return self._store_and_load(folder, src, binary, binary_name), "compiled"

    def _options(self) -> list:
        opts = [f"--gpu-architecture={self.arch}", "--std=c++17"]
        if self.fp16_include is not None:
            opts.append(f"-I{self.fp16_include}")
        return opts

    def _compile(self, src: str, key: str) -> bytes:
        nvrtc = _nvrtc()
        prog = nvrtc.createProgram(src, f"fusejit_{key}.cu", (), ())
        try:
            try:
                nvrtc.compileProgram(prog, self._options())
            except nvrtc.NVRTCError as e:
                msg = nvrtc.getProgramLog(prog)
                raise CompileError(
                    f"NVRTC failed to compile fusejit CUDA kernel {key} for {self.arch} "
                    f"({e}):\n{msg}\n--- source ---\n{src}"
                ) from None
            out = nvrtc.getCUBIN(prog) if self.binary == "cubin" else nvrtc.getPTX(prog)
        finally:
            nvrtc.destroyProgram(prog)
        return out.encode() if isinstance(out, str) else bytes(out)

    def _load(self, path: Path):
        mod = self.xp.RawModule(path=str(path))
        with self._on():
            fn = mod.get_function(KERNEL_NAME)  # loads the module into this GPU's context
            fn.kernel  # noqa: B018 - load now: the file may be removed right after
        self._modules.append(mod)  # modules live as long as the backend
        return fn

    def _store_and_load(self, folder: Path, src: str, binary: bytes, binary_name: str):
        """Write the entry under a temporary name, load it, then rename it into place, so no
        other process ever sees a half-written entry (two writers: the first rename wins)."""
        try:
            folder.parent.mkdir(parents=True, exist_ok=True)
            tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{folder.name}-", dir=folder.parent))
        except OSError as e:  # a read-only cache still runs, uncached
            log.warning("fusejit: cannot write the kernel cache in %s: %s", folder.parent, e)
            with tempfile.TemporaryDirectory() as d:
                (Path(d) / binary_name).write_bytes(binary)
                return self._load(Path(d) / binary_name)
        try:
            atomic_write(tmp / "kernel.cu", src.encode())
            atomic_write(tmp / binary_name, binary)
            write_manifest(tmp)
            fn = self._load(tmp / binary_name)
            try:
                os.rename(tmp, folder)
            except OSError:  # another process stored the same kernel first
                pass
            return fn
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)


class _Entry:
    """A kernel cache entry by its folder (what ``archive.save`` collects)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder


def _scalar(v, op, compute: dt.DType):
    """A Python scalar as a numpy scalar of the compute dtype, so cupy computes in exactly the
    dtype the op table's rules give whatever its own scalar promotion is."""
    t = np.bool_ if op.rule == "logical" else compute.np.type
    try:
        return t(v)
    except OverflowError:
        if op.rule == "compare":
            return v  # out of the dtype's range: cupy compares the values themselves
        raise  # as numpy does (dispatch reports it as a DTypeError)


def _ptr(a) -> int:
    """Device address of an array's first element (a function, so host tests can swap it)."""
    return a.data.ptr


class CudaKernel:
    """A fused region on one GPU: ``k(*arrays)`` takes cupy arrays in the body's input dtypes
    (any shapes that broadcast, any strides) and returns new output arrays of the broadcast
    shape. Variants are compiled on first use (see ``fusejit.codegen.cuda``)."""

    def __init__(self, backend: CudaBackend, body: KernelBody, rank: int) -> None:
        self.backend = backend
        self.body = body
        self.rank = rank
        self.out_np = tuple(dt.as_dtype(d).np for d in body.out_dtypes())
        self.vmax = cg.vector_width(body, getattr(backend, "vec_bytes", 16))
        self._plans: dict = {}  # launch geometry -> (Variant, extra arguments)
        self.vbytes = tuple(dt.as_dtype(d).itemsize * self.vmax for d in body.in_dtypes)
        self.out_vbytes = tuple(np.dtype(d).itemsize * self.vmax for d in self.out_np)
        self.fns: dict = {}  # Variant -> launchable function
        self._flat = {}  # (vec, bits) -> Variant of the same-shape contiguous fast path
        self._one_out = len(self.out_np) == 1
        self._out0 = self.out_np[0] if self.out_np else None
        self._flat_fns: dict = {}  # (vec, 32-bit indices) -> (function, Variant), one output
        self._grids: dict = {}  # (elements, vec, max_blocks) -> grid, one-output flat call
        self._bshapes: dict = {}  # input shapes -> their broadcast shape
        # the grid: one chunk per thread unless capped (threads then loop), see GRID_CAP
        cap = backend.grid_cap
        self.max_blocks = min(backend.max_grid, backend.sm_count * cap if cap else cg.MAX_GRID)

    def variants(self) -> list:
        """Tags of the variants compiled so far."""
        return [v.tag for v in self.fns]

    def entries(self) -> list:
        """The disk cache entries of the variants compiled so far."""
        return self.backend.entries(self.body, list(self.fns))

    def __call__(self, *arrays):
        b = self.backend
        if not arrays:
            raise CompileError("a fused CUDA kernel needs at least one input array")
        shape = arrays[0].shape
        same = True
        for a in arrays:
            if a.shape != shape or not a.flags.c_contiguous:
                same = False
                break
        if same and self._one_out:
            return self._call_flat1(arrays, shape)
        if same:
            out_shape = shape
        else:
            # numpy's broadcast_shapes takes ~4 us, a lone bias add's whole margin over cupy
            shapes = tuple(a.shape for a in arrays)
            out_shape = self._bshapes.get(shapes)
            if out_shape is None:
                out_shape = np.broadcast_shapes(*shapes)
                if len(self._bshapes) < 256:
                    self._bshapes[shapes] = out_shape
        with b._on():
            outs = [b.xp.empty(out_shape, d) for d in self.out_np]
            n = outs[0].size
            if n == 0:
                return outs
            if same:
                # the common case, without plan_launch: flat, vectorized when aligned
                vec = self.vmax
                if vec > 1 and not (
                    all(_ptr(a) % s == 0 for a, s in zip(arrays, self.vbytes, strict=True))
                    and all(_ptr(o) % s == 0 for o, s in zip(outs, self.out_vbytes, strict=True))
                ):
                    vec = 1
                bits = 32 if n < 1 << 31 else 64
                v = self._flat.get((vec, bits))
                if v is None:
                    v = self._flat[(vec, bits)] = cg.Variant("flat", vec, 1, bits)
                extra = ()
            else:
                v, extra = self._plan(arrays, outs, out_shape)
            fn = self.fns.get(v)
            if fn is None:
                fn = self.fns[v] = b.function(self.body, v)
            # sizes and strides are `long long` parameters: pass 8-byte numpy scalars
            ints = (_I64(n), *map(_I64, extra)) if extra else (_I64(n),)
            fn((cg.grid_size(n, v, self.max_blocks),), (cg.BLOCK,), (*arrays, *outs, *ints))
        return outs

    def _call_flat1(self, arrays, shape):
        """The same-shape contiguous call with one output, without the general path's
        generators and lists: a small call's host time is mostly this method's."""
        b = self.backend
        with b._on():
            o = b.xp.empty(shape, self._out0)
            n = o.size
            if n == 0:
                return (o,)
            vec = self.vmax
            if vec > 1:
                if _ptr(o) % self.out_vbytes[0]:
                    vec = 1
                else:
                    for a, s in zip(arrays, self.vbytes):
                        if _ptr(a) % s:
                            vec = 1
                            break
            key = (vec, n < 1 << 31)
            launch = self._flat_fns.get(key)
            if launch is None:
                v = cg.Variant("flat", vec, 1, 32 if key[1] else 64)
                fn = self.fns.get(v)
                if fn is None:
                    fn = self.fns[v] = b.function(self.body, v)
                launch = self._flat_fns[key] = (fn, v)
            fn, v = launch
            gkey = (n, vec, self.max_blocks)
            grid = self._grids.get(gkey)
            if grid is None:
                grid = (cg.grid_size(n, v, self.max_blocks),)
                if len(self._grids) < 64:
                    self._grids[gkey] = grid
            fn(grid, _BLOCK, (*arrays, o, _I64(n)))
        return (o,)

    def _plan(self, arrays, outs, out_shape):
        aligned = tuple(_ptr(a) % s == 0 for a, s in zip(arrays, self.vbytes, strict=True))
        out_aligned = all(_ptr(o) % s == 0 for o, s in zip(outs, self.out_vbytes, strict=True))
        # a loop calls with the same geometry again and again: plan it once
        key = (tuple((a.shape, a.strides) for a in arrays), aligned, out_aligned)
        plan = self._plans.get(key)
        if plan is None:
            strides = []
            for a in arrays:
                item = a.itemsize
                if any(s % item for s in a.strides):
                    raise CompileError(f"array strides {a.strides} are not whole elements")
                strides.append(tuple(s // item for s in a.strides))
            plan = cg.plan_launch(
                out_shape, [a.shape for a in arrays], strides, aligned, out_aligned, self.vmax
            )
            if len(self._plans) < 256:
                self._plans[key] = plan
        return plan


class CudaRowKernel:
    """A fused row region on one GPU: ``k(*arrays)`` takes the region's input arrays (shapes
    that broadcast as traced, any strides) and returns its outputs. The variant (a warp or a
    block per row, rows cached in registers or not, or several blocks per row when the rows
    are few and long) follows the row count and length at each call."""

    def __init__(self, backend: CudaBackend, body: rows.RowBody) -> None:
        self.backend = backend
        self.body = body
        self.views = tuple(p[1] for p in body.ports)
        self.port_in = tuple(p[0] for p in body.ports)
        self.out_np = tuple(dt.as_dtype(d).np for d in body.out_dtypes())
        self.forms = tuple(form for _, form in body.outputs)
        self.fns: dict = {}  # RowVariant -> launchable function
        self.vec = cr.row_vec(body)  # elements per wide load, when every row is aligned for it
        self.partials = cr.partials(body)  # 8-byte slots a block of a split row fills

    def variants(self) -> list:
        return [v.tag for v in self.fns]

    def entries(self) -> list:
        """The disk cache entries of the variants compiled so far."""
        return self.backend.entries(self.body, list(self.fns))

    def __call__(self, *arrays):
        b, body, k = self.backend, self.body, self.body.k
        xp = b.xp
        srcs = [arrays[i] for i in self.port_in]
        F = rows.domain_of([a.shape for a in srcs], self.views, body.rank, k)
        lead = len(F) - k
        R, N = int(np.prod(F[:lead], dtype=np.int64)), int(np.prod(F[lead:], dtype=np.int64))
        with b._on():
            outs = [xp.empty(rows.out_shape(f, F, k), d) for f, d in zip(self.forms, self.out_np)]
            if R == 0:
                return outs
            if N == 0 and body.strict_empty:
                from fusejit.base.errors import ShapeError

                raise ShapeError(
                    f"cannot reduce over an empty dimension of a tensor of shape {list(F)} "
                    "(amax/amin have no identity)"
                )
            ports, lds = [], []
            V = self.vec
            aligned = V > 1 and N % V == 0  # (outputs: fresh allocations, rows N apart)
            for a, view in zip(srcs, self.views):
                arr = rows.port_array(xp, a, view, F, k)
                if view == "full":
                    item = arr.itemsize
                    if arr.strides[1] != item or arr.strides[0] % item or arr.strides[0] < 0:
                        arr = xp.ascontiguousarray(arr)
                    ld = arr.strides[0] // item if R > 1 else N
                    lds.append(_I64(ld))
                    aligned = aligned and ld % V == 0 and _ptr(arr) % (V * item) == 0
                elif not arr.flags.c_contiguous:
                    arr = xp.ascontiguousarray(arr)
                if view == "inner":
                    aligned = aligned and _ptr(arr) % (V * arr.itemsize) == 0
                ports.append(arr)
            # (partials: 0 for a body that is not one pass, known once, not per call)
            S = cr.split_blocks(R, N, b.sm_count) if self.partials else 1
            v = cr.split_variant(body, aligned) if S > 1 else cr.plan_rows(body, N, aligned)
            fn = self.fns.get(v)
            if fn is None:
                fn = self.fns[v] = b.function(body, v)
            if S > 1:  # few long rows: S blocks a row (cuda_rows.split_blocks)
                ws, cnt = b.split_scratch(R * S * self.partials, R)
                args = (*ports, *outs, ws, cnt, _I64(R), _I64(N), *lds, _I64(S))
                fn((R * S,), (v.block_threads,), args)
            else:
                args = (*ports, *outs, _I64(R), _I64(N), *lds)
                fn((cr.grid_rows(R, v),), (v.block_threads,), args)
        return outs


__all__ = ["CudaBackend", "CudaKernel", "CudaRowKernel", "device_count", "get_backend"]
