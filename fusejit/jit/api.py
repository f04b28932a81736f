"""``fusejit.trace`` and ``TracedFunction``: capture, optimize, compile, run."""

from __future__ import annotations

import threading
import time
from contextlib import nullcontext

from fusejit.base.errors import TraceError
from fusejit.base.shapes import describe
from fusejit.eager import autograd
from fusejit.eager.grad_mode import MODE
from fusejit.eager.random import generator_states, set_generator_states
from fusejit.eager.tensor import Tensor
from fusejit.ir.control import has_control
from fusejit.ir.graph import Graph
from fusejit.ir.printer import format_code
from fusejit.ir.verify import verify
from fusejit.jit import tracer as tr
from fusejit.jit.check import (
    FULL_CHECK_BYTES,
    check_outputs,
    check_regions,
    compare,
    graph_bytes,
    graph_tolerance,
    recorded_values,
)
from fusejit.jit.control import optimize_blocks
from fusejit.jit.foreign import runner_for
from fusejit.jit.graph_info import module_tensor_names, name_captured
from fusejit.jit.interpret import interpret
from fusejit.jit.passes.cleanup import cse, dce
from fusejit.jit.passes.decompose import decompose
from fusejit.jit.passes.fuse import fuse_elementwise
from fusejit.jit.passes.fuse_cols import fuse_cols
from fusejit.jit.passes.fuse_rows import fuse_rows
from fusejit.jit.passes.simplify import simplify
from fusejit.jit.runtime import GuardError, Plan, run_plan
from fusejit.nn import Module, _Version

# decompose runs inside the loop so cse merges what two composites share (softmax and
# log_softmax of one tensor) and the cleanup passes see the primitives
PIPELINE = (("simplify", simplify), ("cse", cse), ("dce", dce), ("decompose", decompose))
FUSION = (
    ("fuse_rows", fuse_rows),
    ("fuse_cols", fuse_cols),
    ("fuse_elementwise", fuse_elementwise),
)


def optimize_graph(g: Graph, target: str, *, check: bool = False, log: list | None = None):
    """Run the cleanup passes and decomposition to a fixed point, then row fusion (reductions
    with their elementwise neighbours), column fusion (reductions over leading or middle
    dims), then elementwise fusion. ``check`` verifies after
    each pass. The blocks of control-flow nodes (``if``, ``loop``) are optimized first, each
    as a graph of its own."""
    if has_control(g):
        g = optimize_blocks(g, target, lambda b, t: optimize_graph(b, t, check=check, log=log))
    for _ in range(4):
        changed_any = False
        for name, p in PIPELINE:
            g, changed = p(g, target) if name == "decompose" else p(g)
            if log is not None:
                log.append((name, changed))
            if check:
                verify(g)
            changed_any |= changed
        if not changed_any:
            break
    for name, p in FUSION:
        g, changed = p(g, target)
        if log is not None:
            log.append((name, changed))
        if check:
            verify(g)
    return g


def _target_of(g: Graph) -> str:
    devs = {p.type.device.type for p in g.block.params}
    return "cuda" if devs == {"cuda"} else "cpu"


class TracedFunction:
    """A function recorded into a graph, optimized and compiled for its traced signature.

    ``graph`` is the optimized IR, ``raw_graph`` the IR as recorded, ``code`` Python source
    equivalent to the graph. ``timings`` says where the compile time went (seconds for
    "trace", "passes", "compile", "check"), ``check_kind`` how ``trace`` checked it ("full",
    "regions: ..." with how many kernels were checked, or None). Calls with tensors of other
    dtypes, devices or ranks (or other shapes, when the graph has shape-specific ops) raise
    ``GuardError``.
    """

    def __init__(self, fn, raw: Graph, in_spec, out_spec, tracer) -> None:
        self.fn = fn
        self.raw_graph = raw
        self.in_spec = in_spec
        self.out_spec = out_spec
        self.value_reads = tracer.value_reads
        t0 = time.perf_counter()
        self.graph = optimize_graph(raw, _target_of(raw))
        t1 = time.perf_counter()
        self.plan = Plan(self.graph)
        t2 = time.perf_counter()
        self.compile_seconds = t2 - t0
        # where the time went, as explain shows it: recording the trace, the passes, building
        # the plan (fetching or compiling its kernels), checking the result ("check": how)
        self.timings: dict = {"trace": None, "passes": t1 - t0, "compile": t2 - t1,
                              "check": None}  # fmt: skip
        self.check_kind: str | None = None
        # fast path: plain tensor arguments and one tensor result need no (un)flattening
        self._n_in = raw.n_inputs
        self._flat_in = in_spec == ("tuple", ("T",) * raw.n_inputs)
        # buffers the function writes in place (``tracer.write_state``): the graph's last
        # results are their new values, copied into them after each run
        self.state = tr.state_targets(tracer)
        # a whole training step (``fusejit/jit/train_step.py``): guards and live scalars before
        # each run, the gradients (the last results) into ``.grad`` after it
        info = raw.notes.get("train_step")
        self.step = None
        n_grads = 0
        if info is not None:
            from fusejit.jit.train_step import StepRuntime  # (it imports joint, which imports us)

            self.step = StepRuntime(info)
            n_grads = self.step.n_grads
        self._n_out = len(raw.block.results) - len(self.state) - n_grads
        self._single_out = out_spec == "T" and not self.state and self.step is None
        # (grad mask, shapes) -> CompiledJoint (fusejit/jit/joint.py)
        self._joints: dict = {}
        self._joint_lock = threading.Lock()
        # a context manager factory held while a joint graph is recorded (optimize: the gate
        # that keeps other threads' eager ops out of a trace), or None
        self.exclusive = None
        self.joint_errors: dict = {}  # grad mask -> why calls with it differentiate eagerly
        # where gradients stop: values detach() was called on, values computed under no_grad
        self._stops = tuple(getattr(tracer, "no_grad", ()))
        self.__name__ = getattr(fn, "__name__", type(fn).__name__)
        self.__doc__ = getattr(fn, "__doc__", None)

    @property
    def code(self) -> str:
        return format_code(self.graph, self.__name__ if self.__name__.isidentifier() else "fn")

    def kernel_count(self) -> int:
        return len(self.plan.kernels)

    def _write_state(self, outs) -> list:
        """Copy the written state's new values (the last results) into the buffers; the
        function's own results."""
        n = self._n_out
        k = n + len(self.state)
        for t, new in zip(self.state, outs[n:k], strict=True):
            if new is not t:
                t._data[...] = new._data
                autograd.bump_version(t)
        if self.step is not None:
            self.step.after(outs[k:])
        return outs[:n]

    def _needs_grad(self, tensors) -> bool:
        if self.step is not None:  # a training step ran its backward inside: no joint graph
            return False
        for t in tensors:
            info = getattr(t, "_ag", None)
            if info is not None and info.requires_grad:
                return True
        for t in self.raw_graph.captured:
            info = getattr(t, "_ag", None)
            if info is not None and info.requires_grad:
                return True
        return False

    def joint(self, tensors):
        """The compiled forward and backward for the grad mask of ``tensors`` (the flat user
        inputs) and the captured tensors (built on first use: ``fusejit/jit/joint.py``)."""
        from fusejit.jit import joint as jt  # (it imports this module)

        mask = jt.grad_mask([*tensors, *self.raw_graph.captured])
        # a shape-generic plan, or one with dynamic dims, serves other sizes: the joint graph
        # is recorded for the call's shapes
        sized = self.plan.shape_generic or self.plan.symbolic_env
        key = (mask, tuple(t._data.shape for t in tensors) if sized else None)
        cj = self._joints.get(key)
        if cj is None:
            with self._joint_lock:
                cj = self._joints.get(key)
                if cj is None:
                    raw = self.raw_graph
                    with self.exclusive() if self.exclusive is not None else nullcontext():
                        cj = jt.compile_joint(raw, [*tensors, *raw.captured], mask,
                                              optimize_graph, _target_of(raw),
                                              self._stops)  # fmt: skip
                    self._joints[key] = cj
        return cj

    def prepare_joint(self, tensors) -> None:
        """Build the joint graphs for calls like ``tensors`` (flat user inputs) where grad
        mode is on and a tensor requires grad; what cannot be built is noted, and such calls
        differentiate eagerly (``fusejit.optimize`` calls this while no other thread runs
        eager ops: the joint graph is recorded by a tracer)."""
        from fusejit.jit import joint as jt  # (it imports this module)

        if not (MODE.enabled and self._needs_grad(tensors)):
            return
        mask = jt.grad_mask([*tensors, *self.raw_graph.captured])
        if mask in self.joint_errors:
            return
        try:
            self.joint(tensors)
        except TraceError as e:
            self.joint_errors[mask] = str(e)

    def _call_joint(self, tensors) -> list:
        from fusejit.jit import joint as jt  # (it imports this module)

        reason = self.plan.check(tensors)
        if reason is not None:
            raise GuardError(f"traced function called with other inputs than traced: {reason}")
        fn, spec = self.fn, self.in_spec

        def eager(*flat):
            _, outs = tr.flatten_inputs((fn(*tr.unflatten_outputs(spec, flat)),))
            return outs

        mask = jt.grad_mask([*tensors, *self.raw_graph.captured])
        if mask in self.joint_errors:
            return eager(*tensors)
        try:
            cj = self.joint(tensors)
        except TraceError as e:
            self.joint_errors[mask] = str(e)
            tr.warn(f"{self.__name__}: gradients are computed eagerly: {e}")
            return eager(*tensors)
        outs = jt.call_joint(cj, tensors, self.raw_graph.captured, eager)
        return self._write_state(outs) if self.state else outs

    def __call__(self, *args):
        if MODE.enabled:  # with grad: joint forward and backward graphs
            spec, tensors = (self.in_spec, args) if self._flat_in else tr.flatten_inputs(args)
            if spec == self.in_spec and len(tensors) == self._n_in and self._needs_grad(tensors):
                outs = self._call_joint(tensors)
                return outs[0] if self._single_out else tr.unflatten_outputs(self.out_spec, outs)
        if self.step is not None:
            return self._call_step(args)
        if self._flat_in and len(args) == self._n_in:
            plan = self.plan
            reason = plan.check(args)
            if reason is not None:
                runner = runner_for(args)  # a Dask array: the function over its blocks
                if runner is not None:
                    return runner(self.fn, args)
                raise GuardError(f"traced function called with other inputs than traced: {reason}")
            outs = plan.run(args, self.graph.captured)
            if self._single_out:
                return outs[0]
            if self.state:
                outs = self._write_state(outs)
            return tr.unflatten_outputs(self.out_spec, outs)
        runner = runner_for(args)
        if runner is not None:
            return runner(self.fn, args)
        spec, tensors = tr.flatten_inputs(args)
        if spec != self.in_spec:
            raise TraceError(
                "traced function called with a different structure or non-tensor arguments "
                "than it was traced with"
            )
        outs = run_plan(self.plan, tensors, self.graph.captured)
        if self.state:
            outs = self._write_state(outs)
        return tr.unflatten_outputs(self.out_spec, outs)

    def _call_step(self, args):
        """A whole training step: guards and live scalars, the plan (letting go of each
        intermediate after its last use, as eager's backward does), then the writes."""
        spec, tensors = (self.in_spec, args) if self._flat_in else tr.flatten_inputs(args)
        if spec != self.in_spec:
            raise GuardError("traced step called with a different structure of arguments")
        reason = self.plan.check(tensors)
        if reason is not None:
            raise GuardError(f"traced function called with other inputs than traced: {reason}")
        self.step.before()
        prev, MODE.enabled = MODE.enabled, False  # (its unfused ops record no autograd)
        try:
            outs = self.plan.run(list(tensors), list(self.graph.captured))
        finally:
            MODE.enabled = prev
        return tr.unflatten_outputs(self.out_spec, self._write_state(outs))

    def interpret(self, *args):
        """Run the optimized graph through the reference interpreter (for tests)."""
        _, tensors = tr.flatten_inputs(args)
        return tr.unflatten_outputs(self.out_spec, interpret(self.graph, *tensors))

    def __repr__(self) -> str:
        return f"<TracedFunction {self.__name__}: {self.kernel_count()} fused kernels>"


def trace(fn, example_inputs, *, check_trace: bool | None = None) -> TracedFunction:
    """Record the ops ``fn`` runs on ``example_inputs`` and compile them.

    ``example_inputs`` is a tensor or a tuple of arguments (tensors, nested tuples/lists of
    tensors, or Python numbers, strings, None, dtypes and devices, frozen into the graph; a
    numpy array or another object is a ``TraceError``). The function returns tensors computed
    from them, or nested tuples/lists of such tensors.

    The check (``check_trace``): with ``True`` the function runs eagerly once more (a result
    that changed means hidden state: ``TraceError``) and the traced function's result is
    compared with the eager one the trace recorded; a difference beyond the dtype's tolerance
    passes only if rounding explains it, judged against the graph evaluated in float64
    (``fusejit.jit.check``). That costs two more forwards of the model; with ``None`` (the
    default) only a small graph (``check.FULL_CHECK_BYTES``) is checked so, and a large one
    has each fused kernel run on the eager values the trace recorded and compared with
    them (its unfused ops are eager ops already). ``False`` checks nothing.

    >>> import fusejit
    >>> f = fusejit.trace(lambda x: (x * 2 + 1).exp(), fusejit.ones(4))
    >>> f.kernel_count()
    1
    >>> round(f(fusejit.zeros(4))[0].item(), 4)
    2.7183
    """
    if isinstance(example_inputs, Tensor):
        example_inputs = (example_inputs,)
    elif not isinstance(example_inputs, (tuple, list)):
        tr.check_example_inputs(example_inputs)  # a numpy array: says to convert it
        raise TraceError(
            f"trace: example_inputs must be a tensor or a tuple of arguments, got "
            f"{describe(example_inputs)}"
        )
    example_inputs = tuple(example_inputs)
    tr.check_example_inputs(example_inputs)
    t0 = time.perf_counter()
    prev = _Version.seen
    seen = _Version.seen = [] if prev is None else prev  # the modules it calls, to name
    # the default generators as the recorded run finds them: the checks below draw again
    rng_before = generator_states({t.device for t in tr.flatten_inputs(example_inputs)[1]})
    try:
        graph, in_spec, out_spec, eager_out, tracer = tr.capture(fn, example_inputs)
    finally:
        _Version.seen = prev
    rng_after = generator_states()
    trace_s = time.perf_counter() - t0
    tr.check_outputs(out_spec)
    verify(graph)
    owner = fn if isinstance(fn, Module) else getattr(fn, "__self__", None)
    modules = ([owner] if isinstance(owner, Module) else []) + seen
    name_captured(graph, module_tensor_names(modules))
    traced = TracedFunction(fn, graph, in_spec, out_spec, tracer)
    traced.timings["trace"] = trace_s
    # the checks below run the function again: the state the traced run wrote is put back
    written = [(t, t._data.copy()) for t in traced.state]
    t0 = time.perf_counter()
    if traced.step is not None:
        # a whole training step: running it again would update the parameters twice, and the
        # recorded values of what it wrote are the written ones (``fusejit.optimize`` checks
        # its first compiled run against the traced one instead)
        traced.check_kind = None
    elif check_trace is None and graph_bytes(graph) > FULL_CHECK_BYTES:
        problem, checked, skipped = check_regions(
            traced.plan, recorded_values(tracer), graph_tolerance(graph)
        )
        traced.check_kind = f"regions: {checked} distinct kernels checked, {skipped} skipped"
        if problem is not None:
            raise TraceError(f"trace check failed for {traced.__name__}: {problem}")
    elif check_trace is not False:
        traced.check_kind = "full"

        def reset(t=tracer):
            tr.restore_state(t)
            set_generator_states(rng_before)  # (random ops draw what the recorded run drew)

        try:
            _check_full(fn, traced, example_inputs, eager_out, reset)
        finally:
            set_generator_states(rng_after)  # (as after one eager call)
    del tracer
    for t, data in written:
        t._data[...] = data
    traced.timings["check"] = time.perf_counter() - t0 if traced.check_kind else None
    return traced


def _check_full(fn, traced: TracedFunction, example_inputs: tuple, eager_out: list,
                reset=None) -> None:  # fmt: skip
    """``trace``'s full check: a second eager run, the compiled result against the first.
    ``reset`` puts written state back as the recorded run found it, before each run."""
    graph, out_spec = traced.raw_graph, traced.out_spec
    if reset is not None:
        reset()
    _, flat = tr.flatten_inputs((traced(*example_inputs),))
    if reset is not None:
        reset()
    # run the function eagerly once more: a result that depends on hidden state (a
    # counter, a random draw, a global flag) differs from what the trace recorded
    again_spec, again = tr.flatten_inputs((fn(*example_inputs),))
    if again_spec != ("tuple", (out_spec,)):
        raise TraceError(
            f"trace check failed for {traced.__name__}: a second eager run returned a "
            "different structure of outputs"
        )
    tol = graph_tolerance(graph)
    for i, (a, b) in enumerate(zip(again, eager_out, strict=True)):
        problem = compare(f"output {i}", a, b, tol, labels=("second run", "first run"))
        if problem is not None:
            raise TraceError(
                f"trace check failed for {traced.__name__}: a second eager run gave "
                f"other results than the run that was recorded ({problem})"
            )
    _, flat_in = tr.flatten_inputs(example_inputs)
    problem = check_outputs(graph, flat_in, flat, eager_out, tol)
    if problem is not None:
        raise TraceError(f"trace check failed for {traced.__name__}: {problem}")
