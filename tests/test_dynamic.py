"""Dynamic dims (issue #21): symbolic sizes in traced graphs, ``optimize(dynamic=...)``,
``mark_dynamic``, guards on what a graph assumed, and the nanoGPT-style model's generation."""

from __future__ import annotations

import numpy as np
import pytest

import fusejit
from fusejit import nn
from fusejit.base.symbolic import SymInt, resolve, symbols_of, tracing
from fusejit.bench.models import NanoGPT, generate


def _executor(opt):
    return opt._fusejit_executor


def _eager_equal(fn, opt, *args):
    want = fn(*args)
    got = opt(*args)
    np.testing.assert_array_equal(got.numpy(), want.numpy())


# ---- symbolic sizes ------------------------------------------------------------------------------
def test_symint_arithmetic_keeps_the_expression():
    s = SymInt.symbol("s0", 6)
    t = s * 4 + 2
    assert int(t) == 26 and str(t) == "4*s0 + 2"
    assert resolve((t, t // 2, s // 4, s % 4, 3), {"s0": 10}) == (42, 21, 2, 2, 3)
    assert (s - s) == 0 and type(s - s) is int
    assert symbols_of({"shape": (1, s // 4, (s * s,))}) == {"s0"}
    # outside a trace, equality is structural: s0 is not known to equal 6
    assert (s == 6) is False and (s * 1 == s) is True


def test_symint_comparisons_in_user_code_record_guards():
    s = SymInt.symbol("s0", 6)
    guards: list = []
    with tracing(guards):
        assert s <= 256 and s == 6
        assert float(s) == 6.0  # pins the size
    assert [str(g) for g in guards] == ["s0 - 256 <= 0", "s0 - 6 == 0", "s0 - 6 == 0"]
    assert all(g.holds({"s0": 6}) for g in guards)
    assert not guards[1].holds({"s0": 7}) and guards[0].holds({"s0": 7})


# ---- optimize: automatic dynamic dims ------------------------------------------------------------
def shape_math(x):
    B, T = x.shape
    y = x.view(B, T // 2, 2) * 2
    pos = fusejit.arange(T)
    return y.sum(-1) + pos[: T // 2]


def test_automatic_dynamic_recompiles_once_then_reuses():
    opt = fusejit.optimize(shape_math, warmup=0)
    for T in (6, 8, 10, 12, 20, 34):
        _eager_equal(shape_math, opt, fusejit.rand(3, T))
    ex = _executor(opt)
    assert ex._n_traces == 2
    graph = ex._specs[-1].traced.graph
    assert "s0" in str(graph.inputs[0].type)
    assert any(n.op == "arange" for n in graph.nodes)  # arange(T) computed per call
    assert all(s.status == "compiled" for s in ex._specs)


def test_dynamic_false_specializes_every_size():
    opt = fusejit.optimize(shape_math, warmup=0, dynamic=False)
    for T in (6, 8, 10, 12):
        _eager_equal(shape_math, opt, fusejit.rand(3, T))
    assert _executor(opt)._n_traces == 4


def test_dynamic_true_is_symbolic_from_the_first_trace():
    opt = fusejit.optimize(shape_math, warmup=0, dynamic=True)
    for B, T in ((3, 6), (4, 8), (5, 10), (2, 12)):
        _eager_equal(shape_math, opt, fusejit.rand(B, T))
    ex = _executor(opt)
    assert ex._n_traces == 1
    assert str(ex._specs[0].traced.graph.inputs[0].type) == "float32[s0, s1]"


def test_mark_dynamic_makes_one_dim_symbolic():
    opt = fusejit.optimize(lambda x: (x * 2).sum(0) + fusejit.arange(x.shape[0]).sum(), warmup=0)
    x = fusejit.rand(5, 3)
    fusejit.mark_dynamic(x, 0)
    opt(x)
    for n in (6, 9, 17):
        y = fusejit.rand(n, 3)
        want = (y * 2).sum(0) + fusejit.arange(n).sum()
        np.testing.assert_allclose(opt(y).numpy(), want.numpy(), rtol=1e-6)
    assert _executor(opt)._n_traces == 1
    with pytest.raises(fusejit.DimError):
        fusejit.mark_dynamic(x, 2)


def test_guard_on_a_user_comparison():
    def branch(x):
        if x.shape[0] > 8:
            return x * 2
        return x * 3

    opt = fusejit.optimize(branch, warmup=0)
    for n in (10, 12, 16):  # the second size compiles the symbolic graph, guarded s0 > 8
        _eager_equal(branch, opt, fusejit.rand(n, 4))
    # The dims are symbolic now and the guard fails: another graph, with x * 3.
    _eager_equal(branch, opt, fusejit.rand(5, 4))
    _eager_equal(branch, opt, fusejit.rand(20, 4))
    ex = _executor(opt)
    assert any(e["event"] == "guard_failure" and "s0" in e["detail"] for e in ex._events)


def test_guard_on_a_slice_of_a_buffer():
    buf = fusejit.arange(16).float()

    def window(x):
        T = x.shape[0]
        return x.sum() + buf[:T].sum()  # buf[:T] has T elements only while T <= 16

    opt = fusejit.optimize(window, warmup=0)
    for n in (4, 6, 9, 16, 20, 30):
        x = fusejit.ones(n)
        want = float(n + sum(range(min(n, 16))))
        assert opt(x).item() == want
    ex = _executor(opt)
    assert any(e["event"] == "guard_failure" and "getitem" in e["detail"] for e in ex._events)


def test_sizes_that_broadcast_stay_specialized():
    def add(x, y):
        return (x + y).view(-1)

    opt = fusejit.optimize(add, warmup=0)
    for n in (4, 6, 8):
        _eager_equal(add, opt, fusejit.rand(n, 3), fusejit.rand(n, 3))
    assert _executor(opt)._n_traces == 2
    _eager_equal(add, opt, fusejit.rand(1, 3), fusejit.rand(7, 3))  # size 1: a new graph
    assert _executor(opt)._n_traces == 3


def test_one_symbol_for_equal_sizes_checked_at_each_call():
    def mm(a, b):
        return a @ b

    opt = fusejit.optimize(mm, warmup=0, dynamic=True)
    _eager_equal(mm, opt, fusejit.rand(4, 4), fusejit.rand(4, 4))
    _eager_equal(mm, opt, fusejit.rand(6, 6), fusejit.rand(6, 6))
    assert _executor(opt)._n_traces == 1
    # sizes traced as one symbol that now differ fail the guard and retrace
    _eager_equal(mm, opt, fusejit.rand(3, 5), fusejit.rand(5, 2))
    assert _executor(opt)._n_traces == 2


# ---- the nanoGPT-style model ---------------------------------------------------------------------
def test_nanogpt_generation_compiles_at_most_two_graphs_without_fallback():
    fusejit.manual_seed(0)
    model = NanoGPT(vocab=64, block_size=32, n_layer=2, n_head=2, n_embd=32).eval()
    opt = fusejit.optimize(model)
    prompt = fusejit.tensor([[1, 2, 3, 4]])
    got = generate(opt, prompt, 16)
    want = generate(model, prompt, 16)
    assert got.tolist() == want.tolist()
    ex = _executor(opt)
    assert ex._n_traces <= 2
    assert all(s.status == "compiled" for s in ex._specs), [s.reason for s in ex._specs]
    assert sum(s.eager_calls for s in ex._specs) == 0
    # logits of a new length come from the symbolic graph, equal to eager's within float32
    idx = fusejit.tensor([[5, 1, 7, 3, 2, 9, 11, 4, 8, 6, 1, 2, 3]])
    with fusejit.no_grad():
        np.testing.assert_allclose(opt(idx).numpy(), model(idx).numpy(), rtol=1e-4, atol=1e-5)
    assert ex._n_traces <= 2
    text = str(fusejit.explain(opt))
    assert "runs eager" not in text


@pytest.mark.cuda
@pytest.mark.skipif(not fusejit.is_cuda_available(), reason="needs an NVIDIA GPU with cupy")
def test_dynamic_dims_on_cuda():
    opt = fusejit.optimize(shape_math, warmup=0)
    for T in (6, 8, 10, 24):
        x = fusejit.rand(3, T, device="cuda:0")
        got, want = opt(x), shape_math(x)
        assert got.device.type == "cuda"
        np.testing.assert_allclose(got.cpu().numpy(), want.cpu().numpy(), rtol=1e-6)
    assert _executor(opt)._n_traces == 2
    fusejit.manual_seed(0)
    model = NanoGPT(vocab=64, block_size=32, n_layer=1, n_head=2, n_embd=32).eval().to("cuda:0")
    opt = fusejit.optimize(model)
    prompt = fusejit.tensor([[1, 2, 3]], device="cuda:0")
    assert generate(opt, prompt, 10).tolist() == generate(model, prompt, 10).tolist()
    ex = _executor(opt)
    assert ex._n_traces <= 2 and all(s.status == "compiled" for s in ex._specs)


def test_floor_division_of_a_size_serves_odd_and_even_sizes():
    def pairs(x):
        T = x.shape[0]
        return x[: (T // 2) * 2].view(-1, 2).sum(-1)

    opt = fusejit.optimize(pairs, warmup=0)
    for n in (6, 7, 9, 12, 15):
        _eager_equal(pairs, opt, fusejit.rand(n))
    ex = _executor(opt)
    assert ex._n_traces == 2
    assert "(s0)//2" in str(ex._specs[-1].traced.graph)


def test_a_size_used_as_an_operand_specializes():
    def shifted(x):
        return x + x.shape[0]  # the size is an operand of add: compiled in as a constant

    opt = fusejit.optimize(shifted, warmup=0)
    for n in (4, 5, 6, 7):
        _eager_equal(shifted, opt, fusejit.rand(n, 2))
    ex = _executor(opt)
    assert any(e["event"] == "static" for e in ex._events)
    assert ex._n_traces == 4  # one dynamic try failed: each size its own graph, correct


def test_a_size_read_by_python_is_not_frozen_into_a_shape_generic_plan():
    def normalize(x):
        return x / x.shape[-1]  # elementwise only, but the divisor is a size

    opt = fusejit.optimize(normalize, warmup=0, dynamic=False)
    for n in (4, 8, 16):
        np.testing.assert_allclose(opt(fusejit.ones(3, n)).numpy(), np.full((3, n), 1 / n))
    traced = fusejit.trace(normalize, fusejit.ones(2, 4))
    with pytest.raises(fusejit.jit.runtime.GuardError):
        traced(fusejit.ones(2, 8))


def test_nanogpt_with_batch_and_length_symbolic_is_one_graph():
    fusejit.manual_seed(0)
    model = NanoGPT(vocab=64, block_size=32, n_layer=1, n_head=2, n_embd=32).eval()
    opt = fusejit.optimize(model, dynamic=True, warmup=0)
    with fusejit.no_grad():
        for B, T in ((2, 5), (3, 7), (4, 4), (2, 9), (5, 3)):
            idx = fusejit.randint(0, 64, (B, T))
            np.testing.assert_allclose(opt(idx).numpy(), model(idx).numpy(), rtol=1e-4, atol=1e-5)
    ex = _executor(opt)
    assert ex._n_traces == 1
    assert str(ex._specs[0].traced.graph.inputs[0].type) == "int64[s0, s1]"


def test_dynamic_true_fixes_only_the_sizes_an_op_refuses():
    """``dynamic=True`` makes every dim symbolic; a Linear's matmul takes no other feature size
    than its weight's, so that dim is traced fixed and the batch dim stays dynamic (the whole
    signature was traced static before: every new batch size a new graph)."""
    fusejit.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 16), nn.GELU(), nn.Linear(16, 4)).eval()
    opt = fusejit.optimize(model, dynamic=True, warmup=0)
    with fusejit.no_grad():
        for n in (3, 5, 2, 33):
            x = fusejit.randn(n, 8)
            np.testing.assert_allclose(opt(x).numpy(), model(x).numpy(), rtol=1e-5, atol=1e-6)
    ex = _executor(opt)
    assert ex._n_traces == 1
    assert [e["event"] for e in ex._events][:2] == ["fixed", "specialize"]
    assert str(ex._specs[0].traced.graph.inputs[0].type) == "float32[s0, 8]"
