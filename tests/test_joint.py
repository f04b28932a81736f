"""Joint forward/backward graphs: traced and optimized functions whose inputs (or captured
parameters) require grad return outputs whose backward runs a compiled backward graph.

Gradients are compared with eager autograd's: bit for bit where every op (forward and
derivative rule) is exact and no reduction is reordered. Otherwise (a row kernel sums in
another order than numpy; fused transcendental functions differ from numpy's by a few ulps,
which the chain rule multiplies) within ``rtol`` of each element plus of the gradient's largest
magnitude (``close``): 1e-14 to 1e-12 for float64 models and functions, 1e-6 to 1e-5 for float32
ones, and for random programs (long chains of transcendental functions and their derivatives)
1e-4 (float32) and 1e-10 (float64). The partition (saved vs recomputed) is checked on small
graphs, and the peak memory of a training step against eager's with ``tracemalloc``.
"""

from __future__ import annotations

import itertools
import tracemalloc
import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from jit_helpers import as_np, assert_bitwise, module_cache_fixture, programs
from parity_helpers import CUDA_OK, _why_no_gpu

import fusejit as F
from fusejit.base.errors import AutogradError
from fusejit.jit.partition import max_flow_min_cut

_cache = module_cache_fixture()
nnf = F.nn.functional


def rand(*shape, dtype=np.float64, seed=0, grad=True, lo=-1.0, hi=1.0):
    a = np.random.default_rng(seed).uniform(lo, hi, shape).astype(dtype)
    t = F.tensor(a)
    return t.requires_grad_() if grad else t


def clone_leaves(ts):
    return tuple(F.tensor(t.numpy().copy()).requires_grad_(t.requires_grad) for t in ts)


def grads_of(fn, inputs, seed=1):
    """(outputs, gradients of the inputs requiring grad) of ``fn(*inputs)`` for random
    gradients of its outputs."""
    out = fn(*inputs)
    outs = out if isinstance(out, tuple) else (out,)
    rng = np.random.default_rng(seed)
    diff = [o for o in outs if o.requires_grad]
    gos = [F.tensor(rng.uniform(-1, 1, o.shape).astype(o.dtype.np)).to(o.device) for o in diff]
    targets = [t for t in inputs if isinstance(t, F.Tensor) and t.requires_grad]
    gs = F.autograd.grad(diff, targets, gos, allow_unused=True) if diff else ()
    return outs, gs


def close(actual, expected, rtol, what=""):
    """|actual - expected| <= rtol * (|expected| + max |expected|), NaN where NaN."""
    a, b = as_np(actual).astype(np.float64), as_np(expected).astype(np.float64)
    assert a.shape == b.shape, what
    scale = np.nanmax(np.abs(b[np.isfinite(b)]), initial=0.0)
    with np.errstate(invalid="ignore"):  # (inf - inf: equal infinities pass by a == b)
        ok = (np.abs(a - b) <= rtol * (np.abs(b) + scale)) | (a == b)
    ok |= np.isnan(a) & np.isnan(b)
    assert ok.all(), f"{what}: max diff {np.nanmax(np.abs(a - b))} (scale {scale})"


# ---- gradients equal eager's -------------------------------------------------------------------
def test_exact_ops_give_bitwise_gradients():
    def f(x, y, w):
        return ((x * y - x / y) @ w).relu(), x.maximum(y) * 3

    for dtype in (np.float32, np.float64):
        ins = (rand(4, 5, dtype=dtype, seed=1), rand(4, 5, dtype=dtype, seed=2, lo=0.5, hi=2),
               rand(5, 3, dtype=dtype, seed=3))  # fmt: skip
        tf = F.trace(f, ins)
        outs_e, ge = grads_of(f, ins)
        ins2 = clone_leaves(ins)
        outs_j, gj = grads_of(tf, ins2)
        assert all(o.grad_fn is not None for o in outs_j)
        assert outs_j[0].grad_fn.name() == "CompiledFunctionBackward"
        for a, b in zip(outs_j, outs_e, strict=True):
            assert_bitwise(a.detach(), b.detach())
        for k, (a, b) in enumerate(zip(gj, ge, strict=True)):
            assert_bitwise(a, b, f"grad {k}")


def test_gelu_of_matmul_saves_the_matmul_and_recomputes_gelu():
    x, w = rand(16, 32, dtype=np.float32, seed=1), rand(32, 8, dtype=np.float32, seed=2)

    def f(x, w):
        return nnf.gelu(x @ w)

    tf = F.trace(f, (x, w))
    _, ge = grads_of(f, clone_leaves((x, w)))
    _, gj = grads_of(tf, clone_leaves((x, w)))
    for a, b in zip(gj, ge, strict=True):
        close(a, b, 1e-6)
    (cj,) = tf._joints.values()
    saved_ops = {i[0] for i in cj.saved_info}
    assert "matmul" in saved_ops
    assert not saved_ops & {"gelu", "erf", "mul", "add", "exp"}
    assert {"erf", "exp"} <= {i[0] for i in cj.recomputed_info}
    part = cj.partition
    # the inputs (needed by the matmul's gradient) and the matmul output, nothing else
    assert part.saved_bytes == (16 * 32 + 32 * 8 + 16 * 8) * 4
    assert part.saved_bytes <= part.naive_bytes
    fwd_k, bwd_k = cj.kernel_counts()
    assert fwd_k == 1 and bwd_k == 1  # gelu forward; gelu' times the gradient


def test_broadcasting_and_reductions():
    def f(x, b, s):
        y = (x + b) * s  # (8, 5) + (5,), times a 0-d tensor
        return y.sum(0), y.mean(), (y * y).amax(1, keepdim=True), y.var(1)

    args = (rand(8, 5, seed=1), rand(5, seed=2), rand(seed=3))
    tf = F.trace(f, args)
    _, ge = grads_of(f, clone_leaves(args))
    _, gj = grads_of(tf, clone_leaves(args))
    for a, b in zip(gj, ge, strict=True):
        assert a.shape == b.shape
        close(a, b, 1e-13)


def test_softmax_log_softmax_and_cross_entropy():
    target = F.tensor(np.array([1, 0, 3, 2, 2, 4]))

    def f(logits, t):
        return (nnf.cross_entropy(logits, t), nnf.softmax(logits, -1) * 2,
                nnf.log_softmax(logits * 3, 1).sum())  # fmt: skip

    logits = rand(6, 5, seed=4, lo=-3, hi=3)
    tf = F.trace(f, (logits, target))
    _, ge = grads_of(f, (*clone_leaves((logits,)), target))
    _, gj = grads_of(tf, (*clone_leaves((logits,)), target))
    close(gj[0], ge[0], 1e-13)


class MLP(F.nn.Module):
    def __init__(self, d_in=8, hidden=16, d_out=4):
        super().__init__()
        self.fc1 = F.nn.Linear(d_in, hidden)
        self.norm = F.nn.LayerNorm(hidden)
        self.fc2 = F.nn.Linear(hidden, d_out)

    def forward(self, x):
        return self.fc2(self.norm(nnf.gelu(self.fc1(x))))


def _param_grads(m):
    return [p.grad.cpu().numpy().copy() for p in m.parameters()]


@pytest.mark.parametrize("dtype", [F.float32, F.float64])
def test_optimized_module_trains_as_eager(dtype):
    F.manual_seed(0)
    m = MLP().to(dtype)
    om = F.optimize(m, warmup=1)
    x = rand(6, 8, seed=5, grad=False).to(dtype)
    y = rand(6, 4, seed=6, grad=False).to(dtype)
    rtol = 1e-5 if dtype is F.float32 else 1e-12
    for step in range(3):
        m.zero_grad()
        nnf.mse_loss(m(x), y).backward()
        expected = _param_grads(m)
        m.zero_grad()
        out = om(x)
        loss = nnf.mse_loss(out, y)
        loss.backward()
        got = _param_grads(m)
        for k, (a, b) in enumerate(zip(got, expected, strict=True)):
            close(a, b, rtol, f"step {step}, parameter {k}")
        if step >= 1:  # compiled from the second call on
            assert out.grad_fn.name() == "CompiledFunctionBackward"
        with F.no_grad():
            for p in m.parameters():
                p -= 0.1 * p.grad
    r = F.explain(om, as_dict=True)
    (training,) = r["signatures"][0]["training"]
    assert training["saved_bytes"] <= training["save_all_bytes"]
    text = F.explain(om)
    assert "saved for backward" in text and "recomputed in backward" in text
    assert "backward graph" in text and "bytes" in text


def test_gradients_accumulate_into_leaves_as_eager():
    x, w = rand(3, 4, seed=1), rand(4, seed=2)
    tf = F.trace(lambda x, w: (x * w).tanh().sum(), (x, w))
    tf(x, w).backward()
    tf(x, w).backward()
    x2, w2 = clone_leaves((x, w))
    (x2 * w2).tanh().sum().backward()
    (x2 * w2).tanh().sum().backward()
    close(x.grad, x2.grad, 1e-14)
    close(w.grad, w2.grad, 1e-14)


def test_inputs_with_history_and_partial_requires_grad():
    a = rand(5, seed=1)
    x = a * 2  # not a leaf: its gradient flows on to a
    c = rand(5, seed=2, grad=False)
    tf = F.trace(lambda x, c: (x * c).exp().sum(), (x, c))
    tf(x, c).backward()
    a2 = F.tensor(a.numpy()).requires_grad_()
    ((a2 * 2) * c).exp().sum().backward()
    close(a.grad, a2.grad, 1e-14)
    assert c.grad is None


def test_second_backward_and_in_place_writes_are_errors():
    x, w = rand(3, 4, seed=1), rand(4, 2, seed=2)
    tf = F.trace(lambda x, w: (x @ w).sum(), (x, w))
    out = tf(x, w)
    out.backward()
    with pytest.raises(AutogradError, match="second time"):
        out.backward()
    out = tf(x, w)
    with F.no_grad():
        w.mul_(2)
    with pytest.raises(AutogradError, match="modified by an in-place operation"):
        out.backward()
    # an output the backward reads (softmax's), written in place: an error, as in eager
    te = F.trace(lambda x: nnf.softmax(x, -1), (x,))
    out = te(x)
    (cj,) = te._joints.values()
    assert ("out", 0) in cj.saved_sources  # the output itself, not a copy
    with F.no_grad():
        out.add_(1)
    with pytest.raises(AutogradError, match="modified by an in-place operation"):
        out.sum().backward()


def test_no_grad_calls_run_the_inference_plan():
    x = rand(3, 4, seed=1)
    tf = F.trace(lambda x: x.exp() * 2, (x,))
    with F.no_grad():
        out = tf(x)
    assert not out.requires_grad


def test_no_grad_and_detach_inside_the_function():
    x = rand(4, 5, seed=1)

    def f(x):
        with F.no_grad():
            m = x.mean()
        return ((x - m) * x).sum()

    tf = F.trace(f, (x,))
    _, gj = grads_of(tf, clone_leaves((x,)))
    _, ge = grads_of(f, clone_leaves((x,)))
    close(gj[0], ge[0], 1e-14)

    def g(x):
        return (x * x.detach()).sum()

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # (a compiled backward: nothing runs eagerly)
        tg = F.trace(g, (x,))
        _, gj = grads_of(tg, clone_leaves((x,)))
    _, ge = grads_of(g, clone_leaves((x,)))
    assert_bitwise(gj[0], ge[0])


def test_create_graph_through_a_compiled_function():
    x = rand(6, seed=3)
    tf = F.trace(lambda x: (x.sin() * x).sum(), (x,))
    (gx,) = F.autograd.grad(tf(x), x, create_graph=True)
    (ggx,) = F.autograd.grad(gx.sum(), x)
    x2 = clone_leaves((x,))[0]
    (ex,) = F.autograd.grad((x2.sin() * x2).sum(), x2, create_graph=True)
    (egx,) = F.autograd.grad(ex.sum(), x2)
    close(ggx, egx, 1e-14)


def test_gradcheck_through_traced_and_optimized_functions():
    def f(x, w, b):
        h = nnf.gelu(x @ w + b)
        return nnf.softmax(h, -1) * h.tanh() + nnf.layer_norm(h, (3,))

    args = (rand(4, 5, seed=1), rand(5, 3, seed=2), rand(3, seed=3))
    tf = F.trace(f, args)
    assert F.autograd.gradcheck(tf, args)
    of = F.optimize(f, warmup=0)
    assert F.autograd.gradcheck(of, args)
    assert F.explain(of, as_dict=True)["signatures"][0]["status"] == "compiled"


# ---- random programs ---------------------------------------------------------------------------
@settings(max_examples=10, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])  # fmt: skip
@given(p=programs("float"))
def test_random_programs_gradients_equal_eager(p):
    arrays = p.arrays()

    def leaves():
        ts = p.inputs([np.array(a) for a in arrays])
        return tuple(t.requires_grad_() if t.dtype.is_floating_point else t for t in ts)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        outs_e, ge = grads_of(p.fn, leaves())
        assume(any(o.requires_grad for o in outs_e))
        traced = F.trace(p.fn, leaves())
        outs_j, gj = grads_of(traced, leaves())
    assert [o.requires_grad for o in outs_j] == [o.requires_grad for o in outs_e]
    assert len(gj) == len(ge)
    # bitwise where every op is exact and nothing broadcasts (a broadcast operand's gradient
    # is a sum, which a row kernel adds in another order than numpy)
    exact = p.all_exact() and len(set(p.shapes)) == 1
    for k, (a, b) in enumerate(zip(gj, ge, strict=True)):
        assert (a is None) == (b is None), f"grad {k}"
        if a is None:
            continue
        if exact:
            assert_bitwise(a, b, f"grad {k}")
        else:
            close(a, b, 1e-4 if a.dtype is F.float32 else 1e-10, f"grad {k}")


# ---- the partition -----------------------------------------------------------------------------
def _brute_min_cut(n, edges, s, t):
    best = float("inf")
    others = [v for v in range(n) if v not in (s, t)]
    for k in range(len(others) + 1):
        for side in itertools.combinations(others, k):
            S = {s, *side}
            best = min(best, sum(c for u, v, c in edges if u in S and v not in S))
    return best


def test_max_flow_equals_the_brute_force_min_cut():
    rng = np.random.default_rng(0)
    for _ in range(30):
        n = int(rng.integers(3, 8))
        edges = []
        for u in range(n):
            for v in range(n):
                if u != v and rng.random() < 0.4:
                    edges.append((u, v, int(rng.integers(1, 10))))
        flow, side = max_flow_min_cut(n, edges, 0, n - 1)
        assert flow == _brute_min_cut(n, edges, 0, n - 1)
        assert 0 in side and n - 1 not in side
        assert sum(c for u, v, c in edges if u in side and v not in side) == flow


def test_a_reduction_is_saved_and_an_elementwise_chain_recomputed():
    x = rand(32, 64, dtype=np.float32, seed=1)

    def f(x):
        y = (x * 2).exp()  # elementwise: recomputed from x
        s = y.sum(-1, keepdim=True)  # a reduction: saved (small)
        return (y / s).tanh()

    tf = F.trace(f, (x,))
    _, gj = grads_of(tf, clone_leaves((x,)))
    _, ge = grads_of(f, clone_leaves((x,)))
    close(gj[0], ge[0], 1e-5)
    (cj,) = tf._joints.values()
    saved = {i[0]: i[2] for i in cj.saved_info}
    assert "sum" in saved and "exp" not in saved
    assert cj.partition.saved_bytes < cj.partition.naive_bytes


def test_compiled_gradients_go_into_grad_without_aliasing():
    # a compiled backward's gradients are new arrays: .grad takes them without a copy where
    # nothing else holds them (the weights' contiguous now: b.T @ a.T, not (a @ b).T); the
    # values are eager's and accumulate over backward passes into separate memory
    F.manual_seed(0)
    m = F.nn.Sequential(F.nn.Linear(6, 5), F.nn.Tanh(), F.nn.Linear(5, 3))
    x, y = rand(4, 6, grad=False), rand(4, 3, grad=False, seed=1)
    m = m.to(F.float64)
    om = F.optimize(m, warmup=0)
    for model in (m, om):  # (the second: against the eager gradients kept from the first)
        m.zero_grad()
        for _ in range(2):
            nnf.mse_loss(model(x), y).backward()
        if model is m:
            want = [p.grad.numpy().copy() for p in m.parameters()]
    grads = [p.grad for p in m.parameters()]
    for g, w in zip(grads, want, strict=True):
        assert g._data.flags.c_contiguous and g.grad_fn is None
        np.testing.assert_allclose(g.numpy(), w, rtol=1e-12, atol=1e-15)
    for g, h in itertools.combinations(grads, 2):
        assert not np.shares_memory(g._data, h._data)


@pytest.mark.parametrize("batch, width", [(256, 256), (8, 384)])  # activations / weights
def test_peak_memory_of_a_step_does_not_exceed_eager(batch, width):
    # tensors under 1 MiB: the host pool keeps larger dead buffers, which tracemalloc counts
    F.manual_seed(0)
    m = F.nn.Sequential(F.nn.Linear(128, width), F.nn.GELU(), F.nn.LayerNorm(width),
                        F.nn.Linear(width, width), F.nn.Tanh(), F.nn.Linear(width, 16))  # fmt: skip
    x = rand(batch, 128, dtype=np.float32, grad=False)
    y = rand(batch, 16, dtype=np.float32, grad=False, seed=2)
    om = F.optimize(m, warmup=0)

    def step(model):
        m.zero_grad()
        nnf.mse_loss(model(x), y).backward()

    def peak(model):
        step(model)  # warm (compiles)
        best = None
        for _ in range(2):
            m.zero_grad()
            tracemalloc.start()
            tracemalloc.reset_peak()
            base = tracemalloc.get_traced_memory()[0]
            nnf.mse_loss(model(x), y).backward()
            p = tracemalloc.get_traced_memory()[1] - base
            tracemalloc.stop()
            best = p if best is None else min(best, p)
        return best

    eager = peak(m)
    compiled = peak(om)
    assert compiled <= eager, (compiled, eager)


# ---- CUDA (bench/gpu_check.sh) -----------------------------------------------------------------
needs_cuda = pytest.mark.skipif(not CUDA_OK, reason=f"no usable GPU: {_why_no_gpu()}")


def to_cuda(ts):
    return tuple(F.tensor(t.numpy().copy(), device="cuda").requires_grad_(t.requires_grad)
                 for t in ts)  # fmt: skip


@needs_cuda
def test_joint_gradients_cuda():
    def f(x, w, b):
        h = nnf.gelu(x @ w + b)
        return nnf.layer_norm(h, (h.shape[-1],)) * nnf.softmax(h, -1), (h * h).sum(0)

    args = (rand(64, 32, dtype=np.float32, seed=1), rand(32, 48, dtype=np.float32, seed=2),
            rand(48, dtype=np.float32, seed=3))  # fmt: skip
    cpu_tf = F.trace(f, args)
    ins = to_cuda(args)
    tf = F.trace(f, ins)
    _, gj = grads_of(tf, to_cuda(args))
    _, ge = grads_of(f, to_cuda(args))
    _, gc = grads_of(cpu_tf, clone_leaves(args))
    for a, b, c in zip(gj, ge, gc, strict=True):
        assert a.device.type == "cuda"
        close(a.cpu(), b.cpu(), 1e-4)
        close(a.cpu(), c, 1e-4)
    (cj,) = tf._joints.values()
    assert "matmul" in {i[0] for i in cj.saved_info}


@needs_cuda
def test_optimized_module_trains_as_eager_cuda():
    F.manual_seed(0)
    m = MLP(32, 64, 8).to("cuda")
    om = F.optimize(m, warmup=1)
    x = rand(16, 32, dtype=np.float32, seed=5, grad=False).to("cuda")
    y = rand(16, 8, dtype=np.float32, seed=6, grad=False).to("cuda")
    for _ in range(3):
        m.zero_grad()
        nnf.mse_loss(m(x), y).backward()
        expected = _param_grads(m)
        m.zero_grad()
        nnf.mse_loss(om(x), y).backward()
        for a, b in zip(_param_grads(m), expected, strict=True):
            close(a, b, 1e-4)
    assert F.explain(om, as_dict=True)["signatures"][0]["training"]


@needs_cuda
@settings(max_examples=10, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])  # fmt: skip
@given(p=programs("float"))
def test_random_programs_gradients_equal_eager_cuda(p):
    arrays = p.arrays()

    def leaves():
        ts = tuple(F.tensor(np.array(a), device="cuda") for a in arrays)
        return tuple(t.requires_grad_() if t.dtype.is_floating_point else t for t in ts)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        outs_e, ge = grads_of(p.fn, leaves())
        assume(any(o.requires_grad for o in outs_e))
        traced = F.trace(p.fn, leaves())
        outs_j, gj = grads_of(traced, leaves())
    assert [o.requires_grad for o in outs_j] == [o.requires_grad for o in outs_e]
    exact = p.all_exact() and len(set(p.shapes)) == 1
    for k, (a, b) in enumerate(zip(gj, ge, strict=True)):
        assert (a is None) == (b is None), f"grad {k}"
        if a is None:
            continue
        if exact:
            assert_bitwise(a.cpu(), b.cpu(), f"grad {k}")
        else:
            close(a.cpu(), b.cpu(), 1e-4 if a.dtype is F.float32 else 1e-10, f"grad {k}")


def test_a_shape_generic_function_differentiates_at_other_sizes():
    def f(x, b):
        return ((x * b).tanh() + x).sum(-1)

    tf = F.trace(f, (rand(4, 6, seed=1), rand(6, seed=2)))
    assert tf.plan.shape_generic
    for shape in ((4, 6), (9, 3), (2, 5)):
        args = (rand(*shape, seed=3), rand(shape[-1], seed=4))
        _, gj = grads_of(tf, clone_leaves(args))
        _, ge = grads_of(f, clone_leaves(args))
        for a, b in zip(gj, ge, strict=True):
            assert a.shape == b.shape
            close(a, b, 1e-14)


def test_scripted_functions_differentiate():
    @F.script
    def f(x, w):
        h = (x @ w).tanh()
        return (h * h).sum()

    args = (rand(4, 5, seed=1), rand(5, 3, seed=2))
    out = f(*args)
    assert out.grad_fn.name() == "CompiledFunctionBackward"
    _, gj = grads_of(f, clone_leaves(args))
    _, ge = grads_of(f.fn, clone_leaves(args))
    for a, b in zip(gj, ge, strict=True):
        close(a, b, 1e-14)
    assert F.autograd.gradcheck(f, args)

    @F.script
    def g(x, n: int):
        for _ in range(n):
            x = x * 2
        return x.sum()

    # control flow: a compiled backward per straight-line run (tests/test_script_loop_grad.py)
    x = clone_leaves(args[:1])[0]
    g(x, 3).backward()
    np.testing.assert_array_equal(x.grad.numpy(), np.full(x.shape, 8.0))


def test_fallbacks_are_recorded():
    # a detach() of a tensor carrying a gradient is a node (``detach``) that passes none: the
    # backward compiles, and the gradient stops where eager's does (d/dx of x * c is c)
    def g(x):
        return (x * x.detach()).sum()

    og = F.optimize(g, warmup=0)
    x = rand(5, seed=1)
    og(x).backward()
    np.testing.assert_array_equal(x.grad.numpy(), x.detach().numpy())
    r = F.explain(og, as_dict=True)
    (training,) = r["signatures"][0]["training"]
    assert "runs_eager" not in training and "runs eager" not in F.explain(og)
    assert "detach" not in r["signatures"][0]["graph"]  # (dropped once the backward is built)

    # a whole training step (backward and optimizer inside) is one graph now
    # (tests/test_train_step_optimized.py compares it with eager)
    m = F.nn.Linear(3, 2)
    opt = F.optim.SGD(m.parameters(), lr=0.1)

    def train_step(x):
        loss = m(x).square().sum()
        loss.backward()
        opt.step()
        opt.zero_grad()
        return loss

    step = F.optimize(train_step, warmup=0)
    xs = rand(4, 3, seed=2, grad=False)
    w0 = m.weight.numpy().copy()
    step(xs)
    assert not np.array_equal(m.weight.numpy(), w0)  # the step ran
    (sig,) = F.explain(step, as_dict=True)["signatures"]
    assert sig["status"] == "compiled" and sig["train_step"]["phases"]["backward"] > 0


def test_a_small_gpt_trains_through_optimize():
    from fusejit.bench.models import NanoGPT

    F.manual_seed(0)
    m = NanoGPT(vocab=50, n_embd=32, n_head=4, n_layer=2, block_size=16)
    om = F.optimize(m, warmup=1)
    rng = np.random.default_rng(0)
    idx, tgt = (F.tensor(rng.integers(0, 50, (2, 16))) for _ in range(2))
    for step in range(3):
        m.zero_grad()
        nnf.cross_entropy(m(idx).reshape(-1, 50), tgt.reshape(-1)).backward()
        expected = _param_grads(m)
        m.zero_grad()
        out = om(idx)
        nnf.cross_entropy(out.reshape(-1, 50), tgt.reshape(-1)).backward()
        for k, (a, b) in enumerate(zip(_param_grads(m), expected, strict=True)):
            close(a, b, 1e-5, f"step {step}, parameter {k}")
    assert out.grad_fn.name() == "CompiledFunctionBackward"
    (training,) = F.explain(om, as_dict=True)["signatures"][0]["training"]
    assert training["saved_bytes"] <= training["save_all_bytes"]


def test_embedding_with_padding_idx_trains_compiled():
    """The padding row takes no gradient (``F.embedding`` detaches it): a scripted or optimized
    model with one compiles its backward, with eager's gradients."""

    class Bag(F.nn.Module):
        def __init__(self):
            super().__init__()
            self.emb = F.nn.Embedding(10, 4, padding_idx=0)
            self.out = F.nn.Linear(4, 2)

        def forward(self, i):
            return self.out(self.emb(i)).square().sum()

    F.manual_seed(0)
    model = Bag()
    idx = F.tensor(np.array([[0, 1, 2], [3, 0, 4]]))
    model(idx).backward()
    want = model.emb.weight.grad.numpy().copy()
    assert not want[0].any()  # (the padding row)
    for wrap in (F.script, lambda m: F.optimize(m, warmup=0)):
        model.zero_grad()
        compiled = wrap(model)
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # (nothing runs eagerly)
            compiled(idx).backward()
        close(model.emb.weight.grad.numpy(), want, 1e-6)
