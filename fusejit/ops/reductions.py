"""Reductions and normalizations of the op table, with their public functions.

Accumulation: float16 inputs are accumulated in float32 and the result rounded to float16 (as
PyTorch does: ``registry.accumulation_dtype``); sums and products of bool and integer tensors
are int64. The reductions row kernels compute state how in their ``Reduce`` facts.
"""

from __future__ import annotations

import builtins
from collections import namedtuple

import numpy as np

from fusejit.base import dtypes as dt
from fusejit.base.errors import ShapeError, fmt_shape
from fusejit.eager import dispatch
from fusejit.ops.movement import norm_dim, norm_dims
from fusejit.ops.registry import (
    ANY,
    NUM,
    OpDef,
    Reduce,
    accumulation_dtype,
    check_allowed,
    register,
)

MaxMin = namedtuple("MaxMin", ["values", "indices"])


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
    acc = accumulation_dtype(out).np
    return xp.asarray(a.prod(axis=dim, keepdims=keepdim, dtype=acc), dtype=out.np)


def _mean_impl(b, a, dim=None, keepdim=False):
    xp = b.xp
    out = _float_out(_dtype_of(a))
    acc = accumulation_dtype(out).np
    return xp.asarray(a.mean(axis=dim, keepdims=keepdim, dtype=acc), dtype=out.np)


def _var_impl(b, a, dim=None, correction=1, keepdim=False, sqrt=False):
    xp = b.xp
    out = _float_out(_dtype_of(a))
    acc = accumulation_dtype(out).np
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
    xc = x - mu
    var = xp.mean(xc * xc, axis=axes, keepdims=True)
    y = xc / xp.sqrt(var + eps)
    it = iter(wb)
    if has_weight:
        y = y * next(it)
    if has_bias:
        y = y + next(it)
    return y.astype(out.np, copy=False)


def _red(name, impl, out_dtype, allowed=ANY, n_out=1, ref=None, reduce=None):
    return register(
        OpDef(name=name, kind="reduction", arity=1, allowed=allowed, impl=impl,
              out_dtype=out_dtype, n_out=n_out, ref=ref, reduce=reduce)
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
VAR = _red("var", _var_impl, _float_out, NUM, ref=np.var)
AMAX = _red("amax", _amax_impl, _same, ref=np.max,
            reduce=Reduce(combine="max(x, y)", identity=-np.inf, widen=False))  # fmt: skip
AMIN = _red("amin", _amin_impl, _same, ref=np.min,
            reduce=Reduce(combine="min(x, y)", identity=np.inf, widen=False))  # fmt: skip
ARGMAX = _red("argmax", _arg_impl("argmax"), _i64, ref=np.argmax)
ARGMIN = _red("argmin", _arg_impl("argmin"), _i64, ref=np.argmin)
MAX_DIM = _red("max_dim", _max_dim_impl("max", "argmax"),
               lambda d, **_: (d, dt.int64), n_out=2)  # fmt: skip
MIN_DIM = _red("min_dim", _max_dim_impl("min", "argmin"),
               lambda d, **_: (d, dt.int64), n_out=2)  # fmt: skip
LOGSUMEXP = _red("logsumexp", _logsumexp_impl, _float_out, NUM)
ALL = _red("all", _all_impl, _bool)
ANY_ = _red("any", _any_impl, _bool)
SOFTMAX = register(OpDef(name="softmax", kind="composite", arity=1, allowed=NUM,
                         impl=_softmax_impl, out_dtype=_float_out))  # fmt: skip
LAYER_NORM = register(OpDef(name="layer_norm", kind="composite", arity=3, allowed=NUM,
                            impl=_layer_norm_impl,
                            out_dtype=lambda d, *_, **__: _float_out(d)))  # fmt: skip


def _scan_impl(fn: str):
    def impl(b, a, dim, dtype):
        acc = accumulation_dtype(dtype).np
        return getattr(b.xp, fn)(a, axis=dim, dtype=acc).astype(dtype.np, copy=False)

    return impl


def _scan(name: str):
    return register(OpDef(name=name, kind="scan", arity=1, impl=_scan_impl(name),
                          out_dtype=lambda d, dim, dtype: dtype))  # fmt: skip


CUMSUM = _scan("cumsum")
CUMPROD = _scan("cumprod")


def _cumulative(op: OpDef, x, dim: int, dtype):
    if not isinstance(x, dispatch._Tensor):
        raise TypeError(f"{op.name}: expected a tensor, got {type(x).__name__}")
    d = norm_dim(op.name, dim, x.ndim)
    if dtype is not None:
        out = dt.as_dtype(dtype)
    else:
        out = dt.int64 if x.dtype.kind in "biu" else x.dtype
    if x.ndim == 0:  # (numpy has no axis 0 there; PyTorch gives the value)
        return _cumulative(op, x.reshape(1), 0, out).reshape(())
    return dispatch.apply(op, (x,), {"dim": d, "dtype": out})


def cumsum(x, dim: int, *, dtype=None):
    """Running sums along ``dim`` (``torch.cumsum``): ints and bool add up in int64, float16
    in float32 (each running sum rounded to float16 once).

    >>> import fusejit
    >>> fusejit.tensor([1, 2, 3]).cumsum(0).tolist()
    [1, 3, 6]
    """
    return _cumulative(CUMSUM, x, dim, dtype)


def cumprod(x, dim: int, *, dtype=None):
    """Running products along ``dim`` (``torch.cumprod``), with cumsum's dtypes."""
    return _cumulative(CUMPROD, x, dim, dtype)


def _reduce(op: OpDef, x, dim, keepdim, **attrs):
    if not isinstance(x, dispatch._Tensor):
        raise TypeError(f"{op.name}: expected a tensor, got {type(x).__name__}")
    if x._dtype.kind not in op.allowed:
        check_allowed(op, (x._dtype,))
    dims = None if dim is None else norm_dims(op.name, dim, x.ndim)
    return dispatch.apply(op, (x,), {"dim": dims, "keepdim": bool(keepdim), **attrs})


def sum(x, dim=None, keepdim: bool = False, *, dtype=None):  # noqa: A001 - torch's name
    """Sum over ``dim`` (int, tuple or None for all). Ints and bool sum to int64.

    >>> import fusejit
    >>> fusejit.tensor([[1, 2], [3, 4]]).sum(dim=0).tolist()
    [4, 6]
    """
    return _reduce(SUM, x, dim, keepdim, dtype=None if dtype is None else dt.as_dtype(dtype))


def prod(x, dim=None, keepdim: bool = False, *, dtype=None):
    return _reduce(PROD, x, dim, keepdim, dtype=None if dtype is None else dt.as_dtype(dtype))


def mean(x, dim=None, keepdim: bool = False):
    """Mean over ``dim``; integer inputs give the default float dtype."""
    return _reduce(MEAN, x, dim, keepdim)


def var(x, dim=None, *, correction: int = 1, keepdim: bool = False, unbiased=None):
    if unbiased is not None:
        correction = int(bool(unbiased))
    return _reduce(VAR, x, dim, keepdim, correction=correction)


def std(x, dim=None, *, correction: int = 1, keepdim: bool = False, unbiased=None):
    if unbiased is not None:
        correction = int(bool(unbiased))
    return _reduce(VAR, x, dim, keepdim, correction=correction, sqrt=True)


def amax(x, dim=None, keepdim: bool = False):
    return _reduce(AMAX, x, dim, keepdim)


def amin(x, dim=None, keepdim: bool = False):
    return _reduce(AMIN, x, dim, keepdim)


def _argreduce(op, x, dim, keepdim):
    if not isinstance(x, dispatch._Tensor):
        raise TypeError(f"{op.name}: expected a tensor, got {type(x).__name__}")
    d = None if dim is None else norm_dim(op.name, dim, x.ndim)
    if x.ndim == 0:
        d = None
    return dispatch.apply(op, (x,), {"dim": d, "keepdim": bool(keepdim)})


def argmax(x, dim=None, keepdim: bool = False):
    return _argreduce(ARGMAX, x, dim, keepdim)


def argmin(x, dim=None, keepdim: bool = False):
    return _argreduce(ARGMIN, x, dim, keepdim)


def _max_min(name, op_all, op_dim, elementwise, x, dim, keepdim):
    if isinstance(dim, dispatch._Tensor):
        return elementwise(x, dim)
    if dim is None:
        return _reduce(op_all, x, None, keepdim)
    if x.ndim == 0:
        return MaxMin(x, argmax(x))
    d = norm_dim(name, dim, x.ndim)
    vals, idx = dispatch.apply(op_dim, (x,), {"dim": d, "keepdim": bool(keepdim)})
    return MaxMin(vals, idx)


def max(x, dim=None, keepdim: bool = False):  # noqa: A001 - torch's name
    """``max(x)`` the largest element; ``max(x, dim)`` a (values, indices) pair;
    ``max(x, y)`` the elementwise maximum."""
    from fusejit.eager.functional import maximum

    return _max_min("max", AMAX, MAX_DIM, maximum, x, dim, keepdim)


def min(x, dim=None, keepdim: bool = False):  # noqa: A001 - torch's name
    from fusejit.eager.functional import minimum

    return _max_min("min", AMIN, MIN_DIM, minimum, x, dim, keepdim)


def logsumexp(x, dim=None, keepdim: bool = False):
    return _reduce(LOGSUMEXP, x, dim, keepdim)


def all(x, dim=None, keepdim: bool = False):  # noqa: A001 - torch's name
    return _reduce(ALL, x, dim, keepdim)


def any(x, dim=None, keepdim: bool = False):  # noqa: A001 - torch's name
    return _reduce(ANY_, x, dim, keepdim)


def softmax(x, dim: int = -1):
    """Softmax along ``dim``, computed stably (the row maximum is subtracted first)."""
    check_allowed(SOFTMAX, (x.dtype,))
    return dispatch.apply(SOFTMAX, (x,), {"dim": norm_dim("softmax", dim, x.ndim)})


def log_softmax(x, dim: int = -1):
    check_allowed(SOFTMAX, (x.dtype,))
    d = norm_dim("log_softmax", dim, x.ndim)
    return dispatch.apply(SOFTMAX, (x,), {"dim": d, "log": True})


def layer_norm(x, normalized_shape, weight=None, bias=None, eps: float = 1e-5):
    """Normalize over the trailing ``normalized_shape`` dims (biased variance), then scale by
    ``weight`` and shift by ``bias`` when given."""
    if isinstance(normalized_shape, int):
        normalized_shape = (normalized_shape,)
    normalized_shape = tuple(int(s) for s in normalized_shape)
    k = len(normalized_shape)
    if k == 0 or tuple(x.shape[x.ndim - k :]) != normalized_shape or k > x.ndim:
        raise ShapeError(
            f"layer_norm: normalized_shape {list(normalized_shape)} does not match the "
            f"trailing dims of input of shape {fmt_shape(x.shape)}"
        )
    tensors = [x]
    for name, t in (("weight", weight), ("bias", bias)):
        if t is not None:
            if tuple(t.shape) != normalized_shape:
                raise ShapeError(
                    f"layer_norm: {name} of shape {fmt_shape(t.shape)} does not match "
                    f"normalized_shape {list(normalized_shape)}"
                )
            tensors.append(t)
    check_allowed(LAYER_NORM, tuple(t.dtype for t in tensors))
    attrs = {
        "normalized_ndim": k,
        "eps": float(eps),
        "has_weight": weight is not None,
        "has_bias": bias is not None,
    }
    return dispatch.apply(LAYER_NORM, tuple(tensors), attrs)
