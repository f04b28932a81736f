"""Every op of the table: differentiable ones have a derivative rule and gradient-check cases
(``tests/autograd_cases.py``), checked against central differences in float64 on each device,
with broadcast, non-contiguous and keepdim cases; a few rules twice (double backward)."""

from __future__ import annotations

import numpy as np
import pytest
from autograd_cases import CASES, PENDING
from parity_helpers import DEVICES

import fusejit as F
from fusejit.ops.registry import OPS


@pytest.mark.parametrize("name", sorted(OPS))
def test_every_op_has_a_rule_and_cases(name):
    op = OPS[name]
    if not op.differentiable:
        assert op.vjp is None, f"{name}: not differentiable, yet it has a rule"
        assert name not in CASES, f"{name}: not differentiable, yet it has gradcheck cases"
        return
    if name in PENDING:
        pytest.skip(f"{name}: its rule and cases are listed as pending in autograd_cases.py")
    assert op.vjp is not None, f"{name} is differentiable but has no vjp in its table entry"
    assert CASES.get(name), f"{name} has no gradcheck case in tests/autograd_cases.py"


def test_pending_ops_are_differentiable_entries():
    for name in PENDING:
        assert name in OPS and OPS[name].differentiable, name


def make_inputs(shapes, opts, device, seed=0):
    rng = np.random.default_rng(seed)
    lo, hi = opts.get("domain", (-1.0, 1.0))
    out = []
    for sh in shapes:
        if opts.get("noncontig") and len(sh):
            big = rng.uniform(lo, hi, (*sh[:-1], 2 * sh[-1]))
            a = big[..., ::2]
        else:
            a = np.asarray(rng.uniform(lo, hi, sh))
        t = F.from_numpy(a)
        if device != "cpu":  # (a strided leaf on the GPU: the device array of the big one)
            b = F.from_numpy(big).to(device) if opts.get("noncontig") and len(sh) else None
            t = t.to(device) if b is None else F.Tensor._wrap(b._data[..., ::2], b.dtype, b.device)
        out.append(t.requires_grad_())
    return out


_IDS = [(n, i) for n in sorted(CASES) for i in range(len(CASES[n]))]


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("name,i", _IDS, ids=[f"{n}-{i}" for n, i in _IDS])
def test_gradcheck(name, i, device):
    c = CASES[name][i]
    fn, shapes, opts = c if len(c) == 3 else (*c, {})
    inputs = make_inputs(shapes, opts, device, seed=i)
    if opts.get("noncontig") and device == "cpu":
        assert any(not t.is_contiguous() for t in inputs if t.ndim)
    assert F.autograd.gradcheck(fn, inputs)
    # the op recorded a node named after it
    out = fn(*inputs)
    out = out if isinstance(out, F.Tensor) else out[0]
    assert out.grad_fn is not None


def _gradgrad(fn, x, device):
    """gradcheck of x -> d(sum(fn(x) * w))/dx: the rule's own gradient (double backward)."""
    w = F.tensor(np.linspace(0.5, 1.5, fn(x).numel()).reshape(fn(x).shape), dtype=F.float64,
                 device=device)  # fmt: skip

    def first(t):
        (g,) = F.autograd.grad((fn(t) * w).sum(), t, create_graph=True)
        return g

    assert first(x).requires_grad
    assert F.autograd.gradcheck(first, (x,))


@pytest.mark.parametrize("device", DEVICES)
def test_double_backward(device):
    rng = np.random.default_rng(1)

    def leaf(*shape):
        return F.tensor(rng.uniform(-1, 1, shape), dtype=F.float64, device=device).requires_grad_()

    _gradgrad(F.sin, leaf(3, 4), device)
    y = leaf(3, 4)
    _gradgrad(lambda t: t * t * y, leaf(3, 4), device)
    _gradgrad(lambda t: F.softmax(t, 1), leaf(3, 4), device)
    _gradgrad(lambda t: F.tanh(t).exp(), leaf(5), device)


@pytest.mark.parametrize("device", DEVICES)
def test_double_backward_matmul(device):
    if OPS["permute"].vjp is None:
        pytest.skip("matmul's rule transposes: the movement ops' rules are pending")
    rng = np.random.default_rng(2)

    def leaf(*shape):
        return F.tensor(rng.uniform(-1, 1, shape), dtype=F.float64, device=device).requires_grad_()

    b = leaf(4, 2)
    _gradgrad(lambda t: (t @ b) * (t @ b), leaf(3, 4), device)
