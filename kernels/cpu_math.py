"""Branch-free, vectorizable float32 / float64 math for numba CPU kernels.

numba 0.68 here has no SVML, so ``math.exp`` or ``np.tanh`` inside a loop become scalar libm
calls: slower than numpy's SIMD ufuncs, and they stop LLVM's loop vectorizer for the whole fused
loop. The functions below use only arithmetic, selects, a few LLVM intrinsics (``fmuladd``,
``rint``, ``sqrt``, ``fabs``, ``copysign``) and integer bit manipulation through bitcasts, so
``for i in range(n): out[i] = exp_f32(a[i])`` under a plain ``@numba.njit`` (no fastmath)
vectorizes (8 x float32 / 4 x float64 lanes with AVX2).

Usage
-----
* ``<fn>_f32(x)`` / ``<fn>_f64(x)``: argument converted to, result and all arithmetic in,
  float32 / float64. ``atan2_f32(y, x)`` / ``atan2_f64(y, x)`` take two.
* All are ``@numba.njit(inline="always")``: numba inlines them into the caller's IR (each call
  site adds roughly 0.2-1 s of compile time). They can also be called from Python (slowly).
* ``VECTOR_MATH[(name, "f32" | "f64")]`` is the function; ``MAX_ULP`` has the same keys and holds
  the error bounds of the table below. sin, cos and tan are not provided (they need a branch-free
  Payne-Hanek reduction to be right for large arguments, not written yet); callers fall back to
  ``math`` for any name missing from ``VECTOR_MATH``.
* Do not call them from ``fastmath=True`` code: inlined, they take the caller's fast-math flags,
  and reassociation breaks the exact steps (split constants, error terms, two-step scaling) --
  results can be badly wrong near overflow and for expm1, log1p, sinh, cosh, not just less
  accurate -- while nnan / ninf remove the NaN / inf handling. fusejit's kernels do not use it.

Accuracy
--------
Max error in ulp of the correctly rounded result: float32 against numpy's float64 result rounded
to float32, float64 against numpy's long double (x87, 64-bit mantissa) result rounded to float64
(erf: a long double series / continued fraction; sigmoid: 1 / (1 + exp(-x)) in the wider type).
Measured with FMA (AVX2 host) and without (``NUMBA_CPU_NAME=generic``); the table gives the larger
(log2 and log10 reach 2 only without FMA, 1 with it).

    ========  ===  ===
    function  f32  f64
    ========  ===  ===
    exp       1    1
    exp2      1    1
    expm1     1    1
    log       1    1
    log2      2    2
    log10     2    2
    log1p     1    1
    tanh      1    1
    sigmoid   2    2
    erf       1    1
    sinh      1    1
    cosh      1    1
    atan      1    1
    asin      1    1
    acos      1    1
    atan2     1    2
    ========  ===  ===

Tested inputs, per function. float32: every 7th bit pattern of all finite floats of both signs
(6.1e8 inputs covering the whole range, subnormals included). float64: 8e6 inputs, 2e6 each of
random bit patterns (all exponents, both signs), log-uniform magnitudes in [5e-324, 8e307] with
random signs, uniform in [-5, 5] and uniform in [-0.25, 0.25] (for asin and acos: [-1, 1] and
[-0.05, 0.05]). atan2, both precisions: 6e6 pairs (random bit patterns, uniform in [-3, 3],
near-diagonal |y| ~ |x|) plus all pairs of +-0, +-inf, NaN, +-1, the smallest subnormal, the
largest finite value.

Special values follow numpy: NaN -> NaN; exp(-inf) = 0, exp(inf) = inf, overflow gives inf and
underflow goes through the subnormals (gradual, no flush to zero) to 0; log(0) = -inf,
log(x < 0) = NaN, log(inf) = inf, subnormal inputs handled; tanh(+-inf) = erf(+-inf) = +-1,
sigmoid(-inf) = 0, sigmoid(inf) = 1; signed zeros are preserved where numpy preserves them
(expm1, log1p, tanh, erf, sinh, atan, asin, atan2 quadrants).

Coefficients
------------
Derived for this module, not copied. Each polynomial approximates the remainder left after the
leading terms that are kept exact (e.g. Q in e**r = 1 + r + r*r*Q(r), P in
erf(x) = x + x*P(x*x)); it is fitted by weighted least squares on 400-1500 Chebyshev nodes,
iterated with Lawson's reweighting towards the minimax error of the final result (relative, or
absolute where the result is near 1), against 60-digit ``decimal`` values (``Decimal.exp``/``ln``
or Taylor series). float64 fits carry their residuals in long double. Coefficients were rounded to
the target precision one at a time from the lowest order up, refitting the rest after each, and
the result was then measured as above.
"""

from __future__ import annotations

import numba
import numpy as np
from llvmlite import ir
from numba.core import types
from numba.extending import intrinsic

__all__ = [
    "MAX_ULP",
    "VECTOR_MATH",
    "acos_f32",
    "acos_f64",
    "asin_f32",
    "asin_f64",
    "atan2_f32",
    "atan2_f64",
    "atan_f32",
    "atan_f64",
    "cosh_f32",
    "cosh_f64",
    "erf_f32",
    "erf_f64",
    "exp2_f32",
    "exp2_f64",
    "exp_f32",
    "exp_f64",
    "expm1_f32",
    "expm1_f64",
    "log10_f32",
    "log10_f64",
    "log1p_f32",
    "log1p_f64",
    "log2_f32",
    "log2_f64",
    "log_f32",
    "log_f64",
    "sigmoid_f32",
    "sigmoid_f64",
    "sinh_f32",
    "sinh_f64",
    "tanh_f32",
    "tanh_f64",
]

# ---------------------------------------------------------------------------------------------
# LLVM-level helpers


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


def _llvm_call(builder, name, args):
    ty = args[0].type
    fn = builder.module.declare_intrinsic(
        "llvm." + name, [ty], ir.FunctionType(ty, [ty] * len(args))
    )
    return builder.call(fn, args)


def _is_float(*tys):
    return tys[0] in (types.float32, types.float64) and all(t == tys[0] for t in tys)


@intrinsic
def _fma(typingctx, a, b, c):
    """a * b + c via llvm.fmuladd: fused where the target has FMA, accurate either way."""
    if not _is_float(a, b, c):
        return None
    return a(a, b, c), lambda context, builder, sig, args: _llvm_call(builder, "fmuladd", args)


@intrinsic
def _fabs(typingctx, a):
    """|a| (clears the sign bit)."""
    if not _is_float(a):
        return None
    return a(a), lambda context, builder, sig, args: _llvm_call(builder, "fabs", args)


@intrinsic
def _copysign(typingctx, a, b):
    """|a| with the sign bit of b."""
    if not _is_float(a, b):
        return None
    return a(a, b), lambda context, builder, sig, args: _llvm_call(builder, "copysign", args)


@intrinsic
def _sqrt(typingctx, a):
    """IEEE square root (vsqrtps/vsqrtpd); NaN for negative input."""
    if not _is_float(a):
        return None
    return a(a), lambda context, builder, sig, args: _llvm_call(builder, "sqrt", args)


@intrinsic
def _rint(typingctx, a):
    """Round to nearest integer, ties to even (vroundps/vroundpd)."""
    if not _is_float(a):
        return None
    return a(a), lambda context, builder, sig, args: _llvm_call(builder, "rint", args)


@intrinsic
def _div(typingctx, a, b):
    """Plain IEEE division: no ZeroDivisionError check, so the loop stays branch-free."""
    if not _is_float(a, b):
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
_F32_ZERO = _F(0.0)
_F32_HALF = _F(0.5)
_F32_ONE = _F(1.0)
_F32_TWO = _F(2.0)
_F32_ONE_HALF = _F(1.5)
_F32_INF = _F(np.inf)
_F32_NAN = _F(np.nan)
_F32_LOG2E = _F(1.4426950408889634)
# ln2 split: the high part has 9 significant bits, so k * LN2_HI is exact for |k| < 2**15.
_F32_LN2_HI = _F(0.693359375)
_F32_LN2_LO = _F(-2.1219444170128554e-4)

# e**r = 1 + r + r**2 * Q(r) on |r| <= ln2/2: near-minimax fit (see module notes).
_F32_EXP_Q0 = _F(0.5)
_F32_EXP_Q1 = _F(0.1666654497385025)
_F32_EXP_Q2 = _F(0.04166640341281891)
_F32_EXP_Q3 = _F(0.008366403169929981)
_F32_EXP_Q4 = _F(0.0013940655626356602)


@_JIT
def _exp_poly_f32(r):
    """Return e**r - 1 for |r| <= ln2/2 (kept as the small part so callers add 1 last)."""
    q = _fma(r, _F32_EXP_Q4, _F32_EXP_Q3)
    q = _fma(q, r, _F32_EXP_Q2)
    q = _fma(q, r, _F32_EXP_Q1)
    q = _fma(q, r, _F32_EXP_Q0)
    return _fma(r * r, q, r)


@_JIT
def _exp_parts_f32(x):
    """(p, k) with e**x = (1 + p) * 2**k, |p| < 0.42, for x in [-110, 110] (no NaN/inf)."""
    k = _rint(x * _F32_LOG2E)
    r = x - k * _F32_LN2_HI
    r = r - k * _F32_LN2_LO
    return _exp_poly_f32(r), np.int32(k)


@_JIT
def _scale_f32(y, k):
    """y * 2**k for k in [-152, 130] with a single rounding (gradual underflow kept)."""
    # Two normal powers of two: y * s1 is exact, the second product rounds once.
    k1 = k >> 1
    s1 = _f32_from_bits((k1 + 127) << 23)
    s2 = _f32_from_bits((k - k1 + 127) << 23)
    return (y * s1) * s2


@_JIT
def _exp_core_f32(x):
    """e**x for x already clamped to [-104, 90] (no NaN handling)."""
    p, k = _exp_parts_f32(x)
    return _scale_f32(_F32_ONE + p, k)


_F32_EXP_HI = _F(89.0)
_F32_EXP_LO = _F(-104.0)


@_JIT
def exp_f32(x):
    """e**x in float32."""
    x = np.float32(x)
    xc = _sel(x < _F32_EXP_HI, x, _F32_EXP_HI)
    xc = _sel(xc > _F32_EXP_LO, xc, _F32_EXP_LO)
    return _sel(x == x, _exp_core_f32(xc), x)


# 2**r = 1 + r * P(r) on |r| <= 1/2.
_F32_EXP2_P0 = _F(0.6931471824645996)
_F32_EXP2_P1 = _F(0.24022650718688965)
_F32_EXP2_P2 = _F(0.055504050105810165)
_F32_EXP2_P3 = _F(0.009618086740374565)
_F32_EXP2_P4 = _F(0.0013337971176952124)
_F32_EXP2_P5 = _F(0.00015452111256308854)
_F32_EXP2_P6 = _F(1.4320444279292133e-05)
_F32_EXP2_HI = _F(129.0)
_F32_EXP2_LO = _F(-151.0)


@_JIT
def exp2_f32(x):
    """2**x in float32."""
    x = np.float32(x)
    xc = _sel(x < _F32_EXP2_HI, x, _F32_EXP2_HI)
    xc = _sel(xc > _F32_EXP2_LO, xc, _F32_EXP2_LO)
    k = _rint(xc)
    ki = np.int32(k)
    r = xc - k  # exact
    p = _fma(r, _F32_EXP2_P6, _F32_EXP2_P5)
    p = _fma(p, r, _F32_EXP2_P4)
    p = _fma(p, r, _F32_EXP2_P3)
    p = _fma(p, r, _F32_EXP2_P2)
    p = _fma(p, r, _F32_EXP2_P1)
    p = _fma(p, r, _F32_EXP2_P0)
    return _sel(x == x, _scale_f32(_F32_ONE + r * p, ki), x)


# expm1 needs Q one degree higher than exp: near r = 0 its error is relative to r, not to 1.
_F32_EXPM1_Q0 = _F(0.5)
_F32_EXPM1_Q1 = _F(0.1666666716337204)
_F32_EXPM1_Q2 = _F(0.04166648909449577)
_F32_EXPM1_Q3 = _F(0.008333208039402962)
_F32_EXPM1_Q4 = _F(0.001393267186358571)
_F32_EXPM1_Q5 = _F(0.0001994424674194306)
_F32_EXPM1_LO = _F(-80.0)  # expm1 == -1 in float32 well before this
_F32_EXPM1_TINY = _F(2.0**-25)


@_JIT
def expm1_f32(x):
    """e**x - 1 in float32, accurate near 0."""
    x = np.float32(x)
    xc = _sel(x < _F32_EXP_HI, x, _F32_EXP_HI)
    xc = _sel(xc > _F32_EXPM1_LO, xc, _F32_EXPM1_LO)
    k = _rint(xc * _F32_LOG2E)
    ki = np.int32(k)
    r = xc - k * _F32_LN2_HI
    r = r - k * _F32_LN2_LO
    q = _fma(r, _F32_EXPM1_Q5, _F32_EXPM1_Q4)
    q = _fma(q, r, _F32_EXPM1_Q3)
    q = _fma(q, r, _F32_EXPM1_Q2)
    q = _fma(q, r, _F32_EXPM1_Q1)
    q = _fma(q, r, _F32_EXPM1_Q0)
    # e**x - 1 = 2 * (h * (r + tail) + (h - 1/2)) with h = 2**(k-1), tail = r*r*q: h - 1/2 is
    # exact for small |k|, h * r + (h - 1/2) is exact when it cancels (k = 1, r < 0), the
    # doubling is exact, and k = 128 needs no unrepresentable 2**128.
    h = _f32_from_bits((ki + 126) << 23)
    y = _F32_TWO * _fma(h, (r * r) * q, _fma(h, r, h - _F32_HALF))
    # |x| < 2**-25: e**x - 1 rounds to x; also keeps -0.0 and subnormals exact.
    y = _sel(_fabs(x) < _F32_EXPM1_TINY, x, y)
    return _sel(x == x, y, x)


# log(1 + f) = f - f*f/2 + s * (f*f/2 + R), s = f / (2 + f), R = z * P(z), z = s*s.
_F32_LOG_P0 = _F(0.6666677594184875)
_F32_LOG_P1 = _F(0.39977583289146423)
_F32_LOG_P2 = _F(0.29870808124542236)
_F32_SQRT_HALF_BITS = 0x3F3504F3  # float32 bits of ~sqrt(1/2)
_F32_MIN_NORMAL = _F(2.0**-126)
_F32_TWO23 = _F(2.0**23)


@_JIT
def _log_parts_f32(x):
    """For finite x > 0 return (e, f, tail) with log(x) = e*ln2 + f - tail (tail small)."""
    sub = x < _F32_MIN_NORMAL
    xs = _sel(sub, x * _F32_TWO23, x)  # subnormals: scale exactly into the normal range
    ix = _bits(xs) - _F32_SQRT_HALF_BITS
    e = np.float32(np.int32(ix >> 23)) - _sel(sub, _F(23.0), _F32_ZERO)
    # mantissa m in [sqrt(1/2), sqrt(2)); f = m - 1 is exact.
    m = _f32_from_bits((ix & 0x7FFFFF) + _F32_SQRT_HALF_BITS)
    f = m - _F32_ONE
    s = _div(f, _F32_TWO + f)
    z = s * s
    p = _fma(z, _F32_LOG_P2, _F32_LOG_P1)
    p = _fma(p, z, _F32_LOG_P0)
    hfsq = _F32_HALF * f * f
    return e, f, hfsq - s * (hfsq + z * p)


@_JIT
def _log_special_f32(x, y):
    """Apply log's special cases: log(+inf)=inf, log(+-0)=-inf, log(x<0)=nan, nan->nan."""
    y = _sel(x == _F32_INF, x, y)
    y = _sel(x == _F32_ZERO, -_F32_INF, y)
    y = _sel(x < _F32_ZERO, _F32_NAN, y)
    return _sel(x == x, y, x)


@_JIT
def log_f32(x):
    """Natural log in float32."""
    x = np.float32(x)
    e, f, tail = _log_parts_f32(x)
    y = e * _F32_LN2_HI - ((tail - e * _F32_LN2_LO) - f)
    return _log_special_f32(x, y)


_F32_LOG2E_HI = _F(1.4426950216293335)
_F32_LOG2E_LO = _F(1.925963033500011e-08)


@_JIT
def log2_f32(x):
    """Base-2 log in float32."""
    x = np.float32(x)
    e, f, tail = _log_parts_f32(x)
    # f is exact, so only the small tail and the log2(e) split carry rounding error.
    y = e + _fma(f, _F32_LOG2E_HI, f * _F32_LOG2E_LO - tail * _F32_LOG2E)
    return _log_special_f32(x, y)


@_JIT
def log1p_f32(x):
    """log(1 + x) in float32, accurate near 0."""
    x = np.float32(x)
    u = _F32_ONE + x
    # u = 1 + x rounded; log(1 + x) = log(u) + log(1 + c/u) ~= log(u) + c/u, where
    # c = x - (u - 1) is the rounding error of u.
    c = _div(x - (u - _F32_ONE), u)
    e, f, tail = _log_parts_f32(u)
    y = e * _F32_LN2_HI - ((tail - (e * _F32_LN2_LO + c)) - f)
    y = _sel(x == _F32_ZERO, x, y)  # keeps -0.0
    return _log_special_f32(u, y)


_F32_TANH_P0 = _F(-0.3333328068256378)
_F32_TANH_P1 = _F(0.13331405818462372)
_F32_TANH_P2 = _F(-0.05373651534318924)
_F32_TANH_P3 = _F(0.02062816731631756)
_F32_TANH_P4 = _F(-0.0056922961957752705)
_F32_TANH_SMALL = _F(0.625)
_F32_TANH_BIG = _F(10.0)  # tanh == 1 in float32 beyond ~9.01


@_JIT
def tanh_f32(x):
    """Hyperbolic tangent in float32."""
    x = np.float32(x)
    a = _fabs(x)
    # |x| < 0.625: odd polynomial x + x**3 * P(x**2).
    z = x * x
    p = _fma(z, _F32_TANH_P4, _F32_TANH_P3)
    p = _fma(p, z, _F32_TANH_P2)
    p = _fma(p, z, _F32_TANH_P1)
    p = _fma(p, z, _F32_TANH_P0)
    small = _fma(x * z, p, x)
    # otherwise 1 - 2 / (e**(2|x|) + 1); for |x| >= 0.625 the subtraction loses at most a bit.
    ac = _sel(a < _F32_TANH_BIG, a, _F32_TANH_BIG)
    big = _F32_ONE - _div(_F32_TWO, _exp_core_f32(ac + ac) + _F32_ONE)
    y = _copysign(_sel(a < _F32_TANH_SMALL, small, big), x)  # copysign also keeps -0.0
    return _sel(x == x, y, x)


@_JIT
def sigmoid_f32(x):
    """1 / (1 + e**-x) in float32, without overflow for large |x|."""
    x = np.float32(x)
    na = -_fabs(x)
    e = _exp_core_f32(_sel(na > _F32_EXP_LO, na, _F32_EXP_LO))
    # x >= 0: 1 / (1 + e**-x); x < 0: e**x / (1 + e**x). Both divide by d = 1 + e in [1, 2].
    d = _F32_ONE + e
    dl = (_F32_ONE - d) + e  # exact rounding error of d
    q = _div(_sel(x >= _F32_ZERO, _F32_ONE, e), d)
    # q / (1 + dl/d) ~= q - q * dl / d; 1.5 - d/2 approximates 1/d well enough for a term that
    # is below one ulp, so the rounding of d costs (almost) nothing.
    y = _fma(-(q * dl), _fma(-_F32_HALF, d, _F32_ONE_HALF), q)
    return _sel(x == x, y, x)


# erf(x) = x + x * P(x*x) for |x| < 1 (P(0) = 2/sqrt(pi) - 1 keeps the leading term exact).
_F32_ERF_P0 = _F(0.12837916612625122)
_F32_ERF_P1 = _F(-0.3761262595653534)
_F32_ERF_P2 = _F(0.11283578723669052)
_F32_ERF_P3 = _F(-0.026853347197175026)
_F32_ERF_P4 = _F(0.005187162198126316)
_F32_ERF_P5 = _F(-0.0007997853099368513)
_F32_ERF_P6 = _F(7.806903158780187e-05)
# erfc(x) = e**(-x*x) * R(x - 2.5) for 1 <= x <= 4; erf == 1 in float32 beyond ~3.92.
_F32_ERF_R0 = _F(0.2108076512813568)
_F32_ERF_R1 = _F(-0.07434234768152237)
_F32_ERF_R2 = _F(0.024912262335419655)
_F32_ERF_R3 = _F(-0.008137536235153675)
_F32_ERF_R4 = _F(0.002301862696185708)
_F32_ERF_R5 = _F(-0.0006504479679279029)
_F32_ERF_R6 = _F(0.0005573498783633113)
_F32_ERF_R7 = _F(0.00023225913173519075)
_F32_ERF_R8 = _F(0.00010819442832143977)
_F32_ERF_MID = _F(2.5)
_F32_FOUR = _F(4.0)


@_JIT
def erf_f32(x):
    """Error function in float32."""
    x = np.float32(x)
    a = _fabs(x)
    z = x * x
    p = _fma(z, _F32_ERF_P6, _F32_ERF_P5)
    p = _fma(p, z, _F32_ERF_P4)
    p = _fma(p, z, _F32_ERF_P3)
    p = _fma(p, z, _F32_ERF_P2)
    p = _fma(p, z, _F32_ERF_P1)
    p = _fma(p, z, _F32_ERF_P0)
    small = _fma(x, p, x)
    ac = _sel(a < _F32_FOUR, a, _F32_FOUR)
    t = ac - _F32_ERF_MID
    r = _fma(t, _F32_ERF_R8, _F32_ERF_R7)
    r = _fma(r, t, _F32_ERF_R6)
    r = _fma(r, t, _F32_ERF_R5)
    r = _fma(r, t, _F32_ERF_R4)
    r = _fma(r, t, _F32_ERF_R3)
    r = _fma(r, t, _F32_ERF_R2)
    r = _fma(r, t, _F32_ERF_R1)
    r = _fma(r, t, _F32_ERF_R0)
    big = _F32_ONE - _exp_core_f32(-(ac * ac)) * r
    y = _sel(a < _F32_ONE, small, _copysign(big, x))
    return _sel(x == x, y, x)


_F32_LOG10_2_HI = _F(0.30078125)  # 9 significant bits: e * hi is exact
_F32_LOG10_2_LO = _F(0.00024874566588550806)
_F32_LOG10E_HI = _F(0.4342944920063019)
_F32_LOG10E_LO = _F(-1.0103049952192578e-08)


@_JIT
def log10_f32(x):
    """Base-10 log in float32."""
    x = np.float32(x)
    e, f, tail = _log_parts_f32(x)
    lf = _fma(f, _F32_LOG10E_HI, f * _F32_LOG10E_LO - tail * _F32_LOG10E_HI)
    y = e * _F32_LOG10_2_HI + (e * _F32_LOG10_2_LO + lf)
    return _log_special_f32(x, y)


_F32_SINH_P0 = _F(0.1666666716337204)
_F32_SINH_P1 = _F(0.00833331048488617)
_F32_SINH_P2 = _F(0.0001984289410756901)
_F32_SINH_P3 = _F(2.7822300125990296e-06)
_F32_COSH_HI = _F(90.0)  # cosh, sinh overflow beyond ~89.42


@_JIT
def _exp_pm_half_f32(a, sign):
    """(e**a + sign * e**-a) / 2 for a in [0, 90]."""
    # With e**a = (1 + p) * 2**k this is 2**(k-1) * (1 + (p + sign * 2**(-2k) / (1 + p))):
    # summing before the exact scaling rounds once instead of three times. For k > 60 the
    # second term is far below an ulp, so its exponent is capped to stay representable.
    p, k = _exp_parts_f32(a)
    kc = _sel(k < 60, k, np.int32(60))
    t = _div(_scale_f32(sign, -2 * kc), _F32_ONE + p)
    return _scale_f32(_F32_ONE + (p + t), k - 1)


@_JIT
def sinh_f32(x):
    """Hyperbolic sine in float32."""
    x = np.float32(x)
    a = _fabs(x)
    z = x * x
    p = _fma(z, _F32_SINH_P3, _F32_SINH_P2)
    p = _fma(p, z, _F32_SINH_P1)
    p = _fma(p, z, _F32_SINH_P0)
    small = _fma(x * z, p, x)  # |x| < 1, where the exp form below would cancel
    big = _exp_pm_half_f32(_sel(a < _F32_COSH_HI, a, _F32_COSH_HI), -_F32_ONE)
    y = _copysign(_sel(a < _F32_ONE, small, big), x)
    return _sel(x == x, y, x)


@_JIT
def cosh_f32(x):
    """Hyperbolic cosine in float32."""
    x = np.float32(x)
    a = _fabs(x)
    y = _exp_pm_half_f32(_sel(a < _F32_COSH_HI, a, _F32_COSH_HI), _F32_ONE)
    return _sel(x == x, y, x)


# atan(t) = t + t**3 * P(t*t) for |t| <= 7/16. Larger arguments use
# atan(a) = atan(c) + atan((a - c) / (1 + a*c)) for c = 1/2, 1, 3/2 and pi/2 - atan(1/a) above
# 39/16, so |t| stays below 7/16 and the offset never cancels against atan(t).
_F32_ATAN_P0 = _F(-0.3333330452442169)
_F32_ATAN_P1 = _F(0.1999778151512146)
_F32_ATAN_P2 = _F(-0.14230172336101532)
_F32_ATAN_P3 = _F(0.10494107753038406)
_F32_ATAN_P4 = _F(-0.05825633183121681)
_F32_ATAN05_HI = _F(0.46364760398864746)
_F32_ATAN05_LO = _F(5.01215868808913e-09)
_F32_ATAN15_HI = _F(0.9827937483787537)
_F32_ATAN15_LO = _F(-2.5131424052915463e-08)
_F32_PI_HI = _F(3.1415927410125732)
_F32_PI_LO = _F(-8.742277657347586e-08)
_F32_PI_2_HI = _F(1.5707963705062866)
_F32_PI_2_LO = _F(-4.371138828673793e-08)
_F32_PI_4_HI = _F(0.7853981852531433)
_F32_PI_4_LO = _F(-2.1855694143368964e-08)
_F32_7_16 = _F(7 / 16)
_F32_11_16 = _F(11 / 16)
_F32_19_16 = _F(19 / 16)
_F32_39_16 = _F(39 / 16)


@_JIT
def _atan_pos_f32(a):
    """atan(a) for a >= 0 (or NaN)."""
    i1 = a > _F32_7_16
    i2 = a > _F32_11_16
    i3 = a > _F32_19_16
    i4 = a > _F32_39_16
    c = _sel(i3, _F32_ONE_HALF, _sel(i2, _F32_ONE, _sel(i1, _F32_HALF, _F32_ZERO)))
    num = _sel(i4, -_F32_ONE, a - c)  # a - c is exact on each interval
    den = _sel(i4, a, _fma(a, c, _F32_ONE))
    t = _div(num, den)
    z = t * t
    p = _fma(z, _F32_ATAN_P4, _F32_ATAN_P3)
    p = _fma(p, z, _F32_ATAN_P2)
    p = _fma(p, z, _F32_ATAN_P1)
    p = _fma(p, z, _F32_ATAN_P0)
    hi = _sel(i3, _F32_ATAN15_HI, _sel(i2, _F32_PI_4_HI, _sel(i1, _F32_ATAN05_HI, _F32_ZERO)))
    lo = _sel(i3, _F32_ATAN15_LO, _sel(i2, _F32_PI_4_LO, _sel(i1, _F32_ATAN05_LO, _F32_ZERO)))
    hi = _sel(i4, _F32_PI_2_HI, hi)
    lo = _sel(i4, _F32_PI_2_LO, lo)
    return hi + (t + _fma(t * z, p, lo))


@_JIT
def atan_f32(x):
    """Arctangent in float32."""
    x = np.float32(x)
    return _sel(x == x, _copysign(_atan_pos_f32(_fabs(x)), x), x)


@_JIT
def atan2_f32(y, x):
    """Arctangent of y / x in float32, quadrant from the signs (numpy.arctan2 semantics)."""
    y = np.float32(y)
    x = np.float32(x)
    ax = _fabs(x)
    ay = _fabs(y)
    swap = ay > ax
    mx = _sel(swap, ay, ax)
    mn = _sel(swap, ax, ay)
    # ratio in [0, 1]; 0/0 (both zero) -> 0 and inf/inf (both infinite) -> 1.
    q = _div(mn, mx)
    q = _sel(mx == _F32_ZERO, _F32_ZERO, q)
    q = _sel(mn == _F32_INF, _F32_ONE, q)
    # |y| > |x|: pi/2 - a; x < 0 (including -0.0): pi - a; both: pi/2 + a. One offset and one
    # signed a, so the result is rounded once (low parts of pi/2, pi folded into a first).
    a = _atan_pos_f32(q)
    neg = _copysign(_F32_ONE, x) < _F32_ZERO
    hi = _sel(swap, _F32_PI_2_HI, _sel(neg, _F32_PI_HI, _F32_ZERO))
    lo = _sel(swap, _F32_PI_2_LO, _sel(neg, _F32_PI_LO, _F32_ZERO))
    r = _copysign(hi + (_sel(swap == neg, a, -a) + lo), y)
    return _sel((x == x) & (y == y), r, x + y)


# asin(u) = u + u**3 * P(u*u) for |u| <= 1/2; beyond, asin(a) = pi/2 - 2 * asin(sqrt((1-a)/2)).
_F32_ASIN_P0 = _F(0.16666659712791443)
_F32_ASIN_P1 = _F(0.07500521093606949)
_F32_ASIN_P2 = _F(0.04451369121670723)
_F32_ASIN_P3 = _F(0.0318349190056324)
_F32_ASIN_P4 = _F(0.014336468651890755)
_F32_ASIN_P5 = _F(0.03765835240483284)


@_JIT
def _asin_parts_f32(x):
    """(small, u, tail) with small = |x| <= 1/2 and asin(v) = u + tail, where v = x when small,
    else v = sqrt((1 - |x|) / 2) and u is v cut to 12 significant bits: then u * u is exact, and so
    are pi/2 - 2*u and pi - 2*u in the callers, which leaves one rounding at the end."""
    a = _fabs(x)
    small = a <= _F32_HALF
    w = (_F32_ONE - a) * _F32_HALF  # exact for |x| >= 1/2
    s = _sqrt(w)
    sh = _f32_from_bits(_bits(s) & 0xFFFFF000)
    # sqrt(w) - sh from the exact w - sh*sh; 0 when w = 0 (|x| = 1) avoids 0/0.
    c = _sel(w > _F32_ZERO, _div(w - sh * sh, s + sh), _F32_ZERO)
    v = _sel(small, x, s)
    z = _sel(small, x * x, w)
    p = _fma(z, _F32_ASIN_P5, _F32_ASIN_P4)
    p = _fma(p, z, _F32_ASIN_P3)
    p = _fma(p, z, _F32_ASIN_P2)
    p = _fma(p, z, _F32_ASIN_P1)
    p = _fma(p, z, _F32_ASIN_P0)
    tail = _fma(v * z, p, _sel(small, _F32_ZERO, c))
    return small, _sel(small, x, sh), tail


@_JIT
def asin_f32(x):
    """Arcsine in float32 (NaN outside [-1, 1])."""
    x = np.float32(x)
    small, u, tail = _asin_parts_f32(x)
    big = (_F32_PI_2_HI - (u + u)) + (_F32_PI_2_LO - (tail + tail))
    y = _copysign(_sel(small, u + tail, big), x)  # copysign also keeps -0.0
    return _sel(x == x, y, x)


@_JIT
def acos_f32(x):
    """Arccosine in float32 (NaN outside [-1, 1])."""
    x = np.float32(x)
    small, u, tail = _asin_parts_f32(x)
    y_small = _F32_PI_2_HI - (u + (tail - _F32_PI_2_LO))
    y_pos = (u + u) + (tail + tail)
    y_neg = (_F32_PI_HI - (u + u)) + (_F32_PI_LO - (tail + tail))
    y = _sel(small, y_small, _sel(x > _F32_ZERO, y_pos, y_neg))
    return _sel(x == x, y, x)


# ---------------------------------------------------------------------------------------------
# float64

_F64_ZERO = 0.0
_F64_HALF = 0.5
_F64_ONE = 1.0
_F64_TWO = 2.0
_F64_INF = np.inf
_F64_NAN = np.nan
_F64_LOG2E = 1.4426950408889634
# ln2 split: 32-bit high part, so k * LN2_HI is exact for every reachable k.
_F64_LN2_HI = 0.6931471806019545
_F64_LN2_LO = -4.2009150726810846e-11
_F64_EXP_HI = 710.0
_F64_EXP_LO = -746.0

_F64_EXP_Q0 = 0.5
_F64_EXP_Q1 = 0.16666666666666433
_F64_EXP_Q2 = 0.04166666666660381
_F64_EXP_Q3 = 0.00833333333350046
_F64_EXP_Q4 = 0.001388888892686263
_F64_EXP_Q5 = 0.0001984126946550149
_F64_EXP_Q6 = 2.4801508590361166e-05
_F64_EXP_Q7 = 2.7557641288251806e-06
_F64_EXP_Q8 = 2.762522679479331e-07
_F64_EXP_Q9 = 2.497832385981028e-08


@_JIT
def _exp_parts_f64(x):
    """(p, k) with e**x = (1 + p) * 2**k, |p| < 0.42, for x in [-1100, 1100] (no NaN/inf)."""
    k = _rint(x * _F64_LOG2E)
    r = x - k * _F64_LN2_HI
    r = r - k * _F64_LN2_LO
    q = _fma(r, _F64_EXP_Q9, _F64_EXP_Q8)
    q = _fma(q, r, _F64_EXP_Q7)
    q = _fma(q, r, _F64_EXP_Q6)
    q = _fma(q, r, _F64_EXP_Q5)
    q = _fma(q, r, _F64_EXP_Q4)
    q = _fma(q, r, _F64_EXP_Q3)
    q = _fma(q, r, _F64_EXP_Q2)
    q = _fma(q, r, _F64_EXP_Q1)
    q = _fma(q, r, _F64_EXP_Q0)
    return _fma(r * r, q, r), np.int32(k)


@_JIT
def _scale_f64(y, k):
    """y * 2**k for k in [-1078, 1026] with a single rounding."""
    k1 = k >> 1
    s1 = _f64_from_bits((k1 + 1023) << 52)
    s2 = _f64_from_bits((k - k1 + 1023) << 52)
    return (y * s1) * s2


@_JIT
def _exp_core_f64(x):
    """e**x for x already clamped to [-746, 711] (no NaN handling)."""
    p, k = _exp_parts_f64(x)
    return _scale_f64(_F64_ONE + p, k)


@_JIT
def exp_f64(x):
    """e**x in float64."""
    x = np.float64(x)
    xc = _sel(x < _F64_EXP_HI, x, _F64_EXP_HI)
    xc = _sel(xc > _F64_EXP_LO, xc, _F64_EXP_LO)
    return _sel(x == x, _exp_core_f64(xc), x)


_F64_EXP2_P0 = 0.6931471805599453
_F64_EXP2_P1 = 0.2402265069591007
_F64_EXP2_P2 = 0.055504108664823505
_F64_EXP2_P3 = 0.009618129107629872
_F64_EXP2_P4 = 0.001333355814598036
_F64_EXP2_P5 = 0.00015403530390316908
_F64_EXP2_P6 = 1.5252734234793882e-05
_F64_EXP2_P7 = 1.3215489568332025e-06
_F64_EXP2_P8 = 1.0177898662000901e-07
_F64_EXP2_P9 = 7.053801598101377e-09
_F64_EXP2_P10 = 4.478993052280108e-10
_F64_EXP2_P11 = 2.7314999573538238e-11
_F64_EXP2_HI = 1025.0
_F64_EXP2_LO = -1076.0


@_JIT
def exp2_f64(x):
    """2**x in float64."""
    x = np.float64(x)
    xc = _sel(x < _F64_EXP2_HI, x, _F64_EXP2_HI)
    xc = _sel(xc > _F64_EXP2_LO, xc, _F64_EXP2_LO)
    k = _rint(xc)
    ki = np.int32(k)
    r = xc - k
    p = _fma(r, _F64_EXP2_P11, _F64_EXP2_P10)
    p = _fma(p, r, _F64_EXP2_P9)
    p = _fma(p, r, _F64_EXP2_P8)
    p = _fma(p, r, _F64_EXP2_P7)
    p = _fma(p, r, _F64_EXP2_P6)
    p = _fma(p, r, _F64_EXP2_P5)
    p = _fma(p, r, _F64_EXP2_P4)
    p = _fma(p, r, _F64_EXP2_P3)
    p = _fma(p, r, _F64_EXP2_P2)
    p = _fma(p, r, _F64_EXP2_P1)
    p = _fma(p, r, _F64_EXP2_P0)
    return _sel(x == x, _scale_f64(_F64_ONE + r * p, ki), x)


_F64_EXPM1_Q0 = 0.5
_F64_EXPM1_Q1 = 0.16666666666666677
_F64_EXPM1_Q2 = 0.041666666666666685
_F64_EXPM1_Q3 = 0.00833333333332136
_F64_EXPM1_Q4 = 0.0013888888888869886
_F64_EXPM1_Q5 = 0.00019841269886929788
_F64_EXPM1_Q6 = 2.4801587363574985e-05
_F64_EXPM1_Q7 = 2.755724329783703e-06
_F64_EXPM1_Q8 = 2.7557232944356416e-07
_F64_EXPM1_Q9 = 2.5109386152757575e-08
_F64_EXPM1_Q10 = 2.092958941661334e-09
_F64_EXPM1_LO = -60.0  # expm1 == -1 in float64 below ~-37.4
_F64_EXPM1_TINY = 2.0**-54


@_JIT
def expm1_f64(x):
    """e**x - 1 in float64, accurate near 0."""
    x = np.float64(x)
    xc = _sel(x < _F64_EXP_HI, x, _F64_EXP_HI)
    xc = _sel(xc > _F64_EXPM1_LO, xc, _F64_EXPM1_LO)
    k = _rint(xc * _F64_LOG2E)
    ki = np.int32(k)
    rh = xc - k * _F64_LN2_HI
    rl = k * _F64_LN2_LO
    r = rh - rl
    # r's rounding error, folded back in below: k != 0 doubles (or more) p's error.
    c = (rh - r) - rl
    q = _fma(r, _F64_EXPM1_Q10, _F64_EXPM1_Q9)
    q = _fma(q, r, _F64_EXPM1_Q8)
    q = _fma(q, r, _F64_EXPM1_Q7)
    q = _fma(q, r, _F64_EXPM1_Q6)
    q = _fma(q, r, _F64_EXPM1_Q5)
    q = _fma(q, r, _F64_EXPM1_Q4)
    q = _fma(q, r, _F64_EXPM1_Q3)
    q = _fma(q, r, _F64_EXPM1_Q2)
    q = _fma(q, r, _F64_EXPM1_Q1)
    q = _fma(q, r, _F64_EXPM1_Q0)
    # expm1(r + c) = r + tail, tail ~= r*r*q + c * (1 + r); kept apart so that r, which is
    # exact, does not go through an extra rounding.
    tail = _fma(r * r, q, _fma(c, r, c))
    h = _f64_from_bits((ki + 1022) << 52)  # 2**(k-1), see expm1_f32
    y = _F64_TWO * _fma(h, tail, _fma(h, r, h - _F64_HALF))
    y = _sel(_fabs(x) < _F64_EXPM1_TINY, x, y)
    return _sel(x == x, y, x)


_F64_LOG_P0 = 0.6666666666666734
_F64_LOG_P1 = 0.3999999999941655
_F64_LOG_P2 = 0.2857142874206266
_F64_LOG_P3 = 0.22222198600279588
_F64_LOG_P4 = 0.18183563154803395
_F64_LOG_P5 = 0.15314075817111045
_F64_LOG_P6 = 0.14795735087648318
_F64_SQRT_HALF_BITS = 0x3FE6A09E667F3BCD
_F64_MANT_MASK = 0xFFFFFFFFFFFFF
_F64_MIN_NORMAL = 2.0**-1022
_F64_TWO54 = 2.0**54


@_JIT
def _log_parts_f64(x):
    """float64 twin of _log_parts_f32."""
    sub = x < _F64_MIN_NORMAL
    xs = _sel(sub, x * _F64_TWO54, x)
    ix = _bits(xs) - _F64_SQRT_HALF_BITS
    # int32 before the float conversion: AVX2 has no int64 -> float64 vector convert.
    e = np.float64(np.int32(ix >> 52)) - _sel(sub, 54.0, _F64_ZERO)
    m = _f64_from_bits((ix & _F64_MANT_MASK) + _F64_SQRT_HALF_BITS)
    f = m - _F64_ONE
    s = _div(f, _F64_TWO + f)
    z = s * s
    p = _fma(z, _F64_LOG_P6, _F64_LOG_P5)
    p = _fma(p, z, _F64_LOG_P4)
    p = _fma(p, z, _F64_LOG_P3)
    p = _fma(p, z, _F64_LOG_P2)
    p = _fma(p, z, _F64_LOG_P1)
    p = _fma(p, z, _F64_LOG_P0)
    hfsq = _F64_HALF * f * f
    return e, f, hfsq - s * (hfsq + z * p)


@_JIT
def _log_special_f64(x, y):
    y = _sel(x == _F64_INF, x, y)
    y = _sel(x == _F64_ZERO, -_F64_INF, y)
    y = _sel(x < _F64_ZERO, _F64_NAN, y)
    return _sel(x == x, y, x)


@_JIT
def log_f64(x):
    """Natural log in float64."""
    x = np.float64(x)
    e, f, tail = _log_parts_f64(x)
    y = e * _F64_LN2_HI - ((tail - e * _F64_LN2_LO) - f)
    return _log_special_f64(x, y)


_F64_LOG2E_HI = 1.4426950408889634
_F64_LOG2E_LO = 2.0355273740931033e-17


@_JIT
def log2_f64(x):
    """Base-2 log in float64."""
    x = np.float64(x)
    e, f, tail = _log_parts_f64(x)
    y = e + _fma(f, _F64_LOG2E_HI, f * _F64_LOG2E_LO - tail * _F64_LOG2E_HI)
    return _log_special_f64(x, y)


@_JIT
def log1p_f64(x):
    """log(1 + x) in float64, accurate near 0."""
    x = np.float64(x)
    u = _F64_ONE + x
    c = _div(x - (u - _F64_ONE), u)
    e, f, tail = _log_parts_f64(u)
    y = e * _F64_LN2_HI - ((tail - (e * _F64_LN2_LO + c)) - f)
    y = _sel(x == _F64_ZERO, x, y)
    return _log_special_f64(u, y)


_F64_TANH_P0 = -0.33333333333333315
_F64_TANH_P1 = 0.13333333333329958
_F64_TANH_P2 = -0.05396825396614743
_F64_TANH_P3 = 0.021869488470639516
_F64_TANH_P4 = -0.008863234337795333
_F64_TANH_P5 = 0.0035921142130313833
_F64_TANH_P6 = -0.001455727150273685
_F64_TANH_P7 = 0.000589456370516126
_F64_TANH_P8 = -0.00023702331029467342
_F64_TANH_P9 = 9.157714239543188e-05
_F64_TANH_P10 = -3.0204723359892436e-05
_F64_TANH_P11 = 6.04965772965812e-06
_F64_TANH_SMALL = 0.625
_F64_TANH_BIG = 20.0  # tanh == 1 in float64 beyond ~19.06


@_JIT
def tanh_f64(x):
    """Hyperbolic tangent in float64."""
    x = np.float64(x)
    a = _fabs(x)
    z = x * x
    p = _fma(z, _F64_TANH_P11, _F64_TANH_P10)
    p = _fma(p, z, _F64_TANH_P9)
    p = _fma(p, z, _F64_TANH_P8)
    p = _fma(p, z, _F64_TANH_P7)
    p = _fma(p, z, _F64_TANH_P6)
    p = _fma(p, z, _F64_TANH_P5)
    p = _fma(p, z, _F64_TANH_P4)
    p = _fma(p, z, _F64_TANH_P3)
    p = _fma(p, z, _F64_TANH_P2)
    p = _fma(p, z, _F64_TANH_P1)
    p = _fma(p, z, _F64_TANH_P0)
    small = _fma(x * z, p, x)
    ac = _sel(a < _F64_TANH_BIG, a, _F64_TANH_BIG)
    big = _F64_ONE - _div(_F64_TWO, _exp_core_f64(ac + ac) + _F64_ONE)
    y = _copysign(_sel(a < _F64_TANH_SMALL, small, big), x)  # copysign also keeps -0.0
    return _sel(x == x, y, x)


@_JIT
def sigmoid_f64(x):
    """1 / (1 + e**-x) in float64, without overflow for large |x|."""
    x = np.float64(x)
    na = -_fabs(x)
    e = _exp_core_f64(_sel(na > _F64_EXP_LO, na, _F64_EXP_LO))
    d = _F64_ONE + e
    dl = (_F64_ONE - d) + e  # exact rounding error of d
    q = _div(_sel(x >= _F64_ZERO, _F64_ONE, e), d)
    y = _fma(-(q * dl), _fma(-_F64_HALF, d, 1.5), q)  # see sigmoid_f32
    return _sel(x == x, y, x)


_F64_ERF_P0 = 0.1283791670955126
_F64_ERF_P1 = -0.3761263890318379
_F64_ERF_P2 = 0.11283791670955358
_F64_ERF_P3 = -0.026866170645086673
_F64_ERF_P4 = 0.00522397762464345
_F64_ERF_P5 = -0.0008548326964656224
_F64_ERF_P6 = 0.00012055330431130384
_F64_ERF_P7 = -1.4925578145888389e-05
_F64_ERF_P8 = 1.6460724120632053e-06
_F64_ERF_P9 = -1.634741945560234e-07
_F64_ERF_P10 = 1.4640741050539222e-08
_F64_ERF_P11 = -1.1301243849688006e-09
_F64_ERF_P12 = 5.839588804221755e-11
# erfc(x) = e**(-x*x) * R(x - c): piece A on [1, 2] (c = 1.5), piece B on [2, 6] (c = 4).
_F64_ERFCA_R0 = 0.32158541645431743
_F64_ERFCA_R1 = -0.16362291773255994
_F64_ERFCA_R2 = 0.07615103985551804
_F64_ERFCA_R3 = -0.03293090529950163
_F64_ERFCA_R4 = 0.013377340949988084
_F64_ERFCA_R5 = -0.005145957553826339
_F64_ERFCA_R6 = 0.0018861349608290912
_F64_ERFCA_R7 = -0.0006619299003264121
_F64_ERFCA_R8 = 0.00022330887683582378
_F64_ERFCA_R9 = -7.266102117658489e-05
_F64_ERFCA_R10 = 2.2871291256099508e-05
_F64_ERFCA_R11 = -6.96182794609564e-06
_F64_ERFCA_R12 = 2.0437377853723038e-06
_F64_ERFCA_R13 = -6.360453647184474e-07
_F64_ERFCA_R14 = 2.018110089035405e-07
_F64_ERFCB_R0 = 0.13699945764373958
_F64_ERFCB_R1 = -0.03238350527213271
_F64_ERFCB_R2 = 0.007465438294488054
_F64_ERFCB_R3 = -0.0016811750303488589
_F64_ERFCB_R4 = 0.0003703255568690199
_F64_ERFCB_R5 = -8.002834233899027e-05
_F64_ERFCB_R6 = 1.6719539496698e-05
_F64_ERFCB_R7 = -3.5998511586869904e-06
_F64_ERFCB_R8 = 8.58005870235882e-07
_F64_ERFCB_R9 = 1.6002845987811925e-07
_F64_ERFCB_R10 = 3.071619756259838e-07
_F64_ERFCB_R11 = 1.476470177984078e-07
_F64_ERFCB_R12 = 5.347474906988374e-08
_F64_ERFCB_R13 = 1.0356968414360267e-08
_F64_ERFCB_R14 = 1.0407331574780121e-09
_F64_ERF_SPLIT = 2.0
_F64_ERF_CA = 1.5
_F64_ERF_CB = 4.0
_F64_SIX = 6.0  # erf == 1 in float64 beyond ~5.92


@_JIT
def erf_f64(x):
    """Error function in float64."""
    x = np.float64(x)
    a = _fabs(x)
    z = x * x
    p = _fma(z, _F64_ERF_P12, _F64_ERF_P11)
    p = _fma(p, z, _F64_ERF_P10)
    p = _fma(p, z, _F64_ERF_P9)
    p = _fma(p, z, _F64_ERF_P8)
    p = _fma(p, z, _F64_ERF_P7)
    p = _fma(p, z, _F64_ERF_P6)
    p = _fma(p, z, _F64_ERF_P5)
    p = _fma(p, z, _F64_ERF_P4)
    p = _fma(p, z, _F64_ERF_P3)
    p = _fma(p, z, _F64_ERF_P2)
    p = _fma(p, z, _F64_ERF_P1)
    p = _fma(p, z, _F64_ERF_P0)
    small = _fma(x, p, x)
    ac = _sel(a < _F64_SIX, a, _F64_SIX)
    lo = ac < _F64_ERF_SPLIT
    # one Horner chain, coefficients picked per lane (cheaper than two chains and a select)
    t = ac - _sel(lo, _F64_ERF_CA, _F64_ERF_CB)
    r = _fma(t, _sel(lo, _F64_ERFCA_R14, _F64_ERFCB_R14), _sel(lo, _F64_ERFCA_R13, _F64_ERFCB_R13))
    r = _fma(r, t, _sel(lo, _F64_ERFCA_R12, _F64_ERFCB_R12))
    r = _fma(r, t, _sel(lo, _F64_ERFCA_R11, _F64_ERFCB_R11))
    r = _fma(r, t, _sel(lo, _F64_ERFCA_R10, _F64_ERFCB_R10))
    r = _fma(r, t, _sel(lo, _F64_ERFCA_R9, _F64_ERFCB_R9))
    r = _fma(r, t, _sel(lo, _F64_ERFCA_R8, _F64_ERFCB_R8))
    r = _fma(r, t, _sel(lo, _F64_ERFCA_R7, _F64_ERFCB_R7))
    r = _fma(r, t, _sel(lo, _F64_ERFCA_R6, _F64_ERFCB_R6))
    r = _fma(r, t, _sel(lo, _F64_ERFCA_R5, _F64_ERFCB_R5))
    r = _fma(r, t, _sel(lo, _F64_ERFCA_R4, _F64_ERFCB_R4))
    r = _fma(r, t, _sel(lo, _F64_ERFCA_R3, _F64_ERFCB_R3))
    r = _fma(r, t, _sel(lo, _F64_ERFCA_R2, _F64_ERFCB_R2))
    r = _fma(r, t, _sel(lo, _F64_ERFCA_R1, _F64_ERFCB_R1))
    r = _fma(r, t, _sel(lo, _F64_ERFCA_R0, _F64_ERFCB_R0))
    # x*x = sq + sq_lo exactly (when fused); e**-(sq + sq_lo) ~= e**-sq * (1 - sq_lo).
    sq = ac * ac
    sq_lo = _fma(ac, ac, -sq)
    er = _exp_core_f64(-sq) * r
    big = _F64_ONE - _fma(-er, sq_lo, er)
    y = _sel(a < _F64_ONE, small, _copysign(big, x))
    return _sel(x == x, y, x)


_F64_LOG10_2_HI = 0.3010299956658855  # 32 significant bits: e * hi is exact
_F64_LOG10_2_LO = -1.9043128467164274e-12
_F64_LOG10E_HI = 0.4342944819032518
_F64_LOG10E_LO = 1.098319650216765e-17


@_JIT
def log10_f64(x):
    """Base-10 log in float64."""
    x = np.float64(x)
    e, f, tail = _log_parts_f64(x)
    lf = _fma(f, _F64_LOG10E_HI, f * _F64_LOG10E_LO - tail * _F64_LOG10E_HI)
    y = e * _F64_LOG10_2_HI + (e * _F64_LOG10_2_LO + lf)
    return _log_special_f64(x, y)


_F64_SINH_P0 = 0.16666666666666669
_F64_SINH_P1 = 0.008333333333332912
_F64_SINH_P2 = 0.00019841269841593573
_F64_SINH_P3 = 2.7557319106614384e-06
_F64_SINH_P4 = 2.5052131039465922e-08
_F64_SINH_P5 = 1.6056654409517449e-10
_F64_SINH_P6 = 7.776795862436498e-13
_F64_COSH_HI = 711.0  # cosh, sinh overflow beyond ~710.48


@_JIT
def _exp_pm_half_f64(a, sign):
    """float64 twin of _exp_pm_half_f32 (the cap: 2**-1000 is still normal)."""
    p, k = _exp_parts_f64(a)
    kc = _sel(k < 500, k, np.int32(500))
    t = _div(_scale_f64(sign, -2 * kc), _F64_ONE + p)
    return _scale_f64(_F64_ONE + (p + t), k - 1)


@_JIT
def sinh_f64(x):
    """Hyperbolic sine in float64."""
    x = np.float64(x)
    a = _fabs(x)
    z = x * x
    p = _fma(z, _F64_SINH_P6, _F64_SINH_P5)
    p = _fma(p, z, _F64_SINH_P4)
    p = _fma(p, z, _F64_SINH_P3)
    p = _fma(p, z, _F64_SINH_P2)
    p = _fma(p, z, _F64_SINH_P1)
    p = _fma(p, z, _F64_SINH_P0)
    small = _fma(x * z, p, x)
    big = _exp_pm_half_f64(_sel(a < _F64_COSH_HI, a, _F64_COSH_HI), -_F64_ONE)
    y = _copysign(_sel(a < _F64_ONE, small, big), x)
    return _sel(x == x, y, x)


@_JIT
def cosh_f64(x):
    """Hyperbolic cosine in float64."""
    x = np.float64(x)
    a = _fabs(x)
    y = _exp_pm_half_f64(_sel(a < _F64_COSH_HI, a, _F64_COSH_HI), _F64_ONE)
    return _sel(x == x, y, x)


_F64_ATAN_P0 = -0.3333333333333292
_F64_ATAN_P1 = 0.1999999999987375
_F64_ATAN_P2 = -0.1428571427226683
_F64_ATAN_P3 = 0.11111110395256066
_F64_ATAN_P4 = -0.0909088687970278
_F64_ATAN_P5 = 0.07691872296805957
_F64_ATAN_P6 = -0.06661034617219225
_F64_ATAN_P7 = 0.05833326807965895
_F64_ATAN_P8 = -0.04975925070939838
_F64_ATAN_P9 = 0.03651050673738813
_F64_ATAN_P10 = -0.016265726269968462
_F64_ATAN05_HI = 0.4636476090008061
_F64_ATAN05_LO = 2.2698777452961687e-17
_F64_ATAN15_HI = 0.982793723247329
_F64_ATAN15_LO = 1.3903311031230998e-17
_F64_PI_HI = 3.141592653589793
_F64_PI_LO = 1.2246467991473532e-16
_F64_PI_2_HI = 1.5707963267948966
_F64_PI_2_LO = 6.123233995736766e-17
_F64_PI_4_HI = 0.7853981633974483
_F64_PI_4_LO = 3.061616997868383e-17


@_JIT
def _atan_pos_f64(a):
    """atan(a) for a >= 0 (or NaN); reduction as in _atan_pos_f32."""
    i1 = a > 0.4375
    i2 = a > 0.6875
    i3 = a > 1.1875
    i4 = a > 2.4375
    c = _sel(i3, 1.5, _sel(i2, _F64_ONE, _sel(i1, _F64_HALF, _F64_ZERO)))
    num = _sel(i4, -_F64_ONE, a - c)
    den = _sel(i4, a, _fma(a, c, _F64_ONE))
    t = _div(num, den)
    z = t * t
    p = _fma(z, _F64_ATAN_P10, _F64_ATAN_P9)
    p = _fma(p, z, _F64_ATAN_P8)
    p = _fma(p, z, _F64_ATAN_P7)
    p = _fma(p, z, _F64_ATAN_P6)
    p = _fma(p, z, _F64_ATAN_P5)
    p = _fma(p, z, _F64_ATAN_P4)
    p = _fma(p, z, _F64_ATAN_P3)
    p = _fma(p, z, _F64_ATAN_P2)
    p = _fma(p, z, _F64_ATAN_P1)
    p = _fma(p, z, _F64_ATAN_P0)
    hi = _sel(i3, _F64_ATAN15_HI, _sel(i2, _F64_PI_4_HI, _sel(i1, _F64_ATAN05_HI, _F64_ZERO)))
    lo = _sel(i3, _F64_ATAN15_LO, _sel(i2, _F64_PI_4_LO, _sel(i1, _F64_ATAN05_LO, _F64_ZERO)))
    hi = _sel(i4, _F64_PI_2_HI, hi)
    lo = _sel(i4, _F64_PI_2_LO, lo)
    return hi + (t + _fma(t * z, p, lo))


@_JIT
def atan_f64(x):
    """Arctangent in float64."""
    x = np.float64(x)
    return _sel(x == x, _copysign(_atan_pos_f64(_fabs(x)), x), x)


@_JIT
def atan2_f64(y, x):
    """Arctangent of y / x in float64 (numpy.arctan2 semantics); see atan2_f32."""
    y = np.float64(y)
    x = np.float64(x)
    ax = _fabs(x)
    ay = _fabs(y)
    swap = ay > ax
    mx = _sel(swap, ay, ax)
    mn = _sel(swap, ax, ay)
    q = _div(mn, mx)
    q = _sel(mx == _F64_ZERO, _F64_ZERO, q)
    q = _sel(mn == _F64_INF, _F64_ONE, q)
    a = _atan_pos_f64(q)
    neg = _copysign(_F64_ONE, x) < _F64_ZERO
    hi = _sel(swap, _F64_PI_2_HI, _sel(neg, _F64_PI_HI, _F64_ZERO))
    lo = _sel(swap, _F64_PI_2_LO, _sel(neg, _F64_PI_LO, _F64_ZERO))
    r = _copysign(hi + (_sel(swap == neg, a, -a) + lo), y)
    return _sel((x == x) & (y == y), r, x + y)


_F64_ASIN_P0 = 0.1666666666666676
_F64_ASIN_P1 = 0.07499999999970867
_F64_ASIN_P2 = 0.04464285717455934
_F64_ASIN_P3 = 0.030381942709940487
_F64_ASIN_P4 = 0.022372214933982695
_F64_ASIN_P5 = 0.01735161288316649
_F64_ASIN_P6 = 0.013980811003557294
_F64_ASIN_P7 = 0.011398984489301529
_F64_ASIN_P8 = 0.010779874989633247
_F64_ASIN_P9 = 0.003707748071652038
_F64_ASIN_P10 = 0.021704373030044893
_F64_ASIN_P11 = -0.02099494134367036
_F64_ASIN_P12 = 0.032626173588691514


@_JIT
def _asin_parts_f64(x):
    """float64 twin of _asin_parts_f32 (u cut to 21 significant bits)."""
    a = _fabs(x)
    small = a <= _F64_HALF
    w = (_F64_ONE - a) * _F64_HALF  # exact for |x| >= 1/2
    s = _sqrt(w)
    sh = _f64_from_bits(_bits(s) & -0x100000000)
    # sqrt(w) - sh from the exact w - sh*sh; 0 when w = 0 (|x| = 1) avoids 0/0.
    c = _sel(w > _F64_ZERO, _div(w - sh * sh, s + sh), _F64_ZERO)
    v = _sel(small, x, s)
    z = _sel(small, x * x, w)
    p = _fma(z, _F64_ASIN_P12, _F64_ASIN_P11)
    p = _fma(p, z, _F64_ASIN_P10)
    p = _fma(p, z, _F64_ASIN_P9)
    p = _fma(p, z, _F64_ASIN_P8)
    p = _fma(p, z, _F64_ASIN_P7)
    p = _fma(p, z, _F64_ASIN_P6)
    p = _fma(p, z, _F64_ASIN_P5)
    p = _fma(p, z, _F64_ASIN_P4)
    p = _fma(p, z, _F64_ASIN_P3)
    p = _fma(p, z, _F64_ASIN_P2)
    p = _fma(p, z, _F64_ASIN_P1)
    p = _fma(p, z, _F64_ASIN_P0)
    tail = _fma(v * z, p, _sel(small, _F64_ZERO, c))
    return small, _sel(small, x, sh), tail


@_JIT
def asin_f64(x):
    """Arcsine in float64 (NaN outside [-1, 1])."""
    x = np.float64(x)
    small, u, tail = _asin_parts_f64(x)
    big = (_F64_PI_2_HI - (u + u)) + (_F64_PI_2_LO - (tail + tail))
    y = _copysign(_sel(small, u + tail, big), x)  # copysign also keeps -0.0
    return _sel(x == x, y, x)


@_JIT
def acos_f64(x):
    """Arccosine in float64 (NaN outside [-1, 1])."""
    x = np.float64(x)
    small, u, tail = _asin_parts_f64(x)
    y_small = _F64_PI_2_HI - (u + (tail - _F64_PI_2_LO))
    y_pos = (u + u) + (tail + tail)
    y_neg = (_F64_PI_HI - (u + u)) + (_F64_PI_LO - (tail + tail))
    y = _sel(small, y_small, _sel(x > _F64_ZERO, y_pos, y_neg))
    return _sel(x == x, y, x)


# ---------------------------------------------------------------------------------------------
# registry

# Max error in ulp per function, (float32, float64): the table in the module docstring.
_BOUNDS = {
    "exp": (1, 1),
    "exp2": (1, 1),
    "expm1": (1, 1),
    "log": (1, 1),
    "log2": (2, 2),
    "log10": (2, 2),
    "log1p": (1, 1),
    "tanh": (1, 1),
    "sigmoid": (2, 2),
    "erf": (1, 1),
    "sinh": (1, 1),
    "cosh": (1, 1),
    "atan": (1, 1),
    "asin": (1, 1),
    "acos": (1, 1),
    "atan2": (1, 2),
}

VECTOR_MATH: dict[tuple[str, str], object] = {
    (name, prec): globals()[f"{name}_{prec}"] for name in _BOUNDS for prec in ("f32", "f64")
}

MAX_ULP: dict[tuple[str, str], int] = {
    (name, prec): b[i] for name, b in _BOUNDS.items() for i, prec in enumerate(("f32", "f64"))
}
