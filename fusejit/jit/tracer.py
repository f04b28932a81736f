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
import weakref

import numpy as np

from fusejit.base import symbolic
from fusejit.base.device import Device
from fusejit.base.dtypes import DType
from fusejit.base.errors import TraceError, TracerWarning
from fusejit.base.shapes import describe
from fusejit.base.symbolic import SymInt, is_symbolic, resolve, symbols_of
from fusejit.eager import recording
from fusejit.eager.grad_mode import MODE
from fusejit.eager.tensor import Tensor
from fusejit.eager.tensor import tensor as _tensor
from fusejit.ir.graph import Block, Const, Graph, Node, TensorType, Value, freeze_attrs

_trace_lock = threading.RLock()  # the tracer hook is process-wide: one trace at a time


class SymbolicShapeError(TraceError):
    """A trace with dynamic dims met a size it cannot express over the symbols. ``rigid_dims``:
    the (input, dim) pairs of the symbols the op takes no other value of (a feature dim a
    weight fixes); traced as fixed sizes, the others can stay dynamic."""

    rigid_dims: tuple = ()


# (file name, line number) of the user code each recorded node comes from, for messages that
# name it (``line_of``); kept beside the nodes (weakly) so that the IR stays line-free
NODE_LINES: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def line_of(node) -> str | None:
    """``file:line: source text`` of the code that recorded ``node`` (None if unknown)."""
    where = NODE_LINES.get(node)
    return None if where is None else recording.describe_line(where)


class Tracer:
    """Records ops into a graph. The hook is process-wide (``fusejit.eager.recording``) but a tracer
    only acts on the thread that started it: other threads run eager, unrecorded.

    ``dynamic`` maps the index of an input tensor to the dims whose sizes are symbolic: their
    sizes are ``SymInt`` (``s0``, ``s1``, ...; equal sizes share a symbol, as torch's duck
    sizing) in the values' types and in what ``Tensor.shape`` gives while recording, and the
    result shapes of each op are expressions over them (``shape_rules`` fitted and checked at
    other values of the symbols)."""

    def __init__(self, dynamic: dict | None = None) -> None:
        self.owner = threading.get_ident()
        self.values: dict[int, Value] = {}
        self.keep: list = []  # tensors seen, kept alive so their ids stay unique
        self.params: list[Value] = []
        self.captured: list = []
        self.nodes: list[Node] = []
        self.value_reads: list[tuple[str, str]] = []
        self.unsupported_reason: str | None = None
        # where gradients stop (joint graphs, fusejit/jit/joint.py): results of ops recorded
        # with grad mode off (``detach()`` is a node: ``detach``, which has no gradient)
        self.no_grad: list[Value] = []
        self.dynamic = dynamic or {}
        self.symbolic = bool(self.dynamic)
        self.shape_reads = False  # user code read a recorded tensor's shape
        self._writable: set = set()  # values a write may replace (snapshots, their rebinds)
        self._viewed: set = set()  # values an op returned a view of
        self._views_of: dict = {}  # value -> the views of it ops returned
        self._view_values: set = set()  # values that are views of others
        self._stale: set = set()  # views of a computed tensor written in place since
        self.symbols: list = []  # (name, input index, dim)
        self.guards: list = []  # symbolic.Guard
        self.checks: list = []  # (op name, input shapes, attrs, result shapes) to re-check
        self._by_hint: dict = {}
        self.data_symbols: list = []  # sizes a node computes from values (mask_positions)
        # state written in place (a module's buffers: BatchNorm's running statistics): per
        # target tensor, the value it holds after the function (an extra graph result), and
        # its contents before the trace wrote it (``restore_state``)
        self.allow_writes = False  # (``capture`` handles them; other recorders do not)
        self.writes: dict[int, tuple[Tensor, Value]] = {}
        self.state_before: dict[int, tuple[Tensor, object]] = {}
        # the source line recorded ops come from (``NODE_LINES``): set by the script compiler
        # to the statement it compiles; None: the innermost caller outside the package
        self.line: tuple[str, int] | None = None
        # a whole training step (``fusejit/jit/train_step.py``): the ``.grad`` of each tensor
        # the function read or set, as it was when first touched; ``backward`` calls recorded;
        # the checks each call of the compiled step makes first (guards) and the host
        # functions giving the values of its live scalars (a learning rate, a bias correction)
        self.grad_entry: dict[int, tuple[Tensor, object]] = {}
        self.backward_spans: list[tuple[int, int]] = []  # node ranges the backwards recorded
        self.step_guards: list = []  # (check() -> reason or None)
        self.live: list = []  # (values() -> floats, the 0-d tensors they fill)
        self.host_state: dict[int, tuple[Tensor, object]] = {}  # host-written (step counts)
        self.train_steps = False  # whether ``backward`` records (``fusejit.optimize``)
        self.grad_touches: dict[int, int] = {}  # reads and writes of each tensor's .grad
        self.grad_free: set = set()  # ids whose .grad the function cleared before using it
        self.step_grads: set = set()  # ids of the gradients ``backward`` put into .grad
        self.not_yet: str | None = None  # why this call cannot be the one traced (state made)

    def knows(self, t: Tensor) -> bool:
        return self.owner == threading.get_ident() and id(t) in self.values

    def _type(self, t: Tensor) -> TensorType:
        return TensorType(t.dtype, tuple(t._data.shape), t.device)

    def shape_of(self, t: Tensor, depth: int = 3) -> tuple:
        """``t.shape`` while recording: symbolic sizes where dims are dynamic. Notes a read of
        a recorded tensor's shape by user code: a graph whose Python used a size is not
        served to other sizes without guards (``Plan.shape_generic``)."""
        v = self.values.get(id(t)) if self.owner == threading.get_ident() else None
        if v is None:
            return t._data.shape
        if not self.shape_reads and symbolic._from_user(depth):
            self.shape_reads = True
        return v.type.shape

    def add_input(self, t: Tensor, hint: str) -> Value:
        ty = self._type(t)
        dims = self.dynamic.get(len(self.params), ())
        if dims:
            shape = list(ty.shape)
            for d in dims:
                n = shape[d]
                if n < 2:  # sizes 0 and 1 stay specialized (broadcasting), as torch's
                    continue
                sym = self._by_hint.get(n)
                if sym is None:
                    sym = self._by_hint[n] = SymInt.symbol(f"s{len(self._by_hint)}", n)
                self.symbols.append((str(sym), len(self.params), d))
                shape[d] = sym
            ty = TensorType(ty.dtype, tuple(shape), ty.device)
        v = Value(ty, hint)
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
        if self._stale and any(v in self._stale for v in inputs):
            self.unsupported(f"{op.name} of a view of a tensor written in place since the view")
        types = [self._type(t) for t in outs]
        if self.symbolic:
            if any(isinstance(a, SymInt) for a in args) or (
                op.kind == "elementwise" and is_symbolic(attrs)
            ):
                # a size as an operand would be compiled into a kernel as a constant
                raise SymbolicShapeError(
                    f"trace: {op.name} takes a dynamic size as an operand; it is specialized"
                )
            types = self._symbolic_types(op, inputs, attrs, types)
        outputs = []
        for t, ty in zip(outs, types):
            v = Value(ty)
            self.values[id(t)] = v
            self.keep.append(t)
            outputs.append(v)
            base = t._data.base
            if base is not None:  # a view: its source may not be written in the graph
                for a, iv in zip(args, inputs):
                    if isinstance(a, Tensor) and (base is a._data or base is a._data.base):
                        self._viewed.add(iv)
                        self._views_of.setdefault(iv, []).append(v)
                        self._view_values.add(v)
        node = Node(op.name, inputs, freeze_attrs(attrs), tuple(outputs))
        self.nodes.append(node)
        NODE_LINES[node] = self.line if self.line is not None else recording.user_line(1)
        if not MODE.enabled:
            self.no_grad.extend(outputs)

    def write_state(self, target: Tensor, src: Tensor, op: str = "copy_") -> None:
        """``target.copy_(src)`` while recording: allowed for a tensor from outside the inputs
        (a buffer, a parameter or an optimizer's state under ``no_grad``) written whole by a
        value of its shape, dtype and device that takes no gradient. The graph gets the
        written value as an extra result, which each run of the compiled function copies into
        ``target``; later reads in the trace see the new value. A gradient a traced ``backward``
        put into ``.grad`` (clipped by ``mul_``) just takes the new value; other tensors the
        function computed are refused. ``op`` names the in-place op for errors."""
        if self.owner != threading.get_ident():
            return
        if not self.allow_writes:
            self.unsupported(f"in-place op {op}")
        v = self.values.get(id(target))
        if v is None:  # first met as a write's target: a tensor from outside (captured)
            v = self.value_of(target)
        elif not any(t is target for _, t in self.captured):
            if id(target) not in self.step_grads or v in self._view_values:
                self.unsupported(f"in-place op {op} into an input or a computed tensor")
            todo = list(self._views_of.get(v, ()))  # their values are the old ones now
            while todo:
                w = todo.pop()
                if w not in self._stale:
                    self._stale.add(w)
                    todo.extend(self._views_of.get(w, ()))
            # a tensor the function computed (a gradient clipped in place): its new value
            self.values[id(target)] = self.value_of(src)
            self._writable.add(self.values[id(target)])
            return
        if (tuple(src.shape) != tuple(target.shape) or src.dtype is not target.dtype
                or src.device is not target.device):  # fmt: skip
            self.unsupported(
                f"in-place op {op} of a {src.dtype.name}{list(src.shape)} tensor into a "
                f"{target.dtype.name}{list(target.shape)} buffer (only a copy of the same shape, "
                "dtype and device"
            )
        ag = getattr(target, "_ag", None)
        sag = getattr(src, "_ag", None)
        if MODE.enabled and (
            (ag is not None and ag.requires_grad) or (sag is not None and sag.requires_grad)
        ):
            self.unsupported(f"in-place op {op} of a tensor that requires grad")
        new = self.value_of(src)
        if id(target) not in self.state_before:
            self.state_before[id(target)] = (target, target._data.copy())
        self.writes[id(target)] = (target, new)
        self.values[id(target)] = new
        self.keep.append(target)

    # ---- a whole training step (fusejit/jit/train_step.py) ---------------------------------
    def note_grad(self, t: Tensor) -> None:
        """``t.grad`` read or set: its value before the first of these is what a call of the
        compiled step checks (``.grad`` None or a tensor)."""
        if self.owner != threading.get_ident():
            return
        self.grad_touches[id(t)] = self.grad_touches.get(id(t), 0) + 1
        if id(t) in self.grad_entry:
            return
        info = getattr(t, "_ag", None)
        self.grad_entry[id(t)] = (t, None if info is None else info.grad)

    def note_grad_cleared(self, t: Tensor) -> None:
        """``zero_grad(set_to_none=True)`` set ``t.grad`` to None: where that was the first
        use of its ``.grad`` (one read, one write), what it was before does not matter."""
        if self.owner == threading.get_ident() and self.grad_touches.get(id(t)) == 2:
            self.grad_free.add(id(t))

    def backward(self, outputs, grad_outputs) -> None:
        """``loss.backward()`` while recording: the gradients as graph values, from the op
        table's derivative rules, accumulated into ``.grad`` as the eager engine does."""
        if not self.train_steps:
            raise TraceError(
                "backward: a backward pass inside a function traced by fusejit.trace is not "
                "supported; fusejit.optimize captures a whole training step (forward, "
                "backward, optimizer step) as one graph"
            )
        from fusejit.jit import train_step  # (it reads this module's tracer)

        train_step.record_backward(self, outputs, grad_outputs)

    def guard(self, check) -> None:
        """``check()`` (a reason, or None when it holds) runs before each call of the compiled
        function; a reason is a guard failure (the signature is traced again)."""
        if self.owner == threading.get_ident():
            self.step_guards.append(check)

    def live_scalars(self, values, dtype: DType, device: Device) -> list:
        """0-d tensors of ``dtype`` on ``device`` holding the floats ``values()`` gives, a
        function of host state that each call of the compiled function calls again before it
        runs (a learning rate from a scheduler, a bias correction from a step count): graph
        inputs, not constants. ``values`` may update host state (count a step) that it
        registers with ``host_written``."""
        with recording.recording(None):
            ts = [_tensor(v, dtype=dtype, device=device) for v in values()]
        for t in ts:
            self.value_of(t)
        self.live.append((values, ts))
        return ts

    def host_written(self, t: Tensor) -> None:
        """``t`` is written by a ``live_scalars`` function (not by the graph): put back after
        the traced run, as the state the graph writes is."""
        if id(t) not in self.host_state:
            self.host_state[id(t)] = (t, t._data.copy())

    def record_factory(self, name: str, out: Tensor, attrs: dict) -> None:
        """A tensor made by a factory from symbolic sizes (``arange(T)``): a node with no
        inputs, evaluated at each call (``jit/runtime.py``)."""
        if self.owner != threading.get_ident():
            return
        start, end, step = attrs["start"], attrs["end"], attrs["step"]
        n = (end - start + step - 1) // step if isinstance(step, int) and step > 0 else None
        if not isinstance(n, SymInt) or int(n) != out._data.shape[0]:
            raise SymbolicShapeError(f"trace: {name} of symbolic sizes {start}, {end}, {step}")
        v = Value(TensorType(out.dtype, (n,), out.device))
        self.values[id(out)] = v
        self.keep.append(out)
        self.checks.append((name, (), attrs, ((n,),)))
        node = Node(name, (), freeze_attrs(attrs), (v,))
        self.nodes.append(node)
        NODE_LINES[node] = self.line if self.line is not None else recording.user_line(1)

    def _symbolic_types(self, op, inputs, attrs, types) -> list:
        shapes = [v.type.shape for v in inputs if isinstance(v, Value)]
        names = sorted(symbols_of((shapes, attrs)))
        if not names:
            return types
        try:
            shapes_out = _fit_shapes(op, shapes, attrs, [t.shape for t in types], names,
                                     self._hints(names))  # fmt: skip
        except SymbolicShapeError as e:
            rigid = getattr(e, "rigid", ())
            e.rigid_dims = tuple((i, d) for n, i, d in self.symbols if n in rigid)
            raise
        except Exception as e:  # a rule that cannot take the other sizes
            raise SymbolicShapeError(
                f"trace: the result shape of {op.name} cannot be expressed over the dynamic "
                f"sizes {', '.join(names)} ({type(e).__name__}: {e})"
            ) from None
        if not _holds_for_all(op, shapes, attrs, shapes_out):  # re-checked per new size
            self.checks.append((op.name, tuple(shapes), attrs, tuple(shapes_out)))
        return [TensorType(t.dtype, s, t.device) for t, s in zip(types, shapes_out)]

    def _hints(self, names) -> dict:
        hints = {str(s): int(s) for s in self._by_hint.values()}
        hints.update((str(s), int(s)) for s in self.data_symbols)
        return {n: hints[n] for n in names}

    def record_mask_positions(self, mask: Tensor, out: Tensor) -> None:
        """``out``: the flat positions of the true entries of the 1-d bool ``mask``, a node
        whose result's length is a symbol (``u0``) bound when the graph runs: the shapes that
        depend on it are expressions over it, as over a dynamic dim."""
        if self.owner != threading.get_ident():
            return
        u = SymInt.symbol(f"u{len(self.data_symbols)}", out._data.shape[0])
        if int(u) < 2:  # (sizes 0 and 1 would broadcast: such a trace is refused)
            self.unsupported(
                f"indexing with a bool mask of {int(u)} true entries (a result of at most one "
                "element broadcasts like no other)"
            )
        self.data_symbols.append(u)
        self.symbolic = True
        v = Value(TensorType(out.dtype, (u,), out.device))
        inp = self.value_of(mask)
        self.values[id(out)] = v
        self.keep.append(out)
        self.nodes.append(Node("mask_positions", (inp,), (("size", u),), (v,)))

    # ---- writes (x[i] = v): a new value of x, recorded with index_put (eager/indexing.py) ----
    def snapshot(self, t: Tensor) -> None:
        """A tensor first met as the target of a write: its values now, as a constant."""
        copy = Tensor._wrap(t._data.copy(), t.dtype, t.device)
        self.values[id(t)] = self.value_of(copy)
        self.keep.append(t)
        self._writable.add(self.values[id(t)])

    def may_write(self, t: Tensor) -> bool:
        v = self.values[id(t)]
        return v in self._writable or v not in self._params_set()

    def _params_set(self) -> set:
        return set(self.params) | {v for v, _ in self.captured}

    def viewed(self, t: Tensor) -> bool:
        return self.values[id(t)] in self._viewed

    def rebind(self, t: Tensor, new: Tensor) -> None:
        v = self.values[id(new)]
        self.values[id(t)] = v
        self._writable.add(v)

    def note_value_read(self, what: str, where: str) -> None:
        self.value_reads.append((what, where))

    def unsupported(self, what: str) -> None:
        if self.owner != threading.get_ident():
            return
        raise TraceError(f"trace: {what} cannot be recorded into a graph")


def _rule(op, shapes, attrs):
    from fusejit.ops.shape_rules import out_shapes  # (numpy-heavy; only dynamic traces)

    out = out_shapes(op, shapes, attrs)
    if out is None:
        raise SymbolicShapeError(f"trace: {op.name} has no shape rule for symbolic sizes")
    return out


# ops whose result dims are their inputs' dims, selected or moved by attributes that hold no
# size (a reduction's dims, a permutation): their fitted shapes hold for every value of the
# symbols, with nothing to re-check at a call
_SELECTING = frozenset({"permute", "contiguous", "clone", "softmax", "layer_norm", "index_select",
                        "flip", "roll", "tril", "triu", "cumsum", "cumprod", "logcumsumexp",
                        "cummax", "cummin", "sort"})  # fmt: skip


def _same_size(a, b) -> bool:
    """Whether two sizes are equal for every value of the symbols (structurally)."""
    d = a - b
    return not isinstance(d, SymInt) and d == 0


def _broadcasts(shapes, out) -> bool:
    """Whether ``shapes`` broadcast to ``out`` for every value of the symbols: in each dim,
    the entries that are not a static 1 are one expression (symbols are never 1)."""
    n = len(out)
    for k in range(1, n + 1):
        want = out[-k]
        for s in shapes:
            if len(s) >= k and not (type(s[-k]) is int and s[-k] == 1):
                if not _same_size(s[-k], want):
                    return False
    return True


def _holds_for_all(op, shapes, attrs, outs) -> bool:
    if symbols_of(attrs) and op.name not in ("view", "reshape"):
        return False
    if op.kind == "elementwise":
        return len(outs) == 1 and _broadcasts(shapes, outs[0])
    if op.kind in ("reduction", "random") or op.name in _SELECTING:
        return True
    if op.name == "matmul" and len(shapes) == 2 and min(len(shapes[0]), len(shapes[1])) >= 2:
        a, b = shapes
        return _same_size(a[-1], b[-2]) and _broadcasts([a[:-2], b[:-2]], outs[0][:-2])
    if op.name in ("view", "reshape"):
        shape = tuple(attrs["shape"])
        if any(type(k) is int and k < 0 for k in shape):
            return False
        n_in, n_out = 1, 1
        for k in shapes[0]:
            n_in = k * n_in
        for k in shape:
            n_out = k * n_out
        return _same_size(n_in, n_out) and all(_same_size(a, b) for a, b in zip(shape, outs[0]))
    return False


def _sizes_in(obj, out: dict) -> None:
    for s in symbolic.sym_ints(obj):
        out.setdefault(s.poly, s)


def _fit_shapes(op, shapes, attrs, actual, names, hints) -> list:
    """The result shapes of ``op`` as expressions over the symbols ``names``: what the shape
    rule gives with symbolic inputs where it keeps them, else an affine fit per symbol, each
    checked against the rule at other values of the symbols."""
    at = [tuple(s) for s in _rule(op, resolve(shapes, hints), resolve(attrs, hints))]
    if at != [tuple(s) for s in actual]:
        raise SymbolicShapeError(f"trace: the shape rule of {op.name} differs from its result")
    try:
        with symbolic.tracing([]):  # comparisons by the hints, as while recording
            direct = _rule(op, shapes, attrs)
    except Exception:
        direct = None
    # other values of the symbols: each alone moved, and all moved together
    probes = []
    for delta in (1, 3, 2, 4, 6, 8, 12):
        env = {n: h + delta for n, h in hints.items()}
        try:
            probes.append((env, _rule(op, resolve(shapes, env), resolve(attrs, env))))
        except Exception:
            continue
        if len(probes) == 2:
            break
    slopes = {}
    for n in names:
        for delta in (1, 2, 4, 8):
            env = dict(hints)
            env[n] += delta
            try:
                got = _rule(op, resolve(shapes, env), resolve(attrs, env))
            except Exception:
                continue
            slopes[n] = (delta, got)
            probes.append((env, got))
            break
    if len(probes) < 2:
        e = SymbolicShapeError(f"trace: {op.name} takes no other value of {', '.join(names)}")
        e.rigid = tuple(n for n in names if n not in slopes)
        raise e
    # the sizes of the inputs and attributes: a result dim is often one of them (broadcast,
    # permute, matmul), which covers expressions no affine fit gives (``T // 2``)
    seen: dict = {}
    _sizes_in((shapes, attrs), seen)
    out = []
    for i, shape in enumerate(at):
        dims = []
        for j, h in enumerate(shape):
            cands = [c for c in seen.values() if int(c) == h]
            if direct is not None and len(direct) > i and len(direct[i]) == len(shape):
                cands.insert(0, direct[i][j])
            fit = h
            for n, (delta, got) in slopes.items():
                a, r = divmod(got[i][j] - h, delta)
                if r:
                    fit = None
                    break
                if a:
                    fit = fit + a * (SymInt.symbol(n, hints[n]) - hints[n])
            if fit is not None:
                cands.append(fit)
            for c in cands:
                if int(c) == h and all(resolve(c, env) == got[i][j] for env, got in probes):
                    dims.append(c)
                    break
            else:
                raise SymbolicShapeError(
                    f"trace: dim {j} of the result of {op.name} is no expression over "
                    f"{', '.join(names)}"
                )
        out.append(tuple(dims))
    return out


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


def capture(fn, example_inputs: tuple, dynamic: dict | None = None, train_steps: bool = False):
    """Run ``fn(*example_inputs)`` eagerly while recording. Returns (graph, input spec,
    output spec, eager outputs, tracer). ``dynamic`` maps input tensors (by index among the
    flat tensor inputs) to their dims to record as symbolic sizes (``Tracer``);
    ``train_steps``: a ``backward`` inside is recorded (a whole training step,
    ``fusejit/jit/train_step.py``) rather than refused."""
    flat_in: list = []
    in_spec = _flatten(tuple(example_inputs), flat_in, "input")
    with _trace_lock:
        tracer = Tracer(dynamic)
        tracer.allow_writes = True
        tracer.train_steps = train_steps
        for i, (_path, t) in enumerate(flat_in):
            if tracer.knows(t):
                raise TraceError("trace: the same tensor is passed as two inputs")
            tracer.add_input(t, f"x{i}" if len(flat_in) > 1 else "x")
        if recording.TRACER is not None:
            raise TraceError("trace: a trace is already being recorded in this process")
        with recording.recording(tracer), symbolic.tracing(tracer.guards):
            try:
                result = fn(*example_inputs)
            except TraceError as e:
                # what the run wrote before it stopped (a training step's zero_grad, updates):
                # ``restore_state(e.tracer)`` puts it back before the call runs again
                e.tracer = tracer
                raise
    flat_out: list = []
    out_spec = _flatten(result, flat_out, "output")
    results = []
    for path, t in flat_out:
        if not tracer.knows(t):
            raise TraceError(f"trace: {path} is not a tensor computed from the inputs")
        results.append(tracer.values[id(t)])
    # written state: extra results after the function's own (``TracedFunction.write_state``)
    results += [v for _, v in tracer.writes.values()]
    step = None
    if tracer.backward_spans or tracer.live or tracer.grad_entry:
        from fusejit.jit import train_step  # (it reads this module's tracer)

        step = train_step.finish(tracer, results)  # the gradients: results after those
    n_inputs = len(tracer.params)
    params = tracer.params + [v for v, _ in tracer.captured]
    block = Block(params, tracer.nodes, results)
    graph = Graph(block, n_inputs, [t for _, t in tracer.captured])
    if tracer.shape_reads:
        graph.notes["reads_shapes"] = True
    if step is not None:
        graph.notes["train_step"] = step
    if tracer.symbols or tracer.data_symbols:
        # what the runtime needs to bind the symbols and check the graph's assumptions
        guards = {g.key(): g for g in tracer.guards}
        data = {str(u) for u in tracer.data_symbols}
        for g in guards.values():
            if symbols_of(g.expr) & data:
                raise TraceError(
                    f"trace: Python compares a size that depends on the values ({g}): the "
                    "graph cannot check it before running"
                )
        graph.notes["symbols"] = tuple(tracer.symbols)
        graph.notes["data_symbols"] = tuple(sorted(data))
        graph.notes["guards"] = tuple(guards.values())
        # a shape that depends on the values is known only when the graph runs: such checks
        # would wait for it; the ops that take such a size check it themselves
        graph.notes["shape_checks"] = tuple(
            c for c in tracer.checks if not (symbols_of((c[1], c[2], c[3])) & data)
        )
    return graph, in_spec, out_spec, [t for _, t in flat_out], tracer


def state_targets(tracer) -> list:
    """The tensors a trace wrote in place, in the order of the graph's extra results."""
    return [t for t, _ in getattr(tracer, "writes", {}).values()]


def restore_state(tracer) -> None:
    """Put back what the traced (eager) run wrote into state (and the ``.grad`` it set), so
    that the compiled run of the same call writes it once."""
    for t, before in getattr(tracer, "state_before", {}).values():
        t._data[...] = before
    for t, before in getattr(tracer, "host_state", {}).values():
        t._data[...] = before
    for t, grad in getattr(tracer, "grad_entry", {}).values():
        _set_grad(t, grad)


def host_state_targets(tracer) -> list:
    """The tensors host functions of a traced step write (its optimizer's step counts)."""
    return [t for t, _ in getattr(tracer, "host_state", {}).values()]


def _set_grad(t: Tensor, grad) -> None:
    info = getattr(t, "_ag", None)
    if info is not None:
        info.grad = grad
    elif grad is not None:
        t.grad = grad


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
