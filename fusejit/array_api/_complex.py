"""The standard's elementwise math on complex arrays, written on the real and imaginary parts
with fusejit's real functions (fusejit's own ops take complex values for arithmetic only), so
it traces as they do. The formulas are the textbook ones; the standard's special cases for
infinite and NaN parts are followed where the formulas give them."""

from __future__ import annotations

import math

import fusejit.eager.elementwise as E
from fusejit.base import dtypes as dt
from fusejit.eager import complex_functions as CF
from fusejit.eager import creation, movement
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
    if re.numel() == 0:  # (numpy gives an empty stack strides view_as_complex refuses)
        d = dt.complex128 if re.dtype is dt.float64 else dt.complex64
        return creation.empty(re.shape, dtype=d, device=re.device)
    return CF.view_as_complex(movement.stack([re, im], -1))


_INF = float("inf")
_NAN = float("nan")
_PI = math.pi


def _times(f: Tensor, g: Tensor) -> Tensor:
    """``f * g`` where an exact zero factor gives a (signed) zero, never ``0 * inf`` = NaN:
    the products of C99's formulas whose zero part is exact (``sinh(0)``, ``sin(0)``)."""
    zero = E.logical_or(E.eq(f, 0), E.eq(g, 0))
    fs = E.where(E.isfinite(f), f, E.copysign(1.0, f))
    gs = E.where(E.isfinite(g), g, E.copysign(1.0, g))
    return E.where(zero, fs * gs, f * g)


def _unbounded(v: Tensor) -> Tensor:
    return E.logical_not(E.isfinite(v))


def _select(cases, re: Tensor, im: Tensor):
    """``re``, ``im`` with each ``(mask, re_value, im_value)`` of ``cases`` put where its mask
    holds (the later cases win)."""
    for mask, r, i in cases:
        re = E.where(mask, r, re)
        im = E.where(mask, i, im)
    return re, im


def _and(*masks: Tensor) -> Tensor:
    m = masks[0]
    for k in masks[1:]:
        m = E.logical_and(m, k)
    return m


def _exp_cases(x: Tensor, y: Tensor, re: Tensor, im: Tensor, minus_inf: float):
    """C99's special cases of cexp (``minus_inf``: the real part at x = -inf, 0 for exp, -1
    for expm1): a zero imaginary part stays exact, an infinite x over an infinite or NaN y."""
    wild = _unbounded(y)
    return _select([
        (E.eq(y, 0), re, y),
        (_and(E.eq(x, -_INF), wild), minus_inf, 0.0),
        (_and(E.eq(x, _INF), wild), _INF, _NAN),
    ], re, im)  # fmt: skip


def exp(z: Tensor) -> Tensor:
    x, y = parts(z)
    ex = E.exp(x)
    re, im = _exp_cases(x, y, ex * E.cos(y), ex * E.sin(y), 0.0)
    return make(re, im)


def expm1(z: Tensor) -> Tensor:
    x, y = parts(z)
    s = E.sin(y * 0.5)
    re = E.where(E.eq(y, 0), E.expm1(x), E.expm1(x) * E.cos(y) - 2.0 * s * s)
    re, im = _exp_cases(x, y, re, E.exp(x) * E.sin(y), -1.0)
    return make(E.where(E.logical_and(E.eq(x, 0), E.eq(y, 0)), 0.0, re), im)  # +-0 + 0j: +0


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
    fin_b = E.isfinite(b)
    pos_inf, neg_inf = E.eq(a, _INF), E.eq(a, -_INF)
    re = E.where(E.logical_and(neg_inf, fin_b), 0.0, re)
    im = E.where(E.logical_and(neg_inf, fin_b), E.copysign(_INF, b), im)
    im = E.where(E.logical_and(pos_inf, fin_b), E.copysign(0.0, b), im)
    re = E.where(E.logical_and(neg_inf, E.isnan(b)), _NAN, re)
    im = E.where(E.logical_and(neg_inf, E.isnan(b)), _INF, im)
    inf_b = E.isinf(b)
    return make(E.where(inf_b, _INF, re), E.where(inf_b, b, im))


def sinh(z: Tensor) -> Tensor:
    x, y = parts(z)
    re = _times(E.sinh(x), E.cos(y))
    re = E.where(E.logical_and(E.isinf(x), _unbounded(y)), x, re)
    return make(re, _times(E.cosh(x), E.sin(y)))


def cosh(z: Tensor) -> Tensor:
    x, y = parts(z)
    re = E.cosh(x) * E.cos(y)
    re = E.where(E.logical_and(E.isinf(x), _unbounded(y)), _INF, re)
    return make(re, _times(E.sinh(x), E.sin(y)))


def tanh(z: Tensor) -> Tensor:
    x, y = parts(z)
    d = E.cosh(2.0 * x) + E.cos(2.0 * y)
    # cosh overflows first: tanh is +-1 there, to the last bit (for a finite y, or x = +-inf)
    big = E.logical_and(E.gt(E.abs(x), 20.0), E.logical_or(E.isfinite(y), E.isinf(x)))
    re = E.where(big, E.copysign(1.0, x), E.sinh(2.0 * x) / d)
    im = E.where(E.eq(y, 0), y, E.sin(2.0 * y) / d)
    im = E.where(big, E.copysign(0.0, y), im)
    re = E.where(E.eq(x, 0), x, re)
    return make(re, im)


def _rot(z: Tensor) -> Tensor:  # i z
    a, b = parts(z)
    return make(-b, a)


def _unrot(z: Tensor) -> Tensor:  # -i z
    a, b = parts(z)
    return make(b, -a)


def sin(z: Tensor) -> Tensor:
    return _unrot(sinh(_rot(z)))


def cos(z: Tensor) -> Tensor:
    return cosh(_rot(z))


def tan(z: Tensor) -> Tensor:
    return _unrot(tanh(_rot(z)))


def _for_large(w: Tensor, re_im):
    """asinh and acosh of ``w`` far from 0: log(2 w) (within 1 / |w|^2), where ``w * w``
    would overflow."""
    re, im = re_im
    a, b = parts(w)
    large = E.gt(E.hypot(a, b), 1e8)
    lre, lim = parts(log(w))
    return E.where(large, lre + math.log(2.0), re), E.where(large, lim, im)


def asinh(z: Tensor) -> Tensor:
    x, y = parts(z)
    ax, ay = E.abs(x), E.abs(y)
    w = make(ax, ay)  # (odd in both parts: computed in the first quadrant, signs put back)
    re, im = _for_large(w, parts(log(w + sqrt(w * w + 1.0))))
    nx, ny, fx, fy = E.isnan(x), E.isnan(y), E.isfinite(x), E.isfinite(y)
    ix, iy = E.isinf(x), E.isinf(y)
    re, im = _select([
        (_and(fx, iy), _INF, _PI / 2),
        (_and(ix, fy), _INF, 0.0),
        (_and(ix, iy), _INF, _PI / 4),
        (_and(ix, ny), _INF, _NAN),
        (_and(nx, iy), _INF, _NAN),
        (_and(nx, E.eq(y, 0)), _NAN, 0.0),
    ], re, im)  # fmt: skip
    return make(E.copysign(re, x), E.copysign(im, y))


def asin(z: Tensor) -> Tensor:
    return _unrot(asinh(_rot(z)))


def acosh(z: Tensor) -> Tensor:
    x, y = parts(z)
    ay = E.abs(y)
    w = make(x, ay)  # (conjugate-symmetric: computed for y >= 0, the sign put back)
    re, im = _for_large(w, parts(log(w + sqrt(w + 1.0) * sqrt(w - 1.0))))
    nx, ny, fx, fy = E.isnan(x), E.isnan(y), E.isfinite(x), E.isfinite(y)
    iy = E.isinf(y)
    re, im = _select([
        (_and(E.eq(x, 0), E.eq(y, 0)), 0.0, _PI / 2),
        (_and(fx, iy), _INF, _PI / 2),
        (_and(E.eq(x, 0), ny), _NAN, _PI / 2),
        (_and(E.eq(x, -_INF), fy), _INF, _PI),
        (_and(E.eq(x, _INF), fy), _INF, 0.0),
        (_and(E.eq(x, -_INF), iy), _INF, 3 * _PI / 4),
        (_and(E.eq(x, _INF), iy), _INF, _PI / 4),
        (_and(E.isinf(x), ny), _INF, _NAN),
        (_and(nx, iy), _INF, _NAN),
    ], re, im)  # fmt: skip
    return make(re, E.copysign(im, y))


def acos(z: Tensor) -> Tensor:
    x, y = parts(z)
    ay = E.abs(y)
    w = make(x, ay)  # (conjugate-symmetric: computed for y >= 0, the sign put back)
    sa, sb = parts(asin(w))
    re, im = _PI / 2 - sa, -sb
    nx, ny, fx, fy = E.isnan(x), E.isnan(y), E.isfinite(x), E.isfinite(y)
    iy = E.isinf(y)
    re, im = _select([
        (_and(E.eq(x, 0), E.eq(y, 0)), _PI / 2, -0.0),
        (_and(E.eq(x, 0), ny), _PI / 2, _NAN),
        (_and(fx, iy), _PI / 2, -_INF),
        (_and(E.eq(x, -_INF), fy), _PI, -_INF),
        (_and(E.eq(x, _INF), fy), 0.0, -_INF),
        (_and(E.eq(x, -_INF), iy), 3 * _PI / 4, -_INF),
        (_and(E.eq(x, _INF), iy), _PI / 4, -_INF),
        (_and(E.isinf(x), ny), _NAN, _INF),
        (_and(nx, iy), _NAN, -_INF),
    ], re, im)  # fmt: skip
    return make(re, E.where(E.lt(E.copysign(1.0, y), 0), -im, im))


def atanh(z: Tensor) -> Tensor:
    x, y = parts(z)
    ax, ay = E.abs(x), E.abs(y)
    w = make(ax, ay)  # (odd in both parts: computed in the first quadrant, signs put back)
    re, im = parts(log(1.0 + w) - log(1.0 - w))
    re, im = re * 0.5, im * 0.5
    nx, ny, fx, fy = E.isnan(x), E.isnan(y), E.isfinite(x), E.isfinite(y)
    ix, iy = E.isinf(x), E.isinf(y)
    re, im = _select([
        (_and(E.eq(x, 0), E.eq(y, 0)), 0.0, 0.0),
        (_and(E.eq(x, 0), ny), 0.0, _NAN),
        (_and(E.eq(ax, 1), E.eq(y, 0)), _INF, 0.0),
        (_and(fx, iy), 0.0, _PI / 2),
        (_and(ix, fy), 0.0, _PI / 2),
        (_and(ix, iy), 0.0, _PI / 2),
        (_and(ix, ny), 0.0, _NAN),
        (_and(nx, iy), 0.0, _PI / 2),
    ], re, im)  # fmt: skip
    return make(E.copysign(re, x), E.copysign(im, y))


def atan(z: Tensor) -> Tensor:
    return _unrot(atanh(_rot(z)))


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
