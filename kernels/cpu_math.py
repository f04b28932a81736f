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
* Each function is written once, in ``define``, and built for each precision from its table of
  constants (``math_constants.F32`` / ``F64``; the LLVM-level helpers are in ``llvm_ops``).
  Where the two precisions need different steps (expm1's rounding term, erf's tail pieces) the
  table says which.
* ``VECTOR_MATH[(name, "f32" | "f64")]`` is the function; ``MAX_ULP`` has the same keys and holds
  the error bounds of the table below. Callers fall back to ``math`` for any name missing from
  ``VECTOR_MATH``.
* sin, cos and tan are right only for |x| <= 1e6 (and for inf and NaN): beyond, the reduction
  by pi/2 would need more bits of pi than the branch-free one here (a Payne-Hanek reduction is
  not written). ``GUARDED`` names them with the check a caller must make,
  ``trig_in_range_<prec>(x)``; fusejit's kernels make it over the whole loop and run the loop
  again with libm when any argument was out of range. float32 computes in float64 (correctly
  rounded on every input tested); float64 carries the reduced argument in two doubles.
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
    sin       1    1
    cos       1    1
    tan       1    3
    ========  ===  ===

Tested inputs, per function. float32: every 7th bit pattern of all finite floats of both signs
(6.1e8 inputs covering the whole range, subnormals included). float64: 8e6 inputs, 2e6 each of
random bit patterns (all exponents, both signs), log-uniform magnitudes in [5e-324, 8e307] with
random signs, uniform in [-5, 5] and uniform in [-0.25, 0.25] (for asin and acos: [-1, 1] and
[-0.05, 0.05]). sin, cos, tan (float32): every 37th float32 of |x| <= 1e6, and the float32
values nearest each multiple of pi/2 there with their neighbours (6.9e7 inputs); float64: 4e6
uniform in [-1e6, 1e6] and [-10, 10], 1e6 log-uniform magnitudes in [1e-300, 1e6], and the
doubles nearest each multiple of pi/2 below 1e6 with their neighbours (1.2e7 inputs). atan2, both
precisions: 6e6 pairs (random bit patterns, uniform in [-3, 3], near-diagonal |y| ~ |x|) plus
all pairs of +-0, +-inf, NaN, +-1, the smallest subnormal, the largest finite value.

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

import math
from types import SimpleNamespace

import llvmlite.binding as llvm
import numba
import numpy as np
from fusejit.kernels.cpu_math_table import _BOUNDS, GUARDED_NAMES
from fusejit.kernels.llvm_ops import (
    bits,
    copysign,
    div,
    f32_from_bits,
    f32_to_half,
    fabs,
    fma,
    half_to_f32,
    poly,
    poly_sel,
    rint,
    sel,
    sqrt,
)
from fusejit.kernels.math_constants import F32, F64
from numba.core import config

__all__ = [
    "MAX_ULP",
    "VECTOR_MATH",
    "GUARDED",
    "d2h",
    "define",
    "f2h",
    "h2f",
    "round_h",
    "sin_f32",
    "sin_f64",
    "cos_f32",
    "cos_f64",
    "tan_f32",
    "tan_f64",
    "trig_in_range_f32",
    "trig_in_range_f64",
    "erfinv_f32",
    "erfinv_f64",
    *[f"{name}_{prec}" for name in ("acos", "asin", "atan2", "atan", "cosh", "erf", "exp2",
                                    "exp", "expm1", "log10", "log1p", "log2", "log", "sigmoid",
                                    "sinh", "tanh") for prec in ("f32", "f64")],
]  # fmt: skip

_JIT = numba.njit(inline="always")


def _exp_family(K) -> SimpleNamespace:
    FT, ONE, TWO, HALF = K.FT, K.ONE, K.TWO, K.HALF
    LOG2E, LN2_HI, LN2_LO, EXP_Q = K.LOG2E, K.LN2_HI, K.LN2_LO, K.EXP_Q
    EXP_HI, EXP_LO, EXP2_P, EXP2_HI, EXP2_LO = K.EXP_HI, K.EXP_LO, K.EXP2_P, K.EXP2_HI, K.EXP2_LO
    EXPM1_Q, EXPM1_LO, EXPM1_TINY = K.EXPM1_Q, K.EXPM1_LO, K.EXPM1_TINY
    from_bits, BIAS, MANT = K.from_bits, K.EXP_BIAS, K.MANT_BITS

    @_JIT
    def exp_parts(x):
        """(p, k) with e**x = (1 + p) * 2**k, |p| < 0.42, for |x| up to 1.1 times the
        overflow threshold (no NaN/inf)."""
        k = rint(x * LOG2E)
        r = x - k * LN2_HI
        r = r - k * LN2_LO
        return fma(r * r, poly(r, EXP_Q), r), np.int32(k)

    @_JIT
    def scale(y, k):
        """y * 2**k for k from the subnormal range to just past overflow, with a single
        rounding (gradual underflow kept)."""
        # Two normal powers of two: y * s1 is exact, the second product rounds once.
        k1 = k >> 1
        s1 = from_bits((k1 + BIAS) << MANT)
        s2 = from_bits((k - k1 + BIAS) << MANT)
        return (y * s1) * s2

    @_JIT
    def exp_core(x):
        """e**x for x already clamped to [EXP_LO, EXP_HI] (no NaN handling)."""
        p, k = exp_parts(x)
        return scale(ONE + p, k)

    @_JIT
    def exp_normal(x):
        """e**x for x whose result is a normal number, as callers with a bounded argument
        know (tanh, erf): the same value as ``exp_core``, scaled by one exact product instead
        of two (both are exact for a normal result), a fifth fewer instructions."""
        p, k = exp_parts(x)
        return (ONE + p) * from_bits((k + BIAS) << MANT)

    @_JIT
    def exp(x):
        x = FT(x)
        xc = sel(x < EXP_HI, x, EXP_HI)
        xc = sel(xc > EXP_LO, xc, EXP_LO)
        return sel(x == x, exp_core(xc), x)

    @_JIT
    def exp2(x):
        x = FT(x)
        xc = sel(x < EXP2_HI, x, EXP2_HI)
        xc = sel(xc > EXP2_LO, xc, EXP2_LO)
        k = rint(xc)
        ki = np.int32(k)
        r = xc - k  # exact
        return sel(x == x, scale(ONE + r * poly(r, EXP2_P), ki), x)

    if K.EXPM1_ROUNDING_TERM:

        @_JIT
        def expm1_reduce(xc, k):
            """(r, tail): xc - k * ln2 = r + c with r's rounding error c carried into the tail
            expm1(r + c) - r ~= r*r*Q(r) + c * (1 + r); r itself takes no extra rounding."""
            rh = xc - k * LN2_HI
            rl = k * LN2_LO
            r = rh - rl
            c = (rh - r) - rl
            return r, fma(r * r, poly(r, EXPM1_Q), fma(c, r, c))

    else:

        @_JIT
        def expm1_reduce(xc, k):
            """(r, tail) with xc - k * ln2 ~= r and expm1(r) - r ~= r*r*Q(r)."""
            r = xc - k * LN2_HI
            r = r - k * LN2_LO
            return r, (r * r) * poly(r, EXPM1_Q)

    @_JIT
    def expm1(x):
        x = FT(x)
        xc = sel(x < EXP_HI, x, EXP_HI)
        xc = sel(xc > EXPM1_LO, xc, EXPM1_LO)
        k = rint(xc * LOG2E)
        ki = np.int32(k)
        r, tail = expm1_reduce(xc, k)
        # e**x - 1 = 2 * (h * (r + tail) + (h - 1/2)) with h = 2**(k-1): h - 1/2 is exact for
        # small |k|, h * r + (h - 1/2) is exact when it cancels (k = 1, r < 0), the doubling is
        # exact, and the largest k needs no unrepresentable 2**k.
        h = from_bits((ki + (BIAS - 1)) << MANT)
        y = TWO * fma(h, tail, fma(h, r, h - HALF))
        # tiny |x|: e**x - 1 rounds to x; also keeps -0.0 and subnormals exact.
        y = sel(fabs(x) < EXPM1_TINY, x, y)
        return sel(x == x, y, x)

    return SimpleNamespace(exp_parts=exp_parts, scale=scale, exp_core=exp_core,
                           exp_normal=exp_normal, exp=exp, exp2=exp2, expm1=expm1)  # fmt: skip


def _log_family(K) -> SimpleNamespace:
    FT, ZERO, HALF, ONE, TWO, INF, NAN = K.FT, K.ZERO, K.HALF, K.ONE, K.TWO, K.INF, K.NAN
    LOG_P, SQRT_HALF_BITS, MANT_MASK, MANT = K.LOG_P, K.SQRT_HALF_BITS, K.MANT_MASK, K.MANT_BITS
    MIN_NORMAL, SUB_SCALE, SUB_EXP, from_bits = K.MIN_NORMAL, K.SUB_SCALE, K.SUB_EXP, K.from_bits
    LN2_HI, LN2_LO, LOG2E, LOG2E_HI, LOG2E_LO = K.LN2_HI, K.LN2_LO, K.LOG2E, K.LOG2E_HI, K.LOG2E_LO
    LOG10_2_HI, LOG10_2_LO = K.LOG10_2_HI, K.LOG10_2_LO
    LOG10E_HI, LOG10E_LO = K.LOG10E_HI, K.LOG10E_LO

    @_JIT
    def log_parts(x):
        """For finite x > 0 return (e, f, tail) with log(x) = e*ln2 + f - tail (tail small)."""
        sub = x < MIN_NORMAL
        xs = sel(sub, x * SUB_SCALE, x)  # subnormals: scale exactly into the normal range
        ix = bits(xs) - SQRT_HALF_BITS
        # int32 before the float conversion: AVX2 has no int64 -> float64 vector convert.
        e = FT(np.int32(ix >> MANT)) - sel(sub, SUB_EXP, ZERO)
        # mantissa m in [sqrt(1/2), sqrt(2)); f = m - 1 is exact.
        m = from_bits((ix & MANT_MASK) + SQRT_HALF_BITS)
        f = m - ONE
        s = div(f, TWO + f)
        z = s * s
        p = poly(z, LOG_P)
        hfsq = HALF * f * f
        return e, f, hfsq - s * (hfsq + z * p)

    @_JIT
    def log_special(x, y):
        """Apply log's special cases: log(+inf)=inf, log(+-0)=-inf, log(x<0)=nan, nan->nan."""
        y = sel(x == INF, x, y)
        y = sel(x == ZERO, -INF, y)
        y = sel(x < ZERO, NAN, y)
        return sel(x == x, y, x)

    @_JIT
    def log(x):
        x = FT(x)
        e, f, tail = log_parts(x)
        y = e * LN2_HI - ((tail - e * LN2_LO) - f)
        return log_special(x, y)

    @_JIT
    def log2(x):
        x = FT(x)
        e, f, tail = log_parts(x)
        # f is exact, so only the small tail and the log2(e) split carry rounding error.
        y = e + fma(f, LOG2E_HI, f * LOG2E_LO - tail * LOG2E)
        return log_special(x, y)

    @_JIT
    def log10(x):
        x = FT(x)
        e, f, tail = log_parts(x)
        lf = fma(f, LOG10E_HI, f * LOG10E_LO - tail * LOG10E_HI)
        y = e * LOG10_2_HI + (e * LOG10_2_LO + lf)
        return log_special(x, y)

    @_JIT
    def log1p(x):
        x = FT(x)
        u = ONE + x
        # u = 1 + x rounded; log(1 + x) = log(u) + log(1 + c/u) ~= log(u) + c/u, where
        # c = x - (u - 1) is the rounding error of u.
        c = div(x - (u - ONE), u)
        e, f, tail = log_parts(u)
        y = e * LN2_HI - ((tail - (e * LN2_LO + c)) - f)
        y = sel(x == ZERO, x, y)  # keeps -0.0
        return log_special(u, y)

    return SimpleNamespace(log=log, log2=log2, log10=log10, log1p=log1p)


def _hyperbolic_family(K, ex: SimpleNamespace) -> SimpleNamespace:
    FT, ZERO, HALF, ONE, TWO, ONE_HALF = K.FT, K.ZERO, K.HALF, K.ONE, K.TWO, K.ONE_HALF
    TANH_P, TANH_SMALL, TANH_BIG, EXP_LO = K.TANH_P, K.TANH_SMALL, K.TANH_BIG, K.EXP_LO
    ERF_P, ERF_HI, SINH_P, COSH_HI, CAP = K.ERF_P, K.ERF_HI, K.SINH_P, K.COSH_HI, K.PM_HALF_CAP
    exp_core, exp_parts, scale, exp_normal = ex.exp_core, ex.exp_parts, ex.scale, ex.exp_normal

    @_JIT
    def tanh(x):
        x = FT(x)
        a = fabs(x)
        # |x| < TANH_SMALL: odd polynomial x + x**3 * P(x**2).
        z = x * x
        small = fma(x * z, poly(z, TANH_P), x)
        # otherwise 1 - 2 / (e**(2|x|) + 1); from TANH_SMALL on the subtraction loses at most
        # a bit.
        ac = sel(a < TANH_BIG, a, TANH_BIG)
        big = ONE - div(TWO, exp_normal(ac + ac) + ONE)  # (e**(2 * TANH_BIG) is normal)
        y = copysign(sel(a < TANH_SMALL, small, big), x)  # copysign also keeps -0.0
        return sel(x == x, y, x)

    @_JIT
    def sigmoid(x):
        """1 / (1 + e**-x), without overflow for large |x|."""
        x = FT(x)
        na = -fabs(x)
        e = exp_core(sel(na > EXP_LO, na, EXP_LO))
        # x >= 0: 1 / (1 + e**-x); x < 0: e**x / (1 + e**x). Both divide by d = 1 + e in [1, 2].
        d = ONE + e
        dl = (ONE - d) + e  # exact rounding error of d
        q = div(sel(x >= ZERO, ONE, e), d)
        # q / (1 + dl/d) ~= q - q * dl / d; 1.5 - d/2 approximates 1/d well enough for a term
        # that is below one ulp, so the rounding of d costs (almost) nothing.
        return sel(x == x, fma(-(q * dl), fma(-HALF, d, ONE_HALF), q), x)

    if K.ERFC_PIECES == 1:
        R, MID = K.ERFC_R, K.ERFC_MID

        @_JIT
        def erf_tail(ac):
            """erf(ac) for 1 <= ac <= ERF_HI: 1 - e**(-ac*ac) * R(ac - MID)."""
            return ONE - exp_normal(-(ac * ac)) * poly(ac - MID, R)  # (e**-(ERF_HI**2): normal)

    else:
        RA, RB, SPLIT, CA, CB = K.ERFC_RA, K.ERFC_RB, K.ERFC_SPLIT, K.ERFC_CA, K.ERFC_CB

        @_JIT
        def erf_tail(ac):
            """erf(ac) for 1 <= ac <= ERF_HI: 1 - e**(-ac*ac) * R(ac - c), R and c of the piece
            ac falls in, with ac*ac split into sq + sq_lo exactly (when fused):
            e**-(sq + sq_lo) ~= e**-sq * (1 - sq_lo)."""
            lo = ac < SPLIT
            r = poly_sel(ac - sel(lo, CA, CB), lo, RA, RB)
            sq = ac * ac
            sq_lo = fma(ac, ac, -sq)
            er = exp_normal(-sq) * r  # (e**-(ERF_HI**2) is normal)
            return ONE - fma(-er, sq_lo, er)

    @_JIT
    def erf(x):
        x = FT(x)
        a = fabs(x)
        # |x| < 1: x + x * P(x*x) (P(0) = 2/sqrt(pi) - 1 keeps the leading term exact)
        small = fma(x, poly(x * x, ERF_P), x)
        big = erf_tail(sel(a < ERF_HI, a, ERF_HI))
        y = sel(a < ONE, small, copysign(big, x))
        return sel(x == x, y, x)

    @_JIT
    def exp_pm_half(a, sign):
        """(e**a + sign * e**-a) / 2 for a in [0, COSH_HI]."""
        # With e**a = (1 + p) * 2**k this is 2**(k-1) * (1 + (p + sign * 2**(-2k) / (1 + p))):
        # summing before the exact scaling rounds once instead of three times. For k > CAP the
        # second term is far below an ulp, so its exponent is capped to stay representable.
        p, k = exp_parts(a)
        kc = sel(k < CAP, k, np.int32(CAP))
        t = div(scale(sign, -2 * kc), ONE + p)
        return scale(ONE + (p + t), k - 1)

    @_JIT
    def sinh(x):
        x = FT(x)
        a = fabs(x)
        z = x * x
        small = fma(x * z, poly(z, SINH_P), x)  # |x| < 1, where the exp form would cancel
        big = exp_pm_half(sel(a < COSH_HI, a, COSH_HI), -ONE)
        y = copysign(sel(a < ONE, small, big), x)
        return sel(x == x, y, x)

    @_JIT
    def cosh(x):
        x = FT(x)
        a = fabs(x)
        y = exp_pm_half(sel(a < COSH_HI, a, COSH_HI), ONE)
        return sel(x == x, y, x)

    return SimpleNamespace(tanh=tanh, sigmoid=sigmoid, erf=erf, sinh=sinh, cosh=cosh)


def _inverse_trig_family(K) -> SimpleNamespace:
    FT, ZERO, HALF, ONE, ONE_HALF, INF = K.FT, K.ZERO, K.HALF, K.ONE, K.ONE_HALF, K.INF
    ATAN_P, ASIN_P, CUT_MASK, from_bits = K.ATAN_P, K.ASIN_P, K.ASIN_CUT_MASK, K.from_bits
    C1, C2, C3, C4 = K.ATAN_CUTS
    ATAN05_HI, ATAN05_LO, ATAN15_HI, ATAN15_LO = K.ATAN05_HI, K.ATAN05_LO, K.ATAN15_HI, K.ATAN15_LO
    PI_HI, PI_LO, PI_2_HI, PI_2_LO = K.PI_HI, K.PI_LO, K.PI_2_HI, K.PI_2_LO
    PI_4_HI, PI_4_LO = K.PI_4_HI, K.PI_4_LO

    @_JIT
    def atan_pos(a):
        """atan(a) for a >= 0 (or NaN)."""
        # atan(t) = t + t**3 * P(t*t) for |t| <= 7/16. Larger arguments use
        # atan(a) = atan(c) + atan((a - c) / (1 + a*c)) for c = 1/2, 1, 3/2 and
        # pi/2 - atan(1/a) above 39/16, so |t| stays below 7/16 and the offset never cancels
        # against atan(t).
        i1 = a > C1
        i2 = a > C2
        i3 = a > C3
        i4 = a > C4
        c = sel(i3, ONE_HALF, sel(i2, ONE, sel(i1, HALF, ZERO)))
        num = sel(i4, -ONE, a - c)  # a - c is exact on each interval
        den = sel(i4, a, fma(a, c, ONE))
        t = div(num, den)
        z = t * t
        p = poly(z, ATAN_P)
        hi = sel(i3, ATAN15_HI, sel(i2, PI_4_HI, sel(i1, ATAN05_HI, ZERO)))
        lo = sel(i3, ATAN15_LO, sel(i2, PI_4_LO, sel(i1, ATAN05_LO, ZERO)))
        hi = sel(i4, PI_2_HI, hi)
        lo = sel(i4, PI_2_LO, lo)
        return hi + (t + fma(t * z, p, lo))

    @_JIT
    def atan(x):
        x = FT(x)
        return sel(x == x, copysign(atan_pos(fabs(x)), x), x)

    @_JIT
    def atan2(y, x):
        """Arctangent of y / x, quadrant from the signs (numpy.arctan2 semantics)."""
        y = FT(y)
        x = FT(x)
        ax = fabs(x)
        ay = fabs(y)
        swap = ay > ax
        mx = sel(swap, ay, ax)
        mn = sel(swap, ax, ay)
        # ratio in [0, 1]; 0/0 (both zero) -> 0 and inf/inf (both infinite) -> 1.
        q = div(mn, mx)
        q = sel(mx == ZERO, ZERO, q)
        q = sel(mn == INF, ONE, q)
        # |y| > |x|: pi/2 - a; x < 0 (including -0.0): pi - a; both: pi/2 + a. One offset and
        # one signed a, so the result is rounded once (low parts of pi/2, pi folded in first).
        a = atan_pos(q)
        neg = copysign(ONE, x) < ZERO
        hi = sel(swap, PI_2_HI, sel(neg, PI_HI, ZERO))
        lo = sel(swap, PI_2_LO, sel(neg, PI_LO, ZERO))
        r = copysign(hi + (sel(swap == neg, a, -a) + lo), y)
        return sel((x == x) & (y == y), r, x + y)

    @_JIT
    def asin_parts(x):
        """(small, u, tail) with small = |x| <= 1/2 and asin(v) = u + tail, where v = x when
        small, else v = sqrt((1 - |x|) / 2) and u is v cut to half its significant bits (or
        fewer): then u * u is exact, and so are pi/2 - 2*u and pi - 2*u in the callers, which
        leaves one rounding at the end."""
        a = fabs(x)
        small = a <= HALF
        w = (ONE - a) * HALF  # exact for |x| >= 1/2
        s = sqrt(w)
        sh = from_bits(bits(s) & CUT_MASK)
        # sqrt(w) - sh from the exact w - sh*sh; 0 when w = 0 (|x| = 1) avoids 0/0.
        c = sel(w > ZERO, div(w - sh * sh, s + sh), ZERO)
        v = sel(small, x, s)
        z = sel(small, x * x, w)
        p = poly(z, ASIN_P)
        tail = fma(v * z, p, sel(small, ZERO, c))
        return small, sel(small, x, sh), tail

    @_JIT
    def asin(x):
        x = FT(x)
        small, u, tail = asin_parts(x)
        big = (PI_2_HI - (u + u)) + (PI_2_LO - (tail + tail))
        y = copysign(sel(small, u + tail, big), x)  # copysign also keeps -0.0
        return sel(x == x, y, x)

    @_JIT
    def acos(x):
        x = FT(x)
        small, u, tail = asin_parts(x)
        y_small = PI_2_HI - (u + (tail - PI_2_LO))
        y_pos = (u + u) + (tail + tail)
        y_neg = (PI_HI - (u + u)) + (PI_LO - (tail + tail))
        y = sel(small, y_small, sel(x > ZERO, y_pos, y_neg))
        return sel(x == x, y, x)

    return SimpleNamespace(atan=atan, atan2=atan2, asin=asin, acos=acos)


@_JIT
def _two_sum(a, b):
    """(s, e) with s = a + b rounded and a + b = s + e exactly."""
    s = a + b
    bb = s - a
    return s, (a - (s - bb)) + (b - bb)


def _trig_family(K) -> SimpleNamespace:
    """sin, cos, tan for |x| <= K.TRIG_MAX (and NaN for inf and NaN); ``trig_in_range(x)``
    tells whether x is such an argument. float32 computes in float64; float64 carries the
    reduced argument in two doubles."""
    FT, ZERO, INF, MAX = K.FT, K.ZERO, K.INF, K.TRIG_MAX
    TWO_OVER_PI, SIN_P, COS_P = K.TWO_OVER_PI, K.SIN_P, K.COS_P
    BIG_K = 2.0**30

    if K.TRIG == "float64":
        PIO2_HI, PIO2_LO = K.PIO2_HI, K.PIO2_LO

        @_JIT
        def sin_cos(x, k):
            """sin and cos of r = x - k * pi/2, in float64."""
            xd = np.float64(x)
            # |k| < 2**20: k * PIO2_HI is exact, and so is xd - k * PIO2_HI (the two are within
            # a factor of two of each other when k != 0)
            r = (xd - k * PIO2_HI) - k * PIO2_LO
            z = r * r
            return fma(r * z, poly(z, SIN_P), r), fma(z, poly(z, COS_P), 1.0)

    else:
        P1, P2, P3, P4 = K.PIO2

        @_JIT
        def sin_cos(x, k):
            """sin and cos of r = x - k * pi/2, with r carried as r_hi + r_lo."""
            t = x - k * P1  # exact (k * P1 has at most 53 bits; Sterbenz for the difference)
            s1, e1 = _two_sum(t, -(k * P2))
            s2, e2 = _two_sum(s1, -(k * P3))
            lo = (e1 + e2) - k * P4
            r = s2 + lo
            r_lo = lo - (r - s2)
            z = r * r
            # sin(r + r_lo) ~= sin(r) + r_lo * (1 - z/2); cos(r + r_lo) ~= cos(r) - r * r_lo
            s = r + fma(r * z, poly(z, SIN_P), r_lo * (1.0 - 0.5 * z))
            hz = 0.5 * z
            w = 1.0 - hz
            c = w + (((1.0 - w) - hz) + fma(z * z, poly(z, COS_P), -(r * r_lo)))
            return s, c

    @_JIT
    def reduce(x):
        """(s, c, q): sin and cos of the reduced argument, and q = k mod 4."""
        k = rint(np.float64(x) * TWO_OVER_PI)
        s, c = sin_cos(x, k)
        # (a NaN or infinite k is never converted: NaN < BIG_K is false)
        q = np.int32(sel(fabs(k) < BIG_K, k, 0.0)) & 3
        return s, c, q

    @_JIT
    def finish(x, y):
        """y rounded to x's type; NaN for infinite and NaN x; x itself for +-0 (sign kept)."""
        y = FT(y)
        y = sel(x == ZERO, x, y)
        return sel(x - x == ZERO, y, x - x)

    @_JIT
    def sin(x):
        x = FT(x)
        s, c, q = reduce(x)
        y = sel((q & 1) == 0, s, c)
        return finish(x, sel(q >= 2, -y, y))

    @_JIT
    def cos(x):
        x = FT(x)
        s, c, q = reduce(x)
        y = sel((q & 1) == 0, c, s)
        y = sel((q == 1) | (q == 2), -y, y)
        return sel(x - x == ZERO, FT(y), x - x)

    @_JIT
    def tan(x):
        x = FT(x)
        s, c, q = reduce(x)
        # an odd quadrant: tan(r + pi/2) = -cos(r) / sin(r)
        return finish(x, sel((q & 1) == 0, div(s, c), div(-c, s)))

    @_JIT
    def trig_in_range(x):
        """Whether sin, cos and tan of ``x`` are right here (else the caller uses libm)."""
        a = fabs(FT(x))
        return (a <= MAX) | (a == INF) | (a != a)

    return SimpleNamespace(sin=sin, cos=cos, tan=tan, trig_in_range=trig_in_range)


@_JIT
def remainder(a, b):
    """Float ``a % b`` as PyTorch computes it: Python's (the divisor's sign), except that a zero
    result has the sign of ``a`` (C's fmod), where Python and numpy give it ``b``'s."""
    r = a % b
    if r == 0:
        return np.copysign(r, a)
    return r


def define(K) -> SimpleNamespace:
    """Every function of this module for the precision of constants table ``K``
    (``math_constants.F32`` or ``F64``), by name."""
    ex = _exp_family(K)
    out = SimpleNamespace(exp=ex.exp, exp2=ex.exp2, expm1=ex.expm1)
    families = [_log_family(K), _hyperbolic_family(K, ex), _inverse_trig_family(K)]
    families.append(_trig_family(K))
    for family in families:
        out.__dict__.update(family.__dict__)
    for name, f in out.__dict__.items():
        f.__doc__ = f.__doc__ or f"{name} in {np.dtype(K.FT).name}."
    return out


_32, _64 = define(F32), define(F64)
exp_f32, exp_f64 = _32.exp, _64.exp
exp2_f32, exp2_f64 = _32.exp2, _64.exp2
expm1_f32, expm1_f64 = _32.expm1, _64.expm1
log_f32, log_f64 = _32.log, _64.log
log2_f32, log2_f64 = _32.log2, _64.log2
log10_f32, log10_f64 = _32.log10, _64.log10
log1p_f32, log1p_f64 = _32.log1p, _64.log1p
tanh_f32, tanh_f64 = _32.tanh, _64.tanh
sigmoid_f32, sigmoid_f64 = _32.sigmoid, _64.sigmoid
erf_f32, erf_f64 = _32.erf, _64.erf
sinh_f32, sinh_f64 = _32.sinh, _64.sinh
cosh_f32, cosh_f64 = _32.cosh, _64.cosh
atan_f32, atan_f64 = _32.atan, _64.atan
atan2_f32, atan2_f64 = _32.atan2, _64.atan2
asin_f32, asin_f64 = _32.asin, _64.asin
acos_f32, acos_f64 = _32.acos, _64.acos
# right only for |x| <= TRIG_MAX: fused kernels check trig_in_range_* and recompute a loop that
# had a larger argument with libm (codegen/cpu.py)
sin_f32, sin_f64 = _32.sin, _64.sin
cos_f32, cos_f64 = _32.cos, _64.cos
tan_f32, tan_f64 = _32.tan, _64.tan
trig_in_range_f32, trig_in_range_f64 = _32.trig_in_range, _64.trig_in_range

# ---------------------------------------------------------------------------------------------
# erfinv: scalar (libm has none to fall back to; not in VECTOR_MATH). A first guess within
# ~0.5% (Winitzki's closed form, a = 0.147), then Halley steps on f(y) = erf(y) - |x| written
# as (1 - |x|) - erfc(y) above 0.5, where 1 - |x| is exact and erfc keeps the relative accuracy
# that erf(y) - |x| would cancel away near 1. Each step cubes the relative error: three from
# the guess reach float64's rounding (within 3 ulp of scipy's erfinv over the domain; float32
# rounds the float64 result). erfinv(+-1) = +-inf, |x| > 1 and NaN give NaN, -0.0 stays -0.0.

_ERFINV_K = 1.1283791670955126  # 2 / sqrt(pi)
_ERFINV_B = 2.0 / (math.pi * 0.147)


@numba.njit
def erfinv_f64(x):
    """The inverse of erf in float64."""
    a = abs(x)
    if not a < 1.0:
        return math.copysign(math.inf, x) if a == 1.0 else math.nan
    if a == 0.0:
        return x
    c = 1.0 - a  # exact for a >= 0.5
    ln = math.log1p(-a * a) if a < 0.5 else math.log(c) + math.log1p(a)  # ln(1 - a*a)
    b = _ERFINV_B + 0.5 * ln
    y = math.sqrt(max(math.sqrt(b * b - ln / 0.147) - b, 0.0))
    for _ in range(3):
        f = math.erf(y) - a if a <= 0.5 else c - math.erfc(y)
        r = f / (_ERFINV_K * math.exp(-y * y))
        y -= r / (1.0 + y * r)
    return math.copysign(y, x)


@numba.njit
def erfinv_f32(x):
    """The inverse of erf in float32 (computed in float64, rounded once)."""
    return np.float32(erfinv_f64(np.float64(x)))


# ---------------------------------------------------------------------------------------------
# float16 storage (numba has no float16 type on the CPU: kernels see float16 arrays as uint16
# and compute in float32, as CUDA kernels do)

_H_SIGN, _H_EXP, _H_MANT = 0x8000, 0x7C00, 0x3FF
_H_QNAN = 0x7E00
_TWO_M24_F32 = np.float32(2.0**-24)


@_JIT
def h2f_soft(u):
    """The float32 value of float16 bits ``u`` (an unsigned 16-bit integer), exactly."""
    u = np.int32(u) & 0xFFFF
    sign = (u & _H_SIGN) << 16
    e = u & _H_EXP
    m = u & _H_MANT
    normal = f32_from_bits(sign | ((u & 0x7FFF) + ((127 - 15) << 10)) << 13)
    special = f32_from_bits(sign | 0x7F800000 | (m << 13))  # inf and NaN (payload kept)
    sub = copysign(np.float32(m) * _TWO_M24_F32, f32_from_bits(sign | 0x3F800000))
    return sel(e == 0, sub, sel(e == _H_EXP, special, normal))


def _to_half(K):
    """The rounding of K's floats to float16 bits (to nearest, ties to even, in one step)."""
    FT, BITS = K.FT, 8 * np.dtype(K.FT).itemsize
    DROP = K.MANT_BITS - 10  # mantissa bits dropped
    BIAS = (K.EXP_BIAS - 15) << K.MANT_BITS  # the exponent bias difference, in place
    ABS = (1 << (BITS - 1)) - 1
    INF_BITS = ((1 << (BITS - K.MANT_BITS - 1)) - 1) << K.MANT_BITS
    HALF_MIN = int(np.array(2.0**-14, FT).view(f"i{BITS // 8}"))  # smallest normal float16
    HALF_OVER = int(np.array(65520.0, FT).view(f"i{BITS // 8}"))  # from here on: inf
    TWO24 = FT(2.0**24)

    @_JIT
    def to_half(x):
        x = FT(x)
        b = bits(x)
        sign = np.int32((b >> (BITS - 16)) & _H_SIGN)
        a = b & ABS
        # normal range: drop the extra mantissa bits, rounding to nearest even (a carry moves
        # the exponent up, to inf at the top)
        normal = np.int32(((a - BIAS) + ((1 << (DROP - 1)) - 1) + ((a >> DROP) & 1)) >> DROP)
        # below 2**-14: the float16 is the integer nearest |x| / 2**-24 (exact in K's type)
        sub = np.int32(rint(fabs(x) * TWO24))
        h = sel(a < HALF_MIN, sub, normal)
        h = sel(a >= HALF_OVER, np.int32(_H_EXP), h)
        h = sel(a > INF_BITS, np.int32(_H_QNAN), h)
        return np.uint16(sign | h)

    return to_half


f2h_soft = _to_half(F32)
f2h_soft.__doc__ = "float32 ``x`` rounded to float16 (to nearest, ties to even), as its bits."
d2h = _to_half(F64)
d2h.__doc__ = "float64 ``x`` rounded once to float16 (not through float32), as its bits."


@_JIT
def round_h_soft(x):
    """float32 ``x`` rounded to float16 and back: a float16 step computed in float32."""
    return h2f_soft(f2h_soft(x))


def _has_f16c() -> bool:
    """Whether the CPU numba compiles for converts float16 in hardware (x86 F16C; other
    CPUs keep the integer versions above). numba compiles for the host's features unless
    NUMBA_CPU_FEATURES names others (NUMBA_CPU_NAME=generic implies none): without F16C in
    them, LLVM would call compiler-rt helpers that the JIT cannot find (a crash)."""
    if config.CPU_FEATURES is not None:
        return "+f16c" in config.CPU_FEATURES.split(",")
    return bool(llvm.get_host_cpu_features().get("f16c", False))


# The kernels' float16 conversions: the CPU's own instructions where it has them (float16
# kernels 3.6-16x faster: bench/RESULTS.md, seventh round), else the integer versions; both
# are exact and round to nearest even. (d2h stays in integers: LLVM lowers a float64 to
# float16 conversion to a compiler-rt call on x86.)
@_JIT
def h2f_hw(u):
    """The float32 value of float16 bits ``u``, exactly (vcvtph2ps)."""
    return half_to_f32(u)


@_JIT
def f2h_hw(x):
    """``x`` as float32, rounded to float16 (to nearest, ties to even), as its bits."""
    return f32_to_half(np.float32(x))


@_JIT
def round_h_hw(x):
    """float32 ``x`` rounded to float16 and back: a float16 step computed in float32."""
    return half_to_f32(f32_to_half(np.float32(x)))


F16C = _has_f16c()
h2f = h2f_hw if F16C else h2f_soft
f2h = f2h_hw if F16C else f2h_soft
round_h = round_h_hw if F16C else round_h_soft


# ---------------------------------------------------------------------------------------------
# registry


VECTOR_MATH: dict[tuple[str, str], object] = {
    (name, prec): getattr(ns, name) for name in _BOUNDS for prec, ns in (("f32", _32), ("f64", _64))
}

MAX_ULP: dict[tuple[str, str], int] = {
    (name, prec): b[i] for name, b in _BOUNDS.items() for i, prec in enumerate(("f32", "f64"))
}

# functions right only for arguments where ``trig_in_range_<prec>`` holds (see codegen/cpu.py)
GUARDED: dict[tuple[str, str], object] = {
    (name, prec): ns.trig_in_range
    for name in GUARDED_NAMES
    for prec, ns in (("f32", _32), ("f64", _64))
}
