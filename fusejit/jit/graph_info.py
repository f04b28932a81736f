"""What a compiled graph holds, as ``explain`` reports it: shared by ``explain`` and the
profiling executor (``optimize``), which keeps it for a specialization it lets go of."""

from __future__ import annotations

from fusejit.jit.api import TracedFunction
from fusejit.store import CACHE


def _region(node, kernel_key, origin, kernel=None) -> dict:
    # a CPU kernel also builds, on first use, one kernel per way its inputs broadcast
    extra = getattr(kernel, "entries", lambda: [kernel])()[1:]
    return {
        "ops": [n.op for n in node.blocks[0].nodes],
        "kernel_key": kernel_key,
        "origin": origin,
        "inputs": len(node.inputs),
        "outputs": len(node.outputs),
        "broadcast_kernels": {e.key: e.origin for e in extra},
    }


def graph_info(traced: TracedFunction, kernels=None) -> dict:
    """The graph of ``traced``, its fused regions with their kernels' keys and origins (given
    as ``kernels``, a list of (node, key, origin), or else read from the cache) and the ops
    left unfused with the reasons, as ``explain`` reports them."""
    g = traced.graph
    regions = []
    for i, (node, k) in enumerate(traced.plan.kernels):
        if kernels is not None and i < len(kernels):
            _, key, origin = kernels[i]
        else:  # a bare TracedFunction: its kernels' first origin, from the cache
            key = getattr(k, "key", None) or node.attr("kernel_key")
            origin = CACHE.origin.get(key, getattr(k, "origin", "unknown"))
        regions.append(_region(node, key, origin, k))
    return {
        "graph": str(g),
        "shape_generic": traced.plan.shape_generic,
        "fused_regions": regions,
        "unfused": [{"op": op, "reason": r} for op, r in g.notes.get("unfused", [])],
        "second_kernel": [{"op": op, "reason": r} for op, r in g.notes.get("second_kernel", [])],
        "nodes": len(g.nodes),
    }
