"""Dynamic axes in an ONNX export: the graph is traced with those dims as symbolic sizes
(``fusejit.base.symbolic``: ``s0``, ``2*s1``, ...), each symbol's value is read from its input's
``Shape`` at the top of the exported graph, and every size the rules write as a constant (a
reshape target, an expand size, a slice end, an arange length) that is an expression over the
symbols is computed from those values at run time (``SymbolicBuilder.ints``).

A rule whose Python code computes with sizes (``var``'s count, ``tile``'s repeats, ...) would bake
the traced size in: where a node's sizes are symbolic, only the rules known to write every size
through ``Builder.ints`` (``_SAFE``) or a dynamic form written here run; any other raises
``ExportError`` naming the op and the dynamic dim.
"""

from __future__ import annotations

from fusejit.base import dtypes as dt
from fusejit.base.symbolic import _ATOMS, SymInt, is_symbolic, symbols_of
from fusejit.onnx.builder import Builder, ExportError
from fusejit.onnx.rules import index_entries

_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1

# rules that take every size from the node's types through ``Builder.ints`` (or need none)
_SAFE = frozenset(
    """add sub mul div floor_divide remainder pow atan2 maximum minimum fmod hypot copysign
logaddexp logaddexp2 xlogy heaviside eq ne lt le gt ge logical_and logical_or logical_xor
logical_not bitwise_and bitwise_or bitwise_xor bitwise_not neg abs sign square floor ceil trunc
round frac sqrt rsqrt reciprocal exp exp2 expm1 log log2 log10 log1p sin cos tan asin acos atan
sinh cosh tanh asinh acosh atanh erf sigmoid relu gelu gelu_tanh silu softplus selu hardswish
hardsigmoid relu6 mish logsigmoid softsign tanhshrink isnan isinf isfinite where cast
sum prod mean amax amin all any argmax argmin logsumexp softmax layer_norm matmul einsum
reshape view contiguous clone permute expand cat stack flip index_select gather cumsum max_dim
min_dim tril triu sort""".split()
)


class SymbolicBuilder(Builder):
    """A ``Builder`` whose ``ints`` take symbolic sizes: ``symbols`` maps each symbol to the
    ONNX name of its value (int64, shape [1]), ``names`` each symbol to its ONNX dim name."""

    def __init__(self, onnx, opset: int, names: dict[str, str]) -> None:
        super().__init__(onnx, opset)
        self.names = names
        self.symbols: dict[str, str] = {}

    def dim_names(self, s) -> str | None:
        """The ONNX dim name of a size: a symbol's name; None (unknown) for an expression."""
        if isinstance(s, SymInt) and len(s.poly) == 1 and s.poly[0][1] == 1:
            (m, _), = s.poly  # fmt: skip
            if len(m) == 1 and m[0] in self.names:
                return self.names[m[0]]
        return None

    def bind(self, symbol: str, input_name: str, dim: int) -> None:
        """Read ``symbol`` from dim ``dim`` of the graph input ``input_name``."""
        name = self.node("Shape", [input_name], dt.int64, start=dim, end=dim + 1)
        self.symbols[symbol] = name

    def ints(self, values) -> str:
        values = list(values)
        if not any(isinstance(v, SymInt) for v in values):
            return super().ints(values)
        parts, run = [], []
        for v in values:
            if isinstance(v, SymInt):
                if run:
                    parts.append(super().ints(run))
                    run = []
                parts.append(self.size(v))
            else:
                run.append(int(v))
        if run:
            parts.append(super().ints(run))
        return parts[0] if len(parts) == 1 else self.node("Concat", parts, dt.int64, axis=0)

    def size(self, s) -> str:
        """A size (an int or a ``SymInt``) as an int64 [1] value computed at run time."""
        if not isinstance(s, SymInt):
            return super().ints([int(s)])
        return self._poly(s.poly)

    def _poly(self, poly) -> str:
        total = None
        for m, c in poly:
            term = None
            for name in m:
                v = self._atom(name)
                term = v if term is None else self.node("Mul", [term, v], dt.int64)
            if term is None:
                term = super().ints([c])
            elif c != 1:
                term = self.node("Mul", [term, super().ints([c])], dt.int64)
            total = term if total is None else self.node("Add", [total, term], dt.int64)
        return total if total is not None else super().ints([0])

    def _atom(self, name: str) -> str:
        if name in self.symbols:
            return self.symbols[name]
        if name in _ATOMS:  # a floor division of a polynomial (sizes are >= 0: Div is floor)
            operand, k = _ATOMS[name]
            return self.node("Div", [self._poly(operand), super().ints([k])], dt.int64)
        raise ExportError(f"the size {name} depends on the values, not on the input shapes")


def _dims_of(node) -> set:
    types = [v.type.shape for v in node.inputs if hasattr(v, "type")]
    types += [v.type.shape for v in node.outputs]
    return symbols_of((types, node.attr_dict))


def _refuse(op: str, dims: set):
    def rule(b, node, args):
        raise ExportError(
            f"{op} has no export rule for dynamic sizes (it takes the traced size of the "
            f"dynamic dim {', '.join(sorted(dims))} as a constant)"
        )

    return rule


def getitem(b: Builder, node, args) -> list:
    """``x[...]`` with the slice bounds given to ONNX ``Slice`` as Python gives them (ONNX clamps
    and wraps negative bounds as Python does), so a bound on a dynamic dim is not baked in."""
    shape = node.inputs[0].type.shape
    entries = index_entries(node, len(shape))
    starts, ends, axes, steps = [], [], [], []
    dim = 0
    for e in entries:
        if e[0] == "none":
            continue
        if e[0] == "slice":
            start, stop, step = e[1], e[2], 1 if e[3] is None else e[3]
            if (start, stop, step) != (None, None, 1):
                if start is None:
                    start = 0 if step > 0 else _INT64_MAX
                if stop is None:
                    stop = _INT64_MAX if step > 0 else _INT64_MIN
                starts.append(start), ends.append(stop), axes.append(dim), steps.append(step)
        elif e[0] == "int":
            i = e[1]
            starts.append(i), ends.append(_INT64_MAX if i == -1 else i + 1), axes.append(dim)
            steps.append(1)
        else:
            raise ExportError(f"getitem: index entry {e!r} has no export rule")
        dim += 1
    x = args[0]
    if axes:
        ins = [x, b.ints(starts), b.ints(ends), b.ints(axes), b.ints(steps)]
        x = b.node("Slice", ins, b.dtypes[x])
    t = node.outputs[0].type
    x = b.node("Reshape", [x, b.ints(t.shape)], b.dtypes[x])
    return [b.cast(x, t.dtype)]


def split(b: Builder, node, args) -> list:
    """Sections of a static dim (the other dims may be dynamic)."""
    rank = len(node.inputs[0].type.shape)
    dim = node.attr("dim") % rank
    if is_symbolic(node.inputs[0].type.shape[dim]):
        return _refuse("split", _dims_of(node))(b, node, args)
    outs, start = [], 0
    for v in node.outputs:
        n = int(v.type.shape[dim])
        ins = [args[0], b.ints([start]), b.ints([start + n]), b.ints([dim]), b.ints([1])]
        outs.append(b.node("Slice", ins, b.dtypes[args[0]]))
        start += n
    return outs


def var(b: Builder, node, args) -> list:
    """``var`` / ``std`` with the count of the reduced dims computed at run time."""
    from fusejit.onnx.expr import onnx_compute_dtype
    from fusejit.onnx.rules import _axes, _reduce
    from fusejit.ops.registry import wide_accumulation_dtype

    t = node.outputs[0].type
    a = onnx_compute_dtype(wide_accumulation_dtype(t.dtype))
    x = b.cast(args[0], a)
    axes = _axes(node)
    shape = node.inputs[0].type.shape
    n = 1
    for i in axes:
        n = n * shape[i]
    count = b.node("Sub", [b.ints([n]), b.ints([node.attr("correction", 1)])], dt.int64)
    count = b.node("Max", [count, b.ints([0])], dt.int64)
    count = b.node("Reshape", [b.cast(count, a), b.ints([])], a)
    m = _reduce(b, "ReduceMean", x, axes)
    d = b.node("Sub", [x, m], a)
    s = _reduce(b, "ReduceSum", b.node("Mul", [d, d], a), axes)
    r = b.node("Div", [s, count], a)
    if node.attr("sqrt", False):
        r = b.node("Sqrt", [r], a)
    r = b.node("Reshape", [r, b.ints(t.shape)], a)
    return [b.cast(r, t.dtype)]


_DYNAMIC = {"getitem": getitem, "split": split, "var": var}


def _static_dims(node, shape, dims) -> bool:
    rank = len(shape)
    return not any(is_symbolic(shape[d % rank]) for d in dims)


# rules that compute with the sizes of some dims only: safe where those are static
_SAFE_WHERE = {
    "one_hot": lambda n: not is_symbolic(n.outputs[0].type.shape[-1]),
    "roll": lambda n: (
        bool(n.attr("dims")) and _static_dims(n, n.inputs[0].type.shape, n.attr("dims"))
    ),
    "diagonal": lambda n: _static_dims(n, n.inputs[0].type.shape, n.attr("dims")),
}


def dynamic_rule_of(node, rule):
    """The rule to export ``node`` with when the graph has dynamic dims."""
    if rule is None:
        return None
    dims = _dims_of(node)
    if not dims or node.op in _SAFE:
        return rule
    safe = _SAFE_WHERE.get(node.op)
    if safe is not None and safe(node):
        return rule
    return _DYNAMIC.get(node.op) or _refuse(node.op, dims)


class _ListName(str):
    """A dim name the list form of ``dynamic_axes`` made (``x_dim0``)."""


def named_axes(dynamic_axes, names: list[str]) -> dict[int, dict[int, str]]:
    """``dynamic_axes`` ({name: {axis: dim name}} or {name: [axis, ...]}, as PyTorch's) for the
    values ``names`` (inputs or outputs): value index -> {axis: dim name}; a list's axes are
    named ``<value>_dim<axis>``."""
    out: dict[int, dict[int, str]] = {}
    for key, axes in (dynamic_axes or {}).items():
        if key not in names:
            continue
        i = names.index(key)
        if isinstance(axes, dict):
            out[i] = {int(a): str(n) for a, n in axes.items()}
        elif isinstance(axes, (list, tuple)):
            out[i] = {int(a): _ListName(f"{key}_dim{int(a)}") for a in axes}
        else:
            raise TypeError(
                f"fusejit.onnx.export: dynamic_axes[{key!r}] must be a dict of axis -> name "
                f"or a list of axes, got {type(axes).__name__}"
            )
    return out


def check_keys(dynamic_axes, inputs: list[str], outputs: list[str]) -> None:
    unknown = [k for k in dynamic_axes or {} if k not in inputs and k not in outputs]
    if unknown:
        raise ValueError(
            f"fusejit.onnx.export: dynamic_axes names {unknown}, which are not inputs "
            f"{inputs} or outputs {outputs}"
        )


def _function_of(obj):
    """The Python function or module a traced or optimized object runs (to trace it again
    with dynamic dims), or None."""
    from fusejit.jit.api import TracedFunction

    if isinstance(obj, TracedFunction):
        return obj.fn
    ex = getattr(obj, "_fusejit_executor", None)
    if ex is not None:
        return ex._module if ex._module is not None else ex._fn
    return None


def symbolic_graph(obj, example_inputs, g, wanted: dict[int, dict[int, str]]):
    """(graph, symbol -> ONNX dim name): ``g`` when its symbolic dims cover ``wanted`` (input
    index -> {axis: name}), else ``obj`` traced again with those dims symbolic."""
    symbols = {(i, d): s for s, i, d in g.notes.get("symbols", ())}
    if not all((i, a) in symbols for i, axes in wanted.items() for a in axes):
        from fusejit.jit.scripting.decorator import BoundScript, ScriptFunction
        from fusejit.jit.tracer import SymbolicShapeError, TraceError, capture

        fwd = getattr(obj, "forward", None)
        if isinstance(obj, (ScriptFunction, BoundScript)) or isinstance(
            fwd, (ScriptFunction, BoundScript)
        ):
            raise ExportError(
                "fusejit.onnx.export: a scripted function is compiled for its input sizes; "
                "dynamic_axes needs a traced, optimized function or a module"
            )
        from fusejit.jit.archive import LoadedFunction

        fn = _function_of(obj)
        if fn is None and callable(obj) and not isinstance(obj, LoadedFunction):
            fn = obj
        if fn is None:
            raise ExportError(
                f"fusejit.onnx.export: dynamic_axes: {type(obj).__name__} has no Python "
                "function to trace again with dynamic dims (export the module or function)"
            )
        if example_inputs is None:
            example_inputs = tuple(_zeros(v.type) for v in g.inputs)
        elif not isinstance(example_inputs, tuple):
            example_inputs = (example_inputs,)
        for i, axes in wanted.items():
            for a in axes:
                if not 0 <= a < len(g.inputs[i].type.shape):
                    raise ValueError(
                        f"fusejit.onnx.export: dynamic_axes: input {i} has no axis {a} "
                        f"(shape {tuple(g.inputs[i].type.shape)})"
                    )
        dynamic = {i: tuple(sorted(axes)) for i, axes in wanted.items()}
        try:
            g = capture(fn, example_inputs, dynamic)[0]
        except SymbolicShapeError as e:
            raise ExportError(f"fusejit.onnx.export: dynamic_axes: {e}") from None
        except TraceError as e:
            raise ExportError(f"fusejit.onnx.export: dynamic_axes: {e}") from None
        symbols = {(i, d): s for s, i, d in g.notes.get("symbols", ())}
    names: dict[str, str] = {}
    for (i, d), s in sorted(symbols.items()):
        name = wanted.get(i, {}).get(d)
        if name is None:
            continue
        old = names.get(s, name)
        if old != name:  # one size: a name the list form made gives way to the other
            if isinstance(name, _ListName):
                continue
            if not isinstance(old, _ListName):
                raise ExportError(
                    f"fusejit.onnx.export: dynamic_axes {old!r} and {name!r} have the same "
                    f"size ({int(g.inputs[i].type.shape[d])}) in the example inputs, so the "
                    "trace made them one size; trace with example inputs where they differ"
                )
        names[s] = name
    for s, _i, _d in g.notes.get("symbols", ()):
        names.setdefault(s, s)
    if len(set(names.values())) != len(names):
        raise ExportError(
            f"fusejit.onnx.export: dynamic_axes gives one name to dims of different sizes ({names})"
        )
    return g, names


def _zeros(t):
    import fusejit

    return fusejit.zeros(*[int(s) for s in t.shape], dtype=t.dtype, device=t.device)


__all__ = ["SymbolicBuilder", "dynamic_rule_of", "named_axes", "check_keys", "symbolic_graph"]
