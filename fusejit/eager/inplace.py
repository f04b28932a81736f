"""Writing into a tensor: the checks every in-place op makes, and ``fill_``, ``zero_``,
``copy_``."""

from __future__ import annotations

from fusejit.base import dtypes as dt
from fusejit.base.errors import DTypeError, ShapeError, fmt_shape
from fusejit.eager import autograd, recording
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
        recording.TRACER.unsupported(f"in-place op {name}")
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


def fill_(self, value):
    if recording.TRACER is not None:
        recording.TRACER.unsupported("in-place op fill_")
    check_inplace_dtype("fill_", self.dtype, dt.result_type(value))
    check_writeable("fill_", self)
    if getattr(self, "_ag", None) is not None:
        autograd.check_inplace("fill_", self)
        if MODE.enabled:
            self._ag = None  # (a constant now: no gradient flows to what it was)
    self.device.backend.fill(self._data, value.item() if isinstance(value, Tensor) else value)
    autograd.bump_version(self)
    return self


def zero_(self):
    return fill_(self, 0)


def copy_(self, src):
    if not isinstance(src, Tensor):
        raise TypeError(f"copy_: expected a tensor, got {type(src).__name__}")
    if recording.TRACER is not None:
        recording.TRACER.unsupported("in-place op copy_")
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
