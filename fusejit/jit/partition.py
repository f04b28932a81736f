"""Saved vs recomputed: which forward values the backward graph reads from memory.

A joint graph computes a function's outputs and, from the gradients of those outputs (the
*tangents*), the gradients of its inputs. Every value that does not depend on a tangent is a
*forward value*. The backward needs some of them; each one it needs is either **saved** (the
forward graph returns it and the backward reads it) or **recomputed** inside the backward's own
kernels from other forward values, which are in turn saved or recomputed. Inputs, and the
results of ops that are not cheap to recompute (reductions, matmuls, anything but elementwise
and movement ops), are never recomputed.

The choice is a minimum cut, as AOTAutograd's partitioner makes it: each forward value ``v`` is
an edge ``v_in -> v_out`` whose capacity is its size in bytes; ``u_out -> v_in`` (infinite) where
``u`` is an operand of the node making ``v``; ``source -> v_in`` (infinite) for inputs and values
that cannot be recomputed; ``v_out -> sink`` (infinite) where the backward reads ``v``. A finite
cut separates what the backward gets from memory (the cut edges: the saved values) from what it
recomputes, and the minimum one moves the fewest bytes. Where cuts tie, the one nearest the
source is taken (a matmul's output rather than the elementwise chain after it).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from fusejit.ir.graph import Graph, Value
from fusejit.ops.registry import OPS

__all__ = ["max_flow_min_cut", "Partition", "partition", "nbytes", "RECOMPUTABLE_KINDS"]

INF = float("inf")

# kinds of op whose results the backward may recompute (cheap: one pass, no reduction)
RECOMPUTABLE_KINDS = frozenset({"elementwise"})
RECOMPUTABLE_MOVEMENT = frozenset(
    {"reshape", "view", "permute", "expand", "contiguous", "clone", "getitem", "diagonal"}
)


def nbytes(v: Value) -> int:
    """The bytes value ``v`` takes in memory."""
    n = 1
    for s in v.type.shape:
        n *= int(s)
    return n * v.type.dtype.itemsize


def recomputable(op: str) -> bool:
    """Whether the backward may recompute the result of ``op`` rather than save it."""
    if op in RECOMPUTABLE_MOVEMENT or op == "constant":
        return True
    d = OPS.get(op)
    return d is not None and d.kind in RECOMPUTABLE_KINDS


def max_flow_min_cut(n: int, edges: list, s: int, t: int) -> tuple[float, set]:
    """Maximum flow from ``s`` to ``t`` over ``n`` vertices and ``edges`` ((u, v, capacity),
    capacity a number or ``inf``), by Dinic's algorithm. Returns (flow, the vertices on the
    source side of a minimum cut: those reachable from ``s`` in the residual graph).

    >>> max_flow_min_cut(4, [(0, 1, 3), (0, 2, 2), (1, 3, 2), (2, 3, 3)], 0, 3)
    (4, {0, 1})
    """
    graph: list[list[int]] = [[] for _ in range(n)]
    to: list[int] = []
    cap: list = []
    for u, v, c in edges:
        graph[u].append(len(to))
        to.append(v)
        cap.append(c)
        graph[v].append(len(to))
        to.append(u)
        cap.append(0)
    flow = 0
    while True:
        level = [-1] * n
        level[s] = 0
        q = deque([s])
        while q:
            u = q.popleft()
            for e in graph[u]:
                if cap[e] > 0 and level[to[e]] < 0:
                    level[to[e]] = level[u] + 1
                    q.append(to[e])
        if level[t] < 0:
            break
        it = [0] * n

        while True:
            f = _augment(s, t, graph, to, cap, level, it)
            if not f:
                break
            if f == INF:
                raise ValueError("max_flow_min_cut: a path of infinite capacity from s to t")
            flow += f
    seen = {s}
    q = deque([s])
    while q:
        u = q.popleft()
        for e in graph[u]:
            if cap[e] > 0 and to[e] not in seen:
                seen.add(to[e])
                q.append(to[e])
    return flow, seen


def _augment(s: int, t: int, graph, to, cap, level, it):
    """One augmenting path from ``s`` to ``t`` along increasing ``level`` (Dinic's blocking
    flow, iteratively); pushes its bottleneck and returns it (0: none left in this phase)."""
    u = s
    path: list[int] = []
    while True:
        if u == t:
            aug = INF
            for e in path:
                aug = min(aug, cap[e])
            for e in path:
                cap[e] -= aug
                cap[e ^ 1] += aug
            return aug
        advanced = False
        while it[u] < len(graph[u]):
            e = graph[u][it[u]]
            v = to[e]
            if cap[e] > 0 and level[v] == level[u] + 1:
                path.append(e)
                u = v
                advanced = True
                break
            it[u] += 1
        if not advanced:
            if not path:
                return 0
            e = path.pop()
            level[u] = -1  # a dead end: never tried again in this phase
            u = to[e ^ 1]
            it[u] += 1


@dataclass
class Partition:
    """The partition of a joint graph: ``saved`` (forward values the backward reads, in
    graph order), ``recomputed`` (forward values the backward computes again), the bytes
    saved, and what saving every forward value the backward reads directly would move."""

    saved: list = field(default_factory=list)
    recomputed: list = field(default_factory=list)
    saved_bytes: int = 0
    naive_bytes: int = 0


def partition(joint: Graph, n_primals: int, n_outputs: int) -> Partition:
    """Partition ``joint`` (params: ``n_primals`` primal inputs, then the tangents; results:
    ``n_outputs`` forward outputs, then the gradients) into what the backward saves and what
    it recomputes (the module docstring)."""
    params = joint.block.params
    primals = params[:n_primals]
    tangents = set(params[n_primals:])
    grads = [r for r in joint.block.results[n_outputs:] if isinstance(r, Value)]
    producer: dict = {}
    for n in joint.block.nodes:
        for o in n.outputs:
            producer[o] = n
    # tangent-dependent values: computed by the backward
    bwd = set(tangents)
    for n in joint.block.nodes:
        if any(isinstance(v, Value) and v in bwd for v in n.inputs):
            bwd.update(n.outputs)
    # the forward values the backward reads directly
    needed: list = []
    seen_needed: set = set()

    def need(v):
        if v not in bwd and v not in seen_needed:
            seen_needed.add(v)
            needed.append(v)

    # only the nodes the gradients depend on are part of the backward
    live = set(grads)
    for n in reversed(joint.block.nodes):
        if any(o in live for o in n.outputs):
            live.update(v for v in n.inputs if isinstance(v, Value))
    for n in joint.block.nodes:
        if not any(o in live for o in n.outputs) or not any(o in bwd for o in n.outputs):
            continue
        for v in n.inputs:
            if isinstance(v, Value):
                need(v)
    for g in grads:
        need(g)
    # forward values (graph order), numbered twice: v_in = 2k, v_out = 2k + 1
    fwd = list(primals) + [o for n in joint.block.nodes for o in n.outputs if o not in bwd]
    index = {v: k for k, v in enumerate(fwd)}
    S, T = 2 * len(fwd), 2 * len(fwd) + 1
    edges = []
    for k, v in enumerate(fwd):
        edges.append((2 * k, 2 * k + 1, nbytes(v)))
        n = producer.get(v)
        if n is None or not recomputable(n.op):
            edges.append((S, 2 * k, INF))
        else:
            for u in n.inputs:
                if isinstance(u, Value):
                    edges.append((2 * index[u] + 1, 2 * k, INF))
    for v in needed:
        edges.append((2 * index[v] + 1, T, INF))
    _, side = max_flow_min_cut(2 * len(fwd) + 2, edges, S, T)
    part = Partition()
    for k, v in enumerate(fwd):
        if 2 * k in side and 2 * k + 1 not in side:
            part.saved.append(v)
            part.saved_bytes += nbytes(v)
    # recomputed: forward values the backward computes, i.e. those on the sink side that the
    # needed values depend on
    saved = set(part.saved)
    stack = [v for v in needed if v not in saved]
    rec: set = set()
    while stack:
        v = stack.pop()
        if v in rec or v in saved:
            continue
        rec.add(v)
        n = producer[v]
        stack.extend(u for u in n.inputs if isinstance(u, Value) and u not in saved)
    part.recomputed = [v for v in fwd if v in rec]
    part.naive_bytes = sum(nbytes(v) for v in needed)
    return part
