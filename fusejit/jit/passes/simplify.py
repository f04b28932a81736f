"""Safe algebraic simplification: rewrites that never change a value, NaN, -0.0 or a dtype.

Kept: ``x * 1``, ``1 * x``, ``x / 1``, ``x - 0``, ``x ** 1``, ``neg(neg(x))``, a cast to the
dtype ``x`` already has, a permute that keeps the order of the dims (``x.T.T``: a backward's
transposed weight transposed back). Not done (they change results): ``x + 0`` (-0.0 + 0 is +0.0),
``x * 0`` (NaN and inf), ``x - x`` (NaN).

One rewrite makes new nodes: the transpose of a product of two matrices that nothing else reads,
``(a @ b).T``, becomes ``b.T @ a.T`` (the gradient of a ``Linear`` weight: ``x.T @ g``
transposed back). The same sums of the same products, written straight into a contiguous result
where the transpose was a strided view of one (which ``.grad`` would have copied); the matrix
library may add them in another order, as it may for any product.
"""

from __future__ import annotations

import math

from fusejit.ir.graph import Const, Graph, Node, TensorType, Value, uses
from fusejit.ops.registry import OPS


def _is(c, value) -> bool:
    # -0.0 == 0 but x - (-0.0) is x + 0.0, which turns -0.0 into +0.0: zeros must be +0
    return (
        isinstance(c, Const)
        and not isinstance(c.value, bool)
        and c.value == value
        and math.copysign(1.0, c.value) > 0
    )


def _identity_of(n):
    """The input value ``n`` reduces to, or None."""
    ins = n.inputs
    out = n.outputs[0].type if n.outputs else None

    def same(v):
        return isinstance(v, Value) and v.type.dtype is out.dtype and v.type.shape == out.shape

    if n.op == "mul":
        if _is(ins[1], 1) and same(ins[0]):
            return ins[0]
        if _is(ins[0], 1) and same(ins[1]):
            return ins[1]
    if n.op == "div" and _is(ins[1], 1) and same(ins[0]):
        return ins[0]
    if n.op == "sub" and _is(ins[1], 0) and same(ins[0]):
        return ins[0]
    if n.op == "pow" and _is(ins[1], 1) and same(ins[0]):
        return ins[0]
    if n.op == "cast" and same(ins[0]):
        return ins[0]
    if n.op == "detach":  # (it only stops gradients: the backward is built before the passes)
        return ins[0]
    return None


def _permute_identity(n, inner):
    """The value a permute (of a permute) is, when the dims come back in order, or None."""
    dims = tuple(n.attr_dict.get("dims") or ())
    if dims == tuple(range(len(dims))):
        return n.inputs[0]
    if inner is None or inner.op != "permute" or not isinstance(inner.inputs[0], Value):
        return None
    first = tuple(inner.attr_dict.get("dims") or ())
    if len(first) == len(dims) and tuple(first[d] for d in dims) == tuple(range(len(dims))):
        return inner.inputs[0]
    return None


def _shape_source(v: Value, producer: dict) -> Value:
    """The earliest value of ``v``'s type on its chain of elementwise producers. A random op
    (``rand_like``) reads only its operand's type: reading that one instead frees the ops
    between to fuse with their consumers (dropout's mask with its scaled input, one kernel)."""
    while True:
        p = producer.get(v)
        op = OPS.get(p.op) if p is not None else None
        if op is None or op.kind != "elementwise":
            return v
        same = [u for u in p.inputs if isinstance(u, Value) and u.type == v.type]
        if not same:
            return v
        v = same[0]


def _transposed_product(n, producer: dict, users: dict, results: set) -> list | None:
    """``permute(matmul(a, b), (1, 0))`` of matrices ``a`` and ``b`` where the permute is the
    product's one reader: the nodes of ``matmul(permute(b), permute(a))`` giving the permute's
    output, or None."""
    if n.op != "permute" or tuple(n.attr("dims") or ()) != (1, 0):
        return None
    prod = n.inputs[0]
    p = producer.get(prod)
    if p is None or p.op != "matmul" or prod in results or len(users.get(prod, ())) != 1:
        return None
    a, b = p.inputs
    if not (isinstance(a, Value) and isinstance(b, Value)):
        return None
    if len(a.type.shape) != 2 or len(b.type.shape) != 2:
        return None
    out = []
    for v in (b, a):
        t = Value(TensorType(v.type.dtype, v.type.shape[::-1], v.type.device))
        out.append(Node("permute", (v,), (("dims", (1, 0)),), (t,)))
    out.append(Node("matmul", (out[0].outputs[0], out[1].outputs[0]), p.attrs, n.outputs))
    return out


def simplify(g: Graph) -> tuple[Graph, bool]:
    rep: dict = {}
    producer: dict = {}
    nodes = []
    moved = False
    users = uses(g.block)
    results = set(g.block.results)
    for n in g.block.nodes:
        if rep:
            n = type(n)(n.op, tuple(rep.get(v, v) if isinstance(v, Value) else v
                                    for v in n.inputs), n.attrs, n.outputs, n.blocks)  # fmt: skip
        if n.op in OPS and OPS[n.op].kind == "random" and isinstance(n.inputs[0], Value):
            src = _shape_source(n.inputs[0], producer)
            if src is not n.inputs[0]:
                n = type(n)(n.op, (src,), n.attrs, n.outputs, n.blocks)
                moved = True
        target = _identity_of(n) if len(n.outputs) == 1 and not n.blocks else None
        if target is None and n.op == "neg":
            inner = producer.get(n.inputs[0])
            if inner is not None and inner.op == "neg":
                target = inner.inputs[0]
        if target is None and n.op == "permute" and isinstance(n.inputs[0], Value):
            target = _permute_identity(n, producer.get(n.inputs[0]))
        if target is not None:
            rep[n.outputs[0]] = target
            continue
        swapped = _transposed_product(n, producer, users, results) if not rep else None
        if swapped is not None:  # (the product's node is left to dce)
            for m in swapped:
                producer[m.outputs[0]] = m
            nodes += swapped
            moved = True
            continue
        for o in n.outputs:
            producer[o] = n
        nodes.append(n)
    if not rep and not moved:
        return g, False
    return g.copy_with(nodes=nodes, results=[rep.get(v, v) for v in g.block.results]), True
