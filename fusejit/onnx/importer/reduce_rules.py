"""Import rules for ONNX's reductions (``Reduce*``) and the row ops (``Softmax``,
``LogSoftmax``, ``Hardmax``).

Reduction axes are an attribute before opset 13 (``ReduceSum``) / 18 (the others) and an
optional input after; ``noop_with_empty_axes`` makes an empty axes list the identity. Results
keep the input dtype (ONNX), where fusejit's ``sum`` of integers would give int64.
"""

from __future__ import annotations

import math

import numpy as np

import fusejit
from fusejit.eager.tensor import Tensor
from fusejit.onnx.importer.math_rules import _keep
from fusejit.onnx.importer.registry import NodeContext, onnx_op


def _axes(ctx: NodeContext, x: Tensor) -> tuple | None:
    """The reduced dims (sorted, non-negative), () for the identity, None for all dims."""
    axes = ctx.attr("axes", None)
    if axes is None and ctx.has_input(1):
        axes = [int(a) for a in np.asarray(ctx.static(1, "(axes)")).reshape(-1)]
    if axes is None or len(axes) == 0:
        return () if ctx.attr("noop_with_empty_axes", 0) else None
    rank = len(x.shape)
    return tuple(sorted({a % rank if rank else 0 for a in axes}))


def _reduce(ctx: NodeContext, x: Tensor, fn, empty=None) -> Tensor:
    """``fn(x, dims, keepdim)`` over the node's axes; ``empty``: the value of a reduction over
    zero elements where ``fn`` has none (max / min)."""
    dims = _axes(ctx, x)
    keep = bool(ctx.attr("keepdims", 1))
    if dims == ():
        return x
    if dims is None:
        dims = tuple(range(len(x.shape)))
    if not dims:  # a 0-d input reduced over all (no) dims
        return x
    if empty is not None and any(x.shape[d] == 0 for d in dims):
        shape = [1 if d in dims else n for d, n in enumerate(x.shape)]
        if not keep:
            shape = [n for d, n in enumerate(x.shape) if d not in dims]
        return fusejit.full(tuple(shape), empty(x), dtype=x.dtype, device=x.device)
    return _keep(fn(x, dims, keep), x)


def _per_dim(fn):
    """A reduction over several dims from one that takes one dim at a time."""

    def over(x, dims, keep):
        for d in sorted(dims, reverse=True):
            x = fn(x, d, keepdim=keep)
        return x

    return over


def _lowest(x: Tensor):
    return -math.inf if x.dtype.is_floating_point else fusejit.iinfo(x.dtype).min


def _highest(x: Tensor):
    return math.inf if x.dtype.is_floating_point else fusejit.iinfo(x.dtype).max


def _sum(x, dims, keep):
    return fusejit.sum(x, dim=dims, keepdim=keep)


@onnx_op("ReduceSum")
def _reduce_sum(ctx: NodeContext, x, axes=None):
    return _reduce(ctx, x, _sum)


@onnx_op("ReduceMean")
def _reduce_mean(ctx: NodeContext, x, axes=None):
    if x.dtype.is_floating_point:
        return _reduce(ctx, x, lambda x, d, k: fusejit.mean(x, dim=d, keepdim=k))
    return _reduce(
        ctx, x, lambda x, d, k: fusejit.mean(fusejit.cast(x, fusejit.float64), dim=d, keepdim=k)
    )


@onnx_op("ReduceMax")
def _reduce_max(ctx: NodeContext, x, axes=None):
    if x.dtype is fusejit.bool_:
        return _reduce(ctx, x, lambda x, d, k: fusejit.any(x, dim=d, keepdim=k), lambda x: False)
    return _reduce(ctx, x, lambda x, d, k: fusejit.amax(x, dim=d, keepdim=k), _lowest)


@onnx_op("ReduceMin")
def _reduce_min(ctx: NodeContext, x, axes=None):
    if x.dtype is fusejit.bool_:
        return _reduce(ctx, x, lambda x, d, k: fusejit.all(x, dim=d, keepdim=k), lambda x: True)
    return _reduce(ctx, x, lambda x, d, k: fusejit.amin(x, dim=d, keepdim=k), _highest)


@onnx_op("ReduceProd")
def _reduce_prod(ctx: NodeContext, x, axes=None):
    return _reduce(ctx, x, _per_dim(fusejit.prod))


@onnx_op("ReduceL1")
def _reduce_l1(ctx: NodeContext, x, axes=None):
    return _reduce(ctx, x, lambda x, d, k: _sum(fusejit.abs(x), d, k))


@onnx_op("ReduceL2")
def _reduce_l2(ctx: NodeContext, x, axes=None):
    def l2(x, d, k):
        if not x.dtype.is_floating_point:
            x = fusejit.cast(x, fusejit.float64)
        return fusejit.sqrt(_sum(x * x, d, k))

    return _reduce(ctx, x, l2)


@onnx_op("ReduceSumSquare")
def _reduce_sum_square(ctx: NodeContext, x, axes=None):
    return _reduce(ctx, x, lambda x, d, k: _sum(x * x, d, k))


@onnx_op("ReduceLogSum")
def _reduce_log_sum(ctx: NodeContext, x, axes=None):
    return _reduce(ctx, x, lambda x, d, k: fusejit.log(_sum(x, d, k)))


@onnx_op("ReduceLogSumExp")
def _reduce_log_sum_exp(ctx: NodeContext, x, axes=None):
    def lse(x, d, k):
        if not x.dtype.is_floating_point:
            x = fusejit.cast(x, fusejit.float64)
        return fusejit.logsumexp(x, dim=d, keepdim=k)

    return _reduce(ctx, x, lse)


# softmax family ---------------------------------------------------------------------------
def _rowwise(ctx: NodeContext, x: Tensor, fn) -> Tensor:
    """``fn(x, dim)`` along the node's axis: from opset 13 that one dim (default -1); before,
    the input seen as 2-D [prod(shape[:axis]), prod(shape[axis:])] (default axis 1)."""
    rank = len(x.shape)
    if ctx.opset >= 13:
        axis = ctx.attr("axis", -1)
        if rank == 0:
            return fn(x.reshape(1), 0).reshape(())
        return fn(x, axis % rank)
    axis = ctx.attr("axis", 1)
    axis = axis % rank if rank else 0
    lead = int(np.prod(x.shape[:axis], dtype=np.int64))
    y = fn(x.reshape(lead, -1) if lead else x.reshape(0, -1), 1)
    return y.reshape(x.shape)


@onnx_op("Softmax")
def _softmax(ctx: NodeContext, x):
    return _rowwise(ctx, x, lambda x, d: fusejit.softmax(x, d))


@onnx_op("LogSoftmax")
def _log_softmax(ctx: NodeContext, x):
    return _rowwise(ctx, x, lambda x, d: fusejit.log_softmax(x, d))


def hardmax(x: Tensor, dim: int) -> Tensor:
    """1 at the first maximum along ``dim``, 0 elsewhere, in ``x``'s dtype."""
    n = x.shape[dim]
    idx = fusejit.argmax(x, dim=dim, keepdim=True)
    shape = [1] * len(x.shape)
    shape[dim] = n
    pos = fusejit.arange(n, device=x.device).reshape(tuple(shape))
    return fusejit.cast(pos == idx, x.dtype)


@onnx_op("Hardmax")
def _hardmax(ctx: NodeContext, x):
    return _rowwise(ctx, x, hardmax)
