"""The reference interpreter: runs any graph node by node through eager ops.

It is the spec: every compiled result is tested against it.
"""

from __future__ import annotations

from fusejit.eager import dispatch
from fusejit.eager.creation import arange
from fusejit.eager.indexing import mask_positions
from fusejit.ir.control import CONTROL_OPS
from fusejit.ir.graph import Block, Const, Graph
from fusejit.jit.control import interpret_node


def run_block(block: Block, env: dict) -> list:
    for n in block.nodes:
        if n.op == "constant":
            env[n.outputs[0]] = n.attr("value")
            continue
        if n.op == "mask_positions":
            env[n.outputs[0]] = mask_positions(env[n.inputs[0]])
            continue
        if n.op == "arange":  # (sizes of dynamic dims: their traced values)
            a = n.attr_dict
            env[n.outputs[0]] = arange(int(a["start"]), int(a["end"]), int(a["step"]),
                                       dtype=a["dtype"], device=a["device"])  # fmt: skip
            continue
        if n.op in CONTROL_OPS:
            interpret_node(n, env, run_block)
            continue
        if n.op == "fused":
            inner = run_block(n.blocks[0], dict(env))
            for o, r in zip(n.outputs, inner):
                env[o] = r
            continue
        args = [v.value if isinstance(v, Const) else env[v] for v in n.inputs]
        res = dispatch.call(n.op, *args, **n.attr_dict)
        if len(n.outputs) == 1:
            env[n.outputs[0]] = res
        else:
            for o, r in zip(n.outputs, res):
                env[o] = r
    return [r.value if isinstance(r, Const) else env[r] for r in block.results]


def interpret(g: Graph, *inputs) -> list:
    """Run ``g`` on tensors ``inputs`` (the user inputs; captured tensors are read live)."""
    env = dict(zip(g.block.params, list(inputs) + list(g.captured)))
    return run_block(g.block, env)
