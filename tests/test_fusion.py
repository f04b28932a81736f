"""Elementwise fusion: kernel counts, exported intermediates, splits at non-elementwise ops,
no cycles, float16 left eager on the CPU, and fused results equal to eager ones."""

from __future__ import annotations

import numpy as np
import pytest
from fusejit.backends import cpu_kernels
from hypothesis import given, settings
from hypothesis import strategies as st
from jit_helpers import assert_bitwise, module_cache_fixture

import fusejit
from fusejit.ir.verify import verify
from fusejit.jit.interpret import interpret
from fusejit.jit.passes import fuse
from fusejit.jit.passes.fuse import fuse_elementwise
from fusejit.jit.tracer import capture

_cache = module_cache_fixture()


def top_ops(t):
    return [n.op for n in t.graph.nodes]


def fused_nodes(t):
    return [n for n in t.graph.nodes if n.op == "fused"]


def check_against_eager(t, fn, *args, rtol=1e-6, atol=1e-6):
    got, want = t(*args), fn(*args)
    got = got if isinstance(got, tuple) else (got,)
    want = want if isinstance(want, tuple) else (want,)
    for g, w in zip(got, want, strict=True):
        assert g.dtype is w.dtype and g.shape == w.shape
        np.testing.assert_allclose(g.numpy(), w.numpy(), rtol=rtol, atol=atol)
    interp = t.interpret(*args)
    for g, i in zip(got, interp if isinstance(interp, tuple) else (interp,), strict=True):
        np.testing.assert_allclose(g.numpy(), i.numpy(), rtol=rtol, atol=atol)


def chain8(x):
    return fusejit.tanh((x * 2 + 1).exp() * fusejit.sigmoid(x)) + x * 0.5


def test_chain_of_8_ops_is_one_kernel():
    x = fusejit.randn(1000)
    t = fusejit.trace(chain8, x)
    assert t.kernel_count() == 1 and top_ops(t) == ["fused"]
    body = fused_nodes(t)[0].blocks[0]
    assert [n.op for n in body.nodes] == ["mul", "add", "exp", "sigmoid", "mul", "tanh", "mul",
                                          "add"]  # fmt: skip
    check_against_eager(t, chain8, fusejit.randn(1000) * 2)


def adam(p, g, m, v):
    m2 = m * 0.9 + g * 0.1
    v2 = v * 0.999 + g * g * 0.001
    p2 = p - 0.01 * (m2 / 0.1) / ((v2 / 0.001).sqrt() + 1e-8)
    return p2, m2, v2


def test_adam_step_is_one_kernel_with_three_outputs():
    args = (fusejit.randn(256), fusejit.randn(256), fusejit.randn(256), fusejit.rand(256))
    t = fusejit.trace(adam, args)
    assert t.kernel_count() == 1 and top_ops(t) == ["fused"]
    (node,) = fused_nodes(t)
    assert len(node.inputs) == 4 and len(node.outputs) == 3
    assert list(t.graph.outputs) == list(node.outputs)
    assert node.attr("body").out_dtypes() == ("float32",) * 3
    check_against_eager(t, adam, *args, rtol=1e-5)


def test_an_intermediate_also_returned_is_an_extra_output_of_the_region():
    def f(x):
        a = x * 2 + 1
        return (a.exp() * 3).tanh(), a

    x = fusejit.randn(64)
    t = fusejit.trace(f, x)
    assert t.kernel_count() == 1
    (node,) = fused_nodes(t)
    assert len(node.outputs) == 2 and list(t.graph.outputs) == list(node.outputs)
    check_against_eager(t, f, fusejit.randn(64))


def test_matmul_splits_the_elementwise_ops():
    w = fusejit.randn(16, 8)

    def f(x):
        h = (x * 2 + 1).relu()
        return ((h @ w) * 0.5).tanh() + 1

    t = fusejit.trace(f, fusejit.randn(4, 16))
    assert t.kernel_count() == 2 and top_ops(t) == ["fused", "matmul", "fused"]
    assert ("matmul", "matmul op (only elementwise ops fuse)") in t.graph.notes["unfused"]
    check_against_eager(t, f, fusejit.randn(4, 16), rtol=1e-5)


def test_a_reduction_in_the_middle_splits():
    # over a leading dim: a reduction over the trailing dims fuses instead (a row kernel, see
    # tests/test_reduction_fusion.py)
    def f(x):
        e = (x - 1).exp()
        return (e / e.sum(0, keepdim=True)).log() * 2

    t = fusejit.trace(f, fusejit.randn(5, 7))
    # the sum over the leading dim is a column kernel with its prologue (exp(x - 1)); the
    # division reads the sum's result and e again, a second kernel
    assert top_ops(t) == ["fused", "fused"] and t.kernel_count() == 2
    assert t.graph.notes["unfused"] == []
    check_against_eager(t, f, fusejit.randn(5, 7), rtol=1e-5)


def test_broadcasting_bias_add_fuses():
    def f(x, b, s):
        return ((x + b) * s).relu() - 1

    args = (fusejit.randn(8, 16), fusejit.randn(16), fusejit.randn(8, 1))
    t = fusejit.trace(f, args)
    assert t.kernel_count() == 1 and top_ops(t) == ["fused"]
    assert [v.type.shape for v in fused_nodes(t)[0].inputs] == [(8, 16), (16,), (8, 1)]
    check_against_eager(t, f, *args)
    other = (fusejit.randn(3, 5), fusejit.randn(5), fusejit.randn(3, 1))
    check_against_eager(t, f, *other)


def test_where_comparisons_and_casts_fuse():
    def f(x, y):
        m = (x > 0) & (y <= 1)
        z = fusejit.where(m, x, y * 2).to(fusejit.float64)
        return (z + 1).to(fusejit.int32), m.to(fusejit.float32) * 3

    x, y = fusejit.randn(50) * 5, fusejit.randn(50) * 5
    t = fusejit.trace(f, (x, y))
    assert t.kernel_count() == 1
    body_ops = {n.op for n in fused_nodes(t)[0].blocks[0].nodes}
    assert {"gt", "le", "bitwise_and", "where", "cast", "add", "mul"} <= body_ops
    for g, w in zip(t(x, y), f(x, y), strict=True):
        assert_bitwise(g, w)


@pytest.mark.parametrize("src", ["float32", "float64"])
@pytest.mark.parametrize("dst", ["int8", "uint8", "int16"])
def test_out_of_range_float_to_narrow_int_casts_wrap_as_eager(src, dst):
    # numpy (eager) converts through int32 on x86, so 150.0 -> int8 wraps to -106; the fused
    # cast saturated (127) and failed the trace check
    x = np.array([128.2, 150, 1e5, -129.5, -1e5, 3e9, -3e9, 255.9, 256.0, -1.0, 0.5, -0.5,
                  np.nan, np.inf, -np.inf], src)  # fmt: skip
    d = getattr(fusejit, dst)
    t = fusejit.trace(lambda v: (v * 1.0).to(d), (fusejit.tensor(x),))
    assert t.kernel_count() == 1
    want = x.astype(dst)
    np.testing.assert_array_equal(fusejit.tensor(x).to(d).numpy(), want)
    np.testing.assert_array_equal(t(fusejit.tensor(x)).numpy(), want)


def test_diamond_through_a_non_fusible_op_verifies_and_is_correct():
    def f(x):
        a = x * 2
        b = a.prod(0, keepdim=True)  # a -> prod -> c and a -> c: a cannot join c's region
        c = a + b
        return (c * a).exp()

    x = fusejit.randn(6, 4)
    t = fusejit.trace(f, x)
    verify(t.graph)
    assert top_ops(t) == ["fused", "prod", "fused"]  # (x * 2 a region of one op)
    check_against_eager(t, f, x, rtol=1e-5)


def test_no_cycle_when_a_region_would_reach_itself_through_another_region():
    # a0 -> sum -> (b0 + s) puts b0's region downstream of a0; n = a0 + b2 must not merge
    # a0's and b0's regions into one (it would need its own output through the sum). The sums
    # are products, so that they stay unfused (sums would fuse with everything here into one
    # row kernel over the last dim, or into column kernels over the first).
    def f(x, y):
        a0 = x * 2
        s = a0.prod(0, keepdim=True)
        b0 = y * 3
        b1 = b0 + s
        b2 = b0 * 2
        return a0 + b2, b1

    def g(x, y):  # the same, where the last op reads b0 directly
        a0 = x * 2
        s = a0.prod(0, keepdim=True)
        g0 = y * 3
        g1 = g0 + s
        return a0 * g0, g1

    args = (fusejit.randn(4, 5), fusejit.randn(4, 5))
    for fn in (f, g):
        t = fusejit.trace(fn, args)
        verify(t.graph)
        assert top_ops(t) == ["fused", "prod", "fused"]  # (a0 a region of one op)
        check_against_eager(t, fn, *args, rtol=1e-5)


def test_siblings_reading_one_value_share_a_kernel():
    # no edge joins them, but both read x (and h): one kernel each time, reading it once
    w = fusejit.randn(16, 8)

    def f(x):
        return x.exp(), (x * 3).tanh() + 1, x.sigmoid()

    def g(x):
        h = x @ w
        return h.relu() * 2, h.sigmoid()

    x = fusejit.randn(4, 16)
    t = fusejit.trace(f, x)
    assert t.kernel_count() == 1 and top_ops(t) == ["fused"]
    (node,) = fused_nodes(t)
    assert len(node.inputs) == 1 and len(node.outputs) == 3
    check_against_eager(t, f, fusejit.randn(4, 16), rtol=1e-5)
    t = fusejit.trace(g, x)
    assert top_ops(t) == ["matmul", "fused"] and len(fused_nodes(t)[0].outputs) == 2
    check_against_eager(t, g, fusejit.randn(4, 16), rtol=1e-5)


def test_siblings_with_a_path_between_them_or_other_shapes_stay_apart():
    w = fusejit.randn(8, 8)

    def through_matmul(x):  # a -> matmul -> c: a and c both read x, but c needs a
        a = x.exp()
        return a, x * (a @ w)

    def other_shape(x):  # both read x; a row of it is another iteration space
        return x.exp(), x[0] * 2

    x = fusejit.randn(4, 8)
    for fn, ops in ((through_matmul, ["exp", "matmul", "mul"]),
                    (other_shape, ["exp", "getitem", "mul"])):  # fmt: skip
        t = fusejit.trace(fn, x)
        verify(t.graph)
        # each elementwise op a region of its own
        steps = [[s.op for s in n.attr("body").steps] if n.op == "fused" else n.op
                 for n in t.graph.nodes]  # fmt: skip
        assert t.kernel_count() == 2 and steps == [[ops[0]], ops[1], [ops[2]]], steps
        check_against_eager(t, fn, fusejit.randn(4, 8), rtol=1e-5)


def _trig_ref(x, b):
    """trig_fn in float64 from each float32 intermediate, rounded to float32 after each op."""
    f32, f64 = np.float32, np.float64
    with np.errstate(all="ignore"):
        s = (np.sin((x * f32(2)).astype(f64)).astype(f32) * f32(3)).astype(f32)
        c = np.cos((x + b).astype(f32).astype(f64)).astype(f32)
        return (s + c).astype(f32), np.tan(x.astype(f64)).astype(f32)


def trig_fn(x, b):
    return (x * 2).sin() * 3 + (x + b).cos(), x.tan()


def test_sin_cos_tan_regions_vectorize_and_recompute_large_arguments_with_libm():
    from fusejit.codegen.cpu import kernel_source, nd_kernel_source

    rng = np.random.default_rng(3)
    x = (rng.standard_normal((6, 40)) * 30).astype(np.float32)
    big = x.copy()
    big[2, 5], big[4, 0], big[5, 7] = 3e6, -1e30, np.inf
    big[0, 1], big[1, 1] = np.nan, -0.0
    # [6, 40] plus a bias [40]: the N-D kernel; [240] plus [240]: the flat kernel
    b = rng.standard_normal(40).astype(np.float32)
    cases = [(x, b), (big, b), (x.ravel(), np.tile(b, 6)), (big.ravel(), np.tile(b, 6))]
    traced = {}
    for xs, bs in cases:
        key = (xs.ndim, bs.shape)
        if key not in traced:
            traced[key] = fusejit.trace(trig_fn, (fusejit.from_numpy(xs), fusejit.from_numpy(bs)))
        t = traced[key]
        assert t.kernel_count() == 1
        got = t(fusejit.from_numpy(xs), fusejit.from_numpy(bs))
        for g, r in zip(got, _trig_ref(xs, bs), strict=True):
            np.testing.assert_allclose(g.numpy(), r, rtol=2e-6, atol=2e-6)
            zero = xs == 0
            assert np.array_equal(np.signbit(g.numpy()[zero]), np.signbit(r[zero]))
    body = fused_nodes(traced[(2, (40,))])[0].attr("body")
    for src in (kernel_source(body, "k"), nd_kernel_source(body, "k_nd", 2, "ub")):
        # the vectorizable calls, the range check over the loop, and the libm loop after it
        assert "_vm.sin_f32(" in src and "_vm.trig_in_range_f32(" in src
        assert "math.sin(" in src and "if not ok:" in src
    # float64 the same way, with its own range check
    x64, big64, b64 = x.astype(np.float64), big.astype(np.float64), b.astype(np.float64)
    t64 = fusejit.trace(trig_fn, (fusejit.from_numpy(x64), fusejit.from_numpy(b64)))
    src = kernel_source(fused_nodes(t64)[0].attr("body"), "k")
    assert "_vm.sin_f64(" in src and "_vm.trig_in_range_f64(" in src and "math.sin(" in src
    with np.errstate(all="ignore"):
        for xs in (x64, big64):
            got = t64(fusejit.from_numpy(xs), fusejit.from_numpy(b64))
            want = (np.sin(xs * 2) * 3 + np.cos(xs + b64), np.tan(xs))
            for g, r in zip(got, want, strict=True):
                np.testing.assert_allclose(g.numpy(), r, rtol=1e-14, atol=1e-14)


def test_float16_regions_fuse_on_the_cpu_and_round_each_step_as_eager_does():
    # float16 is read and written as its bits, computed in float32, and rounded to float16
    # after each float16 step: exact ops give eager's bits, transcendental ones its value
    # within an ulp; a float64 -> float16 cast rounds once
    def exact(x, y, z):
        return (x * 3 + y) / 7 - x * x, (x > y) & (y < 2), (z * 3).half() + 1, x.float() * 0.1

    def transcendental(x, y):
        return (x * 0.5).exp() * y, (x + y).tanh()

    rng = np.random.default_rng(8)
    x = rng.standard_normal((6, 9)).astype(np.float16)
    x[0, :5] = [np.inf, -np.inf, np.nan, 6e-8, 60000]  # (60000 * 3 overflows to inf)
    y = rng.standard_normal(9).astype(np.float16)  # broadcast: the N-D kernel
    z = rng.standard_normal((6, 9)) * 1e4
    args = [fusejit.from_numpy(a) for a in (x, y, z)]
    flat = [fusejit.from_numpy(a) for a in (x.ravel(), np.tile(y, 6), z.ravel())]
    for a in (args, flat, [t[:, ::2] if t.ndim == 2 else t[::2] for t in args]):
        t = fusejit.trace(exact, tuple(a))
        # (x's siblings are one region, z's chain another; y < 2 joins x's where y has x's
        # shape, else it is a third)
        n = 2 if a[1].shape == a[0].shape else 3
        assert top_ops(t).count("fused") == n and t.kernel_count() == n, top_ops(t)
        assert not any("float16" in why for _, why in t.graph.notes["unfused"])
        with np.errstate(all="ignore"):
            assert_bitwise(t(*a), exact(*a))
        t = fusejit.trace(transcendental, tuple(a[:2]))
        assert t.kernel_count() == 1
        with np.errstate(all="ignore"):
            for g, e in zip(t(*a[:2]), transcendental(*a[:2]), strict=True):
                g, e = g.numpy(), e.numpy()
                assert g.dtype == e.dtype == np.float16
                gap = np.abs(g.astype(np.float64) - e) / np.spacing(np.abs(e).astype(np.float16))
                assert np.array_equal(np.isnan(g), np.isnan(e)) and np.nanmax(gap) <= 1


def test_a_lone_elementwise_op_is_a_region_of_its_own():
    # its kernel is faster than the eager op (CPU: threads, vectorized exp, less host time;
    # CUDA: more of the copy bandwidth than cupy's kernel); with a larger minimum it runs
    # eager, with the reason
    f = lambda x: (x @ x).exp()  # noqa: E731
    x = fusejit.randn(3, 3)
    t = fusejit.trace(f, x)
    assert t.kernel_count() == 1 and top_ops(t) == ["matmul", "fused"]
    assert t.graph.notes["unfused"] == [("matmul", "matmul op (only elementwise ops fuse)")]
    check_against_eager(t, f, x, rtol=1e-5)
    g = capture(f, (x,))[0]
    out, changed = fuse_elementwise(g, "cuda")
    assert changed and [n.op for n in out.nodes] == ["matmul", "fused"]
    with fuse.min_region("cuda", 2):
        out, changed = fuse_elementwise(g, "cuda")
    assert not changed and [n.op for n in out.nodes] == ["matmul", "exp"]
    assert ("exp", "no elementwise neighbour to fuse with") in out.notes["unfused"]
    with fuse.min_region("cpu", 2):  # (what benchmarks compare)
        assert fusejit.trace(f, x).kernel_count() == 0
    assert fuse.MIN_REGION == {"cpu": 1, "cuda": 1}


def test_fused_kernels_take_views_and_empty_tensors():
    def f(x, y):
        return (x * y + 1).sin()

    t = fusejit.trace(f, (fusejit.randn(8, 6), fusejit.randn(8, 6)))
    base = fusejit.randn(8, 12)
    cases = [
        (base[:, ::2], fusejit.randn(6, 8).transpose(0, 1)),  # strided, transposed
        (base[::2, :6], base[1::2, 6:]),  # row slices
        (fusejit.randn(0, 6), fusejit.randn(0, 6)),  # empty
    ]
    for x, y in cases:
        assert not x.is_contiguous() or x.numel() == 0
        check_against_eager(t, f, x, y)


@pytest.mark.parametrize("threads", [1, 3])
def test_every_way_an_input_moves_along_the_last_dim(monkeypatch, threads):
    # unit stride, broadcast along it (one value per row), another stride, a reversed view
    # (negative strides: passed as a copy), broadcast over leading dims, a 0-d tensor
    monkeypatch.setattr(cpu_kernels, "PARALLEL_THRESHOLD", 1 if threads > 1 else 1 << 40)
    monkeypatch.setattr(cpu_kernels, "THREADS", threads)

    def f(a, b, c, d):
        return (a * b - c).exp() + d, a * d

    base = fusejit.randn(5, 7, 18)
    reversed_ = np.random.default_rng(0).standard_normal((5, 7, 9)).astype(np.float32)[..., ::-1]
    shapes = ((5, 7, 9), (5, 7, 1), (5, 7, 9), (9,))
    t = fusejit.trace(f, tuple(fusejit.randn(*s) for s in shapes))
    cases = [
        (
            base[:, :, ::2],
            fusejit.randn(5, 7, 1),
            fusejit.randn(9, 7, 5).permute(2, 1, 0),
            fusejit.randn(9),
        ),  # fmt: skip
        (
            fusejit.randn(5, 7, 9),
            fusejit.randn(5, 7, 1),
            fusejit.from_numpy(reversed_),
            fusejit.randn(9),
        ),  # fmt: skip
    ]
    for args in cases:
        for _ in range(2):  # (the first call compiles on one thread)
            check_against_eager(t, f, *args)
    k = t.plan.kernels[0][1]
    assert {"sbsu", "ubuu"} <= {inner for _, inner in k.nd}
    if threads > 1:
        assert k.threaded >= 1
    x0 = fusejit.tensor(2.0)
    t0 = fusejit.trace(lambda x, y: x * y + 1, (x0, fusejit.randn(3, 4)[:, ::2]))
    check_against_eager(t0, lambda x, y: x * y + 1, x0, fusejit.randn(3, 4)[:, ::2])


@pytest.mark.parametrize("threads", [1, 2])
def test_a_loop_over_permuted_inputs_follows_their_memory_order(monkeypatch, threads):
    # As numpy's and PyTorch's elementwise ops do, the kernel loops in the first input's
    # memory order and lays its results out the same way.
    monkeypatch.setattr(cpu_kernels, "PARALLEL_THRESHOLD", 1 if threads > 1 else 1 << 40)
    monkeypatch.setattr(cpu_kernels, "THREADS", threads)

    def f(x, y, z):
        return x * 2 + y, (x - z).exp()

    x = fusejit.randn(6, 5, 4).permute(2, 0, 1)  # (4, 6, 5), element strides (1, 20, 4)
    y = fusejit.randn(1, 6, 1)
    z = fusejit.randn(4, 6, 5)  # in the output's order: x decides, z is read with strides
    t = fusejit.trace(f, (x, y, z))
    for _ in range(2):  # (the first call compiles on one thread)
        check_against_eager(t, f, x, y, z)
    for out in t(x, y, z):
        assert out.numpy().strides == x.numpy().strides
    k = t.plan.kernels[0][1]
    assert {inner for _, inner in k.nd} == {"ubs"}
    # a 2-D transpose, the common case, and an input laid out as the output: unchanged
    a = fusejit.randn(64, 48)
    t2 = fusejit.trace(lambda a, b: a * b + 1, (a.transpose(0, 1), fusejit.randn(48, 64)))
    for b in (a.transpose(0, 1), fusejit.randn(48, 64)):
        for _ in range(2):
            check_against_eager(t2, lambda a, b: a * b + 1, a.transpose(0, 1), b)
        assert t2(a.transpose(0, 1), b).numpy().flags.f_contiguous
    assert t2(b, b).numpy().flags.c_contiguous


def test_the_threaded_kernel_path(monkeypatch):
    # 3 threads over an odd size, two outputs, a 2-D input: every slice boundary is exercised
    monkeypatch.setattr(cpu_kernels, "PARALLEL_THRESHOLD", 1000)
    monkeypatch.setattr(cpu_kernels, "THREADS", 3)

    def f(x, y):
        a = x * 2 + y
        return a, a.exp() - y

    x, y = fusejit.randn(50_001), fusejit.randn(50_001)
    t = fusejit.trace(f, (x, y))
    check_against_eager(t, f, x, y)  # (the first call compiles on one thread)
    check_against_eager(t, f, x, y)
    k = t.plan.kernels[0][1]
    assert k.threaded >= 1
    x2, y2 = fusejit.randn(301, 7), fusejit.randn(301, 7)
    t2 = fusejit.trace(f, (x2, y2))
    for _ in range(2):
        check_against_eager(t2, f, x2, y2)
    assert t2.plan.kernels[0][1].threaded >= 1


def test_fuse_pass_reports_no_change_without_regions():
    g = capture(lambda x: (x @ x).sum(), (fusejit.randn(3, 3),))[0]
    out, changed = fuse_elementwise(g, "cpu")
    assert not changed and [n.op for n in out.nodes] == ["matmul", "sum"]
    verify(out)


# ---- random mixes of fusible and non-fusible ops ---------------------------------------------

_EW = ["add", "mul", "sub", "maximum"]
_W = fusejit.randn(5, 5) * 0.3


def _pick(draw, k):
    where = draw(st.sampled_from(["recent", "input", "any"]))
    if where == "input":
        return draw(st.integers(0, 1))
    return draw(st.integers(max(0, k - 3) if where == "recent" else 0, k - 1))


@st.composite
def mixed_graphs(draw):
    """Steps over values of shape (4, 5): elementwise ops between two earlier values, and
    non-fusible ones (a softmax, a matmul)."""
    n = draw(st.integers(4, 14))
    steps = []
    for i in range(n):
        k = 2 + i  # values so far: two inputs, then one per step
        kind = draw(st.sampled_from(["ew", "ew", "softmax", "mm"]))
        steps.append((kind, draw(st.sampled_from(_EW)), _pick(draw, k), _pick(draw, k)))
    outs = draw(st.lists(st.integers(2, n + 1), min_size=1, max_size=3, unique=True))
    return steps, outs


def run_mixed(steps, outs, x, y):
    vals = [x, y]
    for kind, op, a, b in steps:
        if kind == "ew":
            vals.append(fusejit.eager.call(op, vals[a], vals[b]))
        elif kind == "softmax":
            vals.append(vals[a].softmax(-1))
        else:
            vals.append(vals[a] @ _W)
    return tuple(vals[i] for i in outs)


@settings(max_examples=120, deadline=None)
@given(case=mixed_graphs())
def test_random_mixed_graphs_fuse_without_cycles(case):
    # the pass and the interpreter only (no kernels compiled): regions must never form a cycle,
    # and the fused graph must compute what the recorded one does
    steps, outs = case
    x, y = fusejit.randn(4, 5), fusejit.randn(4, 5)
    g = capture(lambda x, y: run_mixed(steps, outs, x, y), (x, y))[0]
    fused, _ = fuse_elementwise(g, "cpu")
    verify(fused)
    assert sum(len(n.blocks[0].nodes) for n in fused.nodes if n.op == "fused") + sum(
        n.op != "fused" for n in fused.nodes
    ) == len(g.nodes)
    for a, b in zip(interpret(fused, x, y), interpret(g, x, y), strict=True):
        assert_bitwise(a, b)


def _random_structure(rng, n):
    """A graph of ``n`` nodes on (4, 5) values: ``add`` (fusible) or ``softmax`` (not),
    reading earlier values (often recent ones, often the inputs)."""
    from fusejit.ir.graph import Block, Graph, Node, TensorType, Value

    ty = TensorType(fusejit.float32, (4, 5), fusejit.device("cpu"))
    vals = [Value(ty, "x"), Value(ty, "y")]
    nodes = []
    for _ in range(n):

        def pick():
            k = len(vals)
            r = rng.random()
            return vals[rng.integers(0, 2) if r < 0.3 else rng.integers(max(0, k - 3) if r < 0.7
                                                                         else 0, k)]  # fmt: skip

        out = Value(ty)
        if rng.random() < 0.7:
            nodes.append(Node("add", (pick(), pick()), (), (out,)))
        else:
            nodes.append(Node("softmax", (pick(),), (("dim", 1),), (out,)))
        vals.append(out)
    used = {v for nd in nodes for v in nd.inputs}
    outs = [v for v in vals[2:] if v not in used] or [vals[-1]]
    return Graph(Block(vals[:2], nodes, outs), 2)


def test_many_random_structures_fuse_without_cycles():
    # structure only (no kernels, no data): thousands of small graphs through the pass
    rng = np.random.default_rng(1234)
    for _ in range(3000):
        g = _random_structure(rng, int(rng.integers(3, 12)))
        verify(g)
        fused, _ = fuse_elementwise(g, "cpu")
        verify(fused)
        inner = sum(len(nd.blocks[0].nodes) for nd in fused.nodes if nd.op == "fused")
        assert inner + sum(nd.op != "fused" for nd in fused.nodes) == len(g.nodes)


def test_a_mixed_graph_compiles_and_runs():
    steps = [("ew", "add", 0, 1), ("softmax", "", 2, 0), ("ew", "mul", 3, 2), ("mm", "", 4, 1),
             ("ew", "sub", 5, 2), ("ew", "maximum", 6, 3), ("ew", "mul", 7, 7)]  # fmt: skip
    x, y = fusejit.randn(4, 5), fusejit.randn(4, 5)

    def fn(x, y):
        return run_mixed(steps, [8, 4], x, y)

    t = fusejit.trace(fn, (x, y))
    verify(t.graph)
    # add, softmax (decomposed), mul: one row kernel | matmul | sub, max, mul (their inputs
    # meet through the matmul, so they cannot join the row kernel)
    assert top_ops(t) == ["fused", "matmul", "fused"]
    check_against_eager(t, fn, x, y, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("dtype", [fusejit.int8, fusejit.uint8, fusejit.int64])
def test_integer_regions_match_eager_bitwise(dtype):
    def f(x, y):
        a = (x * 3 + y) // 2
        return ((a - y) % 5) ^ (a & 6), a

    x = fusejit.tensor(np.arange(40) % 100, dtype=dtype)
    y = fusejit.tensor(np.arange(40) % 7 + 1, dtype=dtype)
    t = fusejit.trace(f, (x, y))
    assert t.kernel_count() == 1
    for g, w in zip(t(x, y), f(x, y), strict=True):
        assert_bitwise(g, w)


def test_bool_regions_match_eager_bitwise():
    def f(x, y):
        return ((x & y) | (x ^ y)) != (~y)

    x = fusejit.tensor(np.arange(12) % 2 == 0)
    y = fusejit.tensor(np.arange(12) % 3 == 0)
    t = fusejit.trace(f, (x, y))
    assert t.kernel_count() == 1
    assert_bitwise(t(x, y), f(x, y))


def test_a_plan_drops_each_intermediate_after_its_last_use():
    # a compiled plan held every intermediate to the end of the call: six 1 MiB activations
    # of this chain were alive at once; now at most the one being read and the one written
    import tracemalloc

    w = fusejit.randn(512, 512) * 0.05

    def f(x):
        for _ in range(6):
            x = (x @ w).relu() + 0.5  # (the matmuls keep the steps apart)
        return x

    x = fusejit.randn(512, 512)
    t = fusejit.trace(f, (x,))
    want = f(x)
    t(x)
    tracemalloc.start()
    got = t(x)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-5, atol=1e-6)
    assert peak < 3.5 * (1 << 20), peak


def test_float32_cube_is_vectorized_and_correctly_rounded():
    # x ** 3 (the tanh-GELU's) was a powf call per element (50x slower than x * x * x); in
    # float64 x * x is exact and the cube rounds once before float32: the correctly rounded
    # result on every input below (powf is not: 1 ulp off on some)
    bits = np.arange(0, 2**32, 4099, dtype=np.uint64).astype(np.uint32).view(np.float32)
    t = fusejit.trace(lambda v: v**3, (fusejit.tensor(bits[:64]),))
    from fusejit.codegen.cpu import kernel_source

    assert "**" not in kernel_source(fused_nodes(t)[0].attr("body"), "k")
    with np.errstate(invalid="ignore", over="ignore"):
        want = (bits.astype(np.float64) ** 3).astype(np.float32)
    got = t(fusejit.tensor(bits)).numpy()
    np.testing.assert_array_equal(got, want)
