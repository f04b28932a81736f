"""Activations with parameters, as ``torch.nn.functional``'s: ``leaky_relu``, ``elu``, ``celu``,
``hardtanh``, ``glu``, ``prelu``. Each is a composition of table ops (``where``, ``expm1``,
``sigmoid``, ...), so it traces and fuses as they do; the parameter-free activations (``selu``,
``relu6``, ``mish``, ``hardswish``, ...) are entries of the op table.

``inplace=True`` writes the result into the input, as PyTorch's (not while tracing).
"""

from __future__ import annotations

import math

import numpy as np

from fusejit.base import dtypes as dt
from fusejit.base.errors import DimError, DTypeError, ShapeError, fmt_shape
from fusejit.base.shapes import norm_dim
from fusejit.eager import dispatch
from fusejit.eager.elementwise import where
from fusejit.eager.indexing import narrow
from fusejit.eager.inplace import write_inplace
from fusejit.eager.movement import reshape
from fusejit.eager.tensor import Tensor
from fusejit.ops.registry import OPS

__all__ = [
    "leaky_relu", "elu", "celu", "hardtanh", "glu", "prelu",
    "leaky_relu_", "elu_", "celu_", "hardtanh_",
]  # fmt: skip


def _float_input(name: str, x) -> None:
    if not isinstance(x, Tensor):
        raise TypeError(f"{name}: expected a tensor, got {type(x).__name__}")
    if not x.dtype.is_floating_point:
        raise DTypeError(f"{name}: expected a floating-point tensor, got {x.dtype.name}")


def _number(name: str, arg: str, v) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)):
        raise DTypeError(f"{name}: {arg} must be a number, got {type(v).__name__}")
    return float(v)


def _result(name: str, x: Tensor, out: Tensor, inplace: bool) -> Tensor:
    return write_inplace(name + "_", x, out) if inplace else out


def leaky_relu(x, negative_slope: float = 0.01, inplace: bool = False):
    """``x`` where ``x > 0``, else ``negative_slope * x`` (as ``torch.nn.functional.leaky_relu``;
    floating-point tensors).

    >>> import fusejit
    >>> fusejit.leaky_relu(fusejit.tensor([-2.0, 3.0]), 0.5).tolist()
    [-1.0, 3.0]
    """
    _float_input("leaky_relu", x)
    slope = _number("leaky_relu", "negative_slope", negative_slope)
    return _result("leaky_relu", x, where(x > 0, x, x * slope), inplace)


def elu(x, alpha: float = 1.0, inplace: bool = False):
    """``x`` where ``x > 0``, else ``alpha * (exp(x) - 1)`` (as ``torch.nn.functional.elu``).

    >>> import fusejit
    >>> round(fusejit.elu(fusejit.tensor([-1.0, 2.0])).tolist()[0], 4)
    -0.6321
    """
    _float_input("elu", x)
    a = _number("elu", "alpha", alpha)
    return _result("elu", x, where(x > 0, x, dispatch.elementwise(OPS["expm1"], (x,)) * a), inplace)


def celu(x, alpha: float = 1.0, inplace: bool = False):
    """``x`` where ``x > 0``, else ``alpha * (exp(x / alpha) - 1)`` (as
    ``torch.nn.functional.celu``; ``alpha`` must not be 0).

    >>> import fusejit
    >>> round(fusejit.celu(fusejit.tensor([-1.0, 2.0]), 2.0).tolist()[0], 4)
    -0.7869
    """
    _float_input("celu", x)
    a = _number("celu", "alpha", alpha)
    if a == 0:
        raise ValueError("celu: alpha cannot be 0")
    neg = dispatch.elementwise(OPS["expm1"], (x / a,)) * a
    return _result("celu", x, where(x > 0, x, neg), inplace)


def hardtanh(x, min_val: float = -1.0, max_val: float = 1.0, inplace: bool = False):
    """``x`` limited to ``[min_val, max_val]`` (as ``torch.nn.functional.hardtanh``): NaN and
    -0.0 pass through. Integer tensors keep their dtype, with the bounds truncated toward zero
    as PyTorch's float clamp cast back gives them; bool is refused, as are negative bounds for
    uint8.

    >>> import fusejit
    >>> fusejit.hardtanh(fusejit.tensor([-3.0, 0.5, 2.0])).tolist()
    [-1.0, 0.5, 1.0]
    """
    if not isinstance(x, Tensor):
        raise TypeError(f"hardtanh: expected a tensor, got {type(x).__name__}")
    lo = _number("hardtanh", "min_val", min_val)
    hi = _number("hardtanh", "max_val", max_val)
    if lo > hi:
        raise ValueError(f"hardtanh: min_val cannot be greater than max_val, got {lo} > {hi}")
    if x.dtype is dt.bool_:
        raise DTypeError("hardtanh: bool tensors are not supported")
    if x.dtype.is_floating_point:
        out = where(x < lo, lo, where(x > hi, hi, x))
        return _result("hardtanh", x, out, inplace)
    if x.dtype.kind == "u" and (lo < 0 or hi < 0):
        raise DTypeError(
            f"hardtanh: cannot limit a {x.dtype.name} tensor with negative bounds "
            f"({min_val}, {max_val})"
        )
    # for an integer x: x < lo exactly when x < ceil(lo), and the value then is trunc(lo)
    info = np.iinfo(x.dtype.np)
    fit = lambda v: int(min(max(v, info.min), info.max))  # noqa: E731
    below, above = fit(math.ceil(lo)), fit(math.floor(hi))
    out = where(x < below, fit(math.trunc(lo)), where(x > above, fit(math.trunc(hi)), x))
    return _result("hardtanh", x, out, inplace)


def glu(x, dim: int = -1):
    """The gated linear unit: ``a * sigmoid(b)`` for the halves ``a``, ``b`` of ``x`` along
    ``dim`` (as ``torch.nn.functional.glu``; that dim's size must be even).

    >>> import fusejit
    >>> fusejit.glu(fusejit.tensor([[2.0, 0.0]])).tolist()
    [[1.0]]
    """
    _float_input("glu", x)
    if x.ndim == 0:
        raise DimError("glu: does not support 0-d tensors (the halved dim must be even)")
    d = norm_dim("glu", dim, x.ndim)
    n = x.shape[d]
    if n % 2:
        raise ShapeError(
            f"glu: the halved dim must be even, but dim {dim} has size {n} "
            f"(shape {fmt_shape(x.shape)})"
        )
    a, b = narrow(x, d, 0, n // 2), narrow(x, d, n // 2, n // 2)
    return a * dispatch.elementwise(OPS["sigmoid"], (b,))


def prelu(x, weight):
    """``x`` where ``x > 0``, else ``weight * x``, with ``weight`` (one value, or one per
    channel: dim 1 of ``x``) broadcast along dim 1 (as ``torch.nn.functional.prelu``; x and
    weight of one floating-point dtype).

    >>> import fusejit
    >>> w = fusejit.tensor([0.5, 0.0])
    >>> fusejit.prelu(fusejit.tensor([[-2.0, -2.0]]), w).tolist()
    [[-1.0, -0.0]]
    """
    _float_input("prelu", x)
    if not isinstance(weight, Tensor):
        raise TypeError(f"prelu: weight must be a tensor, got {type(weight).__name__}")
    if weight.dtype is not x.dtype:
        raise DTypeError(
            f"prelu: x and weight must have one dtype, got {x.dtype.name} and {weight.dtype.name}"
        )
    if weight.ndim > 1:
        raise ShapeError(
            f"prelu: weight must be a 0-d or 1-D tensor, got shape {fmt_shape(weight.shape)}"
        )
    if weight.numel() != 1:
        if x.ndim == 0:
            raise ShapeError(
                f"prelu: a 0-d input takes one weight, got {weight.numel()} (shape "
                f"{fmt_shape(weight.shape)})"
            )
        channels = x.shape[1] if x.ndim > 1 else 1
        if weight.numel() != channels:
            raise ShapeError(
                f"prelu: {weight.numel()} weights for {channels} channels (dim 1 of the input "
                f"of shape {fmt_shape(x.shape)})"
            )
    if x.ndim != weight.ndim:
        shape = [1] * x.ndim
        if x.ndim > 1:
            shape[1] = weight.numel()
        weight = reshape(weight, tuple(shape))
    return where(x > 0, x, weight * x)


def leaky_relu_(x, negative_slope: float = 0.01):
    """``leaky_relu`` written into ``x``."""
    return leaky_relu(x, negative_slope, inplace=True)


def elu_(x, alpha: float = 1.0):
    """``elu`` written into ``x``."""
    return elu(x, alpha, inplace=True)


def celu_(x, alpha: float = 1.0):
    """``celu`` written into ``x``."""
    return celu(x, alpha, inplace=True)


def hardtanh_(x, min_val: float = -1.0, max_val: float = 1.0):
    """``hardtanh`` written into ``x``."""
    return hardtanh(x, min_val, max_val, inplace=True)
