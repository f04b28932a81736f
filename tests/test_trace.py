"""``fusejit.trace``: frozen control flow, value reads, check_trace, captured tensors, nested
inputs and outputs, guards, and shape-generic plans."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from jit_helpers import assert_bitwise, module_cache_fixture

import fusejit
from fusejit.base.errors import TraceError
from fusejit.ir.verify import verify
from fusejit.jit import check
from fusejit.jit.runtime import GuardError

_cache = module_cache_fixture()


def _lineno(marker: str) -> int:
    with open(__file__) as f:
        for i, line in enumerate(f, 1):
            if marker in line and "_lineno(" not in line:
                return i
    raise AssertionError(marker)


# ---- control flow and value reads ------------------------------------------------------------


def branchy(x):
    if x.sum() > 0:  # READ-BOOL
        return x * 2
    return x - 1


def test_control_flow_is_frozen_and_the_bool_read_warns_with_its_line():
    pos = fusejit.tensor([1.0, 2.0, 3.0])
    with pytest.warns(fusejit.TracerWarning) as rec:
        t = fusejit.trace(branchy, pos)
    msg = str(rec[0].message)
    assert f"test_trace.py:{_lineno('# READ-BOOL')}" in msg
    assert "if x.sum() > 0:" in msg
    (node,) = t.graph.nodes  # the comparison and sum are dead
    assert [s.op for s in node.attr("body").steps] == ["mul"]
    neg = fusejit.tensor([-5.0, -6.0, -7.0])
    # the branch taken at trace time, whatever the input
    np.testing.assert_array_equal(t(neg).numpy(), [-10.0, -12.0, -14.0])
    assert branchy(neg).tolist() == [-6.0, -7.0, -8.0]
    assert len(t.value_reads) == 1


def reads_item(x):
    s = x.sum().item()  # READ-ITEM
    return x * s


def reads_tolist(x):
    n = len(x.tolist())  # READ-TOLIST
    return x * n


def iterates(x):
    return [r * 2 for r in x]  # READ-ITER


def reads_float(x):
    return x * float(x.max())  # READ-FLOAT


@pytest.mark.parametrize(
    "fn, marker, what, frozen",
    [
        (reads_item, "# READ-ITEM", "item", True),
        (reads_tolist, "# READ-TOLIST", "tolist", False),  # only its length is used
        (iterates, "# READ-ITER", "__iter__", False),  # recorded as indexing ops
        (reads_float, "# READ-FLOAT", "item", True),
    ],
)
def test_value_reads_warn_naming_the_source_line(fn, marker, what, frozen):
    x = fusejit.tensor([[1.0, 2.0], [3.0, 4.0]])
    with pytest.warns(fusejit.TracerWarning, match=f"\\({what}\\)") as rec:
        t = fusejit.trace(fn, x)
    line = _lineno(marker)
    assert any(f"test_trace.py:{line}:" in str(w.message) for w in rec)
    assert any(marker in str(w.message) for w in rec)  # the source text itself
    assert t.value_reads and t.value_reads[0][0] == what
    # the value read is a constant of the graph now
    out = t(x * 10)
    out = out if isinstance(out, list) else [out]
    eager = fn(x * 10)
    eager = eager if isinstance(eager, list) else [eager]
    same = [np.array_equal(a.numpy(), b.numpy()) for a, b in zip(out, eager, strict=True)]
    assert all(same) is not frozen


def test_no_warning_without_value_reads():
    with warnings.catch_warnings():
        warnings.simplefilter("error", fusejit.TracerWarning)
        t = fusejit.trace(lambda x: (x * 2).sum(0) + x.shape[0], fusejit.ones(3, 2))
    assert t.value_reads == []


# ---- check_trace -----------------------------------------------------------------------------


def test_check_trace_catches_hidden_state():
    calls = [0]

    def counted(x):
        calls[0] += 1
        return x * calls[0]  # the scale changes between the trace and the check

    with pytest.raises(TraceError, match="trace check failed for counted"):
        fusejit.trace(counted, fusejit.tensor([1.0, 2.0]))
    calls[0] = 0
    t = fusejit.trace(counted, fusejit.tensor([1.0, 2.0]), check_trace=False)
    assert t(fusejit.tensor([1.0, 2.0])).tolist() == [1.0, 2.0]  # frozen at the traced state


def test_check_trace_catches_a_flag_flipped_by_the_trace():
    state = {"train": True}

    def flips(x):
        y = x * 2 if state["train"] else x + 100
        state["train"] = False
        return y

    with pytest.raises(TraceError, match="values differ"):
        fusejit.trace(flips, fusejit.tensor([1.0, 2.0]))


def test_check_trace_catches_an_output_structure_change():
    calls = [0]

    def grows(x):
        calls[0] += 1
        return tuple(x * i for i in range(calls[0]))

    with pytest.raises(TraceError, match="structure"):
        fusejit.trace(grows, fusejit.tensor([1.0, 2.0]))


def test_check_trace_accepts_float32_math_cast_to_float64():
    # tanh differs by an ulp between numpy and the kernels; the result is cast to float64
    # afterwards, but is only float32-accurate: the check must not fail at float64 tolerance
    w = fusejit.randn(16, 8)

    def f(x):
        h = (x * 2).tanh() @ w
        return (h - h.sum(-1, keepdim=True)).relu().to(fusejit.float64)

    for seed in range(3):
        fusejit.manual_seed(seed)
        fusejit.trace(f, fusejit.randn(32, 16) * 3)


def _cancelling_rows(rows=16, cols=4096, seed=1):
    """Rows whose sums cancel to +-1e-3 (in float64; the sign alternates): dividing by them is
    ill-conditioned, so float32 results computed in two summation orders differ by far more
    than float32's tolerance."""
    x = np.random.default_rng(seed).standard_normal((rows, cols))
    x[:, -1] -= x.sum(-1) - 1e-3 * (-1.0) ** np.arange(rows)
    return x.astype(np.float32)


def _normalize(x):
    return x / x.sum(-1, keepdim=True)


def test_check_trace_accepts_an_ill_conditioned_reduction():
    """Fused and eager differ by rounding only: the check tells it from a wrong kernel by the
    graph evaluated in float64, which both are (about) as close to."""
    xs = _cancelling_rows()
    x = fusejit.tensor(xs)
    traced = fusejit.trace(_normalize, x)  # raised a TraceError before
    fused, eager = traced(x).numpy().astype(np.float64), _normalize(x).numpy().astype(np.float64)
    x64 = xs.astype(np.float64)
    exact = x64 / x64.sum(-1, keepdims=True)
    err_fused, err_eager = np.abs(fused - exact).max(), np.abs(eager - exact).max()
    assert np.abs(fused - eager).max() > 1e-3 * np.abs(exact).max()  # the case is ill-conditioned
    assert err_fused <= check.ROUNDING_FACTOR * err_eager


def test_check_outputs_still_catches_a_wrong_result_of_an_ill_conditioned_graph():
    xs = _cancelling_rows()
    x = fusejit.tensor(xs)
    traced = fusejit.trace(_normalize, x)
    eager = _normalize(x)
    # a kernel that reads the wrong row's sum: each row has the wrong sign, where rounding
    # (float32 sums cancelling to 1e-3) moves eager by about 1%
    sums = xs.sum(-1, keepdims=True, dtype=np.float64)
    wrong = fusejit.tensor((xs / np.roll(sums, 1, axis=0)).astype(np.float32))
    problem = check.check_outputs(traced.raw_graph, [x], [wrong], [eager], 2e-5)
    assert problem is not None and "values differ" in problem and "float64 evaluation" in problem
    assert check.check_outputs(traced.raw_graph, [x], [traced(x)], [eager], 2e-5) is None


def test_check_outputs_never_excuses_a_different_nan():
    x = fusejit.tensor([[1.0, 2.0], [3.0, 4.0]])
    traced = fusejit.trace(_normalize, x)
    eager = _normalize(x)
    wrong = fusejit.tensor([[float("nan"), 2 / 3], [3 / 7, 4 / 7]])
    assert "values differ" in check.check_outputs(traced.raw_graph, [x], [wrong], [eager], 2e-5)


def test_optimize_keeps_an_ill_conditioned_reduction_compiled():
    x = fusejit.tensor(_cancelling_rows())
    opt = fusejit.optimize(_normalize, warmup=1, strict=True)  # strict: a fallback raises
    for _ in range(3):
        assert opt(x).shape == x.shape
    assert fusejit.explain(opt, as_dict=True)["signatures"][0]["status"] == "compiled"


# ---- captured tensors ------------------------------------------------------------------------

WEIGHT = fusejit.tensor([1.0, 2.0, 3.0])


def uses_global(x):
    return x * WEIGHT + 1


def test_captured_global_weight_is_read_live():
    x = fusejit.ones(2, 3)
    t = fusejit.trace(uses_global, x)
    assert len(t.graph.captured) == 1 and t.graph.captured[0] is WEIGHT
    assert "(captured)" in str(t.graph)
    np.testing.assert_array_equal(t(x).numpy(), [[2, 3, 4]] * 2)
    old = WEIGHT.numpy().copy()
    try:
        WEIGHT.numpy()[:] = [10.0, 20.0, 30.0]  # in place, through the shared numpy array
        np.testing.assert_array_equal(t(x).numpy(), [[11, 21, 31]] * 2)
        WEIGHT.mul_(2)  # an in-place tensor op
        np.testing.assert_array_equal(t(x).numpy(), [[21, 41, 61]] * 2)
        assert_bitwise(t(x), uses_global(x))
    finally:
        WEIGHT.numpy()[:] = old


def test_tensors_made_inside_are_captured_constants():
    t = fusejit.trace(lambda x: x + fusejit.arange(3, dtype=fusejit.float32), fusejit.ones(3))
    assert len(t.graph.captured) == 1
    np.testing.assert_array_equal(t(fusejit.zeros(3)).numpy(), [0, 1, 2])


# ---- nested inputs and outputs ---------------------------------------------------------------


def nested(a, bc, scale):
    b, (c, d) = bc
    return {"not": "traced"} if scale is None else ((a + b * scale, [c * d, d - 1]), a.exp())


def test_nested_tuple_and_list_inputs_and_outputs():
    a, b, c, d = (fusejit.randn(3) for _ in range(4))
    t = fusejit.trace(nested, (a, [b, (c, d)], 2.0))
    assert t.raw_graph.n_inputs == 4
    args = [fusejit.randn(3) for _ in range(4)]
    got = t(args[0], [args[1], (args[2], args[3])], 2.0)
    want = nested(args[0], [args[1], (args[2], args[3])], 2.0)
    assert type(got) is tuple and type(got[0]) is tuple and type(got[0][1]) is list
    for g, w in zip(
        [got[0][0], got[0][1][0], got[0][1][1], got[1]],
        [want[0][0], want[0][1][0], want[0][1][1], want[1]],
        strict=True,
    ):
        np.testing.assert_allclose(g.numpy(), w.numpy(), rtol=1e-6)
    with pytest.raises(TraceError, match="different structure"):
        t(args[0], (args[1], (args[2], args[3])), 2.0)  # a tuple where a list was traced
    with pytest.raises(TraceError, match="different structure"):
        t(args[0], [args[1], (args[2], args[3])], 3.0)  # another frozen Python value


def test_an_output_that_is_not_computed_from_tensors_is_refused():
    with pytest.raises(TraceError, match="not a tensor computed"):
        fusejit.trace(lambda x: (x * 2, fusejit.ones(2)), fusejit.ones(2))


def test_the_same_tensor_twice_is_refused():
    x = fusejit.ones(2)
    with pytest.raises(TraceError, match="same tensor"):
        fusejit.trace(lambda a, b: a + b, (x, x))


# ---- guards ----------------------------------------------------------------------------------


def test_other_dtype_or_rank_raises_a_clear_guard_error():
    t = fusejit.trace(lambda x, y: (x * 2 + y).tanh(), (fusejit.randn(4, 5), fusejit.randn(4, 5)))
    with pytest.raises(GuardError, match="input 0: dtype float64, traced with float32"):
        t(fusejit.randn(4, 5).double(), fusejit.randn(4, 5))
    with pytest.raises(GuardError, match="input 1: 1 dims, traced with 2"):
        t(fusejit.randn(4, 5), fusejit.randn(5))
    with pytest.raises(GuardError, match="input 1: 3 dims, traced with 2"):
        t(fusejit.randn(4, 5), fusejit.randn(1, 4, 5))
    with pytest.raises(TraceError, match="different structure"):
        t(fusejit.randn(4, 5))
    assert issubclass(GuardError, TraceError)


def test_broadcast_pattern_change_raises():
    t = fusejit.trace(lambda x, b: (x + b) * 2, (fusejit.randn(4, 5), fusejit.randn(1, 5)))
    t(fusejit.randn(7, 3), fusejit.randn(1, 3))  # other sizes, same pattern
    with pytest.raises(GuardError, match="broadcast pattern"):
        t(fusejit.randn(7, 3), fusejit.randn(7, 3))


def test_shape_specific_graph_guards_the_shape():
    t = fusejit.trace(lambda x: (x * 2).reshape(-1) + 1, fusejit.randn(2, 3))
    assert not t.plan.shape_generic
    with pytest.raises(GuardError, match=r"shape \[3, 3\], traced with \[2, 3\]"):
        t(fusejit.randn(3, 3))


def test_another_size_reuses_the_kernels_of_an_elementwise_graph():
    def f(x, b):
        return ((x * 2 + b).tanh() * 3).sum(-1)  # elementwise and a reduction: shape-generic

    t = fusejit.trace(f, (fusejit.randn(8, 16), fusejit.randn(16)))
    assert t.plan.shape_generic and t.kernel_count() == 1
    kernels = [k for _, k in t.plan.kernels]
    before = fusejit.cache_info()["compiled"]
    for shape in [(3, 5), (100, 7), (2, 2), (0, 4)]:
        x, b = fusejit.randn(*shape), fusejit.randn(shape[1])
        got = t(x, b)
        assert got.shape == shape[:1]
        np.testing.assert_allclose(got.numpy(), f(x, b).numpy(), rtol=1e-5, atol=1e-5)
    assert fusejit.cache_info()["compiled"] == before
    assert all(a is b for a, b in zip(kernels, [k for _, k in t.plan.kernels], strict=True))


def test_traced_graph_verifies_and_keeps_the_raw_graph():
    t = fusejit.trace(lambda x: (x * 1).exp() + x.neg().neg(), fusejit.randn(3))
    verify(t.raw_graph)
    verify(t.graph)
    assert [n.op for n in t.raw_graph.nodes] == ["mul", "exp", "neg", "neg", "add"]
    assert [n.op for n in t.graph.nodes] == ["fused"]
    assert [n.op for n in t.graph.nodes[0].blocks[0].nodes] == ["exp", "add"]


def test_in_place_ops_cannot_be_traced():
    def f(x):
        y = x * 2
        y.add_(1)
        return y

    with pytest.raises(TraceError, match="in-place"):
        fusejit.trace(f, fusejit.ones(3))


def test_named_tuple_results_stay_named_traced_and_loaded(tmp_path):
    """A function returning a named tuple (sort's values and indices) gives one back traced
    and after a save and load, as eager does."""
    x = fusejit.tensor([[3.0, 1.0, 2.0], [0.5, -1.0, 4.0]])
    t = fusejit.trace(lambda a: (a.sort(dim=1), a * 2), (x,))
    (res, doubled) = t(x)
    want = x.sort(dim=1)
    assert type(res) is type(want)
    assert res.values.tolist() == want.values.tolist()
    assert res.indices.tolist() == want.indices.tolist()
    assert doubled.tolist() == (x * 2).tolist()
    fusejit.save(t, tmp_path / "sorted.fjz")
    loaded = fusejit.load(tmp_path / "sorted.fjz")
    res2, _ = loaded(x)
    assert type(res2) is type(want)
    assert res2.indices.tolist() == want.indices.tolist()
