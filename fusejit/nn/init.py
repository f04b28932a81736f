"""``fusejit.nn.init``: fill a parameter in place (under ``no_grad``) and return it, with
PyTorch's names, fans and gains. Values come from fusejit's seeded generators
(``fusejit.manual_seed``, or ``generator=``).

>>> import fusejit
>>> from fusejit.nn import init
>>> w = init.kaiming_uniform_(fusejit.empty(8, 4), nonlinearity="relu")
>>> bool((w.abs() <= (6 / 4) ** 0.5).all())
True
"""

from __future__ import annotations

import math

import numpy as np

from fusejit.base.errors import DTypeError, ShapeError, fmt_shape
from fusejit.eager.creation import eye
from fusejit.eager.grad_mode import no_grad
from fusejit.eager.linalg_functions import qr
from fusejit.eager.random import randn
from fusejit.eager.tensor import Tensor
from fusejit.eager.tensor import tensor as _make

__all__ = [
    "calculate_gain",
    "uniform_",
    "normal_",
    "trunc_normal_",
    "constant_",
    "ones_",
    "zeros_",
    "eye_",
    "dirac_",
    "xavier_uniform_",
    "xavier_normal_",
    "kaiming_uniform_",
    "kaiming_normal_",
    "orthogonal_",
]

_LINEAR = (
    "linear",
    "identity",
    "conv1d",
    "conv2d",
    "conv3d",
    "conv_transpose1d",
    "conv_transpose2d",
    "conv_transpose3d",
    "sigmoid",
)


def calculate_gain(nonlinearity: str, param: float | None = None) -> float:
    """The recommended gain for ``nonlinearity``: 1 (linear, conv, sigmoid), 5/3 (tanh),
    sqrt(2) (relu), sqrt(2 / (1 + slope**2)) (leaky_relu; slope ``param``, 0.01 by
    default), 3/4 (selu).

    >>> from fusejit.nn import init
    >>> init.calculate_gain("tanh")
    1.6666666666666667
    """
    if nonlinearity in _LINEAR:
        return 1.0
    if nonlinearity == "tanh":
        return 5.0 / 3
    if nonlinearity == "relu":
        return math.sqrt(2.0)
    if nonlinearity == "leaky_relu":
        if param is None:
            slope = 0.01
        elif isinstance(param, (int, float)) and not isinstance(param, bool):
            slope = float(param)
        else:
            raise ValueError(f"calculate_gain: negative_slope {param!r} is not a valid number")
        return math.sqrt(2.0 / (1 + slope**2))
    if nonlinearity == "selu":
        return 3.0 / 4
    raise ValueError(f"calculate_gain: unsupported nonlinearity {nonlinearity!r}")


def _float(name: str, t) -> None:
    if not isinstance(t, Tensor):
        raise TypeError(f"{name}: expected a Tensor, got {type(t).__name__}")
    if not t.dtype.is_floating_point:
        raise DTypeError(f"{name}: expected a floating-point tensor, got {t.dtype.name}")


def _fans(name: str, t: Tensor) -> tuple[int, int]:
    if t.ndim < 2:
        raise ShapeError(
            f"{name}: fan in and fan out cannot be computed for a tensor of fewer than 2 dims "
            f"(shape {fmt_shape(t.shape)})"
        )
    receptive = 1
    for s in t.shape[2:]:
        receptive *= s
    return t.shape[1] * receptive, t.shape[0] * receptive


def _fan(name: str, t: Tensor, mode: str) -> int:
    if mode not in ("fan_in", "fan_out"):
        raise ValueError(f"{name}: mode must be 'fan_in' or 'fan_out', got {mode!r}")
    fan_in, fan_out = _fans(name, t)
    return fan_in if mode == "fan_in" else fan_out


def uniform_(tensor: Tensor, a: float = 0.0, b: float = 1.0, generator=None) -> Tensor:
    """Fill with values uniform on ``[a, b)``."""
    _float("uniform_", tensor)
    with no_grad():
        return tensor.uniform_(a, b, generator=generator)


def normal_(tensor: Tensor, mean: float = 0.0, std: float = 1.0, generator=None) -> Tensor:
    """Fill with values from ``N(mean, std**2)``."""
    _float("normal_", tensor)
    with no_grad():
        return tensor.normal_(mean, std, generator=generator)


def trunc_normal_(
    tensor: Tensor,
    mean: float = 0.0,
    std: float = 1.0,
    a: float = -2.0,
    b: float = 2.0,
    generator=None,
) -> Tensor:
    """Fill with values from ``N(mean, std**2)`` restricted to ``[a, b]`` (values outside
    are drawn again).

    >>> import fusejit
    >>> from fusejit.nn import init
    >>> t = init.trunc_normal_(fusejit.empty(1000), std=1.0, a=-0.5, b=0.5)
    >>> bool((t.abs() <= 0.5).all())
    True
    """
    _float("trunc_normal_", tensor)
    if not a < b:
        raise ValueError(f"trunc_normal_: a ({a}) must be less than b ({b})")
    if std <= 0:
        raise ValueError(f"trunc_normal_: std must be positive, got {std}")
    lo, hi = (a - mean) / std, (b - mean) / std
    with no_grad():
        z = randn(*tensor.shape, generator=generator, device=tensor.device, dtype="float64")
        for _ in range(1000):
            bad = (z < lo) | (z > hi)
            if not bool(bad.any()):
                break
            fresh = randn(*tensor.shape, generator=generator, device=tensor.device, dtype="float64")
            z = z.masked_fill(bad, 0.0) + fresh.masked_fill(~bad, 0.0)
        else:  # pragma: no cover - an interval far in a tail
            z = z.clamp(lo, hi)
        return tensor.copy_((z * std + mean).to(dtype=tensor.dtype))


def constant_(tensor: Tensor, val: float) -> Tensor:
    """Fill with ``val``."""
    if not isinstance(tensor, Tensor):
        raise TypeError(f"constant_: expected a Tensor, got {type(tensor).__name__}")
    with no_grad():
        return tensor.fill_(val)


def ones_(tensor: Tensor) -> Tensor:
    """Fill with ones."""
    return constant_(tensor, 1)


def zeros_(tensor: Tensor) -> Tensor:
    """Fill with zeros."""
    return constant_(tensor, 0)


def eye_(tensor: Tensor) -> Tensor:
    """The identity matrix (a 2-D tensor)."""
    if not isinstance(tensor, Tensor) or tensor.ndim != 2:
        raise ShapeError("eye_: only 2-D tensors are supported")
    with no_grad():
        n, m = tensor.shape
        return tensor.copy_(eye(n, m, dtype=tensor.dtype, device=tensor.device))


def dirac_(tensor: Tensor, groups: int = 1) -> Tensor:
    """The Dirac delta for a 3-, 4- or 5-D convolution weight: each output channel passes its
    input channel through (``groups`` blocks)."""
    if not isinstance(tensor, Tensor) or tensor.ndim not in (3, 4, 5):
        raise ShapeError("dirac_: only 3-, 4- and 5-D tensors are supported")
    if tensor.shape[0] % groups:
        raise ValueError(f"dirac_: dim 0 ({tensor.shape[0]}) must be divisible by groups")
    og = tensor.shape[0] // groups
    arr = np.zeros(tensor.shape)
    centre = tuple(s // 2 for s in tensor.shape[2:])
    for g in range(groups):
        for d in range(min(og, tensor.shape[1])):
            arr[(g * og + d, d, *centre)] = 1.0
    with no_grad():
        return tensor.copy_(_make(arr, dtype=tensor.dtype, device=tensor.device))


def xavier_uniform_(tensor: Tensor, gain: float = 1.0, generator=None) -> Tensor:
    """Uniform on ``[-x, x]``, ``x = gain * sqrt(6 / (fan_in + fan_out))`` (Glorot)."""
    _float("xavier_uniform_", tensor)
    fan_in, fan_out = _fans("xavier_uniform_", tensor)
    bound = gain * math.sqrt(6.0 / (fan_in + fan_out)) if fan_in + fan_out else 0.0
    return uniform_(tensor, -bound, bound, generator)


def xavier_normal_(tensor: Tensor, gain: float = 1.0, generator=None) -> Tensor:
    """``N(0, std**2)``, ``std = gain * sqrt(2 / (fan_in + fan_out))`` (Glorot)."""
    _float("xavier_normal_", tensor)
    fan_in, fan_out = _fans("xavier_normal_", tensor)
    std = gain * math.sqrt(2.0 / (fan_in + fan_out)) if fan_in + fan_out else 0.0
    return normal_(tensor, 0.0, std, generator)


def kaiming_uniform_(
    tensor: Tensor,
    a: float = 0,
    mode: str = "fan_in",
    nonlinearity: str = "leaky_relu",
    generator=None,
) -> Tensor:
    """Uniform on ``[-x, x]``, ``x = gain * sqrt(3 / fan)`` (He); ``a`` is leaky_relu's
    slope. ``a=sqrt(5)`` is what ``Linear`` and ``Conv2d`` start from."""
    _float("kaiming_uniform_", tensor)
    fan = _fan("kaiming_uniform_", tensor, mode)
    if fan == 0:
        return tensor
    bound = calculate_gain(nonlinearity, a) * math.sqrt(3.0 / fan)
    return uniform_(tensor, -bound, bound, generator)


def kaiming_normal_(
    tensor: Tensor,
    a: float = 0,
    mode: str = "fan_in",
    nonlinearity: str = "leaky_relu",
    generator=None,
) -> Tensor:
    """``N(0, std**2)``, ``std = gain / sqrt(fan)`` (He)."""
    _float("kaiming_normal_", tensor)
    fan = _fan("kaiming_normal_", tensor, mode)
    if fan == 0:
        return tensor
    return normal_(tensor, 0.0, calculate_gain(nonlinearity, a) / math.sqrt(fan), generator)


def orthogonal_(tensor: Tensor, gain: float = 1.0, generator=None) -> Tensor:
    """A (semi-)orthogonal matrix (dims after the first flattened), times ``gain``: the Q of
    the QR factorization of a normal draw, its signs fixed by R's diagonal.

    >>> import fusejit
    >>> from fusejit.nn import init
    >>> q = init.orthogonal_(fusejit.empty(3, 5, dtype=fusejit.float64))
    >>> bool(((q @ q.T - fusejit.eye(3, dtype=fusejit.float64)).abs() < 1e-12).all())
    True
    """
    _float("orthogonal_", tensor)
    if tensor.ndim < 2:
        raise ShapeError(
            f"orthogonal_: only tensors with 2 or more dims are supported, got shape "
            f"{fmt_shape(tensor.shape)}"
        )
    if tensor.numel() == 0:
        return tensor
    rows = tensor.shape[0]
    cols = tensor.numel() // rows
    with no_grad():
        flat = randn(rows, cols, generator=generator, device=tensor.device, dtype="float64")
        if rows < cols:
            flat = flat.T
        q, r = qr(flat)
        q = q * r.diagonal().sign()
        if rows < cols:
            q = q.T
        return tensor.copy_((q * gain).reshape(*tensor.shape).to(dtype=tensor.dtype))
