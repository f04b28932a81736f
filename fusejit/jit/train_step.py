"""A whole training step as one graph: ``fusejit.optimize(train_step)`` where the function runs
the forward, ``loss.backward()``, ``opt.step()`` and ``opt.zero_grad()``.

While ``fusejit.optimize`` (or ``fusejit.trace``) records such a function:

- ``loss.backward()`` (``Tracer.backward``) calls the op table's derivative rules on the ops
  recorded so far, in reverse, as the eager engine calls them (``joint.py`` builds joint graphs
  the same way): they record the backward into the same graph. Each leaf that requires grad
  (a parameter) gets its gradient into ``.grad`` as the engine does: a new tensor where
  ``.grad`` was None, else added into it in place.
- In-place writes under ``no_grad`` of tensors from outside the function (parameters, an
  optimizer's state, gradients zeroed with ``zero_grad(set_to_none=False)``) become results of
  the graph, copied into those tensors after each run (``Tracer.write_state``); in-place ops on
  tensors the function computed (a gradient clipped by ``clip_grad_norm_``) just give them
  their new value.
- The optimizers (``fusejit/optim/algorithms.py``) register *live scalars*: 0-d tensors that a
  host function fills before each run from the values that change between steps (the learning
  rate a scheduler sets, the bias corrections of Adam's step count, which it counts up), and
  *guards*: their parameter groups, other hyper-parameters and state keys as traced.

At the end of the trace, ``finish`` notes what ``.grad`` each touched tensor ends with (None,
a tensor the graph computes: an extra result, or a tensor from before the call) and what it
was when the function first touched it; ``StepRuntime`` runs the guards and the live scalars'
host functions before each run of the compiled step and sets the ``.grad`` after it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from fusejit.base.errors import AutogradError, TraceError, fmt_shape
from fusejit.eager import autograd
from fusejit.eager.grad_mode import MODE
from fusejit.eager.tensor import Tensor
from fusejit.ir.graph import Const, Value
from fusejit.jit.joint import apply_rule
from fusejit.jit.partition import nbytes, recomputable
from fusejit.jit.runtime import GuardError
from fusejit.ops.registry import OPS

__all__ = ["record_backward", "finish", "StepInfo", "StepRuntime", "step_info"]


def _requires_grad(t) -> bool:
    info = getattr(t, "_ag", None)
    return info is not None and info.requires_grad


def _tensor_of(tracer) -> dict:
    """Value -> a tensor holding it now (what the derivative rules are called on)."""
    out: dict = {}
    for t in tracer.keep:
        v = tracer.values.get(id(t))
        if v is not None:
            out.setdefault(v, t)
    for v, t in tracer.captured:
        out.setdefault(v, t)
    return out


def record_backward(tracer, outputs, grad_outputs) -> None:
    """``backward`` of ``outputs`` (with ``grad_outputs``, None for ones) recorded into
    ``tracer``: see the module docstring."""
    F = autograd._F()
    start = len(tracer.nodes)
    tensor_of = _tensor_of(tracer)
    leaves = [(v, t) for v, t in zip(tracer.params, tracer.keep[: len(tracer.params)])]
    leaves += list(tracer.captured)
    rg: dict = {}
    for v, t in leaves:
        rg[v] = _requires_grad(t)
    no_grad = set(tracer.no_grad)
    for n in tracer.nodes:
        op = OPS.get(n.op)
        need = (op is not None and not n.blocks and op.differentiable
                and any(rg.get(v, False) for v in n.tensor_inputs()))  # fmt: skip
        for o in n.outputs:
            rg[o] = need and o.type.dtype.kind in "fc" and o not in no_grad
    tracer.rg_leaves = [(t, rg[v]) for v, t in leaves]
    prev = MODE.enabled
    MODE.enabled = False  # (the rules run under no_grad in the eager engine too)
    try:
        grads: dict = {}
        for k, (t, g) in enumerate(zip(outputs, grad_outputs, strict=True)):
            v = tracer.values.get(id(t)) if isinstance(t, Tensor) else None
            if v is None or not rg.get(v, False):
                raise AutogradError(
                    f"backward: element {k} of tensors does not require grad and does not have "
                    "a grad_fn"
                )
            if g is None:
                if t._data.size != 1:
                    raise AutogradError(
                        f"backward: grad can be implicitly created only for scalar outputs (got "
                        f"a tensor of shape {fmt_shape(t.shape)})"
                    )
                g = F.ones_like(t)
            grads[v] = g if v not in grads else F.add(grads[v], g)
        for n in reversed(tracer.nodes[:start]):
            gs = [grads.get(o) for o in n.outputs]
            if all(g is None for g in gs):
                continue
            needs = tuple(isinstance(v, Value) and rg.get(v, False) for v in n.inputs)
            if not any(needs):
                continue
            op = OPS.get(n.op)
            if op is None or n.blocks or op.vjp is None:
                raise TraceError(
                    f"backward in a traced step: the op {n.op} has no derivative rule in the op "
                    "table yet"
                )
            args = []
            for v in n.inputs:
                if isinstance(v, Const):
                    args.append(v.value)
                elif v in tensor_of:
                    args.append(tensor_of[v])
                else:
                    raise TraceError(
                        f"backward in a traced step: an operand of {n.op} was written in place "
                        "before the backward"
                    )
            outs = tuple(tensor_of[o] for o in n.outputs)
            apply_rule(F, n, op, args, outs, gs, needs, grads)
        # into the leaves' .grad, as the engine's AccumulateGrad
        assigned: set = set()
        inputs = set(tracer.params) | {v for v, _ in tracer.captured}
        for v, t in leaves:
            g = grads.get(v)
            if g is None or not rg[v]:
                continue
            tracer.note_grad(t)
            old = t._ag.grad
            if old is None:
                gv = tracer.values.get(id(g))
                if (id(g) in assigned or gv in inputs or gv in tracer._view_values
                        or not g._data.flags.c_contiguous):  # fmt: skip
                    g = g.clone()  # (the engine keeps a fresh contiguous copy)
                assigned.add(id(g))
                tracer.step_grads.add(id(g))
                t._ag.grad = g
            else:
                old.add_(g)  # (in place, as the engine adds into a .grad)
    finally:
        MODE.enabled = prev
    tracer.backward_spans.append((start, len(tracer.nodes)))


@dataclass
class StepInfo:
    """What a traced training step does around its graph (``graph.notes["train_step"]``)."""

    grad_results: list  # the tensors whose .grad the graph's last results are, in order
    actions: list  # (tensor, "none" | "object", the tensor or None): .grad set after a run
    guards: list  # check() -> reason or None, before a run
    live: list  # (values(), 0-d tensors), filled before a run
    spans: list  # node ranges of the raw graph that the backwards recorded
    n_nodes: int = 0
    phases: dict = field(default_factory=dict)  # forward / backward / update -> node count


def _grad_guard(t, entry, identity: bool):
    traced = "None" if entry is None else "a tensor"

    def check():
        info = getattr(t, "_ag", None)
        g = None if info is None else info.grad
        if (g is None) != (entry is None):
            now = "None" if g is None else "a tensor"
            return (f"the .grad of a tensor of shape {fmt_shape(t.shape)} is {now}, traced "
                    f"with {traced}")  # fmt: skip
        if identity and g is not entry:
            return (
                f"the .grad of a tensor of shape {fmt_shape(t.shape)} is another tensor "
                "than the one the step traced (it zeroes or adds into that one in place)"
            )
        return None

    return check


def _rg_guard(pairs):
    def check():
        for t, was in pairs:
            if _requires_grad(t) != was:
                return (f"requires_grad of a tensor of shape {fmt_shape(t.shape)} changed to "
                        f"{not was} since the step was traced")  # fmt: skip
        return None

    return check


def finish(tracer, results: list) -> StepInfo:
    """At the end of a trace: the gradients left in ``.grad`` become results (appended to
    ``results``), and the checks a call makes first; see the module docstring."""
    captured = {id(t) for _, t in tracer.captured}
    grad_results, actions, guards = [], [], []
    for t, entry in tracer.grad_entry.values():
        info = getattr(t, "_ag", None)
        final = None if info is None else info.grad
        if id(t) not in tracer.grad_free:  # (set to None before any use: not checked)
            guards.append(_grad_guard(t, entry, entry is not None and id(entry) in captured))
        if final is None:
            if entry is not None:
                actions.append((t, "none", None))
            continue
        v = tracer.values.get(id(final))
        if id(final) in captured or v is None:  # a tensor from before the call
            if final is not entry:
                actions.append((t, "object", final))
            continue
        results.append(v)
        grad_results.append(t)
    if getattr(tracer, "rg_leaves", None):
        guards.append(_rg_guard(tracer.rg_leaves))
    guards += tracer.step_guards
    n = len(tracer.nodes)
    spans = list(tracer.backward_spans)
    n_bwd = sum(b - a for a, b in spans)
    first = spans[0][0] if spans else n
    last = spans[-1][1] if spans else n
    phases = {"forward": first, "backward": n_bwd, "update": n - last}
    return StepInfo(grad_results, actions, guards, list(tracer.live), spans, n, phases)


class StepRuntime:
    """Before and after each run of a compiled step (``TracedFunction``)."""

    def __init__(self, info: StepInfo) -> None:
        self.info = info
        self.n_grads = len(info.grad_results)

    def before(self) -> None:
        for check in self.info.guards:
            reason = check()
            if reason is not None:
                raise GuardError(f"training step: {reason}")
        for values, ts in self.info.live:
            for t, x in zip(ts, values(), strict=True):
                t._data[...] = x

    def after(self, grads: list) -> None:
        for t, g in zip(self.info.grad_results, grads, strict=True):
            d = g._data
            if not d.flags.c_contiguous or d.base is not None:
                g = Tensor._wrap(t.device.backend.xp.ascontiguousarray(d).copy(), g._dtype,
                                 g._device)  # fmt: skip
            t._ag.grad = g
        for t, kind, obj in self.info.actions:
            t._ag.grad = None if kind == "none" else obj


def step_info(traced) -> dict | None:
    """What ``fusejit.explain`` shows of a traced training step: the raw graph's forward,
    backward and update parts (ops), the forward values the backward reads (bytes; those a
    fused backward kernel recomputes from the inputs, and those kept in memory), the live
    scalars and guards, and the gradients the graph returns."""
    info = traced.raw_graph.notes.get("train_step")
    if info is None:
        return None
    g = traced.raw_graph
    nodes = g.block.nodes
    fwd = set()
    for n in nodes[: info.phases["forward"]]:
        fwd.update(n.outputs)
    producer = {o: n for n in nodes for o in n.outputs}
    read: dict = {}
    for a, b in info.spans:
        for n in nodes[a:b]:
            for v in n.inputs:
                if isinstance(v, Value) and v in fwd:
                    read.setdefault(v, producer[v].op)
    saved, recomputed = [], []
    for v, op in read.items():
        row = {"value": op, "type": str(v.type), "bytes": nbytes(v)}
        (recomputed if recomputable(op) else saved).append(row)
    return {
        "phases": dict(info.phases),
        "saved": saved,
        "recomputed": recomputed,
        "saved_bytes": sum(r["bytes"] for r in saved),
        "recomputed_bytes": sum(r["bytes"] for r in recomputed),
        "gradients": len(info.grad_results),
        "live_scalars": sum(len(ts) for _, ts in info.live),
        "guards": len(info.guards),
        "written": len(traced.state),
    }


def step_text(d: dict) -> list:
    """``step_info`` as the lines ``fusejit.explain`` prints."""
    ph = d["phases"]
    lines = [
        f"training step: one graph; recorded ops: forward {ph['forward']}, backward "
        f"{ph['backward']}, update {ph['update']}",
        f"  written in place after each run: {d['written']} tensor(s) (parameters, optimizer "
        f"state); .grad set: {d['gradients']}; live scalars: {d['live_scalars']} (read at "
        f"call time); guards: {d['guards']}",
        f"  forward values the backward reads: kept in memory {len(d['saved'])} value(s), "
        f"{d['saved_bytes']} bytes; recomputable elementwise {len(d['recomputed'])} value(s), "
        f"{d['recomputed_bytes']} bytes",
    ]
    for s in d["saved"]:
        lines.append(f"    saved {s['value']} {s['type']}: {s['bytes']} bytes")
    for r in d["recomputed"]:
        lines.append(f"    recomputed {r['value']} {r['type']}: {r['bytes']} bytes")
    return lines
