"""Decomposition: composite ops become the primitive ops of the op table, so that row fusion
(``fuse_rows``) can put each into one kernel with its neighbours.

- ``softmax(x, d)``: m = amax(x, d, keepdim); z = x - m; e = exp(z); s = sum(e, d, keepdim);
  e / s (``log``: z - log(s)). Like eager (and PyTorch), a row whose max is +-inf or nan gives
  nan;
- ``logsumexp(x, dims, keepdim)``: m = amax(x, dims, keepdim); m = where(isfinite(m), m, 0)
  (eager's guard: a row of -inf gives -inf, not nan), then log(sum(exp(x - m))) + m, reshaped
  to drop the reduced dims unless ``keepdim``;
- ``layer_norm``: mu = mean(x), or amax(x) where amax(x) == amin(x) (a constant row); xc = x -
  mu; var = mean(xc * xc); xc * rsqrt(var + eps), then * weight, + bias;
- ``var`` (and ``std``, its square root): mu = mean(x); d = x - mu; sum(d * d) / max(n -
  correction, 0), numpy's two-pass formula, where n is the row length counted in the kernel
  (the sum of a bool that is true everywhere), so that the plan stays shape-generic.

The steps, their order and their dtypes are those of the eager implementations in
``fusejit/ops/reductions.py``, so the decomposed graph computes what eager does up to the
summation order; float16 and integer inputs are cast to the float32 eager computes them in (var
of float32 in float64), and the result back. The one deliberate difference: ``rsqrt`` and a
multiply instead of eager's divide by ``sqrt`` (a multiply per element instead of a division;
at most an ulp or two apart).

``mean`` stays a primitive: a row kernel divides the sum by the row length it is called with,
where a rewrite to ``sum * (1/n)`` would bake the traced length into a shape-generic kernel.

An op is decomposed only where a row kernel can take it: its reduced dims are the trailing
ones. Values made here are listed
in ``graph.notes["decomposed"]``: ``fuse_rows`` lets their max of an empty row be -inf (eager
softmax and logsumexp never raise there) and treats their reshapes as shape-generic.
"""

from __future__ import annotations

from fusejit.base import dtypes as dt
from fusejit.eager import dispatch
from fusejit.ir.graph import Const, Graph, Node, TensorType, Value
from fusejit.ops.registry import OPS, accumulation_dtype, wide_accumulation_dtype


class _Builder:
    """Appends primitive nodes, typing their outputs as eager dispatch would."""

    def __init__(self, device) -> None:
        self.device = device
        self.nodes: list = []
        self.made: set = set()

    def _emit(self, op, inputs, attrs, dtype, shape, out=None):
        v = out if out is not None else Value(TensorType(dtype, tuple(shape), self.device))
        self.nodes.append(Node(op, tuple(inputs), tuple(sorted(attrs.items())), (v,)))
        self.made.add(v)
        return v

    def ew(self, op, *inputs, out=None, **attrs):
        operands = [v.type if isinstance(v, Value) else v.value for v in inputs]
        _, res = dispatch.elementwise_dtypes(OPS[op], operands, attrs or None)
        shapes = [v.type.shape for v in inputs if isinstance(v, Value)]
        shape = _broadcast(shapes)
        return self._emit(op, inputs, attrs, res, shape, out)

    def cast(self, v, d: dt.DType, out=None):
        if v.type.dtype is d and out is None:
            return v
        return self.ew("cast", v, out=out, dtype=d)

    def reduce(self, op, v, dims, keepdim=True):
        attrs = {"dim": tuple(dims), "keepdim": keepdim}
        d = OPS[op].out_dtype(v.type.dtype, **attrs)
        shape = tuple(1 if i in dims else s for i, s in enumerate(v.type.shape) if keepdim or
                      i not in dims)  # fmt: skip
        return self._emit(op, (v,), attrs, d, shape)

    def reshape(self, v, shape, out=None):
        return self._emit("reshape", (v,), {"shape": tuple(shape)}, v.type.dtype, shape, out)

    def finish(self, v, out) -> None:
        """Make ``out`` (the composite's output value) the result: the last node's output when
        it is ``v`` with the same type, else through a cast."""
        last = self.nodes[-1]
        if last.outputs[0] is v and v.type == out.type:
            self.nodes[-1] = Node(last.op, last.inputs, last.attrs, (out,))
            self.made.discard(v)
            self.made.add(out)
        else:
            self.cast(v, out.type.dtype, out=out)


def _broadcast(shapes) -> tuple:
    rank = max((len(s) for s in shapes), default=0)
    out = [1] * rank
    for s in shapes:
        for i, n in enumerate(s):
            j = rank - len(s) + i
            if n != 1:
                out[j] = n
    return tuple(out)


def _trailing(dims, rank: int) -> tuple | None:
    """The dims as a sorted tuple when they are the trailing ones (None: all dims)."""
    if rank == 0:
        return None
    ds = tuple(range(rank)) if dims is None else tuple(sorted(set(dims)))
    return ds if ds == tuple(range(rank - len(ds), rank)) and ds else None


def _stable_max(b: _Builder, x, dims):
    m = b.reduce("amax", x, dims)
    fin = b.ew("isfinite", m)
    return b.ew("where", fin, m, Const(0))


def _softmax(b: _Builder, n: Node):
    (x,) = n.inputs
    out_v = n.outputs[0]
    dims = (n.attr("dim"),)
    acc = accumulation_dtype(out_v.type.dtype)
    xa = b.cast(x, acc)
    z = b.ew("sub", xa, b.reduce("amax", xa, dims))
    e = b.ew("exp", z)
    s = b.reduce("sum", e, dims)
    r = b.ew("sub", z, b.ew("log", s)) if n.attr("log") else b.ew("div", e, s)
    b.finish(r, out_v)


def _logsumexp(b: _Builder, n: Node, dims):
    (x,) = n.inputs
    out_v = n.outputs[0]
    acc = accumulation_dtype(out_v.type.dtype)
    xa = b.cast(x, acc)
    m = _stable_max(b, xa, dims)
    e = b.ew("exp", b.ew("sub", xa, m))
    s = b.reduce("sum", e, dims)
    r = b.ew("add", b.ew("log", s), m)
    if n.attr("keepdim"):
        b.finish(r, out_v)
        return
    b.reshape(b.cast(r, out_v.type.dtype), out_v.type.shape, out=out_v)


def _layer_norm(b: _Builder, n: Node):
    x, *wb = n.inputs
    out_v = n.outputs[0]
    k = n.attr("normalized_ndim")
    rank = len(x.type.shape)
    dims = tuple(range(rank - k, rank))
    acc = accumulation_dtype(out_v.type.dtype)
    xa = b.cast(x, acc)
    mu = b.reduce("mean", xa, dims)
    # a constant row's mean is its value exactly (eager's rule, PyTorch's Welford mean), so
    # that row normalizes to 0 (nan with eps=0); max and min come in the mean's pass
    hi = b.reduce("amax", xa, dims)
    mu = b.ew("where", b.ew("eq", hi, b.reduce("amin", xa, dims)), hi, mu)
    xc = b.ew("sub", xa, mu)
    var = b.reduce("mean", b.ew("mul", xc, xc), dims)
    rstd = b.ew("rsqrt", b.ew("add", var, Const(n.attr("eps"))))
    y = b.ew("mul", xc, rstd)
    it = iter(wb)
    if n.attr("has_weight"):
        y = b.ew("mul", y, next(it))
    if n.attr("has_bias"):
        y = b.ew("add", y, next(it))
    b.finish(y, out_v)


def _var(b: _Builder, n: Node, dims):
    (x,) = n.inputs
    out_v = n.outputs[0]
    acc = wide_accumulation_dtype(out_v.type.dtype)  # (float32 in float64, as eager's)
    xa = b.cast(x, acc)
    mu = b.reduce("mean", xa, dims)
    d = b.ew("sub", xa, mu)
    ssq = b.reduce("sum", b.ew("mul", d, d), dims)
    # the row length, counted in the kernel (a constant would tie the plan to the traced
    # shape): a bool that is true for every entry, NaN and infinities included, summed
    isnan = b.ew("isnan", xa)
    count = b.reduce("sum", b.ew("logical_or", isnan, b.ew("logical_not", isnan)), dims)
    # numpy's divisor: max(N - correction, 0) (0 gives inf or nan, as numpy and eager)
    dof = b.ew("maximum", b.ew("sub", b.cast(count, acc), Const(n.attr("correction"))), Const(0))
    r = b.ew("div", ssq, dof)
    if n.attr("sqrt"):
        r = b.ew("sqrt", r)
    if n.attr("keepdim"):
        b.finish(r, out_v)
        return
    b.reshape(b.cast(r, out_v.type.dtype), out_v.type.shape, out=out_v)


def _plan(n: Node, target: str):
    """The decomposition for ``n`` on ``target``, or None to keep it."""
    types = [v.type for v in n.inputs if isinstance(v, Value)] + [o.type for o in n.outputs]
    if len({t.device for t in types}) != 1:
        return None
    x = n.inputs[0]
    rank = len(x.type.shape)
    if n.op == "softmax":
        if rank == 0 or n.attr("dim") != rank - 1:
            return None
        return _softmax
    if n.op == "logsumexp":
        dims = _trailing(n.attr("dim"), rank)
        if dims is None or x.type.dtype is dt.bool_:
            return None
        return lambda b, n: _logsumexp(b, n, dims)
    if n.op == "layer_norm":
        return _layer_norm
    if n.op == "var":
        dims = _trailing(n.attr("dim"), rank)
        return None if dims is None else (lambda b, n: _var(b, n, dims))
    return None


_COMPOSITES = ("softmax", "logsumexp", "layer_norm", "var")


def decompose(g: Graph, target: str = "cpu") -> tuple[Graph, bool]:
    """Rewrite softmax, log_softmax, logsumexp, layer_norm, var and std into primitives (see
    above).
    Each composite's output value is kept as the output of its last primitive, so nothing
    downstream (nested blocks included) needs rewiring."""
    nodes = []
    made: set = set()
    for n in g.block.nodes:
        how = _plan(n, target) if n.op in _COMPOSITES else None
        if how is None:
            nodes.append(n)
            continue
        b = _Builder(n.outputs[0].type.device)
        how(b, n)
        nodes += b.nodes
        made |= b.made
    if not made:
        return g, False
    out = g.copy_with(nodes=nodes)
    out.notes["decomposed"] = frozenset(made) | g.notes.get("decomposed", frozenset())
    return out, True


__all__ = ["decompose"]
