"""The compiler proper: ``Compiler`` (what a function body records into: the tracer's node
list, run-time scalars as captured 0-d tensors, IR operands of symbolic values) and
``FunctionCompiler``, which compiles one function's statements. ``FunctionCompiler`` is put
together from mixins, one module each: statements, expressions, calls and control flow."""

from __future__ import annotations

from fusejit.base import dtypes as dt
from fusejit.eager.tensor import Tensor, tensor
from fusejit.ir.graph import Const, Node, TensorType, Value, freeze_attrs
from fusejit.jit import tracer as tr
from fusejit.jit.scripting.calls import CallsMixin
from fusejit.jit.scripting.control_flow import ControlFlowMixin
from fusejit.jit.scripting.errors import ScriptError
from fusejit.jit.scripting.expressions import ExpressionsMixin
from fusejit.jit.scripting.source import _Source
from fusejit.jit.scripting.statements import StatementsMixin
from fusejit.jit.scripting.values import _SCALAR_DTYPE, Dyn, _flat, _kind_of


class Compiler:
    """Compiles one function body into the blocks of the tracer it records into."""

    def __init__(self, tracer: tr.Tracer, device, stack: tuple) -> None:
        self.tr = tracer
        self.dev = device  # where run-time Python scalars live
        self.stack = stack  # functions being compiled (recursion is an error)
        self.always_raises = False  # (set when the body is compiled)

    # -- values -----------------------------------------------------------------------------
    def value(self, t: Tensor) -> Value:
        return self.tr.value_of(t)

    def bind(self, t: Tensor, v: Value) -> None:
        self.tr.values[id(t)] = v
        self.tr.keep.append(t)

    def fresh(self, like, v: Value | None = None):
        """A new example standing for a new value of the same type as ``like``."""
        if isinstance(like, Dyn):
            return Dyn(self.fresh(like.t, v), like.kind)
        t = Tensor._wrap(like._data, like._dtype, like._device)
        self.bind(t, v if v is not None else Value(TensorType(t.dtype, tuple(t.shape), t.device)))
        return t

    def const_tensor(self, value, dtype: dt.DType) -> Tensor:
        return tensor(value, dtype=dtype, device=self.dev)

    def materialize(self, v, kind: str | None = None) -> Dyn:
        """A constant int / float / bool as a run-time scalar (a captured 0-d tensor)."""
        if isinstance(v, Dyn):
            return v
        kind = kind or _kind_of(v)
        return Dyn(self.const_tensor(v, _SCALAR_DTYPE[kind]), kind)

    def emit(self, op: str, inputs, attrs: dict, out_types) -> list[Value]:
        outs = [Value(t) for t in out_types]
        self.tr.nodes.append(Node(op, tuple(inputs), freeze_attrs(attrs), tuple(outs)))
        return outs

    def ref(self, v):
        """The IR operand of a symbolic value (a Value or a Const)."""
        if isinstance(v, Tensor):
            return self.value(v)
        if isinstance(v, Dyn):
            return self.value(v.t)
        return Const(v)


class FunctionCompiler(StatementsMixin, ExpressionsMixin, CallsMixin, ControlFlowMixin):
    """The statements of one function, compiled with ``Compiler`` into the current block."""

    def __init__(self, cc: Compiler, src: _Source, env: dict, self_obj=None) -> None:
        self.cc = cc
        self.src = src
        self.env = env
        self.self_obj = self_obj
        self.fn = src.fn
        self.globals = getattr(src.fn, "__globals__", {})
        self.closure = {}
        code = getattr(src.fn, "__code__", None)
        if code is not None and src.fn.__closure__:
            for name, cell in zip(code.co_freevars, src.fn.__closure__):
                try:
                    self.closure[name] = cell.cell_contents
                except ValueError:
                    pass
        self.declared: dict = {}  # name -> (kind, line) of its first binding
        # tensors from outside the function (arguments, module attributes, globals): item
        # assignment into them (or their views) is refused
        self.external: list = [t for v in env.values() if isinstance(v, (Tensor, tuple, list))
                               for t in _flat(v) if isinstance(t, Tensor)]  # fmt: skip
        self.dynamic = 0  # depth of data-dependent regions (lists cannot change there)
        # id(list) -> (dynamic depth it was made at, the list): holding the list keeps its id
        # from going to another list while this function compiles
        self._list_depth: dict = {}
        self.loop_depth = 0
        # the loop nodes being compiled, innermost last: {"depth", "idx", "keys", "appends"}
        self.loops: list = []

    def mark_list(self, lst: list) -> list:
        """Record that ``lst`` was made at the current data-dependent depth."""
        self._list_depth[id(lst)] = (self.dynamic, lst)
        return lst

    def owns_list(self, lst: list) -> bool:
        """Whether ``lst`` was made in this function (not an argument or a global)."""
        entry = self._list_depth.get(id(lst))
        return entry is not None and entry[1] is lst

    def list_depth(self, lst: list) -> int:
        """The depth ``lst`` was made at (0 for a list from outside the function)."""
        entry = self._list_depth.get(id(lst))
        return entry[0] if entry is not None and entry[1] is lst else 0

    def err(self, node, msg, hint="") -> ScriptError:
        return self.src.error(node, msg, hint)

    def run(self):
        self.env["$ret"] = False
        self.block(self.src.tree.body)
        ret = self.env.get("$ret")
        if ret is True:
            return self.env["$retval"]
        if ret is False:
            return None
        raise self.err(self.src.tree, f"{self.fn.__name__}: not every path returns a value",
                       "end every path with a `return` of the same type")  # fmt: skip
