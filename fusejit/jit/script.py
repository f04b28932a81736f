"""``fusejit.script``: compile a typed subset of Python straight into the graph IR, keeping
its control flow as ``if`` / ``loop`` nodes (see ``control.py``).

The compiler walks the function's syntax tree once per input signature (dtypes, shapes and
devices of the tensors, kinds of the Python scalars). Tensor expressions are evaluated on
example tensors while the tracer records them, so every op, method, operator and built-in
layer means exactly what it means in eager mode; the compiler itself handles names, types,
Python scalars and control flow:

- ``int``, ``float`` and ``bool`` arguments and locals that may change at run time are 0-d
  int64 / float64 / bool tensors in the graph; they meet tensors as weak Python scalars do.
  Locals whose values are known when compiling (literals, shapes, module attributes) stay
  constants and fold: ``range(x.shape[0])`` or ``if self.training:`` cost nothing at run time.
- ``if`` on a tensor or a run-time scalar becomes an ``if`` node; on a constant, only the
  branch taken is compiled. ``for i in range(...)``, ``while`` and iteration over a tensor's
  first dim become a ``loop`` node whose body is compiled (and fused, and built) once.
  ``for`` over a list, tuple, ``ModuleList`` or ``Sequential`` is unrolled.
- ``break``, ``continue`` and an early ``return`` set flags that guard the rest of their
  block, so they work inside data-dependent branches and loops.
- A variable keeps its kind (tensor, int, float, bool, list, ...) for its whole life; where two
  branches or a loop's iterations meet, its tensor dtype and shape must agree too.

Anything outside the subset raises ``ScriptError`` at decoration (syntax) or at the first
call (names, types), with the file, line, column, the source line and what to write instead.
"""

from __future__ import annotations

import ast
import builtins
import functools
import inspect
import textwrap
import threading
import types
import weakref
from dataclasses import replace

import numpy as np

from .. import dispatch
from .. import dtypes as dt
from ..device import Device
from ..errors import FusejitError
from ..tensor import Tensor
from . import trace as tr
from .control import scalar_type
from .ir import Block, Const, Graph, Node, TensorType, Value, freeze_attrs

__all__ = ["script", "ScriptError", "ScriptFunction", "ScriptedCall"]


class ScriptError(FusejitError, TypeError):
    """Code that ``fusejit.script`` cannot compile. ``filename``, ``lineno``, ``col`` (1-based)
    and ``line`` locate it; the message shows them like a compiler's diagnostic."""

    def __init__(self, msg: str, filename="<unknown>", lineno=0, col=0, line="", hint=""):
        self.msg, self.filename, self.lineno, self.col, self.line = msg, filename, lineno, col, line
        self.hint = hint
        text = f"{filename}:{lineno}:{col}: error: {msg}"
        if line:
            text += f"\n{line}\n{' ' * max(col - 1, 0)}^"
        if hint:
            text += f"\n  allowed instead: {hint}"
        super().__init__(text)


# ---- what is allowed ------------------------------------------------------------------------
_UNSUPPORTED = {
    ast.Try: ("`try` is not supported in fusejit.script (errors cannot be caught in compiled "
              "code)", "check the condition with `if` before the operation"),
    ast.With: ("`with` is not supported in fusejit.script", "call the code without a context "
               "manager, or outside the scripted function"),
    ast.Raise: ("`raise` is not supported in fusejit.script", "check inputs before calling the "
                "scripted function"),
    ast.Assert: ("`assert` is not supported in fusejit.script", "check inputs before calling "
                 "the scripted function"),
    ast.Lambda: ("lambdas are not supported in fusejit.script", "a module-level function "
                 "decorated with @fusejit.script"),
    ast.FunctionDef: ("nested functions are not supported in fusejit.script", "a module-level "
                      "function decorated with @fusejit.script"),
    ast.AsyncFunctionDef: ("async functions are not supported in fusejit.script", "a plain def"),
    ast.ClassDef: ("class definitions are not supported in fusejit.script", "define the class "
                   "outside the scripted function"),
    ast.Yield: ("generators (`yield`) are not supported in fusejit.script", "return a tuple or "
                "list of tensors"),
    ast.YieldFrom: ("generators (`yield from`) are not supported in fusejit.script", "return a "
                    "tuple or list of tensors"),
    ast.GeneratorExp: ("generator expressions are not supported in fusejit.script", "a for loop "
                       "that appends to a list"),
    ast.ListComp: ("list comprehensions are not supported in fusejit.script", "a for loop that "
                   "appends to a list"),
    ast.SetComp: ("set comprehensions are not supported in fusejit.script", "a list"),
    ast.DictComp: ("dict comprehensions are not supported in fusejit.script", "tuples or lists"),
    ast.Dict: ("dicts are not supported in fusejit.script", "tuples or lists of tensors"),
    ast.Set: ("sets are not supported in fusejit.script", "tuples or lists"),
    ast.Global: ("`global` is not supported in fusejit.script", "pass the value as an argument"),
    ast.Nonlocal: ("`nonlocal` is not supported in fusejit.script", "pass the value as an "
                   "argument and return the new value"),
    ast.Delete: ("`del` is not supported in fusejit.script", "rebind the name instead"),
    ast.Import: ("imports are not supported in fusejit.script", "import at module level"),
    ast.ImportFrom: ("imports are not supported in fusejit.script", "import at module level"),
    ast.Await: ("`await` is not supported in fusejit.script", "plain calls"),
    ast.AsyncFor: ("`async for` is not supported in fusejit.script", "a for loop"),
    ast.AsyncWith: ("`async with` is not supported in fusejit.script", "plain code"),
    ast.NamedExpr: ("`:=` is not supported in fusejit.script", "a separate assignment"),
    ast.Starred: ("`*` unpacking is not supported in fusejit.script", "index the tuple or list"),
    ast.JoinedStr: ("f-strings are not supported in fusejit.script", "print the values as "
                    "separate arguments: print('loss', x)"),
}  # fmt: skip
if hasattr(ast, "Match"):
    _UNSUPPORTED[ast.Match] = ("`match` is not supported in fusejit.script", "if / elif / else")
if hasattr(ast, "TryStar"):
    _UNSUPPORTED[ast.TryStar] = _UNSUPPORTED[ast.Try]

_BUILTINS = {"range", "len", "print", "int", "float", "bool", "min", "max", "abs", "enumerate",
             "zip", "tuple", "list", "isinstance", "round"}  # fmt: skip
_IMMUTABLE = (int, float, bool, str, type(None), dt.DType, Device)
_KINDS = {bool: "bool", int: "int", float: "float"}
_SCALAR_DTYPE = {"int": dt.int64, "float": dt.float64, "bool": dt.bool_}


class Dyn:
    """A Python int / float / bool known only at run time: a 0-d example tensor (int64, float64
    or bool) that the tracer knows, and the Python kind it stands for."""

    __slots__ = ("t", "kind")

    def __init__(self, t: Tensor, kind: str) -> None:
        self.t, self.kind = t, kind


class Undef:
    """A name that is not defined on every path reaching this point."""

    __slots__ = ("why",)

    def __init__(self, why: str) -> None:
        self.why = why


def _kind_of(v) -> str:
    """The kind a variable keeps for its whole life."""
    if isinstance(v, Tensor):
        return "Tensor"
    if isinstance(v, Dyn):
        return v.kind
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, (int, np.integer)):
        return "int"
    if isinstance(v, (float, np.floating)):
        return "float"
    if v is None:
        return "None"
    if isinstance(v, (tuple, list)):
        return type(v).__name__
    return type(v).__name__


# ---- parsing --------------------------------------------------------------------------------
class _Source:
    """A function's syntax tree and where it sits in its file (for diagnostics)."""

    def __init__(self, fn) -> None:
        self.fn = fn
        try:
            lines, start = inspect.getsourcelines(fn)
            self.filename = inspect.getsourcefile(fn) or inspect.getfile(fn)
        except (OSError, TypeError) as e:
            raise ScriptError(f"cannot read the source of {getattr(fn, '__qualname__', fn)!r} "
                              f"({e})", hint="define the function in a file") from None  # fmt: skip
        self.lines = [ln.rstrip("\n") for ln in lines]
        first = self.lines[0]
        self.indent = len(first) - len(first.lstrip())
        self.start = start
        tree = ast.parse(textwrap.dedent("".join(lines)))
        defs = [n for n in tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]
        if not defs:
            raise ScriptError(f"{fn!r} is not a def", self.filename, start, 1, self.lines[0])
        self.tree = defs[0]

    def error(self, node, msg: str, hint: str = "") -> ScriptError:
        lineno = getattr(node, "lineno", 1)
        col = getattr(node, "col_offset", 0)
        k = lineno - 1
        line = self.lines[k] if 0 <= k < len(self.lines) else ""
        return ScriptError(msg, self.filename, self.start + k, col + self.indent + 1, line, hint)

    def check_syntax(self) -> None:
        """Reject constructs outside the subset (at decoration)."""
        f = self.tree
        if isinstance(f, ast.AsyncFunctionDef):
            raise self.error(f, *_UNSUPPORTED[ast.AsyncFunctionDef])
        a = f.args
        if a.vararg or a.kwarg or a.kwonlyargs or a.posonlyargs:
            raise self.error(f, "*args, **kwargs, keyword-only and positional-only parameters "
                             "are not supported in fusejit.script",
                             "plain positional parameters (with constant defaults)")  # fmt: skip
        for stmt in f.body:
            for node in ast.walk(stmt):
                bad = _UNSUPPORTED.get(type(node))
                if bad is not None:
                    raise self.error(node, *bad)


def _params_of(tree: ast.FunctionDef) -> list[str]:
    return [a.arg for a in tree.args.args]


def _assigned_names(stmts) -> set:
    """Names bound anywhere in ``stmts`` (flags for break / continue / return included)."""
    out: set = set()
    for s in stmts:
        for node in ast.walk(s):
            if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
                out.add(node.id)
            elif isinstance(node, ast.Return):
                out.update(("$ret", "$retval"))
    return out


def _has(stmts, kinds) -> bool:
    return any(isinstance(n, kinds) for s in stmts for n in ast.walk(s))


# ---- the compiler ---------------------------------------------------------------------------
_OPS = {
    ast.Add: lambda a, b: a + b, ast.Sub: lambda a, b: a - b, ast.Mult: lambda a, b: a * b,
    ast.Div: lambda a, b: a / b, ast.FloorDiv: lambda a, b: a // b,
    ast.Mod: lambda a, b: a % b, ast.Pow: lambda a, b: a**b, ast.MatMult: lambda a, b: a @ b,
    ast.BitAnd: lambda a, b: a & b, ast.BitOr: lambda a, b: a | b,
    ast.BitXor: lambda a, b: a ^ b, ast.LShift: lambda a, b: a << b,
    ast.RShift: lambda a, b: a >> b,
    ast.Eq: lambda a, b: a == b, ast.NotEq: lambda a, b: a != b, ast.Lt: lambda a, b: a < b,
    ast.LtE: lambda a, b: a <= b, ast.Gt: lambda a, b: a > b, ast.GtE: lambda a, b: a >= b,
}  # fmt: skip
_COMPARE = (ast.Eq, ast.NotEq, ast.Lt, ast.LtE, ast.Gt, ast.GtE)


class _Return(Exception):
    pass


class Compiler:
    """Compiles one function body into the blocks of the tracer it records into."""

    def __init__(self, tracer: tr.Tracer, device, stack: tuple) -> None:
        self.tr = tracer
        self.dev = device  # where run-time Python scalars live
        self.stack = stack  # functions being compiled (recursion is an error)

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
        from ..tensor import tensor

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


class FunctionCompiler:
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
        self.dynamic = 0  # depth of data-dependent regions (lists cannot change there)
        self.list_depth: dict = {}  # id(list) -> dynamic depth it was made at
        self.loop_depth = 0

    def err(self, node, msg, hint="") -> ScriptError:
        return self.src.error(node, msg, hint)

    # -- statements ---------------------------------------------------------------------------
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

    def exit_flag(self):
        """True / False / a run-time bool: whether the current block has been left."""
        flags = [self.env.get(f) for f in ("$ret", "$brk", "$cont") if f in self.env]
        if any(f is True for f in flags):
            return True
        dyn = [f for f in flags if isinstance(f, Dyn)]
        if not dyn:
            return False
        out = dyn[0]
        for f in dyn[1:]:
            out = Dyn(out.t.logical_or(f.t), "bool")
        return out

    def block(self, stmts) -> None:
        for k, s in enumerate(stmts):
            self.stmt(s)
            flag = self.exit_flag()
            if flag is True:
                return
            if flag is False:
                continue
            rest = stmts[k + 1 :]
            if rest:  # the rest of the block runs only if nothing above left it
                go = Dyn(flag.t.logical_not(), "bool")
                dyn = [f for f in ("$ret", "$brk", "$cont") if isinstance(self.env.get(f), Dyn)]

                def left(dyn=dyn):
                    # on the other side the block was left; with one flag in play, it is set
                    if len(dyn) == 1:
                        self.env[dyn[0]] = True

                self.dyn_if(go, lambda r=rest: self.block(r), left, rest[0])
            return

    def stmt(self, s) -> None:
        try:
            self._stmt(s)
        except ScriptError:
            raise
        except FusejitError as e:
            raise self.err(s, str(e)) from None
        except (TypeError, ValueError, IndexError, AttributeError, KeyError,
                ZeroDivisionError, OverflowError) as e:  # fmt: skip
            raise self.err(s, f"{type(e).__name__}: {e}") from None

    def _stmt(self, s) -> None:
        if isinstance(s, ast.Expr):
            if isinstance(s.value, ast.Constant) and isinstance(s.value.value, str):
                return  # a docstring
            self.expr(s.value)
        elif isinstance(s, ast.Assign):
            value = self.expr(s.value)
            for target in s.targets:
                self.assign(target, value, s)
        elif isinstance(s, ast.AnnAssign):
            if s.value is None:
                raise self.err(s, "a declaration needs a value", "x: float = 0.0")
            value = self.annotated(self.expr(s.value), s.annotation, s)
            self.assign(s.target, value, s)
        elif isinstance(s, ast.AugAssign):
            if not isinstance(s.target, ast.Name):
                raise self.err(s, "augmented assignment to an attribute or item is not "
                               "supported", "x = x + y on a local name")  # fmt: skip
            cur = self.load(s.target.id, s.target)
            if isinstance(cur, list):
                raise self.err(s, "`+=` on a list is not supported", "xs.append(v)")
            self.assign(s.target, self.binop(type(s.op), cur, self.expr(s.value), s), s)
        elif isinstance(s, ast.If):
            self.if_stmt(s)
        elif isinstance(s, ast.For):
            self.for_stmt(s)
        elif isinstance(s, ast.While):
            self.while_stmt(s)
        elif isinstance(s, ast.Break):
            if not self.loop_depth:
                raise self.err(s, "`break` outside a loop")
            self.env["$brk"] = True
        elif isinstance(s, ast.Continue):
            if not self.loop_depth:
                raise self.err(s, "`continue` outside a loop")
            self.env["$cont"] = True
        elif isinstance(s, ast.Return):
            value = None if s.value is None else self.expr(s.value)
            self.env["$retval"] = value
            self.env["$ret"] = True
        elif isinstance(s, ast.Pass):
            return
        else:
            raise self.err(s, f"`{type(s).__name__}` statements are not supported in "
                           "fusejit.script")  # fmt: skip

    def annotated(self, value, ann, node):
        name = ast.unparse(ann)
        base = name.split("[")[0].split(".")[-1]
        if base in ("float", "int", "bool"):
            if isinstance(value, (bool, int, float)) and not isinstance(value, Dyn):
                if base == "float" and not isinstance(value, bool):
                    return float(value)
                if _kind_of(value) == base:
                    return value
            elif isinstance(value, Dyn):
                if value.kind == base:
                    return value
                if base == "float" and value.kind == "int":
                    return Dyn(value.t.to(dt.float64), "float")
            raise self.err(node, f"annotated {base}, but the value is of kind {_kind_of(value)}")
        if base == "Tensor" and not isinstance(value, Tensor):
            raise self.err(node, f"annotated Tensor, but the value is of kind {_kind_of(value)}")
        if base in ("List", "list") and not isinstance(value, list):
            raise self.err(node, f"annotated {name}, but the value is of kind {_kind_of(value)}")
        if base in ("Tuple", "tuple") and not isinstance(value, tuple):
            raise self.err(node, f"annotated {name}, but the value is of kind {_kind_of(value)}")
        return value

    def assign(self, target, value, node) -> None:
        if isinstance(target, ast.Name):
            name = target.id
            kind = _kind_of(value)
            prev = self.declared.get(name)
            if prev is not None and prev[0] != kind and not isinstance(self.env.get(name), Undef):
                raise self.err(
                    target,
                    f"variable `{name}` was first assigned a value of kind {prev[0]} "
                    f"(line {prev[1]}) and is now assigned a {kind}",
                    "one kind per variable: use a new name, or convert with int() / float()",
                )
            if prev is None:
                self.declared[name] = (kind, self.src.start + target.lineno - 1)
            self.env[name] = value
        elif isinstance(target, (ast.Tuple, ast.List)):
            if not isinstance(value, (tuple, list)):
                raise self.err(target, f"cannot unpack a value of kind {_kind_of(value)}",
                               "unpack a tuple or list")  # fmt: skip
            if len(value) != len(target.elts):
                raise self.err(target, f"cannot unpack {len(value)} values into "
                               f"{len(target.elts)} names")  # fmt: skip
            for t, v in zip(target.elts, value):
                self.assign(t, v, node)
        elif isinstance(target, ast.Subscript):
            raise self.err(
                target,
                "assignment into a tensor or list item is not supported",
                "build a new tensor with fusejit.where / cat, or a new list",
            )
        elif isinstance(target, ast.Attribute):
            raise self.err(
                target,
                "assignment to attributes is not supported in fusejit.script",
                "keep state in local variables and return it",
            )
        else:
            raise self.err(target, "unsupported assignment target")

    # -- names --------------------------------------------------------------------------------
    def load(self, name: str, node):
        if name in self.env:
            v = self.env[name]
            if isinstance(v, Undef):
                raise self.err(node, f"`{name}` {v.why}", "define it before the branch or loop")
            return v
        if name in self.closure:
            return self.check_global(name, self.closure[name], node)
        if name in self.globals:
            return self.check_global(name, self.globals[name], node)
        if name in _BUILTINS:
            return getattr(builtins, name)
        if hasattr(builtins, name):
            raise self.err(node, f"the built-in `{name}` is not supported in fusejit.script",
                           "range, len, print, int, float, bool, min, max, abs, enumerate, "
                           "zip, tuple, list")  # fmt: skip
        raise self.err(node, f"name `{name}` is not defined")

    def check_global(self, name, v, node):
        """A global or closure value: usable when it is a constant, a tensor, a module or
        something callable that the compiler knows."""
        if isinstance(v, (*_IMMUTABLE, Tensor, types.ModuleType)) or _is_known_callable(v):
            return v
        if isinstance(v, (tuple, list)) and all(isinstance(x, (*_IMMUTABLE, Tensor)) for x in v):
            return tuple(v)
        from ..nn import Module

        if isinstance(v, Module):
            return v
        if callable(v):
            raise self.err(node, f"`{name}` is a Python {type(v).__name__}: calls to arbitrary "
                           "Python functions are not supported in fusejit.script",
                           "decorate it with @fusejit.script, trace it with fusejit.trace, "
                           "or use fusejit ops and tensor methods")  # fmt: skip
        raise self.err(node, f"`{name}` refers to a {type(v).__name__}, which fusejit.script "
                       "cannot use", "tensors, numbers, strings, fusejit ops, nn modules, "
                       "@fusejit.script or fusejit.trace functions")  # fmt: skip

    # -- expressions --------------------------------------------------------------------------
    def expr(self, e):
        m = getattr(self, "e_" + type(e).__name__, None)
        if m is None:
            raise self.err(e, f"`{type(e).__name__}` expressions are not supported in "
                           "fusejit.script")  # fmt: skip
        return m(e)

    def e_Constant(self, e):
        if isinstance(e.value, (bool, int, float, str, type(None))):
            return e.value
        raise self.err(e, f"constant {e.value!r} is not supported")

    def e_Name(self, e):
        return self.load(e.id, e)

    def e_Tuple(self, e):
        return tuple(self.expr(x) for x in e.elts)

    def e_List(self, e):
        out = [self.expr(x) for x in e.elts]
        self.list_depth[id(out)] = self.dynamic
        return out

    def e_Attribute(self, e):
        obj = self.expr(e.value)
        name = e.attr
        if isinstance(obj, list) and name in ("append", "extend", "insert", "pop"):
            return _ListMethod(obj, name)  # so that growth inside a loop is caught
        if isinstance(obj, Dyn):
            raise self.err(e, f"attribute `{name}` of a run-time {obj.kind}")
        if isinstance(obj, Tensor):
            if name in ("shape", "dtype", "device", "ndim", "T", "mT", "is_cuda"):
                return getattr(obj, name)
            if name in ("item", "tolist", "numpy", "__iter__") or name.endswith("_"):
                return _TensorMethod(obj, name)
            if not hasattr(obj, name):
                raise self.err(e, f"tensors have no attribute `{name}`")
            return _TensorMethod(obj, name)
        try:
            v = getattr(obj, name)
        except AttributeError:
            raise self.err(e, f"{type(obj).__name__} has no attribute `{name}`") from None
        from ..nn import Module

        if isinstance(obj, Module) and isinstance(v, types.MethodType) and not _is_fusejit_fn(v):
            return _UserMethod(obj, v.__func__)
        if isinstance(v, list):
            return tuple(v)
        return v

    def e_Subscript(self, e):
        obj = self.expr(e.value)
        idx = self.index(e.slice)
        if isinstance(obj, Tensor):
            if isinstance(idx, Dyn):
                return self.select(obj, idx, 0, e)
            if isinstance(idx, tuple) and any(isinstance(i, Dyn) for i in idx):
                raise self.err(e, "a run-time index must be the only index", "x[i] or x[i][j]")
            if isinstance(idx, Tensor):
                raise self.err(e, "indexing with a tensor is not supported",
                               "fusejit.where, or a run-time int index x[i]")  # fmt: skip
            return obj[idx]
        if isinstance(idx, Dyn):
            raise self.err(e, f"indexing a {type(obj).__name__} with a run-time int",
                           "an index known when compiling (a literal, a range over a constant, "
                           "or a for loop over the list)")  # fmt: skip
        return obj[idx]

    def index(self, s):
        if isinstance(s, ast.Slice):
            parts = [None if p is None else self.expr(p) for p in (s.lower, s.upper, s.step)]
            if any(isinstance(p, (Dyn, Tensor)) for p in parts):
                raise self.err(s, "slice bounds must be known when compiling",
                               "literals or sizes from .shape")  # fmt: skip
            return slice(*parts)
        if isinstance(s, ast.Tuple):
            return tuple(self.index(x) for x in s.elts)
        return self.expr(s)

    def select(self, x: Tensor, i: Dyn, dim: int, node) -> Tensor:
        if i.kind != "int":
            raise self.err(node, f"a tensor index must be an int, got a {i.kind}")
        shape = tuple(x.shape)
        if not shape:
            raise self.err(node, "cannot index a 0-d tensor")
        from .control import select

        ex = select(x, 0 if shape[dim] else 0, dim) if shape[dim] else None
        if ex is None:
            raise self.err(node, "cannot index an empty dim at run time")
        (v,) = self.cc.emit(
            "select",
            [self.cc.ref(x), self.cc.ref(i)],
            {"dim": dim},
            [TensorType(x.dtype, shape[:dim] + shape[dim + 1 :], x.device)],
        )
        ex = Tensor._wrap(ex._data, ex._dtype, ex._device)
        self.cc.bind(ex, v)
        return ex

    def e_UnaryOp(self, e):
        v = self.expr(e.operand)
        if isinstance(e.op, ast.Not):
            b = self.truth(v, e)
            return (not b) if isinstance(b, bool) else Dyn(b.t.logical_not(), "bool")
        if isinstance(v, Dyn):
            if isinstance(e.op, ast.USub):
                return self.binop(ast.Sub, 0 if v.kind != "float" else 0.0, v, e)
            if isinstance(e.op, ast.UAdd):
                return v
            raise self.err(e, "`~` on a run-time scalar is not supported")
        op = {ast.USub: lambda a: -a, ast.UAdd: lambda a: +a, ast.Invert: lambda a: ~a}
        return op[type(e.op)](v)

    def e_BinOp(self, e):
        return self.binop(type(e.op), self.expr(e.left), self.expr(e.right), e)

    def e_BoolOp(self, e):
        vals = [self.truth(self.expr(x), x) for x in e.values]
        is_and = isinstance(e.op, ast.And)
        out = vals[0]
        for v in vals[1:]:
            if isinstance(out, bool) and isinstance(v, bool):
                out = (out and v) if is_and else (out or v)
            elif isinstance(out, bool) or isinstance(v, bool):
                c, d = (out, v) if isinstance(out, bool) else (v, out)
                out = (d if c else False) if is_and else (True if c else d)
            else:
                out = Dyn(out.t.logical_and(v.t) if is_and else out.t.logical_or(v.t), "bool")
        return out

    def e_Compare(self, e):
        left = self.expr(e.left)
        result = True
        for op, comp in zip(e.ops, e.comparators):
            right = self.expr(comp)
            if isinstance(op, (ast.Is, ast.IsNot)):
                if isinstance(left, (Tensor, Dyn)) or isinstance(right, (Tensor, Dyn)):
                    r = False
                else:
                    r = left is right
                r = r if isinstance(op, ast.Is) else not r
            elif isinstance(op, (ast.In, ast.NotIn)):
                raise self.err(e, "`in` is not supported in fusejit.script", "== comparisons")
            else:
                r = self.binop(type(op), left, right, e)
            if result is True:
                result = r
            elif isinstance(result, Tensor) or isinstance(r, Tensor):
                raise self.err(e, "chained comparisons of tensors are not supported",
                               "(a < b) & (b < c)")  # fmt: skip
            else:
                result = self.e_bool_and(result, r)
            left = right
        return result

    def e_bool_and(self, a, b):
        a, b = self.truth(a, None), self.truth(b, None)
        if isinstance(a, bool):
            return b if a else False
        if isinstance(b, bool):
            return a if b else False
        return Dyn(a.t.logical_and(b.t), "bool")

    def e_IfExp(self, e):
        c = self.truth(self.expr(e.test), e.test)
        if isinstance(c, bool):
            return self.expr(e.body if c else e.orelse)
        self.env["$ifexp"] = Undef("")
        self.dyn_if(c, lambda: self.env.__setitem__("$ifexp", self.expr(e.body)),
                    lambda: self.env.__setitem__("$ifexp", self.expr(e.orelse)), e)  # fmt: skip
        return self.env.pop("$ifexp")

    def binop(self, op, a, b, node):
        fn = _OPS.get(op)
        if fn is None:
            raise self.err(node, f"operator {op.__name__} is not supported")
        ta, tb = isinstance(a, Tensor), isinstance(b, Tensor)
        da, db = isinstance(a, Dyn), isinstance(b, Dyn)
        if not (ta or tb or da or db):
            return fn(a, b)  # constants fold when compiling
        for v in (a, b):
            if not isinstance(v, (Tensor, Dyn, bool, int, float, np.number)):
                raise self.err(node, f"operator {op.__name__} with a {_kind_of(v)}")
        if ta or tb:
            tensors = [x for x in (a, b) if isinstance(x, Tensor)]
            tdt = tensors[0].dtype if len(tensors) == 1 else dt.result_type(*tensors)
            a = self.weak(a, tdt)
            b = self.weak(b, tdt)
            return fn(a, b)
        # run-time scalars only: Python's rules on 0-d int64 / float64 / bool tensors
        ka, kb = _kind_of(a), _kind_of(b)
        kinds = {ka, kb}
        if op in _COMPARE:
            k = "float" if "float" in kinds else "int"
            return Dyn(fn(self.as_kind(a, k), self.as_kind(b, k)), "bool")
        if op in (ast.BitAnd, ast.BitOr, ast.BitXor) and kinds == {"bool"}:
            return Dyn(fn(self.as_kind(a, "bool"), self.as_kind(b, "bool")), "bool")
        k = "float" if "float" in kinds or op is ast.Div else "int"
        if op is ast.MatMult:
            raise self.err(node, "`@` needs tensors")
        return Dyn(fn(self.as_kind(a, k), self.as_kind(b, k)), k)

    def as_kind(self, v, kind: str):
        """A run-time scalar as a 0-d tensor of ``kind``'s dtype; constants stay Python values
        (weak scalars) unless the kind differs."""
        d = _SCALAR_DTYPE[kind]
        if isinstance(v, Dyn):
            return v.t if v.t.dtype is d else v.t.to(d)
        return {"int": int, "float": float, "bool": bool}[kind](v)

    def weak(self, v, tdt: dt.DType):
        """A run-time scalar meeting tensors of dtype ``tdt``: cast to the dtype a weak Python
        scalar of its kind would take there, so promotion is as in eager mode."""
        if not isinstance(v, Dyn):
            return v
        kind = {"bool": "b", "int": "i", "float": "f"}[v.kind]
        return v.t.to(dt.promote_with_scalar(tdt, kind))

    def truth(self, v, node):
        """Python bool (when known) or a run-time bool ``Dyn``."""
        if isinstance(v, Dyn):
            return v if v.kind == "bool" else Dyn(v.t != 0, "bool")
        if isinstance(v, Tensor):
            if v.numel() != 1:
                raise self.err(
                    node,
                    f"the truth value of a tensor of shape {list(v.shape)} is ambiguous",
                    "a one-element tensor, or .any() / .all()",
                )
            t = v.reshape(()) if v.shape else v
            return Dyn(t if t.dtype is dt.bool_ else t != 0, "bool")
        if isinstance(v, (list, tuple)):
            return bool(len(v))
        return bool(v)

    def e_Call(self, e):
        fn = self.expr(e.func)
        args = [self.expr(a) for a in e.args]
        kwargs = {k.arg: self.expr(k.value) for k in e.keywords}
        if None in kwargs:
            raise self.err(e, "`**` in calls is not supported")
        return self.call(fn, args, kwargs, e)

    def call(self, fn, args, kwargs, node):
        from ..nn import Module, ModuleList, Sequential

        if fn is print:
            return self.print_(args, kwargs, node)
        if fn in (int, float, bool):
            return self.convert(fn, args, node)
        if fn is len:
            (x,) = args
            if isinstance(x, Tensor):
                return x.shape[0]
            if isinstance(x, (list, tuple, Module)):
                return len(x)
            raise self.err(node, f"len() of a {_kind_of(x)}")
        if fn in (min, max, abs, round):
            if any(isinstance(a, Dyn) for a in args) or any(isinstance(a, Tensor) for a in args):
                return self.scalar_builtin(fn, args, node)
            return fn(*args, **kwargs)
        if fn in (tuple, list):
            (x,) = args
            out = fn(x)
            if fn is list:
                self.list_depth[id(out)] = self.dynamic
            return out
        if fn is isinstance:
            raise self.err(node, "isinstance() is not supported", "separate scripted functions")
        if fn in (range, enumerate, zip):
            raise self.err(node, f"{fn.__name__}() can only be iterated over by a for loop")
        if isinstance(fn, _ListMethod):
            return fn.call(self, args, node)
        if isinstance(fn, _TensorMethod):
            return self.tensor_method(fn, args, kwargs, node)
        if isinstance(fn, (ScriptFunction, BoundScript)):
            return self.call_script(fn, args, kwargs, node)
        if isinstance(fn, _UserMethod):
            sf = _method_script(fn.func)
            return self.call_script(BoundScript(sf, fn.obj), args, kwargs, node)
        from .api import TracedFunction

        if isinstance(fn, TracedFunction):
            return self.call_traced(fn, args, kwargs, node)
        if isinstance(fn, Sequential):
            (x,) = args
            for m in fn._modules.values():
                x = self.call(m, [x], {}, node)
            return x
        if isinstance(fn, ModuleList):
            raise self.err(node, "a ModuleList is not callable", "iterate over it with for")
        if isinstance(fn, Module):
            if getattr(fn, "_fusejit_executor", None) is not None:
                fn = fn._orig_mod
            if type(fn).__module__ == "fusejit.nn":  # built-in layers: no control flow
                return self.call_fusejit(fn, args, kwargs, node)
            fwd = type(fn).forward
            sf = fwd if isinstance(fwd, ScriptFunction) else _method_script(fwd)
            return self.call_script(BoundScript(sf, fn), args, kwargs, node)
        if _is_fusejit_fn(fn):
            return self.call_fusejit(fn, args, kwargs, node)
        if getattr(fn, "_fusejit_executor", None) is not None:
            raise self.err(
                node,
                "calling a fusejit.optimize function from a scripted one is not supported",
                "call the function it wraps, or trace it",
            )
        name = getattr(fn, "__qualname__", repr(fn))
        raise self.err(
            node,
            f"cannot call `{name}`: calls to arbitrary Python functions are "
            "not supported in fusejit.script",
            "fusejit ops and tensor methods, "
            "nn modules, @fusejit.script functions or fusejit.trace functions",
        )

    def call_fusejit(self, fn, args, kwargs, node):
        from ..ops.registry import OPS

        name = getattr(fn, "__name__", "")
        op = OPS.get(name)
        elementwise = op is not None and op.kind == "elementwise"
        tensors = [a for a in args if isinstance(a, Tensor)]
        conv = []
        for a in list(args) + list(kwargs.values()):
            if _contains_dyn(a):
                if not elementwise or not tensors or not isinstance(a, Dyn):
                    raise self.err(
                        node,
                        f"{name or fn!r}: a run-time {_kind_of(a)} cannot be "
                        "passed here; sizes, dims and options must be known when "
                        "compiling",
                        "literals, .shape sizes or module attributes",
                    )
        tdt = (
            (tensors[0].dtype if len(tensors) == 1 else dt.result_type(*tensors))
            if tensors
            else None
        )
        conv = [self.weak(a, tdt) if isinstance(a, Dyn) else a for a in args]
        kw = {k: (self.weak(v, tdt) if isinstance(v, Dyn) else v) for k, v in kwargs.items()}
        return _wrap_lists(self, fn(*conv, **kw))

    def tensor_method(self, m, args, kwargs, node):
        name = m.name
        if name == "item":
            return self.convert(None, [m.obj], node)
        if name in ("tolist", "numpy", "__iter__"):
            raise self.err(node, f".{name}() reads a tensor's values into Python, which "
                           "fusejit.script cannot do", ".item() on one element, or keep "
                           "working with tensors")  # fmt: skip
        if name.endswith("_") and not name.startswith("_"):
            raise self.err(node, f"in-place .{name}() is not supported in fusejit.script",
                           f"the out-of-place form: x = x.{name[:-1]}(...)")  # fmt: skip
        for a in list(args) + list(kwargs.values()):
            if _contains_dyn(a):
                from ..ops.registry import OPS

                op = OPS.get(name)
                if op is None or op.kind != "elementwise" or not isinstance(a, Dyn):
                    raise self.err(
                        node,
                        f".{name}(): a run-time {_kind_of(a)} cannot be "
                        "passed here; sizes, dims and options must be known when "
                        "compiling",
                        "literals, .shape sizes or module attributes",
                    )
        tdt = m.obj.dtype
        conv = [self.weak(a, tdt) for a in args]
        kw = {k: self.weak(v, tdt) for k, v in kwargs.items()}
        return _wrap_lists(self, getattr(m.obj, name)(*conv, **kw))

    def convert(self, fn, args, node):
        """int(x) / float(x) / bool(x) / x.item() of a tensor or run-time scalar."""
        if len(args) != 1:
            raise self.err(node, "conversion takes one argument")
        (x,) = args
        if isinstance(x, Tensor):
            if x.numel() != 1:
                raise self.err(node, f"cannot convert a tensor of shape {list(x.shape)} to a "
                               "Python scalar", "a one-element tensor")  # fmt: skip
            t = x.reshape(()) if x.shape else x
            if fn is None:
                fn = bool if t.dtype is dt.bool_ else float if t.dtype.is_floating_point else int
            kind = _KINDS[fn]
            if kind == "bool":
                return Dyn(t if t.dtype is dt.bool_ else t != 0, "bool")
            return Dyn(t.to(_SCALAR_DTYPE[kind]), kind)
        if isinstance(x, Dyn):
            kind = _KINDS[fn]
            if kind == "bool":
                return self.truth(x, node)
            return Dyn(x.t.to(_SCALAR_DTYPE[kind]), kind)
        return fn(x)

    def scalar_builtin(self, fn, args, node):
        if fn is abs:
            (x,) = args
            return Dyn(x.t.abs(), x.kind) if isinstance(x, Dyn) else x.abs()
        if fn is round:
            raise self.err(node, "round() of a run-time value is not supported", "fusejit.round")
        if len(args) != 2 or any(isinstance(a, Tensor) for a in args):
            raise self.err(node, f"{fn.__name__}() of run-time values takes two scalars",
                           "fusejit.maximum / fusejit.minimum for tensors")  # fmt: skip
        kinds = {_kind_of(a) for a in args}
        k = "float" if "float" in kinds else "int"
        a, b = (self.as_kind(a, k) for a in args)  # a constant stays a weak Python scalar
        from .. import functional as F

        return Dyn((F.maximum if fn is max else F.minimum)(a, b), k)

    def print_(self, args, kwargs, node):
        sep = kwargs.pop("sep", " ")
        end = kwargs.pop("end", "\n")
        if kwargs or not isinstance(sep, str) or not isinstance(end, str):
            raise self.err(node, "print() takes values and constant sep= / end= only")
        kinds, inputs = [], []
        for a in args:
            if isinstance(a, Tensor):
                kinds.append("tensor")
                inputs.append(self.cc.ref(a))
            elif isinstance(a, Dyn):
                kinds.append(a.kind)
                inputs.append(self.cc.ref(a))
            elif isinstance(a, (str, int, float, bool, type(None))):
                kinds.append("const")
                inputs.append(Const(a))
            else:
                raise self.err(node, f"print() of a {_kind_of(a)} is not supported",
                               "print tensors, numbers and strings")  # fmt: skip
        self.cc.emit("print", inputs, {"kinds": tuple(kinds), "sep": sep, "end": end}, [])
        return None

    def call_script(self, sf, args, kwargs, node):
        if kwargs:
            args = sf.bind_args(args, kwargs, self.err(node, "bad keyword arguments"))
        try:
            return inline_script(self.cc, sf, args, node, self)
        except ScriptError:
            raise

    def call_traced(self, fn, args, kwargs, node):
        if kwargs:
            raise self.err(node, "keyword arguments to a traced function")
        if any(_contains_dyn(a) for a in args):
            raise self.err(node, "a traced function takes tensors (its Python scalars were "
                           "frozen when it was traced)")  # fmt: skip
        spec, tensors = tr.flatten_inputs(tuple(args))
        if spec != fn.in_spec:
            raise self.err(node, f"{fn.__name__} was traced with another structure of "
                           "arguments")  # fmt: skip
        problem = fn.plan.check(tensors)
        if problem is not None:
            raise self.err(
                node,
                f"{fn.__name__} was traced for other inputs: {problem}",
                "script the function instead, or trace it for these inputs",
            )
        from .interpret import interpret

        outs = interpret(fn.raw_graph, *tensors)
        return _wrap_lists(self, tr.unflatten_outputs(fn.out_spec, outs))

    # -- control flow -------------------------------------------------------------------------
    def if_stmt(self, s) -> None:
        c = self.truth(self.expr(s.test), s.test)
        if isinstance(c, bool):  # known when compiling: only the branch taken exists
            self.block(s.body if c else s.orelse)
            return
        self.dyn_if(c, lambda: self.block(s.body), lambda: self.block(s.orelse), s)

    def compile_region(self, fn):
        """Run ``fn`` (which compiles statements) into a new node list; returns it."""
        saved = self.cc.tr.nodes
        nodes: list = []
        self.cc.tr.nodes = nodes
        self.dynamic += 1
        try:
            fn()
        finally:
            self.dynamic -= 1
            self.cc.tr.nodes = saved
        return nodes

    def dyn_if(self, cond: Dyn, then_fn, else_fn, node) -> None:
        before = dict(self.env)
        branches = []
        for f in (then_fn, else_fn):
            self.env = dict(before)
            nodes = self.compile_region(f)
            branches.append((nodes, self.env))
        self.env = dict(before)
        (n1, e1), (n2, e2) = branches
        self.env_cond = cond
        names = [k for k in dict.fromkeys(list(e1) + list(e2))
                 if e1.get(k, _MISSING) is not before.get(k, _MISSING)
                 or e2.get(k, _MISSING) is not before.get(k, _MISSING)]  # fmt: skip
        line = self.src.start + getattr(node, "lineno", 1) - 1
        merged_specs = []  # (name, spec, leaves1, leaves2)
        for k in names:
            a, b = e1.get(k, _MISSING), e2.get(k, _MISSING)
            if k == "$retval":  # a return on one side only: the other side's value is unused
                if a is _MISSING or isinstance(a, Undef):
                    a = self.dummy_into(n1, b)
                if b is _MISSING or isinstance(b, Undef):
                    b = self.dummy_into(n2, a)
            if a is _MISSING or b is _MISSING or isinstance(a, Undef) or isinstance(b, Undef):
                self.env[k] = Undef(f"is defined only in one branch of the `if` at line {line}")
                continue
            if k in ("$brk", "$cont", "$ret") and a is False and b is False:
                self.env[k] = False
                continue
            merged_specs.append((k, a, b))
        # leaves that differ between the branches become outputs of the if node
        outs1, outs2, rebuild = [], [], []
        for k, a, b in merged_specs:
            spec = self.merge_spec(k, a, b, node, n1, n2, outs1, outs2)
            rebuild.append((k, spec))
        blk1, caps1 = _close(n1, [self.cc.ref(v) for v in outs1], ())
        blk2, caps2 = _close(n2, [self.cc.ref(v) for v in outs2], ())
        caps = list(dict.fromkeys(caps1 + caps2))
        blk1 = _with_params(blk1, caps1, caps)
        blk2 = _with_params(blk2, caps2, caps)
        out_vals = [Value(self.cc.ref(v).type) for v in outs1]
        self.cc.tr.nodes.append(Node("if", (self.cc.ref(cond), *caps), (), tuple(out_vals),
                                     (blk1, blk2)))  # fmt: skip
        new = [self.cc.fresh(v, o) for v, o in zip(outs1, out_vals)]
        it = iter(new)
        for k, spec in rebuild:
            self.env[k] = _rebuild(spec, it)

    def merge_spec(self, name, a, b, node, n1, n2, outs1, outs2):
        """The structure of a variable after an if; collects the leaves that become outputs."""
        label = "the return value" if name == "$retval" else f"variable `{name}`"
        if isinstance(a, (tuple, list)) or isinstance(b, (tuple, list)):
            if type(a) is not type(b) or len(a) != len(b):
                raise self.err(
                    node,
                    f"{label} is a {_describe(a)} in one branch and a {_describe(b)} in the other",
                    "the same type on both branches",
                )
            return (type(a), [self.merge_spec(name, x, y, node, n1, n2, outs1, outs2)
                              for x, y in zip(a, b)])  # fmt: skip
        if a is b:
            return ("same", a)
        if isinstance(a, Tensor) or isinstance(b, Tensor):
            if not (isinstance(a, Tensor) and isinstance(b, Tensor)):
                raise self.err(
                    node,
                    f"{label} is a {_describe(a)} in one branch and a {_describe(b)} in the other",
                    "the same type on both branches",
                )
            if (a.dtype, tuple(a.shape), a.device) != (b.dtype, tuple(b.shape), b.device):
                raise self.err(node, f"{label} has type {_describe(a)} in one branch and "
                               f"{_describe(b)} in the other (types must match where branches "
                               "meet)", "cast or reshape so both branches give one dtype and "
                               "shape")  # fmt: skip
            outs1.append(a)
            outs2.append(b)
            return ("out",)
        ka, kb = _kind_of(a), _kind_of(b)
        if ka != kb or ka not in ("int", "float", "bool"):
            if not isinstance(a, (Dyn,)) and not isinstance(b, Dyn) and a == b and ka == kb:
                return ("same", a)
            raise self.err(
                node,
                f"{label} is a {ka} in one branch and a {kb} in the other",
                "one type on both branches (convert with int() / float())",
            )
        if not isinstance(a, Dyn) and not isinstance(b, Dyn):
            if a == b:
                return ("same", a)
            if ka == "bool":  # True on one side, False on the other: the condition itself
                c = self.env_cond
                return ("same", c if a else Dyn(c.t.logical_not(), "bool"))
        outs1.append(self.into(n1, lambda: self.cc.materialize(a, ka)))
        outs2.append(self.into(n2, lambda: self.cc.materialize(b, kb)))
        return ("out",)

    def into(self, nodes, fn):
        saved = self.cc.tr.nodes
        self.cc.tr.nodes = nodes
        try:
            return fn()
        finally:
            self.cc.tr.nodes = saved

    def dummy_into(self, nodes, like):
        return self.into(nodes, lambda: self.dummy(like))

    def dummy(self, like):
        """A value of ``like``'s type that is never read (the other side of a return)."""
        if isinstance(like, Tensor):
            z = self.cc.const_tensor(0, like.dtype) if like.device == self.cc.dev else None
            if z is None:
                from ..tensor import tensor

                z = tensor(0, dtype=like.dtype, device=like.device)
            return z.expand(*like.shape) if like.shape else z.clone()
        if isinstance(like, Dyn):
            return self.cc.materialize({"int": 0, "float": 0.0, "bool": False}[like.kind],
                                       like.kind)  # fmt: skip
        if isinstance(like, (tuple, list)):
            return type(like)(self.dummy(x) for x in like)
        return like

    def for_stmt(self, s) -> None:
        if s.orelse:
            raise self.err(s, "`for ... else` is not supported", "a flag variable")
        it = s.iter
        if isinstance(it, ast.Call) and isinstance(it.func, ast.Name):
            fn = self.load(it.func.id, it.func)
            if fn is range:
                args = [self.expr(a) for a in it.args]
                return self.range_loop(s, args)
            if fn in (enumerate, zip):
                seqs = [self.expr(a) for a in it.args]
                if fn is enumerate and len(seqs) == 2 and isinstance(seqs[1], int):
                    seqs, start = seqs[:1], seqs[1]
                else:
                    start = 0
                items = [self.static_items(q, it) for q in seqs]
                if fn is enumerate:
                    (only,) = items
                    return self.unrolled(s, [(start + i, x) for i, x in enumerate(only)])
                return self.unrolled(s, list(zip(*items)))
        seq = self.expr(it)
        if isinstance(seq, Tensor):
            if not seq.shape:
                raise self.err(it, "iteration over a 0-d tensor")
            return self.range_loop(s, [seq.shape[0]], over=seq)
        return self.unrolled(s, self.static_items(seq, it))

    def static_items(self, seq, node):
        from ..nn import ModuleList, Sequential

        if isinstance(seq, (ModuleList, Sequential)):
            return list(seq._modules.values())
        if isinstance(seq, (list, tuple)):
            return list(seq)
        raise self.err(node, f"cannot iterate over a {_kind_of(seq)}",
                       "range(...), a tensor, a list or tuple, or a ModuleList")  # fmt: skip

    def unrolled(self, s, items) -> None:
        """``for x in <list>``: the body once per item, compiled in sequence."""
        saved = {f: self.env.get(f, _MISSING) for f in ("$brk", "$cont")}
        self.env["$brk"] = False
        self.loop_depth += 1
        try:
            self._unrolled(s, items)
        finally:
            self.loop_depth -= 1
        for f, v in saved.items():
            if v is _MISSING:
                self.env.pop(f, None)
            else:
                self.env[f] = v

    def _unrolled(self, s, items) -> None:
        for k, item in enumerate(items):
            self.env["$cont"] = False
            self.assign(s.target, item, s)
            self.block(s.body)
            self.env["$cont"] = False
            brk = self.exit_flag()
            if brk is True:
                return
            if isinstance(brk, Dyn) and k + 1 < len(items):
                go = Dyn(brk.t.logical_not(), "bool")
                self.dyn_if(go, lambda r=items[k + 1 :]: self._unrolled(s, r), lambda: None, s)
                return

    def range_loop(self, s, args, over: Tensor | None = None) -> None:
        if not 1 <= len(args) <= 3:
            raise self.err(s.iter, "range() takes 1 to 3 arguments")
        for a in args:
            if (
                not isinstance(a, (int, Dyn))
                or isinstance(a, bool)
                or (isinstance(a, Dyn) and a.kind != "int")
            ):
                raise self.err(s.iter, f"range() of a {_kind_of(a)}", "ints")
        start, stop, step = (0, args[0], 1) if len(args) == 1 else (*args, 1)[:3]
        if isinstance(step, Dyn):
            raise self.err(s.iter, "range() step must be known when compiling", "a literal")
        if step == 0:
            raise self.err(s.iter, "range() step must not be zero")
        if not isinstance(start, Dyn) and not isinstance(stop, Dyn):
            trip = len(range(start, stop, step))
            if trip == 0:
                return
        elif isinstance(start, int) and start == 0 and step == 1:
            trip = stop  # (a negative count runs no iteration)
        else:
            # trip = max(0, ceil((stop - start) / step)), in int64
            span = self.binop(ast.Sub, stop, start, s)
            adj = self.binop(ast.Add, span, step - 1 if step > 0 else step + 1, s)
            trip = self.binop(ast.FloorDiv, adj, step, s)
            trip = self.scalar_builtin(max, [trip, 0], s)

        def target(i: Dyn):
            if over is not None:
                return self.select(over, i, 0, s.iter)
            v = i
            if step != 1:
                v = self.binop(ast.Mult, v, step, s)
            if not (isinstance(start, int) and start == 0):
                v = self.binop(ast.Add, v, start, s)
            return v

        self.dyn_loop(s, trip, True, s.body, target, None)

    def while_stmt(self, s) -> None:
        if s.orelse:
            raise self.err(s, "`while ... else` is not supported", "a flag variable")
        c = self.truth(self.expr(s.test), s.test)
        if c is False:
            return
        self.dyn_loop(s, -1, c, s.body, None, s.test)

    def dyn_loop(self, s, trip, cond0, body, target, test) -> None:
        """A ``loop`` node: the body compiled once with its loop-carried variables as block
        parameters. Variables first bound inside the loop are not defined after it."""
        assigned = _assigned_names(body) | (_assigned_names([ast.Expr(test)]) if test else set())
        tgt_names = _assigned_names([ast.Assign(targets=[s.target], value=ast.Constant(0))]) \
            if isinstance(s, ast.For) else set()  # fmt: skip
        before = dict(self.env)
        carried = [
            k
            for k in before
            if k in assigned
            and k not in tgt_names
            and not isinstance(before[k], Undef)
            and k not in ("$brk", "$cont")
        ]
        if "$ret" in assigned and "$ret" not in carried:
            carried.append("$ret")
        line = self.src.start + s.lineno - 1
        for _attempt in range(3):
            try:
                new_carried = self._dyn_loop(s, trip, cond0, body, target, test, before,
                                             carried, line)  # fmt: skip
            except _Retry as r:
                self.env = dict(before)
                for k, v in r.extra.items():
                    before[k] = v
                    self.env[k] = v
                    carried.append(k)
                continue
            return new_carried
        raise self.err(s, "loop-carried values did not settle")  # pragma: no cover

    def _dyn_loop(self, s, trip, cond0, body, target, test, before, carried, line) -> None:
        cc = self.cc
        # constants that the loop may change become run-time values first
        init = {}
        for k in carried:
            v = self.env[k]
            init[k] = self.dynamic_leaves(v)
            self.env[k] = init[k]
        init_leaves = []
        specs = {k: _spec(init[k], init_leaves) for k in carried}
        outer_env = dict(self.env)
        idx_t = cc.const_tensor(0, dt.int64)
        idx_v = Value(scalar_type("int", self.cc.dev), "i")
        cc.bind(idx_t, idx_v)
        idx = Dyn(idx_t, "int")
        params = [cc.fresh(x) for x in init_leaves]
        pit = iter(params)
        for k in carried:
            self.env[k] = _rebuild(specs[k], pit)
        self.env["$brk"] = False
        self.env["$cont"] = False
        self.loop_depth += 1
        result: dict = {}

        def compile_body():
            if target is not None:
                self.assign(s.target, target(idx), s)
            self.block(body)
            self.env["$cont"] = False
            go = self.env.get("$brk")
            stop = self.env.get("$ret", False)
            flags = self.e_bool_or(go, stop)
            nxt = self.truth(flags, s)
            nxt = (not nxt) if isinstance(nxt, bool) else Dyn(nxt.t.logical_not(), "bool")
            if test is not None and nxt is not False:
                c = self.truth(self.expr(test), test)
                nxt = self.e_bool_and(nxt, c)
            result["next"] = nxt
            result["env"] = dict(self.env)

        try:
            nodes = self.compile_region(compile_body)
        finally:
            self.loop_depth -= 1
        env_after = result["env"]
        # a return value first bound inside the loop must be carried: compile again with it
        extra = {}
        if "$retval" in env_after and "$retval" not in carried:
            rv = env_after["$retval"]
            if not isinstance(rv, Undef):
                self.env = dict(outer_env)
                extra["$retval"] = self.dummy(rv)
        if extra:
            raise _Retry(extra)
        out_leaves = []
        for k in carried:
            v = env_after.get(k, _MISSING)
            if v is _MISSING or isinstance(v, Undef):
                raise self.err(
                    s,
                    f"variable `{k}` is not defined at the end of every loop iteration",
                    "assign it on every path through the loop body",
                )
            leaves: list = []
            try:
                sp = _spec(v, leaves)
            except TypeError:
                sp = None
            if sp != specs[k]:
                raise self.err(
                    s,
                    f"variable `{k}` changes type in the loop at line {line}: "
                    f"{_describe(init[k])} before it, {_describe(v)} after one "
                    "iteration",
                    "keep each loop variable's dtype and shape",
                )
            for p, q in zip([x for x in _flat(init[k])], leaves):
                qq = q
                if not isinstance(q, (Tensor, Dyn)):
                    qq = self.into(nodes, lambda q=q, p=p: cc.materialize(q, p.kind))
                elif _type_of(q) != _type_of(p):
                    raise self.err(
                        s,
                        f"variable `{k}` changes type in the loop at line {line}:"
                        f" {_describe(p)} before it, {_describe(q)} after one "
                        "iteration",
                        "keep each loop variable's dtype and shape",
                    )
                out_leaves.append(qq)
        nxt = result["next"]
        nxt_ref = Const(nxt) if isinstance(nxt, bool) else cc.ref(nxt)
        own = [idx_v] + [cc.ref(p) for p in params]
        blk, caps = _close(nodes, [nxt_ref] + [cc.ref(v) for v in out_leaves], own)
        blk = Block(own + blk.params, blk.nodes, blk.results)
        trip_ref = Const(trip) if isinstance(trip, int) else cc.ref(trip)
        c0 = Const(cond0) if isinstance(cond0, bool) else cc.ref(cond0)
        outs = [Value(cc.ref(x).type) for x in init_leaves]
        cc.tr.nodes.append(Node(
            "loop", (trip_ref, c0, *[cc.ref(x) for x in init_leaves], *caps),
            (("n_carried", len(init_leaves)),), tuple(outs), (blk,)))  # fmt: skip
        self.env = dict(outer_env)
        new = iter([cc.fresh(x, o) for x, o in zip(init_leaves, outs)])
        for k in carried:
            self.env[k] = _rebuild(specs[k], new)
        for k in env_after:
            if k not in self.env and not k.startswith("$"):
                self.env[k] = Undef(f"is bound only inside the loop at line {line}")
            elif k not in carried and k in before and env_after[k] is not before.get(k) \
                    and not k.startswith("$"):  # fmt: skip
                # an unrolled-for target or a name the loop rebinds but had no type before
                self.env[k] = Undef(f"is rebound inside the loop at line {line}")
        for f in ("$brk", "$cont"):
            if f in before:
                self.env[f] = before[f]
            else:
                self.env.pop(f, None)

    def e_bool_or(self, a, b):
        a, b = self.truth(a, None), self.truth(b, None)
        if isinstance(a, bool):
            return True if a else b
        if isinstance(b, bool):
            return True if b else a
        return Dyn(a.t.logical_or(b.t), "bool")

    def dynamic_leaves(self, v):
        if isinstance(v, (tuple, list)):
            return type(v)(self.dynamic_leaves(x) for x in v)
        if isinstance(v, (bool, int, float)) and not isinstance(v, Dyn):
            return self.cc.materialize(v)
        if isinstance(v, (Tensor, Dyn)):
            return v
        return v


class _Retry(Exception):
    def __init__(self, extra) -> None:
        self.extra = extra


_MISSING = object()


def _spec(v, leaves: list):
    if isinstance(v, (tuple, list)):
        return (type(v).__name__, tuple(_spec(x, leaves) for x in v))
    if isinstance(v, (Tensor, Dyn)):
        leaves.append(v)
        return ("leaf", _type_of(v))
    if isinstance(v, (bool, int, float)):
        leaves.append(v)
        return ("leaf", ("scalar", _kind_of(v)))
    return ("const", id(v))


def _flat(v):
    leaves: list = []
    _spec(v, leaves)
    return leaves


def _type_of(v):
    if isinstance(v, Dyn):
        return ("scalar", v.kind)
    return (v.dtype, tuple(v.shape), v.device)


def _rebuild(spec, it):
    if spec[0] == "same":
        return spec[1]
    if spec[0] in ("out", "leaf"):
        return next(it)
    if spec[0] == "const":
        raise AssertionError("constant leaves are not rebuilt")
    if spec[0] in ("tuple", "list"):
        items = [_rebuild(s, it) for s in spec[1]]
        return tuple(items) if spec[0] == "tuple" else items
    kind, parts = spec
    items = [_rebuild(s, it) for s in parts]
    return kind(items) if kind is not tuple else tuple(items)


def _describe(v) -> str:
    if isinstance(v, Tensor):
        return str(TensorType(v.dtype, tuple(v.shape), v.device))
    if isinstance(v, Dyn):
        return f"run-time {v.kind}"
    if isinstance(v, (tuple, list)):
        return f"{type(v).__name__} of {len(v)}"
    return _kind_of(v)


def _contains_dyn(v) -> bool:
    if isinstance(v, Dyn):
        return True
    if isinstance(v, (tuple, list)):
        return any(_contains_dyn(x) for x in v)
    return False


def _wrap_lists(fc, v):
    if isinstance(v, list):
        fc.list_depth[id(v)] = fc.dynamic
    return v


def _close(nodes, results, own) -> tuple[Block, list]:
    """Make a block closed: every value it reads from outside becomes a parameter. Returns
    the block (parameters = the captured values' stand-ins) and the outside values."""
    defined = set(own)
    for n in nodes:
        defined.update(n.outputs)
    free: dict = {}
    for n in nodes:
        for v in n.inputs:
            if isinstance(v, Value) and v not in defined:
                free.setdefault(v, None)
    for v in results:
        if isinstance(v, Value) and v not in defined:
            free.setdefault(v, None)
    caps = list(free)
    params = [Value(v.type, v.hint) for v in caps]
    m = dict(zip(caps, params))
    new_nodes = []
    for n in nodes:
        if any(isinstance(v, Value) and v in m for v in n.inputs):
            n = replace(n, inputs=tuple(m.get(v, v) if isinstance(v, Value) else v
                                        for v in n.inputs))  # fmt: skip
        new_nodes.append(n)
    res = [m.get(v, v) if isinstance(v, Value) else v for v in results]
    return Block(params, new_nodes, res), caps


def _with_params(blk: Block, caps: list, all_caps: list) -> Block:
    """``blk`` (params standing for ``caps``) re-parameterized over ``all_caps``."""
    by_cap = dict(zip(caps, blk.params))
    params = [by_cap.get(c) or Value(c.type, c.hint) for c in all_caps]
    return Block(params, blk.nodes, blk.results)


# ---- callable objects the compiler knows -----------------------------------------------------
class _TensorMethod:
    __slots__ = ("obj", "name")

    def __init__(self, obj, name) -> None:
        self.obj, self.name = obj, name


class _UserMethod:
    __slots__ = ("obj", "func")

    def __init__(self, obj, func) -> None:
        self.obj, self.func = obj, func


class _ListMethod:
    def __init__(self, lst, name) -> None:
        self.lst, self.name = lst, name

    def call(self, fc, args, node):
        if fc.list_depth.get(id(self.lst), 0) < fc.dynamic:
            raise fc.err(
                node,
                "a list made outside a data-dependent branch or loop cannot "
                "change inside it (its length must be known when compiling)",
                "build the list before the branch, or stack tensors with fusejit.cat",
            )
        return getattr(self.lst, self.name)(*args)


def _is_fusejit_fn(fn) -> bool:
    mod = getattr(fn, "__module__", None) or ""
    return callable(fn) and mod.startswith("fusejit") and not isinstance(fn, type) and \
        not mod.startswith("fusejit.jit")  # fmt: skip


def _is_known_callable(v) -> bool:
    from .api import TracedFunction

    return (
        isinstance(v, (ScriptFunction, TracedFunction))
        or _is_fusejit_fn(v)
        or v in (range, len, print, int, float, bool, min, max, abs, enumerate, zip)
    )


# ---- compiling and running a function ---------------------------------------------------------
class Compiled:
    """One specialization: the graph as compiled, the optimized graph and its plan."""

    def __init__(self, raw: Graph, in_spec, out_spec, name: str) -> None:
        from .api import _target_of, optimize_graph
        from .runtime import Plan
        from .verify import verify

        verify(raw)
        self.raw_graph = raw
        self.in_spec = in_spec
        self.out_spec = out_spec
        self.name = name
        self.graph = optimize_graph(raw, _target_of(raw))
        self.plan = Plan(self.graph)


def _scalar_input(v, kind, device) -> Tensor:
    from ..tensor import tensor

    d = _SCALAR_DTYPE[kind]
    if getattr(device, "type", "cpu") == "cpu":
        return Tensor._wrap(np.asarray(v, d.np), d, device)
    return tensor(v, dtype=d, device=device)


def _device_of_args(flat) -> Device:
    from ..device import as_device

    for v in flat:
        if isinstance(v, Tensor):
            return v.device
    return as_device("cpu")


def compile_function(sf: ScriptFunction, self_obj, spec, flat, stack=()) -> Compiled:
    """Compile ``sf`` for the argument structure ``spec`` (with example leaves ``flat``)."""
    tracer = tr.Tracer()
    dev = _device_of_args(flat)
    cc = Compiler(tracer, dev, stack + (sf,))
    with tr._trace_lock:
        prev = dispatch.TRACER
        dispatch.TRACER = tracer
        try:
            with np.errstate(all="ignore"):
                args = []
                it = iter(flat)
                names = sf.param_names[1:] if sf.is_method else sf.param_names
                inputs = []
                for leaf_spec, name in zip(spec, names):
                    args.append(_make_inputs(leaf_spec, it, tracer, cc, inputs, name))
                result = _run_body(cc, sf, self_obj, args)
        finally:
            dispatch.TRACER = prev
    out_flat: list = []
    out_spec = _out_spec(result, out_flat, sf)
    results = [cc.ref(v) for v in out_flat]
    n_inputs = len(tracer.params)
    # captured tensors only a discarded compile attempt read are dropped
    used = _used_values(tracer.nodes) | {v for v in results if isinstance(v, Value)}
    captured = [(v, t) for v, t in tracer.captured if v in used]
    params = tracer.params + [v for v, _ in captured]
    graph = Graph(Block(params, tracer.nodes, results), n_inputs, [t for _, t in captured])
    return Compiled(graph, spec, out_spec, sf.__name__)


def _used_values(nodes) -> set:
    out = set()
    for n in nodes:
        out.update(v for v in n.inputs if isinstance(v, Value))
    return out


def _make_inputs(spec, it, tracer, cc, inputs, name):
    tag = spec[0]
    if tag == "T":
        t = next(it)
        if not isinstance(t, Tensor):
            raise AssertionError("spec / value mismatch")
        ex = Tensor._wrap(t._data, t._dtype, t._device)
        tracer.add_input(ex, name)
        return ex
    if tag == "S":
        v = next(it)
        if isinstance(v, Dyn):
            v = 0
        ex = _scalar_input(v, spec[1], cc.dev)
        tracer.add_input(ex, name)
        return Dyn(ex, spec[1])
    if tag == "C":
        return spec[1]
    items = [_make_inputs(s, it, tracer, cc, inputs, f"{name}{i}") for i, s in enumerate(spec[1])]
    return tuple(items) if tag == "tuple" else items


def _run_body(cc: Compiler, sf: ScriptFunction, self_obj, args):
    env = {}
    names = sf.param_names
    if sf.is_method:
        env[names[0]] = self_obj
        names = names[1:]
    defaults = sf.defaults
    if len(args) > len(names):
        raise sf.src.error(sf.src.tree, f"{sf.__name__}() takes {len(names)} arguments, "
                           f"got {len(args)}")  # fmt: skip
    for k, name in enumerate(names):
        if k < len(args):
            env[name] = args[k]
        elif name in defaults:
            env[name] = defaults[name]
        else:
            raise sf.src.error(sf.src.tree, f"{sf.__name__}() missing argument `{name}`")
    fc = FunctionCompiler(cc, sf.src, env, self_obj)
    for a in sf.src.tree.args.args:
        if a.annotation is not None and a.arg in env and env[a.arg] is not self_obj:
            env[a.arg] = fc.annotated(env[a.arg], a.annotation, a)
        if a.arg in env:
            fc.declared[a.arg] = (_kind_of(env[a.arg]), sf.src.start)
    return fc.run()


def _out_spec(v, out: list, sf):
    if isinstance(v, Tensor):
        out.append(v)
        return "T"
    if isinstance(v, Dyn):
        out.append(v)
        return ("S", v.kind)
    if isinstance(v, (tuple, list)):
        return (type(v).__name__, tuple(_out_spec(x, out, sf) for x in v))
    if isinstance(v, (bool, int, float, str, type(None))):
        return ("const", v)
    raise ScriptError(f"{sf.__name__} returns a {type(v).__name__}, which a scripted function "
                      "cannot return", sf.src.filename, sf.src.start, 1, "",
                      "tensors, numbers and tuples / lists of them")  # fmt: skip


def unflatten_out(spec, it):
    if spec == "T":
        return next(it)
    tag = spec[0]
    if tag == "S":
        t = next(it)
        return {"int": int, "float": float, "bool": bool}[spec[1]](t.item())
    if tag == "const":
        return spec[1]
    items = [unflatten_out(s, it) for s in spec[1]]
    return tuple(items) if tag == "tuple" else items


def inline_script(cc: Compiler, sf, args, node, fc) -> object:
    """Compile the scripted callee for these arguments and copy its graph into the current
    block; constants stay constants in the callee (it is specialized on them)."""
    if isinstance(sf, BoundScript):
        sfn, self_obj = sf.sf, sf.obj
    else:
        sfn, self_obj = sf, None
    if sfn in cc.stack:
        raise fc.err(node, f"recursive call of {sfn.__name__} is not supported",
                     "a loop")  # fmt: skip
    spec, flat = _specialize(args, constants=True)
    try:
        compiled = sfn.specialization(self_obj, spec, flat, cc.stack)
    except ScriptError:
        raise
    g = compiled.raw_graph
    vals = []
    for v in flat:
        if isinstance(v, (Tensor, Dyn)):
            vals.append(cc.ref(v))
    outs = splice(cc.tr, g, vals, cc)
    return unflatten_sym(compiled.out_spec, iter(outs), fc)


def splice(tracer, g: Graph, input_refs: list, cc: Compiler | None) -> list:
    """Copy ``g``'s top-level nodes into ``tracer``'s current node list, its inputs replaced
    by ``input_refs`` and its captured tensors captured again; returns the result values."""
    m = dict(zip(g.inputs, input_refs))
    for p, t in zip(g.block.params[g.n_inputs :], g.captured):
        m[p] = tracer.value_of(t)
    for n in g.block.nodes:
        if any(isinstance(v, Value) and v in m for v in n.inputs):
            n = replace(n, inputs=tuple(m.get(v, v) if isinstance(v, Value) else v
                                        for v in n.inputs))  # fmt: skip
        tracer.nodes.append(n)
    return [m.get(v, v) for v in g.block.results]


def unflatten_sym(spec, it, fc):
    """Symbolic values (fresh example tensors) for a callee's outputs."""
    if spec == "T":
        v = next(it)
        t = _example(v.type)
        fc.cc.bind(t, v)
        return t
    tag = spec[0]
    if tag == "S":
        v = next(it)
        t = _example(v.type)
        fc.cc.bind(t, v)
        return Dyn(t, spec[1])
    if tag == "const":
        return spec[1]
    items = [unflatten_sym(s, it, fc) for s in spec[1]]
    return tuple(items) if tag == "tuple" else _wrap_lists(fc, items)


def _example(t: TensorType) -> Tensor:
    from ..creation import zeros

    if str(t.device) == "cpu":
        return Tensor._wrap(np.zeros(t.shape, t.dtype.np), t.dtype, t.device)
    return zeros(*t.shape, dtype=t.dtype, device=t.device)


def _specialize(args, constants: bool):
    """(spec, flat) of a call's arguments. With ``constants`` Python scalars stay constants
    (a call from scripted code); otherwise they are run-time inputs (a call from Python)."""
    flat: list = []
    spec = []
    for a in args:
        spec.append(_spec_arg(a, flat, constants))
    return tuple(spec), flat


def _spec_arg(v, flat, constants):
    if isinstance(v, Tensor):
        flat.append(v)
        return ("T", v.dtype, tuple(v.shape), v.device)
    if isinstance(v, Dyn):
        flat.append(v)
        return ("S", v.kind)
    if isinstance(v, (bool, int, float, np.integer, np.floating)):
        if constants:
            return ("C", v)
        flat.append(v)
        return ("S", _kind_of(v))
    if isinstance(v, (tuple, list)):
        return (type(v).__name__, tuple(_spec_arg(x, flat, constants) for x in v))
    if isinstance(v, (str, type(None), dt.DType, Device)):
        return ("C", v)
    from ..nn import Module

    if isinstance(v, Module):
        return ("C", v)
    raise TypeError(
        f"a {type(v).__name__} argument is not supported by fusejit.script "
        "(tensors, numbers, strings, None and tuples / lists of them are)"
    )


class ScriptFunction:
    """A function compiled by ``fusejit.script``; one compiled graph per input signature.

    ``graph`` / ``code`` show the latest specialization; ``graphs()`` lists them all.
    """

    def __init__(self, fn) -> None:
        self.fn = fn
        self.src = _Source(fn)
        self.src.check_syntax()
        self.param_names = _params_of(self.src.tree)
        self.is_method = bool(self.param_names) and self.param_names[0] == "self"
        sig = inspect.signature(fn)
        self.defaults = {k: p.default for k, p in sig.parameters.items()
                         if p.default is not inspect.Parameter.empty}  # fmt: skip
        for k, v in self.defaults.items():
            if not isinstance(v, (*_IMMUTABLE, tuple)):
                raise self.src.error(self.src.tree, f"default of `{k}` is a "
                                     f"{type(v).__name__}", "constant defaults")  # fmt: skip
        self._specs: dict = {}
        self._by_obj: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
        self._lock = threading.RLock()
        self._last: Compiled | None = None
        functools.update_wrapper(self, fn)

    def __get__(self, obj, owner=None):
        if obj is None:
            return self
        return BoundScript(self, obj)

    def bind_args(self, args, kwargs, error):
        names = self.param_names[1:] if self.is_method else self.param_names
        args = list(args)
        for name in names[len(args) :]:
            if name in kwargs:
                args.append(kwargs.pop(name))
            elif name in self.defaults:
                args.append(self.defaults[name])
            else:
                break
        if kwargs:
            raise error
        return args

    def _table(self, obj) -> dict:
        if obj is None:
            return self._specs
        t = self._by_obj.get(obj)
        if t is None:
            t = self._by_obj[obj] = {}
        return t

    def specialization(self, obj, spec, flat, stack=()) -> Compiled:
        from ..nn import _Version

        key = (spec, _Version.value if obj is not None else 0)
        table = self._table(obj)
        c = table.get(key)
        if c is None:
            with self._lock:
                c = table.get(key)
                if c is None:
                    c = compile_function(self, obj, spec, flat, stack)
                    table[key] = c
        self._last = c
        return c

    def _call(self, obj, args, kwargs):
        if kwargs:
            args = self.bind_args(
                args,
                kwargs,
                TypeError(f"{self.__name__}: unexpected keyword arguments {list(kwargs)}"),
            )
        spec, flat = _specialize(args, constants=False)
        c = self.specialization(obj, spec, flat)
        dev = _device_of_args(flat)
        tensors = [v if isinstance(v, Tensor) else _scalar_input(v, _kind_of(v), dev)
                   for v in flat]  # fmt: skip
        tracer = dispatch.tracing()
        if tracer is not None:  # called while fusejit.trace records: keep the control flow
            return _record_into_trace(tracer, c, tensors)
        outs = c.plan.run(tensors, c.graph.captured)
        return unflatten_out(c.out_spec, iter(outs))

    def __call__(self, *args, **kwargs):
        return self._call(None, args, kwargs)

    @property
    def graph(self) -> Graph:
        return self._latest().graph

    @property
    def code(self) -> str:
        from .printer import format_code

        return format_code(self._latest().graph, self.__name__)

    def _latest(self) -> Compiled:
        if self._last is None:
            raise ScriptError(f"{self.__name__} has not been called yet: its graph is made "
                              "for the types of its first call", self.src.filename,
                              self.src.start, 1, "", "call it once first")  # fmt: skip
        return self._last

    def specializations(self, obj=None) -> list:
        return list(self._table(obj).values())

    def kernel_count(self) -> int:
        from .control import count_fused

        return count_fused(self._latest().graph.block)

    def __repr__(self) -> str:
        return f"<ScriptFunction {self.__qualname__}>"


class BoundScript:
    """A scripted method bound to its module: attributes and submodules are constants."""

    def __init__(self, sf: ScriptFunction, obj) -> None:
        self.sf, self.obj = sf, obj
        self.__name__ = sf.__name__

    def __call__(self, *args, **kwargs):
        return self.sf._call(self.obj, args, kwargs)

    def bind_args(self, args, kwargs, error):
        return self.sf.bind_args(args, kwargs, error)

    def specializations(self) -> list:
        return self.sf.specializations(self.obj)

    @property
    def graph(self) -> Graph:
        return self.sf.graph

    @property
    def code(self) -> str:
        return self.sf.code

    def __repr__(self) -> str:
        return f"<scripted method {self.sf.__qualname__} of {type(self.obj).__name__}>"


ScriptedCall = BoundScript
_METHOD_SCRIPTS: dict = {}


def _method_script(func) -> ScriptFunction:
    """A plain method of a user module, scripted on first use (as submodules are)."""
    sf = _METHOD_SCRIPTS.get(func)
    if sf is None:
        sf = _METHOD_SCRIPTS[func] = ScriptFunction(func)
    return sf


def _record_into_trace(tracer, c: Compiled, tensors):
    """A scripted function called inside ``fusejit.trace``: its graph (with its control flow)
    joins the trace, and the real outputs are bound to the spliced results."""
    prev = dispatch.TRACER
    dispatch.TRACER = None
    try:
        outs = c.plan.run(tensors, c.graph.captured)
    finally:
        dispatch.TRACER = prev
    refs = [tracer.value_of(t) for t in tensors]
    vals = splice(tracer, c.raw_graph, refs, None)
    for t, v in zip(outs, vals):
        tracer.values[id(t)] = v
        tracer.keep.append(t)
    return unflatten_out(c.out_spec, iter(outs))


def script(obj):
    """Compile a function, an ``nn.Module`` class or instance, or a method, keeping control
    flow (``if`` on tensors, loops, ``break``, early ``return``) in the graph.

    Each input signature (tensor dtypes, shapes and devices; the kinds of Python scalars) is
    compiled on its first call; straight-line parts of every block are fused.

    >>> import fusejit
    >>> @fusejit.script
    ... def clip_sum(x, limit: float):
    ...     total = x.sum()
    ...     if total > limit:
    ...         x = x * (limit / total)
    ...     return x
    >>> clip_sum(fusejit.ones(4), 2.0).tolist()
    [0.5, 0.5, 0.5, 0.5]
    >>> clip_sum(fusejit.ones(4), 10.0).tolist()
    [1.0, 1.0, 1.0, 1.0]
    """
    from ..nn import Module

    if isinstance(obj, (ScriptFunction, BoundScript)):
        return obj
    if isinstance(obj, type):
        if not issubclass(obj, Module):
            raise ScriptError(
                f"fusejit.script on class {obj.__name__}: only nn.Module "
                "subclasses can be scripted",
                hint="decorate its methods",
            )
        fwd = obj.__dict__.get("forward")
        if fwd is not None and not isinstance(fwd, ScriptFunction):
            obj.forward = ScriptFunction(fwd)
        return obj
    if isinstance(obj, Module):
        fwd = type(obj).forward
        sf = fwd if isinstance(fwd, ScriptFunction) else _method_script(fwd)
        object.__setattr__(obj, "forward", BoundScript(sf, obj))
        return obj
    if isinstance(obj, (types.FunctionType, types.MethodType)):
        if isinstance(obj, types.MethodType):
            return BoundScript(ScriptFunction(obj.__func__), obj.__self__)
        return ScriptFunction(obj)
    raise ScriptError(f"fusejit.script expects a function, method or nn.Module, got "
                      f"{type(obj).__name__}")  # fmt: skip
