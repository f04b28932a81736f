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


def _np(name):
    return getattr(np, name)


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
    allowed=NUM,
    methods=("pow", "__pow__"),
    rmethods=("__rpow__",),
    domain=(0.5, 3.0),
    vjp=_vjp_pow,
)
binary("atan2", "atan2(x, y)", "arctan2", rule="float", allowed=NUM, vjp=_vjp_atan2)
binary(
    "maximum",
    "where((x > y) | (x != x), x, y)",
    "maximum",
    allowed=NUM,
    exact=True,
    vjp=_vjp_max_min(True),
)
binary(
    "minimum",
    "where((x < y) | (x != x), x, y)",
    "minimum",
    allowed=NUM,
    exact=True,
    vjp=_vjp_max_min(False),
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
    allowed=NUM,
    exact=True,
    vjp=_vjp_zero,
)
unary(
    "square",
    "x * x",
    "square",
    rule="promote",
    allowed=NUM,
    exact=True,
    vjp=_vjp_in(lambda F, x, g: 2.0 * x * g),
)
unary("floor", "floor(x)", "floor", rule="promote", allowed=NUM, exact=True, vjp=_vjp_zero)
unary("ceil", "ceil(x)", "ceil", rule="promote", allowed=NUM, exact=True, vjp=_vjp_zero)
unary("trunc", "trunc(x)", "trunc", rule="promote", allowed=NUM, exact=True, vjp=_vjp_zero)
# np.round, not np.rint: the same half-to-even rounding, but integers stay integers
unary(
    "round", "rint(x)", "round", rule="promote", allowed=NUM, exact=True, ref=np.rint, vjp=_vjp_zero
)

# ---- powers, exponentials, logarithms -------------------------------------------------------
unary(
    "sqrt",
    "sqrt(x)",
    "sqrt",
    allowed=NUM,
    exact=True,
    domain=(0.0, 100.0),
    vjp=_vjp_out(lambda F, out, g: g / (2.0 * out)),
)
unary(
    "rsqrt",
    "1 / sqrt(x)",
    ref=lambda x: 1 / np.sqrt(x),
    allowed=NUM,
    domain=(0.01, 100.0),
    vjp=_vjp_out(lambda F, out, g: -0.5 * g * out * out * out),
)
unary(
    "reciprocal",
    "1 / x",
    "reciprocal",
    allowed=NUM,
    exact=True,
    ref=lambda x: np.reciprocal(x.astype(np.result_type(x, np.float32))),
    vjp=_vjp_out(lambda F, out, g: -g * out * out),
)
unary("exp", "exp(x)", "exp", allowed=NUM, vjp=_vjp_out(lambda F, out, g: g * out))
unary("exp2", "exp2(x)", "exp2", allowed=NUM, vjp=_vjp_out(lambda F, out, g: g * out * _LN2))
unary("expm1", "expm1(x)", "expm1", allowed=NUM, vjp=_vjp_out(lambda F, out, g: g * (out + 1.0)))
unary(
    "log", "log(x)", "log", allowed=NUM, domain=(0.001, 1000.0), vjp=_vjp_in(lambda F, x, g: g / x)
)
unary(
    "log2",
    "log2(x)",
    "log2",
    allowed=NUM,
    domain=(0.001, 1000.0),
    vjp=_vjp_in(lambda F, x, g: g / (x * _LN2)),
)
unary(
    "log10",
    "log10(x)",
    "log10",
    allowed=NUM,
    domain=(0.001, 1000.0),
    vjp=_vjp_in(lambda F, x, g: g / (x * _LN10)),
)
unary(
    "log1p",
    "log1p(x)",
    "log1p",
    allowed=NUM,
    domain=(-0.999, 1000.0),
    vjp=_vjp_in(lambda F, x, g: g / (x + 1.0)),
)

# ---- trigonometric and hyperbolic -----------------------------------------------------------
unary("sin", "sin(x)", "sin", allowed=NUM, vjp=_vjp_in(lambda F, x, g: g * F.cos(x)))
unary("cos", "cos(x)", "cos", allowed=NUM, vjp=_vjp_in(lambda F, x, g: -g * F.sin(x)))
unary(
    "tan",
    "tan(x)",
    "tan",
    allowed=NUM,
    domain=(-1.5, 1.5),
    vjp=_vjp_out(lambda F, out, g: g * (1.0 + out * out)),
)
unary(
    "asin",
    "asin(x)",
    "arcsin",
    allowed=NUM,
    domain=(-1.0, 1.0),
    methods=("asin", "arcsin"),
    vjp=_vjp_in(lambda F, x, g: g / F.sqrt(1.0 - x * x)),
)
unary(
    "acos",
    "acos(x)",
    "arccos",
    allowed=NUM,
    domain=(-1.0, 1.0),
    methods=("acos", "arccos"),
    vjp=_vjp_in(lambda F, x, g: -g / F.sqrt(1.0 - x * x)),
)
unary(
    "atan",
    "atan(x)",
    "arctan",
    allowed=NUM,
    methods=("atan", "arctan"),
    vjp=_vjp_in(lambda F, x, g: g / (1.0 + x * x)),
)
unary("sinh", "sinh(x)", "sinh", allowed=NUM, vjp=_vjp_in(lambda F, x, g: g * F.cosh(x)))
unary("cosh", "cosh(x)", "cosh", allowed=NUM, vjp=_vjp_in(lambda F, x, g: g * F.sinh(x)))
unary("tanh", "tanh(x)", "tanh", allowed=NUM, vjp=_vjp_out(lambda F, out, g: g * (1.0 - out * out)))

# ---- activations (no numpy kernel: eager runs the generated kernel) -------------------------
unary(
    "erf",
    "erf(x)",
    ref=_erf64,
    allowed=NUM,
    vjp=_vjp_in(lambda F, x, g: g * _TWO_OVER_SQRT_PI * F.exp(-x * x)),
)
unary(
    "sigmoid",
    "sigmoid(x)",
    ref=lambda x: 1 / (1 + np.exp(-x)),
    allowed=NUM,
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
    allowed=NUM,
    vjp=_vjp_in(_gelu_grad),
)
unary(
    "gelu_tanh",
    "0.5 * x * (1 + tanh(0.7978845608028654 * (x + 0.044715 * x * x * x)))",
    ref=lambda x: 0.5 * x * (1 + np.tanh(0.7978845608028654 * (x + 0.044715 * x**3))),
    allowed=NUM,
    vjp=_vjp_in(_gelu_tanh_grad),
)
unary(
    "silu",
    "x * sigmoid(x)",
    ref=lambda x: x / (1 + np.exp(-x)),
    allowed=NUM,
    vjp=_vjp_in(_silu_grad),
)
# torch's softplus (beta=1, threshold=20): linear above the threshold
unary(
    "softplus",
    "where(x > 20, x, log1p(exp(x)))",
    ref=lambda x: np.where(x > 20, x, np.log1p(np.exp(np.minimum(x, 20)))),
    allowed=NUM,
    vjp=_vjp_in(lambda F, x, g: F.where(x > 20, g, g * F.sigmoid(x))),
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
