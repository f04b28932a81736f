"""Public functions of the movement ops (``fusejit/ops/movement.py``): views, joins and copies.

``reshape``, ``view``, ``transpose``, ``permute``, ``expand``, ``squeeze``, ``unsqueeze`` and
``split`` return views that share storage with their input, as in PyTorch.
"""

from __future__ import annotations

import builtins
import math

import numpy as np

from fusejit.base import dtypes as dt
from fusejit.base.errors import DimError, DTypeError, ShapeError, fmt_shape
from fusejit.base.shapes import describe, dims_arg, int_arg, norm_dim, norm_dims, shape_arg
from fusejit.eager import dispatch
from fusejit.eager.tensor import Tensor
from fusejit.ops.movement import (
    CAT,
    CLONE,
    CONTIGUOUS,
    DIAG,
    EXPAND,
    FLIP,
    PERMUTE,
    RESHAPE,
    ROLL,
    SPLIT,
    STACK,
    TILE,
    TRIL,
    TRIU,
    VIEW,
)


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


def reshape(x, *shape):
    """A tensor of the given shape with the same data (a view when strides allow)."""
    shape = _infer_shape("reshape", x, shape_arg("reshape", shape, "shape"))
    return dispatch.apply(RESHAPE, (x,), {"shape": shape})


def view(x, *shape):
    """Like ``reshape`` but never copies; an error when the strides do not allow a view."""
    if len(shape) == 1 and isinstance(shape[0], (dt.DType, str, type)):
        raise DTypeError(f"view: view(dtype) is not supported, got {describe(shape[0])}; use "
                         ".to(dtype) to convert")  # fmt: skip
    shape = _infer_shape("view", x, shape_arg("view", shape, "shape"))
    return dispatch.apply(VIEW, (x,), {"shape": shape})


def reshape_as(x, other):
    """``reshape(x, *other.shape)``."""
    return reshape(x, *other.shape)


def view_as(x, other):
    """``view(x, *other.shape)``."""
    return view(x, *other.shape)


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
    dims = shape_arg("permute", dims, "dims")
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


def reversed_dims(x):
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


def matrix_transpose(x):
    """``x.mT``: the last two dims swapped."""
    return transpose(x, -2, -1)


swapdims = swapaxes


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
    if x.ndim == 0:  # (dims 0 and -1 name the one position a 0-d tensor has)
        return permute(x)
    order = [None] * x.ndim
    for a, b in zip(s, d):
        order[b] = a
    rest = iter(i for i in range(x.ndim) if i not in s)
    return permute(x, *[next(rest) if o is None else o for o in order])


moveaxis = movedim


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


def flip(x, dims):
    """A copy of ``x`` with the order of the entries along ``dims`` reversed (``torch.flip``).

    >>> import fusejit
    >>> fusejit.tensor([[1, 2], [3, 4]]).flip(1).tolist()
    [[2, 1], [4, 3]]
    """
    return dispatch.apply(FLIP, (x,), {"dims": dims_arg("flip", dims, x.ndim)})


def roll(x, shifts, dims=None):
    """``x`` with its entries shifted by ``shifts`` along ``dims``, wrapping around
    (``torch.roll``); without ``dims`` the flattened tensor is rolled.

    >>> import fusejit
    >>> fusejit.arange(5).roll(2).tolist()
    [3, 4, 0, 1, 2]
    """
    sh = shape_arg("roll", (shifts,), "shifts")
    if dims is None:
        if len(sh) != 1:
            raise DimError(f"roll: {len(sh)} shifts need as many dims, got none")
        flat = reshape(x, -1)
        return reshape(dispatch.apply(ROLL, (flat,), {"shifts": sh, "dims": (0,)}),
                       *x.shape)  # fmt: skip
    iterable = hasattr(dims, "__iter__") and not isinstance(dims, (str, np.integer))
    given = tuple(dims) if iterable else (dims,)
    if len(given) != len(sh):
        raise DimError(f"roll: shifts {list(sh)} and dims {list(given)} differ in length")
    # a dim named more than once is rolled once per entry, as PyTorch's (by the shifts' sum)
    total: dict = {}
    for s, dim in zip(sh, given, strict=True):
        k = norm_dim("roll", dim, x.ndim)
        total[k] = total.get(k, 0) + s
    d = tuple(total)
    return dispatch.apply(ROLL, (x,), {"shifts": tuple(total.values()), "dims": d})


def repeat(x, *sizes):
    """``x`` repeated ``sizes[i]`` times along dim i (``torch.Tensor.repeat``: at least one
    size per dim; more add leading dims). A copy.

    >>> import fusejit
    >>> fusejit.tensor([1, 2]).repeat(2, 2).tolist()
    [[1, 2, 1, 2], [1, 2, 1, 2]]
    """
    reps = shape_arg("repeat", sizes, "sizes", nonnegative=True)
    if len(reps) < x.ndim:
        raise DimError(
            f"repeat: {len(reps)} sizes {list(reps)} for a tensor of {x.ndim} dims; give at "
            "least one per dim"
        )
    return dispatch.apply(TILE, (x,), {"reps": reps})


def tile(x, dims):
    """``x`` repeated ``dims[i]`` times along dim i (``torch.tile``: fewer reps than dims are
    padded with leading ones)."""
    reps = shape_arg("tile", (dims,), "dims", nonnegative=True)
    return repeat(x, *((1,) * (x.ndim - len(reps)) + reps))


def _diagonal_arg(name: str, diagonal) -> int:
    return int_arg(name, diagonal, "diagonal")


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


def expand(x, *sizes):
    """A view of ``x`` with its size-1 dims repeated to ``sizes`` (-1 keeps a dim), and new
    leading dims."""
    return _expand("expand", x, shape_arg("expand", sizes, "sizes"))


def _expand(name: str, x, sizes: tuple):
    if len(sizes) < x.ndim:
        raise ShapeError(
            f"{name}: {len(sizes)} sizes {list(sizes)} for a tensor of {x.ndim} dims "
            f"{fmt_shape(x.shape)}"
        )
    lead = len(sizes) - x.ndim
    shape = []
    for i, s in enumerate(sizes):
        cur = x.shape[i - lead] if i >= lead else None
        if s < 0:
            if s != -1:
                raise ShapeError(
                    f"{name}: invalid size {s} at dim {i} of {list(sizes)}; sizes must be "
                    "non-negative, or -1 to keep a dim"
                )
            if cur is None:
                raise ShapeError(f"{name}: -1 is not allowed for a new leading dim")
            s = cur
        if cur is not None and cur != 1 and cur != s:
            raise ShapeError(
                f"{name}: cannot expand dim {i} of size {cur} to {s} "
                f"(shape {fmt_shape(x.shape)} to {list(sizes)})"
            )
        shape.append(s)
    return dispatch.apply(EXPAND, (x,), {"shape": tuple(shape)})


def expand_as(x, other):
    """``expand(x, *other.shape)``."""
    return expand(x, *other.shape)


def broadcast_to(x, shape):
    """``expand(x, *shape)``."""
    return _expand("broadcast_to", x, shape_arg("broadcast_to", (shape,), "shape"))


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
    """``x`` itself when its storage is C-contiguous, else a C-contiguous copy."""
    if x._data.flags.c_contiguous:
        return x
    return dispatch.apply(CONTIGUOUS, (x,), {})


def clone(x):
    return dispatch.apply(CLONE, (x,), {})


def _join_dtype(name, tensors):
    if not tensors:
        raise ValueError(f"{name}: expected a non-empty sequence of tensors")
    for t in tensors:
        if not isinstance(t, Tensor):
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
    if isinstance(split_size_or_sections, (tuple, list)):
        sections = shape_arg("split", (split_size_or_sections,), "sections", nonnegative=True)
        if builtins.sum(sections) != n:
            raise ShapeError(
                f"split: sections {list(sections)} do not add up to the size {n} of dim {dim}"
            )
    else:
        size = int_arg("split", split_size_or_sections, "split_size")
        if size <= 0 and not (size == 0 and n == 0):
            raise ShapeError(f"split: split_size must be positive, got {size}")
        sections = (size,) * (n // size) + ((n % size,) if n % size else ()) if n else (0,)
    return dispatch.apply(SPLIT, (x,), {"sections": tuple(sections), "dim": d})


def chunk(x, chunks: int, dim: int = 0):
    """Split into at most ``chunks`` pieces of equal size (the last may be smaller)."""
    chunks = int_arg("chunk", chunks, "chunks")
    if chunks <= 0:
        raise ShapeError(f"chunk: chunks must be positive, got {chunks}")
    d = norm_dim("chunk", dim, x.ndim)
    n = x.shape[d]
    if n == 0:  # as PyTorch: ``chunks`` empty pieces, not one
        return split(x, [0] * chunks, d)
    size = builtins.max(1, -(-n // chunks))
    return split(x, size, d)
