"""Calls in a scripted function: the callable objects the compiler knows (tensor methods,
list methods, methods of user modules, fusejit ops) and ``FunctionCompiler``'s ``CallsMixin``,
which resolves a call to a built-in, an op, a tensor method, a layer, a scripted or traced
function or a user module, and rejects arbitrary Python callables."""

from __future__ import annotations

import math

from fusejit.base import dtypes as dt
from fusejit.eager.elementwise import maximum, minimum
from fusejit.eager.tensor import Tensor
from fusejit.ir.graph import Const, TensorType
from fusejit.jit import tracer as tr
from fusejit.jit.api import TracedFunction
from fusejit.jit.interpret import interpret

# A scripted function that calls another compiles it (decorator -> specialize -> compiler ->
# calls -> decorator, specialize): a mutual recursion inside this folder, so the two modules
# are imported as modules and their names read at call time.
from fusejit.jit.scripting import decorator, specialize
from fusejit.jit.scripting.values import (
    _KINDS,
    _SCALAR_DTYPE,
    Dyn,
    DynRange,
    Enumerate,
    FStr,
    LoopList,
    Zip,
    _contains_dyn,
    _describe,
    _kind_of,
    _wrap_lists,
)
from fusejit.nn import Module, ModuleList, Sequential
from fusejit.ops.registry import OPMATH_RULES, OPS


# ---- callable objects the compiler knows -----------------------------------------------------
class _TensorMethod:
    __slots__ = ("obj", "name")

    def __init__(self, obj, name) -> None:
        self.obj, self.name = obj, name


class _UserMethod:
    __slots__ = ("obj", "func")

    def __init__(self, obj, func) -> None:
        self.obj, self.func = obj, func


class Grow(Exception):
    """Raised when a loop body appends to a list made before the loop: the loop compiles
    again with the list as a ``LoopList`` (see ``control_flow.dyn_loop``)."""

    def __init__(self, lst: list, value, node) -> None:
        self.lst, self.value, self.node = lst, value, node


_GROW_HINT = ("append in the loop body itself (not under a data-dependent `if`), in a `for` "
              "over range(n) or a tensor whose length is known when compiling; or pre-allocate "
              "ys = fusejit.zeros(T, ...) and assign ys[t] = h")  # fmt: skip


class _ListMethod:
    def __init__(self, lst, name) -> None:
        self.lst, self.name = lst, name

    def call(self, fc, args, node):
        if fc.list_depth(self.lst) < fc.dynamic:
            loop = fc.loops[-1] if fc.loops else None
            if (
                self.name == "append"
                and loop is not None
                and loop["depth"] == fc.dynamic
                and fc.list_depth(self.lst) == fc.dynamic - 1
                and fc.owns_list(self.lst)
                and len(args) == 1
                and isinstance(args[0], Tensor)
            ):
                raise Grow(self.lst, args[0], node)
            raise fc.err(
                node,
                f"a list made outside a data-dependent branch or loop cannot change inside it "
                f"this way (`.{self.name}`)",
                _GROW_HINT,
            )
        return getattr(self.lst, self.name)(*args)


class _LoopAppend:
    """``xs.append(v)`` on a list that the current loop grows: item ``i`` of its buffer."""

    def __init__(self, ll) -> None:
        self.ll = ll

    def call(self, fc, args, node):
        ll = self.ll
        loop = fc.loops[-1]
        if loop["appends"].get(ll.key):
            raise fc.err(node, "a list that grows in a loop takes one append per iteration",
                         "one list per value appended")  # fmt: skip
        if len(args) != 1 or not isinstance(args[0], Tensor):
            raise fc.err(node, "a list that grows in a loop holds tensors only")
        v, b = args[0], ll.buf
        want = (b.dtype, tuple(b.shape[1:]), b.device)
        if (v.dtype, tuple(v.shape), v.device) != want:
            raise fc.err(node, f"a list that grows in a loop holds tensors of one type: "
                         f"{TensorType(*want)} first, now {_describe(v)}",
                         "append tensors of one dtype, shape and device")  # fmt: skip
        loop["appends"][ll.key] = True
        new = fc.update_tensor(ll.buf, 0, loop["idx"], v)
        fc.rebind(ll, LoopList(new, ll.n, ll.key))
        return None


# math functions on run-time scalars: the tensor method computing each on a 0-d float64
_MATH_FLOAT = {"sqrt": "sqrt", "exp": "exp", "log2": "log2", "log10": "log10",
               "log1p": "log1p", "expm1": "expm1", "sin": "sin", "cos": "cos", "tan": "tan",
               "asin": "asin", "acos": "acos", "atan": "atan", "sinh": "sinh", "cosh": "cosh",
               "tanh": "tanh", "asinh": "asinh", "acosh": "acosh", "atanh": "atanh",
               "erf": "erf", "erfc": "erfc", "fabs": "abs"}  # fmt: skip
_MATH_INT = ("floor", "ceil", "trunc")
_MATH_BOOL = ("isnan", "isinf", "isfinite")
_MATH_FLOAT2 = {"atan2": "atan2", "pow": "pow", "hypot": "hypot", "copysign": "copysign",
                "fmod": "fmod"}  # fmt: skip


def _is_math_fn(fn) -> bool:
    return callable(fn) and getattr(fn, "__module__", None) == "math" and \
        getattr(math, getattr(fn, "__name__", ""), None) is fn  # fmt: skip


def _is_fusejit_fn(fn) -> bool:
    mod = getattr(fn, "__module__", None) or ""
    return callable(fn) and mod.startswith("fusejit") and not isinstance(fn, type) and \
        not mod.startswith("fusejit.jit")  # fmt: skip


def _is_known_callable(v) -> bool:
    return (
        isinstance(v, (decorator.ScriptFunction, TracedFunction))
        or _is_fusejit_fn(v)
        or v in (range, len, print, int, float, bool, min, max, abs, enumerate, zip)
        or _is_math_fn(v)
    )


class CallsMixin:
    """Calls, resolved by what is called."""

    def e_Call(self, e):
        fn = self.expr(e.func)
        args = self.starred_items(e.args)
        kwargs = {k.arg: self.expr(k.value) for k in e.keywords}
        if None in kwargs:
            raise self.err(e, "`**` in calls is not supported")
        return self.call(fn, args, kwargs, e)

    def call(self, fn, args, kwargs, node):
        if fn is print:
            return self.print_(args, kwargs, node)
        if fn in (int, float, bool):
            return self.convert(fn, args, node)
        if fn is len:
            (x,) = args
            if isinstance(x, Tensor):
                return x.shape[0]
            if isinstance(x, (list, tuple, Module, range, str)):
                return len(x)
            if isinstance(x, LoopList):
                return x.n
            if isinstance(x, (Enumerate, Zip)):
                n = self.seq_length(x, node)
                if isinstance(n, int):
                    return n
            raise self.err(node, f"len() of a {_kind_of(x)}")
        if fn in (min, max, abs, round):
            if any(isinstance(a, Dyn) for a in args) or any(isinstance(a, Tensor) for a in args):
                return self.scalar_builtin(fn, args, node)
            return fn(*args, **kwargs)
        if fn in (tuple, list):
            (x,) = args
            if isinstance(x, (Enumerate, Zip)):
                x = self.static_items(x, node)
            out = fn(self.plain(x))
            return self.mark_list(out) if fn is list else out
        if fn is isinstance:
            raise self.err(node, "isinstance() is not supported", "separate scripted functions")
        if fn is range:
            return self.range_(args, kwargs, node)
        if fn is enumerate:
            start = kwargs.pop("start", args[1] if len(args) == 2 else 0)
            if len(args) not in (1, 2) or kwargs or not isinstance(start, int):
                raise self.err(node, "enumerate() takes a sequence and a constant int start")
            return Enumerate(args[0], start)
        if fn is zip:
            if kwargs or not args:
                raise self.err(node, "zip() takes one or more sequences")
            return Zip(list(args))
        if isinstance(fn, (_ListMethod, _LoopAppend)):
            return fn.call(self, args, node)
        if any(isinstance(a, LoopList) for a in args):
            out = self.loop_list_call(fn, args, kwargs, node)
            if out is not None:
                return out
            args = [self.plain(a) for a in args]
        kwargs = {k: self.plain(v) for k, v in kwargs.items()}
        if isinstance(fn, _TensorMethod):
            return self.tensor_method(fn, args, kwargs, node)
        if isinstance(fn, (decorator.ScriptFunction, decorator.BoundScript)):
            return self.call_script(fn, args, kwargs, node)
        if isinstance(fn, _UserMethod):
            sf = decorator._method_script(fn.func)
            return self.call_script(decorator.BoundScript(sf, fn.obj), args, kwargs, node)
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
            # built-in layers (the modules of fusejit.nn): no control flow
            if type(fn).__module__.startswith("fusejit.nn."):
                return self.call_fusejit(fn, args, kwargs, node)
            fwd = type(fn).forward
            sf = fwd if isinstance(fwd, decorator.ScriptFunction) else decorator._method_script(fwd)
            return self.call_script(decorator.BoundScript(sf, fn), args, kwargs, node)
        if _is_fusejit_fn(fn):
            return self.call_fusejit(fn, args, kwargs, node)
        if _is_math_fn(fn):
            return self.math_call(fn, args, kwargs, node)
        if getattr(fn, "_fusejit_executor", None) is not None:
            raise self.err(
                node,
                "calling a fusejit.optimize function from a scripted one is not supported",
                "decorate the function it wraps with @fusejit.script, or trace it",
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
        arithmetic = elementwise and op.rule in OPMATH_RULES
        if self.opmath(arithmetic, tdt, list(args) + list(kwargs.values())):
            conv = [self.as_float32(a) for a in args]
            kw = {k: self.as_float32(v) for k, v in kwargs.items()}
            return _wrap_lists(self, fn(*conv, **kw).to(dt.float16))
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
        op = OPS.get(name)
        arithmetic = op is not None and op.kind == "elementwise"
        if self.opmath(arithmetic and op.rule in OPMATH_RULES, tdt, args):
            conv = [self.as_float32(a) for a in args]
            kw = {k: self.as_float32(v) for k, v in kwargs.items()}
            return _wrap_lists(self, getattr(m.obj.to(dt.float32), name)(*conv, **kw).to(tdt))
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
        if any(isinstance(a, Tensor) for a in args):
            # Python's max compares with bool(), which a graph cannot keep for a tensor
            raise self.err(node, f"{fn.__name__}() of a tensor is not supported",
                           "fusejit.maximum / fusejit.minimum (elementwise), or .amax() / "
                           ".amin()")  # fmt: skip
        if len(args) != 2:
            raise self.err(node, f"{fn.__name__}() of run-time values takes two scalars")
        kinds = {_kind_of(a) for a in args}
        k = "float" if "float" in kinds else "int"
        a, b = (self.as_kind(a, k) for a in args)  # a constant stays a weak Python scalar
        return Dyn((maximum if fn is max else minimum)(a, b), k)

    def print_(self, args, kwargs, node):
        sep = kwargs.pop("sep", " ")
        end = kwargs.pop("end", "\n")
        if kwargs or not isinstance(sep, str) or not isinstance(end, str):
            raise self.err(node, "print() takes values and constant sep= / end= only")
        if any(isinstance(a, FStr) for a in args):
            # f-strings: their fields one by one, the separators as constant parts
            parts: list = []
            for k, a in enumerate(args):
                if k:
                    parts.append(("const", Const(sep), ""))
                parts.extend(self.message_parts(a, node))
            attrs = {"kinds": tuple(p[0] for p in parts), "fmts": tuple(p[2] for p in parts),
                     "sep": "", "end": end}  # fmt: skip
            self.cc.emit("print", [p[1] for p in parts], attrs, [])
            return None
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

    def loop_list_call(self, fn, args, kwargs, node):
        """``stack`` / ``cat`` of a list grown in a loop: its buffer, moved and merged as the
        call asks, without copying it row by row. None for other calls."""
        name = getattr(fn, "__name__", "")
        if not (_is_fusejit_fn(fn) and name in ("stack", "cat", "concat", "concatenate")):
            return None
        if len(args) > 2 or set(kwargs) - {"dim"}:
            return None
        ll = args[0]
        if not isinstance(ll, LoopList):
            return None
        dim = args[1] if len(args) == 2 else kwargs.get("dim", 0)
        if not isinstance(dim, int) or isinstance(dim, bool):
            return None
        buf = ll.buf
        nd = buf.ndim - 1  # an item's rank
        if name == "stack":
            if not -(nd + 1) <= dim <= nd:
                return None  # (the eager call gives its own error)
            d = dim % (nd + 1)
            return buf if d == 0 else buf.movedim(0, d)
        if nd == 0 or not -nd <= dim < nd:
            return None
        d = dim % nd
        moved = buf if d == 0 else buf.movedim(0, d)
        shape = tuple(buf.shape[1:])
        return moved.reshape(*shape[:d], ll.n * shape[d], *shape[d + 1 :])

    def plain(self, v):
        """``v`` with every list grown in a loop as a plain list of its rows."""
        if isinstance(v, LoopList):
            return self.unloop(v)
        if isinstance(v, tuple):
            return tuple(self.plain(x) for x in v)
        if isinstance(v, list) and any(isinstance(x, (LoopList, tuple, list)) for x in v):
            return self.mark_list([self.plain(x) for x in v])
        return v

    def unloop(self, ll) -> list:
        """A list grown in a loop as a plain list of its rows (names bound to it rebound)."""
        rows = self.mark_list([ll.buf[k] for k in range(ll.n)])
        self.rebind(ll, rows)
        return rows

    def range_(self, args, kwargs, node):
        """``range(...)``: a Python range when its bounds are known when compiling, else a
        ``DynRange`` that only a ``for`` loop takes."""
        if kwargs or not 1 <= len(args) <= 3:
            raise self.err(node, "range() takes 1 to 3 positional arguments")
        for a in args:
            if (
                not isinstance(a, (int, Dyn))
                or isinstance(a, bool)
                or (isinstance(a, Dyn) and a.kind != "int")
            ):
                raise self.err(node, f"range() of a {_kind_of(a)}", "ints")
        if any(isinstance(a, Dyn) for a in args):
            return DynRange(list(args))
        return range(*args)

    def math_call(self, fn, args, kwargs, node):
        """``math.f(...)`` on Python numbers: folded when they are known when compiling, else
        computed on the run-time scalars (float64) with the op of that name."""
        name = fn.__name__
        if kwargs:
            raise self.err(node, f"math.{name}() takes positional arguments only")
        for a in args:
            if isinstance(a, Tensor):
                raise self.err(node, f"math.{name}() of a tensor is not supported (math "
                               "functions take Python numbers)", f"the tensor op: "
                               f"x.{_MATH_FLOAT.get(name, name)}(), or .item() first")  # fmt: skip
        if not any(isinstance(a, Dyn) for a in args):
            return fn(*args)  # known when compiling: folds
        bad = next((a for a in args if not isinstance(a, (Dyn, int, float))), None)
        if bad is not None:
            raise self.err(node, f"math.{name}() of a {_kind_of(bad)}")

        def f64(a):
            if isinstance(a, Dyn):
                return a.t.to(dt.float64)
            return self.cc.materialize(float(a), "float").t

        known = {"log", "degrees", "radians", *_MATH_INT, *_MATH_BOOL, *_MATH_FLOAT,
                 *_MATH_FLOAT2}  # fmt: skip
        if name not in known:
            raise self.err(node, f"math.{name}() of a run-time value is not supported",
                           "compute it on tensors, or pass values known when "
                           "compiling")  # fmt: skip
        n_args = {"log": (1, 2), **{k: (2,) for k in _MATH_FLOAT2},
                  "degrees": (1,), "radians": (1,)}.get(name, (1,))  # fmt: skip
        if len(args) not in n_args:
            raise self.err(node, f"math.{name}() takes {' or '.join(map(str, n_args))} "
                           f"arguments, got {len(args)}")  # fmt: skip
        if name in _MATH_INT:
            (a,) = args
            if a.kind != "float":  # (an int or bool is its own floor)
                return Dyn(a.t.to(dt.int64), "int")
            return Dyn(getattr(a.t, name)().to(dt.int64), "int")
        if name in _MATH_BOOL:
            return Dyn(getattr(f64(args[0]), name)(), "bool")
        if name in _MATH_FLOAT:
            return Dyn(getattr(f64(args[0]), _MATH_FLOAT[name])(), "float")
        if name == "log":
            out = f64(args[0]).log()
            if len(args) == 2:
                base = args[1]
                out = out / (math.log(base) if not isinstance(base, Dyn) else f64(base).log())
            return Dyn(out, "float")
        if name in ("degrees", "radians"):
            k = 180.0 / math.pi if name == "degrees" else math.pi / 180.0
            return Dyn(f64(args[0]) * k, "float")
        if name in _MATH_FLOAT2:
            a, b = (f64(x) for x in args)
            return Dyn(getattr(a, _MATH_FLOAT2[name])(b), "float")
        raise AssertionError(name)  # pragma: no cover - every known name is handled above

    def call_script(self, sf, args, kwargs, node):
        if kwargs:
            args = sf.bind_args(args, kwargs, self.err(node, "bad keyword arguments"))
        return specialize.inline_script(self.cc, sf, args, node, self)

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
        outs = interpret(fn.raw_graph, *tensors)
        return _wrap_lists(self, tr.unflatten_outputs(fn.out_spec, outs))
