"""``__array_namespace_info__()``: the namespace's devices, dtypes, default dtypes and
capabilities, as the standard's inspection API asks."""

from __future__ import annotations

from fusejit import cuda as _cuda
from fusejit.array_api._creation import DEFAULT_COMPLEX, DEFAULT_FLOAT, DEFAULT_INT
from fusejit.base import dtypes as dt
from fusejit.base.device import Device, as_device

__all__ = ["__array_namespace_info__", "Info"]

_DTYPES = {
    "bool": dt.bool_, "int8": dt.int8, "int16": dt.int16, "int32": dt.int32,
    "int64": dt.int64, "uint8": dt.uint8, "float32": dt.float32, "float64": dt.float64,
    "complex64": dt.complex64, "complex128": dt.complex128,
}  # fmt: skip

_KINDS = {
    "bool": ("bool",),
    "signed integer": ("int8", "int16", "int32", "int64"),
    "unsigned integer": ("uint8",),
    "integral": ("int8", "int16", "int32", "int64", "uint8"),
    "real floating": ("float32", "float64"),
    "complex floating": ("complex64", "complex128"),
    "numeric": ("int8", "int16", "int32", "int64", "uint8", "float32", "float64", "complex64",
                "complex128"),
}  # fmt: skip


class Info:
    """What the namespace offers (``fusejit.array_api.__array_namespace_info__()``).

    >>> import fusejit.array_api as xp
    >>> info = xp.__array_namespace_info__()
    >>> info.default_dtypes()["real floating"], info.default_device()
    (fusejit.float64, device(type='cpu'))
    """

    __module__ = "fusejit.array_api"

    def capabilities(self) -> dict:
        """Boolean indexing and value-dependent shapes work (eagerly: under
        ``fusejit.trace`` they are a TraceError); up to 64 dims (numpy's bound)."""
        return {"boolean indexing": True, "data-dependent shapes": True, "max dimensions": 64}

    def default_device(self) -> Device:
        """The CPU: arrays made without ``device=`` live there."""
        return as_device("cpu")

    def devices(self) -> list:
        """The CPU and each GPU fusejit can use."""
        return [as_device("cpu")] + [Device(f"cuda:{i}") for i in range(_cuda.device_count())]

    def _check_device(self, device) -> None:
        if device is not None and as_device(device) not in self.devices():
            raise ValueError(f"device {device} is not available")

    def default_dtypes(self, *, device=None) -> dict:
        """float64, complex128 and int64 (int64 for indices), on every device."""
        self._check_device(device)
        return {"real floating": DEFAULT_FLOAT, "complex floating": DEFAULT_COMPLEX,
                "integral": DEFAULT_INT, "indexing": dt.int64}  # fmt: skip

    def dtypes(self, *, device=None, kind=None) -> dict:
        """The dtypes of ``kind`` (a kind name, a tuple of them, or None for all) by name."""
        self._check_device(device)
        if kind is None:
            return dict(_DTYPES)
        kinds = kind if isinstance(kind, tuple) else (kind,)
        out = {}
        for k in kinds:
            if k not in _KINDS:
                raise ValueError(f"dtypes: unknown kind {k!r}; expected one of {sorted(_KINDS)}")
            out.update({n: _DTYPES[n] for n in _KINDS[k]})
        return out


_INFO = Info()


def __array_namespace_info__() -> Info:  # noqa: N807 - the standard's name
    """The namespace's inspection object (devices, dtypes, default dtypes, capabilities)."""
    return _INFO
