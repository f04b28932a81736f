"""Import rules for ONNX's elementwise math and activation ops.

ONNX requires an op's inputs to share one type and keeps it: results are cast back to the
first input's dtype where fusejit would promote (integer ``Div`` truncates toward zero, as C
does, where fusejit's ``/`` gives a float and ``//`` floors).
"""

from __future__ import annotations

import functools

import fusejit
from fusejit.eager.tensor import Tensor
from fusejit.onnx.importer.registry import NodeContext, onnx_op


def _keep(r: Tensor, like: Tensor) -> Tensor:
    """``r`` in ``like``'s dtype (ONNX results keep their input type)."""
    return r if r.dtype is like.dtype else fusejit.cast(r, like.dtype)


def _float(x: Tensor) -> bool:
    return x.dtype.is_floating_point


# binary arithmetic ------------------------------------------------------------------------
def _operands(ctx: NodeContext, a: Tensor, b: Tensor):
    """``(a, b, like)``: a one-element float constant beside a float tensor of at least its rank
    becomes a Python number (the kernel then holds it as a literal instead of reading another
    input per element; fusejit's weak scalars keep the tensor's dtype, and the number is the
    constant's exact value, so the result is the same); ``like`` is the tensor operand."""
    a = _literal(ctx, 0, a, b)
    b = _literal(ctx, 1, b, a)
    return a, b, a if isinstance(a, Tensor) else b


def _literal(ctx: NodeContext, i: int, x, other):
    if not (isinstance(x, Tensor) and isinstance(other, Tensor) and ctx.is_static(i)):
        return x
    v = ctx.static(i)
    if v.size != 1 or v.ndim > other.ndim or x.dtype is not other.dtype or not _float(x):
        return x
    return float(v.reshape(()))


@onnx_op("Add")
def _add(ctx: NodeContext, a, b):
    a, b, like = _operands(ctx, a, b)
    return _keep(a + b, like)


@onnx_op("Sub")
def _sub(ctx: NodeContext, a, b):
    a, b, like = _operands(ctx, a, b)
    return _keep(a - b, like)


@onnx_op("Mul")
def _mul(ctx: NodeContext, a, b):
    a, b, like = _operands(ctx, a, b)
    return _keep(a * b, like)


def trunc_divide(a: Tensor, b: Tensor) -> Tensor:
    """Integer division rounding toward zero (ONNX's and C's), from floor division."""
    q = fusejit.floor_divide(a, b)
    inexact = (q * b) != a
    return fusejit.where(inexact & ((a < 0) != (b < 0)), q + 1, q)


@onnx_op("Div")
def _div(ctx: NodeContext, a, b):
    if _float(a):
        a, b, like = _operands(ctx, a, b)
        return _keep(a / b, like)
    return _keep(trunc_divide(a, b), a)


@onnx_op("Mod")
def _mod(ctx: NodeContext, a, b):
    if ctx.attr("fmod", 0):
        return _keep(fusejit.fmod(a, b), a)
    return _keep(fusejit.remainder(a, b), a)  # (the sign of the divisor, as Python's %)


@onnx_op("Pow")
def _pow(ctx: NodeContext, a, b):
    if not _float(a) and _float(b):
        # an integer base to a float power: computed in float64, cast back (truncates)
        return fusejit.cast(fusejit.pow(fusejit.cast(a, fusejit.float64), b), a.dtype)
    if b.dtype is not a.dtype and _float(a):
        b = fusejit.cast(b, a.dtype)
    if _float(a) and ctx.is_static(1) and ctx.static(1).size == 1 and ctx.static(1).ndim <= a.ndim:
        # a constant exponent written as multiplies, as onnxruntime does: x ** 3 computed by
        # ``pow`` is a call per element the CPU kernel cannot vectorise (about 20x slower);
        # 2 and -1 are exactly pow's results (one rounding), 3 within an ulp
        e = float(ctx.static(1).reshape(()))
        if e == 1.0:
            return a
        if e == 2.0:
            return a * a
        if e == 3.0:
            return a * a * a
        if e == -1.0:
            return 1.0 / a
        return _keep(a**e, a)
    return _keep(fusejit.pow(a, b), a)


# variadic --------------------------------------------------------------------------------
def _variadic(fn, xs) -> Tensor:
    xs = [x for x in xs if x is not None]
    return _keep(functools.reduce(fn, xs), xs[0])


@onnx_op("Max")
def _max(ctx: NodeContext, *xs):
    return _variadic(fusejit.maximum, xs)


@onnx_op("Min")
def _min(ctx: NodeContext, *xs):
    return _variadic(fusejit.minimum, xs)


@onnx_op("Sum")
def _sum(ctx: NodeContext, *xs):
    return _variadic(fusejit.add, xs)


@onnx_op("Mean")
def _mean(ctx: NodeContext, *xs):
    xs = [x for x in xs if x is not None]
    total = _variadic(fusejit.add, xs)
    return _keep(total / len(xs), xs[0])


# unary ------------------------------------------------------------------------------------
_UNARY = {
    "Neg": fusejit.neg,
    "Abs": fusejit.abs,
    "Sqrt": fusejit.sqrt,
    "Exp": fusejit.exp,
    "Log": fusejit.log,
    "Sin": fusejit.sin,
    "Cos": fusejit.cos,
    "Tan": fusejit.tan,
    "Asin": fusejit.asin,
    "Acos": fusejit.acos,
    "Atan": fusejit.atan,
    "Sinh": fusejit.sinh,
    "Cosh": fusejit.cosh,
    "Asinh": fusejit.asinh,
    "Acosh": fusejit.acosh,
    "Atanh": fusejit.atanh,
    "Tanh": fusejit.tanh,
    "Erf": fusejit.erf,
    "Sign": fusejit.sign,
    "Floor": fusejit.floor,
    "Ceil": fusejit.ceil,
    "Round": fusejit.round,  # halves to even, as ONNX
    "Reciprocal": fusejit.reciprocal,
    "Sigmoid": fusejit.sigmoid,
}


def _unary_rule(fn):
    def rule(ctx: NodeContext, x):
        if not _float(x) and fn in (fusejit.floor, fusejit.ceil, fusejit.round):
            return x
        return _keep(fn(x), x)

    return rule


for _name, _fn in _UNARY.items():
    onnx_op(_name)(_unary_rule(_fn))


# activations --------------------------------------------------------------------------------
@onnx_op("Relu")
def _relu(ctx: NodeContext, x):
    return fusejit.where(x > 0, x, 0)


@onnx_op("LeakyRelu")
def _leaky_relu(ctx: NodeContext, x):
    alpha = ctx.attr("alpha", 0.01)
    return _keep(fusejit.where(x >= 0, x, x * alpha), x)


@onnx_op("PRelu")
def _prelu(ctx: NodeContext, x, slope):
    return _keep(fusejit.where(x >= 0, x, x * slope), x)


@onnx_op("ThresholdedRelu")
def _thresholded_relu(ctx: NodeContext, x):
    alpha = ctx.attr("alpha", 1.0)
    return fusejit.where(x > alpha, x, 0)


@onnx_op("Elu")
def _elu(ctx: NodeContext, x):
    alpha = ctx.attr("alpha", 1.0)
    return _keep(fusejit.where(x > 0, x, alpha * fusejit.expm1(x)), x)


@onnx_op("Selu")
def _selu(ctx: NodeContext, x):
    alpha = ctx.attr("alpha", 1.67326319217681884765625)
    gamma = ctx.attr("gamma", 1.05070102214813232421875)
    return _keep(gamma * fusejit.where(x > 0, x, alpha * fusejit.expm1(x)), x)


@onnx_op("Celu")
def _celu(ctx: NodeContext, x):
    alpha = ctx.attr("alpha", 1.0)
    return _keep(fusejit.where(x > 0, x, alpha * fusejit.expm1(x / alpha)), x)


@onnx_op("Gelu")
def _gelu(ctx: NodeContext, x):
    approximate = ctx.attr("approximate", "none")
    if approximate not in ("none", "tanh"):
        raise ctx.unsupported(f"approximate={approximate!r}")
    return fusejit.gelu(x, approximate=approximate)


@onnx_op("HardSigmoid")
def _hard_sigmoid(ctx: NodeContext, x):
    alpha, beta = ctx.attr("alpha", 0.2), ctx.attr("beta", 0.5)
    return _keep(fusejit.clamp(x * alpha + beta, 0.0, 1.0), x)


@onnx_op("HardSwish")
def _hard_swish(ctx: NodeContext, x):
    return _keep(x * fusejit.clamp(x * (1.0 / 6.0) + 0.5, 0.0, 1.0), x)


def _softplus(x: Tensor) -> Tensor:
    # log(1 + exp(x)) without overflow: max(x, 0) + log1p(exp(-|x|))
    return fusejit.where(x > 0, x, 0) + fusejit.log1p(fusejit.exp(-fusejit.abs(x)))


@onnx_op("Softplus")
def _softplus_rule(ctx: NodeContext, x):
    return _keep(_softplus(x), x)


@onnx_op("Softsign")
def _softsign(ctx: NodeContext, x):
    return _keep(x / (1 + fusejit.abs(x)), x)


@onnx_op("Mish")
def _mish(ctx: NodeContext, x):
    return _keep(x * fusejit.tanh(_softplus(x)), x)


@onnx_op("Swish")
def _swish(ctx: NodeContext, x):
    alpha = ctx.attr("alpha", 1.0)
    return _keep(x * fusejit.sigmoid(x * alpha), x)


@onnx_op("Shrink")
def _shrink(ctx: NodeContext, x):
    bias, lambd = ctx.attr("bias", 0.0), ctx.attr("lambd", 0.5)
    y = fusejit.where(x < -lambd, x + bias, fusejit.where(x > lambd, x - bias, 0))
    return _keep(y, x)


@onnx_op("Clip")
def _clip(ctx: NodeContext, x, lo=None, hi=None):
    if ctx.opset < 11:
        lo_v, hi_v = ctx.attr("min", None), ctx.attr("max", None)
        y = x
        if lo_v is not None:
            y = fusejit.maximum(y, fusejit.full_like(x, lo_v))
        if hi_v is not None:
            y = fusejit.minimum(y, fusejit.full_like(x, hi_v))
        return y
    y = x
    if lo is not None:
        y = fusejit.maximum(y, _keep(lo, x))
    if hi is not None:
        y = fusejit.minimum(y, _keep(hi, x))
    return _keep(y, x)
