"""Branch-free vectorizable math for numba CPU kernels (draft)."""

from __future__ import annotations

import numba
import numpy as np
from llvmlite import ir
from numba.core import types
from numba.extending import intrinsic

# ---------------------------------------------------------------------------------------------
# LLVM-level helpers.


@intrinsic
def _bits(typingctx, x):
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
def _f32_from_bits(typingctx, i):
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
def _f64_from_bits(typingctx, i):
    """Reinterpret an integer (sign-extended to 64 bits) as a float64."""
    if not isinstance(i, types.Integer):
        return None

    def codegen(context, builder, signature, args):
        v = builder.sext(args[0], ir.IntType(64)) if i.bitwidth < 64 else args[0]
        return builder.bitcast(v, ir.DoubleType())

    return types.float64(i), codegen


def _float_intrinsic(name, nargs):
    """Intrinsic calling ``llvm.<name>`` on same-typed float arguments."""

    def typer(typingctx, *args):
        if len(args) != nargs or any(a != args[0] for a in args):
            return None
        if args[0] not in (types.float32, types.float64):
            return None

        def codegen(context, builder, signature, cargs):
            ty = cargs[0].type
            fn = builder.module.declare_intrinsic(
                "llvm." + name, [ty], ir.FunctionType(ty, [ty] * nargs)
            )
            return builder.call(fn, cargs)

        return args[0](*args), codegen

    return typer


# fmuladd lets LLVM fuse where the target has FMA; results are accurate either way.
_fma = intrinsic(_float_intrinsic("fmuladd", 3))
_fabs = intrinsic(_float_intrinsic("fabs", 1))
_copysign = intrinsic(_float_intrinsic("copysign", 2))


@intrinsic
def _div(typingctx, a, b):
    """Plain IEEE division: no ZeroDivisionError check, so the loop stays branch-free."""
    if a != b or a not in (types.float32, types.float64):
        return None

    def codegen(context, builder, signature, args):
        return builder.fdiv(args[0], args[1])

    return a(a, b), codegen


@intrinsic
def _sel(typingctx, c, a, b):
    """``a if c else b`` as an LLVM select (never a branch)."""
    if not isinstance(c, types.Boolean) or a != b:
        return None

    def codegen(context, builder, signature, args):
        return builder.select(args[0], args[1], args[2])

    return a(c, a, b), codegen


_JIT = numba.njit(inline="always")

# ---------------------------------------------------------------------------------------------
# float32

_F = np.float32
F32_ZERO = _F(0.0)
F32_HALF = _F(0.5)
F32_ONE = _F(1.0)
F32_TWO = _F(2.0)
F32_INF = _F(np.inf)
F32_NAN = _F(np.nan)
# Adding 1.5 * 2**23 rounds a float32 |v| < 2**22 to an integer (ties to even); the integer
# then sits in the low mantissa bits.
F32_RND = _F(12582912.0)
F32_RND_BITS = 0x4B400000
F32_LOG2E = _F(1.4426950408889634)
# ln2 split: the high part has 9 significant bits, so k * LN2_HI is exact for |k| < 2**15.
F32_LN2_HI = _F(0.693359375)
F32_LN2_LO = _F(-2.1219444170128554e-4)

# e**r = 1 + r + r**2 * Q(r) on |r| <= ln2/2: near-minimax fit (see module notes).
F32_EXP_Q0 = _F(0.5)
F32_EXP_Q1 = _F(0.1666654497385025)
F32_EXP_Q2 = _F(0.04166640341281891)
F32_EXP_Q3 = _F(0.008366403169929981)
F32_EXP_Q4 = _F(0.0013940655626356602)


@_JIT
def _exp_poly_f32(r):
    """Return e**r - 1 for |r| <= ln2/2 (kept as the small part so callers add 1 last)."""
    q = _fma(r, F32_EXP_Q4, F32_EXP_Q3)
    q = _fma(q, r, F32_EXP_Q2)
    q = _fma(q, r, F32_EXP_Q1)
    q = _fma(q, r, F32_EXP_Q0)
    return _fma(r * r, q, r)


@_JIT
def _exp_core_f32(x):
    """e**x for x already clamped to [-104, 89] (no NaN handling)."""
    t = _fma(x, F32_LOG2E, F32_RND)
    k = t - F32_RND
    ki = _bits(t) - F32_RND_BITS
    r = x - k * F32_LN2_HI
    r = r - k * F32_LN2_LO
    y = F32_ONE + _exp_poly_f32(r)
    # 2**k as two normal powers of two so that k in [-150, 128] neither overflows the exponent
    # field nor skips gradual underflow: y * s1 is exact, the last product rounds once.
    k1 = ki >> 1
    s1 = _f32_from_bits((k1 + 127) << 23)
    s2 = _f32_from_bits((ki - k1 + 127) << 23)
    return (y * s1) * s2


F32_EXP_HI = _F(89.0)
F32_EXP_LO = _F(-104.0)


@_JIT
def exp_f32(x):
    """e**x in float32."""
    x = np.float32(x)
    xc = _sel(x < F32_EXP_HI, x, F32_EXP_HI)
    xc = _sel(xc > F32_EXP_LO, xc, F32_EXP_LO)
    return _sel(x == x, _exp_core_f32(xc), x)
