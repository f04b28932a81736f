"""Symbolic sizes: ints that stand for polynomials over named symbols (``s0``, ``s1``), the sizes
of a graph's dynamic dims.

A ``SymInt`` is an ``int`` whose value is the size seen when the graph was traced (its *hint*),
so code that reads it as an int keeps working; arithmetic with ints and other ``SymInt`` keeps
the expression (``T * 3``, ``C // H`` where the division is exact on every coefficient), and
``resolve`` evaluates an expression (or a nested tuple, list or dict holding some) for the
symbols' values of a call.

While a trace records (``tracing``), a comparison whose result depends on the symbols gives the
hint's answer, and, when user code made it (not fusejit's own), records a *guard*: the graph is
valid only where the comparison answers the same (``T <= 256``). Anything an expression cannot
hold (a float, a power, a division that is not exact) *pins* the symbols it reads to their hints
(a guard too): the graph is then specialized to those sizes, never wrong. Outside a trace,
``==`` is structural (two sizes are equal when their expressions are), which is what the passes
need to fuse only values of one shape.

>>> s = SymInt.symbol("s0", 6)
>>> t = s * 4 + 2
>>> int(t), str(t), resolve((t, t // 2, 3), {"s0": 10})
(26, '4*s0 + 2', (42, 21, 3))
"""

from __future__ import annotations

import operator
import sys

__all__ = [
    "SymInt", "is_symbolic", "resolve", "sym_ints", "symbols_of", "tracing", "Guard",
    "check_guards",
]  # fmt: skip

# package folders: a comparison made by fusejit's own code records no guard (the node shape
# checks validate what internal code computed); one made by user code does
_HERE = __file__.rsplit("/", 3)[0]
_ROOTS = (_HERE + "/fusejit/", _HERE + "/backends/", _HERE + "/kernels/")

_GUARDS: list | None = None  # where guards go while a trace records
_ATOMS: dict = {}  # "(s0 + 1)//2" -> (the operand's polynomial, the divisor)


class tracing:
    """Record the guards of symbolic comparisons into ``guards`` inside the block."""

    def __init__(self, guards: list) -> None:
        self.guards = guards

    def __enter__(self):
        global _GUARDS
        self._prev = _GUARDS
        _GUARDS = self.guards
        return self.guards

    def __exit__(self, *exc) -> None:
        global _GUARDS
        _GUARDS = self._prev


def _from_user(depth: int = 3) -> bool:
    f = sys._getframe(depth)
    name = f.f_code.co_filename
    return not name.startswith(_ROOTS) or "/fusejit/bench/" in name


_OPS = {"eq": operator.eq, "ne": operator.ne, "lt": operator.lt, "le": operator.le,
        "gt": operator.gt, "ge": operator.ge}  # fmt: skip


class Guard:
    """``op(expr, 0) == expected`` must hold for a graph's symbols."""

    __slots__ = ("expr", "op", "expected", "where")

    def __init__(self, expr, op: str, expected: bool, where: str = "") -> None:
        self.expr, self.op, self.expected, self.where = expr, op, expected, where

    def holds(self, env: dict) -> bool:
        return _OPS[self.op](resolve(self.expr, env), 0) == self.expected

    def key(self) -> tuple:
        return (_poly_of(self.expr), self.op, self.expected)

    def __str__(self) -> str:
        sym = {"eq": "==", "ne": "!=", "lt": "<", "le": "<=", "gt": ">", "ge": ">="}[self.op]
        if not self.expected:
            sym = {"==": "!=", "!=": "==", "<": ">=", "<=": ">", ">": "<=", ">=": "<"}[sym]
        return f"{self.expr} {sym} 0"


def check_guards(guards, env: dict) -> Guard | None:
    """The first guard that does not hold for ``env``, or None."""
    for g in guards:
        if not g.holds(env):
            return g
    return None


def _poly_of(x) -> tuple:
    """``x`` (an int or SymInt) as a sorted tuple of (monomial, coefficient)."""
    if isinstance(x, SymInt):
        return x.poly
    return (((), int(x)),) if int(x) else ()


def _mk(poly: dict, hint: int):
    terms = tuple(sorted((m, c) for m, c in poly.items() if c))
    if all(m == () for m, _ in terms):
        return terms[0][1] if terms else 0
    return SymInt(hint, terms)


class SymInt(int):
    """An int size standing for a polynomial over named symbols; its int value is the hint."""

    def __new__(cls, hint: int, poly: tuple):
        self = int.__new__(cls, hint)
        self.poly = poly
        return self

    @classmethod
    def symbol(cls, name: str, hint: int) -> SymInt:
        return cls(hint, (((name,), 1),))

    # ---- reading --------------------------------------------------------------------------
    def __repr__(self) -> str:
        parts = []
        for m, c in sorted(self.poly, key=lambda t: (-len(t[0]), t[0])):
            if not m:
                parts.append(str(c))
            else:
                name = "*".join(m)
                parts.append(name if c == 1 else f"-{name}" if c == -1 else f"{c}*{name}")
        s = " + ".join(parts).replace("+ -", "- ")
        return s

    __str__ = __repr__

    def __format__(self, spec: str) -> str:
        return repr(self) if not spec else format(int(self), spec)

    def __hash__(self) -> int:
        return int.__hash__(self)

    def __reduce__(self):
        return (SymInt, (int(self), self.poly))

    def _pin(self):
        """This size as a plain int, with the guard that it keeps its hint (user code)."""
        if _GUARDS is not None and _from_user():
            _GUARDS.append(Guard(self - int(self), "eq", True, "pinned"))
        return int(self)

    # ---- arithmetic -----------------------------------------------------------------------
    def _combine(self, other, sign: int):
        if not isinstance(other, int) or isinstance(other, bool):
            return NotImplemented
        poly = dict(self.poly)
        for m, c in _poly_of(other):
            poly[m] = poly.get(m, 0) + sign * c
        return _mk(poly, int(self) + sign * int(other))

    def __add__(self, other):
        r = self._combine(other, 1)
        return self._pin() + other if r is NotImplemented else r

    __radd__ = __add__

    def __sub__(self, other):
        r = self._combine(other, -1)
        return self._pin() - other if r is NotImplemented else r

    def __rsub__(self, other):
        return (-self) + other if isinstance(other, int) else other - self._pin()

    def __neg__(self):
        return _mk({m: -c for m, c in self.poly}, -int(self))

    def __pos__(self):
        return self

    def __abs__(self):
        return self if int(self) >= 0 and self._nonneg() else abs(self._pin())

    def _nonneg(self) -> bool:
        return all(c >= 0 for _, c in self.poly)

    def __mul__(self, other):
        if not isinstance(other, int) or isinstance(other, bool):
            return self._pin() * other
        poly: dict = {}
        for m1, c1 in self.poly:
            for m2, c2 in _poly_of(other):
                m = tuple(sorted(m1 + m2))
                poly[m] = poly.get(m, 0) + c1 * c2
        return _mk(poly, int(self) * int(other))

    __rmul__ = __mul__

    def __floordiv__(self, other):
        if type(other) is int and other > 0:
            if all(c % other == 0 for m, c in self.poly if m):
                poly = {m: (c // other if m else c) for m, c in self.poly}
                const = poly.pop((), 0)
                # (a*s + b) // k == (a/k)*s + b // k when k divides a
                poly[()] = const // other
                return _mk(poly, int(self) // other)
            # else a new atom: the floor division itself, evaluated from its operand
            name = f"({self})//{other}"
            _ATOMS.setdefault(name, (self.poly, other))
            return SymInt(int(self) // other, (((name,), 1),))
        return self._pin() // (int(other) if isinstance(other, int) else other)

    def __rfloordiv__(self, other):
        return other // self._pin()

    def __mod__(self, other):
        if type(other) is int and other > 0:
            if all(c % other == 0 for m, c in self.poly if m):
                return int(self) % other  # the same for every value of the symbols
            return self - (self // other) * other
        return self._pin() % (int(other) if isinstance(other, int) else other)

    def __rmod__(self, other):
        return other % self._pin()

    def __truediv__(self, other):
        return self._pin() / other

    def __rtruediv__(self, other):
        return other / self._pin()

    def __pow__(self, other, mod=None):
        if type(other) is int and other >= 0 and mod is None:
            r = 1
            for _ in range(other):
                r = self * r
            return r
        return pow(self._pin(), other, mod)

    def __rpow__(self, other):
        return other ** self._pin()

    def __float__(self) -> float:
        return float(self._pin())

    def __divmod__(self, other):
        return divmod(self._pin(), other)

    def __and__(self, other):
        return self._pin() & other

    def __or__(self, other):
        return self._pin() | other

    def __xor__(self, other):
        return self._pin() ^ other

    def __lshift__(self, other):
        return self._pin() << other

    def __rshift__(self, other):
        return self._pin() >> other

    __rand__, __ror__, __rxor__ = __and__, __or__, __xor__

    # ---- comparing ------------------------------------------------------------------------
    def _compare(self, other, op: str):
        if not isinstance(other, int):
            if isinstance(other, float):
                return _OPS[op](self._pin(), other)
            return NotImplemented
        diff = self - other
        if not isinstance(diff, SymInt):  # the same for every value of the symbols
            return _OPS[op](diff, 0)
        result = _OPS[op](int(diff), 0)
        if _GUARDS is None:
            if op in ("eq", "ne"):  # outside a trace: structural (the passes)
                return op == "ne"
            return result
        if _from_user():
            _GUARDS.append(Guard(diff, op, result))
        return result

    def __eq__(self, other):
        return self._compare(other, "eq")

    def __ne__(self, other):
        return self._compare(other, "ne")

    def __lt__(self, other):
        return self._compare(other, "lt")

    def __le__(self, other):
        return self._compare(other, "le")

    def __gt__(self, other):
        return self._compare(other, "gt")

    def __ge__(self, other):
        return self._compare(other, "ge")

    def __bool__(self) -> bool:
        return int(self) != 0


def sym_ints(obj):
    """Each ``SymInt`` in ``obj`` (a size, or a nested tuple, list or dict of them)."""
    if isinstance(obj, SymInt):
        yield obj
    elif isinstance(obj, (tuple, list)):
        for o in obj:
            yield from sym_ints(o)
    elif isinstance(obj, dict):
        for o in obj.values():
            yield from sym_ints(o)


def is_symbolic(obj) -> bool:
    """Whether ``obj`` (a size, or a nested tuple, list or dict of them) holds a ``SymInt``."""
    return next(sym_ints(obj), None) is not None


def symbols_of(obj, out: set | None = None) -> set:
    """The names of the symbols ``obj`` reads."""
    out = set() if out is None else out
    for s in sym_ints(obj):
        for m, _ in s.poly:
            for name in m:
                if name in _ATOMS:
                    symbols_of(SymInt(0, _ATOMS[name][0]), out)
                else:
                    out.add(name)
    return out


def _evaluate(poly, env: dict) -> int:
    total = 0
    for m, c in poly:
        for name in m:
            v = env.get(name)
            if v is None:  # a floor division
                operand, k = _ATOMS[name]
                v = _evaluate(operand, env) // k
            c *= v
        total += c
    return total


def resolve(obj, env: dict):
    """``obj`` with every ``SymInt`` evaluated for the symbols' values ``env`` (plain ints)."""
    if isinstance(obj, SymInt):
        return _evaluate(obj.poly, env)
    if type(obj) is tuple:
        return tuple(resolve(o, env) for o in obj)
    if type(obj) is list:
        return [resolve(o, env) for o in obj]
    if type(obj) is dict:
        return {k: resolve(o, env) for k, o in obj.items()}
    if type(obj) is slice:
        return slice(resolve(obj.start, env), resolve(obj.stop, env), resolve(obj.step, env))
    return obj
