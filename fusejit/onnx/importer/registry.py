"""The import rules: one function per ONNX op type, written with fusejit's own ops.

A rule is called with a :class:`NodeContext` (the node's attributes, its opset, the values of
inputs known when the graph is built) and the node's inputs as fusejit tensors (``None`` for an
omitted optional input). It returns one tensor or a tuple of tensors (the node's outputs, in
order). Because a rule only calls fusejit ops, running the rules under ``fusejit.trace`` records
an ordinary fusejit graph, fused and compiled like any traced function.

>>> from fusejit.onnx.importer.registry import IMPORT_RULES
>>> "Add" in IMPORT_RULES or True
True
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from fusejit.base.errors import FusejitError

__all__ = ["IMPORT_RULES", "ImportError_", "NodeContext", "StaticValueError", "onnx_op"]


class ImportError_(FusejitError, ValueError):  # noqa: N801 (the builtin ImportError is taken)
    """An ONNX model fusejit cannot import: unsupported op types (all listed at once), an
    attribute or input a rule does not handle, or a value a rule needs at build time that is
    only known at run time; the message names the op type and the node."""


class StaticValueError(ImportError_):
    """An input a rule needs at build time (a shape, axes, pads, ...) is only known at run
    time. ``OnnxModule`` then reads the model's integer inputs on each call and traces per
    their values."""


Rule = Callable[..., Any]

# ONNX op type (default domain "" / "ai.onnx") -> rule
IMPORT_RULES: dict[str, Rule] = {}

_REQUIRED = object()


def onnx_op(*op_types: str) -> Callable[[Rule], Rule]:
    """Register a rule for one or more ONNX op types (each registered once)."""

    def register(fn: Rule) -> Rule:
        for t in op_types:
            if t in IMPORT_RULES:
                raise ValueError(f"ONNX op {t!r} has two import rules")
            IMPORT_RULES[t] = fn
        return fn

    return register


class NodeContext:
    """What a rule sees of one ONNX node besides its input tensors.

    ``attrs`` holds the node's attributes already decoded to Python values (ints, floats,
    strings as ``str``, lists, tensors as numpy arrays, graphs as ``onnx.GraphProto``);
    ``static`` holds, per input, its value as a numpy array when it is known while the graph is
    built (an initializer, a ``Constant``, or computed only from those and from shapes), else
    ``None``; ``opset`` is the model's version of the default ONNX domain.
    """

    def __init__(
        self,
        op_type: str,
        attrs: dict[str, Any],
        opset: int,
        static: list[np.ndarray | None],
        n_outputs: int,
        device: str = "cpu",
        name: str = "",
        run_graph: Callable[[Any, list], list] | None = None,
    ) -> None:
        self.op_type = op_type
        self.attrs = attrs
        self.opset = opset
        self._static = static
        self.n_outputs = n_outputs
        self.device = device
        self.name = name
        self._run_graph = run_graph

    def where(self) -> str:
        return f"ONNX {self.op_type} node {self.name!r}" if self.name else f"ONNX {self.op_type}"

    def attr(self, name: str, default: Any = _REQUIRED) -> Any:
        """Attribute ``name``; ``default`` when absent (an error naming the node if required)."""
        if name in self.attrs:
            return self.attrs[name]
        if default is _REQUIRED:
            raise ImportError_(f"{self.where()}: required attribute {name!r} is missing")
        return default

    def has_input(self, i: int) -> bool:
        """Whether optional input ``i`` is given (present and not the empty name)."""
        return i < len(self._static) and self._static[i] is not _ABSENT

    def is_static(self, i: int) -> bool:
        return self.has_input(i) and self._static[i] is not None

    def static(self, i: int, what: str = "") -> np.ndarray:
        """The value of input ``i`` at build time (shapes, axes, pads, ...); an error naming the
        node when it is only known at run time."""
        if not self.has_input(i):
            raise ImportError_(f"{self.where()}: input {i} {what} is missing".replace("  ", " "))
        value = self._static[i]
        if value is None:
            raise StaticValueError(
                f"{self.where()}: input {i} {what} must be known when the model is loaded "
                "(an initializer, a Constant or computed from shapes), not computed at run "
                "time".replace("  ", " ")
            )
        return value

    def run_graph(self, graph: Any, inputs: list) -> list:
        """Run subgraph ``graph`` (an ``onnx.GraphProto`` attribute: If / Loop bodies) on
        ``inputs`` (tensors for its formal inputs); it sees the enclosing graph's values.
        Returns its outputs as tensors."""
        if self._run_graph is None:
            raise ImportError_(f"{self.where()}: subgraphs cannot run here")
        return self._run_graph(graph, inputs)

    def unsupported(self, what: str) -> ImportError_:
        """An error to raise for an attribute value or input form the rule does not handle."""
        return ImportError_(f"{self.where()}: {what} is not supported")


# marks an omitted optional input in ``NodeContext``'s ``static`` list
_ABSENT: Any = type("_Absent", (), {"__repr__": lambda self: "<absent>"})()
NodeContext.ABSENT = _ABSENT  # type: ignore[attr-defined]
