"""Elementwise fusion: maximal connected regions of elementwise ops become ``fused`` nodes.

A region holds elementwise ops (with broadcasting, Python-scalar operands, casts, ``where``,
comparisons) of one output shape on one device. Merging never creates a cycle: a node joins a
region only when none of its inputs reaches the region through a node outside it. Regions that
read a common value (siblings: ``x.exp()`` and ``x.sin()``) then join when neither reaches the
other, so the value is read once. A value made
inside a region and also needed outside is exported as an extra output. Each node left unfused
gets a reason in ``graph.notes["unfused"]``; an op that row fusion kept out of a row kernel
and that became a kernel here keeps row fusion's reason in ``graph.notes["second_kernel"]``.

A lone elementwise op is a region of its own, on both targets. On the CPU its kernel runs
threaded, with the vectorized transcendental functions, and with less host time than the eager
op (``bench/RESULTS.md``, sixth round: 1.05-3.6x faster on 2^22-2^24 elements, 2.6x less time
on 4096). On CUDA the generated kernel moves memory faster than cupy's (seventh round, H100:
1.2-2.1x less device time on 2^24 elements).
"""

from __future__ import annotations

import contextlib
from dataclasses import replace

from fusejit.codegen import cpu as cpu_codegen
from fusejit.codegen.body import KernelBody, Step
from fusejit.eager import dispatch
from fusejit.ir.graph import Block, Const, Graph, Node, Value
from fusejit.ops.registry import OPS


def _fusible(n: Node, target: str) -> str | None:
    """None when ``n`` may join a region on ``target``, else why not."""
    op = OPS.get(n.op)
    if op is None or n.blocks:
        return f"{n.op} is not an op-table op"
    if op.kind != "elementwise":
        return f"{op.kind} op (only elementwise ops fuse)"
    if op.expr is None:
        return "no code-generation expression"
    types = [v.type for v in n.inputs if isinstance(v, Value)] + [o.type for o in n.outputs]
    if len({t.device for t in types}) > 1:
        return "inputs on several devices"
    if any(t.dtype.kind == "c" for t in types):
        return "complex values are computed eagerly (no generated kernel takes them)"
    return None


class _UF:
    def __init__(self) -> None:
        self.parent: dict = {}

    def find(self, a):
        while self.parent.get(a, a) != a:
            a = self.parent[a]
        return a

    def union(self, a, b):
        self.parent[self.find(b)] = self.find(a)


# the fewest ops that make a region, per target (see the module's docstring)
MIN_REGION = {"cpu": 1, "cuda": 1}


@contextlib.contextmanager
def min_region(target: str, n: int):
    """Within the block, a region on ``target`` needs ``n`` ops (for benchmarks that compare
    a lone op run eagerly with a kernel of its own)."""
    old = MIN_REGION[target]
    MIN_REGION[target] = n
    try:
        yield
    finally:
        MIN_REGION[target] = old


def fuse_elementwise(
    g: Graph, target: str = "cpu", min_size: int | None = None
) -> tuple[Graph, bool]:
    if min_size is None:
        min_size = MIN_REGION[target]
    nodes = g.block.nodes
    producer = {}
    for i, n in enumerate(nodes):
        for o in n.outputs:
            producer[o] = i
    uf = _UF()
    group = {}  # node index -> group id (a node index, resolved through uf)
    # The graph of "units" (a region, by its root id, or an unfused node, by its index): the
    # ids of the units feeding each unit, resolved through uf when read. Merging is decided on
    # this quotient graph, so a region never reaches itself through a node or region outside.
    preds: dict = {}
    unfused = {}

    def unit(p):
        return uf.find(group[p]) if p in group else p

    for i, n in enumerate(nodes):
        ins = [producer[v] for v in n.inputs if isinstance(v, Value) and v in producer]
        in_units = {unit(p) for p in ins}
        reason = _fusible(n, target)
        if reason is not None:
            unfused[i] = reason
            preds[i] = set(in_units)
            continue
        shape = n.outputs[0].type.shape
        gid = None
        for p in ins:
            if p not in group:
                continue
            cand = unit(p)
            if cand == gid or nodes[cand].outputs[0].type.shape != shape:
                continue
            # joining ``cand`` would make a cycle if another input of this node is downstream
            # of ``cand`` (cand -> ... -> input -> this node, now inside cand)
            if any(
                u != cand and _reaches(cand, u, preds, uf) for u in {uf.find(x) for x in in_units}
            ):
                continue
            # (that includes ``gid``; and ``gid`` reaches no other input since it was chosen,
            # so merging the two units contracts no path through anything outside them)
            if gid is None:
                gid = cand
            else:
                uf.union(gid, cand)
                preds[gid] |= preds.pop(cand, set())
        if gid is None:
            gid = i
            uf.parent[i] = i
        group[i] = gid
        preds.setdefault(gid, set()).update(in_units)
    _merge_siblings(nodes, group, uf, preds)
    members = _members(group, uf)
    regions = [sorted(m) for m in members.values() if len(m) >= min_size]
    for m in members.values():
        if len(m) < min_size:
            for i in m:
                unfused[i] = "no elementwise neighbour to fuse with"
    # a row region (a ``fused`` node from fuse_rows) is fused, not unfused; a reduction row
    # fusion left out is reported with row fusion's reason
    row_why = g.notes.get("unfused_rows", {})
    notes = [
        (nodes[i].op, row_why.get(nodes[i], r))
        for i, r in sorted(unfused.items())
        if nodes[i].op != "fused"
    ]
    # ops row fusion left to a kernel of their own (a whole tensor's reduction read with the
    # tensor again, on cuda): fused here, but explain still says why they are a second kernel
    second = [(nodes[i].op, row_why[nodes[i]]) for m in regions for i in m if nodes[i] in row_why]
    if not regions:
        out = g.copy_with()
        out.notes.pop("unfused_rows", None)
        out.notes["unfused"] = notes
        return out, False
    used_outside = _used_outside(g, regions)
    in_region = {i: k for k, m in enumerate(regions) for i in m}
    new_nodes = []
    emitted = set()
    for i, n in enumerate(nodes):
        k = in_region.get(i)
        if k is None:
            new_nodes.append(n)
        elif k not in emitted:
            emitted.add(k)
            new_nodes.append(_make_fused([nodes[j] for j in regions[k]], used_outside[k], target))
    out = g.copy_with(nodes=_toposort(new_nodes, g.block.params))
    out.notes.pop("unfused_rows", None)
    out.notes["unfused"] = notes
    if second:
        out.notes["second_kernel"] = second
    return out, True


def _members(group: dict, uf: _UF) -> dict:
    """Unit root -> the node indices in it, in node order."""
    members: dict = {}
    for i in group:
        members.setdefault(uf.find(group[i]), []).append(i)
    return members


def _merge_siblings(nodes: list, group: dict, uf: _UF, preds: dict) -> None:
    """Join units (regions, or single fusible nodes) of one output shape and device that read a
    common value and have no path between them: the value is then read once and one kernel
    runs instead of two. With no path either way, contracting the two makes no cycle."""
    members = _members(group, uf)
    readers: dict = {}  # value -> units that read it from outside themselves, in node order
    for root in sorted(members, key=lambda r: min(members[r])):
        m = members[root]
        inside = {o for i in m for o in nodes[i].outputs}
        for i in m:
            for v in nodes[i].inputs:
                if isinstance(v, Value) and v not in inside:
                    units = readers.setdefault(v, [])
                    if root not in units:
                        units.append(root)

    def kind(u):
        t = nodes[u].outputs[0].type
        return t.shape, t.device

    for units in readers.values():
        for k, u in enumerate(units):
            for w in units[:k]:
                a, b = uf.find(w), uf.find(u)
                if a == b:
                    break
                if kind(a) != kind(b) or _reaches(a, b, preds, uf) or _reaches(b, a, preds, uf):
                    continue
                uf.union(a, b)
                preds[a] = preds.get(a, set()) | preds.pop(b, set())
                break


def _reaches(src, dst, preds, uf) -> bool:
    """Whether unit ``src`` is upstream of unit ``dst`` in the graph of units."""
    stack, seen = [dst], {dst}
    while stack:
        u = stack.pop()
        for w in preds.get(u, ()):
            w = uf.find(w)
            if w == src:
                return True
            if w != u and w not in seen:
                seen.add(w)
                stack.append(w)
    return False


def _used_outside(g: Graph, regions) -> list:
    in_region = {}
    for k, m in enumerate(regions):
        for i in m:
            for o in g.block.nodes[i].outputs:
                in_region[o] = k
    out = [[] for _ in regions]
    seen = [set() for _ in regions]

    def mark(v, reader_region):
        k = in_region.get(v)
        if k is not None and k != reader_region and v not in seen[k]:
            seen[k].add(v)
            out[k].append(v)

    reg_of_node = {i: k for k, m in enumerate(regions) for i in m}
    for i, n in enumerate(g.block.nodes):
        for v in n.inputs:
            if isinstance(v, Value):
                mark(v, reg_of_node.get(i))
    for v in g.block.results:
        mark(v, None)
    return out


def region_body(members: list, exports: list) -> tuple[KernelBody, list]:
    """The target-independent kernel body of a region, and its external input values."""
    ext: list = []
    ext_idx: dict = {}
    refs: dict = {}
    steps = []
    for j, n in enumerate(members):
        op = OPS[n.op]
        attrs = n.attr_dict
        operands = [v.type if isinstance(v, Value) else v.value for v in n.inputs]
        compute, out = dispatch.elementwise_dtypes(op, operands, attrs)
        args = []
        for v in n.inputs:
            if isinstance(v, Const):
                args.append(("c", v.value, compute.name))
            elif v in refs:
                args.append(refs[v])
            else:
                if v not in ext_idx:
                    ext_idx[v] = len(ext)
                    ext.append(v)
                args.append(("in", ext_idx[v]))
        step_attrs = tuple((k, a.name if k == "dtype" else a) for k, a in sorted(attrs.items()))
        steps.append(Step(n.op, tuple(args), step_attrs, compute.name, out.name))
        refs[n.outputs[0]] = ("t", j)
    body = KernelBody(
        in_dtypes=tuple(v.type.dtype.name for v in ext),
        steps=tuple(steps),
        outputs=tuple(refs[v] for v in exports),
    )
    return body, ext


def _make_fused(members: list, exports: list, target: str) -> Node:
    body, ext = region_body(members, exports)
    reason = cpu_codegen.supports(body) if target == "cpu" else None
    assert reason is None, reason
    block = Block(list(ext), list(members), list(exports))
    attrs = (("body", body), ("kernel_key", body.key()), ("target", target))
    return Node("fused", tuple(ext), attrs, tuple(exports), (block,))


def _toposort(nodes: list, params) -> list:
    """Stable topological order (a fused node sits where its inputs are all available)."""
    defined = set(params)
    pending = list(nodes)
    out = []
    while pending:
        rest = []
        progressed = False
        for n in pending:
            if all(not isinstance(v, Value) or v in defined for v in n.inputs) and all(
                v in defined or v in n.outputs for b in n.blocks for v in _block_free(b, n)
            ):
                out.append(n)
                defined.update(n.outputs)
                progressed = True
            else:
                rest.append(n)
        if not progressed:
            raise AssertionError("fusion produced a cycle")
        pending = rest
    return out


def _block_free(b: Block, n: Node):
    inner = set(b.params)
    for m in b.nodes:
        inner.update(m.outputs)
    return [v for m in b.nodes for v in m.inputs if isinstance(v, Value) and v not in inner]


__all__ = ["fuse_elementwise", "min_region", "MIN_REGION", "region_body", "replace"]
