"""Gradients through views of tensors written in place after the view was made: the view sees
the write (its values change) and so does its gradient (PyTorch's view replay). Each case is
checked against central differences (``fusejit.autograd.gradcheck``) or PyTorch's values."""

import numpy as np
import pytest
from parity_helpers import DEVICES, assert_close, assert_traced, host, on

import fusejit as F
from fusejit.autograd import gradcheck
from fusejit.base.errors import AutogradError, DeviceError, ShapeError


def rnd(*shape, seed=0):
    return np.random.default_rng(seed).uniform(0.5, 1.5, shape)


def leaf(a, device="cpu"):
    return on(a, device).requires_grad_()


# ---- each case: f(x) with x a float64 (3, 4) leaf; views taken before writes -------------------
def reshape_base_write(x):
    a = x * 1
    b = a.reshape(12)
    a.mul_(x)
    return b


def view_base_write(x):
    a = x * 1
    b = a.view(4, 3)
    a.add_(x * x)
    return b * 1


def getitem_base_write(x):
    a = x * 1
    b = a[1:, ::2]
    a.mul_(x)
    return b.sum() * 3  # (a value the gradient must recompute through)


def transpose_base_write(x):
    a = x * 1
    b = a.t()
    a.mul_(x.exp())
    return b


def permute_base_write(x):
    a = (x * 1).reshape(2, 3, 2)
    b = a.permute(2, 0, 1)
    a.mul_(a * 1)
    return b


def expand_base_write(x):
    a = x[:1] * 1
    b = a.expand(5, 4)
    a.mul_(x[2:])
    return b * 1


def diagonal_base_write(x):
    a = x[:, :3] * 1
    b = a.diagonal()
    a.mul_(x[:, 1:])
    return b


def chain_base_write(x):
    a = x * 1
    b = a.reshape(12)[2:10].reshape(2, 4).t()
    a.mul_(x)
    return b


def write_through_view_read_sibling(x):
    a = x * 1
    b = a[0]
    c = a.t()
    b.mul_(x[1])
    return c, a


def write_through_view_then_base(x):
    a = x * 1
    b = a[1]
    b.mul_(x[2])
    a.mul_(x)
    return b


def write_through_chain_read_other_chain(x):
    a = x * 1
    b = a.reshape(12)[3:9]
    c = a.t()[1:3]
    b.mul_(x.reshape(12)[:6])
    return c, b


def setitem_on_base(x):
    a = x * 1
    b = a.reshape(12)
    a[0, 1] = x[1, 2] * 3
    return b.sum() * 3


def setitem_through_view(x):
    a = x * 1
    c = a.reshape(12)
    b = a[2]
    b[1:3] = x[0, :2] ** 2
    return c


def copy_into_view(x):
    a = x * 1
    c = a.reshape(12)
    a[1].copy_(x[0] * x[0])
    return c


def fill_view(x):
    a = x * 1
    c = a.t()
    a[:, 1].fill_(2.0)
    return c * x.t()


def double_writes(x):
    a = x * 1
    b = a.reshape(12)
    a.mul_(x)
    a.add_(x.sin())
    b.mul_(2)
    a.mul_(x)
    return b


def view_after_write(x):
    a = x * 1
    b = a.reshape(12)
    a.mul_(x)
    c = b[:5]  # (made from the stale view)
    a.add_(x)
    return c, b.sum()


def write_through_view_read_transposed(x):
    a = x * 1
    s = a.t()[1:]  # (its gradient reaches the base transposed: not contiguous)
    b = a.view(4, 3)
    b.mul_(x.sum())
    return s * 1, b * 1


def views_of_split_results_base_write(x):
    a = x * 1
    p, q = a.split(2)
    r = a.unbind(1)[2]
    a.mul_(x)
    return p, q * 2, r


CASES = [
    write_through_view_read_transposed, views_of_split_results_base_write,
    reshape_base_write, view_base_write, getitem_base_write, transpose_base_write,
    permute_base_write, expand_base_write, diagonal_base_write, chain_base_write,
    write_through_view_read_sibling, write_through_view_then_base,
    write_through_chain_read_other_chain, setitem_on_base, setitem_through_view, copy_into_view,
    fill_view, double_writes, view_after_write,
]  # fmt: skip


@pytest.mark.parametrize("case", CASES, ids=lambda f: f.__name__)
def test_gradient_matches_finite_differences(case):
    x = leaf(rnd(3, 4))
    assert gradcheck(case, (x,))


def _program(seed: int, n: int) -> list:
    """A random sequence of ``n`` steps: views of the tensors so far, and in-place writes
    (``mul_``, ``add_``, setitem) into them."""
    rng = np.random.default_rng(seed)
    steps, shapes = [], [(3, 4)]
    for _ in range(n):
        kind, k = int(rng.integers(0, 7)), int(rng.integers(0, len(shapes)))
        sh, c = shapes[k], float(rng.uniform(0.5, 1.5))
        if kind == 0:
            steps.append(("reshape", k, c))
            shapes.append((int(np.prod(sh)),))
        elif kind == 1 and sh[0] > 1:
            steps.append(("tail", k, c))
            shapes.append((sh[0] - 1, *sh[1:]))
        elif kind == 2 and len(sh) == 2:
            steps.append(("t", k, c))
            shapes.append(sh[::-1])
        elif kind == 3 and len(sh) == 2 and sh[1] > 1:
            steps.append(("step2", k, c))
            shapes.append((sh[0], (sh[1] + 1) // 2))
        elif kind in (4, 5, 6):
            steps.append((("mul_", "add_", "setitem")[kind - 4], k, c))
    return steps


def _run_program(steps, x):
    ts = [x * 1]
    for what, k, c in steps:
        t = ts[k]
        if what == "reshape":
            ts.append(t.reshape(-1))
        elif what == "tail":
            ts.append(t[1:])
        elif what == "t":
            ts.append(t.t())
        elif what == "step2":
            ts.append(t[:, ::2])
        elif what == "mul_":
            t.mul_(x.sum() * c)
        elif what == "add_":
            t.add_(x.mean().exp() * c)
        else:
            t[0] = x[0, 0] * c
    return tuple(u * (i + 1.0) for i, u in enumerate(ts))


@pytest.mark.parametrize("seed", range(16))
def test_random_views_and_writes_match_finite_differences(seed):
    steps = _program(seed, 3 + seed % 6)
    x = leaf(rnd(3, 4, seed=seed))
    assert gradcheck(lambda t: _run_program(steps, t), (x,))


def _np_case(name, x):
    """The forward values of some cases, written in numpy."""
    a = x.copy()
    if name == "reshape_base_write":
        return a.reshape(12) * x.reshape(12)
    if name == "double_writes":
        a = (a * x + np.sin(x)) * 2 * x
        return a.reshape(12)
    if name == "setitem_on_base":
        a[0, 1] = x[1, 2] * 3
        return np.asarray(a.sum() * 3)
    if name == "chain_base_write":
        return (a * x).reshape(12)[2:10].reshape(2, 4).T
    raise AssertionError(name)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize(
    "case", [reshape_base_write, double_writes, setitem_on_base, chain_base_write],
    ids=lambda f: f.__name__,
)  # fmt: skip
def test_forward_values_see_the_writes(case, device):
    xn = rnd(3, 4)
    x = leaf(xn, device)
    out = case(x)
    assert_close(out, _np_case(case.__name__, xn))
    # and the gradient on the device is the cpu's (checked above against finite differences)
    out.sum().backward()
    xc = leaf(xn)
    case(xc).sum().backward()
    assert_close(x.grad, host(xc.grad))


@pytest.mark.parametrize("device", DEVICES)
def test_reported_case_pytorch_values(device):
    # torch: x.grad is all 2 (b's values are doubled, and so is its gradient)
    x = F.ones(2, 3, dtype=F.float64, requires_grad=True, device=device)
    a = x * 1
    b = a.reshape(6)
    a.mul_(2)
    assert b.tolist() == [2.0] * 6
    assert b.grad_fn.name() == "ReshapeBackward0"
    b.backward(F.ones(6, dtype=F.float64, device=device))
    assert x.grad.tolist() == [[2.0] * 3] * 2


def test_slices_of_a_transposed_base_pytorch_values():
    # torch: x = ones(2, 3); a = x * 1; b = a[:, 1:]; c = a.t(); b.mul_(3); d = c[0]
    # (c.sum() + d.sum()).backward() -> x.grad == [[2, 3, 3], [2, 3, 3]]
    x = F.ones(2, 3, dtype=F.float64, requires_grad=True)
    a = x * 1
    b = a[:, 1:]
    c = a.t()
    b.mul_(3)
    d = c[0]
    (c.sum() + d.sum()).backward()
    assert x.grad.tolist() == [[2.0, 3.0, 3.0], [2.0, 3.0, 3.0]]


def test_retained_gradient_of_a_view_follows_the_write():
    x = leaf(rnd(2, 3))
    a = x * 1
    b = a.reshape(6)
    b.retain_grad()
    a.mul_(3)
    (b * 2).sum().backward()
    assert_close(b.grad, np.full(6, 2.0))
    assert_close(x.grad, np.full((2, 3), 6.0))


def test_no_grad_write_keeps_the_graph_but_bumps_the_version():
    # torch: the write is not recorded: b's gradient is the graph's (1), its values are doubled
    x = F.ones(2, 3, dtype=F.float64, requires_grad=True)
    a = x * 1
    b = a.reshape(6)
    v = b._version
    with F.no_grad():
        a.mul_(2)
    assert b._version == v + 1 and a._version == v + 1
    assert b.tolist() == [2.0] * 6
    b.backward(F.ones(6, dtype=F.float64))
    assert x.grad.tolist() == [[1.0] * 3] * 2


def test_no_grad_write_into_a_saved_view_raises_on_backward():
    x = leaf(rnd(2, 3))
    a = x * 1
    b = a.reshape(6)
    y = b * b  # (keeps b for its gradient)
    with F.no_grad():
        a.mul_(2)
    with pytest.raises(AutogradError, match="MulBackward0.*modified by an in-place"):
        y.sum().backward()
    # and through the base, a view written: a graph keeping the base raises too
    x = leaf(rnd(2, 3))
    a = x * 1
    y = a * a
    with F.no_grad():
        a[0].fill_(0.0)
    with pytest.raises(AutogradError, match="version"):
        y.sum().backward()


def test_write_into_a_view_of_a_leaf_still_raises():
    x = leaf(rnd(2, 3))
    b = x.reshape(6)
    with pytest.raises(AutogradError, match="leaf"):
        b.mul_(2)
    with F.no_grad():
        b.mul_(2)  # (allowed: x's values change, its history does not)
    assert_close(x.detach(), rnd(2, 3) * 2)


def test_views_of_a_base_overwritten_by_a_constant():
    x = leaf(rnd(2, 3))
    a = x * 1
    b = a.reshape(6)
    a.fill_(1.0)  # (a is a constant now, and so is b: no gradient reaches x through them)
    assert b.grad_fn is None and b.tolist() == [1.0] * 6
    (b.reshape(2, 3) * x).sum().backward()
    assert_close(x.grad, np.ones((2, 3)))


def test_traced_function_with_views_is_unaffected():
    # (the replay happens only in eager autograd: a traced graph of views records no history)
    def f(t):
        return t.reshape(6)[1:4] * 2

    assert_traced(f, on(rnd(2, 3)))


# ---- cat of a 1-D empty tensor with tensors of other shapes (PyTorch's legacy rule) -----------
@pytest.mark.parametrize("device", DEVICES)
def test_cat_leaves_out_1d_empty_tensors(device):
    x = rnd(2, 3)
    e = on(np.zeros(0, np.float32), device)
    t = on(x, device)
    assert_close(F.cat([e, t]), x)
    assert_close(F.cat([t, e, t]), np.concatenate([x, x]))
    assert_close(F.cat([e, t, e, t], dim=-1), np.concatenate([x, x], axis=1))
    # its dtype still promotes (torch: float32 empty + int64 -> float32)
    r = F.cat([e, on(np.ones((2, 2), np.int64), device)])
    assert_close(r, np.ones((2, 2), np.float32))
    # all 1-D empty: an empty result
    assert F.cat([e, e]).shape == (0,)
    # an empty tensor of another shape is not left out
    with pytest.raises(ShapeError, match="cat"):
        F.cat([on(np.zeros((0, 2)), device), t])
    with pytest.raises(ShapeError, match="cat"):
        F.cat([on(np.zeros(3), device), t])


def test_cat_empty_leaves_out_gradient_and_trace():
    x = leaf(rnd(2, 3))
    e = F.empty(0, dtype=F.float64)
    y = F.cat([e, x, x])
    y.sum().backward()
    assert_close(x.grad, np.full((2, 3), 2.0))
    assert_traced(lambda a, b: F.cat([a, b]) * 2, on(np.zeros(0)), on(rnd(2, 3)))


def test_cat_empty_on_another_device_raises():
    if not F.is_cuda_available():
        pytest.skip("needs a GPU")
    with pytest.raises(DeviceError, match="cat"):
        F.cat([F.empty(0), F.ones(2, 2, device="cuda")])


def test_a_long_chain_of_views_is_replayed_without_recursion():
    x = leaf(rnd(4))
    a = x * 1
    y = a
    for _ in range(1500):  # (deeper than Python's recursion limit)
        y = y[:]
    a.mul_(x)
    (y * 2).sum().backward()
    assert_close(x.grad, 4 * rnd(4))


def stale_view_as_setitem_value(x):
    a = x * 1
    b = a[0]
    a.mul_(x)
    c = x[1:] * 2
    c[0] = b
    return c


def stale_view_as_copy_source(x):
    a = x * 1
    b = a[1]
    a.add_(x.sin())
    c = x[2] * 1
    c.copy_(b)
    return c * x[0]


class _Square(F.autograd.Function):
    @staticmethod
    def forward(ctx, t):
        ctx.save_for_backward(t.clone())
        return t * t

    @staticmethod
    def backward(ctx, g):
        (t,) = ctx.saved_tensors
        return 2 * t * g


def stale_view_into_a_custom_function(x):
    a = x * 1
    b = a.t()
    a.mul_(x)
    return _Square.apply(b)


@pytest.mark.parametrize(
    "case",
    [stale_view_as_setitem_value, stale_view_as_copy_source, stale_view_into_a_custom_function],
    ids=lambda f: f.__name__,
)  # fmt: skip
def test_stale_views_read_by_writes_and_custom_functions(case):
    assert gradcheck(case, (leaf(rnd(3, 4)),))


def test_writing_into_one_of_several_views_raises():
    # torch: "Output 0 of SplitBackward0 is a view and is being modified inplace. This view is
    # the output of a function that returns multiple views..."
    x = leaf(rnd(4, 3))
    a = x * 1
    for v in (a.split(2)[1], a.chunk(3, 1)[0], a.unbind(0)[1], a.split(2)[0][1:]):
        with pytest.raises(AutogradError, match="mul_: .* one of the .* results of split"):
            v.mul_(2)
    with F.no_grad():
        a.split(2)[1].mul_(2)  # (allowed: nothing is recorded)
    assert_close(a.detach(), np.concatenate([rnd(4, 3)[:2], 2 * rnd(4, 3)[2:]]))
