"""The standard's elementwise functions, written with fusejit's public functions (so they
trace and fuse) after the namespace's promotion (``_dtypes.promote``): operands of two dtypes
are cast to the promoted one first, Python scalars stay scalars (constants of the kernel)."""

from __future__ import annotations

import fusejit.eager.elementwise as E
from fusejit.array_api import _complex as C
from fusejit.array_api._dtypes import promote, scalar_dtype
from fusejit.base import dtypes as dt
from fusejit.base.errors import TraceError
from fusejit.eager import complex_functions as CF
from fusejit.eager import creation, movement
from fusejit.eager.recording import tracing
from fusejit.eager.tensor import Tensor

__all__ = [
    "abs", "acos", "acosh", "add", "asin", "asinh", "atan", "atan2", "atanh", "bitwise_and",
    "bitwise_left_shift", "bitwise_invert", "bitwise_or", "bitwise_right_shift", "bitwise_xor",
    "ceil", "clip", "conj", "copysign", "cos", "cosh", "divide", "equal", "exp", "expm1",
    "floor", "floor_divide", "greater", "greater_equal", "hypot", "imag", "isfinite", "isinf",
    "isnan", "less", "less_equal", "log", "log1p", "log2", "log10", "logaddexp", "logical_and",
    "logical_not", "logical_or", "logical_xor", "maximum", "minimum", "multiply", "negative",
    "nextafter", "not_equal", "positive", "pow", "real", "reciprocal", "remainder", "round",
    "sign", "signbit", "sin", "sinh", "square", "sqrt", "subtract", "tan", "tanh", "trunc",
]  # fmt: skip


def _array(name: str, x) -> Tensor:
    if not isinstance(x, Tensor):
        raise TypeError(f"{name}: expected an array, got {type(x).__name__}")
    return x


def _to(x: Tensor, d: dt.DType) -> Tensor:
    return x if x.dtype is d else E.cast(x, d)


def operands(name: str, x1, x2):
    """``x1``, ``x2`` of the promoted dtype (a Python scalar stays one) and that dtype."""
    if isinstance(x1, Tensor):
        if isinstance(x2, Tensor):
            d = promote(x1.dtype, x2.dtype)
            return _to(x1, d), _to(x2, d), d
        d = scalar_dtype(x1.dtype, x2, name)
        return _to(x1, d), x2, d
    if isinstance(x2, Tensor):
        d = scalar_dtype(x2.dtype, x1, name)
        return x1, _to(x2, d), d
    raise TypeError(f"{name}: at least one operand must be an array, got "
                    f"{type(x1).__name__} and {type(x2).__name__}")  # fmt: skip


def _check_kind(name: str, d: dt.DType, kinds: str, what: str) -> None:
    if d.kind not in kinds:
        raise TypeError(f"{name}: expected {what} arrays, got {d.name}")


_NUM, _INT, _INTB, _FLT, _REAL = "iufc", "iu", "biu", "fc", "iuf"


def _unary(name: str, fn, kinds: str = _NUM, what: str = "numeric", cfn=None):
    def f(x, /):
        x = _array(name, x)
        _check_kind(name, x.dtype, kinds, what)
        if x.dtype.kind == "c" and cfn is not None:
            return cfn(x)
        return fn(x)

    f.__name__ = f.__qualname__ = name
    f.__doc__ = f"The standard's ``{name}``, elementwise."
    return f


def _binary(name: str, fn, kinds: str = _NUM, what: str = "numeric", cfn=None):
    def f(x1, x2, /):
        a, b, d = operands(name, x1, x2)
        _check_kind(name, d, kinds, what)
        if d.kind == "c" and cfn is not None:
            return cfn(a, b)
        return fn(a, b)

    f.__name__ = f.__qualname__ = name
    f.__doc__ = f"The standard's ``{name}``, elementwise, after the standard's promotion."
    return f


def _same(x: Tensor) -> Tensor:
    return x


abs = _unary("abs", E.abs)  # noqa: A001
acos = _unary("acos", E.acos, _FLT, "float", C.acos)
acosh = _unary("acosh", E.acosh, _FLT, "float", C.acosh)
asin = _unary("asin", E.asin, _FLT, "float", C.asin)
asinh = _unary("asinh", E.asinh, _FLT, "float", C.asinh)
atan = _unary("atan", E.atan, _FLT, "float", C.atan)
atanh = _unary("atanh", E.atanh, _FLT, "float", C.atanh)
bitwise_invert = _unary("bitwise_invert", E.bitwise_not, _INTB, "integer or bool")
ceil = _unary("ceil", E.ceil, _REAL, "real")
floor = _unary("floor", E.floor, _REAL, "real")
trunc = _unary("trunc", E.trunc, _REAL, "real")
conj = _unary("conj", _same, cfn=CF.conj)
real = _unary("real", _same, cfn=CF.real)
imag = _unary("imag", lambda x: E.where(E.isnan(x), 0.0, x * 0.0), _FLT, "float", CF.imag)
cos = _unary("cos", E.cos, _FLT, "float", C.cos)
cosh = _unary("cosh", E.cosh, _FLT, "float", C.cosh)
exp = _unary("exp", E.exp, _FLT, "float", C.exp)
expm1 = _unary("expm1", E.expm1, _FLT, "float", C.expm1)
isfinite = _unary("isfinite", E.isfinite, cfn=C.isfinite)
isinf = _unary("isinf", E.isinf, cfn=C.isinf)
isnan = _unary("isnan", E.isnan, cfn=C.isnan)
log = _unary("log", E.log, _FLT, "float", C.log)
log1p = _unary("log1p", E.log1p, _FLT, "float", C.log1p)
log2 = _unary("log2", E.log2, _FLT, "float", C.log2)
log10 = _unary("log10", E.log10, _FLT, "float", C.log10)
logical_not = _unary("logical_not", E.logical_not, "b", "bool")
negative = _unary("negative", E.neg)
positive = _unary("positive", lambda x: x.clone())
reciprocal = _unary("reciprocal", lambda x: 1.0 / x, _FLT, "float", lambda x: 1.0 / x)
round = _unary("round", E.round, _NUM, "numeric", C.round)  # noqa: A001
sign = _unary("sign", E.sign, cfn=C.sign)
sin = _unary("sin", E.sin, _FLT, "float", C.sin)
sinh = _unary("sinh", E.sinh, _FLT, "float", C.sinh)
square = _unary("square", E.square, cfn=lambda x: x * x)
sqrt = _unary("sqrt", E.sqrt, _FLT, "float", C.sqrt)
tan = _unary("tan", E.tan, _FLT, "float", C.tan)
tanh = _unary("tanh", E.tanh, _FLT, "float", C.tanh)

add = _binary("add", E.add)
atan2 = _binary("atan2", E.atan2, "f", "real float")
bitwise_and = _binary("bitwise_and", E.bitwise_and, _INTB, "integer or bool")
bitwise_or = _binary("bitwise_or", E.bitwise_or, _INTB, "integer or bool")
bitwise_xor = _binary("bitwise_xor", E.bitwise_xor, _INTB, "integer or bool")
copysign = _binary("copysign", E.copysign, "f", "real float")
divide = _binary("divide", E.div)
equal = _binary("equal", E.eq, "biufc", "any")


def _floor_divide(a, b):
    r = E.floor_divide(a, b)
    if r.dtype.kind != "f":
        return r
    a, b = (v if isinstance(v, Tensor) else creation.full((), v, dtype=r.dtype, device=r.device)
            for v in (a, b))  # fmt: skip
    # the standard's special cases numpy's rule misses: an infinite dividend over a finite
    # nonzero divisor is infinite; a finite nonzero one over an infinite divisor of the other
    # sign is -0 (numpy: -1)
    inf_over_finite = E.logical_and(E.isinf(a), E.logical_and(E.isfinite(b), E.ne(b, 0)))
    r = E.where(inf_over_finite, E.div(a, b), r)
    finite_over_inf = E.logical_and(E.logical_and(E.isfinite(a), E.ne(a, 0)), E.isinf(b))
    other_sign = E.ne(E.lt(a, 0), E.lt(b, 0))
    return E.where(E.logical_and(finite_over_inf, other_sign), -0.0, r)


def _remainder(a, b):
    r = E.remainder(a, b)
    if r.dtype.kind != "f":
        return r
    # a zero remainder takes the divisor's sign
    return E.where(E.eq(r, 0), E.copysign(E.abs(r), b), r)


floor_divide = _binary("floor_divide", _floor_divide, _REAL, "real")
greater = _binary("greater", E.gt, "biuf", "real")
greater_equal = _binary("greater_equal", E.ge, "biuf", "real")
hypot = _binary("hypot", E.hypot, "f", "real float")
less = _binary("less", E.lt, "biuf", "real")
less_equal = _binary("less_equal", E.le, "biuf", "real")
logaddexp = _binary("logaddexp", E.logaddexp, "f", "real float")
logical_and = _binary("logical_and", E.logical_and, "b", "bool")
logical_or = _binary("logical_or", E.logical_or, "b", "bool")
logical_xor = _binary("logical_xor", E.logical_xor, "b", "bool")
maximum = _binary("maximum", E.maximum, _REAL, "real")
minimum = _binary("minimum", E.minimum, _REAL, "real")
multiply = _binary("multiply", E.mul)
not_equal = _binary("not_equal", E.ne, "biufc", "any")
pow = _binary("pow", E.pow, cfn=C.pow)  # noqa: A001
remainder = _binary("remainder", _remainder, _REAL, "real")
subtract = _binary("subtract", E.sub)


def signbit(x, /) -> Tensor:
    """True where the sign bit of ``x`` is set (-0.0 and NaNs with the bit too).

    >>> import fusejit.array_api as xp
    >>> xp.signbit(xp.asarray([-0.0, 0.0, -2.0])).tolist()
    [True, False, True]
    """
    x = _array("signbit", x)
    _check_kind("signbit", x.dtype, "f", "real float")
    return E.lt(E.copysign(1.0, x), 0)


def _shift_operands(name: str, x1, x2):
    a, b, d = operands(name, x1, x2)
    _check_kind(name, d, _INT, "integer")
    if not isinstance(a, Tensor):
        a = creation.full((), a, dtype=d, device=b.device)
    if not isinstance(b, Tensor):
        b = creation.full((), b, dtype=d, device=a.device)
    return a, b, d


def bitwise_left_shift(x1, x2, /) -> Tensor:
    """``x1`` shifted left by ``x2`` bits (0 from a shift by the width or more).

    >>> import fusejit.array_api as xp
    >>> xp.bitwise_left_shift(xp.asarray([1, 3], dtype=xp.int8), 2).tolist()
    [4, 12]
    """
    a, b, d = _shift_operands("bitwise_left_shift", x1, x2)
    # 2 ** b wraps in the dtype as the shifted bits do (2 ** width is 0)
    bits = d.itemsize * 8
    return E.where(E.ge(b, bits), 0, a * E.pow(2, E.minimum(b, bits)))


def bitwise_right_shift(x1, x2, /) -> Tensor:
    """``x1`` shifted right by ``x2`` bits (arithmetic shift: the sign fills).

    >>> import fusejit.array_api as xp
    >>> xp.bitwise_right_shift(xp.asarray([-8, 8], dtype=xp.int8), 2).tolist()
    [-2, 2]
    """
    a, b, d = _shift_operands("bitwise_right_shift", x1, x2)
    top = d.itemsize * 8 - (1 if d.kind == "i" else 0)  # shifts from here give 0 or -1
    low = E.floor_divide(a, E.pow(2, E.minimum(b, top - 1)))
    over = E.where(E.lt(a, 0), a * 0 - 1, a * 0) if d.kind == "i" else a * 0
    return E.where(E.ge(b, top), over, low)


def nextafter(x1, x2, /) -> Tensor:
    """The next float after ``x1`` towards ``x2`` (eager only: no table op computes it yet,
    so it is a TraceError under ``fusejit.trace``).

    >>> import fusejit.array_api as xp
    >>> float(xp.nextafter(xp.asarray(1.0), 2.0)) - 1.0
    2.220446049250313e-16
    """
    a, b, d = operands("nextafter", x1, x2)
    _check_kind("nextafter", d, "f", "real float")
    if not isinstance(a, Tensor):
        a = creation.full((), a, dtype=d, device=b.device)
    if not isinstance(b, Tensor):
        b = creation.full((), b, dtype=d, device=a.device)
    if tracing() is not None:
        raise TraceError("nextafter runs eagerly only (no op of the table computes it)")
    if a.device != b.device:
        raise TypeError(f"nextafter: arrays on {a.device} and {b.device}")
    a, b = movement.broadcast_tensors(a, b)
    xp = a.device.backend.xp
    return Tensor._wrap(xp.nextafter(a._data, b._data), d, a.device)


def clip(x, /, min=None, max=None) -> Tensor:  # noqa: A002 - the standard's names
    """``x`` limited to ``[min, max]`` (arrays or scalars; the result has ``x``'s dtype).

    >>> import fusejit.array_api as xp
    >>> xp.clip(xp.asarray([-1, 5, 9]), 0, 6).tolist()
    [0, 5, 6]
    """
    x = _array("clip", x)
    _check_kind("clip", x.dtype, _REAL, "real")
    for v in (min, max):
        if isinstance(v, Tensor):
            promote(x.dtype, v.dtype)
        elif v is not None:
            scalar_dtype(x.dtype, v, "clip")
            if x.dtype.kind in "iu" and isinstance(v, float):
                raise TypeError("clip: a float bound for an integer array")
    r = x
    if min is not None:
        r = E.where(E.lt(r, min), _to(min, x.dtype) if isinstance(min, Tensor) else min, r)
    if max is not None:
        r = E.where(E.gt(r, max), _to(max, x.dtype) if isinstance(max, Tensor) else max, r)
    if r is x:
        r = x.clone()
    if r.dtype is not x.dtype:
        r = E.cast(r, x.dtype)
    if r.shape != x.shape:
        raise ValueError(f"clip: the bounds broadcast {x.shape} to {r.shape}")
    return r
