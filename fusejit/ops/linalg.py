"""Matrix products of the op table: ``matmul`` (numpy semantics, batched, broadcast) and
``einsum`` (their public functions are in ``fusejit/eager/linalg.py``), and the
decompositions and solvers of ``fusejit.linalg`` (``fusejit/eager/linalg_functions.py``)."""

from __future__ import annotations

import contextlib
import math

import numpy as np

from fusejit.base import dtypes as dt
from fusejit.base.errors import AutogradError, LinAlgError
from fusejit.ops import grad_helpers as gh
from fusejit.ops.registry import FLOAT_ONLY, NUM, OpDef, register


def _matmul_impl(b, x, y, dtype):
    return b.xp.matmul(x.astype(dtype.np, copy=False), y.astype(dtype.np, copy=False))


def _vjp_matmul(F, ctx, g):
    # 1-D operands are matrices of one row (the first) or one column (the second), as matmul
    # reads them; the engine sums broadcast batch dims away
    a, b = ctx.inputs[0], ctx.inputs[1]
    if a.ndim == 1 and b.ndim == 1:
        return (g * b if ctx.needs_input_grad[0] else None), (g * a if ctx.needs_input_grad[1]
                                                              else None)  # fmt: skip
    a2 = F.unsqueeze(a, 0) if a.ndim == 1 else a
    b2 = F.unsqueeze(b, -1) if b.ndim == 1 else b
    g2 = g
    if a.ndim == 1:
        g2 = F.unsqueeze(g2, -2)
    if b.ndim == 1:
        g2 = F.unsqueeze(g2, -1)
    ga = gb = None
    if ctx.needs_input_grad[0]:
        ga = F.matmul(g2, F.swapaxes(b2, -1, -2))
        if a.ndim == 1:
            ga = F.squeeze(ga, -2)
    if ctx.needs_input_grad[1]:
        gb = F.matmul(F.swapaxes(a2, -1, -2), g2)
        if b.ndim == 1:
            gb = F.squeeze(gb, -1)
    return ga, gb


def _einsum_parts(equation: str, ndims) -> tuple[list[str], str]:
    """The subscripts of each operand and of the result of ``equation``, with ``...`` spelled
    out as capital letters (one per broadcast dim) and an implicit result made explicit."""
    lhs, _, rhs = equation.replace(" ", "").partition("->")
    ins = lhs.split(",")
    n_ell = max((nd - len(t.replace("...", "")) for t, nd in zip(ins, ndims) if "..." in t),
                default=0)  # fmt: skip
    ell = "".join(chr(ord("A") + i) for i in range(n_ell))
    ins = [t.replace("...", ell[n_ell - (nd - len(t.replace("...", ""))):]) for t, nd in
           zip(ins, ndims)]  # fmt: skip
    if "->" in equation:
        out = rhs.replace("...", ell)
    else:
        letters = "".join(ins)
        out = ell + "".join(
            sorted(c for c in set(letters) if letters.count(c) == 1 and c.islower())
        )
    return ins, out


def _vjp_einsum(F, ctx, g):
    ops = [ctx.inputs[i] for i in range(len(ctx.inputs))]
    ins, out = _einsum_parts(ctx.attrs["equation"], [o.ndim for o in ops])
    res = []
    for i, sub in enumerate(ins):
        if not ctx.needs_input_grad[i]:
            res.append(None)
            continue
        if len(set(sub)) != len(sub):
            raise AutogradError(
                f"backward: EinsumBackward0 has no gradient yet for an operand with a repeated "
                f"subscript ({sub!r} in {ctx.attrs['equation']!r})"
            )
        others = [s for j, s in enumerate(ins) if j != i]
        avail = set(out).union(*others)
        target = "".join(c for c in sub if c in avail)
        eq = ",".join([out, *others]) + "->" + target
        r = F.einsum(eq, g, *[o for j, o in enumerate(ops) if j != i])
        shape = ops[i].shape
        sizes = dict(zip(target, r.shape))
        r = F.reshape(r, tuple(sizes.get(c, 1) for c in sub))
        res.append(F.broadcast_to(r, tuple(sizes.get(c, n) for c, n in zip(sub, shape))))
    return tuple(res)


MATMUL = register(
    OpDef(name="matmul", kind="matmul", arity=2, allowed=NUM, impl=_matmul_impl,
          out_dtype=lambda a, b, dtype: dtype,
          methods=("matmul", "__matmul__", "dot", "mv", "bmm"), rmethods=("__rmatmul__",),
          vjp=_vjp_matmul)
)  # fmt: skip


def _linear_impl(b, x, w, *bias, dtype):
    r = b.xp.matmul(x.astype(dtype.np, copy=False), w.astype(dtype.np, copy=False).T)
    if bias:
        r += bias[0].astype(dtype.np, copy=False)  # (r is new: the bias added in place)
    return r


def _vjp_linear(F, ctx, g):
    # x [..., in], w [out, in], bias broadcasting to [out]: the three gradients directly (the
    # weight's over the leading dims flattened into one), not through matmul, a transpose and
    # an add, each recorded and differentiated on its own
    need = ctx.needs_input_grad
    x, w = ctx.inputs[0], ctx.inputs[1]
    gx = F.matmul(g, w) if need[0] else None
    gw = gb = None
    has_bias = len(need) > 2
    if need[1] or (has_bias and need[2]):
        g2 = g if g.ndim == 2 else F.reshape(g, (math.prod(g.shape[:-1]), g.shape[-1]))
        if need[1]:
            x2 = x if x.ndim == 2 else F.reshape(x, (math.prod(x.shape[:-1]), x.shape[-1]))
            gw = F.matmul(F.swapaxes(g2, 0, 1), x2)
        if has_bias and need[2]:
            gb = F.sum(g2, 0)  # (the engine sums it further to a bias of one element)
    return (gx, gw, gb) if has_bias else (gx, gw)


# ``x @ w.T (+ bias)`` with a weight of two dims (``torch.nn.functional.linear``): one op in
# eager calls, so that a layer records one autograd node and its backward three products. Eager
# only: a trace records its decomposition (permute, matmul, add; ``fusejit/eager/linalg.py``),
# which the JIT's matmul epilogue fusion and every exporter take.
LINEAR = register(
    OpDef(name="linear", kind="matmul", arity=3, allowed=NUM, impl=_linear_impl,
          out_dtype=lambda *ds, dtype: dtype, vjp=_vjp_linear)
)  # fmt: skip


def _einsum_impl(b, *arrays, equation, dtype):
    return b.xp.einsum(equation, *[a.astype(dtype.np, copy=False) for a in arrays],
                       optimize=len(arrays) > 2)  # fmt: skip


EINSUM = register(
    OpDef(name="einsum", kind="matmul", arity=-1, allowed=NUM, impl=_einsum_impl,
          out_dtype=lambda *ds, equation, dtype: dtype, vjp=_vjp_einsum)
)  # fmt: skip


# --- fusejit.linalg: decompositions and solvers (float32 / float64, batched over leading dims).
# Their public functions (which check dtypes and shapes) are in fusejit/eager/linalg_functions.py.
# numpy on the CPU, cupy.linalg on the GPU; where cupy lacks a batched form, the same result is
# written with what it has (solve, svd, eigh).


@contextlib.contextmanager
def _raising(b, name: str, what: str):
    """numpy's (and cupy's) LinAlgError as fusejit's, saying ``what`` in the user's terms. cupy
    only checks cuSOLVER's status under ``cupyx.errstate(linalg="raise")`` (else it returns
    NaN), so the GPU path runs under it."""
    if b.xp is np:
        ctx = contextlib.nullcontext()
    else:
        import cupyx  # (cupy's extension module: only on the GPU path, cupy being optional)

        ctx = cupyx.errstate(linalg="raise")
    errors = (np.linalg.LinAlgError, getattr(b.xp.linalg, "LinAlgError", np.linalg.LinAlgError))
    try:
        with ctx:
            yield
    except errors:
        raise LinAlgError(f"linalg.{name}: {what}") from None


def _batch(*shapes) -> tuple:
    """The broadcast batch shape of matrices of ``shapes``."""
    return tuple(np.broadcast_shapes(*[s[:-2] for s in shapes]))


def _is_vector_rhs(a_shape, b_shape) -> bool:
    """PyTorch's rule for ``solve`` / ``lstsq``: B is a (batch of) vector(s) when it is 1-D or
    has A's shape without its last dim."""
    return len(b_shape) == 1 or tuple(b_shape) == tuple(a_shape[:-1])


def _mT(xp, a):
    return xp.swapaxes(a, -1, -2)


def _solve_impl(b, a, rhs):
    xp = b.xp
    vector = _is_vector_rhs(a.shape, rhs.shape)
    r = rhs[..., None] if vector else rhs
    batch = _batch(a.shape, r.shape)
    a = xp.ascontiguousarray(xp.broadcast_to(a, batch + a.shape[-2:]))
    r = xp.ascontiguousarray(xp.broadcast_to(r, batch + r.shape[-2:]))
    with _raising(b, "solve", "the input matrix A is singular"):
        out = xp.linalg.solve(a, r)
    return out[..., 0] if vector else out


def _inv_impl(b, a):
    xp = b.xp
    with _raising(b, "inv", "the input matrix is singular"):
        if xp is np:
            return np.linalg.inv(a)
        eye = xp.broadcast_to(xp.eye(a.shape[-1], dtype=a.dtype), a.shape)
        return xp.linalg.solve(a, eye)  # (batched on every cupy version)


def _det_impl(b, a):
    xp = b.xp
    if a.size == 0:  # (no matrices, or 0 by 0 ones: det 1)
        return xp.ones(a.shape[:-2], a.dtype)
    return xp.asarray(xp.linalg.det(a))


def _slogdet_impl(b, a):
    xp = b.xp
    if a.size == 0:
        return xp.ones(a.shape[:-2], a.dtype), xp.zeros(a.shape[:-2], a.dtype)
    sign, logabs = xp.linalg.slogdet(a)
    return xp.asarray(sign), xp.asarray(logabs)


def _symmetric(b, a, UPLO: str = "L"):  # noqa: N803
    """On the GPU, the symmetric matrix of ``a``'s ``UPLO`` triangle: the other triangle is
    never read, on every device (LAPACK, on the CPU, reads the one triangle itself)."""
    xp = b.xp
    if xp is np:
        return a
    if UPLO == "L":
        return xp.tril(a) + _mT(xp, xp.tril(a, -1))
    return xp.triu(a) + _mT(xp, xp.triu(a, 1))


def _cholesky_impl(b, a, upper):
    xp = b.xp
    with _raising(b, "cholesky", "the input matrix is not positive-definite"):
        low = xp.linalg.cholesky(_symmetric(b, a))
    return xp.ascontiguousarray(_mT(xp, low)) if upper else low


def _qr_impl(b, a, mode):
    xp = b.xp
    if mode == "r":
        r = xp.linalg.qr(a, mode="r")
        return xp.empty((0,), a.dtype), r
    q, r = xp.linalg.qr(a, mode=mode)
    return q, r


def _svd_impl(b, a, full_matrices):
    xp = b.xp
    u, s, vh = xp.linalg.svd(a, full_matrices=full_matrices)
    return u, s, vh


def _singular_values(xp, a):
    """The singular values of ``a`` (..., m, n); none for m or n 0 (without calling the
    library, which may not take empty matrices)."""
    if 0 in a.shape[-2:] or a.size == 0:
        return xp.zeros(a.shape[:-2] + (min(a.shape[-2:]),), a.dtype)
    return xp.linalg.svd(a, compute_uv=False)


def _svdvals_impl(b, a):
    return _singular_values(b.xp, a)


def _eigh_impl(b, a, UPLO):  # noqa: N803 - torch's name
    w, v = b.xp.linalg.eigh(_symmetric(b, a, UPLO), UPLO=UPLO)
    return w, v


def _eigvalsh_impl(b, a, UPLO):  # noqa: N803
    return b.xp.linalg.eigvalsh(_symmetric(b, a, UPLO), UPLO=UPLO)


def _cutoff(xp, s, atol: float, rtol: float):
    """The singular values (or |eigenvalues|) ``s`` (..., k) kept: above max(atol, rtol * the
    largest), as ``torch.linalg.pinv`` / ``matrix_rank``."""
    if s.shape[-1] == 0:
        return xp.zeros(s.shape, bool)
    big = s.max(axis=-1, keepdims=True)
    return s > xp.maximum(atol, rtol * big)


def _pinv_impl(b, a, atol, rtol, hermitian):
    xp = b.xp
    if a.size == 0:
        return xp.zeros(a.shape[:-2] + a.shape[-2:][::-1], a.dtype)
    if hermitian:
        w, v = xp.linalg.eigh(_symmetric(b, a))
        keep = _cutoff(xp, xp.abs(w), atol, rtol)
        inv = xp.where(keep, 1 / xp.where(keep, w, 1), 0).astype(a.dtype)
        return xp.matmul(v * inv[..., None, :], _mT(xp, v))
    u, s, vh = xp.linalg.svd(a, full_matrices=False)
    keep = _cutoff(xp, s, atol, rtol)
    inv = xp.where(keep, 1 / xp.where(keep, s, 1), 0).astype(a.dtype)
    return xp.matmul(_mT(xp, vh) * inv[..., None, :], _mT(xp, u))


def _matrix_rank_impl(b, a, atol, rtol, hermitian):
    xp = b.xp
    if hermitian and a.size:
        s = xp.abs(xp.linalg.eigvalsh(_symmetric(b, a)))
    else:
        s = _singular_values(xp, a)
    return _cutoff(xp, s, atol, rtol).sum(axis=-1).astype(xp.int64)


def _lstsq_impl(b, a, rhs, rcond):
    """Least squares through the SVD (LAPACK's gelsd; cupy has no batched lstsq): the
    minimum-norm solution, the squared residuals (when m > n), the rank and the singular
    values."""
    xp = b.xp
    m, n = a.shape[-2:]
    vector = _is_vector_rhs(a.shape, rhs.shape)
    r = rhs[..., None] if vector else rhs
    batch = _batch(a.shape, r.shape)
    a = xp.ascontiguousarray(xp.broadcast_to(a, batch + a.shape[-2:]))
    r = xp.broadcast_to(r, batch + r.shape[-2:])
    u, s, vh = xp.linalg.svd(a, full_matrices=False)
    keep = _cutoff(xp, s, 0.0, rcond)
    inv = xp.where(keep, 1 / xp.where(keep, s, 1), 0).astype(a.dtype)
    x = xp.matmul(_mT(xp, vh), inv[..., :, None] * xp.matmul(_mT(xp, u), r))
    if m > n:
        res = ((xp.matmul(a, x) - r) ** 2).sum(axis=-2)
    else:
        res = xp.empty((0,), a.dtype)
    if vector:
        x = x[..., 0]
        if m > n:
            res = res[..., 0]
    rank = keep.sum(axis=-1).astype(xp.int64)
    return xp.ascontiguousarray(x), res, rank, s


# --- derivative rules (``OpDef.vjp``) of the decompositions and solvers, PyTorch's formulas
# for real matrices, written with public functions only (``F``). The ones reading one triangle
# of a symmetric matrix (cholesky, eigh, eigvalsh) give, as PyTorch's, the symmetric gradient:
# right for any function of a symmetric input (such as ``X @ X.mT``).


def _vec(t, vector: bool, F):
    return F.unsqueeze(t, -1) if vector else t


def _solve_vjp(F, ctx, g):
    a, rhs = ctx.inputs[0], gh.meta(ctx, 1)
    vector = _is_vector_rhs(a.shape, rhs.shape)
    x, g = _vec(ctx.outputs[0], vector, F), _vec(g, vector, F)
    gb = F.linalg.solve(gh.mT(F, a), g)
    ga = -F.matmul(gb, gh.mT(F, x))
    gb = F.squeeze(gb, -1) if vector else gb
    return gh.sum_to(F, ga, a.shape), gh.sum_to(F, gb, rhs.shape)


def _inv_vjp(F, ctx, g):
    t = gh.mT(F, ctx.outputs[0])
    return (-F.matmul(F.matmul(t, g), t),)


def _det_vjp(F, ctx, g):
    a, det = ctx.inputs[0], ctx.outputs[0]
    scale = F.unsqueeze(F.unsqueeze(g * det, -1), -1)
    return (scale * gh.mT(F, F.linalg.inv(a)),)


def _slogdet_vjp(F, ctx, g_sign, g_logabs):
    if g_logabs is None:
        return (None,)
    a = ctx.inputs[0]
    return (F.unsqueeze(F.unsqueeze(g_logabs, -1), -1) * gh.mT(F, F.linalg.inv(a)),)


def _right_solve_t(F, x, r):
    """``x @ inv(r).mT`` (``r`` square, invertible)."""
    return gh.mT(F, F.linalg.solve(r, gh.mT(F, x)))


def _cholesky_vjp(F, ctx, g):
    low = ctx.outputs[0]
    if ctx.attrs["upper"]:
        low, g = gh.mT(F, low), gh.mT(F, g)
    lt = gh.mT(F, low)
    phi = F.tril(F.matmul(lt, g))
    phi = 0.5 * (phi + gh.mT(F, F.tril(phi, -1)))
    # inv(L).mT @ phi @ inv(L)
    return (_right_solve_t(F, F.linalg.solve(lt, phi), lt),)


def _copyltu(F, m):
    """The symmetric matrix of ``m``'s lower triangle."""
    return F.tril(m) + gh.mT(F, F.tril(m, -1))


def _qr_square_vjp(F, q, r, gq, gr):
    """The gradient of A = Q R with R square (m >= n, Q with orthonormal columns)."""
    m = F.matmul(r, gh.mT(F, gr)) - F.matmul(gh.mT(F, gq), q)
    return _right_solve_t(F, gq + F.matmul(q, _copyltu(F, m)), r)


def _qr_vjp(F, ctx, gq, gr):
    q, r = ctx.outputs
    a = ctx.inputs[0]
    rows, cols = a.shape[-2:]
    mode = ctx.attrs["mode"]
    if mode == "r":
        raise LinAlgError(
            "linalg.qr: the derivative depends on Q, which mode='r' does not compute; use "
            "mode='reduced' to differentiate through linalg.qr"
        )
    if mode == "complete" and rows > cols:
        raise LinAlgError(
            "linalg.qr: the QR decomposition is not differentiable when mode='complete' and "
            f"the matrix has more rows than columns ({rows} > {cols})"
        )
    gq = F.zeros_like(q) if gq is None else gq
    gr = F.zeros_like(r) if gr is None else gr
    if rows >= cols:
        return (_qr_square_vjp(F, q, r, gq, gr),)
    # A = Q [U | V] with U square: the gradient of the right part is Q gV
    k = rows
    y = F.narrow(a, -1, k, cols - k)
    gv = F.narrow(gr, -1, k, cols - k)
    gu = F.narrow(gr, -1, 0, k)
    gx = _qr_square_vjp(F, q, F.narrow(r, -1, 0, k), gq + F.matmul(y, gh.mT(F, gv)), gu)
    return (F.cat([gx, F.matmul(q, gv)], dim=-1),)


def _row(t, F):
    """``t`` (..., k) as (..., 1, k), to scale the columns of a matrix."""
    return F.unsqueeze(t, -2)


def _eigh_vjp(F, ctx, gw, gv):
    w, v = ctx.outputs
    n = w.shape[-1]
    eye = F.eye(n, dtype=w.dtype, device=w.device)
    inner = gh.zeros(F, v, v.shape) if gv is None else None
    if gv is not None:
        vtg = F.matmul(gh.mT(F, v), gv)
        skew = 0.5 * (vtg - gh.mT(F, vtg))
        inner = skew / (_row(w, F) - F.unsqueeze(w, -1) + eye)  # (its diagonal is 0)
    if gw is not None:
        inner = inner + F.diag_embed(gw)
    return (F.matmul(F.matmul(v, inner), gh.mT(F, v)),)


def _eigvalsh_vjp(F, ctx, g):
    v = F.linalg.eigh(ctx.inputs[0], ctx.attrs["UPLO"]).eigenvectors
    return (F.matmul(v * _row(g, F), gh.mT(F, v)),)


def _svdvals_grad(F, a, g):
    u, _, vh = F.linalg.svd(a, full_matrices=False)
    return F.matmul(u * _row(g, F), vh)


def _svdvals_vjp(F, ctx, g):
    return (_svdvals_grad(F, ctx.inputs[0], g),)


def _svd_vjp(F, ctx, gu, gs, gvh):
    """PyTorch's formula; with ``full_matrices`` and a matrix that is not square, only the
    first min(m, n) singular vectors count (as PyTorch's)."""
    u, s, vh = ctx.outputs
    k = s.shape[-1]
    if ctx.attrs["full_matrices"]:
        u, vh = F.narrow(u, -1, 0, k), F.narrow(vh, -2, 0, k)
        gu = None if gu is None else F.narrow(gu, -1, 0, k)
        gvh = None if gvh is None else F.narrow(gvh, -2, 0, k)
    v = gh.mT(F, vh)
    if gu is None and gvh is None:
        inner = F.diag_embed(gs)
        return (F.matmul(F.matmul(u, inner), vh),)
    eye = F.eye(k, dtype=s.dtype, device=s.device)
    s2 = s * s
    e = _row(s2, F) - F.unsqueeze(s2, -1) + eye
    inner = gh.zeros(F, s, tuple(s.shape) + (k,))
    ga = None
    if gu is not None:
        utg = F.matmul(gh.mT(F, u), gu)
        inner = inner + (utg - gh.mT(F, utg)) / e * _row(s, F)
        ga = F.matmul(gu - F.matmul(u, utg), vh / F.unsqueeze(s, -1))
    if gvh is not None:
        gv = gh.mT(F, gvh)
        vtg = F.matmul(gh.mT(F, v), gv)
        inner = inner + F.unsqueeze(s, -1) * ((vtg - gh.mT(F, vtg)) / e)
        part = F.matmul(u / _row(s, F), gh.mT(F, gv - F.matmul(v, vtg)))
        ga = part if ga is None else ga + part
    if gs is not None:
        inner = inner + F.diag_embed(gs)
    ga_inner = F.matmul(F.matmul(u, inner), vh)
    return (ga_inner + ga,)


def _pinv_grad(F, g, p, a):
    """PyTorch's derivative of ``p = pinv(a)`` (constant rank)."""
    rows, cols = a.shape[-2:]
    ph, gt = gh.mT(F, p), gh.mT(F, g)
    mm = F.matmul
    if rows <= cols:
        k = mm(gt, p)
        kph = mm(k, ph)
        return -gh.mT(F, mm(p, k)) + kph - mm(mm(a, p), kph) + mm(mm(ph, p), gt - mm(k, a))
    k = mm(p, gt)
    phk = mm(ph, k)
    return -gh.mT(F, mm(k, p)) + mm(mm(gt - mm(a, k), p), ph) + phk - mm(mm(phk, p), a)


def _pinv_vjp(F, ctx, g):
    return (_pinv_grad(F, g, ctx.outputs[0], ctx.inputs[0]),)


def _lstsq_vjp(F, ctx, gx, gres=None, grank=None, gsv=None):
    """The solution's gradient as PyTorch's (through the pseudo-inverse); also those of the
    squared residuals and of the singular values, which PyTorch leaves out."""
    a, rhs = ctx.inputs
    x, res, _, _ = ctx.outputs
    rows, cols = a.shape[-2:]
    vector = _is_vector_rhs(a.shape, rhs.shape)
    b2 = F.broadcast_to(_vec(rhs, vector, F), tuple(x.shape[:-1 if vector else -2])
                        + (rows, 1 if vector else rhs.shape[-1]))  # fmt: skip
    x2 = _vec(x, vector, F)
    a2 = F.broadcast_to(a, tuple(b2.shape[:-2]) + (rows, cols))
    ga = gb = None
    if gx is not None:
        p = F.linalg.pinv(a2, atol=0.0, rtol=ctx.attrs["rcond"])
        gx = _vec(gx, vector, F)
        gb = F.matmul(gh.mT(F, p), gx)
        ga = _pinv_grad(F, F.matmul(gx, gh.mT(F, b2)), p, a2)
    if gres is not None and rows > cols:
        r = F.matmul(a2, x2) - b2
        wr = 2 * r * _row(gres, F) if not vector else 2 * r * F.unsqueeze(F.unsqueeze(gres, -1), -1)
        ga = F.matmul(wr, gh.mT(F, x2)) if ga is None else ga + F.matmul(wr, gh.mT(F, x2))
        gb = -wr if gb is None else gb - wr
    if gsv is not None:
        part = _svdvals_grad(F, a2, gsv)
        ga = part if ga is None else ga + part
    if gb is not None:
        gb = gh.sum_to(F, F.squeeze(gb, -1) if vector else gb, rhs.shape)
    if ga is not None:
        ga = gh.sum_to(F, ga, a.shape)
    return ga, gb


def _same(d, **attrs):
    return d


LINALG_SOLVE = register(OpDef(name="linalg_solve", kind="linalg", arity=2, allowed=FLOAT_ONLY,
                              impl=_solve_impl, out_dtype=lambda d, e: d,
                              vjp=_solve_vjp))  # fmt: skip
LINALG_INV = register(OpDef(name="linalg_inv", kind="linalg", arity=1, allowed=FLOAT_ONLY,
                            impl=_inv_impl, out_dtype=_same, vjp=_inv_vjp))  # fmt: skip
LINALG_DET = register(OpDef(name="linalg_det", kind="linalg", arity=1, allowed=FLOAT_ONLY,
                            impl=_det_impl, out_dtype=_same, vjp=_det_vjp))  # fmt: skip
LINALG_SLOGDET = register(OpDef(name="linalg_slogdet", kind="linalg", arity=1,
                                allowed=FLOAT_ONLY, impl=_slogdet_impl,
                                out_dtype=lambda d: (d, d), n_out=2, vjp=_slogdet_vjp))  # fmt: skip
LINALG_CHOLESKY = register(OpDef(name="linalg_cholesky", kind="linalg", arity=1,
                                 allowed=FLOAT_ONLY, impl=_cholesky_impl,
                                 out_dtype=_same, vjp=_cholesky_vjp))  # fmt: skip
LINALG_QR = register(OpDef(name="linalg_qr", kind="linalg", arity=1, allowed=FLOAT_ONLY,
                           impl=_qr_impl, out_dtype=lambda d, mode: (d, d),
                           n_out=2, vjp=_qr_vjp))  # fmt: skip
LINALG_SVD = register(OpDef(name="linalg_svd", kind="linalg", arity=1, allowed=FLOAT_ONLY,
                            impl=_svd_impl, out_dtype=lambda d, full_matrices: (d, d, d),
                            n_out=3, vjp=_svd_vjp))  # fmt: skip
LINALG_SVDVALS = register(OpDef(name="linalg_svdvals", kind="linalg", arity=1,
                                allowed=FLOAT_ONLY, impl=_svdvals_impl,
                                out_dtype=_same, vjp=_svdvals_vjp))  # fmt: skip
LINALG_EIGH = register(OpDef(name="linalg_eigh", kind="linalg", arity=1, allowed=FLOAT_ONLY,
                             impl=_eigh_impl, out_dtype=lambda d, UPLO: (d, d),
                             n_out=2, vjp=_eigh_vjp))  # fmt: skip
LINALG_EIGVALSH = register(OpDef(name="linalg_eigvalsh", kind="linalg", arity=1,
                                 allowed=FLOAT_ONLY, impl=_eigvalsh_impl,
                                 out_dtype=_same, vjp=_eigvalsh_vjp))  # fmt: skip
LINALG_PINV = register(OpDef(name="linalg_pinv", kind="linalg", arity=1, allowed=FLOAT_ONLY,
                             impl=_pinv_impl, out_dtype=_same, vjp=_pinv_vjp))  # fmt: skip
LINALG_MATRIX_RANK = register(OpDef(name="linalg_matrix_rank", kind="linalg", arity=1,
                                    allowed=FLOAT_ONLY, impl=_matrix_rank_impl,
                                    out_dtype=lambda d, **attrs: dt.int64,
                                    differentiable=False))  # fmt: skip
LINALG_LSTSQ = register(OpDef(name="linalg_lstsq", kind="linalg", arity=2, allowed=FLOAT_ONLY,
                              impl=_lstsq_impl,
                              out_dtype=lambda d, e, rcond: (d, d, dt.int64, d),
                              n_out=4, vjp=_lstsq_vjp))  # fmt: skip
