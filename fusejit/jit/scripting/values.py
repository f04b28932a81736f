"""The compile-time values the compiler works with besides tensors and Python constants:
``Dyn`` (a Python scalar known only at run time) and ``Undef`` (a name not bound on every
path), the kind a variable keeps for its whole life, and the helpers that flatten a value into
its leaves and a structural spec and rebuild it (where branches meet and around loops)."""

from __future__ import annotations

import numpy as np

from fusejit.base import dtypes as dt
from fusejit.base.device import Device
from fusejit.eager.tensor import Tensor
from fusejit.ir.graph import TensorType

_IMMUTABLE = (int, float, bool, str, type(None), dt.DType, Device)
_KINDS = {bool: "bool", int: "int", float: "float"}
_SCALAR_DTYPE = {"int": dt.int64, "float": dt.float64, "bool": dt.bool_}


class Dyn:
    """A Python int / float / bool known only at run time: a 0-d example tensor (int64, float64
    or bool) that the tracer knows, and the Python kind it stands for."""

    __slots__ = ("t", "kind")

    def __init__(self, t: Tensor, kind: str) -> None:
        self.t, self.kind = t, kind


class FStr:
    """An f-string with run-time fields: ``parts`` are ``(kind, value, fmt)``, kind ``const``
    (a string, already formatted), ``tensor``, ``int``, ``float`` or ``bool`` (a tensor or a
    ``Dyn``), and ``fmt`` the field's conversion and format spec. Only ``print`` and
    ``assert`` take one: they format it at run time."""

    __slots__ = ("parts",)

    def __init__(self, parts: list) -> None:
        self.parts = parts


class LoopList:
    """A list of tensors that a loop node appends to, one item per iteration: in the graph a
    buffer ``buf`` of shape ``(n, *item shape)`` carried through the loop (item ``i`` written
    with an ``update`` at the loop index). ``key`` names the list across the copies the
    compiler makes of it (loop parameters, outputs). ``stack`` / ``cat`` / ``len`` / indexing
    / ``for`` use the buffer as it is; anything else gets a plain list of its rows."""

    __slots__ = ("buf", "n", "key")

    def __init__(self, buf: Tensor, n: int, key: object) -> None:
        self.buf, self.n, self.key = buf, n, key


class DynRange:
    """``range(...)`` with a bound known only at run time (a ``for`` loop's trip count)."""

    __slots__ = ("args",)

    def __init__(self, args: list) -> None:
        self.args = args


class Enumerate:
    """``enumerate(seq, start)``, iterated over by a ``for`` loop."""

    __slots__ = ("seq", "start")

    def __init__(self, seq, start: int) -> None:
        self.seq, self.start = seq, start


class Zip:
    """``zip(*seqs)``, iterated over by a ``for`` loop (as long as the shortest)."""

    __slots__ = ("seqs",)

    def __init__(self, seqs: list) -> None:
        self.seqs = seqs


class Undef:
    """A name that is not defined on every path reaching this point."""

    __slots__ = ("why",)

    def __init__(self, why: str) -> None:
        self.why = why


def _kind_of(v) -> str:
    """The kind a variable keeps for its whole life."""
    if isinstance(v, LoopList):
        return "list"
    if isinstance(v, Tensor):
        return "Tensor"
    if isinstance(v, Dyn):
        return v.kind
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, (int, np.integer)):
        return "int"
    if isinstance(v, (float, np.floating)):
        return "float"
    if v is None:
        return "None"
    if isinstance(v, (tuple, list)):
        return type(v).__name__
    return type(v).__name__


_MISSING = object()


def _spec(v, leaves: list):
    if isinstance(v, LoopList):
        leaves.append(v.buf)
        return ("looplist", v.n, v.key, ("leaf", _type_of(v.buf)))
    if isinstance(v, (tuple, list)):
        return (type(v).__name__, tuple(_spec(x, leaves) for x in v))
    if isinstance(v, (Tensor, Dyn)):
        leaves.append(v)
        return ("leaf", _type_of(v))
    if isinstance(v, (bool, int, float)):
        leaves.append(v)
        return ("leaf", ("scalar", _kind_of(v)))
    return ("const", id(v))


def _flat(v):
    leaves: list = []
    _spec(v, leaves)
    return leaves


def _type_of(v):
    if isinstance(v, Dyn):
        return ("scalar", v.kind)
    return (v.dtype, tuple(v.shape), v.device)


def _rebuild(spec, it):
    if spec[0] == "same":
        return spec[1]
    if spec[0] in ("out", "leaf"):
        return next(it)
    if spec[0] == "const":
        raise AssertionError("constant leaves are not rebuilt")
    if spec[0] == "looplist":
        return LoopList(_rebuild(spec[3], it), spec[1], spec[2])
    if spec[0] in ("tuple", "list"):
        items = [_rebuild(s, it) for s in spec[1]]
        return tuple(items) if spec[0] == "tuple" else items
    kind, parts = spec
    items = [_rebuild(s, it) for s in parts]
    return kind(items) if kind is not tuple else tuple(items)


def _describe(v) -> str:
    if isinstance(v, LoopList):
        return f"list of {v.n} tensors grown in a loop"
    if isinstance(v, Tensor):
        return str(TensorType(v.dtype, tuple(v.shape), v.device))
    if isinstance(v, Dyn):
        return f"run-time {v.kind}"
    if isinstance(v, (tuple, list)):
        return f"{type(v).__name__} of {len(v)}"
    return _kind_of(v)


def _contains_dyn(v) -> bool:
    if isinstance(v, Dyn):
        return True
    if isinstance(v, (tuple, list)):
        return any(_contains_dyn(x) for x in v)
    return False


def _wrap_lists(fc, v):
    return fc.mark_list(v) if isinstance(v, list) else v
