"""Containers and shape layers: ``ModuleDict``, ``ParameterList``, ``ParameterDict``,
``Flatten``, ``Unflatten``.

>>> import fusejit
>>> from fusejit import nn
>>> d = nn.ModuleDict({"enc": nn.Linear(2, 3), "act": nn.ReLU()})
>>> list(d.keys()), list(d.state_dict())
(['enc', 'act'], ['enc.weight', 'enc.bias'])
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from fusejit.eager.movement import flatten, unflatten
from fusejit.eager.tensor import Tensor
from fusejit.nn.modules import Module, Parameter, _bump

__all__ = ["ModuleDict", "ParameterList", "ParameterDict", "Flatten", "Unflatten"]


class ModuleDict(Module):
    """Modules by name, registered (their parameters are the container's), in insertion
    order."""

    def __init__(self, modules=None) -> None:
        super().__init__()
        if modules is not None:
            self.update(modules)

    def __getitem__(self, key: str) -> Module:
        return self._modules[key]

    def __setitem__(self, key: str, module: Module) -> None:
        self.add_module(key, module)

    def __delitem__(self, key: str) -> None:
        del self._modules[key]
        _bump()

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self):
        return iter(self._modules)

    def __contains__(self, key) -> bool:
        return key in self._modules

    def keys(self):
        return self._modules.keys()

    def values(self):
        return self._modules.values()

    def items(self):
        return self._modules.items()

    def clear(self) -> None:
        self._modules.clear()
        _bump()

    def pop(self, key: str) -> Module:
        m = self._modules.pop(key)
        _bump()
        return m

    def update(self, modules) -> None:
        pairs = modules.items() if isinstance(modules, (Mapping, ModuleDict)) else modules
        for k, m in pairs:
            self.add_module(str(k), m)

    def forward(self, *args, **kwargs):
        raise NotImplementedError("ModuleDict has no forward(); index it instead")


def _as_parameter(value):
    if isinstance(value, Parameter) or value is None:
        return value
    if isinstance(value, Tensor):
        return Parameter(value, requires_grad=value.dtype.is_floating_point)
    return value


class ParameterList(Module):
    """Parameters in a list, registered as ``"0"``, ``"1"``, ... (tensors are wrapped in
    ``Parameter``).

    >>> import fusejit
    >>> pl = fusejit.nn.ParameterList([fusejit.zeros(2), fusejit.ones(3)])
    >>> len(pl), list(pl.state_dict())
    (2, ['0', '1'])
    """

    def __init__(self, values: Iterable | None = None) -> None:
        super().__init__()
        if values is not None:
            self.extend(values)

    def __len__(self) -> int:
        return len(self._parameters)

    def __iter__(self):
        return iter(self._parameters.values())

    def __getitem__(self, idx):
        vals = list(self._parameters.values())
        if isinstance(idx, slice):
            return ParameterList(vals[idx])
        n = len(vals)
        if not -n <= idx < n:
            raise IndexError(f"index {idx} is out of range for a ParameterList of {n}")
        return vals[idx % n]

    def __setitem__(self, idx: int, value) -> None:
        n = len(self)
        if not -n <= idx < n:
            raise IndexError(f"index {idx} is out of range for a ParameterList of {n}")
        self.register_parameter(str(idx % n), _as_parameter(value))

    def append(self, value) -> ParameterList:
        self.register_parameter(str(len(self)), _as_parameter(value))
        return self

    def extend(self, values) -> ParameterList:
        for v in values:
            self.append(v)
        return self

    def extra_repr(self) -> str:
        return "\n".join(f"({i}): Parameter of shape {tuple(p.shape)}" for i, p in enumerate(self))

    def forward(self, *args, **kwargs):
        raise NotImplementedError("ParameterList has no forward()")


class ParameterDict(Module):
    """Parameters by name (tensors are wrapped in ``Parameter``).

    >>> import fusejit
    >>> pd = fusejit.nn.ParameterDict({"scale": fusejit.ones(2)})
    >>> list(pd.keys()), type(pd["scale"]).__name__
    (['scale'], 'Parameter')
    """

    def __init__(self, parameters=None) -> None:
        super().__init__()
        if parameters is not None:
            self.update(parameters)

    def __getitem__(self, key: str):
        return self._parameters[key]

    def __setitem__(self, key: str, value) -> None:
        self.register_parameter(str(key), _as_parameter(value))

    def __delitem__(self, key: str) -> None:
        del self._parameters[key]
        _bump()

    def __len__(self) -> int:
        return len(self._parameters)

    def __iter__(self):
        return iter(self._parameters)

    def __contains__(self, key) -> bool:
        return key in self._parameters

    def keys(self):
        return self._parameters.keys()

    def values(self):
        return self._parameters.values()

    def items(self):
        return self._parameters.items()

    def get(self, key, default=None):
        return self._parameters.get(key, default)

    def pop(self, key: str):
        v = self._parameters.pop(key)
        _bump()
        return v

    def update(self, parameters) -> None:
        pairs = (
            parameters.items() if isinstance(parameters, (Mapping, ParameterDict)) else parameters
        )
        for k, v in pairs:
            self[k] = v

    def forward(self, *args, **kwargs):
        raise NotImplementedError("ParameterDict has no forward()")


class Flatten(Module):
    """``flatten(x, start_dim, end_dim)`` (dims 1.. by default: keeps the batch dim).

    >>> import fusejit
    >>> fusejit.nn.Flatten()(fusejit.zeros(2, 3, 4)).shape
    (2, 12)
    """

    def __init__(self, start_dim: int = 1, end_dim: int = -1) -> None:
        super().__init__()
        self.start_dim, self.end_dim = start_dim, end_dim

    def forward(self, input: Tensor) -> Tensor:  # noqa: A002
        return flatten(input, self.start_dim, self.end_dim)

    def extra_repr(self) -> str:
        return f"start_dim={self.start_dim}, end_dim={self.end_dim}"


class Unflatten(Module):
    """Split ``dim`` into ``unflattened_size``.

    >>> import fusejit
    >>> fusejit.nn.Unflatten(1, (3, 4))(fusejit.zeros(2, 12)).shape
    (2, 3, 4)
    """

    def __init__(self, dim: int, unflattened_size) -> None:
        super().__init__()
        self.dim, self.unflattened_size = dim, tuple(unflattened_size)

    def forward(self, input: Tensor) -> Tensor:  # noqa: A002
        return unflatten(input, self.dim, self.unflattened_size)

    def extra_repr(self) -> str:
        return f"dim={self.dim}, unflattened_size={self.unflattened_size}"
