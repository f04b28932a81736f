"""Writing into a tensor: the checks every in-place op makes, and ``fill_``, ``zero_``,
``copy_``."""

from __future__ import annotations

import math

import numpy as np

from fusejit.base import dtypes as dt
from fusejit.base.errors import DTypeError, ShapeError, fmt_shape
from fusejit.eager import autograd, recording
from fusejit.eager.creation import full_like
from fusejit.eager.grad_mode import MODE
from fusejit.eager.tensor import Tensor

_KIND_ORDER = {"b": 0, "i": 1, "u": 1, "f": 2, "c": 3}


def check_inplace_dtype(name: str, target: dt.DType, result: dt.DType) -> None:
    """A DTypeError unless a result of dtype ``result`` can be written into ``target``."""
    if _KIND_ORDER[result.kind] > _KIND_ORDER[target.kind]:
        raise DTypeError(
            f"{name}: result dtype {result.name} cannot be written into a tensor of dtype "
            f"{target.name} in place"
        )


def scalar_as(name: str, dtype: dt.DType, value):
    """Python number ``value`` converted to ``dtype``, as PyTorch converts the scalar of
    ``fill_``, ``x[i] = v`` and ``masked_fill``: a float into an int dtype truncates toward zero,
    anything into bool is ``value != 0``. A value the dtype cannot hold (an int out of its
    range, a NaN or infinity into an int dtype) is a DTypeError, as ``int8 + 300`` is."""
    if isinstance(value, Tensor):
        value = value.item()
    if dt.scalar_kind(value) is None:
        raise TypeError(f"{name}: expected a Python number, got {type(value).__name__}")
    if dtype is dt.bool_:
        return bool(value)
    if dtype.is_floating_point:
        return float(value)
    if isinstance(value, (float, np.floating)):
        if not math.isfinite(value):
            raise DTypeError(f"{name}: {value} cannot be converted to {dtype.name}")
        value = math.trunc(value)
    info = np.iinfo(dtype.np)
    if not info.min <= int(value) <= info.max:
        raise DTypeError(
            f"{name}: value {value} is out of range for dtype {dtype.name} "
            f"([{info.min}, {info.max}])"
        )
    return int(value)


def check_writeable(name: str, self: Tensor) -> None:
    """A ShapeError unless ``self``'s storage can be written (an expanded view cannot)."""
    flags = getattr(self._data, "flags", None)
    # cupy arrays have no writeable flag (an expanded cupy view writes through)
    if flags is not None and not getattr(flags, "writeable", True):
        raise ShapeError(
            f"{name}: cannot write into this tensor of shape {fmt_shape(self.shape)}: it is an "
            "expanded view whose elements share memory (or read-only memory); clone() it first"
        )


def write_inplace(name: str, self: Tensor, result: Tensor) -> Tensor:
    """``self`` with ``result`` written into it: in-place op ``name``. Under autograd ``self``
    takes ``result``'s history (``autograd.rebase``); the write bumps the storage's version."""
    if recording.TRACER is not None:
        _traced_write(name, self, result)
    check_inplace_dtype(name, self.dtype, result.dtype)
    check_writeable(name, self)
    if result.shape != self.shape:
        raise ShapeError(
            f"{name}: the result of shape {fmt_shape(result.shape)} does not fit the "
            f"tensor of shape {fmt_shape(self.shape)} it would be written into"
        )
    if getattr(self, "_ag", None) is not None or getattr(result, "_ag", None) is not None:
        autograd.check_inplace(name, self)
        if MODE.enabled:
            autograd.rebase(self, result)
    self._data[...] = result._data
    autograd.bump_version(self)
    return self


def _traced_write(name: str, self: Tensor, result: Tensor) -> None:
    """An in-place op while a trace records: a whole write of a buffer, parameter or state
    under ``no_grad`` (a training step's updates, gradients zeroed or clipped) becomes a
    result of the graph (``Tracer.write_state``); what else a tracer cannot take it refuses."""
    tracer = recording.TRACER
    write = getattr(tracer, "write_state", None)
    if write is None or recording.tracing() is None or result.shape != self.shape:
        tracer.unsupported(f"in-place op {name}")
        return
    if result.dtype is not self.dtype:
        from fusejit.eager.elementwise import cast  # (elementwise imports this module)

        result = cast(result, self.dtype)
    write(self, result, name)


def fill_(self, value):
    if recording.TRACER is not None:
        if recording.tracing() is None or isinstance(value, Tensor):
            recording.TRACER.unsupported("in-place op fill_")
        else:
            _traced_write("fill_", self, full_like(self, value))
    if isinstance(value, Tensor) and value.ndim:
        raise ShapeError(
            f"fill_: value must be a Python number or a 0-d tensor, got a tensor of shape "
            f"{fmt_shape(value.shape)}"
        )
    v = scalar_as("fill_", self.dtype, value)  # (converted as PyTorch does: 1.5 -> 1 in ints)
    check_writeable("fill_", self)
    if getattr(self, "_ag", None) is not None:
        autograd.check_inplace("fill_", self)
        if MODE.enabled:
            view = autograd._view_of(self)
            self._ag = None  # (a constant now: no gradient flows to what it was)
            autograd.rebase_view(self, view)
    self.device.backend.fill(self._data, v)
    autograd.bump_version(self)
    return self


def zero_(self):
    return fill_(self, 0)


def copy_(self, src):
    if not isinstance(src, Tensor):
        raise TypeError(f"copy_: expected a tensor, got {type(src).__name__}")
    if recording.TRACER is not None:
        # a buffer's update (BatchNorm's running statistics) becomes a result of the graph
        tracer = recording.tracing()
        if tracer is not None:
            tracer.write_state(self, src)
    if src.device is not self.device:
        src = src.to(self.device)
    check_writeable("copy_", self)
    if getattr(self, "_ag", None) is not None or getattr(src, "_ag", None) is not None:
        autograd.check_inplace("copy_", self)
        if MODE.enabled and autograd.needs_grad((src,)):
            # the copy's history: src broadcast to self's shape, in self's dtype
            F = autograd._F()
            r = src
            if tuple(r.shape) != tuple(self.shape):
                try:
                    r = F.broadcast_to(r, self.shape)
                except Exception:
                    raise ShapeError(
                        f"copy_: source of shape {fmt_shape(src.shape)} cannot be broadcast to "
                        f"{fmt_shape(self.shape)}"
                    ) from None
            if r.dtype is not self.dtype:
                r = F.cast(r, self.dtype)
            autograd.rebase(self, r)
        elif MODE.enabled:
            autograd.rebase(self, src)
    try:
        self._data[...] = src._data
    except ValueError:
        raise ShapeError(
            f"copy_: source of shape {fmt_shape(src.shape)} cannot be broadcast to "
            f"{fmt_shape(self.shape)}"
        ) from None
    autograd.bump_version(self)
    return self
