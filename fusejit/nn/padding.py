"""Padding layers (``F.pad`` as a module): ``ZeroPad1d/2d``, ``ConstantPad1d/2d``,
``ReflectionPad1d/2d``, ``ReplicationPad1d/2d``, ``CircularPad1d/2d``; and ``PixelShuffle``.

>>> import fusejit
>>> from fusejit import nn
>>> nn.ReflectionPad2d((1, 0, 2, 1))(fusejit.zeros(1, 3, 4, 4)).shape
(1, 3, 7, 5)
"""

from __future__ import annotations

from fusejit.eager.tensor import Tensor
from fusejit.nn import functional as F
from fusejit.nn.modules import Module

__all__ = [
    "ZeroPad1d",
    "ZeroPad2d",
    "ConstantPad1d",
    "ConstantPad2d",
    "ReflectionPad1d",
    "ReflectionPad2d",
    "ReplicationPad1d",
    "ReplicationPad2d",
    "CircularPad1d",
    "CircularPad2d",
    "PixelShuffle",
]


class _Pad(Module):
    _dims = 2
    _mode = "constant"

    def __init__(self, padding, value: float = 0.0) -> None:
        super().__init__()
        n = 2 * self._dims
        pads = (padding,) * n if isinstance(padding, int) else tuple(padding)
        if len(pads) != n:
            raise ValueError(f"{type(self).__name__}: padding must be an int or {n} ints")
        self.padding = pads
        self.value = value

    def forward(self, input: Tensor) -> Tensor:  # noqa: A002
        if self._mode == "constant":
            return F.pad(input, self.padding, "constant", self.value)
        return F.pad(input, self.padding, self._mode)

    def extra_repr(self) -> str:
        extra = f", value={self.value}" if self._mode == "constant" and self.value else ""
        return f"{self.padding}{extra}"


def _pad_class(name: str, dims: int, mode: str, doc: str, with_value: bool):
    if with_value:

        def __init__(self, padding, value: float) -> None:
            _Pad.__init__(self, padding, value)
    else:

        def __init__(self, padding) -> None:
            _Pad.__init__(self, padding)

    attrs = {
        "_dims": dims,
        "_mode": mode,
        "__doc__": doc,
        "__init__": __init__,
        "__module__": __name__,
    }
    return type(name, (_Pad,), attrs)


ZeroPad1d = _pad_class("ZeroPad1d", 1, "constant", "Pad the last dim with zeros.", False)
ZeroPad2d = _pad_class("ZeroPad2d", 2, "constant", "Pad the last 2 dims with zeros.", False)
ConstantPad1d = _pad_class("ConstantPad1d", 1, "constant", "Pad the last dim.", True)
ConstantPad2d = _pad_class(
    "ConstantPad2d", 2, "constant", "Pad the last 2 dims with a value.", True
)
ReflectionPad1d = _pad_class("ReflectionPad1d", 1, "reflect", "Reflect the last dim.", False)
ReflectionPad2d = _pad_class("ReflectionPad2d", 2, "reflect", "Reflect the last 2 dims.", False)
ReplicationPad1d = _pad_class("ReplicationPad1d", 1, "replicate", "Repeat the edges.", False)
ReplicationPad2d = _pad_class("ReplicationPad2d", 2, "replicate", "Repeat the edges.", False)
CircularPad1d = _pad_class("CircularPad1d", 1, "circular", "Wrap the last dim around.", False)
CircularPad2d = _pad_class("CircularPad2d", 2, "circular", "Wrap the last 2 dims around.", False)


class PixelShuffle(Module):
    """``[*, C * r * r, H, W]`` -> ``[*, C, H * r, W * r]`` (``F.pixel_shuffle``)."""

    def __init__(self, upscale_factor: int) -> None:
        super().__init__()
        self.upscale_factor = int(upscale_factor)

    def forward(self, input: Tensor) -> Tensor:  # noqa: A002
        return F.pixel_shuffle(input, self.upscale_factor)

    def extra_repr(self) -> str:
        return f"upscale_factor={self.upscale_factor}"
