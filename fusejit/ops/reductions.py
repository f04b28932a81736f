"""Reductions, normalizations and scans of the op table (their public functions:
``fusejit/eager/reductions.py``).

Accumulation: float16 inputs are accumulated in float32 and the result rounded to float16 (as
PyTorch does: ``registry.accumulation_dtype``); var, std, prod and cumprod of float32 in float64
(``registry.wide_accumulation_dtype``); sums and products of bool and integer tensors are int64.
The reductions row kernels compute state how in their ``Reduce`` facts.
"""

from __future__ import annotations

import builtins

import numpy as np

from fusejit.base import dtypes as dt
from fusejit.base.errors import ShapeError, fmt_shape
from fusejit.ops.registry import (
    ANY,
    NUM,
    OpDef,
    Reduce,
    accumulation_dtype,
    register,
    wide_accumulation_dtype,
)


def _dtype_of(a) -> dt.DType:
    """The fusejit dtype of array ``a``."""
    d = dt._BY_NP.get(a.dtype)
    return d if d is not None else dt.as_dtype(a.dtype)


def _float_out(d, **_):
    return d if d.is_floating_point else dt.default_float


def _sum_out(d, **attrs):
    if attrs.get("dtype") is not None:
        return attrs["dtype"]
    return dt.int64 if not d.is_floating_point else d


def _check_nonempty(name, a, dims):
    shape = a.shape
    axes = range(len(shape)) if dims is None else dims
    if builtins.any(shape[i] == 0 for i in axes) or (dims is None and a.size == 0):
        raise ShapeError(
            f"{name}: cannot reduce over an empty dimension of a tensor of shape "
            f"{fmt_shape(shape)} (the operation has no identity)"
        )


def _sum_impl(b, a, dim=None, keepdim=False, dtype=None):
    xp = b.xp
    out = _sum_out(_dtype_of(a), dtype=dtype)
    acc = accumulation_dtype(out).np
    r = a.sum(axis=dim, keepdims=keepdim, dtype=acc)  # the method: numpy's and cupy's
    return xp.asarray(r, dtype=out.np)


def _prod_impl(b, a, dim=None, keepdim=False, dtype=None):
    xp = b.xp
    out = _sum_out(_dtype_of(a), dtype=dtype)
    acc = wide_accumulation_dtype(out).np
    return xp.asarray(a.prod(axis=dim, keepdims=keepdim, dtype=acc), dtype=out.np)


def _mean_impl(b, a, dim=None, keepdim=False):
    xp = b.xp
    out = _float_out(_dtype_of(a))
    acc = accumulation_dtype(out).np
    return xp.asarray(a.mean(axis=dim, keepdims=keepdim, dtype=acc), dtype=out.np)


def _var_impl(b, a, dim=None, correction=1, keepdim=False, sqrt=False):
    xp = b.xp
    out = _float_out(_dtype_of(a))
    acc = wide_accumulation_dtype(out).np  # (the square root too: std of 1e20 fits float32)
    r = xp.var(a.astype(acc, copy=False), axis=dim, ddof=correction, keepdims=keepdim)
    if sqrt:
        r = xp.sqrt(r)
    return xp.asarray(r, dtype=out.np)


def _amax_impl(b, a, dim=None, keepdim=False):
    _check_nonempty("amax", a, dim)
    return b.xp.asarray(a.max(axis=dim, keepdims=keepdim))


def _amin_impl(b, a, dim=None, keepdim=False):
    _check_nonempty("amin", a, dim)
    return b.xp.asarray(a.min(axis=dim, keepdims=keepdim))


def _arg_impl(fn):
    def impl(b, a, dim=None, keepdim=False):
        _check_nonempty(fn, a, None if dim is None else (dim,))
        r = getattr(b.xp, fn)(a, axis=dim, keepdims=keepdim)
        return b.xp.asarray(r, dtype=np.int64)

    return impl


def _max_dim_impl(fn, argfn):
    def impl(b, a, dim, keepdim=False):
        _check_nonempty(fn, a, (dim,))
        xp = b.xp
        idx = getattr(xp, argfn)(a, axis=dim, keepdims=True)
        vals = xp.take_along_axis(a, idx, axis=dim)
        if not keepdim:
            vals = xp.squeeze(vals, axis=dim)
            idx = xp.squeeze(idx, axis=dim)
        return vals, idx.astype(np.int64)

    return impl


def _logsumexp_impl(b, a, dim=None, keepdim=False):
    xp = b.xp
    out = _float_out(_dtype_of(a))
    acc = accumulation_dtype(out).np
    x = a.astype(acc, copy=False)
    if x.size == 0:
        return xp.asarray(xp.log(xp.sum(xp.exp(x), axis=dim, keepdims=keepdim)), dtype=out.np)
    m = xp.max(x, axis=dim, keepdims=True)
    m = xp.where(xp.isfinite(m), m, xp.zeros_like(m))
    r = xp.log(xp.sum(xp.exp(x - m), axis=dim, keepdims=True)) + m
    if not keepdim:
        r = r.reshape(xp.sum(x, axis=dim, keepdims=False).shape)
    return xp.asarray(r, dtype=out.np)


def _all_impl(b, a, dim=None, keepdim=False):
    return b.xp.asarray(b.xp.all(a, axis=dim, keepdims=keepdim))


def _any_impl(b, a, dim=None, keepdim=False):
    return b.xp.asarray(b.xp.any(a, axis=dim, keepdims=keepdim))


def _softmax_impl(b, a, dim, log=False):
    xp = b.xp
    out = _float_out(_dtype_of(a))
    acc = accumulation_dtype(out).np
    x = a.astype(acc, copy=False)
    if x.size == 0:
        return x.astype(out.np)
    # No guard for rows whose max is +-inf or nan: they give nan, as in PyTorch.
    m = x.max(axis=dim, keepdims=True)
    z = x - m
    e = xp.exp(z)
    s = e.sum(axis=dim, keepdims=True)
    if log:
        z -= xp.log(s)  # z and e are temporaries of this function: in place
        r = z
    else:
        e /= s
        r = e
    return r.astype(out.np, copy=False)


def _layer_norm_impl(b, a, *wb, normalized_ndim, eps=1e-5, has_weight=False, has_bias=False):
    xp = b.xp
    out = _float_out(_dtype_of(a))
    acc = accumulation_dtype(out).np
    x = a.astype(acc, copy=False)
    axes = tuple(range(a.ndim - normalized_ndim, a.ndim))
    mu = xp.mean(x, axis=axes, keepdims=True)
    if x.size:
        # a constant row's mean is its value exactly, as PyTorch's Welford mean is (a sum
        # divided by n is off by an ulp or so): the row normalizes to 0, and to nan with eps=0
        hi = xp.max(x, axis=axes, keepdims=True)
        mu = xp.where(hi == xp.min(x, axis=axes, keepdims=True), hi, mu)
    xc = x - mu
    var = xp.mean(xc * xc, axis=axes, keepdims=True)
    y = xc / xp.sqrt(var + eps)
    it = iter(wb)
    if has_weight:
        y = y * next(it)
    if has_bias:
        y = y + next(it)
    return y.astype(out.np, copy=False)


# ---- derivative rules (``OpDef.vjp``, see ``registry``) ------------------------------------------
def _rdims(ctx):
    """(operand shape, reduced dims as a tuple, keepdim) of a reduction's ``ctx``."""
    shape = ctx.input_meta(0)[0]
    dims = ctx.attrs.get("dim")
    if dims is None:
        dims = tuple(range(len(shape)))
    elif isinstance(dims, int):
        dims = (dims,)
    return shape, tuple(d % len(shape) for d in dims) if shape else (), ctx.attrs.get("keepdim")


def _keep(F, t, shape, dims, keepdim):
    """``t`` (a reduction's result or its gradient) with the reduced dims kept as size 1 (a
    0-d ``t``, every dim reduced, broadcasts as it is: one op less in each backward)."""
    if keepdim or not shape or not t.shape:
        return t
    return F.reshape(t, tuple(1 if i in dims else s for i, s in enumerate(shape)))


def _count(shape, dims) -> int:
    n = 1
    for d in dims:
        n *= shape[d]
    return n


def _vjp_sum(F, ctx, g):
    shape, dims, keepdim = _rdims(ctx)
    return (F.broadcast_to(_keep(F, g, shape, dims, keepdim), shape),)


def _vjp_mean(F, ctx, g):
    shape, dims, keepdim = _rdims(ctx)
    gk = _keep(F, g, shape, dims, keepdim) / _count(shape, dims)
    return (F.broadcast_to(gk, shape),)


def _vjp_prod(F, ctx, g):
    # zeros: the one zero of a slice gets the product of the others, every other entry 0
    shape, dims, keepdim = _rdims(ctx)
    x = ctx.inputs[0]
    d = dims if shape else None
    zero = x == 0
    safe = F.where(zero, 1.0, x)
    nz_prod = F.prod(safe, dim=d, keepdim=True) if shape else safe
    n_zero = F.sum(zero, dim=d, keepdim=True) if shape else F.cast(zero, F.int64)
    out = _keep(F, ctx.outputs[0], shape, dims, keepdim)
    gk = _keep(F, g, shape, dims, keepdim)
    at_zero = F.where(n_zero == 1, nz_prod, 0.0)
    return (gk * F.where(zero, at_zero, out / safe),)


def _vjp_amax(F, ctx, g):
    # ties share the gradient evenly, as PyTorch's amax / amin
    shape, dims, keepdim = _rdims(ctx)
    x = ctx.inputs[0]
    out = _keep(F, ctx.outputs[0], shape, dims, keepdim)
    mask = x == out
    cnt = F.sum(mask, dim=dims if shape else None, keepdim=True) if shape else 1
    return (F.where(mask, _keep(F, g, shape, dims, keepdim) / cnt, 0.0),)


def _vjp_max_dim(F, ctx, g, gi=None):
    # the gradient goes to the element the index names
    shape = ctx.input_meta(0)[0]
    dim, keepdim = ctx.attrs["dim"] % len(shape), ctx.attrs.get("keepdim")
    idx = _keep(F, ctx.outputs[1], shape, (dim,), keepdim)
    ar = F.arange(shape[dim], device=g.device)
    ar = F.reshape(ar, tuple(shape[dim] if i == dim else 1 for i in range(len(shape))))
    return (F.where(ar == idx, _keep(F, g, shape, (dim,), keepdim), 0.0),)


def _vjp_var(F, ctx, g):
    shape, dims, keepdim = _rdims(ctx)
    x = ctx.inputs[0]
    n = _count(shape, dims) - ctx.attrs.get("correction", 1)
    xc = x - F.mean(x, dim=dims if shape else None, keepdim=True) if shape else x - x
    gk = _keep(F, g, shape, dims, keepdim)
    if ctx.attrs.get("sqrt"):
        return (gk * xc / (n * _keep(F, ctx.outputs[0], shape, dims, keepdim)),)
    return (gk * xc * (2.0 / n),)


def _vjp_logsumexp(F, ctx, g):
    shape, dims, keepdim = _rdims(ctx)
    out = _keep(F, ctx.outputs[0], shape, dims, keepdim)
    return (_keep(F, g, shape, dims, keepdim) * F.exp(ctx.inputs[0] - out),)


def _vjp_softmax(F, ctx, g):
    dim = ctx.attrs["dim"]
    out = ctx.outputs[0]
    if ctx.attrs.get("log"):
        return (g - F.exp(out) * F.sum(g, dim=dim, keepdim=True),)
    return (out * (g - F.sum(g * out, dim=dim, keepdim=True)),)


def _vjp_layer_norm(F, ctx, g):
    a = ctx.attrs
    x = ctx.inputs[0]
    k = a["normalized_ndim"]
    axes = tuple(range(x.ndim - k, x.ndim))
    mu = F.mean(x, dim=axes, keepdim=True)
    xc = x - mu
    rstd = F.rsqrt(F.mean(xc * xc, dim=axes, keepdim=True) + a.get("eps", 1e-5))
    xhat = xc * rstd
    gy = g * ctx.inputs[1] if a.get("has_weight") else g
    gx = None
    if ctx.needs_input_grad[0]:
        m1 = F.mean(gy, dim=axes, keepdim=True)
        m2 = F.mean(gy * xhat, dim=axes, keepdim=True)
        gx = rstd * (gy - m1 - xhat * m2)
    res = [gx]
    if a.get("has_weight"):
        res.append(g * xhat if ctx.needs_input_grad[1] else None)
    if a.get("has_bias"):
        res.append(g)
    return tuple(res)


def _vjp_cumsum(F, ctx, g):
    dim = ctx.attrs["dim"]  # the reversed running sum, without a flip
    return (F.sum(g, dim=dim, keepdim=True) - F.cumsum(g, dim) + g,)


def _vjp_cumprod(F, ctx, g):
    # entry k gets sum over j >= k of g[j] * (the product of x[:j+1] without x[k]): before a
    # slice's first zero, the reversed running sum of g * out over x; at the first zero, that
    # sum with the zero taken as 1; after it, 0
    dim = ctx.attrs["dim"]
    x = ctx.inputs[0]
    out = ctx.outputs[0]

    def rev(t):  # the reversed running sum, without a flip
        return F.sum(t, dim=dim, keepdim=True) - F.cumsum(t, dim) + t

    zero = x == 0
    seen = F.cumsum(zero, dim)  # zeros up to and including each entry
    before = seen == 0
    first = F.logical_and(zero, seen == 1)
    safe = F.where(before, x, 1.0)
    at_first = rev(g * F.cumprod(F.where(first, 1.0, x), dim))
    return (F.where(before, rev(g * out) / safe, F.where(first, at_first, 0.0)),)


_NO_GRAD = {"argmax", "argmin", "all", "any"}
_RULES = {
    "sum": _vjp_sum, "prod": _vjp_prod, "mean": _vjp_mean, "var": _vjp_var, "amax": _vjp_amax,
    "amin": _vjp_amax, "max_dim": _vjp_max_dim, "min_dim": _vjp_max_dim,
    "logsumexp": _vjp_logsumexp, "softmax": _vjp_softmax, "layer_norm": _vjp_layer_norm,
    "cumsum": _vjp_cumsum, "cumprod": _vjp_cumprod,
}  # fmt: skip


def _red(name, impl, out_dtype, allowed=ANY, n_out=1, ref=None, methods=None, reduce=None):
    return register(
        OpDef(name=name, kind="reduction", arity=1, allowed=allowed, impl=impl,
              out_dtype=out_dtype, n_out=n_out, ref=ref,
              methods=(name,) if methods is None else methods, reduce=reduce,
              vjp=_RULES.get(name), differentiable=name not in _NO_GRAD)
    )  # fmt: skip


def _same(d, **_):
    return d


def _i64(d, **_):
    return dt.int64


def _bool(d, **_):
    return dt.bool_


# How row kernels compute a reduction (``Reduce``); a sum starts at +0.0, as numpy's does, so a
# row of -0.0 sums to +0.0. The others (prod, var, ...) have none: var and std are decomposed
# into sums (``jit/passes/decompose.py``), the rest run eager.
SUM = _red("sum", _sum_impl, _sum_out, ref=np.sum, reduce=Reduce(combine="x + y", identity=0))
PROD = _red("prod", _prod_impl, _sum_out, ref=np.prod)
MEAN = _red("mean", _mean_impl, _float_out, NUM, ref=np.mean,
            reduce=Reduce(combine="x + y", identity=0, finalize="x / n"))  # fmt: skip
VAR = _red("var", _var_impl, _float_out, NUM, ref=np.var, methods=("var", "std"))
AMAX = _red("amax", _amax_impl, _same, ref=np.max,
            reduce=Reduce(combine="max(x, y)", identity=-np.inf, widen=False))  # fmt: skip
AMIN = _red("amin", _amin_impl, _same, ref=np.min,
            reduce=Reduce(combine="min(x, y)", identity=np.inf, widen=False))  # fmt: skip
ARGMAX = _red("argmax", _arg_impl("argmax"), _i64, ref=np.argmax)
ARGMIN = _red("argmin", _arg_impl("argmin"), _i64, ref=np.argmin)
MAX_DIM = _red("max_dim", _max_dim_impl("max", "argmax"),
               lambda d, **_: (d, dt.int64), n_out=2, methods=("max",))  # fmt: skip
MIN_DIM = _red("min_dim", _max_dim_impl("min", "argmin"),
               lambda d, **_: (d, dt.int64), n_out=2, methods=("min",))  # fmt: skip
LOGSUMEXP = _red("logsumexp", _logsumexp_impl, _float_out, NUM)
ALL = _red("all", _all_impl, _bool)
ANY_ = _red("any", _any_impl, _bool)
SOFTMAX = register(OpDef(name="softmax", kind="composite", arity=1, allowed=NUM,
                         impl=_softmax_impl, out_dtype=_float_out,
                         methods=("softmax", "log_softmax"), vjp=_vjp_softmax))  # fmt: skip
LAYER_NORM = register(OpDef(name="layer_norm", kind="composite", arity=3, allowed=NUM,
                            impl=_layer_norm_impl,
                            out_dtype=lambda d, *_, **__: _float_out(d),
                            vjp=_vjp_layer_norm))  # fmt: skip


def _scan_impl(fn: str):
    def impl(b, a, dim, dtype):
        acc = (wide_accumulation_dtype if fn == "cumprod" else accumulation_dtype)(dtype).np
        return getattr(b.xp, fn)(a, axis=dim, dtype=acc).astype(dtype.np, copy=False)

    return impl


def _scan(name: str):
    return register(OpDef(name=name, kind="scan", arity=1, impl=_scan_impl(name),
                          out_dtype=lambda d, dim, dtype: dtype, methods=(name,),
                          vjp=_RULES[name]))  # fmt: skip


CUMSUM = _scan("cumsum")
CUMPROD = _scan("cumprod")
