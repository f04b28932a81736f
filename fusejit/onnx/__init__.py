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
from fusejit.onnx.importer.loader import OnnxModule, load
from fusejit.onnx.rules import RULES

__all__ = ["export", "ExportError", "RULES", "DEFAULT_OPSET", "MIN_OPSET", "load", "OnnxModule"]

# opsets the rules are written for: 17 (LayerNormalization's, kept as the older one) up to the
# latest that onnxruntime 1.2x runs
MIN_OPSET = 17
DEFAULT_OPSET = 21


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
    line = node.attr("line")
    where = f" (line {line})" if line is not None else ""
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
        rule = RULES.get(node.op)
        if rule is None:
            raise ExportError(
                f"fusejit.onnx.export: op {node.op!r} has no ONNX export rule: {_node_text(node)}"
            )
        args = [v if isinstance(v, Const) else env[v] for v in node.inputs]
        try:
            outs = rule(b, node, args)
        except ExportError as e:
            raise ExportError(f"fusejit.onnx.export: {e}: {_node_text(node)}") from None
        for v, name in zip(node.outputs, outs):
            if b.dtypes[name] is not v.type.dtype:
                raise AssertionError(f"export rule of {node.op} gave {b.dtypes[name].name}")
            env[v] = name


def export(
    obj,
    path: str | os.PathLike,
    example_inputs=None,
    *,
    opset: int | None = None,
    input_names: list[str] | None = None,
    output_names: list[str] | None = None,
    dynamic_axes: dict | None = None,
):
    """Write ``obj`` as an ONNX model at ``path`` and return the ``onnx.ModelProto``.

    ``obj`` is a traced, scripted, optimized or loaded function (its latest signature; scripted
    control flow has no rule yet), or a module or function, traced here on ``example_inputs``
    (a tensor or a tuple). ``opset``: the ONNX opset (``MIN_OPSET`` to the
    installed onnx's; default ``DEFAULT_OPSET``). Shapes are the traced ones (``dynamic_axes``
    is not supported yet). An op with no rule raises ``ExportError`` naming it.

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
    if dynamic_axes:
        raise NotImplementedError("fusejit.onnx.export: dynamic_axes is not supported yet")
    latest = onnx.defs.onnx_opset_version()
    opset = DEFAULT_OPSET if opset is None else int(opset)
    opset = min(opset, latest) if opset == DEFAULT_OPSET else opset
    if not MIN_OPSET <= opset <= latest:
        raise ValueError(f"fusejit.onnx.export: opset {opset} is outside {MIN_OPSET}..{latest}")
    g = _graph_of(obj, example_inputs)
    for d in (v.type.dtype for v in g.block.params):
        if d.kind == "c":
            raise ExportError(f"fusejit.onnx.export: {d.name} tensors have no ONNX rule yet")
    b = Builder(onnx, opset)
    h = onnx.helper
    env: dict = {}
    inputs = []
    names = list(input_names or [])
    for i, v in enumerate(g.inputs):
        name = names[i] if i < len(names) else (v.hint if v.hint.isidentifier() else f"input_{i}")
        if name in b.dtypes:
            name = f"input_{i}"
        env[v] = name
        b.dtypes[name] = v.type.dtype
        inputs.append(h.make_tensor_value_info(name, b.onnx_type(v.type.dtype), v.type.shape))
    for v, t in zip(g.block.params[g.n_inputs :], g.captured):
        name = v.hint if v.hint and v.hint not in b.dtypes else b.fresh("weight")
        env[v] = b.initializer(name, _numpy(t), v.type.dtype)
    _emit(b, g, env)
    outputs = []
    names = list(output_names or [])
    for i, r in enumerate(g.outputs):
        name = names[i] if i < len(names) else f"output_{i}"
        if isinstance(r, Const):
            d = dt.result_type(r.value)
            src, shape = b.const(r.value, d), ()
        else:
            d, src, shape = r.type.dtype, env[r], r.type.shape
        b.nodes.append(h.make_node("Identity", [src], [name]))
        outputs.append(h.make_tensor_value_info(name, b.onnx_type(d), shape))
    graph = h.make_graph(b.nodes, "fusejit", inputs, outputs, initializer=b.initializers)
    model = h.make_model(graph, opset_imports=[h.make_opsetid("", opset)], producer_name="fusejit")
    model.ir_version = min(model.ir_version, 10)  # (what onnxruntime 1.2x reads)
    onnx.checker.check_model(model, full_check=True)
    onnx.save(model, os.fspath(path))
    return model
