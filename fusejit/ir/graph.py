"""The graph IR: typed SSA values, immutable nodes naming op-table ops, blocks and graphs.

- A ``Value`` has a type: a ``TensorType`` (dtype, shape, device). Values are named ``%N``.
- A ``Node`` is immutable: op name, inputs (values or ``Const`` Python scalars), attributes
  (a sorted tuple of hashable pairs), outputs, and sub-``blocks``. Ops come from the op table;
  the JIT adds ``fused`` (a fused region; its body is its one block) and ``constant`` (a tensor
  frozen at trace time). Control flow (``if`` / ``loop`` for the script front end) is a node
  with blocks of their own; nothing here assumes a graph is straight-line.
- A ``Block`` has parameters, nodes in topological order, and results. A ``Graph`` is a top
  block plus the tensors bound to its captured inputs.

``structural_hash`` numbers values by position, so two identical graphs hash the same. The
operands (``TensorType``, ``Value``, ``Const``) are defined in ``values.py`` and importable
from here.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

from fusejit.ir.printer import format_graph
from fusejit.ir.values import Const, TensorType, Value


@dataclass(frozen=True, eq=False)
class Node:
    op: str
    inputs: tuple
    attrs: tuple
    outputs: tuple
    blocks: tuple = ()

    def attr(self, name, default=None):
        for k, v in self.attrs:
            if k == name:
                return v
        return default

    @property
    def attr_dict(self) -> dict:
        return dict(self.attrs)

    def tensor_inputs(self):
        return [v for v in self.inputs if isinstance(v, Value)]


def freeze_attrs(attrs: dict) -> tuple:
    return tuple(sorted(attrs.items()))


@dataclass(eq=False)
class Block:
    params: list
    nodes: list = field(default_factory=list)
    results: list = field(default_factory=list)


@dataclass(eq=False)
class Graph:
    """A top block. ``captured`` maps parameter values (after the user inputs) to the live
    tensors they read (module weights, globals); ``n_inputs`` counts the user inputs."""

    block: Block
    n_inputs: int
    captured: list = field(default_factory=list)  # tensors, one per extra param
    notes: dict = field(default_factory=dict)  # what passes report (e.g. why a node is unfused)

    @property
    def inputs(self):
        return self.block.params[: self.n_inputs]

    @property
    def nodes(self):
        return self.block.nodes

    @property
    def outputs(self):
        return self.block.results

    def copy_with(self, nodes=None, results=None) -> Graph:
        b = Block(
            list(self.block.params),
            list(self.block.nodes if nodes is None else nodes),
            list(self.block.results if results is None else results),
        )
        return Graph(b, self.n_inputs, list(self.captured), dict(self.notes))

    def structural_hash(self) -> str:
        return hashlib.sha256(_structure(self.block).encode()).hexdigest()[:24]

    def __str__(self) -> str:
        return format_graph(self)


def _structure(block: Block, numbering=None) -> str:
    num = {} if numbering is None else dict(numbering)
    parts = []
    for p in block.params:
        num[p] = len(num)
        parts.append(f"p:{p.type}")
    for n in block.nodes:
        ins = ",".join(f"v{num[v]}" if isinstance(v, Value) else f"c{v.value!r}" for v in n.inputs)
        subs = "".join("{" + _structure(b, num) + "}" for b in n.blocks)
        attrs = repr([(k, v) for k, v in n.attrs if k != "kernel_key"])
        outs = []
        for o in n.outputs:
            num[o] = len(num)
            outs.append(str(o.type))
        parts.append(f"{n.op}({ins}){attrs}{subs}->{'|'.join(outs)}")
    parts.append("ret:" + ",".join(f"v{num[v]}" for v in block.results))
    return ";".join(parts)


def uses(block: Block) -> dict:
    """value -> list of nodes that read it (in this block and nested blocks)."""
    out: dict = {}
    for n in block.nodes:
        for v in n.inputs:
            if isinstance(v, Value):
                out.setdefault(v, []).append(n)
        for b in n.blocks:
            for v, ns in uses(b).items():
                out.setdefault(v, []).extend([n] * len(ns))
    return out


__all__ = [
    "TensorType", "Value", "Const", "Node", "freeze_attrs", "Block", "Graph", "uses",
]  # fmt: skip
