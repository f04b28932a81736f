"""Row fusion: reductions over trailing dims, with the elementwise ops before and after them,
become one ``fused`` node whose kernel computes one row at a time (see ``codegen/rows.py``).

A region grows from a reduction (the *seed*), which fixes its domain: the full shape F of the
reduced value and the number k of trailing dims reduced. A node joins when it has a role in
that domain:

- *full*: an elementwise op with output shape F whose region inputs are full values or
  per-row values of shape O + (1,)*k (which broadcast over the row);
- *reduction*: a row reduction (sum, mean, amax or amin: the op table's entries with ``Reduce``
  facts) of a full value over exactly the k trailing dims (dim=None counts as every dim: the
  whole tensor is one row), keepdim or not;
- *row*: an elementwise op with output shape O + (1,)*k or O whose region inputs are per-row
  values of that same shape; or whose output has one element (a *scalar*: the scaled
  gradient of a mean loss) and whose inputs are such values or one-element tensors from outside
  (computed again in each row, cheaper than a kernel of its own);
- *view*: a reshape of a per-row value between those two shapes (or to its own shape); an
  ``expand`` to F of a per-row value or of a tensor from outside, which the ops reading it
  broadcast themselves (the derivative rules of sums and means write them); such a view whose
  value is needed outside the region stays out of it.

Growth is greedy over the neighbours of the region (producers, consumers, and the other readers
of the tensors it reads, so that reductions of one input share a kernel), in graph order, and
keeps the region convex: no path leaves it and comes back (through a node, or through
another region, which becomes a single node too). Tensors from outside are broadcast into the
kernel (a weight of shape I, a per-row bias, a scalar).

On CUDA a reduction of the whole tensor (one row) runs on many blocks, each reducing a part
(``cuda_rows.split_blocks``), which needs the region to be one pass over the tensor: there, an
elementwise op that reads the reduction's result (``x - x.mean()``) does not join the region
and runs as a kernel of its own after it, with that reason in the notes.

Not fused, with the reason in ``graph.notes["unfused"]``: reductions over leading or middle
dims (a row kernel reads rows along the trailing dims; column fusion, ``fuse_cols.py``, takes
those over consecutive dims), other reductions (prod, argmax, ...;
var and std are decomposed into sums first), a reduction with no fusible neighbour. float16
is computed in float32 on both targets, read and written as float16.
"""

from __future__ import annotations

from fusejit.base import dtypes as dt
from fusejit.codegen.body import Step
from fusejit.codegen.rows import RowBody, full_view, reduce_facts, row_reductions, row_view
from fusejit.eager import dispatch
from fusejit.ir.graph import Block, Const, Graph, Node, Value, uses
from fusejit.jit.passes.fuse import _toposort
from fusejit.ops.registry import OPS


class _Domain:
    """Full shape F reduced over its k trailing dims: rows O = F[:-k]; per-row values have
    shape ``keep`` = O + (1,)*k or ``drop`` = O."""

    __slots__ = ("F", "k", "O", "keep", "drop")

    def __init__(self, F: tuple, k: int) -> None:
        self.F, self.k = F, k
        self.O = F[: len(F) - k]
        self.keep = self.O + (1,) * k
        self.drop = self.O

    def __eq__(self, other) -> bool:
        return isinstance(other, _Domain) and (self.F, self.k) == (other.F, other.k)

    def __hash__(self) -> int:
        return hash((self.F, self.k))


def _dims_of(n: Node, rank: int):
    d = n.attr("dim")
    if d is None:
        return tuple(range(rank))
    return tuple(sorted(set(d if isinstance(d, tuple) else (d,))))


def _domain(n: Node, target: str) -> tuple[_Domain | None, str | None]:
    """The domain a reduction node seeds, or (None, why it cannot be fused)."""
    if reduce_facts(n.op) is None:
        only = ", ".join(row_reductions())
        return None, f"{n.op} does not fuse into a row kernel (only {only})"
    x = n.inputs[0]
    F = tuple(x.type.shape)
    rank = len(F)
    dims = _dims_of(n, rank)
    if rank == 0 or not dims:
        return None, "reduction of a 0-d tensor"
    if dims != tuple(range(rank - len(dims), rank)):
        return None, ("reduces over leading or middle dims; only reductions over the trailing "
                      "dims fuse (a row kernel reads one row along them)")  # fmt: skip
    if n.op in ("amax", "amin") and x.type.dtype is dt.bool_:
        return None, f"{n.op} of a bool tensor runs eager"
    if x.type.device != n.outputs[0].type.device:
        return None, "inputs on several devices"
    return _Domain(F, len(dims)), None


def _ew_ok(n: Node, target: str) -> bool:
    op = OPS.get(n.op)
    if op is None or n.blocks or op.kind != "elementwise" or op.expr is None:
        return False
    types = [v.type for v in n.inputs if isinstance(v, Value)] + [o.type for o in n.outputs]
    # (complex values never enter a kernel)
    return len({t.device for t in types}) <= 1 and all(t.dtype.kind != "c" for t in types)


def _role(n: Node, dom: _Domain, form_of: dict, target: str):
    """(role, form) of ``n`` in ``dom`` given the forms of the region's values so far (form:
    "full", "keep" or "drop"), or None when ``n`` cannot join."""
    out = n.outputs[0].type.shape if len(n.outputs) == 1 else None
    if out is None:
        return None
    if reduce_facts(n.op) is not None:
        d, _ = _domain(n, target)
        if d != dom or form_of.get(n.inputs[0], "full") != "full":
            return None
        return "reduction", "keep" if n.attr("keepdim") else "drop"
    if n.op == "expand":
        # a per-row value (or a tensor from outside) broadcast over the rows: the ops reading
        # it broadcast it themselves (what a derivative rule of a mean or sum writes)
        src = form_of.get(n.inputs[0])
        one = src == "scalar" or (src is None and all(d == 1 for d in n.inputs[0].type.shape))
        if out in (dom.keep, dom.drop) and one:  # one value for every row
            return "view", "keep" if out == dom.keep else "drop"
        if out != dom.F or not (one or src in (None, "keep")):
            return None
        return "view", "bcast"
    if n.op == "reshape":
        src = form_of.get(n.inputs[0])
        if src is not None and out == n.inputs[0].type.shape:
            return "view", src  # (a reshape to the same shape, as the rules' keepdim does)
        if (
            src == "scalar" or (src is None and all(d == 1 for d in n.inputs[0].type.shape))
        ) and all(d == 1 for d in out):
            return "view", "scalar"
        if src is None and n.inputs[0].type.shape in (dom.keep, dom.drop):
            src = "keep" if n.inputs[0].type.shape == dom.keep else "drop"  # (from outside)
        if src not in ("keep", "drop") or dom.keep == dom.drop:
            return None
        want = "drop" if src == "keep" else "keep"
        return ("view", want) if out == (dom.drop if want == "drop" else dom.keep) else None
    if not _ew_ok(n, target):
        return None
    ins = [form_of.get(v) for v in n.inputs if isinstance(v, Value)]
    if out == dom.F:
        for f in ins:
            if f is None or f == "full":
                continue
            if target == "cuda" and not dom.O:
                return None  # a second pass over the whole tensor (see the module docstring)
            if f in ("keep", "bcast", "scalar"):
                continue
            if f == "drop" and not dom.O:  # per-row scalars of a single row
                continue
            return None
        return "full", "full"
    for form, shape in (("keep", dom.keep), ("drop", dom.drop)):
        if out == shape:
            vals = [v for v in n.inputs if isinstance(v, Value)]
            if any(f is not None and f != "scalar" and (f != form or v.type.shape != shape)
                   for v, f in zip(vals, ins)):  # fmt: skip
                return None
            return "row", form
    if all(d == 1 for d in out):
        # one value for the whole tensor (a loss's incoming gradient scaled): computed in each
        # row, from tensors from outside and other such values
        vals = [v for v in n.inputs if isinstance(v, Value)]
        if all(f == "scalar" or (f is None and all(d == 1 for d in v.type.shape))
               for v, f in zip(vals, ins)):  # fmt: skip
            return "row", "scalar"
    return None


def _forms(members: list, nodes: list, dom: _Domain, target: str) -> dict | None:
    """Forms of every value the members make, or None when some member has no role."""
    form_of: dict = {}
    for i in sorted(members):
        n = nodes[i]
        r = _role(n, dom, form_of, target)
        if r is None:
            return None
        form_of[n.outputs[0]] = r[1]
    return form_of


class _Graph:
    """Producers and consumers of the top-level nodes (uses in nested blocks count)."""

    def __init__(self, g: Graph) -> None:
        self.nodes = g.block.nodes
        self.producer = {o: i for i, n in enumerate(self.nodes) for o in n.outputs}
        index = {n: i for i, n in enumerate(self.nodes)}
        self.consumers: dict = {i: set() for i in range(len(self.nodes))}
        self.readers: dict = {}  # value -> top-level nodes reading it
        for v, readers in uses(g.block).items():
            self.readers[v] = {index[r] for r in readers if r in index}
            p = self.producer.get(v)
            if p is not None:
                self.consumers[p] |= self.readers[v]
        self.results = set(g.block.results)

    def preds(self, i: int):
        return {self.producer[v] for v in self.nodes[i].inputs
                if isinstance(v, Value) and v in self.producer}  # fmt: skip


def _convex(S: set, G: _Graph, region_of: dict, regions: list) -> bool:
    """No path from ``S`` back into ``S`` through nodes outside it (a region outside counts as
    one node: reaching any of its members reaches all of its outputs)."""
    stack = [c for i in S for c in G.consumers[i] if c not in S]
    seen = set(stack)
    while stack:
        u = stack.pop()
        nxt = set(G.consumers[u])
        r = region_of.get(u)
        if r is not None:
            for m in regions[r]:
                nxt |= G.consumers[m]
        for w in nxt:
            if w in S:
                return False
            if w not in seen:
                seen.add(w)
                stack.append(w)
    return True


def _grow(seed: int, dom: _Domain, G: _Graph, region_of: dict, regions: list, target):
    S = {seed}
    changed = True
    while changed:
        changed = False
        near: set = set()
        made = {o for i in S for o in G.nodes[i].outputs}
        for i in S:
            near |= G.preds(i) | G.consumers[i]
            # siblings: other readers of the region's inputs, so that an input read by several
            # reductions (or their elementwise prologues) is read once
            for v in G.nodes[i].inputs:
                if isinstance(v, Value) and v not in made:
                    near |= G.readers.get(v, set())
        for m in sorted(near - S):
            if m in region_of or len(G.nodes[m].outputs) != 1:
                continue
            cand = S | {m}
            if _forms(cand, G.nodes, dom, target) is None:
                continue
            if not _convex(cand, G, region_of, regions):
                continue
            S = cand
            changed = True
    return _drop_leaving_views(S, G, dom, target)


def _drop_leaving_views(S: set, G: _Graph, dom: _Domain, target: str) -> set:
    """``S`` without the broadcast views (``expand``) and values for the whole tensor whose
    value is read outside ``S`` or is a result: a kernel writes full values and per-row values,
    not those (removing them and what they are computed from keeps ``S`` convex)."""
    while True:
        forms = _forms(S, G.nodes, dom, target) or {}
        out = {i for i in S
               if forms.get(G.nodes[i].outputs[0]) in ("bcast", "scalar")
               and (G.nodes[i].outputs[0] in G.results or G.consumers[i] - S)}  # fmt: skip
        if not out:
            return S
        # with a value for the whole tensor, the ones it is computed from (all such values or
        # views of them: nothing else of S reaches them)
        stack = list(out)
        while stack:
            for p in G.preds(stack.pop()):
                if p in S and p not in out:
                    out.add(p)
                    stack.append(p)
        S = S - out


def _second_pass(S: set, dom: _Domain, G: _Graph, target: str) -> dict:
    """The elementwise nodes outside ``S`` that read a per-row value of ``S`` over the full
    shape (node -> the node of ``S`` it reads): where ``S`` reduces a whole tensor on CUDA,
    they cannot join it (see the module docstring)."""
    if target != "cuda" or dom.O:
        return {}
    out: dict = {}
    for m in sorted(S):
        if G.nodes[m].outputs[0].type.shape == dom.F:
            continue
        for c in sorted(G.consumers[m] - S):
            n = G.nodes[c]
            op = OPS.get(n.op)
            if op is not None and op.kind == "elementwise" and len(n.outputs) == 1:
                if n.outputs[0].type.shape == dom.F:
                    out.setdefault(c, m)
    return out


# on cuda, one kernel would need every block to wait for a whole-tensor reduction
_READER_WHY = (
    "reads the whole tensor's {red} and the tensor again: on cuda one kernel would "
    "need every block to wait for the reduction, so this runs as a second kernel"
)
_REDUCTION_WHY = (
    "{op} reads this whole-tensor reduction and the tensor again: on cuda one "
    "kernel would need every block to wait for the reduction, so {op} runs as a "
    "second kernel"
)


def fuse_rows(g: Graph, target: str = "cpu") -> tuple[Graph, bool]:
    """Form row regions (see the module docstring). Reasons for the reductions left unfused go
    to ``graph.notes["unfused_rows"]`` (node -> reason), which ``fuse_elementwise`` reports."""
    G = _Graph(g)
    made = g.notes.get("decomposed", frozenset())
    region_of: dict = {}
    regions: list = []
    domains: list = []
    why: dict = {}
    for i, n in enumerate(G.nodes):
        op = OPS.get(n.op)
        if op is None or op.kind not in ("reduction", "composite") or i in region_of:
            continue
        dom, reason = _domain(n, target)
        if dom is None:
            if op.kind == "composite" or n.op == "var":
                reason = (f"{n.op} not decomposed: it runs along a leading or middle dim (a "
                          "row kernel reads one row along the trailing dims)")  # fmt: skip
            why[i] = reason
            continue
        S = _grow(i, dom, G, region_of, regions, target)
        later = _second_pass(S, dom, G, target)
        for c, m in later.items():
            why.setdefault(c, _READER_WHY.format(red=G.nodes[m].op))
        if len(S) < 2:
            if later:
                why[i] = _REDUCTION_WHY.format(op=G.nodes[min(later)].op)
            else:
                why[i] = "no elementwise neighbour to fuse with"
            continue
        for m in S:
            region_of[m] = len(regions)
            why.pop(m, None)
        regions.append(sorted(S))
        domains.append(dom)
    out = g.copy_with()
    out.notes["unfused_rows"] = {G.nodes[i]: r for i, r in why.items() if i not in region_of}
    if not regions:
        return out, False
    return replace_regions(out, G, regions, region_of, lambda k, members, exports: make_row_node(
        members, exports, domains[k], target, made)), True  # fmt: skip


def replace_regions(out: Graph, G: _Graph, regions: list, region_of: dict, make) -> Graph:
    """``out`` with the nodes of each region replaced by the one node ``make(k, members,
    exports)`` builds for region ``k``, in an order that respects the data flow."""
    exports = _exports(G, regions)
    new_nodes = []
    emitted = set()
    for i, n in enumerate(G.nodes):
        k = region_of.get(i)
        if k is None:
            new_nodes.append(n)
        elif k not in emitted:
            emitted.add(k)
            new_nodes.append(make(k, [G.nodes[j] for j in regions[k]], exports[k]))
    return out.copy_with(nodes=_toposort(new_nodes, out.block.params))


def _exports(G: _Graph, regions: list) -> list:
    out = []
    for members in regions:
        S = set(members)
        ex = []
        for i in members:
            for o in G.nodes[i].outputs:
                if o in G.results or any(c not in S for c in G.consumers[i]):
                    ex.append(o)
        out.append(ex)
    return out


def _step_dtypes(n: Node):
    """(compute, out) dtypes of member ``n``: for a reduction, the accumulation dtype and the
    result dtype eager gives (the op table's ``Reduce.acc_dtype``)."""
    op = OPS[n.op]
    if op.reduce is not None:
        res = n.outputs[0].type.dtype
        return op.reduce.acc_dtype(res), res
    operands = [v.type if isinstance(v, Value) else v.value for v in n.inputs]
    return dispatch.elementwise_dtypes(op, operands, n.attr_dict)


def make_row_node(members: list, exports: list, dom: _Domain, target: str, made) -> Node:
    """The ``fused`` node of a row region: attrs body (a ``RowBody``), kernel_key, target, and
    shape_generic=False when it holds a reshape the user wrote (its shape is the traced one)."""
    form_of: dict = {}
    ext: list = []
    ext_idx: dict = {}
    ports: list = []
    port_idx: dict = {}
    refs: dict = {}
    steps, spaces = [], []
    generic = True
    strict = False

    def port(v, view):
        if v not in ext_idx:
            ext_idx[v] = len(ext)
            ext.append(v)
        key = (v, view)
        if key not in port_idx:
            port_idx[key] = len(ports)
            ports.append((ext_idx[v], view, v.type.dtype.name))
        return ("in", port_idx[key])

    for n in members:
        role, form = _role(n, dom, form_of, target)
        o = n.outputs[0]
        form_of[o] = form
        if role == "view":
            v = n.inputs[0]
            shape = v.type.shape
            if v in refs:
                refs[o] = refs[v]
            elif n.op == "reshape" and shape in (dom.keep, dom.drop) and form in ("keep", "drop"):
                refs[o] = port(v, row_view(shape, "keep" if shape == dom.keep else "drop"))
            else:
                refs[o] = port(v, full_view(shape, dom.F, dom.k))
            generic &= o in made
            continue
        compute, res = _step_dtypes(n)
        args = []
        for v in n.inputs:
            if isinstance(v, Const):
                args.append(("c", v.value, compute.name))
            elif v in refs:
                args.append(refs[v])
            elif role == "reduction":
                args.append(port(v, "full"))
            elif role == "full":
                args.append(port(v, full_view(v.type.shape, dom.F, dom.k)))
            else:
                args.append(port(v, row_view(v.type.shape, form)))
        attrs = tuple(
            (k, a.name if k == "dtype" else a)
            for k, a in sorted(n.attr_dict.items())
            if role != "reduction"
        )
        if role == "reduction" and n.op in ("amax", "amin") and o not in made:
            strict = True
        steps.append(Step(n.op, tuple(args), attrs, compute.name, res.name))
        spaces.append("full" if role == "full" else "row")
        refs[o] = ("t", len(steps) - 1)
    body = RowBody(
        k=dom.k,
        rank=len(dom.F),
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


__all__ = ["fuse_rows", "make_row_node"]
