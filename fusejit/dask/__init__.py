"""``fusejit.dask``: fused functions over Dask arrays, on one machine or a cluster.

``map_blocks(fn, *arrays)`` traces ``fn`` on the client: once, on small blocks, when its graph
is shape-generic (elementwise ops and reductions: one plan and kernel serve every block shape,
ragged ones included), else once per distinct block shape; and ships it to the workers as
the bytes of a fusejit archive (``fusejit.save``'s format: graphs, tensors and the compiled
kernels, never a pickle of ``fn``'s code). The archive
is one data key of the Dask graph, so each worker receives it once; each worker process loads
it once (kept by its SHA-256) and builds its kernels once (from the archive's kernels when
they are signed with its machine's archive key, else from its own disk cache or by compiling),
then runs one fused kernel per block. ``reduce(fn, *arrays, op=...)`` reduces ``fn``'s result
across chunks: a fused per-block partial (``fn`` and the reduction in one kernel) combined by
Dask's own tree reduction. Blocks that are cupy arrays run as CUDA tensors on their GPU.

Needs the optional dependencies of ``fusejit[dask]`` (dask[array], distributed).

>>> import dask.array as da, numpy as np, fusejit, fusejit.dask
>>> x = da.from_array(np.arange(6, dtype=np.float32), chunks=4)
>>> y = fusejit.dask.map_blocks(lambda t: (t * 2).exp(), x)
>>> bool(np.allclose(y.compute(scheduler="sync"), np.exp(np.arange(6) * 2)))
True
"""

from __future__ import annotations

import io
import itertools
import math
import operator
import sys

import numpy as np

try:
    import dask
    import dask.array as da
except ImportError as _e:  # pragma: no cover - the optional extra is missing
    raise ImportError(
        "fusejit.dask needs dask and distributed: pip install 'fusejit[dask]'"
    ) from _e

from fusejit.base import dtypes as dt
from fusejit.base.device import CPU, Device
from fusejit.base.errors import DeviceError, FusejitError, ShapeError, TraceError
from fusejit.base.shapes import describe
from fusejit.dask.worker import Archive, forget, run_block, worker_stats
from fusejit.eager import reductions
from fusejit.eager.tensor import Tensor
from fusejit.ir.graph import Graph, Value
from fusejit.jit.api import TracedFunction, trace
from fusejit.jit.archive import save
from fusejit.jit.foreign import register
from fusejit.ops.registry import OPS

__all__ = ["map_blocks", "reduce", "worker_stats", "forget", "Archive", "MAX_SIGNATURES"]

MAX_SIGNATURES = 64  # distinct block shapes one call traces (a ragged grid has 2**ndim)
_PROBES = (2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37)  # small traces' sizes, one per dim
_REDUCE_OPS = {"sum": "sum", "mean": "sum", "prod": "prod", "amax": "max", "amin": "min"}
# ops whose reading of other elements along an axis the check below can follow
_ALONG_AXES = {"reduction", "composite", "scan", "sort"}
_AXES_MOVED = {"movement", "matmul", "linalg", "fft", "indexing", "complex"}


def _python_fn(fn):
    """The Python function behind ``fn`` (a traced or optimized function is traced again,
    per block shape)."""
    if isinstance(fn, TracedFunction):
        return fn.fn
    ex = getattr(fn, "_fusejit_executor", None)
    if ex is not None and getattr(ex, "_module", None) is None:
        return ex._fn
    return fn


def _device_of(a) -> Device:
    meta = getattr(a, "_meta", None)
    if type(meta).__module__.split(".")[0] == "cupy":
        return Device(f"cuda:{sys.modules['cupy'].cuda.Device().id}")
    return CPU


def _example(shape: tuple, dtype: dt.DType, device: Device, rng) -> Tensor:
    """A block of ``shape`` to trace with: values in [0.5, 1.5) for floats (so that log, sqrt
    and division stay finite), ones for integers, True for bool."""
    npdt = np.dtype(dtype.np)
    if dtype.is_floating_point or dtype.is_complex:
        arr = rng.uniform(0.5, 1.5, shape).astype(npdt)
    else:
        arr = np.ones(shape, npdt)
    t = Tensor._wrap(arr, dtype, CPU)
    return t if device.type == "cpu" else t.to(device)


def _check_arrays(where: str, arrays) -> tuple:
    if not arrays:
        raise TypeError(f"{where}: no arrays given (pass one dask.array.Array or more)")
    for i, a in enumerate(arrays):
        if not isinstance(a, da.Array):
            hint = " (wrap it with dask.array.from_array)" if hasattr(a, "shape") else ""
            kind = f"{type(a).__module__.split('.')[0]}.{type(a).__name__}"
            raise TypeError(f"{where}: argument {i} is a {kind}, not a dask.array.Array"
                            f"{hint}")  # fmt: skip
    nd = arrays[0].ndim
    shapes = ", ".join(str(tuple(a.shape)) for a in arrays)
    if any(a.ndim != nd for a in arrays):
        raise ShapeError(f"{where}: the arrays have different numbers of dims (shapes {shapes}); "
                         "give them the same rank (size-1 dims broadcast)")  # fmt: skip
    if any(math.isnan(s) for a in arrays for s in a.shape):
        raise ShapeError(f"{where}: an array has unknown chunk sizes (shapes {shapes}); call "
                         "compute_chunk_sizes() first")  # fmt: skip
    out_shape = tuple(max(a.shape[d] for a in arrays) for d in range(nd))
    for d in range(nd):
        if any(a.shape[d] not in (1, out_shape[d]) for a in arrays):
            raise ShapeError(f"{where}: shapes {shapes} do not broadcast (dim {d})")
    devices = {_device_of(a) for a in arrays}
    if len(devices) > 1:
        raise DeviceError(f"{where}: the arrays' blocks are on different devices "
                         f"({', '.join(sorted(map(str, devices)))})")  # fmt: skip
    for a in arrays:
        try:
            dt.as_dtype(a.dtype)
        except (TypeError, ValueError, FusejitError) as e:
            raise type(e)(f"{where}: dtype {a.dtype} is not a fusejit dtype ({e})") from None
    ind = tuple(range(nd))
    try:
        chunkss, arrays = da.core.unify_chunks(
            *itertools.chain.from_iterable((a, ind) for a in arrays)
        )
    except ValueError as e:  # fmt: skip
        raise ShapeError(f"{where}: the arrays' chunks cannot be aligned ({e})") from None
    chunks = tuple(chunkss[d] if d in chunkss else (out_shape[d],) for d in range(nd))
    return tuple(arrays), chunks, out_shape, devices.pop()


def _reduced_axes(n, rank: int) -> list:
    a = n.attr_dict
    if "normalized_ndim" in a:
        return list(range(rank - int(a["normalized_ndim"]), rank))
    if "dim" not in a and "dims" not in a:
        return list(range(rank))
    dim = a.get("dim", a.get("dims"))
    if dim is None:
        return list(range(rank))
    dims = dim if isinstance(dim, (tuple, list)) else (dim,)
    return [int(d) % rank for d in dims] if rank else []


def _check_axes(where: str, graph: Graph, chunks: tuple, exempt_results: bool) -> None:
    """Refuse ``fn`` reading along an axis split into several chunks (a softmax over a
    chunked axis would be computed per block: wrong, silently). Followed where the graph does
    not move axes (no reshape, permute, matmul, ...)."""
    nd = len(chunks)
    split = {d for d in range(nd) if len(chunks[d]) > 1}
    nodes = list(graph.block.nodes)
    if not split or any(n.op in OPS and OPS[n.op].kind in _AXES_MOVED for n in nodes):
        return
    results = set(graph.block.results) if exempt_results else set()
    for n in nodes:
        op = OPS.get(n.op)
        if op is None or op.kind not in _ALONG_AXES or not n.inputs:
            continue
        if any(o in results for o in n.outputs):
            continue
        rank = len(getattr(n.inputs[0], "type", None).shape) if hasattr(n.inputs[0], "type") \
            else -1  # fmt: skip
        if rank != nd:
            continue
        bad = [d for d in _reduced_axes(n, rank) if d in split]
        if bad:
            d = bad[0]
            raise ShapeError(f"{where}: {n.op} reads along dim {d}, which is split into "
                             f"{len(chunks[d])} chunks {chunks[d]}; each block would get its "
                             f"own {n.op}. Rechunk so dim {d} is one chunk "
                             f"(x.rechunk({{{d}: -1}})), or reduce across chunks with "
                             "fusejit.dask.reduce")  # fmt: skip


def _out_types(where: str, traced: TracedFunction) -> list:
    """(shape, dtype) of each result of a traced block function."""
    spec = traced.out_spec
    if spec == "T":
        pass
    elif not (isinstance(spec, tuple) and spec[0] in ("tuple", "list")
              and all(s == "T" for s in spec[1]) and spec[1]):  # fmt: skip
        raise TraceError(f"{where}: {traced.__name__} must return a tensor or a tuple of "
                         "tensors")  # fmt: skip
    return [(tuple(v.type.shape), v.type.dtype) for v in traced.raw_graph.block.results]


class _Blocks:
    """``fn`` traced for the blocks of the aligned ``arrays``: once on small blocks where its
    graph is shape-generic, else once per distinct block shape."""

    def __init__(self, where, fn, arrays, drop_axis, check_trace, exempt_results=False):
        arrays, chunks, out_shape, device = _check_arrays(where, arrays)
        self.arrays, self.chunks, self.shape, self.device = arrays, chunks, out_shape, device
        nd = len(chunks)
        drop = sorted({int(d) % nd if nd else int(d) for d in
                       ((drop_axis,) if isinstance(drop_axis, int) else drop_axis)})  # fmt: skip
        for d in drop:
            if len(chunks[d]) > 1:
                raise ShapeError(
                    f"{where}: drop_axis {d} is split into {len(chunks[d])} chunks; a block "
                    "function can only drop an axis that is one chunk (reduce across chunks "
                    "with fusejit.dask.reduce)"
                )
        self.drop = drop
        kept = [d for d in range(nd) if d not in drop]
        dtypes = [dt.as_dtype(a.dtype) for a in arrays]
        sizes = [list(dict.fromkeys(chunks[d])) for d in range(nd)]
        combos = list(itertools.product(*sizes))
        if len(combos) > MAX_SIGNATURES:
            raise ShapeError(f"{where}: the chunks have {len(combos)} distinct block shapes, "
                             f"more than {MAX_SIGNATURES}; rechunk to regular chunks")  # fmt: skip
        rng = np.random.default_rng(0)
        self.fn = _python_fn(fn)
        self.traced: list[TracedFunction] = []  # the signatures the archive holds
        if self._small(where, dtypes, kept, check_trace, exempt_results, rng):
            self._save()
            return
        maps: list = []  # per result, per kept dim: block size in -> block size out
        for ci, combo in enumerate(combos):
            examples = tuple(_example(tuple(1 if a.shape[d] == 1 and out_shape[d] != 1
                                            else combo[d] for d in range(nd)), t, device, rng)
                             for a, t in zip(arrays, dtypes))  # fmt: skip
            with np.errstate(all="ignore"):  # (log, sqrt of the made-up values: no warning)
                t = trace(self.fn, examples, check_trace=check_trace and ci == 0)
            if ci == 0:
                _check_axes(where, t.raw_graph, chunks, exempt_results)
                self.name = t.__name__ if t.__name__.isidentifier() else "fn"
            # a signature already held serves these blocks if its plan takes their shapes
            # and its graph is this one (not when the function read the block size)
            if not any(p.plan.check(examples) is None and _structure(p.raw_graph) ==
                       _structure(t.raw_graph) for p in self.traced):  # fmt: skip
                self.traced.append(t)
            types = _out_types(where, t)
            if ci == 0:
                self.dtypes = [d for _, d in types]
                maps = [[{} for _ in kept] for _ in types]
            for k, (shape, _) in enumerate(types):
                if len(shape) != len(kept):
                    raise ShapeError(f"{where}: {self.name} returns a rank-{len(shape)} result "
                                     f"for rank-{nd} blocks (result {k}: {shape}); pass "
                                     "drop_axis= for the dims it removes")  # fmt: skip
                for j, d in enumerate(kept):
                    m = maps[k][j]
                    if m.setdefault(combo[d], shape[j]) != shape[j]:
                        raise ShapeError(f"{where}: {self.name}'s result size along dim {j} "
                                         "depends on more than the block's size along dim "
                                         f"{d}")  # fmt: skip
        self.out_chunks = [
            tuple(tuple(m[j][c] for c in chunks[d]) for j, d in enumerate(kept)) for m in maps
        ]
        self._save()

    def _small(self, where, dtypes, kept, check_trace, exempt_results, rng) -> bool:
        """Trace on small blocks, one distinct size per dim (1 where the blocks have 1), when
        that serves: a shape-generic graph (elementwise ops and reductions) runs every block
        shape of the same rank and broadcast pattern with its one plan, and each result
        dim's size is then a dim's block size or 1, told apart by the distinct sizes. Tracing
        so costs milliseconds, however large the chunks. False where it does not serve."""
        chunks, shape, nd = self.chunks, self.shape, len(self.chunks)
        if nd > len(_PROBES) or any(1 in chunks[d] and shape[d] != 1 for d in range(nd)):
            return False  # (a block of size 1 along a longer dim broadcasts: its own plan)
        probe = [1 if shape[d] == 1 else _PROBES[d] for d in range(nd)]
        other = [1 if shape[d] == 1 else _PROBES[d] + 1 for d in range(nd)]

        def small(sizes, check):
            ex = tuple(_example(tuple(1 if a.shape[d] == 1 else sizes[d] for d in range(nd)),
                                t, self.device, rng)
                       for a, t in zip(self.arrays, dtypes))  # fmt: skip
            with np.errstate(all="ignore"):  # (log, sqrt of the made-up values: no warning)
                return trace(self.fn, ex, check_trace=check)

        try:
            t = small(probe, check_trace)
            again = small(other, False)
        except Exception:  # (code that only runs at the real sizes: traced at those below)
            return False
        _check_axes(where, t.raw_graph, chunks, exempt_results)
        self.name = t.__name__ if t.__name__.isidentifier() else "fn"
        # the same graph at two sizes, or the function reads the sizes (``x / x.shape[1]``)
        if not t.plan.shape_generic or _structure(t.raw_graph) != _structure(again.raw_graph):
            return False
        out_chunks = []
        for k, (s, _) in enumerate(_out_types(where, t)):
            if len(s) != len(kept):
                raise ShapeError(f"{where}: {self.name} returns a rank-{len(s)} result for "
                                 f"rank-{nd} blocks (result {k}: {s}); pass drop_axis= for the "
                                 "dims it removes")  # fmt: skip
            per = []
            for j, d in enumerate(kept):
                if s[j] == probe[d]:
                    per.append(chunks[d])
                elif s[j] == 1:
                    per.append((1,) * len(chunks[d]))
                else:
                    return False
            out_chunks.append(tuple(per))
        self.traced, self.out_chunks = [t], out_chunks
        self.dtypes = [d for _, d in _out_types(where, t)]
        return True

    def _save(self) -> None:
        self.single = traced_single(self.traced[0])
        buf = io.BytesIO()
        save(self.traced if len(self.traced) > 1 else self.traced[0], buf)
        self.archive = Archive(buf.getvalue(), self.name)

    def meta(self, dtype: dt.DType, ndim: int):
        if self.device.type == "cuda":
            return sys.modules["cupy"].empty((0,) * ndim, dtype=np.dtype(dtype.np))
        return np.empty((0,) * ndim, dtype=np.dtype(dtype.np))

    def build(self) -> list:
        """The Dask arrays of the results: one task per block running the archive."""
        arch = dask.delayed(self.archive, pure=True, name=f"fusejit-archive-{self.archive.digest}")
        token = f"fusejit-{self.name}"
        n_out = 0 if self.single else len(self.dtypes)
        nd = len(self.out_chunks[0])
        kw = {"drop_axis": self.drop} if self.drop else {}
        if n_out == 0:
            d = self.dtypes[0]
            return [da.map_blocks(run_block, arch, 0, *self.arrays, chunks=self.out_chunks[0],
                                  dtype=np.dtype(d.np), meta=self.meta(d, nd), token=token,
                                  **kw)]  # fmt: skip
        both = da.map_blocks(run_block, arch, n_out, *self.arrays, chunks=self.out_chunks[0],
                             dtype=object, meta=np.empty((0,) * nd, dtype=object), token=token,
                             **kw)  # fmt: skip
        return [da.map_blocks(operator.getitem, both, k, chunks=c, dtype=np.dtype(d.np),
                              meta=self.meta(d, nd), token=f"{token}-{k}")
                for k, (c, d) in enumerate(zip(self.out_chunks, self.dtypes))]  # fmt: skip


def _structure(g: Graph) -> list:
    """A graph's ops, attributes, constants and wiring, without its inputs' shapes: equal for
    two traces of a function whose graph does not depend on the block size."""
    index = {v: i for i, v in enumerate(g.block.params)}
    out = []
    for n in g.block.nodes:
        ins = []
        for a in n.inputs:
            if isinstance(a, Value):
                if a not in index:  # a captured tensor: its shape counts
                    index[a] = len(index)
                    ins.append(("captured", index[a], tuple(a.type.shape)))
                else:
                    ins.append(index[a])
            else:
                ins.append(("const", repr(getattr(a, "value", a))))
        for o in n.outputs:
            index.setdefault(o, len(index))
        out.append((n.op, repr(n.attrs), tuple(ins)))
    out.append(tuple(index.get(r) for r in g.block.results))
    return out


def traced_single(t: TracedFunction) -> bool:
    return t.out_spec == "T"


def map_blocks(fn, *arrays, drop_axis=(), check_trace: bool = True):
    """Run ``fn`` (tensors in, a tensor or a tuple of tensors out) on each block of the Dask
    ``arrays`` as one fused kernel, returning a Dask array (a tuple of them for a tuple).

    The arrays are aligned as ``dask.array.map_blocks`` aligns them (same rank, size-1 dims
    broadcast, chunks unified). ``fn`` is traced on the client (on small blocks where its
    graph is shape-generic, else once per distinct block shape) and shipped as a fusejit
    archive; it must compute each block from that block alone:
    reading along a dim that is split into chunks (a softmax or sum over it) is a
    ``ShapeError`` (checked where the graph does not move dims: no reshape, permute or
    matmul); reduce across chunks with :func:`reduce`. ``drop_axis`` names the dims
    (each one chunk) that ``fn`` reduces away. ``fn`` may be a traced or optimized function.
    Blocks that are cupy arrays run on their GPU.

    >>> import dask.array as da, numpy as np, fusejit, fusejit.dask
    >>> x = da.from_array(np.ones((5, 4), np.float32), chunks=(2, 4))
    >>> sm = fusejit.dask.map_blocks(lambda t: fusejit.softmax(t, dim=1), x)
    >>> sm.chunks, float(sm.sum().compute(scheduler="sync"))
    (((2, 2, 1), (4,)), 5.0)
    """
    if not callable(fn):
        raise TypeError(f"fusejit.dask.map_blocks: fn must be callable, not {describe(fn)}")
    b = _Blocks("fusejit.dask.map_blocks", fn, arrays, drop_axis, check_trace)
    outs = b.build()
    return outs[0] if b.single else tuple(outs)


def reduce(fn, *arrays, op: str = "sum", dim=None, keepdim: bool = False,
           check_trace: bool = True):  # fmt: skip
    """Reduce ``fn(*arrays)`` (elementwise and row work, as in :func:`map_blocks`; ``None``:
    the one array itself) with ``op`` (``"sum"``, ``"mean"``, ``"prod"``, ``"amax"``,
    ``"amin"``) over ``dim`` (an int, a tuple, or None: every dim), across chunks: each block's
    partial is one fused kernel (``fn`` and the reduction, keeping the reduced dims as size
    1), and Dask's tree reduction combines the partials. Returns a Dask array.

    >>> import dask.array as da, numpy as np, fusejit.dask
    >>> x = da.from_array(np.arange(10, dtype=np.float64), chunks=3)
    >>> float(fusejit.dask.reduce(lambda t: t * t, x, op="sum").compute(scheduler="sync"))
    285.0
    """
    where = "fusejit.dask.reduce"
    if op not in _REDUCE_OPS:
        raise ValueError(f"{where}: op must be one of {', '.join(_REDUCE_OPS)}, got {op!r}")
    if fn is None:
        if len(arrays) != 1:
            raise TypeError(f"{where}: fn=None reduces one array, got {len(arrays)}")
        fn = _identity
    elif not callable(fn):
        raise TypeError(f"{where}: fn must be callable or None, not {describe(fn)}")
    nd = arrays[0].ndim if arrays and isinstance(arrays[0], da.Array) else 0
    if dim is None:
        dims = tuple(range(nd))
    else:
        raw = dim if isinstance(dim, (tuple, list)) else (dim,)
        for d in raw:
            if not isinstance(d, int) or isinstance(d, bool) or not -nd <= d < max(nd, 1):
                raise ShapeError(f"{where}: dim {d!r} is out of range for rank-{nd} arrays")
        dims = tuple(sorted({d % nd for d in raw}))
    base = _python_fn(fn)
    reduce_fn = getattr(reductions, "sum" if op == "mean" else op)

    def partial(*xs):
        y = base(*xs)
        if not isinstance(y, Tensor) or y.ndim != nd:
            raise ShapeError(f"{where}: fn must return one tensor of the blocks' rank "
                             f"({nd}), got {describe(y)}")  # fmt: skip
        return reduce_fn(y, dims, True) if dims else y

    partial.__name__ = f"{op}_of_{getattr(base, '__name__', 'fn')}"
    if not partial.__name__.isidentifier():
        partial.__name__ = f"{op}_partial"
    b = _Blocks(where, partial, arrays, (), check_trace, exempt_results=True)
    (parts,) = b.build()
    out = getattr(parts, _REDUCE_OPS[op])(axis=dims, keepdims=keepdim)
    if op == "mean":
        n = math.prod(b.shape[d] for d in dims)
        out = out / n if n else out * np.nan
    return out


def _identity(x):
    return x


def _is_dask_array(a) -> bool:
    return isinstance(a, da.Array)


def _over_blocks(fn, args):
    """A traced or optimized function called with Dask arrays: ``fn`` mapped over their
    blocks; other arguments (numbers, strings) are constants of the trace."""
    pos = [i for i, a in enumerate(args) if isinstance(a, da.Array)]
    if len(pos) == len(args):
        return map_blocks(fn, *args)

    def with_constants(*arrays):
        full = list(args)
        for i, a in zip(pos, arrays):
            full[i] = a
        return fn(*full)

    with_constants.__name__ = getattr(fn, "__name__", "fn")
    return map_blocks(with_constants, *[args[i] for i in pos])


register(_is_dask_array, _over_blocks)
