"""What a compiled graph holds, as ``explain`` reports it: shared by ``explain`` and the
profiling executor (``optimize``), which keeps it for a specialization it lets go of.

Also where captured tensors get their names: a tensor a graph reads that is a module's
parameter or buffer is named by its path in the module (``h.0.attn.c_attn.weight``,
``named_parameters()`` / ``named_buffers()``), in the graph printout and in ``explain``.
"""

from __future__ import annotations

from itertools import chain

from fusejit.ir.printer import format_graph
from fusejit.store import CACHE


def module_tensor_names(modules) -> dict:
    """id(tensor) -> its path in the first of ``modules`` that holds it."""
    names: dict = {}
    for m in modules:
        for k, t in chain(m.named_parameters(), m.named_buffers()):
            names.setdefault(id(t), k)
    return names


def name_captured(graph, names: dict) -> int:
    """Name the captured values of ``graph`` by ``names`` (id(tensor) -> name) where they have
    no name yet; the number of named captured tensors."""
    n = 0
    for v, t in zip(graph.block.params[graph.n_inputs :], graph.captured, strict=False):
        if not v.hint:
            v.hint = names.get(id(t), "")
        n += bool(v.hint)
    return n


# ops that return a view of their input: they move no bytes (reshape copies where its input is
# not contiguous; counted as a view all the same)
VIEWS = frozenset({"view", "reshape", "permute", "expand", "split", "diagonal", "getitem"})
GATHERS = frozenset({"index_select", "gather", "embedding"})


def _numel(shape) -> int | None:
    n = 1
    for s in shape:
        if not isinstance(s, int):
            return None  # a symbolic size: unknown here
        n *= s
    return n


def _bytes(values) -> tuple[int, bool]:
    """(bytes of ``values``' tensors, whether all their sizes are known)."""
    total, exact = 0, True
    for v in values:
        t = getattr(v, "type", None)
        if t is None:  # a constant
            continue
        n = _numel(t.shape)
        if n is None:
            exact = False
            continue
        total += n * t.dtype.itemsize
    return total, exact


def kernel_key_of(node, kernel) -> str:
    """The kernel key explain and the graph printout show for a fused node: its kernel cache
    entry's key (32 hex digits), or the region's own key where no entry is known."""
    return getattr(kernel, "key", None) or node.attr("kernel_key")


def _region(j, node, kernel_key, origin, kernel=None) -> dict:
    # a CPU kernel also builds, on first use, one kernel per way its inputs broadcast
    extra = getattr(kernel, "entries", lambda: [kernel])()[1:]
    read, exact_r = _bytes(node.inputs)
    written, exact_w = _bytes(node.outputs)
    return {
        "index": j,
        "ops": [n.op for n in node.blocks[0].nodes],
        "kernel_key": kernel_key,
        "origin": origin,
        "inputs": len(node.inputs),
        "outputs": len(node.outputs),
        "bytes": read + written,
        "bytes_exact": exact_r and exact_w,
        "broadcast_kernels": {e.key: e.origin for e in extra},
    }


def _walk(block):
    for n in block.nodes:
        yield n
        if n.op != "fused":
            for b in n.blocks:
                yield from _walk(b)


def info_of(graph, plan, kernels=None) -> dict:
    """``graph_info`` of an optimized graph and its plan (see there)."""
    regions = []
    keys = {}
    for i, (node, k) in enumerate(plan.kernels):
        if kernels is not None and i < len(kernels):
            _, key, origin = kernels[i]
        else:  # its kernels' first origin, from the cache
            key = kernel_key_of(node, k)
            origin = CACHE.origin.get(key, getattr(k, "origin", "unknown"))
        keys[id(node)] = (key, i)
        regions.append(_region(i, node, key, origin, k))
    other, other_exact = 0, True
    for n in _walk(graph.block):
        if n.op == "fused" or not n.outputs:
            continue
        tensor_inputs = [v for v in n.inputs if hasattr(v, "type")]
        if n.op in VIEWS and len(tensor_inputs) == 1:
            continue
        if n.op in GATHERS or n.op in VIEWS:  # the rows it gathers and the index, not the table
            r, e1 = _bytes([*n.outputs, *n.inputs[1:]])
        else:
            r, e1 = _bytes(n.inputs)
        w, e2 = _bytes(n.outputs)
        other += r + w
        other_exact &= e1 and e2
    captured = [{"name": v.hint, "type": str(v.type)} for v in graph.block.params[graph.n_inputs :]]
    return {
        "graph": format_graph(graph, kernel_keys=keys),
        "shape_generic": plan.shape_generic,
        "fused_regions": regions,
        "unfused": [{"op": op, "reason": r} for op, r in graph.notes.get("unfused", [])],
        "second_kernel": [
            {"op": op, "reason": r} for op, r in graph.notes.get("second_kernel", [])
        ],
        "nodes": sum(1 for _ in _walk(graph.block)),
        "inputs": graph.n_inputs,
        "captured": captured,
        "bytes_moved": {
            "fused": sum(r["bytes"] for r in regions),
            "unfused": other,
            "exact": other_exact and all(r["bytes_exact"] for r in regions),
        },
    }


def graph_info(traced, kernels=None) -> dict:
    """The graph of ``traced`` (a ``TracedFunction``), its fused regions with their kernels'
    keys and origins (given as ``kernels``, a list of (ops, key, origin), or else read from
    the cache), the ops left unfused with the reasons, the captured tensors with their names
    and the bytes its kernels and its other ops read and write per call, as ``explain``
    reports them."""
    return info_of(traced.graph, traced.plan, kernels)
