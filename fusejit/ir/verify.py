"""The verifier: checks a graph is well formed. Tests run it after every pass."""

from __future__ import annotations

from fusejit.base import dtypes as dt
from fusejit.ir.control import CONTROL_OPS, verify_node
from fusejit.ir.graph import Block, Const, Graph, TensorType, Value
from fusejit.ops.registry import OPS

# the ops a graph may name besides the op table's: fused regions, frozen tensors, control,
# ``arange`` of symbolic sizes (dynamic dims), ``mask_positions`` (a bool mask's true entries)
JIT_OPS = frozenset({"fused", "constant", "arange", "mask_positions"}) | CONTROL_OPS


class VerifyError(AssertionError):
    pass


def _fail(i: int, msg: str):
    raise VerifyError(f"node {i}: {msg}")


def verify(g: Graph) -> None:
    """Raise VerifyError unless every use is defined before it (topological order), every
    value is defined once, types are tensor types, and ops exist in the op table."""
    if len(g.block.params) != g.n_inputs + len(g.captured):
        raise VerifyError("graph params do not match inputs + captured tensors")
    _verify_block(g.block, set())


def _verify_block(block: Block, outer: set) -> None:
    defined = set(outer)
    for p in block.params:
        if not isinstance(p, Value) or not isinstance(p.type, TensorType):
            raise VerifyError(f"block param {p!r} is not a typed value")
        defined.add(p)
    seen_defs: set = set()
    for i, n in enumerate(block.nodes):
        if n.op not in OPS and n.op not in JIT_OPS:
            raise VerifyError(f"node {i}: unknown op {n.op!r}")
        for v in n.inputs:
            if isinstance(v, Value):
                if v not in defined:
                    raise VerifyError(f"node {i} ({n.op}) uses {v!r} before it is defined")
            elif not isinstance(v, Const):
                raise VerifyError(f"node {i} ({n.op}) has an input that is neither value nor const")
        if n.op in CONTROL_OPS:
            # control blocks are closed: they see only their own parameters
            verify_node(n, lambda msg, i=i: _fail(i, msg))
            for b in n.blocks:
                _verify_block(b, set())
        for b in n.blocks if n.op not in CONTROL_OPS else ():
            inner = set(defined)
            _verify_block(b, inner)
        for o in n.outputs:
            if not isinstance(o, Value) or not isinstance(o.type, TensorType):
                raise VerifyError(f"node {i} ({n.op}) output {o!r} is not a typed value")
            if not isinstance(o.type.dtype, dt.DType):
                raise VerifyError(f"node {i} ({n.op}) output has no dtype")
            if o in seen_defs:
                raise VerifyError(f"node {i} ({n.op}) redefines {o!r}")
            seen_defs.add(o)
            defined.add(o)
    for r in block.results:
        if isinstance(r, Const):  # (a loop body's condition may be a constant)
            continue
        if r not in defined:
            raise VerifyError(f"result {r!r} is not defined in its block")


__all__ = ["JIT_OPS", "VerifyError", "verify"]
