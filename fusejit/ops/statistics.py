"""Order statistics and running extremes of the op table: ``median`` (and nanmedian),
``kthvalue``, ``mode``, ``quantile`` (and nanquantile), ``cummax``, ``cummin`` and
``logcumsumexp``. Their public functions are in ``fusejit/eager/statistics.py``.

Each ``impl`` runs on numpy or cupy arrays (``b.xp``). Order, as ``sort``'s: NaN counts as the
largest value; entries that compare equal keep their order (a stable sort), so the index of a
median or a k-th value among equal entries is the one a stable sort puts there. Running scans
use numpy's ``ufunc.accumulate`` on the CPU and, where that is missing (cupy), ``scan``: log2(n)
passes that each combine an entry with the one ``2**k`` before it.
"""

from __future__ import annotations

import numpy as np

from fusejit.base import dtypes as dt
from fusejit.base.errors import ShapeError, fmt_shape
from fusejit.ops import grad_helpers as gh
from fusejit.ops.registry import ANY, FLOAT_ONLY, NUM, OpDef, accumulation_dtype, register

QUANTILE_INTERPOLATIONS = ("linear", "lower", "higher", "midpoint", "nearest")


def _argsort(b, a, axis: int):
    """A stable ascending argsort along ``axis`` (NaN last; bool as uint8); cupy's sort is
    always stable."""
    if a.dtype == np.bool_:
        a = a.view(np.uint8)
    if b.name == "cpu":
        return b.xp.argsort(a, axis=axis, kind="stable")
    return b.xp.argsort(a, axis=axis)


def _nonempty(name: str, a, dim: int) -> None:
    if a.shape[dim] == 0:
        raise ShapeError(
            f"{name}: cannot compute over the empty dim {dim} of a tensor of shape "
            f"{fmt_shape(a.shape)}"
        )


def scan(xp, a, fn, axis: int):
    """The running ``fn`` (an associative, commutative binary function such as maximum or
    logaddexp) of ``a`` along ``axis``, in ceil(log2(n)) whole-array passes (a copy)."""
    r = xp.moveaxis(a, axis, -1).copy()
    n, s = r.shape[-1], 1
    while s < n:
        r[..., s:] = fn(r[..., s:], r[..., :-s])  # (the right side is a new array)
        s *= 2
    return xp.moveaxis(r, -1, axis)


def _accumulate(b, a, ufunc: str, axis: int):
    xp = b.xp
    fn = getattr(xp, ufunc)
    with np.errstate(invalid="ignore"):  # (logaddexp of NaN: NaN, as torch, without a warning)
        if b.name == "cpu":
            return fn.accumulate(a, axis=axis)
        return scan(xp, a, fn, axis)


def _positions(xp, a, axis: int):
    """0, 1, ... along ``axis`` of ``a``, shaped to broadcast against it."""
    shape = [1] * a.ndim
    shape[axis] = a.shape[axis]
    return xp.arange(a.shape[axis], dtype=np.int64).reshape(shape)


def _finish(xp, vals, idx, dim: int, keepdim: bool):
    """(values, int64 indices) of a reduction computed with the reduced dim kept."""
    if not keepdim:
        vals, idx = xp.squeeze(vals, axis=dim), xp.squeeze(idx, axis=dim)
    return vals, idx.astype(np.int64, copy=False)


def _median_impl(b, a, dim, keepdim=False, ignore_nan=False):
    """torch.median / nanmedian along ``dim``: the lower of the two middle values. median: a
    row holding NaN gives NaN and the index of its first NaN; nanmedian: the median of the
    row's other values (NaN for a row of NaN)."""
    xp = b.xp
    name = "nanmedian" if ignore_nan else "median"
    _nonempty(name, a, dim)
    n = a.shape[dim]
    idx = _argsort(b, a, dim)
    keep = list(a.shape)
    keep[dim] = 1
    if a.dtype.kind == "f":
        nan = xp.isnan(a)
        n_nan = nan.sum(axis=dim, keepdims=True, dtype=np.int64)
        if ignore_nan:
            k = xp.maximum(n - n_nan - 1, 0) // 2  # (NaN sorts last: the first n - n_nan)
            pos = xp.take_along_axis(idx, k, axis=dim)
        else:
            k = xp.full(keep, (n - 1) // 2, dtype=np.int64)
            pos = xp.take_along_axis(idx, k, axis=dim)
            first_nan = xp.argmax(nan, axis=dim, keepdims=True).astype(np.int64)
            pos = xp.where(n_nan > 0, first_nan, pos)
    else:
        k = xp.full(keep, (n - 1) // 2, dtype=np.int64)
        pos = xp.take_along_axis(idx, k, axis=dim)
    return _finish(xp, xp.take_along_axis(a, pos, axis=dim), pos, dim, keepdim)


def _kthvalue_impl(b, a, k, dim, keepdim=False):
    xp = b.xp
    n = a.shape[dim]
    if not 1 <= k <= n:
        raise ShapeError(
            f"kthvalue: k={k} is out of range for dim {dim} of size {n} (shape "
            f"{fmt_shape(a.shape)}); expected 1 <= k <= {n}"
        )
    keep = list(a.shape)
    keep[dim] = 1
    pos = xp.take_along_axis(_argsort(b, a, dim), xp.full(keep, k - 1, np.int64), axis=dim)
    return _finish(xp, xp.take_along_axis(a, pos, axis=dim), pos, dim, keepdim)


def _mode_impl(b, a, dim, keepdim=False):
    """The most frequent value along ``dim`` (the smallest of equally frequent ones; NaNs
    count as one value, the largest) and the index of its last occurrence."""
    xp = b.xp
    _nonempty("mode", a, dim)
    x = xp.moveaxis(a, dim, -1)
    n = x.shape[-1]
    order = _argsort(b, x, -1)
    s = xp.take_along_axis(x, order, axis=-1)
    same = s[..., 1:] == s[..., :-1]  # an entry equal to the one before it
    if s.dtype.kind == "f":
        nan = xp.isnan(s)
        same = same | (nan[..., 1:] & nan[..., :-1])
    edge = xp.ones(s.shape[:-1] + (1,), dtype=bool)
    starts = xp.concatenate([edge, ~same], axis=-1)
    ends = xp.concatenate([~same, edge], axis=-1)
    pos = xp.arange(n, dtype=np.int64)
    run_start = _accumulate(b, xp.where(starts, pos, 0), "maximum", -1)
    run_len = xp.where(ends, pos - run_start + 1, 0)
    best = xp.argmax(run_len, axis=-1)[..., None]  # the first (smallest) of the longest runs
    vals = xp.take_along_axis(s, best, axis=-1)
    idx = xp.take_along_axis(order, best, axis=-1)
    vals, idx = xp.moveaxis(vals, -1, dim), xp.moveaxis(idx, -1, dim)
    return _finish(xp, vals, idx, dim, keepdim)


def _torch_lerp(xp, lo, hi, w):
    """``torch.lerp(lo, hi, w)``: from ``hi`` back where ``w >= 0.5`` (so w = 1 gives hi)."""
    with np.errstate(invalid="ignore"):  # (inf - inf: NaN, as torch's, without a warning)
        d = hi - lo
        return xp.where(w < 0.5, lo + w * d, hi - d * (1 - w))


def _quantile_impl(b, a, *q_tensor, q=None, dim=None, keepdim=False, interpolation="linear",
                   ignore_nan=False):  # fmt: skip
    """torch.quantile / nanquantile: ``q`` a float attribute or a 0-d / 1-d tensor operand
    (of ``a``'s dtype), whose length leads the result's shape."""
    xp = b.xp
    name = "nanquantile" if ignore_nan else "quantile"
    if a.size == 0:
        raise ShapeError(f"{name}: the input tensor must be non-empty, got shape "
                         f"{fmt_shape(a.shape)}")  # fmt: skip
    if interpolation not in QUANTILE_INTERPOLATIONS:
        modes = ", ".join(QUANTILE_INTERPOLATIONS)
        raise ValueError(f"{name}: interpolation must be one of {modes}, got {interpolation!r}")
    qv = q_tensor[0] if q_tensor else xp.asarray(q, dtype=a.dtype)
    if qv.ndim > 1:
        raise ShapeError(f"{name}: q must be a scalar or a 1-D tensor, got shape "
                         f"{fmt_shape(qv.shape)}")  # fmt: skip
    if qv.size and not bool(((qv >= 0) & (qv <= 1)).all()):  # (NaN fails too)
        raise ValueError(f"{name}: q values must be in the range [0, 1]")
    qv = qv.astype(a.dtype, copy=False)
    x = a.reshape(-1) if dim is None else xp.moveaxis(a, dim, -1)
    n = x.shape[-1]
    if n > 1 << 24:  # (as torch: ranks are computed in the input's dtype)
        raise ShapeError(f"{name}: a dim of {n} entries is too large (at most 2**24)")
    s = xp.sort(x, axis=-1)  # NaN last
    batch = s.shape[:-1]
    qb = qv.reshape(qv.shape + (1,) * len(batch) + (1,))  # (Q..., batch..., 1)
    if ignore_nan:
        count = (~xp.isnan(s)).sum(axis=-1, keepdims=True).astype(a.dtype)
        ranks = xp.maximum(qb * (count - 1), 0)  # (a row of NaN: rank 0, a NaN)
    else:
        ranks = qb * a.dtype.type(n - 1)
        ranks = xp.where(xp.isnan(s[..., -1:]), a.dtype.type(n - 1), ranks)  # NaN propagates
    if interpolation == "lower":
        ranks = xp.floor(ranks)
    elif interpolation == "higher":
        ranks = xp.ceil(ranks)
    elif interpolation == "nearest":
        ranks = xp.rint(ranks)  # (half to even, as torch.round)
    sb = xp.broadcast_to(s, ranks.shape[:-1] + (n,))
    below = ranks.astype(np.int64)
    r = xp.take_along_axis(sb, below, axis=-1)
    if interpolation in ("linear", "midpoint"):
        above = xp.ceil(ranks).astype(np.int64)
        hi = xp.take_along_axis(sb, above, axis=-1)
        if interpolation == "linear":
            w = ranks - below.astype(a.dtype)
        else:  # (0.5 even between two copies of one entry, as torch: inf there gives NaN)
            w = xp.full(ranks.shape, 0.5, dtype=a.dtype)
        r = _torch_lerp(xp, r, hi, w)
    r = r[..., 0]  # (Q..., batch...)
    if keepdim:
        lead = qv.ndim
        if dim is None:
            r = r.reshape(r.shape[:lead] + (1,) * a.ndim)
        else:
            r = xp.expand_dims(r, lead + dim)
    return xp.asarray(r, dtype=a.dtype)


def _cumext_impl(ufunc: str):
    def impl(b, a, dim):
        """Running maximum (or minimum) along ``dim`` and, as torch's, the index of the last
        entry equal to it (of the last NaN once one was met)."""
        xp = b.xp
        v = _accumulate(b, a, ufunc, dim)
        hit = a == v
        if a.dtype.kind == "f":
            hit = hit | xp.isnan(a)
        idx = _accumulate(b, xp.where(hit, _positions(xp, a, dim), 0), "maximum", dim)
        # the values are the entries at the indices (so a running max of 0.0, -0.0 is -0.0)
        return xp.take_along_axis(a, idx, axis=dim), idx.astype(np.int64, copy=False)

    return impl


def _logcumsumexp_impl(b, a, dim):
    acc = accumulation_dtype(dt._BY_NP[a.dtype]).np  # (float16 in float32)
    r = _accumulate(b, a.astype(acc, copy=False), "logaddexp", dim)
    return r.astype(a.dtype, copy=False)


# --- derivative rules (``OpDef.vjp``), written with public functions only (``F``)


def _selected_vjp(F, ctx, g_values, g_indices=None):
    """median, kthvalue, mode, cummax, cummin: each value's gradient goes to the entry its
    index names (as PyTorch's; the indices are integers: none for them)."""
    x = gh.meta(ctx, 0)
    if g_values is None:
        return (None,)
    dim, idx = ctx.attrs["dim"], ctx.outputs[1]
    if "keepdim" in ctx.attrs and not ctx.attrs["keepdim"]:
        g_values, idx = F.unsqueeze(g_values, dim), F.unsqueeze(idx, dim)
    return (F.scatter_add(gh.zeros(F, x, x.shape), dim, idx, g_values),)


def _logcumsumexp_vjp(F, ctx, g):
    """PyTorch's formula: the positive and negative parts of ``g`` summed backwards in log
    space, so that no exp overflows."""
    x, out, dim = ctx.inputs[0], ctx.outputs[0], ctx.attrs["dim"]
    lowest = float(np.finfo(x.dtype.np).min)

    def backwards(t):  # the logcumsumexp from the end
        return F.flip(F.logcumsumexp(F.flip(t, (dim,)), dim), (dim,))

    log_abs = F.log(F.where(g == 0, 1.0, F.abs(g)))  # (no log of 0: those places are out)
    pos = F.where(g > 0, log_abs, lowest)
    neg = F.where(g < 0, log_abs, lowest)
    return (F.exp(backwards(pos - out) + x) - F.exp(backwards(neg - out) + x),)


def _quantile_vjp(F, ctx, g):
    """The gradient of each quantile goes to the two sorted entries it interpolates between
    (weights ``1 - w`` and ``w``), and, for ``q`` given as a tensor with linear
    interpolation, to ``q`` (the slope between the two entries times the rank's scale), as
    PyTorch's (whose quantile is a composition of sort and lerp)."""
    x = ctx.inputs[0]
    q_tensor = ctx.inputs[1] if len(ctx.inputs) > 1 else None
    a = ctx.attrs
    dim, interp = a.get("dim"), a.get("interpolation", "linear")
    q = q_tensor if q_tensor is not None else F.full((), a["q"], dtype=x.dtype, device=x.device)
    moved = F.reshape(x, (-1,)) if dim is None else F.movedim(x, dim, -1)
    n = moved.shape[-1]
    s, order = F.sort(moved, dim=-1)
    batch = tuple(s.shape[:-1])
    qb = F.reshape(q, tuple(q.shape) + (1,) * len(batch) + (1,))
    if a.get("ignore_nan", False):
        scale = F.cast(F.sum(F.logical_not(F.isnan(s)), dim=-1, keepdim=True), x.dtype) - 1
        exact = scale >= 0  # (a row of NaN: rank 0)
        ranks = F.clamp(qb * scale, min=0)
    else:
        scale = float(n - 1)
        exact = F.logical_not(F.isnan(F.narrow(s, -1, n - 1, 1)))  # (NaN: the last entry)
        ranks = F.where(exact, qb * scale, scale)
    if interp == "lower":
        ranks = F.floor(ranks)
    elif interp == "higher":
        ranks = F.ceil(ranks)
    elif interp == "nearest":
        ranks = F.round(ranks)
    # g: (Q..., batch...) with a last dim of 1 for the rank
    if a.get("keepdim", False):
        g = F.reshape(g, tuple(q.shape)) if dim is None else F.squeeze(g, q.ndim + dim)
    g = F.unsqueeze(g, -1)
    below = F.broadcast_to(F.cast(ranks, F.int64), g.shape)
    zeros = gh.zeros(F, g, tuple(g.shape[:-1]) + (n,))
    if interp in ("linear", "midpoint"):
        above = F.broadcast_to(F.cast(F.ceil(ranks), F.int64), g.shape)
        w = ranks - F.floor(ranks) if interp == "linear" else F.full_like(ranks, 0.5)
        w = F.broadcast_to(w, g.shape)
        part = F.scatter_add(F.scatter_add(zeros, -1, below, g * (1 - w)), -1, above, g * w)
    else:
        above, part = None, F.scatter_add(zeros, -1, below, g)
    if q.ndim:
        part = F.sum(part, dim=0)
    gm = F.scatter_add(F.zeros_like(s), -1, order, part)
    gx = F.reshape(gm, x.shape) if dim is None else F.movedim(gm, -1, dim)
    if q_tensor is None:
        return (gx,)
    if interp != "linear":
        return gx, F.zeros_like(q)
    sb = F.broadcast_to(s, tuple(g.shape[:-1]) + (n,))
    slope = (F.gather(sb, -1, above) - F.gather(sb, -1, below)) * scale
    gq = F.where(F.logical_and(exact, qb * scale >= 0), g * slope, 0.0)
    gq = F.sum(gq, dim=tuple(range(q.ndim, gq.ndim))) if gq.ndim > q.ndim else gq
    return gx, F.reshape(gq, q.shape)


def _stat(name, impl, out_dtype, allowed, kind="reduction", n_out=2, methods=None, arity=1,
          vjp=_selected_vjp):  # fmt: skip
    return register(OpDef(name=name, kind=kind, arity=arity, allowed=allowed, impl=impl,
                          out_dtype=out_dtype, n_out=n_out, vjp=vjp,
                          methods=(name,) if methods is None else methods))  # fmt: skip


def _with_indices(d, **_):
    return d, dt.int64


MEDIAN = _stat("median", _median_impl, _with_indices, NUM, methods=("median", "nanmedian"))
KTHVALUE = _stat("kthvalue", _kthvalue_impl, _with_indices, NUM)
MODE = _stat("mode", _mode_impl, _with_indices, ANY)
QUANTILE = _stat("quantile", _quantile_impl, lambda d, *_, **__: d, FLOAT_ONLY, n_out=1,
                 methods=("quantile", "nanquantile"), arity=-1, vjp=_quantile_vjp)  # fmt: skip
CUMMAX = _stat("cummax", _cumext_impl("maximum"), _with_indices, ANY, kind="scan")
CUMMIN = _stat("cummin", _cumext_impl("minimum"), _with_indices, ANY, kind="scan")
LOGCUMSUMEXP = _stat("logcumsumexp", _logcumsumexp_impl, lambda d, **_: d, FLOAT_ONLY,
                     kind="scan", n_out=1, vjp=_logcumsumexp_vjp)  # fmt: skip
