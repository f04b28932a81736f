"""Dead-code elimination, common-subexpression elimination and constant folding."""

from __future__ import annotations

from dataclasses import replace

from fusejit.ir.control import has_effect
from fusejit.ir.graph import Block, Const, Graph, Value
from fusejit.jit.interpret import run_block


def dce(g: Graph) -> tuple[Graph, bool]:
    """Drop nodes none of whose outputs is used (no op in the IR has side effects)."""
    live = set(g.block.results)
    keep = []
    for n in reversed(g.block.nodes):
        if any(o in live for o in n.outputs) or has_effect(n):
            keep.append(n)
            live.update(v for v in n.inputs if isinstance(v, Value))
            for b in n.blocks:
                live.update(_free_values(b))
    keep.reverse()
    changed = len(keep) != len(g.block.nodes)
    return (g.copy_with(nodes=keep) if changed else g), changed


def _free_values(block: Block):
    for n in block.nodes:
        yield from (v for v in n.inputs if isinstance(v, Value))
    yield from block.results


def _key(n, rep):
    # constants by type and repr: 0.0 == -0.0 (and hash equal), yet x * 0.0 != x * -0.0
    ins = tuple(rep.get(v, v) if isinstance(v, Value) else ("c", type(v.value), repr(v.value))
                for v in n.inputs)  # fmt: skip
    return (n.op, ins, n.attrs, tuple((o.type.dtype, o.type.shape) for o in n.outputs))


def cse(g: Graph) -> tuple[Graph, bool]:
    """Reuse the first of several nodes with the same op, inputs and attributes."""
    seen: dict = {}
    rep: dict = {}
    nodes = []
    for n in g.block.nodes:
        if n.blocks or has_effect(n):
            nodes.append(_rewire(n, rep))
            continue
        try:
            k = _key(n, rep)
            hash(k)
        except TypeError:
            nodes.append(_rewire(n, rep))
            continue
        prev = seen.get(k)
        if prev is not None:
            for o, p in zip(n.outputs, prev.outputs):
                rep[o] = p
            continue
        n2 = _rewire(n, rep)
        seen[k] = n2
        nodes.append(n2)
    if not rep:
        return g, False
    results = [rep.get(v, v) for v in g.block.results]
    return g.copy_with(nodes=nodes, results=results), True


def _rewire(n, rep):
    if not rep or not any(isinstance(v, Value) and v in rep for v in n.inputs):
        return n
    return replace(n, inputs=tuple(rep.get(v, v) if isinstance(v, Value) else v
                                   for v in n.inputs))  # fmt: skip


def constant_fold(g: Graph, frozen: set | None = None) -> tuple[Graph, bool]:
    """Evaluate nodes whose tensor inputs are all ``frozen`` captured values (tensors the
    caller promises never change, e.g. created inside the traced function), replacing their
    outputs with new frozen captured values. Live weights are never folded."""
    if not frozen:
        return g, False
    env = dict(zip(g.block.params, [None] * g.n_inputs + list(g.captured)))
    known = set(frozen) & set(g.block.params[g.n_inputs :])  # inputs have no data to fold
    nodes, new_params, new_caps = [], [], []
    changed = False
    for n in g.block.nodes:
        tins = [v for v in n.inputs if isinstance(v, Value)]
        if tins and not n.blocks and not has_effect(n) and all(v in known for v in tins):
            vals = run_block(Block(list(tins), [n], list(n.outputs)), {v: env[v] for v in tins})
            for o, t in zip(n.outputs, vals):
                env[o] = t
                known.add(o)
                new_params.append(o)
                new_caps.append(t)
            changed = True
            continue
        nodes.append(n)
    if not changed:
        return g, False
    out = g.copy_with(nodes=nodes)
    out.block.params.extend(new_params)
    out.captured.extend(new_caps)
    frozen.update(new_params)
    return dce_params(out), True


def dce_params(g: Graph) -> Graph:
    """Drop captured params nothing reads any more."""
    used = set(g.block.results)
    for n in g.block.nodes:
        used.update(v for v in n.inputs if isinstance(v, Value))
        for b in n.blocks:
            used.update(_free_values(b))
    params = list(g.block.params[: g.n_inputs])
    caps = []
    for p, t in zip(g.block.params[g.n_inputs :], g.captured):
        if p in used:
            params.append(p)
            caps.append(t)
    out = g.copy_with()
    out.block.params = params
    out.captured = caps
    return out


__all__ = ["dce", "cse", "constant_fold", "Const"]
