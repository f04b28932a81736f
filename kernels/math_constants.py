"""The constants of ``cpu_math``, one table per precision: the same names in ``F32`` and
``F64``, so each function is written once (see ``cpu_math.define``).

Polynomial coefficients are tuples, lowest order first (``P[0] + z * (P[1] + ...)``); how they
were derived is in ``cpu_math``'s module notes. Values are the target format's scalars
(``numpy.float32`` in ``F32``, Python floats in ``F64``), so numba types them exactly.
"""

from __future__ import annotations

import math

import numpy as np
from fusejit.kernels.llvm_ops import f32_from_bits, f64_from_bits


def _f32(*values) -> tuple:
    return tuple(np.float32(v) for v in values)


class F32:
    """float32 constants."""

    NAME = "f32"
    FT = np.float32
    from_bits = f32_from_bits
    EXP_BIAS, MANT_BITS = 127, 23  # exponent bias and mantissa width of the bit pattern

    ZERO, HALF, ONE, TWO, ONE_HALF = _f32(0.0, 0.5, 1.0, 2.0, 1.5)
    INF, NAN = _f32(np.inf, np.nan)

    # exp: e**r = 1 + r + r**2 * Q(r) on |r| <= ln2/2. ln2 split: the high part has 9
    # significant bits, so k * LN2_HI is exact for |k| < 2**15.
    LOG2E, LN2_HI, LN2_LO = _f32(1.4426950408889634, 0.693359375, -2.1219444170128554e-4)
    EXP_Q = _f32(0.5, 0.1666654497385025, 0.04166640341281891, 0.008366403169929981,
                 0.0013940655626356602)  # fmt: skip
    EXP_HI, EXP_LO = _f32(89.0, -104.0)
    # exp2: 2**r = 1 + r * P(r) on |r| <= 1/2
    EXP2_P = _f32(0.6931471824645996, 0.24022650718688965, 0.055504050105810165,
                  0.009618086740374565, 0.0013337971176952124, 0.00015452111256308854,
                  1.4320444279292133e-05)  # fmt: skip
    EXP2_HI, EXP2_LO = _f32(129.0, -151.0)
    # expm1 needs Q one degree higher than exp: near r = 0 its error is relative to r, not to 1
    EXPM1_Q = _f32(0.5, 0.1666666716337204, 0.04166648909449577, 0.008333208039402962,
                   0.001393267186358571, 0.0001994424674194306)  # fmt: skip
    EXPM1_LO = np.float32(-80.0)  # expm1 == -1 in float32 well before this
    EXPM1_TINY = np.float32(2.0**-25)  # below: e**x - 1 rounds to x
    EXPM1_ROUNDING_TERM = False  # r's rounding error is below float32's ulp of the result

    # log(1 + f) = f - f*f/2 + s * (f*f/2 + R), s = f / (2 + f), R = z * P(z), z = s*s
    LOG_P = _f32(0.6666677594184875, 0.39977583289146423, 0.29870808124542236)
    SQRT_HALF_BITS = 0x3F3504F3  # bits of ~sqrt(1/2)
    MANT_MASK = 0x7FFFFF
    MIN_NORMAL = np.float32(2.0**-126)
    SUB_SCALE, SUB_EXP = _f32(2.0**23, 23.0)  # subnormals scaled exactly into the normal range
    LOG2E_HI, LOG2E_LO = _f32(1.4426950216293335, 1.925963033500011e-08)
    LOG10_2_HI = np.float32(0.30078125)  # 9 significant bits: e * hi is exact
    LOG10_2_LO = np.float32(0.00024874566588550806)
    LOG10E_HI, LOG10E_LO = _f32(0.4342944920063019, -1.0103049952192578e-08)

    # tanh(x) = x + x**3 * P(x**2) for |x| < TANH_SMALL
    TANH_P = _f32(-0.3333328068256378, 0.13331405818462372, -0.05373651534318924,
                  0.02062816731631756, -0.0056922961957752705)  # fmt: skip
    TANH_SMALL = np.float32(0.625)
    TANH_BIG = np.float32(10.0)  # tanh == 1 in float32 beyond ~9.01

    # erf(x) = x + x * P(x*x) for |x| < 1 (P(0) = 2/sqrt(pi) - 1 keeps the leading term exact)
    ERF_P = _f32(0.12837916612625122, -0.3761262595653534, 0.11283578723669052,
                 -0.026853347197175026, 0.005187162198126316, -0.0007997853099368513,
                 7.806903158780187e-05)  # fmt: skip
    # erfc(x) = e**(-x*x) * R(x - 2.5) for 1 <= x <= 4: one piece; erf == 1 beyond ~3.92
    ERFC_PIECES = 1
    ERFC_R = _f32(0.2108076512813568, -0.07434234768152237, 0.024912262335419655,
                  -0.008137536235153675, 0.002301862696185708, -0.0006504479679279029,
                  0.0005573498783633113, 0.00023225913173519075,
                  0.00010819442832143977)  # fmt: skip
    ERFC_MID = np.float32(2.5)
    ERF_HI = np.float32(4.0)

    # sinh(x) = x + x**3 * P(x**2) for |x| < 1
    SINH_P = _f32(0.1666666716337204, 0.00833331048488617, 0.0001984289410756901,
                  2.7822300125990296e-06)  # fmt: skip
    COSH_HI = np.float32(90.0)  # cosh, sinh overflow beyond ~89.42
    PM_HALF_CAP = 60  # see _exp_pm_half

    # atan(t) = t + t**3 * P(t*t) for |t| <= 7/16
    ATAN_P = _f32(-0.3333330452442169, 0.1999778151512146, -0.14230172336101532,
                  0.10494107753038406, -0.05825633183121681)  # fmt: skip
    ATAN_CUTS = _f32(7 / 16, 11 / 16, 19 / 16, 39 / 16)
    ATAN05_HI, ATAN05_LO = _f32(0.46364760398864746, 5.01215868808913e-09)
    ATAN15_HI, ATAN15_LO = _f32(0.9827937483787537, -2.5131424052915463e-08)
    PI_HI, PI_LO = _f32(3.1415927410125732, -8.742277657347586e-08)
    PI_2_HI, PI_2_LO = _f32(1.5707963705062866, -4.371138828673793e-08)
    PI_4_HI, PI_4_LO = _f32(0.7853981852531433, -2.1855694143368964e-08)

    # asin(u) = u + u**3 * P(u*u) for |u| <= 1/2
    ASIN_P = _f32(0.16666659712791443, 0.07500521093606949, 0.04451369121670723,
                  0.0318349190056324, 0.014336468651890755, 0.03765835240483284)  # fmt: skip
    ASIN_CUT_MASK = 0xFFFFF000  # keeps 12 significant bits

    # sin, cos, tan: computed in float64 (the float32 result rounds a value ~1e-13 off).
    # x = k * pi/2 + r with pi/2 = PIO2_HI + PIO2_LO, PIO2_HI cut to 33 bits: k * PIO2_HI and
    # x - k * PIO2_HI are exact while |k| < 2**20, i.e. |x| <= TRIG_MAX; beyond, the kernels
    # recompute with libm (see codegen/cpu.py).
    TRIG = "float64"  # how the reduction is carried (see cpu_math._trig_family)
    TRIG_MAX = np.float32(1e6)
    TWO_OVER_PI, PIO2_HI, PIO2_LO = 0.6366197723675814, 1.5707963267341256, 6.077100506506192e-11
    # Taylor series on |r| <= pi/4: sin r = r + r**3 * S(r*r), cos r = 1 + r*r * C(r*r); the
    # first omitted terms are below 2e-14 relative
    SIN_P = tuple(-((-1) ** n) / math.factorial(2 * n + 3) for n in range(6))
    COS_P = tuple(-((-1) ** n) / math.factorial(2 * n + 2) for n in range(7))


class F64:
    """float64 constants (the comments of ``F32`` apply)."""

    NAME = "f64"
    FT = np.float64
    from_bits = f64_from_bits
    EXP_BIAS, MANT_BITS = 1023, 52

    ZERO, HALF, ONE, TWO, ONE_HALF = 0.0, 0.5, 1.0, 2.0, 1.5
    INF, NAN = np.inf, np.nan

    # ln2 split: 32-bit high part, so k * LN2_HI is exact for every reachable k
    LOG2E, LN2_HI, LN2_LO = 1.4426950408889634, 0.6931471806019545, -4.2009150726810846e-11
    EXP_Q = (0.5, 0.16666666666666433, 0.04166666666660381, 0.00833333333350046,
             0.001388888892686263, 0.0001984126946550149, 2.4801508590361166e-05,
             2.7557641288251806e-06, 2.762522679479331e-07, 2.497832385981028e-08)  # fmt: skip
    EXP_HI, EXP_LO = 710.0, -746.0
    EXP2_P = (0.6931471805599453, 0.2402265069591007, 0.055504108664823505, 0.009618129107629872,
              0.001333355814598036, 0.00015403530390316908, 1.5252734234793882e-05,
              1.3215489568332025e-06, 1.0177898662000901e-07, 7.053801598101377e-09,
              4.478993052280108e-10, 2.7314999573538238e-11)  # fmt: skip
    EXP2_HI, EXP2_LO = 1025.0, -1076.0
    EXPM1_Q = (0.5, 0.16666666666666677, 0.041666666666666685, 0.00833333333332136,
               0.0013888888888869886, 0.00019841269886929788, 2.4801587363574985e-05,
               2.755724329783703e-06, 2.7557232944356416e-07, 2.5109386152757575e-08,
               2.092958941661334e-09)  # fmt: skip
    EXPM1_LO = -60.0  # expm1 == -1 in float64 below ~-37.4
    EXPM1_TINY = 2.0**-54
    EXPM1_ROUNDING_TERM = True  # k != 0 would double (or more) the error without it

    LOG_P = (0.6666666666666734, 0.3999999999941655, 0.2857142874206266, 0.22222198600279588,
             0.18183563154803395, 0.15314075817111045, 0.14795735087648318)  # fmt: skip
    SQRT_HALF_BITS = 0x3FE6A09E667F3BCD
    MANT_MASK = 0xFFFFFFFFFFFFF
    MIN_NORMAL = 2.0**-1022
    SUB_SCALE, SUB_EXP = 2.0**54, 54.0
    # (LOG2E itself is exact to float64's precision: LOG2E_HI == LOG2E)
    LOG2E_HI, LOG2E_LO = 1.4426950408889634, 2.0355273740931033e-17
    LOG10_2_HI = 0.3010299956658855  # 32 significant bits: e * hi is exact
    LOG10_2_LO = -1.9043128467164274e-12
    LOG10E_HI, LOG10E_LO = 0.4342944819032518, 1.098319650216765e-17

    TANH_P = (-0.33333333333333315, 0.13333333333329958, -0.05396825396614743,
              0.021869488470639516, -0.008863234337795333, 0.0035921142130313833,
              -0.001455727150273685, 0.000589456370516126, -0.00023702331029467342,
              9.157714239543188e-05, -3.0204723359892436e-05, 6.04965772965812e-06)  # fmt: skip
    TANH_SMALL = 0.625
    TANH_BIG = 20.0  # tanh == 1 in float64 beyond ~19.06

    ERF_P = (0.1283791670955126, -0.3761263890318379, 0.11283791670955358,
             -0.026866170645086673, 0.00522397762464345, -0.0008548326964656224,
             0.00012055330431130384, -1.4925578145888389e-05, 1.6460724120632053e-06,
             -1.634741945560234e-07, 1.4640741050539222e-08, -1.1301243849688006e-09,
             5.839588804221755e-11)  # fmt: skip
    # erfc(x) = e**(-x*x) * R(x - c): piece A on [1, 2] (c = 1.5), piece B on [2, 6] (c = 4)
    ERFC_PIECES = 2
    ERFC_RA = (0.32158541645431743, -0.16362291773255994, 0.07615103985551804,
               -0.03293090529950163, 0.013377340949988084, -0.005145957553826339,
               0.0018861349608290912, -0.0006619299003264121, 0.00022330887683582378,
               -7.266102117658489e-05, 2.2871291256099508e-05, -6.96182794609564e-06,
               2.0437377853723038e-06, -6.360453647184474e-07, 2.018110089035405e-07)  # fmt: skip
    ERFC_RB = (0.13699945764373958, -0.03238350527213271, 0.007465438294488054,
               -0.0016811750303488589, 0.0003703255568690199, -8.002834233899027e-05,
               1.6719539496698e-05, -3.5998511586869904e-06, 8.58005870235882e-07,
               1.6002845987811925e-07, 3.071619756259838e-07, 1.476470177984078e-07,
               5.347474906988374e-08, 1.0356968414360267e-08, 1.0407331574780121e-09)  # fmt: skip
    ERFC_SPLIT, ERFC_CA, ERFC_CB = 2.0, 1.5, 4.0
    ERF_HI = 6.0  # erf == 1 in float64 beyond ~5.92

    SINH_P = (0.16666666666666669, 0.008333333333332912, 0.00019841269841593573,
              2.7557319106614384e-06, 2.5052131039465922e-08, 1.6056654409517449e-10,
              7.776795862436498e-13)  # fmt: skip
    COSH_HI = 711.0  # cosh, sinh overflow beyond ~710.48
    PM_HALF_CAP = 500  # 2**-1000 is still normal

    ATAN_P = (-0.3333333333333292, 0.1999999999987375, -0.1428571427226683, 0.11111110395256066,
              -0.0909088687970278, 0.07691872296805957, -0.06661034617219225,
              0.05833326807965895, -0.04975925070939838, 0.03651050673738813,
              -0.016265726269968462)  # fmt: skip
    ATAN_CUTS = (0.4375, 0.6875, 1.1875, 2.4375)
    ATAN05_HI, ATAN05_LO = 0.4636476090008061, 2.2698777452961687e-17
    ATAN15_HI, ATAN15_LO = 0.982793723247329, 1.3903311031230998e-17
    PI_HI, PI_LO = 3.141592653589793, 1.2246467991473532e-16
    PI_2_HI, PI_2_LO = 1.5707963267948966, 6.123233995736766e-17
    PI_4_HI, PI_4_LO = 0.7853981633974483, 3.061616997868383e-17

    ASIN_P = (0.1666666666666676, 0.07499999999970867, 0.04464285717455934, 0.030381942709940487,
              0.022372214933982695, 0.01735161288316649, 0.013980811003557294,
              0.011398984489301529, 0.010779874989633247, 0.003707748071652038,
              0.021704373030044893, -0.02099494134367036, 0.032626173588691514)  # fmt: skip
    ASIN_CUT_MASK = -0x100000000  # keeps 21 significant bits

    # sin, cos, tan: x = k * pi/2 + (r_hi + r_lo), pi/2 = P1 + P2 + P3 + P4 with P1..P3 cut to
    # 33 bits: k * P1..P3 are exact while |k| < 2**20 (|x| <= TRIG_MAX), the sum is carried in
    # two doubles, and P1..P4 hold pi/2 to ~2**-160
    TRIG = "double-double"
    TRIG_MAX = 1e6
    TWO_OVER_PI = 0.6366197723675814
    PIO2 = (1.5707963267341256, 6.077100506303966e-11, 2.0222662487111665e-21,
            8.4784276603689e-32)  # fmt: skip
    # Taylor series on |r| <= pi/4, first omitted terms below 1e-19 relative
    SIN_P = tuple(-((-1) ** n) / math.factorial(2 * n + 3) for n in range(8))
    COS_P = tuple(((-1) ** n) / math.factorial(2 * n + 4) for n in range(8))  # from r**4 on
