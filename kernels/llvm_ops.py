"""LLVM-level building blocks of ``cpu_math``: bit casts, fused multiply-add, selects and the
other operations that numba would otherwise lower with branches or error checks, each as one
LLVM instruction or intrinsic so that loops using them stay vectorizable."""

from __future__ import annotations

from llvmlite import ir
from numba.core import types
from numba.extending import intrinsic


@intrinsic
def bits(typingctx, x):
    """Reinterpret float32 -> int32 or float64 -> int64 (LLVM bitcast)."""
    if x == types.float32:
        sig, lty = types.int32(x), ir.IntType(32)
    elif x == types.float64:
        sig, lty = types.int64(x), ir.IntType(64)
    else:
        return None

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], lty)

    return sig, codegen


@intrinsic
def f32_from_bits(typingctx, i):
    """Reinterpret an integer's low 32 bits as a float32."""
    if not isinstance(i, types.Integer):
        return None

    def codegen(context, builder, signature, args):
        v = builder.trunc(args[0], ir.IntType(32)) if i.bitwidth > 32 else args[0]
        if i.bitwidth < 32:
            v = builder.sext(v, ir.IntType(32))
        return builder.bitcast(v, ir.FloatType())

    return types.float32(i), codegen


@intrinsic
def f64_from_bits(typingctx, i):
    """Reinterpret an integer (sign-extended to 64 bits) as a float64."""
    if not isinstance(i, types.Integer):
        return None

    def codegen(context, builder, signature, args):
        v = builder.sext(args[0], ir.IntType(64)) if i.bitwidth < 64 else args[0]
        return builder.bitcast(v, ir.DoubleType())

    return types.float64(i), codegen


def llvm_call(builder, name, args):
    """A call of the LLVM intrinsic ``llvm.<name>`` for the type of the first argument."""
    ty = args[0].type
    fn = builder.module.declare_intrinsic(
        "llvm." + name, [ty], ir.FunctionType(ty, [ty] * len(args))
    )
    return builder.call(fn, args)


def _is_float(*tys):
    return tys[0] in (types.float32, types.float64) and all(t == tys[0] for t in tys)


def _float_intrinsic(llvm_name: str, arity: int, doc: str):
    """An intrinsic calling ``llvm.<llvm_name>`` on ``arity`` floats of one type."""

    def codegen(context, builder, sig, args):
        return llvm_call(builder, llvm_name, args)

    def typed(args):
        return (args[0](*args), codegen) if _is_float(*args) else None

    # (numba reads the arity off the typer's own parameters)
    if arity == 1:

        def typer(typingctx, a):
            return typed((a,))

    elif arity == 2:

        def typer(typingctx, a, b):
            return typed((a, b))

    else:

        def typer(typingctx, a, b, c):
            return typed((a, b, c))

    typer.__name__ = typer.__qualname__ = llvm_name
    typer.__doc__ = doc
    return intrinsic(typer)


fma = _float_intrinsic(
    "fmuladd", 3, "a * b + c via llvm.fmuladd: fused where the target has FMA, accurate either way."
)
fabs = _float_intrinsic("fabs", 1, "|a| (clears the sign bit).")
copysign = _float_intrinsic("copysign", 2, "|a| with the sign bit of b.")
sqrt = _float_intrinsic("sqrt", 1, "IEEE square root (vsqrtps/vsqrtpd); NaN for negative input.")
rint = _float_intrinsic("rint", 1, "Round to nearest integer, ties to even (vroundps/vroundpd).")


@intrinsic
def div(typingctx, a, b):
    """Plain IEEE division: no ZeroDivisionError check, so the loop stays branch-free."""
    if not _is_float(a, b):
        return None

    def codegen(context, builder, signature, args):
        return builder.fdiv(args[0], args[1])

    return a(a, b), codegen


@intrinsic
def sel(typingctx, c, a, b):
    """``a if c else b`` as an LLVM select (never a branch)."""
    if not isinstance(c, types.Boolean) or a != b:
        return None

    def codegen(context, builder, signature, args):
        return builder.select(args[0], args[1], args[2])

    return a(c, a, b), codegen


def _horner(builder, x, coef: list):
    """coef[0] + x * (coef[1] + ...) as a chain of fmuladd, highest order first."""
    acc = llvm_call(builder, "fmuladd", [x, coef[-1], coef[-2]])
    for c in reversed(coef[:-2]):
        acc = llvm_call(builder, "fmuladd", [acc, x, c])
    return acc


@intrinsic
def poly(typingctx, x, c):
    """``c[0] + x * (c[1] + x * (... + x * c[-1]))`` by Horner's rule in ``fmuladd``s, for a
    tuple ``c`` of constants of x's type (lowest order first, at least two)."""
    if not (isinstance(c, types.UniTuple) and _is_float(x) and c.dtype == x and c.count >= 2):
        return None
    n = c.count

    def codegen(context, builder, sig, args):
        xv, cv = args
        return _horner(builder, xv, [builder.extract_value(cv, k) for k in range(n)])

    return x(x, c), codegen


@intrinsic
def poly_sel(typingctx, x, cond, a, b):
    """``poly(x, a if cond else b)`` with the coefficients picked per lane: one Horner chain
    instead of two chains and a select."""
    ok = isinstance(a, types.UniTuple) and a == b and a.dtype == x and a.count >= 2
    if not (ok and _is_float(x) and isinstance(cond, types.Boolean)):
        return None
    n = a.count

    def codegen(context, builder, sig, args):
        xv, cv, av, bv = args
        coef = [builder.select(cv, builder.extract_value(av, k), builder.extract_value(bv, k))
                for k in range(n)]  # fmt: skip
        return _horner(builder, xv, coef)

    return x(x, cond, a, b), codegen


# float16 by LLVM's own conversions: one instruction a vector with F16C (vcvtph2ps, vcvtps2ph),
# exact IEEE conversions (round to nearest, ties to even). cpu_math uses them only where the
# CPU has F16C: without it LLVM calls compiler-rt helpers that a JIT may not find.
@intrinsic
def half_to_f32(typingctx, u):
    """The float32 value of the float16 bits in an integer's low 16 bits (LLVM fpext)."""
    if not isinstance(u, types.Integer):
        return None

    def codegen(context, builder, signature, args):
        i16, v = ir.IntType(16), args[0]
        if u.bitwidth > 16:
            v = builder.trunc(v, i16)
        elif u.bitwidth < 16:
            v = builder.zext(v, i16)
        return builder.fpext(builder.bitcast(v, ir.HalfType()), ir.FloatType())

    return types.float32(u), codegen


@intrinsic
def f32_to_half(typingctx, x):
    """float32 ``x`` rounded to float16, as its bits in a uint16 (LLVM fptrunc)."""
    if x != types.float32:
        return None

    def codegen(context, builder, signature, args):
        return builder.bitcast(builder.fptrunc(args[0], ir.HalfType()), ir.IntType(16))

    return types.uint16(x), codegen


@intrinsic
def ptr_from_addr(typingctx, addr, like):
    """The integer address ``addr`` as a pointer to elements of ``like``'s type (a number, used
    for its type only): index it as an array (``p[j]``, ``p[j] = v``), no bounds. For kernels
    that take a table of arrays by address (``codegen/multi_tensor.py``); the caller keeps the
    arrays alive."""
    if not isinstance(addr, types.Integer) or not isinstance(like, (types.Float, types.Integer)):
        return None
    ptr = types.CPointer(like)

    def codegen(context, builder, signature, args):
        return builder.inttoptr(args[0], context.get_value_type(ptr))

    return ptr(addr, like), codegen
