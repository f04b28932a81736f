"""Public functions of indexing (``fusejit/ops/movement.py``'s ``getitem``, ``index_select`` and
``gather``): ``x[index]``, ``x[index] = value``, ``narrow``, ``index_select``, ``gather``.

Basic indices (ints, slices, None, ``...``) give views; tensor indices give copies.
"""

from __future__ import annotations

import builtins

from fusejit.base import dtypes as dt
from fusejit.base.errors import DeviceError, DimError, DTypeError, ShapeError, fmt_shape
from fusejit.base.shapes import int_arg, norm_dim
from fusejit.eager import dispatch, recording
from fusejit.eager.inplace import scalar_as
from fusejit.eager.movement import reshape
from fusejit.eager.tensor import Tensor
from fusejit.ops.movement import GATHER, GETITEM, INDEX_SELECT, encode_index


def _check_index(x, index):
    """Bounds and arity checks for a basic index, with PyTorch-style messages."""
    n_consumed = builtins.sum(1 for e in index if e[0] in ("int", "slice"))
    if n_consumed > x.ndim:
        raise DimError(
            f"getitem: too many indices for a tensor of {x.ndim} dims ({n_consumed} given)"
        )
    dim = 0
    for e in index:
        if e[0] == "ellipsis":
            dim = x.ndim - builtins.sum(
                1 for f in index[index.index(e) + 1 :] if f[0] in ("int", "slice")
            )
        elif e[0] == "int":
            size = x.shape[dim]
            if not -size <= e[1] < size:
                raise DimError(
                    f"getitem: index {e[1]} is out of bounds for dim {dim} with size {size}"
                )
            dim += 1
        elif e[0] == "slice":
            if e[3] is not None and e[3] <= 0:
                raise ValueError("getitem: slice step must be positive")
            dim += 1


def getitem(x, index):
    """``x[index]``: basic indices give a view; tensor (bool or int) indices give a copy."""
    if type(index) is slice and x._data.ndim and (index.step is None or index.step > 0):
        # x[a:b]: what the general path below does for it, without its loops
        enc = (("slice", index.start, index.stop, index.step),)
        return dispatch.apply(GETITEM, (x,), {"index": enc})
    enc = encode_index(index)
    if enc is not None:
        _check_index(x, enc)
        return dispatch.apply(GETITEM, (x,), {"index": enc})
    # advanced indexing: tensors as indices
    tracer = recording.TRACER
    if tracer is not None:
        tracer.unsupported("indexing with tensors or lists")
    parts = index if isinstance(index, tuple) else (index,)
    conv = []
    for p in parts:
        if isinstance(p, Tensor):
            if p.device is not x.device:
                raise DeviceError(f"getitem: index on {p.device} for a tensor on {x.device}")
            conv.append(p._data)
        else:
            conv.append(p)
    try:
        r = x._data[tuple(conv)]
    except IndexError as e:
        raise DimError(f"getitem: {e}") from None
    return Tensor._wrap(r, x.dtype, x.device)


def setitem(x, index, value) -> None:
    """``x[index] = value``, writing through to the storage ``x`` shares with its base."""
    tracer = recording.TRACER
    if tracer is not None:
        tracer.unsupported("assignment into a tensor (__setitem__)")
    parts = index if isinstance(index, tuple) else (index,)
    for p in parts:
        if isinstance(p, slice) and p.step is not None and p.step <= 0:
            # (as getitem and PyTorch: numpy would write the values reversed)
            raise ValueError(f"setitem: slice step must be positive, got {p.step}")
    conv = tuple(p._data if isinstance(p, Tensor) else p for p in parts)
    # values are converted to x's dtype as PyTorch (and copy_) convert them: 2.5 -> 2 in ints
    if isinstance(value, Tensor):
        if value.device is not x.device:
            raise DeviceError(f"setitem: value on {value.device} for a tensor on {x.device}")
        v = value._data
    else:
        v = scalar_as("setitem", x.dtype, value)
    try:
        x._data[conv] = v
    except ValueError as e:
        raise ShapeError(f"setitem: {e}") from None


def narrow(x, dim: int, start: int, length: int):
    """The view of ``x`` holding ``length`` entries of ``dim`` from ``start`` (negative:
    counted from the end), as ``torch.narrow``.

    >>> import fusejit
    >>> fusejit.arange(6).narrow(0, 2, 3).tolist()
    [2, 3, 4]
    """
    d = norm_dim("narrow", dim, x.ndim)
    start, length = int_arg("narrow", start, "start"), int_arg("narrow", length, "length")
    n = x.shape[d]
    if not -n <= start <= n:
        raise DimError(f"narrow: start {start} is out of range for dim {dim} of size {n}")
    if length < 0:
        raise ShapeError(f"narrow: length must be non-negative, got {length}")
    begin = start + n if start < 0 else start
    if begin + length > n:
        raise ShapeError(
            f"narrow: start {start} and length {length} exceed dim {dim} of size {n} "
            f"(shape {fmt_shape(x.shape)})"
        )
    return getitem(x, (slice(None),) * d + (slice(begin, begin + length),))


def _index_arg(name: str, x, index):
    if not isinstance(index, Tensor) or index.dtype not in (dt.int32, dt.int64):
        got = index.dtype.name if isinstance(index, Tensor) else type(index).__name__
        raise DTypeError(f"{name}: index must be an int32 or int64 tensor, got {got}")
    if index.device is not x.device:
        raise DeviceError(f"{name}: index on {index.device} for a tensor on {x.device}")


def index_select(x, dim: int, index):
    """The entries of ``x`` at positions ``index`` (a 1-D int tensor) along ``dim``
    (``torch.index_select``). A copy.

    >>> import fusejit
    >>> fusejit.tensor([[1, 2], [3, 4]]).index_select(0, fusejit.tensor([1, 1, 0])).tolist()
    [[3, 4], [3, 4], [1, 2]]
    """
    _index_arg("index_select", x, index)
    if index.ndim > 1:
        raise ShapeError(f"index_select: index must be 1-D, got shape {fmt_shape(index.shape)}")
    d = norm_dim("index_select", dim, x.ndim)
    if x.ndim == 0:
        return reshape(index_select(reshape(x, 1), 0, index), *index.shape)
    return dispatch.apply(INDEX_SELECT, (x, reshape(index, -1)), {"dim": d})


def gather(x, dim: int, index):
    """``out[i][j] = x[index[i][j]][j]`` for ``dim`` 0 (and so on): ``index`` has x's number
    of dims and at most x's size in the others (``torch.gather``).

    >>> import fusejit
    >>> fusejit.tensor([[1, 2], [3, 4]]).gather(1, fusejit.tensor([[0, 0], [1, 0]])).tolist()
    [[1, 1], [4, 3]]
    """
    _index_arg("gather", x, index)
    d = norm_dim("gather", dim, x.ndim)
    if index.ndim != x.ndim or any(
        i > s for k, (i, s) in enumerate(zip(index.shape, x.shape)) if k != d
    ):
        raise ShapeError(
            f"gather: index of shape {fmt_shape(index.shape)} does not fit a tensor of shape "
            f"{fmt_shape(x.shape)} along dim {dim} (same number of dims, no larger in the "
            "others)"
        )
    if x.ndim == 0:
        return reshape(gather(reshape(x, 1), 0, reshape(index, 1)), *index.shape)
    return dispatch.apply(GATHER, (x, index), {"dim": d})
