"""fusejit.kernels.cpu_math: accuracy in ulp, special values, and that the loops vectorize.

References: float32 results are compared with numpy's float64 result rounded to float32; float64
results with numpy's long double result rounded to float64 (on x86 long double has a 64-bit
mantissa; where it has no more precision than float64 the bound is loosened by one ulp).
"""

from __future__ import annotations

import functools
import math
import re

import numba
import numpy as np
import pytest
from fusejit.kernels import cpu_math as cm
from llvmlite import binding as llvm

DTYPES = {"f32": np.float32, "f64": np.float64}
INT = {"f32": np.int32, "f64": np.int64}
EXTENDED = np.finfo(np.longdouble).nmant >= 63
UNARY = sorted(k for k in cm.VECTOR_MATH if k[0] != "atan2")


# --- references -------------------------------------------------------------------------------


def _erf_ld(x):
    """erf in long double: Taylor series below 2.5, erfc continued fraction above."""
    x = np.asarray(x, dtype=np.longdouble)
    a = np.abs(x)
    out = np.ones_like(a)
    s = a < 2.5
    xs, z = a[s], a[s] * a[s]
    term, tot = xs.copy(), xs.copy()
    for n in range(1, 90):
        term = -term * z / n
        tot += term / (2 * n + 1)
    out[s] = tot * np.longdouble("1.12837916709551257389615890312154517")
    xb = np.minimum(a[~s & np.isfinite(a)], 30)
    f = xb.copy()
    for k in range(150, 0, -1):
        f = xb + (np.longdouble(k) / 2) / f
    erfc = np.exp(-xb * xb) / f * np.longdouble("0.564189583547756286948079451560772586")
    out[~s & np.isfinite(a)] = 1 - erfc
    out[np.isnan(a)] = np.nan
    return np.copysign(out, x)


_math_erf = np.frompyfunc(math.erf, 1, 1)

REFS = {
    "exp": np.exp,
    "exp2": np.exp2,
    "expm1": np.expm1,
    "log": np.log,
    "log2": np.log2,
    "log10": np.log10,
    "log1p": np.log1p,
    "tanh": np.tanh,
    "sigmoid": lambda x: 1 / (1 + np.exp(-x)),
    "erf": lambda x: _erf_ld(x) if x.dtype == np.longdouble else _math_erf(x).astype(float),
    "sinh": np.sinh,
    "cosh": np.cosh,
    "atan": np.arctan,
    "asin": np.arcsin,
    "acos": np.arccos,
    "sin": np.sin,
    "cos": np.cos,
    "tan": np.tan,
}


def reference(name, prec, *args):
    """Correctly rounded (up to the reference's own error) result in the target dtype."""
    wide = np.longdouble if prec == "f64" and EXTENDED else np.float64
    with np.errstate(all="ignore"):
        wargs = [a.astype(wide) for a in args]
        r = np.arctan2(*wargs) if name == "atan2" else REFS[name](*wargs)
        return np.asarray(r).astype(DTYPES[prec])


def bound(name, prec):
    """The module's documented bound, plus one where the float64 reference is only float64."""
    return cm.MAX_ULP[(name, prec)] + (prec == "f64" and not EXTENDED)


# --- helpers ----------------------------------------------------------------------------------


@functools.cache
def compiled_loop(name, prec):
    """The plain loop a fused kernel would be: ``for i in range(n): out[i] = f(a[i])``."""
    f = cm.VECTOR_MATH[(name, prec)]
    if name == "atan2":

        @numba.njit
        def loop2(y, x, out):
            n = out.shape[0]
            for i in range(n):
                out[i] = f(y[i], x[i])

        return loop2

    @numba.njit
    def loop(a, out):
        n = out.shape[0]
        for i in range(n):
            out[i] = f(a[i])

    return loop


def run(name, prec, *args):
    out = np.empty_like(args[0])
    compiled_loop(name, prec)(*args, out)
    return out


def ulp_distance(a, b):
    """|a - b| in units in the last place, via a monotone map of the bit patterns to integers."""
    it = INT["f32" if a.dtype == np.float32 else "f64"]
    ia, ib = a.view(it), b.view(it)
    lo = np.iinfo(it).min
    ka = np.where(ia < 0, lo - ia, ia).astype(np.int64)  # -0.0 and +0.0 both map to 0
    kb = np.where(ib < 0, lo - ib, ib).astype(np.int64)
    same = (ka >= 0) == (kb >= 0)
    with np.errstate(over="ignore"):
        d = np.where(same, np.abs(ka - kb), 0).astype(np.float64)
    d = np.where(same, d, np.abs(ka.astype(np.float64) - kb.astype(np.float64)))
    nan_a, nan_b = np.isnan(a), np.isnan(b)
    d[nan_a & nan_b] = 0
    d[nan_a ^ nan_b] = np.inf
    return d


def assert_within(name, prec, x, out, ref):
    """Max ulp error within the documented bound; x: the input (a tuple of arrays for atan2)."""
    d = ulp_distance(out, ref)
    i = int(np.argmax(d))
    at = tuple(a[i] for a in x) if isinstance(x, tuple) else x[i]
    assert d[i] <= bound(name, prec), (
        f"{name}_{prec}: {d[i]} ulp at {at!r}: got {out[i]!r}, want {ref[i]!r}"
    )


def assert_exact_specials(name, prec, x, out, ref):
    """NaN where the reference is NaN, and identical infinities / signed zeros."""
    nan = np.isnan(ref)
    assert np.array_equal(np.isnan(out), nan), f"{name}_{prec}: NaN mismatch"
    special = ~nan & (np.isinf(ref) | (ref == 0))
    same = (out == ref) & (np.signbit(out) == np.signbit(ref))
    bad = special & ~same
    assert not bad.any(), f"{name}_{prec}: x={x[bad][:5]} gave {out[bad][:5]}, want {ref[bad][:5]}"


# --- inputs -----------------------------------------------------------------------------------

# Interesting range per function: overflow / underflow thresholds, branch points, saturation.
UNIFORM = {
    "exp": {"f32": (-105, 90), "f64": (-746, 710)},
    "exp2": {"f32": (-151, 129), "f64": (-1076, 1025)},
    "expm1": {"f32": (-20, 90), "f64": (-40, 710)},
    "log": (0, 4),
    "log2": (0, 4),
    "log10": (0, 4),
    "log1p": (-1, 3),
    "tanh": {"f32": (-10, 10), "f64": (-20, 20)},
    "sigmoid": {"f32": (-105, 105), "f64": (-746, 746)},
    "erf": {"f32": (-4.5, 4.5), "f64": (-6.5, 6.5)},
    "sinh": {"f32": (-90, 90), "f64": (-711, 711)},
    "cosh": {"f32": (-90, 90), "f64": (-711, 711)},
    "atan": (-5, 5),
    "asin": (-1.05, 1.05),
    "acos": (-1.05, 1.05),
    "sin": (-20, 20),
    "cos": (-20, 20),
    "tan": (-20, 20),
}
TRIG_MAX = 1e6  # sin, cos, tan (GUARDED): right for |x| <= TRIG_MAX, inf and NaN

THRESHOLDS = {
    "exp": {"f32": [88.72284, -87.33655, -103.27893, -103.97208],
            "f64": [709.782712893384, -708.3964185322641, -744.4400719213812, -745.1332191019411]},
    "exp2": {"f32": [128, -126, -149, -150], "f64": [1024, -1022, -1074, -1075]},
    "expm1": {"f32": [88.72284, -17.32868, 2.0**-25, -(2.0**-25)],
              "f64": [709.782712893384, -37.42994775023705, 2.0**-54, -(2.0**-54)]},
    "log1p": {"f32": [-1, -1 + 2.0**-24], "f64": [-1, -1 + 2.0**-53]},
    "tanh": {"f32": [0.625, 9.010913, 10], "f64": [0.625, 19.061547465398498, 20]},
    "sigmoid": {"f32": [88.72284, -88.72284, -103.97208, 16.635532],
                "f64": [709.782712893384, -745.1332191019411, 36.7368005696771]},
    "erf": {"f32": [1, 3.9192059, 4], "f64": [1, 2, 5.921587195794507, 6]},
    "sinh": {"f32": [1, 89.415985], "f64": [1, 710.4758600739439]},
    "cosh": {"f32": [89.415985], "f64": [710.4758600739439]},
    "atan": {p: [7 / 16, 11 / 16, 19 / 16, 39 / 16, 1e30] for p in DTYPES},
    "asin": {p: [0.5, 1] for p in DTYPES},
    "acos": {p: [0.5, 1] for p in DTYPES},
    **{n: {p: [np.pi / 2, np.pi, 3 * np.pi / 2, 1e6, 710.0 * np.pi, 1e-20] for p in DTYPES}
       for n in ("sin", "cos", "tan")},
}  # fmt: skip


def _in_range(name, prec, x):
    """The inputs a GUARDED function is right for (all inputs for the others)."""
    if (name, prec) not in cm.GUARDED:
        return x
    return x[~(np.abs(x.astype(np.float64)) > TRIG_MAX) | ~np.isfinite(x)]


def bit_sweep(prec, per_sign):
    """Evenly spaced bit patterns over all finite values of both signs (log-uniform)."""
    it, dtype = INT[prec], DTYPES[prec]
    top = int(np.array(np.inf, dtype).view(it))
    pos = np.linspace(0, top - 1, per_sign, dtype=np.int64).astype(it).view(dtype)
    return np.concatenate([pos, -pos])


def edge_values(name, prec):
    dtype = DTYPES[prec]
    fi = np.finfo(dtype)
    base = [0.0, np.inf, np.nan, fi.smallest_subnormal, fi.smallest_normal, fi.max, 1, 0.5, 2]
    base += THRESHOLDS.get(name, {}).get(prec, [])
    v = np.array(base, dtype=dtype)
    with np.errstate(over="ignore"):
        v = np.concatenate([v, np.nextafter(v, dtype(np.inf)), np.nextafter(v, dtype(-np.inf))])
    return _in_range(name, prec, np.concatenate([v, -v]))


def sweep(name, prec):
    rng = np.random.default_rng(1234)
    lo, hi = UNIFORM[name][prec] if isinstance(UNIFORM[name], dict) else UNIFORM[name]
    uniform = rng.uniform(lo, hi, 200_000).astype(DTYPES[prec])
    return _in_range(name, prec, np.concatenate([bit_sweep(prec, 400_000), uniform]))


# --- tests ------------------------------------------------------------------------------------


def test_registry_matches_documented_bounds():
    assert set(cm.MAX_ULP) == set(cm.VECTOR_MATH)
    for (name, prec), f in cm.VECTOR_MATH.items():
        assert getattr(cm, f"{name}_{prec}") is f
    rows = re.findall(r"^\s{4}(\w+)\s+(\d+|-)\s+(\d+|-)\s*$", cm.__doc__, re.M)
    table = {(n, p): int(u) for n, a, b in rows for p, u in (("f32", a), ("f64", b)) if u != "-"}
    assert table == cm.MAX_ULP
    assert set(cm.GUARDED) == {(n, p) for n in ("sin", "cos", "tan") for p in DTYPES}
    assert set(cm.GUARDED) <= set(cm.VECTOR_MATH)


@pytest.mark.parametrize("prec", sorted(DTYPES))
def test_trig_range_check(prec):
    check, dtype = cm.GUARDED[("sin", prec)], DTYPES[prec]
    x = np.array([0, 1, -1e6, 1e6, np.inf, -np.inf, np.nan, np.nextafter(dtype(1e6), dtype(2e6)),
                  3e6, -1e30, np.finfo(dtype).max], dtype)  # fmt: skip
    got = [bool(check(v)) for v in x]
    assert got == [True] * 7 + [False] * 4


@pytest.mark.parametrize("name,prec", UNARY, ids=[f"{n}_{p}" for n, p in UNARY])
def test_accuracy_and_special_values(name, prec):
    x = sweep(name, prec)
    out, ref = run(name, prec, x), reference(name, prec, x)
    assert_within(name, prec, x, out, ref)
    assert_exact_specials(name, prec, x, out, ref)

    e = edge_values(name, prec)
    out, ref = run(name, prec, e), reference(name, prec, e)
    assert_exact_specials(name, prec, e, out, ref)
    assert_within(name, prec, e, out, ref)


_INF, _NAN = math.inf, math.nan
SPECIAL = [
    ("exp", -_INF, 0.0), ("exp", _INF, _INF), ("exp", _NAN, _NAN), ("exp", 1e4, _INF),
    ("exp", -1e4, 0.0), ("exp", 0.0, 1.0), ("exp2", 3.0, 8.0), ("exp2", -_INF, 0.0),
    ("expm1", -0.0, -0.0), ("expm1", -_INF, -1.0), ("expm1", _INF, _INF),
    ("log", 0.0, -_INF), ("log", -0.0, -_INF), ("log", -1.0, _NAN), ("log", -_INF, _NAN),
    ("log", _INF, _INF), ("log", 1.0, 0.0), ("log2", 8.0, 3.0), ("log10", 1000.0, 3.0),
    ("log1p", -1.0, -_INF), ("log1p", -2.0, _NAN), ("log1p", -0.0, -0.0), ("log1p", _INF, _INF),
    ("tanh", _INF, 1.0), ("tanh", -_INF, -1.0), ("tanh", -0.0, -0.0), ("tanh", _NAN, _NAN),
    ("erf", _INF, 1.0), ("erf", -_INF, -1.0), ("erf", -0.0, -0.0), ("erf", _NAN, _NAN),
    ("sigmoid", -_INF, 0.0), ("sigmoid", _INF, 1.0), ("sigmoid", 0.0, 0.5),
    ("sigmoid", _NAN, _NAN), ("sinh", -0.0, -0.0), ("sinh", -_INF, -_INF), ("cosh", -_INF, _INF),
    ("cosh", 0.0, 1.0), ("atan", -0.0, -0.0), ("atan", _INF, math.pi / 2),
    ("asin", 1.0, math.pi / 2), ("asin", 1.5, _NAN), ("acos", 1.0, 0.0), ("acos", -1.0, math.pi),
    ("sin", -0.0, -0.0), ("sin", _INF, _NAN), ("sin", _NAN, _NAN), ("cos", 0.0, 1.0),
    ("cos", -_INF, _NAN), ("tan", -0.0, -0.0), ("tan", _INF, _NAN),
]  # fmt: skip


@pytest.mark.parametrize("prec", sorted(DTYPES))
def test_spec_special_values(prec):
    for name, x, want in SPECIAL:
        if (name, prec) not in cm.VECTOR_MATH:
            continue
        got = run(name, prec, np.array([x], DTYPES[prec]))[0]
        want = DTYPES[prec](want)
        same = got == want and np.signbit(got) == np.signbit(want)
        assert np.isnan(got) if np.isnan(want) else same, (
            f"{name}_{prec}({x}) = {got!r}, want {want!r}"
        )


@pytest.mark.parametrize("prec", sorted(DTYPES))
def test_atan2(prec):
    dtype, it = DTYPES[prec], INT[prec]
    rng = np.random.default_rng(99)
    n = 300_000
    top = int(np.array(np.inf, dtype).view(it))

    def bits():
        v = rng.integers(0, top, n, dtype=np.int64).astype(it).view(dtype)
        return v * np.where(rng.random(n) < 0.5, dtype(1), dtype(-1))

    near = bits()
    with np.errstate(over="ignore"):
        y = np.concatenate([bits(), rng.uniform(-3, 3, n).astype(dtype), near])
        x = np.concatenate([bits(), rng.uniform(-3, 3, n).astype(dtype),
                            near * rng.uniform(0.2, 5, n).astype(dtype)])  # fmt: skip
    fi = np.finfo(dtype)
    sp = np.array([0, -0.0, np.inf, -np.inf, np.nan, 1, -1, fi.smallest_subnormal, fi.max], dtype)
    ys, xs = (g.ravel() for g in np.meshgrid(sp, sp))
    for yy, xx in ((y, x), (ys, xs)):
        out, ref = run("atan2", prec, yy, xx), reference("atan2", prec, yy, xx)
        assert_within("atan2", prec, (yy, xx), out, ref)
        assert_exact_specials("atan2", prec, yy, out, ref)
        ok = ~np.isnan(ref)  # the quadrant sign, zeros included
        assert np.array_equal(np.signbit(out[ok]), np.signbit(ref[ok]))


def _vector_widths(ir_text, prec):
    elem = "float" if prec == "f32" else "double"
    return {int(w) for w in re.findall(rf"<(\d+) x {elem}>", ir_text)}


ALL = sorted(cm.VECTOR_MATH)


@pytest.mark.parametrize("name,prec", ALL, ids=[f"{n}_{p}" for n, p in ALL])
def test_loop_vectorizes(name, prec):
    dtype = DTYPES[prec]
    args = [np.ones(64, dtype)] * (2 if name == "atan2" else 1)
    run(name, prec, *args)
    loop = compiled_loop(name, prec)
    sig = loop.signatures[0]
    text = loop.inspect_llvm(sig)
    # numba targets the host CPU unless NUMBA_CPU_NAME says otherwise (e.g. "generic").
    features = llvm.get_host_cpu_features() if numba.config.CPU_NAME is None else {}
    # 256-bit vectors with AVX (LLVM often prefers them on AVX-512 parts too), else 128-bit.
    want = (8 if features.get("avx") else 4) // (2 if prec == "f64" else 1)
    if name in ("sin", "cos", "tan") and prec == "f32":  # float64 inside: float64 lanes
        want, prec = want // 2, "f64"
    assert max(_vector_widths(text, prec), default=0) >= want, f"{name}_{prec} did not vectorize"
    # no scalar libm call left in the loop
    assert not re.search(
        r"call [^\n]*@(exp|log|tanh|erf|sinh|cosh|atan|asin|acos|sin|cos|tan)f?\b", text
    )
    if features.get("avx") and (name, prec) in {("exp", "f32"), ("tanh", "f32")}:
        assert re.search(r"%[yz]mm\d", loop.inspect_asm(sig))


# --- float16 storage ----------------------------------------------------------------------


def _half_loops(h2f, f2h, round_h):
    @numba.njit
    def h2f_loop(u, out):
        for i in range(u.shape[0]):
            out[i] = h2f(u[i])

    @numba.njit
    def f2h_loop(x, out):
        for i in range(x.shape[0]):
            out[i] = f2h(x[i])

    @numba.njit
    def round_loop(x, out):
        for i in range(x.shape[0]):
            out[i] = round_h(x[i])

    return h2f_loop, f2h_loop, round_loop


# the integer versions, and the CPU's instructions (F16C) where it has them: both are tested
_HALF_IMPLS = {"integer": (cm.h2f_soft, cm.f2h_soft, cm.round_h_soft)}
if cm.F16C:
    _HALF_IMPLS["f16c"] = (cm.h2f_hw, cm.f2h_hw, cm.round_h_hw)


@numba.njit
def _d2h_loop(x, out):
    for i in range(x.shape[0]):
        out[i] = cm.d2h(x[i])


def _same_half_bits(got, x):
    with np.errstate(all="ignore"):
        want = x.astype(np.float16).view(np.uint16)
    nan = np.isnan(x)
    assert np.array_equal(got[~nan], want[~nan]), x[~nan][got[~nan] != want[~nan]][:5]
    assert ((got[nan] & 0x7C00) == 0x7C00).all() and ((got[nan] & 0x3FF) != 0).all()


def test_the_kernels_use_the_cpus_float16_conversions_where_it_has_them():
    assert (cm.h2f, cm.f2h, cm.round_h) == _HALF_IMPLS["f16c" if cm.F16C else "integer"]


_GENERIC_CHILD = """
import json, numpy as np, fusejit
from fusejit.kernels import cpu_math
x = np.linspace(-3, 3, 257).astype(np.float16)
t = fusejit.trace(lambda x: (x * 2 + 1).exp() - x, (fusejit.from_numpy(x),))
print(json.dumps({"f16c": cpu_math.F16C, "got": t(fusejit.from_numpy(x)).numpy().tolist()}))
"""


def test_float16_kernels_compiled_for_a_cpu_without_f16c(tmp_path):
    # NUMBA_CPU_NAME=generic compiles without the host's features: the hardware conversions
    # would call helpers the JIT cannot resolve (a crash), so the integer ones are used
    import json
    import os
    import subprocess
    import sys
    from pathlib import Path

    repo = Path(__file__).resolve().parents[1]
    env = dict(os.environ, NUMBA_CPU_NAME="generic", FUSEJIT_CACHE_DIR=str(tmp_path))
    env["PYTHONPATH"] = os.pathsep.join([str(repo), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env.pop("NUMBA_CPU_FEATURES", None)
    out = subprocess.run([sys.executable, "-c", _GENERIC_CHILD], env=env, cwd=repo,
                         capture_output=True, text=True, timeout=300)  # fmt: skip
    assert out.returncode == 0, out.stderr[-2000:]
    res = json.loads(out.stdout.strip().splitlines()[-1])
    assert res["f16c"] is False
    x = np.linspace(-3, 3, 257).astype(np.float16)
    with np.errstate(all="ignore"):
        want = (np.exp(x * np.float16(2) + np.float16(1)) - x).astype(np.float64)
    got = np.array(res["got"])
    assert np.allclose(got, want, rtol=2e-3, atol=1e-3)


@pytest.mark.parametrize("impl", sorted(_HALF_IMPLS))
def test_float16_conversions_match_numpy(impl):
    _h2f_loop, _f2h_loop, _round_loop = _half_loops(*_HALF_IMPLS[impl])
    # every float16 to float32, exactly
    u = np.arange(1 << 16, dtype=np.uint32).astype(np.uint16)
    out = np.empty(u.size, np.float32)
    _h2f_loop(u, out)
    want = u.view(np.float16).astype(np.float32)
    ok = ~np.isnan(want)
    assert np.array_equal(out[ok].view(np.uint32), want[ok].view(np.uint32))
    assert np.isnan(out[~ok]).all()
    # float32 / float64 to float16, rounded to nearest even once: every float16, the midpoints
    # between neighbours and the values next to them (the ties and the double-rounding cases),
    # plus a sweep of bit patterns and random values
    h = u.view(np.float16)
    exact = np.unique(h[np.isfinite(h)].astype(np.float64))
    mids = (exact[1:] + exact[:-1]) / 2
    near = np.concatenate([exact, mids, np.nextafter(mids, np.inf), np.nextafter(mids, -np.inf)])
    sweep = np.arange(0, 2**31 - 1, 4099, dtype=np.int64).astype(np.int32).view(np.float32)
    x32 = np.concatenate(
        [
            near.astype(np.float32),
            sweep,
            -sweep,
            np.array([np.inf, -np.inf, np.nan, 65520, -65520, 1e-8], np.float32),
        ]
    )
    got = np.empty(x32.size, np.uint16)
    _f2h_loop(x32, got)
    _same_half_bits(got, x32)
    back = np.empty(x32.size, np.float32)
    _round_loop(x32, back)
    with np.errstate(all="ignore"):
        want = x32.astype(np.float16).astype(np.float32)
    assert np.array_equal(back, want, equal_nan=True)
    assert np.array_equal(np.signbit(back), np.signbit(want))
    rng = np.random.default_rng(16)
    x64 = np.concatenate(
        [
            near,
            -near,
            rng.standard_normal(200_000) * 1e3,
            rng.standard_normal(200_000) * 1e-5,
            np.array([np.inf, np.nan, 1e300, -1e-300, np.nextafter(65520.0, 0)]),
        ]
    )
    got = np.empty(x64.size, np.uint16)
    _d2h_loop(x64, got)
    _same_half_bits(got, x64)
