"""The operands of the graph IR: typed SSA values and Python scalar constants.

They sit below nodes, blocks and graphs so that the control-node forms and the printer, which
the graph's ``__str__`` uses, can read operands without importing the graph module.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

from fusejit.base import dtypes as dt

_ids = itertools.count()


@dataclass(frozen=True)
class TensorType:
    dtype: dt.DType
    shape: tuple
    device: object

    def __str__(self) -> str:
        dims = ", ".join(str(s) for s in self.shape)
        dev = "" if str(self.device) == "cpu" else f", {self.device}"
        return f"{self.dtype.name}[{dims}]{dev}"


class Value:
    """An SSA value. Identity matters (``is``); ``id`` orders values by creation."""

    __slots__ = ("id", "type", "hint")

    def __init__(self, type_: TensorType, hint: str = "") -> None:
        self.id = next(_ids)
        self.type = type_
        self.hint = hint

    def __repr__(self) -> str:
        return f"Value({self.id}: {self.type})"


@dataclass(frozen=True)
class Const:
    """A Python scalar operand, weak in promotion exactly as in eager mode."""

    value: object

    def __str__(self) -> str:
        return repr(self.value)


__all__ = ["TensorType", "Value", "Const"]
