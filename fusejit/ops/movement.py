"""Movement ops (views, joins, copies and indexing) of the op table.

``reshape``, ``view``, ``permute``, ``expand``, ``getitem`` (basic indices) and ``split`` give
views that share storage with their input, as in PyTorch. Their public functions are in
``fusejit/eager/movement.py`` and ``fusejit/eager/indexing.py``.
"""

from __future__ import annotations

import numpy as np

from fusejit.base.errors import DimError, ShapeError, fmt_shape
from fusejit.ops import grad_helpers as gh
from fusejit.ops.registry import ANY_C, OpDef, register


def _mv(name, impl, out_dtype=lambda d, *_, **__: d, n_out=1, arity=1, methods=None, vjp=None):
    """A movement op; ``methods``: its Tensor method names (by default the op's name). Movement
    takes complex values too."""
    return register(OpDef(name=name, kind="movement", arity=arity, impl=impl, allowed=ANY_C,
                          out_dtype=out_dtype, n_out=n_out, vjp=vjp,
                          methods=(name,) if methods is None else methods))  # fmt: skip


# --- derivative rules (``OpDef.vjp``): each moves the gradient back where the entries came
# from, with public functions only (see ``fusejit/ops/grad_helpers.py``)


def _reshape_vjp(F, ctx, g):
    return (F.reshape(g, gh.meta(ctx, 0).shape),)


def _permute_vjp(F, ctx, g):
    dims = ctx.attrs["dims"]
    inverse = [0] * len(dims)
    for i, d in enumerate(dims):
        inverse[d % len(dims)] = i
    return (F.permute(g, tuple(inverse)),)


def _expand_vjp(F, ctx, g):
    return (gh.sum_to(F, g, gh.meta(ctx, 0).shape),)


def _getitem_vjp(F, ctx, g):
    """The gradient of a basic index (ints, slices, None, ``...``): ``g`` put back in place,
    zeros elsewhere."""
    x = gh.meta(ctx, 0)
    idx = decode_index(ctx.attrs["index"])
    consumed = sum(1 for i in idx if i is not None and i is not Ellipsis)
    full = []
    for i in idx:
        if i is Ellipsis:
            full += [slice(None)] * (x.ndim - consumed)
        else:
            full.append(i)
    full += [slice(None)] * (x.ndim - sum(1 for i in full if i is not None))
    mid = []  # g's shape without the new dims, with the int-indexed ones as 1
    o = 0
    for i in full:
        if i is None:
            o += 1
        elif isinstance(i, slice):
            mid.append(g.shape[o])
            o += 1
        else:
            mid.append(1)
    g = F.reshape(g, tuple(mid))
    d = 0
    for i in full:
        if i is None:
            continue
        n = x.shape[d]
        if isinstance(i, slice):
            start, _, step = i.indices(n)
            g = gh.place_slice(F, g, d, n, start, step)
        else:
            g = gh.place_slice(F, g, d, n, i + n if i < 0 else i, 1)
        d += 1
    return (g,)


def _same_vjp(F, ctx, g):
    return (g,)


def _cat_vjp(F, ctx, g):
    dim = ctx.attrs["dim"]
    xs = [gh.meta(ctx, i) for i in range(len(ctx.inputs))]
    # (a 1-d empty tensor joins any cat, as in PyTorch: it gets no gradient)
    joined = [x for x in xs if x.ndim == g.ndim]
    parts = iter(F.split(g, [x.shape[dim] for x in joined], dim))
    out = []
    for x in xs:
        part = next(parts) if x.ndim == g.ndim else None
        out.append(_as_grad(F, part, x))
    return tuple(out)


def _as_grad(F, g, x):
    """``g`` as the gradient of operand ``x``: None for a non-float operand, cast to ``x``'s
    dtype where the op promoted it."""
    if g is None or not gh.is_float(x):
        return None
    return g if g.dtype is x.dtype else F.cast(g, x.dtype)


def _stack_vjp(F, ctx, g):
    parts = F.unbind(g, ctx.attrs["dim"])
    xs = [gh.meta(ctx, i) for i in range(len(ctx.inputs))]
    return tuple(_as_grad(F, p, x) for p, x in zip(parts, xs, strict=True))


def _split_vjp(F, ctx, *grads):
    if all(g is None for g in grads):
        return (None,)
    parts = [gh.zeros(F, o, o.shape) if g is None else g
             for g, o in zip(grads, ctx.outputs, strict=True)]  # fmt: skip
    return (F.cat(parts, dim=ctx.attrs["dim"]),)


def _flip_vjp(F, ctx, g):
    return (F.flip(g, ctx.attrs["dims"]),)


def _roll_vjp(F, ctx, g):
    shifts = tuple(-s for s in ctx.attrs["shifts"])
    return (F.roll(g, shifts, ctx.attrs["dims"]),)


def _tile_vjp(F, ctx, g):
    x = gh.meta(ctx, 0)
    reps = tuple(ctx.attrs["reps"])
    k = max(len(reps), x.ndim)
    shape = (1,) * (k - x.ndim) + tuple(x.shape)
    reps = (1,) * (k - len(reps)) + reps
    split = [v for pair in zip(reps, shape, strict=True) for v in pair]
    g = F.reshape(g, tuple(split))
    if any(r != 1 for r in reps):
        g = F.sum(g, dim=tuple(range(0, 2 * k, 2)))
    return (F.reshape(g, x.shape),)


def _tri_vjp(fn: str):
    def vjp(F, ctx, g):
        return (getattr(F, fn)(g, ctx.attrs["diagonal"]),)

    return vjp


def _diag_vjp(F, ctx, g):
    x, k = gh.meta(ctx, 0), ctx.attrs["diagonal"]
    if x.ndim == 1:
        return (F.diag(g, k),)
    return (gh.embed_diagonal(F, g, x.shape, k, (0, 1)),)


def _diagonal_vjp(F, ctx, g):
    x = gh.meta(ctx, 0)
    return (gh.embed_diagonal(F, g, x.shape, ctx.attrs["offset"], ctx.attrs["dims"]),)


def _diag_embed_vjp(F, ctx, g):
    d0, d1 = ctx.attrs["dims"]
    return (F.diagonal(g, ctx.attrs["offset"], d0, d1),)


def _index_select_vjp(F, ctx, g):
    x, index = gh.meta(ctx, 0), ctx.inputs[1]
    return (F.index_add(gh.zeros(F, x, x.shape), ctx.attrs["dim"], index, g), None)


def _gather_vjp(F, ctx, g):
    x, index = gh.meta(ctx, 0), ctx.inputs[1]
    shape, dim = tuple(x.shape), ctx.attrs["dim"] % max(1, len(x.shape))
    ishape = tuple(index.shape)
    same = all(a == b for d, (a, b) in enumerate(zip(ishape, shape)) if d != dim)
    if len(ishape) == len(shape) and ishape[dim] == 1 and same:
        # one index per slice (a loss picking each row's class): the gradient goes where the
        # index points, elementwise (it fuses with the rest of a row's backward; scatter_add
        # into zeros would give the same values)
        n = shape[dim]
        if n <= 1 << 24:  # compared as float32 (exact up to 2**24; the CPU row kernels
            # compare float32 lanes about twice as fast as int64 ones)
            ar = F.arange(n, dtype=F.float32, device=g.device)
            index = F.cast(index, F.float32)
        else:
            ar = F.arange(n, device=g.device)
        if dim != len(shape) - 1:  # (along the last dim it broadcasts as it is)
            ar = F.reshape(ar, tuple(n if i == dim else 1 for i in range(len(shape))))
        return (F.where(ar == index, g, 0.0), None)
    return (F.scatter_add(gh.zeros(F, x, x.shape), ctx.attrs["dim"], index, g), None)


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
              methods=("reshape", "reshape_as", "flatten", "squeeze", "unsqueeze"),
              vjp=_reshape_vjp)  # fmt: skip
VIEW = _mv("view", _view_impl, methods=("view", "view_as"), vjp=_reshape_vjp)
PERMUTE = _mv("permute", lambda b, a, dims: a.transpose(dims), methods=(
    "permute", "transpose", "t", "swapaxes", "swapdims", "movedim", "moveaxis"),
    vjp=_permute_vjp)  # fmt: skip
EXPAND = _mv("expand", lambda b, a, shape: b.xp.broadcast_to(a, shape),
             methods=("expand", "expand_as", "broadcast_to"), vjp=_expand_vjp)  # fmt: skip


def _getitem_impl(b, a, index):
    idx = decode_index(index)
    # a trailing ``...`` changes nothing but makes numpy return a 0-d view, not a scalar copy,
    # when every dim is indexed by an int (``x[0, 1]``): writes to it reach ``x``, as in torch
    return a[idx if Ellipsis in idx else idx + (Ellipsis,)]


GETITEM = _mv("getitem", _getitem_impl, methods=("__getitem__", "narrow"), vjp=_getitem_vjp)
CONTIGUOUS = _mv("contiguous", lambda b, a: b.xp.ascontiguousarray(a), vjp=_same_vjp)
CLONE = _mv("clone", lambda b, a: a.copy(), vjp=_same_vjp)
# ``Tensor.detach()`` in a traced graph: a view of its operand through which no gradient flows
# (eagerly, detach is the autograd engine's own: ``fusejit/eager/autograd.py``); the passes
# drop it once the backward is built (``simplify``)
DETACH = register(OpDef(name="detach", kind="movement", arity=1, impl=lambda b, a: a.view(),
                        allowed=ANY_C, out_dtype=lambda d: d, differentiable=False))  # fmt: skip
CAT = _mv("cat", lambda b, *arrs, dim, dtype: b.xp.concatenate(
    [x.astype(dtype.np, copy=False) for x in arrs], axis=dim),
    out_dtype=lambda *ds, dim, dtype: dtype, arity=-1, methods=(), vjp=_cat_vjp)  # fmt: skip
STACK = _mv("stack", lambda b, *arrs, dim, dtype: b.xp.stack(
    [x.astype(dtype.np, copy=False) for x in arrs], axis=dim),
    out_dtype=lambda *ds, dim, dtype: dtype, arity=-1, methods=(), vjp=_stack_vjp)  # fmt: skip
# (flip, roll, tile and tril/triu copy, as PyTorch's do)
FLIP = _mv("flip", lambda b, a, dims: b.xp.ascontiguousarray(b.xp.flip(a, axis=dims)),
           vjp=_flip_vjp)  # fmt: skip
ROLL = _mv("roll", lambda b, a, shifts, dims: b.xp.roll(a, shifts, axis=dims), vjp=_roll_vjp)
TILE = _mv("tile", lambda b, a, reps: b.xp.tile(a, reps), methods=("repeat", "tile"),
           vjp=_tile_vjp)  # fmt: skip
TRIL = _mv("tril", lambda b, a, diagonal: b.xp.tril(a, diagonal), vjp=_tri_vjp("tril"))
TRIU = _mv("triu", lambda b, a, diagonal: b.xp.triu(a, diagonal), vjp=_tri_vjp("triu"))
DIAG = _mv("diag", lambda b, a, diagonal: b.xp.diag(a, diagonal).copy(), vjp=_diag_vjp)
SPLIT = _mv("split", lambda b, a, sections, dim: tuple(
    b.xp.split(a, list(np.cumsum(sections)[:-1]), axis=dim)), n_out=-1,
    methods=("split", "chunk", "unbind"), vjp=_split_vjp)  # fmt: skip


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


INDEX_SELECT = _mv("index_select", _index_select_impl, arity=2, vjp=_index_select_vjp)
GATHER = _mv("gather", _gather_impl, arity=2, vjp=_gather_vjp)


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


DIAGONAL = _mv("diagonal", _diagonal_impl, vjp=_diagonal_vjp)
DIAG_EMBED = _mv("diag_embed", _diag_embed_impl, vjp=_diag_embed_vjp)
