"""Tensor factories: zeros, ones, full, arange, linspace, eye and the random ones.

Random tensors are drawn on the CPU from one seeded generator (``manual_seed``) and then moved,
so a seed gives the same values on every device.
"""

from __future__ import annotations

import numpy as np

from fusejit.base import dtypes as dt
from fusejit.base.device import as_device
from fusejit.base.errors import DTypeError
from fusejit.eager.tensor import Tensor

_rng = np.random.default_rng()


def manual_seed(seed: int) -> None:
    """Make the random factories repeatable.

    >>> import fusejit
    >>> fusejit.manual_seed(0); a = fusejit.rand(3)
    >>> fusejit.manual_seed(0); bool((a == fusejit.rand(3)).all())
    True
    """
    global _rng
    _rng = np.random.default_rng(int(seed))


def _size(size) -> tuple:
    if len(size) == 1 and isinstance(size[0], (tuple, list)):
        size = tuple(size[0])
    shape = tuple(int(s) for s in size)
    if any(s < 0 for s in shape):
        raise ValueError(f"negative dimension in size {list(shape)}")
    return shape


def _make(arr: np.ndarray, dtype: dt.DType, device) -> Tensor:
    dev = as_device(device)
    return Tensor._wrap(dev.backend.from_numpy(arr), dtype, dev)


def _dtype(dtype, default=dt.default_float) -> dt.DType:
    return default if dtype is None else dt.as_dtype(dtype)


def full(size, fill_value, *, dtype=None, device=None) -> Tensor:
    d = _dtype(dtype, dt.result_type(fill_value))
    dev = as_device(device)
    shape = _size((size,) if isinstance(size, int) else (tuple(size),))
    with dev.backend.scope():  # (on cuda:N, allocate on that GPU)
        a = dev.backend.xp.empty(shape, dtype=d.np)
    dev.backend.fill(a, fill_value)  # (cupy's own full would store -0.0 as +0.0)
    return Tensor._wrap(a, d, dev)


def zeros(*size, dtype=None, device=None) -> Tensor:
    """A tensor of zeros: ``zeros(2, 3)`` or ``zeros((2, 3))``."""
    d = _dtype(dtype)
    dev = as_device(device)
    with dev.backend.scope():  # (on cuda:N, allocate on that GPU)
        return Tensor._wrap(dev.backend.xp.zeros(_size(size), dtype=d.np), d, dev)


def ones(*size, dtype=None, device=None) -> Tensor:
    d = _dtype(dtype)
    dev = as_device(device)
    with dev.backend.scope():  # (on cuda:N, allocate on that GPU)
        return Tensor._wrap(dev.backend.xp.ones(_size(size), dtype=d.np), d, dev)


def empty(*size, dtype=None, device=None) -> Tensor:
    d = _dtype(dtype)
    dev = as_device(device)
    with dev.backend.scope():  # (on cuda:N, allocate on that GPU)
        return Tensor._wrap(dev.backend.xp.empty(_size(size), dtype=d.np), d, dev)


def _like(x: Tensor, dtype, device):
    return (
        x.dtype if dtype is None else dt.as_dtype(dtype),
        x.device if device is None else as_device(device),
    )


def zeros_like(x: Tensor, *, dtype=None, device=None) -> Tensor:
    d, dev = _like(x, dtype, device)
    return zeros(x.shape, dtype=d, device=dev)


def ones_like(x: Tensor, *, dtype=None, device=None) -> Tensor:
    d, dev = _like(x, dtype, device)
    return ones(x.shape, dtype=d, device=dev)


def empty_like(x: Tensor, *, dtype=None, device=None) -> Tensor:
    d, dev = _like(x, dtype, device)
    return empty(x.shape, dtype=d, device=dev)


def full_like(x: Tensor, fill_value, *, dtype=None, device=None) -> Tensor:
    d, dev = _like(x, dtype, device)
    return full(x.shape, fill_value, dtype=d, device=dev)


def arange(start, end=None, step=1, *, dtype=None, device=None) -> Tensor:
    """Values from ``start`` to ``end`` (exclusive); int64 for int arguments, else float32."""
    if end is None:
        start, end = 0, start
    if step == 0:
        raise ValueError("arange: step must be nonzero")
    ints = all(isinstance(v, (int, np.integer)) for v in (start, end, step))
    default = dt.int64 if ints else dt.float32
    d = _dtype(dtype, default)
    arr = np.arange(start, end, step, dtype=np.float64 if d.is_floating_point else np.int64)
    return _make(arr.astype(d.np), d, device)


def linspace(start, end, steps: int, *, dtype=None, device=None) -> Tensor:
    d = _dtype(dtype)
    return _make(np.linspace(start, end, int(steps)).astype(d.np), d, device)


def eye(n: int, m: int | None = None, *, dtype=None, device=None) -> Tensor:
    d = _dtype(dtype)
    return _make(np.eye(n, m, dtype=d.np), d, device)


def rand(*size, dtype=None, device=None) -> Tensor:
    """Uniform on [0, 1)."""
    d = _dtype(dtype)
    if not d.is_floating_point:
        raise DTypeError(f"rand: expected a floating-point dtype, got {d.name}")
    return _make(_rng.random(_size(size)).astype(d.np), d, device)


def randn(*size, dtype=None, device=None) -> Tensor:
    """Standard normal."""
    d = _dtype(dtype)
    if not d.is_floating_point:
        raise DTypeError(f"randn: expected a floating-point dtype, got {d.name}")
    return _make(_rng.standard_normal(_size(size)).astype(d.np), d, device)


def randint(low, high=None, size=(), *, dtype=None, device=None) -> Tensor:
    """Integers in [low, high); ``randint(high, size)`` draws from [0, high)."""
    if high is None or isinstance(high, (tuple, list)):  # randint(high) or randint(high, size)
        low, high, size = 0, low, (size if high is None else high)
    if low >= high:
        raise ValueError(f"randint: low ({low}) must be less than high ({high})")
    d = _dtype(dtype, dt.int64)
    shape = _size((size,) if isinstance(size, (int, np.integer)) else (tuple(size),))
    return _make(_rng.integers(low, high, size=shape).astype(d.np), d, device)
