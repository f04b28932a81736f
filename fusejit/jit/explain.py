"""``fusejit.explain``: what the JIT did for an optimized function, signature by signature."""

from __future__ import annotations

from fusejit.jit.api import TracedFunction
from fusejit.jit.graph_info import graph_info
from fusejit.jit.joint import joint_info, joint_text
from fusejit.jit.optimize import Executor, OptimizedModule

__all__ = ["explain"]


def _report_traced(traced: TracedFunction) -> dict:
    sig = {
        "signature": "(" + ", ".join(str(p.type) for p in traced.graph.inputs) + ")",
        "status": "compiled",
        "warmup_calls": 0,
        "eager_calls": 0,
        "reason": None,
        "respecialized_because": None,
        "trace_seconds": None,
        "compile_seconds": traced.compile_seconds,
        **graph_info(traced),
        "training": joint_info(traced),
    }
    return {
        "name": traced.__name__, "kind": "traced function", "warmup": None, "strict": None,
        "max_specializations": None, "specializations": 1,
        "compile_seconds": traced.compile_seconds, "signatures": [sig], "events": [],
        "fallbacks": [], "guard_failures": [],
    }  # fmt: skip


def report(optimized) -> dict:
    """The facts behind ``explain`` as a dict (see ``explain``)."""
    if isinstance(optimized, TracedFunction):
        return _report_traced(optimized)
    if isinstance(optimized, OptimizedModule):
        ex = optimized.__dict__["_fusejit_executor"]
    else:
        ex = getattr(optimized, "_fusejit_executor", optimized)
    if not isinstance(ex, Executor):
        raise TypeError(
            "explain: expected what fusejit.optimize or fusejit.trace returned, "
            f"got {type(optimized).__name__}"
        )
    with ex._lock:
        specs = list(ex._specs)
        events = [dict(e) for e in ex._events]
    sigs = []
    for s in specs:
        was_compiled = s.status in ("compiled", "invalidated")
        d = {
            "signature": s.label,
            "status": s.status,
            "warmup_calls": s.warmup_runs,
            "eager_calls": s.eager_calls,
            "reason": s.reason,
            "respecialized_because": s.why,
            "trace_seconds": s.trace_seconds if was_compiled else None,
            "compile_seconds": s.compile_seconds if was_compiled else None,
        }
        if s.traced is not None:
            d.update(graph_info(s.traced, s.kernels))
            d["training"] = joint_info(s.traced)
        elif s.info is not None:
            d.update(s.info)
        sigs.append(d)
    return {
        "name": ex._name,
        "kind": "module" if ex._module is not None else "function",
        "warmup": ex.warmup,
        "strict": ex.strict,
        "max_specializations": ex.max_specializations,
        "specializations": ex._n_traces,
        "compile_seconds": sum(s.compile_seconds for s in specs),
        "signatures": sigs,
        "events": events,
        "fallbacks": [
            {"signature": s["signature"], "reason": s["reason"]}
            for s in sigs if s["status"] == "eager"
        ],
        "guard_failures": [
            {"signature": e["signature"], "reason": e["detail"]}
            for e in events if e["event"] == "guard_failure"
        ],
    }  # fmt: skip


def _indent(text: str, pad: str) -> str:
    return "\n".join(pad + line for line in text.splitlines())


def _text(r: dict) -> str:
    head = f"fusejit.explain: {r['name']} ({r['kind']})"
    if r["warmup"] is not None:
        head += (f"; warmup={r['warmup']}, max_specializations={r['max_specializations']}, "
                 f"strict={r['strict']}")  # fmt: skip
    lines = [head]
    n_sig = len(r["signatures"])
    lines.append(f"  {n_sig} signature(s), {r['specializations']} specialization(s), "
                 f"{r['compile_seconds']:.3f} s spent tracing and compiling")  # fmt: skip
    for i, s in enumerate(r["signatures"], 1):
        status = s["status"]
        if s.get("shape_generic"):
            status += ", shape-generic"
        lines.append(f"\nsignature {i}: {s['signature']}  [{status}]")
        if s["warmup_calls"]:
            lines.append(f"  eager warmup calls: {s['warmup_calls']}")
        if s["respecialized_because"]:
            lines.append(f"  specialized because: {s['respecialized_because']}")
        if s["reason"]:
            what = "runs eager" if s["status"] == "eager" else s["status"]
            lines.append(f"  {what}: {s['reason']}")
            if s["eager_calls"]:
                lines.append(f"  eager calls since: {s['eager_calls']}")
        if "graph" not in s:
            continue
        if s["trace_seconds"] is not None:
            lines.append(f"  compile time: {s['compile_seconds']:.3f} s "
                         f"(trace {s['trace_seconds']:.3f} s)")  # fmt: skip
        lines.append("  graph:")
        lines.append(_indent(s["graph"], "    "))
        lines.append(f"  fused regions: {len(s['fused_regions'])}")
        for j, reg in enumerate(s["fused_regions"]):
            lines.append(f"    [{j}] {len(reg['ops'])} ops: {', '.join(reg['ops'])}")
            lines.append(f"        kernel {reg['kernel_key']} ({reg['origin']})")
            for key, origin in reg.get("broadcast_kernels", {}).items():
                lines.append(f"        broadcast kernel {key} ({origin})")
        for u in s.get("second_kernel", []):
            lines.append(f"    (a kernel of its own) {u['op']}: {u['reason']}")
        lines.append(f"  unfused nodes: {len(s['unfused'])}")
        for u in s["unfused"]:
            lines.append(f"    {u['op']}: {u['reason']}")
        if s.get("training"):  # forward and backward graphs of calls that required grad
            lines.append(_indent(joint_text(s["training"]), "  "))
    if r["events"]:
        lines.append("\nevents:")
        for k, e in enumerate(r["events"], 1):
            detail = f": {e['detail']}" if e["detail"] else ""
            lines.append(f"  {k}. {e['event']} {e['signature']}{detail}")
    return "\n".join(lines)


def explain(optimized, as_dict: bool = False):
    """Report everything the JIT did for ``optimized`` (from ``fusejit.optimize``, or a
    ``TracedFunction``): per input signature its status, the captured graph, each fused region
    with its ops and its kernel's cache key and origin (compiled / memory / disk), the nodes
    left unfused and why, fallbacks to eager with their reasons, guard failures and
    re-specializations, and the time spent compiling. Plain text, or a dict with ``as_dict``.

    >>> import fusejit
    >>> f = fusejit.optimize(lambda x: x.exp() * 2, warmup=0)
    >>> _ = f(fusejit.ones(4))
    >>> r = fusejit.explain(f, as_dict=True)
    >>> r["signatures"][0]["status"], r["signatures"][0]["fused_regions"][0]["ops"]
    ('compiled', ['exp', 'mul'])
    """
    r = report(optimized)
    return r if as_dict else _text(r)
