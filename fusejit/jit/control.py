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


def _py_value(kind: str, a):
    """The Python object a ``print`` / ``assert`` argument of ``kind`` stands for."""
    if kind == "int":
        return truth_int(a)
    if kind == "float":
        return float(a._device.backend.to_numpy(a._data).reshape(()))
    if kind == "bool":
        return truth(a)
    return a  # a tensor, or a constant


def format_part(kind: str, a, fmt: str = "") -> str:
    """One argument as an f-string field would show it: ``fmt`` is its conversion and format
    spec (``"!r"``, ``":.3f"``, ``"!s:>8"``; empty for ``str``)."""
    v = _py_value(kind, a)
    if not fmt:
        return str(v)
    conv, _, spec = fmt.partition(":")
    if conv == "!r":
        v = repr(v)
    elif conv == "!s":
        v = str(v)
    elif conv == "!a":
        v = ascii(v)
    return format(v, spec)


def format_print(kinds, args, sep=" ", end="\n", fmts=None) -> str:
    fmts = fmts or ("",) * len(kinds)
    return sep.join(format_part(k, a, f) for k, a, f in zip(kinds, args, fmts)) + end


def check_assert(cond, kinds=(), args=(), fmts=None, has_msg=False) -> None:
    """Raise ``AssertionError`` (with the message ``args`` make) unless ``cond`` holds."""
    if truth(cond):
        return
    e = AssertionError(format_print(kinds, args, "", "", fmts)) if has_msg else AssertionError()
    e.scripted_assert = True  # (what a loaded archive lets through as the user's own error)
    raise e


def update(x: Tensor, index, v: Tensor, dim: int = 0, inplace: bool = False) -> Tensor:
    """``x`` with its ``index`` along ``dim`` set to ``v``: a copy, or ``x`` itself written in
    place (``inplace``, where the plan knows nothing else reads ``x``)."""
    i = int(truth_int(index))
    size = x.shape[dim]
    if not -size <= i < size:
        raise DimError(f"index {i} is out of bounds for dim {dim} with size {size} (an item "
                       "assignment x[i] = v in a scripted function)")  # fmt: skip
    a = x._data if inplace else x._data.copy()
    if v._device is not x._device:  # a run-time Python number kept on another device
        v = v.to(x._device)
    a[(slice(None),) * dim + (i, Ellipsis)] = v._data
    return Tensor._wrap(a, x._dtype, x._device)


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
    elif n.op == "update":
        x, i, v = (val(v) for v in n.inputs)
        res = [update(x, i, v, n.attr("dim"))]
    elif n.op == "print":
        a = n.attr_dict
        sys.stdout.write(
            format_print(
                a["kinds"],
                [val(v) for v in n.inputs],
                a.get("sep", " "),
                a.get("end", "\n"),
                a.get("fmts"),
            )
        )
        res = []
    elif n.op == "assert":
        a = n.attr_dict
        args = [val(v) for v in n.inputs]
        check_assert(args[0], a["kinds"], args[1:], a.get("fmts"), a.get("has_msg", False))
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


def _updates_in_place(body: Block, k: int) -> tuple[Block, list]:
    """A loop body whose ``update`` nodes may write in place, and the carried values they
    write. A carried value qualifies when it passes only through a chain of ``update`` nodes
    (each the one reader of the value before it) to its own result: nothing else in the body
    reads the buffer, so after the loop copies its initial value once, each iteration may
    write its rows in place instead of copying the whole buffer."""
    uses: dict = {}
    for idx, m in enumerate(body.nodes):
        for pos, v in enumerate(m.inputs):
            if not isinstance(v, Const):
                uses.setdefault(v, []).append((idx, pos))
    for pos, v in enumerate(body.results):
        if not isinstance(v, Const):
            uses.setdefault(v, []).append((-1, pos))
    chosen: set = set()
    owned = []
    for j in range(k):
        v, chain = body.params[1 + j], []
        while True:
            u = uses.get(v, [])
            if len(u) != 1:
                break
            idx, pos = u[0]
            if idx < 0 or pos != 0 or body.nodes[idx].op != "update":
                break
            chain.append(idx)
            v = body.nodes[idx].outputs[0]
        if chain and uses.get(v) == [(-1, 1 + j)]:
            chosen.update(chain)
            owned.append(j)
    if not chosen:
        return body, []
    nodes = [replace(m, attrs=m.attrs + (("inplace", True),)) if i in chosen else m
             for i, m in enumerate(body.nodes)]  # fmt: skip
    return Block(body.params, nodes, body.results), owned


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
        body_block, owned = _updates_in_place(n.blocks[0], k)
        body = BlockRunner(body_block, node_step)
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
            if owned and go and trip != 0:  # buffers the body writes in place: one copy each
                for j in owned:
                    t = carried[j]
                    carried[j] = Tensor._wrap(t._data.copy(), t._dtype, t._device)
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
        fmts = a.get("fmts")

        def run_print(env):
            sys.stdout.write(format_print(kinds, [g(env) for g in getters], sep, end, fmts))

        return run_print
    if n.op == "assert":
        cond_of = _getter(n.inputs[0], slots)
        getters = [_getter(v, slots) for v in n.inputs[1:]]
        a = n.attr_dict
        kinds, fmts, has_msg = a["kinds"], a.get("fmts"), a.get("has_msg", False)

        def run_assert(env):
            if not truth(cond_of(env)):
                check_assert(False, kinds, [g(env) for g in getters], fmts, has_msg)

        return run_assert
    if n.op == "update":
        x_of, i_of, v_of = (_getter(v, slots) for v in n.inputs)
        d = n.attr("dim")
        inplace = n.attr("inplace", False)

        def run_update(env):
            env[outs[0]] = update(x_of(env), i_of(env), v_of(env), d, inplace)

        return run_update
    raise AssertionError(f"not a control node: {n.op}")  # the plan builds the others


__all__ = [
    "optimize_blocks", "interpret_node", "BlockRunner", "control_step", "select", "truth",
    "truth_int", "format_print", "format_part", "check_assert", "update",
]  # fmt: skip
