"""``fusejit.explain``: what the JIT did for an optimized, traced, scripted or loaded function.

The report opens with a summary that stays short for a whole model (its signatures one line
each, fused regions and distinct kernels, unfused ops grouped by reason with counts, fallbacks
and guard failures grouped by reason, compile time split into its parts, bytes moved per call)
and then gives the details signature by signature: the graph (captured parameters named by
their module path, each fused node by the same kernel key as the region list), the regions,
the unfused ops, the events. ``format="html"`` makes a page that draws the graph with its
fused regions outlined (with graphviz's ``dot`` where it is installed, else as a plain list).
"""

from __future__ import annotations

import html
import re
import shutil
import subprocess
from collections import Counter

from fusejit.jit.api import TracedFunction
from fusejit.jit.archive import LoadedFunction
from fusejit.jit.graph_info import graph_info, info_of, name_captured
from fusejit.jit.joint import joint_info, joint_text
from fusejit.jit.optimize import Executor, OptimizedModule
from fusejit.jit.scripting.decorator import BoundScript, ScriptFunction
from fusejit.jit.train_step import step_info, step_text
from fusejit.nn import Module

__all__ = ["explain"]

# the parts of compile time, in the order they happen
TIMING_PARTS = ("trace", "passes", "compile", "first run", "check")
_MAX_SIGNATURE_LINES = 8
_CHECKS = {
    "full": "full (a second eager run; the compiled result against the recorded one)",
    "regions": "regions (each distinct fused kernel on the eager values the trace recorded)",
}  # in the summary; the details list every signature


def _label(graph) -> str:
    return "(" + ", ".join(str(p.type) for p in graph.inputs) + ")"


def _sig(label: str, status: str, info: dict | None, **extra) -> dict:
    d = {
        "signature": label,
        "status": status,
        "warmup_calls": 0,
        "eager_calls": 0,
        "reason": None,
        "respecialized_because": None,
        "trace_seconds": None,
        "compile_seconds": None,
        "timings": {},
    }
    d.update(extra)
    if info is not None:
        d.update(info)
    return d


def _head(name: str, kind: str, sigs: list, **extra) -> dict:
    total = sum(s["compile_seconds"] or 0 for s in sigs)
    r = {
        "name": name, "kind": kind, "warmup": None, "strict": None,
        "max_specializations": None, "specializations": len(sigs), "compile_seconds": total,
        "signatures": sigs, "events": [], "fallbacks": [], "guard_failures": [],
    }  # fmt: skip
    r.update(extra)
    return r


def _report_traced(traced: TracedFunction) -> dict:
    t = {k: v for k, v in getattr(traced, "timings", {}).items() if v is not None}
    sig = _sig(_label(traced.graph), "compiled", graph_info(traced),
               trace_seconds=t.get("trace"), compile_seconds=sum(t.values()) or
               traced.compile_seconds, timings=t,
               check=getattr(traced, "check_kind", None))  # fmt: skip
    sig["training"] = joint_info(traced)
    step = step_info(traced)
    if step is not None:
        sig["train_step"] = step
    return _head(traced.__name__, "traced function", [sig])


def _report_script(obj) -> dict:
    owner = obj.obj if isinstance(obj, BoundScript) else None
    names = _module_names([owner] if isinstance(owner, Module) else [])
    sigs = []
    for c in obj.specializations():
        for g in (c.raw_graph, c.graph):
            name_captured(g, names)
        sigs.append(_sig(_label(c.graph), "compiled", info_of(c.graph, c.plan)))
    kind = "scripted module" if owner is not None else "scripted function"
    return _head(obj.__name__, kind, sigs)


def _report_loaded(obj: LoadedFunction) -> dict:
    names = {id(t): n for n, t in obj.tensors.items() if not re.fullmatch(r"tensor\d+", n)}
    sigs = []
    for e in obj.entries:
        for g in (e.raw, e.graph):
            name_captured(g, names)
        sigs.append(_sig(_label(e.graph), "compiled", info_of(e.graph, e.plan)))
    return _head(obj.__name__, f"loaded {obj.kind}", sigs, kernel_note=obj.kernel_note)


def _module_names(modules) -> dict:
    from fusejit.jit.graph_info import module_tensor_names

    return module_tensor_names(modules)


def _report_executor(ex: Executor) -> dict:
    with ex._lock:
        specs = list(ex._specs)
        events = [dict(e) for e in ex._events]
    names = _module_names(ex._watched())
    sigs = []
    for s in specs:
        was_compiled = s.status in ("compiled", "invalidated")
        d = _sig(s.label, s.status, None, warmup_calls=s.warmup_runs, eager_calls=s.eager_calls,
                 reason=s.reason, respecialized_because=s.why,
                 trace_seconds=s.trace_seconds if was_compiled else None,
                 compile_seconds=s.compile_seconds if was_compiled else None,
                 timings=dict(s.timings) if was_compiled else {})  # fmt: skip
        if s.traced is not None:
            for g in (s.traced.raw_graph, s.traced.graph):
                name_captured(g, names)
            d.update(graph_info(s.traced, s.kernels))
            d["training"] = joint_info(s.traced)
            step = step_info(s.traced)
            if step is not None:
                d["train_step"] = step
        elif s.info is not None:
            d.update(s.info)
        sigs.append(d)
    return _head(
        ex._name, "module" if ex._module is not None else "function", sigs,
        warmup=ex.warmup, strict=ex.strict, max_specializations=ex.max_specializations,
        specializations=ex._n_traces, events=events,
        fallbacks=[{"signature": s["signature"], "reason": s["reason"]}
                   for s in sigs if s["status"] == "eager"],
        guard_failures=[{"signature": e["signature"], "reason": e["detail"]}
                        for e in events if e["event"] == "guard_failure"],
    )  # fmt: skip


def _scripted_of(obj):
    if isinstance(obj, (ScriptFunction, BoundScript)):
        return obj
    if isinstance(obj, Module) and not isinstance(obj, OptimizedModule):
        fwd = obj.__dict__.get("forward") or getattr(obj, "forward", None)
        if isinstance(fwd, (ScriptFunction, BoundScript)):
            return fwd
    return None


def report(obj) -> dict:
    """The facts behind ``explain`` as a dict (see ``explain``)."""
    if isinstance(obj, TracedFunction):
        r = _report_traced(obj)
    elif isinstance(obj, LoadedFunction):
        r = _report_loaded(obj)
    elif _scripted_of(obj) is not None:
        r = _report_script(_scripted_of(obj))
    else:
        if isinstance(obj, OptimizedModule):
            ex = obj.__dict__["_fusejit_executor"]
        else:
            ex = getattr(obj, "_fusejit_executor", obj)
        if not isinstance(ex, Executor):
            raise TypeError(
                "explain: expected what fusejit.optimize, fusejit.trace, fusejit.script or "
                f"fusejit.load returned, got {type(obj).__name__}"
            )
        r = _report_executor(ex)
    r["summary"] = _summary(r)
    return r


# ---- the summary ------------------------------------------------------------------------------
_NUMBERS = re.compile(r"\[[-\d, ]*\]|\(\d+(, \d+)*,?\)|\b\d+\b")


def _pattern(reason: str) -> str:
    """A reason with its shapes and numbers blanked, to group reasons that differ only there."""
    return _NUMBERS.sub("#", reason or "")


def _grouped(reasons) -> list:
    """[{"reason": an example, "count": n}] for reasons grouped by ``_pattern``, most first."""
    groups: dict = {}
    for r in reasons:
        g = groups.setdefault(_pattern(r), {"reason": r, "count": 0, "all_same": r})
        g["count"] += 1
        if r != g["all_same"]:
            g["all_same"] = None
    for g in groups.values():  # "all_same": whether every reason of the group is this one
        g["all_same"] = g["all_same"] is not None
    return sorted(groups.values(), key=lambda g: -g["count"])


def group_unfused(unfused: list) -> list:
    """[{"reason", "count", "ops": {op: count}}] of unfused nodes, by reason, most first."""
    groups: dict = {}
    for u in unfused:
        g = groups.setdefault(u["reason"], {"reason": u["reason"], "count": 0, "ops": Counter()})
        g["count"] += 1
        g["ops"][u["op"]] += 1
    out = sorted(groups.values(), key=lambda g: -g["count"])
    for g in out:
        g["ops"] = dict(g["ops"].most_common())
    return out


def _summary(r: dict) -> dict:
    sigs = r["signatures"]
    with_graph = [s for s in sigs if "graph" in s]
    regions = [reg for s in with_graph for reg in s["fused_regions"]]
    distinct = {reg["kernel_key"]: reg["origin"] for reg in regions}
    unfused = [u for s in with_graph for u in s["unfused"]]
    timings: dict = {}
    for s in sigs:
        for k, v in (s.get("timings") or {}).items():
            if v is not None:
                timings[k] = timings.get(k, 0.0) + v
    captured = [c for s in with_graph for c in s.get("captured", [])]
    return {
        "statuses": dict(Counter(s["status"] for s in sigs)),
        "fused_regions": len(regions),
        "kernels": len(distinct),
        "kernel_origins": dict(Counter(distinct.values())),
        "unfused": len(unfused),
        "unfused_by_reason": group_unfused(unfused),
        "fallbacks": _grouped(f["reason"] for f in r["fallbacks"]),
        "guard_failures": _grouped(g["reason"] for g in r["guard_failures"]),
        "timings": timings,
        "captured": len(captured),
        "captured_named": sum(1 for c in captured if c["name"]),
    }


def _mb(n: int) -> str:
    if n >= 1 << 20:
        return f"{n / (1 << 20):.1f} MiB"
    if n >= 1 << 10:
        return f"{n / (1 << 10):.1f} KiB"
    return f"{n} B"


def _ops_of(group: dict) -> str:
    return ", ".join(op if n == 1 else f"{op} x{n}" for op, n in group["ops"].items())


def _moved(s: dict) -> str:
    b = s["bytes_moved"]
    approx = "" if b["exact"] else " (sizes known so far)"
    return (f"{_mb(b['fused'] + b['unfused'])} moved per call (fused kernels {_mb(b['fused'])}, "
            f"other ops {_mb(b['unfused'])}){approx}")  # fmt: skip


def _fmt_timings(t: dict) -> str:
    parts = [f"{k} {t[k]:.3f}" for k in TIMING_PARTS if k in t]
    return " + ".join(parts)


def _summary_lines(r: dict) -> list:
    sm = r["summary"]
    sigs = r["signatures"]
    st = ", ".join(f"{n} {k}" for k, n in sm["statuses"].items())
    lines = ["summary:", f"  signatures: {len(sigs)} ({st or 'none yet'})"]
    for i, s in enumerate(sigs[:_MAX_SIGNATURE_LINES], 1):
        line = f"    [{i}] {s['signature']}: {s['status']}"
        if "graph" in s:
            line += (f", {len(s['fused_regions'])} fused regions, {len(s['unfused'])} unfused "
                     f"ops; {_moved(s)}")  # fmt: skip
        elif s["reason"]:
            line += f" ({s['reason'][:100]})"
        lines.append(line)
    if len(sigs) > _MAX_SIGNATURE_LINES:
        lines.append(f"    ... and {len(sigs) - _MAX_SIGNATURE_LINES} more (details below)")
    origins = ", ".join(f"{n} {k}" for k, n in sm["kernel_origins"].items())
    lines.append(f"  fused regions: {sm['fused_regions']}, running {sm['kernels']} distinct "
                 f"kernel(s)" + (f" ({origins})" if origins else ""))  # fmt: skip
    lines.append(f"  unfused ops: {sm['unfused']}" + (", by reason:" if sm["unfused"] else ""))
    for g in sm["unfused_by_reason"]:
        lines.append(f"    {g['count']:4d}  {g['reason']}: {_ops_of(g)}")
    if sm["captured"]:
        lines.append(f"  captured tensors: {sm['captured']}, {sm['captured_named']} named by "
                     "their module path")  # fmt: skip
    for key, title in (("fallbacks", "fallbacks to eager"), ("guard_failures", "guard failures")):
        groups = sm[key]
        lines.append(f"  {title}: {sum(g['count'] for g in groups) or 'none'}")
        for g in groups[:6]:
            eg = "" if g["all_same"] else "e.g. "
            lines.append(f"    {g['count']:4d}  {eg}{g['reason']}")
        if len(groups) > 6:
            lines.append(f"    ... {len(groups) - 6} more kinds (details below)")
    if r.get("kernel_note"):
        lines.append(f"  archive kernels: {r['kernel_note']}")
    t = sm["timings"]
    if t:
        lines.append(f"  compile time: {sum(t.values()):.3f} s = {_fmt_timings(t)}")
    else:
        lines.append("  compile time: not measured (compiled before this process, or scripted)")
    return lines


def _text(r: dict) -> str:
    head = f"fusejit.explain: {r['name']} ({r['kind']})"
    if r["warmup"] is not None:
        head += (f"; warmup={r['warmup']}, max_specializations={r['max_specializations']}, "
                 f"strict={r['strict']}")  # fmt: skip
    lines = [head, *_summary_lines(r), "", "details:"]
    lines.append(f"  {len(r['signatures'])} signature(s), {r['specializations']} "
                 f"specialization(s), {r['compile_seconds']:.3f} s spent tracing, compiling "
                 "and checking")  # fmt: skip
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
        if s["timings"]:
            t = s["timings"]
            lines.append(f"  compile time: {sum(t.values()):.3f} s = {_fmt_timings(t)}")
        if s.get("check"):
            kind, _, counts = s["check"].partition(": ")
            lines.append(f"  checked: {_CHECKS.get(kind, kind)}" + (f"; {counts}" if counts
                                                                   else ""))  # fmt: skip
        lines.append(f"  {_moved(s)}")
        if s.get("train_step"):  # forward, backward and update in one graph
            lines.extend("  " + line for line in step_text(s["train_step"]))
        lines.append("  graph:")
        lines.extend("    " + line for line in s["graph"].splitlines())
        lines.append(f"  fused regions: {len(s['fused_regions'])}")
        for reg in s["fused_regions"]:
            lines.append(f"    [{reg['index']}] kernel {reg['kernel_key']} ({reg['origin']}): "
                         f"{len(reg['ops'])} ops: {', '.join(reg['ops'])}")  # fmt: skip
            for key, origin in reg.get("broadcast_kernels", {}).items():
                lines.append(f"        broadcast kernel {key} ({origin})")
        for u in s.get("second_kernel", []):
            lines.append(f"    (a kernel of its own) {u['op']}: {u['reason']}")
        lines.append(f"  unfused nodes: {len(s['unfused'])}")
        for g in group_unfused(s["unfused"]):
            lines.append(f"    {_ops_of(g)}: {g['reason']}")
        if s.get("training"):  # forward and backward graphs of calls that required grad
            lines.extend("  " + line for line in joint_text(s["training"]).splitlines())
    if r["events"]:
        lines.append("\nevents:")
        for k, e in enumerate(r["events"], 1):
            detail = f": {e['detail']}" if e["detail"] else ""
            lines.append(f"  {k}. {e['event']} {e['signature']}{detail}")
    return "\n".join(lines)


# ---- html ---------------------------------------------------------------------------------------
_CSS = """body{font-family:sans-serif;margin:1.5em}pre{background:#f6f6f6;padding:.6em}
.region{border:2px solid #1f6fb2;border-radius:6px;margin:.4em 0;padding:.3em .6em}
.region h4{margin:.1em 0;color:#1f6fb2}.node{font-family:monospace;white-space:pre}
.unfused{color:#8a4b00}.param{color:#555}"""


def _dot_source(s: dict, graph) -> str:
    """The DOT source of a signature's optimized graph: each fused region a cluster."""
    from fusejit.ir.values import Const

    ids: dict = {}

    def vid(v) -> str:
        return ids.setdefault(v, f"v{len(ids)}")

    regions = {r["index"]: r for r in s["fused_regions"]}
    out = ["digraph G {", "  rankdir=TB; node [shape=box, fontsize=10, fontname=monospace];"]
    for p in graph.block.params:
        label = p.hint or ("input" if p in graph.inputs else "captured")
        out.append(f'  {vid(p)} [label="{label}\\n{p.type}", shape=ellipse, color=gray];')
    producer: dict = {}
    n_region = 0
    for k, n in enumerate(graph.block.nodes):
        name = f"n{k}"
        if n.op == "fused":
            reg = regions.get(n_region, {"kernel_key": "?"})
            out.append(f"  subgraph cluster_{n_region} {{")
            out.append(f'    label="region {n_region}: kernel {reg["kernel_key"][:12]}"; '
                       "color=blue; penwidth=2;")  # fmt: skip
            for j, inner in enumerate(n.blocks[0].nodes):
                out.append(f'    {name}_{j} [label="{inner.op}"];')
                for o in inner.outputs:
                    producer[o] = f"{name}_{j}"
            out.append("  }")
            for j, inner in enumerate(n.blocks[0].nodes):
                for v in inner.inputs:
                    if isinstance(v, Const):
                        continue
                    src = producer.get(v) or (vid(v) if v in graph.block.params else None)
                    if src is not None:
                        out.append(f"  {src} -> {name}_{j};")
            for o in n.outputs:
                producer.setdefault(o, producer.get(o, f"{name}_0"))
            n_region += 1
            continue
        out.append(f'  {name} [label="{n.op}", color="#8a4b00"];')
        for v in n.inputs:
            if isinstance(v, Const):
                continue
            src = producer.get(v) or (vid(v) if v in graph.block.params else None)
            if src is not None:
                out.append(f"  {src} -> {name};")
        for o in n.outputs:
            producer[o] = name
    out.append("}")
    return "\n".join(out)


def _plain_list(s: dict) -> str:
    """The graph as a list: the fused regions outlined boxes with their ops, unfused ops
    between them, in the order the plan runs them."""
    parts = ['<div class="graph">']
    inside = None
    for line in s["graph"].splitlines():
        esc = html.escape(line)
        m = re.search(r"= fused\[region=(\d+), kernel=(\w+)", line)
        if m:
            if inside is not None:
                parts.append("</div>")
            parts.append(f'<div class="region"><h4>region {m.group(1)}: kernel {m.group(2)}'
                         "</h4>")  # fmt: skip
            inside = len(line) - len(line.lstrip())
            continue
        if inside is not None and len(line) - len(line.lstrip()) <= inside:
            parts.append("</div>")
            inside = None
        cls = "node" if inside is not None else "node unfused"
        if "(captured)" in line or line.startswith("graph("):
            cls = "node param"
        parts.append(f'<div class="{cls}">{esc}</div>')
    if inside is not None:
        parts.append("</div>")
    parts.append("</div>")
    return "\n".join(parts)


def _graphs_of(obj) -> list:
    """The optimized graphs behind ``obj``'s signatures (None where it has none), in the
    order ``report`` lists the signatures."""
    if isinstance(obj, TracedFunction):
        return [obj.graph]
    if isinstance(obj, LoadedFunction):
        return [e.graph for e in obj.entries]
    sc = _scripted_of(obj)
    if sc is not None:
        return [c.graph for c in sc.specializations()]
    ex = obj.__dict__["_fusejit_executor"] if isinstance(obj, OptimizedModule) else getattr(
        obj, "_fusejit_executor", obj
    )  # fmt: skip
    return [s.traced.graph if s.traced is not None else None for s in ex._specs]


def _svg(dot_src: str) -> str | None:
    dot = shutil.which("dot")
    if dot is None:
        return None
    try:
        res = subprocess.run([dot, "-Tsvg"], input=dot_src.encode(), capture_output=True,
                             timeout=60, check=True)  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return None
    svg = res.stdout.decode("utf-8", "replace")
    i = svg.find("<svg")
    return svg[i:] if i >= 0 else None


def _html(obj, r: dict) -> str:
    graphs = _graphs_of(obj)
    title = html.escape(f"fusejit.explain: {r['name']} ({r['kind']})")
    body = [f"<h1>{title}</h1>", "<h2>Summary</h2>",
            f"<pre>{html.escape(chr(10).join(_summary_lines(r)))}</pre>"]  # fmt: skip
    renderer = "dot" if shutil.which("dot") else "list"
    for i, s in enumerate(r["signatures"], 1):
        body.append(f"<h2>Signature {i}: {html.escape(s['signature'])} [{s['status']}]</h2>")
        if s["reason"]:
            body.append(f"<p>{html.escape(s['reason'])}</p>")
        if "graph" not in s:
            continue
        g = graphs[i - 1] if i - 1 < len(graphs) else None
        svg = _svg(_dot_source(s, g)) if renderer == "dot" and g is not None else None
        if svg is not None:
            body.append(f'<div class="svg">{svg}</div>')
        else:
            body.append(_plain_list(s))
    body.append(f"<h2>Details</h2><pre>{html.escape(_text(r))}</pre>")
    return ("<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\">"
            f"<title>{title}</title><style>{_CSS}</style></head><body>\n"
            + "\n".join(body) + "\n</body></html>\n")  # fmt: skip


def explain(obj, as_dict: bool = False, *, format: str = "text", path=None):  # noqa: A002
    """Report everything the JIT did for ``obj``: what ``fusejit.optimize`` (a function or a
    module), ``fusejit.trace``, ``fusejit.script`` or ``fusejit.load`` returned.

    A summary comes first: the input signatures (one line each), the fused regions and the
    distinct kernels they run, the unfused ops grouped by reason with counts, fallbacks to
    eager and guard failures grouped by reason, compile time split into trace, passes,
    compile (building the plan and its kernels), first run and check, and the bytes moved
    per call. Then the details of each signature: the graph (captured parameters named by
    their module path, fused nodes by the kernel key the region list uses), each fused
    region with its ops and its kernel's cache key and origin (compiled / memory / disk),
    the unfused nodes by reason, and the events (specializations, guard failures,
    fallbacks).

    ``format``: ``"text"`` (the default), ``"dict"`` (also ``as_dict=True``) or ``"html"``: a
    page drawing each graph with its fused regions outlined (laid out by graphviz's ``dot``
    when it is installed, else a plain list); with ``path`` it is also written there.

    >>> import fusejit
    >>> f = fusejit.optimize(lambda x: x.exp() * 2, warmup=0)
    >>> _ = f(fusejit.ones(4))
    >>> r = fusejit.explain(f, as_dict=True)
    >>> r["signatures"][0]["status"], r["signatures"][0]["fused_regions"][0]["ops"]
    ('compiled', ['exp', 'mul'])
    >>> fusejit.explain(f).splitlines()[1]
    'summary:'
    """
    r = report(obj)
    if as_dict or format == "dict":
        return r
    if format == "text":
        return _text(r)
    if format == "html":
        page = _html(obj, r)
        if path is not None:
            with open(path, "w", encoding="utf-8") as f:
                f.write(page)
        return page
    raise ValueError(f"explain: format must be 'text', 'dict' or 'html', got {format!r}")
