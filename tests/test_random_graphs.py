"""Random values as graph nodes: ``rand_like`` (the op table's random op) and the dropout built
on it, traced, optimized, scripted and saved. A graph draws fresh values at each call, from the
default generator and in the order eager code does, so one seed gives the same values eagerly
and compiled; the passes never merge, fold or drop a draw."""

from __future__ import annotations

import numpy as np
import pytest
from parity_helpers import DEVICES, host, on

import fusejit
import fusejit.nn as nn
from fusejit.base.errors import TraceError


def _ops(traced) -> list:
    return [n.op for n in traced.graph.block.nodes]


def _draws_as_eager(f, fn, x, seed: int, calls: int) -> None:
    """Calls of traced ``f`` from ``seed`` give eager ``fn``'s values, fresh at each call."""
    fusejit.manual_seed(seed)
    got = [host(f(x)) for _ in range(calls)]
    fusejit.manual_seed(seed)
    want = [host(fn(x)) for _ in range(calls)]
    np.testing.assert_array_equal(got, want)
    assert not np.array_equal(got[0], got[1])


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", ["float16", "float32", "float64"])
def test_rand_like_eager_is_rand(device, dtype):
    x = on(np.zeros((3, 50), dtype), device)
    fusejit.manual_seed(5)
    a = fusejit.rand_like(x)
    fusejit.manual_seed(5)
    b = fusejit.rand(3, 50, dtype=dtype, device=device)
    assert a.dtype.name == dtype and a.device == x.device and a.shape == (3, 50)
    np.testing.assert_array_equal(host(a), host(b))
    v = host(a).astype(np.float64)
    assert ((v >= 0) & (v < 1)).all()
    if dtype == "float16":  # (a grid of 2**-11: never rounded up to 1.0)
        assert (v * 2**11 == np.round(v * 2**11)).all()


@pytest.mark.parametrize("device", DEVICES)
def test_traced_draws_fresh_values_as_eager_does(device):
    x = on(np.ones((4, 6), np.float32), device)

    def fn(t):
        return fusejit.rand_like(t) * t + fusejit.rand_like(t)

    f = fusejit.trace(fn, (x,))
    assert _ops(f).count("rand_like") == 2  # (not merged: two draws)
    _draws_as_eager(f, fn, x, seed=1, calls=3)


def test_trace_leaves_the_generator_as_one_eager_call_does():
    """The trace's checks run the function twice more; the generators are put back."""
    x = fusejit.ones(5)
    fusejit.manual_seed(2)
    fusejit.trace(lambda t: fusejit.rand_like(t) + t, (x,))
    after_trace = host(fusejit.rand(5))
    fusejit.manual_seed(2)
    fusejit.rand_like(x)
    np.testing.assert_array_equal(after_trace, host(fusejit.rand(5)))


def test_an_unused_draw_is_kept_and_no_draw_is_folded():
    """An unused draw still advances the generator (as eagerly); a draw from a tensor made
    inside the function is not folded into a constant."""

    def fn(t):
        fusejit.rand_like(t)  # (drawn, unused)
        return t + fusejit.rand_like(fusejit.ones(3))

    x = fusejit.zeros(3)
    f = fusejit.trace(fn, (x,))
    _draws_as_eager(f, fn, x, seed=3, calls=2)


def test_dropout_fuses_with_its_input():
    """``rand_like`` reads only its operand's type: the graph draws from the first value of
    that type on the chain (the matmul's result), so the bias, the activation, the mask and the
    scaling are one kernel."""
    model = nn.Sequential(nn.Linear(8, 16), nn.GELU(), nn.Dropout(0.5))
    x = fusejit.randn(5, 8)
    with fusejit.no_grad():
        f = fusejit.trace(model, (x,))
    assert f.kernel_count() == 1
    assert _ops(f) == ["permute", "matmul", "rand_like", "fused"]


def test_other_random_calls_still_refuse_to_trace():
    x = fusejit.ones(3)
    for fn in (lambda t: t + fusejit.rand(3), lambda t: t + fusejit.randn_like(t),
               lambda t: t + fusejit.rand_like(t, dtype=fusejit.float64),
               lambda t: t + fusejit.rand_like(t, generator=fusejit.Generator())):  # fmt: skip
        with pytest.raises(TraceError, match="random values cannot be recorded"):
            fusejit.trace(fn, (x,))
    with pytest.raises(fusejit.DTypeError, match="floating-point"):
        fusejit.rand_like(fusejit.ones(3, dtype=fusejit.int32))


@pytest.mark.parametrize("device", DEVICES)
def test_optimized_dropout_serves_other_batch_sizes(device):
    """Optimized in training mode, with batches of several sizes: each call's mask is the one
    eager code draws from the same generator state."""
    fusejit.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Dropout(0.25), nn.Linear(16, 4))
    model.to(device)
    opt = fusejit.optimize(model, warmup=1)
    sizes = [4, 4, 4, 7, 7, 9, 9, 4]
    xs = [fusejit.randn(n, 8, device=device) for n in sizes]
    with fusejit.no_grad():
        fusejit.manual_seed(9)
        got = [host(opt(x)) for x in xs]
        fusejit.manual_seed(9)
        want = [host(model(x)) for x in xs]
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-6)
    sigs = fusejit.explain(opt, as_dict=True)["signatures"]
    assert all(s["status"] == "compiled" for s in sigs[1:]), sigs


def test_scripted_dropout_in_a_loop_trains_as_eager():
    """A scripted module's loop draws one mask per iteration, as eagerly; compiling (the first
    call, and the first call with gradients) draws nothing the call does not."""

    class Stack(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(8, 8)
            self.drop = nn.Dropout(0.5)

        def forward(self, x):
            for _ in range(3):
                x = self.drop(self.lin(x))
            return x

    model = Stack()
    scripted = fusejit.script(model)
    x = fusejit.randn(4, 8)
    fusejit.manual_seed(1)
    a = scripted(x)
    a.sum().backward()
    ga = host(model.lin.weight.grad)
    model.zero_grad()
    fusejit.manual_seed(1)
    b = model(x)
    b.sum().backward()
    np.testing.assert_allclose(host(a.detach()), host(b.detach()), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(ga, host(model.lin.weight.grad), rtol=1e-5, atol=1e-6)
    with fusejit.no_grad():
        assert not np.array_equal(host(scripted(x)), host(scripted(x)))


def test_saved_dropout_draws_fresh_masks(tmp_path):
    model = nn.Sequential(nn.Linear(8, 16), nn.Dropout(0.5))
    x = fusejit.randn(6, 8)
    with fusejit.no_grad():
        f = fusejit.trace(model, (x,))
        fusejit.save(f, tmp_path / "drop.fjz")
        g = fusejit.load(tmp_path / "drop.fjz")
        assert "rand_like" in [n.op for n in g.graph.block.nodes]
        fusejit.manual_seed(4)
        got = host(g(x))
        fusejit.manual_seed(4)
        np.testing.assert_allclose(got, host(model(x)), rtol=1e-6, atol=1e-7)
        assert not np.array_equal(host(g(x)), host(g(x)))


def test_an_unused_draw_is_kept_in_a_compiled_backward():
    """With gradients, the compiled forward keeps a draw nothing reads, so later draws are
    eager's."""

    def fn(t):
        fusejit.nn.functional.dropout(t, 0.5)  # (drawn, unused)
        return (fusejit.nn.functional.dropout(t * 3, 0.5) * t).sum()

    x = fusejit.rand(64).requires_grad_()
    opt = fusejit.optimize(fn, warmup=0, strict=True)
    fusejit.manual_seed(6)
    got = [opt(x) for _ in range(3)]
    fusejit.manual_seed(6)
    want = [fn(x) for _ in range(3)]
    for g, w in zip(got, want):
        np.testing.assert_allclose(host(g.detach()), host(w.detach()), rtol=1e-6)
    assert got[0].grad_fn.name() == "CompiledFunctionBackward"
