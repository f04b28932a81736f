"""Joint graphs: the backward of a traced function, compiled, behind an autograd node.

When a traced (or optimized) function is called with grad mode on and an input or a captured
tensor (a module's parameter) requiring grad, its outputs get one autograd node whose backward
runs a compiled backward graph. The graphs are built once per such *grad mask* (which inputs
require grad):

1. **Joint graph.** The forward graph is run again under a tracer, op by op through eager
   dispatch, then the op table's derivative rules (``OpDef.vjp``, written with ``fusejit``
   functions) are called on the recorded tensors in reverse, as the eager engine calls them:
   they record too. The result is one graph from (inputs, captured tensors, tangents: the
   gradients of the outputs) to (outputs, gradients of the inputs that require grad). The
   gradients are summed and reduced to their operands' shapes and dtypes as the eager engine
   does it, in the same order, so they round as eager's do.
2. **Cleanup** (simplify, CSE, DCE, decomposition) on the joint graph, so the forward and the
   backward share what they both compute and the partition sees primitives.
3. **Partition** (``fusejit/jit/partition.py``): which forward values the backward reads from
   memory (saved) and which it recomputes, by a minimum cut over the bytes.
4. **Split** into a forward graph (inputs -> outputs and saved values) and a backward graph
   (saved values and tangents -> gradients), each optimized and fused as any traced graph.

At run time the forward plan's outputs get a ``CompiledFunctionBackward`` node (an eager
autograd node whose edges are the inputs' histories or gradient accumulators); its backward
runs the backward plan on the saved values and the incoming gradients, so gradients accumulate
into leaves and parameters exactly as eager. ``create_graph=True`` through it runs the function
eagerly again and differentiates that (a compiled backward is not itself differentiable).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from fusejit.base.errors import AutogradError, TraceError
from fusejit.base.symbolic import is_symbolic, resolve
from fusejit.eager import autograd, dispatch, recording
from fusejit.eager.grad_mode import MODE
from fusejit.eager.random import generator_states, set_generator_states
from fusejit.eager.tensor import GradInfo, Tensor
from fusejit.ir.control import has_effect
from fusejit.ir.graph import Block, Const, Graph, Value
from fusejit.ir.verify import verify
from fusejit.jit import tracer as tr
from fusejit.jit.api import _target_of, optimize_graph
from fusejit.jit.partition import Partition, nbytes, partition
from fusejit.jit.passes.cleanup import cse, dce
from fusejit.jit.passes.decompose import decompose
from fusejit.jit.passes.simplify import simplify
from fusejit.jit.runtime import Plan
from fusejit.ops.registry import OPS

__all__ = [
    "CompiledJoint", "build_joint", "compile_joint", "grad_mask", "call_joint", "joint_info",
    "joint_text", "script_call",
]  # fmt: skip


# ---- the joint graph ---------------------------------------------------------------------------
class _Ctx:
    """What a derivative rule reads (the eager engine's ``OpNode`` gives the same)."""

    __slots__ = ("inputs", "outputs", "attrs", "needs_input_grad", "_metas")

    def __init__(self, args, outs, attrs, needs) -> None:
        self.inputs = tuple(args)
        self.outputs = tuple(outs)
        self.attrs = attrs
        self.needs_input_grad = needs
        self._metas = [(a._data.shape, a._dtype, a._device) if isinstance(a, Tensor) else None
                       for a in args]  # fmt: skip

    def input_meta(self, i: int):
        return self._metas[i]


def _fit(F, g, ty):
    """Gradient ``g`` for a tensor ``ty`` summed to its shape and cast to its dtype, as the
    eager engine's ``_fit`` does (None where the dtype takes no gradient)."""
    if not isinstance(g, Tensor):
        raise AutogradError(f"backward: a derivative rule gave a {type(g).__name__}, expected a "
                            "tensor")  # fmt: skip
    if tuple(g._data.shape) != tuple(ty._data.shape):
        g = autograd.sum_to_size(g, ty._data.shape)
    if g._dtype is not ty._dtype:
        if ty._dtype.kind not in "fc":
            return None
        if g._dtype.kind == "c" and ty._dtype.kind == "f":
            g = F.real(g)
        if g._dtype is not ty._dtype:
            g = F.cast(g, ty._dtype)
    return g


def apply_rule(F, n, op, args, outs, gs: list, needs, grads: dict, attrs=None) -> None:
    """Run node ``n``'s derivative rule (``op.vjp``) on its outputs' gradients ``gs`` (a float
    output without one gets zeros) and add each operand's gradient, summed to its shape and
    dtype, into ``grads`` (value -> gradient), as the eager engine does. ``attrs``: the node's
    attributes with its dynamic sizes resolved (default: its own)."""
    for i, o in enumerate(n.outputs):
        if gs[i] is None and o.type.dtype.kind in "fc":
            gs[i] = F.zeros(outs[i].shape, dtype=o.type.dtype, device=o.type.device)
    res = op.vjp(F, _Ctx(args, outs, n.attr_dict if attrs is None else attrs, needs), *gs)
    if not isinstance(res, tuple):
        res = (res,)
    for v, a, g, need in zip(n.inputs, args, res, needs, strict=True):
        if need and g is not None:
            g = _fit(F, g, a)
            if g is not None:
                old = grads.get(v)
                grads[v] = g if old is None else F.add(old, g)


@dataclass
class JointGraph:
    """A joint graph: params are the primals (the forward graph's params, then tensors the
    derivative rules captured), then the tangents; results are the forward outputs, then one
    gradient per input in ``grad_inputs`` (indices into the primals)."""

    graph: Graph
    n_primals: int
    n_forward_params: int  # of the primals, the forward graph's own params
    extra: list  # tensors the rules captured (constants), primals after the forward's params
    n_outputs: int
    tangent_of: list  # output index -> tangent index, or None (the output takes no gradient)
    grad_inputs: list  # primal index of each gradient result


def grad_mask(tensors) -> tuple:
    """Per tensor, whether it requires grad."""
    out = []
    for t in tensors:
        info = getattr(t, "_ag", None)
        out.append(info is not None and info.requires_grad)
    return tuple(out)


def build_joint(raw: Graph, tensors: list, mask: tuple, stops=()) -> JointGraph:
    """The joint graph of ``raw`` (a straight-line graph of op-table ops), replayed on
    ``tensors`` (its params' tensors: user inputs, then captured) with ``mask`` telling which
    require grad. ``stops``: the values computed with grad mode off while tracing (a
    ``detach()`` is a node of its own, ``detach``, with no gradient)."""
    no_grad = set(stops)
    params = raw.block.params
    for n in raw.block.nodes:
        op = OPS.get(n.op)
        if op is None or n.blocks:
            raise TraceError(
                f"backward through a compiled graph: the node {n.op} is not an op-table op "
                "(control flow); run it eagerly"
            )
    F = autograd._F()
    rg: dict = {}
    for p, m in zip(params, mask, strict=True):
        rg[p] = m
    for n in raw.block.nodes:
        op = OPS[n.op]
        need = op.differentiable and any(rg.get(v, False) for v in n.tensor_inputs())
        for o in n.outputs:
            rg[o] = need and o.type.dtype.kind in "fc" and o not in no_grad
    with tr._trace_lock:
        if recording.TRACER is not None:
            raise TraceError("backward through a compiled graph: a trace is being recorded")
        tracer = tr.Tracer()
        env: dict = {}
        for p, t in zip(params, tensors, strict=True):
            plain = Tensor._wrap(t._data, t._dtype, t._device)
            tracer.add_input(plain, p.hint)
            env[p] = plain
        n_fwd_params = len(params)
        prev = MODE.enabled
        MODE.enabled = False  # (the rules run under no_grad in the eager engine too)
        # running the graph draws what its random ops draw: put back after, so the call that
        # compiles draws what eager code would
        rng = generator_states()
        try:
            with recording.recording(tracer):
                records = []
                # a graph with dynamic dims: its sizes, for these tensors (the joint graph is
                # recorded for their shapes; ``TracedFunction.joint`` keys it by them)
                sizes = {s: tensors[i]._data.shape[d] for s, i, d in raw.notes.get("symbols", ())}
                for n in raw.block.nodes:
                    args = [v.value if isinstance(v, Const) else env[v] for v in n.inputs]
                    attrs = n.attr_dict
                    if sizes and is_symbolic(attrs):
                        attrs = resolve(attrs, sizes)
                    res = dispatch.call(n.op, *args, **attrs)
                    outs = tuple(res) if len(n.outputs) > 1 else (res,)
                    for o, t in zip(n.outputs, outs, strict=True):
                        env[o] = t
                    records.append((n, args, outs, attrs))
                results = raw.block.results
                tangent_of: list = []
                tangents: list = []
                grads: dict = {}
                for r in results:
                    if isinstance(r, Value) and rg.get(r, False):
                        with recording.recording(None):
                            g = F.zeros_like(env[r])
                        tracer.add_input(g, "g")
                        tangent_of.append(len(tangents))
                        tangents.append(g)
                        grads[r] = g if r not in grads else F.add(grads[r], g)
                    else:
                        tangent_of.append(None)
                for n, args, outs, attrs in reversed(records):
                    gs = [grads.get(o) for o in n.outputs]
                    if all(g is None for g in gs):
                        continue
                    needs = tuple(isinstance(v, Value) and rg.get(v, False) for v in n.inputs)
                    if not any(needs):
                        continue
                    op = OPS[n.op]
                    if op.vjp is None:
                        raise TraceError(
                            f"backward through a compiled graph: the op {n.op} has no "
                            "derivative rule in the op table yet"
                        )
                    apply_rule(F, n, op, args, outs, gs, needs, grads, attrs)
                grad_inputs = [k for k, p in enumerate(params) if mask[k] and p in grads]
                out_vals = [tracer.value_of(env[r]) if isinstance(r, Value) else r for r in results]
                grad_vals = [tracer.value_of(grads[params[k]]) for k in grad_inputs]
        finally:
            MODE.enabled = prev
            set_generator_states(rng)
    if tracer.value_reads:
        what, where = tracer.value_reads[0]
        raise TraceError(f"backward through a compiled graph: a derivative rule reads a "
                         f"tensor's value ({what}) at {where}")  # fmt: skip
    primal_vals = tracer.params[:n_fwd_params]
    tangent_vals = tracer.params[n_fwd_params:]
    extra_vals = [v for v, _ in tracer.captured]
    block = Block(primal_vals + extra_vals + tangent_vals, tracer.nodes, out_vals + grad_vals)
    g = Graph(block, len(block.params), [])
    return JointGraph(
        graph=g,
        n_primals=n_fwd_params + len(extra_vals),
        n_forward_params=n_fwd_params,
        extra=[t for _, t in tracer.captured],
        n_outputs=len(results),
        tangent_of=tangent_of,
        grad_inputs=grad_inputs,
    )


_CLEANUP = (("simplify", simplify), ("cse", cse), ("dce", dce), ("decompose", decompose))


def _cleanup(g: Graph, target: str) -> Graph:
    for _ in range(4):
        changed_any = False
        for name, p in _CLEANUP:
            g, changed = p(g, target) if name == "decompose" else p(g)
            changed_any |= changed
        if not changed_any:
            break
    return g


# ---- splitting ---------------------------------------------------------------------------------
@dataclass
class CompiledJoint:
    """The compiled forward and backward of one grad mask (see the module docstring)."""

    mask: tuple
    forward: Graph  # params: the forward's params and the rules' constants; results: outputs
    backward: Graph  # params: saved values, then tangents; results: gradients
    forward_plan: Plan
    backward_plan: Plan
    n_outputs: int
    saved_sources: list  # per saved value: ("param", index into the forward's env) or ("out", k)
    tangent_of: list
    grad_inputs: list
    extra: list
    partition: Partition
    saved_info: list = field(default_factory=list)  # (name, type, bytes, where) per saved value
    recomputed_info: list = field(default_factory=list)  # (name, type, bytes)
    compile_seconds: float = 0.0
    joint: Graph | None = None

    def kernel_counts(self) -> tuple[int, int]:
        return len(self.forward_plan.kernels), len(self.backward_plan.kernels)


def _describe_value(v: Value, producer: dict, n_inputs: int, primal_index: dict) -> str:
    n = producer.get(v)
    if n is not None:
        return n.op
    k = primal_index.get(v, n_inputs)
    return (v.hint or f"input {k}") if k < n_inputs else "captured"


def compile_joint(raw: Graph, tensors: list, mask: tuple, optimize_graph, target: str,
                  stops=()) -> CompiledJoint:  # fmt: skip
    """Build, partition, split and compile the joint graph of ``raw`` for grad ``mask``
    (``optimize_graph(graph, target)`` optimizes each part: ``fusejit.jit.api``'s)."""
    t0 = time.perf_counter()
    jg = build_joint(raw, tensors, mask, stops)
    verify(jg.graph)
    joint = _cleanup(jg.graph, target)
    params = joint.block.params
    primals = params[: jg.n_primals]
    tangents = params[jg.n_primals :]
    part = partition(joint, jg.n_primals, jg.n_outputs)
    saved = part.saved
    saved_set = set(saved)
    outputs = list(joint.block.results[: jg.n_outputs])
    grads = list(joint.block.results[jg.n_outputs :])
    producer = {o: n for n in joint.block.nodes for o in n.outputs}
    primal_index = {p: k for k, p in enumerate(primals)}
    # forward: what the outputs and the saved values need
    # (a saved value that is an output is read from the output: no copy)
    saved_out = [v for v in saved if v not in primal_index and v not in outputs]
    fwd_results = outputs + saved_out
    live = {v for v in fwd_results if isinstance(v, Value)}
    fwd_nodes = []
    for n in reversed(joint.block.nodes):
        # (a random draw nothing reads still runs: it advances the generator, as eagerly)
        if any(o in live for o in n.outputs) or has_effect(n):
            fwd_nodes.append(n)
            live.update(v for v in n.inputs if isinstance(v, Value))
    fwd_nodes.reverse()
    fwd = Graph(Block(list(primals), fwd_nodes, fwd_results), len(raw.inputs),
                list(raw.captured) + list(jg.extra))  # fmt: skip
    # backward: from the saved values and the tangents to the gradients
    live = {v for v in grads if isinstance(v, Value)}
    bwd_nodes = []
    for n in reversed(joint.block.nodes):
        if any(o in live and o not in saved_set for o in n.outputs):
            if any(o in saved_set for o in n.outputs):
                raise TraceError("backward through a compiled graph: a node both saved and "
                                 "recomputed")  # fmt: skip
            bwd_nodes.append(n)
            live.update(v for v in n.inputs if isinstance(v, Value) and v not in saved_set)
    bwd_nodes.reverse()
    bwd = Graph(Block(list(saved) + list(tangents), bwd_nodes, grads), len(saved) + len(tangents))
    verify(fwd)
    verify(bwd)
    fwd_opt = optimize_graph(fwd, target)
    bwd_opt = optimize_graph(bwd, target)
    cj = CompiledJoint(
        mask=mask,
        forward=fwd_opt,
        backward=bwd_opt,
        forward_plan=Plan(fwd_opt),
        backward_plan=Plan(bwd_opt),
        n_outputs=jg.n_outputs,
        saved_sources=[
            ("param", primal_index[v])
            if v in primal_index
            else ("out", outputs.index(v))
            if v in outputs
            else ("out", jg.n_outputs + saved_out.index(v))
            for v in saved
        ],  # fmt: skip
        tangent_of=jg.tangent_of,
        grad_inputs=jg.grad_inputs,
        extra=jg.extra,
        partition=part,
        joint=joint,
    )
    n_in = len(raw.inputs)
    for v in saved:
        where = "input" if v in primal_index else "forward result"
        what = _describe_value(v, producer, n_in, primal_index)
        cj.saved_info.append((what, str(v.type), nbytes(v), where))
    for v in part.recomputed:
        what = _describe_value(v, producer, n_in, primal_index)
        cj.recomputed_info.append((what, str(v.type), nbytes(v)))
    cj.compile_seconds = time.perf_counter() - t0
    return cj


# ---- running -----------------------------------------------------------------------------------
def _edges(tensors: list, indices: list) -> tuple[list, list]:
    edges, metas = [], []
    for k in indices:
        t = tensors[k]
        info = getattr(t, "_ag", None)
        if autograd.REWRITTEN and info is not None and info.node is not None:
            info = autograd.sync_view(t, info)
        if info is not None and info.requires_grad:
            edges.append(autograd._edge(t, info))
        else:
            edges.append(None)
        metas.append((t._data.shape, t._dtype, t._device))
    return edges, metas


def call_joint(cj: CompiledJoint, tensors: list, captured: list, eager_fn=None
               ) -> list:  # fmt: skip
    """Run the forward plan of ``cj`` on ``tensors`` (user inputs) and ``captured``; the outputs
    that take gradients get a node whose backward runs the backward plan. ``eager_fn`` (the
    function on the flat user inputs, giving flat outputs) serves ``create_graph=True``."""
    captured = list(captured) + list(cj.extra)
    # the plan's unfused ops run through dispatch: with grad mode on they would record eager
    # autograd nodes (on parameters that require grad) that nothing uses
    prev, MODE.enabled = MODE.enabled, False
    try:
        res = cj.forward_plan.run(tensors, captured)  # (each intermediate freed after its last use)
    finally:
        MODE.enabled = prev
    n = cj.n_outputs
    outs = res[:n]
    env = [*tensors, *captured]
    saved = [env[k] if kind == "param" else res[k] for kind, k in cj.saved_sources]
    del res, env
    versions = [(t, autograd.version_of(t)) for t in saved]
    all_in = [*tensors, *captured]
    edges, metas = _edges(all_in, cj.grad_inputs)
    inputs_kept = list(tensors)
    tangent_pos = [i for i, t in enumerate(cj.tangent_of) if t is not None]
    node_name = "CompiledFunctionBackward"

    def backward(*grads):
        for t, v in versions:
            if autograd.version_of(t) != v:
                raise AutogradError(
                    f"backward: a tensor {node_name} saved ({t._dtype.name} tensor of shape "
                    f"{list(t.shape)}), needed for the gradient, was modified by an in-place "
                    f"operation after the forward (version {autograd.version_of(t)}, saved at "
                    f"{v}); clone() it before writing into it"
                )
        tg = [grads[i] for i in tangent_pos]
        if MODE.enabled:  # create_graph: differentiate an eager run of the function
            return _eager_grads(eager_fn, inputs_kept, all_in, cj, tg, node_name)
        gs = cj.backward_plan.run(list(saved) + tg, [])
        return tuple(gs)

    diff_outs = [o for i, o in enumerate(outs) if cj.tangent_of[i] is not None]
    if not any(e is not None for e in edges) or not diff_outs:
        return outs
    # (the backward plan's results are new tensors, never an input or one another: runtime.py)
    node = autograd.FunctionNode(node_name, edges, outs, backward, metas, fresh=True)
    for i, o in enumerate(outs):
        if cj.tangent_of[i] is not None:
            o._ag = GradInfo(True, node, i)
    return outs


def _eager_grads(eager_fn, inputs, all_in, cj, tangents, node_name):
    if eager_fn is None:
        raise AutogradError(
            f"backward: create_graph=True through {node_name}, a compiled backward, is not "
            "supported; call the function eagerly for higher derivatives"
        )
    outs = eager_fn(*inputs)
    roots = [outs[i] for i, t in enumerate(cj.tangent_of) if t is not None]
    targets = [all_in[k] for k in cj.grad_inputs]
    want = [(r, g) for r, g in zip(roots, tangents, strict=True) if r.requires_grad]
    if not want:
        return (None,) * len(targets)
    return autograd.grad([r for r, _ in want], targets, [g for _, g in want],
                         create_graph=True, allow_unused=True)  # fmt: skip


def script_call(c, tensors) -> list | None:
    """A scripted function's specialization ``c`` (``scripting.specialize.Compiled``) called
    on ``tensors`` with grad mode on: its outputs with a compiled backward, or None where no
    tensor requires grad. A graph with control flow (``if`` / ``loop``) has no joint graph yet:
    its outputs do not require grad, with one ``TracerWarning``."""
    raw = c.raw_graph
    mask = grad_mask([*tensors, *raw.captured])
    if True not in mask:
        return None
    joints = c.__dict__.setdefault("_joints", {})
    cj = joints.get(mask)
    if cj is None:
        if any(n.blocks for n in raw.block.nodes):
            if not c.__dict__.get("_joint_warned"):
                c._joint_warned = True
                tr.warn(f"{c.name}: a scripted function with control flow (if / loop) "
                        "returns outputs without gradients (no backward through its graph "
                        "yet)")  # fmt: skip
            return None
        cj = joints[mask] = compile_joint(raw, [*tensors, *raw.captured], mask, optimize_graph,
                                          _target_of(raw))  # fmt: skip
    return call_joint(cj, list(tensors), raw.captured)


# ---- explain -----------------------------------------------------------------------------------
def _kernels(plan: Plan) -> list:
    out = []
    for node, k in plan.kernels:
        # a CPU kernel also builds, on first use, one kernel per way its inputs broadcast
        entries = getattr(k, "entries", None)
        extra = entries()[1:] if entries is not None else []
        out.append({"ops": [n.op for n in node.blocks[0].nodes],
                    "kernel_key": getattr(k, "key", None) or node.attr("kernel_key"),
                    "broadcast_kernels": [e.key for e in extra]})  # fmt: skip
    return out


def _unfused(plan: Plan) -> list:
    return [n.op for n in plan.graph.block.nodes if n.op != "fused"]


def joint_info(traced) -> list:
    """Per grad mask a ``TracedFunction`` was called with: its forward and backward graphs,
    their kernels (the ops of each) and unfused nodes, the values saved for the backward and
    those it recomputes, with their bytes (what ``fusejit.explain`` shows as "training")."""
    out = []
    for mask, reason in getattr(traced, "joint_errors", {}).items():
        out.append({"requires_grad": list(mask), "runs_eager": reason})
    for cj in getattr(traced, "_joints", {}).values():
        p = cj.partition
        out.append({
            "requires_grad": list(cj.mask),
            "forward_graph": str(cj.forward),
            "backward_graph": str(cj.backward),
            "forward_kernels": _kernels(cj.forward_plan),
            "backward_kernels": _kernels(cj.backward_plan),
            "forward_unfused": _unfused(cj.forward_plan),
            "backward_unfused": _unfused(cj.backward_plan),
            "saved": [{"value": a, "type": b, "bytes": c, "from": d}
                      for a, b, c, d in cj.saved_info],
            "recomputed": [{"value": a, "type": b, "bytes": c} for a, b, c in cj.recomputed_info],
            "saved_bytes": p.saved_bytes,
            "save_all_bytes": p.naive_bytes,
            "compile_seconds": cj.compile_seconds,
        })  # fmt: skip
    return out


def joint_text(infos: list) -> str:
    """``joint_info`` as the lines ``fusejit.explain`` prints."""
    lines = []
    for d in infos:
        mask = "".join("1" if m else "0" for m in d["requires_grad"])
        if "runs_eager" in d:
            lines.append(f"training (inputs requiring grad: {mask}): runs eager: "
                         f"{d['runs_eager']}")  # fmt: skip
            continue
        lines.append(f"training (inputs requiring grad: {mask}; compiled in "
                     f"{d['compile_seconds']:.3f} s):")  # fmt: skip
        for part in ("forward", "backward"):
            ks = d[f"{part}_kernels"]
            lines.append(f"  {part}: {len(ks)} kernel(s), unfused: "
                         f"{', '.join(d[f'{part}_unfused']) or 'none'}")  # fmt: skip
            for j, k in enumerate(ks):
                lines.append(f"    [{j}] {len(k['ops'])} ops: {', '.join(k['ops'])}")
        lines.append(f"  saved for backward: {len(d['saved'])} value(s), {d['saved_bytes']} "
                     f"bytes (saving every value the backward reads: "
                     f"{d['save_all_bytes']} bytes)")  # fmt: skip
        for s in d["saved"]:
            lines.append(f"    {s['value']} {s['type']}: {s['bytes']} bytes ({s['from']})")
        rb = sum(r["bytes"] for r in d["recomputed"])
        lines.append(f"  recomputed in backward: {len(d['recomputed'])} value(s), {rb} bytes")
        for r in d["recomputed"]:
            lines.append(f"    {r['value']} {r['type']}: {r['bytes']} bytes")
        lines.append("  forward graph:")
        lines.extend("    " + ln for ln in d["forward_graph"].splitlines())
        lines.append("  backward graph:")
        lines.extend("    " + ln for ln in d["backward_graph"].splitlines())
    return "\n".join(lines)
