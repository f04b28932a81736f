"""Activation layers: one module for each activation function of ``fusejit.nn.functional``
(``LeakyReLU``, ``ELU``, ``Hardtanh``, ``PReLU``, ``Softplus``, ``LogSoftmax``, ...).

>>> import fusejit
>>> from fusejit import nn
>>> nn.Softplus(beta=2.0)(fusejit.zeros(2)).tolist()  # doctest: +ELLIPSIS
[0.34657..., 0.34657...]
"""

from __future__ import annotations

from fusejit.eager.creation import full
from fusejit.eager.elementwise import where
from fusejit.eager.movement import reshape
from fusejit.eager.tensor import Tensor
from fusejit.nn import functional as F
from fusejit.nn.modules import Module, Parameter

__all__ = [
    "LeakyReLU",
    "ELU",
    "SELU",
    "CELU",
    "Hardswish",
    "Hardsigmoid",
    "Hardtanh",
    "ReLU6",
    "Mish",
    "LogSigmoid",
    "Softsign",
    "Tanhshrink",
    "GLU",
    "PReLU",
    "Softplus",
    "LogSoftmax",
    "Softmin",
    "Threshold",
    "Hardshrink",
    "Softshrink",
]


class _Act(Module):
    """An activation with no parameters: ``F.<_name>(x, **self._kwargs())``."""

    _name = ""
    _args: tuple = ()

    def forward(self, input: Tensor) -> Tensor:  # noqa: A002
        return getattr(F, self._name)(input, *(getattr(self, a) for a in self._args))

    def extra_repr(self) -> str:
        return ", ".join(f"{a}={getattr(self, a)}" for a in self._args)


class LeakyReLU(_Act):
    """``x`` if ``x >= 0`` else ``negative_slope * x``."""

    _name, _args = "leaky_relu", ("negative_slope",)

    def __init__(self, negative_slope: float = 0.01, inplace: bool = False) -> None:
        super().__init__()
        self.negative_slope, self.inplace = negative_slope, inplace


class ELU(_Act):
    """``x`` if ``x > 0`` else ``alpha * (exp(x) - 1)``."""

    _name, _args = "elu", ("alpha",)

    def __init__(self, alpha: float = 1.0, inplace: bool = False) -> None:
        super().__init__()
        self.alpha, self.inplace = alpha, inplace


class CELU(_Act):
    """``max(0, x) + min(0, alpha * (exp(x / alpha) - 1))``."""

    _name, _args = "celu", ("alpha",)

    def __init__(self, alpha: float = 1.0, inplace: bool = False) -> None:
        super().__init__()
        self.alpha, self.inplace = alpha, inplace


class Hardtanh(_Act):
    """``x`` clamped to ``[min_val, max_val]``."""

    _name, _args = "hardtanh", ("min_val", "max_val")

    def __init__(self, min_val: float = -1.0, max_val: float = 1.0, inplace: bool = False) -> None:
        super().__init__()
        self.min_val, self.max_val, self.inplace = min_val, max_val, inplace


class Softplus(_Act):
    """``log(1 + exp(beta * x)) / beta``, linear above ``threshold``."""

    _name, _args = "softplus", ("beta", "threshold")

    def __init__(self, beta: float = 1.0, threshold: float = 20.0) -> None:
        super().__init__()
        self.beta, self.threshold = beta, threshold


class Threshold(_Act):
    """``x`` where ``x > threshold``, else ``value``."""

    _name, _args = "threshold", ("threshold", "value")

    def __init__(self, threshold: float, value: float, inplace: bool = False) -> None:
        super().__init__()
        self.threshold, self.value, self.inplace = threshold, value, inplace


class Hardshrink(_Act):
    _name, _args = "hardshrink", ("lambd",)

    def __init__(self, lambd: float = 0.5) -> None:
        super().__init__()
        self.lambd = lambd


class Softshrink(Hardshrink):
    _name = "softshrink"


class GLU(_Act):
    """``a * sigmoid(b)`` for the two halves ``a, b`` of ``dim``."""

    _name, _args = "glu", ("dim",)

    def __init__(self, dim: int = -1) -> None:
        super().__init__()
        self.dim = dim


class LogSoftmax(_Act):
    """``log_softmax`` along ``dim``."""

    _name, _args = "log_softmax", ("dim",)

    def __init__(self, dim: int | None = None) -> None:
        super().__init__()
        self.dim = dim


class Softmin(LogSoftmax):
    """``softmax(-x)`` along ``dim``."""

    _name = "softmin"


def _simple(cls_name: str, fn: str, doc: str):
    def __init__(self, inplace: bool = False) -> None:
        _Act.__init__(self)
        self.inplace = inplace

    return type(
        cls_name,
        (_Act,),
        {"_name": fn, "__doc__": doc, "__init__": __init__, "__module__": __name__},
    )


SELU = _simple("SELU", "selu", "``scale * elu(x, alpha)`` with the self-normalizing constants.")
Hardswish = _simple("Hardswish", "hardswish", "``x * relu6(x + 3) / 6``.")
Hardsigmoid = _simple("Hardsigmoid", "hardsigmoid", "``relu6(x + 3) / 6``.")
ReLU6 = _simple("ReLU6", "relu6", "``min(max(x, 0), 6)``.")
Mish = _simple("Mish", "mish", "``x * tanh(softplus(x))``.")
LogSigmoid = _simple("LogSigmoid", "logsigmoid", "``log(sigmoid(x))``.")
Softsign = _simple("Softsign", "softsign", "``x / (1 + |x|)``.")
Tanhshrink = _simple("Tanhshrink", "tanhshrink", "``x - tanh(x)``.")


class PReLU(Module):
    """``x`` if ``x >= 0`` else ``weight * x``, ``weight`` learned: one value, or one per
    channel (dim 1), starting at ``init``.

    >>> import fusejit
    >>> fusejit.nn.PReLU()(fusejit.tensor([-2.0, 3.0])).tolist()
    [-0.5, 3.0]
    """

    def __init__(
        self, num_parameters: int = 1, init: float = 0.25, device=None, dtype=None
    ) -> None:
        super().__init__()
        self.num_parameters = int(num_parameters)
        self.init = init
        self.weight = Parameter(full((self.num_parameters,), init, dtype=dtype, device=device))

    def forward(self, input: Tensor) -> Tensor:  # noqa: A002
        prelu = getattr(F, "prelu", None)
        if prelu is not None:
            return prelu(input, self.weight)
        w = self.weight
        if input.ndim >= 2 and w.numel() > 1:
            w = reshape(w, w.shape[0], *([1] * (input.ndim - 2)))
        return where(input >= 0, input, input * w)

    def extra_repr(self) -> str:
        return f"num_parameters={self.num_parameters}"
