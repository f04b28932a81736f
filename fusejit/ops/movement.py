"""Movement ops (views and joins) of the op table, with their public functions.

``reshape``, ``view``, ``transpose``, ``permute``, ``expand``, ``squeeze``, ``unsqueeze``,
basic indexing and ``split`` return views that share storage with their input, as in PyTorch.
"""

from __future__ import annotations

import builtins
import math

import numpy as np

from fusejit.base import dtypes as dt
from fusejit.base.errors import DimError, DTypeError, ShapeError, fmt_shape
from fusejit.eager import dispatch
from fusejit.ops.registry import OpDef, register


def norm_dim(name: str, dim, ndim: int) -> int:
    """``dim`` as a non-negative int; a 0-d tensor accepts -1 and 0 (as in PyTorch)."""
    if not isinstance(dim, (int, np.integer)) or isinstance(dim, bool):
        raise TypeError(f"{name}: dim must be an int, got {type(dim).__name__}")
    n = builtins.max(ndim, 1)
    if not -n <= dim < n:
        raise DimError(
            f"{name}: dim {dim} is out of range for a tensor of {ndim} dims "
            f"(expected a dim in [{-n}, {n - 1}])"
        )
    return int(dim) % n if ndim else 0


def norm_dims(name: str, dim, ndim: int):
    """None (all dims) or a sorted tuple of distinct non-negative dims."""
    if dim is None:
        return None
    if type(dim) is int and -ndim <= dim < ndim:  # the common case, as the general one below
        return (dim % ndim,)
    # anything but a tuple or list is one dim (norm_dim rejects what is not an int)
    dims = tuple(dim) if isinstance(dim, (tuple, list)) else (dim,)
    out = tuple(norm_dim(name, d, ndim) for d in dims)
    if len(set(out)) != len(out):
        raise DimError(f"{name}: dim {tuple(dims)} names a dim more than once")
    if ndim == 0:
        return None
    return tuple(sorted(out))


def _shape_arg(shape) -> tuple:
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        shape = shape[0]
    return tuple(map(int, shape))


def _infer_shape(name: str, x, shape: tuple) -> tuple:
    n, p = x._data.size, math.prod(shape)  # the common cases first, as the general code says
    if p == n and -1 not in shape and min(shape, default=0) >= 0:
        return shape
    if p < 0 and shape.count(-1) == 1 and min(shape) == -1 and not n % p:  # one -1
        i = shape.index(-1)
        return shape[:i] + (n // -p,) + shape[i + 1 :]
    if builtins.sum(1 for s in shape if s == -1) > 1:
        raise ShapeError(f"{name}: only one dimension can be -1, got shape {list(shape)}")
    n = x.numel()
    known = 1
    for s in shape:
        if s != -1:
            if s < 0:
                raise ShapeError(f"{name}: invalid size {s} in shape {list(shape)}")
            known *= s
    if -1 in shape:
        if known == 0 or n % known:
            raise ShapeError(
                f"{name}: shape {list(shape)} is invalid for input of shape {fmt_shape(x.shape)}"
            )
        shape = tuple(n // known if s == -1 else s for s in shape)
    elif known != n:
        raise ShapeError(
            f"{name}: shape {list(shape)} is invalid for input of shape {fmt_shape(x.shape)} "
            f"({n} elements)"
        )
    return shape


def _mv(name, impl, out_dtype=lambda d, *_, **__: d, n_out=1, arity=1):
    return register(OpDef(name=name, kind="movement", arity=arity, impl=impl,
                          out_dtype=out_dtype, n_out=n_out))  # fmt: skip


def _reshape_impl(b, a, shape):
    return a.reshape(shape)


def _view_impl(b, a, shape):
    r = a.reshape(shape)
    if r.size and not b.xp.may_share_memory(r, a):
        raise ShapeError(
            f"view: shape {list(shape)} is not compatible with the input's shape "
            f"{fmt_shape(a.shape)} and strides without a copy; use .reshape() instead"
        )
    return r


RESHAPE = _mv("reshape", _reshape_impl)
VIEW = _mv("view", _view_impl)
PERMUTE = _mv("permute", lambda b, a, dims: a.transpose(dims))
EXPAND = _mv("expand", lambda b, a, shape: b.xp.broadcast_to(a, shape))


def _getitem_impl(b, a, index):
    idx = _decode_index(index)
    # a trailing ``...`` changes nothing but makes numpy return a 0-d view, not a scalar copy,
    # when every dim is indexed by an int (``x[0, 1]``): writes to it reach ``x``, as in torch
    return a[idx if Ellipsis in idx else idx + (Ellipsis,)]


GETITEM = _mv("getitem", _getitem_impl)
CONTIGUOUS = _mv("contiguous", lambda b, a: b.xp.ascontiguousarray(a))
CLONE = _mv("clone", lambda b, a: a.copy())
CAT = _mv("cat", lambda b, *arrs, dim, dtype: b.xp.concatenate(
    [x.astype(dtype.np, copy=False) for x in arrs], axis=dim),
    out_dtype=lambda *ds, dim, dtype: dtype, arity=-1)  # fmt: skip
STACK = _mv("stack", lambda b, *arrs, dim, dtype: b.xp.stack(
    [x.astype(dtype.np, copy=False) for x in arrs], axis=dim),
    out_dtype=lambda *ds, dim, dtype: dtype, arity=-1)  # fmt: skip
# (flip, roll, tile and tril/triu copy, as PyTorch's do)
FLIP = _mv("flip", lambda b, a, dims: b.xp.ascontiguousarray(b.xp.flip(a, axis=dims)))
ROLL = _mv("roll", lambda b, a, shifts, dims: b.xp.roll(a, shifts, axis=dims))
TILE = _mv("tile", lambda b, a, reps: b.xp.tile(a, reps))
TRIL = _mv("tril", lambda b, a, diagonal: b.xp.tril(a, diagonal))
TRIU = _mv("triu", lambda b, a, diagonal: b.xp.triu(a, diagonal))
DIAG = _mv("diag", lambda b, a, diagonal: b.xp.diag(a, diagonal).copy())
SPLIT = _mv("split", lambda b, a, sections, dim: tuple(
    b.xp.split(a, list(np.cumsum(sections)[:-1]), axis=dim)), n_out=-1)  # fmt: skip


def _encode_index(index) -> tuple:
    """A hashable, printable form of a basic index (ints, slices, None, Ellipsis)."""
    if not isinstance(index, tuple):
        index = (index,)
    out = []
    for i in index:
        if i is None:
            out.append(("none",))
        elif i is Ellipsis:
            out.append(("ellipsis",))
        elif isinstance(i, slice):
            out.append(("slice", i.start, i.stop, i.step))
        elif isinstance(i, (int, np.integer)) and not isinstance(i, bool):
            out.append(("int", int(i)))
        else:
            return None
    return tuple(out)


def _decode_index(enc) -> tuple:
    out = []
    for e in enc:
        tag = e[0]
        if tag == "none":
            out.append(None)
        elif tag == "ellipsis":
            out.append(Ellipsis)
        elif tag == "slice":
            out.append(slice(e[1], e[2], e[3]))
        else:
            out.append(e[1])
    return tuple(out)


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
    enc = _encode_index(index)
    if enc is not None:
        _check_index(x, enc)
        return dispatch.apply(GETITEM, (x,), {"index": enc})
    # advanced indexing: tensors as indices
    tracer = dispatch.TRACER
    if tracer is not None:
        tracer.unsupported("indexing with tensors or lists")
    parts = index if isinstance(index, tuple) else (index,)
    conv = []
    for p in parts:
        if isinstance(p, dispatch._Tensor):
            if p.device is not x.device:
                raise dispatch.DeviceError(
                    f"getitem: index on {p.device} for a tensor on {x.device}"
                )
            conv.append(p._data)
        else:
            conv.append(p)
    try:
        r = x._data[tuple(conv)]
    except IndexError as e:
        raise DimError(f"getitem: {e}") from None
    return dispatch._Tensor._wrap(r, x.dtype, x.device)


def _check_index_values(name: str, index, n: int) -> None:
    # numpy takes negative indices from the end and cupy wraps any index around: both would
    # give a result where PyTorch raises (on a GPU this check waits for the index's values)
    if not index.size:
        return
    lo, hi = int(index.min()), int(index.max())
    if lo < 0 or hi >= n:
        raise DimError(f"{name}: index values {lo}..{hi} out of range for a dim of size {n}")


def _index_select_impl(b, a, index, dim):
    _check_index_values("index_select", index, a.shape[dim])
    return b.xp.take(a, index, axis=dim)


def _gather_impl(b, a, index, dim):
    _check_index_values("gather", index, a.shape[dim])
    # PyTorch's gather reads only the part of ``a`` the index covers in the other dims
    part = a[tuple(slice(None) if d == dim else slice(0, s) for d, s in enumerate(index.shape))]
    return b.xp.take_along_axis(part, index, axis=dim)


INDEX_SELECT = _mv("index_select", _index_select_impl, arity=2)
GATHER = _mv("gather", _gather_impl, arity=2)


def _index_arg(name: str, x, index):
    if not isinstance(index, dispatch._Tensor) or index.dtype not in (dt.int32, dt.int64):
        got = index.dtype.name if isinstance(index, dispatch._Tensor) else type(index).__name__
        raise DTypeError(f"{name}: index must be an int32 or int64 tensor, got {got}")
    if index.device is not x.device:
        raise dispatch.DeviceError(f"{name}: index on {index.device} for a tensor on {x.device}")


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


def setitem(x, index, value) -> None:
    """``x[index] = value``, writing through to the storage ``x`` shares with its base."""
    tracer = dispatch.TRACER
    if tracer is not None:
        tracer.unsupported("assignment into a tensor (__setitem__)")
    parts = index if isinstance(index, tuple) else (index,)
    conv = tuple(p._data if isinstance(p, dispatch._Tensor) else p for p in parts)
    if isinstance(value, dispatch._Tensor):
        if value.device is not x.device:
            raise dispatch.DeviceError(
                f"setitem: value on {value.device} for a tensor on {x.device}"
            )
        _check_inplace_dtype("setitem", x.dtype, value.dtype)
        v = value._data
    else:
        _check_inplace_dtype("setitem", x.dtype, dt.result_type(value))
        v = value
    try:
        x._data[conv] = v
    except ValueError as e:
        raise ShapeError(f"setitem: {e}") from None


_KIND_ORDER = {"b": 0, "i": 1, "u": 1, "f": 2}


def _check_inplace_dtype(name, target: dt.DType, result: dt.DType):
    if _KIND_ORDER[result.kind] > _KIND_ORDER[target.kind]:
        raise dispatch.DTypeError(
            f"{name}: result dtype {result.name} cannot be written into a tensor of dtype "
            f"{target.name} in place"
        )


def reshape(x, *shape):
    """A tensor of the given shape with the same data (a view when strides allow)."""
    shape = _infer_shape("reshape", x, _shape_arg(shape))
    return dispatch.apply(RESHAPE, (x,), {"shape": shape})


def view(x, *shape):
    """Like ``reshape`` but never copies; an error when the strides do not allow a view."""
    if len(shape) == 1 and isinstance(shape[0], (dt.DType, str, type)):
        raise TypeError("view(dtype) is not supported; use .to(dtype)")
    shape = _infer_shape("view", x, _shape_arg(shape))
    return dispatch.apply(VIEW, (x,), {"shape": shape})


def flatten(x, start_dim: int = 0, end_dim: int = -1):
    if x.ndim == 0:
        return reshape(x, 1)
    s = norm_dim("flatten", start_dim, x.ndim)
    e = norm_dim("flatten", end_dim, x.ndim)
    if s > e:
        raise DimError(f"flatten: start_dim {start_dim} comes after end_dim {end_dim}")
    shape = x.shape[:s] + (-1,) + x.shape[e + 1 :]
    return (
        reshape(x, *shape)
        if x.numel()
        else reshape(x, *(x.shape[:s] + (int(np.prod(x.shape[s : e + 1])),) + x.shape[e + 1 :]))
    )


def permute(x, *dims):
    dims = _shape_arg(dims)
    if len(dims) != x.ndim:
        raise DimError(f"permute: got {len(dims)} dims {list(dims)} for a tensor of {x.ndim}")
    nd = tuple(norm_dim("permute", d, x.ndim) for d in dims)
    if sorted(nd) != list(range(x.ndim)):
        raise DimError(f"permute: dims {list(dims)} are not a permutation of {x.ndim} dims")
    return dispatch.apply(PERMUTE, (x,), {"dims": nd})


def transpose(x, dim0: int, dim1: int):
    if x.ndim < 2 and x.ndim == 0:
        return x
    a = norm_dim("transpose", dim0, x.ndim)
    b = norm_dim("transpose", dim1, x.ndim)
    dims = list(range(x.ndim))
    dims[a], dims[b] = dims[b], dims[a]
    return dispatch.apply(PERMUTE, (x,), {"dims": tuple(dims)})


def t_(x):
    """``x.T``: all dims reversed."""
    return dispatch.apply(PERMUTE, (x,), {"dims": tuple(range(x.ndim))[::-1]})


def t(x):
    """``x.t()``: a 2-D tensor transposed; 0-D and 1-D tensors as they are (as ``torch.t``).

    >>> import fusejit
    >>> fusejit.ones(2, 3).t().shape
    (3, 2)
    """
    if x.ndim > 2:
        raise DimError(
            f"t: expects a tensor of at most 2 dims, got shape {fmt_shape(x.shape)}; "
            "use transpose(dim0, dim1), permute or .mT"
        )
    return x if x.ndim < 2 else transpose(x, 0, 1)


def swapaxes(x, axis0: int, axis1: int):
    """``transpose(x, axis0, axis1)``, under numpy's name."""
    return transpose(x, axis0, axis1)


def movedim(x, source, destination):
    """``x`` with the dims ``source`` moved to the positions ``destination`` (ints or
    sequences of ints), the other dims keeping their order (as ``torch.movedim``).

    >>> import fusejit
    >>> fusejit.zeros(2, 3, 4).movedim(0, -1).shape
    (3, 4, 2)
    """
    src = (source,) if isinstance(source, (int, np.integer)) else tuple(source)
    dst = (destination,) if isinstance(destination, (int, np.integer)) else tuple(destination)
    if len(src) != len(dst):
        raise DimError(
            f"movedim: source {list(src)} and destination {list(dst)} have different lengths"
        )
    s = [norm_dim("movedim", d, x.ndim) for d in src]
    d = [norm_dim("movedim", d, x.ndim) for d in dst]
    for what, dims, given in (("source", s, src), ("destination", d, dst)):
        if len(set(dims)) != len(dims):
            raise DimError(f"movedim: {what} {list(given)} names a dim more than once")
    order = [None] * x.ndim
    for a, b in zip(s, d):
        order[b] = a
    rest = iter(i for i in range(x.ndim) if i not in s)
    return permute(x, *[next(rest) if o is None else o for o in order])


def narrow(x, dim: int, start: int, length: int):
    """The view of ``x`` holding ``length`` entries of ``dim`` from ``start`` (negative:
    counted from the end), as ``torch.narrow``.

    >>> import fusejit
    >>> fusejit.arange(6).narrow(0, 2, 3).tolist()
    [2, 3, 4]
    """
    d = norm_dim("narrow", dim, x.ndim)
    n = x.shape[d]
    if not -n <= start <= n:
        raise DimError(f"narrow: start {start} is out of range for dim {dim} of size {n}")
    begin = start + n if start < 0 else start
    if length < 0 or begin + length > n:
        raise ShapeError(
            f"narrow: start {start} and length {length} exceed dim {dim} of size {n} "
            f"(shape {fmt_shape(x.shape)})"
        )
    return getitem(x, (slice(None),) * d + (slice(begin, begin + length),))


def unbind(x, dim: int = 0) -> tuple:
    """The slices of ``x`` along ``dim``, that dim removed (as ``torch.unbind``).

    >>> import fusejit
    >>> [t.tolist() for t in fusejit.tensor([[1, 2], [3, 4]]).unbind(1)]
    [[1, 3], [2, 4]]
    """
    if x.ndim == 0:
        raise DimError("unbind: a 0-d tensor has no dim to unbind")
    d = norm_dim("unbind", dim, x.ndim)
    if x.shape[d] == 0:
        return ()
    return tuple(squeeze(p, d) for p in split(x, 1, d))


def _dims_arg(name: str, x, dims) -> tuple:
    dims = (dims,) if isinstance(dims, (int, np.integer)) else tuple(dims)
    out = tuple(norm_dim(name, d, x.ndim) for d in dims)
    if len(set(out)) != len(out):
        raise DimError(f"{name}: dims {list(dims)} name a dim more than once")
    return out


def flip(x, dims):
    """A copy of ``x`` with the order of the entries along ``dims`` reversed (``torch.flip``).

    >>> import fusejit
    >>> fusejit.tensor([[1, 2], [3, 4]]).flip(1).tolist()
    [[2, 1], [4, 3]]
    """
    return dispatch.apply(FLIP, (x,), {"dims": _dims_arg("flip", x, dims)})


def roll(x, shifts, dims=None):
    """``x`` with its entries shifted by ``shifts`` along ``dims``, wrapping around
    (``torch.roll``); without ``dims`` the flattened tensor is rolled.

    >>> import fusejit
    >>> fusejit.arange(5).roll(2).tolist()
    [3, 4, 0, 1, 2]
    """
    sh = (shifts,) if isinstance(shifts, (int, np.integer)) else tuple(shifts)
    if not all(isinstance(s, (int, np.integer)) for s in sh):
        raise TypeError(f"roll: shifts must be ints, got {shifts!r}")
    if dims is None:
        if len(sh) != 1:
            raise DimError(f"roll: {len(sh)} shifts need as many dims, got none")
        flat = reshape(x, -1)
        return reshape(dispatch.apply(ROLL, (flat,), {"shifts": (int(sh[0]),), "dims": (0,)}),
                       *x.shape)  # fmt: skip
    d = _dims_arg("roll", x, dims)
    if len(d) != len(sh):
        raise DimError(f"roll: shifts {list(sh)} and dims {list(d)} differ in length")
    return dispatch.apply(ROLL, (x,), {"shifts": tuple(int(s) for s in sh), "dims": d})


def repeat(x, *sizes):
    """``x`` repeated ``sizes[i]`` times along dim i (``torch.Tensor.repeat``: at least one
    size per dim; more add leading dims). A copy.

    >>> import fusejit
    >>> fusejit.tensor([1, 2]).repeat(2, 2).tolist()
    [[1, 2, 1, 2], [1, 2, 1, 2]]
    """
    reps = _shape_arg(sizes)
    if len(reps) < x.ndim:
        raise DimError(
            f"repeat: {len(reps)} sizes {list(reps)} for a tensor of {x.ndim} dims; give at "
            "least one per dim"
        )
    if any(r < 0 for r in reps):
        raise ValueError(f"repeat: sizes must be non-negative, got {list(reps)}")
    return dispatch.apply(TILE, (x,), {"reps": tuple(int(r) for r in reps)})


def tile(x, dims):
    """``x`` repeated ``dims[i]`` times along dim i (``torch.tile``: fewer reps than dims are
    padded with leading ones)."""
    reps = _shape_arg((dims,) if isinstance(dims, (int, np.integer)) else tuple(dims))
    return repeat(x, *((1,) * (x.ndim - len(reps)) + tuple(reps)))


def _diagonal_arg(name: str, diagonal) -> int:
    if not isinstance(diagonal, (int, np.integer)) or isinstance(diagonal, bool):
        raise TypeError(f"{name}: diagonal must be an int, got {type(diagonal).__name__}")
    return int(diagonal)


def _tri(op, x, diagonal: int):
    if x.ndim < 2:
        raise DimError(f"{op.name}: expects a tensor of at least 2 dims, got shape "
                       f"{fmt_shape(x.shape)}")  # fmt: skip
    return dispatch.apply(op, (x,), {"diagonal": _diagonal_arg(op.name, diagonal)})


def tril(x, diagonal: int = 0):
    """The lower triangle of the last two dims, the rest zero (``torch.tril``); ``diagonal``
    > 0 keeps that many diagonals above the main one.

    >>> import fusejit
    >>> fusejit.ones(2, 2).tril().tolist()
    [[1.0, 0.0], [1.0, 1.0]]
    """
    return _tri(TRIL, x, diagonal)


def triu(x, diagonal: int = 0):
    """The upper triangle of the last two dims, the rest zero (``torch.triu``)."""
    return _tri(TRIU, x, diagonal)


def diag(x, diagonal: int = 0):
    """A 1-D tensor as a square matrix with it on the ``diagonal``-th diagonal, or the
    ``diagonal``-th diagonal of a 2-D tensor as a 1-D copy (``torch.diag``).

    >>> import fusejit
    >>> fusejit.tensor([[1, 2], [3, 4]]).diag().tolist()
    [1, 4]
    """
    if x.ndim not in (1, 2):
        raise DimError(f"diag: expects a 1-D or 2-D tensor, got shape {fmt_shape(x.shape)}")
    return dispatch.apply(DIAG, (x,), {"diagonal": _diagonal_arg("diag", diagonal)})


def trace(x):
    """The sum of the main diagonal of a 2-D tensor (``Tensor.trace``, as ``torch.trace``;
    ``fusejit.trace`` is the JIT's tracer)."""
    from fusejit.ops.reductions import sum as sum_

    if x.ndim != 2:
        raise DimError(f"trace: expects a 2-D tensor, got shape {fmt_shape(x.shape)}")
    return sum_(diag(x))


def expand(x, *sizes):
    sizes = _shape_arg(sizes)
    if len(sizes) < x.ndim:
        raise ShapeError(
            f"expand: {len(sizes)} sizes {list(sizes)} for a tensor of {x.ndim} dims "
            f"{fmt_shape(x.shape)}"
        )
    lead = len(sizes) - x.ndim
    shape = []
    for i, s in enumerate(sizes):
        cur = x.shape[i - lead] if i >= lead else None
        if s == -1:
            if cur is None:
                raise ShapeError("expand: -1 is not allowed for a new leading dim")
            s = cur
        if cur is not None and cur != 1 and cur != s:
            raise ShapeError(
                f"expand: cannot expand dim {i} of size {cur} to {s} "
                f"(shape {fmt_shape(x.shape)} to {list(sizes)})"
            )
        shape.append(s)
    return dispatch.apply(EXPAND, (x,), {"shape": tuple(shape)})


def broadcast_to(x, shape):
    return expand(x, *tuple(shape))


def broadcast_shapes(*shapes) -> tuple:
    try:
        return tuple(np.broadcast_shapes(*[tuple(s) for s in shapes]))
    except ValueError:
        raise ShapeError(
            "broadcast_shapes: shapes "
            + " and ".join(fmt_shape(s) for s in shapes)
            + " cannot be broadcast together"
        ) from None


def squeeze(x, dim=None):
    if dim is None:
        shape = tuple(s for s in x.shape if s != 1)
    else:
        dims = norm_dims("squeeze", dim, x.ndim) or ()
        shape = tuple(s for i, s in enumerate(x.shape) if not (i in dims and s == 1))
    return dispatch.apply(RESHAPE, (x,), {"shape": shape})


def unsqueeze(x, dim: int):
    d = norm_dim("unsqueeze", dim, x.ndim + 1)
    shape = x.shape[:d] + (1,) + x.shape[d:]
    return dispatch.apply(RESHAPE, (x,), {"shape": shape})


def contiguous(x):
    return dispatch.apply(CONTIGUOUS, (x,), {})


def clone(x):
    return dispatch.apply(CLONE, (x,), {})


def _join_dtype(name, tensors):
    if not tensors:
        raise ValueError(f"{name}: expected a non-empty sequence of tensors")
    for t in tensors:
        if not isinstance(t, dispatch._Tensor):
            raise TypeError(f"{name}: expected tensors, got {type(t).__name__}")
    return dt.result_type(*tensors)


def cat(tensors, dim: int = 0):
    """Join tensors along an existing dim (dtypes promote as in elementwise ops)."""
    tensors = tuple(tensors)
    d = _join_dtype("cat", tensors)
    ref = tensors[0]
    dd = norm_dim("cat", dim, ref.ndim)
    for t in tensors[1:]:
        if t.ndim != ref.ndim or any(
            a != b for i, (a, b) in enumerate(zip(t.shape, ref.shape, strict=True)) if i != dd
        ):
            raise ShapeError(
                f"cat: shapes {' and '.join(fmt_shape(u.shape) for u in tensors)} differ "
                f"outside dim {dim}"
            )
    return dispatch.apply(CAT, tensors, {"dim": dd, "dtype": d})


def stack(tensors, dim: int = 0):
    tensors = tuple(tensors)
    d = _join_dtype("stack", tensors)
    for t in tensors[1:]:
        if t.shape != tensors[0].shape:
            raise ShapeError(
                f"stack: expected tensors of one shape, got "
                f"{' and '.join(fmt_shape(u.shape) for u in tensors)}"
            )
    dd = norm_dim("stack", dim, tensors[0].ndim + 1)
    return dispatch.apply(STACK, tensors, {"dim": dd, "dtype": d})


def split(x, split_size_or_sections, dim: int = 0):
    """Split into pieces of ``split_size`` (the last may be smaller) or of the given sizes."""
    d = norm_dim("split", dim, x.ndim)
    n = x.shape[d]
    if isinstance(split_size_or_sections, (int, np.integer)):
        size = int(split_size_or_sections)
        if size <= 0:
            raise ValueError(f"split: split_size must be positive, got {size}")
        sections = [size] * (n // size) + ([n % size] if n % size else [])
        if n == 0:
            sections = [0]
    else:
        sections = [int(s) for s in split_size_or_sections]
        if builtins.sum(sections) != n:
            raise ShapeError(
                f"split: sections {sections} do not add up to the size {n} of dim {dim}"
            )
    return dispatch.apply(SPLIT, (x,), {"sections": tuple(sections), "dim": d})


def chunk(x, chunks: int, dim: int = 0):
    """Split into at most ``chunks`` pieces of equal size (the last may be smaller)."""
    if chunks <= 0:
        raise ValueError(f"chunk: chunks must be positive, got {chunks}")
    d = norm_dim("chunk", dim, x.ndim)
    n = x.shape[d]
    size = builtins.max(1, -(-n // chunks))
    return split(x, size, d)
