"""Indexing ops of the op table that write or look up by value: ``scatter`` (with its
reductions; ``scatter_add``, ``scatter_reduce``, ``index_add``, ``index_copy`` and
``index_fill`` are written with it), ``index_put``, ``masked_scatter``, ``one_hot``,
``searchsorted`` (and ``bucketize``) and ``histc``. Their public functions, and those of the
ops whose result shape depends on the values (``nonzero``, ``masked_select``, ``unique``,
``bincount``: no graph nodes), are in ``fusejit/eager/indexing.py``.

Every result is a fresh array. Index values are checked where the op runs (eagerly or in a
traced graph): an index out of range is a ``DimError``, never a result.

Scatter with a reduction adds (multiplies, ...) entries with equal indices one after the
other, in the order of the index entries: numpy's ``ufunc.at`` on the CPU. On CUDA, sums of
float32, float64 and int32 use ``cupyx.scatter_add`` (atomic adds, in no fixed order, as
PyTorch's CUDA kernels); every other case (products, for which cupyx has no kernel, maxima,
minima, other dtypes) runs ``segment_at``: the entries sorted by target (stably), then one
plain indexed update per rank among equal targets, so each update writes distinct places.
"""

from __future__ import annotations

import math

import numpy as np

from fusejit.base import dtypes as dt
from fusejit.base.errors import DimError, ShapeError
from fusejit.ops import grad_helpers as gh
from fusejit.ops.registry import OpDef, register

# the reductions of scatter: "set" is a plain write; the others combine with what is there
SCATTER_REDUCES = ("set", "sum", "prod", "mean", "amax", "amin")
_UFUNC = {"sum": "add", "mean": "add", "prod": "multiply", "amax": "maximum", "amin": "minimum"}
# (the cupyx.scatter_add dtypes used: its atomic adds exist for these on every GPU)
_CUPYX_ADD = ("float32", "float64", "int32")


def _ix(name, impl, out_dtype, arity, methods=(), vjp=None, differentiable=True):
    return register(OpDef(name=name, kind="indexing", arity=arity, impl=impl,
                          out_dtype=out_dtype, methods=methods, vjp=vjp,
                          differentiable=differentiable))  # fmt: skip


def check_index_range(name: str, index, n: int, negative: bool = False) -> None:
    """A DimError unless every value of ``index`` is in ``[0, n)`` (``[-n, n)`` when
    ``negative``). On a GPU this waits for the index's values."""
    if not index.size:
        return
    lo, hi = int(index.min()), int(index.max())
    if lo < (-n if negative else 0) or hi >= n:
        raise DimError(f"{name}: index values {lo}..{hi} out of range for a dim of size {n}")


def segment_at(xp, ufunc, target, lin, vals) -> None:
    """``target[lin[i]] = ufunc(target[lin[i]], vals[i])`` for each ``i`` in order, repeated
    targets included (what ``ufunc.at`` does), with plain indexed updates: the entries are
    sorted by target, stably, and each pass updates the entries of one rank among equal
    targets (the first of each target, then the second, ...): distinct places. ``target`` is
    indexed along its first axis; ``vals`` has ``len(lin)`` rows."""
    if not lin.size:
        return
    order = xp.argsort(lin, kind="stable") if xp is np else xp.argsort(lin)  # (cupy: stable)
    s = lin[order]
    first = xp.empty(s.shape, dtype=bool)
    first[0] = True
    first[1:] = s[1:] != s[:-1]
    starts = xp.flatnonzero(first)
    rank = xp.arange(s.size) - starts[xp.cumsum(first) - 1]
    for r in range(int(rank.max()) + 1):
        sel = order[rank == r]
        t = lin[sel]
        target[t] = ufunc(target[t], vals[sel])


def scatter_rows(b, target, lin, vals, how: str) -> None:
    """Write (``how == "set"``) or combine (a key of ``_UFUNC``) the rows ``vals`` into
    ``target`` at the rows ``lin`` (in-place; ``target`` is fresh)."""
    xp = b.xp
    if how == "set":
        target[lin] = vals
        return
    ufunc = getattr(xp, _UFUNC[how])
    if b.name == "cpu":
        # (numpy's maximum.at / minimum.at flag NaN as invalid; its maximum, and PyTorch, don't)
        quiet = {"invalid": "ignore"} if how in ("amax", "amin") else {}
        with np.errstate(**quiet):
            ufunc.at(target, lin, vals)
    elif _UFUNC[how] == "add" and target.dtype.name in _CUPYX_ADD:
        import cupyx  # (the cuda path only: cupy is an optional dependency)

        cupyx.scatter_add(target, lin, vals)
    else:
        segment_at(xp, ufunc, target, lin, vals)


def _identity(how: str, d):
    if how in ("sum", "mean"):
        return 0
    if how == "prod":
        return 1
    if d.kind == "f":
        return -np.inf if how == "amax" else np.inf
    info = np.iinfo(d)
    return info.min if how == "amax" else info.max


def _linear(xp, shape, index, dim):
    """The flat (C order) position in an array of ``shape`` of each entry of ``index``: its
    value along ``dim``, its own position along the other dims."""
    lin, mult, n = 0, 1, len(shape)
    for d in reversed(range(n)):
        if d == dim:
            c = index
        else:
            c = xp.arange(index.shape[d], dtype=xp.int64).reshape((-1,) + (1,) * (n - 1 - d))
        lin = lin + c * mult
        mult *= shape[d]
    return xp.broadcast_to(lin, index.shape).reshape(-1)


def _scatter_impl(b, a, index, *src, dim, reduce, include_self, value):
    xp = b.xp
    check_index_range("scatter", index, a.shape[dim])
    out = a.copy()
    flat = out.reshape(-1)
    lin = _linear(xp, a.shape, index, dim)
    if src:  # the part of src the index covers
        vals = src[0][tuple(slice(0, s) for s in index.shape)].reshape(-1)
    else:
        vals = xp.empty(lin.shape, dtype=a.dtype)
        b.fill(vals, value)  # (keeps the sign of a -0.0, which cupy's full drops)
    if reduce != "set" and not include_self:
        flat[lin] = _identity(reduce, a.dtype)
    scatter_rows(b, flat, lin, vals, reduce)
    if reduce == "mean":
        count = xp.bincount(lin, minlength=flat.size)
        count = count + 1 if include_self else xp.maximum(count, 1)
        if a.dtype.kind == "f":
            flat[...] = flat / count.astype(a.dtype)
        else:  # (integers: floor division, as PyTorch's)
            flat[...] = (flat // count).astype(a.dtype)
    return out


def _index_put_impl(b, a, values, *indices, accumulate):
    xp = b.xp
    k = len(indices)
    idx = []
    for i, n in zip(indices, a.shape[:k], strict=False):
        check_index_range("index_put", i, n, negative=True)
        idx.append(xp.where(i < 0, i + n, i))
    lin, mult = 0, 1
    for i, n in zip(reversed(idx), reversed(a.shape[:k]), strict=True):
        lin = lin + i * mult
        mult *= n
    lin = xp.asarray(lin, dtype=xp.int64)
    rest = a.shape[k:]
    out = a.copy()
    target = out.reshape((-1,) + rest)
    vals = xp.broadcast_to(values, lin.shape + rest).reshape((-1,) + rest)
    scatter_rows(b, target, lin.reshape(-1), vals, "sum" if accumulate else "set")
    return out


def _masked_scatter_impl(b, a, mask, source):
    xp = b.xp
    shape = np.broadcast_shapes(a.shape, mask.shape)
    out = xp.broadcast_to(a, shape).copy()
    m = xp.broadcast_to(mask, shape)
    n = int(m.sum())
    if source.size < n:
        raise ShapeError(
            f"masked_scatter: the mask selects {n} elements, the source has only {source.size}"
        )
    out[xp.nonzero(m)] = source.reshape(-1)[:n]  # (in row-major order, on numpy and cupy)
    return out


def _one_hot_impl(b, a, num_classes):
    xp = b.xp
    if a.size:
        lo, hi = int(a.min()), int(a.max())
        if lo < 0 or hi >= num_classes:
            raise DimError(
                f"one_hot: class values {lo}..{hi} out of range for num_classes={num_classes}"
            )
    return (a[..., None] == xp.arange(num_classes, dtype=a.dtype)).astype(xp.int64)


def _searchsorted_impl(b, seq, values, *sorter, right, out_int32):
    xp = b.xp
    side = "right" if right else "left"
    if sorter:
        check_index_range("searchsorted", sorter[0], seq.shape[-1])
        seq = xp.take_along_axis(seq, sorter[0], axis=-1)
    if seq.ndim == 1:
        r = xp.asarray(xp.searchsorted(seq, values, side=side))
    else:  # one search per row
        rows = seq.reshape(-1, seq.shape[-1])
        vrows = values.reshape(rows.shape[0], -1)
        r = xp.empty(vrows.shape, dtype=xp.int64)
        for i in range(rows.shape[0]):
            r[i] = xp.searchsorted(rows[i], vrows[i], side=side)
        r = r.reshape(values.shape)
    if values.dtype.kind == "f":  # (NaN goes after everything, as in PyTorch, on every device)
        r = xp.where(xp.isnan(values), seq.shape[-1], r)
    return r.astype(xp.int32 if out_int32 else xp.int64)


def _histc_impl(b, a, bins, lo, hi):
    xp = b.xp
    x = a.reshape(-1)
    if x.dtype == np.float16:  # (computed in float32, as float16 arithmetic everywhere)
        x = x.astype(xp.float32)
    if lo == hi and x.size:  # the data's own range
        lo, hi = float(x.min()), float(x.max())
    if lo == hi:
        lo, hi = lo - 1, hi + 1
    if not (np.isfinite(lo) and np.isfinite(hi)):
        raise ShapeError(f"histc: range of [{lo}, {hi}] is not finite")
    lo_, hi_ = x.dtype.type(lo), x.dtype.type(hi)
    keep = x[(x >= lo_) & (x <= hi_)]  # (NaN is in no bin)
    pos = ((keep - lo_) * x.dtype.type(bins) / (hi_ - lo_)).astype(xp.int64)
    pos = xp.minimum(pos, bins - 1)  # (the maximum goes into the last bin)
    return xp.bincount(pos, minlength=bins).astype(a.dtype)


# --- derivative rules (``OpDef.vjp``), written with public functions only (``F``)


def _scatter_vjp(F, ctx, g):
    """Gradients of ``scatter`` (and its reductions) for the input and ``src`` (PyTorch's
    formulas: where a place is overwritten the input gets none; ``prod`` divides the result by
    the factor, minding zeros; ``amax`` / ``amin`` share the gradient evenly among the entries
    equal to the result)."""
    # (the values of the input, src and result are read only where the formula needs them)
    xm, index = gh.meta(ctx, 0), ctx.inputs[1]
    has_src = len(ctx.inputs) > 2
    a = ctx.attrs
    dim, how, keep = a["dim"], a["reduce"], a["include_self"]

    def values():  # (input, the part of src the op reads, result)
        if not has_src:
            sp = F.full(tuple(index.shape), a["value"], dtype=xm.dtype, device=xm.device)
        else:
            sp = ctx.inputs[2]
            for d, n in enumerate(index.shape):
                if sp.shape[d] != n:
                    sp = F.narrow(sp, d, 0, n)
        return ctx.inputs[0], sp, ctx.outputs[0]

    def unwritten(t):  # ``t`` with zeros where the op writes
        return F.scatter(t, dim, index, 0.0)

    if how in ("set", "sum"):
        gx = g if how == "sum" and keep else unwritten(g)
        gs = F.gather(g, dim, index)
    elif how == "mean":
        ones = F.ones(tuple(index.shape), dtype=xm.dtype, device=xm.device)
        count = F.scatter_add(gh.zeros(F, xm, xm.shape), dim, index, ones)
        g = g / (count + 1 if keep else F.clamp(count, min=1))
        gx = g if keep else unwritten(g)
        gs = F.gather(g, dim, index)
    elif how == "prod":
        x, sp, out = values()
        if keep:
            masked = F.masked_fill(x, x == 0, 1.0)
            gx = g * F.scatter_reduce(masked, dim, index, sp, "prod") / masked
        else:
            gx = unwritten(g)
        zero = sp == 0
        n_zero = F.scatter_add(F.zeros_like(x), dim, index, F.cast(zero, x.dtype))
        single = F.logical_and(zero, F.gather(n_zero, dim, index) == 1)
        others = F.scatter_reduce(x, dim, index, F.masked_fill(sp, single, 1.0), "prod",
                                  include_self=keep)  # fmt: skip
        gs = F.where(single, F.gather(g * others, dim, index),
                     F.gather(g * out, dim, index) / F.masked_fill(sp, zero, 1.0))  # fmt: skip
    else:  # amax, amin
        x, sp, out = values()
        self_hit = F.cast(x == out, x.dtype)
        if not keep:
            self_hit = unwritten(self_hit)
        src_hit = F.cast(sp == F.gather(out, dim, index), x.dtype)
        g = g / F.scatter_add(self_hit, dim, index, src_hit)
        gx = self_hit * g
        gs = src_hit * F.gather(g, dim, index)
    if not has_src:
        return gx, None
    return gx, None, gh.fit_shape(F, gs, gh.meta(ctx, 2).shape)


def _index_put_vjp(F, ctx, g):
    x, values, indices = gh.meta(ctx, 0), gh.meta(ctx, 1), ctx.inputs[2:]
    if ctx.attrs["accumulate"]:
        gx = g
    else:
        gx = F.index_put(g, tuple(indices), F.zeros((), dtype=g.dtype, device=g.device))
    # the gradient at the places written, read through their flat positions
    k = len(indices)
    lin, mult = None, 1
    for i, n in zip(reversed(indices), reversed(x.shape[:k]), strict=True):
        i = F.where(i < 0, i + n, i)
        lin = i * mult if lin is None else lin + i * mult
        mult *= n
    lin = F.broadcast_to(lin, F.broadcast_shapes(*[i.shape for i in indices]))
    rest = tuple(x.shape[k:])
    picked = F.index_select(F.reshape(g, (-1,) + rest), 0, F.reshape(lin, -1))
    gv = gh.sum_to(F, F.reshape(picked, tuple(lin.shape) + rest), values.shape)
    return (gx, gv) + (None,) * k


def _masked_scatter_vjp(F, ctx, g):
    x, mask, source = gh.meta(ctx, 0), ctx.inputs[1], gh.meta(ctx, 2)
    m = F.broadcast_to(mask, g.shape)
    gx = gh.sum_to(F, F.masked_fill(g, m, 0.0), x.shape)
    # the k-th selected place took source's k-th entry
    flat = F.reshape(m, -1)
    pos = F.where(flat, F.cumsum(F.cast(flat, F.int64), 0) - 1, 0)
    vals = F.masked_fill(F.reshape(g, -1), F.logical_not(flat), 0.0)
    zeros = F.zeros(math.prod(source.shape), dtype=g.dtype, device=g.device)
    gs = F.reshape(F.index_add(zeros, 0, pos, vals), source.shape)
    return gx, None, gs


SCATTER = _ix("scatter", _scatter_impl, lambda d, *_, **__: d, arity=-1, methods=(
    "scatter", "scatter_add", "scatter_reduce", "index_add", "index_copy",
    "index_fill"), vjp=_scatter_vjp)  # fmt: skip
INDEX_PUT = _ix("index_put", _index_put_impl, lambda d, *_, **__: d, arity=-1,
                methods=("index_put",), vjp=_index_put_vjp)  # fmt: skip
MASKED_SCATTER = _ix("masked_scatter", _masked_scatter_impl, lambda d, *_: d, arity=3,
                     methods=("masked_scatter",), vjp=_masked_scatter_vjp)  # fmt: skip
# (integer results, or counts: no gradient)
ONE_HOT = _ix("one_hot", _one_hot_impl, lambda d, **_: dt.int64, arity=1, differentiable=False)
SEARCHSORTED = _ix("searchsorted", _searchsorted_impl,
                   lambda *_, right, out_int32: dt.int32 if out_int32 else dt.int64,
                   arity=-1, differentiable=False)  # fmt: skip
HISTC = _ix("histc", _histc_impl, lambda d, **_: d, arity=1, methods=("histc",),
            differentiable=False)  # fmt: skip
