"""Type checking of a graph from outside (an archive): each node's declared output types must
be what its op gives for its inputs, and no value may be larger than a bound.

The tracer and the script compiler type values from the ops they ran; a graph read from a file
declares them. Everything downstream (kernels allocating outputs, plans, guards) trusts those
types, and an op computes whatever its attributes say, so a node declaring ``f32[3]`` for a
``tile`` whose ``reps`` make terabytes would otherwise only fail (MemoryError) when it runs.
"""

from __future__ import annotations

import math

from fusejit.base import dtypes as dt
from fusejit.ir.control import CONTROL_OPS
from fusejit.ir.graph import Block, Graph, Node, TensorType, Value
from fusejit.ir.verify import VerifyError
from fusejit.ops.registry import OPS, OpDef, dtype_rule
from fusejit.ops.shape_rules import ShapeRuleError, out_shapes


def nbytes(t: TensorType) -> int:
    """Bytes a value of type ``t`` takes."""
    return math.prod(t.shape) * t.dtype.itemsize


def check_types(g: Graph, max_bytes: int | None = None) -> None:
    """Raise ``VerifyError`` unless every node's outputs have the dtypes and shapes its op
    gives (for op-table ops, constants and ``select``; ``verify`` checks the other control
    forms) and, with ``max_bytes``, no value takes more than ``max_bytes``.

    >>> import fusejit
    >>> f = fusejit.trace(lambda x: x.repeat(2, 1) + 1, fusejit.ones(2, 3))
    >>> check_types(f.raw_graph, max_bytes=1 << 20)
    """
    _check_block(g.block, max_bytes)


def _check_size(v: Value, max_bytes: int | None, where: str) -> None:
    if max_bytes is not None and nbytes(v.type) > max_bytes:
        raise VerifyError(f"{where}: value {v.type} takes {nbytes(v.type)} bytes, more than "
                          f"max_bytes={max_bytes}")  # fmt: skip


def _check_block(block: Block, max_bytes: int | None) -> None:
    for p in block.params:
        _check_size(p, max_bytes, "block parameter")
    for i, n in enumerate(block.nodes):
        where = f"node {i} ({n.op})"
        for o in n.outputs:
            _check_size(o, max_bytes, where)
        want = _expected(n, where)
        if want is not None:
            if len(want) != len(n.outputs):
                raise VerifyError(f"{where}: {len(n.outputs)} outputs, the op gives {len(want)}")
            for o, (d, s) in zip(n.outputs, want):
                # (compared as ints: a symbolic size at its hint, the size the graph was
                # traced at; the runtime re-checks such nodes for each new size)
                if o.type.dtype is not d or tuple(map(int, o.type.shape)) != tuple(map(int, s)):
                    raise VerifyError(f"{where}: output declared {o.type}, the op gives "
                                      f"{TensorType(d, s, o.type.device)}")  # fmt: skip
        for b in n.blocks:
            _check_block(b, max_bytes)


def _expected(n: Node, where: str) -> list | None:
    """[(dtype, shape)] of ``n``'s outputs as its op gives them; None where not checked here."""
    if n.op == "constant":
        t = n.attr("value")
        return [(t.dtype, tuple(t.shape))]
    if n.op == "select":
        x = n.inputs[0]
        return [(x.type.dtype, n.outputs[0].type.shape)]  # (verify checks the shape)
    if n.op == "update":
        x = n.inputs[0]
        return [(x.type.dtype, x.type.shape)]
    if n.op in CONTROL_OPS or n.op not in OPS:
        return None
    op = OPS[n.op]
    tensors = [v for v in n.inputs if isinstance(v, Value)]
    attrs = dict(n.attrs)
    try:
        shapes = out_shapes(op, [v.type.shape for v in tensors], attrs)
        dtypes = _out_dtypes(op, n, tensors, attrs)
    except ShapeRuleError as e:
        raise VerifyError(f"{where}: its inputs {[str(v.type) for v in tensors]} do not fit "
                          f"the op ({e})") from None  # fmt: skip
    except (TypeError, ValueError, KeyError, AttributeError, OverflowError) as e:
        raise VerifyError(f"{where}: the op cannot type its inputs ({type(e).__name__}: "
                          f"{str(e)[:100]})") from None  # fmt: skip
    if shapes is None:
        return None
    if len(dtypes) == 1:  # (one dtype for every result: split's, as many as its sections)
        return [(dtypes[0], s) for s in shapes]
    if len(dtypes) != len(shapes):
        raise VerifyError(f"{where}: the op's dtype and shape rules disagree")
    return list(zip(dtypes, shapes))


def _out_dtypes(op: OpDef, n: Node, tensors: list, attrs: dict) -> list:
    """The result dtypes, by the rules eager dispatch applies (``dispatch.elementwise`` and
    ``dispatch.apply``)."""
    if op.kind == "elementwise":
        operands = [v.type if isinstance(v, Value) else v.value for v in n.inputs]
        if op.rule == "where":
            return [dt.result_type(*operands[1:])]
        if op.rule == "cast":
            return [attrs["dtype"]]
        return [dtype_rule(op, dt.result_type(*operands))[1]]
    out = op.out_dtype(*[v.type.dtype for v in tensors], **attrs)
    return list(out) if isinstance(out, tuple) else [out]


__all__ = ["check_types", "nbytes"]
