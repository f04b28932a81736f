"""The export rules: one entry per op-table op that exports, in ``RULES`` (the one place).

A rule is ``rule(b, node, args) -> list of ONNX names``: ``b`` the ``Builder``, ``node`` the
graph node, ``args`` its operands (ONNX names for tensors, ``Const`` for Python scalars); the
results have the dtypes of the node's outputs. Every rule computes in the dtype fusejit computes
in (float16 in float32, variances and products of float32 in float64, ...) and casts to the
node's result dtype at the end, so onnxruntime gives fusejit's results.
"""

from __future__ import annotations

import numpy as np

from fusejit.base import dtypes as dt
from fusejit.eager.dispatch import elementwise_dtypes
from fusejit.ir.graph import Const, Value
from fusejit.onnx.builder import Builder, ExportError
from fusejit.onnx.expr import ExprTranslator, onnx_compute_dtype
from fusejit.ops.registry import accumulation_dtype, get_op, wide_accumulation_dtype

_INT64_MIN = -(2**63)


def _out(node):
    return node.outputs[0].type


def _in(node, i: int = 0):
    return node.inputs[i].type


def _tensor(b: Builder, a, d: dt.DType) -> str:
    """An operand as an ONNX name of dtype ``d`` (a Python scalar becomes a constant)."""
    if isinstance(a, Const):
        return b.const(a.value, d)
    return b.cast(a, d)


def _finish(b: Builder, name: str, node) -> list:
    """``name`` reshaped to the node's (static) result shape where it differs, cast to its
    dtype."""
    t = _out(node)
    name = b.node("Reshape", [name, b.ints(t.shape)], b.dtypes[name])
    return [b.cast(name, t.dtype)]


# elementwise ------------------------------------------------------------------------------
def elementwise(b: Builder, node, args) -> list:
    op = get_op(node.op)
    operands = [v.type if isinstance(v, Value) else v.value for v in node.inputs]
    attrs = node.attr_dict
    compute, out = elementwise_dtypes(op, operands, attrs)
    c = onnx_compute_dtype(compute)
    env = {}
    for i, (name, a) in enumerate(zip("xyz", args)):
        if op.rule == "cast":
            env[name] = _tensor(b, a, _in(node).dtype)
        elif op.rule == "logical":
            env[name] = _tensor(b, a, dt.bool_)
        elif op.rule == "where" and i == 0:
            env[name] = b.cast(a, dt.bool_)
        else:
            env[name] = _tensor(b, a, c)
    r = ExprTranslator(b, c, env, attrs.get("dtype")).run(op.expr)
    return [b.cast(r, out)]


def gelu(b: Builder, node, args) -> list:
    """From opset 20, ONNX's own ``Gelu`` where the op computes in float32 (onnxruntime's CPU
    provider has it in float32 only), which runtimes fuse: onnxruntime ran it 1.8x (erf form)
    and 3.8x (tanh form, with a bias add) faster than the same function as the op's expression
    (bench/bench_onnx_import.py, 2048 x 2048, one thread). Otherwise the expression."""
    op = get_op(node.op)
    operands = [v.type if isinstance(v, Value) else v.value for v in node.inputs]
    compute, out = elementwise_dtypes(op, operands, node.attr_dict)
    if b.opset < 20 or onnx_compute_dtype(compute) is not dt.float32:
        return elementwise(b, node, args)
    x = _tensor(b, args[0], dt.float32)
    how = "tanh" if node.op == "gelu_tanh" else "none"
    return [b.cast(b.node("Gelu", [x], dt.float32, approximate=how), out)]


# reductions -------------------------------------------------------------------------------
def _axes(node, key: str = "dim") -> list:
    rank = len(_in(node).shape)
    dim = node.attr(key)
    if dim is None:
        return list(range(rank))
    dims = (dim,) if isinstance(dim, int) else tuple(dim)
    return sorted(d % rank for d in dims) if rank else []


def _reduce(b: Builder, op_type: str, x: str, axes: list) -> str:
    """``op_type`` over ``axes``, dims kept (the rule reshapes at the end)."""
    d = b.dtypes[x]
    if not axes:
        return x
    if op_type == "ReduceSum" or b.opset >= 18:
        return b.node(op_type, [x, b.ints(axes)], d, keepdims=1)
    return b.node(op_type, [x], d, axes=axes, keepdims=1)


def _simple_reduction(op_type: str, acc):
    def rule(b: Builder, node, args) -> list:
        out = _out(node).dtype
        a = onnx_compute_dtype(acc(out))
        x = b.cast(args[0], dt.int64 if b.dtypes[args[0]] is dt.bool_ else a)
        x = b.cast(x, a)
        return _finish(b, _reduce(b, op_type, x, _axes(node)), node)

    return rule


def _extreme(op_type: str):
    def rule(b: Builder, node, args) -> list:
        d = _in(node).dtype
        a = dt.int32 if d is dt.bool_ else onnx_compute_dtype(d)
        x = b.cast(args[0], a)
        axes = _axes(node)
        r = _reduce(b, op_type, x, axes)
        if a.is_floating_point and axes:  # a NaN in the row gives NaN (as fusejit's)
            nan = b.cast(b.node("IsNaN", [x], dt.bool_), a)
            has = b.node("Greater", [_reduce(b, "ReduceMax", nan, axes), b.const(0, a)],
                         dt.bool_)  # fmt: skip
            r = b.node("Where", [has, b.const(np.nan, a), r], a)
        return _finish(b, r, node)

    return rule


def _all_any(op_type: str):
    def rule(b: Builder, node, args) -> list:
        x = b.cast(b.cast(args[0], dt.bool_), dt.int32)
        return _finish(b, b.cast(_reduce(b, op_type, x, _axes(node)), dt.bool_), node)

    return rule


def var(b: Builder, node, args) -> list:
    out = _out(node).dtype
    a = onnx_compute_dtype(wide_accumulation_dtype(out))
    x = b.cast(args[0], a)
    axes = _axes(node)
    shape = _in(node).shape
    n = int(np.prod([shape[i] for i in axes])) if axes else 1
    m = _reduce(b, "ReduceMean", x, axes)
    d = b.node("Sub", [x, m], a)
    s = _reduce(b, "ReduceSum", b.node("Mul", [d, d], a), axes)
    r = b.node("Div", [s, b.const(max(n - node.attr("correction", 1), 0), a)], a)
    if node.attr("sqrt", False):
        r = b.node("Sqrt", [r], a)
    return _finish(b, r, node)


def _arg(op_type: str):
    def rule(b: Builder, node, args) -> list:
        d = _in(node).dtype
        x = b.cast(args[0], dt.int32 if d is dt.bool_ else onnx_compute_dtype(d))
        dim = node.attr("dim")
        if dim is None:
            x = b.node("Reshape", [x, b.ints([-1])], b.dtypes[x])
            axis = 0
        else:
            axis = dim % max(len(_in(node).shape), 1)
        if not _in(node).shape:
            return [b.const(0, dt.int64)]
        r = b.node(op_type, [x], dt.int64, axis=axis, keepdims=1, select_last_index=0)
        return _finish(b, r, node)

    return rule


def logsumexp(b: Builder, node, args) -> list:
    a = onnx_compute_dtype(accumulation_dtype(_out(node).dtype))
    x = b.cast(args[0], a)
    axes = _axes(node)
    m = _reduce(b, "ReduceMax", x, axes)
    m = b.node("Where", [b.node("IsInf", [m], dt.bool_), b.const(0, a), m], a)
    s = _reduce(b, "ReduceSum", b.node("Exp", [b.node("Sub", [x, m], a)], a), axes)
    return _finish(b, b.node("Add", [b.node("Log", [s], a), m], a), node)


# composites -------------------------------------------------------------------------------
def softmax(b: Builder, node, args) -> list:
    a = onnx_compute_dtype(accumulation_dtype(_out(node).dtype))
    x = b.cast(args[0], a)
    rank = len(_in(node).shape)
    if rank == 0:
        x = b.node("Reshape", [x, b.ints([1])], a)
    axis = node.attr("dim") % max(rank, 1)
    r = b.node("LogSoftmax" if node.attr("log", False) else "Softmax", [x], a, axis=axis)
    return _finish(b, r, node)


def layer_norm(b: Builder, node, args) -> list:
    a = onnx_compute_dtype(accumulation_dtype(_out(node).dtype))
    x = b.cast(args[0], a)
    rank = len(_in(node).shape)
    axes = list(range(rank - node.attr("normalized_ndim"), rank))
    mu = _reduce(b, "ReduceMean", x, axes)
    xc = b.node("Sub", [x, mu], a)
    v = _reduce(b, "ReduceMean", b.node("Mul", [xc, xc], a), axes)
    den = b.node("Sqrt", [b.node("Add", [v, b.const(node.attr("eps", 1e-5), a)], a)], a)
    y = b.node("Div", [xc, den], a)
    rest = list(args[1:])
    if node.attr("has_weight", False):
        y = b.node("Mul", [y, b.cast(rest.pop(0), a)], a)
    if node.attr("has_bias", False):
        y = b.node("Add", [y, b.cast(rest.pop(0), a)], a)
    return _finish(b, y, node)


# matmul -----------------------------------------------------------------------------------
def matmul(b: Builder, node, args) -> list:
    a = onnx_compute_dtype(accumulation_dtype(_out(node).dtype))
    x, y = (b.cast(v, a) for v in args)
    return _finish(b, b.node("MatMul", [x, y], a), node)


def einsum(b: Builder, node, args) -> list:
    a = onnx_compute_dtype(accumulation_dtype(_out(node).dtype))
    ins = [b.cast(v, a) for v in args]
    return _finish(b, b.node("Einsum", ins, a, equation=node.attr("equation")), node)


# movement ---------------------------------------------------------------------------------
def reshape(b: Builder, node, args) -> list:
    return _finish(b, args[0], node)


def identity(b: Builder, node, args) -> list:
    return [b.node("Identity", [args[0]], b.dtypes[args[0]])]


def rand_like(b: Builder, node, args) -> list:
    # (the runtime's own generator: the values differ from fusejit's, the distribution not)
    d = _out(node).dtype
    return [b.node("RandomUniformLike", [args[0]], d, dtype=b.onnx_type(d), low=0.0, high=1.0)]


def permute(b: Builder, node, args) -> list:
    rank = len(_in(node).shape)
    perm = [d % rank for d in node.attr("dims")]
    return [b.node("Transpose", [args[0]], b.dtypes[args[0]], perm=perm)]


def expand(b: Builder, node, args) -> list:
    x = args[0]
    return [b.node("Expand", [x, b.ints(_out(node).shape)], b.dtypes[x])]


def cat(b: Builder, node, args) -> list:
    out = _out(node)
    ins = [_tensor(b, a, out.dtype) for a in args]
    axis = node.attr("dim") % len(out.shape)
    return [b.node("Concat", ins, out.dtype, axis=axis)]


def stack(b: Builder, node, args) -> list:
    out = _out(node)
    axis = node.attr("dim") % len(out.shape)
    ins = [b.node("Unsqueeze", [_tensor(b, a, out.dtype), b.ints([axis])], out.dtype)
           for a in args]  # fmt: skip
    return [b.node("Concat", ins, out.dtype, axis=axis)]


def _slice(b: Builder, x: str, starts, ends, axes, steps) -> str:
    if not axes:
        return x
    ins = [x, b.ints(starts), b.ints(ends), b.ints(axes), b.ints(steps)]
    return b.node("Slice", ins, b.dtypes[x])


def index_entries(node, rank: int) -> list:
    """A getitem node's index entries with its ellipsis (if any) written out as full slices of
    the dims it stands for."""
    entries = list(node.attr("index"))
    used = sum(1 for e in entries if e[0] in ("slice", "int"))
    if any(e[0] == "ellipsis" for e in entries):
        i = next(k for k, e in enumerate(entries) if e[0] == "ellipsis")
        entries[i : i + 1] = [("slice", None, None, None)] * (rank - used)
    return entries


def getitem(b: Builder, node, args) -> list:
    shape = _in(node).shape
    entries = index_entries(node, len(shape))
    starts, ends, axes, steps = [], [], [], []
    dim = 0
    for e in entries:
        if e[0] == "none":
            continue
        if e[0] == "slice":
            start, stop, step = slice(e[1], e[2], e[3]).indices(shape[dim])
            if (start, stop, step) != (0, shape[dim], 1):
                if step < 0 and stop < 0:
                    stop = _INT64_MIN
                starts.append(start), ends.append(stop), axes.append(dim), steps.append(step)
        elif e[0] == "int":
            i = e[1] % shape[dim]
            starts.append(i), ends.append(i + 1), axes.append(dim), steps.append(1)
        else:
            raise ExportError(f"getitem: index entry {e!r} has no export rule")
        dim += 1
    return _finish(b, _slice(b, args[0], starts, ends, axes, steps), node)


def flip(b: Builder, node, args) -> list:
    rank = len(_in(node).shape)
    axes = sorted({d % rank for d in node.attr("dims")})
    n = len(axes)
    return [_slice(b, args[0], [-1] * n, [_INT64_MIN] * n, axes, [-1] * n)]


def tile(b: Builder, node, args) -> list:
    shape, out = _in(node).shape, _out(node).shape
    padded = (1,) * (len(out) - len(shape)) + tuple(shape)
    x = b.node("Reshape", [args[0], b.ints(padded)], b.dtypes[args[0]])
    reps = [o // p if p else 1 for o, p in zip(out, padded)]
    return [b.node("Tile", [x, b.ints(reps)], b.dtypes[x])]


def _trilu(upper: int):
    def rule(b: Builder, node, args) -> list:
        d = b.dtypes[args[0]]
        x = b.cast(args[0], dt.int32) if d.kind in "iu" and d.itemsize < 4 else args[0]
        k = b.ints([node.attr("diagonal", 0)])
        k = b.node("Reshape", [k, b.ints([])], dt.int64)  # (no narrow-int Trilu in onnxruntime)
        return [b.cast(b.node("Trilu", [x, k], b.dtypes[x], upper=upper), d)]

    return rule


def index_select(b: Builder, node, args) -> list:
    axis = node.attr("dim") % max(len(_in(node).shape), 1)
    return [b.node("Gather", [args[0], args[1]], b.dtypes[args[0]], axis=axis)]


def gather(b: Builder, node, args) -> list:
    axis = node.attr("dim") % max(len(_in(node).shape), 1)
    return [b.node("GatherElements", [args[0], args[1]], b.dtypes[args[0]], axis=axis)]


def cumsum(b: Builder, node, args) -> list:
    out = _out(node).dtype
    a = onnx_compute_dtype(accumulation_dtype(out))
    x = b.cast(b.cast(args[0], dt.int64) if b.dtypes[args[0]] is dt.bool_ else args[0], a)
    rank = len(_in(node).shape)
    if rank == 0:
        return [b.cast(x, out)]
    axis = b.const(node.attr("dim") % rank, dt.int64)
    return [b.cast(b.node("CumSum", [x, axis], a), out)]


def _extreme_dim(value_op: str, index_op: str):
    def rule(b: Builder, node, args) -> list:
        d = _in(node).dtype
        x = b.cast(args[0], dt.int32 if d is dt.bool_ else onnx_compute_dtype(d))
        rank = len(_in(node).shape)
        if rank == 0:
            return [args[0], b.const(0, dt.int64)]
        axis = node.attr("dim") % rank
        v = _reduce(b, value_op, x, [axis])
        i = b.node(index_op, [x], dt.int64, axis=axis, keepdims=1, select_last_index=0)
        vt, it = node.outputs[0].type, node.outputs[1].type
        v = b.cast(b.node("Reshape", [v, b.ints(vt.shape)], b.dtypes[v]), vt.dtype)
        return [v, b.node("Reshape", [i, b.ints(it.shape)], dt.int64)]

    return rule


def roll(b: Builder, node, args) -> list:
    shape = _in(node).shape
    shifts, dims = tuple(node.attr("shifts")), tuple(node.attr("dims") or ())
    x = args[0]
    if not dims:
        x = b.node("Reshape", [x, b.ints([-1])], b.dtypes[x])
        shape, dims = (int(np.prod(shape)),), (0,)
    for shift, dim in zip(shifts, dims):
        dim %= len(shape)
        n = shape[dim]
        s = shift % n if n else 0
        if s:
            tail = _slice(b, x, [n - s], [n], [dim], [1])
            head = _slice(b, x, [0], [n - s], [dim], [1])
            x = b.node("Concat", [tail, head], b.dtypes[x], axis=dim)
    return _finish(b, x, node)


def split(b: Builder, node, args) -> list:
    rank = len(_in(node).shape)
    dim = node.attr("dim") % rank
    outs, start = [], 0
    for v in node.outputs:
        n = v.type.shape[dim]
        outs.append(b.node("Identity", [_slice(b, args[0], [start], [start + n], [dim], [1])],
                           b.dtypes[args[0]]))  # fmt: skip
        start += n
    return outs


def one_hot(b: Builder, node, args) -> list:
    out = _out(node)
    classes = b.const(np.arange(out.shape[-1]), dt.int64)
    x = b.node("Unsqueeze", [b.cast(args[0], dt.int64), b.ints([-1])], dt.int64)
    return [b.cast(b.node("Equal", [x, classes], dt.bool_), out.dtype)]


def _diagonal_of(b: Builder, x: str, shape, offset: int, d1: int, d2: int) -> str:
    """The diagonal ``offset`` of dims ``d1``, ``d2`` of ``x`` as the last dim: the two dims
    moved last and flattened, then a Gather of the diagonal's flat positions."""
    rank = len(shape)
    rest = [i for i in range(rank) if i not in (d1, d2)]
    x = b.node("Transpose", [x], b.dtypes[x], perm=rest + [d1, d2])
    n1, n2 = shape[d1], shape[d2]
    x = b.node("Reshape", [x, b.ints([shape[i] for i in rest] + [n1 * n2])], b.dtypes[x])
    r0, c0 = max(-offset, 0), max(offset, 0)
    length = max(min(n1 - r0, n2 - c0), 0)
    flat = [(k + r0) * n2 + k + c0 for k in range(length)]
    return b.node("Gather", [x, b.ints(flat)], b.dtypes[x], axis=len(rest))


def diagonal(b: Builder, node, args) -> list:
    rank = len(_in(node).shape)
    d1, d2 = (d % rank for d in node.attr("dims"))
    r = _diagonal_of(b, args[0], _in(node).shape, node.attr("offset", 0), d1, d2)
    return _finish(b, r, node)


def diag(b: Builder, node, args) -> list:
    shape, k = _in(node).shape, node.attr("diagonal", 0)
    if len(shape) == 2:
        return _finish(b, _diagonal_of(b, args[0], shape, k, 0, 1), node)
    m = _out(node).shape[0]
    i, j = np.indices((m, m))
    src = np.clip(i if k >= 0 else j, 0, max(shape[0] - 1, 0))  # the element each place reads
    out = _out(node).dtype
    w = dt.int32 if out is dt.bool_ else out  # (onnxruntime has no bool Where)
    x = b.cast(args[0], w)
    vals = b.node("Gather", [x, b.const(src, dt.int64)], w, axis=0)
    r = b.node("Where", [b.const(j - i == k, dt.bool_), vals, b.const(0, w)], w)
    return [b.cast(r, out)]


def sort(b: Builder, node, args) -> list:
    """TopK of the whole dim: ties keep their order (the lower index first), as a stable sort."""
    shape = _in(node).shape
    d = _in(node).dtype
    if not shape:
        return [args[0], b.const(0, dt.int64)]
    x = b.cast(args[0], dt.int32 if d is dt.bool_ else onnx_compute_dtype(d))
    axis = node.attr("dim") % len(shape)
    k = b.ints([shape[axis]])
    desc = int(bool(node.attr("descending", False)))
    v, i = b.node("TopK", [x, k], b.dtypes[x], n_out=2, axis=axis, largest=desc, sorted=1)
    b.dtypes[i] = dt.int64
    return [b.cast(v, d), i]


# scans: a lower-triangular mask over a new axis, then a reduction (exact for max / min) -----
def _safe(b: Builder, x: str) -> str:
    """``x`` in a dtype every onnxruntime kernel here has (bool and narrow ints as int32,
    float16 as float32): the values are kept exactly."""
    d = b.dtypes[x]
    return b.cast(x, dt.int32 if d is dt.bool_ else onnx_compute_dtype(d))


def _where(b: Builder, cond: str, x: str, y: str) -> str:
    """Where of any dtype (onnxruntime has no bool, float16 or narrow-int Where)."""
    d = b.dtypes[x]
    r = b.node("Where", [cond, _safe(b, x), b.cast(_safe(b, y), b.dtypes[_safe(b, x)])],
               b.dtypes[_safe(b, x)])  # fmt: skip
    return b.cast(r, d)


def _lowest(d: dt.DType, largest: bool = False):
    if d.is_floating_point:
        return np.inf if largest else -np.inf
    info = np.iinfo(d.np)
    return info.max if largest else info.min


# scans longer than this take log2(n) passes (Hillis and Steele's) instead of an n * n mask
MASKED_SCAN_MAX = 128
_COMBINE = {"ReduceMax": "Max", "ReduceMin": "Min", "ReduceProd": "Mul", "ReduceSum": "Add"}


def _running(b: Builder, x: str, shape, axis: int, op_type: str, fill) -> str:
    """The running ``op_type`` reduction of ``x`` along ``axis``: for place j, the reduction
    of entries i <= j, from a [..., n_j, n_i, ...] view masked by i <= j (``fill`` elsewhere);
    over ``MASKED_SCAN_MAX`` entries, from log2(n) passes."""
    d = b.dtypes[x]
    n, rank = shape[axis], len(shape)
    if n > MASKED_SCAN_MAX:
        return _steps(b, x, n, axis, lambda u, v: b.node(_COMBINE[op_type], [u, v], d))
    xi = b.node("Unsqueeze", [x, b.ints([axis])], d)  # [..., 1, n_i, ...]
    mask = np.tril(np.ones((n, n), bool)).reshape((1,) * axis + (n, n) + (1,) * (rank - axis - 1))
    w = b.node("Where", [b.const(mask, dt.bool_), xi, b.const(fill, d)], d)
    r = _reduce(b, op_type, w, [axis + 1])
    return b.node("Reshape", [r, b.ints(shape)], d)


def _steps(b: Builder, x: str, n: int, axis: int, combine) -> str:
    """The running ``combine`` (associative) of ``x`` along ``axis``: pass k combines each
    entry with the one 2**k before it."""
    s = 1
    while s < n:
        head = _slice(b, x, [0], [s], [axis], [1])
        tail = combine(_slice(b, x, [s], [n], [axis], [1]), _slice(b, x, [0], [n - s], [axis], [1]))
        x = b.node("Concat", [head, tail], b.dtypes[x], axis=axis)
        s *= 2
    return x


def _positions(b: Builder, shape, axis: int) -> str:
    """0, 1, ... along ``axis`` (int64), shaped to broadcast against ``shape``."""
    s = [1] * len(shape)
    s[axis] = shape[axis]
    return b.const(np.arange(shape[axis]).reshape(s), dt.int64)


def cumprod(b: Builder, node, args) -> list:
    out = _out(node).dtype
    a = onnx_compute_dtype(wide_accumulation_dtype(out))
    x = b.cast(b.cast(args[0], dt.int64) if b.dtypes[args[0]] is dt.bool_ else args[0], a)
    shape = _in(node).shape
    if not shape:
        return [b.cast(x, out)]
    return [b.cast(_running(b, x, shape, node.attr("dim") % len(shape), "ReduceProd", 1), out)]


def _cumext(largest: bool):
    def rule(b: Builder, node, args) -> list:
        """The running extreme and, as fusejit's, the index of the last entry equal to it
        (of the last NaN once one was met); the values are the entries at those indices."""
        d, shape = _in(node).dtype, _in(node).shape
        if not shape:
            return [args[0], b.const(0, dt.int64)]
        axis = node.attr("dim") % len(shape)
        x = _safe(b, args[0])
        c = b.dtypes[x]
        op_type = "ReduceMax" if largest else "ReduceMin"
        v = _running(b, x, shape, axis, op_type, _lowest(c, not largest))
        hit = b.node("Equal", [x, v], dt.bool_)
        if c.is_floating_point:
            nan = b.node("IsNaN", [x], dt.bool_)
            seen = _running(b, b.cast(nan, dt.int32), shape, axis, "ReduceMax", 0)
            seen = b.node("Greater", [seen, b.const(0, dt.int32)], dt.bool_)
            hit = b.node("Or", [b.node("And", [hit, b.node("Not", [seen], dt.bool_)], dt.bool_),
                                nan], dt.bool_)  # fmt: skip
        pos = b.node("Where", [hit, _positions(b, shape, axis), b.const(-1, dt.int64)], dt.int64)
        idx = _running(b, pos, shape, axis, "ReduceMax", -1)
        vals = b.node("GatherElements", [x, idx], c, axis=axis)
        return [b.cast(vals, d), idx]

    return rule


def logcumsumexp(b: Builder, node, args) -> list:
    """log(sum exp(x_i - m_j)) + m_j over i <= j, m_j the running maximum (0 where infinite);
    over ``MASKED_SCAN_MAX`` entries, running logaddexps (numpy's: max + log1p(exp(-|a - b|)))."""
    out, shape = _out(node).dtype, _in(node).shape
    a = onnx_compute_dtype(accumulation_dtype(out))
    x = b.cast(args[0], a)
    if not shape:
        return [b.cast(x, out)]
    axis = node.attr("dim") % len(shape)
    n = shape[axis]
    if n > MASKED_SCAN_MAX:
        return [b.cast(_steps(b, x, n, axis, lambda u, v: _logaddexp(b, u, v, a)), out)]
    m = _running(b, x, shape, axis, "ReduceMax", -np.inf)
    m = b.node("Where", [b.node("IsInf", [m], dt.bool_), b.const(0, a), m], a)
    mj = b.node("Unsqueeze", [m, b.ints([axis + 1])], a)  # [..., n_j, 1, ...]
    xi = b.node("Unsqueeze", [x, b.ints([axis])], a)  # [..., 1, n_i, ...]
    e = b.node("Exp", [b.node("Sub", [xi, mj], a)], a)
    rank = len(shape)
    mask = np.tril(np.ones((n, n), bool)).reshape((1,) * axis + (n, n) + (1,) * (rank - axis - 1))
    e = b.node("Where", [b.const(mask, dt.bool_), e, b.const(0, a)], a)
    s = b.node("Reshape", [_reduce(b, "ReduceSum", e, [axis + 1]), b.ints(shape)], a)
    return [b.cast(b.node("Add", [b.node("Log", [s], a), m], a), out)]


def _logaddexp(b: Builder, u: str, v: str, a: dt.DType) -> str:
    """log(exp(u) + exp(v)): max + log1p(exp(-|u - v|)) (max + log 2 where u == v, so that two
    infinities of one sign give it; NaN where either is)."""
    m = b.node("Max", [u, v], a)
    same = b.node("Equal", [u, v], dt.bool_)
    gap = b.node("Neg", [b.node("Abs", [b.node("Sub", [u, v], a)], a)], a)
    gap = b.node("Where", [same, b.const(0, a), gap], a)
    t = ExprTranslator(b, a, {}, None).call("log1p", [b.node("Exp", [gap], a)])
    r = b.node("Add", [m, t], a)
    nan = b.node("Or", [b.node("IsNaN", [u], dt.bool_), b.node("IsNaN", [v], dt.bool_)], dt.bool_)
    return b.node("Where", [nan, b.node("Add", [u, v], a), r], a)


# order statistics: a stable sort (NaN last) of two TopK -------------------------------------
def _argsort(b: Builder, x: str, axis: int, n: int) -> str:
    """The indices of a stable ascending sort of ``x`` along ``axis``, NaN last (fusejit's
    order): TopK keeps equal entries in index order, so sorting by value (NaN as inf) and then
    by is-NaN is a stable sort by (is-NaN, value)."""
    d, k = b.dtypes[x], b.ints([n])
    key = x
    if d.is_floating_point:
        nan = b.node("IsNaN", [x], dt.bool_)
        key = b.node("Where", [nan, b.const(np.inf, d), x], d)
    _, p = b.node("TopK", [key, k], d, n_out=2, axis=axis, largest=0, sorted=1)
    b.dtypes[p] = dt.int64
    if d.is_floating_point:
        late = b.node("GatherElements", [b.cast(nan, dt.int32), p], dt.int32, axis=axis)
        _, q = b.node("TopK", [late, k], dt.int32, n_out=2, axis=axis, largest=0, sorted=1)
        b.dtypes[q] = dt.int64
        p = b.node("GatherElements", [p, q], dt.int64, axis=axis)
    return p


def _picked(b: Builder, node, x: str, pos: str) -> list:
    """(values, indices) of a reduction that picks the entry at ``pos`` (dim kept)."""
    axis = node.attr("dim") % len(_in(node).shape)
    vals = b.node("GatherElements", [x, pos], b.dtypes[x], axis=axis)
    vt, it = node.outputs[0].type, node.outputs[1].type
    vals = b.cast(b.node("Reshape", [vals, b.ints(vt.shape)], b.dtypes[vals]), vt.dtype)
    return [vals, b.node("Reshape", [pos, b.ints(it.shape)], dt.int64)]


def _kth_position(b: Builder, p: str, axis: int, k) -> str:
    return _slice(b, p, [k], [k + 1], [axis], [1])


def median(b: Builder, node, args) -> list:
    """The lower of the two middle values (of the non-NaN ones for nanmedian); a row holding
    NaN: NaN and the index of its first NaN."""
    shape = _in(node).shape
    if not shape:
        return [args[0], b.const(0, dt.int64)]
    axis, n = node.attr("dim") % len(shape), shape[node.attr("dim") % len(shape)]
    x = _safe(b, args[0])
    p = _argsort(b, x, axis, n)
    if not b.dtypes[x].is_floating_point:
        return _picked(b, node, x, _kth_position(b, p, axis, (n - 1) // 2))
    nan = b.node("IsNaN", [x], dt.bool_)
    n_nan = _reduce(b, "ReduceSum", b.cast(nan, dt.int64), [axis])
    if node.attr("ignore_nan", False):
        k = b.node("Sub", [b.const(n - 1, dt.int64), n_nan], dt.int64)
        k = b.node("Div", [b.node("Max", [k, b.const(0, dt.int64)], dt.int64),
                           b.const(2, dt.int64)], dt.int64)  # fmt: skip
        return _picked(b, node, x, b.node("GatherElements", [p, k], dt.int64, axis=axis))
    pos = _kth_position(b, p, axis, (n - 1) // 2)
    first = b.node("ArgMax", [b.cast(nan, dt.int32)], dt.int64, axis=axis, keepdims=1,
                   select_last_index=0)  # fmt: skip
    has = b.node("Greater", [n_nan, b.const(0, dt.int64)], dt.bool_)
    return _picked(b, node, x, b.node("Where", [has, first, pos], dt.int64))


def kthvalue(b: Builder, node, args) -> list:
    shape = _in(node).shape
    if not shape:
        return [args[0], b.const(0, dt.int64)]
    axis = node.attr("dim") % len(shape)
    x = _safe(b, args[0])
    p = _argsort(b, x, axis, shape[axis])
    return _picked(b, node, x, _kth_position(b, p, axis, node.attr("k") - 1))


def mode(b: Builder, node, args) -> list:
    """Each entry's count of equal entries (NaN equal to NaN) from an [..., n, n, ...]
    comparison; the smallest of the most frequent values (NaN the largest), and the index of
    its last occurrence."""
    shape = _in(node).shape
    if not shape:
        return [args[0], b.const(0, dt.int64)]
    axis = node.attr("dim") % len(shape)
    x = _safe(b, args[0])
    c = b.dtypes[x]
    fl = c.is_floating_point

    def same(u: str, v: str) -> str:
        eq = b.node("Equal", [u, v], dt.bool_)
        if fl:
            both = b.node("And", [b.node("IsNaN", [u], dt.bool_), b.node("IsNaN", [v], dt.bool_)],
                          dt.bool_)  # fmt: skip
            eq = b.node("Or", [eq, both], dt.bool_)
        return eq

    xa = b.node("Unsqueeze", [x, b.ints([axis + 1])], c)
    xb = b.node("Unsqueeze", [x, b.ints([axis])], c)
    count = _reduce(b, "ReduceSum", b.cast(same(xa, xb), dt.int64), [axis + 1])
    count = b.node("Reshape", [count, b.ints(shape)], dt.int64)
    best = b.node("Equal", [count, _reduce(b, "ReduceMax", count, [axis])], dt.bool_)
    if fl:
        nan = b.node("IsNaN", [x], dt.bool_)
        real = b.node("And", [best, b.node("Not", [nan], dt.bool_)], dt.bool_)
        v = _reduce(b, "ReduceMin", b.node("Where", [real, x, b.const(np.inf, c)], c), [axis])
        any_real = _reduce(b, "ReduceMax", b.cast(real, dt.int32), [axis])
        any_real = b.node("Greater", [any_real, b.const(0, dt.int32)], dt.bool_)
        v = b.node("Where", [any_real, v, b.const(np.nan, c)], c)
    else:
        v = _reduce(b, "ReduceMin", b.node("Where", [best, x, b.const(_lowest(c, True), c)], c),
                    [axis])  # fmt: skip
    pos = b.node("Where", [same(x, v), _positions(b, shape, axis), b.const(-1, dt.int64)],
                 dt.int64)  # fmt: skip
    return _picked(b, node, x, _reduce(b, "ReduceMax", pos, [axis]))


def quantile(b: Builder, node, args) -> list:
    """fusejit's quantile step by step (float32 and float64): the sorted row (NaN last), the
    rank in the input's dtype, the entries below and above, torch's lerp."""
    c = _in(node).dtype
    shape = _in(node).shape
    dim, interp = node.attr("dim"), node.attr("interpolation", "linear")

    def op(op_type: str, *ins) -> str:
        return b.node(op_type, list(ins), c)

    x = b.cast(args[0], c)
    if dim is None:
        x = b.node("Reshape", [x, b.ints([-1])], c)
        n, batch = int(np.prod(shape)), ()
    else:
        axis = dim % len(shape)
        perm = [i for i in range(len(shape)) if i != axis] + [axis]
        x = b.node("Transpose", [x], c, perm=perm)
        n, batch = shape[axis], tuple(shape[i] for i in perm[:-1])
    last = len(batch)
    s = b.node("GatherElements", [x, _argsort(b, x, last, n)], c, axis=last)
    if len(args) > 1:
        q, qshape = b.cast(args[1], c), node.inputs[1].type.shape
    else:
        q, qshape = b.const(node.attr("q"), c), ()
    qb = b.node("Reshape", [q, b.ints(tuple(qshape) + (1,) * (last + 1))], c)
    if node.attr("ignore_nan", False):
        real = b.cast(b.node("Not", [b.node("IsNaN", [s], dt.bool_)], dt.bool_), c)
        count = _reduce(b, "ReduceSum", real, [last])
        ranks = op("Mul", qb, op("Sub", count, b.const(1, c)))
        ranks = b.node("Max", [ranks, b.const(0, c)], c)
    else:
        ranks = op("Mul", qb, b.const(n - 1, c))
        tail = b.node("IsNaN", [_slice(b, s, [n - 1], [n], [last], [1])], dt.bool_)
        ranks = b.node("Where", [tail, b.const(n - 1, c), ranks], c)
    if interp == "lower":
        ranks = b.node("Floor", [ranks], c)
    elif interp == "higher":
        ranks = b.node("Ceil", [ranks], c)
    elif interp == "nearest":
        ranks = b.node("Round", [ranks], c)  # (half to even, as torch.round)
    full = tuple(qshape) + batch + (n,)
    sb = b.node("Expand", [s, b.ints(full)], c)
    rank_shape = tuple(qshape) + batch + (1,)
    ranks = b.node("Expand", [ranks, b.ints(rank_shape)], c)
    below = b.cast(ranks, dt.int64)
    lo = b.node("GatherElements", [sb, below], c, axis=len(full) - 1)
    res = lo
    if interp in ("linear", "midpoint"):
        hi = b.node("GatherElements", [sb, b.cast(b.node("Ceil", [ranks], c), dt.int64)], c,
                    axis=len(full) - 1)  # fmt: skip
        if interp == "linear":
            w = op("Sub", ranks, b.cast(below, c))
        else:
            w = b.node("Expand", [b.const(0.5, c), b.ints(rank_shape)], c)
        diff = op("Sub", hi, lo)
        up = op("Add", lo, op("Mul", w, diff))
        down = op("Sub", hi, op("Mul", diff, op("Sub", b.const(1, c), w)))
        res = b.node("Where", [b.node("Less", [w, b.const(0.5, c)], dt.bool_), up, down], c)
    return _finish(b, res, node)


# indexing ---------------------------------------------------------------------------------
_SCATTER_REDUCTION = {"set": "none", "sum": "add", "mean": "add", "prod": "mul",
                      "amax": "max", "amin": "min"}  # fmt: skip


def scatter(b: Builder, node, args) -> list:
    """ScatterElements (its reduction for sum / prod / amax / amin; mean as a sum and a count
    of the entries written; without ``include_self`` the places written are first set to the
    reduction's identity)."""
    out = _out(node)
    shape, axis = out.shape, node.attr("dim") % max(len(out.shape), 1)
    how, keep = node.attr("reduce"), node.attr("include_self", True)
    if how in ("amax", "amin") and b.opset < 18:
        raise ExportError(f"scatter with reduce={how!r} needs opset 18 or later")
    ishape = node.inputs[1].type.shape
    x = _safe(b, args[0])
    c = b.dtypes[x]
    index = args[1]
    if node.attr("value") is not None:
        src = b.node("Expand", [b.const(node.attr("value"), c), b.ints(ishape)], c)
    else:
        src = b.cast(_safe(b, args[2]), c)
        sshape = node.inputs[2].type.shape
        if tuple(sshape) != tuple(ishape):
            src = _slice(b, src, [0] * len(ishape), list(ishape), list(range(len(ishape))),
                         [1] * len(ishape))  # fmt: skip
    if how != "set" and not keep:
        ident = {"sum": 0, "mean": 0, "prod": 1}.get(how)
        if ident is None:
            ident = _lowest(c, how == "amin")
        fill = b.node("Expand", [b.const(ident, c), b.ints(ishape)], c)
        x = b.node("ScatterElements", [x, index, fill], c, axis=axis, reduction="none")
    r = b.node("ScatterElements", [x, index, src], c, axis=axis,
               reduction=_SCATTER_REDUCTION[how])  # fmt: skip
    if how == "mean":
        ones = b.node("Expand", [b.const(1, dt.int64), b.ints(ishape)], dt.int64)
        zeros = b.node("Expand", [b.const(0, dt.int64), b.ints(shape)], dt.int64)
        count = b.node("ScatterElements", [zeros, index, ones], dt.int64, axis=axis,
                       reduction="add")  # fmt: skip
        if keep:
            count = b.node("Add", [count, b.const(1, dt.int64)], dt.int64)
        else:
            count = b.node("Max", [count, b.const(1, dt.int64)], dt.int64)
        count = b.cast(count, c)
        if c.is_floating_point:
            r = b.node("Div", [r, count], c)
        else:  # (floored, as PyTorch's)
            m = b.node("Mod", [r, count], c, fmod=0)
            r = b.node("Div", [b.node("Sub", [r, m], c), count], c)
    return [b.cast(r, out.dtype)]


def index_put(b: Builder, node, args) -> list:
    """ScatterND of the broadcast indices (negative ones wrapped) stacked on a last dim."""
    out = _out(node)
    x = _safe(b, args[0])
    c = b.dtypes[x]
    idx_types = [v.type for v in node.inputs[2:]]
    k = len(idx_types)
    common = tuple(np.broadcast_shapes(*[t.shape for t in idx_types]))
    cols = []
    for a, n in zip(args[2:], out.shape[:k]):
        i = b.cast(a, dt.int64)
        neg = b.node("Less", [i, b.const(0, dt.int64)], dt.bool_)
        i = b.node("Where", [neg, b.node("Add", [i, b.const(n, dt.int64)], dt.int64), i],
                   dt.int64)  # fmt: skip
        i = b.node("Expand", [i, b.ints(common)], dt.int64)
        cols.append(b.node("Unsqueeze", [i, b.ints([-1])], dt.int64))
    idx = b.node("Concat", cols, dt.int64, axis=-1)
    vals = b.node("Expand", [b.cast(_safe(b, args[1]), c), b.ints(common + tuple(out.shape[k:]))],
                  c)  # fmt: skip
    how = "add" if node.attr("accumulate", False) else "none"
    return [b.cast(b.node("ScatterND", [x, idx, vals], c, reduction=how), out.dtype)]


def masked_scatter(b: Builder, node, args) -> list:
    """The k-th selected place (row-major) takes source's k-th entry: a Gather at the running
    count of the mask."""
    out = _out(node)
    shape = b.ints(out.shape)
    x = b.node("Expand", [args[0], shape], b.dtypes[args[0]])
    m = b.node("Expand", [b.cast(args[1], dt.bool_), shape], dt.bool_)
    flat = b.node("Reshape", [b.cast(m, dt.int64), b.ints([-1])], dt.int64)
    pos = b.node("CumSum", [flat, b.const(0, dt.int64)], dt.int64)
    pos = b.node("Max", [b.node("Sub", [pos, b.const(1, dt.int64)], dt.int64),
                         b.const(0, dt.int64)], dt.int64)  # fmt: skip
    src = b.node("Reshape", [b.cast(args[2], out.dtype), b.ints([-1])], out.dtype)
    picked = b.node("Gather", [src, pos], out.dtype, axis=0)
    picked = b.node("Reshape", [picked, shape], out.dtype)
    return [_where(b, m, picked, x)]


def searchsorted(b: Builder, node, args) -> list:
    """The count of sequence entries below each value (at or below it for ``right``); NaN
    values go after everything."""
    seq_t, val_t = node.inputs[0].type, node.inputs[1].type
    c = dt.promote_types(seq_t.dtype, val_t.dtype)
    c = dt.int32 if c is dt.bool_ else onnx_compute_dtype(c)
    seq, vals = b.cast(_safe(b, args[0]), c), b.cast(_safe(b, args[1]), c)
    n = seq_t.shape[-1]
    if len(args) > 2:
        seq = b.node("GatherElements", [seq, b.cast(args[2], dt.int64)], c, axis=-1)
    v = b.node("Unsqueeze", [vals, b.ints([-1])], c)  # [..., m, 1]
    if len(seq_t.shape) > 1:
        seq = b.node("Unsqueeze", [seq, b.ints([-2])], c)  # [..., 1, n]
    cmp = b.node("LessOrEqual" if node.attr("right", False) else "Less", [seq, v], dt.bool_)
    rank = max(len(seq_t.shape), len(val_t.shape) + 1)
    r = _reduce(b, "ReduceSum", b.cast(cmp, dt.int64), [rank - 1])
    r = b.node("Reshape", [r, b.ints(_out(node).shape)], dt.int64)
    if c.is_floating_point:
        r = b.node("Where", [b.node("IsNaN", [vals], dt.bool_), b.const(n, dt.int64), r],
                   dt.int64)  # fmt: skip
    return [b.cast(r, _out(node).dtype)]


def histc(b: Builder, node, args) -> list:
    """Counts of ``bins`` equal bins of [lo, hi] (the data's range where lo == hi), the bin
    of an entry computed as fusejit's: (x - lo) * bins / (hi - lo), truncated."""
    out = _out(node).dtype
    d = _in(node).dtype
    bins, lo, hi = node.attr("bins"), node.attr("lo"), node.attr("hi")
    c = onnx_compute_dtype(d)  # (float tensors only: float16 in float32, as eager)
    x = b.node("Reshape", [b.cast(args[0], c), b.ints([-1])], c)
    if int(np.prod(_in(node).shape)) == 0:
        return [b.const(np.zeros(bins), out)]
    if lo == hi:  # the data's own range (widened by 1 either side when it is one value)
        lo_, hi_ = _reduce(b, "ReduceMin", x, [0]), _reduce(b, "ReduceMax", x, [0])
        same = b.node("Equal", [lo_, hi_], dt.bool_)
        lo_ = b.node("Where", [same, b.node("Sub", [lo_, b.const(1, c)], c), lo_], c)
        hi_ = b.node("Where", [same, b.node("Add", [hi_, b.const(1, c)], c), hi_], c)
    else:
        if not (np.isfinite(lo) and np.isfinite(hi)):
            raise ExportError(f"histc: range of [{lo}, {hi}] is not finite")
        lo_, hi_ = b.const(np.asarray(lo).astype(c.np), c), b.const(np.asarray(hi).astype(c.np), c)
    keep = b.node("And", [b.node("GreaterOrEqual", [x, lo_], dt.bool_),
                          b.node("LessOrEqual", [x, hi_], dt.bool_)], dt.bool_)  # fmt: skip
    num = b.node("Mul", [b.node("Sub", [x, lo_], c), b.const(bins, c)], c)
    den = b.node("Sub", [hi_, lo_], c)
    pos = b.cast(b.node("Div", [num, den], c), dt.int64)
    pos = b.node("Min", [pos, b.const(bins - 1, dt.int64)], dt.int64)
    pos = b.node("Where", [keep, pos, b.const(-1, dt.int64)], dt.int64)
    hit = b.node("Equal", [b.node("Unsqueeze", [pos, b.ints([-1])], dt.int64),
                           b.const(np.arange(bins), dt.int64)], dt.bool_)  # fmt: skip
    counts = b.node("ReduceSum", [b.cast(hit, dt.int64), b.ints([0])], dt.int64, keepdims=0)
    return [b.cast(counts, out)]


def diag_embed(b: Builder, node, args) -> list:
    """The last dim of the input on the ``offset``-th diagonal of new planes (zeros elsewhere),
    built as [..., m, m] (a Gather and a Where) and moved to ``dims``."""
    out = _out(node)
    k = node.attr("offset", 0)
    rank = len(out.shape)
    d1, d2 = (d % rank for d in node.attr("dims"))
    m = out.shape[d1]
    n = _in(node).shape[-1]
    i, j = np.indices((m, m))
    src = np.clip(i if k >= 0 else j, 0, max(n - 1, 0))
    x = _safe(b, args[0])
    c = b.dtypes[x]
    vals = b.node("Gather", [x, b.const(src, dt.int64)], c, axis=len(_in(node).shape) - 1)
    r = b.node("Where", [b.const(j - i == k, dt.bool_), vals, b.const(0, c)], c)
    batch = iter(range(rank - 2))
    perm = [rank - 2 if a == d1 else rank - 1 if a == d2 else next(batch) for a in range(rank)]
    return [b.cast(b.node("Transpose", [r], c, perm=perm), out.dtype)]


# linear algebra: Gauss-Jordan elimination with partial pivoting (LAPACK's pivot choice),
# unrolled over the n columns; Cholesky's columns in order -------------------------------
def _gauss_jordan(b: Builder, m: str, n: int, batch: tuple, width: int, c: dt.DType):
    """Reduce [A | B] (``m``: [*batch, n, width]) to [I | A^-1 B]: per column, the row with the
    largest |entry| at or below the diagonal is swapped up, divided by its pivot and subtracted
    from the other rows. Returns (the reduced matrix, the pivots [*batch, n], the number of
    swaps [*batch] as int64)."""
    rows = np.arange(n)
    full = list(batch) + [n, width]
    pivots, swaps = [], b.const(np.zeros(batch, np.int64), dt.int64)
    for j in range(n):
        col = b.node("Gather", [m, b.const(j, dt.int64)], c, axis=-1)  # [*batch, n]
        cand = b.node("Where", [b.const(rows >= j, dt.bool_), b.node("Abs", [col], c),
                                b.const(-1, c)], c)  # fmt: skip
        p = b.node("ArgMax", [cand], dt.int64, axis=-1, keepdims=1, select_last_index=0)
        at = b.const(rows, dt.int64)
        idx = b.node("Where", [b.node("Equal", [at, b.const(j, dt.int64)], dt.bool_), p,
                               b.node("Where", [b.node("Equal", [at, p], dt.bool_),
                                                b.const(j, dt.int64), at], dt.int64)],
                     dt.int64)  # fmt: skip
        moved = b.node("Reshape", [b.node("Sub", [p, b.const(j, dt.int64)], dt.int64),
                                   b.ints(batch)], dt.int64)  # fmt: skip
        swaps = b.node("Add", [swaps, b.node("Min", [moved, b.const(1, dt.int64)], dt.int64)],
                       dt.int64)  # fmt: skip
        idx = b.node("Expand", [b.node("Unsqueeze", [idx, b.ints([-1])], dt.int64), b.ints(full)],
                     dt.int64)  # fmt: skip
        m = b.node("GatherElements", [m, idx], c, axis=len(full) - 2)
        row = b.node("Gather", [m, b.const(j, dt.int64)], c, axis=-2)  # [*batch, width]
        piv = b.node("Gather", [row, b.const(j, dt.int64)], c, axis=-1)  # [*batch]
        pivots.append(piv)
        row = b.node("Div", [row, b.node("Unsqueeze", [piv, b.ints([-1])], c)], c)
        f = b.node("Unsqueeze", [b.node("Gather", [m, b.const(j, dt.int64)], c, axis=-1),
                                 b.ints([-1])], c)  # fmt: skip
        row2 = b.node("Unsqueeze", [row, b.ints([-2])], c)  # [*batch, 1, width]
        m = b.node("Sub", [m, b.node("Mul", [f, row2], c)], c)
        m = b.node("Where", [b.const((rows == j)[:, None], dt.bool_), row2, m], c)
    piv = b.node("Concat", [b.node("Unsqueeze", [v, b.ints([-1])], c) for v in pivots], c,
                 axis=-1)  # fmt: skip
    return m, piv, swaps


def _square(node) -> tuple:
    shape = _in(node).shape
    return shape[-1], tuple(shape[:-2])


def linalg_solve(b: Builder, node, args) -> list:
    a_t, r_t, out = node.inputs[0].type, node.inputs[1].type, _out(node)
    c = onnx_compute_dtype(out.dtype)
    n = a_t.shape[-1]
    vector = len(r_t.shape) == 1 or tuple(r_t.shape) == tuple(a_t.shape[:-1])
    r = b.cast(args[1], c)
    rshape = tuple(r_t.shape) + (1,) if vector else tuple(r_t.shape)
    if vector:
        r = b.node("Unsqueeze", [r, b.ints([-1])], c)
    batch = tuple(np.broadcast_shapes(tuple(a_t.shape[:-2]), rshape[:-2]))
    k = rshape[-1]
    a = b.node("Expand", [b.cast(args[0], c), b.ints(batch + (n, n))], c)
    r = b.node("Expand", [r, b.ints(batch + (n, k))], c)
    m = b.node("Concat", [a, r], c, axis=-1)
    m, _, _ = _gauss_jordan(b, m, n, batch, n + k, c)
    x = _slice(b, m, [n], [n + k], [len(batch) + 1], [1])
    return _finish(b, x, node)


def linalg_inv(b: Builder, node, args) -> list:
    n, batch = _square(node)
    c = onnx_compute_dtype(_out(node).dtype)
    eye = b.node("Expand", [b.const(np.eye(n), c), b.ints(batch + (n, n))], c)
    m = b.node("Concat", [b.cast(args[0], c), eye], c, axis=-1)
    m, _, _ = _gauss_jordan(b, m, n, batch, 2 * n, c)
    return _finish(b, _slice(b, m, [n], [2 * n], [len(batch) + 1], [1]), node)


def _determinant(b: Builder, node, args, log: bool) -> list:
    """From the pivots of the elimination (those of LAPACK's LU, whose product numpy's det
    is): their product, or the sign of their product and the sum of log|pivot|, times
    (-1)^swaps. (ONNX's Det has no float64 kernel in onnxruntime.)"""
    n, batch = _square(node)
    c = onnx_compute_dtype(_out(node).dtype)
    d = _out(node).dtype
    if n == 0:
        ones = b.const(np.ones(batch), d)
        return [ones, b.const(np.zeros(batch), d)] if log else [ones]
    _, piv, swaps = _gauss_jordan(b, b.cast(args[0], c), n, batch, n, c)
    odd = b.node("Equal", [b.node("Mod", [swaps, b.const(2, dt.int64)], dt.int64),
                           b.const(1, dt.int64)], dt.bool_)  # fmt: skip

    def signed(v: str) -> str:
        return b.node("Where", [odd, b.node("Neg", [v], c), v], c)

    def over_pivots(op_type: str, v: str) -> str:
        return b.node("Reshape", [_reduce(b, op_type, v, [len(batch)]), b.ints(batch)], c)

    if not log:
        return [b.cast(signed(over_pivots("ReduceProd", piv)), d)]
    sign = signed(over_pivots("ReduceProd", b.node("Sign", [piv], c)))
    logabs = over_pivots("ReduceSum", b.node("Log", [b.node("Abs", [piv], c)], c))
    return [b.cast(sign, d), b.cast(logabs, d)]


def linalg_det(b: Builder, node, args) -> list:
    return _determinant(b, node, args, False)


def linalg_slogdet(b: Builder, node, args) -> list:
    return _determinant(b, node, args, True)


def linalg_cholesky(b: Builder, node, args) -> list:
    """Column j of L: (A[:, j] - L[:, :j] L[j, :j]) / sqrt(its j-th entry), zero above the
    diagonal (the lower triangle of A is read, as LAPACK's)."""
    n, batch = _square(node)
    c = onnx_compute_dtype(_out(node).dtype)
    a = b.cast(args[0], c)
    rows = np.arange(n)
    cols = []
    for j in range(n):
        col = b.node("Gather", [a, b.const(j, dt.int64)], c, axis=-1)  # [*batch, n]
        if cols:
            left = b.node("Concat", cols, c, axis=-1)  # L[:, :j]
            lj = b.node("Gather", [left, b.const(j, dt.int64)], c, axis=-2)  # L[j, :j]
            dot = b.node("MatMul", [left, b.node("Unsqueeze", [lj, b.ints([-1])], c)], c)
            col = b.node("Sub", [col, b.node("Squeeze", [dot, b.ints([-1])], c)], c)
        piv = b.node("Sqrt", [b.node("Gather", [col, b.const(j, dt.int64)], c, axis=-1)], c)
        col = b.node("Div", [col, b.node("Unsqueeze", [piv, b.ints([-1])], c)], c)
        col = b.node("Where", [b.const(rows >= j, dt.bool_), col, b.const(0, c)], c)
        cols.append(b.node("Unsqueeze", [col, b.ints([-1])], c))
    low = b.node("Concat", cols, c, axis=-1)
    if node.attr("upper", False):
        rank = len(batch) + 2
        low = b.node("Transpose", [low], c, perm=list(range(rank - 2)) + [rank - 1, rank - 2])
    return [b.cast(low, _out(node).dtype)]


def linalg_qr(b: Builder, node, args) -> list:
    """Householder QR as LAPACK's (geqrf's reflectors: R's diagonal is -sign(alpha) * the
    column's norm, no reflection where the column below the diagonal is zero; orgqr's Q, the
    reflectors applied last to first), unrolled over min(m, n) columns."""
    shape = _in(node).shape
    batch, (m, n) = tuple(shape[:-2]), shape[-2:]
    k, mode = min(m, n), node.attr("mode")
    d = _out(node).dtype
    c = onnx_compute_dtype(d)
    a = b.cast(args[0], c)
    rows = np.arange(m)
    one = batch + (1, 1)
    reflectors = []
    for j in range(k):
        x = b.node("Gather", [a, b.const(j, dt.int64)], c, axis=-1)  # [*batch, m]
        alpha = b.node("Gather", [x, b.const(j, dt.int64)], c, axis=-1)
        below = b.node("Where", [b.const(rows > j, dt.bool_), x, b.const(0, c)], c)
        rest = _reduce(b, "ReduceSum", b.node("Mul", [below, below], c), [len(batch)])
        rest = b.node("Reshape", [rest, b.ints(batch)], c)
        norm = b.node("Sqrt", [b.node("Add", [b.node("Mul", [alpha, alpha], c), rest], c)], c)
        beta = b.node("Where", [b.node("GreaterOrEqual", [alpha, b.const(0, c)], dt.bool_),
                                b.node("Neg", [norm], c), norm], c)  # fmt: skip
        none = b.node("Equal", [rest, b.const(0, c)], dt.bool_)
        tau = b.node("Div", [b.node("Sub", [beta, alpha], c), beta], c)
        tau = b.node("Where", [none, b.const(0, c), tau], c)
        gap = b.node("Where", [none, b.const(1, c), b.node("Sub", [alpha, beta], c)], c)
        v = b.node("Div", [below, b.node("Unsqueeze", [gap, b.ints([-1])], c)], c)
        v = b.node("Where", [b.const(rows == j, dt.bool_), b.const(1, c), v], c)  # [*batch, m]
        tau = b.node("Reshape", [tau, b.ints(one)], c)
        reflectors.append((v, tau))
        a = _reflect(b, a, v, tau, c)
    r = b.node("Trilu", [a, b.node("Reshape", [b.ints([0]), b.ints([])], dt.int64)], c, upper=1)
    if mode != "complete":
        r = _slice(b, r, [0], [k], [len(batch)], [1])
    if mode == "r":
        return [b.const(np.zeros(0), d), b.cast(r, d)]
    width = m if mode == "complete" else k
    q = b.node("Expand", [b.const(np.eye(m, width), c), b.ints(batch + (m, width))], c)
    for v, tau in reversed(reflectors):
        q = _reflect(b, q, v, tau, c)
    return [b.cast(q, d), b.cast(r, d)]


def _reflect(b: Builder, a: str, v: str, tau: str, c: dt.DType) -> str:
    """(I - tau v v^T) a, ``v`` [*batch, m], ``tau`` [*batch, 1, 1]."""
    va = b.node("MatMul", [b.node("Unsqueeze", [v, b.ints([-2])], c), a], c)  # [*batch, 1, n]
    vva = b.node("MatMul", [b.node("Unsqueeze", [v, b.ints([-1])], c), va], c)
    return b.node("Sub", [a, b.node("Mul", [tau, vva], c)], c)


# complex values: an ONNX tensor of their real dtype with a last dim of 2 (real, imaginary
# part), as ``view_as_real`` gives; the builder records the complex dtype -------------------
def _pair(b: Builder, x: str, c: dt.DType, rank: int) -> str:
    """``x`` (of ``rank`` dims) as a pair of dtype ``c``: a real tensor gets zero imaginary
    parts."""
    if b.dtypes[x].kind == "c":
        return x
    x = b.node("Unsqueeze", [b.cast(x, c), b.ints([-1])], c)
    pads = [0] * (2 * (rank + 1))
    pads[-1] = 1
    return b.node("Pad", [x, b.ints(pads), b.const(0, c)], c)


def _conj(b: Builder, z: str, c: dt.DType) -> str:
    return b.node("Mul", [z, b.const(np.array([1, -1]), c)], c)


def _part(b: Builder, z: str, c: dt.DType, k: int) -> str:
    """The real (k = 0) or imaginary (k = 1) part of pair ``z``."""
    return b.node("Gather", [z, b.const(k, dt.int64)], c, axis=-1)


def _fit(b: Builder, z: str, shape: list, axis: int, n: int, c: dt.DType) -> str:
    """Pair ``z`` truncated or zero-padded to ``n`` entries along ``axis`` (numpy's ``n``)."""
    have = shape[axis]
    if n < have:
        z = _slice(b, z, [0], [n], [axis], [1])
    elif n > have:
        pads = [0] * (2 * (len(shape) + 1))
        pads[len(shape) + 1 + axis] = n - have
        z = b.node("Pad", [z, b.ints(pads), b.const(0, c)], c)
    shape[axis] = n
    return z


def _dft(b: Builder, z: str, axis: int, c: dt.DType, inverse: bool) -> str:
    """The unscaled DFT of pair ``z`` along ``axis``; the inverse one as conj(DFT(conj z))
    (onnxruntime's float64 inverse DFT is accurate to 1e-8 only)."""
    if inverse:
        z = _conj(b, z, c)
    z = b.node("Unsqueeze", [z, b.ints([0])], c)  # (a batch dim: DFT's axis is one after it)
    if b.opset >= 20:
        z = b.node("DFT", [z, "", b.const(axis + 1, dt.int64)], c, inverse=0, onesided=0)
    else:
        z = b.node("DFT", [z], c, axis=axis + 1, inverse=0, onesided=0)
    z = b.node("Squeeze", [z, b.ints([0])], c)
    return _conj(b, z, c) if inverse else z


def _scale(b: Builder, z: str, c: dt.DType, n: int, norm: str, inverse: bool) -> str:
    f = {"backward": 1 / n if inverse else 1, "ortho": 1 / np.sqrt(n),
         "forward": 1 if inverse else 1 / n}[norm]  # fmt: skip
    return z if f == 1 else b.node("Mul", [z, b.const(f, c)], c)


def _c2c(b, z, shape, axis, n, c, norm, inverse) -> str:
    z = _fit(b, z, shape, axis, n, c)
    return _scale(b, _dft(b, z, axis, c, inverse), c, n, norm, inverse)


def _r2c(b, z, shape, axis, n, c, norm) -> str:
    """rfft: the full transform, its first n // 2 + 1 entries."""
    z = _c2c(b, z, shape, axis, n, c, norm, False)
    shape[axis] = n // 2 + 1
    return _slice(b, z, [0], [n // 2 + 1], [axis], [1])


def _c2r(b, z, shape, axis, n, c, norm) -> str:
    """irfft: the first n // 2 + 1 entries extended to a Hermitian spectrum of n (numpy's: the
    imaginary parts of the zero and Nyquist entries are dropped with the real part), its
    inverse transform's real part."""
    z = _fit(b, z, shape, axis, n // 2 + 1, c)
    rest = [n - k for k in range(n // 2 + 1, n)]
    if rest:
        mirror = _conj(b, b.node("Gather", [z, b.ints(rest)], c, axis=axis), c)
        z = b.node("Concat", [z, mirror], c, axis=axis)
    shape[axis] = n
    return _scale(b, _part(b, _dft(b, z, axis, c, True), c, 0), c, n, norm, True)


_SWAP = {"backward": "forward", "forward": "backward", "ortho": "ortho"}


def _fft_rule(kind: str):
    def rule(b: Builder, node, args) -> list:
        out = _out(node).dtype
        c = dt.real_of(out) if out.kind == "c" else out
        shape = list(_in(node).shape)
        rank = len(shape)
        norm = node.attr("norm", "backward")
        x = args[0]
        if kind in ("fftn", "ifftn", "rfftn", "irfftn"):
            dims = [d % rank for d in node.attr("dim")]
            sizes = list(node.attr("s"))
        else:
            dims = [node.attr("dim") % rank]
            n = node.attr("n")
            if n is None:
                n = 2 * (shape[dims[0]] - 1) if kind in ("irfft", "hfft") else shape[dims[0]]
            sizes = [n]
        z = _pair(b, x, c, rank)
        if kind in ("fft", "ifft", "fftn", "ifftn"):
            inverse = kind.startswith("i")
            for axis, n in reversed(list(zip(dims, sizes))):  # (numpy's order)
                z = _c2c(b, z, shape, axis, n, c, norm, inverse)
        elif kind in ("rfft", "rfftn"):
            z = _r2c(b, z, shape, dims[-1], sizes[-1], c, norm)
            for axis, n in zip(dims[:-1], sizes[:-1]):
                z = _c2c(b, z, shape, axis, n, c, norm, False)
        elif kind == "ihfft":
            z = _conj(b, _r2c(b, z, shape, dims[0], sizes[0], c, _SWAP[norm]), c)
        elif kind == "irfftn":
            for axis, n in zip(dims[:-1], sizes[:-1]):
                z = _c2c(b, z, shape, axis, n, c, norm, True)
            z = _c2r(b, z, shape, dims[-1], sizes[-1], c, norm)
        elif kind == "irfft":
            z = _c2r(b, z, shape, dims[0], sizes[0], c, norm)
        else:  # hfft
            z = _c2r(b, _conj(b, z, c), shape, dims[0], sizes[0], c, _SWAP[norm])
        if tuple(shape) != tuple(_out(node).shape):
            raise AssertionError(f"{node.op}: shape {shape} against {_out(node).shape}")
        b.dtypes[z] = out
        return [z]

    return rule


def _real_part(k: int):
    def rule(b: Builder, node, args) -> list:
        c = _out(node).dtype
        return [b.node("Identity", [_part(b, args[0], c, k)], c)]

    return rule


def conj(b: Builder, node, args) -> list:
    d = _out(node).dtype
    z = _conj(b, args[0], dt.real_of(d))
    b.dtypes[z] = d
    return [z]


def view_as(b: Builder, node, args) -> list:
    """view_as_real / view_as_complex: the pair itself, with the other dtype."""
    return [b.node("Identity", [args[0]], _out(node).dtype)]


def angle(b: Builder, node, args) -> list:
    out = _out(node).dtype
    if _in(node).dtype.kind != "c":  # pi for negative values, NaN for NaN, else 0
        x = b.cast(args[0], out)
        r = b.node("Where", [b.node("IsNaN", [x], dt.bool_), x, b.const(0, out)], out)
        neg = b.node("Less", [x, b.const(0, out)], dt.bool_)
        return [b.node("Where", [neg, b.const(np.pi, out), r], out)]
    re, im = _part(b, args[0], out, 0), _part(b, args[0], out, 1)
    return [ExprTranslator(b, out, {}, None).atan2(im, re)]


def _real_only(rule):
    """A rule for real tensors: complex operands or results raise an ``ExportError``."""

    def checked(b: Builder, node, args) -> list:
        types = [v.type for v in node.inputs if isinstance(v, Value)]
        types += [v.type for v in node.outputs]
        if any(t.dtype.kind == "c" for t in types):
            raise ExportError(f"{node.op} of complex tensors has no ONNX rule (complex values "
                              "export through the fft and complex ops only)")  # fmt: skip
        return rule(b, node, args)

    return checked


# the table --------------------------------------------------------------------------------
# elementwise ops exported through their ``expr``
_EXPR_OPS = """add sub mul div floor_divide remainder pow atan2 maximum minimum fmod hypot
copysign logaddexp logaddexp2 xlogy heaviside eq ne lt le gt ge logical_and logical_or
logical_xor logical_not bitwise_and bitwise_or bitwise_xor bitwise_not neg abs sign square floor
ceil trunc round frac sqrt rsqrt reciprocal exp exp2 expm1 log log2 log10 log1p sin cos tan asin
acos atan sinh cosh tanh asinh acosh atanh erf erfc erfinv sigmoid relu gelu gelu_tanh silu
softplus selu hardswish hardsigmoid relu6 mish logsigmoid softsign tanhshrink isnan isinf isfinite
where cast""".split()

# ops of the table that cannot be exported, and why (the export error gives the reason)
_SOLVER = ("ONNX has no such operator, and LAPACK's algorithm for it iterates to convergence "
           "(SVD, eigenvalues) or rests on one (pinv, matrix_rank and lstsq are SVD-based): "
           "no fixed graph of ONNX operators computes it")  # fmt: skip
REFUSED: dict = dict.fromkeys("""linalg_svd linalg_svdvals linalg_eigh
    linalg_eigvalsh linalg_pinv linalg_matrix_rank linalg_lstsq""".split(), _SOLVER)  # fmt: skip
# ops only eager calls make (one autograd node each): a trace records their compositions, which
# export as any graph does; a graph holding one was not recorded by fusejit
_EAGER_ONLY = ("an op only eager calls make; a trace records its composition ({}), which "
               "exports")  # fmt: skip
REFUSED["linear"] = _EAGER_ONLY.format("permute, matmul, add")
REFUSED["cross_entropy"] = _EAGER_ONLY.format("log_softmax, gather, mean")

_REAL_RULES: dict = {
    **{name: elementwise for name in _EXPR_OPS},
    "gelu": gelu,
    "gelu_tanh": gelu,
    "sum": _simple_reduction("ReduceSum", lambda d: d),
    "prod": _simple_reduction("ReduceProd", wide_accumulation_dtype),
    "mean": _simple_reduction("ReduceMean", accumulation_dtype),
    "amax": _extreme("ReduceMax"),
    "amin": _extreme("ReduceMin"),
    "all": _all_any("ReduceMin"),
    "any": _all_any("ReduceMax"),
    "var": var,
    "argmax": _arg("ArgMax"),
    "argmin": _arg("ArgMin"),
    "logsumexp": logsumexp,
    "softmax": softmax,
    "layer_norm": layer_norm,
    "matmul": matmul,
    "einsum": einsum,
    "reshape": reshape,
    "view": reshape,
    "contiguous": identity,
    "clone": identity,
    "detach": identity,
    "rand_like": rand_like,
    "permute": permute,
    "expand": expand,
    "cat": cat,
    "stack": stack,
    "getitem": getitem,
    "flip": flip,
    "tile": tile,
    "tril": _trilu(0),
    "triu": _trilu(1),
    "index_select": index_select,
    "gather": gather,
    "cumsum": cumsum,
    "max_dim": _extreme_dim("ReduceMax", "ArgMax"),
    "min_dim": _extreme_dim("ReduceMin", "ArgMin"),
    "roll": roll,
    "split": split,
    "one_hot": one_hot,
    "diagonal": diagonal,
    "diag": diag,
    "sort": sort,
    "cumprod": cumprod,
    "cummax": _cumext(True),
    "cummin": _cumext(False),
    "logcumsumexp": logcumsumexp,
    "median": median,
    "kthvalue": kthvalue,
    "mode": mode,
    "quantile": quantile,
    "scatter": scatter,
    "index_put": index_put,
    "masked_scatter": masked_scatter,
    "searchsorted": searchsorted,
    "histc": histc,
    "diag_embed": diag_embed,
    "linalg_det": linalg_det,
    "linalg_solve": linalg_solve,
    "linalg_inv": linalg_inv,
    "linalg_slogdet": linalg_slogdet,
    "linalg_cholesky": linalg_cholesky,
    "linalg_qr": linalg_qr,
}
RULES: dict = {
    **{name: _real_only(rule) for name, rule in _REAL_RULES.items()},
    **{f"fft_{k}": _fft_rule(k) for k in
       "fft ifft rfft irfft hfft ihfft fftn ifftn rfftn irfftn".split()},
    "real": _real_part(0),
    "imag": _real_part(1),
    "conj": conj,
    "angle": angle,
    "view_as_real": view_as,
    "view_as_complex": view_as,
}  # fmt: skip
