"""Sorting of the op table: ``sort`` (values and indices), with ``argsort`` and ``topk`` as its
public functions.

Order, as PyTorch's: ascending puts NaN last, descending first (NaN counts as the largest
value); entries that compare equal keep their order in both directions (a stable sort).
"""

from __future__ import annotations

from collections import namedtuple

from fusejit.base import dtypes as dt
from fusejit.base.errors import ShapeError, fmt_shape
from fusejit.eager import dispatch
from fusejit.ops.movement import getitem, norm_dim
from fusejit.ops.registry import OpDef, register

SortResult = namedtuple("SortResult", ["values", "indices"])


def _sort_impl(b, a, dim, descending):
    xp = b.xp
    n = a.shape[dim]
    stable = {"kind": "stable"} if b.name == "cpu" else {}  # (cupy's sort is always stable)
    if descending:
        # a stable ascending sort of the reversed entries, reversed: descending, with equal
        # entries in their first order and NaN first
        idx = (n - 1) - xp.flip(xp.argsort(xp.flip(a, axis=dim), axis=dim, **stable),
                                axis=dim)  # fmt: skip
    else:
        idx = xp.argsort(a, axis=dim, **stable)
    return xp.take_along_axis(a, idx, axis=dim), idx.astype(xp.int64, copy=False)


SORT = register(OpDef(name="sort", kind="sort", arity=1, impl=_sort_impl,
                      out_dtype=lambda d, dim, descending: (d, dt.int64), n_out=2))  # fmt: skip


def sort(x, dim: int = -1, descending: bool = False, stable: bool = True) -> SortResult:
    """``(values, indices)`` of ``x`` sorted along ``dim`` (``torch.sort``); the sort is
    always stable.

    >>> import fusejit
    >>> fusejit.tensor([3.0, 1.0, 2.0]).sort(descending=True).indices.tolist()
    [0, 2, 1]
    """
    if not isinstance(x, dispatch._Tensor):
        raise TypeError(f"sort: expected a tensor, got {type(x).__name__}")
    d = norm_dim("sort", dim, x.ndim)
    if x.ndim == 0:
        return SortResult(x, dispatch._Tensor._wrap(x.device.backend.xp.zeros((), "int64"),
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
    if not isinstance(x, dispatch._Tensor):
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
