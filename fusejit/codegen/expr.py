"""The expression language of the op table, and the base renderer every target shares.

An op's ``expr`` is Python syntax over its inputs ``x``, ``y``, ``z``, calling the primitive
functions of ``fusejit/ops/primitives.py``. It is parsed once into a small tree; a target's
``Renderer`` subclass turns the tree into source for that target (numba Python for the CPU,
CUDA C for the GPU), typing each subexpression as it goes. The base class renders what the
targets share; subclasses override what differs.
"""

from __future__ import annotations

import abc
import ast
from functools import cache

from fusejit.base import dtypes as dt
from fusejit.ops.primitives import PRIMITIVES

_BINOPS = {
    ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/", ast.FloorDiv: "//",
    ast.Mod: "%", ast.Pow: "**", ast.BitAnd: "&", ast.BitOr: "|", ast.BitXor: "^",
}  # fmt: skip
_CMPOPS = {ast.Eq: "==", ast.NotEq: "!=", ast.Lt: "<", ast.LtE: "<=", ast.Gt: ">", ast.GtE: ">="}


# C's fmod of integers from Python's %: r = x % y has the divisor's sign, fmod the dividend's;
# where they differ (r != 0) fmod is r - y (no overflow: r and y have one sign, |r| < |y|).
# x % 0 is 0, so an integer fmod by zero is 0 too.
_INT_FMOD = "where((x % y != 0) & ((x % y < 0) != (x < 0)), x % y - y, x % y)"


@cache
def parse(src: str):
    """Parse an op expression into nested tuples: (tag, ...) with tags var, const, bin, un,
    cmp, and, or, not, call."""
    return _conv(ast.parse(src, mode="eval").body, src)


def _conv(n, src):
    if isinstance(n, ast.Name):
        return ("var", n.id)
    if isinstance(n, ast.Constant) and isinstance(n.value, (int, float)):
        return ("const", n.value)
    if isinstance(n, ast.BinOp) and type(n.op) in _BINOPS:
        return ("bin", _BINOPS[type(n.op)], _conv(n.left, src), _conv(n.right, src))
    if isinstance(n, ast.UnaryOp):
        if isinstance(n.op, ast.USub):
            return ("un", "-", _conv(n.operand, src))
        if isinstance(n.op, ast.Invert):
            return ("un", "~", _conv(n.operand, src))
        if isinstance(n.op, ast.Not):
            return ("not", _conv(n.operand, src))
    if isinstance(n, ast.Compare) and len(n.ops) == 1 and type(n.ops[0]) in _CMPOPS:
        return ("cmp", _CMPOPS[type(n.ops[0])], _conv(n.left, src), _conv(n.comparators[0], src))
    if isinstance(n, ast.BoolOp) and len(n.values) == 2:
        tag = "and" if isinstance(n.op, ast.And) else "or"
        return (tag, _conv(n.values[0], src), _conv(n.values[1], src))
    if isinstance(n, ast.Call) and isinstance(n.func, ast.Name) and n.func.id in PRIMITIVES:
        return ("call", n.func.id, tuple(_conv(a, src) for a in n.args))
    raise SyntaxError(f"op expression {src!r}: unsupported construct {ast.dump(n)[:60]}")


class Renderer(abc.ABC):
    """Renders typed expression trees. Subclasses supply target spellings.

    ``render(tree, env, compute)`` returns (code, dtype); ``env`` maps input names to
    (code, dtype) already cast to the compute dtype. Literals take ``compute``.
    """

    def render(self, tree, env: dict, compute: dt.DType, attrs: dict | None = None):
        tag = tree[0]
        if tag == "var":
            return env[tree[1]]
        if tag == "const":
            return self.const(tree[1], compute), compute
        if tag == "bin":
            a, ta = self.render(tree[2], env, compute, attrs)
            b, tb = self.render(tree[3], env, compute, attrs)
            t = dt.promote_types(ta, tb)
            return self.binop(tree[1], a, b, t), t
        if tag == "un":
            a, ta = self.render(tree[2], env, compute, attrs)
            if tree[1] == "~" and ta is dt.bool_:
                return self.lnot(a), ta
            return self.unop(tree[1], a, ta), ta
        if tag == "not":
            a, ta = self.render(tree[1], env, compute, attrs)
            return self.lnot(self.truth(a, ta)), dt.bool_
        if tag == "cmp":
            a, ta = self.render(tree[2], env, compute, attrs)
            b, tb = self.render(tree[3], env, compute, attrs)
            return self.cmp(tree[1], a, b, dt.promote_types(ta, tb)), dt.bool_
        if tag in ("and", "or"):
            a, ta = self.render(tree[1], env, compute, attrs)
            b, tb = self.render(tree[2], env, compute, attrs)
            return self.logic(tag, self.truth(a, ta), self.truth(b, tb)), dt.bool_
        if tag == "call":
            name, args = tree[1], tree[2]
            if name == "cast":
                a, ta = self.render(args[0], env, compute, attrs)
                to = attrs["dtype"]
                return self.cast(a, ta, to), to
            rendered = [self.render(a, env, compute, attrs) for a in args]
            kind = PRIMITIVES[name].kind
            if kind == "select":
                (c, tc), (a, ta), (b, tb) = rendered
                t = dt.promote_types(ta, tb)
                return self.where(self.truth(c, tc), a, b, t), t
            codes = [r[0] for r in rendered]
            t = rendered[0][1]
            if kind == "bool":
                return self.classify(name, codes[0], t), dt.bool_
            if kind == "extreme":
                t = dt.promote_types(t, rendered[1][1])
                return self.extreme(name, codes[0], codes[1], t), t
            if kind == "remainder" and not t.is_floating_point:
                return self.render(parse(_INT_FMOD), dict(zip("xy", rendered)), t, attrs)
            if kind == "same" and not t.is_floating_point:
                return (self.intabs(codes[0], t) if name == "abs" else codes[0]), t
            return self.func(name, codes, t), t
        raise AssertionError(tree)

    # target hooks -----------------------------------------------------------------------
    @abc.abstractmethod
    def const(self, value, dtype): ...

    @abc.abstractmethod
    def cast(self, a, src, dst): ...

    @abc.abstractmethod
    def func(self, name, args, dtype):
        """A ``float`` primitive, or a ``same`` one on floats."""

    @abc.abstractmethod
    def extreme(self, name, a, b, dtype):
        """``max`` or ``min`` of ``a`` and ``b`` (of ``dtype``), NaN-propagating."""

    @abc.abstractmethod
    def where(self, c, a, b, dtype): ...

    @abc.abstractmethod
    def classify(self, name, a, dtype): ...

    @abc.abstractmethod
    def logic(self, op, a, b): ...

    @abc.abstractmethod
    def lnot(self, a): ...

    def binop(self, op, a, b, dtype):
        return f"({a} {op} {b})"

    def unop(self, op, a, dtype):
        return f"({op}{a})"

    def cmp(self, op, a, b, dtype):
        return f"({a} {op} {b})"

    def truth(self, a, dtype):
        return a if dtype is dt.bool_ else f"({a} != 0)"

    def intabs(self, a, dtype):
        return f"abs({a})"
