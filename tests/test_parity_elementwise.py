"""PyTorch parity of the elementwise ops added for it: fmod, hypot, copysign, logaddexp,
logaddexp2, xlogy, heaviside, frac, trunc, asinh, acosh, atanh, erfc, erfinv, the activations
(selu, hardswish, hardsigmoid, relu6, mish, logsigmoid, softsign, tanhshrink from the op table;
leaky_relu, elu, celu, hardtanh, glu, prelu as compositions) and nan_to_num_.

The op-table entries are also run by the table-driven tests (``tests/test_ops_eager.py``: every
dtype, broadcast shapes, special values against the entry's reference). Here: independent numpy
(or scipy) references, PyTorch's result dtypes and errors, the values PyTorch gives where it
differs from numpy (written out), parameters, views, traced and fused, on every device.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from parity_helpers import DEVICES, assert_close, assert_traced, host, on

import fusejit as F

NAN, INF = float("nan"), float("inf")
FLOATS = ("float16", "float32", "float64")
INTS = ("uint8", "int8", "int16", "int32", "int64")
SPECIAL = [NAN, INF, -INF, 0.0, -0.0, 1.0, -1.0, 0.5, -2.5, 3.0, 1e-3, 30.0]


def on0(v, dtype: str, device: str) -> F.Tensor:
    """A 0-d tensor (``parity_helpers.on`` makes 0-d arrays 1-D: np.ascontiguousarray)."""
    return F.tensor(v, dtype=getattr(F, dtype)).to(device)


def _quiet(fn, *args, **kw):
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return fn(*args, **kw)


def _softplus(x):
    return np.logaddexp(0.0, x)


# name -> (reference on float64 arrays, domain for random values)
UNARY_REFS = {
    "asinh": (np.arcsinh, (-20, 20)),
    "acosh": (np.arccosh, (1, 50)),
    "atanh": (np.arctanh, (-1, 1)),
    "erfc": (np.vectorize(math.erfc, otypes=[np.float64]), (-6, 6)),
    "frac": (lambda x: x - np.trunc(x), (-50, 50)),
    "trunc": (np.trunc, (-50, 50)),
    "selu": (
        lambda x: 1.0507009873554805 * np.where(x > 0, x, 1.6732632423543772 * np.expm1(x)),
        (-10, 10),
    ),
    "hardswish": (lambda x: x * np.minimum(np.maximum(x + 3, 0), 6) / 6, (-8, 8)),
    "hardsigmoid": (lambda x: np.minimum(np.maximum(x + 3, 0), 6) / 6, (-8, 8)),
    "relu6": (lambda x: np.minimum(np.maximum(x, 0), 6), (-10, 10)),
    "mish": (lambda x: x * np.tanh(_softplus(x)), (-20, 20)),
    "logsigmoid": (lambda x: -_softplus(-x), (-30, 30)),
    "softsign": (lambda x: x / (1 + np.abs(x)), (-10, 10)),
    "tanhshrink": (lambda x: x - np.tanh(x), (-5, 5)),
}
BINARY_REFS = {
    "fmod": (np.fmod, (-20, 20)),
    "hypot": (np.hypot, (-1e3, 1e3)),
    "copysign": (np.copysign, (-10, 10)),
    "logaddexp": (np.logaddexp, (-50, 50)),
    "logaddexp2": (np.logaddexp2, (-50, 50)),
    "xlogy": (
        lambda x, y: np.where(np.isnan(y), NAN, np.where(x == 0, 0.0, x * np.log(y))),
        (0, 10),
    ),
    "heaviside": (lambda x, y: np.where(x == 0, y, (x > 0).astype(np.float64)), (-3, 3)),
}
EXACT = {"frac", "trunc", "relu6", "fmod", "copysign", "heaviside"}


def _values(rng, shape, domain, dtype):
    lo, hi = domain
    a = rng.uniform(lo, hi, shape)
    if dtype != "float16" or max(abs(lo), abs(hi)) < 6e4:
        return a.astype(dtype)
    return np.clip(a, -6e4, 6e4).astype(dtype)


def _check(name, got, ins, dtype, ref):
    """``got`` against ``ref`` evaluated in float64 on the inputs, rounded to ``dtype``."""
    want = _quiet(ref, *[np.asarray(a, np.float64) for a in ins])
    want = _quiet(np.asarray(want).astype, dtype)
    exact = name in EXACT
    scale = max([1.0] + [float(np.nanmax(np.abs(a[np.isfinite(a)]), initial=0)) for a in ins])
    assert_close(got, want, exact=exact, ulps=4, scale=scale, what=f"{name} {dtype}")


# ---- the table's entries on every device: dtypes, broadcasting, views, traced ---------------
@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("name", sorted(UNARY_REFS))
def test_unary_ops(name, device):
    ref, domain = UNARY_REFS[name]
    rng = np.random.default_rng(len(name))
    fn = getattr(F, name)
    for dtype in ("float32", "float64", "float16"):
        a = _values(rng, (6, 10), domain, dtype)
        _check(name, _quiet(fn, on(a, device)), [a], dtype, ref)
        # a non-contiguous view (every other column, transposed)
        v = on(a, device)[:, ::2].t()
        _check(name, _quiet(fn, v), [a[:, ::2].T], dtype, ref)
    # special values, 0-d and empty tensors
    s = np.array(SPECIAL, np.float32)
    _check(name, _quiet(fn, on(s, device)), [s], "float32", ref)
    assert fn(on0(0.75, "float64", device)).shape == ()
    assert fn(on(np.zeros((0, 3), np.float32), device)).shape == (0, 3)
    x = on(_values(rng, (4, 8), domain, "float32"), device)
    assert_traced(lambda t: fn(t) * 2, x, exact=name in EXACT)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("name", sorted(BINARY_REFS))
def test_binary_ops(name, device):
    ref, domain = BINARY_REFS[name]
    rng = np.random.default_rng(len(name) + 10)
    fn = getattr(F, name)
    for dtype in ("float32", "float64", "float16"):
        a = _values(rng, (5, 1, 6), domain, dtype)
        b = _values(rng, (4, 6), domain, dtype)
        _check(name, _quiet(fn, on(a, device), on(b, device)), [a, b], dtype, ref)
        # non-contiguous: a transposed view and a strided one
        c, e = _values(rng, (6, 8), domain, dtype), _values(rng, (8, 12), domain, dtype)
        got = _quiet(fn, on(c, device).t(), on(e, device)[:, ::2])
        _check(name, got, [c.T, e[:, ::2]], dtype, ref)
    # every pair of special values
    s = np.array(SPECIAL, np.float64)
    x, y = np.repeat(s, s.size), np.tile(s, s.size)
    _check(name, _quiet(fn, on(x, device), on(y, device)), [x, y], "float64", ref)
    # a Python scalar on either side, 0-d and empty
    a = _values(rng, (7,), domain, "float32")
    _check(name, _quiet(fn, on(a, device), 2.0), [a, np.float64(2.0)], "float32", ref)
    _check(name, _quiet(fn, 2.0, on(a, device)), [np.float64(2.0), a], "float32", ref)
    assert fn(on0(2.0, "float64", device), on0(3.0, "float64", device)).shape == ()
    assert fn(on(np.zeros((0,), np.float32), device), on(a[:1], device)).shape == (0,)
    xa = on(_values(rng, (4, 8), domain, "float32"), device)
    xb = on(_values(rng, (8,), domain, "float32"), device)
    assert_traced(lambda p, q: fn(p, q) + 1, xa, xb, exact=name in EXACT)


# ---- result dtypes and refusals, as PyTorch's -------------------------------------------------
FLOAT_RESULT = ["asinh", "acosh", "atanh", "erfc", "erfinv", "softsign", "tanhshrink"]
FLOAT_ONLY = ["frac", "selu", "hardswish", "hardsigmoid", "mish", "logsigmoid"]
PROMOTE = ["trunc", "relu6"]


@pytest.mark.parametrize("dtype", ["bool", *INTS])
def test_unary_dtypes(dtype):
    x = F.tensor([1, 0, 1], dtype=getattr(F, dtype))
    for name in FLOAT_RESULT:
        if dtype == "bool" and name in ("softsign", "tanhshrink"):
            with pytest.raises(F.DTypeError, match=name):
                getattr(F, name)(x)
            continue
        out = _quiet(getattr(F, name), x)
        assert out.dtype is F.float32, name
        x64 = x.numpy().astype(np.float64)
        want = np.where(x64 == 1, INF, 0.0) if name == "erfinv" else UNARY_REFS[name][0](x64)
        assert_close(out, _quiet(np.asarray(want).astype, np.float32), what=name)
    for name in FLOAT_ONLY:
        with pytest.raises(F.DTypeError, match=name):
            getattr(F, name)(x)
    for name in PROMOTE:
        if dtype == "bool":
            with pytest.raises(F.DTypeError, match=name):
                getattr(F, name)(x)
        else:
            out = getattr(F, name)(x)
            assert out.dtype is x.dtype
            assert out.tolist() == x.tolist()


@pytest.mark.parametrize("dtype", ["bool", *INTS])
def test_binary_dtypes(dtype):
    d = getattr(F, dtype)
    x, y = F.tensor([1, 0, 1], dtype=d), F.tensor([1, 1, 0], dtype=d)
    out = F.copysign(x, y)
    assert out.dtype is F.float32
    assert out.tolist() == [1.0, 0.0, 1.0]
    out = F.xlogy(x, y)
    assert out.dtype is F.float32
    assert_close(out, np.array([0.0, 0.0, -np.inf], np.float32))
    out = F.heaviside(x, y)
    assert out.dtype is d
    assert out.tolist() == ([True, True, True] if dtype == "bool" else [1, 1, 1])
    # tensors of two dtypes promote (PyTorch refuses them: CONTRIBUTING's decision)
    out = F.heaviside(x, F.tensor([0.5, 0.5, 0.5], dtype=F.float64))
    assert out.dtype is F.float64
    assert out.tolist() == ([1.0, 0.5, 1.0])
    for name in ("hypot", "logaddexp", "logaddexp2"):
        with pytest.raises(F.DTypeError, match=name):
            getattr(F, name)(x, y)
    if dtype == "bool":
        with pytest.raises(F.DTypeError, match="fmod"):
            F.fmod(x, y)
    else:
        assert F.fmod(x, y).dtype is d


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", INTS)
def test_integer_fmod(dtype, device):
    """C's truncated remainder (the dividend's sign), eager and fused; by zero it is 0 (numpy's
    and fusejit's %; PyTorch's CPU raises ZeroDivisionError, its CUDA gives garbage)."""
    info = np.iinfo(dtype)
    vals = [0, 1, 7, -7, 100, -100, info.min, info.max, -1, 3, -3]
    v = np.array([x for x in vals if info.min <= x <= info.max], dtype)
    x, y = np.repeat(v, v.size), np.tile(v, v.size)
    with np.errstate(all="ignore"):
        want = np.fmod(x, y)
    got = _quiet(F.fmod, on(x, device), on(y, device))
    assert_close(got, want)
    if dtype != "uint8":
        m = (y != 0) & ~((x == info.min) & (y == -1))
        assert (np.sign(want[m & (want != 0)]) == np.sign(x[m & (want != 0)])).all()
    assert (want[y == 0] == 0).all()
    traced = assert_traced(lambda p, q: F.fmod(p, q) + 1, on(x, device), on(y, device))
    assert traced.kernel_count() == 1


DOCUMENTED = [
    # (function, arguments, PyTorch's result)
    ("fmod", (5.0, -3.0), 2.0), ("fmod", (-5.0, 3.0), -2.0), ("fmod", (1.0, 0.0), NAN),
    ("fmod", (INF, 2.0), NAN), ("fmod", (2.0, INF), 2.0), ("fmod", (-4.0, 2.0), -0.0),
    ("hypot", (INF, NAN), INF), ("hypot", (3.0, -4.0), 5.0),
    ("copysign", (1.0, -0.0), -1.0), ("copysign", (-2.0, 0.0), 2.0),
    ("logaddexp", (INF, INF), INF), ("logaddexp", (-INF, -INF), -INF),
    ("logaddexp", (INF, -INF), INF), ("logaddexp", (NAN, 1.0), NAN),
    ("logaddexp2", (1.0, 1.0), 2.0), ("logaddexp2", (-INF, 3.0), 3.0),
    ("xlogy", (0.0, 0.0), 0.0), ("xlogy", (0.0, INF), 0.0), ("xlogy", (0.0, NAN), NAN),
    ("xlogy", (1.0, 0.0), -INF), ("xlogy", (NAN, 1.0), NAN),
    ("heaviside", (NAN, 0.5), 0.0), ("heaviside", (-0.0, 0.5), 0.5),
    ("heaviside", (-INF, 0.5), 0.0), ("heaviside", (INF, 0.5), 1.0),
    ("frac", (INF,), NAN), ("frac", (-2.0,), 0.0), ("frac", (-2.5,), -0.5), ("frac", (NAN,), NAN),
    ("trunc", (-0.5,), -0.0), ("trunc", (INF,), INF),
    ("asinh", (-0.0,), -0.0), ("asinh", (-INF,), -INF), ("acosh", (0.5,), NAN),
    ("acosh", (1.0,), 0.0), ("atanh", (1.0,), INF), ("atanh", (-1.0,), -INF),
    ("atanh", (2.0,), NAN), ("erfc", (-INF,), 2.0), ("erfc", (INF,), 0.0),
    ("erfinv", (1.0,), INF), ("erfinv", (-1.0,), -INF), ("erfinv", (1.5,), NAN),
    ("erfinv", (-0.0,), -0.0), ("erfinv", (NAN,), NAN),
    ("selu", (-INF,), -1.0507009873554805 * 1.6732632423543772), ("selu", (-0.0,), -0.0),
    ("relu6", (NAN,), NAN), ("relu6", (-0.0,), -0.0), ("relu6", (INF,), 6.0),
    ("relu6", (-INF,), 0.0), ("hardsigmoid", (INF,), 1.0), ("hardsigmoid", (-INF,), 0.0),
    ("hardswish", (INF,), INF), ("mish", (INF,), INF), ("mish", (-INF,), NAN),
    ("logsigmoid", (-INF,), -INF), ("logsigmoid", (INF,), 0.0), ("softsign", (-INF,), NAN),
    ("tanhshrink", (INF,), INF),
]  # fmt: skip


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", FLOATS)
def test_documented_special_values(dtype, device):
    failures = []
    for name, args, want in DOCUMENTED:
        got = _quiet(getattr(F, name), *[on0(a, dtype, device) for a in args])
        g, w = host(got), np.array(want, dtype)
        same = (np.isnan(g) and np.isnan(w)) or (g == w and np.signbit(g) == np.signbit(w))
        if not same and not (name == "selu" and abs(float(g) - float(w)) <= 2e-3 * abs(float(w))):
            failures.append(f"{name}{args}: {g} != {w}")
    assert not failures, failures


# ---- erfinv and erfc against scipy (CPU only) --------------------------------------------------
def test_erfinv_against_scipy():
    special = pytest.importorskip("scipy.special")
    rng = np.random.default_rng(5)
    x = np.concatenate([
        rng.uniform(-1, 1, 20000), 1 - np.logspace(-16, 0, 2000), -(1 - np.logspace(-16, 0, 500)),
        np.logspace(-300, 0, 500), [0.0, -0.0, 1.0, -1.0, 1.5, -3.0, NAN, INF, -INF, 5e-324],
        [np.nextafter(1.0, 0.0), np.nextafter(-1.0, 0.0), 0.5, np.nextafter(0.5, 1.0)],
    ])  # fmt: skip
    want = special.erfinv(x)
    got = F.erfinv(F.from_numpy(x)).numpy()
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    inf = np.isinf(want)
    np.testing.assert_array_equal(got[inf], want[inf])
    fin = np.isfinite(want)
    ulps = np.abs(got[fin] - want[fin]) / np.spacing(np.abs(want[fin]))
    assert ulps.max() <= 3, (ulps.max(), x[fin][ulps.argmax()])
    assert np.signbit(F.erfinv(F.tensor(-0.0, dtype=F.float64)).item())
    # float32: every 97th float32 in [0, 1), and negated
    x32 = np.arange(0, 0x3F800000, 97, dtype=np.uint32).view(np.float32)
    x32 = np.concatenate([x32, -x32])
    got32 = F.erfinv(F.from_numpy(x32)).numpy()
    want32 = special.erfinv(x32.astype(np.float64)).astype(np.float32)
    assert_close(F.from_numpy(got32), want32, ulps=1)
    # the op table's reference (bisection) agrees too
    from fusejit.ops.registry import OPS

    sample = x[:: max(1, x.size // 3000)]
    ref = OPS["erfinv"].ref(sample)
    w = special.erfinv(sample)
    fin = np.isfinite(w)
    assert (np.abs(ref[fin] - w[fin]) <= 3 * np.spacing(np.abs(w[fin]))).all()
    np.testing.assert_array_equal(np.isnan(ref), np.isnan(w))


def test_erfc_against_scipy():
    special = pytest.importorskip("scipy.special")
    x = np.concatenate([np.linspace(-6, 27, 5001), [NAN, INF, -INF, -0.0]])
    for dtype in ("float32", "float64"):
        a = x.astype(dtype)
        got = F.erfc(F.from_numpy(a))
        assert_close(got, special.erfc(a.astype(np.float64)).astype(dtype), ulps=2)


@pytest.mark.parametrize("device", DEVICES)
def test_erfinv_on_device(device):
    rng = np.random.default_rng(9)
    for dtype in FLOATS:
        a = rng.uniform(-1, 1, 500).astype(dtype)
        a[:4] = [1, -1, 0, 0.999]
        got = _quiet(F.erfinv, on(a, device))
        want = F.erfinv(F.from_numpy(a.astype(np.float64))).numpy()  # (float64 on the CPU)
        # (CUDA's erfinvf is within 2 ulp, its erfinv within 5)
        ulps = {"float16": 1, "float32": 4, "float64": 8}[dtype]
        with np.errstate(over="ignore"):
            assert_close(got, want.astype(dtype), ulps=ulps)
        assert host(F.erfinv(on(a, device)).erfc()).dtype == np.dtype(dtype)
    x = on(rng.uniform(-0.9, 0.9, (8, 16)).astype(np.float32), device)
    t = assert_traced(lambda v: F.erfinv(v).erfc() * 2, x, exact=False)
    assert t.kernel_count() == 1


# ---- parameterised activations -----------------------------------------------------------------
def _act_refs():
    return {
        "leaky_relu": (lambda x, s=0.01: np.where(x > 0, x, x * s), {"negative_slope": 0.2}),
        "elu": (lambda x, a=1.0: np.where(x > 0, x, a * np.expm1(x)), {"alpha": 0.7}),
        "celu": (lambda x, a=1.0: np.where(x > 0, x, a * np.expm1(x / a)), {"alpha": 2.5}),
        "hardtanh": (
            lambda x, lo=-1.0, hi=1.0: np.where(x < lo, lo, np.where(x > hi, hi, x)),
            {"min_val": -0.5, "max_val": 2.0},
        ),
    }


_KW_TO_POS = {"negative_slope": "s", "alpha": "a", "min_val": "lo", "max_val": "hi"}


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("name", ["leaky_relu", "elu", "celu", "hardtanh"])
def test_parameterised_activations(name, device):
    ref, kw = _act_refs()[name]
    fn = getattr(F, name)
    rng = np.random.default_rng(3)
    for dtype in FLOATS:
        a = (rng.standard_normal((5, 8)) * 3).astype(dtype)
        a[0, :4] = [NAN, -0.0, INF, -INF]
        for args in ({}, kw):
            rkw = {_KW_TO_POS[k]: v for k, v in args.items()}
            got = _quiet(fn, on(a, device), **args)
            want = _quiet(ref, a.astype(np.float64), **rkw).astype(dtype)
            assert_close(got, want, ulps=4 if dtype != "float16" else 2, scale=10, what=name)
            view = on(a, device).t()[::2]
            want = _quiet(ref, a.T[::2].astype(np.float64), **rkw).astype(dtype)
            assert_close(_quiet(fn, view, **args), want, ulps=4, scale=10, what=name)
    # -0.0 and NaN pass through as PyTorch's kernels give them
    z = host(fn(on(np.array([-0.0, NAN], np.float32), device)))
    assert np.signbit(z[0]) and np.isnan(z[1])
    # empty and 0-d
    assert fn(on(np.zeros((0, 2), np.float32), device)).shape == (0, 2)
    assert fn(on0(-3.0, "float32", device)).shape == ()
    # in place: the input is the result
    x = on(a.astype(np.float32), device)
    want = host(fn(x, **kw))
    assert fn(x, **kw, inplace=True) is x
    assert_close(x, want, exact=True)
    x = on(a.astype(np.float32), device)
    assert getattr(F, name + "_")(x, *kw.values()) is x
    assert_close(x, want, exact=True)
    # traced: one kernel with what comes around it
    xt = on(rng.standard_normal((4, 16)).astype(np.float32), device)
    t = assert_traced(lambda v: fn(v * 2 + 1, **kw) - 0.5, xt, exact=False)
    assert t.kernel_count() == 1


def test_activation_arguments_and_dtypes():
    i = F.tensor([1, -2])
    for fn in (F.leaky_relu, F.elu, F.celu, F.glu):
        with pytest.raises(F.DTypeError, match=fn.__name__):
            fn(i)
    with pytest.raises(F.DTypeError, match="prelu"):
        F.prelu(i, F.tensor([0.25]))
    with pytest.raises(ValueError, match="alpha cannot be 0"):
        F.celu(F.ones(2), 0.0)
    with pytest.raises(ValueError, match="min_val"):
        F.hardtanh(F.ones(2), 1.0, -1.0)
    with pytest.raises(F.DTypeError, match="bool"):
        F.hardtanh(F.tensor([True]))
    with pytest.raises(F.DTypeError, match="negative"):
        F.hardtanh(F.tensor([1], dtype=F.uint8))
    with pytest.raises(F.DTypeError, match="negative_slope"):
        F.leaky_relu(F.ones(2), "0.1")
    # (PyTorch's functional defaults)
    x = F.tensor([-100.0])
    assert F.leaky_relu(x).item() == pytest.approx(-1.0)
    assert F.elu(x).item() == pytest.approx(-1.0)
    assert F.hardtanh(x).item() == -1.0
    assert F.relu6(F.tensor([7.0])).item() == 6.0


@pytest.mark.parametrize("dtype", INTS)
def test_hardtanh_of_integers_keeps_the_dtype(dtype):
    """PyTorch clamps into a tensor of the input's dtype: bounds truncated toward zero."""
    info = np.iinfo(dtype)
    a = np.array([v for v in (info.min, -3, -1, 0, 1, 2, 3, info.max) if v >= info.min], dtype)
    for lo, hi in ((0, 6), (0.5, 2.7), (0.2, 0.8), (1, 1000)) + (
        ((-1.0, 1.0), (-1.5, 0.5), (-2.7, -0.2)) if dtype != "uint8" else ()
    ):
        got = F.hardtanh(F.from_numpy(a), lo, hi)
        want = np.trunc(np.clip(a.astype(np.float64), lo, hi)).astype(dtype)
        assert got.dtype is getattr(F, dtype)
        np.testing.assert_array_equal(got.numpy(), want, err_msg=f"{lo}, {hi}")
    assert F.relu6(F.from_numpy(a)).tolist() == np.clip(a, 0, 6).tolist()


@pytest.mark.parametrize("device", DEVICES)
def test_glu(device):
    rng = np.random.default_rng(4)
    for dtype in FLOATS:
        a = rng.standard_normal((3, 4, 6)).astype(dtype)
        for dim in (-1, 1, 2):
            h = a.shape[dim] // 2
            x64 = a.astype(np.float64)
            first = np.take(x64, range(h), axis=dim)
            second = np.take(x64, range(h, 2 * h), axis=dim)
            want = (first / (1 + np.exp(-second))).astype(dtype)
            assert_close(F.glu(on(a, device), dim), want, ulps=4, what=f"glu {dtype} {dim}")
    with pytest.raises(F.ShapeError, match="even"):
        F.glu(on(np.ones((2, 3), np.float32), device))
    with pytest.raises(F.DimError, match="glu"):
        F.glu(on(np.ones(4, np.float32), device), 2)
    with pytest.raises(F.DimError, match="0-d"):
        F.glu(on0(1.0, "float32", device))
    assert F.glu(on(np.ones((0, 4), np.float32), device)).shape == (0, 2)
    x = on(rng.standard_normal((4, 8)).astype(np.float32), device)
    # (the halves are views of the input: a kernel before glu would be one more)
    t = assert_traced(lambda v: F.glu(v, 1) * 3 + 1, x, exact=False)
    assert t.kernel_count() == 1


@pytest.mark.parametrize("device", DEVICES)
def test_prelu(device):
    rng = np.random.default_rng(6)
    for dtype in FLOATS:
        x = rng.standard_normal((2, 3, 4, 5)).astype(dtype)
        x[0, 0, 0, :3] = [NAN, -0.0, -INF]
        for w in (rng.uniform(0, 1, 3).astype(dtype), np.array([0.25], dtype)):
            wb = w.reshape(1, -1, 1, 1) if w.size == 3 else w
            want = np.where(x > 0, x, wb * x)
            got = F.prelu(on(x, device), on(w, device))
            assert_close(got, want, exact=True, what=f"prelu {dtype} {w.shape}")
        got = F.prelu(on(x, device), on0(0.1, dtype, device))  # a 0-d weight
        assert_close(got, np.where(x > 0, x, np.array(0.1, dtype) * x), exact=True)
    # a 1-D input: one channel; 0-d with one weight
    v = rng.standard_normal(7).astype(np.float32)
    assert_close(F.prelu(on(v, device), on(np.array([0.5], np.float32), device)),
                 np.where(v > 0, v, np.float32(0.5) * v), exact=True)  # fmt: skip
    half = on(np.array([0.5], np.float32), device)
    assert F.prelu(on0(-2.0, "float32", device), half).item() == -1
    with pytest.raises(F.ShapeError, match="channels"):
        F.prelu(on(x, device), on(np.ones(4, x.dtype), device))
    with pytest.raises(F.ShapeError, match="1-D"):
        F.prelu(on(x, device), on(np.ones((3, 1), x.dtype), device))
    with pytest.raises(F.DTypeError, match="one dtype"):
        F.prelu(on(x.astype(np.float32), device), on(np.ones(3, np.float64), device))
    xs = on(rng.standard_normal((4, 3, 5)).astype(np.float32), device)
    ws = on(np.array([0.1, 0.2, 0.3], np.float32), device)
    t = assert_traced(lambda v, w: F.prelu(v + 1, w) * 2, xs, ws)
    assert t.kernel_count() == 1


# ---- in-place forms, methods, nan_to_num_ ------------------------------------------------------
@pytest.mark.parametrize("device", DEVICES)
def test_methods_and_inplace_forms(device):
    a = np.array([-2.5, -0.5, 0.0, 0.5, 3.25], np.float32)
    b = np.array([2.0, -1.0, 3.0, -0.5, 2.0], np.float32)
    x, y = on(a, device), on(b, device)
    assert_close(x.fmod(y), np.fmod(a, b), exact=True)
    assert_close(x.fix(), np.trunc(a), exact=True)
    assert_close(x.arcsinh(), np.arcsinh(a).astype(np.float32), ulps=4)
    assert_close(x.heaviside(y), np.where(a == 0, b, (a > 0).astype(np.float32)), exact=True)
    assert_close(x.copysign(y), np.copysign(a, b), exact=True)
    for name, ref in (
        ("fmod_", lambda: np.fmod(a, b)), ("copysign_", lambda: np.copysign(a, b)),
        ("frac_", lambda: a - np.trunc(a)), ("trunc_", lambda: np.trunc(a)),
        ("hypot_", lambda: np.hypot(a, b)),
    ):  # fmt: skip
        z = on(a, device)
        args = () if name in ("frac_", "trunc_") else (y,)
        assert getattr(z, name)(*args) is z
        assert_close(z, ref().astype(np.float32), ulps=4, what=name)
    z = on(a / 4, device)
    assert z.erfinv_() is z
    assert_close(z, F.erfinv(F.from_numpy(a / 4)).numpy(), ulps=4)
    with pytest.raises(F.DTypeError, match="erfc_"):
        on(np.array([1, 2]), device).erfc_()


@pytest.mark.parametrize("device", DEVICES)
def test_nan_to_num_inplace(device):
    for dtype in FLOATS:
        a = np.array([NAN, INF, -INF, 1.5, -0.0], dtype)
        x = on(a, device)
        assert x.nan_to_num_() is x
        assert_close(x, np.nan_to_num(a), exact=True)
        x = on(a, device)
        F.nan_to_num_(x, nan=1.0, posinf=2.0, neginf=-3.0)
        assert_close(x, np.array([1.0, 2.0, -3.0, 1.5, -0.0], dtype), exact=True)
    i = on(np.array([1, 2]), device)
    assert i.nan_to_num_() is i
    j = F.nan_to_num(i)  # a copy, as PyTorch's
    j[0] = 5
    assert i.tolist() == [1, 2]


# ---- fused chains -------------------------------------------------------------------------------
@pytest.mark.parametrize("device", DEVICES)
def test_a_chain_of_the_new_ops_is_one_kernel(device):
    rng = np.random.default_rng(8)
    x = on(rng.standard_normal((16, 32)).astype(np.float32), device)
    # (one shape: ops on a smaller broadcast operand run in a kernel of their own)
    y = on(rng.uniform(0.5, 2, (16, 32)).astype(np.float32), device)

    def f(p, q):
        h = F.mish(p) + F.selu(p) * F.hardswish(q) - F.logsigmoid(p)
        h = F.logaddexp(h, F.softsign(q)) + F.xlogy(q, F.hypot(p, q)) * F.tanhshrink(p)
        h = F.fmod(h, q) + F.copysign(F.frac(h), p) + F.heaviside(p, q)
        h = F.hardsigmoid(h) + F.relu6(h) + F.asinh(h) + F.erfc(h) + F.logaddexp2(h, p)
        return F.leaky_relu(F.elu(h) + F.celu(h, 0.5), 0.1) + F.hardtanh(h, -2.0, 2.0)

    t = assert_traced(f, x, y, exact=False)
    assert t.kernel_count() == 1
    h = F.from_numpy(rng.uniform(-0.9, 0.9, (8, 8)).astype(np.float32))
    t = assert_traced(
        lambda v: F.atanh(v) + F.acosh(v.abs() + 1) + F.erfinv(v), on(host(h), device), exact=False
    )
    assert t.kernel_count() == 1


def test_docstring_examples():
    import doctest

    from fusejit.eager import activations

    res = doctest.testmod(activations)
    assert res.attempted > 0 and res.failed == 0
