"""What the standard asks of the array object that the torch-like Tensor lacks, bound onto
``fusejit.Tensor`` when the namespace is imported (``fusejit`` imports it): the arrays of the
namespace are fusejit tensors, with no wrapper.

``__array_namespace__``, ``to_device``, ``__complex__``, ``__pos__`` and the shift operators
(``<<``, ``>>``, their reflected and in-place forms; PyTorch has them too), which promote as
the Tensor's other operators do (PyTorch's rules). ``Tensor.size`` stays PyTorch's method: the
number of elements is ``math.prod(x.shape)`` (``array_api_compat.size(x)``).
"""

from __future__ import annotations

import sys
import types

from fusejit.array_api import _elementwise as _ew
from fusejit.base.dtypes import result_type
from fusejit.eager.elementwise import cast
from fusejit.eager.tensor import Tensor

VERSIONS = ("2023.12", "2024.12")


def _namespace(version: str | None):
    if version is not None and version not in VERSIONS:
        raise ValueError(
            f"__array_namespace__: api_version {version!r} is not supported; expected one of "
            f"{', '.join(VERSIONS)} (or None: {VERSIONS[-1]})"
        )
    ns = sys.modules["fusejit.array_api"]
    if version == "2023.12":
        return ns.v2023_12
    return ns


def __array_namespace__(self, /, *, api_version: str | None = None) -> types.ModuleType:  # noqa: N807
    """The Array API namespace of the tensor: ``fusejit.array_api`` (2024.12; ``api_version=
    "2023.12"``: that version's namespace).

    >>> import fusejit
    >>> xp = fusejit.ones(2).__array_namespace__()
    >>> xp.__name__, xp.__array_api_version__
    ('fusejit.array_api', '2024.12')
    """
    return _namespace(api_version)


def to_device(self, device, /, *, stream=None) -> Tensor:
    """The tensor on ``device`` (itself when it is there already)."""
    if stream is not None and self.device.type == "cpu":
        raise ValueError("to_device: stream is for GPU devices only")
    return self.to(device)


def _shift(fn):
    def op(self, other):
        d = result_type(self, other)
        a = self if self.dtype is d else cast(self, d)
        b = other if not isinstance(other, Tensor) or other.dtype is d else cast(other, d)
        return fn(a, b)

    def rop(self, other):
        d = result_type(self, other)
        a = self if self.dtype is d else cast(self, d)
        return fn(other, a)

    def iop(self, other):
        r = op(self, other)
        self.copy_(r)
        return self

    return op, rop, iop


def bind() -> None:
    Tensor.__array_namespace__ = __array_namespace__
    Tensor.to_device = to_device
    Tensor.__complex__ = lambda self: complex(self.item())
    Tensor.__pos__ = lambda self: self.clone()
    for name, fn in (("lshift", _ew.bitwise_left_shift), ("rshift", _ew.bitwise_right_shift)):
        op, rop, iop = _shift(fn)
        setattr(Tensor, f"__{name}__", op)
        setattr(Tensor, f"__r{name}__", rop)
        setattr(Tensor, f"__i{name}__", iop)
