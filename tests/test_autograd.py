"""The autograd engine: recording, backward and autograd.grad, leaves and accumulation,
broadcasting, dtypes, hooks, retain_grad, detach, version counters and in-place ops, custom
Functions, tracing, and the errors of bad use."""

from __future__ import annotations

import numpy as np
import pytest
from parity_helpers import DEVICES, on

import fusejit as F
from fusejit.base.errors import AutogradError, DTypeError, ShapeError


def leaf(a, device="cpu", dtype=np.float64):
    return on(np.asarray(a, dtype=dtype), device).requires_grad_()


@pytest.mark.parametrize("device", DEVICES)
def test_backward_accumulates_into_leaves(device):
    x = leaf([1.0, 2.0, 3.0], device)
    y = (x * x).sum()
    assert y.grad_fn.name() == "SumBackward0" and not y.is_leaf and x.is_leaf
    assert "SumBackward0" in repr(y.grad_fn)
    y.backward()
    np.testing.assert_array_equal(x.grad.cpu().numpy(), [2.0, 4.0, 6.0])
    (x * 3.0).sum().backward()  # a second graph: accumulates
    np.testing.assert_array_equal(x.grad.cpu().numpy(), [5.0, 7.0, 9.0])
    assert x.grad.grad_fn is None and not x.grad.requires_grad


@pytest.mark.parametrize("device", DEVICES)
def test_broadcast_gradients_are_summed_to_the_operand(device):
    a = leaf(np.ones((2, 3)), device)
    b = leaf([1.0, 2.0, 3.0], device)
    c = leaf([[2.0], [3.0]], device)
    ((a * b) + c).sum().backward()
    np.testing.assert_array_equal(b.grad.cpu().numpy(), [2.0, 2.0, 2.0])
    np.testing.assert_array_equal(c.grad.cpu().numpy(), [[3.0], [3.0]])
    assert b.grad.shape == (3,) and c.grad.shape == (2, 1)


def test_gradient_dtype_is_the_operands():
    a = leaf([1.0, 2.0], dtype=np.float32)
    b = leaf([3.0, 4.0], dtype=np.float64)
    (a * b).sum().backward()
    assert a.grad.dtype is F.float32 and b.grad.dtype is F.float64
    h = leaf([1.0, 2.0], dtype=np.float16)
    (h.float() * 2).sum().backward()
    assert h.grad.dtype is F.float16
    np.testing.assert_array_equal(h.grad.numpy(), [2.0, 2.0])


def test_python_scalars_and_int_tensors_get_no_gradient():
    x = leaf([1.0, 2.0])
    i = F.tensor([3, 4])
    y = x * i + 2.0
    assert y.dtype is F.float64
    y.sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [3.0, 4.0])
    assert i.grad is None and not i.requires_grad
    with pytest.raises(DTypeError, match="int64"):
        i.requires_grad_()


def test_non_differentiable_results_do_not_require_grad():
    x = leaf([1.0, -2.0])
    assert not (x > 0).requires_grad
    assert not x.argmax().requires_grad
    assert not x.long().requires_grad
    vals, idx = x.max(0)
    assert vals.requires_grad and not idx.requires_grad


def test_amax_shares_ties_evenly_and_max_dim_picks_the_index():
    x = leaf([1.0, 3.0, 3.0, 0.0])
    x.amax().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [0.0, 0.5, 0.5, 0.0])
    y = leaf([[1.0, 3.0, 3.0]])
    y.max(1).values.sum().backward()
    assert y.grad.numpy().sum() == 1.0


def test_prod_with_zeros():
    x = leaf([2.0, 0.0, 3.0])
    x.prod().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [0.0, 6.0, 0.0])
    y = leaf([0.0, 0.0, 3.0])
    y.prod().backward()
    np.testing.assert_array_equal(y.grad.numpy(), [0.0, 0.0, 0.0])


def test_no_grad_and_detach():
    x = leaf([1.0, 2.0])
    with F.no_grad():
        y = x * 2
    assert not y.requires_grad and y.grad_fn is None
    d = (x * 2).detach()
    assert not d.requires_grad and d.is_leaf
    z = x * 2
    z.detach_()
    assert not z.requires_grad and z.grad_fn is None
    e = x.detach()
    e.numpy()[0] = 5.0  # shares storage
    assert x.numpy()[0] == 5.0


def test_autograd_grad_leaves_dot_grad_alone():
    x = leaf([1.0, 2.0])
    y = leaf([3.0, 4.0])
    gx, gy = F.autograd.grad((x * y).sum(), (x, y))
    np.testing.assert_array_equal(gx.numpy(), [3.0, 4.0])
    np.testing.assert_array_equal(gy.numpy(), [1.0, 2.0])
    assert x.grad is None and y.grad is None
    u = leaf([1.0])
    with pytest.raises(AutogradError, match="not used"):
        F.autograd.grad((x * 2).sum(), (x, u))
    g = F.autograd.grad((x * 2).sum(), (x, u), allow_unused=True)
    assert g[1] is None
    # grad_outputs, and a non-leaf input
    h = x * 3
    (gh,) = F.autograd.grad((h * h), h, grad_outputs=F.ones(2, dtype=F.float64))
    np.testing.assert_array_equal(gh.numpy(), [6.0, 12.0])


def test_retain_graph_and_second_backward_error():
    x = leaf([1.0, 2.0])
    y = (x.exp() * 2).sum()
    y.backward(retain_graph=True)
    y.backward()
    np.testing.assert_allclose(x.grad.numpy(), 4 * np.exp([1.0, 2.0]))
    with pytest.raises(AutogradError, match="second time.*retain_graph"):
        y.backward()


def test_backward_errors_name_the_tensor():
    x = leaf([1.0, 2.0])
    with pytest.raises(AutogradError, match=r"shape \[2\], is not a scalar"):
        (x * 2).backward()
    with pytest.raises(ShapeError, match=r"gradient of shape \[3\].*\[2\]"):
        (x * 2).backward(F.ones(3, dtype=F.float64))
    with pytest.raises(AutogradError, match="does not require grad"):
        F.tensor([1.0]).sum().backward()
    (x * 2).backward(F.tensor([1.0, 0.5], dtype=F.float64))
    np.testing.assert_array_equal(x.grad.numpy(), [2.0, 1.0])


def test_hooks_and_retain_grad():
    x = leaf([1.0, 2.0])
    seen = []
    h = x.register_hook(lambda g: seen.append(g.numpy().copy()))
    y = x * 2
    y.retain_grad()
    assert y.retains_grad
    y.register_hook(lambda g: g * 10)  # replaces the gradient flowing on
    (y * y).sum().backward()
    np.testing.assert_array_equal(y.grad.numpy(), [40.0, 80.0])  # after the hook
    np.testing.assert_array_equal(x.grad.numpy(), [80.0, 160.0])
    assert len(seen) == 1
    h.remove()
    (x * 1).sum().backward()
    assert len(seen) == 1


def test_version_counter_errors_name_the_op():
    x = leaf([1.0, 2.0])
    y = x.exp()
    y.add_(1)  # exp's rule reads its result
    with pytest.raises(AutogradError, match=r"ExpBackward0.*modified by an in-place"):
        y.sum().backward()
    a = leaf([1.0, 2.0])
    b = a * 1
    c = b * a  # saves b
    b[0] = 7.0
    with pytest.raises(AutogradError, match="MulBackward0"):
        c.sum().backward()
    v = a * 1
    assert v._version == 0
    with F.no_grad():
        v.view(2)[0] = 2.0  # (a view writes the same storage)
    assert v._version == 1


def test_a_leaf_reached_by_several_paths_sums_into_its_grad():
    # each path's gradient is added into .grad as its rule gives it (no turn for the leaf)
    x = leaf([1.0, 2.0, 3.0])
    x.grad = F.tensor(np.array([10.0, 20.0, 30.0]))
    (x * x * 2.0 + x.exp() + x).sum().backward()
    a = np.array([1.0, 2.0, 3.0])
    np.testing.assert_allclose(x.grad.numpy(), [10.0, 20.0, 30.0] + 4 * a + np.exp(a) + 1,
                               rtol=1e-15)  # fmt: skip
    hooked = leaf([1.0, 2.0])
    seen = []
    hooked.register_hook(lambda g: seen.append(g.numpy().copy()))
    (hooked * 3.0 + hooked).sum().backward()  # a hook on the leaf sees the sum, once
    assert len(seen) == 1 and seen[0].tolist() == [4.0, 4.0]


def test_saved_tensors_are_checked_after_any_write_in_place():
    a = leaf([1.0, 2.0])
    b = a * 1
    c = b * a  # saves b
    other = F.tensor(np.zeros(2))
    other.add_(1)  # an unrelated write: the saved tensors are read with their checks
    c.sum().backward()
    np.testing.assert_array_equal(a.grad.numpy(), [2.0, 4.0])
    b2 = a * 1
    c2 = b2 * a
    other.add_(1)
    b2.mul_(3)
    with pytest.raises(AutogradError, match="MulBackward0"):
        c2.sum().backward()


def test_inplace_ops_record():
    x = leaf([1.0, 2.0])
    y = x * 3
    y.mul_(x)  # y = 3 x^2
    assert y.grad_fn.name() == "MulBackward0"
    y.sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [6.0, 12.0])
    z = leaf([1.0, 2.0, 3.0])
    w = z * 1
    w[1] = 0.0
    w.sum().backward()
    np.testing.assert_array_equal(z.grad.numpy(), [1.0, 0.0, 1.0])
    p = leaf([1.0, 2.0])
    q = F.zeros(2, dtype=F.float64)
    q[0] = (p * 2).sum()
    q.sum().backward()
    np.testing.assert_array_equal(p.grad.numpy(), [2.0, 2.0])


def test_inplace_on_a_leaf_that_requires_grad():
    w = leaf([1.0, 2.0])
    with pytest.raises(AutogradError, match="leaf that requires grad"):
        w.add_(1)
    with pytest.raises(AutogradError, match="leaf"):
        w[0] = 3.0
    with F.no_grad():
        w.add_(1)
        w[0] = 5.0
    np.testing.assert_array_equal(w.numpy(), [5.0, 3.0])
    assert w.requires_grad and w.is_leaf


def test_function():
    class Cube(F.autograd.Function):
        @staticmethod
        def forward(ctx, x, k):
            ctx.save_for_backward(x)
            ctx.k = k
            return x * x * x * k

        @staticmethod
        def backward(ctx, g):
            (x,) = ctx.saved_tensors
            return 3 * x * x * g * ctx.k, None

    x = leaf([1.0, 2.0])
    y = Cube.apply(x, 2.0)
    assert y.grad_fn.name() == "CubeBackward"
    y.sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [6.0, 24.0])
    assert F.autograd.gradcheck(lambda t: Cube.apply(t, 0.5), (leaf([0.3, 0.7]),))


def test_gradcheck_finds_a_wrong_rule():
    class Wrong(F.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            return x * x

        @staticmethod
        def backward(ctx, g):
            return g

    with pytest.raises(AutogradError, match="Jacobian mismatch for input 0"):
        F.autograd.gradcheck(Wrong.apply, (leaf([0.3, 0.7]),))
    assert not F.autograd.gradcheck(Wrong.apply, (leaf([0.3]),), raise_exception=False)


def test_tracing_a_forward_with_tensors_that_require_grad():
    x = leaf([1.0, 2.0])
    traced = F.trace(lambda t: (t * 2).exp(), (x,))
    out = traced(x)
    np.testing.assert_allclose(out.numpy(), np.exp([2.0, 4.0]))
    # its backward is a compiled graph (tests/test_joint.py)
    assert out.grad_fn.name() == "CompiledFunctionBackward"
    out.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), 2 * np.exp([2.0, 4.0]), rtol=1e-6)

    def with_backward(t):
        (t * 2).sum().backward()
        return t

    with pytest.raises(F.TraceError, match="backward"):
        F.trace(with_backward, (x,))


def test_module_zero_grad_and_requires_grad_():
    m = F.nn.Linear(3, 2)
    (m.weight.sum() * 2 + m.bias.sum() * 4).backward()
    assert m.weight.grad is not None and m.bias.grad.shape == (2,)
    np.testing.assert_allclose(m.bias.grad.numpy(), [4.0, 4.0])
    m.zero_grad(set_to_none=False)
    np.testing.assert_array_equal(m.weight.grad.numpy(), 0)
    m.zero_grad()
    assert m.weight.grad is None
    m.requires_grad_(False)
    assert not m.weight.requires_grad
    assert not (m.weight * 2).requires_grad


def test_sum_to_size():
    t = F.ones(2, 3, 4)
    assert F.sum_to_size(t, (3, 1)).shape == (3, 1)
    np.testing.assert_array_equal(t.sum_to_size(1, 4).numpy(), np.full((1, 4), 6.0))
    with pytest.raises(ShapeError, match="sum_to_size"):
        t.sum_to_size(2, 4)


def test_requires_grad_flag_of_a_non_leaf():
    x = leaf([1.0])
    y = x * 2
    with pytest.raises(AutogradError, match="leaf"):
        y.requires_grad = False


def test_graphs_hold_no_reference_cycles():
    import gc
    import weakref

    gc.disable()
    try:
        x = leaf([1.0, 2.0, 3.0])
        y = x * 2
        y[1] = 5.0  # (a node made by assignment)
        z = y.exp().sum()
        ref = weakref.ref(z.grad_fn)
        yref = weakref.ref(y)
        del y, z
        assert ref() is None and yref() is None
    finally:
        gc.enable()


def test_backward_inputs_and_einsum_limits():
    x = leaf([1.0, 2.0])
    y = leaf([3.0, 4.0])
    h = x * y
    (h * h).sum().backward(inputs=[x, h])
    assert y.grad is None
    np.testing.assert_array_equal(x.grad.numpy(), [18.0, 64.0])
    np.testing.assert_array_equal(h.grad.numpy(), [6.0, 16.0])
    m = leaf(np.eye(2))
    with pytest.raises(AutogradError, match="repeated subscript"):
        F.einsum("ii->i", m).sum().backward()


_LOW_PRECISION_CASES = {
    "exp": lambda t: t.exp(),
    "tanh": lambda t: t.tanh(),
    "sigmoid": lambda t: F.sigmoid(t),
    "gelu": lambda t: F.gelu(t),
    "mul": lambda t: t * t,
    "softmax": lambda t: F.softmax(t, -1) * F.arange(4, dtype=t.dtype, device=t.device),
    "layer_norm": lambda t: F.layer_norm(t, (4,)) * F.arange(4, dtype=t.dtype, device=t.device),
    "matmul": lambda t: t @ F.ones(4, 2, dtype=t.dtype, device=t.device),
    "mean": lambda t: t.mean(0),
}


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", ["float16", "float32"])
@pytest.mark.parametrize("name", sorted(_LOW_PRECISION_CASES))
def test_gradients_in_float32_and_float16(name, dtype, device):
    fn = _LOW_PRECISION_CASES[name]
    a = np.random.default_rng(3).uniform(-1, 1, (3, 4))
    x = leaf(a, device, dtype=np.dtype(dtype))
    fn(x).sum().backward()
    ref = leaf(a, device)
    fn(ref).sum().backward()
    assert x.grad.dtype.name == dtype and x.grad.shape == (3, 4)
    tol = 2e-2 if dtype == "float16" else 1e-5
    np.testing.assert_allclose(x.grad.cpu().numpy().astype(np.float64), ref.grad.cpu().numpy(),
                               rtol=tol, atol=tol)  # fmt: skip


def test_a_traced_forward_of_tensors_that_require_grad_still_fuses():
    x = leaf(np.linspace(-1, 1, 8))
    traced = F.trace(lambda t: (t * 2).exp().sin(), (x,))
    assert traced.kernel_count() == 1
    np.testing.assert_allclose(traced(x).numpy(), np.sin(np.exp(2 * np.linspace(-1, 1, 8))))


def test_inplace_writes_into_views_update_the_base():
    x = leaf([1.0, 2.0, 3.0, 4.0])
    s = leaf([10.0, 20.0])
    y = x * 2
    y[1:3].copy_(s * 1)  # (a view made by getitem, written in place)
    assert y.grad_fn.name() == "CopySlices"
    np.testing.assert_array_equal(y.detach().numpy(), [2.0, 10.0, 20.0, 8.0])
    (y * F.tensor([1.0, 2.0, 3.0, 4.0], dtype=F.float64)).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [2.0, 0.0, 0.0, 8.0])
    np.testing.assert_array_equal(s.grad.numpy(), [2.0, 3.0])
    z = leaf([1.0, 2.0, 3.0])
    u = z * 1
    u[0:2].fill_(0.0)
    u.sum().backward()
    np.testing.assert_array_equal(z.grad.numpy(), [0.0, 0.0, 1.0])
    w = leaf([1.0, 2.0])
    with pytest.raises(AutogradError, match="view .* of a leaf"):
        w[0:1].copy_(F.tensor([5.0], dtype=F.float64))
    with F.no_grad():
        w[0:1].copy_(F.tensor([5.0], dtype=F.float64))
    assert w.numpy()[0] == 5.0


def test_inplace_op_on_a_view():
    from fusejit.ops.registry import OPS

    if OPS["getitem"].vjp is None:
        pytest.skip("the gradient through the view's old value needs getitem's rule (pending)")
    x = leaf([1.0, 2.0, 3.0])
    y = x * 1
    y[0:2].mul_(3.0)
    y[2] += 1.0
    y.sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [3.0, 3.0, 1.0])


def test_factories_take_requires_grad():
    for t in (
        F.tensor([1.0, 2.0], requires_grad=True),
        F.zeros(2, requires_grad=True),
        F.ones(2, 3, requires_grad=True),
        F.full((2,), 3.0, requires_grad=True),
        F.randn(3, requires_grad=True),
        F.rand(3, requires_grad=True),
        F.zeros_like(F.ones(2), requires_grad=True),
        F.arange(3.0, requires_grad=True),
        F.linspace(0, 1, 4, requires_grad=True),
        F.eye(2, requires_grad=True),
        F.randn_like(F.ones(2), requires_grad=True),
        F.empty(2, requires_grad=True),
    ):
        assert t.requires_grad and t.is_leaf
    assert not F.zeros(2).requires_grad
    with pytest.raises(DTypeError, match="int64"):
        F.arange(3, requires_grad=True)
    x = F.ones(2, requires_grad=True)
    c = F.tensor(x * 2)  # a copy without history
    assert not c.requires_grad and c.grad_fn is None


def test_data_is_the_storage_without_history():
    w = F.ones(3, requires_grad=True)
    d = w.data
    assert not d.requires_grad and d.data_ptr() == w.data_ptr()
    d.mul_(2.0)  # (an update outside autograd, as optimizers written with .data do)
    np.testing.assert_array_equal(w.detach().numpy(), [2.0, 2.0, 2.0])
    w.data = F.zeros(2)
    assert w.shape == (2,) and w.requires_grad and w.is_leaf


def test_autograd_backward_of_several_tensors():
    x = leaf([1.0, 2.0])
    a, b = x * 2, x * x
    F.autograd.backward([a, b.sum()], [F.tensor([1.0, 0.0], dtype=F.float64), None])
    np.testing.assert_array_equal(x.grad.numpy(), [4.0, 4.0])
    with pytest.raises(ShapeError, match="grad_tensors"):
        F.autograd.backward([x * 2], [])
