"""The standard's manipulation, indexing, searching, sorting, set and utility functions, on
fusejit's movement, indexing and reduction functions."""

from __future__ import annotations

import numbers

import fusejit.eager.elementwise as E
from fusejit.array_api._dtypes import promote
from fusejit.array_api._elementwise import operands
from fusejit.base import dtypes as dt
from fusejit.eager import creation, indexing, movement, reductions, sorting
from fusejit.eager.tensor import Tensor

__all__ = [
    "argmax", "argmin", "argsort", "broadcast_arrays", "broadcast_to", "concat", "count_nonzero",
    "diff", "expand_dims", "flip", "moveaxis", "nonzero", "permute_dims", "repeat", "reshape",
    "roll", "searchsorted", "sort", "squeeze", "stack", "take", "take_along_axis", "tile",
    "unique_all", "unique_counts", "unique_inverse", "unique_values", "unstack", "where",
]  # fmt: skip


def _array(name: str, x) -> Tensor:
    if not isinstance(x, Tensor):
        raise TypeError(f"{name}: expected an array, got {type(x).__name__}")
    return x


def _axes(axis) -> tuple | None:
    if axis is None:
        return None
    if isinstance(axis, numbers.Integral):
        return (int(axis),)
    return tuple(int(a) for a in axis)


def _common(name: str, arrays) -> list:
    arrays = [_array(name, a) for a in arrays]
    if not arrays:
        raise ValueError(f"{name}: expected at least one array")
    d = arrays[0].dtype
    for a in arrays[1:]:
        d = promote(d, a.dtype)
    return [a if a.dtype is d else E.cast(a, d) for a in arrays]


def broadcast_arrays(*arrays: Tensor) -> list:
    """The arrays broadcast to one shape.

    >>> import fusejit.array_api as xp
    >>> [a.shape for a in xp.broadcast_arrays(xp.zeros((2, 1)), xp.zeros(3))]
    [(2, 3), (2, 3)]
    """
    return list(movement.broadcast_tensors(*arrays))


def broadcast_to(x: Tensor, /, shape: tuple) -> Tensor:
    """``x`` broadcast to ``shape``.

    >>> import fusejit.array_api as xp
    >>> xp.broadcast_to(xp.asarray([1, 2]), (2, 2)).tolist()
    [[1, 2], [1, 2]]
    """
    return movement.broadcast_to(_array("broadcast_to", x), tuple(shape))


def concat(arrays, /, *, axis: int | None = 0) -> Tensor:
    """The arrays joined along ``axis`` (flattened first when ``axis`` is None).

    >>> import fusejit.array_api as xp
    >>> xp.concat([xp.asarray([1]), xp.asarray([2, 3])]).tolist()
    [1, 2, 3]
    """
    arrays = _common("concat", arrays)
    if axis is None:
        arrays = [movement.reshape(a, (-1,)) for a in arrays]
        axis = 0
    return movement.cat(arrays, axis)


def stack(arrays, /, *, axis: int = 0) -> Tensor:
    """The arrays stacked along a new ``axis``.

    >>> import fusejit.array_api as xp
    >>> xp.stack([xp.asarray([1, 2]), xp.asarray([3, 4])], axis=1).tolist()
    [[1, 3], [2, 4]]
    """
    return movement.stack(_common("stack", arrays), axis)


def expand_dims(x: Tensor, /, axis: int = 0) -> Tensor:
    """``x`` with a new axis of size 1 at ``axis``.

    >>> import fusejit.array_api as xp
    >>> xp.expand_dims(xp.asarray([1, 2]), axis=-1).shape
    (2, 1)
    """
    x = _array("expand_dims", x)
    n = x.ndim + 1
    if not -n <= axis < n:
        raise IndexError(f"expand_dims: axis {axis} out of range for {n} dims")
    return movement.unsqueeze(x, axis)


def flip(x: Tensor, /, *, axis=None) -> Tensor:
    """``x`` reversed along ``axis`` (every axis when None).

    >>> import fusejit.array_api as xp
    >>> xp.flip(xp.asarray([1, 2, 3])).tolist()
    [3, 2, 1]
    """
    x = _array("flip", x)
    axes = _axes(axis)
    return movement.flip(x, tuple(range(x.ndim)) if axes is None else axes)


def moveaxis(x: Tensor, source, destination, /) -> Tensor:
    """``x`` with axes ``source`` moved to ``destination``.

    >>> import fusejit.array_api as xp
    >>> xp.moveaxis(xp.zeros((2, 3, 4)), 0, -1).shape
    (3, 4, 2)
    """
    return movement.moveaxis(_array("moveaxis", x), source, destination)


def permute_dims(x: Tensor, /, axes: tuple) -> Tensor:
    """``x`` with its axes in the order ``axes``.

    >>> import fusejit.array_api as xp
    >>> xp.permute_dims(xp.zeros((2, 3)), (1, 0)).shape
    (3, 2)
    """
    return movement.permute(_array("permute_dims", x), *axes)


def reshape(x: Tensor, /, shape: tuple, *, copy: bool | None = None) -> Tensor:
    """``x`` in ``shape`` (one -1 inferred); ``copy=True`` copies, ``copy=False`` refuses a copy.

    >>> import fusejit.array_api as xp
    >>> xp.reshape(xp.arange(6), (2, -1)).shape
    (2, 3)
    """
    x = _array("reshape", x)
    shape = tuple(shape)
    if copy is False:
        try:
            return movement.view(x, shape)
        except Exception as e:
            raise ValueError(f"reshape: a copy is needed (copy=False): {e}") from None
    r = movement.reshape(x, shape)
    return r.clone() if copy else r


def roll(x: Tensor, /, shift, *, axis=None) -> Tensor:
    """``x`` rolled by ``shift`` along ``axis`` (over the flattened array when None).

    >>> import fusejit.array_api as xp
    >>> xp.roll(xp.asarray([1, 2, 3]), 1).tolist()
    [3, 1, 2]
    """
    x = _array("roll", x)
    if axis is None:
        return movement.reshape(movement.roll(movement.reshape(x, (-1,)), shift, 0), x.shape)
    return movement.roll(x, shift, axis)


def squeeze(x: Tensor, /, axis) -> Tensor:
    """``x`` without the axes ``axis`` (each of size 1, else a ValueError).

    >>> import fusejit.array_api as xp
    >>> xp.squeeze(xp.zeros((1, 2, 1)), axis=(0, 2)).shape
    (2,)
    """
    x = _array("squeeze", x)
    axes = _axes(axis)
    norm = set()
    for a in axes:
        if not -x.ndim <= a < x.ndim:
            raise IndexError(f"squeeze: axis {a} out of range for {x.ndim} dims")
        a %= x.ndim
        if x.shape[a] != 1:
            raise ValueError(f"squeeze: axis {a} has size {x.shape[a]}, not 1")
        norm.add(a)
    return movement.reshape(x, tuple(s for i, s in enumerate(x.shape) if i not in norm))


def tile(x: Tensor, repetitions: tuple, /) -> Tensor:
    """``x`` repeated ``repetitions`` times along each axis.

    >>> import fusejit.array_api as xp
    >>> xp.tile(xp.asarray([1, 2]), (2,)).tolist()
    [1, 2, 1, 2]
    """
    return movement.tile(_array("tile", x), tuple(repetitions))


def repeat(x: Tensor, repeats, /, *, axis: int | None = None) -> Tensor:
    """Each element of ``x`` repeated ``repeats`` times along ``axis`` (flattened when None).

    >>> import fusejit.array_api as xp
    >>> xp.repeat(xp.asarray([1, 2]), 2).tolist()
    [1, 1, 2, 2]
    """
    x = _array("repeat", x)
    if axis is None:
        x, axis = movement.reshape(x, (-1,)), 0
    return movement.repeat_interleave(x, repeats, axis)


def unstack(x: Tensor, /, *, axis: int = 0) -> tuple:
    """The slices of ``x`` along ``axis``.

    >>> import fusejit.array_api as xp
    >>> [a.tolist() for a in xp.unstack(xp.asarray([[1, 2], [3, 4]]))]
    [[1, 2], [3, 4]]
    """
    return tuple(movement.unbind(_array("unstack", x), axis))


def take(x: Tensor, indices: Tensor, /, *, axis: int | None = None) -> Tensor:
    """The elements of ``x`` at ``indices`` (a 1-d integer array) along ``axis``.

    >>> import fusejit.array_api as xp
    >>> xp.take(xp.asarray([5, 6, 7]), xp.asarray([2, 0])).tolist()
    [7, 5]
    """
    x = _array("take", x)
    if axis is None:
        if x.ndim != 1:
            raise ValueError("take: axis is required for an array of more than one dim")
        axis = 0
    idx = _index_array("take", indices)
    n = x.shape[axis]
    idx = E.where(E.lt(idx, 0), idx + n, idx)
    return indexing.index_select(x, axis, idx)


def _index_array(name: str, indices) -> Tensor:
    idx = _array(name, indices)
    if idx.dtype.kind not in "iu":
        raise TypeError(f"{name}: indices must be integers, got {idx.dtype.name}")
    return idx if idx.dtype is dt.int64 else E.cast(idx, dt.int64)


def take_along_axis(x: Tensor, indices: Tensor, /, *, axis: int = -1) -> Tensor:
    """The elements of ``x`` at ``indices`` (of ``x``'s dims) along ``axis``.

    >>> import fusejit.array_api as xp
    >>> xp.take_along_axis(xp.asarray([[4, 5]]), xp.asarray([[1, 0]]), axis=1).tolist()
    [[5, 4]]
    """
    x = _array("take_along_axis", x)
    idx = _index_array("take_along_axis", indices)
    n = x.shape[axis]
    idx = E.where(E.lt(idx, 0), idx + n, idx)
    return indexing.take_along_dim(x, idx, axis)


def argmax(x: Tensor, /, *, axis: int | None = None, keepdims: bool = False) -> Tensor:
    """The index of the first maximum (over the flattened array when ``axis`` is None).

    >>> import fusejit.array_api as xp
    >>> int(xp.argmax(xp.asarray([1, 5, 5])))
    1
    """
    return _arg(reductions.argmax, "argmax", x, axis, keepdims)


def argmin(x: Tensor, /, *, axis: int | None = None, keepdims: bool = False) -> Tensor:
    """The index of the first minimum (over the flattened array when ``axis`` is None).

    >>> import fusejit.array_api as xp
    >>> int(xp.argmin(xp.asarray([3, 1, 1])))
    1
    """
    return _arg(reductions.argmin, "argmin", x, axis, keepdims)


def _arg(fn, name, x, axis, keepdims):
    x = _array(name, x)
    if x.ndim == 0:
        return creation.zeros((), dtype=dt.int64, device=x.device)
    if axis is None:
        r = fn(movement.reshape(x, (-1,)), 0)
        return movement.reshape(r, (1,) * x.ndim) if keepdims else r
    return fn(x, axis, keepdims)


def count_nonzero(x: Tensor, /, *, axis=None, keepdims: bool = False) -> Tensor:
    """The number of nonzero elements along ``axis`` (int64).

    >>> import fusejit.array_api as xp
    >>> int(xp.count_nonzero(xp.asarray([0, 1, 2])))
    2
    """
    x = _array("count_nonzero", x)
    axes = _axes(axis)
    return reductions.sum(E.ne(x, 0), axes, keepdims, dtype=dt.int64)


def nonzero(x: Tensor, /) -> tuple:
    """The indices of the nonzero elements, one int64 array per axis.

    >>> import fusejit.array_api as xp
    >>> [a.tolist() for a in xp.nonzero(xp.asarray([0, 3, 4]))]
    [[1, 2]]
    """
    x = _array("nonzero", x)
    if x.ndim == 0:
        raise ValueError("nonzero: not defined for 0-d arrays")
    return tuple(indexing.nonzero(x, as_tuple=True))


def searchsorted(x1: Tensor, x2: Tensor, /, *, side: str = "left", sorter=None) -> Tensor:
    """Where ``x2``'s elements would be inserted into 1-d sorted ``x1``.

    >>> import fusejit.array_api as xp
    >>> xp.searchsorted(xp.asarray([1, 3, 5]), xp.asarray([3, 6])).tolist()
    [1, 3]
    """
    x1, x2 = _array("searchsorted", x1), _array("searchsorted", x2)
    if side not in ("left", "right"):
        raise ValueError(f"searchsorted: side must be 'left' or 'right', got {side!r}")
    d = promote(x1.dtype, x2.dtype)
    if sorter is not None:
        x1 = indexing.index_select(x1, 0, _index_array("searchsorted", sorter))
    x1 = x1 if x1.dtype is d else E.cast(x1, d)
    x2 = x2 if x2.dtype is d else E.cast(x2, d)
    return indexing.searchsorted(x1, x2, side=side)


def where(condition: Tensor, x1, x2, /) -> Tensor:
    """``x1`` where ``condition`` holds, else ``x2`` (arrays or scalars, promoted).

    >>> import fusejit.array_api as xp
    >>> xp.where(xp.asarray([True, False]), 1.0, xp.asarray([5.0, 6.0])).tolist()
    [1.0, 6.0]
    """
    condition = _array("where", condition)
    if condition.dtype is not dt.bool_:
        raise TypeError(f"where: condition must be bool, got {condition.dtype.name}")
    a, b, d = operands("where", x1, x2)
    r = E.where(condition, a, b)
    return r if r.dtype is d else E.cast(r, d)


def sort(x: Tensor, /, *, axis: int = -1, descending: bool = False, stable: bool = True):
    """``x`` sorted along ``axis`` (NaNs last).

    >>> import fusejit.array_api as xp
    >>> xp.sort(xp.asarray([3, 1, 2]), descending=True).tolist()
    [3, 2, 1]
    """
    return sorting.sort(_array("sort", x), axis, descending, stable=True).values


def argsort(x: Tensor, /, *, axis: int = -1, descending: bool = False, stable: bool = True):
    """The indices that sort ``x`` along ``axis`` (stable: equal elements keep their order).

    >>> import fusejit.array_api as xp
    >>> xp.argsort(xp.asarray([3, 1, 2])).tolist()
    [1, 2, 0]
    """
    x = _array("argsort", x)
    if descending:
        # a stable descending order: the ascending order of the reversed axis, mapped back
        n = x.shape[axis] if x.ndim else 1
        r = sorting.argsort(movement.flip(x, (axis,)), axis, False, stable=True)
        return movement.flip(n - 1 - r, (axis,))
    return sorting.argsort(x, axis, False, stable=True)


def _unique(x: Tensor):
    x = _array("unique", x)
    flat = movement.reshape(x, (-1,))
    return indexing.unique(flat, True, True, True)


def unique_values(x: Tensor, /) -> Tensor:
    """The distinct values of ``x``, sorted (NaNs are each distinct).

    >>> import fusejit.array_api as xp
    >>> xp.unique_values(xp.asarray([2, 1, 2])).tolist()
    [1, 2]
    """
    return _unique(x)[0]


def unique_counts(x: Tensor, /):
    """The distinct values of ``x`` and how many times each occurs.

    >>> import fusejit.array_api as xp
    >>> [a.tolist() for a in xp.unique_counts(xp.asarray([2, 1, 2]))]
    [[1, 2], [1, 2]]
    """
    v, _, c = _unique(x)
    return UniqueCountsResult(v, c)


def unique_inverse(x: Tensor, /):
    """The distinct values of ``x`` and, for each element, the index of its value among them
    (in ``x``'s shape).

    >>> import fusejit.array_api as xp
    >>> [a.tolist() for a in xp.unique_inverse(xp.asarray([2, 1, 2]))]
    [[1, 2], [1, 0, 1]]
    """
    v, inv, _ = _unique(x)
    return UniqueInverseResult(v, movement.reshape(inv, x.shape))


def unique_all(x: Tensor, /):
    """``unique_values``, the index of each value's first occurrence, the inverse indices and
    the counts.

    >>> import fusejit.array_api as xp
    >>> [a.tolist() for a in xp.unique_all(xp.asarray([2, 1, 2]))]
    [[1, 2], [1, 0], [1, 0, 1], [1, 2]]
    """
    v, inv, c = _unique(x)
    n = inv.shape[0]
    # the first index of each value: the smallest position among those mapped to it
    pos = creation.arange(n, dtype=dt.int64, device=x.device)
    big = creation.full((v.shape[0],), n, dtype=dt.int64, device=x.device)
    first = indexing.scatter_reduce(big, 0, inv, pos, "amin", include_self=True)
    return UniqueAllResult(v, first, movement.reshape(inv, x.shape), c)


def diff(x: Tensor, /, *, axis: int = -1, n: int = 1, prepend=None, append=None) -> Tensor:
    """The ``n``-th differences along ``axis`` (``prepend`` / ``append`` joined first).

    >>> import fusejit.array_api as xp
    >>> xp.diff(xp.asarray([1, 4, 9])).tolist()
    [3, 5]
    """
    x = _array("diff", x)
    parts = [p for p in (prepend, x, append) if p is not None]
    if len(parts) > 1:
        parts = _common("diff", parts)
        x = movement.cat(parts, axis)
    for _ in range(n):
        m = x.shape[axis]
        x = indexing.narrow(x, axis, 1, m - 1) - indexing.narrow(x, axis, 0, m - 1)
    return x


class _Result(tuple):
    _fields: tuple = ()

    def __new__(cls, *values):
        return super().__new__(cls, values)

    def __getattr__(self, name):
        try:
            return self[self._fields.index(name)]
        except ValueError:
            raise AttributeError(name) from None


class UniqueAllResult(_Result):
    _fields = ("values", "indices", "inverse_indices", "counts")


class UniqueCountsResult(_Result):
    _fields = ("values", "counts")


class UniqueInverseResult(_Result):
    _fields = ("values", "inverse_indices")
