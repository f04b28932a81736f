"""``fusejit.trace`` and ``TracedFunction``: capture, optimize, compile, run."""

from __future__ import annotations

import time

from fusejit.base.errors import TraceError
from fusejit.base.shapes import describe
from fusejit.eager.tensor import Tensor
from fusejit.ir.control import has_control
from fusejit.ir.graph import Graph
from fusejit.ir.printer import format_code
from fusejit.ir.verify import verify
from fusejit.jit import tracer as tr
from fusejit.jit.check import check_outputs, compare, graph_tolerance
from fusejit.jit.control import optimize_blocks
from fusejit.jit.interpret import interpret
from fusejit.jit.passes.cleanup import cse, dce
from fusejit.jit.passes.decompose import decompose
from fusejit.jit.passes.fuse import fuse_elementwise
from fusejit.jit.passes.fuse_cols import fuse_cols
from fusejit.jit.passes.fuse_rows import fuse_rows
from fusejit.jit.passes.simplify import simplify
from fusejit.jit.runtime import GuardError, Plan, run_plan

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
    equivalent to the graph. Calls with tensors of other dtypes, devices or ranks (or other
    shapes, when the graph has shape-specific ops) raise ``GuardError``.
    """

    def __init__(self, fn, raw: Graph, in_spec, out_spec, tracer) -> None:
        self.fn = fn
        self.raw_graph = raw
        self.in_spec = in_spec
        self.out_spec = out_spec
        self.value_reads = tracer.value_reads
        t0 = time.perf_counter()
        self.graph = optimize_graph(raw, _target_of(raw))
        self.plan = Plan(self.graph)
        self.compile_seconds = time.perf_counter() - t0
        # fast path: plain tensor arguments and one tensor result need no (un)flattening
        self._n_in = raw.n_inputs
        self._flat_in = in_spec == ("tuple", ("T",) * raw.n_inputs)
        self._single_out = out_spec == "T"
        self.__name__ = getattr(fn, "__name__", type(fn).__name__)
        self.__doc__ = getattr(fn, "__doc__", None)

    @property
    def code(self) -> str:
        return format_code(self.graph, self.__name__ if self.__name__.isidentifier() else "fn")

    def kernel_count(self) -> int:
        return len(self.plan.kernels)

    def __call__(self, *args):
        if self._flat_in and len(args) == self._n_in:
            plan = self.plan
            reason = plan.check(args)
            if reason is not None:
                raise GuardError(f"traced function called with other inputs than traced: {reason}")
            outs = plan.run(args, self.graph.captured)
            return outs[0] if self._single_out else tr.unflatten_outputs(self.out_spec, outs)
        spec, tensors = tr.flatten_inputs(args)
        if spec != self.in_spec:
            raise TraceError(
                "traced function called with a different structure or non-tensor arguments "
                "than it was traced with"
            )
        outs = run_plan(self.plan, tensors, self.graph.captured)
        return tr.unflatten_outputs(self.out_spec, outs)

    def interpret(self, *args):
        """Run the optimized graph through the reference interpreter (for tests)."""
        _, tensors = tr.flatten_inputs(args)
        return tr.unflatten_outputs(self.out_spec, interpret(self.graph, *tensors))

    def __repr__(self) -> str:
        return f"<TracedFunction {self.__name__}: {self.kernel_count()} fused kernels>"


def trace(fn, example_inputs, *, check_trace: bool = True) -> TracedFunction:
    """Record the ops ``fn`` runs on ``example_inputs`` and compile them.

    ``example_inputs`` is a tensor or a tuple of arguments (tensors, nested tuples/lists of
    tensors, or Python numbers, strings, None, dtypes and devices, frozen into the graph; a
    numpy array or another object is a ``TraceError``). The function returns tensors computed
    from them, or nested tuples/lists of such tensors. With ``check_trace`` the function runs
    eagerly once more (a result that changed means hidden state: ``TraceError``) and the traced
    function's result is compared with eager; a difference beyond the dtype's tolerance passes
    only if rounding explains it, judged against the graph evaluated in float64
    (``fusejit.jit.check``).

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
    graph, in_spec, out_spec, eager_out, tracer = tr.capture(fn, example_inputs)
    tr.check_outputs(out_spec)
    verify(graph)
    traced = TracedFunction(fn, graph, in_spec, out_spec, tracer)
    if check_trace:
        _, flat = tr.flatten_inputs((traced(*example_inputs),))
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
    return traced
