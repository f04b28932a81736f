"""``fusejit.trace``: record the ops a function runs on example inputs into a graph.

As in ``torch.jit.trace``, Python control flow is frozen at trace time. Where the function
reads a tensor's value into Python (``bool(t)``, ``.item()``, ``.tolist()``, iterating), a
``TracerWarning`` names the source line. Tensors the function reads that are not inputs (module
weights, globals, tensors it creates with factories) become *captured* inputs: the graph reads
them live at every call, so updated weights are always seen.
"""

from __future__ import annotations

import sys
import threading
import warnings

import numpy as np

from fusejit.base.device import Device
from fusejit.base.dtypes import DType
from fusejit.base.errors import TraceError, TracerWarning
from fusejit.base.shapes import describe
from fusejit.eager import recording
from fusejit.eager.grad_mode import MODE
from fusejit.eager.tensor import Tensor
from fusejit.ir.graph import Block, Const, Graph, Node, TensorType, Value, freeze_attrs

_trace_lock = threading.RLock()  # the tracer hook is process-wide: one trace at a time


class Tracer:
    """Records ops into a graph. The hook is process-wide (``fusejit.eager.recording``) but a tracer
    only acts on the thread that started it: other threads run eager, unrecorded."""

    def __init__(self) -> None:
        self.owner = threading.get_ident()
        self.values: dict[int, Value] = {}
        self.keep: list = []  # tensors seen, kept alive so their ids stay unique
        self.params: list[Value] = []
        self.captured: list = []
        self.nodes: list[Node] = []
        self.value_reads: list[tuple[str, str]] = []
        self.unsupported_reason: str | None = None
        # where gradients stop (joint graphs, fusejit/jit/joint.py): values ``detach()`` was
        # called on, and results of ops recorded with grad mode off
        self.detached: list[Value] = []
        self.no_grad: list[Value] = []
        # state written in place (a module's buffers: BatchNorm's running statistics): per
        # target tensor, the value it holds after the function (an extra graph result), and
        # its contents before the trace wrote it (``restore_state``)
        self.allow_writes = False  # (``capture`` handles them; other recorders do not)
        self.writes: dict[int, tuple[Tensor, Value]] = {}
        self.state_before: dict[int, tuple[Tensor, object]] = {}

    def knows(self, t: Tensor) -> bool:
        return self.owner == threading.get_ident() and id(t) in self.values

    def _type(self, t: Tensor) -> TensorType:
        return TensorType(t.dtype, tuple(t.shape), t.device)

    def add_input(self, t: Tensor, hint: str) -> Value:
        v = Value(self._type(t), hint)
        self.values[id(t)] = v
        self.keep.append(t)
        self.params.append(v)
        return v

    def value_of(self, t: Tensor) -> Value:
        v = self.values.get(id(t))
        if v is None:  # a tensor from outside the inputs: capture it
            v = Value(self._type(t), "")
            self.values[id(t)] = v
            self.keep.append(t)
            self.captured.append((v, t))
        return v

    def record(self, op, args, attrs: dict, outs) -> None:
        if self.owner != threading.get_ident():
            return
        inputs = tuple(self.value_of(a) if isinstance(a, Tensor) else Const(a) for a in args)
        outputs = []
        for t in outs:
            v = Value(self._type(t))
            self.values[id(t)] = v
            self.keep.append(t)
            outputs.append(v)
        self.nodes.append(Node(op.name, inputs, freeze_attrs(attrs), tuple(outputs)))
        if not MODE.enabled:
            self.no_grad.extend(outputs)

    def write_state(self, target: Tensor, src: Tensor) -> None:
        """``target.copy_(src)`` while recording: allowed for a tensor from outside the inputs
        (a buffer) written whole by a value of its shape, dtype and device that takes no
        gradient. The graph gets the written value as an extra result, which each run of the
        compiled function copies into ``target``; later reads in the trace see the new value."""
        if self.owner != threading.get_ident():
            return
        if not self.allow_writes:
            self.unsupported("in-place op copy_")
        v = self.values.get(id(target))
        if v is not None and not any(t is target for _, t in self.captured):
            self.unsupported("in-place op copy_ into an input or a computed tensor")
        if (tuple(src.shape) != tuple(target.shape) or src.dtype is not target.dtype
                or src.device is not target.device):  # fmt: skip
            self.unsupported(
                f"in-place op copy_ of a {src.dtype.name}{list(src.shape)} tensor into a "
                f"{target.dtype.name}{list(target.shape)} buffer (only a copy of the same shape, "
                "dtype and device"
            )
        ag = getattr(target, "_ag", None)
        sag = getattr(src, "_ag", None)
        if (ag is not None and ag.requires_grad) or (
            MODE.enabled and sag is not None and sag.requires_grad
        ):
            self.unsupported("in-place op copy_ of a tensor that requires grad")
        new = self.value_of(src)
        if id(target) not in self.state_before:
            self.state_before[id(target)] = (target, target._data.copy())
        self.writes[id(target)] = (target, new)
        self.values[id(target)] = new
        self.keep.append(target)

    def note_detach(self, t: Tensor) -> None:
        v = self.values.get(id(t)) if self.owner == threading.get_ident() else None
        if v is not None:
            self.detached.append(v)

    def note_value_read(self, what: str, where: str) -> None:
        self.value_reads.append((what, where))

    def unsupported(self, what: str) -> None:
        if self.owner != threading.get_ident():
            return
        raise TraceError(f"trace: {what} cannot be recorded into a graph")


def _flatten(obj, out: list, path: str):
    if isinstance(obj, Tensor):
        out.append((path, obj))
        return "T"
    if isinstance(obj, (tuple, list)):
        spec = tuple(_flatten(o, out, f"{path}[{i}]") for i, o in enumerate(obj))
        cls = type(obj)
        if isinstance(obj, list):
            return ("list", spec)
        if hasattr(cls, "_fields"):  # a named tuple (sort's, linalg's): rebuilt as such
            return (f"{NAMEDTUPLE}{cls.__module__}:{cls.__qualname__}", spec)
        return ("tuple", spec)
    return ("const", obj)


NAMEDTUPLE = "namedtuple:"


def _named_tuple_class(kind: str):
    """The named-tuple class a spec names, or None (then a plain tuple is given back). Only a
    module already imported is looked in: a spec read from an archive never imports code."""
    module, _, qualname = kind[len(NAMEDTUPLE) :].partition(":")
    obj = sys.modules.get(module)
    for part in qualname.split("."):
        obj = getattr(obj, part, None)
    return (
        obj
        if isinstance(obj, type) and issubclass(obj, tuple) and hasattr(obj, "_fields")
        else None
    )


def _unflatten(spec, it):
    if spec == "T":
        return next(it)
    kind, payload = spec
    if kind == "const":
        return payload
    items = [_unflatten(s, it) for s in payload]
    if kind == "list":
        return items
    if kind.startswith(NAMEDTUPLE):
        cls = _named_tuple_class(kind)
        if cls is not None and len(cls._fields) == len(items):
            return cls(*items)
    return tuple(items)


def capture(fn, example_inputs: tuple):
    """Run ``fn(*example_inputs)`` eagerly while recording. Returns (graph, input spec,
    output spec, eager outputs, tracer)."""
    flat_in: list = []
    in_spec = _flatten(tuple(example_inputs), flat_in, "input")
    with _trace_lock:
        tracer = Tracer()
        tracer.allow_writes = True
        for i, (_path, t) in enumerate(flat_in):
            if tracer.knows(t):
                raise TraceError("trace: the same tensor is passed as two inputs")
            tracer.add_input(t, f"x{i}" if len(flat_in) > 1 else "x")
        if recording.TRACER is not None:
            raise TraceError("trace: a trace is already being recorded in this process")
        with recording.recording(tracer):
            result = fn(*example_inputs)
    flat_out: list = []
    out_spec = _flatten(result, flat_out, "output")
    results = []
    for path, t in flat_out:
        if not tracer.knows(t):
            raise TraceError(f"trace: {path} is not a tensor computed from the inputs")
        results.append(tracer.values[id(t)])
    # written state: extra results after the function's own (``TracedFunction.write_state``)
    results += [v for _, v in tracer.writes.values()]
    n_inputs = len(tracer.params)
    params = tracer.params + [v for v, _ in tracer.captured]
    block = Block(params, tracer.nodes, results)
    graph = Graph(block, n_inputs, [t for _, t in tracer.captured])
    return graph, in_spec, out_spec, [t for _, t in flat_out], tracer


def state_targets(tracer) -> list:
    """The tensors a trace wrote in place, in the order of the graph's extra results."""
    return [t for t, _ in getattr(tracer, "writes", {}).values()]


def restore_state(tracer) -> None:
    """Put back what the traced (eager) run wrote into state, so that the compiled run of the
    same call writes it once."""
    for t, before in getattr(tracer, "state_before", {}).values():
        t._data[...] = before


# example inputs that are not tensors are frozen into the graph: these kinds of Python values
_CONSTANTS = (type(None), bool, int, float, complex, str, bytes, np.generic, DType, Device)


def check_example_inputs(obj, path: str = "example_inputs") -> None:
    """A TraceError naming the first part of ``obj`` a trace cannot take: inputs are tensors,
    (nested) tuples and lists of them, and Python values of ``_CONSTANTS`` (frozen)."""
    if isinstance(obj, (Tensor, *_CONSTANTS)):
        return
    if isinstance(obj, (tuple, list)):
        for i, o in enumerate(obj):
            check_example_inputs(o, f"{path}[{i}]")
        return
    if isinstance(obj, np.ndarray):
        raise TraceError(
            f"trace: {path} is a numpy array of shape {list(obj.shape)}; convert it with "
            "fusejit.from_numpy (or fusejit.tensor, which copies)"
        )
    if hasattr(obj, "__dlpack__") or hasattr(obj, "__cuda_array_interface__"):
        raise TraceError(
            f"trace: {path} is {describe(obj)}, an array of another library; convert it with "
            "fusejit.from_dlpack (or fusejit.tensor, which copies)"
        )
    raise TraceError(
        f"trace: {path} is {describe(obj)}; example inputs are tensors, (nested) tuples or "
        "lists of tensors, and Python numbers, strings or None (frozen into the graph)"
    )


def check_outputs(spec, path: str = "output") -> None:
    """A TraceError naming the first output (of an output spec) that is not a tensor."""
    if spec == "T":
        return
    kind, payload = spec
    if kind != "const":
        for i, s in enumerate(payload):
            check_outputs(s, f"{path}[{i}]")
        return
    raise TraceError(
        f"trace: {path} is {describe(payload)}, not a tensor computed from the inputs; a traced "
        "function returns tensors, or (nested) tuples or lists of tensors"
    )


def flatten_inputs(args: tuple) -> tuple[object, list]:
    flat: list = []
    spec = _flatten(tuple(args), flat, "input")
    return spec, [t for _, t in flat]


def unflatten_outputs(spec, tensors):
    return _unflatten(spec, iter(tensors))


def warn(msg: str) -> None:
    warnings.warn(msg, TracerWarning, stacklevel=3)
