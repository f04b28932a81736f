"""The op table: every op fusejit knows is one ``OpDef`` here.

An entry holds what every part of the system needs to know about an op, so that eager dispatch,
tracing, the interpreter, code generation for each target and the tests are all driven from it:

- ``name``, ``kind`` (elementwise, reduction, scan, sort, movement, matmul, composite,
  random), ``arity``
- ``rule``: how the result dtype follows from the inputs (see ``dtype_rule``)
- ``allowed``: the input dtype kinds the op accepts
- ``ref``: a numpy reference (the spec tests compare against)
- ``np_name``: the numpy/cupy function eager dispatch calls, when one exists; otherwise
  eager dispatch compiles ``expr`` into a kernel
- ``expr``: the op as an expression over ``x``, ``y``, ``z`` (and attributes), in the small
  expression language every code-generation target renders (see ``fusejit/codegen/expr.py``;
  the functions it may call: ``fusejit/ops/primitives.py``)
- ``exact``: the op is correctly rounded in every dtype, so results compare bitwise
- ``domain``: the input range tests draw values from
- ``reduce``: how a reduction is computed in a kernel (``Reduce``); the reductions that have it
  fuse into row kernels
- ``vjp``: the op's derivative rule (reverse mode): ``vjp(F, ctx, *grads)`` gives, for each
  operand, the gradient of the loss with respect to it (None where there is none) from the
  gradients ``grads`` of the op's results. ``F`` is the ``fusejit`` namespace of public
  functions (handed in, so that the table imports nothing above it): a rule is written with
  table ops, and a backward pass is an ordinary graph that traces, fuses and saves.
  ``ctx.inputs`` holds the operands as called (tensors and Python scalars), ``ctx.outputs``
  the results, ``ctx.attrs`` the attributes. ``differentiable=False``: the op has no gradient
  (comparisons, integer results, argmax, ...); autograd treats its results as constants.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from fusejit.base import dtypes as dt
from fusejit.base.errors import DTypeError
from fusejit.ops.primitives import check_expr

__all__ = [
    "OpDef",
    "Reduce",
    "OPS",
    "register",
    "get_op",
    "accumulation_dtype",
    "wide_accumulation_dtype",
]

# kinds of dtypes accepted by an op
NUM = frozenset("iuf")  # numbers, no bool
ANY = frozenset("biuf")
FLOAT_ONLY = frozenset("f")
INT_BOOL = frozenset("biu")
INT_ONLY = frozenset("iu")
# with complex values (kind "c"): the few ops that take them (dtypes.COMPLEX_DTYPES)
ANY_C = ANY | {"c"}
NUM_C = NUM | {"c"}
FLOAT_C = FLOAT_ONLY | {"c"}
# elementwise ops whose result on complex inputs is real (the magnitude)
REAL_OF_COMPLEX = frozenset({"abs"})


def accumulation_dtype(d: dt.DType) -> dt.DType:
    """The dtype values of dtype ``d`` are summed (and, in kernels, computed) in: float16 in
    float32, the result rounded to float16 (as PyTorch, and numpy's float16 matmul); any other
    dtype in itself. Reductions, normalizations and scans accumulate so, eagerly and in kernels."""
    return dt.float32 if d is dt.float16 else d


def wide_accumulation_dtype(d: dt.DType) -> dt.DType:
    """The dtype variances, products and cumulative products of dtype ``d`` are computed in:
    float16 in float32 and float32 in float64 (as PyTorch's CPU kernels accumulate them), the
    result rounded back, so that squares and partial products of |x| > 1e19 do not overflow
    float32 when the result itself fits. Any other dtype in itself."""
    if d is dt.float16:
        return dt.float32
    return dt.float64 if d is dt.float32 else d


@dataclass(frozen=True)
class Reduce:
    """How a reduction is computed, for the code-generation targets (row kernels).

    ``combine`` is an expression (in the expression language, over ``x`` the running value and
    ``y`` an element or another partial result, both in the accumulation dtype) that every
    target renders with its renderer; ``identity`` its neutral element, where ``-inf`` and
    ``inf`` stand for an integer dtype's lowest and highest value; ``widen``: float16
    accumulates in float32 (``accumulation_dtype``), else a reduction accumulates in its result
    dtype (max and min are exact); ``finalize``: the row's result from the combined value ``x``
    and the number of elements reduced ``n`` (in the accumulation dtype), or None for ``x``.
    """

    combine: str
    identity: float
    widen: bool = True
    finalize: str | None = None

    def __post_init__(self) -> None:
        check_expr(self.combine, "xy")
        if self.finalize is not None:
            check_expr(self.finalize, "xn")

    def acc_dtype(self, out: dt.DType) -> dt.DType:
        """The accumulation dtype of a reduction whose result has dtype ``out``."""
        return accumulation_dtype(out) if self.widen else out

    def identity_of(self, d: dt.DType) -> bool | int | float:
        """The neutral element in dtype ``d`` (a Python number)."""
        v = self.identity
        if d.is_floating_point:
            return float(v)
        if d is dt.bool_:
            return v > 0
        if math.isinf(v):
            info = np.iinfo(d.np)
            return int(info.min if v < 0 else info.max)
        return int(v)


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
    reduce: Reduce | None = None
    # reverse-mode derivative (see the module docstring); differentiable=False: none exists
    vjp: Callable | None = None
    differentiable: bool = True

    @property
    def fusible(self) -> bool:
        return self.kind == "elementwise" and self.expr is not None

    def __repr__(self) -> str:
        return f"<op {self.name}>"


OPS: dict[str, OpDef] = {}


def register(op: OpDef) -> OpDef:
    if op.name in OPS:
        raise ValueError(f"op {op.name!r} registered twice")
    if op.expr is not None:
        check_expr(op.expr, "xyz")
    OPS[op.name] = op
    return op


def get_op(name: str) -> OpDef:
    try:
        return OPS[name]
    except KeyError:
        raise KeyError(f"no op named {name!r} in the op table") from None


# The types of the attributes the op table's implementations take, by name (one convention
# for every op): what a graph read from a file is checked against (``call_problem``).
_BOOL_ATTRS = ("keepdim", "log", "sqrt", "has_weight", "has_bias", "descending", "upper",
               "full_matrices", "hermitian", "include_self", "accumulate", "right",
               "out_int32", "ignore_nan")  # fmt: skip
_INT_TUPLE_ATTRS = ("dims", "shape", "sections", "shifts", "reps")
_INT_ATTRS = ("diagonal", "num_classes", "bins", "offset", "k")
_OPT_INT_ATTRS = ("n",)  # an int or None
_OPT_INT_TUPLE_ATTRS = ("s",)  # a tuple of ints or None
_STR_ATTRS = ("equation", "mode", "UPLO", "reduce", "interpolation", "norm")
# floats: tolerances, a quantile (None where the value is an operand or left to its default)
_FLOAT_ATTRS = ("atol", "rtol", "rcond", "q")
_DIM_ATTRS = ("dim", "normalized_ndim")  # an int, a tuple of ints, or None


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def call_problem(op: OpDef, n_tensors: int, n_operands: int, attrs: dict) -> str | None:
    """What is wrong with calling ``op`` on ``n_operands`` operands (``n_tensors`` of them
    tensors, the rest Python scalars) with ``attrs``, or None: the operand count and kinds,
    the attribute names its implementation takes, and their types."""
    if op.kind == "elementwise":
        if n_operands != op.arity or n_tensors < 1:
            return f"{n_operands} operands ({n_tensors} tensors), expected {op.arity}"
        want = {"dtype"} if op.rule == "cast" else set()
        if set(attrs) != want:
            return f"attributes {sorted(attrs)}, expected {sorted(want)}"
        if want and not isinstance(attrs["dtype"], dt.DType):
            return "dtype is not a dtype"
        return None
    if op.impl is None:  # (composites without an implementation are decomposed)
        return None
    if not n_tensors == n_operands >= 1:
        return "an operand that is not a tensor"
    try:  # (binding checks the number of operands too)
        inspect.signature(op.impl).bind(None, *[None] * n_operands, **attrs)
    except TypeError as e:
        return f"its attributes do not fit the op ({e})"
    for k, v in attrs.items():
        if k == "dtype" and not (v is None or isinstance(v, dt.DType)):
            return "dtype is not a dtype"
        if k in _BOOL_ATTRS and not isinstance(v, bool):
            return f"{k} is not a bool"
        if k in _INT_ATTRS and not _is_int(v):
            return f"{k} is not an int"
        if k in _OPT_INT_ATTRS and not (v is None or _is_int(v)):
            return f"{k} is not an int or None"
        if k in _OPT_INT_TUPLE_ATTRS and not (
            v is None or (isinstance(v, tuple) and all(map(_is_int, v)))
        ):
            return f"{k} is not a tuple of ints or None"
        if k in _STR_ATTRS and not isinstance(v, str):
            return f"{k} is not a string"
        if k in _FLOAT_ATTRS and not (v is None or isinstance(v, float)):
            return f"{k} is not a float"
        if k in _INT_TUPLE_ATTRS and not (isinstance(v, tuple) and all(map(_is_int, v))):
            return f"{k} is not a tuple of ints"
        if k in _DIM_ATTRS and not (
            v is None or _is_int(v) or (isinstance(v, tuple) and all(map(_is_int, v)))
        ):
            return f"{k} is not an int or a tuple of ints"
    return None


_KIND_WORD = {"b": "bool", "i": "integer", "u": "integer", "f": "floating-point", "c": "complex"}


def check_allowed(op: OpDef, dtypes) -> None:
    for d in dtypes:
        if d.kind not in op.allowed:
            kinds = " or ".join(sorted({_KIND_WORD[k] for k in op.allowed}))
            got = ", ".join(str(x.name) for x in dtypes)
            raise DTypeError(f"{op.name}: expected {kinds} inputs, got dtype {got}")


# the rules of arithmetic: float16 with a Python number computes in float32 (PyTorch's "opmath")
OPMATH_RULES = ("promote", "bool_to_long", "float")


def dtype_rule(op: OpDef, promoted: dt.DType) -> tuple[dt.DType, dt.DType]:
    """(compute dtype, result dtype) of an elementwise op whose inputs promote to ``promoted``.

    Rules:
      promote  -> the promoted dtype for both
      bool_to_long -> as promote, but bool inputs are computed as int64 (PyTorch's square, pow)
      float    -> ints and bool are computed in the default float dtype (torch semantics)
      compare  -> computed in the promoted dtype, result bool
      logical  -> inputs read as bool, result bool
    Complex inputs (ops allowing kind "c") compute and result in the promoted complex dtype,
    except ``abs`` (``REAL_OF_COMPLEX``), whose result is the real dtype of the parts.
    """
    rule = op.rule
    if promoted.kind == "c" and rule in ("promote", "float"):
        # complex inputs (only the ops whose ``allowed`` has "c") compute in their own dtype
        return promoted, dt.real_of(promoted) if op.name in REAL_OF_COMPLEX else promoted
    if rule == "promote":
        return promoted, promoted
    if rule == "bool_to_long":  # (square, pow: as PyTorch's, bools are counted as int64)
        c = dt.int64 if promoted is dt.bool_ else promoted
        return c, c
    if rule == "float":
        c = promoted if promoted.is_floating_point else dt.default_float
        return c, c
    if rule == "compare":
        return promoted, dt.bool_
    if rule == "logical":
        return dt.bool_, dt.bool_
    raise AssertionError(f"unknown dtype rule {rule!r} for {op.name}")
