"""Public functions of the movement ops (``fusejit/ops/movement.py``): views, joins and copies.

``reshape``, ``view``, ``transpose``, ``permute``, ``expand``, ``squeeze``, ``unsqueeze`` and
``split`` return views that share storage with their input, as in PyTorch.
"""

from __future__ import annotations

import builtins
import math

import numpy as np

from fusejit.base import dtypes as dt
from fusejit.base.errors import DeviceError, DimError, DTypeError, ShapeError, fmt_shape
from fusejit.base.shapes import (
    broadcast_shapes,
    describe,
    dims_arg,
    int_arg,
    norm_dim,
    norm_dims,
    shape_arg,
)
from fusejit.eager import dispatch, recording
from fusejit.eager.tensor import Tensor
from fusejit.ops.movement import (
    CAT,
    CLONE,
    CONTIGUOUS,
    DIAG,
    DIAG_EMBED,
    DIAGONAL,
    EXPAND,
    FLIP,
    GETITEM,
    PERMUTE,
    RESHAPE,
    ROLL,
    SPLIT,
    STACK,
    TILE,
    TRIL,
    TRIU,
    VIEW,
    encode_index,
)


def _infer_shape(name: str, x, shape: tuple) -> tuple:
    # the common cases first, as the general code says; while a trace records, the size
    # may be an expression over dynamic dims (numel)
    n = x._data.size if recording.TRACER is None else x.numel()
    p = math.prod(shape)
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
    """Join tensors along an existing dim (dtypes promote as in elementwise ops). As PyTorch,
    a 1-D empty tensor (shape ``[0]``) among tensors of other shapes is left out (its dtype
    still promotes the result's), so ``cat([empty(0), x])`` is ``x``'s values.

    >>> import fusejit
    >>> fusejit.cat([fusejit.empty(0), fusejit.ones(1, 2)]).tolist()
    [[1.0, 1.0]]
    """
    tensors = tuple(tensors)
    d = _join_dtype("cat", tensors)
    kept = tuple(t for t in tensors if t.shape != (0,))
    if kept and len(kept) < len(tensors):
        for t in tensors:
            if t.device != kept[0].device:
                raise DeviceError(
                    f"cat: tensors on {t.device} and {kept[0].device}; all must be on one device"
                )
        tensors = kept
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


# ---- PyTorch's shape functions, written with the ops above (they trace as those do) -------


def unflatten(x, dim: int, sizes):
    """``x`` with dim ``dim`` split into ``sizes`` (one of them may be -1), as
    ``torch.unflatten``: a view where strides allow.

    >>> import fusejit
    >>> fusejit.zeros(2, 6).unflatten(1, (3, -1)).shape
    (2, 3, 2)
    """
    d = norm_dim("unflatten", dim, x.ndim)
    sizes = shape_arg("unflatten", (sizes,), "sizes")
    if x.ndim == 0:
        raise DimError("unflatten: a 0-d tensor has no dim to unflatten")
    if not sizes:
        raise ShapeError("unflatten: sizes must be non-empty")
    n = x.shape[d]
    inner = _infer_shape("unflatten", _SizedDim(n), sizes)
    if math.prod(inner) != n:
        raise ShapeError(f"unflatten: sizes {list(sizes)} do not hold the size {n} of dim {dim}")
    return reshape(x, *(x.shape[:d] + inner + x.shape[d + 1 :]))


class _SizedDim:
    """What ``_infer_shape`` reads of a tensor, for one dim of size ``n``."""

    def __init__(self, n: int) -> None:
        self.shape = (n,)
        self._data = np.broadcast_to(np.empty((), np.uint8), (n,))

    def numel(self) -> int:
        return self.shape[0]


def diagonal(x, offset: int = 0, dim1: int = 0, dim2: int = 1):
    """The ``offset``-th diagonal of the planes of ``dim1`` and ``dim2`` as the last dim, a view
    (``torch.diagonal``: writes reach ``x``).

    >>> import fusejit
    >>> fusejit.arange(9).reshape(3, 3).diagonal(1).tolist()
    [1, 5]
    """
    if x.ndim < 2:
        raise DimError(f"diagonal: expects a tensor of at least 2 dims, got shape "
                       f"{fmt_shape(x.shape)}")  # fmt: skip
    a, b = norm_dim("diagonal", dim1, x.ndim), norm_dim("diagonal", dim2, x.ndim)
    if a == b:
        raise DimError(f"diagonal: dim1 and dim2 cannot be the same dim, got {dim1} and {dim2}")
    offset = int_arg("diagonal", offset, "offset")
    return dispatch.apply(DIAGONAL, (x,), {"offset": offset, "dims": (a, b)})


def diag_embed(x, offset: int = 0, dim1: int = -2, dim2: int = -1):
    """A tensor whose ``offset``-th diagonals in the planes of dims ``dim1`` and ``dim2`` (of
    the result) hold the last dim of ``x``, zero elsewhere (``torch.diag_embed``).

    >>> import fusejit
    >>> fusejit.tensor([1, 2]).diag_embed().tolist()
    [[1, 0], [0, 2]]
    """
    if x.ndim < 1:
        raise DimError("diag_embed: expects a tensor of at least 1 dim, got a 0-d tensor")
    a, b = norm_dim("diag_embed", dim1, x.ndim + 1), norm_dim("diag_embed", dim2, x.ndim + 1)
    if a == b:
        raise DimError(f"diag_embed: dim1 and dim2 cannot be the same dim, got {dim1} and "
                       f"{dim2}")  # fmt: skip
    offset = int_arg("diag_embed", offset, "offset")
    return dispatch.apply(DIAG_EMBED, (x,), {"offset": offset, "dims": (a, b)})


def _split_slice(x, d: int, start: int, stop: int):
    index = (slice(None),) * d + (slice(start, stop),)
    return dispatch.apply(GETITEM, (x,), {"index": encode_index(index)})


def _split_arg(name: str, arg):
    """An int (sections) or a tuple of ints (indices) from ``arg``: an int, a sequence of ints,
    or an int64 tensor (0-d: sections; 1-d: indices), as ``torch.tensor_split`` takes."""
    if isinstance(arg, Tensor):
        if arg.dtype is not dt.int64 or arg.ndim > 1:
            raise DTypeError(f"{name}: a tensor of sections or indices must be a 0-d or 1-d "
                             f"int64 tensor, got {arg.dtype.name} of shape "
                             f"{fmt_shape(arg.shape)}")  # fmt: skip
        values = arg.tolist()
        return values if arg.ndim == 0 else tuple(values)
    if isinstance(arg, (tuple, list)):
        return shape_arg(name, (arg,), "indices")
    return int_arg(name, arg, "sections")


def tensor_split(x, indices_or_sections, dim: int = 0) -> tuple:
    """Views of ``x`` split along ``dim`` into ``n`` parts (the first ``size % n`` one longer)
    or at the given indices (``torch.tensor_split``).

    >>> import fusejit
    >>> [t.tolist() for t in fusejit.arange(5).tensor_split(2)]
    [[0, 1, 2], [3, 4]]
    >>> [t.tolist() for t in fusejit.arange(5).tensor_split([1, 4])]
    [[0], [1, 2, 3], [4]]
    """
    if x.ndim == 0:
        raise DimError("tensor_split: expects a tensor of at least 1 dim, got a 0-d tensor")
    d = norm_dim("tensor_split", dim, x.ndim)
    arg = _split_arg("tensor_split", indices_or_sections)
    n = x.shape[d]
    if isinstance(arg, int):
        if arg <= 0:
            raise ShapeError(f"tensor_split: the number of sections must be positive, got {arg}")
        q, r = divmod(n, arg)
        bounds = [0]
        for i in range(arg):
            bounds.append(bounds[-1] + q + (1 if i < r else 0))
        return tuple(_split_slice(x, d, s, e) for s, e in zip(bounds, bounds[1:]))
    bounds = [0, *arg, n]
    # (as torch's slices: a negative index counts from the end; a part that would end before
    # it starts is empty)
    return tuple(_split_slice(x, d, s, e) for s, e in zip(bounds, bounds[1:]))


def _split_hv(name: str, x, arg, d: int) -> tuple:
    arg = _split_arg(name, arg)
    if isinstance(arg, int) and (arg == 0 or x.shape[d] % arg):
        raise ShapeError(f"{name}: cannot split dim {d} of size {x.shape[d]} into {arg} equal "
                         f"parts (shape {fmt_shape(x.shape)})")  # fmt: skip
    return tensor_split(x, arg, d)


def hsplit(x, indices_or_sections) -> tuple:
    """``tensor_split`` along dim 1 (dim 0 of a 1-D tensor), into equal parts when given a
    number (``torch.hsplit``).

    >>> import fusejit
    >>> [t.shape for t in fusejit.zeros(2, 4).hsplit(2)]
    [(2, 2), (2, 2)]
    """
    if x.ndim == 0:
        raise DimError("hsplit: expects a tensor of at least 1 dim, got a 0-d tensor")
    return _split_hv("hsplit", x, indices_or_sections, 1 if x.ndim > 1 else 0)


def vsplit(x, indices_or_sections) -> tuple:
    """``tensor_split`` along dim 0 of a tensor of 2 or more dims (``torch.vsplit``).

    >>> import fusejit
    >>> [t.shape for t in fusejit.zeros(4, 2).vsplit([1])]
    [(1, 2), (3, 2)]
    """
    if x.ndim < 2:
        raise DimError(f"vsplit: expects a tensor of at least 2 dims, got shape "
                       f"{fmt_shape(x.shape)}")  # fmt: skip
    return _split_hv("vsplit", x, indices_or_sections, 0)


def _shape_fn_tensors(name: str, tensors: tuple) -> tuple:
    """``f(a, b)`` or ``f([a, b])`` as a tuple of tensors."""
    if len(tensors) == 1 and isinstance(tensors[0], (tuple, list)):
        tensors = tuple(tensors[0])
    for t in tensors:
        if not isinstance(t, Tensor):
            raise TypeError(f"{name}: expected tensors, got {type(t).__name__}")
    return tensors


def meshgrid(*tensors, indexing: str = "ij") -> tuple:
    """Coordinate grids of 0-d or 1-d tensors as views (``torch.meshgrid``): with
    ``indexing="ij"`` (the default, without torch's warning) result ``i`` varies along dim
    ``i``; with ``"xy"`` the first two dims are swapped (as numpy's default).

    >>> import fusejit
    >>> a, b = fusejit.meshgrid(fusejit.tensor([1, 2]), fusejit.tensor([3, 4, 5]))
    >>> a.shape, b[1].tolist()
    ((2, 3), [3, 4, 5])
    """
    tensors = _shape_fn_tensors("meshgrid", tensors)
    if indexing not in ("ij", "xy"):
        raise ValueError(f"meshgrid: indexing must be 'ij' or 'xy', got {indexing!r}")
    if not tensors:
        raise ValueError("meshgrid: expected a non-empty sequence of tensors")
    for t in tensors:
        if t.ndim > 1:
            raise ShapeError(f"meshgrid: expects 0-d or 1-d tensors, got shape "
                             f"{fmt_shape(t.shape)}")  # fmt: skip
        if t.dtype is not tensors[0].dtype:
            raise DTypeError(f"meshgrid: expects tensors of one dtype, got "
                             f"{', '.join(u.dtype.name for u in tensors)}")  # fmt: skip
    dispatch.device_of("meshgrid", tensors)
    sizes = [t.numel() for t in tensors]
    swap = indexing == "xy" and len(tensors) >= 2
    if swap:
        sizes[0], sizes[1] = sizes[1], sizes[0]
    out = []
    for i, t in enumerate(tensors):
        pos = {0: 1, 1: 0}.get(i, i) if swap else i
        shape = [1] * len(tensors)
        shape[pos] = sizes[pos]
        out.append(_expand("meshgrid", reshape(t, *shape), tuple(sizes)))
    return tuple(out)


def broadcast_tensors(*tensors) -> tuple:
    """The tensors expanded to their common broadcast shape, as views
    (``torch.broadcast_tensors``).

    >>> import fusejit
    >>> [t.shape for t in fusejit.broadcast_tensors(fusejit.zeros(2, 1), fusejit.zeros(3))]
    [(2, 3), (2, 3)]
    """
    tensors = _shape_fn_tensors("broadcast_tensors", tensors)
    if len(tensors) > 1:
        dispatch.device_of("broadcast_tensors", tensors)
    shape = broadcast_shapes(*[t.shape for t in tensors])
    return tuple(t if t.shape == shape else _expand("broadcast_tensors", t, shape)
                 for t in tensors)  # fmt: skip


def _atleast_nd(name: str, n: int, tensors: tuple):
    single = len(tensors) == 1 and isinstance(tensors[0], Tensor)
    tensors = _shape_fn_tensors(name, tensors)
    out = []
    for t in tensors:
        if t.ndim >= n:
            out.append(t)
        elif t.ndim == 0:
            out.append(reshape(t, *(1,) * n))
        elif n == 2 or t.ndim == 2:  # (N,) -> (1, N); (M, N) -> (M, N, 1)
            out.append(reshape(t, *((1,) + t.shape if n == 2 else t.shape + (1,))))
        else:  # (N,) -> (1, N, 1)
            out.append(reshape(t, 1, t.shape[0], 1))
    return out[0] if single else tuple(out)


def atleast_1d(*tensors):
    """Each tensor with at least 1 dim (a 0-d one as shape (1,)); one tensor given, one
    returned, else a tuple (``torch.atleast_1d``).

    >>> import fusejit
    >>> fusejit.atleast_1d(fusejit.tensor(3)).shape
    (1,)
    """
    return _atleast_nd("atleast_1d", 1, tensors)


def atleast_2d(*tensors):
    """Each tensor with at least 2 dims: ``(N,)`` as ``(1, N)`` (``torch.atleast_2d``).

    >>> import fusejit
    >>> fusejit.atleast_2d(fusejit.zeros(3)).shape
    (1, 3)
    """
    return _atleast_nd("atleast_2d", 2, tensors)


def atleast_3d(*tensors):
    """Each tensor with at least 3 dims: ``(N,)`` as ``(1, N, 1)``, ``(M, N)`` as
    ``(M, N, 1)`` (``torch.atleast_3d``).

    >>> import fusejit
    >>> fusejit.atleast_3d(fusejit.zeros(2, 3)).shape
    (2, 3, 1)
    """
    return _atleast_nd("atleast_3d", 3, tensors)


def rot90(x, k: int = 1, dims=(0, 1)):
    """``x`` rotated by 90 degrees ``k`` times in the plane of ``dims``, from the first dim
    towards the second (``torch.rot90``; a copy).

    >>> import fusejit
    >>> fusejit.tensor([[1, 2], [3, 4]]).rot90().tolist()
    [[2, 4], [1, 3]]
    """
    k = int_arg("rot90", k, "k")
    dims = tuple(dims) if isinstance(dims, (tuple, list)) else dims
    if not isinstance(dims, tuple) or len(dims) != 2:
        raise DimError(f"rot90: dims must name two dims, got {dims!r}")
    if x.ndim < 2:
        raise DimError(f"rot90: expects a tensor of at least 2 dims, got shape "
                       f"{fmt_shape(x.shape)}")  # fmt: skip
    a, b = norm_dim("rot90", dims[0], x.ndim), norm_dim("rot90", dims[1], x.ndim)
    if a == b:
        raise DimError(f"rot90: the two dims must differ, got {list(dims)}")
    k %= 4
    if k == 1:
        return transpose(flip(x, (b,)), a, b)
    if k == 2:
        return flip(x, (a, b))
    if k == 3:
        return transpose(flip(x, (a,)), a, b)
    return clone(x)


def _stack_tensors(name: str, tensors):
    if isinstance(tensors, Tensor) or not isinstance(tensors, (tuple, list)):
        raise TypeError(f"{name}: expected a sequence of tensors, got {type(tensors).__name__}")
    tensors = _shape_fn_tensors(name, tuple(tensors))
    if not tensors:
        raise ValueError(f"{name}: expected a non-empty sequence of tensors")
    return tensors


def hstack(tensors):
    """Tensors joined along dim 1 (dim 0 when they are 1-D), 0-d ones as 1-D
    (``torch.hstack``).

    >>> import fusejit
    >>> fusejit.hstack([fusejit.tensor([1, 2]), fusejit.tensor([3])]).tolist()
    [1, 2, 3]
    """
    ts = atleast_1d(_stack_tensors("hstack", tensors))
    return cat(ts, 0 if ts[0].ndim == 1 else 1)


def vstack(tensors):
    """Tensors joined along dim 0, 0-d and 1-d ones as rows (``torch.vstack``).

    >>> import fusejit
    >>> fusejit.vstack([fusejit.tensor([1, 2]), fusejit.tensor([3, 4])]).tolist()
    [[1, 2], [3, 4]]
    """
    return cat(atleast_2d(_stack_tensors("vstack", tensors)), 0)


def dstack(tensors):
    """Tensors joined along dim 2, after ``atleast_3d`` (``torch.dstack``).

    >>> import fusejit
    >>> fusejit.dstack([fusejit.tensor([1, 2]), fusejit.tensor([3, 4])]).shape
    (1, 2, 2)
    """
    return cat(atleast_3d(_stack_tensors("dstack", tensors)), 2)


def column_stack(tensors):
    """Tensors joined as columns: 0-d and 1-d ones as columns of shape ``(n, 1)``, the others
    along dim 1 (``torch.column_stack``).

    >>> import fusejit
    >>> fusejit.column_stack([fusejit.tensor([1, 2]), fusejit.tensor([3, 4])]).tolist()
    [[1, 3], [2, 4]]
    """
    ts = _stack_tensors("column_stack", tensors)
    return cat([reshape(t, t.numel(), 1) if t.ndim <= 1 else t for t in ts], 1)


def repeat_interleave(x, repeats=None, dim=None, *, output_size=None):
    """Each entry of ``x`` repeated ``repeats`` times along ``dim`` (of the flattened tensor
    when None), as ``torch.repeat_interleave``: ``repeats`` an int, or an int tensor of one
    count or one per entry; ``repeat_interleave(counts)`` alone repeats ``arange(len)``. An
    int traces (an expand and a reshape); a tensor of counts gives a shape that depends on its
    values, so it runs eagerly only and is a ``TraceError`` under ``fusejit.trace``.

    >>> import fusejit
    >>> fusejit.tensor([[1, 2], [3, 4]]).repeat_interleave(2, dim=0).tolist()
    [[1, 2], [1, 2], [3, 4], [3, 4]]
    >>> fusejit.tensor([1, 2]).repeat_interleave(fusejit.tensor([1, 2])).tolist()
    [1, 2, 2]
    """
    if not isinstance(x, Tensor):
        raise TypeError(f"repeat_interleave: expected a tensor, got {type(x).__name__}")
    if repeats is None:  # repeat_interleave(counts)
        if x.ndim != 1 or x.dtype.kind not in "iu":
            raise DTypeError(f"repeat_interleave: counts must be a 1-d integer tensor, got "
                             f"{x.dtype.name} of shape {fmt_shape(x.shape)}")  # fmt: skip
        xp = x.device.backend.xp
        idx = Tensor._wrap(xp.arange(x.shape[0], dtype=np.int64), dt.int64, x.device)
        return repeat_interleave(idx, x, 0, output_size=output_size)
    if dim is None:
        x, d = reshape(x, -1), 0
    else:
        d = norm_dim("repeat_interleave", dim, x.ndim)
        if x.ndim == 0:
            x = reshape(x, 1)
    if isinstance(repeats, Tensor):
        return _repeat_counts(x, repeats, d, output_size)
    r = int_arg("repeat_interleave", repeats, "repeats")
    if r < 0:
        raise ShapeError(f"repeat_interleave: repeats must be non-negative, got {r}")
    if output_size is not None and output_size != x.shape[d] * r:
        raise ShapeError(f"repeat_interleave: output_size {output_size} is not "
                         f"{x.shape[d]} * {r}")  # fmt: skip
    wide = _expand("repeat_interleave", unsqueeze(x, d + 1),
                   x.shape[: d + 1] + (r,) + x.shape[d + 1 :])  # fmt: skip
    return reshape(wide, *(x.shape[:d] + (x.shape[d] * r,) + x.shape[d + 1 :]))


def _repeat_counts(x, repeats, d: int, output_size):
    tracer = recording.tracing()
    if tracer is not None:
        tracer.unsupported(
            "repeat_interleave with a tensor of repeats (its result's shape depends on the "
            "values of the repeats, and graphs have static shapes)"
        )
    if repeats.dtype.kind not in "iu":
        raise DTypeError(f"repeat_interleave: repeats must be an integer tensor, got "
                         f"{repeats.dtype.name}")  # fmt: skip
    if repeats.device is not x.device:
        raise DeviceError(f"repeat_interleave: repeats on {repeats.device} for a tensor on "
                          f"{x.device}")  # fmt: skip
    n = x.shape[d]
    if repeats.ndim > 1 or repeats.numel() not in (1, n):
        raise ShapeError(f"repeat_interleave: repeats of shape {fmt_shape(repeats.shape)} for a "
                         f"dim of size {n}; expected one count or {n}")  # fmt: skip
    xp = x.device.backend.xp
    counts = repeats._data.reshape(-1).astype(np.int64)
    if counts.size and int(counts.min()) < 0:
        raise ShapeError("repeat_interleave: repeats must be non-negative")
    total = int(counts.sum()) * (n if counts.size == 1 else 1)
    if output_size is not None and output_size != total:
        raise ShapeError(f"repeat_interleave: output_size {output_size} is not the sum of "
                         f"the repeats, {total}")  # fmt: skip
    if counts.size == 1:
        reps = int(counts[0])
    else:  # (cupy's repeat takes counts as a list, numpy's as an array)
        reps = counts if xp is np else counts.tolist()
    return Tensor._wrap(xp.repeat(x._data, reps, axis=d), x.dtype, x.device)
