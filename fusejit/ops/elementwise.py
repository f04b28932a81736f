"""Elementwise ops of the op table.

``expr`` is written in the expression language of ``fusejit/codegen/expr.py``: Python syntax over
the inputs ``x``, ``y``, ``z``; literals take the compute dtype; the functions are the primitives
of ``fusejit/ops/primitives.py``, which every target renders (exp, log, tanh, erf, sigmoid,
where, isnan, floor, ...); ``register`` refuses any other name.
"""

from __future__ import annotations

import math

import numpy as np

from fusejit.ops.registry import ANY, ANY_C, FLOAT_ONLY, INT_BOOL, NUM, NUM_C, OpDef, register

_erf64 = np.vectorize(math.erf, otypes=[np.float64])
_erfc64 = np.vectorize(math.erfc, otypes=[np.float64])


def _erfinv_scalar(v: float) -> float:
    """erfinv by bisection over the doubles on math.erf (math.erfc near 1, where 1 - |v| is
    exact): slow, but independent of the kernels' Newton-type steps."""
    a = abs(v)
    if not a <= 1.0:
        return math.nan
    if a == 1.0:
        return math.copysign(math.inf, v)
    if a == 0.0:
        return v
    c = 1.0 - a
    below = (lambda y: math.erf(y) < a) if a <= 0.5 else (lambda y: math.erfc(y) > c)
    as_bits = lambda y: int(np.float64(y).view(np.int64))  # noqa: E731
    lo, hi = 0, as_bits(6.0)  # (erfinv of the largest double below 1 is 5.86)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if below(float(np.int64(mid).view(np.float64))):
            lo = mid
        else:
            hi = mid
    y0, y1 = (float(np.int64(b).view(np.float64)) for b in (lo, hi))
    err = (lambda y: abs(math.erf(y) - a)) if a <= 0.5 else (lambda y: abs(math.erfc(y) - c))
    return math.copysign(y0 if err(y0) <= err(y1) else y1, v)


_erfinv64 = np.vectorize(_erfinv_scalar, otypes=[np.float64])


def _logaddexp_ref(x, y, exp, log1p, log_of_2):
    """numpy's logaddexp / logaddexp2 spelled out: ``max + log(1 + e**-|x - y|)``."""
    with np.errstate(all="ignore"):
        m = np.maximum(x, y)
        return np.where(x == y, x + log_of_2, m + log1p(exp(-np.abs(x - y))))


def _np(name):
    return getattr(np, name)


def float_remainder_zero(xp, r, a):
    """numpy's (or cupy's) float remainder ``r`` of ``a % b`` with its zeros given the sign of
    ``a``, as PyTorch's remainder (C's fmod) gives them: ``4. % -2.`` is 0.0, ``-4. % 2.`` -0.0;
    numpy gives a zero the divisor's sign."""
    fixed = xp.where(r == 0, xp.copysign(r, a), r)
    return fixed.astype(r.dtype, copy=False) if hasattr(r, "dtype") else fixed


def _remainder_ref(x, y):
    r = np.remainder(x, y)
    return float_remainder_zero(np, r, x) if np.asarray(r).dtype.kind == "f" else r


def unary(name, expr, np_name=None, rule="float", allowed=ANY, ref=None, **kw):
    return register(
        OpDef(
            name=name,
            kind="elementwise",
            arity=1,
            rule=rule,
            allowed=allowed,
            np_name=np_name,
            ref=ref if ref is not None else _np(np_name),
            expr=expr,
            methods=kw.pop("methods", (name,)),
            inplace=kw.pop("inplace", None),
            **kw,
        )
    )


def binary(name, expr, np_name=None, rule="promote", allowed=ANY, ref=None, **kw):
    return register(
        OpDef(
            name=name,
            kind="elementwise",
            arity=2,
            rule=rule,
            allowed=allowed,
            np_name=np_name,
            ref=ref if ref is not None else _np(np_name),
            expr=expr,
            methods=kw.pop("methods", (name,)),
            **kw,
        )
    )


# ---- derivative rules (``OpDef.vjp``; see ``registry``): ``F`` is the fusejit namespace, ``g``
# the gradient of the result; a rule may return gradients of the broadcast result's shape and
# dtype (the autograd engine sums and casts them to each operand's), and None for an operand
# that needs none (``ctx.needs_input_grad``)
_LN2 = math.log(2.0)
_LN10 = math.log(10.0)
_TWO_OVER_SQRT_PI = 2.0 / math.sqrt(math.pi)
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)
_SQRT_PI_OVER_2 = math.sqrt(math.pi) / 2.0


def _need(ctx, i):
    return ctx.needs_input_grad[i]


def _zero(F, ctx, g):
    return tuple(F.zeros_like(g) if n else None for n in ctx.needs_input_grad)


def _vjp_add(F, ctx, g):
    return g, g


def _vjp_sub(F, ctx, g):
    return g, (-g if _need(ctx, 1) else None)


def _vjp_mul(F, ctx, g):
    x, y = ctx.needs_input_grad
    return (g * ctx.inputs[1] if x else None), (g * ctx.inputs[0] if y else None)


def _vjp_div(F, ctx, g):
    y = ctx.inputs[1]
    gx = g / y if _need(ctx, 0) else None
    gy = -g * ctx.inputs[0] / (y * y) if _need(ctx, 1) else None
    return gx, gy


def _vjp_remainder(F, ctx, g):
    gy = None
    if _need(ctx, 1):
        gy = -g * F.floor_divide(ctx.inputs[0], ctx.inputs[1])
    return g, gy


def _vjp_pow(F, ctx, g):
    x, y = ctx.inputs[0], ctx.inputs[1]
    gx = gy = None
    if _need(ctx, 0):
        if not isinstance(y, F.Tensor) and y == 0:
            gx = F.zeros_like(g)
        else:
            gx = g * y * x ** (y - 1)
    if _need(ctx, 1):
        out = ctx.outputs[0]
        if isinstance(x, F.Tensor):
            logx = F.where(F.logical_and(x == 0, y >= 0), 0.0, out * F.log(x))
            gy = g * logx
        else:  # a Python number raised to a tensor
            gy = g * out * (math.log(x) if x > 0 else (0.0 if x == 0 else math.nan))
    return gx, gy


def _vjp_atan2(F, ctx, g):
    a, b = ctx.inputs[0], ctx.inputs[1]
    r = g / (a * a + b * b)
    return (r * b if _need(ctx, 0) else None), (-r * a if _need(ctx, 1) else None)


def _vjp_max_min(is_max):
    # ties share the gradient evenly; a nan goes to both operands, as PyTorch's
    def vjp(F, ctx, g):
        x, y = ctx.inputs[0], ctx.inputs[1]
        half = g / 2
        eq = x == y
        gx = F.where(eq, half, F.where(x < y if is_max else x > y, 0.0, g))
        gy = F.where(eq, half, F.where(x > y if is_max else x < y, 0.0, g))
        return (gx if _need(ctx, 0) else None), (gy if _need(ctx, 1) else None)

    return vjp


def _unary(fn):
    """A rule ``fn(F, x, out, g)`` of a one-operand op, as a ``vjp``."""

    def vjp(F, ctx, g):
        return (fn(F, ctx.inputs[0], ctx.outputs[0], g),)

    return vjp


def _vjp_out(fn):
    """A rule ``fn(F, out, g)`` reading only the result (the operand may be overwritten)."""

    def vjp(F, ctx, g):
        return (fn(F, ctx.outputs[0], g),)

    return vjp


def _vjp_in(fn):
    """A rule ``fn(F, x, g)`` reading only the operand."""

    def vjp(F, ctx, g):
        return (fn(F, ctx.inputs[0], g),)

    return vjp


def _vjp_zero(F, ctx, g):
    return _zero(F, ctx, g)


def _gelu_grad(F, x, g):
    cdf = 0.5 * (1.0 + F.erf(x * 0.7071067811865476))
    pdf = F.exp(-0.5 * x * x) * _INV_SQRT_2PI
    return g * (cdf + x * pdf)


def _gelu_tanh_grad(F, x, g):
    k = 0.7978845608028654
    x2 = x * x
    t = F.tanh(k * (x + 0.044715 * x2 * x))
    return g * (0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * k * (1.0 + 3 * 0.044715 * x2))


def _silu_grad(F, x, g):
    s = F.sigmoid(x)
    return g * s * (1.0 + x * (1.0 - s))


def _vjp_fmod(F, ctx, g):
    gy = None
    if _need(ctx, 1):
        gy = -g * F.trunc(ctx.inputs[0] / ctx.inputs[1])
    return g, gy


def _vjp_hypot(F, ctx, g):
    x, y = ctx.inputs[0], ctx.inputs[1]
    r = g / ctx.outputs[0]
    return (r * x if _need(ctx, 0) else None), (r * y if _need(ctx, 1) else None)


def _vjp_copysign(F, ctx, g):
    # the sign the result took from y, over x; zero where x is zero (as PyTorch's)
    x = ctx.inputs[0]
    gx = F.where(x == 0, 0.0, g * ctx.outputs[0] / x) if _need(ctx, 0) else None
    gy = F.zeros_like(g) if _need(ctx, 1) else None
    return gx, gy


def _vjp_logaddexp(base2: bool):
    def vjp(F, ctx, g):
        x, y = ctx.inputs[0], ctx.inputs[1]
        e = F.exp2 if base2 else F.exp
        gx = g / (1.0 + e(y - x)) if _need(ctx, 0) else None
        gy = g / (1.0 + e(x - y)) if _need(ctx, 1) else None
        return gx, gy

    return vjp


def _vjp_xlogy(F, ctx, g):
    x, y = ctx.inputs[0], ctx.inputs[1]
    gx = gy = None
    if _need(ctx, 0):  # log(y), 0 where x == 0 and y <= 0 (as PyTorch's)
        gx = F.where((x == 0) & (y <= 0), 0.0, F.xlogy(g, y))
    if _need(ctx, 1):
        gy = g * x / y
    return gx, gy


def _selu_grad(F, x, g):
    return g * F.where(
        x > 0, 1.0507009873554805, 1.0507009873554805 * 1.6732632423543772 * F.exp(x)
    )


def _hardswish_grad(F, x, g):
    return F.where(x < -3.0, 0.0, F.where(x <= 3.0, g * (x / 3.0 + 0.5), g))


def _mish_grad(F, x, g):
    t = F.tanh(F.softplus(x))
    return g * (t + x * F.sigmoid(x) * (1.0 - t * t))


def _vjp_where(F, ctx, g):
    c = ctx.inputs[0]
    gx = F.where(c, g, 0.0) if _need(ctx, 1) else None
    gy = F.where(c, 0.0, g) if _need(ctx, 2) else None
    return None, gx, gy


def _vjp_cast(F, ctx, g):
    return (g,)  # (the engine casts it back to the operand's dtype)


# ---- arithmetic -----------------------------------------------------------------------------
# + - * /, neg and abs also take complex values (computed eagerly: complex never fuses)
binary(
    "add",
    "x + y",
    "add",
    allowed=ANY_C,
    exact=True,
    methods=("add", "__add__"),
    rmethods=("__radd__",),
    inplace="add_",
    vjp=_vjp_add,
)
binary(
    "sub",
    "x - y",
    "subtract",
    allowed=NUM_C,
    exact=True,
    methods=("sub", "subtract", "__sub__"),
    rmethods=("__rsub__",),
    inplace="sub_",
    vjp=_vjp_sub,
)
binary(
    "mul",
    "x * y",
    "multiply",
    allowed=ANY_C,
    exact=True,
    methods=("mul", "multiply", "__mul__"),
    rmethods=("__rmul__",),
    inplace="mul_",
    vjp=_vjp_mul,
)
binary(
    "div",
    "x / y",
    "true_divide",
    rule="float",
    allowed=ANY_C,
    exact=True,
    methods=("div", "divide", "true_divide", "__truediv__"),
    rmethods=("__rtruediv__",),
    inplace="div_",
    vjp=_vjp_div,
)
binary(
    "floor_divide",
    "x // y",
    "floor_divide",
    allowed=NUM,
    exact=True,
    methods=("floor_divide", "__floordiv__"),
    rmethods=("__rfloordiv__",),
    domain=(-20, 20),
    vjp=_vjp_zero,
)
binary(
    "remainder",
    "x % y",
    "remainder",
    ref=_remainder_ref,
    allowed=NUM,
    exact=True,
    methods=("remainder", "__mod__"),
    rmethods=("__rmod__",),
    domain=(-20, 20),
    vjp=_vjp_remainder,
)
binary(
    "pow",
    "x ** y",
    "power",
    rule="bool_to_long",
    methods=("pow", "__pow__"),
    rmethods=("__rpow__",),
    domain=(0.5, 3.0),
    vjp=_vjp_pow,
)
binary("atan2", "atan2(x, y)", "arctan2", rule="float", allowed=ANY, vjp=_vjp_atan2)
binary(
    "maximum",
    "where((x > y) | (x != x), x, y)",
    "maximum",
    allowed=ANY,
    exact=True,
    vjp=_vjp_max_min(True),
)
binary(
    "minimum",
    "where((x < y) | (x != x), x, y)",
    "minimum",
    allowed=ANY,
    exact=True,
    vjp=_vjp_max_min(False),
)
# C's fmod (the dividend's sign); an integer fmod by zero is 0 as x % 0 (PyTorch's CPU raises)
binary(
    "fmod",
    "fmod(x, y)",
    "fmod",
    allowed=NUM,
    exact=True,
    domain=(-20, 20),
    inplace="fmod_",
    vjp=_vjp_fmod,
)
binary(
    "hypot",
    "hypot(x, y)",
    "hypot",
    rule="float",
    allowed=FLOAT_ONLY,
    inplace="hypot_",
    vjp=_vjp_hypot,
)
binary(
    "copysign",
    "copysign(x, y)",
    "copysign",
    rule="float",
    exact=True,
    inplace="copysign_",
    vjp=_vjp_copysign,
)
# numpy's formulas: x + log(2) where x == y (equal infinities stay infinite), x + y on NaN
binary(
    "logaddexp",
    "where(x == y, x + 0.6931471805599453, where(x > y, x + log1p(exp(y - x)),"
    " where(x < y, y + log1p(exp(x - y)), x + y)))",
    "logaddexp",
    rule="float",
    allowed=FLOAT_ONLY,
    ref=lambda x, y: _logaddexp_ref(x, y, np.exp, np.log1p, np.log(2.0)),
    vjp=_vjp_logaddexp(False),
)
binary(
    "logaddexp2",
    "where(x == y, x + 1, where(x > y, x + 1.4426950408889634 * log1p(exp2(y - x)),"
    " where(x < y, y + 1.4426950408889634 * log1p(exp2(x - y)), x + y)))",
    "logaddexp2",
    rule="float",
    allowed=FLOAT_ONLY,
    ref=lambda x, y: _logaddexp_ref(x, y, np.exp2, lambda v: np.log1p(v) / np.log(2.0), 1.0),
    vjp=_vjp_logaddexp(True),
)
# torch's: NaN where y is NaN, else 0 where x == 0 (even for y = 0 or inf), else x * log(y)
binary(
    "xlogy",
    "where(y != y, y, where(x == 0, 0, x * log(y)))",
    ref=lambda x, y: np.where(np.isnan(y), y, np.where(x == 0, 0.0, x * np.log(y))),
    rule="float",
    domain=(0.0, 10.0),
    inplace="xlogy_",
    vjp=_vjp_xlogy,
)
# torch's: values where x == 0, else x > 0 (so heaviside(nan, v) is 0; numpy's is nan)
binary(
    "heaviside",
    "where(x == 0, y, where(x > 0, 1, 0))",
    ref=lambda x, y: np.where(x == 0, y, x > 0),
    exact=True,
    inplace="heaviside_",
    differentiable=False,
)

# ---- comparisons and logic ------------------------------------------------------------------
for _name, _sym, _np_name, _dunder in (
    ("eq", "==", "equal", "__eq__"),
    ("ne", "!=", "not_equal", "__ne__"),
    ("lt", "<", "less", "__lt__"),
    ("le", "<=", "less_equal", "__le__"),
    ("gt", ">", "greater", "__gt__"),
    ("ge", ">=", "greater_equal", "__ge__"),
):
    # (complex values: == and != only, as PyTorch)
    binary(_name, f"x {_sym} y", _np_name, rule="compare", exact=True, methods=(_name, _dunder),
           allowed=ANY_C if _name in ("eq", "ne") else ANY, differentiable=False)  # fmt: skip

binary("logical_and", "x and y", "logical_and", rule="logical", exact=True, differentiable=False)
binary("logical_or", "x or y", "logical_or", rule="logical", exact=True, differentiable=False)
# "(not x) != (not y)": the inputs are read as truth values, not compared as numbers
binary(
    "logical_xor",
    "(not x) != (not y)",
    "logical_xor",
    rule="logical",
    exact=True,
    differentiable=False,
)
unary("logical_not", "not x", "logical_not", rule="logical", exact=True, differentiable=False)

binary(
    "bitwise_and",
    "x & y",
    "bitwise_and",
    allowed=INT_BOOL,
    exact=True,
    methods=("bitwise_and", "__and__"),
    rmethods=("__rand__",),
    differentiable=False,
)
binary(
    "bitwise_or",
    "x | y",
    "bitwise_or",
    allowed=INT_BOOL,
    exact=True,
    methods=("bitwise_or", "__or__"),
    rmethods=("__ror__",),
    differentiable=False,
)
binary(
    "bitwise_xor",
    "x ^ y",
    "bitwise_xor",
    allowed=INT_BOOL,
    exact=True,
    methods=("bitwise_xor", "__xor__"),
    rmethods=("__rxor__",),
    differentiable=False,
)
unary(
    "bitwise_not",
    "~x",
    "invert",
    rule="promote",
    allowed=INT_BOOL,
    exact=True,
    methods=("bitwise_not", "__invert__"),
    differentiable=False,
)

# ---- sign and rounding ----------------------------------------------------------------------
unary(
    "neg",
    "-x",
    "negative",
    rule="promote",
    allowed=NUM_C,
    exact=True,
    methods=("neg", "negative", "__neg__"),
    vjp=lambda F, ctx, g: (-g,),
)
unary(
    "abs",
    "abs(x)",
    "absolute",
    rule="promote",
    allowed=NUM_C,
    exact=True,
    methods=("abs", "absolute", "__abs__"),
    vjp=_vjp_in(lambda F, x, g: g * F.sign(x)),
)
# sign(+-0.0) is +0.0 and sign(nan) is nan, as numpy's
unary(
    "sign",
    "where(x > 0, 1, where(x < 0, -1, where(x == 0, 0, x)))",
    "sign",
    rule="promote",
    exact=True,
    ref=lambda x: x.copy() if x.dtype == np.bool_ else np.sign(x),  # (numpy has no bool sign)
    vjp=_vjp_zero,
)
unary(
    "square",
    "x * x",
    "square",
    rule="bool_to_long",
    exact=True,
    vjp=_vjp_in(lambda F, x, g: 2.0 * x * g),
)
unary("floor", "floor(x)", "floor", rule="promote", allowed=NUM, exact=True, vjp=_vjp_zero)
unary("ceil", "ceil(x)", "ceil", rule="promote", allowed=NUM, exact=True, vjp=_vjp_zero)
unary(
    "trunc",
    "trunc(x)",
    "trunc",
    rule="promote",
    allowed=NUM,
    exact=True,
    methods=("trunc", "fix"),
    inplace="trunc_",
    vjp=_vjp_zero,
)
# np.round, not np.rint: the same half-to-even rounding, but integers stay integers
unary(
    "round", "rint(x)", "round", rule="promote", allowed=NUM, exact=True, ref=np.rint, vjp=_vjp_zero
)
# torch's x - trunc(x): frac(+-inf) is nan (numpy's modf gives +-0.0), frac(-2.0) is +0.0
unary(
    "frac",
    "x - trunc(x)",
    ref=lambda x: x - np.trunc(x),
    rule="promote",
    allowed=FLOAT_ONLY,
    exact=True,
    inplace="frac_",
    vjp=_vjp_in(lambda F, x, g: g),
)

# ---- powers, exponentials, logarithms -------------------------------------------------------
unary(
    "sqrt",
    "sqrt(x)",
    "sqrt",
    allowed=ANY,
    exact=True,
    domain=(0.0, 100.0),
    vjp=_vjp_out(lambda F, out, g: g / (2.0 * out)),
)
unary(
    "rsqrt",
    "1 / sqrt(x)",
    ref=lambda x: 1 / np.sqrt(x),
    allowed=ANY,
    domain=(0.01, 100.0),
    vjp=_vjp_out(lambda F, out, g: -0.5 * g * out * out * out),
)
unary(
    "reciprocal",
    "1 / x",
    "reciprocal",
    allowed=ANY,
    exact=True,
    ref=lambda x: np.reciprocal(x.astype(np.result_type(x, np.float32))),
    vjp=_vjp_out(lambda F, out, g: -g * out * out),
)
unary("exp", "exp(x)", "exp", allowed=ANY, vjp=_vjp_out(lambda F, out, g: g * out))
unary("exp2", "exp2(x)", "exp2", allowed=ANY, vjp=_vjp_out(lambda F, out, g: g * out * _LN2))
unary("expm1", "expm1(x)", "expm1", allowed=ANY, vjp=_vjp_out(lambda F, out, g: g * (out + 1.0)))
unary(
    "log", "log(x)", "log", allowed=ANY, domain=(0.001, 1000.0), vjp=_vjp_in(lambda F, x, g: g / x)
)
unary(
    "log2",
    "log2(x)",
    "log2",
    allowed=ANY,
    domain=(0.001, 1000.0),
    vjp=_vjp_in(lambda F, x, g: g / (x * _LN2)),
)
unary(
    "log10",
    "log10(x)",
    "log10",
    allowed=ANY,
    domain=(0.001, 1000.0),
    vjp=_vjp_in(lambda F, x, g: g / (x * _LN10)),
)
unary(
    "log1p",
    "log1p(x)",
    "log1p",
    allowed=ANY,
    domain=(-0.999, 1000.0),
    vjp=_vjp_in(lambda F, x, g: g / (x + 1.0)),
)

# ---- trigonometric and hyperbolic -----------------------------------------------------------
unary("sin", "sin(x)", "sin", allowed=ANY, vjp=_vjp_in(lambda F, x, g: g * F.cos(x)))
unary("cos", "cos(x)", "cos", allowed=ANY, vjp=_vjp_in(lambda F, x, g: -g * F.sin(x)))
unary(
    "tan",
    "tan(x)",
    "tan",
    allowed=ANY,
    domain=(-1.5, 1.5),
    vjp=_vjp_out(lambda F, out, g: g * (1.0 + out * out)),
)
unary(
    "asin",
    "asin(x)",
    "arcsin",
    allowed=ANY,
    domain=(-1.0, 1.0),
    methods=("asin", "arcsin"),
    vjp=_vjp_in(lambda F, x, g: g / F.sqrt(1.0 - x * x)),
)
unary(
    "acos",
    "acos(x)",
    "arccos",
    allowed=ANY,
    domain=(-1.0, 1.0),
    methods=("acos", "arccos"),
    vjp=_vjp_in(lambda F, x, g: -g / F.sqrt(1.0 - x * x)),
)
unary(
    "atan",
    "atan(x)",
    "arctan",
    allowed=ANY,
    methods=("atan", "arctan"),
    vjp=_vjp_in(lambda F, x, g: g / (1.0 + x * x)),
)
unary("sinh", "sinh(x)", "sinh", allowed=ANY, vjp=_vjp_in(lambda F, x, g: g * F.cosh(x)))
unary("cosh", "cosh(x)", "cosh", allowed=ANY, vjp=_vjp_in(lambda F, x, g: g * F.sinh(x)))
unary("tanh", "tanh(x)", "tanh", allowed=ANY, vjp=_vjp_out(lambda F, out, g: g * (1.0 - out * out)))

unary(
    "asinh",
    "asinh(x)",
    "arcsinh",
    methods=("asinh", "arcsinh"),
    inplace="asinh_",
    vjp=_vjp_in(lambda F, x, g: g / F.sqrt(x * x + 1.0)),
)
unary(
    "acosh",
    "acosh(x)",
    "arccosh",
    domain=(1.0, 100.0),
    methods=("acosh", "arccosh"),
    inplace="acosh_",
    vjp=_vjp_in(lambda F, x, g: g / F.sqrt((x - 1.0) * (x + 1.0))),
)
unary(
    "atanh",
    "atanh(x)",
    "arctanh",
    domain=(-0.999, 0.999),
    methods=("atanh", "arctanh"),
    inplace="atanh_",
    vjp=_vjp_in(lambda F, x, g: g / (1.0 - x * x)),
)

# ---- activations (no numpy kernel: eager runs the generated kernel) -------------------------
unary(
    "erf",
    "erf(x)",
    ref=_erf64,
    allowed=ANY,
    vjp=_vjp_in(lambda F, x, g: g * _TWO_OVER_SQRT_PI * F.exp(-x * x)),
)
unary(
    "sigmoid",
    "sigmoid(x)",
    ref=lambda x: 1 / (1 + np.exp(-x)),
    allowed=ANY,
    vjp=_vjp_out(lambda F, out, g: g * out * (1.0 - out)),
)
unary(
    "relu",
    "where(x < 0, 0, x)",
    ref=lambda x: np.where(x < 0, np.zeros_like(x), x),
    rule="promote",
    allowed=NUM,
    exact=True,
    vjp=_vjp_out(lambda F, out, g: F.where(out > 0, g, 0.0)),
)
unary(
    "gelu",
    "0.5 * x * (1 + erf(x * 0.7071067811865476))",
    ref=lambda x: 0.5 * x * (1 + _erf64(x * 0.7071067811865476)),
    allowed=ANY,
    vjp=_vjp_in(_gelu_grad),
)
# 0.5 * x * (1 + tanh(u)), u = sqrt(2/pi) * (x + 0.044715 x**3), computed as its equal
# x / (1 + exp(-2u)): one exp and a division instead of tanh's two branches (twice as fast on
# the CPU), and no cancellation in 1 + tanh(u) for u < 0, where the tanh form loses most of
# its digits (x = -4: 5e-4 relative error in float32; this form: 6e-7)
unary(
    "gelu_tanh",
    "x / (1 + exp(-1.5957691216057308 * (x + 0.044715 * x * x * x)))",
    ref=lambda x: 0.5 * x * (1 + np.tanh(0.7978845608028654 * (x + 0.044715 * x**3))),
    allowed=ANY,
    vjp=_vjp_in(_gelu_tanh_grad),
)
unary(
    "silu",
    "x * sigmoid(x)",
    ref=lambda x: x / (1 + np.exp(-x)),
    allowed=ANY,
    vjp=_vjp_in(_silu_grad),
)
# torch's softplus (beta=1, threshold=20): linear above the threshold
unary(
    "softplus",
    "where(x > 20, x, log1p(exp(x)))",
    ref=lambda x: np.where(x > 20, x, np.log1p(np.exp(np.minimum(x, 20)))),
    allowed=ANY,
    vjp=_vjp_in(lambda F, x, g: F.where(x > 20, g, g * F.sigmoid(x))),
)
unary(
    "erfc",
    "erfc(x)",
    ref=_erfc64,
    inplace="erfc_",
    vjp=_vjp_in(lambda F, x, g: -g * _TWO_OVER_SQRT_PI * F.exp(-x * x)),
)
unary(
    "erfinv",
    "erfinv(x)",
    ref=_erfinv64,
    domain=(-0.999, 0.999),
    inplace="erfinv_",
    vjp=_vjp_out(lambda F, out, g: g * _SQRT_PI_OVER_2 * F.exp(out * out)),
)
# torch.nn.functional's activations without parameters (those with are compositions:
# fusejit/eager/activations.py); float only where torch's are, no Tensor methods where torch
# has none
unary(
    "selu",
    "1.0507009873554805 * where(x > 0, x, 1.6732632423543772 * expm1(x))",
    ref=lambda x: 1.0507009873554805 * np.where(x > 0, x, 1.6732632423543772 * np.expm1(x)),
    allowed=FLOAT_ONLY,
    methods=(),
    vjp=_vjp_in(_selu_grad),
)
unary(
    "hardswish",
    "x * min(max(x + 3, 0), 6) / 6",
    ref=lambda x: x * np.clip(x + 3, 0, 6) / 6,
    allowed=FLOAT_ONLY,
    methods=(),
    vjp=_vjp_in(_hardswish_grad),
)
unary(
    "hardsigmoid",
    "min(max(x + 3, 0), 6) / 6",
    ref=lambda x: np.clip(x + 3, 0, 6) / 6,
    allowed=FLOAT_ONLY,
    methods=(),
    vjp=_vjp_in(lambda F, x, g: F.where((x > -3.0) & (x < 3.0), g / 6.0, 0.0)),
)
# hardtanh(x, 0, 6): integers too (bool refused), NaN and -0.0 pass through as torch's clamp
unary(
    "relu6",
    "where(x < 0, 0, where(x > 6, 6, x))",
    ref=lambda x: np.where(x < 0, np.zeros_like(x), np.where(x > 6, np.full_like(x, 6), x)),
    rule="promote",
    allowed=NUM,
    exact=True,
    methods=(),
    vjp=_vjp_in(lambda F, x, g: F.where((x > 0) & (x < 6), g, 0.0)),
)
# torch's x * tanh(log1p(exp(x))), without softplus's threshold
unary(
    "mish",
    "x * tanh(log1p(exp(x)))",
    ref=lambda x: x * np.tanh(np.log1p(np.exp(x))),
    allowed=FLOAT_ONLY,
    methods=(),
    vjp=_vjp_in(_mish_grad),
)
unary(
    "logsigmoid",
    "min(x, 0) - log1p(exp(-abs(x)))",
    ref=lambda x: np.minimum(x, 0) - np.log1p(np.exp(-np.abs(x))),
    allowed=FLOAT_ONLY,
    methods=(),
    vjp=_vjp_in(lambda F, x, g: g * F.sigmoid(-x)),
)
# torch's Python formulas: integers give float32 as a true division does
unary(
    "softsign",
    "x / (1 + abs(x))",
    ref=lambda x: x / (1 + np.abs(x)),
    allowed=NUM,
    methods=(),
    vjp=_vjp_in(lambda F, x, g: g / ((1.0 + F.abs(x)) * (1.0 + F.abs(x)))),
)
unary(
    "tanhshrink",
    "x - tanh(x)",
    ref=lambda x: x - np.tanh(x),
    allowed=NUM,
    methods=(),
    vjp=_vjp_in(lambda F, x, g: g * F.tanh(x) * F.tanh(x)),
)

# ---- classification -------------------------------------------------------------------------
unary("isnan", "isnan(x)", "isnan", rule="compare", exact=True, differentiable=False)
unary("isinf", "isinf(x)", "isinf", rule="compare", exact=True, differentiable=False)
unary("isfinite", "isfinite(x)", "isfinite", rule="compare", exact=True, differentiable=False)

# ---- selection and casts --------------------------------------------------------------------
register(
    OpDef(
        name="where",
        kind="elementwise",
        arity=3,
        rule="where",
        np_name="where",
        ref=np.where,
        expr="where(x, y, z)",
        exact=True,
        methods=("where",),  # x.where(condition, y) is where(condition, x, y)
        vjp=_vjp_where,
    )
)
register(
    OpDef(
        name="cast",
        kind="elementwise",
        arity=1,
        rule="cast",
        ref=lambda x, dtype: x.astype(dtype),
        expr="cast(x)",
        exact=True,
        doc="convert to attribute 'dtype'; float to int truncates toward zero",
        vjp=_vjp_cast,
    )
)

FLOAT_FUNCS = FLOAT_ONLY  # re-exported for the tests' value generators
