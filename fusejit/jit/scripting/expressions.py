"""Names and expressions of a scripted function (``FunctionCompiler``'s
``ExpressionsMixin``): name lookup (locals, closure, globals, the allowed built-ins),
constants, attributes, indexing, operators with Python's rules for run-time scalars and eager
promotion against tensors, truth values, ``and`` / ``or`` / ``not`` and conditional
expressions. Calls are in ``calls.py``."""

from __future__ import annotations

import ast
import builtins
import types

import numpy as np

from fusejit.base import dtypes as dt
from fusejit.eager.tensor import Tensor
from fusejit.ir.graph import TensorType
from fusejit.jit.control import format_part, select
from fusejit.jit.scripting.calls import (
    _is_fusejit_fn,
    _is_known_callable,
    _ListMethod,
    _LoopAppend,
    _TensorMethod,
    _UserMethod,
)
from fusejit.jit.scripting.values import (
    _IMMUTABLE,
    _SCALAR_DTYPE,
    Dyn,
    Enumerate,
    FStr,
    LoopList,
    Undef,
    Zip,
    _kind_of,
)
from fusejit.nn import Module

_BUILTINS = {"range", "len", "print", "int", "float", "bool", "min", "max", "abs", "enumerate",
             "zip", "tuple", "list", "isinstance", "round"}  # fmt: skip

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
# the operators whose op-table rule is promote or float (float16 opmath with a number)
_ARITH = (ast.Add, ast.Sub, ast.Mult, ast.Div, ast.FloorDiv, ast.Mod, ast.Pow)


class ExpressionsMixin:
    """Names and expressions, evaluated on example tensors while the tracer records them."""

    # -- names --------------------------------------------------------------------------------
    def load(self, name: str, node):
        if name in self.env:
            v = self.env[name]
            if isinstance(v, Undef):
                raise self.err(node, f"`{name}` {v.why}", "define it before the branch or loop")
            if isinstance(v, LoopList) and any(v.key in lp["keys"] for lp in self.loops):
                raise self.err(node, f"the list `{name}` grows in this loop: inside it, it can "
                               "only be appended to (its items are read after the loop)",
                               "keep the last item in a variable of its own")  # fmt: skip
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
        if isinstance(v, Tensor):
            self.external.append(v)
        if isinstance(v, (*_IMMUTABLE, Tensor, types.ModuleType)) or _is_known_callable(v):
            return v
        if isinstance(v, (tuple, list)) and all(isinstance(x, (*_IMMUTABLE, Tensor)) for x in v):
            return tuple(v)
        if isinstance(v, Module) or getattr(v, "_fusejit_executor", None) is not None:
            return v  # (calling an optimize() function gets its own error in calls.py)
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

    def e_JoinedStr(self, e):
        """An f-string: a str when every field is known when compiling, else an ``FStr``
        that ``print`` and ``assert`` format at run time."""
        parts: list = []
        for v in e.values:
            if isinstance(v, ast.Constant):
                parts.append(("const", str(v.value), ""))
                continue
            fmt = "" if v.conversion in (-1, None) else "!" + chr(v.conversion)
            if v.format_spec is not None:
                spec = self.expr(v.format_spec)
                if not isinstance(spec, str):
                    raise self.err(v, "an f-string format spec must be known when compiling",
                                   "a literal spec: f'{x:.3f}'")  # fmt: skip
                fmt += ":" + spec
            x = self.expr(v.value)
            if isinstance(x, Tensor):
                parts.append(("tensor", x, fmt))
            elif isinstance(x, Dyn):
                parts.append((x.kind, x, fmt))
            elif isinstance(x, FStr):
                raise self.err(v, "an f-string inside an f-string field is not supported")
            elif isinstance(x, (*_IMMUTABLE, tuple)):
                parts.append(("const", format_part("const", x, fmt), ""))
            else:
                raise self.err(v, f"an f-string field of kind {_kind_of(x)} is not supported",
                               "tensors, numbers and strings")  # fmt: skip
        merged: list = []
        for p in parts:
            if p[0] == "const" and merged and merged[-1][0] == "const":
                merged[-1] = ("const", merged[-1][1] + p[1], "")
            else:
                merged.append(p)
        if all(p[0] == "const" for p in merged):
            return "".join(p[1] for p in merged)
        return FStr(merged)

    def e_Name(self, e):
        return self.load(e.id, e)

    def e_Tuple(self, e):
        return tuple(self.starred_items(e.elts))

    def e_List(self, e):
        return self.mark_list(self.starred_items(e.elts))

    def starred_items(self, elts) -> list:
        """The values of ``elts`` (call arguments or a tuple / list display), ``*t`` spread
        into its items: ``t`` must be a tuple or list (``x.shape[:-1]``, a list of tensors)."""
        out = []
        for x in elts:
            if not isinstance(x, ast.Starred):
                out.append(self.expr(x))
                continue
            v = self.expr(x.value)
            if isinstance(v, LoopList):
                v = self.plain(v)
            elif isinstance(v, (Enumerate, Zip)):
                v = self.static_items(v, x)
            if isinstance(v, (tuple, list, range)):
                out.extend(v)
            else:
                raise self.err(x, f"`*` unpacking of a {_kind_of(v)} is not supported in "
                               "fusejit.script", "unpack a tuple or list (its length known "
                               "when compiling), e.g. *x.shape[:-1]")  # fmt: skip
        return out

    def e_Attribute(self, e):
        name = e.attr
        if name == "append" and isinstance(e.value, ast.Name):
            ll = self.env.get(e.value.id)
            loop = self.loops[-1] if self.loops else None
            if (isinstance(ll, LoopList) and loop is not None and loop["depth"] == self.dynamic
                    and ll.key in loop["keys"]):  # fmt: skip
                return _LoopAppend(ll)  # the list this loop grows (not read: load refuses)
        obj = self.expr(e.value)
        if isinstance(obj, LoopList):
            obj = self.unloop(obj)  # used otherwise: a plain list of its rows from here on
        if isinstance(obj, list) and name in ("append", "extend", "insert", "pop"):
            return _ListMethod(obj, name)  # so that growth inside a loop is caught
        if isinstance(obj, Dyn):
            raise self.err(e, f"attribute `{name}` of a run-time {obj.kind}")
        if isinstance(obj, Tensor):
            if name in ("shape", "dtype", "device", "ndim", "T", "mT", "is_cuda", "real", "imag"):
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
        if isinstance(obj, Module) and isinstance(v, types.MethodType) and not _is_fusejit_fn(v):
            return _UserMethod(obj, v.__func__)
        if isinstance(v, list):
            return tuple(v)
        if isinstance(v, Tensor):
            self.external.append(v)
        return v

    def e_Subscript(self, e):
        obj = self.expr(e.value)
        idx = self.index(e.slice)
        if isinstance(obj, LoopList):  # item k of a list grown in a loop: row k of its buffer
            if isinstance(idx, Dyn) or (isinstance(idx, int) and not isinstance(idx, bool)):
                obj = obj.buf
            else:
                obj = self.plain(obj)
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

    def e_bool_or(self, a, b):
        a, b = self.truth(a, None), self.truth(b, None)
        if isinstance(a, bool):
            return True if a else b
        if isinstance(b, bool):
            return True if b else a
        return Dyn(a.t.logical_or(b.t), "bool")

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
            if self.opmath(op in _ARITH, tdt, (a, b)):
                return fn(self.as_float32(a), self.as_float32(b)).to(dt.float16)
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

    def opmath(self, arithmetic: bool, tdt, values) -> bool:
        """Whether an arithmetic op (rule promote or float) on tensors of dtype ``tdt`` with
        ``values`` computes as eager does for float16 with a Python int or float: in float32,
        the number as a float32, the result rounded to float16 (PyTorch's "opmath"). A
        run-time number is a 0-d float64 / int64 tensor, which converted to float16 first
        would lose what a Python number keeps."""
        return (
            arithmetic
            and tdt is dt.float16
            and any(isinstance(v, Dyn) and v.kind != "bool" for v in values)
        )

    def as_float32(self, v):
        """A tensor or run-time number as float32 (``opmath``); constants as they are."""
        if isinstance(v, Dyn):
            return v.t.to(dt.float32)
        if isinstance(v, Tensor):
            return v.to(dt.float32)
        return v

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
