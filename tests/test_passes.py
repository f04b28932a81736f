"""Graph passes: dce, cse, constant folding and simplification; the verifier runs after each."""

from __future__ import annotations

import numpy as np
import pytest
from jit_helpers import assert_bitwise, module_cache_fixture

import fusejit
from fusejit.ir.verify import verify
from fusejit.jit.api import optimize_graph
from fusejit.jit.interpret import interpret
from fusejit.jit.passes.cleanup import constant_fold, cse, dce
from fusejit.jit.passes.simplify import simplify
from fusejit.jit.tracer import capture

_cache = module_cache_fixture()
# inf and NaN inputs on purpose (x * 0 with inf, nan - nan)
pytestmark = pytest.mark.filterwarnings("ignore:invalid value:RuntimeWarning")


def raw(fn, *inputs):
    """The graph ``fn`` records, before any pass."""
    g = capture(fn, inputs)[0]
    verify(g)
    return g


def run_pass(p, g, *args):
    out, changed = p(g, *args)
    verify(out)
    return out, changed


def ops(g):
    return [n.op for n in g.nodes]


def compiled_ops(g):
    """The ops an optimized graph runs, a fused region's as its kernel's steps."""
    out = []
    for n in g.nodes:
        out += [s.op for s in n.attr("body").steps] if n.op == "fused" else [n.op]
    return out


def same_results(g1, g2, *inputs):
    for a, b in zip(interpret(g1, *inputs), interpret(g2, *inputs), strict=True):
        assert_bitwise(a, b)


# ---- dce -------------------------------------------------------------------------------------


def test_dce_removes_unused_nodes():
    def f(x):
        unused = (x.exp() * 3).sum()  # noqa: F841 - recorded, then dead
        y = x * 2
        x.tanh()
        return y + 1

    x = fusejit.randn(5)
    g = raw(f, x)
    assert ops(g) == ["exp", "mul", "sum", "mul", "tanh", "add"]
    out, changed = run_pass(dce, g)
    assert changed and ops(out) == ["mul", "add"]
    same_results(g, out, x)
    again, changed = run_pass(dce, out)
    assert not changed and again is out


def test_dce_keeps_every_output_and_their_producers():
    g = raw(lambda x: (x * 2, (x * 2).exp(), x), fusejit.randn(3))
    out, changed = run_pass(dce, g)
    assert not changed and ops(out) == ["mul", "mul", "exp"]


# ---- cse -------------------------------------------------------------------------------------


def test_cse_merges_duplicates():
    def f(x, y):
        a = x * 2 + y
        b = x * 2 + y  # the same two nodes again
        c = (x * 2).sum(-1, keepdim=True)
        d = (x * 2).sum(-1, keepdim=True)
        return a * b, c + d

    x, y = fusejit.randn(3, 4), fusejit.randn(3, 4)
    g = raw(f, x, y)
    out, changed = run_pass(cse, g)
    assert changed
    assert ops(out).count("mul") == 2  # x * 2 once, a * b
    assert ops(out).count("add") == 2 and ops(out).count("sum") == 1
    same_results(g, out, x, y)
    out2, changed = run_pass(dce, out)
    assert not changed


@pytest.mark.parametrize(
    "f",
    [
        lambda x: (x * 0.0, x * -0.0),  # 0.0 == -0.0, but the results differ in sign
        lambda x: (x + 0.0, x + -0.0),
        lambda x: (x * 2, x * 2.0),  # an int and a float constant
        lambda x: (x * True, x * 1),
        lambda x: (x.sum(0), x.sum(1)),  # attributes
        lambda x: (x * 2, x * 3),
        lambda x: (x.to(fusejit.float64), x.to(fusejit.int32)),
    ],
)
def test_cse_does_not_merge_different_nodes(f):
    x = fusejit.tensor([[-0.0, 1.5], [0.0, -2.0]])
    g = raw(f, x)
    out, changed = run_pass(cse, g)
    assert not changed
    assert len(set(map(id, out.outputs))) == 2


def test_cse_keeps_negative_zero_end_to_end():
    x = fusejit.tensor([-0.0, 0.0, 1.0, -3.0])
    t = fusejit.trace(lambda x: (x * 0.0, x * -0.0, x + 0.0, x + -0.0), x)
    for got, want in zip(t(x), (x * 0.0, x * -0.0, x + 0.0, x + -0.0), strict=True):
        assert_bitwise(got, want)


# ---- constant folding ------------------------------------------------------------------------


def test_constant_fold_with_a_frozen_set():
    w = fusejit.tensor([1.0, 2.0, 3.0])  # a live weight: never folded

    def f(x):
        c = fusejit.arange(3, dtype=fusejit.float32)  # made inside: may be frozen
        k = (c * 2 + 1).exp()  # depends on c only
        return x * k + w * 2

    x = fusejit.randn(3)
    g = raw(f, x)
    assert len(g.captured) == 2
    c_param = next(p for p, t in zip(g.block.params[1:], g.captured, strict=True) if t is not w)
    assert constant_fold(g, set()) == (g, False)  # nothing frozen: nothing folded
    frozen = {c_param}
    out, changed = run_pass(constant_fold, g, frozen)
    assert changed
    assert ops(out) == ["mul", "mul", "add"]  # x * k, w * 2, add
    assert any(t is w for t in out.captured)  # the weight is still read live
    assert not any(t is g.captured[g.block.params.index(c_param) - 1] for t in out.captured)
    assert len(out.captured) == 2 and len(frozen) > 1  # the folded value joined the set
    folded = next(t for t in out.captured if t is not w)
    np.testing.assert_allclose(folded.numpy(), np.exp(np.arange(3) * 2 + 1), rtol=1e-6)
    same_results(g, out, x)
    w.numpy()[:] = [5.0, 6.0, 7.0]  # live weights stay live after folding
    same_results(g, out, x)


def test_constant_fold_never_folds_inputs():
    g = raw(lambda x: (x * 2).exp(), fusejit.randn(3))
    # a user input in the frozen set has no data to fold with: it is ignored
    out, changed = run_pass(constant_fold, g, {g.inputs[0]})
    assert not changed and ops(out) == ops(g)


# ---- simplify --------------------------------------------------------------------------------

X = [-0.0, 0.0, 1.5, -2.0, float("inf"), float("nan")]


@pytest.mark.parametrize(
    "f",
    [
        lambda x: x * 1,
        lambda x: 1 * x,
        lambda x: x * 1.0,
        lambda x: x / 1,
        lambda x: x - 0,
        lambda x: x - 0.0,
        lambda x: x**1,
        lambda x: x.neg().neg(),
        lambda x: fusejit.cast(x, fusejit.float32),  # (x.to(same dtype) records nothing)
    ],
)
def test_simplify_removes_identities(f):
    x = fusejit.tensor(X)
    g = raw(f, x)
    out, changed = run_pass(simplify, g)
    assert changed
    out, _ = run_pass(dce, out)
    assert ops(out) == [] and out.outputs[0] is out.inputs[0]
    assert_bitwise(interpret(out, x)[0], f(x))  # -0.0, inf and NaN stay as they were
    t = fusejit.trace(f, x)
    assert t.kernel_count() == 0
    assert_bitwise(t(x), f(x))


@pytest.mark.parametrize(
    "f, why",
    [
        (lambda x: x + 0, "-0.0 + 0 is +0.0"),
        (lambda x: 0 + x, "-0.0 + 0 is +0.0"),
        (lambda x: x + 0.0, "-0.0 + 0 is +0.0"),
        (lambda x: x - -0.0, "-0.0 - -0.0 is +0.0"),
        (lambda x: x * 0, "nan * 0 is nan, -1.5 * 0 is -0.0"),
        (lambda x: x * -1, "not an identity"),
        (lambda x: x / 1.5, "not an identity"),
        (lambda x: x**2, "not an identity"),
        (lambda x: x - x, "nan - nan is nan"),
        (lambda x: x * True, "a bool constant"),
        (lambda x: -x, "a single neg"),
    ],
)
def test_simplify_leaves_value_changing_rewrites_alone(f, why):
    x = fusejit.tensor(X)
    g = raw(f, x)
    out, changed = run_pass(simplify, g)
    assert not changed, why
    t = fusejit.trace(f, x)
    assert compiled_ops(t.graph) == ops(g)
    assert_bitwise(t(x), f(x))


def test_x_plus_zero_keeps_negative_zero_end_to_end():
    x = fusejit.tensor([-0.0, 0.0, -0.0])
    t = fusejit.trace(lambda x: (x + 0) * 1, x)
    assert compiled_ops(t.graph) == ["add"]  # * 1 removed, + 0 kept
    got = t(x).numpy()
    assert not np.signbit(got).any()  # -0.0 + 0 == +0.0, as eager
    assert_bitwise(t(x), (x + 0) * 1)
    keep = fusejit.trace(lambda x: x * 1 - 0, x)
    assert np.signbit(keep(x).numpy()).tolist() == [True, False, True]


@pytest.mark.parametrize(
    "dtype, f, result",
    [
        (fusejit.int32, lambda x: x * 1.0, fusejit.float32),
        (fusejit.int32, lambda x: x / 1, fusejit.float32),
        (fusejit.int64, lambda x: x - 0.0, fusejit.float32),
        (fusejit.int8, lambda x: x**1.0, fusejit.float32),
        (fusejit.bool_, lambda x: x * 1, fusejit.int64),
        (fusejit.float32, lambda x: x * fusejit.ones(1, dtype=fusejit.float64), fusejit.float64),
        (fusejit.float32, lambda x: x.to(fusejit.float64), fusejit.float64),
        (fusejit.float32, lambda x: x * fusejit.ones(3, 1), fusejit.float32),  # broadcasts
    ],
)
def test_simplify_never_changes_a_result_dtype_or_shape(dtype, f, result):
    x = fusejit.tensor([1, 0, 3], dtype=dtype)
    g = raw(f, x)
    out, changed = run_pass(simplify, g)
    assert not changed
    t = fusejit.trace(f, x)
    r = t(x)
    assert r.dtype is result and r.dtype is f(x).dtype and r.shape == f(x).shape
    assert_bitwise(r, f(x))


def test_simplify_int_identities():
    x = fusejit.tensor([1, -2, 3], dtype=fusejit.int16)
    for f in (lambda x: x * 1, lambda x: x - 0, lambda x: x**1):
        t = fusejit.trace(f, x)
        assert ops(t.graph) == [] and t(x).dtype is fusejit.int16
        assert_bitwise(t(x), f(x))


def test_simplify_chains_and_rewires_later_uses():
    def f(x):
        a = (x * 1).neg().neg()
        return (a / 1).exp() + a

    x = fusejit.tensor(X[:4])
    g = raw(f, x)
    out, changed = run_pass(simplify, g)
    assert changed
    out, _ = run_pass(dce, out)
    assert ops(out) == ["exp", "add"]
    same_results(g, out, x)


def test_the_transpose_of_a_product_becomes_the_product_of_transposes():
    rng = np.random.default_rng(0)
    a = fusejit.tensor(rng.standard_normal((5, 3)))
    b = fusejit.tensor(rng.standard_normal((3, 4)))
    g = raw(lambda a, b: (a @ b).T, a, b)
    out, changed = run_pass(simplify, g)
    assert changed
    out, _ = run_pass(dce, out)
    assert ops(out) == ["permute", "permute", "matmul"]
    (r,) = interpret(out, a, b)
    assert r.shape == (4, 5) and r._data.flags.c_contiguous  # (a view of the product before)
    np.testing.assert_allclose(r.numpy(), (a.numpy() @ b.numpy()).T, rtol=1e-14)

    # the product read elsewhere, a batched product: kept as written
    def shared(a, b):
        p = a @ b
        return p.T, p.exp()

    for f in (shared, lambda a, b: (a.unsqueeze(0) @ b).mT):
        g2 = raw(f, a, b)
        _, changed = run_pass(simplify, g2)
        assert not changed


# ---- the pipeline ----------------------------------------------------------------------------


def test_optimize_graph_verifies_after_every_pass():
    def f(x, y):
        a = x * 1 + y
        b = x * 1 + y
        unused = a.exp()  # noqa: F841
        return (a * b).sum(-1), a.neg().neg()

    x, y = fusejit.randn(3, 4), fusejit.randn(3, 4)
    g = raw(f, x, y)
    log = []
    out = optimize_graph(g, "cpu", check=True, log=log)
    names = [n for n, _ in log]
    assert names[:4] == ["simplify", "cse", "dce", "decompose"]
    assert names[-3:] == ["fuse_rows", "fuse_cols", "fuse_elementwise"]
    assert all(changed is False for _, changed in log[-7:-3])  # reached a fixed point
    assert ops(out) == ["fused"]  # the sum and its elementwise input: one row kernel
    same_results(g, out, x, y)
