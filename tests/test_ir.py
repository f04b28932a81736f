"""The JIT's IR: structural hashing, the verifier and the two printed forms."""

from __future__ import annotations

import re

import numpy as np
import pytest
from jit_helpers import assert_bitwise, module_cache_fixture

import fusejit
from fusejit.ir.graph import Block, Const, Graph, Node, TensorType, Value, freeze_attrs
from fusejit.ir.printer import format_code, format_graph
from fusejit.ir.verify import VerifyError, verify
from fusejit.jit.interpret import interpret

_cache = module_cache_fixture()

CPU = fusejit.device("cpu")


def _t(dtype=fusejit.float32, shape=(4,)):
    return TensorType(dtype, shape, CPU)


def _trace(fn, *inputs):
    return fusejit.trace(fn, inputs)


def f_chain(x):
    return (x * 2 + 1).exp() - x


# ---- structural hash -------------------------------------------------------------------------


def test_identical_traces_hash_equal():
    x = fusejit.randn(4, 5)
    a, b = _trace(f_chain, x), _trace(f_chain, fusejit.randn(4, 5))
    # different Value objects and ids, same structure
    assert a.raw_graph.inputs[0] is not b.raw_graph.inputs[0]
    assert a.raw_graph.structural_hash() == b.raw_graph.structural_hash()
    assert a.graph.structural_hash() == b.graph.structural_hash()
    assert a.raw_graph.structural_hash() != a.graph.structural_hash()  # fused vs not


@pytest.mark.parametrize(
    "other",
    [
        lambda x: (x * 2 - 1).exp() - x,  # an op
        lambda x: (x * 2 + 1).sin() - x,  # another op
        lambda x: (x * 3 + 1).exp() - x,  # a constant
        lambda x: (x * 2.0 + 1).exp() - x,  # a constant's type (2 vs 2.0), same dtypes
        lambda x: (x * 2 + 1).exp() - x * 1.5,  # an extra node
        lambda x: (x + 1).exp() * 2 - x,  # the wiring
    ],
)
def test_hash_differs_when_an_op_or_constant_differs(other):
    x = fusejit.randn(4, 5)
    assert (
        _trace(f_chain, x).raw_graph.structural_hash()
        != _trace(other, x).raw_graph.structural_hash()
    )


def test_hash_differs_when_a_dtype_or_shape_differs():
    h = _trace(f_chain, fusejit.randn(4, 5)).raw_graph.structural_hash()
    assert _trace(f_chain, fusejit.randn(4, 5).double()).raw_graph.structural_hash() != h
    assert _trace(f_chain, fusejit.randn(4, 6)).raw_graph.structural_hash() != h
    cast32 = _trace(lambda x: (x * 2).to(fusejit.float64), fusejit.randn(3))
    cast16 = _trace(lambda x: (x * 2).to(fusejit.float16), fusejit.randn(3))
    assert cast32.raw_graph.structural_hash() != cast16.raw_graph.structural_hash()


def test_hash_distinguishes_negative_zero_constants():
    x = fusejit.randn(3)
    a = _trace(lambda x: x * 0.0, x).raw_graph.structural_hash()
    b = _trace(lambda x: x * -0.0, x).raw_graph.structural_hash()
    assert a != b


# ---- verifier --------------------------------------------------------------------------------


def _graph(nodes, params, results, n_inputs=None, captured=()):
    return Graph(Block(list(params), list(nodes), list(results)),
                 len(params) if n_inputs is None else n_inputs, list(captured))  # fmt: skip


def test_verifier_accepts_a_well_formed_graph():
    x = Value(_t(), "x")
    a, b = Value(_t()), Value(_t())
    g = _graph([Node("mul", (x, Const(2.0)), (), (a,)), Node("add", (a, x), (), (b,))], [x], [b])
    verify(g)
    out = interpret(g, fusejit.tensor([1.0, 2.0, 3.0, 4.0]))[0]
    np.testing.assert_array_equal(out.numpy(), [3.0, 6.0, 9.0, 12.0])


def test_verifier_catches_use_before_def():
    x = Value(_t(), "x")
    a, b = Value(_t()), Value(_t())
    g = _graph([Node("add", (a, x), (), (b,)), Node("mul", (x, Const(2.0)), (), (a,))], [x], [b])
    with pytest.raises(VerifyError, match=r"node 0 \(add\) uses .* before it is defined"):
        verify(g)


def test_verifier_catches_a_value_from_nowhere():
    x, stray, out = Value(_t(), "x"), Value(_t()), Value(_t())
    g = _graph([Node("add", (x, stray), (), (out,))], [x], [out])
    with pytest.raises(VerifyError, match="before it is defined"):
        verify(g)


def test_verifier_catches_redefinition():
    x = Value(_t(), "x")
    a = Value(_t())
    g = _graph([Node("mul", (x, Const(2.0)), (), (a,)), Node("neg", (x,), (), (a,))], [x], [a])
    with pytest.raises(VerifyError, match=r"node 1 \(neg\) redefines"):
        verify(g)


def test_verifier_catches_an_unknown_op():
    x, a = Value(_t(), "x"), Value(_t())
    g = _graph([Node("frobnicate", (x,), (), (a,))], [x], [a])
    with pytest.raises(VerifyError, match="unknown op 'frobnicate'"):
        verify(g)


def test_verifier_catches_bad_results_inputs_and_params():
    x, a = Value(_t(), "x"), Value(_t())
    with pytest.raises(VerifyError, match="result .* is not defined"):
        verify(_graph([], [x], [a]))
    with pytest.raises(VerifyError, match="neither value nor const"):
        verify(_graph([Node("neg", (3.0,), (), (a,))], [x], [a]))
    with pytest.raises(VerifyError, match="params do not match"):
        verify(_graph([], [x], [x], n_inputs=1, captured=[fusejit.ones(4)]))
    with pytest.raises(VerifyError, match="not a typed value"):
        verify(_graph([Node("neg", (x,), (), ("a",))], [x], [x]))


def test_verifier_checks_fused_bodies():
    x = fusejit.randn(6)
    g = _trace(f_chain, x).graph
    verify(g)
    fused = next(n for n in g.nodes if n.op == "fused")
    body = fused.blocks[0]
    # swap two body nodes: a use before its definition inside the region
    bad_body = Block(body.params, [body.nodes[1], body.nodes[0], *body.nodes[2:]], body.results)
    from dataclasses import replace

    bad = g.copy_with(nodes=[replace(fused, blocks=(bad_body,))])
    with pytest.raises(VerifyError, match="before it is defined"):
        verify(bad)


def test_freeze_attrs_sorts_and_hashes():
    a = freeze_attrs({"keepdim": True, "dim": (1,)})
    assert a == (("dim", (1,)), ("keepdim", True))
    hash(a)


# ---- printing --------------------------------------------------------------------------------

_LINE = re.compile(
    r"^(\s+)(%\w+ : \w+\[[\d, ]*\](?:, %\w+ : \w+\[[\d, ]*\])*) = (\w+)(\[.*\])?\((.*)\)$"
)


def test_graph_prints_one_node_a_line_with_ssa_names_dtypes_and_shapes():
    w = fusejit.randn(5, 3)

    def f(x):
        h = (x * 2).tanh() @ w  # fused, then matmul
        return (h - h.sum(-1, keepdim=True)).relu().to(fusejit.float64)

    t = _trace(f, fusejit.randn(4, 5))
    text = str(t.graph)
    assert text == format_graph(t.graph)
    lines = text.splitlines()
    assert lines[0] == "graph(%x : float32[4, 5], %1 : float32[5, 3] (captured)):"
    assert lines[-1].startswith("  return (%")
    top = [ln for ln in lines[1:-1] if re.match(r"^  %", ln)]
    nested = [ln for ln in lines[1:-1] if re.match(r"^      %", ln)]
    assert len(top) == len(t.graph.nodes)
    assert len(top) + len(nested) == len(lines) - 2
    fused = [n for n in t.graph.nodes if n.op == "fused"]
    assert len(nested) == sum(len(n.blocks[0].nodes) for n in fused) and len(fused) == 2
    for ln in top + nested:
        m = _LINE.match(ln)
        assert m, ln
    ops = [_LINE.match(ln).group(3) for ln in top]
    assert ops == ["fused", "matmul", "fused"]  # the sum fuses with its neighbours (a row kernel)
    # each region's body sits under it, indented, one node a line
    i = lines.index(top[0])
    assert [_LINE.match(ln).group(3) for ln in lines[i + 1 : i + 3]] == ["mul", "tanh"]
    assert "float64[4, 3] = fused" in text and "float32[4, 1] = sum[dim=(1,)" in text
    assert "cast[dtype=float64]" in text
    # SSA: every top-level value is defined once
    defined = [name for ln in top for name in re.findall(r"(%\w+) :", ln)]
    assert len(defined) == len(set(defined))


def test_unfused_graph_prints_every_op():
    t = _trace(f_chain, fusejit.randn(3))
    raw = str(t.raw_graph).splitlines()
    assert raw == [
        "graph(%x : float32[3]):",
        "  %1 : float32[3] = mul(%x, 2)",
        "  %2 : float32[3] = add(%1, 1)",
        "  %3 : float32[3] = exp(%2)",
        "  %4 : float32[3] = sub(%3, %x)",
        "  return (%4)",
    ]


def _exec_code(t):
    ns = {"fusejit": fusejit, "captured": list(t.graph.captured)}
    exec(compile(t.code, "<traced code>", "exec"), ns)
    return ns[t.code.split("(", 1)[0].split()[-1]]


def test_code_is_python_computing_the_same_results():
    w = fusejit.randn(5, 3)
    b = fusejit.randn(3)

    def model(x, pair):
        y, z = pair
        h = fusejit.where(x > 0, x, float("-inf")).softmax(-1)  # masked softmax
        o = ((h @ w) + b).relu()
        return o.to(fusejit.float64), [y * -0.0 + z, (x[1:3, ::2] * 2).sum(0)]

    x = fusejit.tensor(np.abs(np.random.default_rng(1).normal(size=(4, 5))) * [1, -1, 1, -1, 1])
    y, z = fusejit.randn(4, 5), fusejit.randn(4, 5)
    t = fusejit.trace(model, (x, (y, z)))
    assert "float('-inf')" in t.code and "captured[0]" in t.code
    fn = _exec_code(t)
    got = fn(x, y, z)
    want = model(x, (y, z))
    flat_want = [want[0], want[1][0], want[1][1]]
    assert len(got) == 3
    for g, e in zip(got, flat_want, strict=True):
        assert g.dtype is e.dtype and g.shape == e.shape
        assert_bitwise(g, e)  # the code runs the same eager ops


def test_code_of_a_single_output_and_special_constants():
    t = _trace(lambda x: fusejit.where(x > 1, x + float("inf"), x - 1e-30), fusejit.randn(6))
    fn = _exec_code(t)
    x = fusejit.tensor([0.5, 2.0, -1.0, 3.0, 1.0, -0.0])
    (got,) = fn(x)
    assert_bitwise(got, t(x))
    assert np.isinf(got.numpy()[[1, 3]]).all()


def test_code_with_numpy_scalar_constants():
    t = _trace(lambda x: x * np.float32(0.25) + np.int64(3), fusejit.randn(4))
    (got,) = _exec_code(t)(fusejit.ones(4))
    assert_bitwise(got, t(fusejit.ones(4)))


def test_format_code_names_the_function():
    t = _trace(f_chain, fusejit.randn(3))
    assert format_code(t.graph, "g").startswith("def g(v0):")
    assert t.code.startswith("def f_chain(v0):")
