"""Control flow in the graph IR: the ``if``, ``loop``, ``print`` and ``select`` nodes.

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
    (``tensor``, ``int``, ``float``, ``bool`` or ``const``).
``select``
    ``y = select[dim=d](x, i)``: ``x`` indexed by the 0-d int64 tensor ``i`` along ``d`` (a view),
    for ``x[i]`` with a loop index.

This module verifies, interprets, optimizes (block by block) and runs these nodes; a loop
body's steps, and so its kernels, are built once when the enclosing plan is built.
"""

from __future__ import annotations

import sys
from dataclasses import replace

import numpy as np

from fusejit.base import dtypes as dt
from fusejit.base.errors import DimError
from fusejit.eager import dispatch
from fusejit.eager.tensor import Tensor
from fusejit.ir.graph import Block, Const, Graph, Node, TensorType, Value

CONTROL_OPS = frozenset({"if", "loop", "print", "select"})
BLOCK_LABELS = {"if": ("then", "else"), "loop": ("body",)}


# ---- checking ------------------------------------------------------------------------------
def verify_node(n: Node, fail) -> None:
    """Check the arity and types of a control node; ``fail(msg)`` raises."""
    if n.op == "if":
        if len(n.blocks) != 2 or not n.inputs:
            fail("if needs a condition and two blocks")
        caps = n.inputs[1:]
        for b in n.blocks:
            _check_params(b, caps, fail, "if")
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
        _check_params(Block(body.params[1:], [], []), list(init) + list(caps), fail, "loop")
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
    elif n.op == "print":
        if n.outputs or len(n.attr("kinds", ())) != len(n.inputs):
            fail("print has no outputs and one kind per argument")


def _check_params(b: Block, values, fail, what) -> None:
    if len(b.params) != len(values):
        fail(f"{what}: a block has {len(b.params)} parameters for {len(values)} inputs")
    for p, v in zip(b.params, values):
        if not isinstance(v, Value) or p.type != v.type:
            fail(f"{what}: block parameter {p!r} does not match its input")


def _check_results(results, outputs, fail, what) -> None:
    if len(results) != len(outputs):
        fail(f"{what}: a block returns {len(results)} values for {len(outputs)} outputs")
    for r, o in zip(results, outputs):
        if r.type != o.type:
            fail(f"{what}: block result {r!r} has another type than output {o!r}")


def _check_cond(c, fail, what) -> None:
    if isinstance(c, Const):
        if not isinstance(c.value, bool):
            fail(f"{what}: a constant condition must be a bool")
    elif int(np.prod(c.type.shape, dtype=np.int64)) != 1:
        fail(f"{what}: the condition must be a one-element tensor")


def has_effect(n: Node) -> bool:
    """Whether ``n`` (or a node in its blocks) has a side effect the passes must keep."""
    return n.op == "print" or any(has_effect(m) for b in n.blocks for m in b.nodes)


def has_control(g: Graph) -> bool:
    return any(n.op in CONTROL_OPS for n in g.block.nodes)


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
    """A block's steps over numbered slots, built (and its kernels compiled) once."""

    def __init__(self, block: Block, kernels: list) -> None:
        slots: dict = {}
        for p in block.params:
            slots[p] = len(slots)
        self.n_params = len(slots)
        self.steps = []
        for n in block.nodes:
            for o in n.outputs:
                slots[o] = len(slots)
            self.steps.append(build_step(n, slots, kernels))
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


def build_step(n: Node, slots: dict, kernels: list):
    """The step that runs node ``n`` on a slot list (fused kernels, op-table ops, control)."""
    outs = [slots[o] for o in n.outputs]
    if n.op == "fused":
        from fusejit.jit.runtime import fused_step

        return fused_step(n, slots, kernels)
    if n.op == "constant":
        value = n.attr("value")

        def run_const(env):
            env[outs[0]] = value

        return run_const
    if n.op == "if":
        cond = _getter(n.inputs[0], slots)
        caps = [slots[v] for v in n.inputs[1:]]
        then_r, else_r = (BlockRunner(b, kernels) for b in n.blocks)

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
        body = BlockRunner(n.blocks[0], kernels)
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
    args = [_getter(v, slots) for v in n.inputs]
    attrs = n.attr_dict
    name = n.op
    call = dispatch.call

    def run_op(env):
        res = call(name, *[g(env) for g in args], **attrs)
        if len(outs) == 1:
            env[outs[0]] = res
        else:
            for s, r in zip(outs, res):
                env[s] = r

    return run_op


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
    "CONTROL_OPS", "verify_node", "has_effect", "optimize_blocks", "interpret_node",
    "BlockRunner", "build_step", "select", "count_fused", "scalar_type",
]  # fmt: skip
