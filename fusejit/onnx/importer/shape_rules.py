"""Import rules for ONNX's shape, movement, indexing, creation and logic ops.

Each rule follows the ONNX operator's definition (not PyTorch's where they differ): dtypes are
kept as ONNX gives them (no promotion; ``Shape``, ``ArgMax``, ``TopK``'s indices and ``NonZero``
are int64), negative indices count from the end, ``Slice`` clamps its bounds and takes negative
steps. Values that fix a result's shape (shapes, axes, pads, ``K``, repeats, slice bounds) must
be known when the model is loaded (``ctx.static``); the rules compute with them in Python and
numpy, and only call fusejit ops on the tensors, so that the rules trace into fusejit graphs.

>>> import fusejit
>>> import numpy as np
>>> from fusejit.onnx.importer.registry import IMPORT_RULES, NodeContext
>>> ctx = NodeContext("Transpose", {"perm": [1, 0]}, 21, [None], 1)
>>> IMPORT_RULES["Transpose"](ctx, fusejit.arange(6).reshape(2, 3)).shape
(3, 2)
"""

from __future__ import annotations

import builtins
import math
from typing import Any

import numpy as np

import fusejit
from fusejit.base import dtypes as dt
from fusejit.onnx.importer.registry import NodeContext, onnx_op

__all__: list[str] = []

# ONNX TensorProto.DataType -> fusejit dtype (None: a type fusejit has no tensors of)
_ONNX_DTYPES: dict[int, Any] = {
    1: dt.float32,
    2: dt.uint8,
    3: dt.int8,
    5: dt.int16,
    6: dt.int32,
    7: dt.int64,
    9: dt.bool_,
    10: dt.float16,
    11: dt.float64,
    14: dt.complex64,
    15: dt.complex128,
}
_ONNX_DTYPE_NAMES = {
    4: "uint16",
    8: "string",
    12: "uint32",
    13: "uint64",
    16: "bfloat16",
    17: "float8e4m3fn",
    18: "float8e4m3fnuz",
    19: "float8e5m2",
    20: "float8e5m2fnuz",
    21: "uint4",
    22: "int4",
    23: "float4e2m1",
}


def _dtype(ctx: NodeContext, code: int):
    """The fusejit dtype of ONNX data type ``code`` (an error naming the node if it has none)."""
    d = _ONNX_DTYPES.get(int(code))
    if d is None:
        name = _ONNX_DTYPE_NAMES.get(int(code), f"data type {code}")
        raise ctx.unsupported(f"ONNX type {name}")
    return d


def _ints(a: Any) -> list[int]:
    return [int(v) for v in np.asarray(a).reshape(-1)]


def _axis(ctx: NodeContext, axis: int, ndim: int, what: str = "axis") -> int:
    axis = int(axis)
    if not -ndim <= axis < builtins.max(ndim, 1):
        raise ctx.unsupported(f"{what} {axis} for a rank-{ndim} input (out of range)")
    return axis + ndim if axis < 0 else axis


def _const(ctx: NodeContext, value: Any, d=None):
    """A tensor of a build-time value on the node's device (a constant of the graph)."""
    arr = np.array(value, order="C")  # (ascontiguousarray makes 0-d 1-d)
    if d is not None:
        arr = arr.astype(d.np)
    return fusejit.tensor(arr, dtype=_np_dtype(ctx, arr.dtype), device=ctx.device)


def _np_dtype(ctx: NodeContext, np_dtype: Any):
    """The fusejit dtype of a numpy dtype (an error naming the node for one fusejit lacks, where
    ``fusejit.tensor`` would convert: uint64 to int64)."""
    try:
        return dt.as_dtype(np.dtype(np_dtype))
    except (TypeError, ValueError):
        raise ctx.unsupported(f"a value of type {np.dtype(np_dtype).name}") from None


def _shape(x) -> list[int]:
    return [int(s) for s in x.shape]


def _wrap_index(idx, n: int):
    """Index tensor ``idx`` as int64 with negative entries counted from the end of ``n``."""
    idx = idx if idx.dtype == dt.int64 else fusejit.cast(idx, dt.int64)
    return fusejit.where(idx < 0, idx + n, idx)


# --------------------------------------------------------------------------------------- shapes


@onnx_op("Shape")
def _shape_op(ctx: NodeContext, x):
    dims = _shape(x)
    start = ctx.attr("start", 0) if ctx.opset >= 15 else 0
    end = ctx.attr("end", None) if ctx.opset >= 15 else None
    return _const(ctx, np.array(dims[slice(start, end)], dtype=np.int64))


@onnx_op("Size")
def _size(ctx: NodeContext, x):
    return _const(ctx, np.array(math.prod(_shape(x)), dtype=np.int64))


@onnx_op("Reshape")
def _reshape(ctx: NodeContext, x, shape=None):
    if ctx.opset < 5:
        target = [int(v) for v in ctx.attr("shape")]
    else:
        target = _ints(ctx.static(1, "shape"))
    allowzero = int(ctx.attr("allowzero", 0)) if ctx.opset >= 14 else 0
    dims = _shape(x)
    out = []
    for i, s in enumerate(target):
        if s == 0 and not allowzero:
            if i >= len(dims):
                raise ctx.unsupported(
                    f"shape {target} (0 copies dim {i} of a rank-{len(dims)} input)"
                )
            out.append(dims[i])
        else:
            out.append(s)
    if out.count(-1) > 1:
        raise ctx.unsupported(f"shape {target} (more than one -1)")
    if -1 in out:
        known = math.prod(s for s in out if s != -1)
        total = math.prod(dims)
        if known == 0 or total % known:
            raise ctx.unsupported(f"shape {target} for an input of shape {tuple(dims)}")
        out[out.index(-1)] = total // known
    if math.prod(out) != math.prod(dims):
        raise ctx.unsupported(f"shape {target} for an input of shape {tuple(dims)}")
    return _reshaped(x, out)


def _reshaped(x, shape):
    """``x`` in ``shape``; ``x`` itself when it has that shape already (no graph node)."""
    shape = tuple(int(s) for s in shape)
    return x if shape == tuple(_shape(x)) else fusejit.reshape(x, shape)


@onnx_op("Flatten")
def _flatten(ctx: NodeContext, x):
    dims = _shape(x)
    axis = int(ctx.attr("axis", 1))
    if axis < 0:
        axis += len(dims)
    if not 0 <= axis <= len(dims):
        raise ctx.unsupported(f"axis {ctx.attr('axis', 1)} for a rank-{len(dims)} input")
    return _reshaped(x, (math.prod(dims[:axis]), math.prod(dims[axis:])))


@onnx_op("Transpose")
def _transpose(ctx: NodeContext, x):
    n = x.ndim
    perm = ctx.attr("perm", None)
    perm = list(range(n - 1, -1, -1)) if perm is None else [_axis(ctx, p, n, "perm") for p in perm]
    return x if perm == list(range(n)) else fusejit.permute(x, tuple(perm))


def _axes_of(ctx: NodeContext, index: int, optional: bool) -> list[int] | None:
    """``axes`` given as an attribute (before opset 13) or as input ``index`` (13 and later);
    ``None`` when optional and absent."""
    if ctx.opset < 13:
        axes = ctx.attr("axes", None) if optional else ctx.attr("axes")
        return None if axes is None else [int(a) for a in axes]
    if optional and not ctx.has_input(index):
        return None
    return _ints(ctx.static(index, "axes"))


@onnx_op("Squeeze")
def _squeeze(ctx: NodeContext, x, axes=None):
    dims = _shape(x)
    ax = _axes_of(ctx, 1, optional=True)
    if ax is None:
        keep = [s for s in dims if s != 1]
    else:
        drop = {_axis(ctx, a, len(dims), "axis") for a in ax}
        for a in drop:
            if dims[a] != 1:
                raise ctx.unsupported(f"squeezing axis {a} of size {dims[a]}")
        keep = [s for i, s in enumerate(dims) if i not in drop]
    return _reshaped(x, keep)


@onnx_op("Unsqueeze")
def _unsqueeze(ctx: NodeContext, x, axes=None):
    dims = _shape(x)
    ax = _axes_of(ctx, 1, optional=False)
    rank = len(dims) + len(ax)
    new = sorted(_axis(ctx, a, rank, "axis") for a in ax)
    if len(set(new)) != len(new):
        raise ctx.unsupported(f"repeated axes {ax}")
    out, it = [], iter(dims)
    for i in range(rank):
        out.append(1 if i in new else next(it))
    return fusejit.reshape(x, tuple(out))


@onnx_op("Expand")
def _expand(ctx: NodeContext, x, shape=None):
    target = tuple(_ints(ctx.static(1, "shape")))
    out = tuple(fusejit.broadcast_shapes(tuple(_shape(x)), target))
    return x if out == tuple(_shape(x)) else fusejit.broadcast_to(x, out)


@onnx_op("Tile")
def _tile(ctx: NodeContext, x, repeats=None, axis=None):
    if ctx.opset < 6:
        raise ctx.unsupported("Tile before opset 6 (tiles and axis inputs)")
    reps = _ints(ctx.static(1, "repeats"))
    if len(reps) != x.ndim:
        raise ctx.unsupported(f"repeats {reps} for a rank-{x.ndim} input")
    return x if all(r == 1 for r in reps) else fusejit.tile(x, tuple(reps))


@onnx_op("Concat")
def _concat(ctx: NodeContext, *xs):
    xs = [x for x in xs if x is not None]
    axis = _axis(ctx, ctx.attr("axis", 1) if ctx.opset < 4 else ctx.attr("axis"), xs[0].ndim)
    return fusejit.cat(xs, axis)


@onnx_op("Split")
def _split(ctx: NodeContext, x, split=None):
    dims = _shape(x)
    axis = _axis(ctx, ctx.attr("axis", 0), len(dims))
    n = dims[axis]
    sizes: list[int] | None = None
    if ctx.opset >= 13 or (ctx.opset < 2 and ctx.has_input(1)):
        if ctx.has_input(1):
            sizes = _ints(ctx.static(1, "split"))
    elif ctx.attr("split", None) is not None:
        sizes = [int(s) for s in ctx.attr("split")]
    if sizes is None:
        if ctx.opset >= 18 and "num_outputs" in ctx.attrs:
            parts = int(ctx.attr("num_outputs"))
            size = -(-n // parts)  # the last part may be smaller
            sizes = [builtins.min(size, n - i * size) for i in range(parts)]
        else:
            parts = ctx.n_outputs
            if n % parts:
                raise ctx.unsupported(f"splitting a dim of {n} into {parts} equal parts")
            sizes = [n // parts] * parts
    if builtins.sum(sizes) != n or builtins.min(sizes, default=0) < 0:
        raise ctx.unsupported(f"split sizes {sizes} for a dim of {n}")
    outs, start = [], 0
    for s in sizes:
        outs.append(fusejit.narrow(x, axis, start, s))
        start += s
    return tuple(outs)


@onnx_op("Slice")
def _slice(ctx: NodeContext, x, starts=None, ends=None, axes=None, steps=None):
    dims = _shape(x)
    if ctx.opset < 10:
        st = [int(v) for v in ctx.attr("starts")]
        en = [int(v) for v in ctx.attr("ends")]
        ax = ctx.attr("axes", None)
        ax = list(range(len(st))) if ax is None else [int(a) for a in ax]
        sp = [1] * len(st)
    else:
        st = _ints(ctx.static(1, "starts"))
        en = _ints(ctx.static(2, "ends"))
        ax = _ints(ctx.static(3, "axes")) if ctx.has_input(3) else list(range(len(st)))
        sp = _ints(ctx.static(4, "steps")) if ctx.has_input(4) else [1] * len(st)
    if not len(st) == len(en) == len(ax) == len(sp):
        raise ctx.unsupported("starts, ends, axes and steps of different lengths")
    index: list[Any] = [slice(None)] * len(dims)
    flips = []
    seen = set()
    for s, e, a, k in zip(st, en, ax, sp):
        a = _axis(ctx, a, len(dims))
        if a in seen:
            raise ctx.unsupported(f"axis {a} sliced twice")
        seen.add(a)
        if k == 0:
            raise ctx.unsupported("step 0")
        n = dims[a]
        r = range(*slice(s, e, k).indices(n))  # ONNX clamps as Python does
        if len(r) == 0:
            index[a] = slice(0, 0)
            continue
        if k < 0:  # read the flipped dim forwards
            flips.append(a)
            first, k = n - 1 - r.start, -k
        else:
            first = r.start
        if not (first == 0 and k == 1 and len(r) == n):  # (the whole dim: no slice)
            index[a] = slice(first, first + (len(r) - 1) * k + 1, k)
    if flips:
        x = fusejit.flip(x, tuple(flips))
    if all(i == slice(None) for i in index):
        return x
    return x[tuple(index)]


# ------------------------------------------------------------------------------------- indexing


@onnx_op("Gather")
def _gather(ctx: NodeContext, x, indices):
    dims = _shape(x)
    axis = _axis(ctx, ctx.attr("axis", 0), len(dims))
    idx = _wrap_index(indices, dims[axis])
    flat = fusejit.index_select(x, axis, fusejit.reshape(idx, (-1,)))
    return fusejit.reshape(flat, tuple(dims[:axis] + _shape(indices) + dims[axis + 1 :]))


@onnx_op("GatherElements")
def _gather_elements(ctx: NodeContext, x, indices):
    axis = _axis(ctx, ctx.attr("axis", 0), x.ndim)
    idx = _wrap_index(indices, x.shape[axis])
    for d, (n, m) in enumerate(zip(_shape(x), _shape(indices))):
        if d != axis and m < n:  # (the output reads the data's leading corner there)
            x = fusejit.narrow(x, d, 0, m)
    return fusejit.gather(x, axis, idx)


_SCATTER_REDUCE = {"add": "sum", "mul": "prod", "max": "amax", "min": "amin"}


def _reduction(ctx: NodeContext) -> str:
    reduction = ctx.attr("reduction", "none")
    if reduction != "none" and reduction not in _SCATTER_REDUCE:
        raise ctx.unsupported(f"reduction {reduction!r}")
    return reduction


@onnx_op("ScatterElements", "Scatter")
def _scatter_elements(ctx: NodeContext, data, indices, updates):
    axis = _axis(ctx, ctx.attr("axis", 0), data.ndim)
    idx = _wrap_index(indices, data.shape[axis])
    reduction = _reduction(ctx)
    if reduction == "none":
        return fusejit.scatter(data, axis, idx, updates)
    return fusejit.scatter_reduce(data, axis, idx, updates, _SCATTER_REDUCE[reduction])


def _linear_index(idx, dims: list[int]):
    """Row-major offsets of the index tuples in ``idx``'s last dim into ``dims`` (int64; negative
    entries count from the end)."""
    k = len(dims)
    strides = [math.prod(dims[i + 1 :]) for i in range(k)]
    lin = None
    for i in range(k):
        term = _wrap_index(idx[..., i], dims[i]) * strides[i]
        lin = term if lin is None else lin + term
    return lin


@onnx_op("ScatterND")
def _scatter_nd(ctx: NodeContext, data, indices, updates):
    dims = _shape(data)
    ishape = _shape(indices)
    k = ishape[-1]
    if k > len(dims):
        raise ctx.unsupported(f"indices of last dim {k} for a rank-{len(dims)} data")
    reduction = _reduction(ctx) if ctx.opset >= 16 else "none"
    rest = dims[k:]
    flat = fusejit.reshape(data, (math.prod(dims[:k]), *rest))
    if k == 0:
        lin = fusejit.zeros(tuple(ishape[:-1]), dtype=dt.int64, device=ctx.device)
    else:
        lin = _linear_index(indices, dims[:k])
    n_upd = math.prod(ishape[:-1])
    lin = fusejit.reshape(lin, (n_upd, *([1] * len(rest))))
    lin = fusejit.broadcast_to(lin, (n_upd, *rest)).contiguous()
    upd = fusejit.reshape(updates, (n_upd, *rest))
    if reduction == "none":
        out = fusejit.scatter(flat, 0, lin, upd)
    else:
        out = fusejit.scatter_reduce(flat, 0, lin, upd, _SCATTER_REDUCE[reduction])
    return fusejit.reshape(out, tuple(dims))


@onnx_op("GatherND")
def _gather_nd(ctx: NodeContext, data, indices):
    dims = _shape(data)
    ishape = _shape(indices)
    b = int(ctx.attr("batch_dims", 0)) if ctx.opset >= 12 else 0
    k = ishape[-1]
    if b + k > len(dims) or dims[:b] != ishape[:b]:
        raise ctx.unsupported(
            f"indices of shape {tuple(ishape)} for data of shape {tuple(dims)} (batch_dims {b})"
        )
    nb = math.prod(dims[:b])
    inner = dims[b : b + k]
    rest = dims[b + k :]
    m = ishape[b:-1]
    per = math.prod(inner)
    idx = fusejit.reshape(indices, (nb, math.prod(m), k))
    if k == 0:
        lin = fusejit.zeros((nb, math.prod(m)), dtype=dt.int64, device=ctx.device)
    else:
        lin = _linear_index(idx, inner)
    if nb > 1:
        base = _const(ctx, np.arange(nb, dtype=np.int64).reshape(nb, 1) * per)
        lin = lin + base
    flat = fusejit.reshape(data, (nb * per, *rest))
    out = fusejit.index_select(flat, 0, fusejit.reshape(lin, (-1,)))
    return fusejit.reshape(out, tuple(dims[:b] + m + rest))


@onnx_op("Compress")
def _compress(ctx: NodeContext, x, condition):
    axis = ctx.attr("axis", None)
    if axis is None:
        x = fusejit.reshape(x, (-1,))
        axis = 0
    axis = _axis(ctx, axis, x.ndim)
    n = x.shape[axis]
    if ctx.is_static(1):
        keep = np.nonzero(np.asarray(ctx.static(1, "condition")).reshape(-1)[:n])[0]
        idx = _const(ctx, keep.astype(np.int64))
    else:  # (eager only: the result's length depends on the condition's values)
        cond = fusejit.reshape(condition, (-1,))
        if cond.shape[0] > n:
            cond = cond[:n]
        idx = fusejit.reshape(fusejit.nonzero(cond), (-1,))
    return fusejit.index_select(x, axis, idx)


@onnx_op("NonZero")
def _nonzero(ctx: NodeContext, x):
    if ctx.is_static(0):
        v = np.asarray(ctx.static(0, "input"))
        return _const(ctx, np.array(np.nonzero(v.reshape(1) if v.ndim == 0 else v), np.int64))
    if x.ndim == 0:
        x = fusejit.reshape(x, (1,))
    # (eager only: the count depends on the values)
    return fusejit.permute(fusejit.nonzero(x), (1, 0)).contiguous()


@onnx_op("TopK")
def _topk(ctx: NodeContext, x, k=None):
    kk = int(ctx.attr("k")) if ctx.opset < 10 else _ints(ctx.static(1, "K"))[0]
    axis = _axis(ctx, ctx.attr("axis", -1), x.ndim)
    largest = bool(ctx.attr("largest", 1)) if ctx.opset >= 11 else True
    if not 0 <= kk <= x.shape[axis]:
        raise ctx.unsupported(f"K={kk} for a dim of {x.shape[axis]}")
    values, indices = fusejit.topk(x, kk, axis, largest=largest, sorted=True)
    return values, indices


def _arg(ctx: NodeContext, x, fn):
    axis = _axis(ctx, ctx.attr("axis", 0), x.ndim)
    keepdims = bool(ctx.attr("keepdims", 1))
    if ctx.opset >= 12 and ctx.attr("select_last_index", 0):
        n = x.shape[axis]
        r = (n - 1) - fn(fusejit.flip(x, (axis,)), axis, keepdim=keepdims)
    else:
        r = fn(x, axis, keepdim=keepdims)
    return r if r.dtype == dt.int64 else fusejit.cast(r, dt.int64)


@onnx_op("ArgMax")
def _argmax(ctx: NodeContext, x):
    return _arg(ctx, x, fusejit.argmax)


@onnx_op("ArgMin")
def _argmin(ctx: NodeContext, x):
    return _arg(ctx, x, fusejit.argmin)


@onnx_op("CumSum")
def _cumsum(ctx: NodeContext, x, axis=None):
    a = _axis(ctx, _ints(ctx.static(1, "axis"))[0], x.ndim)
    reverse = bool(ctx.attr("reverse", 0))
    if reverse:
        x = fusejit.flip(x, (a,))
    y = fusejit.cumsum(x, a, dtype=x.dtype)
    n = x.shape[a]
    if ctx.attr("exclusive", 0) and n > 0:
        dims = _shape(x)
        dims[a] = 1
        zero = fusejit.zeros(tuple(dims), dtype=x.dtype, device=ctx.device)
        y = fusejit.cat([zero, fusejit.narrow(y, a, 0, n - 1)], a)
    return fusejit.flip(y, (a,)) if reverse else y


@onnx_op("ReverseSequence")
def _reverse_sequence(ctx: NodeContext, x, sequence_lens):
    dims = _shape(x)
    ba = _axis(ctx, ctx.attr("batch_axis", 1), len(dims))
    ta = _axis(ctx, ctx.attr("time_axis", 0), len(dims))
    shape_b = [1] * len(dims)
    shape_b[ba] = dims[ba]
    shape_t = [1] * len(dims)
    shape_t[ta] = dims[ta]
    lens = fusejit.reshape(fusejit.cast(sequence_lens, dt.int64), tuple(shape_b))
    t = _const(ctx, np.arange(dims[ta], dtype=np.int64).reshape(shape_t))
    idx = fusejit.where(t < lens, lens - 1 - t, t)
    idx = fusejit.broadcast_to(idx, tuple(dims)).contiguous()
    return fusejit.gather(x, ta, idx)


# ------------------------------------------------------------------------------------- movement


@onnx_op("Pad")
def _pad(ctx: NodeContext, x, pads=None, constant_value=None, axes=None):
    dims = _shape(x)
    mode = ctx.attr("mode", "constant")
    if isinstance(mode, bytes):
        mode = mode.decode()
    if mode not in ("constant", "reflect", "edge", "wrap"):
        raise ctx.unsupported(f"mode {mode!r}")
    value: Any = 0.0
    if ctx.opset < 11:
        p = [int(v) for v in ctx.attr("pads" if ctx.opset >= 2 else "paddings")]
        value = float(ctx.attr("value", 0.0))
    else:
        p = _ints(ctx.static(1, "pads"))
        if ctx.has_input(2):
            value = np.asarray(ctx.static(2)).reshape(-1)[0] if ctx.is_static(2) else constant_value
    if ctx.opset >= 18 and ctx.has_input(3):
        ax = [_axis(ctx, a, len(dims)) for a in _ints(ctx.static(3, "axes"))]
    else:
        ax = list(range(len(dims)))
    if len(p) != 2 * len(ax):
        raise ctx.unsupported(f"pads {p} for {len(ax)} axes")
    for i, a in enumerate(ax):
        begin, end = p[i], p[i + len(ax)]
        if begin == 0 and end == 0:
            continue
        n = dims[a]
        # negative pads crop first, then the positive ones pad what is left (onnxruntime's
        # order: it matters for reflect and wrap)
        lo, hi = builtins.max(-begin, 0), n - builtins.max(-end, 0)
        if lo or hi != n:
            x = fusejit.narrow(x, a, lo, builtins.max(hi - lo, 0))
            n = builtins.max(hi - lo, 0)
        begin, end = builtins.max(begin, 0), builtins.max(end, 0)
        if mode == "constant":
            parts = [_fill(ctx, x, a, begin, value)] if begin else []
            parts.append(x)
            if end:
                parts.append(_fill(ctx, x, a, end, value))
            x = fusejit.cat(parts, a) if len(parts) > 1 else x
        elif begin or end:
            if n == 0:
                raise ctx.unsupported(f"{mode} padding of an empty dim")
            pos = np.arange(-begin, n + end)
            if mode == "edge":
                pos = np.clip(pos, 0, n - 1)
            elif mode == "wrap":
                pos = np.mod(pos, n)
            elif n == 1:
                pos = np.zeros_like(pos)
            else:  # (pads longer than the dim reflect again, as numpy's)
                pos = np.abs(pos) % (2 * n - 2)
                pos = np.where(pos >= n, 2 * n - 2 - pos, pos)
            x = fusejit.index_select(x, a, _const(ctx, pos.astype(np.int64)))
        dims = _shape(x)
    return x


def _fill(ctx: NodeContext, x, axis: int, size: int, value: Any):
    """A block of ``value`` shaped as ``x`` but ``size`` long along ``axis``."""
    shape = _shape(x)
    shape[axis] = size
    if isinstance(value, fusejit.Tensor):
        v = value if value.dtype == x.dtype else fusejit.cast(value, x.dtype)
        return fusejit.broadcast_to(fusejit.reshape(v, ()), tuple(shape)).contiguous()
    return fusejit.full(tuple(shape), np.asarray(value).item(), dtype=x.dtype, device=ctx.device)


@onnx_op("DepthToSpace")
def _depth_to_space(ctx: NodeContext, x):
    n, c, h, w = _shape(x)
    b = int(ctx.attr("blocksize"))
    mode = ctx.attr("mode", "DCR") if ctx.opset >= 11 else "DCR"
    if c % (b * b):
        raise ctx.unsupported(f"blocksize {b} for {c} channels")
    if mode == "DCR":
        y = fusejit.reshape(x, (n, b, b, c // (b * b), h, w))
        y = fusejit.permute(y, (0, 3, 4, 1, 5, 2))
    elif mode == "CRD":
        y = fusejit.reshape(x, (n, c // (b * b), b, b, h, w))
        y = fusejit.permute(y, (0, 1, 4, 2, 5, 3))
    else:
        raise ctx.unsupported(f"mode {mode!r}")
    return fusejit.reshape(y.contiguous(), (n, c // (b * b), h * b, w * b))


@onnx_op("SpaceToDepth")
def _space_to_depth(ctx: NodeContext, x):
    n, c, h, w = _shape(x)
    b = int(ctx.attr("blocksize"))
    if h % b or w % b:
        raise ctx.unsupported(f"blocksize {b} for a {h}x{w} input")
    mode = ctx.attr("mode", "DCR") if ctx.opset >= 28 else "DCR"
    if mode not in ("DCR", "CRD"):
        raise ctx.unsupported(f"mode {mode!r}")
    y = fusejit.reshape(x, (n, c, h // b, b, w // b, b))
    y = fusejit.permute(y, (0, 3, 5, 1, 2, 4) if mode == "DCR" else (0, 1, 3, 5, 2, 4))
    return fusejit.reshape(y.contiguous(), (n, c * b * b, h // b, w // b))


@onnx_op("Trilu")
def _trilu(ctx: NodeContext, x, k=None):
    upper = bool(ctx.attr("upper", 1))
    if not ctx.has_input(1) or ctx.is_static(1):
        kk = _ints(ctx.static(1, "k"))[0] if ctx.has_input(1) else 0
        return fusejit.triu(x, kk) if upper else fusejit.tril(x, kk)
    # k known only at run time: a mask from the diagonal offsets
    n, m = _shape(x)[-2:]
    offset = _const(ctx, np.arange(m, dtype=np.int64)[None, :] - np.arange(n)[:, None])
    kk = fusejit.reshape(fusejit.cast(k, dt.int64), ())
    keep = offset >= kk if upper else offset <= kk
    return fusejit.where(keep, x, fusejit.zeros((), dtype=x.dtype, device=ctx.device))


@onnx_op("Einsum")
def _einsum(ctx: NodeContext, *xs):
    equation = ctx.attr("equation")
    if isinstance(equation, bytes):
        equation = equation.decode()
    y = fusejit.einsum(equation.replace(" ", ""), *xs)
    return y if y.dtype == xs[0].dtype else fusejit.cast(y, xs[0].dtype)  # (no int widening)


@onnx_op("Identity")
def _identity(ctx: NodeContext, x):
    return x


@onnx_op("Where")
def _where(ctx: NodeContext, cond, x, y):
    return fusejit.where(cond, x, y)


# ------------------------------------------------------------------------------------- creation


@onnx_op("Constant")
def _constant(ctx: NodeContext):
    a = ctx.attrs
    if "value" in a:
        return _const(ctx, np.asarray(a["value"]))
    if "value_float" in a:
        return _const(ctx, np.array(a["value_float"], dtype=np.float32))
    if "value_floats" in a:
        return _const(ctx, np.array(a["value_floats"], dtype=np.float32).reshape(-1))
    if "value_int" in a:
        return _const(ctx, np.array(a["value_int"], dtype=np.int64))
    if "value_ints" in a:
        return _const(ctx, np.array(a["value_ints"], dtype=np.int64).reshape(-1))
    for name in ("value_string", "value_strings", "sparse_value"):
        if name in a:
            raise ctx.unsupported(f"attribute {name} (fusejit has no string or sparse tensors)")
    raise ctx.unsupported("a Constant with no value attribute")


@onnx_op("ConstantOfShape")
def _constant_of_shape(ctx: NodeContext, shape=None):
    dims = tuple(_ints(ctx.static(0, "shape")))
    value = ctx.attr("value", None)
    if value is None:
        value = np.zeros(1, np.float32)
    value = np.asarray(value)
    d = _np_dtype(ctx, value.dtype)
    return fusejit.full(dims, value.reshape(-1)[0].item(), dtype=d, device=ctx.device)


@onnx_op("Range")
def _range(ctx: NodeContext, start, limit, delta):
    s = np.asarray(ctx.static(0, "start")).reshape(())
    e = np.asarray(ctx.static(1, "limit")).reshape(())
    d = np.asarray(ctx.static(2, "delta")).reshape(())
    if d == 0:
        raise ctx.unsupported("delta 0")
    # start + i * delta computed in float64 (or int64) and rounded once to start's type, as
    # onnx's reference evaluator; float16 in stash_type's type where given
    stash = ctx.attr("stash_type", None)
    if stash is not None and s.dtype == np.float16:
        work = _dtype(ctx, stash).np
        values = np.arange(s.astype(work).item(), float(e), float(d), dtype=work)
    else:
        values = np.arange(s.item(), e.item(), d.item())
    return _const(ctx, values.astype(s.dtype))


@onnx_op("EyeLike")
def _eye_like(ctx: NodeContext, x):
    if x.ndim != 2:
        raise ctx.unsupported(f"a rank-{x.ndim} input (EyeLike takes 2-D ones)")
    code = ctx.attr("dtype", None)
    d = x.dtype if code is None else _dtype(ctx, code)
    n, m = _shape(x)
    return _const(ctx, np.eye(n, m, int(ctx.attr("k", 0))), d)


@onnx_op("OneHot")
def _one_hot(ctx: NodeContext, indices, depth, values):
    n = int(np.asarray(ctx.static(1, "depth")).reshape(-1)[0])
    r = indices.ndim
    a = _axis(ctx, ctx.attr("axis", -1), r + 1)
    idx = fusejit.cast(indices, dt.int64) if indices.dtype != dt.int64 else indices
    idx = fusejit.where(idx < 0, idx + n, idx)
    pos = _const(ctx, np.arange(n, dtype=np.int64).reshape([n] + [1] * (r - a)))
    hot = fusejit.unsqueeze(idx, a) == pos
    return fusejit.where(hot, values[1], values[0])


# ---------------------------------------------------------------------------- casts and logic


@onnx_op("Cast")
def _cast(ctx: NodeContext, x):
    to = ctx.attr("to")
    d = _dtype(ctx, to)
    return x if x.dtype == d else fusejit.cast(x, d)


@onnx_op("CastLike")
def _cast_like(ctx: NodeContext, x, like):
    return x if x.dtype == like.dtype else fusejit.cast(x, like.dtype)


def _binary(fn):
    return lambda ctx, x, y: fn(x, y)


for _name, _fn in (
    ("Equal", fusejit.eq),
    ("Less", fusejit.lt),
    ("Greater", fusejit.gt),
    ("LessOrEqual", fusejit.le),
    ("GreaterOrEqual", fusejit.ge),
    ("And", fusejit.logical_and),
    ("Or", fusejit.logical_or),
    ("Xor", fusejit.logical_xor),
    ("BitwiseAnd", fusejit.bitwise_and),
    ("BitwiseOr", fusejit.bitwise_or),
    ("BitwiseXor", fusejit.bitwise_xor),
):
    onnx_op(_name)(_binary(_fn))


@onnx_op("Not")
def _not(ctx: NodeContext, x):
    return fusejit.logical_not(x)


@onnx_op("BitwiseNot")
def _bitwise_not(ctx: NodeContext, x):
    return fusejit.bitwise_not(x)


@onnx_op("BitShift")
def _bit_shift(ctx: NodeContext, x, y):
    direction = ctx.attr("direction")
    if direction not in ("LEFT", "RIGHT"):
        raise ctx.unsupported(f"direction {direction!r}")
    if not x.dtype.is_integer or x.dtype == dt.bool_:
        raise ctx.unsupported(f"BitShift of {x.dtype}")
    bits = 8 * np.dtype(x.dtype.np).itemsize
    # shifts by a power of two in two halves (each factor fits the dtype); a shift that is
    # negative or not under the width counts as one by the width: 0, or -1 for a negative x
    # shifted right (ONNX's rule); products wrap as shifted bits fall off
    yi = fusejit.cast(y, dt.int64)
    ye = fusejit.where(fusejit.logical_and(yi >= 0, yi < bits), yi, bits)
    h1 = fusejit.floor_divide(ye, 2)
    p1 = fusejit.cast(fusejit.pow(2, h1), x.dtype)
    p2 = fusejit.cast(fusejit.pow(2, ye - h1), x.dtype)
    if direction == "LEFT":
        return x * p1 * p2
    return fusejit.floor_divide(fusejit.floor_divide(x, p1), p2)


@onnx_op("IsNaN")
def _isnan(ctx: NodeContext, x):
    return fusejit.isnan(x)


@onnx_op("IsInf")
def _isinf(ctx: NodeContext, x):
    pos = bool(ctx.attr("detect_positive", 1))
    neg = bool(ctx.attr("detect_negative", 1))
    inf = fusejit.isinf(x)
    if pos and neg:
        return inf
    if pos:
        return fusejit.logical_and(inf, x > 0)
    if neg:
        return fusejit.logical_and(inf, x < 0)
    return fusejit.zeros(tuple(_shape(x)), dtype=dt.bool_, device=ctx.device)
