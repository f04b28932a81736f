"""Devices: ``"cpu"``, ``"cuda"`` and ``"cuda:N"``, each served by one backend module.

The backends live two layers up (``fusejit.backends``), so they register a loader per kind of
device here (``register_backend``) and a device asks for its backend on first use.
"""

from __future__ import annotations

from collections.abc import Callable

from fusejit.base.errors import DeviceError

__all__ = ["Device", "device", "as_device", "register_backend"]

# kind of device -> loader(index) returning the backend object that serves it
_LOADERS: dict[str, Callable[[int | None], object]] = {}


def register_backend(kind: str, loader: Callable[[int | None], object]) -> None:
    """Serve devices of ``kind`` ("cpu" or "cuda") with ``loader(index)``'s backend."""
    _LOADERS[kind] = loader


class Device:
    """A device a tensor lives on. ``Device("cuda")`` means ``cuda:0``."""

    __slots__ = ("type", "index", "_backend", "_str")

    _cache: dict[str, Device] = {}

    def __new__(cls, spec: str | Device = "cpu") -> Device:
        if isinstance(spec, Device):
            return spec
        key = str(spec)
        dev = cls._cache.get(key)
        if dev is not None:
            return dev
        kind, _, idx = key.partition(":")
        if kind not in ("cpu", "cuda") or (idx and not idx.isdigit()) or (kind == "cpu" and idx):
            raise DeviceError(
                f"unknown device {spec!r}; expected 'cpu', 'cuda' or 'cuda:N' (N a GPU index)"
            )
        dev = object.__new__(cls)
        dev.type = kind
        dev.index = int(idx or 0) if kind == "cuda" else None
        dev._backend = None
        dev._str = "cpu" if kind == "cpu" else f"cuda:{dev.index}"
        # "cuda" and "cuda:0" are the same object
        cls._cache[key] = cls._cache.setdefault(dev._str, dev)
        return cls._cache[key]

    @property
    def backend(self):
        """The backend module object serving this device, loaded on first use."""
        if self._backend is None:
            loader = _LOADERS.get(self.type)
            if loader is None:
                raise DeviceError(f"no backend is registered for {self._str} devices")
            self._backend = loader(self.index)
        return self._backend

    def __repr__(self) -> str:
        return f"device(type='{self.type}'" + (
            f", index={self.index})" if self.index is not None else ")"
        )

    def __str__(self) -> str:
        return self._str

    def __eq__(self, other) -> bool:
        if isinstance(other, str):
            try:
                other = Device(other)
            except DeviceError:
                return False
        return self is other

    def __hash__(self) -> int:
        return hash(self._str)

    def __reduce__(self):
        return (Device, (self._str,))


CPU = Device("cpu")
device = Device


def as_device(spec) -> Device:
    if spec is None:
        return CPU
    if isinstance(spec, Device):
        return spec
    if isinstance(spec, int):
        return Device(f"cuda:{spec}")
    return Device(str(spec))
