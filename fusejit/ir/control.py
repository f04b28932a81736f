"""The control-node forms of the graph IR: ``if``, ``loop``, ``print``, ``assert``, ``select``
and ``update``.

Blocks of control nodes are *closed*: a block reads nothing from the enclosing block except
through its own parameters, so every block is a self-contained graph and the ordinary passes
(cleanup, decomposition, fusion) run on it unchanged. The node forms:

``if``
    ``outs = if(cond, *captures)`` with two blocks, *then* and *else*. Each block takes one
    parameter per capture and returns one result per output. ``cond`` is a one-element tensor
    (or a ``Const`` bool); its truth value picks the block.
``loop``
    ``outs = loop[n_carried=k](trip_count, cond, *init, *captures)`` with one *body* block taking
    ``(i, *carried, *captures)`` and returning ``(cond_next, *carried_next)``; ``i`` is the
    iteration number (int64, 0-d). The body runs while ``i < trip_count`` (a negative trip count
    means no bound) and the condition holds; the outputs are the carried values after the last
    iteration (the initial values when it runs zero times). ``for i in range(n)``, ``while``
    and ``break`` all map onto it.
``print``
    ``print[kinds=..., sep=..., end=...](*args)``: writes its arguments to stdout; a side effect
    that the cleanup passes never remove or merge. ``kinds`` says how each argument prints
    (``tensor``, ``int``, ``float``, ``bool`` or ``const``); an optional ``fmts`` gives each
    argument's f-string conversion and format spec (``"!r:>8"``, ``":.3f"``, ``""``).
``assert``
    ``assert[kinds=..., fmts=..., has_msg=...](cond, *args)``: raises ``AssertionError`` when
    ``cond`` (a one-element tensor or a ``Const`` bool) is false, with the message its
    arguments make, formatted as ``print``'s are and joined with no separator (none when
    ``has_msg`` is false). A side effect, like ``print``.
``select``
    ``y = select[dim=d](x, i)``: ``x`` indexed by the 0-d int64 tensor ``i`` along ``d`` (a view),
    for ``x[i]`` with a loop index.
``update``
    ``y = update[dim=d](x, i, v)``: a copy of ``x`` whose index ``i`` (a 0-d int64 tensor or a
    ``Const`` int) along ``d`` holds ``v`` (``x``'s dtype, the selected shape; made from a
    run-time Python number, ``v`` may live on another device): ``x[i] = v``
    and ``x[:, i] = v`` in a scripted function, functional in the graph. The plan writes in
    place where ``x`` is a loop-carried buffer that nothing else reads (``jit/control.py``).

This module describes and checks these forms; running them is ``fusejit.jit.control``'s.
It reads graphs, blocks and nodes through their attributes only: the printer, which the
graph's ``__str__`` uses, depends on it, so it imports the graph module for type hints only.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, NoReturn

import numpy as np

from fusejit.base import dtypes as dt
from fusejit.ir.values import Const, TensorType, Value
from fusejit.ops.registry import OPS

if TYPE_CHECKING:
    from fusejit.ir.graph import Block, Graph, Node

CONTROL_OPS = frozenset({"if", "loop", "print", "assert", "select", "update"})
BLOCK_LABELS = {"if": ("then", "else"), "loop": ("body",)}  # each block's name, in order

Fail = Callable[[str], NoReturn]


def verify_node(n: Node, fail: Fail) -> None:
    """Check the arity and types of a control node; ``fail(msg)`` raises."""
    if n.op == "if":
        if len(n.blocks) != 2 or not n.inputs:
            fail("if needs a condition and two blocks")
        caps = n.inputs[1:]
        for b in n.blocks:
            _check_params(b.params, caps, fail, "if")
            _check_results(b.results, n.outputs, fail, "if")
        _check_cond(n.inputs[0], fail, "if")
    elif n.op == "loop":
        k = n.attr("n_carried")
        if len(n.blocks) != 1 or not isinstance(k, int) or len(n.inputs) < 2 + k:
            fail("loop needs a trip count, a condition, its carried values and one block")
        body = n.blocks[0]
        trip = n.inputs[0]
        if isinstance(trip, Value) and (trip.type.dtype is not dt.int64 or trip.type.shape):
            fail("loop trip count must be a 0-d int64 tensor")
        _check_cond(n.inputs[1], fail, "loop")
        init, caps = n.inputs[2 : 2 + k], n.inputs[2 + k :]
        if len(body.params) != 1 + k + len(caps) or len(body.results) != 1 + k:
            fail("loop body must take (i, *carried, *captures) and return (cond, *carried)")
        i = body.params[0]
        if i.type.dtype is not dt.int64 or i.type.shape:
            fail("loop body's first parameter (the iteration number) must be int64[]")
        _check_params(body.params[1:], list(init) + list(caps), fail, "loop")
        _check_results(body.results[1:], n.outputs, fail, "loop")
        if len(n.outputs) != k:
            fail("loop must have one output per carried value")
        for v, o in zip(init, n.outputs):
            if not isinstance(v, Value) or v.type != o.type:
                fail("loop carried values must keep their type")
        _check_cond(body.results[0], fail, "loop body")
    elif n.op == "select":
        x, idx = n.inputs
        d = n.attr("dim")
        if not isinstance(x, Value) or not 0 <= d < len(x.type.shape):
            fail("select needs a tensor and a dim inside its rank")
        shape = x.type.shape[:d] + x.type.shape[d + 1 :]
        if len(n.outputs) != 1 or n.outputs[0].type.shape != shape:
            fail("select output shape must drop the selected dim")
    elif n.op == "update":
        if len(n.inputs) != 3 or len(n.outputs) != 1:
            fail("update takes (x, i, v) and gives one tensor")
        x, idx, v = n.inputs
        d = n.attr("dim")
        if not isinstance(x, Value) or not isinstance(d, int) or not 0 <= d < len(x.type.shape):
            fail("update needs a tensor and a dim inside its rank")
        if isinstance(idx, Const):
            if not isinstance(idx.value, int) or isinstance(idx.value, bool):
                fail("update index must be an int")
        elif idx.type.dtype is not dt.int64 or idx.type.shape:
            fail("update index must be a 0-d int64 tensor")
        row = x.type.shape[:d] + x.type.shape[d + 1 :]
        if not isinstance(v, Value) or v.type.shape != row or v.type.dtype is not x.type.dtype:
            fail("update value must have the tensor's dtype and the selected shape")
        if n.outputs[0].type != x.type:
            fail("update output must have its input's type")
    elif n.op in ("print", "assert"):
        args = n.inputs[1:] if n.op == "assert" else n.inputs
        if n.outputs or len(n.attr("kinds", ())) != len(args):
            fail(f"{n.op} has no outputs and one kind per argument")
        fmts = n.attr("fmts", None)
        if fmts is not None and (len(fmts) != len(args) or
                                 not all(isinstance(f, str) for f in fmts)):  # fmt: skip
            fail(f"{n.op} has one format (a string) per argument")
        if n.op == "assert":
            if not n.inputs:
                fail("assert needs a condition")
            _check_cond(n.inputs[0], fail, "assert")


def _check_params(params, values, fail: Fail, what: str) -> None:
    if len(params) != len(values):
        fail(f"{what}: a block has {len(params)} parameters for {len(values)} inputs")
    for p, v in zip(params, values):
        if not isinstance(v, Value) or p.type != v.type:
            fail(f"{what}: block parameter {p!r} does not match its input")


def _check_results(results, outputs, fail: Fail, what: str) -> None:
    if len(results) != len(outputs):
        fail(f"{what}: a block returns {len(results)} values for {len(outputs)} outputs")
    for r, o in zip(results, outputs):
        if r.type != o.type:
            fail(f"{what}: block result {r!r} has another type than output {o!r}")


def _check_cond(c, fail: Fail, what: str) -> None:
    if isinstance(c, Const):
        if not isinstance(c.value, bool):
            fail(f"{what}: a constant condition must be a bool")
    elif int(np.prod(c.type.shape, dtype=np.int64)) != 1:
        fail(f"{what}: the condition must be a one-element tensor")


def has_effect(n: Node) -> bool:
    """Whether ``n`` (or a node in its blocks) has a side effect the passes must keep: printing,
    an assertion, a random draw (it advances a generator, and two draws differ: never merged,
    folded or dropped, so a graph draws what eager code draws)."""
    if n.op in ("print", "assert"):
        return True
    op = OPS.get(n.op)
    if op is not None and op.kind == "random":
        return True
    return any(has_effect(m) for b in n.blocks for m in b.nodes)


def has_control(g: Graph) -> bool:
    """Whether the top block of ``g`` holds a control node."""
    return any(n.op in CONTROL_OPS for n in g.block.nodes)


def count_fused(block: Block) -> int:
    """Fused nodes in ``block`` and in the blocks of its control nodes."""
    total = 0
    for n in block.nodes:
        if n.op == "fused":
            total += 1
        else:
            total += sum(count_fused(b) for b in n.blocks)
    return total


def scalar_type(kind: str, device) -> TensorType:
    """The IR type of a Python scalar local: int -> int64, float -> float64, bool -> bool."""
    d = {"int": dt.int64, "float": dt.float64, "bool": dt.bool_}[kind]
    return TensorType(d, (), device)


__all__ = [
    "CONTROL_OPS", "BLOCK_LABELS", "verify_node", "has_effect", "has_control", "count_fused",
    "scalar_type",
]  # fmt: skip
