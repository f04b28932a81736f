"""The standard's elementwise math on complex arrays, written on the real and imaginary parts
with fusejit's real functions (fusejit's own ops take complex values for arithmetic only), so
it traces as they do. The formulas are the textbook ones; the standard's special cases for
infinite and NaN parts are followed where the formulas give them."""

from __future__ import annotations

import math

import fusejit.eager.elementwise as E
from fusejit.eager import complex_functions as CF
from fusejit.eager import movement
from fusejit.eager.tensor import Tensor

__all__ = [
    "acos", "acosh", "asin", "asinh", "atan", "atanh", "cos", "cosh", "exp", "expm1",
    "isfinite", "isinf", "isnan", "log", "log1p", "log2", "log10", "pow", "round", "sign",
    "sin", "sinh", "sqrt", "tan", "tanh",
]  # fmt: skip


def parts(z: Tensor) -> tuple[Tensor, Tensor]:
    return CF.real(z), CF.imag(z)


def make(re: Tensor, im: Tensor) -> Tensor:
    """The complex array ``re + i im`` (of the parts' broadcast shape)."""
    re, im = movement.broadcast_tensors(re, im)
    return CF.view_as_complex(movement.stack([re, im], -1))


def exp(z: Tensor) -> Tensor:
    a, b = parts(z)
    ea = E.exp(a)
    return make(_mul0(ea, E.cos(b), b), _mul0(ea, E.sin(b), b))


def _mul0(r: Tensor, f: Tensor, b: Tensor) -> Tensor:
    """``r * f`` where a zero ``b`` gives ``r`` times an exact 1 or 0 (no inf * 0)."""
    return E.where(E.eq(b, 0), E.where(E.eq(f, 0), f, r * f), r * f)


def expm1(z: Tensor) -> Tensor:
    a, b = parts(z)
    s = E.sin(b * 0.5)
    re = E.expm1(a) * E.cos(b) - 2.0 * s * s
    return make(re, E.exp(a) * E.sin(b))


def log(z: Tensor) -> Tensor:
    a, b = parts(z)
    return make(E.log(E.hypot(a, b)), E.atan2(b, a))


def log1p(z: Tensor) -> Tensor:
    a, b = parts(z)
    return log(make(a + 1.0, b))


def log2(z: Tensor) -> Tensor:
    a, b = parts(log(z))
    return make(a / math.log(2.0), b / math.log(2.0))


def log10(z: Tensor) -> Tensor:
    a, b = parts(log(z))
    return make(a / math.log(10.0), b / math.log(10.0))


def sqrt(z: Tensor) -> Tensor:
    a, b = parts(z)
    r = E.hypot(a, b)
    re = E.sqrt(E.maximum((r + a) * 0.5, 0.0))
    im = E.copysign(E.sqrt(E.maximum((r - a) * 0.5, 0.0)), b)
    inf_b = E.isinf(b)
    re = E.where(inf_b, float("inf"), re)
    im = E.where(inf_b, b, im)
    return make(re, im)


def sin(z: Tensor) -> Tensor:
    a, b = parts(z)
    return make(E.sin(a) * E.cosh(b), E.cos(a) * E.sinh(b))


def cos(z: Tensor) -> Tensor:
    a, b = parts(z)
    return make(E.cos(a) * E.cosh(b), -(E.sin(a) * E.sinh(b)))


def sinh(z: Tensor) -> Tensor:
    a, b = parts(z)
    return make(E.sinh(a) * E.cos(b), E.cosh(a) * E.sin(b))


def cosh(z: Tensor) -> Tensor:
    a, b = parts(z)
    return make(E.cosh(a) * E.cos(b), E.sinh(a) * E.sin(b))


def tanh(z: Tensor) -> Tensor:
    a, b = parts(z)
    d = E.cosh(2.0 * a) + E.cos(2.0 * b)
    big = E.gt(E.abs(a), 20.0)  # cosh overflows first: the limits
    re = E.where(big, E.copysign(1.0, a),
                 E.sinh(2.0 * a) / d)  # fmt: skip
    im = E.where(big, E.sin(2.0 * b) * 0.0, E.sin(2.0 * b) / d)
    return make(re, im)


def tan(z: Tensor) -> Tensor:
    # tan(z) = -i tanh(i z)
    a, b = parts(z)
    ta, tb = parts(tanh(make(-b, a)))
    return make(tb, -ta)


def _mul_i(z: Tensor) -> Tensor:
    a, b = parts(z)
    return make(-b, a)


def _mul_minus_i(z: Tensor) -> Tensor:
    a, b = parts(z)
    return make(b, -a)


def asinh(z: Tensor) -> Tensor:
    return log(z + sqrt(z * z + 1.0))


def asin(z: Tensor) -> Tensor:
    return _mul_minus_i(asinh(_mul_i(z)))


def acos(z: Tensor) -> Tensor:
    a, b = parts(asin(z))
    return make(math.pi / 2 - a, -b)


def acosh(z: Tensor) -> Tensor:
    return log(z + sqrt(z + 1.0) * sqrt(z - 1.0))


def atanh(z: Tensor) -> Tensor:
    a, b = parts(log(1.0 + z) - log(1.0 - z))
    return make(a * 0.5, b * 0.5)


def atan(z: Tensor) -> Tensor:
    return _mul_minus_i(atanh(_mul_i(z)))


def isnan(z: Tensor) -> Tensor:
    a, b = parts(z)
    return E.logical_or(E.isnan(a), E.isnan(b))


def isinf(z: Tensor) -> Tensor:
    a, b = parts(z)
    return E.logical_or(E.isinf(a), E.isinf(b))


def isfinite(z: Tensor) -> Tensor:
    a, b = parts(z)
    return E.logical_and(E.isfinite(a), E.isfinite(b))


def round(z: Tensor) -> Tensor:  # noqa: A001
    a, b = parts(z)
    return make(E.round(a), E.round(b))


def sign(z: Tensor) -> Tensor:
    a, b = parts(z)
    r = E.hypot(a, b)
    zero = E.eq(r, 0)
    safe = E.where(zero, 1.0, r)
    return make(E.where(zero, 0.0, a / safe), E.where(zero, 0.0, b / safe))


def pow(z, w) -> Tensor:  # noqa: A001
    return exp(w * log(z)) if isinstance(w, Tensor) or w != 0 else z * 0 + 1
