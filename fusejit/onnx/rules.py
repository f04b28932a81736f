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


def getitem(b: Builder, node, args) -> list:
    shape = _in(node).shape
    entries = list(node.attr("index"))
    used = sum(1 for e in entries if e[0] in ("slice", "int"))
    if any(e[0] == "ellipsis" for e in entries):
        i = next(k for k, e in enumerate(entries) if e[0] == "ellipsis")
        entries[i : i + 1] = [("slice", None, None, None)] * (len(shape) - used)
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
        x = args[0]
        k = b.ints([node.attr("diagonal", 0)])
        k = b.node("Reshape", [k, b.ints([])], dt.int64)
        return [b.node("Trilu", [x, k], b.dtypes[x], upper=upper)]

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


# the table --------------------------------------------------------------------------------
# elementwise ops exported through their ``expr`` (erfc and erfinv have no accurate ONNX form)
_EXPR_OPS = """add sub mul div floor_divide remainder pow atan2 maximum minimum fmod hypot
copysign logaddexp logaddexp2 xlogy heaviside eq ne lt le gt ge logical_and logical_or
logical_xor logical_not bitwise_and bitwise_or bitwise_xor bitwise_not neg abs sign square floor
ceil trunc round frac sqrt rsqrt reciprocal exp exp2 expm1 log log2 log10 log1p sin cos tan asin
acos atan sinh cosh tanh asinh acosh atanh erf sigmoid relu gelu gelu_tanh silu softplus selu
hardswish hardsigmoid relu6 mish logsigmoid softsign tanhshrink isnan isinf isfinite where
cast""".split()

RULES: dict = {
    **{name: elementwise for name in _EXPR_OPS},
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
}
