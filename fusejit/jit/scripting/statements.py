"""Statements of a scripted function (``FunctionCompiler``'s ``StatementsMixin``): blocks
whose rest is guarded by the ``break`` / ``continue`` / ``return`` flags, assignments (a
variable keeps one kind for its whole life), annotations, and Python errors raised while
compiling a statement turned into ``ScriptError``. ``if``, ``for`` and ``while`` are in
``control_flow.py``."""

from __future__ import annotations

import ast

from fusejit.base import dtypes as dt
from fusejit.base.errors import FusejitError
from fusejit.eager.tensor import Tensor, tensor
from fusejit.ir.graph import Const, TensorType
from fusejit.jit.scripting import specialize
from fusejit.jit.scripting.errors import ScriptError
from fusejit.jit.scripting.values import (
    Dyn,
    DynRange,
    Enumerate,
    FStr,
    Undef,
    Zip,
    _flat,
    _kind_of,
)


class StatementsMixin:
    """Statements and assignment, compiled into the current block."""

    def exit_flag(self):
        """True / False / a run-time bool: whether the current block has been left."""
        if self.env.get("$raise") is True:  # an assert that always fails was reached
            return True
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
        before = self.cc.tr.line  # (the line the nodes it records come from: error messages)
        self.cc.tr.line = (self.src.filename, self.src.start + getattr(s, "lineno", 1) - 1)
        try:
            self._stmt(s)
        except ScriptError:
            raise
        except specialize.AlwaysRaises:  # a call that always fails an assert
            self.env["$raise"] = True
        except FusejitError as e:
            raise self.err(s, str(e)) from None
        except (TypeError, ValueError, IndexError, AttributeError, KeyError,
                ZeroDivisionError, OverflowError) as e:  # fmt: skip
            raise self.err(s, f"{type(e).__name__}: {e}") from None
        finally:
            self.cc.tr.line = before

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
            value = None if s.value is None else self.plain(self.expr(s.value))
            self.env["$retval"] = value
            self.env["$ret"] = True
        elif isinstance(s, ast.Assert):
            self.assert_stmt(s)
        elif isinstance(s, ast.Pass):
            return
        else:
            raise self.err(s, f"`{type(s).__name__}` statements are not supported in "
                           "fusejit.script")  # fmt: skip

    def assert_stmt(self, s) -> None:
        """``assert cond[, msg]``: an ``assert`` node that raises ``AssertionError`` at run
        time when ``cond`` is false. A condition known when compiling to hold costs nothing;
        one known to fail ends the block (the code after it is never reached)."""
        c = self.truth(self.expr(s.test), s.test)
        if c is True:
            return
        parts = [] if s.msg is None else self.message_parts(self.expr(s.msg), s.msg)
        cond = Const(False) if c is False else self.cc.ref(c)
        attrs = {"kinds": tuple(k for k, _, _ in parts), "fmts": tuple(f for _, _, f in parts),
                 "has_msg": s.msg is not None}  # fmt: skip
        self.cc.emit("assert", [cond, *[v for _, v, _ in parts]], attrs, [])
        if c is False:
            self.env["$raise"] = True

    def message_parts(self, v, node) -> list:
        """``(kind, IR operand, fmt)`` of each part of a printed value (an f-string's fields
        one by one)."""
        if isinstance(v, FStr):
            return [(k, Const(x) if k == "const" else self.cc.ref(x), f) for k, x, f in v.parts]
        if isinstance(v, Tensor):
            return [("tensor", self.cc.ref(v), "")]
        if isinstance(v, Dyn):
            return [(v.kind, self.cc.ref(v), "")]
        if isinstance(v, (str, int, float, bool, type(None))):
            return [("const", Const(str(v)), "")]
        raise self.err(node, f"a message of kind {_kind_of(v)} is not supported",
                       "a string, an f-string, a number or a tensor")  # fmt: skip

    def assign_item(self, target, value) -> None:
        """``x[i] = v`` / ``x[:, i] = v`` (``i`` an int, known when compiling or not): an
        ``update`` node, and every name bound to ``x`` rebound to its result. ``lst[k] = v``
        on a list with a constant ``k``."""
        base = target.value
        if not isinstance(base, ast.Name):
            raise self.err(target, "item assignment into an expression is not supported",
                           "assign into a local name: x[i] = v")  # fmt: skip
        x = self.load(base.id, base)
        key = self.index(target.slice)
        if isinstance(x, list):
            if not isinstance(key, int) or isinstance(key, bool):
                raise self.err(target, "a list item assignment needs an index known when "
                               "compiling", "lst[0] = v")  # fmt: skip
            if self.list_depth(x) < self.dynamic:
                raise self.err(target, "a list made outside a data-dependent branch or loop "
                               "cannot change inside it", "a tensor: ys[t] = v")  # fmt: skip
            x[key] = value
            return
        if not isinstance(x, Tensor):
            raise self.err(target, f"item assignment into a {_kind_of(x)} is not supported")
        keys = key if isinstance(key, tuple) else (key,)
        dim = idx = None
        for k, kk in enumerate(keys):
            if isinstance(kk, slice) and kk == slice(None):
                continue
            is_int = (isinstance(kk, int) and not isinstance(kk, bool)) or (
                isinstance(kk, Dyn) and kk.kind == "int"
            )
            if dim is None and is_int:
                dim, idx = k, kk
                continue
            raise self.err(target, "item assignment takes one int index, after full slices: "
                           "x[i] = v or x[:, i] = v", "build the new tensor with "
                           "fusejit.where / cat")  # fmt: skip
        if dim is None or dim >= x.ndim:
            raise self.err(target, f"item assignment takes one int index within the "
                           f"tensor's {x.ndim} dims: x[i] = v or x[:, i] = v")  # fmt: skip
        shape = tuple(x.shape)
        if isinstance(idx, int) and not -shape[dim] <= idx < shape[dim]:
            raise self.err(target, f"index {idx} is out of bounds for dim {dim} with size "
                           f"{shape[dim]}")  # fmt: skip
        if shape[dim] == 0:
            raise self.err(target, "item assignment into an empty dim")
        self.check_unaliased(base.id, x, target)
        row = shape[:dim] + shape[dim + 1 :]
        v = self.item_value(value, x, row, target)
        self.rebind(x, self.update_tensor(x, dim, idx, v))

    def update_tensor(self, x: Tensor, dim: int, idx, v: Tensor) -> Tensor:
        """An ``update`` node: ``x`` with index ``idx`` (an int or a run-time int) along
        ``dim`` set to ``v`` (``x``'s dtype, the row's shape); returns its example."""
        cc = self.cc
        i_ref = Const(idx) if isinstance(idx, int) else cc.ref(idx)
        (out,) = cc.emit("update", [cc.ref(x), i_ref, cc.ref(v)], {"dim": dim},
                         [TensorType(x.dtype, tuple(x.shape), x.device)])  # fmt: skip
        data = x._data.copy()
        vd = (v if v.device == x.device else v.to(x.device))._data  # (the example's values)
        data[(slice(None),) * dim + (idx if isinstance(idx, int) else 0, Ellipsis)] = vd
        new = Tensor._wrap(data, x._dtype, x._device)
        cc.bind(new, out)
        return new

    def rebind(self, old, new) -> None:
        """Every name bound to ``old`` (the same object) now bound to ``new``."""
        for k, bound in list(self.env.items()):
            if bound is old:
                self.env[k] = new

    def item_value(self, value, x: Tensor, row: tuple, node) -> Tensor:
        """The value of ``x[i] = value`` as a tensor of ``x``'s dtype and the row's shape."""
        if isinstance(value, Tensor):
            if value.device != x.device:
                raise self.err(node, f"item assignment of a tensor on {value.device} into a "
                               f"tensor on {x.device}")  # fmt: skip
            v = value if value.dtype is x.dtype else value.to(x.dtype)
        elif isinstance(value, Dyn):  # (a Python number: update moves it to x's device)
            v = value.t.to(x.dtype)
        elif isinstance(value, (bool, int, float)):
            v = tensor(value, dtype=x.dtype, device=x.device)
        else:
            raise self.err(node, f"item assignment of a {_kind_of(value)} into a tensor",
                           "a tensor or a number")  # fmt: skip
        if tuple(v.shape) != row:
            try:
                v = v.expand(*row) if row else v.reshape(())
            except (FusejitError, ValueError, RuntimeError):
                raise self.err(node, f"item assignment of a value of shape {list(v.shape)} "
                               f"into a row of shape {list(row)}") from None  # fmt: skip
        return v

    def is_external(self, x: Tensor) -> bool:
        """Whether ``x`` may be (a view of) an argument, a module's or a global tensor."""
        xp = x._device.backend.xp
        return any(t.device == x.device and bool(xp.may_share_memory(t._data, x._data))
                   for t in self.external)  # fmt: skip

    def check_unaliased(self, name: str, x: Tensor, node) -> None:
        """Item assignment is functional in the graph, so it must not be observable through
        anything else: an argument or a module's or global tensor (Python would change the
        caller's), or another variable that may be a view of ``x`` (it would keep the old
        values where Python's view changes)."""
        xp = x._device.backend.xp

        def overlaps(t) -> bool:
            return t.device == x.device and bool(xp.may_share_memory(t._data, x._data))

        if self.is_external(x):
            raise self.err(node, f"item assignment into `{name}`, which is (or may be a view "
                           "of) an argument, a module attribute or a global: the change would "
                           "not reach the caller as it does in Python",
                           f"assign into a copy: {name} = {name}.clone()")  # fmt: skip
        for k, bound in self.env.items():
            if bound is x or k.startswith("$"):
                continue
            leaves = [bound] if isinstance(bound, Tensor) else (
                [v for v in _flat(bound) if isinstance(v, Tensor)]
                if isinstance(bound, (tuple, list)) else [])  # fmt: skip
            if any(overlaps(t) for t in leaves):
                raise self.err(node, f"item assignment into `{name}` while `{k}` may be a view "
                               f"of it (or hold it): `{k}` would keep the old values",
                               f"take a copy for `{k}` with .clone(), or assign after its "
                               "last use")  # fmt: skip

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
        if isinstance(value, (DynRange, Enumerate, Zip)):
            what = {DynRange: "range", Enumerate: "enumerate", Zip: "zip"}[type(value)]
            raise self.err(node, f"{what}() can only be iterated over by a for loop (or "
                           "passed to len(), list() or tuple()), not kept in a variable",
                           f"for ... in {what}(...):")  # fmt: skip
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
            self.assign_item(target, value)
        elif isinstance(target, ast.Attribute):
            raise self.err(
                target,
                "assignment to attributes is not supported in fusejit.script",
                "keep state in local variables and return it",
            )
        else:
            raise self.err(target, "unsupported assignment target")
