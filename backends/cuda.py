"""The CUDA backend: cupy arrays as storage, cupy's functions for the ops it has, and kernels
generated from the op table's expressions for fused regions and the ops cupy lacks (compiled,
stored and launched by ``fusejit.backends.cuda_kernels``).

Importing this module never needs cupy: ``device_count()`` answers 0 without it (or without a
GPU, a driver or NVRTC), and ``get_backend`` raises one ``DeviceError`` naming what is missing.
"""

from __future__ import annotations

import contextlib
import os
import threading

import numpy as np
from fusejit.backends import cuda_kernels as ck
from fusejit.backends.cuda_kernels import CudaColKernel, CudaKernel, CudaRowKernel

from fusejit.base import dtypes as dt
from fusejit.base.errors import DeviceError
from fusejit.codegen import cols, rows
from fusejit.codegen import cuda as cg
from fusejit.codegen.body import KernelBody, Step
from fusejit.store import CACHE

_BACKENDS: dict = {}
_LOCK = threading.Lock()
_NULL = contextlib.nullcontext()
_MISSING = object()
# Ops that have a cupy function but run as generated kernels: cupy's float floor division is
# floor(x / y) (numpy snaps the divmod quotient, so 1.0 // 0.1 is 9.0, not 10.0), and its
# integer versions divide MIN by -1 unguarded; the generated kernels follow numpy exactly
# (checked against it on the CPU by tests/test_cuda_codegen.py), so eager equals fused too.
# fmod likewise: an integer fmod by zero is 0 and MIN by -1 is guarded, as on the CPU; and
# logaddexp / logaddexp2, whose table expressions keep numpy's equal infinities (a formula over
# |x - y| gives inf - inf = nan there).
OWN_KERNEL_OPS = frozenset(
    {"floor_divide", "remainder", "maximum", "minimum", "sign", "fmod", "logaddexp", "logaddexp2"}
)
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


def _problem(index: int | None) -> str | None:
    """None when CUDA can be used (on GPU ``index`` when given), else what is missing."""
    where = f"cuda:{index}" if index is not None else "CUDA"
    try:  # (optional dependency: only a machine with a GPU has it)
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
        ck.nvrtc().getVersion()
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
    import cupy  # (optional dependency: imported once CUDA is known to be usable)

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


class CudaBackend:
    """One GPU: storage, eager elementwise ops, and fused kernels (see the module docstring)."""

    name = "cuda"

    def __init__(self, index: int) -> None:
        import cupy  # (optional dependency: only a machine with a GPU makes a backend)

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
        rtc = ck.nvrtc()
        self.nvrtc_version = tuple(rtc.getVersion())
        self.arch, self.binary = ck.target_arch(rtc, self.cc)
        self.fp16_include = ck.fp16_include_dir()
        self._ufuncs: dict = {}
        self._expr_kernels: dict = {}
        self._fused: dict = {}
        self._modules: list = []
        self._scalars: dict = {}  # (type, value, dtype) -> 0-d device array
        self._split_scratch: dict = {}  # stream -> (partials, counters) of split row kernels
        CACHE.hold(self._expr_kernels, self._fused)

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
        if (op.name in _ROUNDING and not compute.is_floating_point) or (
            op.name == "sign" and compute is dt.bool_  # (sign of a bool is itself, as torch's)
        ):
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

    def col_kernel(self, body: cols.ColBody) -> CudaColKernel:
        """The kernel of a fused column region (see ``CudaColKernel``)."""
        key = body.key()
        k = self._fused.get(key)
        if k is None:
            k = self._fused[key] = CudaColKernel(self, body)
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

    # compiling and loading (backends/cuda_kernels.py) ------------------------------------------
    def function(self, body, v):
        """The launchable function of ``body`` in variant ``v`` (see ``cuda_kernels``)."""
        return ck.function(self, body, v)

    def _key(self, body, v) -> tuple[str, str]:
        """The store key of ``body`` in variant ``v`` on this GPU's toolchain, and its source."""
        return ck.kernel_key(self, body, v)

    def entries(self, body, variants) -> list:
        """The store entries of ``body``'s compiled ``variants`` (what archives ship)."""
        return ck.entries(self, body, variants)


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


__all__ = ["CudaBackend", "CudaKernel", "CudaRowKernel", "device_count", "get_backend"]
