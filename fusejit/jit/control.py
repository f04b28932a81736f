"""Control nodes executed: in the reference interpreter, in a plan's steps, and the passes run
on their blocks one by one. The node forms (``if``, ``loop``, ``print``, ``select``) and their
checks are in ``fusejit.ir.control``.

A closed block is a graph of its own, so the straight-line passes optimize it unchanged; a loop
body's steps, and so its kernels, are built once when the enclosing plan is built.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import replace

import numpy as np

from fusejit.base import dtypes as dt
from fusejit.base.errors import DimError
from fusejit.eager.tensor import Tensor
from fusejit.ir.graph import Block, Const, Graph, Node

# builds the step that runs one node on a slot list: (node, slots) -> step(env)
StepBuilder = Callable[[Node, dict], Callable[[list], None]]


# ---- optimizing ----------------------------------------------------------------------------
def optimize_blocks(g: Graph, target: str, optimize) -> Graph:
    """Run ``optimize(graph, target)`` on every block of every control node, innermost first.
    A closed block is a graph of its own, so the straight-line passes need no change."""
    nodes = []
    changed = False
    for n in g.block.nodes:
        if n.blocks and n.op != "fused":
            blocks = tuple(optimize_block(b, target, optimize) for b in n.blocks)
            n = replace(n, blocks=blocks)
            changed = True
        nodes.append(n)
    return g.copy_with(nodes=nodes) if changed else g


def optimize_block(b: Block, target: str, optimize) -> Block:
    inner = Graph(Block(list(b.params), list(b.nodes), list(b.results)), len(b.params))
    inner = optimize_blocks(inner, target, optimize)
    out = optimize(inner, target)
    return out.block


# ---- the interpreter -----------------------------------------------------------------------
def truth(v) -> bool:
    if isinstance(v, Tensor):
        return bool(v._device.backend.to_numpy(v._data).reshape(()))
    return bool(v)


def index_tensor(i: int, device) -> Tensor:
    if device.type == "cpu":
        return Tensor._wrap(np.asarray(i, np.int64), dt.int64, device)
    return Tensor._wrap(device.backend.xp.asarray(i, np.int64), dt.int64, device)


def select(x: Tensor, index, dim: int = 0) -> Tensor:
    """``x`` indexed by ``index`` (an int or a one-element integer tensor) along ``dim``."""
    i = int(truth_int(index))
    size = x.shape[dim]
    if not -size <= i < size:
        raise DimError(f"select: index {i} is out of bounds for dim {dim} with size {size}")
    key = (slice(None),) * dim + (i, Ellipsis)
    return Tensor._wrap(x._data[key], x._dtype, x._device)


def truth_int(v) -> int:
    if isinstance(v, Tensor):
        return int(v._device.backend.to_numpy(v._data).reshape(()))
    return int(v)


def format_print(kinds, args, sep=" ", end="\n") -> str:
    parts = []
    for k, a in zip(kinds, args):
        if k == "tensor":
            parts.append(str(a))
        elif k == "int":
            parts.append(str(truth_int(a)))
        elif k == "float":
            parts.append(str(float(a._device.backend.to_numpy(a._data).reshape(()))))
        elif k == "bool":
            parts.append(str(truth(a)))
        else:
            parts.append(str(a))
    return sep.join(parts) + end


def interpret_node(n: Node, env: dict, run_block) -> None:
    """Run control node ``n`` in the reference interpreter (``run_block(block, env)``)."""

    def val(v):
        return v.value if isinstance(v, Const) else env[v]

    if n.op == "if":
        b = n.blocks[0] if truth(val(n.inputs[0])) else n.blocks[1]
        res = run_block(b, dict(zip(b.params, [val(v) for v in n.inputs[1:]])))
    elif n.op == "loop":
        k = n.attr("n_carried")
        trip = truth_int(val(n.inputs[0]))
        cond = truth(val(n.inputs[1]))
        carried = [val(v) for v in n.inputs[2 : 2 + k]]
        caps = [val(v) for v in n.inputs[2 + k :]]
        body = n.blocks[0]
        dev = _device_of(n)
        i = 0
        while (trip < 0 or i < trip) and cond:
            out = run_block(body, dict(zip(body.params, [index_tensor(i, dev), *carried, *caps])))
            cond, carried = truth(out[0]), out[1:]
            i += 1
        res = carried
    elif n.op == "select":
        res = [select(val(n.inputs[0]), val(n.inputs[1]), n.attr("dim"))]
    elif n.op == "print":
        a = n.attr_dict
        sys.stdout.write(
            format_print(
                a["kinds"], [val(v) for v in n.inputs], a.get("sep", " "), a.get("end", "\n")
            )
        )
        res = []
    else:  # pragma: no cover - CONTROL_OPS is checked by the caller
        raise AssertionError(n.op)
    for o, r in zip(n.outputs, res):
        env[o] = r


def _device_of(n: Node):
    body = n.blocks[0]
    return body.params[0].type.device


# ---- running -------------------------------------------------------------------------------
class BlockRunner:
    """A block's steps over numbered slots, built (and its kernels compiled) once by
    ``node_step``, the builder of the plan that holds the block."""

    def __init__(self, block: Block, node_step: StepBuilder) -> None:
        slots: dict = {}
        for p in block.params:
            slots[p] = len(slots)
        self.n_params = len(slots)
        self.steps = []
        for n in block.nodes:
            for o in n.outputs:
                slots[o] = len(slots)
            self.steps.append(node_step(n, slots))
        self.n_slots = len(slots)
        # a result may be a Const (a loop body's condition when it has no break)
        self.results = [_getter(v, slots) for v in block.results]

    def run(self, args) -> list:
        env = list(args)
        env.extend([None] * (self.n_slots - len(env)))
        for step in self.steps:
            step(env)
        return [g(env) for g in self.results]


def _getter(v, slots):
    if isinstance(v, Const):
        c = v.value
        return lambda env: c
    s = slots[v]
    return lambda env: env[s]


def control_step(n: Node, slots: dict, node_step: StepBuilder):
    """The step that runs ``n`` (a control node or a constant) on a slot list. The nodes of
    its blocks get their steps from ``node_step`` (fused kernels, op-table ops, control), so
    the plan passes its own builder and this module needs nothing of the plan's."""
    outs = [slots[o] for o in n.outputs]
    if n.op == "constant":
        value = n.attr("value")

        def run_const(env):
            env[outs[0]] = value

        return run_const
    if n.op == "if":
        cond = _getter(n.inputs[0], slots)
        caps = [slots[v] for v in n.inputs[1:]]
        then_r, else_r = (BlockRunner(b, node_step) for b in n.blocks)

        def run_if(env):
            r = then_r if truth(cond(env)) else else_r
            res = r.run([env[s] for s in caps])
            for s, v in zip(outs, res):
                env[s] = v

        return run_if
    if n.op == "loop":
        k = n.attr("n_carried")
        trip_of = _getter(n.inputs[0], slots)
        cond_of = _getter(n.inputs[1], slots)
        init = [slots[v] for v in n.inputs[2 : 2 + k]]
        caps = [slots[v] for v in n.inputs[2 + k :]]
        body = BlockRunner(n.blocks[0], node_step)
        dev = _device_of(n)
        # a body whose next condition is the constant True (no break) needs no truth test
        first = n.blocks[0].results[0]
        always = isinstance(first, Const) and first.value is True

        def run_loop(env):
            trip = truth_int(trip_of(env))
            go = truth(cond_of(env))
            carried = [env[s] for s in init]
            captured = [env[s] for s in caps]
            i = 0
            while go and (trip < 0 or i < trip):
                res = body.run([index_tensor(i, dev), *carried, *captured])
                go = always or truth(res[0])
                carried = res[1:]
                i += 1
            for s, v in zip(outs, carried):
                env[s] = v

        return run_loop
    if n.op == "select":
        x_of, i_of = (_getter(v, slots) for v in n.inputs)
        d = n.attr("dim")

        def run_select(env):
            env[outs[0]] = select(x_of(env), i_of(env), d)

        return run_select
    if n.op == "print":
        getters = [_getter(v, slots) for v in n.inputs]
        a = n.attr_dict
        kinds, sep, end = a["kinds"], a.get("sep", " "), a.get("end", "\n")

        def run_print(env):
            sys.stdout.write(format_print(kinds, [g(env) for g in getters], sep, end))

        return run_print
    raise AssertionError(f"not a control node: {n.op}")  # the plan builds the others


__all__ = [
    "optimize_blocks", "interpret_node", "BlockRunner", "control_step", "select", "truth",
    "truth_int", "format_print",
]  # fmt: skip
