"""Sorting of the op table: ``sort`` (values and indices); its public functions ``sort``,
``argsort`` and ``topk`` are in ``fusejit/eager/sorting.py``.

Order, as PyTorch's: ascending puts NaN last, descending first (NaN counts as the largest
value); entries that compare equal keep their order in both directions (a stable sort).
"""

from __future__ import annotations

from fusejit.base import dtypes as dt
from fusejit.ops import grad_helpers as gh
from fusejit.ops.registry import OpDef, register


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


def _sort_vjp(F, ctx, g_values, g_indices=None):
    """Each sorted value's gradient goes back to the place it came from (the indices are
    integers: none for them)."""
    x = gh.meta(ctx, 0)
    if g_values is None:
        return (None,)
    zeros = gh.zeros(F, x, x.shape)
    return (F.scatter_add(zeros, ctx.attrs["dim"], ctx.outputs[1], g_values),)


SORT = register(OpDef(name="sort", kind="sort", arity=1, impl=_sort_impl,
                      out_dtype=lambda d, dim, descending: (d, dt.int64), n_out=2,
                      methods=("sort", "argsort", "topk"), vjp=_sort_vjp))  # fmt: skip
