"""Column fusion on the CPU: reductions over leading or middle dims (a bias gradient
``dy.sum(0)``, layer norm's weight and bias gradients, ``x.sum((0, 1))``, ``x.sum(1)`` of a
3-D tensor) become one kernel with their elementwise prologue and epilogue; results match
float64 references and eager's dtypes.

Bound (eps = float32 machine epsilon): a fused float32 column sum of terms t_i (each rounded to
float32 as eager rounds it) accumulates in float64 and rounds once, so it lies within
``eps * (sum|t_i| + |sum|)`` of the float64 sum of the float64 terms (each float32 term within
eps/2 of its float64 value, the result rounded once); a mean is that divided by n; amax and
amin are exact.
"""

from __future__ import annotations

import numpy as np
import pytest
from fusejit.backends import cpu_kernels
from hypothesis import given, settings
from hypothesis import strategies as st
from jit_helpers import module_cache_fixture

import fusejit
from fusejit.base.errors import ShapeError
from fusejit.codegen.cols import ColBody
from fusejit.ir.verify import verify

_cache = module_cache_fixture()
pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")
EPS = float(np.finfo(np.float32).eps)
R = fusejit.randn


def col_kernels(t) -> list:
    return [n for n in t.graph.nodes
            if n.op == "fused" and isinstance(n.attr("body"), ColBody)]  # fmt: skip


def f64(t) -> np.ndarray:
    return t.numpy().astype(np.float64)


def within(got, want64, scale, what=""):
    """float32 ``got`` within eps * scale of the float64 reference (NaN where NaN)."""
    g = got.numpy().astype(np.float64)
    assert g.shape == want64.shape, what
    nan = np.isnan(want64)
    assert np.array_equal(np.isnan(g), nan), what
    err = np.abs(g - want64)[~nan]
    bound = np.broadcast_to(EPS * np.asarray(scale) + 1e-30, want64.shape)[~nan]
    assert np.all(err <= bound), (what, float(err.max()), float(np.max(bound)))


def same_as_eager(t, fn, *args, exact=False):
    got, want = t(*args), fn(*args)
    got = got if isinstance(got, tuple) else (got,)
    want = want if isinstance(want, tuple) else (want,)
    for g, w in zip(got, want, strict=True):
        assert g.dtype == w.dtype and g.shape == w.shape
        if exact or g.dtype.is_floating_point is False:
            np.testing.assert_array_equal(g.numpy(), w.numpy())
        else:
            np.testing.assert_allclose(g.numpy(), w.numpy(), rtol=2e-5, atol=2e-5, equal_nan=True)


# ---- kernel counts -------------------------------------------------------------------------------
def test_prologue_and_leading_sum_are_one_kernel():
    a, b = R(64, 48), R(64, 48)
    t = fusejit.trace(lambda x, y: (x * y).sum(0), (a, b))
    verify(t.graph)
    assert t.kernel_count() == 1 and len(col_kernels(t)) == 1
    assert t.graph.notes["unfused"] == []
    t64 = f64(a) * f64(b)
    within(t(a, b), t64.sum(0), np.abs(t64).sum(0) + np.abs(t64.sum(0)))
    text = fusejit.explain(t)
    assert "unfused nodes: 0" in text and "mul, sum" in text


def test_layer_norm_weight_and_bias_gradients_are_one_kernel():
    dy, xhat = R(256, 96), R(256, 96)

    def grads(dy, xhat):
        return (dy * xhat).sum(0), dy.sum(0)

    t = fusejit.trace(grads, (dy, xhat))
    assert t.kernel_count() == 1 and t.graph.notes["unfused"] == []
    (body,) = [n.attr("body") for n in col_kernels(t)]
    assert len(body.ports) == 2  # dy read once for both sums
    dw, db = t(dy, xhat)
    p = f64(dy) * f64(xhat)
    within(dw, p.sum(0), np.abs(p).sum(0) + np.abs(p.sum(0)))
    within(db, f64(dy).sum(0), np.abs(f64(dy)).sum(0) + np.abs(f64(dy).sum(0)))


def test_layer_norm_backward_of_3d_activations():
    # (B, T, C) activations: the weight gradient reduces the two leading dims
    x, dy, w = R(4, 16, 32), R(4, 16, 32), R(32)

    def grads(x, dy, w):
        mu = x.mean(-1, keepdim=True)
        xhat = (x - mu) * fusejit.rsqrt(((x - mu) ** 2).mean(-1, keepdim=True) + 1e-5)
        return (dy * xhat).sum((0, 1)), dy.sum((0, 1)), (dy * w).sum(-1)

    t = fusejit.trace(grads, (x, dy, w))
    assert t.graph.notes["unfused"] == []
    assert len(col_kernels(t)) == 1
    same_as_eager(t, grads, x, dy, w)


@pytest.mark.parametrize(
    "fn, shape",
    [
        (lambda x: x.sum((0, 1)), (5, 6, 7)),
        (lambda x: (x * 2).sum((0, 1)), (5, 6, 7)),
        (lambda x: x.sum(1), (5, 6, 7)),
        (lambda x: (x.exp() + 1).sum(1), (5, 6, 7)),
        (lambda x: x.sum(0), (9, 4)),
        (lambda x: x.sum((1, 2)), (3, 4, 5, 6)),
    ],
)
def test_each_column_reduction_is_one_kernel(fn, shape):
    x = R(*shape)
    t = fusejit.trace(fn, (x,))
    assert t.kernel_count() == 1 and len(col_kernels(t)) == 1
    assert t.graph.notes["unfused"] == []
    same_as_eager(t, fn, x)


# ---- values -------------------------------------------------------------------------------------
@pytest.mark.parametrize("keepdim", [False, True])
def test_reductions_and_epilogue_match_float64(keepdim):
    x, y = R(37, 5, 19), R(37, 5, 19)

    def f(x, y):
        p = x * y + 1
        return (
            p.sum(1, keepdim=keepdim) * 2 + 1,
            p.mean(1, keepdim=keepdim),
            p.amax(1, keepdim=keepdim),
            p.amin(1, keepdim=keepdim),
        )

    t = fusejit.trace(f, (x, y))
    assert t.kernel_count() == 1 and t.graph.notes["unfused"] == []
    s, m, mx, mn = t(x, y)
    p = f64(x) * f64(y) + 1
    mag = np.abs(p).sum(1, keepdims=keepdim)
    ref = p.sum(1, keepdims=keepdim)
    within(s, ref * 2 + 1, 2 * (mag + np.abs(ref)) + np.abs(ref * 2 + 1) * 2)
    within(m, ref / 5, (mag + np.abs(ref)) / 5 + np.abs(ref / 5))
    ev = f(x, y)
    np.testing.assert_array_equal(mx.numpy(), ev[2].numpy())
    np.testing.assert_array_equal(mn.numpy(), ev[3].numpy())
    for g, w in zip((s, m, mx, mn), ev, strict=True):
        assert g.dtype == w.dtype and g.shape == w.shape


@pytest.mark.parametrize("dtype", ["float16", "float64", "int32", "int64", "bool"])
def test_dtypes_follow_eager(dtype):
    rng = np.random.default_rng(1)
    if dtype == "bool":
        a = rng.random((40, 3, 6)) > 0.5
    elif dtype.startswith("int"):
        a = rng.integers(-50, 50, (40, 3, 6)).astype(dtype)
    else:
        a = rng.standard_normal((40, 3, 6)).astype(dtype)
    x = fusejit.from_numpy(a)

    def f(x):
        return x.sum(0), (x * x).sum((0, 1), keepdim=True)

    t = fusejit.trace(f, (x,))
    assert len(col_kernels(t)) >= 1
    got, want = t(x), f(x)
    for g, w in zip(got, want, strict=True):
        assert g.dtype == w.dtype and g.shape == w.shape
    if dtype == "float16":  # accumulated in float64, rounded once (eager: float32 sums)
        ref = a.astype(np.float64).sum(0)
        np.testing.assert_allclose(got[0].numpy().astype(np.float64), ref, rtol=1e-3, atol=2e-2)
        ref = (a * a).astype(np.float64).sum((0, 1), keepdims=True)
        np.testing.assert_allclose(got[1].numpy().astype(np.float64), ref, rtol=2e-3)
    elif dtype == "float64":
        np.testing.assert_allclose(got[0].numpy(), a.sum(0), rtol=1e-12, atol=1e-12)
    else:
        same_as_eager(t, f, x, exact=True)


def test_non_contiguous_and_broadcast_inputs():
    base = R(48, 40)
    xt = base.T  # (40, 48), not contiguous
    bias, col = R(48), R(40, 1)

    def f(x, b, c):
        return ((x + b) * c).sum(0), (x * c).mean(0, keepdim=True)

    t = fusejit.trace(f, (xt, bias, col))
    assert t.kernel_count() == 1
    s, m = t(xt, bias, col)
    v = (f64(xt) + f64(bias)) * f64(col)
    within(s, v.sum(0), np.abs(v).sum(0) * 2 + np.abs(v.sum(0)))
    w = f64(xt) * f64(col)
    within(m, w.mean(0, keepdims=True), (np.abs(w).sum(0) + np.abs(w.sum(0))) / 40 + 1e-7)
    # middle dim with a per-(outer, kept) input and a strided slice
    x3 = R(6, 20, 16)[:, ::2, 1:]
    o = R(6, 1, 15)

    def g(x, o):
        return (x * o).sum(1)

    t = fusejit.trace(g, (x3, o))
    assert t.kernel_count() == 1
    p = f64(x3) * f64(o)
    within(t(x3, o), p.sum(1), np.abs(p).sum(1) + np.abs(p.sum(1)))


def test_exported_prologue_value_is_stored_by_the_kernel():
    x = R(30, 12)

    def f(x):
        y = x * 3 - 1
        return y, y.sum(0)

    t = fusejit.trace(f, (x,))
    assert t.kernel_count() == 1
    y, s = t(x)
    np.testing.assert_array_equal(y.numpy(), (x * 3 - 1).numpy())
    v = f64(y)
    within(s, v.sum(0), np.abs(v).sum(0) + np.abs(v.sum(0)))


def test_shape_generic_and_empty_dims():
    def f(x):
        return (x * 2).sum(0), (x * 2).mean(0)

    t = fusejit.trace(f, (R(8, 5),))
    for shape in ((3, 7), (0, 4), (5, 0), (1000, 3)):
        x = fusejit.from_numpy(np.random.default_rng(0).standard_normal(shape).astype(np.float32))
        s, m = t(x)
        ref = f64(x) * 2
        assert s.shape == (shape[1],) and s.dtype == fusejit.float32
        if shape[0] == 0:
            assert np.all(s.numpy() == 0) and np.all(np.isnan(m.numpy()))
        else:
            within(s, ref.sum(0), np.abs(ref).sum(0) + np.abs(ref.sum(0)))
    tm = fusejit.trace(lambda x: (x + 1).amax(0), (R(8, 5),))
    assert len(col_kernels(tm)) == 1
    with pytest.raises(ShapeError, match="empty dimension"):
        tm(fusejit.zeros(0, 5))


@pytest.mark.parametrize("shape", [(4096, 130), (64, 40000), (9000, 3), (3, 3000, 200)])
def test_threaded_splits_match_float64(shape):
    # rows split into parts (few columns), by kept columns, and by outer columns
    rng = np.random.default_rng(7)
    a = rng.standard_normal(shape).astype(np.float32)
    x = fusejit.from_numpy(a)
    dims = (1,) if len(shape) == 3 else (0,)

    def f(x):
        return (x * x - 0.5).sum(dims)

    t = fusejit.trace(f, (x,))
    kern = t.plan.kernels[0][1]
    assert isinstance(kern, cpu_kernels.CpuColKernel)
    first = t(x)
    again = t(x)  # compiled: threaded where large enough
    p = a.astype(np.float64) ** 2 - 0.5
    mag = np.abs(p).sum(dims) + np.abs(p.sum(dims))
    within(first, p.sum(dims), mag)
    within(again, p.sum(dims), mag)
    if cpu_kernels.THREADS > 1:
        assert kern.threaded >= 1
        # the split follows the shape and the thread count, never the timing
        np.testing.assert_array_equal(t(x).numpy(), again.numpy())


def test_second_pass_readers_stay_outside():
    # x / x.sum(0): the division reads the column sums and x again, a kernel of its own
    x = R(10, 6)
    t = fusejit.trace(lambda x: x / x.sum(0, keepdim=True), (x,))
    assert t.kernel_count() == 2 and len(col_kernels(t)) == 1
    same_as_eager(t, lambda x: x / x.sum(0, keepdim=True), x)


def test_optimize_module_bias_gradient_is_fused():
    opt = fusejit.optimize(lambda dy, h: ((h > 0) * dy).sum(0), warmup=0)
    dy, h = R(64, 32), R(64, 32)
    out = opt(dy, h)
    ref = (f64(h) > 0) * f64(dy)
    within(out, ref.sum(0), np.abs(ref).sum(0) + np.abs(ref.sum(0)))
    assert "unfused nodes: 0" in fusejit.explain(opt)


# ---- on a GPU (bench/gpu_check.sh runs these) ---------------------------------------------
@pytest.mark.skipif(not fusejit.is_cuda_available(), reason="no usable GPU (cupy and a device)")
@pytest.mark.parametrize(
    "shape, dims", [((4096, 1024), (0,)), ((8, 512, 768), (0, 1)), ((64, 300, 40), (1,))]
)
def test_cuda_column_kernels_match_float64(shape, dims):
    rng = np.random.default_rng(11)
    a = rng.standard_normal(shape).astype(np.float32)
    b = rng.standard_normal(shape).astype(np.float32)
    x, y = (fusejit.from_numpy(v).to("cuda") for v in (a, b))

    def grads(dy, xhat):
        return (dy * xhat).sum(dims), dy.sum(dims), (dy * 2).mean(dims, keepdim=True)

    t = fusejit.trace(grads, (x, y))
    assert t.kernel_count() == 1 and len(col_kernels(t)) == 1
    dw, db, m = (o.cpu() for o in t(x, y))
    p = a.astype(np.float64) * b
    within(dw, p.sum(dims), np.abs(p).sum(dims) + np.abs(p.sum(dims)))
    d64 = a.astype(np.float64)
    within(db, d64.sum(dims), np.abs(d64).sum(dims) + np.abs(d64.sum(dims)))
    n = int(np.prod([shape[d] for d in dims]))
    ref = (2 * d64).sum(dims, keepdims=True) / n
    within(m, ref, (2 * np.abs(d64).sum(dims, keepdims=True)) / n + np.abs(ref))
    # again: the same bits (no atomics)
    np.testing.assert_array_equal(t(x, y)[0].cpu().numpy(), dw.numpy())


def test_float32_column_sum_is_the_float64_sum_rounded_once():
    # (CONTRIBUTING, Decisions: column sums accumulate in float64); eager adds in float32
    rng = np.random.default_rng(5)
    a = (rng.standard_normal((3000, 64)) * 10 ** rng.uniform(-3, 3, (3000, 64))).astype(np.float32)
    x = fusejit.from_numpy(a)
    t = fusejit.trace(lambda x: x.sum(0), (x,))
    assert len(col_kernels(t)) == 1
    got = t(x).numpy().astype(np.float64)
    want = a.astype(np.float64).sum(0)
    bound = EPS / 2 * np.abs(want) + 3000 * 2.3e-16 * np.abs(a).astype(np.float64).sum(0)
    assert np.all(np.abs(got - want) <= bound)
    eager = x.sum(0).numpy().astype(np.float64)  # float32 additions: further from the exact sum
    assert np.abs(eager - want).sum() >= np.abs(got - want).sum()


def test_interpreter_and_sum_dtype_argument():
    x = R(33, 7, 5)

    def f(x):
        return (x * 2).sum(1, dtype=fusejit.float64), (x > 0).sum((0, 1)), (x - 1).mean(0)

    t = fusejit.trace(f, (x,))
    assert len(col_kernels(t)) >= 1 and t.graph.notes["unfused"] == []
    for got in (t(x), t.interpret(x)):
        for g, w in zip(got, f(x), strict=True):
            assert g.dtype == w.dtype and g.shape == w.shape
            np.testing.assert_allclose(g.numpy(), w.numpy(), rtol=1e-5, atol=1e-5)


# ---- random column programs --------------------------------------------------------------
_PROLOGUES = {
    "mul": lambda x, y: x * y,
    "add_exp": lambda x, y: (x + y * 0.5).exp(),
    "abs_sub": lambda x, y: (x - y).abs(),
    "where": lambda x, y: fusejit.where(x > y, x, y * 2),
    "cast": lambda x, y: (x * 3).to(fusejit.float64) + y.to(fusejit.float64),
}


@settings(max_examples=30, deadline=None)
@given(
    shape=st.lists(st.integers(1, 9), min_size=2, max_size=4),
    block=st.tuples(st.integers(0, 3), st.integers(1, 3)),
    prologue=st.sampled_from(sorted(_PROLOGUES)),
    red=st.sampled_from(["sum", "mean", "amax", "amin"]),
    keepdim=st.booleans(),
    epilogue=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_random_column_programs_match_eager(shape, block, prologue, red, keepdim, epilogue, seed):
    rank = len(shape)
    a = min(block[0], rank - 2)
    b = min(a + block[1], rank - 1)  # [a, b) ends before the last dim
    dims = tuple(range(a, b))
    if all(shape[d] == 1 for d in dims):
        shape[a] = 3
    rng = np.random.default_rng(seed)
    x, y = (fusejit.from_numpy(rng.standard_normal(shape).astype(np.float32)) for _ in range(2))

    def f(x, y):
        r = getattr(_PROLOGUES[prologue](x, y), red)(dims, keepdim=keepdim)
        return r * 2 - 1 if epilogue else r

    t = fusejit.trace(f, (x, y))
    assert len(col_kernels(t)) == 1 and t.graph.notes["unfused"] == []
    got, want = t(x, y), f(x, y)
    assert got.dtype == want.dtype and got.shape == want.shape
    # against float64: the terms' magnitudes bound the float32 eager's error and the kernel's
    t64 = _PROLOGUES[prologue](*(fusejit.from_numpy(f64(v)) for v in (x, y))).numpy()
    scale = np.abs(t64).sum(dims, keepdims=keepdim)  # (a mean's error is smaller still)
    tol = 8 * EPS * (scale + 1) * (3 if epilogue else 1)
    if red in ("amax", "amin"):
        tol = 4 * EPS * (np.abs(want.numpy()).astype(np.float64) + 1)
    np.testing.assert_array_less(np.abs(got.numpy() - want.numpy().astype(np.float64)), tol + 1e-30)


def test_layer_norm_weight_gradient_reads_per_row_statistics_once_a_row():
    # the saved mean and rstd, shape (N, 1): a "row" port (read per row, not broadcast to F)
    dy, x, mu, rs = R(203, 40), R(203, 40), R(203, 1), R(203, 1).abs() + 0.5

    def dw(dy, x, mu, rs):
        return (dy * ((x - mu) * rs)).sum(0), dy.sum(0)

    t = fusejit.trace(dw, (dy, x, mu, rs))
    (body,) = [n.attr("body") for n in col_kernels(t)]
    assert t.kernel_count() == 1
    assert sorted(p[1] for p in body.ports) == ["full", "full", "row", "row"]
    w, b = t(dy, x, mu, rs)
    p = f64(dy) * ((f64(x) - f64(mu)) * f64(rs))
    within(w, p.sum(0), 3 * np.abs(p).sum(0) + np.abs(p.sum(0)))
    within(b, f64(dy).sum(0), np.abs(f64(dy)).sum(0) + np.abs(f64(dy).sum(0)))
    # 3-D activations, the statistics of shape (B, T, 1), reduced over (0, 1)
    dy3, x3, mu3 = R(3, 50, 16), R(3, 50, 16), R(3, 50, 1)
    t3 = fusejit.trace(lambda dy, x, mu: (dy * (x - mu)).sum((0, 1)), (dy3, x3, mu3))
    p3 = f64(dy3) * (f64(x3) - f64(mu3))
    within(t3(dy3, x3, mu3), p3.sum((0, 1)), 2 * np.abs(p3).sum((0, 1)) + np.abs(p3.sum((0, 1))))


def test_a_sum_of_values_divided_by_a_column_sum_is_two_kernels():
    # the prologues of the second sum and the amax read the first sum's result: a second
    # pass, so that region (same domain) must not merge with the first (the two readers,
    # with no path between them, do share a kernel)
    x = R(6, 5).abs() + 0.1

    def f(x):
        return (x / x.sum(0, keepdim=True)).sum(0), (x * x.sum(0)).amax(0)

    t = fusejit.trace(f, (x,))
    assert t.kernel_count() == len(col_kernels(t)) == 2 and t.graph.notes["unfused"] == []
    same_as_eager(t, f, x)
