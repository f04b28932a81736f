"""Tensor factories: zeros, ones, full, arange, linspace, eye (the random ones are in
``random.py``)."""

from __future__ import annotations

import math
import numbers

import numpy as np

from fusejit.base import dtypes as dt
from fusejit.base.device import as_device
from fusejit.base.errors import DTypeError, ShapeError, fmt_shape
from fusejit.base.shapes import describe, int_arg, shape_arg
from fusejit.base.symbolic import is_symbolic
from fusejit.eager import recording
from fusejit.eager.tensor import Tensor


def _size(name: str, size: tuple) -> tuple:
    """``name(*size)`` or ``name(size)`` as a shape of non-negative ints."""
    return shape_arg(name, size, nonnegative=True)


def _make(arr: np.ndarray, dtype: dt.DType, device) -> Tensor:
    dev = as_device(device)
    return Tensor._wrap(dev.backend.from_numpy(arr), dtype, dev)


def _dtype(dtype, default=dt.default_float) -> dt.DType:
    return default if dtype is None else dt.as_dtype(dtype)


def _requires_grad(t: Tensor, requires_grad: bool) -> Tensor:
    """``t``, made to require grad when ``requires_grad`` (the factories' keyword)."""
    return t.requires_grad_() if requires_grad else t


def full(size, fill_value, *, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    """A tensor of ``size`` filled with ``fill_value`` (a number or a one-element tensor)."""
    shape = _size("full", (size,))
    if isinstance(fill_value, Tensor) and fill_value.numel() != 1:
        raise ShapeError(f"full: fill_value must be a number or a one-element tensor, got a "
                         f"tensor of shape {fmt_shape(fill_value.shape)}")  # fmt: skip
    if not isinstance(fill_value, (numbers.Real, np.bool_, Tensor)):
        raise DTypeError(f"full: fill_value must be a real number, got {describe(fill_value)}")
    d = _dtype(dtype, dt.result_type(fill_value))
    dev = as_device(device)
    with dev.backend.scope():  # (on cuda:N, allocate on that GPU)
        a = dev.backend.xp.empty(shape, dtype=d.np)
    dev.backend.fill(a, fill_value)  # (cupy's own full would store -0.0 as +0.0)
    return _requires_grad(Tensor._wrap(a, d, dev), requires_grad)


def zeros(*size, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    """A tensor of zeros: ``zeros(2, 3)`` or ``zeros((2, 3))``."""
    d = _dtype(dtype)
    dev = as_device(device)
    with dev.backend.scope():  # (on cuda:N, allocate on that GPU)
        return _requires_grad(
            Tensor._wrap(dev.backend.xp.zeros(_size("zeros", size), dtype=d.np), d, dev),
            requires_grad,
        )


def ones(*size, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    d = _dtype(dtype)
    dev = as_device(device)
    with dev.backend.scope():  # (on cuda:N, allocate on that GPU)
        return _requires_grad(
            Tensor._wrap(dev.backend.xp.ones(_size("ones", size), dtype=d.np), d, dev),
            requires_grad,
        )


def empty(*size, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    d = _dtype(dtype)
    dev = as_device(device)
    with dev.backend.scope():  # (on cuda:N, allocate on that GPU)
        return _requires_grad(
            Tensor._wrap(dev.backend.xp.empty(_size("empty", size), dtype=d.np), d, dev),
            requires_grad,
        )


def _like(x: Tensor, dtype, device):
    return (
        x.dtype if dtype is None else dt.as_dtype(dtype),
        x.device if device is None else as_device(device),
    )


def zeros_like(x: Tensor, *, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    d, dev = _like(x, dtype, device)
    return _requires_grad(zeros(x.shape, dtype=d, device=dev), requires_grad)


def ones_like(x: Tensor, *, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    d, dev = _like(x, dtype, device)
    return _requires_grad(ones(x.shape, dtype=d, device=dev), requires_grad)


def empty_like(x: Tensor, *, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    d, dev = _like(x, dtype, device)
    return _requires_grad(empty(x.shape, dtype=d, device=dev), requires_grad)


def full_like(
    x: Tensor, fill_value, *, dtype=None, device=None, requires_grad: bool = False
) -> Tensor:
    d, dev = _like(x, dtype, device)
    return _requires_grad(full(x.shape, fill_value, dtype=d, device=dev), requires_grad)


def _number(name: str, what: str, v):
    """``v`` as a Python int or float: a real number, or a one-element tensor."""
    if isinstance(v, Tensor) and v.numel() == 1:
        v = v.item()
    if not isinstance(v, numbers.Real):
        raise DTypeError(f"{name}: {what} must be a real number, got {describe(v)}")
    return v


def arange(
    start, end=None, step=1, *, dtype=None, device=None, requires_grad: bool = False
) -> Tensor:
    """Values from ``start`` to ``end`` (exclusive); int64 for int arguments, else float32."""
    if end is None:
        start, end = 0, start
    bounds = {
        w: _number("arange", w, v) for w, v in (("start", start), ("end", end), ("step", step))
    }
    for what, v in bounds.items():
        if not math.isfinite(v):
            raise ShapeError(f"arange: {what} must be finite, got {v}")
    start, end, step = bounds.values()
    if step == 0:
        raise ShapeError("arange: step must be nonzero")
    if (end - start) * step < 0:  # as PyTorch; numpy would give an empty tensor
        raise ShapeError(
            f"arange: step {step} goes the other way than from start {start} to end {end}"
        )
    ints = all(isinstance(v, numbers.Integral) for v in (start, end, step))
    default = dt.int64 if ints else dt.float32
    d = _dtype(dtype, default)
    arr = np.arange(start, end, step, dtype=np.float64 if d.is_floating_point else np.int64)
    out = _make(arr.astype(d.np), d, device)
    tracer = recording.TRACER
    if tracer is not None and is_symbolic((start, end, step)):
        # a size of a dynamic dim: the graph computes the range for each call's size
        attrs = {"start": start, "end": end, "step": step, "dtype": d, "device": out.device}
        tracer.record_factory("arange", out, attrs)
    return _requires_grad(out, requires_grad)


def linspace(
    start, end, steps: int, *, dtype=None, device=None, requires_grad: bool = False
) -> Tensor:
    """``steps`` values evenly spaced from ``start`` to ``end`` (both included)."""
    start, end = _number("linspace", "start", start), _number("linspace", "end", end)
    n = int_arg("linspace", steps, "steps")
    if n < 0:
        raise ShapeError(f"linspace: steps must be non-negative, got {n}")
    d = _dtype(dtype)
    return _requires_grad(_make(np.linspace(start, end, n).astype(d.np), d, device), requires_grad)


def eye(
    n: int, m: int | None = None, *, dtype=None, device=None, requires_grad: bool = False
) -> Tensor:
    """The ``n`` x ``m`` (default ``n`` x ``n``) identity matrix."""
    n = int_arg("eye", n, "n")
    m = n if m is None else int_arg("eye", m, "m")
    if n < 0 or m < 0:
        raise ShapeError(f"eye: n and m must be non-negative, got n={n}, m={m}")
    d = _dtype(dtype)
    return _requires_grad(_make(np.eye(n, m, dtype=d.np), d, device), requires_grad)
