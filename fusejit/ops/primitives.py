"""The primitive functions of the expression language, stated once.

An op's ``expr`` (and a reduction's ``combine`` and ``finalize``) may call these and nothing
else; every code-generation target's renderer spells each of them (``fusejit/codegen/expr.py``
dispatches on ``kind``; tests/test_primitives.py checks that no renderer misses one).

Kinds, which fix the result dtype and how a renderer is asked for the call:

- ``float``: a floating-point function (transcendental or sqrt): the operand's dtype; costly
  enough that a row kernel keeps its value rather than compute it twice;
- ``same``: the operand's dtype, exact (abs and the roundings; the identity on integers but
  for abs);
- ``remainder``: ``fmod(a, b)``, C's truncated remainder (the dividend's sign) in the
  operands' dtype, of floats and integers alike; an integer one by zero is 0 (as ``%``'s).
  Renderers spell it for floats; the base renderer writes the integer one with ``%``;
- ``extreme``: max / min of two values in their promoted dtype, NaN-propagating (a NaN in
  either gives NaN); the sign of a zero result is unspecified. The combine step of amax / amin;
- ``bool``: a classification of floats (false, or true for isfinite, on integers);
- ``select``: ``where(c, a, b)``; ``cast``: to the step's ``dtype`` attribute.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass


@dataclass(frozen=True)
class Primitive:
    name: str
    arity: int
    kind: str  # float, same, remainder, extreme, bool, select, cast (see the module docstring)


def _table(kind: str, arity: int, names: str) -> dict:
    return {n: Primitive(n, arity, kind) for n in names.split()}


_FLOAT_1 = "exp exp2 expm1 log log2 log10 log1p sqrt sin cos tan asin acos atan sinh cosh tanh"
PRIMITIVES: dict[str, Primitive] = {
    **_table("float", 1, _FLOAT_1 + " erf sigmoid erfc erfinv asinh acosh atanh"),
    **_table("float", 2, "atan2 hypot copysign"),
    **_table("remainder", 2, "fmod"),
    **_table("same", 1, "abs floor ceil trunc rint"),
    **_table("extreme", 2, "max min"),
    **_table("bool", 1, "isnan isinf isfinite"),
    **_table("select", 3, "where"),
    **_table("cast", 1, "cast"),
}


def of_kind(*kinds: str) -> frozenset:
    """The names of the primitives of these kinds."""
    return frozenset(p.name for p in PRIMITIVES.values() if p.kind in kinds)


def check_expr(src: str, variables: str) -> None:
    """Raise ValueError unless ``src`` parses, calls only primitives (with their arity) and
    reads only the one-letter ``variables``: an op table entry is checked when registered."""
    try:
        tree = ast.parse(src, mode="eval")
    except SyntaxError as e:
        raise ValueError(f"expression {src!r}: {e.msg}") from None
    for n in ast.walk(tree):
        if isinstance(n, ast.Call):
            p = PRIMITIVES.get(n.func.id) if isinstance(n.func, ast.Name) else None
            if p is None or len(n.args) != p.arity or n.keywords:
                raise ValueError(f"expression {src!r}: {ast.unparse(n)} is no primitive call")
        elif isinstance(n, ast.Name) and n.id not in PRIMITIVES and n.id not in variables:
            raise ValueError(f"expression {src!r}: unknown name {n.id!r}")


__all__ = ["Primitive", "PRIMITIVES", "of_kind", "check_expr"]
