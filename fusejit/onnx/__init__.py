"""ONNX export: ``fusejit.onnx.export`` writes a traced graph as an ONNX model.

Each op of the graph is written by its rule in ``rules.RULES`` (keyed by op name); the model is
built with ``onnx.helper`` and checked with ``onnx.checker.check_model(full_check=True)``.
Captured tensors (module weights) become initializers. ``onnx`` is imported when ``export`` is
called, never when ``fusejit`` is imported (install it with ``pip install fusejit[onnx]``).
"""

from __future__ import annotations

import os

from fusejit.base import dtypes as dt
from fusejit.ir.graph import Const, Graph, Value
from fusejit.onnx.builder import Builder, ExportError
from fusejit.onnx.control import rule_of, value_shape
from fusejit.onnx.dynamic import SymbolicBuilder, check_keys, named_axes, symbolic_graph
from fusejit.onnx.importer.loader import OnnxModule, load
from fusejit.onnx.rules import REFUSED, RULES

__all__ = ["export", "ExportError", "RULES", "DEFAULT_OPSET", "MIN_OPSET", "EXTERNAL_DATA_BYTES",
           "load", "OnnxModule"]  # fmt: skip

# opsets the rules are written for: 17 (LayerNormalization's, kept as the older one) up to the
# latest that onnxruntime 1.2x runs
MIN_OPSET = 17
DEFAULT_OPSET = 21
# initializers of more bytes than this are written as ONNX external data (protobuf's limit on
# one serialized message is 2 GiB)
EXTERNAL_DATA_BYTES = 2**31 - 2**20


def _graph_of(obj, example_inputs) -> Graph:
    """The recorded graph of a traced, scripted, optimized or loaded object (its latest
    signature), or of ``obj`` traced on ``example_inputs``."""
    from fusejit.jit.archive import ArchiveError, _entries_of

    try:
        entries = _entries_of(obj)[2]
    except (ArchiveError, TypeError, AttributeError):
        entries = []
    if entries:
        return entries[-1][1]
    if example_inputs is None:
        raise TypeError(
            f"fusejit.onnx.export: {type(obj).__name__} is not a traced, scripted, optimized or "
            "loaded function (called at least once); pass example_inputs to trace it"
        )
    from fusejit.jit.api import trace

    if not isinstance(example_inputs, tuple):
        example_inputs = (example_inputs,)
    return trace(obj, example_inputs).raw_graph


def _numpy(t):
    return t.cpu().numpy() if hasattr(t, "cpu") else t.numpy()


def _node_text(node) -> str:
    from fusejit.jit.tracer import line_of

    line = node.attr("line")
    where = f" (line {line})" if line is not None else ""
    if line is None and line_of(node) is not None:
        where = f", at {line_of(node)}"
    attrs = ", ".join(f"{k}={v!r}" for k, v in node.attrs)
    ins = ", ".join(str(v.type) if isinstance(v, Value) else repr(v.value) for v in node.inputs)
    return f"{node.op}[{attrs}]({ins}){where}"


def _emit(b: Builder, g: Graph, env: dict) -> None:
    for node in g.nodes:
        if node.op == "constant":
            env[node.outputs[0]] = b.initializer(
                b.fresh("constant"), _numpy(node.attr("value")), node.outputs[0].type.dtype
            )
            continue
        rule = rule_of(b, node)
        if rule is None:
            why = f"cannot be exported ({REFUSED[node.op]})" if node.op in REFUSED else (
                "has no ONNX export rule")  # fmt: skip
            raise ExportError(f"fusejit.onnx.export: op {node.op!r} {why}: {_node_text(node)}")
        args = [v if isinstance(v, Const) else env[v] for v in node.inputs]
        try:
            outs = rule(b, node, args)
        except ExportError as e:
            if str(e).startswith("fusejit.onnx.export: "):  # (a node of a control block's)
                raise
            raise ExportError(f"fusejit.onnx.export: {e}: {_node_text(node)}") from None
        for v, name in zip(node.outputs, outs):
            if b.dtypes[name] is not v.type.dtype:
                raise AssertionError(f"export rule of {node.op} gave {b.dtypes[name].name}")
            env[v] = name


def _save(onnx, model, path: str, external_data: bool, nbytes: int) -> None:
    """Check and write ``model``: as one file, or with its initializers in ``<path>.data``
    beside it (asked for, or when they exceed ``EXTERNAL_DATA_BYTES``), checked from the files
    (a model over 2 GiB cannot be checked in memory)."""
    data = path + ".data"
    if not (external_data or nbytes > EXTERNAL_DATA_BYTES):
        onnx.checker.check_model(model, full_check=True)
        onnx.save(model, path)
        return
    if os.path.exists(data):  # (onnx appends to an existing data file)
        os.remove(data)
    onnx.save_model(model, path, save_as_external_data=True, all_tensors_to_one_file=True,
                    location=os.path.basename(data), size_threshold=1024)  # fmt: skip
    onnx.checker.check_model(path, full_check=True)


def export(
    obj,
    path: str | os.PathLike,
    example_inputs=None,
    *,
    opset: int | None = None,
    input_names: list[str] | None = None,
    output_names: list[str] | None = None,
    dynamic_axes: dict | None = None,
    external_data: bool = False,
):
    """Write ``obj`` as an ONNX model at ``path`` and return the ``onnx.ModelProto``.

    ``obj`` is a traced, scripted, optimized or loaded function (its latest signature;
    scripted ``if`` and loops become ONNX ``If`` and ``Loop``), or a module or function, traced
    here on ``example_inputs`` (a tensor or a tuple). ``opset``: the ONNX opset (``MIN_OPSET``
    to the installed onnx's; default ``DEFAULT_OPSET``). Shapes are the traced ones, but for
    ``dynamic_axes`` (``{name: {axis: "dim name"}}`` or ``{name: [axis, ...]}``, inputs and
    outputs by name, as PyTorch's): those dims are traced again as symbolic sizes and the
    sizes computed from them are computed from the input shapes in the exported graph; a graph
    that already has symbolic dims (``optimize``'s) exports them as dynamic axes unasked. An op
    with no rule (or none for dynamic sizes) raises ``ExportError`` naming it.
    ``external_data``: write the initializers (those over 1 KiB) to ``<path>.data`` beside the
    model, as ONNX external data; done anyway when they exceed ``EXTERNAL_DATA_BYTES`` (2 GiB,
    protobuf's limit). The returned model then refers to that file.

    >>> import os, tempfile, fusejit, fusejit.nn as nn
    >>> model = nn.Sequential(nn.Linear(4, 3), nn.ReLU())
    >>> path = os.path.join(tempfile.mkdtemp(), "m.onnx")
    >>> proto = fusejit.onnx.export(model, path, fusejit.randn(2, 4))
    >>> [n.op_type for n in proto.graph.node]
    ['Transpose', 'MatMul', 'Reshape', 'Add', 'Less', 'Where', 'Identity']
    """
    try:
        import onnx
    except ImportError as e:
        raise ImportError("fusejit.onnx.export needs the onnx package: pip install onnx") from e
    latest = onnx.defs.onnx_opset_version()
    opset = DEFAULT_OPSET if opset is None else int(opset)
    opset = min(opset, latest) if opset == DEFAULT_OPSET else opset
    if not MIN_OPSET <= opset <= latest:
        raise ValueError(f"fusejit.onnx.export: opset {opset} is outside {MIN_OPSET}..{latest}")
    g = _graph_of(obj, example_inputs)
    h = onnx.helper
    in_names, names = [], list(input_names or [])
    for i, v in enumerate(g.inputs):
        name = names[i] if i < len(names) else (v.hint if v.hint.isidentifier() else f"input_{i}")
        in_names.append(f"input_{i}" if name in in_names else name)
    out_names = list(output_names or [])
    out_names += [f"output_{i}" for i in range(len(out_names), len(g.outputs))]
    if dynamic_axes or g.notes.get("symbols") or g.notes.get("data_symbols"):
        check_keys(dynamic_axes, in_names, out_names)
        axes = named_axes(dynamic_axes, in_names)
        g, dim_names = symbolic_graph(obj, example_inputs, g, axes)
        b = SymbolicBuilder(onnx, opset, dim_names)
    else:
        b = Builder(onnx, opset)
    env: dict = {}
    inputs = []
    for name, v in zip(in_names, g.inputs):
        env[v] = name
        b.dtypes[name] = v.type.dtype
        d = v.type.dtype  # (complex: a real tensor with a last dim of 2, as view_as_real's)
        shape = b.shape(d, value_shape(b, v.type.shape))
        inputs.append(h.make_tensor_value_info(name, b.onnx_type(d), shape))
    for symbol, i, dim in g.notes.get("symbols", ()):
        b.bind(symbol, in_names[i], dim)
    for v, t in zip(g.block.params[g.n_inputs :], g.captured):
        name = v.hint if v.hint and v.hint not in b.dtypes else b.fresh("weight")
        env[v] = b.initializer(name, _numpy(t), v.type.dtype)
    _emit(b, g, env)
    outputs = []
    out_axes = named_axes(dynamic_axes, out_names)
    for i, r in enumerate(g.outputs):
        name = out_names[i]
        if isinstance(r, Const):
            d = dt.result_type(r.value)
            src, shape = b.const(r.value, d), []
        else:
            d, src, shape = r.type.dtype, env[r], value_shape(b, r.type.shape)
        for axis, dim_name in out_axes.get(i, {}).items():
            if 0 <= axis < len(shape):
                shape[axis] = dim_name
        b.nodes.append(h.make_node("Identity", [src], [name]))
        outputs.append(h.make_tensor_value_info(name, b.onnx_type(d), b.shape(d, shape)))
    graph = h.make_graph(b.nodes, "fusejit", inputs, outputs, initializer=b.initializers)
    model = h.make_model(graph, opset_imports=[h.make_opsetid("", opset)], producer_name="fusejit")
    model.ir_version = min(model.ir_version, 10)  # (what onnxruntime 1.2x reads)
    _save(onnx, model, os.fspath(path), external_data, b.nbytes)
    return model
