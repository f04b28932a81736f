"""Reading an ONNX model and running its graph with the import rules.

``load`` checks the model, lists every op type no rule handles in one ``ImportError_``, turns
the initializers into fusejit tensors and returns an ``OnnxModule``. Calling the module runs
the graph's nodes in order, each through its rule (``registry.IMPORT_RULES``), under
``fusejit.trace`` once per input signature, so the model becomes one fused, compiled fusejit
graph. While the graph runs, each value's build-time numpy value is tracked where it is known
(initializers, ``Constant``, ``Shape`` / ``Size`` of a traced tensor, whose shape is concrete,
and the outputs of a node all of whose inputs are known): rules read shapes, axes and pads from
it, and such nodes are folded (computed once, their results captured as constants). GELU in
its erf form (``0.5 * x * (1 + erf(x / sqrt(2)))``, as exporters write it) becomes fusejit's
``gelu`` when traced (one primitive of the fused kernel; the nodes it replaces are dead code).

``onnx`` is imported here only (``fusejit.onnx`` imports this module when ``load`` is called).
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from fusejit.base import dtypes as dt
from fusejit.base.errors import TraceError
from fusejit.eager.recording import recording, tracing
from fusejit.eager.tensor import Tensor
from fusejit.onnx.importer.registry import (
    IMPORT_RULES,
    ImportError_,
    NodeContext,
    StaticValueError,
)  # fmt: skip

__all__ = ["load", "OnnxModule", "onnx_dtype", "decode_attribute"]

_ABSENT = NodeContext.ABSENT  # type: ignore[attr-defined]

# ONNX TensorProto element type -> fusejit dtype (the ones fusejit has)
_ELEM = {
    1: dt.float32,  # FLOAT
    2: dt.uint8,  # UINT8
    3: dt.int8,  # INT8
    5: dt.int16,  # INT16
    6: dt.int32,  # INT32
    7: dt.int64,  # INT64
    9: dt.bool_,  # BOOL
    10: dt.float16,  # FLOAT16
    11: dt.float64,  # DOUBLE
    14: dt.complex64,  # COMPLEX64
    15: dt.complex128,  # COMPLEX128
}

# ops the loader computes itself at build time (the shape of a traced tensor is concrete)
_SHAPE_OPS = ("Shape", "Size")
# ops whose node runs a subgraph: a model with them runs eagerly (see OnnxModule)
_CONTROL = ("If", "Loop", "Scan")


def onnx_dtype(elem_type: int, where: str = "") -> dt.DType:
    """The fusejit dtype of an ONNX element type; ``ImportError_`` for one fusejit lacks.

    >>> onnx_dtype(1).name
    'float32'
    """
    d = _ELEM.get(int(elem_type))
    if d is None:
        import onnx  # (only when a model is read)

        name = onnx.TensorProto.DataType.Name(int(elem_type))
        raise ImportError_(
            f"{where or 'ONNX model'}: element type {name} has no fusejit dtype (fusejit has "
            + ", ".join(sorted(d.name for d in _ELEM.values()))
            + ")"
        )
    return d


def _to_numpy(tensor_proto, where: str = "") -> np.ndarray:
    import onnx  # (only when a model is read)

    onnx_dtype(tensor_proto.data_type, where)
    return np.asarray(onnx.numpy_helper.to_array(tensor_proto))


def decode_attribute(a) -> Any:
    """An ``onnx.AttributeProto``'s value as Python: int, float, str, lists of them, a numpy
    array (tensors), an ``onnx.GraphProto`` (subgraphs) or a list of those."""
    import onnx  # (only when a model is read)

    A = onnx.AttributeProto
    t = a.type
    if t == A.INT:
        return int(a.i)
    if t == A.FLOAT:
        return float(a.f)
    if t == A.STRING:
        return a.s.decode("utf-8")
    if t == A.TENSOR:
        return _to_numpy(a.t, f"attribute {a.name!r}")
    if t == A.GRAPH:
        return a.g
    if t == A.INTS:
        return [int(v) for v in a.ints]
    if t == A.FLOATS:
        return [float(v) for v in a.floats]
    if t == A.STRINGS:
        return [s.decode("utf-8") for s in a.strings]
    if t == A.TENSORS:
        return [_to_numpy(v, f"attribute {a.name!r}") for v in a.tensors]
    if t == A.GRAPHS:
        return list(a.graphs)
    raise ImportError_(f"attribute {a.name!r} of type {A.AttributeType.Name(t)} is not supported")


def _subgraphs(node):
    import onnx  # (only when a model is read)

    for a in node.attribute:
        if a.type == onnx.AttributeProto.GRAPH:
            yield a.g
        elif a.type == onnx.AttributeProto.GRAPHS:
            yield from a.graphs


def _unsupported(graph, found: dict) -> None:
    """Collect the op types of ``graph`` (and its subgraphs) no rule handles, with counts."""
    for node in graph.node:
        if node.domain not in ("", "ai.onnx"):
            key = f"{node.domain}.{node.op_type}"
        elif node.op_type not in IMPORT_RULES and node.op_type not in _SHAPE_OPS:
            key = node.op_type
        else:
            key = None
        if key is not None:
            found[key] = found.get(key, 0) + 1
        for g in _subgraphs(node):
            _unsupported(g, found)


# the largest input read at build time (shapes, axes, pads, repeats, K, ...)
_STATIC_INPUT_MAX = 64


def _has_control(graph) -> bool:
    return any(n.op_type in _CONTROL for n in graph.node)


def _numpy_of(t: Tensor) -> np.ndarray:
    return t.cpu().numpy() if t.device.type != "cpu" else t.numpy()


class _Run:
    """One run of a graph: values by name (tensors and build-time numpy values)."""

    def __init__(self, module: OnnxModule, tensors: dict, static: dict) -> None:
        self.m = module
        self.tensors = tensors
        self.static = static
        self.eager = tracing() is None  # (a run outside fusejit.trace: values are concrete)
        self.producer: dict = {}  # value name -> the node computing it

    def _scalar(self, name: str, want: float, tol: float = 1e-6) -> bool:
        v = self.static.get(name)
        return v is not None and v.size == 1 and abs(float(v.reshape(-1)[0]) - want) <= tol

    def _pair(self, node, want: float, tol: float = 1e-6):
        """The other input of binary ``node`` whose one input is the constant ``want``."""
        a, b = node.input
        if self._scalar(a, want, tol):
            return b
        if self._scalar(b, want, tol):
            return a
        return None

    def _gelu_input(self, names: list):
        """``x`` when Mul(names) is 0.5 * x * (1 + erf(x / sqrt(2))) (how GELU's erf form is
        exported, by fusejit and others) over a float ``x``, else None."""
        if len(names) != 2:
            return None
        for half_name, rest_name in (names, names[::-1]):
            half, rest = self.producer.get(half_name), self.producer.get(rest_name)
            if half is None or rest is None or half.op_type != "Mul" or rest.op_type != "Add":
                continue
            x = self._pair(half, 0.5)
            erf_name = self._pair(rest, 1.0)
            erf = self.producer.get(erf_name) if erf_name else None
            if x is None or erf is None or erf.op_type != "Erf":
                continue
            scaled = self.producer.get(erf.input[0])
            if scaled is None or scaled.op_type not in ("Mul", "Div"):
                continue
            if scaled.op_type == "Mul":
                inner = self._pair(scaled, 0.7071067811865476, 1e-6)
            else:
                inner = (
                    scaled.input[0] if self._scalar(scaled.input[1], 1.4142135623730951) else None
                )
            t = self.tensors.get(x)
            if inner == x and t is not None and t.dtype.is_floating_point:
                return t
        return None

    def graph(self, g) -> None:
        """Run the nodes of ``g`` (its inputs and initializers already set)."""
        for node in g.node:
            self.node(node)

    def node(self, node) -> None:
        m = self.m
        attrs = m.attrs_of(node)
        names = list(node.input)
        ins = [None if n == "" else self._tensor(n, node) for n in names]
        static = [_ABSENT if n == "" else self.static.get(n) for n in names]
        if self.eager:  # every value is concrete: small ones serve as build-time values too
            static = [
                _numpy_of(t) if v is None and t.numel() <= _STATIC_INPUT_MAX else v
                for v, t in zip(static, ins)
            ]
        outs_names = list(node.output)
        where = f"ONNX {node.op_type} node {node.name!r}" if node.name else f"ONNX {node.op_type}"
        if node.op_type in _SHAPE_OPS:
            x = ins[0]
            if node.op_type == "Shape":
                shape = np.array(x.shape, np.int64)
                value = shape[attrs.get("start", 0) : attrs.get("end", len(shape))]
            else:
                value = np.array(int(np.prod(x.shape, dtype=np.int64)), np.int64)
            self._set(outs_names[0], None, value)
            return
        for name in node.output:
            self.producer[name] = node
        if node.op_type == "Mul" and not self.eager:
            x = self._gelu_input(names)
            if x is not None:  # the erf form of GELU: fusejit's gelu, one primitive
                import fusejit  # (the package's namespace: this module sits below it)

                self._set(node.output[0], fusejit.gelu(x), None)
                return
        rule = IMPORT_RULES[node.op_type]
        ctx = NodeContext(
            node.op_type, attrs, m.opset, static, len(outs_names), m.device, node.name,
            run_graph=self.subgraph,
        )  # fmt: skip
        folded = all(s is not None for s in static) and node.op_type not in _CONTROL
        try:
            if folded:  # every input known: computed now, its results kept as constants
                with recording(None):
                    outs = rule(ctx, *ins)
            else:
                outs = rule(ctx, *ins)
        except ImportError_:
            raise
        except Exception as e:
            shapes = ", ".join("-" if t is None else f"{t.dtype.name}{list(t.shape)}" for t in ins)
            if not _retypable(e):
                raise
            raise type(e)(f"{where} ({shapes}): {e}") from e
        if not isinstance(outs, (tuple, list)):
            outs = (outs,)
        for i, name in enumerate(outs_names):
            if name == "":
                continue
            t = outs[i] if i < len(outs) else None
            if t is None:
                raise ImportError_(f"{where}: output {i} ({name!r}) is not computed by its rule")
            self._set(name, t, _numpy_of(t) if folded else None)

    def _tensor(self, name: str, node) -> Tensor:
        t = self.tensors.get(name)
        if t is None:
            s = self.static.get(name)
            if s is None:
                where = getattr(node, "op_type", "") or f"graph {getattr(node, 'name', '')!r}"
                raise ImportError_(f"ONNX {where}: value {name!r} is not defined")
            t = self.m._tensor(s)
            self.tensors[name] = t
        return t

    def _set(self, name: str, tensor, static) -> None:
        self.tensors[name] = tensor
        self.static[name] = static

    def subgraph(self, g, inputs: list) -> list:
        """Run subgraph ``g`` (If / Loop bodies) with ``inputs`` for its formal inputs; it sees
        this run's values (outer scope). Returns its outputs as tensors."""
        run = _Run(self.m, dict(self.tensors), dict(self.static))
        for v, t in zip(g.input, inputs):
            run._set(v.name, t, None)
        for init in g.initializer:
            run._set(init.name, None, _to_numpy(init, f"initializer {init.name!r}"))
        run.graph(g)
        return [run._tensor(v.name, g) for v in g.output]


def _retypable(e: Exception) -> bool:
    try:
        type(e)("x")
    except Exception:
        return False
    return True


class OnnxModule:
    """An ONNX model run by fusejit: call it with tensors (or numpy arrays) in the model's
    input order, or by input name; it returns one tensor or a tuple (the model's outputs).

    Per input signature (shapes, dtypes) the graph is traced with ``fusejit.trace`` and the
    traced function kept, so the model is fused and compiled like a traced function, on the
    module's device. A model whose graph holds control flow (``If``, ``Loop``, ``Scan``) runs
    its rules eagerly on each call instead (not traced), as does one loaded with ``jit=False``.
    ``graph`` is the fusejit graph of the
    latest signature; ``save`` writes the traced functions as a fusejit archive.
    """

    def __init__(
        self, model, device: str = "cpu", check_trace: bool | None = None, jit: bool = True
    ) -> None:
        self.model = model
        self.device = str(device)
        self.check_trace = check_trace
        g = model.graph
        self.opset = next(
            (int(o.version) for o in model.opset_import if o.domain in ("", "ai.onnx")), 1
        )
        found: dict = {}
        _unsupported(g, found)
        if found:
            listed = ", ".join(f"{k} ({n} node{'s' * (n > 1)})" for k, n in sorted(found.items()))
            raise ImportError_(f"ONNX model uses ops fusejit cannot import: {listed}")
        self.initializers = {i.name: _to_numpy(i, f"initializer {i.name!r}") for i in g.initializer}
        self._init_tensors = {k: self._tensor(v) for k, v in self.initializers.items()}
        self.input_names = [v.name for v in g.input if v.name not in self.initializers]
        self.output_names = [v.name for v in g.output]
        self.input_dtypes = [
            onnx_dtype(v.type.tensor_type.elem_type, f"ONNX input {v.name!r}")
            if v.type.HasField("tensor_type")
            else None
            for v in g.input
            if v.name not in self.initializers
        ]
        self.eager = _has_control(g) or not jit
        # inputs whose values the rules read at build time (the traces are per their values)
        self._static_inputs: set = set()
        self._device = self._tensor(np.zeros(0, np.float32)).device
        self._traced: dict = {}
        # (shape, dtype, device) per input -> traced function, for calls with tensors only
        self._fast: dict = {}
        self._last = None

    def _tensor(self, a: np.ndarray) -> Tensor:
        import fusejit  # (the package's namespace: this module sits below it)

        a = np.asarray(a)
        return fusejit.tensor(a if a.flags.c_contiguous else a.copy(), device=self.device)

    def attrs_of(self, node) -> dict:
        # (decoded on each run: a run is once per signature; protobuf gives no stable key)
        return {a.name: decode_attribute(a) for a in node.attribute}

    def _inputs(self, args, kwargs) -> list:
        n = len(self.input_names)
        if len(args) > n:
            raise TypeError(f"ONNX model takes {n} inputs ({self.input_names}), got {len(args)}")
        values = list(args) + [None] * (n - len(args))
        for k, v in kwargs.items():
            if k not in self.input_names:
                raise TypeError(f"ONNX model has no input {k!r} (inputs: {self.input_names})")
            values[self.input_names.index(k)] = v
        out = []
        for name, d, v in zip(self.input_names, self.input_dtypes, values):
            if v is None:
                raise TypeError(f"ONNX model input {name!r} is missing")
            t = v if isinstance(v, Tensor) else self._tensor(np.asarray(v))
            if t.device != self._device:
                t = t.to(self.device)
            if d is not None and t.dtype is not d:
                raise ImportError_(
                    f"ONNX model input {name!r} is {d.name}, got a {t.dtype.name} tensor"
                )
            out.append(t)
        return out

    def run_eager(self, *tensors: Tensor) -> tuple:
        """Run the graph's rules eagerly (no trace) on ``tensors``; the outputs as a tuple."""
        return self._run(*tensors)[0]

    def _run(self, *tensors: Tensor) -> tuple:
        g = self.model.graph
        run = _Run(self, dict(self._init_tensors), dict(self.initializers))
        for i, (name, t) in enumerate(zip(self.input_names, tensors)):
            value = None
            if i in self._static_inputs:  # (the traces are per its value: no trace warning)
                with recording(None):
                    value = _numpy_of(t)
            run._set(name, t, value)
        run.graph(g)
        return tuple(run._tensor(name, g) for name in self.output_names), run

    def _traced_fn(self, *tensors: Tensor):
        outs, run = self._run(*tensors)
        # an output known at build time is not computed from the inputs: a copy is
        tracer = tracing()
        outs = tuple(o if tracer is None or tracer.knows(o) else o.clone() for o in outs)
        return outs[0] if len(outs) == 1 else outs  # (a saved archive returns the same)

    def __call__(self, *args, **kwargs):
        if not kwargs:  # fast path: tensors of a signature traced before
            try:
                fn = self._fast[tuple([(a.shape, a.dtype, a.device) for a in args])]
            except (KeyError, AttributeError, TypeError):
                pass
            else:
                if all(isinstance(a, Tensor) for a in args):
                    return fn(*args)
        tensors = self._inputs(args, kwargs)
        try:
            outs = self._call(tensors)
        except StaticValueError:
            # a rule needs a value only an input gives (a shape, axes, a count): read the small
            # inputs on each call, and trace per their values
            small = {i for i, t in enumerate(tensors) if t.numel() <= _STATIC_INPUT_MAX}
            if small <= self._static_inputs:
                raise
            self._static_inputs |= small
            self._traced.clear()
            self._fast.clear()
            outs = self._call(tensors)
        return outs[0] if len(outs) == 1 else tuple(outs)

    def _call(self, tensors: list) -> tuple:
        if self.eager:
            return self.run_eager(*tensors)
        sig = tuple([(t.shape, t.dtype, t.device) for t in tensors])
        key = sig + tuple(_numpy_of(tensors[i]).tobytes() for i in sorted(self._static_inputs))
        fn = self._traced.get(key)
        if fn is None:
            import fusejit  # (the package's namespace: this module sits below it)

            try:
                fn = fusejit.trace(self._traced_fn, tuple(tensors), check_trace=self.check_trace)
            except TraceError as e:
                if "shape depends on" not in str(e):
                    raise
                # an op whose result's shape depends on values (NonZero): this signature
                # runs eagerly
                fn = self.run_eager
            self._traced[key] = fn
        if fn is not self.run_eager:
            self._last = fn
            if not self._static_inputs and len(tensors) == len(self.input_names):
                self._fast[sig] = fn
        outs = fn(*tensors)
        return outs if isinstance(outs, tuple) else (outs,)

    @property
    def graph(self):
        """The fusejit graph of the latest traced signature (None before the first call or for
        a model that runs eagerly)."""
        return None if self._last is None else self._last.graph

    def save(self, path) -> None:
        """Write the traced functions (every signature called so far) as a fusejit archive,
        which ``fusejit.load`` runs without onnx."""
        import fusejit  # (the package's namespace: this module sits below it)

        if self.eager:
            raise ImportError_("ONNX model with control flow runs eagerly: nothing to save")
        if not self._traced:
            raise ImportError_("OnnxModule.save: call the model once first (to trace it)")
        fns = [f for f in self._traced.values() if f is not self.run_eager]
        if not fns:
            raise ImportError_("OnnxModule.save: the model has run eagerly only")
        fusejit.save(fns[0] if len(fns) == 1 else fns, path)

    def __repr__(self) -> str:
        head = (
            f"OnnxModule(inputs={self.input_names}, outputs={self.output_names}, "
            f"opset={self.opset}, device={self.device!r}" + (", eager" if self.eager else "") + ")"
        )
        return head if self._last is None else f"{head}\n{self._last.graph}"


def load(
    model, device: str = "cpu", *, check_trace: bool | None = None, jit: bool = True
) -> OnnxModule:
    """Read an ONNX model (a path, bytes or an ``onnx.ModelProto``) into an ``OnnxModule``
    that runs it through fusejit's JIT on ``device``.

    Unsupported op types raise one ``ImportError_`` listing them all. ``check_trace`` is
    ``fusejit.trace``'s (None: its default check); ``jit=False`` runs the rules eagerly on each
    call instead of tracing them (no compile time: for models run once).

    >>> import numpy as np, onnx, fusejit
    >>> from onnx import helper, TensorProto
    >>> node = helper.make_node("Relu", ["x"], ["y"])
    >>> g = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT,
    ...     [3])], [helper.make_tensor_value_info("y", TensorProto.FLOAT, [3])])
    >>> m = fusejit.onnx.load(helper.make_model(g))
    >>> m(np.array([-1.0, 0.0, 2.0], np.float32)).tolist()
    [0.0, 0.0, 2.0]
    """
    try:
        import onnx
    except ImportError as e:
        raise ImportError("fusejit.onnx.load needs the onnx package: pip install onnx") from e
    # the checker is given what the caller gave: a ModelProto it serializes again first (an
    # 86 MB model: 0.089 s to check its proto, 0.024 s its file, of 0.128 s for the whole load)
    if isinstance(model, (bytes, bytearray)):
        given = bytes(model)
        _check(onnx, given)
        model = onnx.load_model_from_string(given)
    elif isinstance(model, (str, os.PathLike)):
        path = os.fspath(model)
        if not os.path.isfile(path):
            raise FileNotFoundError(f"fusejit.onnx.load: no such file: {path!r}")
        _check(onnx, path)
        model = onnx.load(path)
    elif isinstance(model, onnx.ModelProto):
        _check(onnx, model)
    else:
        raise TypeError(
            f"fusejit.onnx.load: expected a path, bytes or onnx.ModelProto, got {type(model)}"
        )
    return OnnxModule(model, device, check_trace, jit)


def _check(onnx, model) -> None:
    """``onnx.checker.check_model``, its complaint as an ``ImportError_``."""
    try:
        onnx.checker.check_model(model)
    except (onnx.checker.ValidationError, ValueError) as e:  # (ValueError: not a protobuf)
        raise ImportError_(f"fusejit.onnx.load: the ONNX model is not valid: {e}") from None
