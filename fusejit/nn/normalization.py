"""Normalization layers: ``BatchNorm1d``, ``BatchNorm2d`` (running statistics as buffers,
``num_batches_tracked``, train / eval), ``GroupNorm``, ``RMSNorm`` (``LayerNorm`` is in
``modules.py``).

>>> import fusejit
>>> from fusejit import nn
>>> bn = nn.BatchNorm2d(3)
>>> list(bn.state_dict())
['weight', 'bias', 'running_mean', 'running_var', 'num_batches_tracked']
"""

from __future__ import annotations

from fusejit.base import dtypes as dt
from fusejit.base.errors import ShapeError, fmt_shape
from fusejit.eager.creation import ones, zeros
from fusejit.eager.grad_mode import no_grad
from fusejit.eager.tensor import Tensor, tensor
from fusejit.nn import functional as F
from fusejit.nn.modules import Module, Parameter

__all__ = ["BatchNorm1d", "BatchNorm2d", "GroupNorm", "RMSNorm"]


class _BatchNorm(Module):
    _dims: tuple = ()

    def __init__(
        self,
        num_features: int,
        eps: float = 1e-5,
        momentum: float | None = 0.1,
        affine: bool = True,
        track_running_stats: bool = True,
        device=None,
        dtype=None,
    ) -> None:
        super().__init__()
        self.num_features = int(num_features)
        self.eps = float(eps)
        self.momentum = momentum
        self.affine = affine
        self.track_running_stats = track_running_stats
        n = self.num_features
        if affine:
            self.weight = Parameter(ones(n, dtype=dtype, device=device))
            self.bias = Parameter(zeros(n, dtype=dtype, device=device))
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)
        if track_running_stats:
            self.register_buffer("running_mean", zeros(n, dtype=dtype, device=device))
            self.register_buffer("running_var", ones(n, dtype=dtype, device=device))
            self.register_buffer("num_batches_tracked", tensor(0, dtype=dt.int64, device=device))
        else:
            self.register_buffer("running_mean", None)
            self.register_buffer("running_var", None)
            self.register_buffer("num_batches_tracked", None)

    def reset_running_stats(self) -> None:
        if self.track_running_stats:
            with no_grad():
                self.running_mean.zero_()
                self.running_var.fill_(1)
                self.num_batches_tracked.zero_()

    def reset_parameters(self) -> None:
        self.reset_running_stats()
        if self.affine:
            with no_grad():
                self.weight.fill_(1)
                self.bias.zero_()

    def forward(self, input: Tensor) -> Tensor:  # noqa: A002
        name = type(self).__name__
        if not isinstance(input, Tensor) or input.ndim not in self._dims:
            got = fmt_shape(input.shape) if isinstance(input, Tensor) else type(input).__name__
            raise ShapeError(
                f"{name}: expected a {' or '.join(f'{d}-D' for d in self._dims)} input, got {got}"
            )
        if input.shape[1] != self.num_features:
            raise ShapeError(
                f"{name}: the input of shape {fmt_shape(input.shape)} has {input.shape[1]} "
                f"channels (dim 1), the layer {self.num_features}"
            )
        momentum = 0.0 if self.momentum is None else self.momentum
        use_batch = self.training or self.running_mean is None
        track = self.training and self.track_running_stats
        if track and self.momentum is None:
            # a cumulative moving average: the k-th batch has weight 1/k
            momentum = 1.0 / (int(self.num_batches_tracked.item()) + 1)
        out = F.batch_norm(
            input,
            self.running_mean if not self.training or self.track_running_stats else None,
            self.running_var if not self.training or self.track_running_stats else None,
            self.weight,
            self.bias,
            use_batch,
            momentum,
            self.eps,
        )
        if track:
            with no_grad():
                self.num_batches_tracked.copy_(self.num_batches_tracked + 1)
        return out

    def extra_repr(self) -> str:
        return (
            f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, "
            f"affine={self.affine}, track_running_stats={self.track_running_stats}"
        )


class BatchNorm1d(_BatchNorm):
    """Batch normalization of ``[N, C]`` or ``[N, C, L]`` inputs over N (and L)."""

    _dims = (2, 3)


class BatchNorm2d(_BatchNorm):
    """Batch normalization of ``[N, C, H, W]`` inputs over N, H and W: in training mode by the
    batch's statistics (and the running ones move by ``momentum``), in eval mode by the
    running ones.

    >>> import fusejit
    >>> bn = fusejit.nn.BatchNorm2d(2)
    >>> _ = bn(fusejit.arange(16.0).reshape(2, 2, 2, 2))
    >>> [round(v, 2) for v in bn.running_mean.tolist()], int(bn.num_batches_tracked)
    ([0.55, 0.95], 1)
    """

    _dims = (4,)


class GroupNorm(Module):
    """``F.group_norm`` with per-channel ``weight`` (ones) and ``bias`` (zeros).

    >>> import fusejit
    >>> fusejit.nn.GroupNorm(2, 4)(fusejit.randn(3, 4, 5)).shape
    (3, 4, 5)
    """

    def __init__(
        self,
        num_groups: int,
        num_channels: int,
        eps: float = 1e-5,
        affine: bool = True,
        device=None,
        dtype=None,
    ) -> None:
        super().__init__()
        if num_groups <= 0 or num_channels % num_groups:
            raise ValueError(
                f"GroupNorm: num_channels ({num_channels}) must be divisible by num_groups "
                f"({num_groups})"
            )
        self.num_groups, self.num_channels = int(num_groups), int(num_channels)
        self.eps, self.affine = float(eps), affine
        if affine:
            self.weight = Parameter(ones(num_channels, dtype=dtype, device=device))
            self.bias = Parameter(zeros(num_channels, dtype=dtype, device=device))
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)

    def forward(self, input: Tensor) -> Tensor:  # noqa: A002
        return F.group_norm(input, self.num_groups, self.weight, self.bias, self.eps)

    def extra_repr(self) -> str:
        return f"{self.num_groups}, {self.num_channels}, eps={self.eps}, affine={self.affine}"


class RMSNorm(Module):
    """``F.rms_norm`` over the trailing ``normalized_shape`` with a ``weight`` of ones.

    >>> import fusejit
    >>> [round(v, 4) for v in fusejit.nn.RMSNorm(2)(fusejit.tensor([3.0, 4.0])).tolist()]
    [0.8485, 1.1314]
    """

    def __init__(
        self,
        normalized_shape,
        eps: float | None = None,
        elementwise_affine: bool = True,
        device=None,
        dtype=None,
    ) -> None:
        super().__init__()
        if isinstance(normalized_shape, int):
            normalized_shape = (normalized_shape,)
        self.normalized_shape = tuple(int(s) for s in normalized_shape)
        self.eps = eps
        self.elementwise_affine = elementwise_affine
        if elementwise_affine:
            self.weight = Parameter(ones(self.normalized_shape, dtype=dtype, device=device))
        else:
            self.register_parameter("weight", None)

    def forward(self, input: Tensor) -> Tensor:  # noqa: A002
        return F.rms_norm(input, self.normalized_shape, self.weight, self.eps)

    def extra_repr(self) -> str:
        return (
            f"{self.normalized_shape}, eps={self.eps}, elementwise_affine={self.elementwise_affine}"
        )
