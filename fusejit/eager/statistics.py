"""Public functions of the statistics: order statistics and running extremes from the op table
(``fusejit/ops/statistics.py``: median, nanmedian, kthvalue, mode, quantile, nanquantile,
cummax, cummin, logcumsumexp) and compositions of reductions (nansum, nanmean, var_mean,
std_mean, aminmax, count_nonzero), which trace and fuse as the ops they are made of.

Results as PyTorch's: ``(values, indices)`` named tuples for median and nanmedian along a dim,
kthvalue, mode, cummax and cummin; ``(min, max)`` for aminmax; a plain ``(var, mean)`` tuple
for var_mean. float16 accumulates in float32.
"""

from __future__ import annotations

import math
from collections import namedtuple

from fusejit.base import dtypes as dt
from fusejit.base.errors import DeviceError, DTypeError, ShapeError, fmt_shape
from fusejit.base.shapes import describe, int_arg, norm_dim, norm_dims
from fusejit.eager import dispatch, reductions
from fusejit.eager.creation import full
from fusejit.eager.elementwise import where
from fusejit.eager.movement import reshape
from fusejit.eager.tensor import Tensor
from fusejit.ops.registry import OPS
from fusejit.ops.statistics import (
    CUMMAX,
    CUMMIN,
    KTHVALUE,
    LOGCUMSUMEXP,
    MEDIAN,
    MODE,
    QUANTILE,
    QUANTILE_INTERPOLATIONS,
)

__all__ = [
    "median", "nanmedian", "kthvalue", "mode", "quantile", "nanquantile", "nansum", "nanmean",
    "var_mean", "std_mean", "aminmax", "cummax", "cummin", "logcumsumexp", "count_nonzero",
    "ValuesIndices", "MinMax",
]  # fmt: skip

ValuesIndices = namedtuple("ValuesIndices", ["values", "indices"])
MinMax = namedtuple("MinMax", ["min", "max"])


def _stat_tensor(name: str, x) -> None:
    if not isinstance(x, Tensor):
        raise TypeError(f"{name}: expected a tensor, got {type(x).__name__}")


def _stat_refuse(name: str, x, kinds: str, what: str) -> None:
    """A DTypeError unless ``x``'s dtype kind is one of ``kinds`` ("b", "i", "u", "f")."""
    _stat_tensor(name, x)
    if x.dtype.kind not in kinds:
        raise DTypeError(f"{name}: expected {what} tensor, got dtype {x.dtype.name}")


def _stat_along(op, name: str, x, dim, keepdim: bool, **attrs) -> ValuesIndices:
    """``op`` (values, indices) along one dim; a 0-d tensor as a 1-element one, as torch."""
    d = norm_dim(name, dim, x.ndim)
    if x.ndim == 0:
        v, i = dispatch.apply(op, (reshape(x, 1),), {**attrs, "dim": 0, "keepdim": False})
        return ValuesIndices(reshape(v, ()), reshape(i, ()))
    v, i = dispatch.apply(op, (x,), {**attrs, "dim": d, "keepdim": bool(keepdim)})
    return ValuesIndices(v, i)


def _stat_median(name: str, x, dim, keepdim, ignore_nan: bool):
    _stat_refuse(name, x, "iuf", "an integer or floating-point")
    if dim is None:
        if x.numel() == 0:
            if not x.dtype.is_floating_point:
                raise ShapeError(f"{name}: the median of an empty {x.dtype.name} tensor")
            return full((), math.nan, dtype=x.dtype, device=x.device)
        return _stat_along(MEDIAN, name, reshape(x, -1), 0, False, ignore_nan=ignore_nan).values
    return _stat_along(MEDIAN, name, x, dim, keepdim, ignore_nan=ignore_nan)


def median(x, dim=None, keepdim: bool = False):
    """The median of ``x`` (a 0-d tensor), or ``(values, indices)`` along ``dim``
    (``torch.median``): the lower of the two middle values; a NaN in a row makes its median
    NaN (the index of the first NaN). Among equal entries the index is the one a stable sort
    puts in the middle.

    >>> import fusejit
    >>> fusejit.tensor([[1.0, 5.0, 2.0, 4.0]]).median(1).values.tolist()
    [2.0]
    """
    return _stat_median("median", x, dim, keepdim, False)


def nanmedian(x, dim=None, keepdim: bool = False):
    """``median`` ignoring NaN (``torch.nanmedian``): the lower middle value of a row's other
    entries; NaN only for a row of NaN.

    >>> import fusejit
    >>> fusejit.tensor([1.0, float("nan"), 3.0, 2.0]).nanmedian().item()
    2.0
    """
    return _stat_median("nanmedian", x, dim, keepdim, True)


def kthvalue(x, k: int, dim: int = -1, keepdim: bool = False) -> ValuesIndices:
    """The ``k``-th smallest entry (from 1) along ``dim`` and its index
    (``torch.kthvalue``; NaN counts as the largest value).

    >>> import fusejit
    >>> fusejit.tensor([3.0, 1.0, 2.0]).kthvalue(2)
    ValuesIndices(values=tensor(2.), indices=tensor(2))
    """
    _stat_refuse("kthvalue", x, "iuf", "an integer or floating-point")
    k = int_arg("kthvalue", k, "k")
    return _stat_along(KTHVALUE, "kthvalue", x, dim, keepdim, k=k)


def mode(x, dim: int = -1, keepdim: bool = False) -> ValuesIndices:
    """The most frequent entry along ``dim`` (the smallest of equally frequent ones) and the
    index of its last occurrence (``torch.mode``). NaNs count as one value.

    >>> import fusejit
    >>> fusejit.tensor([2, 1, 2, 1, 3]).mode().values.item()
    1
    """
    _stat_tensor("mode", x)
    return _stat_along(MODE, "mode", x, dim, keepdim)


def _stat_quantile(name: str, x, q, dim, keepdim, interpolation, ignore_nan: bool):
    _stat_tensor(name, x)
    if x.dtype not in (dt.float32, dt.float64):
        raise DTypeError(f"{name}: the input must be a float32 or float64 tensor, got dtype "
                         f"{x.dtype.name}")  # fmt: skip
    if interpolation not in QUANTILE_INTERPOLATIONS:
        modes = ", ".join(QUANTILE_INTERPOLATIONS)
        raise ValueError(f"{name}: interpolation must be one of {modes}, got {interpolation!r}")
    if x.numel() == 0:
        raise ShapeError(f"{name}: the input tensor must be non-empty, got shape "
                         f"{fmt_shape(x.shape)}")  # fmt: skip
    attrs = {"keepdim": bool(keepdim), "interpolation": interpolation, "ignore_nan": ignore_nan}
    attrs["dim"] = None if dim is None else norm_dim(name, dim, x.ndim)
    if x.ndim == 0:
        attrs["dim"] = None  # (the whole tensor, one element; keepdim keeps its 0 dims)
    if isinstance(q, Tensor):
        if q.dtype is not x.dtype:
            raise DTypeError(f"{name}: q must have the input's dtype {x.dtype.name}, got "
                             f"{q.dtype.name}")  # fmt: skip
        if q.device is not x.device:
            raise DeviceError(f"{name}: q on {q.device} for an input on {x.device}")
        if q.ndim > 1:
            raise ShapeError(f"{name}: q must be a scalar or a 1-D tensor, got shape "
                             f"{fmt_shape(q.shape)}")  # fmt: skip
        return dispatch.apply(QUANTILE, (x, q), attrs)
    if isinstance(q, bool) or not isinstance(q, (int, float)):
        raise DTypeError(f"{name}: q must be a float or a tensor, got {describe(q)}")
    if not 0 <= q <= 1:
        raise ValueError(f"{name}: q must be in the range [0, 1], got {q}")
    return dispatch.apply(QUANTILE, (x,), {**attrs, "q": float(q)})


def quantile(x, q, dim=None, keepdim: bool = False, *, interpolation: str = "linear"):
    """The ``q``-th quantiles of ``x`` along ``dim`` (all entries when None), as
    ``torch.quantile``: ``q`` a float or a 0-d / 1-d tensor of ``x``'s dtype (its length
    leads the result's shape); between two entries ``interpolation`` is ``linear``,
    ``lower``, ``higher``, ``midpoint`` or ``nearest``. A NaN in a row makes its quantiles NaN.

    >>> import fusejit
    >>> fusejit.tensor([0.0, 1.0, 2.0, 3.0]).quantile(0.5).item()
    1.5
    """
    return _stat_quantile("quantile", x, q, dim, keepdim, interpolation, False)


def nanquantile(x, q, dim=None, keepdim: bool = False, *, interpolation: str = "linear"):
    """``quantile`` ignoring NaN (``torch.nanquantile``); NaN only for a row of NaN.

    >>> import fusejit
    >>> fusejit.tensor([0.0, float("nan"), 2.0]).nanquantile(0.5).item()
    1.0
    """
    return _stat_quantile("nanquantile", x, q, dim, keepdim, interpolation, True)


def _stat_not_nan(x):
    return dispatch.elementwise(OPS["logical_not"], (dispatch.elementwise(OPS["isnan"], (x,)),))


def nansum(x, dim=None, keepdim: bool = False, *, dtype=None):
    """The sum over ``dim`` counting NaN as zero (``torch.nansum``): ``sum(where(isnan(x),
    0, x))``, which fuses. Integers and bool sum to int64.

    >>> import fusejit
    >>> fusejit.tensor([1.0, float("nan"), 2.0]).nansum().item()
    3.0
    """
    _stat_tensor("nansum", x)
    if x.dtype.is_floating_point:
        x = where(dispatch.elementwise(OPS["isnan"], (x,)), 0, x)
    return reductions.sum(x, dim, keepdim, dtype=dtype)


def nanmean(x, dim=None, keepdim: bool = False, *, dtype=None):
    """The mean over ``dim`` of the entries that are not NaN (``torch.nanmean``: floating-point
    tensors only): ``nansum`` divided by the count of the others; NaN where all are NaN.

    >>> import fusejit
    >>> fusejit.tensor([1.0, float("nan"), 2.0]).nanmean().item()
    1.5
    """
    _stat_refuse("nanmean", x, "f", "a floating-point")
    count = reductions.sum(_stat_not_nan(x), dim, keepdim)
    return nansum(x, dim, keepdim, dtype=dtype) / count


def var_mean(x, dim=None, *, correction: int = 1, keepdim: bool = False, unbiased=None):
    """``(var(x, dim), mean(x, dim))`` (``torch.var_mean``).

    >>> import fusejit
    >>> [t.item() for t in fusejit.var_mean(fusejit.tensor([1.0, 2.0, 3.0]))]
    [1.0, 2.0]
    """
    v = reductions.var(x, dim, correction=correction, keepdim=keepdim, unbiased=unbiased)
    return v, reductions.mean(x, dim, keepdim)


def std_mean(x, dim=None, *, correction: int = 1, keepdim: bool = False, unbiased=None):
    """``(std(x, dim), mean(x, dim))`` (``torch.std_mean``).

    >>> import fusejit
    >>> [t.item() for t in fusejit.std_mean(fusejit.tensor([1.0, 2.0, 3.0]))]
    [1.0, 2.0]
    """
    s = reductions.std(x, dim, correction=correction, keepdim=keepdim, unbiased=unbiased)
    return s, reductions.mean(x, dim, keepdim)


def aminmax(x, *, dim=None, keepdim: bool = False) -> MinMax:
    """``(amin(x, dim), amax(x, dim))`` as a ``(min, max)`` named tuple (``torch.aminmax``).

    >>> import fusejit
    >>> fusejit.tensor([3, 1, 2]).aminmax()
    MinMax(min=tensor(1), max=tensor(3))
    """
    _stat_tensor("aminmax", x)
    if dim is not None:
        dim = norm_dim("aminmax", dim, x.ndim)
    return MinMax(reductions.amin(x, dim, keepdim), reductions.amax(x, dim, keepdim))


def _stat_running(op, x, dim: int) -> ValuesIndices:
    _stat_tensor(op.name, x)
    d = norm_dim(op.name, dim, x.ndim)
    if x.ndim == 0:
        v, i = dispatch.apply(op, (reshape(x, 1),), {"dim": 0})
        return ValuesIndices(reshape(v, ()), reshape(i, ()))
    v, i = dispatch.apply(op, (x,), {"dim": d})
    return ValuesIndices(v, i)


def cummax(x, dim: int) -> ValuesIndices:
    """The running maximum along ``dim`` and the index where each was reached (the last of
    equal entries; NaN propagates), as ``torch.cummax``.

    >>> import fusejit
    >>> fusejit.tensor([1, 3, 2, 3]).cummax(0).indices.tolist()
    [0, 1, 1, 3]
    """
    return _stat_running(CUMMAX, x, dim)


def cummin(x, dim: int) -> ValuesIndices:
    """The running minimum along ``dim`` and its indices (``torch.cummin``).

    >>> import fusejit
    >>> fusejit.tensor([3, 1, 2, 1]).cummin(0).values.tolist()
    [3, 1, 1, 1]
    """
    return _stat_running(CUMMIN, x, dim)


def logcumsumexp(x, dim: int):
    """``log(cumsum(exp(x)))`` along ``dim``, computed without overflow
    (``torch.logcumsumexp``: floating-point tensors; float16 in float32).

    >>> import fusejit
    >>> round(fusejit.tensor([0.0, 0.0]).logcumsumexp(0)[1].item(), 4)
    0.6931
    """
    _stat_refuse("logcumsumexp", x, "f", "a floating-point")
    d = norm_dim("logcumsumexp", dim, x.ndim)
    if x.ndim == 0:
        return reshape(dispatch.apply(LOGCUMSUMEXP, (reshape(x, 1),), {"dim": 0}), ())
    return dispatch.apply(LOGCUMSUMEXP, (x,), {"dim": d})


def count_nonzero(x, dim=None):
    """The number of nonzero entries over ``dim`` (an int, a tuple, or None for all) as int64
    (``torch.count_nonzero``; NaN counts as nonzero): ``sum(x != 0)``, which fuses.

    >>> import fusejit
    >>> fusejit.tensor([[0, 1], [2, 0]]).count_nonzero(0).tolist()
    [1, 1]
    """
    _stat_tensor("count_nonzero", x)
    if dim is not None:
        dim = norm_dims("count_nonzero", dim, x.ndim)
    return reductions.sum(dispatch.elementwise(OPS["ne"], (x, 0)), dim)
