"""Matrix products of the op table: ``matmul`` (numpy semantics, batched, broadcast) and
``einsum`` (their public functions are in ``fusejit/eager/linalg.py``), and the
decompositions and solvers of ``fusejit.linalg`` (``fusejit/eager/linalg_functions.py``)."""

from __future__ import annotations

import contextlib

import numpy as np

from fusejit.base import dtypes as dt
from fusejit.base.errors import LinAlgError
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
            raise NotImplementedError(
                f"einsum: no gradient yet for an operand with a repeated subscript ({sub})"
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


def _same(d, **attrs):
    return d


LINALG_SOLVE = register(OpDef(name="linalg_solve", kind="linalg", arity=2, allowed=FLOAT_ONLY,
                              impl=_solve_impl, out_dtype=lambda d, e: d))  # fmt: skip
LINALG_INV = register(OpDef(name="linalg_inv", kind="linalg", arity=1, allowed=FLOAT_ONLY,
                            impl=_inv_impl, out_dtype=_same))  # fmt: skip
LINALG_DET = register(OpDef(name="linalg_det", kind="linalg", arity=1, allowed=FLOAT_ONLY,
                            impl=_det_impl, out_dtype=_same))  # fmt: skip
LINALG_SLOGDET = register(OpDef(name="linalg_slogdet", kind="linalg", arity=1,
                                allowed=FLOAT_ONLY, impl=_slogdet_impl,
                                out_dtype=lambda d: (d, d), n_out=2))  # fmt: skip
LINALG_CHOLESKY = register(OpDef(name="linalg_cholesky", kind="linalg", arity=1,
                                 allowed=FLOAT_ONLY, impl=_cholesky_impl,
                                 out_dtype=_same))  # fmt: skip
LINALG_QR = register(OpDef(name="linalg_qr", kind="linalg", arity=1, allowed=FLOAT_ONLY,
                           impl=_qr_impl, out_dtype=lambda d, mode: (d, d),
                           n_out=2))  # fmt: skip
LINALG_SVD = register(OpDef(name="linalg_svd", kind="linalg", arity=1, allowed=FLOAT_ONLY,
                            impl=_svd_impl, out_dtype=lambda d, full_matrices: (d, d, d),
                            n_out=3))  # fmt: skip
LINALG_SVDVALS = register(OpDef(name="linalg_svdvals", kind="linalg", arity=1,
                                allowed=FLOAT_ONLY, impl=_svdvals_impl,
                                out_dtype=_same))  # fmt: skip
LINALG_EIGH = register(OpDef(name="linalg_eigh", kind="linalg", arity=1, allowed=FLOAT_ONLY,
                             impl=_eigh_impl, out_dtype=lambda d, UPLO: (d, d),
                             n_out=2))  # fmt: skip
LINALG_EIGVALSH = register(OpDef(name="linalg_eigvalsh", kind="linalg", arity=1,
                                 allowed=FLOAT_ONLY, impl=_eigvalsh_impl,
                                 out_dtype=_same))  # fmt: skip
LINALG_PINV = register(OpDef(name="linalg_pinv", kind="linalg", arity=1, allowed=FLOAT_ONLY,
                             impl=_pinv_impl, out_dtype=_same))  # fmt: skip
LINALG_MATRIX_RANK = register(OpDef(name="linalg_matrix_rank", kind="linalg", arity=1,
                                    allowed=FLOAT_ONLY, impl=_matrix_rank_impl,
                                    out_dtype=lambda d, **attrs: dt.int64))  # fmt: skip
LINALG_LSTSQ = register(OpDef(name="linalg_lstsq", kind="linalg", arity=2, allowed=FLOAT_ONLY,
                              impl=_lstsq_impl,
                              out_dtype=lambda d, e, rcond: (d, d, dt.int64, d),
                              n_out=4))  # fmt: skip
