"""The op table: every op fusejit knows is one ``OpDef`` here.

An entry holds what every part of the system needs to know about an op, so that eager dispatch,
tracing, the interpreter, code generation for each target and the tests are all driven from it:

- ``name``, ``kind`` (elementwise, reduction, movement, matmul, composite, creation), ``arity``
- ``rule``: how the result dtype follows from the inputs (see ``dtype_rule``)
- ``allowed``: the input dtype kinds the op accepts
- ``ref``: a numpy reference (the spec tests compare against)
- ``np_name``: the numpy/cupy function eager dispatch calls, when one exists; otherwise
  eager dispatch compiles ``expr`` into a kernel
- ``expr``: the op as an expression over ``x``, ``y``, ``z`` (and attributes), in the small
  expression language every code-generation target renders (see ``fusejit/codegen/expr.py``)
- ``exact``: the op is correctly rounded in every dtype, so results compare bitwise
- ``domain``: the input range tests draw values from
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from .. import dtypes as dt
from ..errors import DTypeError

__all__ = ["OpDef", "OPS", "register", "get_op"]

# kinds of dtypes accepted by an op
NUM = frozenset("iuf")  # numbers, no bool
ANY = frozenset("biuf")
FLOAT_ONLY = frozenset("f")
INT_BOOL = frozenset("biu")
INT_ONLY = frozenset("iu")


@dataclass(frozen=True, eq=False)
class OpDef:
    name: str
    kind: str
    arity: int
    rule: str = "promote"
    allowed: frozenset = ANY
    ref: Callable | None = None
    np_name: str | None = None
    expr: str | None = None
    exact: bool = False
    domain: tuple[float, float] = (-10.0, 10.0)
    methods: tuple[str, ...] = ()
    rmethods: tuple[str, ...] = ()
    inplace: str | None = None
    doc: str = ""
    # non-elementwise ops: impl(backend, *arrays, **attrs) -> array or tuple of arrays, and
    # out_dtype(*input dtypes, **attrs) -> result dtype (or a tuple, one per result)
    impl: Callable | None = None
    out_dtype: Callable | None = None
    n_out: int = 1

    @property
    def fusible(self) -> bool:
        return self.kind == "elementwise" and self.expr is not None

    def __repr__(self) -> str:
        return f"<op {self.name}>"


OPS: dict[str, OpDef] = {}


def register(op: OpDef) -> OpDef:
    if op.name in OPS:
        raise ValueError(f"op {op.name!r} registered twice")
    OPS[op.name] = op
    return op


def get_op(name: str) -> OpDef:
    try:
        return OPS[name]
    except KeyError:
        raise KeyError(f"no op named {name!r} in the op table") from None


_KIND_WORD = {"b": "bool", "i": "integer", "u": "integer", "f": "floating-point"}


def check_allowed(op: OpDef, dtypes) -> None:
    for d in dtypes:
        if d.kind not in op.allowed:
            kinds = " or ".join(sorted({_KIND_WORD[k] for k in op.allowed}))
            got = ", ".join(str(x.name) for x in dtypes)
            raise DTypeError(f"{op.name}: expected {kinds} inputs, got dtype {got}")


def dtype_rule(op: OpDef, promoted: dt.DType) -> tuple[dt.DType, dt.DType]:
    """(compute dtype, result dtype) of an elementwise op whose inputs promote to ``promoted``.

    Rules:
      promote  -> the promoted dtype for both
      float    -> ints and bool are computed in the default float dtype (torch semantics)
      compare  -> computed in the promoted dtype, result bool
      logical  -> inputs read as bool, result bool
    """
    rule = op.rule
    if rule == "promote":
        return promoted, promoted
    if rule == "float":
        c = promoted if promoted.is_floating_point else dt.default_float
        return c, c
    if rule == "compare":
        return promoted, dt.bool_
    if rule == "logical":
        return dt.bool_, dt.bool_
    raise AssertionError(f"unknown dtype rule {rule!r} for {op.name}")
