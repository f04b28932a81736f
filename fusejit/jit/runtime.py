"""Running an optimized graph: a flat list of steps over numbered slots, behind guards.

Compilation happens once, when the plan is built; a call checks the guards, runs each step
(a fused kernel launch or one eager op) and wraps the outputs.
"""

from __future__ import annotations

import time

from fusejit.backends.cpu_kernels import cpu_col_kernel, cpu_kernel, cpu_row_kernel
from fusejit.base.errors import TraceError, fmt_shape
from fusejit.base.symbolic import check_guards, is_symbolic, resolve
from fusejit.codegen.cols import ColBody
from fusejit.codegen.rows import RowBody
from fusejit.eager import creation, dispatch
from fusejit.eager.indexing import mask_positions
from fusejit.eager.tensor import Tensor
from fusejit.ir.graph import Const, Graph, Value
from fusejit.jit.control import control_step
from fusejit.ops.registry import OPS

SHAPE_GENERIC_KINDS = {"elementwise", "reduction", "random"}


def _kernel_for(node, device):
    body = node.attr("body")
    if isinstance(body, RowBody):
        if device.type == "cpu":
            return cpu_row_kernel(body)
        return device.backend.row_kernel(body)
    if isinstance(body, ColBody):
        if device.type == "cpu":
            return cpu_col_kernel(body)
        return device.backend.col_kernel(body)
    rank = len(node.outputs[0].type.shape)
    if device.type == "cpu":
        return cpu_kernel(body, rank)
    return device.backend.fused_kernel(body, rank)


def fused_step(n, slots: dict, kernels: list):
    """The step that runs fused node ``n``: its kernel on the input slots' arrays, the results
    wrapped as tensors into the output slots. Appends (node, kernel) to ``kernels``."""
    outs = [slots[o] for o in n.outputs]
    dev = n.outputs[0].type.device
    kernel = _kernel_for(n, dev)
    kernels.append((n, kernel))
    ins = [slots[v] for v in n.inputs]
    dtypes = [o.type.dtype for o in n.outputs]
    wrap = Tensor._wrap

    def run_fused(env):
        res = kernel(*[env[i]._data for i in ins])
        for s, r, d in zip(outs, res, dtypes):
            env[s] = wrap(r, d, dev)

    return run_fused


class Plan:
    """The compiled form of a graph for one input signature."""

    def __init__(self, graph: Graph) -> None:
        t0 = time.perf_counter()
        self.graph = graph
        self._symbolic_setup(graph)
        slots: dict = {}
        for p in graph.block.params:
            slots[p] = len(slots)
        self.n_params = len(slots)
        self.sym_slot = -1  # the symbols' values of a call: the slot list's last (dynamic dims)
        self.steps = []
        self.kernels = []  # (node, kernel) for explain()
        for n in graph.block.nodes:
            for o in n.outputs:
                slots[o] = len(slots)
            self.steps.append(self._step(n, slots))
        self.n_slots = len(slots)
        # the graph printout shows each fused node by its kernel's cache key, as explain does
        graph.notes["kernel_keys"] = {
            id(n): (getattr(k, "key", None) or n.attr("kernel_key"), i)
            for i, (n, k) in enumerate(self.kernels)
        }
        self.result_slots = [slots[v] for v in graph.block.results]
        self.frees = self._last_uses(graph, slots)
        # A result that is an input (``x * 1`` simplified to ``x``) or repeats another result
        # (CSE) is copied, so results never alias inputs or each other, as in eager mode.
        seen: set = set()
        self.copy_results = []
        for k, s in enumerate(self.result_slots):
            if s < self.n_params or s in seen:
                self.copy_results.append(k)
            seen.add(s)
        # a row region holding a reshape the user wrote is as shape-specific as the reshape;
        # a graph whose Python read a size may hold it (``x / x.shape[-1]``): only the traced
        # sizes, or symbolic ones behind their guards (dynamic dims)
        self.shape_generic = not graph.notes.get("reads_shapes") and all(
            n.attr("shape_generic", True) if n.op == "fused" else n.op in OPS and
            OPS[n.op].kind in SHAPE_GENERIC_KINDS for n in graph.block.nodes
        )  # fmt: skip
        # run(tensors, captured) -> the result tensors, without checking the guards
        self.run = self._single_runner(graph, slots) or self._run_steps
        self.guards = []
        for p in graph.inputs:
            t = p.type
            ones = tuple(int(s) == 1 for s in t.shape)
            self.guards.append((t.dtype, t.device, len(t.shape), ones, tuple(t.shape)))
        self.compile_seconds = time.perf_counter() - t0

    def _last_uses(self, graph: Graph, slots: dict) -> list:
        """Per step, the slots whose value no later step reads and that are not results: a
        run drops them after that step, so an intermediate's buffer goes back to the host pool
        (and is reused by a later step of the same call) instead of living to the end of the
        call, and an input the caller let go of (a backward's saved tensors) is freed as soon
        as it is read for the last time. Control nodes name every outer value their blocks
        read among their inputs."""
        last: dict = {}
        for i, n in enumerate(graph.block.nodes):
            for v in n.inputs:
                if isinstance(v, Value):
                    last[slots[v]] = i
            for o in n.outputs:
                last.setdefault(slots[o], i)  # (never read: dropped right away)
        keep = set(self.result_slots)
        frees: list = [[] for _ in graph.block.nodes]
        for s, i in last.items():
            if s not in keep:
                frees[i].append(s)
        return [tuple(f) for f in frees]

    def _symbolic_setup(self, graph: Graph) -> None:
        """Dynamic dims (``base/symbolic.py``): where each symbol is bound from, the guards on
        their relations and the node shapes to re-check for new values of the symbols."""
        self.symbols = graph.notes.get("symbols", ())
        self.sym_guards = graph.notes.get("guards", ())
        self.shape_checks = graph.notes.get("shape_checks", ())
        self.sym_dims = {(i, d) for _, i, d in self.symbols}
        # the symbols' values of a call: in the slot list's last entry (a dict); the sizes of
        # data symbols (mask_positions) are added there as their nodes run
        self.symbolic_env = bool(self.symbols or graph.notes.get("data_symbols"))
        self._bound_ok: dict = {}  # symbol values seen -> None or why they fail

    def bind(self, tensors) -> dict:
        """The symbols' values for a call's input tensors."""
        return {name: tensors[i]._data.shape[d] for name, i, d in self.symbols}

    def _check_symbols(self, tensors) -> str | None:
        env = {}
        for name, i, d in self.symbols:
            n = tensors[i]._data.shape[d]
            if env.setdefault(name, n) != n:
                return (f"input {i}: dim {d} has size {n}, traced as equal to another dim "
                        f"(symbol {name} = {env[name]})")  # fmt: skip
        key = tuple(env.values())
        if key in self._bound_ok:
            return self._bound_ok[key]
        problem = None
        small = [k for k, v in env.items() if v < 2]
        if small:
            problem = f"symbolic size {small[0]} = {env[small[0]]} (sizes 0 and 1 specialize)"
        if problem is None:
            g = check_guards(self.sym_guards, env)
            if g is not None:
                problem = f"guard {g} does not hold for {env}"
        if problem is None:
            problem = self._check_shapes(env)
        if len(self._bound_ok) < 4096:
            self._bound_ok[key] = problem
        return problem

    def _check_shapes(self, env) -> str | None:
        """Each recorded op's result shapes, evaluated for ``env``, against its shape rule."""
        from fusejit.ops.shape_rules import out_shapes  # (only graphs with dynamic dims)

        for name, shapes, attrs, outs in self.shape_checks:
            want = [tuple(s) for s in resolve(outs, env)]
            if name == "arange":
                a = resolve(attrs, env)
                got = [(len(range(a["start"], a["end"], a["step"])),)]
            else:
                try:
                    got = out_shapes(OPS[name], list(resolve(shapes, env)), resolve(attrs, env))
                except Exception as e:
                    return f"{name} cannot take the sizes {env}: {e}"
                got = [tuple(s) for s in got]
            if got != want:
                return (f"{name} gives shapes {got} for {env}, the graph assumed "
                        f"{want}")  # fmt: skip
        return None

    def _step(self, n, slots):
        if n.op == "arange":  # a range of symbolic sizes (dynamic dims)
            return self._arange_step(n, slots)
        if n.op == "mask_positions":  # positions of a mask's true entries: binds their count
            return self._mask_positions_step(n, slots)
        if n.op not in OPS and n.op != "fused":  # constants, control flow (script)
            return control_step(n, slots, self._step)
        outs = [slots[o] for o in n.outputs]
        if n.op == "fused":
            return fused_step(n, slots, self.kernels)
        args = [v if isinstance(v, Const) else slots[v] for v in n.inputs]
        consts = [a.value if isinstance(a, Const) else None for a in args]
        is_const = [isinstance(a, Const) for a in args]
        attrs = n.attr_dict
        op = OPS[n.op]
        call = dispatch.call
        name = n.op

        if is_symbolic(attrs):  # sizes of dynamic dims: evaluated for each call
            template, sym = attrs, self.sym_slot

            def run_op(env):
                vals = [c if k else env[a] for a, c, k in zip(args, consts, is_const)]
                res = call(name, *vals, **resolve(template, env[sym]))
                if len(outs) == 1:
                    env[outs[0]] = res
                else:
                    for s, r in zip(outs, res):
                        env[s] = r

            run_op.op = op
            return run_op

        def run_op(env):
            vals = [c if k else env[a] for a, c, k in zip(args, consts, is_const)]
            res = call(name, *vals, **attrs)
            if len(outs) == 1:
                env[outs[0]] = res
            else:
                for s, r in zip(outs, res):
                    env[s] = r

        run_op.op = op
        return run_op

    def _arange_step(self, n, slots):
        out, template, sym = slots[n.outputs[0]], n.attr_dict, self.sym_slot

        def run_arange(env):
            a = resolve(template, env[sym])
            env[out] = creation.arange(a["start"], a["end"], a["step"], dtype=a["dtype"],
                                       device=a["device"])  # fmt: skip

        return run_arange

    def _mask_positions_step(self, n, slots):
        src, out, sym = slots[n.inputs[0]], slots[n.outputs[0]], self.sym_slot
        name = str(n.attr("size"))

        def run_mask_positions(env):
            env[out] = mask_positions(env[src])
            k = env[out]._data.shape[0]
            if k < 2:
                raise GuardError(
                    f"a bool mask with {k} true entries, traced with {int(n.attr('size'))} "
                    "(0 or 1 true entries broadcast otherwise: run it eagerly)"
                )
            env[sym][name] = k

        return run_mask_positions

    def check(self, tensors) -> str | None:
        """None when ``tensors`` fit this plan's guards, else the first mismatch."""
        if len(tensors) != len(self.guards):
            return f"expected {len(self.guards)} tensor inputs, got {len(tensors)}"
        if self.symbols:
            return self._check_symbolic(tensors)
        for t, (d, dev, _rank, _ones, shape) in zip(tensors, self.guards):
            # the common case first: the traced dtype, device and shape
            if not isinstance(t, Tensor) or t._dtype is not d or t._device is not dev:
                return self._mismatch(tensors)
            if t._data.shape != shape and (
                not self.shape_generic
                or len(t._data.shape) != len(shape)
                or tuple(x == 1 for x in t._data.shape) != _ones
            ):
                return self._mismatch(tensors)
        return None

    def _check_symbolic(self, tensors) -> str | None:
        for i, (t, (d, dev, rank, _ones, shape)) in enumerate(zip(tensors, self.guards)):
            if not isinstance(t, Tensor) or t._dtype is not d or t._device is not dev:
                return self._mismatch(tensors)
            s = t._data.shape
            if len(s) != rank:
                return self._mismatch(tensors)
            for k, (n, m) in enumerate(zip(s, shape)):
                if (i, k) not in self.sym_dims and n != m:
                    if not self.shape_generic or (n == 1) != (m == 1):
                        return (f"input {i}: shape {fmt_shape(s)}, traced with "
                                f"{fmt_shape(shape)}")  # fmt: skip
        return self._check_symbols(tensors)

    def _mismatch(self, tensors) -> str:
        for i, (t, (d, dev, rank, ones, shape)) in enumerate(zip(tensors, self.guards)):
            if not isinstance(t, Tensor):
                return f"input {i} is not a tensor"
            if t._dtype is not d:
                return f"input {i}: dtype {t._dtype.name}, traced with {d.name}"
            if t._device is not dev:
                return f"input {i}: device {t._device}, traced on {dev}"
            s = t._data.shape
            if len(s) != rank:
                return f"input {i}: {len(s)} dims, traced with {rank}"
            if not self.shape_generic and s != shape:
                return f"input {i}: shape {fmt_shape(s)}, traced with {fmt_shape(shape)}"
            if tuple(x == 1 for x in s) != ones:
                return f"input {i}: broadcast pattern of shape {fmt_shape(s)} differs"
        return "inputs differ"

    def _single_runner(self, graph: Graph, slots: dict):
        """For a plan that is one fused kernel whose outputs are the results (the usual
        traced elementwise function): a ``run`` without the slot list and step closures,
        which are most of a small call's host time."""
        nodes = graph.block.nodes
        if len(nodes) != 1 or nodes[0].op != "fused" or self.copy_results:
            return None
        n = nodes[0]
        if list(graph.block.results) != list(n.outputs):
            return None
        kernel = self.kernels[0][1]
        ins = tuple(slots[v] for v in n.inputs)
        dtypes = tuple(o.type.dtype for o in n.outputs)
        dev = n.outputs[0].type.device
        wrap = Tensor._wrap
        if ins == (0,) and len(dtypes) == 1:
            (d,) = dtypes

            def run_one(tensors, captured) -> list:
                return [wrap(kernel(tensors[0]._data)[0], d, dev)]

            return run_one

        def run_single(tensors, captured) -> list:
            env = (*tensors, *captured) if captured else tensors
            res = kernel(*[env[i]._data for i in ins])
            return [wrap(r, d, dev) for r, d in zip(res, dtypes)]

        return run_single

    def _run_steps(self, tensors, captured) -> list:
        env = [*tensors, *captured]
        env.extend([None] * (self.n_slots - len(env)))
        if self.symbolic_env:
            env.append(self.bind(tensors))
        del tensors  # (the env holds the inputs, each until its last reader)
        for step, free in zip(self.steps, self.frees):
            step(env)
            for s in free:
                env[s] = None
        out = [env[i] for i in self.result_slots]
        for k in self.copy_results:
            out[k] = out[k].clone()
        return out


class GuardError(TraceError):
    """A call whose inputs do not fit the traced signature."""


def run_plan(plan: Plan, tensors, captured) -> list:
    reason = plan.check(tensors)
    if reason is not None:
        raise GuardError(f"traced function called with other inputs than traced: {reason}")
    return plan.run(tensors, captured)


__all__ = ["Plan", "run_plan", "GuardError", "Value"]
