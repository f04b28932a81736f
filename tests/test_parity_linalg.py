"""PyTorch parity of the matrix products (``mm``, ``addmm``, ``addmv``, ``baddbmm``, ``addbmm``,
``tensordot``, ``kron``, ``cross``, ``cdist``, the matrix trace) and of ``fusejit.linalg``,
against numpy float64 references, on every device, eager and traced."""

from __future__ import annotations

import numpy as np
import pytest

import fusejit
from fusejit.base.device import CPU
from fusejit.ops.registry import OPS
from fusejit.ops.shape_rules import ShapeRuleError, out_shapes
from tests.parity_helpers import DEVICES, assert_close, assert_traced, host
from tests.parity_helpers import on as _on

F = fusejit
LA = fusejit.linalg
RNG = np.random.default_rng(18)
FLOATS = [np.float32, np.float64]


def on(a, device: str = "cpu") -> fusejit.Tensor:
    """``parity_helpers.on``, keeping a 0-d array 0-d (its ``np.ascontiguousarray`` makes it
    1-d)."""
    return _on(a, device).reshape(np.shape(a))


def rand(*shape, dtype=np.float64):
    return RNG.standard_normal(shape).astype(dtype)


def spd(*batch, n=4, dtype=np.float64):
    """Symmetric positive-definite matrices (..., n, n)."""
    a = rand(*batch, n, n)
    return (a @ np.swapaxes(a, -1, -2) + n * np.eye(n)).astype(dtype)


def close(got, want, dtype, scale=1.0, what=""):
    """``got`` within a few thousand ulps of ``want`` (computed in float64), absolute by the
    reference's magnitude: LAPACK paths differ by rounding."""
    g = host(got)
    assert g.dtype == np.dtype(dtype), what
    w = np.asarray(want, np.float64)
    assert g.shape == w.shape, f"{what}: {g.shape} != {w.shape}"
    tol = (2e-4 if np.dtype(dtype) == np.float32 else 1e-10) * scale
    big = max(1.0, float(np.nanmax(np.abs(w)))) if w.size else 1.0
    np.testing.assert_allclose(g.astype(np.float64), w, rtol=tol, atol=tol * big, err_msg=what)


# ---------------------------------------------------------------- products


@pytest.mark.parametrize("device", DEVICES)
def test_mm(device):
    for d in (np.float32, np.float64, np.int32, np.int64):
        a, b = (rand(3, 5) * 4).astype(d), (rand(5, 2) * 4).astype(d)
        got = F.mm(on(a, device), on(b, device))
        assert_close(got, a @ b, ulps=8, scale=10)
    a = rand(5, 3)
    got = F.mm(on(a, device).t(), on(a, device))  # a non-contiguous operand
    assert_close(got, a.T @ a, ulps=8, scale=10)
    got = on(rand(2, 0), device).mm(on(rand(0, 3), device))
    assert_close(got, np.zeros((2, 3)))
    assert_traced(lambda x, y: F.mm(x, y), on(a.T.copy(), device), on(a, device))


def test_mm_errors():
    with pytest.raises(F.DTypeError, match="mm: expected tensors of one dtype"):
        F.mm(F.ones(2, 2), F.ones(2, 2, dtype=F.float64))
    with pytest.raises(F.ShapeError, match=r"mm: input must be 2-D, got shape \[3\]"):
        F.mm(F.ones(3), F.ones(3, 2))
    with pytest.raises(F.ShapeError, match=r"shapes \[2, 3\] and \[4, 5\]"):
        F.mm(F.ones(2, 3), F.ones(4, 5))
    with pytest.raises(F.DTypeError, match="bool"):
        F.mm(F.ones(2, 2, dtype=F.bool), F.ones(2, 2, dtype=F.bool))


@pytest.mark.parametrize("device", DEVICES)
def test_addmm(device):
    m1, m2 = rand(3, 4), rand(4, 5)
    for inp in (rand(3, 5), rand(5), rand(1, 5), rand(3, 1), np.array(1.5)):
        for beta, alpha in ((1, 1), (0.5, 2.0), (0, -1.5), (2, 0)):
            got = F.addmm(on(inp, device), on(m1, device), on(m2, device), beta=beta, alpha=alpha)
            want = beta * np.broadcast_to(inp, (3, 5)) + alpha * (m1 @ m2)
            assert_close(got, want, ulps=16, scale=10)
    # beta = 0: input is not read (its NaN and inf do not propagate), as PyTorch
    got = on(np.full((3, 5), np.nan), device).addmm(on(m1, device), on(m2, device), beta=0)
    assert_close(got, m1 @ m2, ulps=8, scale=10)
    # float32, a transposed operand, ints with int scales
    a32 = rand(4, 3, dtype=np.float32)
    got = F.addmm(on(rand(3, 5, dtype=np.float32), device), on(a32, device).t(),
                  on(m2.astype(np.float32), device), alpha=3)  # fmt: skip
    assert host(got).dtype == np.float32
    i = (rand(3, 4) * 5).astype(np.int64)
    j = (rand(4, 5) * 5).astype(np.int64)
    got = F.addmm(on(np.ones(5, np.int64), device), on(i, device), on(j, device), beta=2, alpha=3)
    assert_close(got, 2 + 3 * (i @ j))
    args = (on(rand(3, 5), device), on(m1, device), on(m2, device))
    f = assert_traced(lambda x, a, b: F.addmm(x, a, b, beta=0.5, alpha=2.0), *args)
    assert f.kernel_count() == 1  # the epilogue beta * x + alpha * (a @ b): one kernel


def test_addmm_errors():
    with pytest.raises(F.DTypeError, match="alpha must be an int for integer tensors"):
        F.addmm(F.zeros(2, 2, dtype=F.int64), F.zeros(2, 2, dtype=F.int64),
                F.zeros(2, 2, dtype=F.int64), alpha=0.5)  # fmt: skip
    with pytest.raises(F.DTypeError, match="addmm: expected tensors of one dtype"):
        F.addmm(F.zeros(2, 2, dtype=F.float64), F.zeros(2, 2), F.zeros(2, 2))
    with pytest.raises(F.ShapeError, match=r"input of shape \[3\] does not broadcast to the "
                       r"product's shape \[2, 2\]"):  # fmt: skip
        F.addmm(F.zeros(3), F.zeros(2, 2), F.zeros(2, 2))
    with pytest.raises(F.ShapeError, match=r"does not broadcast"):  # torch: no enlarging
        F.addmm(F.zeros(4, 2, 2), F.zeros(2, 2), F.zeros(2, 2))
    with pytest.raises(F.ShapeError, match="mat1 must be 2-D"):
        F.addmm(F.zeros(2), F.zeros(2), F.zeros(2, 2))


@pytest.mark.parametrize("device", DEVICES)
def test_addmv_baddbmm_addbmm(device):
    m, v = rand(3, 4), rand(4)
    got = F.addmv(on(rand(3), device) * 0 + 1, on(m, device), on(v, device), beta=2, alpha=0.5)
    assert_close(got, 2 + 0.5 * (m @ v), ulps=8, scale=10)
    got = on(np.array(2.0), device).addmv(on(m, device), on(v, device))
    assert_close(got, 2 + m @ v, ulps=8, scale=10)
    b1, b2, inp = rand(5, 2, 3), rand(5, 3, 4), rand(2, 4)
    got = F.baddbmm(on(inp, device), on(b1, device), on(b2, device), beta=-1, alpha=2)
    assert_close(got, -inp + 2 * (b1 @ b2), ulps=8, scale=10)
    got = F.addbmm(on(inp, device), on(b1, device), on(b2, device), beta=0.5, alpha=3)
    assert_close(got, 0.5 * inp + 3 * (b1 @ b2).sum(0), ulps=16, scale=30)
    # float16 accumulates in float32 over the whole batch, as one product
    h1, h2 = np.ones((64, 1, 64), np.float16), np.ones((64, 64, 1), np.float16)
    got = F.addbmm(on(np.zeros((1, 1), np.float16), device), on(h1, device), on(h2, device))
    assert_close(got, np.full((1, 1), 4096, np.float16))
    # non-contiguous batches
    t1 = on(np.swapaxes(b1, 1, 2).copy(), device).transpose(1, 2)  # b1, non-contiguous
    got = F.baddbmm(on(inp, device), t1, on(b2, device)[:, :, ::1])
    assert_close(got, inp + b1 @ b2, ulps=8, scale=10)
    a = (on(inp, device), on(b1, device), on(b2, device))
    assert assert_traced(lambda x, p, q: F.addbmm(x, p, q, alpha=2), *a).kernel_count() == 1
    assert_traced(lambda x, p, q: F.baddbmm(x, p, q, beta=0.5), *a)
    assert_traced(lambda x, y: F.addmv(x, y, y[0]), on(rand(3), device), on(rand(3, 3), device))
    with pytest.raises(F.ShapeError, match=r"batch1 of shape \[5, 2, 3\] and batch2 of shape "
                       r"\[4, 3, 4\] do not fit"):  # fmt: skip
        F.addbmm(F.zeros(2, 4), F.zeros(5, 2, 3), F.zeros(4, 3, 4))
    with pytest.raises(F.ShapeError, match="bmm: batch sizes differ"):
        F.baddbmm(F.zeros(2, 4), F.zeros(5, 2, 3), F.zeros(4, 3, 4))


@pytest.mark.parametrize("device", DEVICES)
def test_tensordot(device):
    a, b = rand(2, 3, 4), rand(3, 4, 5)
    cases = [(2, 2), (1, None), (0, None), (([1, 2], [0, 1]), None), (([-1], [1]), None),
             (([2, 1], [1, 0]), None), ((1, 0), None)]  # fmt: skip
    for dims, _ in cases:
        if dims == 1:
            x, y = a, rand(4, 6)
        elif dims == 0:
            x, y = rand(2), rand(3)
        elif dims == (1, 0):
            x, y = a, rand(3, 5)
        else:
            x, y = a, b
        npdims = dims if isinstance(dims, int) else [list(np.atleast_1d(d)) for d in dims]
        want = np.tensordot(x, y, npdims)
        assert_close(F.tensordot(on(x, device), on(y, device), dims), want, ulps=8, scale=10)
    i = (rand(2, 3) * 5).astype(np.int32)
    assert_close(F.tensordot(on(i, device), on(i.T.copy(), device), 1), i @ i.T)
    assert_close(F.tensordot(on(a, device).transpose(0, 2), on(rand(3, 2), device) * 0, 2),
                 np.zeros(4))  # fmt: skip
    assert_traced(lambda x, y: F.tensordot(x, y, ([1, 2], [0, 1])), on(a, device), on(b, device))


def test_tensordot_errors():
    with pytest.raises(F.ShapeError, match=r"contracted dims differ: a \[2, 3\] has size 3"):
        F.tensordot(F.ones(2, 3), F.ones(4, 5), 1)
    with pytest.raises(F.DimError, match=r"dims=3 must be in \[0, 2\]"):
        F.tensordot(F.ones(2, 3), F.ones(2, 3), 3)
    with pytest.raises(F.DimError, match="1 dims of a and 2 of b"):
        F.tensordot(F.ones(2, 3), F.ones(3, 2), ([1], [0, 1]))
    with pytest.raises(F.DTypeError, match="one dtype"):
        F.tensordot(F.ones(2, 3), F.ones(3, dtype=F.float64), 1)
    with pytest.raises(F.DimError):
        F.tensordot(F.ones(2, 3), F.ones(3, 2), ([5], [0]))


@pytest.mark.parametrize("device", DEVICES)
def test_kron(device):
    for sa, sb in (((2, 3), (4, 5)), ((2,), (3, 4)), ((2, 1, 3), (2, 2)), ((), (3,)), ((), ()),
                   ((0, 2), (3, 1))):  # fmt: skip
        a, b = rand(*sa), rand(*sb)
        assert_close(F.kron(on(a, device), on(b, device)), np.kron(a, b), exact=True)
    i, f = np.arange(6, dtype=np.int16).reshape(2, 3), rand(2, 2, dtype=np.float32)
    assert_close(F.kron(on(i, device), on(f, device)), np.kron(i, f).astype(np.float32))
    got = on(i, device).t().kron(on(i, device))  # non-contiguous; int16 stays int16
    assert_close(got, np.kron(i.T, i))
    f = assert_traced(lambda x, y: F.kron(x, y), on(rand(2, 3), device), on(rand(4, 5), device))
    assert f.kernel_count() <= 1


@pytest.mark.parametrize("device", DEVICES)
def test_cross(device):
    a, b = rand(4, 3, 5), rand(4, 3, 5)
    assert_close(F.cross(on(a, device), on(b, device), dim=1), np.cross(a, b, axis=1), ulps=4)
    # no dim: the first dim of size 3 (PyTorch's default); linalg.cross: dim=-1
    c, e = rand(3, 3), rand(3, 3)
    assert_close(F.cross(on(c, device), on(e, device)), np.cross(c, e, axis=0))
    assert_close(LA.cross(on(c, device), on(e, device)), np.cross(c, e, axis=-1))
    # broadcasting, ints, a transposed operand, the method
    i, j = (rand(2, 1, 3) * 9).astype(np.int64), (rand(4, 3) * 9).astype(np.int64)
    assert_close(LA.cross(on(i, device), on(j, device)), np.cross(i, j))
    assert_close(on(c, device).t().cross(on(e, device), dim=0), np.cross(c.T, e, axis=0))
    nan = np.array([np.nan, 1.0, np.inf])
    assert_close(LA.cross(on(nan, device), on(nan, device)), np.cross(nan, nan))
    assert_traced(lambda x, y: LA.cross(x, y), on(c, device), on(e, device))
    with pytest.raises(F.ShapeError, match=r"dim 0 must have size 3"):
        F.cross(F.ones(2, 3), F.ones(2, 3), dim=0)
    with pytest.raises(F.ShapeError, match="no dim of size 3"):
        F.cross(F.ones(2, 4), F.ones(2, 4))
    with pytest.raises(F.DTypeError, match="bool"):
        LA.cross(F.ones(3, dtype=F.bool), F.ones(3, dtype=F.bool))


def _cdist_ref(x1, x2, p):
    d = np.abs(x1[..., :, None, :] - x2[..., None, :, :]).astype(np.float64)
    if p == 0:
        return (d != 0).sum(-1).astype(np.float64)
    if np.isinf(p):
        return d.max(-1)
    return (d**p).sum(-1) ** (1 / p)


@pytest.mark.parametrize("device", DEVICES)
def test_cdist(device):
    for d in FLOATS:
        x1, x2 = rand(2, 5, 3, dtype=d), rand(1, 4, 3, dtype=d)
        x2[0, 0] = x1[0, 0]  # a zero distance
        for p in (0, 1, 2, 3.5, 0.5, float("inf")):
            got = F.cdist(on(x1, device), on(x2, device), p=p)
            close(got, _cdist_ref(x1, x2, p), d, what=f"p={p}")
    # float16 computes in float32 (no overflow of the squares); a transposed operand
    h = np.array([[300.0, 0.0]], np.float16)
    assert_close(F.cdist(on(h, device), on(np.zeros((1, 2), np.float16), device)),
                 np.array([[300.0]], np.float16))  # fmt: skip
    x = rand(3, 4)
    close(F.cdist(on(x, device).t(), on(x, device).t()), _cdist_ref(x.T, x.T, 2), np.float64)
    f = assert_traced(lambda a, b: F.cdist(a, b), on(x, device), on(x, device), exact=False)
    assert f.kernel_count() == 1
    with pytest.raises(F.DTypeError, match="cdist: expected floating-point tensors, got x1 int64"):
        F.cdist(F.ones(2, 2, dtype=F.int64), F.ones(2, 2, dtype=F.int64))
    # compute_mode does not change the result: always the differences (no cancellation)
    y = x + 1e-9
    for mode in ("use_mm_for_euclid_dist", "donot_use_mm_for_euclid_dist"):
        close(F.cdist(on(x, device), on(y, device), compute_mode=mode),
              _cdist_ref(x, y, 2), np.float64)  # fmt: skip
    with pytest.raises(F.DTypeError, match="cdist: x1 and x2 must have one dtype"):
        F.cdist(F.ones(2, 2), F.ones(2, 2, dtype=F.float64))
    with pytest.raises(ValueError, match="p must be a number >= 0"):
        F.cdist(F.ones(2, 2), F.ones(2, 2), p=-1)
    with pytest.raises(F.ShapeError, match="same number of columns"):
        F.cdist(F.ones(2, 2), F.ones(2, 3))


@pytest.mark.parametrize("device", DEVICES)
def test_matrix_trace(device):
    # the matrix trace: Tensor.trace (torch.trace, 2-D) and fusejit.linalg.trace (numpy's and
    # the Array API's: batched, offset); fusejit.trace stays the JIT
    for d in (np.float32, np.float64, np.int32, np.uint8, np.bool_):
        x = (rand(2, 3, 4) * 5).astype(d)
        for k in (0, 1, -1, 5):
            want = np.trace(x, offset=k, axis1=-2, axis2=-1)
            want = want.astype(np.int64) if d in (np.int32, np.uint8, np.bool_) else want
            assert_close(LA.trace(on(x, device), k), want, ulps=8, scale=10)
    x = rand(4, 4)
    assert_close(on(x, device).trace(), np.trace(x), ulps=8)
    assert_close(LA.trace(on(x, device).t()), np.trace(x), ulps=8)
    assert_close(LA.trace(on(x, device), dtype=F.float32), np.float32(np.trace(x)), ulps=8)
    assert_traced(lambda t: LA.trace(t, 1), on(rand(3, 4, 4), device), exact=False)
    with pytest.raises(F.ShapeError, match="linalg.trace: x must have 2 or more dims"):
        LA.trace(F.ones(3))


# ---------------------------------------------------------------- norms


@pytest.mark.parametrize("device", DEVICES)
def test_vector_norm(device):
    for d in (np.float16, np.float32, np.float64):
        x = rand(3, 4, 5, dtype=d)
        x[0, 0, 0] = 0
        for p in (2, 1, 0, 3, 0.5, -1, float("inf"), -float("inf")):
            for dim, keep in ((None, False), (1, True), ((0, 2), False), (-1, False)):
                got = LA.vector_norm(on(x, device), p, dim, keep)
                xx = np.abs(x.astype(np.float64))
                ax = tuple(range(3)) if dim is None else np.atleast_1d(dim)
                ax = tuple(int(a) % 3 for a in ax)
                if p == 0:
                    want = (xx != 0).sum(ax, keepdims=keep)
                elif np.isinf(p):
                    want = (xx.max if p > 0 else xx.min)(ax, keepdims=keep)
                else:
                    with np.errstate(divide="ignore"):
                        want = (xx**p).sum(ax, keepdims=keep) ** (1 / p)
                tol = 8 if d != np.float16 else 2
                assert_close(got, np.asarray(want).astype(d), ulps=tol * 8, scale=10)
    # float16 accumulates in float32: |x| > 256 does not overflow (PyTorch gives 300)
    h = on(np.array([300.0, 4.0], np.float16), device)
    assert_close(LA.vector_norm(h), np.float16(np.hypot(300, 4)))
    x32 = rand(3, 4, dtype=np.float32)
    assert_close(LA.vector_norm(on(x32, device), dtype=F.float64),
                 np.linalg.norm(x32.astype(np.float64)))  # fmt: skip
    x = rand(4, 6)
    assert_close(LA.vector_norm(on(x, device).t()[::2]), np.linalg.norm(x.T[::2]), ulps=8)
    special = np.array([np.inf, 1.0, -0.0])
    assert_close(LA.vector_norm(on(special, device)), np.float64(np.inf))
    assert_close(LA.vector_norm(on(np.array([np.nan, 1.0]), device), 1), np.float64(np.nan))
    assert_close(LA.vector_norm(on(np.zeros((0, 3)), device)), np.float64(0))
    # one row kernel, which sums in another order than eager
    fn = lambda t: t / LA.vector_norm(t, dim=-1, keepdim=True)  # noqa: E731
    f = assert_traced(fn, on(x, device), exact=False, ulps=8)
    assert f.kernel_count() == 1
    with pytest.raises(F.DTypeError, match="linalg.vector_norm: expected a floating-point "
                       "tensor, got int64"):  # fmt: skip
        LA.vector_norm(F.ones(3, dtype=F.int64))
    with pytest.raises(F.DTypeError, match="dtype must be a floating-point dtype"):
        LA.vector_norm(F.ones(3), dtype=F.int32)


@pytest.mark.parametrize("device", DEVICES)
def test_matrix_norm_and_norm(device):
    for d in FLOATS:
        a = rand(2, 3, 4, dtype=d)
        for o in ("fro", "nuc", 2, -2, 1, -1, float("inf"), -float("inf")):
            want = np.linalg.norm(a.astype(np.float64), o, axis=(-2, -1))
            close(LA.matrix_norm(on(a, device), o), want, d, what=str(o))
            got = LA.matrix_norm(on(a, device), o, dim=(2, 0), keepdim=True)
            want = np.linalg.norm(a.astype(np.float64), o, axis=(2, 0), keepdims=True)
            close(got, want, d, what=f"{o} dim=(2, 0)")
            close(LA.norm(on(a[0], device), o), np.linalg.norm(a[0].astype(float), o), d)
    a = rand(3, 4)
    close(LA.norm(on(a, device)), np.linalg.norm(a), np.float64)
    close(LA.norm(on(a, device), 3, dim=1), np.linalg.norm(a, 3, axis=1), np.float64)
    close(LA.norm(on(a, device), dim=(0, 1)), np.linalg.norm(a), np.float64)
    close(LA.norm(on(a[0], device), float("inf")), np.abs(a[0]).max(), np.float64)
    b = rand(2, 3, 4)
    close(LA.norm(on(b, device)), np.linalg.norm(b.ravel()), np.float64)
    close(LA.norm(on(b, device), "nuc", dim=(0, 2)), np.linalg.norm(b, "nuc", (0, 2)), np.float64)
    h = np.array([[300.0, 0.0], [0.0, 4.0]], np.float16)
    assert_close(LA.matrix_norm(on(h, device)), np.float16(np.hypot(300, 4)))
    assert_close(LA.matrix_norm(on(h, device), 1), np.float16(300))
    assert_traced(lambda t: LA.matrix_norm(t, 1), on(a, device), exact=False)
    assert_traced(lambda t: LA.matrix_norm(t, "nuc"), on(a, device), exact=False)
    with pytest.raises(ValueError, match="ord must be 'fro', 'nuc'"):
        LA.matrix_norm(F.ones(2, 2), 3)
    with pytest.raises(F.ShapeError, match="with ord given and no dim, A must be 1-D or 2-D"):
        LA.norm(F.ones(2, 2, 2), 2)
    with pytest.raises(F.DTypeError, match="not supported for float16"):
        LA.matrix_norm(F.ones(2, 2, dtype=F.float16), 2)
    with pytest.raises(F.DTypeError, match="linalg.matrix_norm: expected a floating-point"):
        LA.matrix_norm(F.ones(2, 2, dtype=F.int32))


# ---------------------------------------------------------------- solvers, decompositions

REFUSED = [F.float16, F.int64, F.int32, F.bool]


def _refuses(fn, name, square=True, n_args=1):
    for d in REFUSED:
        args = [F.ones(3, 3).to(d) for _ in range(n_args)]
        with pytest.raises(F.DTypeError, match=f"linalg.{name}: .*{d.name}"):
            fn(*args)
    with pytest.raises(F.ShapeError, match=f"linalg.{name}: A must be a matrix"):
        fn(*[F.ones(3)] * n_args)
    if square:
        with pytest.raises(F.ShapeError, match=r"square matrices, got shape \[2, 3\]"):
            fn(*[F.ones(2, 3)] * n_args)


@pytest.mark.parametrize("device", DEVICES)
def test_solve(device):
    for d in FLOATS:
        a = spd(2, 3, n=4, dtype=d) + rand(2, 3, 4, 4, dtype=d)  # general, well conditioned
        a = a + 8 * np.eye(4, dtype=d)
        for b_shape in ((2, 3, 4, 2), (4, 2), (4,), (2, 3, 4), (1, 3, 4, 5)):
            b = rand(*b_shape, dtype=d)
            got = LA.solve(on(a, device), on(b, device))
            vec = len(b_shape) == 1 or b_shape == a.shape[:-1]
            bb = b[..., None] if vec else b
            want = np.linalg.solve(a.astype(np.float64), bb.astype(np.float64))
            close(got, want[..., 0] if vec else want, d, what=str(b_shape))
    a = rand(4, 4) + 8 * np.eye(4)
    b = rand(4, 3)
    close(LA.solve(on(a, device).t(), on(b, device)), np.linalg.solve(a.T, b), np.float64)
    assert_traced(lambda x, y: LA.solve(x, y), on(a, device), on(b, device))
    with pytest.raises(F.LinAlgError, match="linalg.solve: the input matrix A is singular"):
        LA.solve(on(np.array([[1.0, 2.0], [2.0, 4.0]]), device), on(np.ones(2), device))
    with pytest.raises(F.DTypeError, match="A and B must have one dtype"):
        LA.solve(on(a, device), on(b.astype(np.float32), device))
    with pytest.raises(F.ShapeError, match=r"A of shape \[4, 4\] and B of shape \[3\]"):
        LA.solve(on(a, device), on(np.ones(3), device))
    _refuses(LA.solve, "solve", n_args=2)


@pytest.mark.parametrize("device", DEVICES)
def test_inv_det_slogdet(device):
    for d in FLOATS:
        a = rand(2, 3, 4, 4, dtype=d) + 4 * np.eye(4, dtype=d)
        a64 = a.astype(np.float64)
        close(LA.inv(on(a, device)), np.linalg.inv(a64), d, scale=10)
        close(LA.det(on(a, device)), np.linalg.det(a64), d, scale=10)
        sign, logabs = LA.slogdet(on(a, device))
        ws, wl = np.linalg.slogdet(a64)
        close(sign, ws, d)
        close(logabs, wl, d, scale=10)
    a = rand(3, 3)
    close(on(a, device).t().inverse(), np.linalg.inv(a.T), np.float64, scale=1e4)
    close(on(a, device).t().det(), np.linalg.det(a.T), np.float64)
    s = np.array([[1.0, 2.0], [2.0, 4.0]])
    assert host(LA.det(on(s, device))) == 0
    sign, la = on(s, device).slogdet()
    assert host(sign) == 0 and host(la) == -np.inf
    neg = np.array([[0.0, 1.0], [1.0, 0.0]])
    assert np.isnan(host(on(neg, device).logdet()))
    assert host(F.logdet(on(s, device))) == -np.inf
    close(F.logdet(on(a @ a.T + np.eye(3), device)), np.log(np.linalg.det(a @ a.T + np.eye(3))),
          np.float64)  # fmt: skip
    # the top-level names of torch: det, slogdet, logdet, inverse
    close(F.det(on(a, device)), np.linalg.det(a), np.float64)
    close(F.inverse(on(a, device)), np.linalg.inv(a), np.float64, scale=1e4)
    close(F.slogdet(on(a, device)).logabsdet, np.linalg.slogdet(a)[1], np.float64)
    close(LA.det(on(np.zeros((0, 3, 3)), device)), np.zeros(0), np.float64)
    with pytest.raises(F.LinAlgError, match="linalg.inv: the input matrix is singular"):
        LA.inv(on(s, device))
    assert issubclass(F.LinAlgError, RuntimeError) and LA.LinAlgError is F.LinAlgError
    for fn in (LA.inv, LA.det):
        assert_traced(fn, on(a, device))
    assert_traced(lambda x: tuple(LA.slogdet(x)), on(a, device))
    f = fusejit.trace(LA.inv, on(a, device))
    with pytest.raises(F.LinAlgError):  # a traced inv of a singular matrix raises too
        f(on(np.zeros((3, 3)), device))
    for fn, name in ((LA.inv, "inv"), (LA.det, "det"), (LA.slogdet, "slogdet")):
        _refuses(fn, name)


@pytest.mark.parametrize("device", DEVICES)
def test_cholesky(device):
    for d in FLOATS:
        a = spd(2, 3, n=4, dtype=d)
        want = np.linalg.cholesky(a.astype(np.float64))
        close(LA.cholesky(on(a, device)), want, d)
        close(LA.cholesky(on(a, device), upper=True), np.swapaxes(want, -1, -2), d)
    # only the lower triangle is read
    a = spd(n=3)
    garbage = np.tril(a) + np.triu(np.full((3, 3), 99.0), 1)
    close(LA.cholesky(on(garbage, device)), np.linalg.cholesky(a), np.float64)
    close(LA.cholesky(on(a, device).t()), np.linalg.cholesky(a), np.float64)
    with pytest.raises(F.LinAlgError, match="linalg.cholesky: the input matrix is not "
                       "positive-definite"):  # fmt: skip
        LA.cholesky(on(-np.eye(3), device))
    assert_traced(lambda x: LA.cholesky(x, upper=True), on(a, device))
    _refuses(LA.cholesky, "cholesky")


@pytest.mark.parametrize("device", DEVICES)
def test_qr(device):
    for d in FLOATS:
        for shape in ((2, 5, 3), (3, 5), (4, 4)):
            a = rand(*shape, dtype=d)
            m, n = shape[-2:]
            k = min(m, n)
            for mode in ("reduced", "complete"):
                q, r = LA.qr(on(a, device), mode)
                mq = m if mode == "complete" else k
                assert q.shape == shape[:-2] + (m, mq) and r.shape == shape[:-2] + (mq, n)
                q64, r64 = host(q).astype(float), host(r).astype(float)
                close(q, q64, d)  # (dtype)
                close(q64 @ r64, a.astype(float), np.float64, scale=1e6 if d == np.float32 else 1)
                eye = np.broadcast_to(np.eye(mq), q64.shape[:-2] + (mq, mq))
                np.testing.assert_allclose(np.swapaxes(q64, -1, -2) @ q64, eye, atol=1e-5)
                np.testing.assert_array_equal(r64, np.triu(r64))
                # R as LAPACK gives it (numpy's), up to the signs of its rows
                rr = np.linalg.qr(a.astype(float), mode="r")
                close(np.abs(r64[..., :k, :]), np.abs(rr), np.float64, scale=1e6 if
                      d == np.float32 else 1)  # fmt: skip
            q, r = LA.qr(on(a, device), mode="r")
            assert q.shape == (0,) and r.shape == shape[:-2] + (k, n)
    a = rand(4, 3)
    q, r = LA.qr(on(a, device).t())
    np.testing.assert_allclose(host(q) @ host(r), a.T, atol=1e-12)
    assert_traced(lambda x: tuple(LA.qr(x)), on(a, device))
    with pytest.raises(ValueError, match="mode must be 'reduced', 'complete' or 'r'"):
        LA.qr(F.ones(2, 2), "raw")
    _refuses(LA.qr, "qr", square=False)


@pytest.mark.parametrize("device", DEVICES)
def test_svd_svdvals(device):
    for d in FLOATS:
        for shape in ((2, 5, 3), (3, 5)):
            a = rand(*shape, dtype=d)
            m, n = shape[-2:]
            k = min(m, n)
            ws = np.linalg.svd(a.astype(float), compute_uv=False)
            close(LA.svdvals(on(a, device)), ws, d)
            for full in (True, False):
                u, s, vh = LA.svd(on(a, device), full_matrices=full)
                mu, nv = (m, n) if full else (k, k)
                assert u.shape == shape[:-2] + (m, mu) and vh.shape == shape[:-2] + (nv, n)
                close(s, ws, d)
                u64, s64, v64 = (host(t).astype(float) for t in (u, s, vh))
                rec = (u64[..., :, :k] * s64[..., None, :]) @ v64[..., :k, :]
                close(rec, a.astype(float), np.float64, scale=1e6 if d == np.float32 else 1)
    a = rand(4, 3)
    close(LA.svdvals(on(a, device).t()), np.linalg.svd(a.T, compute_uv=False), np.float64)
    assert_traced(lambda x: LA.svd(x, full_matrices=False).S, on(a, device))
    assert_traced(LA.svdvals, on(a, device))
    _refuses(LA.svd, "svd", square=False)
    _refuses(LA.svdvals, "svdvals", square=False)


@pytest.mark.parametrize("device", DEVICES)
def test_eigh_eigvalsh(device):
    for d in FLOATS:
        a = spd(2, 3, n=4, dtype=d) - 5 * np.eye(4, dtype=d)
        w = np.linalg.eigvalsh(a.astype(float))
        close(LA.eigvalsh(on(a, device)), w, d, scale=10)
        vals, vecs = LA.eigh(on(a, device))
        close(vals, w, d, scale=10)
        v = host(vecs).astype(float)
        close(v @ (w[..., :, None] * np.swapaxes(v, -1, -2)), a.astype(float), np.float64,
              scale=1e6 if d == np.float32 else 10)  # fmt: skip
    # UPLO: the other triangle is not read
    a = spd(n=3)
    lower = np.tril(a) + np.triu(np.full((3, 3), 50.0), 1)
    upper = np.triu(a) + np.tril(np.full((3, 3), 50.0), -1)
    w = np.linalg.eigvalsh(a)
    close(LA.eigvalsh(on(lower, device)), w, np.float64, scale=10)
    close(LA.eigvalsh(on(upper, device), UPLO="U"), w, np.float64, scale=10)
    close(LA.eigh(on(upper, device), "U").eigenvalues, w, np.float64, scale=10)
    close(LA.eigvalsh(on(upper, device).t()), w, np.float64, scale=10)
    assert_traced(lambda x: tuple(LA.eigh(x)), on(a, device))
    assert_traced(LA.eigvalsh, on(a, device))
    with pytest.raises(ValueError, match="UPLO must be 'L' or 'U'"):
        LA.eigh(F.eye(2), "X")
    _refuses(LA.eigh, "eigh")
    _refuses(LA.eigvalsh, "eigvalsh")


def _lstsq_ref(a, b, rcond):
    """numpy's lstsq (gelsd) matrix by matrix."""
    batch = np.broadcast_shapes(a.shape[:-2], b.shape[:-2])
    a, b = np.broadcast_to(a, batch + a.shape[-2:]), np.broadcast_to(b, batch + b.shape[-2:])
    sol, res, rank, sv = [], [], [], []
    for i in np.ndindex(batch):
        x, r, k, s = np.linalg.lstsq(a[i], b[i], rcond=rcond)
        sol.append(x), res.append(r), rank.append(k), sv.append(s)
    shape = lambda xs: np.array(xs).reshape(batch + np.shape(xs[0]))  # noqa: E731
    return shape(sol), shape(res), shape(rank), shape(sv)


@pytest.mark.parametrize("device", DEVICES)
def test_lstsq(device):
    for d in FLOATS:
        eps = np.finfo(d).eps
        for sa, sb in (((2, 6, 3), (2, 6, 2)), ((6, 3), (6, 2)), ((3, 5), (3, 2)),
                       ((2, 6, 3), (6, 4))):  # fmt: skip
            a, b = rand(*sa, dtype=d), rand(*sb, dtype=d)
            got = LA.lstsq(on(a, device), on(b, device))
            want = _lstsq_ref(a.astype(float), b.astype(float), eps * max(sa[-2:]))
            for g, w, what in zip(got, want, got._fields):
                if what == "residuals" and sa[-2] <= sa[-1]:
                    assert g.shape == (0,)
                    continue
                if what == "rank":
                    assert_close(g, w.astype(np.int64))
                else:
                    close(g, w, d, scale=10, what=what)
    # rank-deficient: the minimum-norm solution, rank 1
    a = np.array([[1.0, 2.0], [2.0, 4.0], [3.0, 6.0]])
    b = np.array([1.0, 2.0, 3.5])
    r = LA.lstsq(on(a, device), on(b, device))
    x, res, rank, sv = np.linalg.lstsq(a, b, rcond=None)
    close(r.solution, x, np.float64)
    assert host(r.rank) == 1 and r.residuals.shape == ()
    close(r.residuals, np.sum((a @ x - b) ** 2), np.float64)
    close(r.singular_values, sv, np.float64)
    # a transposed A, rcond
    a = rand(3, 5)
    r = LA.lstsq(on(a, device).t(), on(np.ones((5, 1)), device), rcond=0.5)
    w = np.linalg.lstsq(a.T, np.ones((5, 1)), rcond=0.5)
    close(r.solution, w[0], np.float64)
    assert host(r.rank) == w[2]
    assert_traced(lambda x, y: tuple(LA.lstsq(x, y)), on(rand(2, 6, 3), device),
                  on(rand(6, 2), device))  # fmt: skip
    with pytest.raises(F.DTypeError, match="A and B must have one dtype"):
        LA.lstsq(F.ones(3, 2), F.ones(3, dtype=F.float64))
    with pytest.raises(ValueError, match="driver must be one of"):
        LA.lstsq(F.ones(3, 2), F.ones(3), driver="qr")
    with pytest.raises(F.ShapeError, match=r"A of shape \[3, 2\] and B of shape \[4\]"):
        LA.lstsq(F.ones(3, 2), F.ones(4))
    _refuses(LA.lstsq, "lstsq", square=False, n_args=2)


@pytest.mark.parametrize("device", DEVICES)
def test_pinv_matrix_rank(device):
    for d in FLOATS:
        a = rand(2, 5, 3, dtype=d)
        a[0, :, 2] = a[0, :, 0] + a[0, :, 1]  # rank 2
        a64 = a.astype(float)
        close(LA.pinv(on(a, device)), np.linalg.pinv(a64, rcond=np.finfo(d).eps * 5), d,
              scale=100)  # fmt: skip
        assert_close(LA.matrix_rank(on(a, device)), np.array([2, 3]))
        h = spd(2, n=3, dtype=d)
        h[1] = np.diag([2.0, 1.0, 0.0]).astype(d)
        close(LA.pinv(on(h, device), hermitian=True), np.linalg.pinv(h.astype(float),
              hermitian=True), d, scale=100)  # fmt: skip
        assert_close(LA.matrix_rank(on(h, device), hermitian=True), np.array([3, 2]))
    # tolerances: atol alone sets rtol to 0; rtol relative to the largest singular value
    s = np.diag([10.0, 1.0, 1e-3])
    assert host(LA.matrix_rank(on(s, device), atol=0.5)) == 2
    assert host(LA.matrix_rank(on(s, device), rtol=0.05)) == 2
    assert host(LA.matrix_rank(on(s, device), atol=2.0, rtol=0.05)) == 1
    close(LA.pinv(on(s, device), atol=0.5), np.diag([0.1, 1.0, 0.0]), np.float64)
    a = rand(3, 4)
    close(LA.pinv(on(a, device).t()), np.linalg.pinv(a.T), np.float64, scale=100)
    assert_close(LA.matrix_rank(on(np.zeros((2, 0, 3)), device)), np.zeros(2, np.int64))
    assert_traced(LA.pinv, on(a, device))
    assert_traced(LA.matrix_rank, on(a, device))
    with pytest.raises(ValueError, match="atol must be >= 0"):
        LA.pinv(F.eye(2), atol=-1)
    _refuses(LA.pinv, "pinv", square=False)
    _refuses(LA.matrix_rank, "matrix_rank", square=False)


def test_traced_linalg_saves_and_loads(tmp_path):
    a = F.from_numpy(spd(n=3))

    def fn(x):
        q, r = LA.qr(x)
        return LA.solve(x, LA.cholesky(x, upper=True)) + LA.inv(x) @ q, LA.matrix_rank(x)

    f = fusejit.trace(fn, a)
    fusejit.save(f, tmp_path / "la.fjz")
    g = fusejit.load(tmp_path / "la.fjz")
    for w, o in zip(fn(a), g(a)):
        np.testing.assert_array_equal(host(o), host(w))


# (op, input shapes, attributes): the shape rules give the implementations' shapes
SHAPE_CASES = [
    ("linalg_solve", [(2, 3, 3), (3,)], {}),
    ("linalg_solve", [(2, 3, 3), (2, 3)], {}),
    ("linalg_solve", [(3, 3), (4, 3, 2)], {}),
    ("linalg_inv", [(2, 3, 3)], {}),
    ("linalg_det", [(3, 3)], {}),
    ("linalg_slogdet", [(2, 4, 3, 3)], {}),
    ("linalg_cholesky", [(3, 3)], {"upper": True}),
    *[
        ("linalg_qr", [s], {"mode": m})
        for s in ((2, 5, 3), (3, 5))
        for m in ("reduced", "complete", "r")
    ],  # fmt: skip
    *[
        ("linalg_svd", [s], {"full_matrices": f})
        for s in ((2, 5, 3), (3, 5))
        for f in (True, False)
    ],  # fmt: skip
    ("linalg_svdvals", [(2, 5, 3)], {}),
    ("linalg_eigh", [(2, 3, 3)], {"UPLO": "U"}),
    ("linalg_eigvalsh", [(3, 3)], {"UPLO": "L"}),
    ("linalg_pinv", [(2, 5, 3)], {"atol": 0.0, "rtol": 1e-6, "hermitian": False}),
    ("linalg_matrix_rank", [(2, 3, 3)], {"atol": 0.0, "rtol": 1e-6, "hermitian": True}),
    ("linalg_lstsq", [(2, 5, 3), (5, 2)], {"rcond": 1e-6}),
    ("linalg_lstsq", [(2, 5, 3), (2, 5)], {"rcond": 1e-6}),
    ("linalg_lstsq", [(3, 5), (3,)], {"rcond": 1e-6}),
]


@pytest.mark.parametrize("op,shapes,attrs", SHAPE_CASES, ids=[c[0] for c in SHAPE_CASES])
def test_linalg_shape_rules(op, shapes, attrs):
    arrays = [np.eye(*s[-2:]) + np.zeros(s) if len(s) >= 2 else np.ones(s) for s in shapes]
    res = OPS[op].impl(CPU.backend, *arrays, **attrs)
    got = [np.shape(r) for r in res] if isinstance(res, tuple) else [np.shape(res)]
    assert out_shapes(OPS[op], shapes, attrs) == got


def test_linalg_shape_rules_refuse():
    for op, shapes, attrs in (("linalg_inv", [(2, 3)], {}), ("linalg_det", [(3,)], {}),
                              ("linalg_solve", [(3, 3), (4,)], {}),
                              ("linalg_qr", [(3, 3)], {"mode": "raw"}),
                              ("linalg_lstsq", [(3, 2), (2, 4, 1)], {"rcond": 0.1})):  # fmt: skip
        with pytest.raises(ShapeRuleError):
            out_shapes(OPS[op], shapes, attrs)


def test_the_gpu_paths_of_the_implementations_on_numpy(monkeypatch):
    # the impls' cupy branches (inv through solve, the triangle of cholesky / eigh made
    # symmetric, cupyx.errstate for errors), run here on numpy through a stand-in namespace
    import contextlib
    import sys
    import types

    xp = types.SimpleNamespace(**{k: getattr(np, k) for k in dir(np) if not k.startswith("__")})
    seen = []

    def errstate(linalg):
        seen.append(linalg)
        return contextlib.nullcontext()

    monkeypatch.setitem(sys.modules, "cupyx", types.SimpleNamespace(errstate=errstate))
    gpu = types.SimpleNamespace(xp=xp, name="cuda")
    a = spd(2, n=3)
    lower = np.tril(a) + np.triu(np.full((3, 3), 50.0), 1)
    upper = np.triu(a) + np.tril(np.full((3, 3), 50.0), -1)
    np.testing.assert_allclose(OPS["linalg_inv"].impl(gpu, a), np.linalg.inv(a), rtol=1e-12)
    np.testing.assert_allclose(OPS["linalg_cholesky"].impl(gpu, lower, upper=False),
                               np.linalg.cholesky(a), rtol=1e-12)  # fmt: skip
    for tri, uplo in ((lower, "L"), (upper, "U")):
        w = OPS["linalg_eigvalsh"].impl(gpu, tri, UPLO=uplo)
        np.testing.assert_allclose(w, np.linalg.eigvalsh(a), rtol=1e-12)
        w, v = OPS["linalg_eigh"].impl(gpu, tri, UPLO=uplo)
        np.testing.assert_allclose(v @ (w[..., None] * np.swapaxes(v, -1, -2)), a, atol=1e-12)
    got = OPS["linalg_matrix_rank"].impl(gpu, lower, atol=0.0, rtol=1e-12, hermitian=True)
    np.testing.assert_array_equal(got, [3, 3])
    with pytest.raises(F.LinAlgError, match="linalg.inv: the input matrix is singular"):
        OPS["linalg_inv"].impl(gpu, np.zeros((3, 3)))
    assert seen == ["raise", "raise", "raise"]


def test_linalg_docstring_examples():
    import doctest

    from fusejit.eager import linalg_functions

    for mod in (linalg_functions, fusejit.linalg):
        res = doctest.testmod(mod)
        assert res.attempted > 0 and res.failed == 0, mod.__name__


def test_attribute_types_of_a_loaded_graph_are_checked():
    from fusejit.ops.registry import call_problem

    ok = {"atol": 0.0, "rtol": 1e-6, "hermitian": False}
    assert call_problem(OPS["linalg_pinv"], 1, 1, ok) is None
    assert call_problem(OPS["linalg_pinv"], 1, 1, {**ok, "atol": "0"}) == "atol is not a float"
    assert call_problem(OPS["linalg_pinv"], 1, 1, {**ok, "hermitian": 1}) == (
        "hermitian is not a bool"
    )
    assert call_problem(OPS["linalg_qr"], 1, 1, {"mode": 2}) == "mode is not a string"
    assert call_problem(OPS["linalg_cholesky"], 1, 1, {"upper": None}) == "upper is not a bool"
    assert call_problem(OPS["linalg_lstsq"], 2, 2, {"rcond": 1}) == "rcond is not a float"
