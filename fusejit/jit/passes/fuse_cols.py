"""Column fusion: reductions over leading or middle dims (``dy.sum(0)``, ``x.sum((0, 1))`` of a
3-D tensor, ``x.sum(1)`` of a 3-D tensor), with the elementwise ops before and after them,
become one ``fused`` node whose kernel accumulates the kept columns while it walks the reduced
rows (see ``codegen/cols.py``). Runs after row fusion, on the reductions it left.

A region grows from a reduction over the consecutive dims ``[a, b)`` of its input's shape F,
``b`` before the last dim (the *seed*). A node joins when it has a role in that domain:

- *full*: an elementwise op with output shape F whose region inputs are full values (tensors
  from outside broadcast: a per-column bias, a scalar);
- *reduction*: a sum, mean, amax or amin (the op table's ``Reduce`` facts) of a full value
  over the same dims, keepdim or not;
- *out*: an elementwise op on reduction results (shape F with the reduced dims 1, or without
  them), all its region inputs of that same shape;
- *view*: a reshape of an out value between those two shapes.

Growth is greedy over the neighbours of the region (producers, consumers and the other readers
of its inputs, so that ``(dy * xhat).sum(0)`` and ``dy.sum(0)`` share one kernel and read
``dy`` once), keeping the region convex, as row fusion does. A full value that reads a
reduction's result would need a second pass over F and does not join. A lone column reduction
is a region of its own (one threaded pass, as fast as numpy's or faster: bench/RESULTS.md).

Not fused, with the reason in ``graph.notes["unfused_rows"]`` (reported by elementwise
fusion): reductions over dims that are not consecutive (``x.sum((0, 2))``), over dims of size 1
only, amax/amin of bool, and the other reductions (prod, argmax, ...).
"""

from __future__ import annotations

from fusejit.base import dtypes as dt
from fusejit.codegen.body import Step
from fusejit.codegen.cols import ColBody, drop_shape, keep_shape, view_of
from fusejit.codegen.rows import reduce_facts
from fusejit.ir.graph import Block, Const, Graph, Node, Value
from fusejit.jit.passes.fuse_rows import (
    _convex,
    _dims_of,
    _ew_ok,
    _Graph,
    _step_dtypes,
    replace_regions,
)


class _Domain:
    """Full shape F reduced over ``[a, b)``: out values have shape ``keep`` or ``drop``."""

    __slots__ = ("F", "a", "b", "keep", "drop")

    def __init__(self, F: tuple, a: int, b: int) -> None:
        self.F, self.a, self.b = F, a, b
        self.keep = keep_shape(F, a, b)
        self.drop = drop_shape(F, a, b)

    def __eq__(self, other) -> bool:
        return isinstance(other, _Domain) and (self.F, self.a, self.b) == (
            other.F,
            other.a,
            other.b,
        )

    def __hash__(self) -> int:
        return hash((self.F, self.a, self.b))


def _domain(n: Node) -> tuple[_Domain | None, str | None]:
    """The column domain reduction ``n`` seeds; (None, why) when it cannot be fused, (None,
    None) when it is not a column reduction at all (a row reduction, not a reduction)."""
    if reduce_facts(n.op) is None:
        return None, None
    x = n.inputs[0]
    F = tuple(x.type.shape)
    rank = len(F)
    dims = _dims_of(n, rank)
    if rank == 0 or not dims or dims == tuple(range(rank - len(dims), rank)):
        return None, None  # (trailing dims: a row reduction)
    a, b = dims[0], dims[-1] + 1
    if dims != tuple(range(a, b)):
        return None, ("reduces over dims that are not consecutive (a column kernel reduces one "
                      "block of consecutive dims)")  # fmt: skip
    if n.op in ("amax", "amin") and x.type.dtype is dt.bool_:
        return None, f"{n.op} of a bool tensor runs eager"
    if x.type.device != n.outputs[0].type.device:
        return None, "inputs on several devices"
    if all(F[d] == 1 for d in dims):
        return None, "reduces over dims of size 1 only"
    return _Domain(F, a, b), None


def _role(n: Node, dom: _Domain, form_of: dict):
    """(role, form) of ``n`` in ``dom`` given the forms of the region's values so far (form:
    "full", "keep" or "drop"), or None when ``n`` cannot join."""
    if len(n.outputs) != 1:
        return None
    out = n.outputs[0].type.shape
    if reduce_facts(n.op) is not None:
        d, _ = _domain(n)
        if d != dom or form_of.get(n.inputs[0], "full") != "full":
            return None
        return "reduction", "keep" if n.attr("keepdim") else "drop"
    if n.op == "reshape":
        src = form_of.get(n.inputs[0])
        if src not in ("keep", "drop"):
            return None
        want = "drop" if src == "keep" else "keep"
        return ("view", want) if out == (dom.drop if want == "drop" else dom.keep) else None
    if not _ew_ok(n, ""):
        return None
    vals = [v for v in n.inputs if isinstance(v, Value)]
    ins = [form_of.get(v) for v in vals]
    if out == dom.F:
        if any(f not in (None, "full") for f in ins):
            return None  # reads a reduction's result: a second pass over F
        return "full", "full"
    for form, shape in (("keep", dom.keep), ("drop", dom.drop)):
        if out == shape:
            if any(f is not None and (f != form or v.type.shape != shape)
                   for v, f in zip(vals, ins)):  # fmt: skip
                return None
            return "out", form
    return None


def _forms(members, nodes: list, dom: _Domain) -> dict | None:
    form_of: dict = {}
    for i in sorted(members):
        r = _role(nodes[i], dom, form_of)
        if r is None:
            return None
        form_of[nodes[i].outputs[0]] = r[1]
    return form_of


def _grow(seed: int, dom: _Domain, G: _Graph, region_of: dict, regions: list) -> set:
    S = {seed}
    changed = True
    while changed:
        changed = False
        near: set = set()
        made = {o for i in S for o in G.nodes[i].outputs}
        for i in S:
            near |= G.preds(i) | G.consumers[i]
            for v in G.nodes[i].inputs:  # siblings: other readers of the region's inputs
                if isinstance(v, Value) and v not in made:
                    near |= G.readers.get(v, set())
        for m in sorted(near - S):
            if m in region_of or len(G.nodes[m].outputs) != 1:
                continue
            cand = S | {m}
            if _forms(cand, G.nodes, dom) is None or not _convex(cand, G, region_of, regions):
                continue
            S = cand
            changed = True
    return S


def fuse_cols(g: Graph, target: str = "cpu") -> tuple[Graph, bool]:
    """Form column regions (see the module docstring); the reasons for the column reductions
    left unfused replace row fusion's in ``graph.notes["unfused_rows"]``."""
    G = _Graph(g)
    made = g.notes.get("decomposed", frozenset())
    region_of: dict = {}
    regions: list = []
    domains: list = []
    why: dict = {}
    for i, n in enumerate(G.nodes):
        if i in region_of or n.op == "fused":
            continue
        dom, reason = _domain(n)
        if dom is None:
            if reason is not None:
                why[n] = reason
            continue
        S = _grow(i, dom, G, region_of, regions)
        for m in S:
            region_of[m] = len(regions)
        regions.append(sorted(S))
        domains.append(dom)
    regions, domains, region_of = _merge(G, regions, domains)
    out = g.copy_with()
    notes = dict(g.notes.get("unfused_rows", {}))
    notes.update(why)
    for i in region_of:
        notes.pop(G.nodes[i], None)
    out.notes["unfused_rows"] = notes
    if not regions:
        return out, False
    return replace_regions(out, G, regions, region_of, lambda k, members, exports: make_col_node(
        members, exports, domains[k], target, made)), True  # fmt: skip


def _merge(G: _Graph, regions: list, domains: list) -> tuple[list, list, dict]:
    """Join regions of one domain when the union is still one pass and convex (the weight
    and bias gradients of a layer norm whose product ``dy * xhat`` a row kernel computes): one
    kernel, one launch, instead of two."""
    regions = [set(r) for r in regions]
    domains = list(domains)
    k = 0
    while k < len(regions):
        j = k + 1
        while j < len(regions):
            if domains[j] == domains[k]:
                region_of = {m: i for i, r in enumerate(regions) if i not in (j, k) for m in r}
                rest = [r for i, r in enumerate(regions) if i not in (j, k)]
                index = {i: n for n, i in enumerate(i for i in range(len(regions))
                                                    if i not in (j, k))}  # fmt: skip
                region_of = {m: index[i] for m, i in region_of.items()}
                union = regions[k] | regions[j]
                # (every member keeps a role: a full value may not read a reduction's result
                # that the other region computes, ``x / x.sum(0)`` summed again)
                ok = _forms(union, G.nodes, domains[k]) is not None
                if ok and _convex(union, G, region_of, rest):
                    regions[k] = union
                    del regions[j], domains[j]
                    continue
            j += 1
        k += 1
    region_of = {m: i for i, r in enumerate(regions) for m in r}
    return [sorted(r) for r in regions], domains, region_of


def make_col_node(members: list, exports: list, dom: _Domain, target: str, made) -> Node:
    """The ``fused`` node of a column region: attrs body (a ``ColBody``), kernel_key, target,
    and shape_generic=False when it holds a reshape the user wrote."""
    rank, a, b = len(dom.F), dom.a, dom.b
    form_of: dict = {}
    ext: list = []
    ext_idx: dict = {}
    ports: list = []
    port_idx: dict = {}
    refs: dict = {}
    steps, spaces = [], []
    generic = True
    strict = False

    def port(v, dropped: bool):
        view = view_of(v.type.shape, rank, a, b, dropped)
        if v not in ext_idx:
            ext_idx[v] = len(ext)
            ext.append(v)
        key = (v, view, dropped)
        if key not in port_idx:
            port_idx[key] = len(ports)
            ports.append((ext_idx[v], view, v.type.dtype.name, dropped))
        return ("in", port_idx[key])

    for n in members:
        role, form = _role(n, dom, form_of)
        o = n.outputs[0]
        form_of[o] = form
        if role == "view":
            refs[o] = refs[n.inputs[0]]
            generic &= o in made
            continue
        compute, res = _step_dtypes(n)
        args = []
        for v in n.inputs:
            if isinstance(v, Const):
                args.append(("c", v.value, compute.name))
            elif v in refs:
                args.append(refs[v])
            else:
                args.append(port(v, role == "out" and form == "drop"))
        attrs = tuple(
            (k, x.name if k == "dtype" else x)
            for k, x in sorted(n.attr_dict.items())
            if role != "reduction"
        )
        if role == "reduction" and n.op in ("amax", "amin") and o not in made:
            strict = True
        steps.append(Step(n.op, tuple(args), attrs, compute.name, res.name))
        spaces.append("full" if role == "full" else "out")
        refs[o] = ("t", len(steps) - 1)
    body = ColBody(
        rank=rank,
        a=a,
        b=b,
        ports=tuple(ports),
        steps=tuple(steps),
        spaces=tuple(spaces),
        outputs=tuple((refs[v], form_of[v]) for v in exports),
        strict_empty=strict,
    )
    block = Block(list(ext), list(members), list(exports))
    attrs = [("body", body), ("kernel_key", body.key())]
    if not generic:
        attrs.append(("shape_generic", False))
    attrs.append(("target", target))
    return Node("fused", tuple(ext), tuple(attrs), tuple(exports), (block,))


__all__ = ["fuse_cols", "make_col_node"]
