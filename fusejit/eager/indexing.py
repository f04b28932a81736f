"""Public functions of indexing (``fusejit/ops/movement.py``'s ``getitem``, ``index_select`` and
``gather``; ``fusejit/ops/indexing.py``): ``x[index]``, ``x[index] = value``, ``narrow``,
``index_select``, ``gather``, ``take``, ``take_along_dim``, the scatter family (``scatter``,
``scatter_add``, ``scatter_reduce``, ``index_add``, ``index_copy``, ``index_fill``,
``index_put``, ``masked_scatter`` and their in-place forms), ``one_hot``, ``searchsorted``,
``bucketize``, ``histc``, and, eager only (their result's shape depends on the values),
``masked_select``, ``nonzero``, ``argwhere``, ``unique``, ``bincount``.

Basic indices (ints, slices, None, ``...``) give views; tensor indices give copies.
"""

from __future__ import annotations

import builtins

import numpy as np

from fusejit.base import dtypes as dt
from fusejit.base.errors import DeviceError, DimError, DTypeError, ShapeError, fmt_shape
from fusejit.base.shapes import broadcast_shapes, int_arg, norm_dim
from fusejit.eager import autograd, dispatch, recording
from fusejit.eager.creation import arange, full
from fusejit.eager.elementwise import cast, where
from fusejit.eager.grad_mode import MODE
from fusejit.eager.inplace import scalar_as, write_inplace
from fusejit.eager.movement import expand, reshape
from fusejit.eager.tensor import Tensor
from fusejit.ops.indexing import (
    HISTC,
    INDEX_PUT,
    MASKED_SCATTER,
    ONE_HOT,
    SCATTER,
    SCATTER_REDUCES,
    SEARCHSORTED,
    check_index_range,
)
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
    parts = index if isinstance(index, tuple) else (index,)
    if recording.TRACER is not None:
        return _traced_advanced_getitem(x, parts)
    conv = []
    for p in parts:
        if isinstance(p, Tensor):
            if p.device is not x.device:
                raise DeviceError(f"getitem: index on {p.device} for a tensor on {x.device}")
            conv.append(p._data)
        else:
            conv.append(p)
    if MODE.enabled and x.requires_grad:
        return _getitem_by_positions(x, tuple(conv))
    try:
        r = x._data[tuple(conv)]
    except IndexError as e:
        raise DimError(f"getitem: {e}") from None
    return Tensor._wrap(r, x.dtype, x.device)


def _traced_advanced_getitem(x, parts: tuple):
    """``x[parts]`` with int tensor (or list) indices, written with recorded ops so that a trace
    holds it: the basic part as a ``getitem`` view, then one ``index_select`` along the indexed
    dims (flattened into one when there are several, moved to the front when they are not next
    to each other, as numpy places them), and a reshape to the result's shape. Negative indices
    count from the end; one out of range is a DimError where the graph runs."""
    conv = []
    for p in parts:
        if isinstance(p, (list, np.ndarray)) or (
            isinstance(p, Tensor) is False and hasattr(p, "__len__") and not isinstance(p, str)
        ):
            a = np.asarray(p)
            if not len(p) or a.dtype.kind not in "iub":
                raise DimError(f"getitem: cannot index with {describe_index(parts)}")
            a = a.astype(np.bool_ if a.dtype.kind == "b" else np.int64)
            p = _on(x, a, dt.bool_ if a.dtype.kind == "b" else dt.int64)
        if isinstance(p, Tensor):
            if p.device is not x.device:
                raise DeviceError(f"getitem: index on {p.device} for a tensor on {x.device}")
            if p.dtype is dt.bool_:
                if len(parts) != 1:
                    recording.TRACER.unsupported(
                        "indexing with a bool mask among other indices (only x[mask] traces)"
                    )
                return _traced_mask_getitem(x, p)
            if p.dtype.kind not in "iu":
                raise DimError(f"getitem: tensors used as indices must be integers, got "
                               f"{p.dtype.name}")  # fmt: skip
        conv.append(p)
    # with tensor indices, ints are indices of the same kind (0-d), as numpy (and so eager)
    # places them: x[1, :, i] puts i's dims first
    conv = [
        _on(x, np.asarray(p, np.int64), dt.int64)
        if isinstance(p, (builtins.int, np.integer)) and not isinstance(p, builtins.bool)
        else p
        for p in conv
    ]
    n_used = builtins.sum(1 for p in conv if p is not None and p is not Ellipsis)
    if n_used > x.ndim:
        raise DimError(f"getitem: too many indices for a tensor of {x.ndim} dims ({n_used} given)")
    basic, where_at, tensors, out_dim, seen_ellipsis = [], [], [], 0, False
    for p in conv:
        if p is Ellipsis:
            if seen_ellipsis:
                raise DimError("getitem: an index can only have a single ellipsis")
            seen_ellipsis = True
            k = x.ndim - n_used
            basic.append(Ellipsis)
            out_dim += k
        elif p is None:
            basic.append(None)
            out_dim += 1
        elif isinstance(p, Tensor):
            basic.append(slice(None))
            where_at.append(out_dim)
            tensors.append(p)
            out_dim += 1
        else:
            basic.append(p)
            if isinstance(p, slice):
                out_dim += 1
    plain = all(isinstance(b, slice) and b == slice(None) for b in basic)
    y = x if plain else getitem(x, tuple(basic))  # the basic part: a view
    if where_at != list(range(where_at[0], where_at[0] + len(where_at))):
        # indexed dims apart: numpy puts the indexed result first
        rest = [d for d in range(y.ndim) if d not in where_at]
        y = y.permute(*where_at, *rest)
        where_at = list(range(len(where_at)))
    first = where_at[0]
    sizes = [y.shape[d] for d in where_at]
    bshape = broadcast_shapes(*[t.shape for t in tensors])
    flat = None
    total = 1
    for n in sizes:
        total = total * n
    stride = total
    bad = None
    for t, n in zip(tensors, sizes):
        stride = stride // n
        t = cast(t, dt.int64) if t.dtype is not dt.int64 else t
        t = where(t < 0, t + n, t)  # negative: from the end
        if len(tensors) > 1:
            out = (t < 0) | (t >= n)
            bad = out if bad is None else bad | out
        term = t * stride if stride != 1 else t
        flat = term if flat is None else flat + term
    if bad is not None:  # one index out of range: the whole position is (index_select raises)
        flat = where(bad, total, flat)
    pre, post = tuple(y.shape[:first]), tuple(y.shape[first + len(sizes) :])
    if len(sizes) > 1:
        y = reshape(y, *pre, total, *post)
    flat = expand(flat, *bshape) if tuple(flat.shape) != tuple(bshape) else flat
    rows = index_select(y, first, reshape(flat, -1))
    return reshape(rows, *pre, *bshape, *post)


def _traced_setitem(tracer, x, index, value) -> None:
    """``x[index] = value`` in a trace, as a new value of ``x``: ``index_put`` of the written
    positions (those of ``arange(numel).reshape(x.shape)[index]``) into ``x`` flattened. The
    tracer then reads that value wherever ``x`` is used. Refused for what the graph cannot
    write back: an input, a tensor read from outside that the graph already reads, a view, or
    a tensor a view was taken of (the view would not see the write)."""
    if not tracer.knows(x):
        tracer.snapshot(x)  # made by the function (or a global it writes): its values now
    elif not tracer.may_write(x):
        tracer.unsupported(
            "assignment into an input or a tensor the function reads from outside "
            "(__setitem__: the graph would not write back into it)"
        )
    if x._data.base is not None or tracer.viewed(x):
        tracer.unsupported(
            "assignment into a view or into a tensor a view was taken of (__setitem__: the "
            "other views would not see the write)"
        )
    if isinstance(value, Tensor):
        if value.device is not x.device:
            raise DeviceError(f"setitem: value on {value.device} for a tensor on {x.device}")
        v = value if value.dtype is x.dtype else cast(value, x.dtype)
    else:
        v = full((), scalar_as("setitem", x.dtype, value), dtype=x.dtype, device=x.device)
    shape = x.shape
    n = x.numel()
    pos = reshape(arange(n, device=x.device), *shape)[index]
    if tuple(v.shape) != tuple(pos.shape):
        try:
            v = expand(v, *pos.shape)
        except ShapeError:
            raise ShapeError(
                f"setitem: a value of shape {fmt_shape(v.shape)} does not fit the "
                f"{fmt_shape(pos.shape)} places written in a tensor of shape {fmt_shape(shape)}"
            ) from None
    new = reshape(index_put(reshape(x, -1), (reshape(pos, -1),), reshape(v, -1)), *shape)
    tracer.rebind(x, new)


def mask_positions(mask: Tensor) -> Tensor:
    """The flat positions (int64, 1-d) of the true entries of a 1-d bool tensor."""
    xp = mask.device.backend.xp
    pos = xp.flatnonzero(mask._data).astype(xp.int64)
    return Tensor._wrap(pos, dt.int64, mask.device)


def _traced_mask_getitem(x, mask):
    """``x[mask]`` in a trace: ``index_select`` of the mask's true positions (a
    ``mask_positions`` node, whose length is a symbol bound when the graph runs) from ``x``
    with the mask's dims flattened into one."""
    k = mask.ndim
    if tuple(mask._data.shape) != tuple(x._data.shape[:k]):
        raise DimError(
            f"getitem: a mask of shape {fmt_shape(mask.shape)} does not fit a tensor of shape "
            f"{fmt_shape(x.shape)}"
        )
    flat = reshape(mask, -1)
    pos = mask_positions(flat)
    recording.TRACER.record_mask_positions(flat, pos)
    return index_select(reshape(x, -1, *x.shape[k:]), 0, pos)


def _on(x, arr: np.ndarray, dtype) -> Tensor:
    """A numpy array as a tensor on ``x``'s device (a constant of the trace)."""
    return Tensor._wrap(x.device.backend.from_numpy(arr), dtype, x.device)


def describe_index(parts) -> str:
    return ", ".join(type(p).__name__ for p in parts)


def _getitem_by_positions(x, index: tuple):
    """``x[index]`` (an advanced index) as ``index_select`` of the flat positions the index
    picks, so that autograd records it: the gradient adds back into the picked places,
    repeated ones adding up."""
    xp = x.device.backend.xp
    try:
        pos = xp.arange(x.numel(), dtype=xp.int64).reshape(x.shape)[index]
    except IndexError as e:
        raise DimError(f"getitem: {e}") from None
    flat = Tensor._wrap(xp.ascontiguousarray(pos).reshape(-1), dt.int64, x.device)
    return reshape(index_select(reshape(x, -1), 0, flat), *pos.shape)


def setitem(x, index, value) -> None:
    """``x[index] = value``, writing through to the storage ``x`` shares with its base."""
    tracer = recording.TRACER
    parts = index if isinstance(index, tuple) else (index,)
    if tracer is not None:
        _traced_setitem(tracer, x, index, value)
        with recording.recording(None):  # the write itself, as eager does, unrecorded
            setitem(x, index, value)
        return
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
    track = getattr(x, "_ag", None) is not None or getattr(value, "_ag", None) is not None
    if track:
        autograd.check_inplace("setitem", x)
        if autograd.needs_grad((x, value) if isinstance(value, Tensor) else (x,)):
            _record_setitem(x, index, value)
        elif MODE.enabled:
            view = autograd._view_of(x)
            x._ag = None  # (overwritten without history)
            autograd.rebase_view(x, view)
    try:
        x._data[conv] = v
    except ValueError as e:
        raise ShapeError(f"setitem: {e}") from None
    autograd.bump_version(x)


def _record_setitem(x, index, value) -> None:
    """``x[index] = value`` under autograd: ``x`` gets a node whose gradient for the old ``x``
    is the incoming one with ``index`` zeroed, and for ``value`` the incoming one at
    ``index``."""
    operands = (x, value) if isinstance(value, Tensor) else (x,)
    edges = []
    for t in operands:
        info = getattr(t, "_ag", None)
        if autograd.REWRITTEN and info is not None and info.node is not None:
            info = autograd.sync_view(t, info)  # (a view taken before a write: made again)
        edges.append(autograd._edge(t, info) if info is not None and info.requires_grad else None)
    metas = [(t._data.shape, t._dtype, t._device) for t in operands]
    one = len(operands) == 1  # (the closure keeps no operand: x would point back at its node)

    def backward(g):
        gx = g.clone()
        gx[index] = 0
        if one:
            return (gx,)
        return gx, g[index]

    view = autograd._view_of(x)
    node = autograd.FunctionNode("IndexPutBackward0", edges, (x,), backward, metas)
    x._ag = autograd.GradInfo(True, node, 0)
    autograd.rebase_view(x, view)


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


# --- scatter and the ops written with it; index_put, masked_scatter, one_hot, searchsorted,
# histc (table ops) and the ops whose result shape depends on the values (eager only)


def _want_tensor(name: str, x, what: str = "input") -> None:
    if not isinstance(x, Tensor):
        raise TypeError(f"{name}: expected a tensor for {what}, got {type(x).__name__}")


def _want_index(name: str, x, index, what: str = "index", int32: bool = False) -> None:
    """``index`` is an int64 (or, with ``int32``, int32) tensor on ``x``'s device."""
    ok = (dt.int64, dt.int32) if int32 else (dt.int64,)
    if not isinstance(index, Tensor) or index.dtype not in ok:
        got = index.dtype.name if isinstance(index, Tensor) else type(index).__name__
        want = "an int32 or int64" if int32 else "an int64"
        raise DTypeError(f"{name}: {what} must be {want} tensor, got {got}")
    if index.device is not x.device:
        raise DeviceError(f"{name}: {what} on {index.device} for a tensor on {x.device}")


def _want_like(name: str, x, other, what: str) -> None:
    _want_tensor(name, other, what)
    if other.dtype is not x.dtype:
        raise DTypeError(
            f"{name}: {what} of dtype {other.dtype.name} for a tensor of dtype {x.dtype.name} "
            "(they must be equal)"
        )
    if other.device is not x.device:
        raise DeviceError(f"{name}: {what} on {other.device} for a tensor on {x.device}")


def _fill_value(name: str, x, value):
    """A scalar ``value`` (a Python number or a one-element tensor) to write into ``x``."""
    if isinstance(value, Tensor):
        if value.numel() != 1:
            raise ShapeError(
                f"{name}: value must be a number or a one-element tensor, got a tensor of "
                f"shape {fmt_shape(value.shape)}"
            )
        value = value.item()
    if isinstance(value, np.generic):
        value = value.item()
    if not isinstance(value, (builtins.bool, builtins.int, builtins.float)):
        raise DTypeError(f"{name}: value must be a number, got {type(value).__name__}")
    if x.dtype.kind in "iu" and isinstance(value, builtins.int):
        info = np.iinfo(x.dtype.np)
        if not info.min <= value <= info.max:
            raise DTypeError(f"{name}: value {value} does not fit dtype {x.dtype.name}")
    return value


def _index_in_range(name: str, index, n: int, negative: bool = False) -> None:
    """Eagerly, a DimError naming ``name`` for an index out of range; in a traced graph the
    table op's implementation checks (and names itself)."""
    if recording.TRACER is None:
        check_index_range(name, index._data, n, negative)


def _refuse_in_trace(name: str) -> None:
    tracer = recording.TRACER
    if tracer is not None:
        tracer.unsupported(
            f"{name} (its result's shape depends on the tensor's values, and graphs have "
            "static shapes)"
        )


def _scatter_into(name: str, x, dim, index, src, value, reduce: str, include_self: bool = True):
    _want_tensor(name, x)
    _want_index(name, x, index)
    if src is not None:
        _want_like(name, x, src, "src")
    else:
        value = _fill_value(name, x, value)
    if reduce != "set" and x.dtype is dt.bool_:
        raise DTypeError(f"{name}: reduce={reduce!r} is not defined for bool tensors")
    d = norm_dim(name, dim, x.ndim)
    shape = x.shape
    if x.ndim == 0:  # (as one element of a 1-d tensor)
        if index.ndim > 1 or (src is not None and src.ndim > 1):
            raise ShapeError(f"{name}: index and src of a 0-d tensor must have at most 1 dim")
        x, index = reshape(x, 1), reshape(index, -1)
        src = None if src is None else reshape(src, -1)
    if not index.numel():  # (nothing written; PyTorch checks no shapes then)
        return reshape(x.clone(), shape)
    operands = (x, index) if src is None else (x, index, src)
    bad = index.ndim != x.ndim or (src is not None and src.ndim != index.ndim)
    bad = bad or any(
        i > s for k, (i, s) in enumerate(zip(index.shape, x.shape, strict=False)) if k != d
    )
    bad = bad or (src is not None and any(i > s for i, s in zip(index.shape, src.shape)))
    if bad:
        src_shape = "" if src is None else f", src of shape {fmt_shape(src.shape)}"
        raise ShapeError(
            f"{name}: index of shape {fmt_shape(index.shape)} does not fit a tensor of shape "
            f"{fmt_shape(x.shape)}{src_shape} along dim {dim} (same number of dims; no larger "
            "than src, nor than the tensor in the other dims)"
        )
    _index_in_range(name, index, x.shape[d])
    out = dispatch.apply(
        SCATTER, operands,
        {"dim": d, "reduce": reduce, "include_self": builtins.bool(include_self),
         "value": None if src is not None else value},
    )  # fmt: skip
    return out if out.shape == shape else reshape(out, shape)


def scatter(input, dim: int, index, src=None, value=None, *, reduce: str | None = None):  # noqa: A002
    """``input`` with ``src[i][j]`` (or the number ``value``) written at ``[index[i][j]][j]``
    for ``dim`` 0 (and so on), as ``torch.scatter``; ``index`` (int64) has input's number of
    dims. ``reduce='add'`` or ``'multiply'`` combines instead of writing. Where an index
    repeats without a reduction, which write lands is unspecified (as in PyTorch).

    >>> import fusejit
    >>> x = fusejit.zeros(2, 3)
    >>> x.scatter(1, fusejit.tensor([[2], [0]]), fusejit.tensor([[5.0], [7.0]])).tolist()
    [[0.0, 0.0, 5.0], [7.0, 0.0, 0.0]]
    """
    if src is not None and not isinstance(src, Tensor):
        src, value = None, src
    if (src is None) == (value is None):
        raise TypeError("scatter: give either src (a tensor) or value (a number)")
    legacy = {None: "set", "add": "sum", "multiply": "prod"}
    if reduce not in legacy:
        raise ValueError(f"scatter: reduce must be 'add' or 'multiply', got {reduce!r}")
    return _scatter_into("scatter", input, dim, index, src, value, legacy[reduce])


def scatter_add(input, dim: int, index, src):  # noqa: A002
    """``input`` with ``src[i][j]`` added at ``[index[i][j]][j]`` for ``dim`` 0 (and so on),
    repeated indices adding up (``torch.scatter_add``).

    >>> import fusejit
    >>> fusejit.zeros(3).scatter_add(0, fusejit.tensor([0, 2, 0]), fusejit.ones(3)).tolist()
    [2.0, 0.0, 1.0]
    """
    return _scatter_into("scatter_add", input, dim, index, src, None, "sum")


def scatter_reduce(input, dim: int, index, src, reduce: str, *, include_self: bool = True):  # noqa: A002
    """``input`` with the entries of ``src`` combined into the places ``index`` names along
    ``dim`` (as ``scatter_add``) by ``reduce``: ``'sum'``, ``'prod'``, ``'mean'``, ``'amax'``
    or ``'amin'`` (``torch.scatter_reduce``). ``include_self=False`` leaves input's own value
    out of the places written (those not written keep it). The mean of integers rounds down.

    >>> import fusejit
    >>> x, i = fusejit.tensor([1.0, 10.0]), fusejit.tensor([0, 0, 1])
    >>> x.scatter_reduce(0, i, fusejit.tensor([4.0, 6.0, 2.0]), "amax").tolist()
    [6.0, 10.0]
    """
    if reduce not in SCATTER_REDUCES[1:]:
        raise ValueError(
            f"scatter_reduce: reduce must be one of 'sum', 'prod', 'mean', 'amax', 'amin', "
            f"got {reduce!r}"
        )
    return _scatter_into("scatter_reduce", input, dim, index, src, None, reduce, include_self)


def _index_along(name: str, x, dim, index, int32: bool):
    """(dim, index as int64 of shape [len] at dim and 1 elsewhere) of the index_* ops."""
    _want_tensor(name, x)
    _want_index(name, x, index, int32=int32)
    if index.ndim > 1:
        raise ShapeError(f"{name}: index must be 1-D, got shape {fmt_shape(index.shape)}")
    d = norm_dim(name, dim, x.ndim)
    if index.dtype is not dt.int64:
        index = cast(index, dt.int64)
    return d, reshape(index, *[-1 if k == d else 1 for k in range(builtins.max(x.ndim, 1))])


def _check_source(name: str, x, d: int, index, source):
    _want_like(name, x, source, "source")
    want = list(x.shape) or [1]
    want[d] = index.numel()
    got = list(source.shape) or [1]
    if got != want or source.ndim != x.ndim:
        raise ShapeError(
            f"{name}: source of shape {fmt_shape(source.shape)} does not fit a tensor of shape "
            f"{fmt_shape(x.shape)} and {index.numel()} indices along dim {d} (expected "
            f"{fmt_shape(tuple(want) if x.ndim else ())})"
        )


def index_add(input, dim: int, index, source, *, alpha=1):  # noqa: A002
    """``input`` with ``alpha * source`` added along ``dim`` at the positions ``index`` (a 1-D
    int tensor; repeated positions add up), as ``torch.index_add``.

    >>> import fusejit
    >>> x = fusejit.zeros(3, 2)
    >>> x.index_add(0, fusejit.tensor([2, 0, 2]), fusejit.ones(3, 2)).tolist()
    [[1.0, 1.0], [0.0, 0.0], [2.0, 2.0]]
    """
    d, idx = _index_along("index_add", input, dim, index, int32=True)
    _check_source("index_add", input, d, index, source)
    if isinstance(alpha, builtins.float) and input.dtype.kind != "f":
        raise DTypeError(
            f"index_add: alpha must be an int for a tensor of dtype {input.dtype.name}"
        )
    n = input.shape[d] if input.ndim else 1
    _index_in_range("index_add", index, n)
    if not (isinstance(alpha, (builtins.int, builtins.float)) and alpha == 1):
        source = source * alpha
    src = reshape(source, *(source.shape or (1,)))
    return _scatter_into("index_add", input, d, expand(idx, *src.shape), src, None, "sum")


def index_copy(input, dim: int, index, source):  # noqa: A002
    """``input`` with the slices of ``source`` written along ``dim`` at the positions
    ``index`` (``torch.index_copy``; which write lands where an index repeats is unspecified).

    >>> import fusejit
    >>> fusejit.zeros(3).index_copy(0, fusejit.tensor([2, 0]), fusejit.tensor([5.0, 6.0])).tolist()
    [6.0, 0.0, 5.0]
    """
    d, idx = _index_along("index_copy", input, dim, index, int32=False)
    _check_source("index_copy", input, d, index, source)
    _index_in_range("index_copy", index, input.shape[d] if input.ndim else 1)
    src = reshape(source, *(source.shape or (1,)))
    return _scatter_into("index_copy", input, d, expand(idx, *src.shape), src, None, "set")


def index_fill(input, dim: int, index, value):  # noqa: A002
    """``input`` with ``value`` (a number or a one-element tensor) at the positions ``index``
    along ``dim``; negative positions count from the end (``torch.index_fill``).

    >>> import fusejit
    >>> fusejit.zeros(2, 3).index_fill(1, fusejit.tensor([0, -1]), 7.0).tolist()
    [[7.0, 0.0, 7.0], [7.0, 0.0, 7.0]]
    """
    d, idx = _index_along("index_fill", input, dim, index, int32=False)
    value = _fill_value("index_fill", input, value)
    n = input.shape[d] if input.ndim else 1
    _index_in_range("index_fill", index, n, negative=True)
    idx = where(idx < 0, idx + n, idx)
    shape = list(input.shape) or [1]
    shape[d] = index.numel()
    return _scatter_into("index_fill", input, d, expand(idx, *shape), None, value, "set")


def index_put(input, indices, values, accumulate: bool = False):  # noqa: A002
    """``input`` with ``values`` (broadcast) written at ``input[indices]``, ``indices`` a
    tuple of int tensors (broadcast together) for the first dims, or bool masks; with
    ``accumulate`` added instead, repeated positions adding up (``torch.index_put``).

    >>> import fusejit
    >>> x = fusejit.zeros(2, 2)
    >>> i = (fusejit.tensor([0, 1, 0]), fusejit.tensor([1, 0, 1]))
    >>> x.index_put(i, fusejit.tensor(1.0), accumulate=True).tolist()
    [[0.0, 2.0], [1.0, 0.0]]
    """
    _want_tensor("index_put", input)
    if isinstance(indices, Tensor) or not isinstance(indices, (tuple, list)):
        raise TypeError("index_put: indices must be a tuple or list of tensors")
    _want_like("index_put", input, values, "values")
    idx = []
    for i in indices:
        if isinstance(i, Tensor) and i.dtype is dt.bool_:
            if i.device is not input.device:
                raise DeviceError(f"index_put: index on {i.device} for a tensor on {input.device}")
            _refuse_in_trace("index_put with a bool mask")
            idx.extend(nonzero(i, as_tuple=True))
        else:
            _want_index("index_put", input, i, what="each index", int32=True)
            idx.append(i if i.dtype is dt.int64 else cast(i, dt.int64))
    k = len(idx)
    if not 1 <= k <= input.ndim:
        raise DimError(
            f"index_put: {k} indices for a tensor of {input.ndim} dims (expected 1 to {input.ndim})"
        )
    try:
        target = broadcast_shapes(*[i.shape for i in idx]) + input.shape[k:]
        broadcast_shapes(values.shape, target)
    except ShapeError:
        shapes = ", ".join(fmt_shape(i.shape) for i in idx)
        raise ShapeError(
            f"index_put: values of shape {fmt_shape(values.shape)} do not broadcast to the "
            f"indexed places of a tensor of shape {fmt_shape(input.shape)} (indices of shapes "
            f"{shapes})"
        ) from None
    for i, n in zip(idx, input.shape, strict=False):
        _index_in_range("index_put", i, n, negative=True)
    return dispatch.apply(
        INDEX_PUT, (input, values, *idx), {"accumulate": builtins.bool(accumulate)}
    )


def masked_scatter(input, mask, source):  # noqa: A002
    """``input`` (broadcast with the bool ``mask``) with the first entries of ``source``
    written, in order, where ``mask`` is true (``torch.masked_scatter``).

    >>> import fusejit
    >>> x, m = fusejit.zeros(4), fusejit.tensor([True, False, True, False])
    >>> x.masked_scatter(m, fusejit.tensor([1.0, 2.0, 3.0])).tolist()
    [1.0, 0.0, 2.0, 0.0]
    """
    _want_tensor("masked_scatter", input)
    _mask_shape("masked_scatter", input, mask)
    _want_like("masked_scatter", input, source, "source")
    return dispatch.apply(MASKED_SCATTER, (input, mask, source), {})


def _mask_shape(name: str, x, mask) -> tuple:
    if not isinstance(mask, Tensor) or mask.dtype is not dt.bool_:
        got = mask.dtype.name if isinstance(mask, Tensor) else type(mask).__name__
        raise DTypeError(f"{name}: mask must be a bool tensor, got {got}")
    if mask.device is not x.device:
        raise DeviceError(f"{name}: mask on {mask.device} for a tensor on {x.device}")
    try:
        return broadcast_shapes(x.shape, mask.shape)
    except ShapeError:
        raise ShapeError(
            f"{name}: mask of shape {fmt_shape(mask.shape)} and tensor of shape "
            f"{fmt_shape(x.shape)} cannot be broadcast together"
        ) from None


def masked_select(input, mask):  # noqa: A002
    """The entries of ``input`` where the bool ``mask`` is true (both broadcast), as a 1-D
    tensor (``torch.masked_select``). Its length depends on the values: eager only.

    >>> import fusejit
    >>> x = fusejit.tensor([[1, 2], [3, 4]])
    >>> x.masked_select(x > 1).tolist()
    [2, 3, 4]
    """
    _want_tensor("masked_select", input)
    shape = _mask_shape("masked_select", input, mask)
    _refuse_in_trace("masked_select")
    xp = input.device.backend.xp
    a, m = xp.broadcast_to(input._data, shape), xp.broadcast_to(mask._data, shape)
    return Tensor._wrap(a[m], input.dtype, input.device)


def nonzero(input, *, as_tuple: bool = False):  # noqa: A002
    """The indices of the nonzero entries of ``input``, in row-major order: an int64 tensor
    of shape ``[n, ndim]``, or with ``as_tuple`` one 1-D tensor per dim (a 0-d input counts as
    1-d there), as ``torch.nonzero``. Eager only (the count depends on the values).

    >>> import fusejit
    >>> fusejit.tensor([[0, 1], [2, 0]]).nonzero().tolist()
    [[0, 1], [1, 0]]
    """
    _want_tensor("nonzero", input)
    _refuse_in_trace("nonzero")
    xp, a = input.device.backend.xp, input._data
    if as_tuple:
        return tuple(Tensor._wrap(i.astype(xp.int64), dt.int64, input.device)
                     for i in xp.nonzero(a.reshape(-1) if a.ndim == 0 else a))  # fmt: skip
    if a.ndim == 0:
        r = xp.zeros((int(a != 0), 0), dtype=xp.int64)
    else:
        r = xp.stack(xp.nonzero(a), axis=-1).astype(xp.int64)
    return Tensor._wrap(r, dt.int64, input.device)


def argwhere(input):  # noqa: A002
    """``nonzero(input)``: the ``[n, ndim]`` indices of the nonzero entries
    (``torch.argwhere``). Eager only.

    >>> import fusejit
    >>> fusejit.tensor([0.0, 3.0, 5.0]).argwhere().tolist()
    [[1], [2]]
    """
    _want_tensor("argwhere", input)
    _refuse_in_trace("argwhere")
    return nonzero(input)


def take(input, index):  # noqa: A002
    """The entries of ``input`` read as 1-D at ``index`` (int64; negative counts from the
    end), in index's shape (``torch.take``).

    >>> import fusejit
    >>> fusejit.tensor([[1, 2], [3, 4]]).take(fusejit.tensor([[0, -1]])).tolist()
    [[1, 4]]
    """
    _want_tensor("take", input)
    _want_index("take", input, index)
    n = input.numel()
    _index_in_range("take", index, n, negative=True)
    flat = reshape(index, -1)
    got = index_select(reshape(input, -1), 0, where(flat < 0, flat + n, flat))
    return reshape(got, *index.shape)


def take_along_dim(input, indices, dim: int | None = None):  # noqa: A002
    """The entries of ``input`` at ``indices`` along ``dim`` (the two broadcast in the other
    dims), as ``torch.take_along_dim``; with ``dim=None`` both read as 1-D.

    >>> import fusejit
    >>> x = fusejit.tensor([[10, 30, 20], [60, 40, 50]])
    >>> x.take_along_dim(x.argmax(1, keepdim=True), 1).tolist()
    [[30], [60]]
    """
    _want_tensor("take_along_dim", input)
    _want_index("take_along_dim", input, indices, what="indices")
    if dim is None:
        return gather(reshape(input, -1), 0, reshape(indices, -1))
    d = norm_dim("take_along_dim", dim, input.ndim)
    if input.ndim != indices.ndim:
        raise ShapeError(
            f"take_along_dim: input of {input.ndim} dims and indices of {indices.ndim} dims "
            "(they must be equal)"
        )
    if input.ndim == 0:
        return gather(input, 0, indices)
    a_shape, i_shape = list(input.shape), list(indices.shape)
    a_shape[d] = i_shape[d]
    try:
        both = list(broadcast_shapes(tuple(a_shape), tuple(i_shape)))
    except ShapeError:
        raise ShapeError(
            f"take_along_dim: input of shape {fmt_shape(input.shape)} and indices of shape "
            f"{fmt_shape(indices.shape)} cannot be broadcast outside dim {dim}"
        ) from None
    i_full = list(both)
    both[d] = input.shape[d]
    return gather(expand(input, *both), d, expand(indices, *i_full))


def one_hot(tensor, num_classes: int = -1):
    """An int64 tensor of ``tensor``'s shape plus a last dim of ``num_classes``: 1 at each
    entry's value, 0 elsewhere (``torch.nn.functional.one_hot``). ``num_classes=-1`` takes
    the largest value plus one: eager only (the shape depends on the values).

    >>> import fusejit
    >>> fusejit.one_hot(fusejit.tensor([0, 2]), 3).tolist()
    [[1, 0, 0], [0, 0, 1]]
    """
    _want_tensor("one_hot", tensor)
    if tensor.dtype is not dt.int64:
        raise DTypeError(
            f"one_hot: expected an int64 tensor of class values, got {tensor.dtype.name}"
        )
    n = int_arg("one_hot", num_classes, "num_classes")
    if n < -1:
        raise ShapeError(f"one_hot: num_classes must be -1 or >= 0, got {n}")
    if n == -1:
        _refuse_in_trace("one_hot without num_classes")
        if not tensor.numel():
            raise ShapeError("one_hot: cannot infer the number of classes of an empty tensor")
        n = int(tensor._data.max()) + 1
    return dispatch.apply(ONE_HOT, (tensor,), {"num_classes": n})


def searchsorted(sorted_sequence, input, *, out_int32: bool = False, right: bool = False,  # noqa: A002
                 side: str | None = None, sorter=None):  # fmt: skip
    """For each entry of ``input``, the index at which it would go into the last dim of
    ``sorted_sequence`` to keep it sorted: the first such index, or with ``right=True``
    (``side='right'``) the last (``torch.searchsorted``). An N-d sequence searches row by
    row (its leading dims are input's); ``sorter`` (int64) are the indices that sort it.

    >>> import fusejit
    >>> s = fusejit.tensor([1, 3, 5, 7])
    >>> fusejit.searchsorted(s, fusejit.tensor([3, 6])).tolist()
    [1, 3]
    """
    name = "searchsorted"
    _want_tensor(name, sorted_sequence, "sorted_sequence")
    if side is not None:
        if side not in ("left", "right"):
            raise ValueError(f"{name}: side must be 'left' or 'right', got {side!r}")
        if right and side == "left":
            raise ValueError(f"{name}: side='left' and right=True contradict each other")
        right = side == "right"
    if sorted_sequence.ndim == 0:
        raise ShapeError(f"{name}: sorted_sequence must have at least 1 dim, got a 0-d tensor")
    if not isinstance(input, Tensor):
        if sorted_sequence.ndim != 1:
            raise ShapeError(f"{name}: input can be a number only for a 1-D sorted_sequence")
        _fill_value(name, sorted_sequence, input)
        d = dt.result_type(sorted_sequence, input)
        input = full((), input, dtype=d, device=sorted_sequence.device)  # noqa: A001
    elif input.device is not sorted_sequence.device:
        raise DeviceError(f"{name}: input on {input.device}, sorted_sequence on "
                          f"{sorted_sequence.device}")  # fmt: skip
    for t, what in ((sorted_sequence, "sorted_sequence"), (input, "input")):
        if t.dtype is dt.bool_:
            raise DTypeError(f"{name}: {what} must be a number tensor, got bool")
    if sorted_sequence.ndim > 1 and sorted_sequence.shape[:-1] != input.shape[:-1]:
        raise ShapeError(
            f"{name}: sorted_sequence of shape {fmt_shape(sorted_sequence.shape)} and input "
            f"of shape {fmt_shape(input.shape)} differ in their leading dims"
        )
    operands = [sorted_sequence, input]
    if sorter is not None:
        _want_index(name, sorted_sequence, sorter, what="sorter")
        if sorter.shape != sorted_sequence.shape:
            raise ShapeError(
                f"{name}: sorter of shape {fmt_shape(sorter.shape)} for a sorted_sequence of "
                f"shape {fmt_shape(sorted_sequence.shape)}"
            )
        operands.append(sorter)
    d = dt.promote_types(sorted_sequence.dtype, input.dtype)
    operands[:2] = [t if t.dtype is d else cast(t, d) for t in operands[:2]]
    attrs = {"right": builtins.bool(right), "out_int32": builtins.bool(out_int32)}
    return dispatch.apply(SEARCHSORTED, tuple(operands), attrs)


def bucketize(input, boundaries, *, out_int32: bool = False, right: bool = False):  # noqa: A002
    """The bucket of each entry of ``input`` among the sorted 1-D ``boundaries``: ``i`` with
    ``boundaries[i-1] < x <= boundaries[i]``, or with ``right=True``
    ``boundaries[i-1] <= x < boundaries[i]`` (``torch.bucketize``).

    >>> import fusejit
    >>> fusejit.bucketize(fusejit.tensor([0.5, 1.0, 9.0]), fusejit.tensor([1.0, 2.0])).tolist()
    [0, 0, 2]
    """
    _want_tensor("bucketize", boundaries, "boundaries")
    if boundaries.ndim != 1:
        raise ShapeError(f"bucketize: boundaries must be 1-D, got shape "
                         f"{fmt_shape(boundaries.shape)}")  # fmt: skip
    return searchsorted(boundaries, input, out_int32=out_int32, right=right)


def histc(input, bins: int = 100, min=0, max=0):  # noqa: A002
    """A histogram of ``input``'s entries in ``bins`` equal bins between ``min`` and ``max``
    (both 0, or equal: the data's own minimum and maximum); entries outside, and NaN, are
    left out; the maximum goes into the last bin (``torch.histc``). Floating point tensors;
    the result has input's dtype (float16 is binned in float32).

    >>> import fusejit
    >>> fusejit.tensor([1.0, 2.0, 1.0]).histc(bins=4, min=0, max=3).tolist()
    [0.0, 2.0, 1.0, 0.0]
    """
    _want_tensor("histc", input)
    if input.dtype.kind != "f":
        raise DTypeError(f"histc: expected a floating-point tensor, got {input.dtype.name}")
    bins = int_arg("histc", bins, "bins")
    if bins <= 0:
        raise ShapeError(f"histc: bins must be > 0, got {bins}")
    lo, hi = (_fill_value("histc", input, v) for v in (min, max))
    if lo > hi:
        raise ShapeError(f"histc: max must be larger than min, got min={lo}, max={hi}")
    if not (np.isfinite(lo) and np.isfinite(hi)):
        raise ShapeError(f"histc: range of [{lo}, {hi}] is not finite")
    return dispatch.apply(HISTC, (input,), {"bins": bins, "lo": float(lo), "hi": float(hi)})


def bincount(input, weights=None, minlength: int = 0):  # noqa: A002
    """The number of times each value 0, 1, ... occurs in the 1-D non-negative int tensor
    ``input`` (or, with ``weights``, their sum), at least ``minlength`` long
    (``torch.bincount``): int64, or with weights float32 for float32 weights, else float64.
    Eager only (its length depends on the values).

    >>> import fusejit
    >>> fusejit.tensor([0, 2, 2]).bincount().tolist()
    [1, 0, 2]
    """
    _want_tensor("bincount", input)
    if input.dtype.kind not in "iu":
        raise DTypeError(f"bincount: expected an integer tensor, got {input.dtype.name}")
    if input.ndim != 1:
        raise ShapeError(f"bincount: input must be 1-D, got shape {fmt_shape(input.shape)}")
    minlength = int_arg("bincount", minlength, "minlength")
    if minlength < 0:
        raise ShapeError(f"bincount: minlength must be >= 0, got {minlength}")
    _refuse_in_trace("bincount")
    xp, a = input.device.backend.xp, input._data
    if a.size and int(a.min()) < 0:
        raise DimError(f"bincount: input values must be non-negative, got {int(a.min())}")
    if weights is None:
        r = xp.bincount(a.astype(xp.int64), minlength=minlength).astype(xp.int64)
        return Tensor._wrap(r, dt.int64, input.device)
    _want_tensor("bincount", weights, "weights")
    if weights.device is not input.device:
        raise DeviceError(f"bincount: weights on {weights.device} for input on {input.device}")
    if weights.shape != input.shape:
        raise ShapeError(f"bincount: weights of shape {fmt_shape(weights.shape)} for input of "
                         f"shape {fmt_shape(input.shape)}")  # fmt: skip
    out = dt.float32 if weights.dtype is dt.float32 else dt.float64
    r = xp.bincount(a.astype(xp.int64), weights=weights._data.astype(xp.float64),
                    minlength=minlength)  # fmt: skip
    return Tensor._wrap(r.astype(out.np), out, input.device)


def unique(input, sorted: bool = True, return_inverse: bool = False,  # noqa: A002
           return_counts: bool = False, dim: int | None = None):  # fmt: skip
    """The distinct values of ``input`` (or, with ``dim``, its distinct slices along ``dim``),
    always sorted; with ``return_inverse`` the index of each entry's value among them (in
    input's shape, or one per slice), with ``return_counts`` how often each occurs
    (``torch.unique``). NaNs are all distinct, as in PyTorch. Eager only.

    >>> import fusejit
    >>> fusejit.tensor([3, 1, 3, 2]).unique(return_counts=True)[1].tolist()
    [1, 1, 2]
    """
    _want_tensor("unique", input)
    _refuse_in_trace("unique")
    a = input._data
    b = input.device.backend
    host = a if b.name == "cpu" else b.xp.asnumpy(a)  # (cupy's unique has no equal_nan)
    if dim is None:
        res = np.unique(host.reshape(-1), return_inverse=True, return_counts=True,
                        equal_nan=False)  # fmt: skip
        inverse = res[1].reshape(host.shape)
    else:
        d = norm_dim("unique", dim, input.ndim)
        if input.ndim == 0:
            raise DimError("unique: dim given for a 0-d tensor")
        res = np.unique(host, return_inverse=True, return_counts=True, axis=d)
        inverse = res[1].reshape(-1)

    def wrap(r, d):
        r = np.ascontiguousarray(r)
        return Tensor._wrap(r if b.name == "cpu" else b.xp.asarray(r), d, input.device)

    out = [wrap(res[0].astype(input.dtype.np), input.dtype)]
    if return_inverse:
        out.append(wrap(inverse.astype(np.int64), dt.int64))
    if return_counts:
        out.append(wrap(res[2].astype(np.int64), dt.int64))
    return out[0] if len(out) == 1 else tuple(out)


def _inplace_form(name: str, fn):
    def method(self, *args, **kwargs):
        return write_inplace(name, self, fn(self, *args, **kwargs))

    method.__name__ = name
    return method


scatter_ = _inplace_form("scatter_", scatter)
scatter_add_ = _inplace_form("scatter_add_", scatter_add)
scatter_reduce_ = _inplace_form("scatter_reduce_", scatter_reduce)
index_add_ = _inplace_form("index_add_", index_add)
index_copy_ = _inplace_form("index_copy_", index_copy)
index_fill_ = _inplace_form("index_fill_", index_fill)
index_put_ = _inplace_form("index_put_", index_put)
masked_scatter_ = _inplace_form("masked_scatter_", masked_scatter)
