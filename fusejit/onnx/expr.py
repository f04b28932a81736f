"""Elementwise ops to ONNX through their ``expr``: the op table's expression (the one every
code-generation target renders) is translated node by node into ONNX ops, in the dtype a kernel
computes in, so an elementwise op exports as it runs in a fused kernel.

The primitives ONNX lacks are decomposed here, once: ``expm1`` and ``log1p`` (Kahan's forms,
accurate near 0), ``exp2``, ``log2``, ``log10``, ``atan2``, ``hypot``, ``copysign``, the
NaN-propagating ``max`` / ``min``, and Python's ``//`` and ``%`` (floored, as numpy's).
"""

from __future__ import annotations

import ast
import math

from fusejit.base import dtypes as dt
from fusejit.onnx.builder import Builder, ExportError

# ONNX ops of one float operand, by primitive
_UNARY = {
    "exp": "Exp", "log": "Log", "sqrt": "Sqrt", "sin": "Sin", "cos": "Cos", "tan": "Tan",
    "asin": "Asin", "acos": "Acos", "atan": "Atan", "sinh": "Sinh", "cosh": "Cosh",
    "tanh": "Tanh", "asinh": "Asinh", "acosh": "Acosh", "atanh": "Atanh", "erf": "Erf",
    "sigmoid": "Sigmoid", "rint": "Round", "floor": "Floor", "ceil": "Ceil",
}  # fmt: skip
# functions decomposed in float64 (onnxruntime's CPU kernels of them are float32 only)
_F64_DECOMPOSED = ("tan", "sinh", "cosh", "asinh", "acosh", "atanh")
_COMPARE = {ast.Eq: "Equal", ast.Lt: "Less", ast.LtE: "LessOrEqual", ast.Gt: "Greater",
            ast.GtE: "GreaterOrEqual"}  # fmt: skip
_ARITH = {ast.Add: "Add", ast.Sub: "Sub", ast.Mult: "Mul", ast.Div: "Div", ast.Pow: "Pow"}
# Giles' single-precision erfinv: p(w - 2.5) for w < 5, else p(sqrt(w) - 3), w = -log(1 - y^2)
_GILES_CENTRAL = (
    2.81022636e-08,
    3.43273939e-07,
    -3.5233877e-06,
    -4.39150654e-06,
    0.00021858087,
    -0.00125372503,
    -0.00417768164,
    0.246640727,
    1.50140941,
)
_GILES_TAIL = (-0.000200214257, 0.000100950558, 0.00134934322, -0.00367342844, 0.00573950773,
               -0.0076224613, 0.00943887047, 1.00167406, 2.83297682)  # fmt: skip
_BITS = {ast.BitAnd: ("BitwiseAnd", "And"), ast.BitOr: ("BitwiseOr", "Or"),
         ast.BitXor: ("BitwiseXor", "Xor")}  # fmt: skip


def onnx_compute_dtype(d: dt.DType) -> dt.DType:
    """The dtype an elementwise op computes in, in the exported graph: float16 in float32 (a
    kernel's opmath, rounded once at the end); int8, int16 and uint8 in int32 (onnxruntime has
    no narrow-integer arithmetic; the cast back wraps as the narrow arithmetic does)."""
    if d is dt.float16:
        return dt.float32
    if d.kind in "iu" and d.itemsize < 4:
        return dt.int32
    return d


class ExprTranslator:
    """Translate one expression over ``x``, ``y``, ``z`` (ONNX names, already cast to the compute
    dtype ``c``) into ONNX nodes; ``cast_to``: the ``cast`` primitive's dtype."""

    def __init__(self, b: Builder, c: dt.DType, env: dict, cast_to: dt.DType | None) -> None:
        self.b, self.c, self.env, self.cast_to = b, c, env, cast_to

    def run(self, src: str) -> str:
        return self.visit(ast.parse(src, mode="eval").body)

    # helpers ------------------------------------------------------------------------------
    def d(self, name: str) -> dt.DType:
        return self.b.dtypes[name]

    def lit(self, v, like: dt.DType | None = None) -> str:
        d = like or self.c
        if d is dt.bool_:
            v = bool(v)
        return self.b.const(v, d)

    def pair(self, a, b):
        """Two operands (ONNX names or Python numbers) as ONNX names of one dtype."""
        if not isinstance(a, str) and not isinstance(b, str):
            return self.lit(a), self.lit(b)
        if not isinstance(a, str):
            return self.lit(a, self.d(b)), b
        if not isinstance(b, str):
            return a, self.lit(b, self.d(a))
        if self.d(a) is not self.d(b):
            raise ExportError(f"mixed dtypes {self.d(a).name} and {self.d(b).name} in an expr")
        return a, b

    def op(self, op_type: str, *args, out: dt.DType | None = None, **attrs) -> str:
        names = list(args)
        if len(names) == 2:
            names = list(self.pair(*names))
        elif len(names) == 1 and not isinstance(names[0], str):
            names = [self.lit(names[0])]
        return self.b.node(op_type, names, out or self.d(names[0]), **attrs)

    def where(self, cond, a, b) -> str:
        a, b = self.pair(a, b)
        if self.d(a) is dt.bool_:  # (onnxruntime has no bool Where)
            a, b = self.b.cast(a, dt.int32), self.b.cast(b, dt.int32)
            return self.b.cast(self.b.node("Where", [cond, a, b], dt.int32), dt.bool_)
        return self.b.node("Where", [cond, a, b], self.d(a))

    def val(self, node):
        """A sub-expression: an ONNX name, or a Python number for a literal."""
        if isinstance(node, ast.Constant):
            return node.value
        if isinstance(node, ast.UnaryOp) and isinstance(node.operand, ast.Constant):
            if isinstance(node.op, ast.USub):
                return -node.operand.value
        return self.visit(node)

    def is_float(self, name: str) -> bool:
        return self.d(name).is_floating_point

    # nodes --------------------------------------------------------------------------------
    def visit(self, node) -> str:
        if isinstance(node, ast.Name):
            return self.env[node.id]
        if isinstance(node, ast.Constant):
            return self.lit(node.value)
        if isinstance(node, ast.BinOp):
            return self.binop(type(node.op), self.val(node.left), self.val(node.right))
        if isinstance(node, ast.UnaryOp):
            return self.unary(node)
        if isinstance(node, ast.Compare):
            if len(node.ops) != 1:
                raise ExportError("chained comparisons in an expr")
            a, b = self.pair(self.val(node.left), self.val(node.comparators[0]))
            kind = type(node.ops[0])
            if self.d(a) is dt.bool_ and kind is not ast.Eq:  # (no bool Less in onnxruntime)
                a, b = self.b.cast(a, dt.int32), self.b.cast(b, dt.int32)
            if kind is ast.NotEq:
                return self.op("Not", self.b.node("Equal", [a, b], dt.bool_))
            return self.b.node(_COMPARE[kind], [a, b], dt.bool_)
        if isinstance(node, ast.BoolOp):
            names = [self.visit(v) for v in node.values]
            r = names[0]
            for n in names[1:]:
                r = self.b.node("And" if isinstance(node.op, ast.And) else "Or", [r, n], dt.bool_)
            return r
        if isinstance(node, ast.Call):
            return self.call(node.func.id, [self.val(a) for a in node.args])
        raise ExportError(f"expr form {type(node).__name__} has no ONNX translation")

    def unary(self, node) -> str:
        x = self.visit(node.operand)
        if isinstance(node.op, ast.USub):
            return self.op("Neg", x)
        if isinstance(node.op, ast.UAdd):
            return x
        if isinstance(node.op, ast.Not):
            return self.op("Not", self.b.cast(x, dt.bool_))
        if isinstance(node.op, ast.Invert):
            if self.d(x) is dt.bool_:
                return self.op("Not", x)
            return self.op(self.bitwise("BitwiseNot"), x)
        raise ExportError(f"unary {type(node.op).__name__} in an expr")

    def binop(self, kind, a, b) -> str:
        a, b = self.pair(a, b)
        d = self.d(a)
        if kind in _BITS:
            if d is dt.bool_:
                return self.op(_BITS[kind][1], a, b)
            return self.op(self.bitwise(_BITS[kind][0]), a, b)
        if kind is ast.FloorDiv:
            return self.floor_divide(a, b)
        if kind is ast.Mod:
            return self.remainder(a, b)
        if d is dt.bool_ and kind in (ast.Add, ast.Mult):  # (bool arithmetic: or / and)
            return self.op("Or" if kind is ast.Add else "And", a, b)
        return self.op(_ARITH[kind], a, b)

    def bitwise(self, op_type: str) -> str:
        if self.b.opset < 18:
            raise ExportError(f"{op_type} of integers needs opset 18 or later")
        return op_type

    def nonzero_divisor(self, b: str):
        zero = self.op("Equal", b, 0, out=dt.bool_)
        return zero, self.where(zero, 1, b)

    def floor_divide(self, a: str, b: str) -> str:
        if not self.is_float(a):
            zero, b1 = self.nonzero_divisor(b)
            q = self.op("Div", a, b1)
            r = self.op("Mod", a, b1, fmod=1)
            adjust = self.op("And", self.op("Not", self.op("Equal", r, 0, out=dt.bool_)),
                             self.op("Xor", self.op("Less", r, 0, out=dt.bool_),
                                     self.op("Less", b1, 0, out=dt.bool_)))  # fmt: skip
            q = self.where(adjust, self.op("Sub", q, 1), q)
            return self.where(zero, 0, q)
        # numpy's floor division of floats: from fmod, so that a // b * b + a % b == a
        m = self.op("Mod", a, b, fmod=1)
        div = self.op("Div", self.op("Sub", a, m), b)
        adjust = self.op("And", self.op("Not", self.op("Equal", m, 0, out=dt.bool_)),
                         self.op("Xor", self.op("Less", b, 0, out=dt.bool_),
                                 self.op("Less", m, 0, out=dt.bool_)))  # fmt: skip
        div = self.where(adjust, self.op("Sub", div, 1), div)
        fl = self.op("Floor", div)
        fl = self.where(self.op("Greater", self.op("Sub", div, fl), 0.5, out=dt.bool_),
                        self.op("Add", fl, 1), fl)  # fmt: skip
        # a zero quotient, a zero divisor: a / b, as numpy
        q = self.op("Div", a, b)
        fl = self.where(self.op("Equal", div, 0, out=dt.bool_), self.op("Mul", q, 0), fl)
        return self.where(self.op("Equal", b, 0, out=dt.bool_), q, fl)

    def remainder(self, a: str, b: str) -> str:
        if not self.is_float(a):
            zero, b1 = self.nonzero_divisor(b)
            return self.where(zero, 0, self.op("Mod", a, b1, fmod=0))
        m = self.op("Mod", a, b, fmod=1)
        adjust = self.op("And", self.op("Not", self.op("Equal", m, 0, out=dt.bool_)),
                         self.op("Xor", self.op("Less", b, 0, out=dt.bool_),
                                 self.op("Less", m, 0, out=dt.bool_)))  # fmt: skip
        return self.where(adjust, self.op("Add", m, b), m)

    def call(self, fn: str, args: list) -> str:  # noqa: C901 (one branch per primitive)
        if fn == "where":
            return self.where(args[0], args[1], args[2])
        if fn == "cast":
            return self.b.cast(args[0], self.cast_to)
        if fn in ("max", "min"):
            a, b = self.pair(*args)
            r = self.op("Max" if fn == "max" else "Min", a, b)
            if not self.is_float(a):
                return r
            nan = self.op("Or", self.op("IsNaN", a, out=dt.bool_),
                          self.op("IsNaN", b, out=dt.bool_))  # fmt: skip
            return self.where(nan, self.op("Add", a, b), r)
        if fn == "fmod":
            a, b = self.pair(*args)
            if self.is_float(a):
                return self.op("Mod", a, b, fmod=1)
            zero, b1 = self.nonzero_divisor(b)
            return self.where(zero, 0, self.op("Mod", a, b1, fmod=1))
        if fn in ("atan2", "hypot", "copysign"):
            return getattr(self, fn)(*self.pair(*args))
        x = args[0] if isinstance(args[0], str) else self.lit(args[0])
        if fn in ("isnan", "isinf", "isfinite"):
            if not self.is_float(x):
                t = self.op("Equal", x, x, out=dt.bool_)
                return t if fn == "isfinite" else self.op("Not", t)
            if fn == "isnan":
                return self.op("IsNaN", x, out=dt.bool_)
            if fn == "isinf":
                return self.op("IsInf", x, out=dt.bool_)
            bad = self.op(
                "Or", self.op("IsNaN", x, out=dt.bool_), self.op("IsInf", x, out=dt.bool_)
            )
            return self.op("Not", bad)
        if fn == "abs":
            return self.op("Abs", x)
        if fn in ("floor", "ceil", "trunc", "rint") and not self.is_float(x):
            return x
        if fn == "trunc":
            neg = self.op("Less", x, 0, out=dt.bool_)
            return self.where(neg, self.op("Ceil", x), self.op("Floor", x))
        if fn == "sigmoid":  # 1 / (1 + exp(-x)), float32 in float64 (as fusejit's kernels)
            wide = self.d(x) is dt.float32
            w = self.b.cast(x, dt.float64) if wide else x
            r = self.op("Reciprocal", self.op("Add", self.op("Exp", self.op("Neg", w)), 1))
            return self.b.cast(r, dt.float32) if wide else r
        if fn in _F64_DECOMPOSED and self.d(x) is dt.float64:
            return getattr(self, fn + "_f64")(x)
        if fn in _UNARY:
            return self.op(_UNARY[fn], x)
        if fn == "exp2":
            return self.op("Pow", 2, x)
        if fn in ("log2", "log10"):
            return self.op("Mul", self.op("Log", x), 1 / math.log(2 if fn == "log2" else 10))
        if fn == "expm1":  # Kahan: (u - 1) * x / log(u), u = exp(x), exact where u - 1 is not
            u = self.op("Exp", x)
            um1 = self.op("Sub", u, 1)
            r = self.op("Div", self.op("Mul", um1, x), self.op("Log", u))
            r = self.where(self.op("Equal", um1, -1, out=dt.bool_), -1, r)
            r = self.where(self.op("IsInf", u, out=dt.bool_), u, r)
            return self.where(self.op("Equal", u, 1, out=dt.bool_), x, r)
        if fn == "log1p":  # log(u) * x / (u - 1), u = 1 + x
            u = self.op("Add", x, 1)
            r = self.op("Div", self.op("Mul", self.op("Log", u), x), self.op("Sub", u, 1))
            r = self.where(self.op("IsInf", u, out=dt.bool_), u, r)
            r = self.where(self.op("Equal", u, 0, out=dt.bool_), self.op("Log", u), r)
            return self.where(self.op("Equal", u, 1, out=dt.bool_), x, r)
        if fn == "erfc":  # (absolute, not relative, accuracy where erfc(x) is small)
            return self.op("Sub", 1, self.op("Erf", x))
        if fn == "erfinv":
            return self.erfinv(x)
        raise ExportError(f"primitive {fn!r} has no ONNX translation")

    def erfinv(self, y: str) -> str:
        """Giles' polynomial approximation ("Approximating the erfinv function", GPU Computing
        Gems, 2011), in float64: within 2.3 ulps of float32's erfinv on [-0.999, 0.999]; for
        float64, two Halley steps on Erf follow: within 2 ulps for |y| < 0.9, 16 near +-0.999
        (the rounding of erf near 1 divided by its slope there)."""
        d = self.d(y)
        w64 = self.b.cast(y, dt.float64)
        t = self.b.node("Mul", [self.b.node("Sub", [self.lit(1, dt.float64), w64], dt.float64),
                                self.b.node("Add", [w64, self.lit(1, dt.float64)], dt.float64)],
                        dt.float64)  # fmt: skip
        w = self.op("Neg", self.op("Log", t))
        central = self.op("Sub", w, 2.5)
        tail = self.op("Sub", self.op("Sqrt", w), 3.0)
        p1, p2 = self.lit(_GILES_CENTRAL[0], dt.float64), self.lit(_GILES_TAIL[0], dt.float64)
        for c1, c2 in zip(_GILES_CENTRAL[1:], _GILES_TAIL[1:], strict=True):
            p1 = self.op("Add", self.op("Mul", p1, central), c1)
            p2 = self.op("Add", self.op("Mul", p2, tail), c2)
        p = self.where(self.op("Less", w, 5.0, out=dt.bool_), p1, p2)
        x = self.op("Mul", p, w64)
        if d is dt.float64:
            k = 2 / math.sqrt(math.pi)
            for _ in range(2):  # x - f / (f' + x f), f = erf(x) - y, f' = k exp(-x^2)
                f = self.op("Sub", self.op("Erf", x), w64)
                df = self.op("Mul", self.op("Exp", self.op("Neg", self.op("Mul", x, x))), k)
                x = self.op("Sub", x, self.op("Div", f, self.op("Add", df, self.op("Mul", x, f))))
        one = self.op("Equal", self.op("Abs", w64), 1.0, out=dt.bool_)
        x = self.where(one, self.op("Mul", w64, math.inf), x)
        return self.b.cast(x, d)

    # float64 forms of the functions onnxruntime has float32 kernels of only
    def tan_f64(self, x: str) -> str:
        return self.op("Div", self.op("Sin", x), self.op("Cos", x))

    def sinh_f64(self, x: str) -> str:  # e (e + 2) / (e + 1) / 2, e = expm1(|x|)
        e = self.call("expm1", [self.op("Abs", x)])
        r = self.op("Div", self.op("Mul", e, self.op("Add", e, 2)), self.op("Add", e, 1))
        r = self.op("Mul", r, 0.5)
        r = self.where(self.op("IsInf", e, out=dt.bool_), e, r)
        return self.where(self.op("Less", x, 0, out=dt.bool_), self.op("Neg", r), r)

    def cosh_f64(self, x: str) -> str:
        u = self.op("Exp", self.op("Abs", x))
        return self.op("Mul", self.op("Add", u, self.op("Reciprocal", u)), 0.5)

    def asinh_f64(self, x: str) -> str:  # log1p(a + a^2 / (1 + sqrt(1 + a^2))), a = |x|
        a = self.op("Abs", x)
        a2 = self.op("Mul", a, a)
        t = self.op("Div", a2, self.op("Add", self.op("Sqrt", self.op("Add", a2, 1)), 1))
        r = self.call("log1p", [self.op("Add", a, t)])
        big = self.op("Greater", a, 1e150, out=dt.bool_)  # (a^2 overflows)
        r = self.where(big, self.op("Add", self.op("Log", a), math.log(2)), r)
        return self.where(self.op("Less", x, 0, out=dt.bool_), self.op("Neg", r), r)

    def acosh_f64(self, x: str) -> str:  # log1p(t + sqrt(2 t + t^2)), t = x - 1
        t = self.op("Sub", x, 1)
        r = self.call("log1p", [self.op("Add", t, self.op("Sqrt", self.op(
            "Add", self.op("Mul", t, 2), self.op("Mul", t, t))))])  # fmt: skip
        big = self.op("Greater", x, 1e150, out=dt.bool_)
        return self.where(big, self.op("Add", self.op("Log", x), math.log(2)), r)

    def atanh_f64(self, x: str) -> str:  # log1p(2 x / (1 - x)) / 2
        r = self.call("log1p", [self.op("Div", self.op("Mul", x, 2), self.op("Sub", 1, x))])
        return self.op("Mul", r, 0.5)

    def atan2(self, y: str, x: str) -> str:
        a = self.op("Atan", self.op("Div", y, x))
        ypos = self.op("GreaterOrEqual", y, 0, out=dt.bool_)
        left = self.where(ypos, self.op("Add", a, math.pi), self.op("Sub", a, math.pi))
        r = self.where(self.op("Less", x, 0, out=dt.bool_), left, a)
        axis = self.where(
            self.op("Greater", y, 0, out=dt.bool_),
            math.pi / 2,
            self.where(self.op("Less", y, 0, out=dt.bool_), -math.pi / 2, y),
        )
        return self.where(self.op("Equal", x, 0, out=dt.bool_), axis, r)

    def hypot(self, x: str, y: str) -> str:
        ax, ay = self.op("Abs", x), self.op("Abs", y)
        m, n = self.op("Max", ax, ay), self.op("Min", ax, ay)
        m1 = self.where(self.op("Equal", m, 0, out=dt.bool_), 1, m)
        r = self.op("Div", n, m1)
        h = self.op("Mul", m, self.op("Sqrt", self.op("Add", self.op("Mul", r, r), 1)))
        inf = self.op("Or", self.op("IsInf", x, out=dt.bool_), self.op("IsInf", y, out=dt.bool_))
        return self.where(inf, math.inf, h)

    def copysign(self, x: str, y: str) -> str:
        neg0 = self.op("Less", self.op("Div", 1, y), 0, out=dt.bool_)  # -0 gives -inf
        neg = self.op("Or", self.op("Less", y, 0, out=dt.bool_),
                      self.op("And", self.op("Equal", y, 0, out=dt.bool_), neg0))  # fmt: skip
        ax = self.op("Abs", x)
        return self.where(neg, self.op("Neg", ax), ax)
