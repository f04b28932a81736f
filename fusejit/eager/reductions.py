"""Public functions of the reductions, normalizations and scans (``fusejit/ops/reductions.py``).

Accumulation: float16 inputs are accumulated in float32 and the result rounded to float16 (as
PyTorch does); sums and products of bool and integer tensors are int64.
"""

from __future__ import annotations

from collections import namedtuple

from fusejit.base import dtypes as dt
from fusejit.base.errors import ShapeError, fmt_shape
from fusejit.base.shapes import norm_dim, norm_dims
from fusejit.eager import dispatch
from fusejit.eager.elementwise import maximum, minimum
from fusejit.eager.tensor import Tensor
from fusejit.ops.reductions import (
    ALL,
    AMAX,
    AMIN,
    ANY_,
    ARGMAX,
    ARGMIN,
    CUMPROD,
    CUMSUM,
    LAYER_NORM,
    LOGSUMEXP,
    MAX_DIM,
    MEAN,
    MIN_DIM,
    PROD,
    SOFTMAX,
    SUM,
    VAR,
)
from fusejit.ops.registry import OpDef, check_allowed

MaxMin = namedtuple("MaxMin", ["values", "indices"])


def _cumulative(op: OpDef, x, dim: int, dtype):
    if not isinstance(x, Tensor):
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
    if not isinstance(x, Tensor):
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
    if not isinstance(x, Tensor):
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
    if isinstance(dim, Tensor):
        return elementwise(x, dim)
    if dim is None:
        return _reduce(op_all, x, None, keepdim)
    d = norm_dim(name, dim, x.ndim)  # (a 0-d tensor takes dims 0 and -1 only, as PyTorch)
    if x.ndim == 0:
        return MaxMin(x, argmax(x))
    vals, idx = dispatch.apply(op_dim, (x,), {"dim": d, "keepdim": bool(keepdim)})
    return MaxMin(vals, idx)


def max(x, dim=None, keepdim: bool = False):  # noqa: A001 - torch's name
    """``max(x)`` the largest element; ``max(x, dim)`` a (values, indices) pair;
    ``max(x, y)`` the elementwise maximum."""
    return _max_min("max", AMAX, MAX_DIM, maximum, x, dim, keepdim)


def min(x, dim=None, keepdim: bool = False):  # noqa: A001 - torch's name
    """``min(x)`` the smallest element; ``min(x, dim)`` a (values, indices) pair;
    ``min(x, y)`` the elementwise minimum."""
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
