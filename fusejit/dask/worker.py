"""What runs on a Dask worker: the archive of a traced function, loaded once per process and
kept by its hash, run on each block; and the statistics a client reads with ``client.run``.

Nothing here imports dask: a block is a numpy array (a CPU tensor shares its memory) or a cupy
array (a CUDA tensor on that array's GPU, through DLPack).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import sys
import threading
import time
import zipfile

import numpy as np

from fusejit.backends import cpu_kernels
from fusejit.base import dtypes as dt
from fusejit.base.device import CPU
from fusejit.base.errors import FusejitError, ShapeError
from fusejit.eager.tensor import Tensor, from_dlpack
from fusejit.jit.archive import MANIFEST, ArchiveError, LoadedFunction, load
from fusejit.jit.runtime import GuardError
from fusejit.store import cache_info

__all__ = ["Archive", "run_block", "worker_stats"]

MAX_LOADED = 64  # archives a process keeps loaded
_LOCK = threading.Lock()
_LOADED: dict = {}  # archive digest -> LoadedFunction
_STATS = {"archives_loaded": 0, "blocks": 0, "kernel_launches": 0, "eager_steps": 0}
# where a block's time goes, summed over blocks (seconds): the whole task (``task_s``, its
# thread's CPU ``task_cpu_s``) and the traced function's call in it (``kernel_s``,
# ``kernel_cpu_s``: the fused kernel and the allocation of its outputs)
_TIMES = {"task_s": 0.0, "task_cpu_s": 0.0, "kernel_s": 0.0, "kernel_cpu_s": 0.0}
_STEPS: dict = {}  # archive digest -> (fused kernels, other steps) of a block's plan
_BASE: dict = {}  # cache_info() counts when the statistics were last reset
_THREADS_SET: list = []


class Archive:
    """A traced function as the bytes of a fusejit archive, with the SHA-256 of what it runs
    (graphs, tensors and manifest; not the zip's timestamps nor the compiled kernels it ships,
    which change how fast it loads, not what it computes: the same function saved twice has
    the same digest): what a Dask graph carries to the workers (a data key, so each worker
    receives it once), and what a worker keeps its loaded function by."""

    __slots__ = ("data", "digest", "name")

    def __init__(self, data: bytes, name: str = "fn") -> None:
        self.data = bytes(data)
        self.name = name
        h = hashlib.sha256()
        try:
            with zipfile.ZipFile(io.BytesIO(self.data)) as z:
                for info in sorted(z.infolist(), key=lambda i: i.filename):
                    if info.filename.startswith("kernels/"):
                        continue
                    data = z.read(info)
                    if info.filename == MANIFEST:  # less its listing of the kernels
                        man = json.loads(data)
                        man.pop("kernels", None)
                        data = json.dumps(man, sort_keys=True).encode()
                    h.update(info.filename.encode() + b"\0")
                    h.update(hashlib.sha256(data).digest())
        except (zipfile.BadZipFile, OSError, ValueError, EOFError, AttributeError) as e:
            raise ArchiveError(f"fusejit.dask: the archive of {name} is not readable ({e})") \
                from None  # fmt: skip
        self.digest = h.hexdigest()

    def __reduce__(self):  # plain bytes and a name: nothing of the function's Python code
        return (Archive, (self.data, self.name))

    def __repr__(self) -> str:
        return f"<fusejit archive {self.name} {self.digest[:12]} ({len(self.data)} bytes)>"


def _in_dask_worker() -> bool:
    mod = sys.modules.get("distributed")
    if mod is None:
        return False
    try:
        mod.get_worker()
    except ValueError:
        return False
    return True


def loaded(archive: Archive) -> LoadedFunction:
    """The archive's function, loaded (graphs checked, kernels built or read from the disk
    cache) on this process's first use of it and kept by its hash."""
    fn = _LOADED.get(archive.digest)
    if fn is not None:
        return fn
    with _LOCK:
        fn = _LOADED.get(archive.digest)
        if fn is None:
            if not _THREADS_SET and _in_dask_worker() and "NUMBA_NUM_THREADS" not in os.environ:
                # a worker runs one task per thread: a kernel splitting over every CPU too
                # would oversubscribe them (as dask's nanny sets OMP_NUM_THREADS=1)
                cpu_kernels.set_threads(1)
                _THREADS_SET.append(True)
            fn = load(io.BytesIO(archive.data))
            plans = [e.plan for e in fn.entries]
            nk = max(len(p.kernels) for p in plans)
            _STEPS[archive.digest] = (nk, max(len(p.steps) for p in plans) - nk)
            _LOADED[archive.digest] = fn
            while len(_LOADED) > MAX_LOADED:  # the oldest loaded goes first
                old = next(iter(_LOADED))
                del _LOADED[old], _STEPS[old]
            _STATS["archives_loaded"] += 1
    return fn


def _as_tensor(block) -> Tensor:
    if isinstance(block, np.ndarray):
        if not block.flags.c_contiguous:
            block = np.ascontiguousarray(block)
        return Tensor._wrap(block, dt.as_dtype(block.dtype), CPU)
    if isinstance(block, np.generic):  # a 0-d block some dask ops give as a scalar
        return Tensor._wrap(np.asarray(block), dt.as_dtype(block.dtype), CPU)
    mod = type(block).__module__.split(".")[0]
    if mod == "cupy":
        xp = sys.modules["cupy"]
        return from_dlpack(xp.ascontiguousarray(block))
    raise TypeError(f"fusejit.dask: a block of type {type(block).__name__} (a numpy or cupy "
                    "array was expected)")  # fmt: skip


def _as_array(t):
    if not isinstance(t, Tensor):
        raise FusejitError(f"fusejit.dask: the function returned {type(t).__name__}")
    return t.numpy() if t.device.type == "cpu" else t._data


def run_block(archive: Archive, n_out: int, *blocks):
    """Run the archive's function on one block of each input: one result array, or a tuple
    of ``n_out`` of them (numpy on the CPU, cupy on a GPU)."""
    t0, c0 = time.perf_counter(), time.thread_time()
    fn = loaded(archive)
    tensors = [_as_tensor(b) for b in blocks]
    try:
        k0, kc0 = time.perf_counter(), time.thread_time()
        out = fn(*tensors)
        k1, kc1 = time.perf_counter(), time.thread_time()
    except GuardError as e:
        shapes = ", ".join(f"{t.dtype.name}{list(t.shape)}" for t in tensors)
        raise ShapeError(f"fusejit.dask: {archive.name} was not traced for blocks {shapes} "
                         f"({e})") from None  # fmt: skip
    res = _as_array(out) if n_out == 0 else tuple(_as_array(t) for t in out)
    nk, ne = _STEPS.get(archive.digest, (0, 0))
    with _LOCK:
        _STATS["blocks"] += 1
        _STATS["kernel_launches"] += nk
        _STATS["eager_steps"] += ne
        _TIMES["kernel_s"] += k1 - k0
        _TIMES["kernel_cpu_s"] += kc1 - kc0
        _TIMES["task_s"] += time.perf_counter() - t0
        _TIMES["task_cpu_s"] += time.thread_time() - c0
    return res


def worker_stats(reset: bool = False) -> dict:
    """This process's counts: ``archives_loaded`` (functions loaded from an archive),
    ``blocks`` (blocks run), ``kernel_launches`` and ``eager_steps`` (the fused kernels and
    the unfused ops those blocks ran: one kernel per block is ``kernel_launches == blocks``
    and no eager step), and from the kernel cache ``compiled`` (kernels compiled),
    ``disk_hits`` (kernels read from the disk cache), ``kernels_built`` (the two together:
    what one-kernel-per-chunk keeps at the number of distinct kernels, whatever the number
    of chunks) and ``memory_hits``; where the blocks' time went, in seconds summed over
    blocks: ``task_s`` (this module's part of each block task, wall) and ``task_cpu_s`` (its
    thread's CPU), ``kernel_s`` and ``kernel_cpu_s`` (the same for the call of the traced
    function: its fused kernel and the allocation of its outputs; on a GPU, its launch,
    which does not wait for the kernel), and ``process_cpu_s``
    (CPU of the whole worker process, all threads: the Dask worker's own messaging, storing
    and bookkeeping as well); all since the last ``reset``. Run it on every worker with
    ``client.run(fusejit.dask.worker_stats)``.

    >>> import fusejit.dask
    >>> sorted(fusejit.dask.worker_stats())[:3]
    ['archives_loaded', 'blocks', 'compiled']
    """
    info = cache_info()
    with _LOCK:
        out = dict(_STATS)
        out.update(_TIMES)
        out["process_cpu_s"] = time.process_time() - _BASE.get("process_cpu_s", 0.0)
        for k in ("compiled", "disk_hits", "memory_hits"):
            out[k] = info[k] - _BASE.get(k, 0)
        out["kernels_built"] = out["compiled"] + out["disk_hits"]
        out["pid"] = os.getpid()
        if reset:
            for k in _STATS:
                _STATS[k] = 0
            for k in _TIMES:
                _TIMES[k] = 0.0
            _BASE["process_cpu_s"] = time.process_time()
            _BASE.update({k: info[k] for k in ("compiled", "disk_hits", "memory_hits")})
    return out


def forget() -> None:
    """Drop the loaded archives of this process (the next block loads its archive again)."""
    with _LOCK:
        _LOADED.clear()
        _STEPS.clear()
