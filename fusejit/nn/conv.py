"""Convolution layers: ``Conv1d``, ``Conv2d``, ``ConvTranspose2d`` (weights and biases
initialized as PyTorch's: kaiming-uniform with ``a=sqrt(5)``, i.e. uniform on
``+-1/sqrt(fan_in)``).

>>> import fusejit
>>> from fusejit import nn
>>> conv = nn.Conv2d(3, 8, 3, padding=1)
>>> conv(fusejit.zeros(2, 3, 8, 8)).shape, list(conv.state_dict())
((2, 8, 8, 8), ['weight', 'bias'])
"""

from __future__ import annotations

import math

from fusejit.base import dtypes as dt
from fusejit.base.device import as_device
from fusejit.eager.creation import empty
from fusejit.eager.tensor import Tensor
from fusejit.nn import functional as F
from fusejit.nn import init
from fusejit.nn.modules import Module, Parameter

__all__ = ["Conv1d", "Conv2d", "ConvTranspose2d"]

_PADDING_MODES = ("zeros", "reflect", "replicate", "circular")


def _ntuple(v, n: int) -> tuple:
    return tuple(v) if isinstance(v, (list, tuple)) else (v,) * n


class _ConvNd(Module):
    _spatial = 2
    _transposed = False

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size,
        stride=1,
        padding=0,
        dilation=1,
        groups: int = 1,
        bias: bool = True,
        padding_mode: str = "zeros",
        output_padding=0,
        device=None,
        dtype=None,
    ) -> None:
        super().__init__()
        name = type(self).__name__
        n = self._spatial
        if groups <= 0:
            raise ValueError(f"{name}: groups must be a positive integer")
        if in_channels % groups:
            raise ValueError(f"{name}: in_channels ({in_channels}) must be divisible by groups")
        if out_channels % groups:
            raise ValueError(f"{name}: out_channels ({out_channels}) must be divisible by groups")
        if padding_mode not in _PADDING_MODES:
            raise ValueError(f"{name}: padding_mode must be one of {_PADDING_MODES}")
        if isinstance(padding, str):
            if padding not in ("same", "valid"):
                raise ValueError(f"{name}: padding must be 'same', 'valid' or ints")
            if padding == "same" and any(s != 1 for s in _ntuple(stride, n)):
                raise ValueError(
                    f"{name}: padding='same' is not supported for strided convolutions"
                )
        elif self._transposed and padding_mode != "zeros":
            raise ValueError(f"{name}: only padding_mode='zeros' is supported")
        self.in_channels, self.out_channels = int(in_channels), int(out_channels)
        self.kernel_size = _ntuple(kernel_size, n)
        self.stride = _ntuple(stride, n)
        self.padding = padding if isinstance(padding, str) else _ntuple(padding, n)
        self.dilation = _ntuple(dilation, n)
        self.output_padding = _ntuple(output_padding, n)
        self.groups = int(groups)
        self.padding_mode = padding_mode
        if self._transposed:
            shape = (in_channels, out_channels // groups, *self.kernel_size)
        else:
            shape = (out_channels, in_channels // groups, *self.kernel_size)
        d = dt.as_dtype(dtype) if dtype is not None else dt.default_float
        dev = as_device(device) if device is not None else None
        self.weight = Parameter(empty(shape, dtype=d, device=dev))
        if bias:
            self.bias = Parameter(empty((out_channels,), dtype=d, device=dev))
        else:
            self.register_parameter("bias", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        if self.bias is not None:
            fan_in = self.weight.shape[1]
            for k in self.kernel_size:
                fan_in *= k
            bound = 1 / math.sqrt(fan_in) if fan_in > 0 else 0.0
            init.uniform_(self.bias, -bound, bound)

    def _pad_input(self, x: Tensor):
        """(input, padding for the functional): the input padded here for a padding_mode
        other than zeros."""
        if self.padding_mode == "zeros" or isinstance(self.padding, str):
            return x, self.padding
        amounts = []
        for p in reversed(self.padding):
            amounts += [p, p]
        return F.pad(x, tuple(amounts), mode=self.padding_mode), 0

    def extra_repr(self) -> str:
        s = (
            f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
            f"stride={self.stride}"
        )
        n = self._spatial
        if self.padding != (0,) * n:
            s += f", padding={self.padding!r}"
        if self.dilation != (1,) * n:
            s += f", dilation={self.dilation}"
        if self._transposed and self.output_padding != (0,) * n:
            s += f", output_padding={self.output_padding}"
        if self.groups != 1:
            s += f", groups={self.groups}"
        if self.bias is None:
            s += ", bias=False"
        if self.padding_mode != "zeros":
            s += f", padding_mode={self.padding_mode}"
        return s


class Conv2d(_ConvNd):
    """2-D convolution over ``[N, C, H, W]`` (or ``[C, H, W]``): ``F.conv2d`` with a learned
    ``weight [out, in / groups, kh, kw]`` and ``bias [out]``."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size,
        stride=1,
        padding=0,
        dilation=1,
        groups: int = 1,
        bias: bool = True,
        padding_mode: str = "zeros",
        device=None,
        dtype=None,
    ) -> None:
        super().__init__(
            in_channels,
            out_channels,
            kernel_size,
            stride,
            padding,
            dilation,
            groups,
            bias,
            padding_mode,
            device=device,
            dtype=dtype,
        )

    def forward(self, input: Tensor) -> Tensor:  # noqa: A002
        x, p = self._pad_input(input)
        return F.conv2d(x, self.weight, self.bias, self.stride, p, self.dilation, self.groups)


class Conv1d(_ConvNd):
    """1-D convolution over ``[N, C, L]`` (or ``[C, L]``), ``weight [out, in / groups, k]``.

    >>> import fusejit
    >>> fusejit.nn.Conv1d(2, 4, 3)(fusejit.zeros(5, 2, 10)).shape
    (5, 4, 8)
    """

    _spatial = 1

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size,
        stride=1,
        padding=0,
        dilation=1,
        groups: int = 1,
        bias: bool = True,
        padding_mode: str = "zeros",
        device=None,
        dtype=None,
    ) -> None:
        super().__init__(
            in_channels,
            out_channels,
            kernel_size,
            stride,
            padding,
            dilation,
            groups,
            bias,
            padding_mode,
            device=device,
            dtype=dtype,
        )

    def forward(self, input: Tensor) -> Tensor:  # noqa: A002
        x, p = self._pad_input(input)
        return F.conv1d(x, self.weight, self.bias, self.stride, p, self.dilation, self.groups)


class ConvTranspose2d(_ConvNd):
    """The transpose of ``Conv2d`` (upsampling): ``weight [in, out / groups, kh, kw]``.

    >>> import fusejit
    >>> up = fusejit.nn.ConvTranspose2d(4, 2, 3, stride=2, padding=1, output_padding=1)
    >>> up(fusejit.zeros(1, 4, 5, 5)).shape
    (1, 2, 10, 10)
    """

    _transposed = True

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size,
        stride=1,
        padding=0,
        output_padding=0,
        groups: int = 1,
        bias: bool = True,
        dilation=1,
        padding_mode: str = "zeros",
        device=None,
        dtype=None,
    ) -> None:
        super().__init__(
            in_channels,
            out_channels,
            kernel_size,
            stride,
            padding,
            dilation,
            groups,
            bias,
            padding_mode,
            output_padding,
            device,
            dtype,
        )

    def forward(self, input: Tensor, output_size=None) -> Tensor:  # noqa: A002
        op = self.output_padding
        if output_size is not None:
            want = tuple(output_size)[-2:]
            op = []
            for i, hw in enumerate(input.shape[-2:]):
                least = (
                    (hw - 1) * self.stride[i]
                    - 2 * self.padding[i]
                    + self.dilation[i] * (self.kernel_size[i] - 1)
                    + 1
                )
                extra = want[i] - least
                if not 0 <= extra < max(self.stride[i], self.dilation[i]):
                    raise ValueError(
                        f"ConvTranspose2d: output_size {tuple(want)} is not reachable from an "
                        f"input of spatial size {tuple(input.shape[-2:])}"
                    )
                op.append(extra)
        return F.conv_transpose2d(
            input,
            self.weight,
            self.bias,
            self.stride,
            self.padding,
            tuple(op),
            self.groups,
            self.dilation,
        )
