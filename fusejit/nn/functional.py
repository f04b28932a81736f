"""``fusejit.nn.functional``: the functional forms of the layers (import it as ``F``).

Every function is a composition of table ops (slices, ``cat``, ``reshape``, ``matmul``,
``index_select``, reductions, ``where``), never a computation on a tensor's storage: a call
traces into a graph (``fusejit.trace``), and its gradient follows from its ops' rules.
Convolutions gather their patches (im2col) with one ``index_select`` of constant positions
and multiply once; pooling gathers the same windows and reduces over them; ``interpolate``
and ``adaptive_avg_pool2d`` multiply by constant interpolation matrices.

>>> import fusejit
>>> import fusejit.nn.functional as F
>>> x = fusejit.arange(16.0).reshape(1, 1, 4, 4)
>>> F.max_pool2d(x, 2).tolist()
[[[[5.0, 7.0], [13.0, 15.0]]]]
>>> F.conv2d(x, fusejit.ones(1, 1, 2, 2), stride=2).tolist()
[[[[10.0, 18.0], [42.0, 50.0]]]]
"""

from __future__ import annotations

import builtins
import math

import numpy as np

from fusejit.base import dtypes as dt
from fusejit.base.errors import DeviceError, DTypeError, ShapeError, fmt_shape
from fusejit.base.finfo import finfo, iinfo
from fusejit.eager import elementwise as _ew
from fusejit.eager import recording
from fusejit.eager.activations import (
    celu,
    celu_,
    elu,
    elu_,
    glu,
    hardtanh,
    hardtanh_,
    leaky_relu,
    leaky_relu_,
    prelu,
)
from fusejit.eager.composites import clamp_min, norm
from fusejit.eager.creation import full, zeros
from fusejit.eager.elementwise import (
    cast,
    exp,
    gelu,
    gelu_tanh,
    hardsigmoid,
    hardswish,
    isnan,
    log1p,
    logsigmoid,
    mish,
    relu6,
    rsqrt,
    selu,
    sigmoid,
    softsign,
    tanh,
    tanhshrink,
    where,
)
from fusejit.eager.grad_mode import is_grad_enabled, no_grad
from fusejit.eager.indexing import gather, index_add, index_select, one_hot
from fusejit.eager.linalg import linear, matmul
from fusejit.eager.movement import cat, expand, repeat_interleave, reshape, tril
from fusejit.eager.random import rand_like
from fusejit.eager.reductions import amax, argmax, layer_norm, mean, var
from fusejit.eager.reductions import log_softmax as _log_softmax
from fusejit.eager.reductions import max as _max
from fusejit.eager.reductions import softmax as _softmax
from fusejit.eager.reductions import sum as _sum
from fusejit.eager.tensor import Tensor, tensor

__all__ = [
    "relu", "relu_", "gelu", "silu", "sigmoid", "tanh", "softplus", "softmax", "log_softmax",
    "softmin", "dropout", "embedding", "linear", "bilinear", "layer_norm", "rms_norm",
    "group_norm", "batch_norm", "instance_norm", "normalize", "pad", "one_hot",
    "scaled_dot_product_attention", "conv1d", "conv2d", "conv_transpose2d", "max_pool1d",
    "max_pool2d", "avg_pool1d", "avg_pool2d", "adaptive_avg_pool1d", "adaptive_avg_pool2d",
    "interpolate", "unfold", "fold", "pixel_shuffle", "cosine_similarity",
]  # fmt: skip

# activations fusejit has as table entries or compositions, under torch.nn.functional's names
__all__ += [
    "leaky_relu", "leaky_relu_", "elu", "elu_", "celu", "celu_", "selu", "hardtanh",
    "hardtanh_", "hardswish", "hardsigmoid", "relu6", "mish", "logsigmoid", "softsign",
    "tanhshrink", "glu", "prelu", "gelu_tanh",
]  # fmt: skip


# ---- arguments ----------------------------------------------------------------------------------
def _want_tensor(name: str, x, what: str = "input") -> None:
    if not isinstance(x, Tensor):
        raise TypeError(f"{name}: {what} must be a Tensor, got {type(x).__name__}")


def _want_float(name: str, x, what: str = "input") -> None:
    _want_tensor(name, x, what)
    if not x.dtype.is_floating_point:
        raise DTypeError(f"{name}: expected a floating-point {what}, got {x.dtype.name}")


def _same_device(name: str, x, other, what: str) -> None:
    if other is not None and other.device is not x.device:
        raise DeviceError(f"{name}: {what} is on {other.device}, the input on {x.device}")


def _tuple(name: str, v, n: int, what: str) -> tuple:
    """``v`` (an int or a sequence of ``n`` ints) as a tuple of ``n`` ints."""
    if isinstance(v, (list, tuple)):
        if len(v) == 1:
            v = tuple(v) * n
        if len(v) != n:
            raise ValueError(f"{name}: {what} must be an int or {n} ints, got {v!r}")
        out = tuple(v)
    else:
        out = (v,) * n
    for e in out:
        if isinstance(e, builtins.bool) or not isinstance(e, (int, np.integer)):
            raise TypeError(f"{name}: {what} must be ints, got {v!r}")
    return tuple(int(e) for e in out)


def _positive(name: str, vals: tuple, what: str, zero_ok: bool = False) -> None:
    for v in vals:
        if v < 0 or (v == 0 and not zero_ok):
            raise ValueError(
                f"{name}: {what} must be {'non-negative' if zero_ok else 'positive'}, got {vals}"
            )


def _const(a, like: Tensor, dtype=None) -> Tensor:
    """A constant tensor holding numpy array ``a`` on ``like``'s device (a graph constant)."""
    return tensor(np.ascontiguousarray(a), dtype=dtype, device=like.device)


def _batched(name: str, x, spatial: int) -> tuple[Tensor, bool]:
    """``x`` with a batch dim (an unbatched input gains one), and whether it had one."""
    _want_tensor(name, x)
    if x.ndim == spatial + 2:
        return x, True
    if x.ndim == spatial + 1:
        return reshape(x, 1, *x.shape), False
    raise ShapeError(
        f"{name}: expected a {spatial + 1}-D (unbatched) or {spatial + 2}-D (batched) input, "
        f"got shape {fmt_shape(x.shape)}"
    )


# ---- activations --------------------------------------------------------------------------------
def relu(input: Tensor, inplace: bool = False) -> Tensor:
    """``max(input, 0)``.

    >>> import fusejit
    >>> import fusejit.nn.functional as F
    >>> F.relu(fusejit.tensor([-1.0, 2.0])).tolist()
    [0.0, 2.0]
    """
    out = _ew.relu(input)
    return input.copy_(out) if inplace else out


def silu(input: Tensor, inplace: bool = False) -> Tensor:
    """``input * sigmoid(input)``."""
    out = _ew.silu(input)
    return input.copy_(out) if inplace else out


def relu_(input: Tensor) -> Tensor:
    """``relu`` written into ``input``."""
    return input.copy_(_ew.relu(input))


def softmin(input: Tensor, dim: int | None = None, dtype=None) -> Tensor:
    """``softmax(-input)``."""
    return softmax(-input, dim, dtype=dtype)


def softmax(input: Tensor, dim: int | None = None, _stacklevel: int = 3, dtype=None) -> Tensor:
    """Softmax along ``dim`` (``dtype``: convert the input first), as ``F.softmax``.

    >>> import fusejit
    >>> import fusejit.nn.functional as F
    >>> F.softmax(fusejit.zeros(2, 2), dim=1).tolist()
    [[0.5, 0.5], [0.5, 0.5]]
    """
    x = input if dtype is None else cast(input, dtype)
    return _softmax(x, _default_dim(x) if dim is None else dim)


def log_softmax(input: Tensor, dim: int | None = None, _stacklevel: int = 3, dtype=None) -> Tensor:
    """``log(softmax(input, dim))``, computed stably."""
    x = input if dtype is None else cast(input, dtype)
    return _log_softmax(x, _default_dim(x) if dim is None else dim)


def _default_dim(x: Tensor) -> int:
    # torch's legacy rule for a missing dim
    return 0 if x.ndim in (0, 1, 3) else 1


def softplus(input: Tensor, beta: float = 1.0, threshold: float = 20.0) -> Tensor:
    """``log(1 + exp(beta * x)) / beta``, linear where ``beta * x > threshold``."""
    if beta == 1.0 and threshold == 20.0:
        return _ew.softplus(input)
    bx = input * beta
    return where(bx > threshold, input, log1p(exp(bx)) / beta)


# ---- dropout, embedding, linear -----------------------------------------------------------------
def dropout(input: Tensor, p: float = 0.5, training: bool = True, inplace: bool = False) -> Tensor:
    """Zero each element with probability ``p`` and scale the rest by ``1/(1-p)`` when
    ``training``; else return ``input``. The mask comes from ``fusejit.rand_like`` (seeded by
    ``fusejit.manual_seed``), a graph node: a traced or optimized function draws a fresh mask
    at each call, the one eager code would draw from the same generator state.

    >>> import fusejit
    >>> import fusejit.nn.functional as F
    >>> F.dropout(fusejit.ones(3), 0.5, training=False).tolist()
    [1.0, 1.0, 1.0]
    """
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"dropout: p must be in [0, 1], got {p}")
    if not training or p == 0.0:
        return input
    _want_float("dropout", input)
    if p == 1.0:
        out = input * 0.0
    else:
        keep = rand_like(input) >= p
        out = where(keep, input * (1.0 / (1.0 - p)), 0.0)
    return input.copy_(out) if inplace else out


def embedding(
    input: Tensor,
    weight: Tensor,
    padding_idx: int | None = None,
    max_norm: float | None = None,
    norm_type: float = 2.0,
    scale_grad_by_freq: bool = False,
    sparse: bool = False,
) -> Tensor:
    """Rows of ``weight`` at the integer indices ``input``: shape ``input.shape + (dim,)``.
    ``padding_idx`` marks the row that gets no gradient (``Embedding`` zeroes it at init).

    >>> import fusejit
    >>> import fusejit.nn.functional as F
    >>> F.embedding(fusejit.tensor([[1, 0]]), fusejit.eye(2)).tolist()
    [[[0.0, 1.0], [1.0, 0.0]]]
    """
    _want_tensor("embedding", input)
    _want_tensor("embedding", weight, "weight")
    if weight.ndim != 2:
        raise ShapeError(f"embedding: weight must be 2-D, got shape {fmt_shape(weight.shape)}")
    if input.dtype.kind not in "iu" or input.dtype is dt.bool_:
        raise DTypeError(f"embedding: indices must be integers, got {input.dtype.name}")
    _same_device("embedding", weight, input, "the index")
    if max_norm is not None:
        raise NotImplementedError("embedding: max_norm is not supported")
    if sparse:
        raise NotImplementedError("embedding: sparse gradients are not supported")
    n = weight.shape[0]
    if padding_idx is not None and not -n <= padding_idx < n:
        raise ValueError(f"embedding: padding_idx {padding_idx} is out of range for {n} rows")
    flat = reshape(input, input.numel()) if input.ndim != 1 else input
    if padding_idx is None or not (weight.requires_grad and is_grad_enabled()):
        rows = index_select(weight, 0, flat)
    else:
        # the padding row contributes its values but no gradient
        pad_row = index_select(weight, 0, flat).detach()
        rows = where(reshape(flat == padding_idx % n, -1, 1), pad_row,
                     index_select(weight, 0, flat))  # fmt: skip
    return reshape(rows, *input.shape, weight.shape[1])


def bilinear(input1: Tensor, input2: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    """``y_k = x1 @ weight[k] @ x2 + bias_k`` (weight of shape ``[out, in1, in2]``)."""
    t = matmul(reshape(input1, *input1.shape[:-1], 1, 1, input1.shape[-1]), weight)
    y = reshape(matmul(t, reshape(input2, *input2.shape[:-1], 1, input2.shape[-1], 1)),
                *input1.shape[:-1], weight.shape[0])  # fmt: skip
    return y if bias is None else y + bias


# ---- normalization ------------------------------------------------------------------------------
def rms_norm(
    input: Tensor,
    normalized_shape,
    weight: Tensor | None = None,
    eps: float | None = None,
) -> Tensor:
    """``x / sqrt(mean(x**2) + eps)`` over the trailing ``normalized_shape`` dims, times
    ``weight``; ``eps`` defaults to the dtype's machine epsilon (as ``F.rms_norm``).

    >>> import fusejit
    >>> import fusejit.nn.functional as F
    >>> F.rms_norm(fusejit.tensor([3.0, 4.0]), (2,)).tolist()  # doctest: +ELLIPSIS
    [0.848..., 1.131...]
    """
    _want_float("rms_norm", input)
    shape = (normalized_shape,) if isinstance(normalized_shape, int) else tuple(normalized_shape)
    k = len(shape)
    if tuple(input.shape[input.ndim - k :]) != shape or k > input.ndim:
        raise ShapeError(
            f"rms_norm: normalized_shape {fmt_shape(shape)} is not the trailing shape of the "
            f"input of shape {fmt_shape(input.shape)}"
        )
    if weight is not None and tuple(weight.shape) != shape:
        raise ShapeError(
            f"rms_norm: weight of shape {fmt_shape(weight.shape)} for normalized_shape "
            f"{fmt_shape(shape)}"
        )
    if eps is None:
        eps = finfo(input.dtype).eps
    dims = tuple(range(input.ndim - k, input.ndim))
    y = input * rsqrt(mean(input * input, dims, keepdim=True) + eps) if dims else input
    return y if weight is None else y * weight


def group_norm(
    input: Tensor,
    num_groups: int,
    weight: Tensor | None = None,
    bias: Tensor | None = None,
    eps: float = 1e-5,
) -> Tensor:
    """Normalize each group of ``C / num_groups`` channels of each sample (biased variance),
    then scale and shift per channel.

    >>> import fusejit
    >>> import fusejit.nn.functional as F
    >>> F.group_norm(fusejit.tensor([[1.0, 3.0]]), 1).tolist()  # doctest: +ELLIPSIS
    [[-0.99..., 0.99...]]
    """
    _want_float("group_norm", input)
    if input.ndim < 2:
        raise ShapeError(
            f"group_norm: expected an input of at least 2 dims (N, C, ...), got shape "
            f"{fmt_shape(input.shape)}"
        )
    n, c = input.shape[0], input.shape[1]
    if num_groups <= 0 or c % num_groups:
        raise ShapeError(
            f"group_norm: {c} channels cannot be split into {num_groups} groups "
            f"(input of shape {fmt_shape(input.shape)})"
        )
    _check_channel("group_norm", input, weight, "weight")
    _check_channel("group_norm", input, bias, "bias")
    g = reshape(input, n, num_groups, c // num_groups * math.prod(input.shape[2:]))
    v, m = var(g, 2, correction=0, keepdim=True), mean(g, 2, keepdim=True)
    y = reshape((g - m) * rsqrt(v + eps), *input.shape)
    return _affine(y, weight, bias)


def _check_channel(name: str, x: Tensor, t, what: str) -> None:
    if t is None:
        return
    _want_tensor(name, t, what)
    _same_device(name, x, t, what)
    c = x.shape[1] if x.ndim > 1 else 1
    if tuple(t.shape) != (c,):
        raise ShapeError(
            f"{name}: {what} of shape {fmt_shape(t.shape)} for an input of shape "
            f"{fmt_shape(x.shape)} (expected ({c},), one per channel)"
        )


def _per_channel(t: Tensor, ndim: int) -> Tensor:
    return reshape(t, t.shape[0], *([1] * (ndim - 2))) if ndim > 2 else t


def _affine(y: Tensor, weight, bias) -> Tensor:
    if weight is not None:
        y = y * _per_channel(weight, y.ndim)
    if bias is not None:
        y = y + _per_channel(bias, y.ndim)
    return y


def batch_norm(
    input: Tensor,
    running_mean: Tensor | None,
    running_var: Tensor | None,
    weight: Tensor | None = None,
    bias: Tensor | None = None,
    training: bool = False,
    momentum: float = 0.1,
    eps: float = 1e-5,
) -> Tensor:
    """Normalize each channel (dim 1) over the batch and spatial dims, then scale and shift.

    ``training``: by this batch's statistics (biased variance), and ``running_mean`` /
    ``running_var`` (when given) move toward them in place, by ``momentum``, the variance
    unbiased, as in PyTorch. Else by the running statistics.

    >>> import fusejit
    >>> import fusejit.nn.functional as F
    >>> rm, rv = fusejit.zeros(1), fusejit.ones(1)
    >>> y = F.batch_norm(fusejit.tensor([[1.0], [3.0]]), rm, rv, training=True)
    >>> [round(v, 3) for v in y.flatten().tolist()]
    [-1.0, 1.0]
    >>> [round(v, 4) for v in rm.tolist()], [round(v, 4) for v in rv.tolist()]
    ([0.2], [1.1])
    """
    _want_float("batch_norm", input)
    if input.ndim < 2:
        raise ShapeError(
            f"batch_norm: expected an input of at least 2 dims (N, C, ...), got shape "
            f"{fmt_shape(input.shape)}"
        )
    for t, what in (
        (running_mean, "running_mean"),
        (running_var, "running_var"),
        (weight, "weight"),
        (bias, "bias"),
    ):
        _check_channel("batch_norm", input, t, what)
    dims = (0, *range(2, input.ndim))
    if training:
        count = input.numel() // input.shape[1]
        if count <= 1:
            raise ShapeError(
                f"batch_norm: expected more than 1 value per channel when training, got an "
                f"input of shape {fmt_shape(input.shape)}"
            )
        m = mean(input, dims, keepdim=True)
        v = var(input, dims, correction=0, keepdim=True)
        if running_mean is not None or running_var is not None:
            # (traced: the updates become results of the graph, ``Tracer.write_state``)
            with no_grad():
                mo = 0.0 if momentum is None else float(momentum)
                if running_mean is not None:
                    new = running_mean * (1 - mo) + reshape(m, -1) * mo
                    running_mean.copy_(new)
                if running_var is not None:
                    unbiased = reshape(v, -1) * (count / (count - 1))
                    running_var.copy_(running_var * (1 - mo) + unbiased * mo)
    else:
        if running_mean is None or running_var is None:
            raise ValueError(
                "batch_norm: running_mean and running_var are needed when not training"
            )
        m = _per_channel(running_mean, input.ndim)
        v = _per_channel(running_var, input.ndim)
    y = (input - m) * rsqrt(v + eps)
    return _affine(y, weight, bias)


def instance_norm(
    input: Tensor,
    running_mean=None,
    running_var=None,
    weight=None,
    bias=None,
    use_input_stats: bool = True,
    momentum: float = 0.1,
    eps: float = 1e-5,
) -> Tensor:
    """Normalize each channel of each sample over its spatial dims (``F.instance_norm``
    without running statistics)."""
    _want_float("instance_norm", input)
    if running_mean is not None or running_var is not None or not use_input_stats:
        raise NotImplementedError("instance_norm: running statistics are not supported")
    dims = tuple(range(2, input.ndim))
    m = mean(input, dims, keepdim=True)
    v = var(input, dims, correction=0, keepdim=True)
    return _affine((input - m) * rsqrt(v + eps), weight, bias)


def normalize(
    input: Tensor,
    p: float = 2.0,
    dim: int = 1,
    eps: float = 1e-12,
    out=None,
) -> Tensor:
    """``input / max(norm_p(input, dim), eps)``.

    >>> import fusejit
    >>> import fusejit.nn.functional as F
    >>> F.normalize(fusejit.tensor([[3.0, 4.0]], dtype=fusejit.float64)).tolist()
    [[0.6, 0.8]]
    """
    if out is not None:
        raise TypeError("normalize: out= is not supported")
    _want_float("normalize", input)
    return input / clamp_min(norm(input, p, dim, keepdim=True), eps)


def cosine_similarity(x1: Tensor, x2: Tensor, dim: int = 1, eps: float = 1e-8) -> Tensor:
    """``sum(x1 * x2) / max(|x1| * |x2|, eps)`` along ``dim`` (broadcast)."""
    n1 = norm(x1, 2, dim, keepdim=False)
    n2 = norm(x2, 2, dim, keepdim=False)
    return _sum(x1 * x2, dim) / clamp_min(n1 * n2, eps)


# ---- padding ------------------------------------------------------------------------------------
def pad(input: Tensor, pad: tuple, mode: str = "constant", value: float | None = None) -> Tensor:
    """Pad the last ``len(pad) // 2`` dims: ``pad = (left, right, top, bottom, ...)`` from the
    last dim backwards. ``mode``: ``'constant'`` (``value``, 0 by default; negative amounts
    crop), ``'reflect'``, ``'replicate'`` or ``'circular'``.

    >>> import fusejit
    >>> import fusejit.nn.functional as F
    >>> F.pad(fusejit.tensor([[1.0, 2.0, 3.0]]), (2, 1), mode="reflect").tolist()
    [[3.0, 2.0, 1.0, 2.0, 3.0, 2.0]]
    """
    _want_tensor("pad", input)
    amounts = tuple(pad)
    if len(amounts) % 2 or any(not isinstance(a, (int, np.integer)) for a in amounts):
        raise ValueError(f"pad: pad must be an even number of ints, got {pad!r}")
    k = len(amounts) // 2
    if k > input.ndim:
        raise ShapeError(
            f"pad: {len(amounts)} padding amounts for {k} dims, the input of shape "
            f"{fmt_shape(input.shape)} has {input.ndim}"
        )
    if mode not in ("constant", "reflect", "replicate", "circular"):
        raise NotImplementedError(f"pad: mode {mode!r} is not supported")
    if mode != "constant" and value not in (None, 0, 0.0):
        raise ValueError(f"pad: value is only for mode='constant', got mode={mode!r}")
    if mode != "constant" and not (1 <= k <= 3 and input.ndim in (k + 1, k + 2)):
        raise NotImplementedError(
            f"pad: mode {mode!r} pads the last 1, 2 or 3 dims of a batched or unbatched input; "
            f"got {len(amounts)} amounts for shape {fmt_shape(input.shape)}"
        )
    x = input
    for i in range(k):
        d = input.ndim - 1 - i
        lo, hi = int(amounts[2 * i]), int(amounts[2 * i + 1])
        if lo == 0 and hi == 0:
            continue
        x = _pad_dim(x, d, lo, hi, mode, 0 if value is None else value)
    return x


def _pad_dim(x: Tensor, d: int, lo: int, hi: int, mode: str, value) -> Tensor:
    n = x.shape[d]
    if mode == "constant":
        if lo < 0:
            x = _slice(x, d, -lo, x.shape[d])
            lo = 0
        if hi < 0:
            x = _slice(x, d, 0, x.shape[d] + hi)
            hi = 0
        if x.shape[d] + lo + hi < 0:
            raise ShapeError(f"pad: negative padding leaves dim {d} of size {n} with no room")
        parts = []
        for amount in (lo, None, hi):
            if amount is None:
                parts.append(x)
            elif amount:
                shape = list(x.shape)
                shape[d] = amount
                parts.append(full(tuple(shape), value, dtype=x.dtype, device=x.device))
        return cat(parts, d) if len(parts) > 1 else x
    if mode == "reflect":
        if lo >= n or hi >= n or lo < 0 or hi < 0:
            raise ShapeError(
                f"pad: reflect padding ({lo}, {hi}) must be non-negative and less than the size "
                f"{n} of dim {d} of the input of shape {fmt_shape(x.shape)}"
            )
        j = np.arange(-lo, n + hi)
        j = np.abs(j)
        j = np.where(j > n - 1, 2 * (n - 1) - j, j)
    elif mode == "replicate":
        if n == 0:
            raise ShapeError(f"pad: replicate padding of an empty dim {d}")
        j = np.clip(np.arange(-lo, n + hi), 0, n - 1)
    else:  # circular
        if lo > n or hi > n:
            raise ShapeError(
                f"pad: circular padding ({lo}, {hi}) is larger than the size {n} of dim {d} of "
                f"the input of shape {fmt_shape(x.shape)}"
            )
        j = np.arange(-lo, n + hi) % n
    return index_select(x, d, _const(j.astype(np.int64), x))


def _slice(x: Tensor, d: int, start: int, stop: int, step: int = 1) -> Tensor:
    idx = [slice(None)] * x.ndim
    idx[d] = slice(start, stop, step)
    return x[tuple(idx)]


# ---- convolution --------------------------------------------------------------------------------
def _out_size(n: int, k: int, s: int, p: int, d: int, ceil_mode: bool = False) -> int:
    span = n + 2 * p - d * (k - 1) - 1
    if span < 0:
        return 0
    o = (-(-span // s) if ceil_mode else span // s) + 1
    if ceil_mode and (o - 1) * s >= n + p:
        o -= 1  # the last window must start inside the input or its left padding
    return o


def _patches(
    x: Tensor, kernel: tuple, stride: tuple, dilation: tuple, out: tuple, window_last: bool = False
) -> Tensor:
    """``[N, C, kh*kw, OH, OW]`` (``[N, C, OH, OW, kh*kw]`` with ``window_last``): for each
    kernel offset, the input elements it meets at each output position (``x`` already
    padded). One ``index_select`` over the flattened spatial dims (its gradient: one
    ``index_add``)."""
    (kh, kw), (sh, sw), (dh, dw), (oh, ow) = kernel, stride, dilation, out
    n, c, h, w = x.shape
    ki, kj = np.divmod(np.arange(kh * kw), kw)
    rows = (ki * dh)[:, None, None] + (np.arange(oh) * sh)[None, :, None]
    cols = (kj * dw)[:, None, None] + (np.arange(ow) * sw)[None, None, :]
    flat_index = rows * w + cols  # [kk, oh, ow]
    if window_last:
        flat_index = flat_index.transpose(1, 2, 0)
    picked = index_select(reshape(x, n, c, h * w), 2, _const(flat_index.reshape(-1), x))
    return reshape(picked, n, c, *flat_index.shape)


def _conv_args(name: str, x, weight, bias, stride, padding, dilation, groups, spatial: int):
    _want_float(name, x)
    _want_tensor(name, weight, "weight")
    _same_device(name, x, weight, "weight")
    if weight.ndim != spatial + 2:
        raise ShapeError(
            f"{name}: weight must be {spatial + 2}-D, got shape {fmt_shape(weight.shape)}"
        )
    if weight.dtype is not x.dtype or (bias is not None and bias.dtype is not x.dtype):
        raise DTypeError(
            f"{name}: input ({x.dtype.name}), weight ({weight.dtype.name})"
            + (f" and bias ({bias.dtype.name})" if bias is not None else "")
            + " must have the same dtype"
        )
    if not isinstance(groups, int) or groups <= 0:
        raise ValueError(f"{name}: groups must be a positive int, got {groups!r}")
    stride = _tuple(name, stride, spatial, "stride")
    dilation = _tuple(name, dilation, spatial, "dilation")
    _positive(name, stride, "stride")
    _positive(name, dilation, "dilation")
    if bias is not None:
        _same_device(name, x, bias, "bias")
    return stride, dilation


def conv2d(
    input: Tensor,
    weight: Tensor,
    bias: Tensor | None = None,
    stride=1,
    padding=0,
    dilation=1,
    groups: int = 1,
) -> Tensor:
    """2-D convolution (cross-correlation, as PyTorch's) of ``input [N, C, H, W]`` (or
    ``[C, H, W]``) with ``weight [O, C / groups, kh, kw]``. ``padding``: ints, ``'valid'``
    (none) or ``'same'`` (output the input's size; stride 1).

    >>> import fusejit
    >>> import fusejit.nn.functional as F
    >>> F.conv2d(fusejit.ones(1, 1, 3, 3), fusejit.ones(1, 1, 2, 2), padding=1).shape
    (1, 1, 4, 4)
    """
    x, batched = _batched("conv2d", input, 2)
    stride, dilation = _conv_args("conv2d", x, weight, bias, stride, padding, dilation, groups, 2)
    out = _conv(x, weight, bias, stride, padding, dilation, groups, "conv2d")
    return out if batched else reshape(out, *out.shape[1:])


def conv1d(
    input: Tensor,
    weight: Tensor,
    bias: Tensor | None = None,
    stride=1,
    padding=0,
    dilation=1,
    groups: int = 1,
) -> Tensor:
    """1-D convolution of ``input [N, C, L]`` (or ``[C, L]``) with ``weight [O, C / groups, k]``.

    >>> import fusejit
    >>> import fusejit.nn.functional as F
    >>> F.conv1d(fusejit.arange(5.0).reshape(1, 1, 5), fusejit.ones(1, 1, 2)).tolist()
    [[[1.0, 3.0, 5.0, 7.0]]]
    """
    x, batched = _batched("conv1d", input, 1)
    stride, dilation = _conv_args("conv1d", x, weight, bias, stride, padding, dilation, groups, 1)
    if not isinstance(padding, str):
        padding = (0, _tuple("conv1d", padding, 1, "padding")[0])
    x2 = reshape(x, x.shape[0], x.shape[1], 1, x.shape[2])
    w2 = reshape(weight, weight.shape[0], weight.shape[1], 1, weight.shape[2])
    out = _conv(x2, w2, bias, (1, stride[0]), padding, (1, dilation[0]), groups, "conv1d")
    out = reshape(out, out.shape[0], out.shape[1], out.shape[3])
    return out if batched else reshape(out, *out.shape[1:])


def _conv(x, weight, bias, stride, padding, dilation, groups, name):
    n, c, h, w = x.shape
    o, cg, kh, kw = weight.shape
    if c != cg * groups:
        raise ShapeError(
            f"{name}: input of shape {fmt_shape(x.shape)} has {c} channels, the weight of shape "
            f"{fmt_shape(weight.shape)} with groups={groups} expects {cg * groups}"
        )
    if o % groups:
        raise ShapeError(f"{name}: {o} output channels cannot be split into {groups} groups")
    if bias is not None and tuple(bias.shape) != (o,):
        raise ShapeError(f"{name}: bias of shape {fmt_shape(bias.shape)} for {o} output channels")
    span = (dilation[0] * (kh - 1), dilation[1] * (kw - 1))
    if isinstance(padding, str):
        if padding == "valid":
            pads = ((0, 0), (0, 0))
        elif padding == "same":
            if stride != (1, 1):
                raise ValueError(
                    f"{name}: padding='same' is not supported for strided convolutions"
                )
            pads = tuple((s // 2, s - s // 2) for s in span)
        else:
            raise ValueError(f"{name}: padding must be 'valid', 'same' or ints, got {padding!r}")
    else:
        p = _tuple(name, padding, 2, "padding")
        _positive(name, p, "padding", zero_ok=True)
        pads = ((p[0], p[0]), (p[1], p[1]))
    hp, wp = h + sum(pads[0]), w + sum(pads[1])
    if hp < span[0] + 1 or wp < span[1] + 1:
        raise ShapeError(
            f"{name}: the input of shape {fmt_shape(x.shape)} (padded to {hp}x{wp}) is smaller "
            f"than the kernel ({span[0] + 1}x{span[1] + 1} with dilation)"
        )
    if any(pads[0]) or any(pads[1]):
        x = pad(x, (pads[1][0], pads[1][1], pads[0][0], pads[0][1]))
    oh = (hp - span[0] - 1) // stride[0] + 1
    ow = (wp - span[1] - 1) // stride[1] + 1
    if kh == kw == 1 and stride == (1, 1):
        cols = reshape(x, n, groups, cg, oh * ow)
    else:
        cols = reshape(_patches(x, (kh, kw), stride, dilation, (oh, ow)), n, groups, cg * kh * kw,
                       oh * ow)  # fmt: skip
    wm = reshape(weight, groups, o // groups, cg * kh * kw)
    y = reshape(matmul(wm, cols), n, o, oh, ow)
    if bias is not None:
        y = y + reshape(bias, o, 1, 1)
    return y


def unfold(input: Tensor, kernel_size, dilation=1, padding=0, stride=1) -> Tensor:
    """The sliding blocks of ``input [N, C, H, W]`` as columns: ``[N, C * kh * kw, L]``
    (``torch.nn.functional.unfold``, im2col).

    >>> import fusejit
    >>> import fusejit.nn.functional as F
    >>> F.unfold(fusejit.arange(9.0).reshape(1, 1, 3, 3), 2).tolist()
    [[[0.0, 1.0, 3.0, 4.0], [1.0, 2.0, 4.0, 5.0], [3.0, 4.0, 6.0, 7.0], [4.0, 5.0, 7.0, 8.0]]]
    """
    x, batched = _batched("unfold", input, 2)
    k = _tuple("unfold", kernel_size, 2, "kernel_size")
    d = _tuple("unfold", dilation, 2, "dilation")
    p = _tuple("unfold", padding, 2, "padding")
    s = _tuple("unfold", stride, 2, "stride")
    for v, what in ((k, "kernel_size"), (d, "dilation"), (s, "stride")):
        _positive("unfold", v, what)
    _positive("unfold", p, "padding", zero_ok=True)
    n, c, h, w = x.shape
    oh, ow = (_out_size(h, k[0], s[0], p[0], d[0]), _out_size(w, k[1], s[1], p[1], d[1]))
    if oh <= 0 or ow <= 0:
        raise ShapeError(
            f"unfold: no block of size {k} (dilation {d}, padding {p}) fits the input of shape "
            f"{fmt_shape(input.shape)}"
        )
    if any(p):
        x = pad(x, (p[1], p[1], p[0], p[0]))
    cols = reshape(_patches(x, k, s, d, (oh, ow)), n, c * k[0] * k[1], oh * ow)
    return cols if batched else reshape(cols, *cols.shape[1:])


def fold(input: Tensor, output_size, kernel_size, dilation=1, padding=0, stride=1) -> Tensor:
    """The inverse arrangement of ``unfold``: columns ``[N, C * kh * kw, L]`` summed into
    ``[N, C, H, W]`` (overlapping blocks add up).

    >>> import fusejit
    >>> import fusejit.nn.functional as F
    >>> F.fold(fusejit.ones(1, 4, 4), (3, 3), 2).tolist()
    [[[[1.0, 2.0, 1.0], [2.0, 4.0, 2.0], [1.0, 2.0, 1.0]]]]
    """
    _want_tensor("fold", input)
    if input.ndim not in (2, 3):
        raise ShapeError(f"fold: expected a 2-D or 3-D input, got shape {fmt_shape(input.shape)}")
    batched = input.ndim == 3
    x = input if batched else reshape(input, 1, *input.shape)
    size = _tuple("fold", output_size, 2, "output_size")
    k = _tuple("fold", kernel_size, 2, "kernel_size")
    d = _tuple("fold", dilation, 2, "dilation")
    p = _tuple("fold", padding, 2, "padding")
    s = _tuple("fold", stride, 2, "stride")
    for v, what in ((k, "kernel_size"), (d, "dilation"), (s, "stride")):
        _positive("fold", v, what)
    kk = k[0] * k[1]
    n, ck, length = x.shape
    if ck % kk:
        raise ShapeError(
            f"fold: dim 1 of the input of shape {fmt_shape(input.shape)} must be divisible by "
            f"kernel_size[0] * kernel_size[1] = {kk}"
        )
    oh, ow = (
        _out_size(size[0], k[0], s[0], p[0], d[0]),
        _out_size(size[1], k[1], s[1], p[1], d[1]),
    )
    if oh * ow != length or oh <= 0 or ow <= 0:
        raise ShapeError(
            f"fold: the input of shape {fmt_shape(input.shape)} has {length} blocks; "
            f"output_size {size} with kernel {k}, dilation {d}, padding {p}, stride {s} makes "
            f"{builtins.max(oh, 0) * builtins.max(ow, 0)}"
        )
    c = ck // kk
    return _fold(x, c, size, k, d, p, s, (oh, ow)) if batched else \
        reshape(_fold(x, c, size, k, d, p, s, (oh, ow)), c, *size)  # fmt: skip


def _fold(x, c, size, k, d, p, s, blocks):
    n = x.shape[0]
    hp, wp = size[0] + 2 * p[0], size[1] + 2 * p[1]
    oh, ow = blocks
    ki, kj = np.divmod(np.arange(k[0] * k[1]), k[1])
    rows = (np.arange(oh) * s[0])[None, :, None] + (ki * d[0])[:, None, None]
    colsi = (np.arange(ow) * s[1])[None, None, :] + (kj * d[1])[:, None, None]
    target = (rows * wp + colsi).reshape(-1).astype(np.int64)  # [kk * oh * ow]
    src = reshape(x, n, c, k[0] * k[1] * oh * ow)
    out = index_add(zeros(n, c, hp * wp, dtype=x.dtype, device=x.device), 2,
                    _const(target, x), src)  # fmt: skip
    out = reshape(out, n, c, hp, wp)
    if p[0] or p[1]:
        out = out[:, :, p[0] : p[0] + size[0], p[1] : p[1] + size[1]]
    return out


def conv_transpose2d(
    input: Tensor,
    weight: Tensor,
    bias: Tensor | None = None,
    stride=1,
    padding=0,
    output_padding=0,
    groups: int = 1,
    dilation=1,
) -> Tensor:
    """The transpose (gradient) of ``conv2d``: ``input [N, Cin, H, W]``, ``weight
    [Cin, Cout / groups, kh, kw]``; output size ``(H - 1) * stride - 2 * padding +
    dilation * (kh - 1) + output_padding + 1``.

    >>> import fusejit
    >>> import fusejit.nn.functional as F
    >>> F.conv_transpose2d(fusejit.ones(1, 1, 2, 2), fusejit.ones(1, 1, 2, 2)).tolist()
    [[[[1.0, 2.0, 1.0], [2.0, 4.0, 2.0], [1.0, 2.0, 1.0]]]]
    """
    name = "conv_transpose2d"
    x, batched = _batched(name, input, 2)
    s, d = _conv_args(name, x, weight, bias, stride, padding, dilation, groups, 2)
    p = _tuple(name, padding, 2, "padding")
    op = _tuple(name, output_padding, 2, "output_padding")
    _positive(name, p, "padding", zero_ok=True)
    _positive(name, op, "output_padding", zero_ok=True)
    for i in range(2):
        if op[i] >= builtins.max(s[i], d[i]):
            raise ValueError(
                f"{name}: output_padding {op} must be smaller than either stride {s} or "
                f"dilation {d}"
            )
    n, cin, h, w = x.shape
    ci, cog, kh, kw = weight.shape
    if ci != cin or cin % groups:
        raise ShapeError(
            f"{name}: input of shape {fmt_shape(x.shape)} has {cin} channels, the weight of "
            f"shape {fmt_shape(weight.shape)} expects {ci} (groups={groups})"
        )
    cout = cog * groups
    if bias is not None and tuple(bias.shape) != (cout,):
        raise ShapeError(f"{name}: bias of shape {fmt_shape(bias.shape)} for {cout} channels")
    size = tuple((hw - 1) * s[i] - 2 * p[i] + d[i] * (kk - 1) + op[i] + 1
                 for i, (hw, kk) in enumerate(((h, kh), (w, kw))))  # fmt: skip
    if size[0] <= 0 or size[1] <= 0:
        raise ShapeError(f"{name}: the output size {size} is not positive")
    wm = reshape(weight, groups, cin // groups, cog * kh * kw).transpose(1, 2)
    xm = reshape(x, n, groups, cin // groups, h * w)
    cols = reshape(matmul(wm, xm), n, cout * kh * kw, h * w)
    out = _fold(cols, cout, size, (kh, kw), d, p, s, (h, w))
    if bias is not None:
        out = out + reshape(bias, cout, 1, 1)
    return out if batched else reshape(out, *out.shape[1:])


# ---- pooling ------------------------------------------------------------------------------------
def _pool_args(name, x, kernel_size, stride, padding, dilation, spatial=2):
    k = _tuple(name, kernel_size, spatial, "kernel_size")
    s = k if stride is None or (isinstance(stride, (list, tuple)) and not stride) else \
        _tuple(name, stride, spatial, "stride")  # fmt: skip
    p = _tuple(name, padding, spatial, "padding")
    d = _tuple(name, dilation, spatial, "dilation")
    for v, what in ((k, "kernel_size"), (s, "stride"), (d, "dilation")):
        _positive(name, v, what)
    _positive(name, p, "padding", zero_ok=True)
    for i in range(spatial):
        if p[i] > k[i] // 2:
            raise ValueError(f"{name}: padding {p} must be at most half of the kernel_size {k}")
    return k, s, p, d


def _pool_windows(name, x, k, s, p, d, ceil_mode, fill):
    """The windows ``[N, C, OH, OW, kh*kw]`` of ``x`` padded with ``fill`` (and the output
    size): reductions over the last dim are the fastest."""
    h, w = x.shape[2], x.shape[3]
    oh = _out_size(h, k[0], s[0], p[0], d[0], ceil_mode)
    ow = _out_size(w, k[1], s[1], p[1], d[1], ceil_mode)
    if oh <= 0 or ow <= 0:
        raise ShapeError(
            f"{name}: the output size would be {oh}x{ow} for the input of shape "
            f"{fmt_shape(x.shape)} (kernel {k}, stride {s}, padding {p}, dilation {d})"
        )
    extra = [builtins.max(0, (o - 1) * st + dd * (kk - 1) + 1 - (n + 2 * pp))
             for o, st, dd, kk, n, pp in ((oh, s[0], d[0], k[0], h, p[0]),
                                          (ow, s[1], d[1], k[1], w, p[1]))]  # fmt: skip
    if p[0] or p[1] or extra[0] or extra[1]:
        x = pad(x, (p[1], p[1] + extra[1], p[0], p[0] + extra[0]), value=fill)
    return _patches(x, k, s, d, (oh, ow), window_last=True), oh, ow


def max_pool2d(
    input: Tensor,
    kernel_size,
    stride=None,
    padding=0,
    dilation=1,
    ceil_mode: bool = False,
    return_indices: bool = False,
):
    """The maximum of each ``kernel_size`` window of ``input [N, C, H, W]`` (or ``[C, H, W]``);
    ``return_indices``: also each maximum's flat index into ``H * W`` (the first of equal
    ones; NaN propagates).

    >>> import fusejit
    >>> import fusejit.nn.functional as F
    >>> v, i = F.max_pool2d(fusejit.arange(16.0).reshape(1, 4, 4), 2, return_indices=True)
    >>> v.tolist(), i.tolist()
    ([[[5.0, 7.0], [13.0, 15.0]]], [[[5, 7], [13, 15]]])
    """
    name = "max_pool2d"
    x, batched = _batched(name, input, 2)
    if x.dtype is dt.bool_ or x.dtype.kind == "c":
        raise DTypeError(f"{name}: not supported for {x.dtype.name} tensors")
    k, s, p, d = _pool_args(name, x, kernel_size, stride, padding, dilation)
    fill = -math.inf if x.dtype.is_floating_point else iinfo(x.dtype).min
    win, oh, ow = _pool_windows(name, x, k, s, p, d, ceil_mode, fill)
    n, c, kk = x.shape[0], x.shape[1], k[0] * k[1]
    h, w = x.shape[2], x.shape[3]
    ki, kj = np.divmod(np.arange(kk), k[1])
    rows = (np.arange(oh) * s[0] - p[0])[:, None, None] + (ki * d[0])[None, None, :]
    cols = (np.arange(ow) * s[1] - p[1])[None, :, None] + (kj * d[1])[None, None, :]
    rows, cols = np.broadcast_arrays(rows, cols)  # [oh, ow, kk]
    inside = (rows >= 0) & (rows < h) & (cols >= 0) & (cols < w)
    if inside.all():
        values, which = _max(win, 4)
    else:
        # the first element of each window that holds its maximum (or its first NaN), never
        # a padding element: one that only ties with the padding value still wins, as in
        # PyTorch, and receives the gradient
        top = amax(win, 4, keepdim=True)
        hit = (win == top) | isnan(win) if x.dtype.is_floating_point else win == top
        hit = cast(hit & _const(inside, x), dt.uint8)
        which = argmax(hit, 4, keepdim=True)
        values = reshape(gather(win, 4, which), n, c, oh, ow)
        which = reshape(which, n, c, oh, ow)
    if not return_indices:
        return values if batched else reshape(values, *values.shape[1:])
    table = _const((rows * w + cols).astype(np.int64), x)  # [oh, ow, kk]
    table = expand(reshape(table, 1, 1, oh, ow, kk), n, c, oh, ow, kk)
    idx = reshape(gather(table, 4, reshape(which, n, c, oh, ow, 1)), n, c, oh, ow)
    if not batched:
        values, idx = reshape(values, *values.shape[1:]), reshape(idx, *idx.shape[1:])
    return values, idx


def max_pool1d(
    input: Tensor,
    kernel_size,
    stride=None,
    padding=0,
    dilation=1,
    ceil_mode: bool = False,
    return_indices: bool = False,
):
    """``max_pool2d`` over the last dim of ``input [N, C, L]`` (or ``[C, L]``)."""
    x, batched = _batched("max_pool1d", input, 1)
    one = lambda v: (1, _tuple("max_pool1d", v, 1, "argument")[0])  # noqa: E731
    r = max_pool2d(reshape(x, x.shape[0], x.shape[1], 1, x.shape[2]), one(kernel_size),
                   None if stride is None else one(stride), (0, one(padding)[1]),
                   one(dilation), ceil_mode, return_indices)  # fmt: skip
    drop = (lambda t: reshape(t, t.shape[0], t.shape[1], t.shape[3])) if batched else \
        (lambda t: reshape(t, t.shape[1], t.shape[3]))  # fmt: skip
    return (drop(r[0]), drop(r[1])) if return_indices else drop(r)


def avg_pool2d(
    input: Tensor,
    kernel_size,
    stride=None,
    padding=0,
    ceil_mode: bool = False,
    count_include_pad: bool = True,
    divisor_override: int | None = None,
) -> Tensor:
    """The mean of each ``kernel_size`` window of ``input [N, C, H, W]`` (or ``[C, H, W]``);
    ``count_include_pad=False`` divides by the input elements only.

    >>> import fusejit
    >>> import fusejit.nn.functional as F
    >>> F.avg_pool2d(fusejit.arange(16.0).reshape(1, 1, 4, 4), 2).tolist()
    [[[[2.5, 4.5], [10.5, 12.5]]]]
    """
    name = "avg_pool2d"
    x, batched = _batched(name, input, 2)
    _want_float(name, x)
    k, s, p, _ = _pool_args(name, x, kernel_size, stride, padding, 1)
    win, oh, ow = _pool_windows(name, x, k, s, p, (1, 1), ceil_mode, 0.0)
    total = _sum(win, 4)
    if divisor_override is not None:
        if divisor_override == 0:
            raise ValueError(f"{name}: divisor_override must not be zero")
        out = total / divisor_override
    else:
        h, w = x.shape[2], x.shape[3]
        div = np.outer(_divisors(h, oh, k[0], s[0], p[0], count_include_pad),
                       _divisors(w, ow, k[1], s[1], p[1], count_include_pad))  # fmt: skip
        out = total / _const(div, x, dtype=x.dtype)
    return out if batched else reshape(out, *out.shape[1:])


def _divisors(n, o, k, s, p, include_pad):
    start = np.arange(o) * s - p
    end = np.minimum(start + k, n + p)
    size = end - start
    if not include_pad:
        size = np.minimum(end, n) - np.maximum(start, 0)
    return size.astype(np.float64)


def avg_pool1d(
    input: Tensor,
    kernel_size,
    stride=None,
    padding=0,
    ceil_mode: bool = False,
    count_include_pad: bool = True,
) -> Tensor:
    """``avg_pool2d`` over the last dim of ``input [N, C, L]`` (or ``[C, L]``)."""
    x, batched = _batched("avg_pool1d", input, 1)
    one = lambda v: (1, _tuple("avg_pool1d", v, 1, "argument")[0])  # noqa: E731
    r = avg_pool2d(reshape(x, x.shape[0], x.shape[1], 1, x.shape[2]), one(kernel_size),
                   None if stride is None else one(stride), (0, one(padding)[1]), ceil_mode,
                   count_include_pad)  # fmt: skip
    r = reshape(r, r.shape[0], r.shape[1], r.shape[3])
    return r if batched else reshape(r, *r.shape[1:])


def _adaptive_matrix(n: int, o: int) -> np.ndarray:
    """``[o, n]``: row i averages input ``floor(i*n/o) .. ceil((i+1)*n/o)``."""
    m = np.zeros((o, n))
    for i in range(o):
        a, b = (i * n) // o, -(-((i + 1) * n) // o)
        m[i, a:b] = 1.0 / (b - a)
    return m


def adaptive_avg_pool2d(input: Tensor, output_size) -> Tensor:
    """Average pooling to a fixed ``output_size`` (an int, or ``(oh, ow)`` where None keeps
    the input's size): output cell ``i`` averages input ``floor(i*H/oh)`` up to
    ``ceil((i+1)*H/oh)``.

    >>> import fusejit
    >>> import fusejit.nn.functional as F
    >>> F.adaptive_avg_pool2d(fusejit.arange(16.0).reshape(1, 1, 4, 4), 1).tolist()
    [[[[7.5]]]]
    """
    name = "adaptive_avg_pool2d"
    x, batched = _batched(name, input, 2)
    _want_float(name, x)
    h, w = x.shape[2], x.shape[3]
    if isinstance(output_size, (list, tuple)):
        if len(output_size) != 2:
            raise ValueError(f"{name}: output_size must be an int or 2 ints, got {output_size!r}")
        oh, ow = (h if output_size[0] is None else int(output_size[0]),
                  w if output_size[1] is None else int(output_size[1]))  # fmt: skip
    else:
        oh = ow = int(output_size)
    if oh < 0 or ow < 0 or (h == 0 and oh) or (w == 0 and ow):
        raise ShapeError(
            f"{name}: output_size ({oh}, {ow}) for an input of shape {fmt_shape(x.shape)}"
        )
    out = x
    if oh != h:
        out = matmul(_const(_adaptive_matrix(h, oh), x, dtype=x.dtype), out)
    if ow != w:
        out = matmul(out, _const(_adaptive_matrix(w, ow).T, x, dtype=x.dtype))
    return out if batched else reshape(out, *out.shape[1:])


def adaptive_avg_pool1d(input: Tensor, output_size) -> Tensor:
    """``adaptive_avg_pool2d`` over the last dim of ``input [N, C, L]`` (or ``[C, L]``)."""
    _want_float("adaptive_avg_pool1d", input)
    o = output_size[0] if isinstance(output_size, (list, tuple)) else int(output_size)
    n = input.shape[-1]
    return input if o == n else matmul(input, _const(_adaptive_matrix(n, o).T, input,
                                                     dtype=input.dtype))  # fmt: skip


# ---- resampling ---------------------------------------------------------------------------------
def interpolate(
    input: Tensor,
    size=None,
    scale_factor=None,
    mode: str = "nearest",
    align_corners: bool | None = None,
    recompute_scale_factor: bool | None = None,
    antialias: bool = False,
) -> Tensor:
    """Resize the spatial dims of ``input [N, C, ...]`` to ``size`` or by ``scale_factor``:
    ``mode`` ``'nearest'`` or ``'nearest-exact'`` (1-3 spatial dims), ``'linear'`` (1),
    ``'bilinear'`` (2), ``'trilinear'`` (3), with ``align_corners`` as in PyTorch, or
    ``'area'`` (adaptive average pooling; 1 or 2).

    >>> import fusejit
    >>> import fusejit.nn.functional as F
    >>> F.interpolate(fusejit.tensor([[[1.0, 2.0]]]), scale_factor=2).tolist()
    [[[1.0, 1.0, 2.0, 2.0]]]
    """
    name = "interpolate"
    _want_float(name, input)
    sp = input.ndim - 2
    if sp < 1 or sp > 3:
        raise ShapeError(
            f"{name}: expected a 3-D, 4-D or 5-D input (N, C, spatial...), got shape "
            f"{fmt_shape(input.shape)}"
        )
    linear_modes = {"linear": 1, "bilinear": 2, "trilinear": 3}
    if mode not in ("nearest", "nearest-exact", "area", *linear_modes):
        raise NotImplementedError(f"{name}: mode {mode!r} is not supported")
    if mode in linear_modes and linear_modes[mode] != sp:
        raise ShapeError(
            f"{name}: mode {mode!r} needs a {linear_modes[mode] + 2}-D input, got shape "
            f"{fmt_shape(input.shape)}"
        )
    if mode in ("nearest", "nearest-exact", "area") and align_corners is not None:
        raise ValueError(f"{name}: align_corners is only for the linear modes")
    if antialias:
        raise NotImplementedError(f"{name}: antialias is not supported")
    if (size is None) == (scale_factor is None):
        raise ValueError(f"{name}: give exactly one of size and scale_factor")
    ins = input.shape[2:]
    if size is not None:
        outs = tuple(size) if isinstance(size, (list, tuple)) else (size,) * sp
        if len(outs) != sp:
            raise ValueError(f"{name}: size {size!r} for {sp} spatial dims")
        outs = tuple(int(v) for v in outs)
        scales = [None] * sp
    else:
        sf = (
            tuple(scale_factor) if isinstance(scale_factor, (list, tuple)) else (scale_factor,) * sp
        )
        if len(sf) != sp:
            raise ValueError(f"{name}: scale_factor {scale_factor!r} for {sp} spatial dims")
        outs = tuple(int(math.floor(n * float(f))) for n, f in zip(ins, sf))
        scales = [None if recompute_scale_factor else float(f) for f in sf]
    if any(o <= 0 for o in outs):
        raise ShapeError(f"{name}: the output size {outs} must be positive")
    if mode == "area":  # adaptive average pooling to the output size
        if sp == 3:
            raise NotImplementedError(f"{name}: mode 'area' of a 5-D input is not supported")
        return adaptive_avg_pool1d(input, outs) if sp == 1 else adaptive_avg_pool2d(input, outs)
    x = input
    for i in range(sp):
        d = 2 + i
        n, o = ins[i], outs[i]
        if mode in ("nearest", "nearest-exact"):
            scale = 1.0 / scales[i] if scales[i] else n / o
            # float32 arithmetic, as PyTorch's kernel; nearest-exact samples pixel centres
            pos = np.arange(o, dtype=np.float32) + np.float32(0.5 if mode != "nearest" else 0)
            pos = pos * np.float32(scale)
            src = np.minimum(np.floor(pos).astype(np.int64), n - 1)
            if o != n or scales[i]:
                x = index_select(x, d, _const(src, x))
        else:
            m = _linear_matrix(n, o, bool(align_corners), scales[i])
            xm = x.transpose(d, x.ndim - 1) if d != x.ndim - 1 else x
            xm = matmul(xm, _const(m.T, x, dtype=x.dtype))
            x = xm.transpose(d, x.ndim - 1) if d != x.ndim - 1 else xm
    return x


def _linear_matrix(n: int, o: int, align_corners: bool, scale_factor) -> np.ndarray:
    """``[o, n]``: linear interpolation weights of each output position."""
    dst = np.arange(o, dtype=np.float64)
    if align_corners:
        src = dst * ((n - 1) / (o - 1)) if o > 1 else np.zeros(o)
    else:
        scale = 1.0 / scale_factor if scale_factor else n / o
        src = np.maximum((dst + 0.5) * scale - 0.5, 0.0)
    i0 = np.minimum(np.floor(src).astype(np.int64), n - 1)
    i1 = np.minimum(i0 + 1, n - 1)
    lam = src - i0
    m = np.zeros((o, n))
    np.add.at(m, (np.arange(o), i0), 1.0 - lam)
    np.add.at(m, (np.arange(o), i1), lam)
    return m


def pixel_shuffle(input: Tensor, upscale_factor: int) -> Tensor:
    """``[*, C * r * r, H, W]`` -> ``[*, C, H * r, W * r]``."""
    r = int(upscale_factor)
    *b, c, h, w = input.shape
    if c % (r * r):
        raise ShapeError(f"pixel_shuffle: {c} channels are not divisible by {r}*{r}")
    x = reshape(input, *b, c // (r * r), r, r, h, w)
    nb = len(b)
    x = x.permute(*range(nb), nb, nb + 3, nb + 1, nb + 4, nb + 2)
    return reshape(x, *b, c // (r * r), h * r, w * r)


# ---- attention ----------------------------------------------------------------------------------
def scaled_dot_product_attention(
    query: Tensor,
    key: Tensor,
    value: Tensor,
    attn_mask=None,
    dropout_p: float = 0.0,
    is_causal: bool = False,
    scale: float | None = None,
    enable_gqa: bool = False,
) -> Tensor:
    """``softmax(query @ key^T * scale + mask) @ value`` over ``[..., L, E]`` queries and
    ``[..., S, E]`` keys (``scale`` 1/sqrt(E) by default). ``attn_mask``: bool (True: take
    part) or float (added), broadcast to ``[..., L, S]``; ``is_causal``: the lower triangle;
    ``enable_gqa``: key/value heads (dim -3) repeat to the query's.

    >>> import fusejit
    >>> import fusejit.nn.functional as F
    >>> q = k = v = fusejit.ones(1, 2, 3, 4)
    >>> F.scaled_dot_product_attention(q, k, v, is_causal=True).shape
    (1, 2, 3, 4)
    """
    name = "scaled_dot_product_attention"
    for t, what in ((query, "query"), (key, "key"), (value, "value")):
        _want_float(name, t, what)
        _same_device(name, query, t, what)
    if query.ndim < 2 or key.ndim < 2 or value.ndim < 2:
        raise ShapeError(f"{name}: query, key and value need at least 2 dims")
    if query.shape[-1] != key.shape[-1] or key.shape[-2] != value.shape[-2]:
        raise ShapeError(
            f"{name}: query {fmt_shape(query.shape)}, key {fmt_shape(key.shape)} and value "
            f"{fmt_shape(value.shape)} do not fit (query and key share the last dim, key and "
            "value the second last)"
        )
    if enable_gqa and query.ndim >= 3 and key.shape[-3] != query.shape[-3]:
        hq, hk = query.shape[-3], key.shape[-3]
        if hk == 0 or hq % hk or value.shape[-3] != hk:
            raise ShapeError(f"{name}: {hq} query heads cannot share {hk} key/value heads")
        key = repeat_interleave(key, hq // hk, dim=key.ndim - 3)
        value = repeat_interleave(value, hq // hk, dim=value.ndim - 3)
    if is_causal and attn_mask is not None:
        raise ValueError(f"{name}: give attn_mask or is_causal, not both")
    e = query.shape[-1]
    sc = (1.0 / math.sqrt(e) if e else 1.0) if scale is None else float(scale)
    length, s = query.shape[-2], key.shape[-2]
    if attn_mask is not None:
        _want_tensor(name, attn_mask, "attn_mask")
        _same_device(name, query, attn_mask, "attn_mask")
        try:
            whole = (*np.broadcast_shapes(query.shape[:-2], key.shape[:-2]), length, s)
        except ValueError:  # (query and key do not fit: matmul below says so)
            whole = None
        try:
            if whole is not None:
                np.broadcast_shapes(tuple(attn_mask.shape), whole)
        except ValueError:
            raise ShapeError(
                f"{name}: attn_mask of shape {fmt_shape(attn_mask.shape)} does not broadcast to "
                f"the scores' shape {fmt_shape(whole)}"
            ) from None
    if _attention_in_blocks(query, key, value, attn_mask, dropout_p):
        return _blocked_attention(query, key, value, attn_mask, is_causal, sc)
    scores = matmul(query, key.transpose(-2, -1)) * sc
    if is_causal:
        attn_mask = tril(full((length, s), True, dtype=dt.bool_, device=query.device))
    if attn_mask is not None:
        if attn_mask.dtype is dt.bool_:
            scores = where(attn_mask, scores, -math.inf)
        else:
            scores = scores + attn_mask
    w = _softmax(scores, -1)
    if dropout_p > 0.0:
        w = dropout(w, dropout_p, training=True)
    return matmul(w, value)


# Eager CPU attention over long keys runs by blocks of queries whose scores take at most this
# many elements a (batch, head): the whole L x S score matrix (float32, 4096 x 4096: 64 MB a
# head) is never made.
ATTENTION_BLOCK = 1 << 20


def _attention_in_blocks(query, key, value, attn_mask, dropout_p) -> bool:
    """Whether this call runs by blocks of queries: eager (a traced graph fuses the mask and
    softmax of the whole matrix, and its loop would depend on the sizes), on the CPU, for
    inference (with gradients each block's weights would be saved anyway), without dropout,
    and where the whole score matrix would pass ``ATTENTION_BLOCK``."""
    return (
        query.shape[-2] * key.shape[-2] > ATTENTION_BLOCK
        and dropout_p == 0.0
        and query.device.type == "cpu"
        and recording.tracing() is None
        and not (is_grad_enabled() and any(
            t is not None and t.requires_grad for t in (query, key, value, attn_mask)))
    )  # fmt: skip


def _blocked_attention(query, key, value, attn_mask, is_causal: bool, sc: float):
    """``scaled_dot_product_attention`` by blocks of queries (see ``ATTENTION_BLOCK``): each
    block's scores, mask, softmax and product with ``value``, the blocks' results joined. With
    ``is_causal`` a block reads only the keys up to its last query (half the work in all). The
    result equals the whole-matrix one up to the rounding of the sums (a causal row adds only
    its unmasked terms)."""
    length, s = query.shape[-2], key.shape[-2]
    rows = max(1, ATTENTION_BLOCK // max(s, 1))
    kt = key.transpose(-2, -1)
    outs = []
    for i0 in range(0, length, rows):
        i1 = min(length, i0 + rows)
        q = query[..., i0:i1, :]
        if is_causal:  # query i sees keys j <= i (top-left aligned, as the whole-matrix form)
            n = min(i1, s)
            scores = matmul(q, kt[..., :n]) * sc
            keep = tril(full((i1 - i0, n), True, dtype=dt.bool_, device=query.device), i0)
            scores = where(keep, scores, -math.inf)
            v = value[..., :n, :]
        else:
            scores = matmul(q, kt) * sc
            v = value
            if attn_mask is not None:
                m = attn_mask[..., i0:i1, :] if attn_mask.ndim >= 2 and attn_mask.shape[-2] == \
                    length else attn_mask  # fmt: skip
                if m.dtype is dt.bool_:
                    scores = where(m, scores, -math.inf)
                else:
                    scores = scores + m
        outs.append(matmul(_softmax(scores, -1), v))
    return outs[0] if len(outs) == 1 else cat(outs, query.ndim - 2)


# torch names that differ or alias
def gelu_(input: Tensor) -> Tensor:
    return input.copy_(gelu(input))


def threshold(input: Tensor, threshold: float, value: float, inplace: bool = False) -> Tensor:
    """``input`` where ``input > threshold``, else ``value``."""
    out = where(input > threshold, input, value)
    return input.copy_(out) if inplace else out


def hardshrink(input: Tensor, lambd: float = 0.5) -> Tensor:
    """``input`` where ``|input| > lambd``, else 0."""
    return where((input > lambd) | (input < -lambd), input, 0.0)


def softshrink(input: Tensor, lambd: float = 0.5) -> Tensor:
    """``input - lambd`` above ``lambd``, ``input + lambd`` below ``-lambd``, else 0."""
    return where(input > lambd, input - lambd, where(input < -lambd, input + lambd, 0.0))


__all__ += ["gelu_", "threshold", "hardshrink", "softshrink"]


# the losses' functional forms (``fusejit/nn/losses.py`` holds them with their modules)
from fusejit.nn.losses import (  # noqa: E402
    binary_cross_entropy,
    binary_cross_entropy_with_logits,
    cosine_embedding_loss,
    cross_entropy,
    huber_loss,
    kl_div,
    l1_loss,
    mse_loss,
    nll_loss,
    smooth_l1_loss,
)  # fmt: skip

__all__ += [
    "cross_entropy",
    "nll_loss",
    "mse_loss",
    "l1_loss",
    "smooth_l1_loss",
    "huber_loss",
    "binary_cross_entropy",
    "binary_cross_entropy_with_logits",
    "kl_div",
    "cosine_embedding_loss",
]
