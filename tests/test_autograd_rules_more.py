"""Derivative rules (``OpDef.vjp``) of the movement, indexing, sorting, statistics, linalg, fft
and complex entries of the op table.

Each rule is checked on its own against float64 central differences of the op it belongs to:
the public function runs, the table calls it makes are caught at ``dispatch.apply``, and for
each call of the op the rule's gradients (for a random gradient of the results) are compared
with the numeric derivative of ``sum(result * gradient)``. Rules are written with public
functions, so a backward pass traces: a few are checked under ``fusejit.trace`` too. The
end-to-end checks through the autograd engine (``backward``, ``gradcheck``, double backward)
are at the end of the file.
"""

from __future__ import annotations

import contextlib
import types

import numpy as np
import pytest
from parity_helpers import DEVICES, assert_close, host, on

import fusejit
import fusejit as F
from fusejit.eager import dispatch
from fusejit.ops import complex_ops, fft, indexing, movement, sorting, statistics
from fusejit.ops.registry import OPS

RNG = np.random.default_rng(19)


def rnd(*shape):
    return RNG.standard_normal(shape)


@contextlib.contextmanager
def _caught():
    calls = []
    orig = dispatch.apply

    def apply(op, tensors, attrs):
        r = orig(op, tensors, attrs)
        calls.append((op, tuple(tensors), dict(attrs), r if isinstance(r, tuple) else (r,)))
        return r

    dispatch.apply = apply
    try:
        yield calls
    finally:
        dispatch.apply = orig


def _run(op, inputs, attrs):
    r = dispatch.apply(op, tuple(inputs), attrs)
    return r if isinstance(r, tuple) else (r,)


def _grads_of(outs, device):
    return [on(rnd(*o.shape), device).to(o.dtype) if o.dtype.is_floating_point else None
            for o in outs]  # fmt: skip


def _fold(a):
    """The derivative of a function that reads only the lower triangle of a symmetric matrix,
    from the symmetric gradient."""
    return np.tril(a + np.swapaxes(a, -1, -2)) - np.tril(np.triu(a))


def check_rule(fn, *args, op: str, device: str = "cpu", sym: bool = False, eps: float = 1e-6,
               atol: float = 1e-5, rtol: float = 1e-3) -> int:  # fmt: skip
    """Run ``fn(*args)`` (numpy float arrays become float64 tensors on ``device``) and check
    the rule of each call of ``op`` it makes against central differences; returns the number
    of calls checked."""
    args = [on(a, device) if isinstance(a, np.ndarray) else a for a in args]
    with _caught() as calls:
        fn(*args)
    calls = [c for c in calls if c[0].name == op]
    assert calls, f"{op} was not called"
    for o, ins, attrs, outs in calls:
        gs = _grads_of(outs, device)
        ctx = types.SimpleNamespace(inputs=ins, outputs=outs, attrs=attrs)
        got = o.vjp(F, ctx, *gs)
        assert len(got) == len(ins), f"{op}: {len(got)} gradients for {len(ins)} operands"

        def loss(xs, o=o, attrs=attrs, gs=gs):
            r = _run(o, xs, attrs)
            return sum(float((host(a) * host(g)).sum()) for a, g in zip(r, gs) if g is not None)

        for k, x in enumerate(ins):
            if not x.dtype.is_floating_point:
                assert got[k] is None, f"{op}: a gradient for the integer operand {k}"
                continue
            base = host(x).astype(np.float64)
            num = np.zeros(base.shape)
            for i in np.ndindex(base.shape):
                for sign in (1, -1):
                    b = base.copy()
                    b[i] += sign * eps
                    xs = list(ins)
                    xs[k] = on(b, device).to(x.dtype)
                    num[i] += sign * loss(xs) / (2 * eps)
            assert got[k] is not None, f"{op}: no gradient for operand {k}"
            assert got[k].shape == x.shape and got[k].dtype is x.dtype, (op, k, got[k].shape)
            assert got[k].device == x.device
            an = host(got[k])
            if sym:
                an = _fold(an)
            np.testing.assert_allclose(an, num, atol=atol, rtol=rtol, err_msg=f"{op} {k} {attrs}")
    return len(calls)


def check_rule_traced(fn, *args, op: str, device: str = "cpu"):
    """The rule of the first call of ``op`` in ``fn(*args)`` traces: the traced backward (op
    and rule) gives eager's gradients."""
    args = [on(a, device) if isinstance(a, np.ndarray) else a for a in args]
    with _caught() as calls:
        fn(*args)
    o, ins, attrs, outs = next(c for c in calls if c[0].name == op)
    gs = [g for g in _grads_of(outs, device) if g is not None]
    n = len(ins)

    def backward(*vals):
        xs, g = vals[:n], vals[n:]
        r = _run(o, xs, attrs)
        it = iter(g)
        grads = [next(it) if t.dtype.is_floating_point else None for t in r]
        ctx = types.SimpleNamespace(inputs=xs, outputs=r, attrs=attrs)
        return tuple(t for t in o.vjp(F, ctx, *grads) if t is not None)

    traced = fusejit.trace(backward, (*ins, *gs))
    want, got = backward(*ins, *gs), traced(*ins, *gs)
    for w, t in zip(want, got, strict=True):
        assert_close(t, host(w), ulps=8, what=f"traced rule of {op}")


# --- the table: every entry of these modules has a rule or says it has none


MY_MODULES = (movement, indexing, sorting, statistics, fft, complex_ops)
NOT_DIFFERENTIABLE = {"one_hot", "searchsorted", "histc", "linalg_matrix_rank", "real", "imag",
                      "conj", "view_as_real", "view_as_complex",
                      "detach"}  # (a traced detach(): it stops gradients)  # fmt: skip


def _entries():
    names = set()
    for m in MY_MODULES:
        names |= {v.name for v in vars(m).values() if getattr(v, "name", None) in OPS
                  and OPS[v.name] is v}  # fmt: skip
    names |= {k for k in OPS if k.startswith("linalg_")}
    return sorted(names)


@pytest.mark.parametrize("name", _entries())
def test_every_entry_has_a_rule_or_none(name):
    op = OPS[name]
    if name in NOT_DIFFERENTIABLE or op.kind == "fft":
        assert not op.differentiable and op.vjp is None, name
    else:
        assert op.differentiable and callable(op.vjp), f"{name}: no derivative rule"


# --- movement


@pytest.mark.parametrize("device", DEVICES)
def test_views_and_copies(device):
    x = rnd(3, 4, 5)
    assert check_rule(lambda a: a.reshape(4, 15), x, op="reshape", device=device)
    assert check_rule(lambda a: a.flatten(1), x, op="reshape", device=device)
    assert check_rule(lambda a: a.unsqueeze(-1).squeeze(3), x, op="reshape", device=device)
    assert check_rule(lambda a: a.view(60), x, op="view", device=device)
    assert check_rule(lambda a: a.permute(2, 0, 1), x, op="permute", device=device)
    assert check_rule(lambda a: a.transpose(-1, 0), x, op="permute", device=device)
    assert check_rule(lambda a: a.expand(2, 3, 4, 5), rnd(1, 4, 1), op="expand", device=device)
    assert check_rule(lambda a: a.contiguous(), on(x, device).mT, op="contiguous", device=device)
    assert check_rule(lambda a: a.clone(), x, op="clone", device=device)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize(
    "index",
    [(slice(None), 1), (Ellipsis, slice(1, None, 2)), (None, 0, slice(0, 3), None, -1),
     (1, 2, 3), (slice(1, 3), None, slice(None, None, 3)), (Ellipsis,), (slice(5, 7),),
     (slice(-2, None), Ellipsis, slice(None, -1, 4))],
)  # fmt: skip
def test_getitem_basic(device, index):
    assert check_rule(lambda a: a[index], rnd(3, 4, 5), op="getitem", device=device)


@pytest.mark.parametrize("device", DEVICES)
def test_getitem_noncontiguous_and_narrow(device):
    x = on(rnd(4, 6), device).mT  # (6, 4), a transposed view
    assert check_rule(lambda a: a[1::2, ::3], x, op="getitem", device=device)
    assert check_rule(lambda a: a.narrow(1, 1, 2), rnd(3, 4), op="getitem", device=device)
    assert check_rule(lambda a: a[0], rnd(5), op="getitem", device=device)  # 0-d result


@pytest.mark.parametrize("device", DEVICES)
def test_joins_and_splits(device):
    x = rnd(3, 4, 5)
    ints = on(np.ones((3, 1, 5), np.int32), device)
    assert check_rule(lambda a, b: F.cat([a, b, ints], 1), x, rnd(3, 2, 5), op="cat",
                      device=device)  # fmt: skip
    assert check_rule(lambda a, b: F.stack([a, b], -1), x, rnd(3, 4, 5), op="stack",
                      device=device)  # fmt: skip
    assert check_rule(lambda a: F.split(a, [1, 3], 1), x, op="split", device=device)
    assert check_rule(lambda a: F.chunk(a, 2, -1), x, op="split", device=device)
    assert check_rule(lambda a: F.unbind(a, 0), x, op="split", device=device)


@pytest.mark.parametrize("device", DEVICES)
def test_split_with_unused_results(device):
    x = on(rnd(6, 2), device)
    parts = F.split(x, 2, 0)
    ctx = types.SimpleNamespace(inputs=(x,), outputs=parts, attrs={"sections": (2, 2, 2),
                                                                    "dim": 0})  # fmt: skip
    g = on(np.ones((2, 2)), device)
    (gx,) = OPS["split"].vjp(F, ctx, None, g, None)
    assert_close(gx, np.array([[0.0, 0], [0, 0], [1, 1], [1, 1], [0, 0], [0, 0]]))
    assert OPS["split"].vjp(F, ctx, None, None, None) == (None,)


@pytest.mark.parametrize("device", DEVICES)
def test_cat_of_mixed_dtypes_gives_each_its_dtype(device):
    a, b = on(rnd(2, 3), device).to(F.float32), on(rnd(1, 3), device)
    out = F.cat([a, b])
    attrs = {"dim": 0, "dtype": F.float64}
    ctx = types.SimpleNamespace(inputs=(a, b), outputs=(out,), attrs=attrs)
    ga, gb = OPS["cat"].vjp(F, ctx, F.ones_like(out))
    assert ga.dtype is F.float32 and ga.shape == (2, 3)
    assert gb.dtype is F.float64 and gb.shape == (1, 3)


@pytest.mark.parametrize("device", DEVICES)
def test_reordering_ops(device):
    x = rnd(3, 4, 5)
    assert check_rule(lambda a: F.flip(a, (0, -1)), x, op="flip", device=device)
    assert check_rule(lambda a: F.roll(a, (1, -2), (0, 2)), x, op="roll", device=device)
    assert check_rule(lambda a: F.roll(a, 3), x, op="roll", device=device)
    assert check_rule(lambda a: a.repeat(2, 1, 1, 3), x, op="tile", device=device)
    assert check_rule(lambda a: F.tile(a, (2,)), x, op="tile", device=device)
    assert check_rule(lambda a: F.tril(a, 1), x, op="tril", device=device)
    assert check_rule(lambda a: F.triu(a, -1), x, op="triu", device=device)
    assert check_rule(lambda a: a.mT.triu(), x, op="triu", device=device)


@pytest.mark.parametrize("device", DEVICES)
def test_diagonals(device):
    x = rnd(3, 4, 5)
    assert check_rule(lambda a: F.diag(a, 1), rnd(4), op="diag", device=device)
    assert check_rule(lambda a: F.diag(a, -1), rnd(3, 5), op="diag", device=device)
    assert check_rule(lambda a: F.diag(a, 2), rnd(5, 3), op="diag", device=device)
    assert check_rule(lambda a: F.diagonal(a, 1, 0, 2), x, op="diagonal", device=device)
    assert check_rule(lambda a: F.diagonal(a, -2, -1, 1), x, op="diagonal", device=device)
    assert check_rule(lambda a: F.diag_embed(a, 1, 0, 2), x, op="diag_embed", device=device)
    assert check_rule(lambda a: F.diag_embed(a), rnd(2, 3), op="diag_embed", device=device)


@pytest.mark.parametrize("device", DEVICES)
def test_index_select_and_gather_repeated_indices(device):
    x = rnd(3, 4, 5)
    idx = on(np.array([0, 2, 0, 3, 0]), device)
    assert check_rule(lambda a: F.index_select(a, 1, idx), x, op="index_select", device=device)
    g = on(RNG.integers(0, 5, (2, 3, 4)), device)
    assert check_rule(lambda a: F.gather(a, -1, g), x, op="gather", device=device)
    assert check_rule(lambda a: F.take_along_dim(a, g[:1, :1], 2), x, op="gather",
                      device=device)  # fmt: skip
    assert check_rule(lambda a: F.take(a, on(np.array([[0, 4], [19, 4]]), device)), rnd(4, 5),
                      op="index_select", device=device)  # fmt: skip


@pytest.mark.parametrize("device", DEVICES)
def test_advanced_getitem_records_when_grad_is_needed(device):
    a = rnd(3, 4)
    x = on(a, device).requires_grad_()
    i = on(np.array([2, 0, 2]), device)
    with _caught() as calls:
        r = x[i, 1:]
    assert [c[0].name for c in calls if c[0].name == "index_select"] == ["index_select"]
    assert_close(r, a[np.array([2, 0, 2]), 1:], exact=True)
    m = rnd(3, 4) > 0
    assert_close(x[on(m, device)], a[m], exact=True)
    assert_close(x[..., [0, 3]], a[..., [0, 3]], exact=True)
    assert_close(x[on(np.array([[1], [0]]), device), on(np.array([3, 1]), device)],
                 a[np.array([[1], [0]]), np.array([3, 1])], exact=True)  # fmt: skip
    with F.no_grad(), _caught() as calls:
        x[i]
    assert not calls  # (nothing to record: plain numpy / cupy indexing)


# --- indexing (scatter family, index_put, masked_scatter)

IDX = np.array([[0, 1, 0, 3], [3, 3, 1, 0], [0, 0, 0, 0]])  # repeated places


@pytest.mark.parametrize("device", DEVICES)
def test_scatter_set_and_value(device):
    i = on(np.array([[0, 2], [1, 4], [3, 0]]), device)
    assert check_rule(lambda a, b: F.scatter(a, 1, i, b), rnd(4, 5), rnd(3, 5), op="scatter",
                      device=device)  # fmt: skip
    j = on(IDX, device)
    assert check_rule(lambda a: F.scatter(a, 0, j, 2.5), rnd(4, 5), op="scatter", device=device)
    assert check_rule(lambda a: F.scatter(a, 0, j, 2.5, reduce="multiply"), rnd(4, 5),
                      op="scatter", device=device)  # fmt: skip
    assert check_rule(lambda a, b: F.scatter_add(a, 0, j, b), rnd(4, 5), rnd(3, 5),
                      op="scatter", device=device)  # fmt: skip


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("reduce", ["sum", "mean", "prod", "amax", "amin"])
@pytest.mark.parametrize("include_self", [True, False])
def test_scatter_reduce(device, reduce, include_self):
    j = on(IDX, device)
    assert check_rule(
        lambda a, b: F.scatter_reduce(a, 0, j, b, reduce, include_self=include_self),
        rnd(4, 5), rnd(3, 6), op="scatter", device=device,
    )  # fmt: skip


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("include_self", [True, False])
def test_scatter_reduce_prod_with_zeros(device, include_self):
    x, s = rnd(4, 5), rnd(3, 5)
    x[1, 1] = 0.0
    s[0, 0] = s[1, 1] = 0.0  # one zero among a place's factors
    s[0, 3] = s[1, 3] = 0.0  # two zeros
    j = on(IDX, device)
    assert check_rule(
        lambda a, b: F.scatter_reduce(a, 0, j, b, "prod", include_self=include_self),
        x, s, op="scatter", device=device,
    )  # fmt: skip


@pytest.mark.parametrize("device", DEVICES)
def test_index_ops(device):
    x, s = rnd(4, 5), rnd(3, 5)
    assert check_rule(lambda a, b: F.index_add(a, 0, on(np.array([1, 1, 3]), device), b,
                                               alpha=2), x, s, op="scatter",
                      device=device)  # fmt: skip
    assert check_rule(lambda a, b: F.index_copy(a, 0, on(np.array([2, 0, 3]), device), b), x, s,
                      op="scatter", device=device)  # fmt: skip
    assert check_rule(lambda a: F.index_fill(a, 1, on(np.array([0, -1]), device), 3.0), x,
                      op="scatter", device=device)  # fmt: skip


@pytest.mark.parametrize("device", DEVICES)
def test_index_put(device):
    x = rnd(4, 5)
    i = (on(np.array([0, 1, 0]), device), on(np.array([1, 0, 1]), device))
    assert check_rule(lambda a, b: F.index_put(a, i, b, accumulate=True), x, rnd(3),
                      op="index_put", device=device)  # fmt: skip
    k = (on(np.array([0, 1, -1]), device),)
    assert check_rule(lambda a, b: F.index_put(a, k, b), x, rnd(1, 5), op="index_put",
                      device=device)  # fmt: skip
    b = (on(np.array([[0], [2]]), device), on(np.array([1, -2, 0]), device))  # broadcast
    assert check_rule(lambda a, v: F.index_put(a, b, v), x, np.array(1.5), op="index_put",
                      device=device)  # fmt: skip


@pytest.mark.parametrize("device", DEVICES)
def test_masked_scatter(device):
    m = on(np.array([True, False, True, True, False]), device)
    assert check_rule(lambda a, s: F.masked_scatter(a, m, s), rnd(4, 5), rnd(20),
                      op="masked_scatter", device=device)  # fmt: skip
    mb = on(RNG.random((3, 4, 5)) > 0.5, device)  # input broadcast against the mask
    assert check_rule(lambda a, s: F.masked_scatter(a, mb, s), rnd(4, 1), rnd(70),
                      op="masked_scatter", device=device)  # fmt: skip


# --- sorting and statistics


@pytest.mark.parametrize("device", DEVICES)
def test_sort_and_selections(device):
    x = rnd(3, 4, 5)
    assert check_rule(lambda a: F.sort(a, 1), x, op="sort", device=device)
    assert check_rule(lambda a: F.sort(a, -1, descending=True), x, op="sort", device=device)
    assert check_rule(lambda a: F.topk(a, 2, 0), x, op="sort", device=device)
    assert check_rule(lambda a: F.median(a, 1), x, op="median", device=device)
    assert check_rule(lambda a: F.median(a, 2, keepdim=True), x, op="median", device=device)
    assert check_rule(lambda a: F.median(a), x, op="median", device=device)
    assert check_rule(lambda a: F.nanmedian(a, 0), x, op="median", device=device)
    assert check_rule(lambda a: F.kthvalue(a, 2, 0), x, op="kthvalue", device=device)
    assert check_rule(lambda a: F.cummax(a, 1), x, op="cummax", device=device)
    assert check_rule(lambda a: F.cummin(a, -1), x, op="cummin", device=device)


@pytest.mark.parametrize("device", DEVICES)
def test_mode_gradient_goes_to_its_index(device):
    x = on(np.array([[1.0, 2.0, 1.0, 3.0], [4.0, 4.0, 5.0, 5.0]]), device)
    v, i = F.mode(x, 1)
    ctx = types.SimpleNamespace(inputs=(x,), outputs=(v, i), attrs={"dim": 1, "keepdim": False})
    (gx,) = OPS["mode"].vjp(F, ctx, on(np.array([10.0, 20.0]), device), None)
    want = np.zeros((2, 4))
    want[0, host(i)[0]], want[1, host(i)[1]] = 10.0, 20.0
    assert_close(gx, want)


@pytest.mark.parametrize("device", DEVICES)
def test_logcumsumexp(device):
    x = rnd(3, 4, 5)
    assert check_rule(lambda a: F.logcumsumexp(a, 1), x, op="logcumsumexp", device=device)
    assert check_rule(lambda a: F.logcumsumexp(a * 50, 0), x, op="logcumsumexp", device=device)


@pytest.mark.parametrize("device", DEVICES)
def test_logcumsumexp_gradient_does_not_overflow(device):
    x = on(np.array([800.0, 0.0, -800.0]), device)
    out = F.logcumsumexp(x, 0)
    ctx = types.SimpleNamespace(inputs=(x,), outputs=(out,), attrs={"dim": 0})
    (g,) = OPS["logcumsumexp"].vjp(F, ctx, on(np.array([1.0, -2.0, 3.0]), device))
    # (exp(800) overflows: the rule never forms it; 800 * eps of rounding in the logs)
    np.testing.assert_allclose(host(g), [2.0, 0.0, 0.0], rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("interpolation", ["linear", "lower", "higher", "midpoint", "nearest"])
def test_quantile(device, interpolation):
    x = rnd(3, 4, 5)
    q = np.array([0.1, 0.55, 0.95])
    assert check_rule(lambda a: F.quantile(a, 0.3, dim=1, interpolation=interpolation), x,
                      op="quantile", device=device)  # fmt: skip
    assert check_rule(lambda a, t: F.quantile(a, t, dim=2, keepdim=True,
                                              interpolation=interpolation),
                      x, q, op="quantile", device=device)  # fmt: skip


@pytest.mark.parametrize("device", DEVICES)
def test_quantile_whole_tensor_and_nan(device):
    x = rnd(3, 4, 5)
    assert check_rule(lambda a, t: F.quantile(a, t), x, np.array(0.37), op="quantile",
                      device=device)  # fmt: skip
    assert check_rule(lambda a, t: F.quantile(a, t, keepdim=True), x, np.array([0.37, 0.9]),
                      op="quantile", device=device)  # fmt: skip
    xn = rnd(3, 6)
    xn[0, 2] = np.nan
    assert check_rule(lambda a, t: F.nanquantile(a, t, dim=1), xn, np.array([0.23, 0.7]),
                      op="quantile", device=device)  # fmt: skip


# --- linalg


def _well_conditioned(*shape):
    return rnd(*shape) + 3 * np.eye(shape[-1])


def _spd(*shape):
    a = rnd(*shape)
    return a @ np.swapaxes(a, -1, -2) + np.eye(shape[-1])


@pytest.mark.parametrize("device", DEVICES)
def test_linalg_solve_inv_det(device):
    L, a = F.linalg, _well_conditioned(2, 3, 3)
    assert check_rule(L.solve, a, rnd(2, 3, 2), op="linalg_solve", device=device)
    assert check_rule(L.solve, a, rnd(3), op="linalg_solve", device=device)  # vector, broadcast
    assert check_rule(L.solve, a[0], rnd(4, 3, 2), op="linalg_solve", device=device)
    assert check_rule(L.solve, a, rnd(2, 3), op="linalg_solve", device=device)
    assert check_rule(L.inv, a, op="linalg_inv", device=device)
    assert check_rule(L.det, a, op="linalg_det", device=device)
    assert check_rule(L.slogdet, rnd(2, 3, 3), op="linalg_slogdet", device=device)
    assert check_rule(lambda m: L.inv(m.mT), a, op="linalg_inv", device=device)


@pytest.mark.parametrize("device", DEVICES)
def test_linalg_symmetric(device):
    L, s = F.linalg, _spd(2, 4, 4)
    assert check_rule(L.cholesky, s, op="linalg_cholesky", device=device, sym=True)
    assert check_rule(lambda a: L.cholesky(a, upper=True), s, op="linalg_cholesky",
                      device=device, sym=True)  # fmt: skip
    assert check_rule(L.eigh, s, op="linalg_eigh", device=device, sym=True)
    assert check_rule(L.eigvalsh, s, op="linalg_eigvalsh", device=device, sym=True)
    assert check_rule(lambda a: L.pinv(a, hermitian=True), s, op="linalg_pinv", device=device,
                      sym=True)  # fmt: skip


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("shape", [(2, 5, 3), (3, 3), (2, 3, 5)])
def test_linalg_qr(device, shape):
    assert check_rule(F.linalg.qr, rnd(*shape), op="linalg_qr", device=device)


@pytest.mark.parametrize("device", DEVICES)
def test_linalg_qr_modes_without_a_derivative(device):
    for a, mode, why in [(rnd(3, 3), "r", "mode='r'"), (rnd(4, 3), "complete", "more rows")]:
        x = on(a, device)
        q, r = F.linalg.qr(x, mode=mode)
        ctx = types.SimpleNamespace(inputs=(x,), outputs=(q, r), attrs={"mode": mode})
        with pytest.raises(fusejit.LinAlgError, match=why):
            OPS["linalg_qr"].vjp(F, ctx, None, F.ones_like(r))
    assert check_rule(lambda m: F.linalg.qr(m, mode="complete"), rnd(3, 4), op="linalg_qr",
                      device=device)  # fmt: skip


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("shape", [(2, 3, 5), (5, 3), (4, 4)])
def test_linalg_svd(device, shape):
    a = rnd(*shape)
    assert check_rule(F.linalg.svdvals, a, op="linalg_svdvals", device=device)
    assert check_rule(lambda m: F.linalg.svd(m, full_matrices=False), a, op="linalg_svd",
                      device=device)  # fmt: skip


@pytest.mark.parametrize("device", DEVICES)
def test_linalg_svd_full_matrices_counts_the_first_vectors(device):
    x = on(rnd(4, 2), device)
    u, s, vh = F.linalg.svd(x)  # u: 4 x 4
    ctx = types.SimpleNamespace(inputs=(x,), outputs=(u, s, vh), attrs={"full_matrices": True})
    gu = F.zeros_like(u)
    gu[:, 2:] = 1.0  # (only the vectors beyond min(m, n): no gradient)
    (g,) = OPS["linalg_svd"].vjp(F, ctx, gu, None, None)
    assert_close(g, np.zeros((4, 2)))


@pytest.mark.parametrize("device", DEVICES)
def test_linalg_pinv_lstsq(device):
    L = F.linalg
    assert check_rule(L.pinv, rnd(2, 3, 5), op="linalg_pinv", device=device)
    assert check_rule(L.pinv, rnd(5, 3), op="linalg_pinv", device=device)
    assert check_rule(L.lstsq, rnd(5, 3), rnd(5, 2), op="linalg_lstsq", device=device)
    assert check_rule(L.lstsq, rnd(2, 5, 3), rnd(5), op="linalg_lstsq", device=device)
    assert check_rule(L.lstsq, rnd(3, 5), rnd(2, 3, 2), op="linalg_lstsq", device=device)


# --- fft and complex: constants to autograd


def test_fft_and_complex_ops_have_no_rules():
    for name, op in OPS.items():
        if op.kind in ("fft",) or name in ("real", "imag", "conj", "view_as_real",
                                           "view_as_complex"):  # fmt: skip
            assert not op.differentiable and op.vjp is None, name


@pytest.mark.parametrize("device", DEVICES)
def test_angle_of_reals_has_a_zero_gradient(device):
    assert check_rule(F.angle, rnd(3, 4), op="angle", device=device)


# --- rules trace (a backward pass is a graph of table ops)


@pytest.mark.parametrize("device", DEVICES)
def test_rules_trace(device):
    x = rnd(3, 4, 5)
    check_rule_traced(lambda a: a[1:, None, ::2], x, op="getitem", device=device)
    j = on(RNG.integers(0, 5, (2, 3, 4)), device)
    check_rule_traced(lambda a: F.gather(a, 2, j), x, op="gather", device=device)
    check_rule_traced(lambda a: F.sort(a, 1), x, op="sort", device=device)
    check_rule_traced(lambda a: F.cat([a, a * 2], 2), x, op="cat", device=device)
    check_rule_traced(lambda a: F.quantile(a, 0.3, dim=1), x, op="quantile", device=device)
    i = on(IDX, device)
    check_rule_traced(lambda a, b: F.scatter_reduce(a, 0, i, b, "amax"), rnd(4, 5), rnd(3, 5),
                      op="scatter", device=device)  # fmt: skip
    check_rule_traced(F.linalg.solve, _well_conditioned(3, 3), rnd(3, 2), op="linalg_solve",
                      device=device)  # fmt: skip
    m = on(np.array([True, False, True, True, False]), device)
    check_rule_traced(lambda a, s: F.masked_scatter(a, m, s), rnd(4, 5), rnd(20),
                      op="masked_scatter", device=device)  # fmt: skip


def test_rules_keep_float32_and_float16():
    for d in (F.float32, F.float16):
        x = F.tensor(rnd(3, 4)).to(d)
        for fn, op in [(lambda a: a[:, 1::2], "getitem"), (lambda a: F.flip(a, (0,)), "flip"),
                       (lambda a: F.sort(a, 1), "sort"), (lambda a: a.repeat(2, 1), "tile"),
                       (lambda a: F.gather(a, 1, F.tensor([[0, 0], [1, 3], [2, 2]])), "gather"),
                       (lambda a: F.cummax(a, 0), "cummax")]:  # fmt: skip
            with _caught() as calls:
                fn(x)
            o, ins, attrs, outs = next(c for c in calls if c[0].name == op)
            ctx = types.SimpleNamespace(inputs=ins, outputs=outs, attrs=attrs)
            g = o.vjp(F, ctx, *[F.ones_like(t) if t.dtype.is_floating_point else None
                                for t in outs])[0]  # fmt: skip
            assert g.dtype is d and g.shape == x.shape, (op, d)


# --- through the autograd engine: gradcheck (float64 central differences), double backward

gradcheck = fusejit.autograd.gradcheck


def leaf(a, device="cpu"):
    return on(np.asarray(a, np.float64), device).requires_grad_()


def _cases():
    x, v = rnd(3, 4, 5), rnd(4, 5)
    j = np.array([[0, 1, 0, 3, 3], [3, 3, 1, 0, 0], [0, 0, 0, 0, 2]])  # (repeated places)
    spd = rnd(3, 3)
    c = {
        "reshape": (lambda a: a.reshape(5, -1).mT, [x]),
        "permute_neg": (lambda a: a.permute(-1, 0, -2), [x]),
        "expand_broadcast": (lambda a, b: a.expand(3, 4, 5) * b, [rnd(4, 1), x]),
        "getitem": (lambda a: a[1:, None, ::2, -1], [x]),
        "getitem_noncontig": (lambda a: a.mT[::2, 1:], [x]),
        "getitem_advanced": (lambda a: a[[0, 2, 0, 0]], [v]),
        "getitem_mask": (lambda a: a[a.detach() > 0], [v]),
        "cat_stack": (lambda a, b: F.stack([F.cat([a, b], -1), F.cat([b, a], -1)]), [v, v[:, :2]]),
        "split": (lambda a: F.split(a, [1, 4], -1)[1] * 2, [v]),
        "flip_roll_tile": (lambda a: F.roll(F.flip(a, (0,)), (2,), (-1,)).repeat(2, 1), [v]),
        "tril_diag": (lambda a: F.diag(F.tril(a, 1).mT, -1), [v]),
        "diagonal_embed": (lambda a: F.diag_embed(F.diagonal(a, 1, 1, 2)), [x]),
        "index_select_rep": (lambda a: F.index_select(a, -1, F.tensor([0, 0, 4])), [v]),
        "gather_rep": (lambda a: F.gather(a, 1, F.tensor(j)[:, :3]), [v]),
        "scatter": (lambda a, b: F.scatter(a, 1, F.tensor([[0, 2], [1, 4]]), b), [v, rnd(2, 2)]),
        "scatter_add_rep": (lambda a, b: F.scatter_add(a, 0, F.tensor(j), b), [v, rnd(3, 5)]),
        "scatter_mean": (
            lambda a, b: F.scatter_reduce(a, 0, F.tensor(j), b, "mean"),
            [v, rnd(3, 5)],
        ),  # fmt: skip
        "scatter_amax": (
            lambda a, b: F.scatter_reduce(a, 0, F.tensor(j), b, "amax", include_self=False),
            [v, rnd(3, 5)],
        ),
        "index_add": (lambda a, b: F.index_add(a, 0, F.tensor([1, 1]), b), [v, rnd(2, 5)]),
        "index_put": (
            lambda a, b: F.index_put(a, (F.tensor([0, 0]),), b, accumulate=True),
            [v, rnd(5)],
        ),  # fmt: skip
        "masked_scatter": (
            lambda a, b: F.masked_scatter(a, F.tensor([True, False, True, False, True]), b),
            [v, rnd(13)],
        ),
        "sort_topk": (lambda a: F.sort(a, -1).values + F.topk(a, 5, 1).values, [v]),
        "median_kth": (lambda a: F.median(a, 0).values + F.kthvalue(a, 2, 0).values, [v]),
        "cummax_min": (lambda a: F.cummax(a, 1).values * F.cummin(a, 0).values, [v]),
        "logcumsumexp": (lambda a: F.logcumsumexp(a, -1), [v]),
        "quantile": (lambda a, q: F.quantile(a, q, dim=1), [v, np.array([0.13, 0.61])]),
        "solve": (F.linalg.solve, [_well_conditioned(3, 3), rnd(2, 3, 2)]),
        "inv_det": (lambda a: F.linalg.inv(a) * F.linalg.det(a), [_well_conditioned(3, 3)]),
        "slogdet": (lambda a: F.linalg.slogdet(a).logabsdet, [rnd(2, 3, 3)]),
        "cholesky": (lambda a: F.linalg.cholesky(a @ a.mT + F.eye(3, dtype=F.float64)), [spd]),
        "eigh": (lambda a: F.linalg.eigh(a + a.mT).eigenvectors ** 2, [spd]),
        "eigvalsh": (lambda a: F.linalg.eigvalsh(a + a.mT), [spd]),
        "qr": (lambda a: F.linalg.qr(a).Q * 2 + F.linalg.qr(a).R.sum(), [rnd(4, 3)]),
        "svd": (lambda a: F.linalg.svd(a, full_matrices=False).U.abs(), [rnd(4, 3)]),
        "svdvals": (F.linalg.svdvals, [rnd(2, 3, 4)]),
        "pinv": (F.linalg.pinv, [rnd(3, 4)]),
        "lstsq": (lambda a, b: F.linalg.lstsq(a, b).solution, [rnd(5, 3), rnd(5, 2)]),
        # compositions: their gradients come from their ops
        "masked_fill": (lambda a: F.masked_fill(a, a.detach() > 0.5, 0.0), [v]),
        "clamp": (lambda a: F.clamp(a, -0.5, 0.5), [v]),
        "lerp": (lambda a, b: F.lerp(a, b, 0.3), [v, rnd(5)]),
        "vector_norm": (lambda a: F.linalg.vector_norm(a, dim=-1), [v]),
        "norm": (lambda a: F.linalg.norm(a), [v]),
        "layer_norm": (lambda a: F.layer_norm(a, (5,)), [v]),
        "cdist": (lambda a, b: F.cdist(a, b), [rnd(3, 2), rnd(4, 2)]),
        "cross": (lambda a, b: F.linalg.cross(a, b), [rnd(4, 3), rnd(3)]),
        "kron": (lambda a, b: F.kron(a, b), [rnd(2, 2), rnd(3, 2)]),
        "logdet": (
            lambda a: F.logdet(a @ a.mT + F.eye(3, dtype=F.float64)) + F.diagonal(a).sum(),
            [rnd(3, 3)],
        ),  # fmt: skip
        "matrix_norm": (
            lambda a: F.linalg.matrix_norm(a) + F.linalg.matrix_norm(a, "nuc"),
            [rnd(2, 3, 4)],
        ),  # fmt: skip
        "rot90_movedim": (lambda a: F.movedim(F.rot90(a, 1, (0, 2)), 0, -1), [x]),
        "repeat_interleave": (lambda a: F.repeat_interleave(a, 2, dim=1), [v]),
        "tensor_split_hstack": (lambda a: F.hstack(F.tensor_split(a, 3, 1)[::-1]), [v]),
        "take_along_dim": (lambda a: F.take_along_dim(a, F.argsort(a.detach(), 1), 1), [v]),
        "nanmean_var_mean": (lambda a: F.nanmean(a, 0) * F.var_mean(a, 0)[1], [v]),
        "aminmax": (lambda a: F.aminmax(a, dim=1).max - F.aminmax(a, dim=1).min, [v]),
    }
    return c


CASES = _cases()


@pytest.mark.parametrize("name", sorted(CASES))
def test_gradcheck(name):
    fn, arrays = CASES[name]
    assert gradcheck(fn, tuple(leaf(a) for a in arrays))


@pytest.mark.parametrize("device", DEVICES)
def test_backward_on_device(device):
    x = leaf(rnd(3, 4), device)
    y = F.gather(x[[0, 2, 0]], 1, on(np.array([[0, 0], [3, 1], [2, 2]]), device))
    (y * y).sum().backward()
    want = np.zeros((3, 4))
    xs = host(x.detach())
    for r, cols in zip([0, 2, 0], [[0, 0], [3, 1], [2, 2]], strict=True):
        for c in cols:
            want[r, c] += 2 * xs[r, c]
    assert_close(x.grad, want)


def test_double_backward_getitem_and_gather():
    def grad_of(f):
        def g(a):
            if not a.requires_grad:  # (the numerical pass of gradcheck)
                a = a.detach().requires_grad_()
            with F.enable_grad():
                (r,) = fusejit.autograd.grad(f(a).sum(), a, create_graph=True)
            return r

        return g

    x = leaf(rnd(3, 4))
    assert gradcheck(grad_of(lambda a: a[1:, ::2] ** 3), (x,))
    idx = F.tensor([[0, 0, 3], [1, 2, 1], [3, 3, 3]])
    assert gradcheck(grad_of(lambda a: F.gather(a, 1, idx) ** 3), (x,))
    assert gradcheck(grad_of(lambda a: F.sort(a, 0).values ** 3), (x,))


def test_int_results_and_constants_do_not_require_grad():
    x = leaf(rnd(4, 6))
    assert not F.sort(x, 1).indices.requires_grad
    assert not F.one_hot(F.tensor([1, 0]), 3).requires_grad
    assert not F.fft.rfft(x).requires_grad  # (complex autograd: not supported, a constant)
    assert not F.searchsorted(F.tensor([0.0, 1.0]), x.detach()).requires_grad
    assert F.sort(x, 1).values.requires_grad


def test_views_written_in_place_keep_their_gradient():
    x = leaf(rnd(2, 3))
    a = x * 1
    b = F.flip(a.reshape(6), (0,))
    a.mul_(2)  # (the reshape's rule needs only its input's shape: no error)
    b.backward(F.ones(6, dtype=F.float64))
    assert_close(x.grad, np.ones((2, 3)))


def test_qr_mode_r_backward_raises():
    x = leaf(rnd(3, 3))
    r = F.linalg.qr(x, mode="r").R
    with pytest.raises(fusejit.LinAlgError, match="mode='r'"):
        r.sum().backward()
