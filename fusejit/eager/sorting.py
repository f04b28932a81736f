"""Public functions of sorting (``fusejit/ops/sorting.py``): ``sort``, ``argsort`` and ``topk``.

Order, as PyTorch's: ascending puts NaN last, descending first (NaN counts as the largest
value); entries that compare equal keep their order in both directions (a stable sort).
"""

from __future__ import annotations

from collections import namedtuple

from fusejit.base import dtypes as dt
from fusejit.base.errors import ShapeError, fmt_shape
from fusejit.base.shapes import norm_dim
from fusejit.eager import dispatch
from fusejit.eager.indexing import getitem
from fusejit.eager.tensor import Tensor
from fusejit.ops.sorting import SORT

SortResult = namedtuple("SortResult", ["values", "indices"])


def sort(x, dim: int = -1, descending: bool = False, stable: bool = True) -> SortResult:
    """``(values, indices)`` of ``x`` sorted along ``dim`` (``torch.sort``); the sort is
    always stable.

    >>> import fusejit
    >>> fusejit.tensor([3.0, 1.0, 2.0]).sort(descending=True).indices.tolist()
    [0, 2, 1]
    """
    if not isinstance(x, Tensor):
        raise TypeError(f"sort: expected a tensor, got {type(x).__name__}")
    d = norm_dim("sort", dim, x.ndim)
    if x.ndim == 0:
        return SortResult(x, Tensor._wrap(x.device.backend.xp.zeros((), "int64"),
                                                    dt.int64, x.device))  # fmt: skip
    vals, idx = dispatch.apply(SORT, (x,), {"dim": d, "descending": bool(descending)})
    return SortResult(vals, idx)


def argsort(x, dim: int = -1, descending: bool = False, stable: bool = True):
    """The indices that sort ``x`` along ``dim`` (``torch.argsort``; stable)."""
    return sort(x, dim, descending).indices


def topk(x, k: int, dim: int = -1, largest: bool = True, sorted: bool = True) -> SortResult:  # noqa: A002
    """The ``k`` largest (or smallest) entries along ``dim`` and their indices, in order
    (``torch.topk``; NaN counts as the largest value).

    >>> import fusejit
    >>> fusejit.tensor([1.0, 5.0, 3.0, 4.0]).topk(2).values.tolist()
    [5.0, 4.0]
    """
    if not isinstance(x, Tensor):
        raise TypeError(f"topk: expected a tensor, got {type(x).__name__}")
    d = norm_dim("topk", dim, x.ndim)
    n = x.shape[d] if x.ndim else 1
    if not isinstance(k, int) or isinstance(k, bool) or not 0 <= k <= n:
        raise ShapeError(
            f"topk: k={k!r} is out of range for dim {dim} of size {n} (shape {fmt_shape(x.shape)})"
        )
    vals, idx = sort(x, d, descending=largest)
    if x.ndim == 0:
        return SortResult(vals, idx)
    part = (slice(None),) * d + (slice(0, k),)
    return SortResult(getitem(vals, part), getitem(idx, part))


__all__ = ["sort", "argsort", "topk", "SortResult"]
