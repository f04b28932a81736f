"""``finfo`` and ``iinfo``: the limits of the float and integer dtypes, with PyTorch's field
names."""

from __future__ import annotations

import numpy as np

from fusejit.base import dtypes as dt
from fusejit.base.errors import DTypeError

__all__ = ["finfo", "iinfo"]


class finfo:  # noqa: N801 - named as torch.finfo
    """Limits of a float dtype (default: the default float, float32).

    >>> import fusejit
    >>> fusejit.finfo(fusejit.float16).max, fusejit.finfo().eps
    (65504.0, 1.1920928955078125e-07)
    """

    __slots__ = ("bits", "eps", "max", "min", "tiny", "smallest_normal", "resolution", "dtype")

    def __init__(self, type=None) -> None:  # noqa: A002 - torch's argument name
        d = dt.default_float if type is None else dt.as_dtype(type)
        if not d.is_floating_point:
            raise DTypeError(f"finfo: expected a floating-point dtype, got {d.name} (use iinfo)")
        f = np.finfo(d.np)
        self.bits = int(f.bits)
        self.eps = float(f.eps)
        self.max = float(f.max)
        self.min = float(f.min)
        self.tiny = self.smallest_normal = float(f.smallest_normal)
        self.resolution = 10.0 ** -int(f.precision)  # (numpy rounds it to the dtype)
        self.dtype = d.name

    def __repr__(self) -> str:
        return (f"finfo(resolution={self.resolution}, min={self.min}, max={self.max}, "
                f"eps={self.eps}, smallest_normal={self.smallest_normal}, tiny={self.tiny}, "
                f"dtype={self.dtype})")  # fmt: skip


class iinfo:  # noqa: N801 - named as torch.iinfo
    """Limits of an integer dtype.

    >>> import fusejit
    >>> fusejit.iinfo(fusejit.int8).min, fusejit.iinfo(fusejit.uint8).max
    (-128, 255)
    """

    __slots__ = ("bits", "max", "min", "dtype")

    def __init__(self, type) -> None:  # noqa: A002 - torch's argument name
        d = dt.as_dtype(type)
        if not d.is_integer:
            raise DTypeError(f"iinfo: expected an integer dtype, got {d.name}"
                             + (" (use finfo)" if d.is_floating_point else ""))  # fmt: skip
        i = np.iinfo(d.np)
        self.bits, self.min, self.max = int(i.bits), int(i.min), int(i.max)
        self.dtype = d.name

    def __repr__(self) -> str:
        return f"iinfo(min={self.min}, max={self.max}, dtype={self.dtype})"
