"""Eager ops against numpy, driven by the op table (``fusejit.ops.registry.OPS``).

Every elementwise entry is run on every dtype it allows, on broadcast shapes drawn by hypothesis
(0-d, size-0 and size-1 dims included), with values drawn inside ``op.domain``. Ops marked
``exact`` must equal numpy's result for the same dtype bit for bit; the others are compared with
``op.ref`` evaluated in float64, within a few units in the last place of the result dtype.
Adding an op to the table adds its tests here. Reductions, matmul, movement ops and in-place
writes through views follow.
"""

from __future__ import annotations

import collections
import math
import warnings

import hypothesis.extra.numpy as hnp
import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import fusejit as F
from fusejit.eager import dispatch, recording
from fusejit.ops.registry import OPMATH_RULES, OPS

ALL = (F.bool, F.uint8, F.int8, F.int16, F.int32, F.int64, F.float16, F.float32, F.float64)
FLOATS = (F.float16, F.float32, F.float64)
INTS = (F.uint8, F.int8, F.int16, F.int32, F.int64)
EPS = {F.float16: 2.0**-10, F.float32: 2.0**-23, F.float64: 2.0**-52}
# the dtype float ops compute and accumulate in: float16 goes through float32
ACC = {F.float16: F.float32, F.float32: F.float32, F.float64: F.float64}
ULPS = 4  # allowed error of an inexact op, in units of the result dtype's epsilon

STANDARD_RULES = ("promote", "bool_to_long", "float", "compare", "logical")
ELEMENTWISE = [op for op in OPS.values() if op.kind == "elementwise"]
STANDARD = [op for op in ELEMENTWISE if op.rule in STANDARD_RULES]
UNARY = [op for op in STANDARD if op.arity == 1]
BINARY = [op for op in STANDARD if op.arity == 2]
CASES = [(op, d) for op in STANDARD for d in ALL if d.kind in op.allowed]


def _case_id(case):
    op, d = case
    return f"{op.name}-{d.name}"


# ---- the rules, written out independently of fusejit/ops/registry.py --------------------------
def expected_dtype(op, promoted):
    """Result dtype of elementwise ``op`` whose inputs promote to ``promoted``."""
    if op.rule == "promote":
        return promoted
    if op.rule == "bool_to_long":  # (PyTorch's square and pow count bools as int64)
        return F.int64 if promoted is F.bool else promoted
    if op.rule == "float":
        return promoted if promoted.is_floating_point else F.float32
    if op.rule in ("compare", "logical"):
        return F.bool
    raise AssertionError(f"no test rule for {op.rule!r}")


def compute_dtype(op, promoted):
    """The dtype numpy must see to give the op's exact result (None: the inputs as they are)."""
    if op.rule == "logical":
        return None
    return expected_dtype(op, promoted) if op.rule in ("float", "bool_to_long") else promoted


def weak_promote(d, scalar):
    """A tensor of dtype ``d`` meets a Python scalar: the scalar never widens its own kind."""
    order = {"b": 0, "i": 1, "u": 1, "f": 2}
    kind = "b" if isinstance(scalar, bool) else "i" if isinstance(scalar, int) else "f"
    if order[kind] <= order[d.kind]:
        return d
    return F.float32 if kind == "f" else F.int64


# ---- value generation -------------------------------------------------------------------------
# Hypothesis draws the structure (shapes, strides, a value mix and a seed); numpy's generator,
# seeded by hypothesis, fills the arrays. Drawing every element through hypothesis costs several
# milliseconds per example, and this file runs thousands of examples.
def bounds(d, domain):
    """``domain`` as the closed interval of values of dtype ``d`` inside it."""
    lo, hi = domain
    if d is F.bool:
        return 0, 1
    if d.is_integer:
        info = np.iinfo(d.np)
        return max(math.ceil(lo), int(info.min)), min(math.floor(hi), int(info.max))
    rlo, rhi = d.np.type(lo), d.np.type(hi)
    if rlo < lo:
        rlo = np.nextafter(rlo, d.np.type(np.inf))
    if rhi > hi:
        rhi = np.nextafter(rhi, d.np.type(-np.inf))
    return float(rlo), float(rhi)


def edge_values(d, domain):
    """The values most likely to break an op, inside its domain: the bounds, zeros of both
    signs, +-1, +-0.5, the smallest subnormal, the largest integers of the dtype."""
    lo, hi = bounds(d, domain)
    cand = [lo, hi, 0, 1, -1, 2, -2]
    if d.is_floating_point:
        tiny = float(np.finfo(d.np).smallest_subnormal)
        cand += [-0.0, 0.5, -0.5, tiny, -tiny, (lo + hi) / 2]
    return np.array([v for v in cand if lo <= v <= hi], dtype=d.np)


def fill(seed, d, shape, domain, p_edge):
    rng = np.random.default_rng(seed)
    lo, hi = bounds(d, domain)
    if d is F.bool:
        return np.asarray(rng.random(shape) < 0.5)
    if d.is_integer:
        a = rng.integers(lo, hi, size=shape, endpoint=True).astype(d.np)
    else:
        a = rng.uniform(lo, hi, size=shape).astype(d.np)
    if p_edge:
        e = edge_values(d, domain)
        a = np.where(rng.random(shape) < p_edge, rng.choice(e, size=shape), a).astype(d.np)
    return np.asarray(np.clip(a, lo, hi) if d.is_floating_point else a, dtype=d.np)


@st.composite
def arrays(draw, d, shape, domain=(-10.0, 10.0)):
    """An array of dtype ``d`` and ``shape`` with values inside ``domain``: uniform, edge values
    (bounds, +-0, +-1, subnormals) or a mix; sometimes a strided (non-contiguous) view."""
    shape = tuple(shape)
    strided = len(shape) > 0 and draw(st.booleans(), label="strided")
    full = shape[:-1] + (2 * shape[-1],) if strided else shape
    p_edge = draw(st.sampled_from([0.0, 0.25, 1.0]), label="p_edge")
    a = fill(draw(st.integers(0, 2**32 - 1), label="seed"), d, full, domain, p_edge)
    return a[..., ::2] if strided else a


BShapes = collections.namedtuple("BShapes", ["input_shapes", "result_shape"])


@st.composite
def shapes(draw, arity, max_dims=3):
    """Shapes of ``arity`` inputs that broadcast together (0-d, size-0 and size-1 dims
    included): a result shape, then each input keeps some trailing dims, some set to 1."""
    nd = draw(st.integers(0, max_dims), label="ndim")
    result = [draw(st.sampled_from((2, 1, 3, 0, 4)), label="side") for _ in range(nd)]
    ins = []
    for _ in range(arity):
        k = draw(st.integers(0, nd), label="kept dims")
        ones = draw(st.integers(0, 2**k - 1), label="size-1 dims") if k else 0
        ins.append(tuple(1 if ones >> i & 1 else s for i, s in enumerate(result[nd - k :])))
    res = tuple(np.broadcast_shapes(*ins))
    return BShapes(tuple(ins), res)


# ---- comparisons ------------------------------------------------------------------------------
def assert_same(actual, expected):
    """Equal values (NaN equals NaN) and equal signs of zero."""
    np.testing.assert_array_equal(actual, expected)
    if actual.dtype.kind == "f":
        keep = ~np.isnan(expected)
        np.testing.assert_array_equal(np.signbit(actual[keep]), np.signbit(expected[keep]),
                                      err_msg="signs of zero differ")  # fmt: skip


def assert_close(actual, ref, d, atol=0.0, ulps=ULPS):
    """``actual`` (dtype ``d``) against the float64 reference ``ref``: NaNs and infinities in the
    same places, finite values within ``ulps`` of ``d`` relative plus ``atol`` absolute."""
    actual = np.asarray(actual)
    assert actual.dtype == d.np, (actual.dtype, d)
    ref = np.asarray(ref, dtype=np.float64)
    with np.errstate(all="ignore"):
        ref_d = ref.astype(d.np)  # where the reference overflows d, the result must too
    a = actual.astype(np.float64)
    np.testing.assert_array_equal(np.isnan(a), np.isnan(ref), err_msg="NaNs differ")
    inf = np.isinf(ref_d)
    np.testing.assert_array_equal(a[inf], ref_d[inf].astype(np.float64), err_msg="infs differ")
    fin = ~np.isnan(ref) & ~inf
    tiny = float(np.finfo(d.np).smallest_subnormal)
    np.testing.assert_allclose(a[fin], ref[fin], rtol=ulps * EPS[d], atol=atol + 2 * tiny)


def scale_of(arrays):
    """max(1, largest finite |input|): the absolute error scale of ops that cancel (gelu, ...)."""
    m = 1.0
    for a in arrays:
        a = np.asarray(a, dtype=np.float64)
        a = a[np.isfinite(a)]
        if a.size:
            m = max(m, float(np.abs(a).max()))
    return m


def check_elementwise(op, arrays, out, promoted):
    """``out`` (a fusejit tensor) against numpy for elementwise ``op`` on numpy ``arrays``."""
    res_dtype = expected_dtype(op, promoted)
    assert out.dtype is res_dtype, (op.name, out.dtype, res_dtype)
    actual = out.numpy()
    assert actual.dtype == res_dtype.np
    comp = compute_dtype(op, promoted)
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        if op.exact or not res_dtype.is_floating_point:
            ins = [a if comp is None else np.asarray(a).astype(comp.np) for a in arrays]
            expected = np.asarray(op.ref(*ins)).astype(res_dtype.np)
            assert_same(actual, expected)
        else:
            ref = op.ref(*[np.asarray(a, dtype=np.float64) for a in arrays])
            c = ACC[res_dtype]
            assert_close(actual, ref, res_dtype, atol=ULPS * EPS[c] * scale_of(arrays))


def run(op, *args):
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return getattr(F, op.name)(*args)


# ---- elementwise: the table ------------------------------------------------------------------
def test_table_rules_are_all_tested():
    """A new dtype rule needs a test rule here (where and cast have their own tests)."""
    for op in ELEMENTWISE:
        assert op.rule in STANDARD_RULES + ("where", "cast"), op
        assert op.ref is not None, f"{op.name} has no numpy reference"
        lo, hi = op.domain
        assert lo < hi
    assert len(CASES) > 300


@pytest.mark.parametrize("case", CASES, ids=_case_id)
@settings(max_examples=10)
@given(data=st.data())
def test_elementwise(case, data):
    """Every elementwise op x every dtype it allows x broadcast shapes, against numpy."""
    op, d = case
    # ops without a numpy function compile a kernel per rank and layout: keep to 2 dims there
    sh = data.draw(shapes(op.arity, max_dims=3 if op.np_name else 2))
    ins = [data.draw(arrays(d, s, op.domain)) for s in sh.input_shapes]
    before = [a.copy() for a in ins]
    out = run(op, *[F.from_numpy(a) for a in ins])
    assert out.shape == sh.result_shape
    check_elementwise(op, ins, out, d)
    for a, b in zip(ins, before, strict=True):
        np.testing.assert_array_equal(a, b, err_msg="an input was modified")


def promote_with_shapes(dx, shape_x, dy, shape_y):
    """PyTorch's rule, written out: a 0-d tensor beside a tensor with dimensions counts only
    when its category (bool < integer < float) is above that tensor's; two tensors of the same
    kind of shape promote by the table."""
    category = {"b": 0, "i": 1, "u": 1, "f": 2}
    if (len(shape_x) == 0) == (len(shape_y) == 0):
        return F.promote_types(dx, dy)
    (dd, d0) = (dx, dy) if len(shape_y) == 0 else (dy, dx)
    return F.promote_types(dx, dy) if category[d0.kind] > category[dd.kind] else dd


def _allowed_dtypes(op):
    return [d for d in ALL if d.kind in op.allowed]


@pytest.mark.parametrize("op", BINARY, ids=lambda op: op.name)
@given(data=st.data())
def test_elementwise_mixed_dtypes(op, data):
    """Tensors of two dtypes: the result dtype follows the promotion table and the values equal
    numpy's on the inputs converted to the promoted dtype."""
    dx = data.draw(st.sampled_from(_allowed_dtypes(op)), label="dx")
    dy = data.draw(st.sampled_from(_allowed_dtypes(op)), label="dy")
    sh = data.draw(shapes(2, max_dims=2))
    promoted = promote_with_shapes(dx, sh.input_shapes[0], dy, sh.input_shapes[1])
    # values that fit both dtypes, so that the conversion to the promoted dtype is exact
    x = data.draw(arrays(dx, sh.input_shapes[0], op.domain))
    y = data.draw(arrays(dy, sh.input_shapes[1], op.domain))
    out = run(op, F.from_numpy(x), F.from_numpy(y))
    assert out.shape == sh.result_shape
    check_elementwise(op, [x, y], out, promoted)


SCALARS = (True, False, 0, 1, 2, 3, -2, 7, 0.5, 2.5, -1.25, 3.0)


@pytest.mark.parametrize("op", BINARY, ids=lambda op: op.name)
@given(data=st.data())
def test_elementwise_with_python_scalar(op, data):
    """A Python scalar on either side is weak: the tensor's dtype wins inside its kind."""
    d = data.draw(st.sampled_from(_allowed_dtypes(op)), label="dtype")
    lo, hi = op.domain
    s = data.draw(st.sampled_from([v for v in SCALARS if lo <= v <= hi]), label="scalar")
    if d is F.uint8 and type(s) is int and s < 0:
        s = -s
    x = data.draw(arrays(d, data.draw(hnp.array_shapes(min_dims=0, max_dims=2, min_side=0)),
                         op.domain))  # fmt: skip
    scalar_first = data.draw(st.booleans(), label="scalar_first")
    promoted = weak_promote(d, s)
    args = (s, F.from_numpy(x)) if scalar_first else (F.from_numpy(x), s)
    if promoted.kind not in op.allowed:
        with pytest.raises(F.DTypeError, match=op.name):
            run(op, *args)
        return
    out = run(op, *args)
    assert out.shape == x.shape
    res_dtype = expected_dtype(op, promoted)
    assert out.dtype is res_dtype
    comp = compute_dtype(op, promoted)
    if promoted is F.float16 and not isinstance(s, bool) and op.rule in OPMATH_RULES:
        # float16 with a Python number computes in float32 (opmath), the result rounded once:
        # the reference too (numpy's float16 and float32 minimum return other zeros of a tie)
        comp = F.float32
    xs = x if comp is None else x.astype(comp.np)
    with np.errstate(all="ignore"):
        if op.exact or not res_dtype.is_floating_point:
            # numpy 2 treats Python scalars as weak too (NEP 50)
            expected = op.ref(*((s, xs) if scalar_first else (xs, s)))
            assert_same(out.numpy(), np.asarray(expected).astype(res_dtype.np))
        else:
            sx, x64 = np.float64(s), x.astype(np.float64)
            ref = op.ref(*((sx, x64) if scalar_first else (x64, sx)))
            atol = ULPS * EPS[ACC[res_dtype]] * scale_of([x, [s]])
            assert_close(out.numpy(), ref, res_dtype, atol=atol)


@pytest.mark.parametrize("op", [op for op in UNARY if op.methods], ids=lambda op: op.name)
def test_unary_methods_and_operators(op):
    """Every method name of the table entry (``x.exp()``, ``-x``, ``abs(x)``) is the op."""
    d = F.float32 if "f" in op.allowed else F.int32
    x = F.from_numpy(fill(0, d, (5,), op.domain, 0.5))
    expected = run(op, x).numpy()
    for m in op.methods:
        np.testing.assert_array_equal(getattr(x, m)(), expected)


@pytest.mark.parametrize("op", [op for op in BINARY if op.methods], ids=lambda op: op.name)
def test_binary_methods_and_operators(op):
    """Methods, operators, reflected operators and the in-place form of each binary op."""
    lo, hi = op.domain
    d = F.float32 if "f" in op.allowed else F.int32
    xv, yv = [max(lo, 1), min(hi, 2)], [min(hi, 2), max(lo, 1)]
    x, y = F.tensor(xv, dtype=d), F.tensor(yv, dtype=d)
    expected = run(op, x, y).numpy()
    for m in op.methods:
        np.testing.assert_array_equal(getattr(x, m)(y), expected)
    for m in op.rmethods:  # x.__radd__(y) is y + x
        np.testing.assert_array_equal(getattr(y, m)(x), expected)
    s = yv[0]
    for m in op.rmethods:
        np.testing.assert_array_equal(getattr(x, m)(s), run(op, s, x).numpy())
    if op.inplace:
        z = x.clone()
        assert getattr(z, op.inplace)(y) is z
        np.testing.assert_array_equal(z.numpy(), expected)


@pytest.mark.parametrize("case", CASES, ids=_case_id)
def test_fast_path_equals_general_path(case):
    """The generated op functions take a fast path for tensors of one dtype (and for a tensor
    with a Python scalar); ``dispatch.elementwise`` is the general path. Both must agree."""
    op, d = case
    ins = [fill(i, d, s, op.domain, 0.25) for i, s in enumerate([(2, 3), (3,), ()][: op.arity])]
    ts = [F.from_numpy(a) for a in ins]
    calls = [tuple(ts)]
    if op.arity == 2:
        for s in (2, 1.5, True):
            if weak_promote(d, s).kind in op.allowed:
                calls += [(ts[0], s), (s, ts[0])]
    with np.errstate(all="ignore"):
        for args in calls:
            fast, general = run(op, *args), dispatch.elementwise(op, args)
            assert fast.dtype is general.dtype and fast.shape == general.shape
            assert_same(fast.numpy(), general.numpy())


class _Recorder:
    """A stand-in for the JIT's tracer: records the op of every dispatched call."""

    def __init__(self):
        self.ops = []

    def record(self, op, args, attrs, outs):
        self.ops.append(op.name)

    def knows(self, t):
        return False

    def unsupported(self, what):
        raise AssertionError(what)


def test_fast_paths_step_aside_while_a_trace_records(monkeypatch):
    x, y = F.ones(3), F.full((3,), 2.0)
    rec = _Recorder()
    monkeypatch.setattr(recording, "TRACER", rec)
    z = x + y
    x * 2.0, 2.0 * x, -x, F.exp(x), F.relu(x), F.where(x > 0, x, y), x.half(), x.sum()
    x.reshape(3, 1), x[1:], x.T
    assert rec.ops == ["add", "mul", "mul", "neg", "exp", "relu", "gt", "where", "cast", "sum",
                       "reshape", "getitem", "permute"]  # fmt: skip
    monkeypatch.setattr(recording, "TRACER", None)
    assert z.tolist() == [3.0, 3.0, 3.0]


def test_where():
    c = F.tensor([[True, False, True]])
    x = F.tensor([[1.0], [2.0]])
    y = F.tensor([10, 20, 30], dtype=F.int32)
    out = F.where(c, x, y)
    assert out.dtype is F.float32 and out.shape == (2, 3)
    np.testing.assert_array_equal(out.numpy(), np.where(c.numpy(), x.numpy(), y.numpy()))
    assert F.where(c, F.tensor([1, 2, 3], dtype=F.int8), 2.5).dtype is F.float32
    assert F.where(c, F.tensor([1, 2, 3], dtype=F.int8), 3).dtype is F.int8
    assert x.where(x > 1, 0.0).tolist() == [[0.0], [2.0]]


@pytest.mark.parametrize(
    "a,b,dtype",
    [(1.5, 2.5, F.float32), (1, 2, F.int64), (True, False, F.bool), (1, 2.5, F.float32)],
)
def test_where_with_two_scalars(a, b, dtype):
    """where(cond, scalar, scalar): the dtype of the scalars alone, in the data too."""
    out = F.where(F.tensor([True, False]), a, b)
    assert out.dtype is dtype
    assert out.numpy().dtype == dtype.np
    assert out.tolist() == [a, b]


@pytest.mark.parametrize("src", ALL, ids=lambda d: d.name)
@pytest.mark.parametrize("dst", ALL, ids=lambda d: d.name)
def test_cast(src, dst):
    """cast / .to(dtype) equals numpy's astype (float to int truncates toward zero)."""
    vals = {"b": [True, False, True], "u": [0, 7, 200], "i": [-7, 0, 100]}.get(
        src.kind, [-2.75, 0.0, 100.5]
    )
    x = F.tensor(vals, dtype=src)
    out = x.to(dst)
    assert out.dtype is dst
    assert_same(out.numpy(), x.numpy().astype(dst.np))
    assert_same(F.cast(x, dst).numpy(), x.numpy().astype(dst.np))


# ---- special values ---------------------------------------------------------------------------
SPECIALS = [np.nan, np.inf, -np.inf, 0.0, -0.0, 1.0, -1.0, 0.5, -0.5, 2.0, -3.0, 1e-3, 30.0]
FLOAT_OPS = [op for op in STANDARD if "f" in op.allowed]


@pytest.mark.parametrize("d", FLOATS, ids=lambda d: d.name)
@pytest.mark.parametrize("op", FLOAT_OPS, ids=lambda op: op.name)
def test_special_values_against_numpy(op, d):
    """NaN, +-inf and +-0.0 (every pair of them for binary ops), against the reference."""
    v = np.array(SPECIALS, dtype=d.np)
    ins = [v] if op.arity == 1 else [np.repeat(v, v.size), np.tile(v, v.size)]
    out = run(op, *[F.from_numpy(a) for a in ins])
    check_elementwise(op, ins, out, d)


NAN, INF = float("nan"), float("inf")
# (op, inputs, expected): what numpy gives, and what fusejit must give, written out
DOCUMENTED = [
    ("exp", (-INF,), 0.0), ("exp", (INF,), INF), ("exp", (NAN,), NAN),
    ("log", (0.0,), -INF), ("log", (-0.0,), -INF), ("log", (-1.0,), NAN), ("log1p", (-1.0,), -INF),
    ("sqrt", (-1.0,), NAN), ("sqrt", (-0.0,), -0.0), ("rsqrt", (0.0,), INF),
    ("rsqrt", (-1.0,), NAN), ("reciprocal", (-0.0,), -INF),
    ("relu", (NAN,), NAN), ("relu", (-0.0,), -0.0), ("relu", (-INF,), 0.0), ("relu", (INF,), INF),
    ("maximum", (NAN, 1.0), NAN), ("maximum", (1.0, NAN), NAN), ("minimum", (NAN, 1.0), NAN),
    ("minimum", (1.0, NAN), NAN), ("maximum", (NAN, NAN), NAN), ("maximum", (-INF, 0.0), 0.0),
    ("sign", (-0.0,), 0.0), ("sign", (0.0,), 0.0), ("sign", (NAN,), NAN), ("sign", (-INF,), -1.0),
    ("abs", (-0.0,), 0.0), ("neg", (0.0,), -0.0), ("sigmoid", (-INF,), 0.0),
    ("sigmoid", (INF,), 1.0), ("tanh", (-INF,), -1.0), ("erf", (INF,), 1.0), ("erf", (-0.0,), -0.0),
    ("softplus", (INF,), INF), ("softplus", (-INF,), 0.0), ("gelu", (INF,), INF),
    ("silu", (INF,), INF), ("div", (1.0, 0.0), INF), ("div", (-1.0, 0.0), -INF),
    ("div", (0.0, 0.0), NAN), ("div", (1.0, -0.0), -INF), ("floor_divide", (1.0, 0.0), INF),
    ("remainder", (5.0, -3.0), -1.0), ("remainder", (-5.0, 3.0), 1.0),
    ("remainder", (1.0, 0.0), NAN), ("pow", (0.0, 0.0), 1.0), ("pow", (NAN, 0.0), 1.0),
    ("pow", (1.0, NAN), 1.0), ("atan2", (0.0, -0.0), math.pi), ("atan2", (-0.0, -0.0), -math.pi),
    ("isnan", (NAN,), True), ("isinf", (-INF,), True), ("isfinite", (INF,), False),
    ("eq", (NAN, NAN), False), ("ne", (NAN, NAN), True), ("eq", (0.0, -0.0), True),
    ("round", (2.5,), 2.0), ("round", (-0.5,), -0.0), ("trunc", (-0.5,), -0.0),
]  # fmt: skip


@pytest.mark.parametrize("d", FLOATS, ids=lambda d: d.name)
@pytest.mark.parametrize("name,args,expected", DOCUMENTED,
                         ids=[f"{n}{a}" for n, a, _ in DOCUMENTED])  # fmt: skip
def test_documented_special_values(name, args, expected, d):
    op = OPS[name]
    ins = [np.array(a, dtype=d.np) for a in args]
    with np.errstate(all="ignore"):
        ref = np.asarray(op.ref(*ins))
    out = run(op, *[F.tensor(a, dtype=d) for a in args]).numpy()
    exp = np.asarray(expected, dtype=out.dtype)
    assert_same(out, exp)
    assert_same(ref.astype(out.dtype), exp)  # the reference agrees with the written value


@pytest.mark.parametrize("d", FLOATS, ids=lambda d: d.name)
def test_maximum_of_signed_zeros_is_zero(d):
    """maximum/minimum of 0.0 and -0.0 give a zero of either sign (numpy's float16 loops give
    the first argument, its float32/float64 loops the second), equal to 0."""
    z, nz = F.tensor([0.0, -0.0], dtype=d), F.tensor([-0.0, 0.0], dtype=d)
    for fn in (F.maximum, F.minimum):
        out = fn(z, nz)
        assert out.tolist() == [0.0, 0.0]
        assert_same(out.numpy(), OPS[fn.__name__].ref(z.numpy(), nz.numpy()))


@pytest.mark.parametrize("d", INTS, ids=lambda d: d.name)
@pytest.mark.parametrize("name", ["floor_divide", "remainder"])
def test_integer_division_by_zero_is_zero(name, d):
    """As numpy: x // 0 and x % 0 are 0 for integers, with a RuntimeWarning."""
    x = F.tensor([0, 1, 7, 100], dtype=d)
    z = F.zeros(4, dtype=d)
    with pytest.warns(RuntimeWarning, match="divide by zero"):
        out = getattr(F, name)(x, z)
    assert out.dtype is d
    assert out.tolist() == [0, 0, 0, 0]
    with np.errstate(all="ignore"):
        np.testing.assert_array_equal(out.numpy(), OPS[name].ref(x.numpy(), z.numpy()))
    with pytest.warns(RuntimeWarning):
        assert getattr(F, name)(x, 0).tolist() == [0, 0, 0, 0]


@pytest.mark.parametrize("d", INTS, ids=lambda d: d.name)
def test_integer_true_division_is_float32(d):
    x = F.tensor([0, 1, 6], dtype=d)
    with np.errstate(all="ignore"):
        out = x / F.tensor([0, 0, 4], dtype=d)
    assert out.dtype is F.float32
    assert_same(out.numpy(), np.array([np.nan, np.inf, 1.5], np.float32))
    assert (x / 2).dtype is F.float32


def test_integer_pow_to_negative_power_is_an_error():
    with pytest.raises(F.FusejitError, match="pow"):
        F.tensor([2, 3]) ** F.tensor([1, -1])
    assert (F.tensor([2, 3]) ** -1.0).tolist() == [0.5, pytest.approx(1 / 3)]


# ---- the table's expressions (what fused kernels run) equal numpy -----------------------------
def _expr_kernel(ops, d):
    """One generated CPU kernel computing every op in ``ops`` on the same inputs of dtype d."""
    from fusejit.backends.cpu_kernels import cpu_kernel

    from fusejit.base import dtypes as fdt
    from fusejit.codegen.body import KernelBody, Step

    steps = []
    for op in ops:
        c = compute_dtype(op, d) or d
        steps.append(Step(op.name, tuple(("in", i) for i in range(op.arity)), (), c.name,
                          expected_dtype(op, d).name))  # fmt: skip
    body = KernelBody(in_dtypes=(d.name,) * ops[0].arity, steps=tuple(steps),
                      outputs=tuple(("t", j) for j in range(len(steps))))  # fmt: skip
    assert all(fdt.as_dtype(n) for n in body.out_dtypes())
    return cpu_kernel(body, 1)


EXPR_VALUES = {
    "f": SPECIALS,
    "i": [0, 1, -1, 2, -2, 3, -7, 7, 100, -100],
    "u": [0, 1, 2, 3, 7, 100, 200, 255],
    "b": [False, True],
}


@pytest.mark.parametrize("d", [F.float32, F.int32, F.uint8, F.bool], ids=lambda d: d.name)
@pytest.mark.parametrize("arity", [1, 2])
def test_op_expressions_match_eager(arity, d):
    """The table's ``expr`` of each op, compiled into a kernel, gives what eager dispatch gives
    (numpy's ufunc where the op has one) on special values: fused code must equal eager code."""
    # on int and bool inputs, the ops computed in float32 are the float32 kernel after a cast:
    # only those computed in the input dtype are new there (and not int pow: negative powers)
    ops = [
        op
        for op in STANDARD
        if op.arity == arity
        and d.kind in op.allowed
        and (d.is_floating_point or op.rule != "float")
        and not (op.name == "pow" and d.kind == "i")
    ]
    v = np.array(EXPR_VALUES[d.kind], dtype=d.np)
    ins = [v] if arity == 1 else [np.repeat(v, v.size), np.tile(v, v.size)]
    with np.errstate(all="ignore"):
        outs = _expr_kernel(ops, d)(*ins)
    failures = []
    for op, got in zip(ops, outs, strict=True):
        eager = run(op, *[F.from_numpy(a) for a in ins]).numpy()
        try:
            if op.exact or eager.dtype.kind != "f":
                assert_same(got, eager)
            else:
                res = _dt(eager)
                assert_close(got, eager.astype(np.float64), res,
                             atol=ULPS * EPS[ACC[res]] * scale_of(ins))  # fmt: skip
        except AssertionError as e:
            failures.append(f"{op.name} ({op.expr}): {str(e).strip()[:300]}")
    assert not failures, "\n".join(failures)


# ---- reductions -------------------------------------------------------------------------------
@st.composite
def reduce_args(draw, dtypes, domain=(-10.0, 10.0), allow_tuple=True, min_side=0):
    d = draw(st.sampled_from(dtypes), label="dtype")
    shape = draw(hnp.array_shapes(min_dims=0, max_dims=3, min_side=min_side, max_side=4))
    x = draw(arrays(d, shape, domain))
    nd = len(shape)
    choices = [st.none()]
    if nd:
        choices.append(st.integers(-nd, nd - 1))
        if allow_tuple:
            choices.append(
                st.lists(st.integers(0, nd - 1), min_size=1, max_size=nd, unique=True).map(
                    lambda ds: tuple(x - nd if i % 2 else x for i, x in enumerate(ds))
                )
            )
    dim = draw(st.one_of(*choices), label="dim")
    keepdim = draw(st.booleans(), label="keepdim")
    return d, x, dim, keepdim


def np_axis(dim):
    return dim if dim is None or isinstance(dim, int) else tuple(dim)


def n_reduced(x, dim):
    if dim is None:
        return max(x.size, 1)
    dims = (dim,) if isinstance(dim, int) else dim
    return max(math.prod(x.shape[i] for i in dims), 1)


def float_result(d):
    return d if d.is_floating_point else F.float32


SUM_DTYPES = ALL
NUM_DTYPES = [d for d in ALL if d is not F.bool]


@given(args=reduce_args(SUM_DTYPES))
def test_sum(args):
    d, x, dim, keepdim = args
    out = F.sum(F.from_numpy(x), dim=dim, keepdim=keepdim)
    ref = np.sum(x.astype(np.float64 if d.is_floating_point else np.int64), axis=np_axis(dim),
                 keepdims=keepdim)  # fmt: skip
    if not d.is_floating_point:
        assert out.dtype is F.int64
        assert_same(out.numpy(), np.asarray(ref))
        return
    assert out.dtype is d
    n = n_reduced(x, dim)
    bound = np.sum(np.abs(x.astype(np.float64)), axis=np_axis(dim), keepdims=keepdim)
    assert_close(out.numpy(), ref, d, atol=n * EPS[ACC[d]] * float(np.max(bound, initial=0)))


@given(args=reduce_args(SUM_DTYPES, domain=(-2.0, 2.0)))
def test_prod(args):
    d, x, dim, keepdim = args
    out = F.prod(F.from_numpy(x), dim=dim, keepdim=keepdim)
    if not d.is_floating_point:
        assert out.dtype is F.int64
        ref = np.prod(x.astype(np.int64), axis=np_axis(dim), keepdims=keepdim)
        assert_same(out.numpy(), np.asarray(ref))
        return
    assert out.dtype is d
    ref = np.prod(x.astype(np.float64), axis=np_axis(dim), keepdims=keepdim)
    n = n_reduced(x, dim)
    assert_close(out.numpy(), ref, d, ulps=ULPS + 2 * n * EPS[ACC[d]] / EPS[d])


@given(args=reduce_args(NUM_DTYPES, min_side=1))
def test_mean(args):
    d, x, dim, keepdim = args
    out = F.mean(F.from_numpy(x), dim=dim, keepdim=keepdim)
    res = float_result(d)
    assert out.dtype is res
    ref = np.mean(x.astype(np.float64), axis=np_axis(dim), keepdims=keepdim)
    bound = np.max(np.abs(x), initial=0)
    assert_close(out.numpy(), ref, res, atol=n_reduced(x, dim) * EPS[ACC[res]] * float(bound))


@given(args=reduce_args(NUM_DTYPES, min_side=1), correction=st.sampled_from([0, 1, 2]),
       sqrt=st.booleans())  # fmt: skip
def test_var_std(args, correction, sqrt):
    d, x, dim, keepdim = args
    n = n_reduced(x, dim)
    fn = F.std if sqrt else F.var
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        out = fn(F.from_numpy(x), dim=dim, correction=correction, keepdim=keepdim)
        ref = (np.std if sqrt else np.var)(x.astype(np.float64), axis=np_axis(dim),
                                           ddof=correction, keepdims=keepdim)  # fmt: skip
    res = float_result(d)
    assert out.dtype is res
    # the error of a two-pass variance: n roundings of squares of values up to max|x - mean|
    spread = float(np.ptp(x.astype(np.float64))) if x.size else 0.0
    atol = 4 * n * EPS[ACC[res]] * spread**2 / max(n - correction, 1)
    if sqrt:  # d sqrt(v) = dv / (2 sqrt(v)): absolute error up to sqrt(atol)
        atol = math.sqrt(atol)
    assert_close(out.numpy(), ref, res, atol=atol)


def test_var_unbiased_and_defaults():
    x = F.tensor([1.0, 2.0, 4.0, 7.0])
    v = np.var([1.0, 2.0, 4.0, 7.0], ddof=1)
    assert x.var().item() == pytest.approx(v)
    assert x.var(unbiased=False).item() == pytest.approx(np.var([1.0, 2.0, 4.0, 7.0]))
    assert x.std(correction=0).item() == pytest.approx(np.std([1.0, 2.0, 4.0, 7.0]))
    assert F.tensor([1, 2, 4, 7]).var().dtype is F.float32


@pytest.mark.parametrize("name", ["amax", "amin"])
@given(args=reduce_args(ALL, min_side=1))
def test_amax_amin(name, args):
    d, x, dim, keepdim = args
    out = getattr(F, name)(F.from_numpy(x), dim=dim, keepdim=keepdim)
    assert out.dtype is d
    ref = (np.max if name == "amax" else np.min)(x, axis=np_axis(dim), keepdims=keepdim)
    assert_same(out.numpy(), np.asarray(ref))


@pytest.mark.parametrize("name", ["argmax", "argmin"])
@given(args=reduce_args(ALL, allow_tuple=False, min_side=1))
def test_argmax_argmin(name, args):
    """First index of the extreme value, as numpy; int64."""
    d, x, dim, keepdim = args
    out = getattr(F, name)(F.from_numpy(x), dim=dim, keepdim=keepdim)
    assert out.dtype is F.int64
    ref = getattr(np, name)(x, axis=dim, keepdims=keepdim) if x.ndim else np.int64(0)
    if x.ndim == 0 and keepdim:
        ref = np.asarray(0)
    assert_same(out.numpy(), np.asarray(ref, dtype=np.int64))


@pytest.mark.parametrize("name", ["max", "min"])
@given(args=reduce_args(ALL, allow_tuple=False, min_side=1))
def test_max_min_with_dim(name, args):
    """max(x, dim) gives (values, indices); max(x) the largest element; max(x, y) elementwise."""
    d, x, dim, keepdim = args
    t = F.from_numpy(x)
    fn = getattr(F, name)
    npf, argf = (np.max, np.argmax) if name == "max" else (np.min, np.argmin)
    if dim is None:
        out = fn(t)
        assert out.dtype is d
        assert_same(out.numpy(), np.asarray(npf(x)))
        return
    vals, idx = fn(t, dim, keepdim=keepdim)
    assert vals.dtype is d and idx.dtype is F.int64
    if x.ndim == 0:
        assert vals.item() == x.item() and idx.item() == 0
        return
    assert_same(idx.numpy(), np.asarray(argf(x, axis=dim, keepdims=keepdim)))
    # the values are the elements at the indices (as in PyTorch), bit for bit; numpy's own max
    # gives the same values, but which zero it keeps among +0.0 and -0.0 depends on its SIMD
    # path, so only the values are compared with it
    at = np.take_along_axis(x, idx.numpy() if keepdim else np.expand_dims(idx.numpy(), dim), dim)
    assert_same(vals.numpy(), at if keepdim else np.squeeze(at, dim))
    np.testing.assert_array_equal(vals.numpy(), np.asarray(npf(x, axis=dim, keepdims=keepdim)))
    res = getattr(t, name)(dim, keepdim)
    assert_same(res.values.numpy(), vals.numpy())
    assert_same(res.indices.numpy(), idx.numpy())


def test_max_min_with_dim_take_the_first_of_equal_zeros():
    x = np.array([[-0.0, 1.0, 0.0], [0.0, 1.0, -0.0]], np.float32)
    for fn in (F.max, F.min):
        vals, idx = fn(F.from_numpy(x), 0)
        assert idx.tolist() == [0, 0, 0]
        assert np.signbit(vals.numpy()).tolist() == [True, False, False]


def test_max_of_two_tensors_is_maximum():
    a, b = F.tensor([1.0, 5.0]), F.tensor([3.0, 2.0])
    assert F.max(a, b).tolist() == [3.0, 5.0]
    assert F.min(a, b).tolist() == [1.0, 2.0]


@given(args=reduce_args([d for d in NUM_DTYPES], min_side=1))
def test_logsumexp(args):
    d, x, dim, keepdim = args
    out = F.logsumexp(F.from_numpy(x), dim=dim, keepdim=keepdim)
    res = float_result(d)
    assert out.dtype is res
    x64 = x.astype(np.float64)
    ref = np.log(np.sum(np.exp(x64), axis=np_axis(dim), keepdims=keepdim))
    # log of a sum of n positive terms: relative error n eps of the sum, absolute in the log
    atol = (n_reduced(x, dim) + 2) * EPS[ACC[res]] * 2 * scale_of([x])
    assert_close(out.numpy(), ref, res, atol=atol)


def test_logsumexp_infinities():
    x = F.tensor([[1.0, 2.0], [-INF, -INF], [INF, 1.0]])
    with np.errstate(all="ignore"):
        out = F.logsumexp(x, 1).numpy()
    assert out[0] == pytest.approx(np.logaddexp(1.0, 2.0))
    assert out[1] == -INF and out[2] == INF


@pytest.mark.parametrize("name", ["all", "any"])
@given(args=reduce_args(ALL, domain=(-1.0, 1.0)))
def test_all_any(name, args):
    d, x, dim, keepdim = args
    out = getattr(F, name)(F.from_numpy(x), dim=dim, keepdim=keepdim)
    assert out.dtype is F.bool
    ref = getattr(np, name)(x, axis=np_axis(dim), keepdims=keepdim)
    assert_same(out.numpy(), np.asarray(ref))


@pytest.mark.parametrize("log", [False, True])
@given(args=reduce_args(NUM_DTYPES, allow_tuple=False, min_side=1))
def test_softmax_log_softmax(log, args):
    d, x, dim, _ = args
    dim = 0 if dim is None else dim
    fn = F.log_softmax if log else F.softmax
    out = fn(F.from_numpy(x), dim)
    res = float_result(d)
    assert out.dtype is res and out.shape == x.shape
    x64 = x.astype(np.float64)
    ax = dim if x.ndim else None
    z = x64 - np.max(x64, axis=ax, keepdims=True)
    s = np.sum(np.exp(z), axis=ax, keepdims=True)
    n = n_reduced(x, dim if x.ndim else None)
    e = (n + 4) * EPS[ACC[res]]
    if log:
        assert_close(out.numpy(), z - np.log(s), res, atol=e * scale_of([z]))
    else:
        assert_close(out.numpy(), np.exp(z) / s, res, atol=e * scale_of([z]))


def test_softmax_is_stable_and_sums_to_one():
    x = F.tensor([[1000.0, 1001.0, 1002.0], [-1e4, 0.0, 1e4]])
    s = F.softmax(x, -1)
    assert np.isfinite(s.numpy()).all()
    np.testing.assert_allclose(s.sum(-1).numpy(), [1.0, 1.0], rtol=1e-6)
    np.testing.assert_allclose(
        F.softmax(F.tensor([1.0, 2.0]), 0).numpy(),
        np.exp([1.0, 2.0]) / np.exp([1.0, 2.0]).sum(),
        rtol=1e-6,
    )
    assert x.softmax(1).shape == x.shape and x.log_softmax(0).shape == x.shape


@given(data=st.data())
def test_layer_norm(data):
    d = data.draw(st.sampled_from(FLOATS), label="dtype")
    shape = data.draw(hnp.array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=5))
    k = data.draw(st.integers(1, len(shape)), label="normalized_ndim")
    norm = shape[len(shape) - k :]
    x = data.draw(arrays(d, shape))
    affine = data.draw(st.booleans(), label="affine")
    w = data.draw(arrays(d, norm, (-2.0, 2.0))) if affine else None
    b = data.draw(arrays(d, norm, (-2.0, 2.0))) if affine else None
    out = F.layer_norm(F.from_numpy(x), norm, None if w is None else F.from_numpy(w),
                       None if b is None else F.from_numpy(b))  # fmt: skip
    assert out.dtype is d and out.shape == x.shape
    x64 = x.astype(np.float64)
    axes = tuple(range(x.ndim - k, x.ndim))
    mu = x64.mean(axis=axes, keepdims=True)
    var = ((x64 - mu) ** 2).mean(axis=axes, keepdims=True)
    ref = (x64 - mu) / np.sqrt(var + 1e-5)
    wmax = 1.0
    if affine:
        ref = ref * w.astype(np.float64) + b.astype(np.float64)
        wmax = max(1.0, float(np.abs(w).max()))
    # rounding of x - mean (n eps max|x|) amplified by 1 / sqrt(var + eps), then scaled by w
    n = math.prod(norm)
    atol = 4 * n * EPS[ACC[d]] * scale_of([x]) / np.sqrt(var + 1e-5) * wmax
    assert_close(out.numpy(), ref, d, atol=np.broadcast_to(atol, ref.shape).max())


def test_float16_reductions_accumulate_in_float32():
    """4096 float16 ones: a float16 accumulator would stop at 2048."""
    x = F.ones(4096, dtype=F.float16)
    assert x.sum().dtype is F.float16 and x.sum().item() == 4096.0
    assert x.mean().item() == 1.0
    y = F.full((3000,), 0.1, dtype=F.float16)
    assert abs(y.sum().item() - 3000 * float(np.float16(0.1))) <= 3000 * 2**-10 * 0.2
    assert F.full((5000,), 0.5, dtype=F.float16).var().item() == 0.0


def test_sum_dtypes():
    assert F.tensor([100, 100], dtype=F.int8).sum().item() == 200
    assert F.tensor([True, True, False]).sum().dtype is F.int64
    assert F.tensor([200, 200], dtype=F.uint8).sum().item() == 400
    assert F.tensor([1, 2]).sum(dtype=F.float64).dtype is F.float64
    assert F.tensor([1, 2], dtype=F.int32).mean().dtype is F.float32
    assert F.tensor([[1, 2], [3, 4]]).sum(dim=0).tolist() == [4, 6]
    assert F.zeros(0).sum().item() == 0.0 and F.zeros(0, dtype=F.int32).prod().item() == 1


# ---- matmul and linear ------------------------------------------------------------------------
@st.composite
def matmul_operands(draw):
    batch = draw(hnp.mutually_broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=2,
                                                   max_side=3))  # fmt: skip
    m, k, n = (draw(st.integers(0 if i else 1, 4)) for i in range(3))
    kind = draw(st.sampled_from(["mm", "vec@m", "m@vec", "vec@vec"]))
    bx, by = batch.input_shapes
    sx = (k,) if kind in ("vec@m", "vec@vec") else bx + (m, k)
    sy = (k,) if kind in ("m@vec", "vec@vec") else by + (k, n)
    dx = draw(st.sampled_from(NUM_DTYPES))
    dy = draw(st.sampled_from(NUM_DTYPES))
    return draw(arrays(dx, sx)), draw(arrays(dy, sy))


@given(ops=matmul_operands())
def test_matmul(ops):
    """numpy's rules: batched, broadcast leading dims, 1-D operands are vectors."""
    x, y = ops
    out = F.from_numpy(x) @ F.from_numpy(y)
    d = F.promote_types(_dt(x), _dt(y))
    assert out.dtype is d
    if d.is_floating_point:
        ref = np.matmul(x.astype(np.float64), y.astype(np.float64))
        bound = np.matmul(np.abs(x.astype(np.float64)), np.abs(y.astype(np.float64)))
        k = x.shape[-1]
        atol = (k + 2) * EPS[ACC[d]] * (float(np.max(bound, initial=0)) + 1.0)
        assert out.shape == ref.shape
        assert_close(out.numpy(), ref, d, atol=atol)
    else:  # integer products wrap around as in numpy (and C)
        ref = np.matmul(x.astype(np.int64), y.astype(np.int64)).astype(d.np)
        assert_same(out.numpy(), np.asarray(ref))
    np.testing.assert_array_equal(F.matmul(F.from_numpy(x), F.from_numpy(y)).numpy(), out.numpy())


def _dt(a):
    return {np.dtype(d.np): d for d in ALL}[a.dtype]


@pytest.mark.parametrize("bias", [False, True])
@pytest.mark.parametrize("xshape", [(5,), (3, 5), (2, 3, 5)])
def test_linear(xshape, bias):
    rng = np.random.default_rng(0)
    x = rng.standard_normal(xshape).astype(np.float32)
    w = rng.standard_normal((4, 5)).astype(np.float32)
    b = rng.standard_normal(4).astype(np.float32)
    out = F.linear(F.from_numpy(x), F.from_numpy(w), F.from_numpy(b) if bias else None)
    ref = x.astype(np.float64) @ w.T.astype(np.float64) + (b if bias else 0)
    assert out.dtype is F.float32
    np.testing.assert_allclose(out.numpy(), ref, rtol=1e-5, atol=1e-5)


# ---- movement ops -----------------------------------------------------------------------------
def shares(a, b):
    return np.shares_memory(a.numpy(), b.numpy())


@given(data=st.data())
def test_reshape_view_flatten(data):
    shape = data.draw(hnp.array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=4))
    x = np.arange(math.prod(shape), dtype=np.float32).reshape(shape)
    t = F.from_numpy(x)
    # a new shape with the same number of elements, one size maybe -1
    n = x.size
    sizes = [s for s in range(1, n + 1) if n % s == 0] or [1]
    a = data.draw(st.sampled_from(sizes))
    new = (a, n // a) if n else (0, data.draw(st.integers(0, 3)))
    if n and data.draw(st.booleans()):
        new = (a, -1)
    for fn in (t.reshape, t.view, lambda *s: F.reshape(t, s)):
        r = fn(*new)
        np.testing.assert_array_equal(r.numpy(), x.reshape(new))
        if n:
            assert shares(r, t)  # contiguous input: reshape and view are views
    if x.ndim:
        s = data.draw(st.integers(-x.ndim, x.ndim - 1))
        e = data.draw(st.integers(-x.ndim, x.ndim - 1))
        assume(s % x.ndim <= e % x.ndim)
        s2, e2 = s % x.ndim, e % x.ndim
        ref = x.reshape(x.shape[:s2] + (math.prod(x.shape[s2 : e2 + 1]),) + x.shape[e2 + 1 :])
        np.testing.assert_array_equal(t.flatten(s, e).numpy(), ref)
    np.testing.assert_array_equal(t.flatten().numpy(), x.reshape(-1))


def test_reshape_of_a_non_contiguous_tensor_copies():
    t = F.arange(6.0).reshape(2, 3).T
    r = t.reshape(6)
    assert r.tolist() == [0.0, 3.0, 1.0, 4.0, 2.0, 5.0]
    assert not shares(r, t)
    with pytest.raises(F.ShapeError, match="view"):
        t.view(6)


@given(data=st.data())
def test_transpose_permute_T(data):
    shape = data.draw(hnp.array_shapes(min_dims=1, max_dims=4, min_side=0, max_side=4))
    x = np.arange(math.prod(shape), dtype=np.int32).reshape(shape)
    t = F.from_numpy(x)
    nd = x.ndim
    a, b = data.draw(st.integers(-nd, nd - 1)), data.draw(st.integers(-nd, nd - 1))
    r = t.transpose(a, b)
    np.testing.assert_array_equal(r.numpy(), np.swapaxes(x, a, b))
    assert shares(r, t) or x.size == 0
    perm = data.draw(st.permutations(range(nd)))
    np.testing.assert_array_equal(t.permute(*perm).numpy(), np.transpose(x, perm))
    np.testing.assert_array_equal(t.permute(perm).numpy(), np.transpose(x, perm))
    np.testing.assert_array_equal(t.T.numpy(), x.T)
    if nd >= 2:
        np.testing.assert_array_equal(t.mT.numpy(), np.swapaxes(x, -2, -1))


@given(data=st.data())
def test_expand_broadcast_to(data):
    sh = data.draw(hnp.mutually_broadcastable_shapes(num_shapes=1, min_dims=0, max_dims=3,
                                                     max_side=3))  # fmt: skip
    shape, target = sh.input_shapes[0], sh.result_shape
    x = np.arange(math.prod(shape), dtype=np.float64).reshape(shape)
    t = F.from_numpy(x)
    np.testing.assert_array_equal(t.expand(*target).numpy(), np.broadcast_to(x, target))
    np.testing.assert_array_equal(t.expand(target).numpy(), np.broadcast_to(x, target))
    np.testing.assert_array_equal(F.broadcast_to(t, target).numpy(), np.broadcast_to(x, target))
    lead = len(target) - x.ndim
    minus = tuple(-1 if i >= lead and s == shape[i - lead] else s for i, s in enumerate(target))
    np.testing.assert_array_equal(t.expand(*minus).numpy(), np.broadcast_to(x, target))
    if x.size and math.prod(target):
        assert shares(t.expand(*target), t)


@given(data=st.data())
def test_squeeze_unsqueeze(data):
    shape = data.draw(hnp.array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=2))
    x = np.arange(math.prod(shape), dtype=np.int16).reshape(shape)
    t = F.from_numpy(x)
    np.testing.assert_array_equal(t.squeeze().numpy(), np.squeeze(x))
    if x.ndim:
        dim = data.draw(st.integers(-x.ndim, x.ndim - 1))
        ref = np.squeeze(x, dim) if x.shape[dim] == 1 else x  # torch: no-op unless size 1
        assert t.squeeze(dim).shape == ref.shape
        dims = tuple(sorted(set(data.draw(st.lists(st.integers(0, x.ndim - 1), min_size=1)))))
        keep = tuple(i for i in dims if x.shape[i] == 1)
        assert t.squeeze(dims).shape == np.squeeze(x, keep).shape
    d = data.draw(st.integers(-x.ndim - 1, x.ndim))
    np.testing.assert_array_equal(t.unsqueeze(d).numpy(), np.expand_dims(x, d))
    if x.size:
        assert shares(t.unsqueeze(d), t) and shares(t.squeeze(), t)


def _positive_step(index):
    parts = index if isinstance(index, tuple) else (index,)
    return all(not isinstance(p, slice) or p.step is None or p.step > 0 for p in parts)


@given(data=st.data())
def test_basic_indexing(data):
    shape = data.draw(hnp.array_shapes(min_dims=1, max_dims=4, min_side=1, max_side=5))
    x = np.arange(math.prod(shape), dtype=np.float32).reshape(shape)
    t = F.from_numpy(x)
    idx = data.draw(hnp.basic_indices(shape, allow_newaxis=True, allow_ellipsis=True)
                    .filter(_positive_step))  # fmt: skip
    r = t[idx]
    np.testing.assert_array_equal(r.numpy(), x[idx])
    if x[idx].size:
        assert shares(r, t)  # basic indices give views


def test_advanced_indexing_copies():
    x = np.arange(12.0).reshape(3, 4)
    t = F.from_numpy(x)
    m = F.tensor([True, False, True])
    np.testing.assert_array_equal(t[m].numpy(), x[[True, False, True]])
    np.testing.assert_array_equal(t[F.tensor([2, 0])].numpy(), x[[2, 0]])
    np.testing.assert_array_equal(t[:, F.tensor([3, 1])].numpy(), x[:, [3, 1]])
    assert not shares(t[F.tensor([2, 0])], t)


@given(data=st.data())
def test_cat_stack(data):
    nd = data.draw(st.integers(1, 3))
    base = list(data.draw(hnp.array_shapes(min_dims=nd, max_dims=nd, min_side=0, max_side=3)))
    dim = data.draw(st.integers(-nd, nd - 1))
    k = data.draw(st.integers(1, 3))
    dts = [data.draw(st.sampled_from(NUM_DTYPES)) for _ in range(k)]
    parts = []
    for d in dts:
        s = list(base)
        s[dim] = data.draw(st.integers(0, 3))
        parts.append(data.draw(arrays(d, s)))
    out = F.cat([F.from_numpy(p) for p in parts], dim)
    promoted = dts[0]
    for d in dts[1:]:
        promoted = F.promote_types(promoted, d)
    assert out.dtype is promoted
    np.testing.assert_array_equal(
        out.numpy(), np.concatenate([p.astype(promoted.np) for p in parts], dim)
    )
    same = [data.draw(arrays(dts[0], base)) for _ in range(k)]
    sdim = data.draw(st.integers(-nd - 1, nd))
    np.testing.assert_array_equal(
        F.stack([F.from_numpy(p) for p in same], sdim).numpy(), np.stack(same, sdim)
    )


@given(data=st.data())
def test_split_chunk(data):
    shape = data.draw(hnp.array_shapes(min_dims=1, max_dims=3, min_side=0, max_side=7))
    x = np.arange(math.prod(shape), dtype=np.int64).reshape(shape)
    t = F.from_numpy(x)
    dim = data.draw(st.integers(-x.ndim, x.ndim - 1))
    n = x.shape[dim]
    size = data.draw(st.integers(1, 8))
    pieces = t.split(size, dim)
    starts = list(range(0, n, size)) or [0]
    refs = [np.take(x, range(s, min(s + size, n)), axis=dim) for s in starts]
    assert len(pieces) == len(refs)
    for p, r in zip(pieces, refs, strict=True):
        np.testing.assert_array_equal(p.numpy(), r)
        if p.numel():
            assert shares(p, t)
    # sections
    cuts = sorted(data.draw(st.lists(st.integers(0, n), max_size=3)))
    sections = [b - a for a, b in zip([0] + cuts, cuts + [n], strict=True)]
    for p, r in zip(t.split(sections, dim), np.split(x, cuts, axis=dim), strict=True):
        np.testing.assert_array_equal(p.numpy(), r)
    # chunk: pieces of ceil(n / chunks) (the last may be smaller), as torch.chunk
    chunks = data.draw(st.integers(1, 8))
    c = max(1, -(-n // chunks))
    got = t.chunk(chunks, dim)
    want = [np.take(x, range(s, min(s + c, n)), axis=dim) for s in (range(0, n, c) or [0])]
    if n == 0:  # an empty dim: `chunks` empty pieces, as torch.chunk
        want = want * chunks
    assert len(got) == len(want) <= chunks
    for p, r in zip(got, want, strict=True):
        np.testing.assert_array_equal(p.numpy(), r)


# ---- views alias storage; in-place ops write through ------------------------------------------
VIEWS = {
    "slice": lambda a: a[1:, ::2],
    "row": lambda a: a[1],
    "transpose": lambda a: a.T,
    "permute": lambda a: a.permute(1, 0),
    "view": lambda a: a.view(-1),
    "reshape": lambda a: a.reshape(2, 2, 3),
    "unsqueeze": lambda a: a.unsqueeze(0),
    "squeeze": lambda a: a[1:2].squeeze(0),
    "flatten": lambda a: a.flatten(),
    "split": lambda a: a.split(2, 1)[1],
    "chunk": lambda a: a.chunk(2, 0)[0],
    "ellipsis": lambda a: a[..., 1],
}
NP_VIEWS = {
    "slice": lambda a: a[1:, ::2],
    "row": lambda a: a[1],
    "transpose": lambda a: a.T,
    "permute": lambda a: a.transpose(1, 0),
    "view": lambda a: a.reshape(-1),
    "reshape": lambda a: a.reshape(2, 2, 3),
    "unsqueeze": lambda a: a[None],
    "squeeze": lambda a: a[1:2][0],
    "flatten": lambda a: a.reshape(-1),
    "split": lambda a: a[:, 2:4],
    "chunk": lambda a: a[0:2],
    "ellipsis": lambda a: a[..., 1],
}
INPLACE = {
    "add_": (lambda v: v.add_(2.0), lambda n: n.__iadd__(2.0)),
    "sub_": (lambda v: v.sub_(1.5), lambda n: n.__isub__(1.5)),
    "mul_": (lambda v: v.mul_(-3.0), lambda n: n.__imul__(-3.0)),
    "div_": (lambda v: v.div_(4.0), lambda n: n.__itruediv__(4.0)),
    "iadd": (lambda v: v.__iadd__(1.0), lambda n: n.__iadd__(1.0)),
    "add_tensor": (
        lambda v: v.add_(F.ones(v.shape[-1:] if v.ndim else ())),
        lambda n: n.__iadd__(1.0),
    ),
    "copy_": (lambda v: v.copy_(F.full(v.shape, 7.0)), lambda n: n.fill(7.0)),
    "fill_": (lambda v: v.fill_(-1.0), lambda n: n.fill(-1.0)),
    "zero_": (lambda v: v.zero_(), lambda n: n.fill(0.0)),
    "clamp_": (lambda v: v.clamp_(3.0, 8.0), lambda n: np.clip(n, 3.0, 8.0, out=n)),
    "setitem": (lambda v: v.__setitem__(..., 5.0), lambda n: n.__setitem__(..., 5.0)),
    "setitem_part": (lambda v: v.__setitem__(0, 9.0), lambda n: n.__setitem__(0, 9.0)),
}


@pytest.mark.parametrize("how", INPLACE, ids=str)
@pytest.mark.parametrize("view", VIEWS, ids=str)
def test_inplace_writes_through_views(view, how):
    """Writing into a view changes its base, as the same write into a numpy view does."""
    base = F.arange(12.0).reshape(3, 4)
    ref = np.arange(12.0, dtype=np.float32).reshape(3, 4)
    v, nv = VIEWS[view](base), NP_VIEWS[view](ref)
    np.testing.assert_array_equal(v.numpy(), nv)
    assert shares(v, base)
    op, np_op = INPLACE[how]
    out = op(v)
    np_op(nv)
    assert out is None or out is v
    np.testing.assert_array_equal(base.numpy(), ref)
    np.testing.assert_array_equal(v.numpy(), nv)


@pytest.mark.parametrize("view", VIEWS, ids=str)
def test_writes_to_the_base_show_in_views(view):
    base = F.arange(12.0).reshape(3, 4)
    v = VIEWS[view](base)
    base.mul_(10.0)
    base[0, 0] = -1.0
    ref = np.arange(12.0, dtype=np.float32).reshape(3, 4) * 10
    ref[0, 0] = -1.0
    np.testing.assert_array_equal(v.numpy(), NP_VIEWS[view](ref))


def test_from_numpy_and_expand_alias():
    a = np.zeros(3, np.float32)
    t = F.from_numpy(a)
    e = t.expand(2, 3)
    t.add_(1.0)
    assert e.tolist() == [[1.0, 1.0, 1.0]] * 2 and a.tolist() == [1.0, 1.0, 1.0]


def test_inplace_keeps_dtype_and_identity():
    x = F.tensor([1, 2, 3], dtype=F.int16)
    y = x
    x += 1
    x *= 2
    assert x is y and x.dtype is F.int16 and x.tolist() == [4, 6, 8]
    with pytest.raises(F.DTypeError, match="add_"):
        x.add_(0.5)  # a float result cannot be written into an int tensor
    with pytest.raises(F.DTypeError, match="div_"):
        x.div_(2)
    assert x.tolist() == [4, 6, 8]


def test_inplace_broadcasts_the_other_operand():
    x = F.zeros(2, 3)
    x.add_(F.tensor([1.0, 2.0, 3.0]))
    assert x.tolist() == [[1.0, 2.0, 3.0]] * 2
    x[:, 1] = F.tensor([7.0, 8.0])
    assert x.tolist() == [[1.0, 7.0, 3.0], [1.0, 8.0, 3.0]]
    x.clamp_(max=2.0)
    assert x.tolist() == [[1.0, 2.0, 2.0]] * 2
    x[F.tensor([True, False])] = 0.0
    assert x.tolist() == [[0.0, 0.0, 0.0], [1.0, 2.0, 2.0]]


def test_clamp():
    x = F.tensor([-2.0, 0.5, 3.0, NAN])
    np.testing.assert_array_equal(F.clamp(x, -1, 1).numpy(), [-1.0, 0.5, 1.0, NAN])
    np.testing.assert_array_equal(x.clamp(min=0.0).numpy(), [0.0, 0.5, 3.0, NAN])
    np.testing.assert_array_equal(x.clip(max=0.0).numpy(), [-2.0, 0.0, 0.0, NAN])
    lo, hi = F.tensor([0.0, 1.0, 0.0, 0.0]), F.tensor(2.0)
    np.testing.assert_array_equal(F.clamp(x, lo, hi).numpy(), [0.0, 1.0, 2.0, NAN])


@pytest.mark.parametrize("approximate,name", [("none", "gelu"), ("tanh", "gelu_tanh")])
def test_gelu_approximate(approximate, name):
    x = F.linspace(-4, 4, 17)
    np.testing.assert_array_equal(
        F.gelu(x, approximate=approximate).numpy(), getattr(F, name)(x).numpy()
    )
    np.testing.assert_array_equal(x.gelu().numpy(), F.gelu(x).numpy())
