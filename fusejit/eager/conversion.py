"""``Tensor.to``: moves between devices and dtype conversions (``cast``); the shorthands
(``cpu``, ``cuda``, ``float``, ...) are methods of the class that call it."""

from __future__ import annotations

import numpy as np

from fusejit.base import dtypes as dt
from fusejit.base.device import Device, as_device
from fusejit.eager.elementwise import cast
from fusejit.eager.tensor import Tensor


def to(self: Tensor, *args, device=None, dtype=None, copy: bool = False) -> Tensor:
    """Move to ``device`` and/or convert to ``dtype``: ``t.to("cuda")``,
    ``t.to(fusejit.float64)``, ``t.to("cpu", fusejit.int32)``."""
    for a in args:
        if isinstance(a, (dt.DType, type)) or (isinstance(a, str) and a in dt._BY_NAME):
            dtype = a
        elif isinstance(a, Tensor):
            device, dtype = a.device, a.dtype
        else:
            device = a
    t = self
    if device is not None:
        dev = as_device(device)
        if dev is not t._device:
            t = _move(t, dev)
    if dtype is not None:
        d = dt.as_dtype(dtype)
        if d is not t._dtype:
            t = cast(t, d)
    if copy and t is self:
        t = self.clone()
    return t


def _move(t: Tensor, dev: Device) -> Tensor:
    src = t._device.backend
    dst = dev.backend
    if t._device.type == "cpu":
        # (np.ascontiguousarray would make a 0-d array 1-d)
        data = dst.from_numpy(np.asarray(t._data, order="C"))
    elif dev.type == "cpu":
        data = src.to_numpy(t._data)
    else:
        data = dst.from_numpy(src.to_numpy(t._data))
    return Tensor._wrap(data, t._dtype, dev)
