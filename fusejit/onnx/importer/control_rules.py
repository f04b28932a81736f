"""Import rules for ONNX's control flow: ``If`` and ``Loop``.

Their bodies are subgraphs run by ``NodeContext.run_graph``. A condition known when the graph
is built picks the branch then; otherwise the condition (and a loop's trip count) is read on
each call, which is why a model with control flow runs eagerly (``OnnxModule``), not traced.
"""

from __future__ import annotations

import numpy as np

import fusejit
from fusejit.onnx.importer.registry import NodeContext, onnx_op


def _truth(ctx: NodeContext, i: int, t) -> bool:
    if ctx.is_static(i):
        return bool(np.asarray(ctx.static(i)).reshape(-1)[0])
    return bool(t.reshape(-1)[0].item())


@onnx_op("If")
def _if(ctx: NodeContext, cond):
    branch = ctx.attr("then_branch") if _truth(ctx, 0, cond) else ctx.attr("else_branch")
    outs = ctx.run_graph(branch, [])
    return tuple(outs)


@onnx_op("Loop")
def _loop(ctx: NodeContext, trip=None, cond=None, *carried):
    body = ctx.attr("body")
    n_carried = len(carried)
    limit = None
    if trip is not None:
        limit = int(np.asarray(ctx.static(0)).reshape(-1)[0]) if ctx.is_static(0) else None
        limit = int(trip.reshape(-1)[0].item()) if limit is None else limit
    go = True if cond is None else _truth(ctx, 1, cond)
    device = (carried[0] if carried else trip if trip is not None else cond).device
    values = list(carried)
    scans: list = []
    i = 0
    while go and (limit is None or i < limit):
        it = fusejit.tensor(np.array(i, np.int64), device=device)
        c = fusejit.tensor(np.array(go), device=device)
        outs = ctx.run_graph(body, [it, c, *values])
        go = bool(outs[0].reshape(-1)[0].item())
        values = list(outs[1 : 1 + n_carried])
        for j, s in enumerate(outs[1 + n_carried :]):
            if len(scans) <= j:
                scans.append([])
            scans[j].append(s)
        i += 1
    n_scan = ctx.n_outputs - n_carried
    stacked = []
    for j in range(n_scan):
        if j < len(scans) and scans[j]:
            stacked.append(fusejit.stack(scans[j], 0))
        else:
            raise ctx.unsupported("a scan output of a loop that ran no iteration")
    return tuple(values + stacked)
