"""Conveniences of PyTorch's API: ``as_tensor`` (numpy memory shared), ``is_tensor``,
``is_floating_point``, ``numel``, ``Tensor.new_tensor``, ``masked_fill_``, ``element_size``,
``nbytes``, ``itemsize``. (numpy arrays as operands: ``dispatch.numpy_operands``; ``np.asarray``
of a tensor: ``Tensor.__array__``.)"""

from __future__ import annotations

import numpy as np

from fusejit.base import dtypes as dt
from fusejit.base.device import as_device
from fusejit.base.shapes import describe
from fusejit.eager.composites import masked_fill
from fusejit.eager.inplace import write_inplace
from fusejit.eager.tensor import Tensor, from_numpy, tensor

__all__ = ["as_tensor", "is_tensor", "is_floating_point", "numel"]


def as_tensor(data, dtype=None, device=None) -> Tensor:
    """``data`` as a tensor, sharing memory where it can: a tensor of that dtype and device is
    returned as it is, a numpy array of a fusejit dtype becomes a CPU tensor on its memory
    (as ``from_numpy``); anything else is copied (as ``tensor``).

    >>> import numpy as np, fusejit
    >>> a = np.zeros(3, np.float32); t = fusejit.as_tensor(a); a[0] = 5; t.tolist()
    [5.0, 0.0, 0.0]
    """
    if isinstance(data, Tensor):
        return data.to(device=data.device if device is None else device, dtype=dtype)
    if isinstance(data, np.ndarray):
        d = dt._BY_NP.get(data.dtype)
        want = None if dtype is None else dt.as_dtype(dtype)
        if d is not None and want in (None, d) and as_device(device).type == "cpu":
            return from_numpy(np.asarray(data))
    return tensor(data, dtype=dtype, device=device)


def is_tensor(obj) -> bool:
    """True for a fusejit tensor.

    >>> import fusejit
    >>> fusejit.is_tensor(fusejit.ones(1)), fusejit.is_tensor([1.0])
    (True, False)
    """
    return isinstance(obj, Tensor)


def _tensor(name: str, x) -> Tensor:
    if not isinstance(x, Tensor):
        raise TypeError(f"{name}: expected a tensor, got {describe(x)}")
    return x


def is_floating_point(input: Tensor) -> bool:  # noqa: A002
    """True when ``input``'s dtype is a float dtype.

    >>> import fusejit
    >>> fusejit.is_floating_point(fusejit.ones(1)), fusejit.is_floating_point(fusejit.tensor(1))
    (True, False)
    """
    return _tensor("is_floating_point", input).dtype.is_floating_point


def numel(input: Tensor) -> int:  # noqa: A002
    """The number of elements of ``input``.

    >>> import fusejit
    >>> fusejit.numel(fusejit.zeros(2, 3))
    6
    """
    return _tensor("numel", input).numel()


def new_tensor(self: Tensor, data, dtype=None, device=None) -> Tensor:
    """A new tensor of ``data`` (copied), with ``self``'s dtype and device by default."""
    return tensor(data, dtype=self.dtype if dtype is None else dtype,
                  device=self.device if device is None else device)  # fmt: skip


def masked_fill_(self: Tensor, mask: Tensor, value) -> Tensor:
    """``masked_fill`` written into ``self``."""
    return write_inplace("masked_fill_", self, masked_fill(self, mask, value))


def element_size(self: Tensor) -> int:
    """Bytes of one element."""
    return self.dtype.itemsize


METHODS = {
    "new_tensor": new_tensor, "masked_fill_": masked_fill_, "element_size": element_size,
    "itemsize": property(element_size),
    "nbytes": property(lambda self: self.numel() * self.dtype.itemsize),
}  # fmt: skip
