"""Import rules for ONNX's neural-network ops: matrix products, normalizations, convolutions,
pools, dropout and losses.

Pads in ONNX may differ at the two ends of a dim (``pads`` = begins then ends, or ``auto_pad``);
fusejit's convolutions and pools pad both ends alike, so such a node pads its input first
(``fusejit.nn.functional.pad``: zeros for convolutions and average pools, -inf for max pools)
and runs the op unpadded. 1-D convolutions and pools run as 2-D ones over a height of 1.
"""

from __future__ import annotations

import math

import numpy as np

import fusejit
import fusejit.nn.functional as F
from fusejit.eager.tensor import Tensor
from fusejit.onnx.importer.math_rules import _keep
from fusejit.onnx.importer.registry import NodeContext, onnx_op


# matrix products --------------------------------------------------------------------------
@onnx_op("MatMul")
def _matmul(ctx: NodeContext, a, b):
    return _keep(fusejit.matmul(a, b), a)


@onnx_op("Gemm")
def _gemm(ctx: NodeContext, a, b, c=None):
    alpha, beta = ctx.attr("alpha", 1.0), ctx.attr("beta", 1.0)
    if ctx.attr("transA", 0):
        a = a.transpose(0, 1)
    if ctx.attr("transB", 0):
        b = b.transpose(0, 1)
    y = fusejit.matmul(a, b)
    if alpha != 1.0:
        y = y * alpha
    if c is not None:
        y = y + (c * beta if beta != 1.0 else c)
    return _keep(y, a)


# normalizations ---------------------------------------------------------------------------
def _stash(ctx: NodeContext, x: Tensor) -> Tensor:
    """``x`` in the dtype ONNX's ``stash_type`` computes in (1: float32, 11: float64)."""
    stash = ctx.attr("stash_type", 1)
    want = {1: fusejit.float32, 11: fusejit.float64, 10: fusejit.float16}.get(stash)
    if want is None:
        raise ctx.unsupported(f"stash_type={stash}")
    return x if x.dtype is want else fusejit.cast(x, want)


@onnx_op("LayerNormalization")
def _layer_norm(ctx: NodeContext, x, scale, bias=None):
    rank = len(x.shape)
    axis = ctx.attr("axis", -1) % rank
    eps = ctx.attr("epsilon", 1e-5)
    norm_shape = tuple(x.shape[axis:])
    dims = tuple(range(axis, rank))
    if (
        ctx.n_outputs == 1
        and tuple(scale.shape) == norm_shape
        and (bias is None or tuple(bias.shape) == norm_shape)
    ):
        if x.dtype is fusejit.float32 or x.dtype is fusejit.float64:
            return fusejit.layer_norm(x, norm_shape, scale, bias, eps)
    xs = _stash(ctx, x)
    mean = fusejit.mean(xs, dim=dims, keepdim=True)
    d = xs - mean
    inv = fusejit.rsqrt(fusejit.mean(d * d, dim=dims, keepdim=True) + eps)
    y = d * inv
    y = fusejit.cast(y, x.dtype) * scale
    if bias is not None:
        y = y + bias
    return (_keep(y, x), mean, inv)[: max(ctx.n_outputs, 1)]


@onnx_op("RMSNormalization")
def _rms_norm(ctx: NodeContext, x, scale):
    rank = len(x.shape)
    axis = ctx.attr("axis", -1) % rank
    eps = ctx.attr("epsilon", 1e-5)
    norm_shape = tuple(x.shape[axis:])
    if tuple(scale.shape) == norm_shape and x.dtype in (fusejit.float32, fusejit.float64):
        return F.rms_norm(x, norm_shape, scale, eps)
    dims = tuple(range(axis, rank))
    xs = _stash(ctx, x)
    y = xs * fusejit.rsqrt(fusejit.mean(xs * xs, dim=dims, keepdim=True) + eps)
    return _keep(fusejit.cast(y, x.dtype) * scale, x)


def _channel(t: Tensor, rank: int) -> Tensor:
    """A per-channel vector shaped to broadcast over [N, C, ...] (rank ``rank``)."""
    return t.reshape((1, -1) + (1,) * (rank - 2)) if rank >= 2 else t


@onnx_op("BatchNormalization")
def _batch_norm(ctx: NodeContext, x, scale, bias, mean, var):
    eps = ctx.attr("epsilon", 1e-5)
    rank = len(x.shape)
    training = ctx.attr("training_mode", 0) if ctx.opset >= 14 else 0
    if ctx.opset < 9 and ctx.attr("spatial", 1) != 1:
        raise ctx.unsupported("spatial=0")
    if not training and ctx.n_outputs > 1 and ctx.opset >= 14:
        raise ctx.unsupported("running mean / var outputs outside training mode")
    if training:
        momentum = ctx.attr("momentum", 0.9)
        dims = (0,) + tuple(range(2, rank))
        m = fusejit.mean(x, dim=dims)
        v = fusejit.mean((x - _channel(m, rank)) ** 2, dim=dims)
        y = (x - _channel(m, rank)) * fusejit.rsqrt(_channel(v, rank) + eps)
        y = y * _channel(scale, rank) + _channel(bias, rank)
        run_mean = mean * momentum + m * (1 - momentum)
        run_var = var * momentum + v * (1 - momentum)
        return (_keep(y, x), _keep(run_mean, mean), _keep(run_var, var))[: ctx.n_outputs]
    inv = fusejit.rsqrt(var + eps) * scale
    y = (x - _channel(mean, rank)) * _channel(inv, rank) + _channel(bias, rank)
    return _keep(y, x)


@onnx_op("InstanceNormalization")
def _instance_norm(ctx: NodeContext, x, scale, bias):
    eps = ctx.attr("epsilon", 1e-5)
    rank = len(x.shape)
    dims = tuple(range(2, rank))
    m = fusejit.mean(x, dim=dims, keepdim=True)
    d = x - m
    y = d * fusejit.rsqrt(fusejit.mean(d * d, dim=dims, keepdim=True) + eps)
    return _keep(y * _channel(scale, rank) + _channel(bias, rank), x)


@onnx_op("GroupNormalization")
def _group_norm(ctx: NodeContext, x, scale, bias):
    eps = ctx.attr("epsilon", 1e-5)
    g = int(ctx.attr("num_groups"))
    n, c = x.shape[0], x.shape[1]
    rank = len(x.shape)
    if ctx.opset < 21 and scale.shape[0] == g and g != c:  # opset 18: one scale per group
        scale = fusejit.repeat_interleave(scale, c // g)
        bias = fusejit.repeat_interleave(bias, c // g)
    xs = _stash(ctx, x) if ctx.opset >= 21 else x
    grouped = xs.reshape(n, g, -1)
    m = fusejit.mean(grouped, dim=2, keepdim=True)
    d = grouped - m
    y = (d * fusejit.rsqrt(fusejit.mean(d * d, dim=2, keepdim=True) + eps)).reshape(x.shape)
    y = fusejit.cast(y, x.dtype) if y.dtype is not x.dtype else y
    return _keep(y * _channel(scale, rank) + _channel(bias, rank), x)


@onnx_op("LpNormalization")
def _lp_norm(ctx: NodeContext, x):
    axis, p = ctx.attr("axis", -1), ctx.attr("p", 2)
    if p == 1:
        norm = fusejit.sum(fusejit.abs(x), dim=axis, keepdim=True)
    elif p == 2:
        norm = fusejit.sqrt(fusejit.sum(x * x, dim=axis, keepdim=True))
    else:
        raise ctx.unsupported(f"p={p}")
    return _keep(fusejit.where(norm == 0, 0, x / norm), x)  # (0 where the norm is 0, as ONNX)


@onnx_op("Dropout")
def _dropout(ctx: NodeContext, x, ratio=None, training_mode=None):
    training = ctx.attr("is_test", 1) == 0 if ctx.opset < 7 else False
    if ctx.has_input(2):
        training = bool(np.asarray(ctx.static(2, "(training_mode)")))
    if training:
        r = float(np.asarray(ctx.static(1, "(ratio)"))) if ctx.has_input(1) else 0.5
        if r != 0.0:
            raise ctx.unsupported("training_mode with a non-zero ratio (random masks)")
    y = x
    if ctx.n_outputs > 1:
        return y, fusejit.ones(tuple(x.shape), dtype=fusejit.bool_, device=x.device)
    return y


# convolutions and pools -------------------------------------------------------------------
def _ints(ctx: NodeContext, name: str, n: int, default: int) -> list:
    v = ctx.attr(name, None)
    return [default] * n if v is None else [int(a) for a in v]


def _pads(ctx: NodeContext, size: list, k: list, s: list, d: list) -> list:
    """[(begin, end)] per spatial dim from ``pads`` or ``auto_pad``."""
    n = len(size)
    auto = ctx.attr("auto_pad", "NOTSET")
    if auto in ("NOTSET", ""):
        p = _ints(ctx, "pads", 2 * n, 0)
        return [(p[i], p[i + n]) for i in range(n)]
    if auto == "VALID":
        return [(0, 0)] * n
    if auto not in ("SAME_UPPER", "SAME_LOWER"):
        raise ctx.unsupported(f"auto_pad={auto!r}")
    out = []
    for i in range(n):
        want = -(-size[i] // s[i])
        total = max(0, (want - 1) * s[i] + (k[i] - 1) * d[i] + 1 - size[i])
        small = total // 2
        out.append((small, total - small) if auto == "SAME_UPPER" else (total - small, small))
    return out


def _pad_input(x: Tensor, pads: list, value) -> Tensor:
    """``x`` [N, C, *spatial] padded by ``pads`` [(begin, end)] per spatial dim."""
    if not any(b or e for b, e in pads):
        return x
    flat = []
    for b, e in reversed(pads):
        flat += [b, e]
    return F.pad(x, tuple(flat), value=value)


def _as_2d(x: Tensor, n: int) -> Tensor:
    return x.unsqueeze(2) if n == 1 else x


def _spatial(ctx: NodeContext, x: Tensor, most: int = 2) -> int:
    n = len(x.shape) - 2
    if not 1 <= n <= most:
        raise ctx.unsupported(f"{n}-D input (1-D to {most}-D are)")
    return n


def _window_reduce(xp: Tensor, k: list, s: list, d: list, combine) -> Tensor:
    """``combine`` (max or add) over each window of padded ``xp`` [N, C, *spatial] (any
    spatial rank): a window is a box, so one spatial dim at a time, one strided slice per
    kernel offset along it, combined elementwise (3-D pools)."""
    acc = xp
    for i in range(len(k)):
        dim = 2 + i
        out = (acc.shape[dim] - (k[i] - 1) * d[i] - 1) // s[i] + 1
        red = None
        for j in range(k[i]):
            part = acc.narrow(dim, j * d[i], (out - 1) * s[i] + 1)
            if s[i] > 1:
                idx = (slice(None),) * dim + (slice(None, None, s[i]),)
                part = part[idx]
            red = part if red is None else combine(red, part)
        acc = red
    return acc


@onnx_op("Conv")
def _conv(ctx: NodeContext, x, w, b=None):
    n = _spatial(ctx, x)
    k = _ints(ctx, "kernel_shape", n, 0)
    k = [int(v) for v in w.shape[2:]] if not any(k) else k
    s, d = _ints(ctx, "strides", n, 1), _ints(ctx, "dilations", n, 1)
    pads = _pads(ctx, list(x.shape[2:]), k, s, d)
    group = ctx.attr("group", 1)
    sym = all(bp == ep for bp, ep in pads)
    if not sym:
        x = _pad_input(x, pads, 0.0)
    pad = [bp for bp, _ in pads] if sym else [0] * n
    if n == 1:
        y = F.conv1d(x, w, b, s[0], pad[0], d[0], group)
    else:
        y = F.conv2d(x, w, b, tuple(s), tuple(pad), tuple(d), group)
    return _keep(y, x)


@onnx_op("ConvTranspose")
def _conv_transpose(ctx: NodeContext, x, w, b=None):
    n = _spatial(ctx, x)
    x2, w2 = _as_2d(x, n), _as_2d(w, n)
    k = [int(v) for v in w.shape[2:]]
    s, d = _ints(ctx, "strides", n, 1), _ints(ctx, "dilations", n, 1)
    op = _ints(ctx, "output_padding", n, 0)
    group = ctx.attr("group", 1)
    size = list(x.shape[2:])
    full = [(size[i] - 1) * s[i] + (k[i] - 1) * d[i] + 1 for i in range(n)]
    out_shape = ctx.attr("output_shape", None)
    out_shape = None if out_shape is None else [int(v) for v in out_shape][-n:]
    auto = ctx.attr("auto_pad", "NOTSET")
    pads = ctx.attr("pads", None)
    # per spatial dim: where the result starts in the full output, and its length
    spans = []
    for i in range(n):
        if pads is None and auto in ("SAME_UPPER", "SAME_LOWER"):
            want = out_shape[i] if out_shape is not None else size[i] * s[i]
            total = full[i] + op[i] - want
            begin = total // 2 if auto == "SAME_UPPER" else total - total // 2
            spans.append((begin, want))
        elif pads is None and out_shape is not None:
            spans.append((0, out_shape[i]))
        else:
            p = [0] * (2 * n) if pads is None else [int(v) for v in pads]
            spans.append((p[i], full[i] + op[i] - p[i] - p[i + n]))
    s2 = (1, s[0]) if n == 1 else tuple(s)
    d2 = (1, d[0]) if n == 1 else tuple(d)
    y = F.conv_transpose2d(x2, w2, None, s2, 0, 0, group, d2)
    # take each spatial dim's span of the full result (zeros where it reaches past it)
    for i, (begin, length) in enumerate(spans):
        dim = 2 + i + (1 if n == 1 else 0)
        have = y.shape[dim]
        front, back = max(0, -begin), max(0, begin + length - have)
        if front or back:
            extra = [0, 0] * (len(y.shape) - 1 - dim) + [front, back]
            y = F.pad(y, tuple(extra), value=0.0)
        y = y.narrow(dim, begin + front, length)
    if n == 1:
        y = y.squeeze(2)
    if b is not None:
        y = y + _channel(b, len(y.shape))
    return _keep(y, x)


def _pool_geometry(ctx: NodeContext, x: Tensor, n: int):
    k = _ints(ctx, "kernel_shape", n, 1)
    s, d = _ints(ctx, "strides", n, 1), _ints(ctx, "dilations", n, 1)
    size = list(x.shape[2:])
    pads = _pads(ctx, size, k, s, d)
    ceil = bool(ctx.attr("ceil_mode", 0))
    extra = []
    for i in range(n):
        span = (k[i] - 1) * d[i] + 1
        padded = size[i] + pads[i][0] + pads[i][1]
        q = (padded - span) / s[i]
        out = (math.ceil(q) if ceil else math.floor(q)) + 1
        if ceil and (out - 1) * s[i] >= size[i] + pads[i][0]:
            out -= 1  # (a window may not start in the end padding)
        extra.append(max(0, (out - 1) * s[i] + span - padded))
    return k, s, d, pads, extra


@onnx_op("MaxPool")
def _max_pool(ctx: NodeContext, x):
    n = _spatial(ctx, x, 3)
    k, s, d, pads, extra = _pool_geometry(ctx, x, n)
    low = -math.inf if x.dtype.is_floating_point else int(fusejit.iinfo(x.dtype).min)
    xp = _pad_input(x, [(b, e + x_) for (b, e), x_ in zip(pads, extra)], low)
    if ctx.n_outputs > 1:
        return _max_pool_indices(ctx, x, xp, k, s, d, pads, extra)
    if ctx.attr("storage_order", 0):
        raise ctx.unsupported("storage_order=1 without the Indices output")
    if n == 3:
        y = _window_reduce(xp, k, s, d, fusejit.maximum)
    elif n == 1:
        y = F.max_pool2d(xp.unsqueeze(2), (1, k[0]), (1, s[0]), 0, (1, d[0])).squeeze(2)
    else:
        y = F.max_pool2d(xp, tuple(k), tuple(s), 0, tuple(d))
    return y


def _max_pool_indices(ctx, x, xp, k, s, d, pads, extra):
    """MaxPool with its Indices output: each window's first maximum and its flat index into
    ``x`` (row-major, or with ``storage_order=1`` column-major over the spatial dims)."""
    shape = tuple(x.shape)
    flat = np.arange(int(np.prod(shape)), dtype=np.int64).reshape(shape)
    if ctx.attr("storage_order", 0):  # (the spatial dims counted column-major)
        n_c = shape[0] * shape[1]
        plane = np.arange(int(np.prod(shape[2:])), dtype=np.int64)
        plane = plane.reshape(shape[2:][::-1]).transpose()
        flat = (np.arange(n_c, dtype=np.int64).reshape(shape[:2] + (1,) * (len(shape) - 2))
                * plane.size + plane)  # fmt: skip
    widths = [(0, 0), (0, 0)] + [(b, e + x_) for (b, e), x_ in zip(pads, extra)]
    idx = fusejit.tensor(np.pad(flat, widths, constant_values=-1), device=x.device)
    n = len(k)
    outs = [(xp.shape[2 + i] - (k[i] - 1) * d[i] - 1) // s[i] + 1 for i in range(n)]
    best = where = None
    for offset in np.ndindex(*k):
        sl = (slice(None), slice(None)) + tuple(
            slice(j * d[i], j * d[i] + (outs[i] - 1) * s[i] + 1, s[i]) for i, j in enumerate(offset)
        )
        v, i_ = xp[sl], idx[sl]
        if best is None:
            best, where = v, i_
        else:
            better = v > best
            best, where = fusejit.where(better, v, best), fusejit.where(better, i_, where)
    return best, where


def _window_counts(size: list, k, s, d, lo: list, hi: list, pads, extra) -> np.ndarray:
    """Per output position, how many window elements fall in [lo, hi) of the padded input."""
    counts = []
    for i in range(len(size)):
        padded = size[i] + pads[i][0] + pads[i][1] + extra[i]
        span = (k[i] - 1) * d[i] + 1
        out = (padded - span) // s[i] + 1
        pos = np.arange(out)[:, None] * s[i] + np.arange(k[i])[None, :] * d[i]
        counts.append(((pos >= lo[i]) & (pos < hi[i])).sum(axis=1))
    c = counts[0]
    for more in counts[1:]:
        c = c[..., None] * more
    return c


@onnx_op("AveragePool")
def _avg_pool(ctx: NodeContext, x):
    n = _spatial(ctx, x, 3)
    k, s, d, pads, extra = _pool_geometry(ctx, x, n)
    size = list(x.shape[2:])
    xp = _pad_input(x, [(b, e + x_) for (b, e), x_ in zip(pads, extra)], 0.0)
    total = _window_sum(xp, n, k, s, d)
    return _divide_counts(ctx, x, total, n, k, s, d, size, pads, extra)


def _window_sum(xp: Tensor, n: int, k: list, s: list, d: list) -> Tensor:
    """The sum over each window of padded ``xp`` (fusejit's pools where they apply)."""
    if n == 3:
        return _window_reduce(xp, k, s, d, fusejit.add)
    x2 = _as_2d(xp, n)
    k2 = (1, k[0]) if n == 1 else tuple(k)
    s2 = (1, s[0]) if n == 1 else tuple(s)
    d2 = (1, d[0]) if n == 1 else tuple(d)
    if all(v == 1 for v in d):
        total = F.avg_pool2d(x2, k2, s2, 0, divisor_override=1)
    else:
        cols = F.unfold(x2, k2, d2, 0, s2)  # [N, C*kk, L]
        kk = int(np.prod(k2))
        nb, c = x2.shape[0], x2.shape[1]
        total = fusejit.sum(cols.reshape(nb, c, kk, -1), dim=2)
        oh = (x2.shape[2] - (k2[0] - 1) * d2[0] - 1) // s2[0] + 1
        total = total.reshape(nb, c, oh, -1)
    return total.squeeze(2) if n == 1 else total


def _divide_counts(ctx, x, total, n, k, s, d, size, pads, extra) -> Tensor:
    """Window sums ``total`` divided by the elements each window counts."""
    if ctx.attr("count_include_pad", 0):
        lo = [0] * n
        hi = [size[i] + pads[i][0] + pads[i][1] for i in range(n)]
    else:
        lo = [pads[i][0] for i in range(n)]
        hi = [size[i] + pads[i][0] for i in range(n)]
    counts = _window_counts(size, k, s, d, lo, hi, pads, extra)
    div = fusejit.tensor(counts.astype(np.float64), device=x.device)
    return _keep(total / fusejit.cast(div, x.dtype), x)


@onnx_op("LpPool")
def _lp_pool(ctx: NodeContext, x):
    n = _spatial(ctx, x, 3)
    p = ctx.attr("p", 2)
    k, s, d, pads, extra = _pool_geometry(ctx, x, n)
    xp = _pad_input(fusejit.abs(x), [(b, e + x_) for (b, e), x_ in zip(pads, extra)], 0.0)
    total = _window_sum(xp**p if p != 1 else xp, n, k, s, d)
    return _keep(total ** (1.0 / p) if p != 1 else total, x)


@onnx_op("GlobalAveragePool")
def _global_avg_pool(ctx: NodeContext, x):
    return fusejit.mean(x, dim=tuple(range(2, len(x.shape))), keepdim=True)


@onnx_op("GlobalMaxPool")
def _global_max_pool(ctx: NodeContext, x):
    return fusejit.amax(x, dim=tuple(range(2, len(x.shape))), keepdim=True)


# losses -----------------------------------------------------------------------------------
def _nll(ctx: NodeContext, logp: Tensor, target: Tensor, weight) -> Tensor:
    """ONNX's NegativeLogLikelihoodLoss of log-probabilities [N, C, ...] at ``target``."""
    reduction = ctx.attr("reduction", "mean")
    ignore = ctx.attr("ignore_index", None)
    t = target
    keep = None
    if ignore is not None:
        keep = t != ignore
        t = fusejit.where(keep, t, 0)
    picked = fusejit.gather(logp, 1, t.unsqueeze(1)).squeeze(1)
    loss = -picked
    w = None
    if weight is not None:
        w = fusejit.index_select(weight, 0, t.reshape(-1)).reshape(t.shape)
    if keep is not None:
        kf = fusejit.cast(keep, logp.dtype)
        w = kf if w is None else w * kf
    if w is not None:
        loss = loss * w
    if reduction == "none":
        return loss
    if reduction == "sum":
        return fusejit.sum(loss)
    if reduction != "mean":
        raise ctx.unsupported(f"reduction={reduction!r}")
    if w is None:
        return fusejit.mean(loss)
    return fusejit.sum(loss) / fusejit.sum(w)


@onnx_op("NegativeLogLikelihoodLoss")
def _nll_loss(ctx: NodeContext, x, target, weight=None):
    return _keep(_nll(ctx, x, target, weight), x)


@onnx_op("SoftmaxCrossEntropyLoss")
def _softmax_ce(ctx: NodeContext, scores, labels, weights=None):
    logp = fusejit.log_softmax(scores, 1)
    loss = _keep(_nll(ctx, logp, labels, weights), scores)
    return (loss, logp) if ctx.n_outputs > 1 else loss
