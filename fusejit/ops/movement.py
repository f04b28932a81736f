"""Movement ops (views, joins, copies and indexing) of the op table.

``reshape``, ``view``, ``permute``, ``expand``, ``getitem`` (basic indices) and ``split`` give
views that share storage with their input, as in PyTorch. Their public functions are in
``fusejit/eager/movement.py`` and ``fusejit/eager/indexing.py``.
"""

from __future__ import annotations

import numpy as np

from fusejit.base.errors import DimError, ShapeError, fmt_shape
from fusejit.ops.registry import ANY_C, OpDef, register


def _mv(name, impl, out_dtype=lambda d, *_, **__: d, n_out=1, arity=1, methods=None):
    """A movement op; ``methods``: its Tensor method names (by default the op's name). Movement
    takes complex values too."""
    return register(OpDef(name=name, kind="movement", arity=arity, impl=impl, allowed=ANY_C,
                          out_dtype=out_dtype, n_out=n_out,
                          methods=(name,) if methods is None else methods))  # fmt: skip


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


RESHAPE = _mv("reshape", _reshape_impl,
              methods=("reshape", "reshape_as", "flatten", "squeeze", "unsqueeze"))  # fmt: skip
VIEW = _mv("view", _view_impl, methods=("view", "view_as"))
PERMUTE = _mv("permute", lambda b, a, dims: a.transpose(dims), methods=(
    "permute", "transpose", "t", "swapaxes", "swapdims", "movedim", "moveaxis"))  # fmt: skip
EXPAND = _mv("expand", lambda b, a, shape: b.xp.broadcast_to(a, shape),
             methods=("expand", "expand_as", "broadcast_to"))  # fmt: skip


def _getitem_impl(b, a, index):
    idx = decode_index(index)
    # a trailing ``...`` changes nothing but makes numpy return a 0-d view, not a scalar copy,
    # when every dim is indexed by an int (``x[0, 1]``): writes to it reach ``x``, as in torch
    return a[idx if Ellipsis in idx else idx + (Ellipsis,)]


GETITEM = _mv("getitem", _getitem_impl, methods=("__getitem__", "narrow"))
CONTIGUOUS = _mv("contiguous", lambda b, a: b.xp.ascontiguousarray(a))
CLONE = _mv("clone", lambda b, a: a.copy())
CAT = _mv("cat", lambda b, *arrs, dim, dtype: b.xp.concatenate(
    [x.astype(dtype.np, copy=False) for x in arrs], axis=dim),
    out_dtype=lambda *ds, dim, dtype: dtype, arity=-1, methods=())  # fmt: skip
STACK = _mv("stack", lambda b, *arrs, dim, dtype: b.xp.stack(
    [x.astype(dtype.np, copy=False) for x in arrs], axis=dim),
    out_dtype=lambda *ds, dim, dtype: dtype, arity=-1, methods=())  # fmt: skip
# (flip, roll, tile and tril/triu copy, as PyTorch's do)
FLIP = _mv("flip", lambda b, a, dims: b.xp.ascontiguousarray(b.xp.flip(a, axis=dims)))
ROLL = _mv("roll", lambda b, a, shifts, dims: b.xp.roll(a, shifts, axis=dims))
TILE = _mv("tile", lambda b, a, reps: b.xp.tile(a, reps), methods=("repeat", "tile"))
TRIL = _mv("tril", lambda b, a, diagonal: b.xp.tril(a, diagonal))
TRIU = _mv("triu", lambda b, a, diagonal: b.xp.triu(a, diagonal))
DIAG = _mv("diag", lambda b, a, diagonal: b.xp.diag(a, diagonal).copy())
SPLIT = _mv("split", lambda b, a, sections, dim: tuple(
    b.xp.split(a, list(np.cumsum(sections)[:-1]), axis=dim)), n_out=-1,
    methods=("split", "chunk", "unbind"))  # fmt: skip


def encode_index(index) -> tuple | None:
    """The ``index`` attribute of ``getitem``: a hashable, printable form of a basic index (ints,
    slices, None, Ellipsis); None for any other index."""
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


def decode_index(enc) -> tuple:
    """The index ``encode_index`` encoded, for numpy or cupy."""
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


def _diagonal_impl(b, a, offset, dims):
    """The ``offset``-th diagonal of the planes of dims ``dims`` as the last dim: a view, which
    writes reach (numpy marks its diagonal views read-only; the flag is lifted when the input
    itself can be written)."""
    r = a.diagonal(offset, dims[0], dims[1])
    if b.name == "cpu" and a.flags.writeable:
        r.flags.writeable = True
    return r


def diag_embed_shape(shape: tuple, offset: int, dims: tuple) -> tuple:
    """The shape of ``diag_embed`` of a tensor of ``shape`` (dims: two distinct dims of the
    result, non-negative)."""
    m = shape[-1] + abs(offset)
    out = list(shape[:-1])
    for d in sorted(dims):
        out.insert(d, m)
    return tuple(out)


def _diag_embed_impl(b, a, offset, dims):
    """A tensor of zeros whose ``offset``-th diagonals in the planes of ``dims`` hold ``a``'s
    last dim."""
    r = b.xp.zeros(diag_embed_shape(a.shape, offset, dims), dtype=a.dtype)
    _diagonal_impl(b, r, offset, dims)[...] = a
    return r


DIAGONAL = _mv("diagonal", _diagonal_impl)
DIAG_EMBED = _mv("diag_embed", _diag_embed_impl)
