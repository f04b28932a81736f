"""Reduction fusion on the CPU: softmax, layer norm, RMSNorm and friends become one row kernel;
the reductions that do not fuse say why; results match eager and float64 references.

Bounds (eps = float32 machine epsilon, n = row length, B = ``cpu_rows.BLOCK``): a fused float32
sum of terms t_i is within ``S(n) * eps * sum|t_i|`` of the exact sum, S(n) = min(n, B) / 32 + 3 +
n / B (lane-wise partial sums, blocks added in float64). From it, with z = x - max(x):

- softmax: |p - p64| <= eps * p64 * (|z| + max|z| + S(n) + 4) + 2 * tiny (the float32
  x - max rounds like eager's; exp and the division add an ulp each; tiny = the smallest
  subnormal, for results that underflow to subnormals);
- logsumexp: |l - l64| <= eps * (S(n) + max|z| + 2 + |l64|);
- layer norm: |y - y64| <= eps * (S(n) + 8) * (|w| (|x - mu| + mean|x|) rstd + |b|);
- sum of an expression: eps * (S(n) + 1) * sum|t_i|; mean: that / n + eps |mean|;
- amax / amin: exact.
"""

from __future__ import annotations

import numpy as np
import pytest
from fusejit.backends import cpu_kernels
from hypothesis import given, settings
from hypothesis import strategies as st
from jit_helpers import assert_bitwise, module_cache_fixture

import fusejit
from fusejit.base.errors import ShapeError
from fusejit.codegen import cpu_rows
from fusejit.codegen.rows import RowBody
from fusejit.ir.verify import verify
from fusejit.jit.api import optimize_graph
from fusejit.jit.tracer import capture

_cache = module_cache_fixture()
# eager numpy on rows holding inf and nan warns; the values are what the tests check
pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")
EPS = float(np.finfo(np.float32).eps)
TINY = float(np.finfo(np.float32).smallest_subnormal)
R = fusejit.randn


def S(n: int) -> float:
    B = cpu_rows.BLOCK
    return min(n, B) / 32 + 3 + n / B


def row_kernels(t) -> list:
    return [n.attr("body") for n in t.graph.nodes if n.op == "fused"
            and isinstance(n.attr("body"), RowBody)]  # fmt: skip


def close(got, want, what="", tol=2e-5):
    """Equal dtypes and shapes, NaN where eager has NaN, values within a normwise tolerance."""
    g, w = got.numpy(), want.numpy()
    assert g.dtype == w.dtype and g.shape == w.shape, what
    if g.dtype.kind != "f":
        np.testing.assert_array_equal(g, w, err_msg=what)
        return
    fin = np.abs(w[np.isfinite(w)])
    atol = tol * max(1.0, float(fin.max()) if fin.size else 1.0)
    np.testing.assert_allclose(g, w, rtol=tol, atol=atol, equal_nan=True, err_msg=what)


def check(fn, *args, tol=2e-5):
    t = fusejit.trace(fn, args)
    verify(t.graph)
    got, want, interp = t(*args), fn(*args), t.interpret(*args)
    got = got if isinstance(got, tuple) else (got,)
    want = want if isinstance(want, tuple) else (want,)
    interp = interp if isinstance(interp, tuple) else (interp,)
    for k, (g, w, i) in enumerate(zip(got, want, interp, strict=True)):
        close(g, w, f"output {k}", tol)
        close(i, w, f"interpreter output {k}", tol)
    return t


# ---- every pattern is one kernel -------------------------------------------------------------
def _onehot(rows, n, seed=0):
    idx = np.random.default_rng(seed).integers(0, n, rows)
    return fusejit.tensor(np.eye(n, dtype=np.float32)[idx])


PATTERNS = {
    "softmax": (lambda x: x.softmax(-1), lambda: (R(6, 50) * 3,)),
    "log_softmax": (lambda x: x.log_softmax(-1), lambda: (R(6, 50) * 3,)),
    "softmax_3d_f64": (lambda x: fusejit.softmax(x, 2), lambda: (R(2, 3, 40).double(),)),
    "logsumexp": (lambda x: fusejit.logsumexp(x, -1), lambda: (R(6, 50),)),
    "logsumexp_2dims_keepdim": (
        lambda x: fusejit.logsumexp(x, (1, 2), keepdim=True),
        lambda: (R(3, 4, 5),),
    ),
    "layer_norm": (
        lambda x, w, b: fusejit.layer_norm(x, (x.shape[-1],), w, b),
        lambda: (R(6, 50), R(50), R(50)),
    ),
    "layer_norm_2dims_plain": (
        lambda x: fusejit.layer_norm(x, x.shape[1:]),
        lambda: (R(3, 4, 10),),
    ),
    "rms_norm": (
        lambda x, w: x * fusejit.rsqrt((x * x).mean(-1, keepdim=True) + 1e-6) * w,
        lambda: (R(6, 50), R(50)),
    ),
    "center": (lambda x: x - x.mean(-1, keepdim=True), lambda: (R(6, 50),)),
    "var": (lambda x: x.var(-1), lambda: (R(6, 50) * 3 + 5,)),
    "standardize": (
        lambda x: (x - x.mean(-1, keepdim=True)) / x.std(-1, keepdim=True),
        lambda: (R(6, 50) * 3 + 5,),
    ),
    "var_2dims_population": (lambda x: x.var((1, 2), correction=0), lambda: (R(3, 4, 5),)),
    "cross_entropy": (
        lambda z, y: fusejit.logsumexp(z, -1) - (z * y).sum(-1),
        lambda: (R(6, 50), _onehot(6, 50)),
    ),
    "cross_entropy_log_softmax": (
        lambda z, y: -(z.log_softmax(-1) * y).sum(-1),
        lambda: (R(6, 50), _onehot(6, 50)),
    ),
    "sum_of_expr": (lambda x, y: fusejit.sum(x * y + 1, -1), lambda: (R(6, 50), R(6, 50))),
    "mean_of_expr": (lambda x: x.tanh().mean(-1), lambda: (R(6, 50),)),
    "amax_of_expr": (lambda x, y: (x - y).abs().amax(-1), lambda: (R(6, 50), R(6, 50))),
    "amin_keepdim": (lambda x: (x * 2).amin(-1, keepdim=True) + x, lambda: (R(6, 50),)),
    "primitive_softmax": (
        lambda x: (
            (x - x.amax(-1, keepdim=True)).exp()
            / (x - x.amax(-1, keepdim=True)).exp().sum(-1, keepdim=True)
        ),
        lambda: (R(6, 50),),
    ),
    "primitive_logsumexp": (
        lambda x: (x - x.amax(-1, keepdim=True)).exp().sum(-1).log() + x.amax(-1),
        lambda: (R(6, 50),),
    ),
    "mean_as_sum_times_1_over_n": (
        lambda x: x - x.sum(-1, keepdim=True) * (1 / 50),
        lambda: (R(6, 50),),
    ),
    "drop_then_unsqueeze": (lambda x: x / x.abs().sum(-1).unsqueeze(-1), lambda: (R(6, 50),)),
    "whole_tensor_sum": (lambda x, y: (x * y).sum(), lambda: (R(6, 50), R(6, 50))),
    "per_row_and_scalar_inputs": (
        lambda x, s, c: ((x * s + c).softmax(-1) * 2).sum(-1),
        lambda: (R(6, 50), R(6, 1), R(1, 1)),
    ),
    "int_sum": (
        lambda i: (i * 3 - 1).sum(-1),
        lambda: (fusejit.randint(-9, 9, (6, 50), dtype=fusejit.int32),),
    ),
    "bool_count": (lambda x: (x > 0).sum(-1) + 1, lambda: (R(6, 50),)),
}


@pytest.mark.parametrize("name", list(PATTERNS))
def test_pattern_is_one_row_kernel(name):
    fn, make = PATTERNS[name]
    args = make()
    t = check(fn, *args)
    assert t.kernel_count() == 1 and [n.op for n in t.graph.nodes] == ["fused"], t.graph
    assert len(row_kernels(t)) == 1
    assert t.graph.notes["unfused"] == []
    # and for other sizes with the same broadcast pattern, the same kernel
    if t.plan.shape_generic:
        before = fusejit.cache_info()["compiled"]
        other = tuple(fusejit.tensor(np.resize(a.numpy(), _grow(a.shape)).astype(a.numpy().dtype))
                      for a in args)  # fmt: skip
        for g, w in zip(_tuple(t(*other)), _tuple(fn(*other)), strict=True):
            close(g, w, name)
        assert fusejit.cache_info()["compiled"] == before


def _grow(shape):
    return tuple(s if s == 1 else s + 3 for s in shape)


def _tuple(x):
    return x if isinstance(x, tuple) else (x,)


def test_the_cuda_target_fuses_the_same_patterns_into_one_node():
    for name, (fn, make) in PATTERNS.items():
        g = optimize_graph(capture(fn, make())[0], "cuda")
        assert [n.op for n in g.nodes] == ["fused"], name
        assert isinstance(g.nodes[0].attr("body"), RowBody), name


def test_on_cuda_a_whole_tensor_region_is_one_pass():
    # a whole tensor is one row, which the GPU splits over many blocks (cuda_rows.SPLIT): the
    # region must not need the tensor's reduction to go on reading the tensor
    def center(x):
        return x - (x * 2).mean()

    cpu = optimize_graph(capture(center, (R(6, 50),))[0], "cpu")
    assert [n.op for n in cpu.nodes] == ["fused"]
    g = optimize_graph(capture(center, (R(6, 50),))[0], "cuda")
    assert [n.op for n in g.nodes] == ["fused", "fused"]
    (body,) = [n.attr("body") for n in g.nodes if isinstance(n.attr("body"), RowBody)]
    assert [s.op for s in body.steps] == ["mul", "mean"]
    # explain says why the second kernel: the reduction's reader (a lone elementwise kernel),
    # and a lone reduction
    assert g.notes["unfused"] == []
    (why,) = g.notes["second_kernel"]
    assert why[0] == "sub" and "whole tensor's mean and the tensor again" in why[1], why
    g = optimize_graph(capture(lambda x: x - x.mean(), (R(6, 50),))[0], "cuda")
    why = dict(g.notes["unfused"])
    assert "sub reads this whole-tensor reduction" in why["mean"], why
    assert "second kernel" in dict(g.notes["second_kernel"])["sub"], g.notes
    # rows of their own (not the whole tensor) keep the second pass in the kernel
    g = optimize_graph(capture(lambda x: x - (x * 2).mean(-1, keepdim=True), (R(6, 50),))[0],
                       "cuda")  # fmt: skip
    assert [n.op for n in g.nodes] == ["fused"]


def test_a_batch_mean_of_per_row_losses_is_a_second_small_kernel():
    # rows are independent in a row kernel: the mean over the rows is a reduction of its own
    t = check(lambda z, y: -(z.log_softmax(-1) * y).sum(-1).mean(), R(6, 50), _onehot(6, 50))
    assert t.kernel_count() == 2 and len(row_kernels(t)) == 2


def test_softmax_and_log_softmax_of_one_tensor_share_their_reductions():
    t = check(lambda x: (x.softmax(-1), x.log_softmax(-1)), R(5, 30))
    (body,) = row_kernels(t)
    assert [s.op for s in body.steps].count("amax") == 1
    assert [s.op for s in body.steps].count("sum") == 1


def test_exported_intermediates_and_several_outputs():
    def f(x):
        e = (x * 2).exp()
        s = e.sum(-1, keepdim=True)
        return e, e / s, s * 3, e.amax(-1)

    t = check(f, R(7, 40))
    assert t.kernel_count() == 1 and len(t.graph.nodes[0].outputs) == 4


def test_a_user_reshape_makes_the_region_shape_specific():
    t = fusejit.trace(lambda x: x / x.sum(-1).unsqueeze(-1), R(4, 6))
    assert t.kernel_count() == 1 and not t.plan.shape_generic
    # decomposition's own reshape (logsumexp without keepdim) is shape-generic
    assert fusejit.trace(lambda x: fusejit.logsumexp(x, -1), R(4, 6)).plan.shape_generic


# ---- what does not fuse, and why ---------------------------------------------------------------
@pytest.mark.parametrize(
    "fn, args, op, why",
    [
        (lambda x: (x * 2).sum((0, 2)), (R(3, 4, 6),), "sum", "not consecutive"),
        (lambda x: (x * 2).sum(1), (R(3, 1, 6),), "sum", "dims of size 1 only"),
        (lambda x: (x * 2).var(0), (R(4, 6),), "var", "not decomposed: it runs along a leading"),
        (lambda x: (x * 2).prod(-1), (R(4, 6),), "prod", "does not fuse into a row kernel"),
        (lambda x: (x * 2).argmax(-1), (R(4, 6),), "argmax", "does not fuse"),
        (lambda x: (x * 2).softmax(0), (R(4, 6),), "softmax", "not decomposed"),
        (lambda x: x.sum(-1) @ x, (R(4, 4),), "sum", "no elementwise neighbour"),
    ],
)
def test_unfused_reductions_say_why(fn, args, op, why):
    t = check(fn, *args, tol=2e-3)
    reasons = [r for o, r in t.graph.notes["unfused"] if o == op]
    assert reasons and why in reasons[0], t.graph.notes["unfused"]
    assert f"{op}: " in fusejit.explain(t)


@pytest.mark.parametrize("correction", [0, 1, 2])
def test_var_and_std_match_eager_and_float64_on_special_rows(correction):
    # numpy's two-pass formula: sum((x - mean)^2) / max(n - correction, 0), the row length
    # counted in the kernel (the same kernel serves rows of another length)
    rng = np.random.default_rng(correction)
    for n in (1, 2, 7, 300):
        x = _special(n, rng)
        tx = fusejit.from_numpy(x)

        def f(x):
            return x.var(-1, correction=correction), x.std(-1, keepdim=True, correction=correction)

        t = fusejit.trace(f, tx)
        # (rows of one element leave the dropping reshape out of the kernel, as logsumexp's)
        assert t.kernel_count() == 1 and (t.plan.shape_generic or n == 1)
        x64 = x.astype(np.float64)
        with np.errstate(all="ignore"):
            v64 = ((x64 - x64.mean(-1, keepdims=True)) ** 2).sum(-1) / max(n - correction, 0)
        got_v, got_s = t(tx)
        want_v, want_s = f(tx)
        close(got_v, want_v, f"var n={n}", 1e-5)
        close(got_s, want_s, f"std n={n}", 1e-5)
        ok = np.isfinite(v64)
        # (atol: a variance below float32's smallest normal, as the tiny row's, is 0 there)
        tiny = float(np.finfo(np.float32).tiny)
        np.testing.assert_allclose(got_v.numpy()[ok], v64[ok], rtol=1e-5, atol=tiny)
        np.testing.assert_array_equal(np.isnan(got_v.numpy()), np.isnan(want_v.numpy()))


@pytest.mark.parametrize("n", [1, 8, 1000, 5000])
def test_float16_rows_fuse_and_accumulate_in_float32(n):
    # read and written as float16, computed in float32 (each float16 step rounded to float16,
    # as eager); sums accumulate in float32: the results are within float16's rounding of a
    # float64 reference, where float16 accumulation would drift by far more at n = 5000
    rng = np.random.default_rng(n)
    x = (rng.standard_normal((16, n)) * 3).astype(np.float16)
    x[0, 0] = np.inf if n > 1 else x[0, 0]
    w = (1 + 0.1 * rng.standard_normal(n)).astype(np.float16)
    tx, tw = fusejit.from_numpy(x), fusejit.from_numpy(w)

    def f(x, w):
        return (x.softmax(-1), fusejit.layer_norm(x, (n,), w), (x * 2).sum(-1),
                x.amax(-1, keepdim=True), x - x.mean(-1, keepdim=True))  # fmt: skip

    t = fusejit.trace(f, (tx, tw))
    assert t.kernel_count() == 1 and [n.op for n in t.graph.nodes] == ["fused"]
    got = t(tx, tw)
    assert all(g.dtype is fusejit.float16 for g in got)
    x64, w64 = x.astype(np.float64), w.astype(np.float64)
    fin = np.isfinite(x64).all(-1)  # (the row holding inf: nan, as eager)
    p64, _ = _softmax64(x64)
    mu = x64.mean(-1, keepdims=True)
    y64 = (x64 - mu) / np.sqrt(((x64 - mu) ** 2).mean(-1, keepdims=True) + 1e-5) * w64
    s64 = (2 * x64).sum(-1)
    h = 2.0**-11  # float16's unit roundoff
    g = [o.numpy().astype(np.float64) for o in got]
    np.testing.assert_allclose(g[0][fin], p64[fin], rtol=4 * h, atol=1e-7)
    assert np.isnan(g[0][~fin]).all()
    np.testing.assert_allclose(g[1][fin], y64[fin], rtol=8 * h, atol=8 * h)
    bound = 2 * h * np.abs(s64) + 64 * 2.0**-24 * (2 * np.abs(x64)).sum(-1)
    assert (np.abs(g[2] - s64)[fin] <= bound[fin]).all()
    np.testing.assert_array_equal(g[3], x64.max(-1, keepdims=True))
    for k, (a, e) in enumerate(zip(got, f(tx, tw), strict=True)):
        close(a, e, f"output {k} against eager", 2e-3)


# ---- numerics against float64 references -------------------------------------------------------
def _special(n: int, rng) -> np.ndarray:
    """Rows: random, large, all equal, one -inf, one nan, all -inf, one +inf, tiny."""
    x = rng.standard_normal((8, n)).astype(np.float32)
    x[1] *= 30
    x[2] = 0.75
    if n > 1:
        x[3, n // 2] = -np.inf
    x[4, 0] = np.nan
    x[5] = -np.inf
    x[6, -1] = np.inf
    x[7] *= 1e-30
    return x


LENGTHS = (1, 2, 33, 4096, 10_000)  # 10_000 > BLOCK: partial sums of several blocks


def _softmax64(x):
    m = x.max(-1, keepdims=True)
    m = np.where(np.isfinite(m), m, 0)
    e = np.exp(x - m)
    return e / e.sum(-1, keepdims=True), x - m


def assert_softmax_bound(p: np.ndarray, x: np.ndarray, s: float) -> None:
    """``p``, a float32 softmax of the rows of ``_special`` ``x``, against float64: within
    eps * p * (|z| + max |z| + s + 4) (z = x - max, s: roundings of the sum), uniform on the
    all-equal row, NaN on the rows holding a NaN or only -inf."""
    n = x.shape[-1]
    x64 = x.astype(np.float64)
    with np.errstate(all="ignore"):
        p64, z = _softmax64(x64)
    ok = np.isfinite(p64).all(-1)  # rows without nan/inf results
    zf = np.abs(np.where(np.isfinite(z), z, 0))
    bound = EPS * p64 * (zf + zf.max(-1, keepdims=True) + s + 4) + 2 * TINY
    err = np.abs(p.astype(np.float64) - p64)
    assert np.all(err[ok] <= bound[ok]), np.max(err[ok] / bound[ok])
    # rows of all-equal values are uniform; length-1 rows are 1
    np.testing.assert_allclose(p[2], 1 / n, rtol=4 * EPS * s)
    assert np.isnan(p[4]).all() and np.isnan(p[5]).all()


def assert_layer_norm_bound(y: np.ndarray, x: np.ndarray, w, b, s: float) -> None:
    """``y``, a float32 layer norm (eps 1e-5) of finite rows ``x`` times ``w`` plus ``b``,
    within eps * (s + 8) * (|w| (|x - mean| + mean |x|) / std + |b|) of float64."""
    x64 = x.astype(np.float64)
    mu = x64.mean(-1, keepdims=True)
    rstd = 1 / np.sqrt(((x64 - mu) ** 2).mean(-1, keepdims=True) + 1e-5)
    y64 = (x64 - mu) * rstd * w + b
    scale = np.abs(w) * (np.abs(x64 - mu) + np.abs(x64).mean(-1, keepdims=True)) * rstd
    bound = EPS * (s + 8) * (scale + np.abs(b))
    err = np.abs(y - y64)
    assert np.all(err <= bound), np.max(err / bound)


@pytest.mark.parametrize("n", LENGTHS)
def test_softmax_logsumexp_numerics(n):
    rng = np.random.default_rng(n)
    x = _special(n, rng)
    tx = fusejit.tensor(x)
    sm = fusejit.trace(lambda x: x.softmax(-1), tx)
    ls = fusejit.trace(lambda x: fusejit.logsumexp(x, -1), tx)
    p, lse = sm(tx), ls(tx)
    close(p, tx.softmax(-1))  # NaN exactly where eager has NaN
    close(lse, fusejit.logsumexp(tx, -1))
    assert_softmax_bound(p.numpy(), x, S(n))
    x64 = x.astype(np.float64)
    with np.errstate(all="ignore"):
        _, z = _softmax64(x64)
        lse64 = np.log(np.exp(z).sum(-1)) + np.where(np.isfinite(x64.max(-1)), x64.max(-1), 0)
    zmax = np.abs(np.where(np.isfinite(z), z, 0)).max(-1)
    ok = np.isfinite(lse64)
    bl = EPS * (S(n) + zmax + 2 + np.abs(lse64))
    assert np.all(np.abs(lse.numpy() - lse64)[ok] <= bl[ok])


@pytest.mark.parametrize("n", LENGTHS)
def test_layer_norm_and_rms_norm_numerics(n):
    rng = np.random.default_rng(10 + n)
    x = _special(n, rng)
    x[3:7] = rng.standard_normal((4, n)) + 5  # (no inf/nan rows: finite statistics)
    w = (1 + 0.1 * rng.standard_normal(n)).astype(np.float32)
    b = (0.1 * rng.standard_normal(n)).astype(np.float32)
    tx, tw, tb = (fusejit.tensor(a) for a in (x, w, b))
    ln = fusejit.trace(lambda x, w, b: fusejit.layer_norm(x, (n,), w, b), (tx, tw, tb))
    y = ln(tx, tw, tb)
    close(y, fusejit.layer_norm(tx, (n,), tw, tb), tol=1e-4)
    assert_layer_norm_bound(y.numpy(), x, w, b, S(n))
    x64 = x.astype(np.float64)
    rms = fusejit.trace(lambda x, w: x * fusejit.rsqrt((x * x).mean(-1, keepdim=True) + 1e-6)
                        * w, (tx, tw))  # fmt: skip
    r64 = x64 / np.sqrt((x64 * x64).mean(-1, keepdims=True) + 1e-6) * w
    err = np.abs(rms(tx, tw).numpy() - r64)
    assert np.all(err <= EPS * (S(n) + 8) * np.abs(r64) + 1e-30)


@pytest.mark.parametrize("n", LENGTHS)
def test_sum_mean_amax_numerics(n):
    rng = np.random.default_rng(20 + n)
    x = _special(n, rng)
    y = rng.standard_normal((8, n)).astype(np.float32)
    tx, ty = fusejit.tensor(x), fusejit.tensor(y)
    f = fusejit.trace(lambda x, y: ((x * y).sum(-1), (x * y).mean(-1), (x * y).amax(-1),
                                    (x - y).amin(-1, keepdim=True)), (tx, ty))  # fmt: skip
    assert f.kernel_count() == 1
    s, m, mx, mn = f(tx, ty)
    with np.errstate(all="ignore"):
        t64 = x.astype(np.float64) * y
        prod32 = x * y
    s64, a64 = t64.sum(-1), np.abs(t64).sum(-1)
    ok = np.isfinite(s64)
    err = np.abs(s.numpy() - s64)
    assert np.all(err[ok] <= (EPS * (S(n) + 1) * a64)[ok] + 1e-45)
    assert np.all(np.isnan(s.numpy()[~ok]) | np.isinf(s.numpy()[~ok]))
    err = np.abs(m.numpy() - s64 / n)
    assert np.all(err[ok] <= (EPS * (S(n) + 1) * a64 / n + EPS * np.abs(s64 / n))[ok] + 1e-45)
    # max and min are exact: the float32 values' own max, nan for a row holding a nan
    assert_bitwise(np.abs(mx.numpy()), np.abs(np.max(prod32, -1)))
    with np.errstate(all="ignore"):
        assert_bitwise(np.abs(mn.numpy()), np.abs(np.min(x - y, -1, keepdims=True)))


def test_sums_of_negative_zeros_are_positive_zero_as_numpy():
    x = fusejit.tensor(np.full((3, 40), -0.0, np.float32))
    t = fusejit.trace(lambda x: (x * 1.5).sum(-1), x)
    assert_bitwise(t(x), (x * 1.5).sum(-1))


def test_integer_and_bool_reductions_are_exact():
    i = fusejit.randint(-100, 100, (5, 70), dtype=fusejit.int16)

    def f(i):
        return (i * 3).sum(-1), (i - 1).amax(-1), (i > 2).sum(-1, keepdim=True) * 2

    t = fusejit.trace(f, i)
    assert t.kernel_count() == 1
    for g, w in zip(t(i), f(i), strict=True):
        assert_bitwise(g, w)


# ---- shapes, layouts, threads -------------------------------------------------------------------
def test_other_sizes_reuse_the_kernel_and_empty_cases():
    t = fusejit.trace(lambda x: x.softmax(-1) * 2, R(4, 7))
    before = fusejit.cache_info()["compiled"]
    for shape in [(9, 13), (2, 3), (0, 5), (3, 0), (1000, 3)]:
        x = R(*shape)
        close(t(x), x.softmax(-1) * 2, str(shape))
    assert fusejit.cache_info()["compiled"] == before
    # a user's amax over an empty dim raises as eager does; softmax's own max does not
    m = fusejit.trace(lambda x: (x * 2).amax(-1), R(4, 7))
    with pytest.raises(ShapeError, match="empty"):
        (R(3, 0) * 2).amax(-1)
    with pytest.raises(ShapeError, match="empty"):
        m(R(3, 0))


def test_strided_and_transposed_inputs():
    def f(x, w):
        return fusejit.layer_norm(x, (x.shape[-1],), w) + x.softmax(-1)

    base = R(12, 20)
    t = fusejit.trace(f, (R(6, 10), R(10)))
    for x, w in [(base[::2, 3:13], R(20)[::2]), (R(10, 6).T, R(10)), (base[:6, :10], R(10))]:
        assert not x.is_contiguous()
        close(t(x, w), f(x, w))


def test_threaded_launches_are_bitwise_the_serial_ones(monkeypatch):
    x, w, b = R(64, 300), R(300), R(300)
    f = fusejit.trace(lambda x, w, b: (fusejit.layer_norm(x, (300,), w, b), x.softmax(-1)),
                      (x, w, b))  # fmt: skip
    monkeypatch.setattr(cpu_kernels, "ROW_PARALLEL_THRESHOLD", 1 << 62)
    serial = f(x, w, b)
    monkeypatch.setattr(cpu_kernels, "ROW_PARALLEL_THRESHOLD", 0)
    threaded = f(x, w, b)
    for a, c in zip(serial, threaded, strict=True):
        assert_bitwise(a, c)
    ((_, k),) = f.plan.kernels
    assert k.threaded  # the rows were split across threads


def test_results_do_not_depend_on_where_the_buffers_lie():
    # LLVM guards a vectorized loop that stores with a runtime alias check: with an output or
    # a scratch row next to an input (small buffers from malloc) it ran the scalar loop, which
    # sums in another order (cpu_rows.APART). Equal inputs must give equal bits however the
    # heap lies: each case is called on fresh copies with small allocations in between.
    cases = [
        lambda x, y: ((x * y).tanh() + 1, x.sum(), (x * y).exp().sum()),  # a full output
        lambda x, y: (fusejit.softmax(x * y, -1), (x - y).pow(2).mean(-1)),  # a scratch row
    ]
    rng = np.random.default_rng(5)
    for fn in cases:
        t = fusejit.trace(fn, (R(3, 9), R(3, 9)))
        assert t.kernel_count() == 1
        for _ in range(60):
            shape = (int(rng.integers(2, 4)), int(rng.integers(2, 40)))
            x, y = (rng.standard_normal(shape).astype(np.float32) for _ in range(2))
            first, held = None, []
            for _ in range(6):
                held.append(np.empty(int(rng.integers(1, 24)), np.float32))
                got = [o.numpy() for o in t(fusejit.from_numpy(x.copy()),
                                            fusejit.from_numpy(y.copy()))]  # fmt: skip
                if first is None:
                    first = got
                for a, b in zip(got, first, strict=True):
                    assert_bitwise(a, b, f"rows of {shape}")


def test_few_long_rows_are_split_over_threads_in_parts(monkeypatch):
    # rows fewer than the threads (a whole tensor is one row), one pass over them: a row's
    # elements in THREADS parts, their partials combined in order (k_part, k_final)
    monkeypatch.setattr(cpu_kernels, "THREADS", 3)
    monkeypatch.setattr(cpu_kernels, "ROW_PARALLEL_THRESHOLD", 0)
    rng = np.random.default_rng(3)
    x, y = (rng.standard_normal((2, 10_007)).astype(np.float32) for _ in range(2))
    x[1, 5000] = np.nan
    i = rng.integers(-9, 9, (2, 10_007)).astype(np.int32)

    def f(x, y, i):
        d = x - y
        return (d * d).mean(-1), d.amax(-1), d * 2, (i * 3).sum(-1), (y > 0).sum(), (y * y).sum()

    args = tuple(fusejit.tensor(a) for a in (x, y, i))
    t = fusejit.trace(f, args, check_trace=False)
    first, again = t(*args), t(*args)  # compiling (one thread), then on the threads
    for a, b in zip(first, again, strict=True):
        assert_bitwise(a, b)
    kernels = [k for _, k in t.plan.kernels if hasattr(k, "split")]
    assert len(kernels) == 2 and all(k.split == 2 for k in kernels)
    assert all(k.threaded == 1 for k in kernels)
    mse, mx, d2, isum, count, ysq = (o.numpy() for o in again)
    x64, y64 = x.astype(np.float64), y.astype(np.float64)
    d64 = x64 - y64
    assert np.isnan(mse[1]) and np.isnan(mx[1])  # the NaN of row 1
    want = (d64[0] * d64[0]).mean()
    assert abs(mse[0] - want) <= (4096 / 32 + 3 + 3) * 2.0**-24 * want
    assert mx[0] == np.float32(x[0] - y[0]).max()
    np.testing.assert_array_equal(d2, (x - y) * 2)
    assert isum.tolist() == (i.astype(np.int64) * 3).sum(-1).tolist() and isum.dtype == np.int64
    assert count == (y > 0).sum()
    assert abs(ysq - (y64 * y64).sum()) <= (4096 / 32 + 3 + 3) * 2.0**-24 * (y64 * y64).sum()
    # the same kernels with the parts off: the rows whole, one thread each
    monkeypatch.setattr(cpu_kernels, "THREADS", 1)
    for a, b in zip(t(*args), again, strict=True):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-6, equal_nan=True)


def test_the_source_uses_restricted_reassociation_and_vectorizes():
    import llvmlite.binding as llvm

    t = fusejit.trace(lambda x: x.softmax(-1), R(8, 64))
    ((_, k),) = t.plan.kernels
    src = (k.folder / "kernel.py").read_text()
    assert "_rk.radd(" in src and "_rk.fmaximum(" in src and "fastmath" not in src
    assert "_vm.exp_f32(" in src and "c0[j] = t" in src  # exp computed once, kept for the end
    if "avx2" not in llvm.get_host_cpu_features().flatten():
        pytest.skip("no AVX2 on this CPU")
    # compiled here from the source: the cached kernel may run from its stored machine code,
    # its module never run (as when another test of this process built the same kernel)
    from fusejit.codegen import cpu_rows

    cpu_rows.intrinsics()
    ns: dict = {}
    exec(compile(src, "kernel.py", "exec"), ns)
    x = np.random.default_rng(0).standard_normal((8, 64)).astype(np.float32)
    out = np.empty_like(x)
    ns["k_rows"](0, 8, 64, x, out)
    np.testing.assert_allclose(out, t(fusejit.tensor(x)).numpy(), rtol=1e-6)
    asm = "\n".join(ns["k_rows"].inspect_asm().values())
    assert "ymm" in asm  # 8-lane float32 vectors


# ---- random graphs of elementwise ops and reductions --------------------------------------------
_SHAPES = [(3, 5), (2, 3, 4), (4, 1), (1, 6), (5, 33), (2, 2, 9)]


@st.composite
def programs(draw):
    shape = draw(st.sampled_from(_SHAPES))
    steps = []
    shapes = [shape, shape, shape[-1:]]  # x, y and a vector over the last dim
    for _ in range(draw(st.integers(2, 9))):
        kind = draw(st.sampled_from(["unary", "binary", "binary", "reduce", "reduce",
                                     "composite", "unsqueeze"]))  # fmt: skip
        a = draw(st.integers(0, len(shapes) - 1))
        sa = shapes[a]
        if kind == "unary":
            op = draw(st.sampled_from(["tanh", "neg", "sigmoid", "expnegabs", "square"]))
            steps.append(("unary", op, a))
            shapes.append(sa)
        elif kind == "binary":
            b = draw(st.integers(0, len(shapes) - 1))
            try:
                out = np.broadcast_shapes(sa, shapes[b])
            except ValueError:
                b, out = a, sa
            steps.append(("binary", draw(st.sampled_from(["add", "mul", "sub", "maximum"])), a, b))
            shapes.append(out)
        elif kind == "reduce" and len(sa) >= 1:
            rank = len(sa)
            choice = draw(st.sampled_from(["last", "last2", "first", "all", "middle"]))
            dims = {"last": (rank - 1,), "last2": tuple(range(max(0, rank - 2), rank)),
                    "first": (0,), "all": None, "middle": (rank // 2,)}[choice]  # fmt: skip
            keep = draw(st.booleans())
            op = draw(st.sampled_from(["sum", "mean", "amax", "amin"]))
            steps.append(("reduce", op, a, dims, keep))
            red = set(range(rank)) if dims is None else set(dims)
            shapes.append(tuple(1 if i in red else s for i, s in enumerate(sa) if keep
                                or i not in red))  # fmt: skip
        elif kind == "composite" and len(sa) >= 1:
            op = draw(st.sampled_from(["softmax", "log_softmax", "logsumexp", "layer_norm"]))
            steps.append(("composite", op, a))
            shapes.append(sa[:-1] if op == "logsumexp" else sa)
        elif kind == "unsqueeze" and len(sa) < 3:
            steps.append(("unsqueeze", "", a))
            shapes.append(sa + (1,))
    if not steps:
        steps.append(("composite", "softmax", 0))
        shapes.append(shape)
    outs = sorted({len(shapes) - 1, draw(st.integers(3, len(shapes) - 1))})
    return shape, steps, outs


def _unary(op, u, xp):
    if xp is None:
        return {
            "tanh": u.tanh,
            "neg": u.neg,
            "sigmoid": u.sigmoid,
            "expnegabs": lambda: (-u.abs()).exp(),
            "square": lambda: u * u,
        }[op]()
    return {
        "tanh": np.tanh,
        "neg": np.negative,
        "sigmoid": lambda u: 1 / (1 + np.exp(-u)),
        "expnegabs": lambda u: np.exp(-np.abs(u)),
        "square": lambda u: u * u,
    }[op](u)


def _composite(op, u, xp, gains=None):
    if xp is None:
        if op == "logsumexp":
            return fusejit.logsumexp(u, -1)
        if op == "layer_norm":
            return fusejit.layer_norm(u, (u.shape[-1],))
        return getattr(u, op)(-1)
    with np.errstate(all="ignore"):
        m = u.max(-1, keepdims=True)  # softmax: no guard; logsumexp: a non-finite max is 0
        if op in ("softmax", "log_softmax"):
            z = u - m
            r = z - np.log(np.exp(z).sum(-1, keepdims=True))
            return np.exp(r) if op == "softmax" else r
        if op == "logsumexp":
            m = np.where(np.isfinite(m), m, 0)
            return (np.log(np.exp(u - m).sum(-1, keepdims=True)) + m)[..., 0]
        mu = u.mean(-1, keepdims=True)
        var = ((u - mu) ** 2).mean(-1, keepdims=True)
        if gains is not None and var.size:
            # layer_norm multiplies an error in its input by up to 1 / sqrt(var + eps)
            gains.append(float(1 / np.sqrt(var.min() + 1e-5)))
        return (u - mu) / np.sqrt(var + 1e-5)


def _run(shape, steps, outs, x, y, v, xp, gains=None):
    """The program over fusejit tensors (xp None) or numpy float64 arrays (xp = numpy);
    ``gains`` (numpy only) collects each layer_norm's worst amplification of input error."""
    vals = [x, y, v]
    for step in steps:
        kind, op, a = step[:3]
        u = vals[a]
        if kind == "unary":
            r = _unary(op, u, xp)
        elif kind == "binary":
            w = vals[step[3]]
            if xp is None:
                r = fusejit.eager.call(op, u, w)
            else:
                r = {"add": np.add, "mul": np.multiply, "sub": np.subtract,
                     "maximum": np.maximum}[op](u, w)  # fmt: skip
        elif kind == "reduce":
            dims, keep = step[3], step[4]
            if xp is None:
                r = getattr(fusejit, op)(u, dims, keepdim=keep)
            else:
                fn = {"sum": np.sum, "mean": np.mean, "amax": np.max, "amin": np.min}[op]
                r = fn(u, axis=dims, keepdims=keep)
        elif kind == "composite":
            r = _composite(op, u, xp, gains)
        else:
            r = u.unsqueeze(-1) if xp is None else u[..., None]
        vals.append(r if xp is None else np.asarray(r, np.float64))
    return tuple(vals[i] for i in outs)


@settings(max_examples=30, deadline=None)
@given(programs())
def test_random_graphs_match_eager_and_float64(prog):
    check_row_program(prog)


@settings(max_examples=15, deadline=None)
@given(programs())
def test_random_float16_graphs_match_eager_and_float64(prog):
    check_row_program(prog, dtype=np.float16)


def test_float16_layer_norm_of_a_nearly_constant_row_matches_eager():
    # a draw of the test above: rows constant in float16 but not in float64 reach layer_norm
    steps = [("unary", "tanh", 0), ("composite", "log_softmax", 1)]
    steps += [("unary", "tanh", 0)] * 4 + [("binary", "sub", 4, 1), ("composite", "layer_norm", 9)]
    check_row_program(((3, 5), steps, [3, 10]), dtype=np.float16)


# A float16 program is compared with float64 when its layer_norms amplify input error at most
# this much: 10 float16 ulps a step times 4 stays within the bound of 1e-2 a step.
_FLOAT16_MAX_GAIN = 4.0


def check_row_program(prog, device: str = "cpu", dtype=np.float32) -> None:
    """A program of ``programs()`` traced on ``device``: equal to eager there (and to the
    interpreter), and normwise close to float64 numpy (also run by tests/test_cuda.py).
    float16 rounds each step to float16 (eager too): looser bounds, 10 float16 ulps a step."""
    shape, steps, outs = prog
    rng = np.random.default_rng(len(steps))
    arrays = [rng.standard_normal(s).astype(dtype) for s in (shape, shape, shape[-1:])]
    eager_tol, ref_tol = (1e-4, 1e-3) if dtype == np.float32 else (1e-2, 1e-2 * len(steps))
    tensors = [fusejit.tensor(a, device=device) for a in arrays]

    def fn(x, y, v):
        return _run(shape, steps, outs, x, y, v, None)

    t = fusejit.trace(fn, tuple(tensors), check_trace=False)
    verify(t.graph)
    got, want = t(*tensors), fn(*tensors)
    interp = t.interpret(*tensors)
    gains: list[float] = []
    ref = _run(shape, steps, outs, *[a.astype(np.float64) for a in arrays], np, gains)
    # The float64 comparison assumes mild conditioning. layer_norm of a row that is nearly
    # constant (variance far below 1) amplifies the rounding of its input by 1 / sqrt(var + eps),
    # up to 316x: float32's rounding stays far inside the bound, float16's does not (a row equal
    # in float16 but not in float64 normalizes to +-0.5 against 0). Such float16 programs are
    # checked against eager and the interpreter only.
    well_conditioned = dtype != np.float16 or np.prod(gains) <= _FLOAT16_MAX_GAIN
    for k, (g, w, i, r) in enumerate(zip(got, want, interp, ref, strict=True)):
        close(g, w, f"output {k} vs eager", eager_tol)
        close(i, w, f"output {k}: interpreter vs eager", eager_tol)
        r = np.asarray(r)
        assert g.shape == r.shape
        if not well_conditioned:
            continue
        # normwise against float64: the program's conditioning is mild (bounded ops)
        scale = 1 + float(np.nanmax(np.abs(r), initial=0))
        np.testing.assert_allclose(g.numpy().astype(np.float64), r, rtol=ref_tol,
                                   atol=ref_tol * scale, equal_nan=True,
                                   err_msg=f"output {k} vs float64")  # fmt: skip
