"""Export of the scripted IR's control nodes (``fusejit/ir/control.py``) and of the JIT's own
nodes: ``if`` as ONNX ``If``, ``loop`` as ``Loop``, ``select`` as ``Gather``, ``update`` as
``ScatterElements``, ``arange`` (a range of symbolic sizes) as ``Range``, ``mask_positions``
(a bool mask's true entries, ``x[mask]``) as ``NonZero``.

A fusejit block is closed (it reads the enclosing block only through its parameters); an ONNX
subgraph reads the enclosing graph's values by name. So a block's capture parameters are bound
to the ONNX names of the node's captured operands, and only the loop's iteration number and
carried values are inputs of the ``Loop`` body. ``print`` and ``assert`` have no ONNX
counterpart: they are left out, with a warning.

``rule_of(b, node)`` is what ``_emit`` looks up a node's rule with: these rules, the dynamic-dim
forms of ``fusejit.onnx.dynamic`` where the node's sizes are symbolic, then ``RULES``.
"""

from __future__ import annotations

import warnings

import numpy as np

from fusejit.base import dtypes as dt
from fusejit.base.symbolic import is_symbolic
from fusejit.ir.graph import Const
from fusejit.onnx.builder import Builder, ExportError

_INT64_MAX = 2**63 - 1


def _emit_block(b: Builder, block, bound: list) -> list:
    """Emit ``block``'s nodes into ``b.nodes`` with its parameters bound to the ONNX names
    ``bound``; the ONNX names of its results (constants made for ``Const`` results)."""
    from fusejit.onnx import _emit  # (the package's; it calls back into this module)

    env = dict(zip(block.params, bound))
    _emit(b, block, env)
    names = []
    for r in block.results:
        if isinstance(r, Const):
            d = dt.bool_ if isinstance(r.value, bool) else dt.result_type(r.value)
            names.append(b.const(r.value, d))
        else:
            names.append(env[r])
    return names


def value_shape(b: Builder, shape) -> list:
    """A value info's shape: ints, a dynamic dim's name, None for an expression of them."""
    names = getattr(b, "dim_names", None)
    return [names(s) if names is not None and is_symbolic(s) else int(s) for s in shape]


def _subgraph(b: Builder, block, name: str, bound: list, inputs: list, results_as: list):
    """An ONNX graph of ``block``: ``inputs`` its value infos (the names ``bound`` gives the
    parameters that are graph inputs), ``results_as`` (dtype, shape) of each output; every
    output is a fresh ``Identity`` (a subgraph output must be made inside it)."""
    h = b.helper
    saved, b.nodes = b.nodes, []
    try:
        srcs = _emit_block(b, block, bound)
        outputs = []
        for src, (d, shape) in zip(srcs, results_as):
            src = b.cast(src, d)
            out = b.fresh(f"{name}_out")
            b.nodes.append(h.make_node("Identity", [src], [out]))
            b.dtypes[out] = d
            outputs.append(h.make_tensor_value_info(out, b.onnx_type(d), value_shape(b, shape)))
        return h.make_graph(b.nodes, b.fresh(name), inputs, outputs)
    finally:
        b.nodes = saved


def _scalar_bool(b: Builder, c) -> str:
    """A condition (a one-element tensor or a ``Const`` bool) as a bool scalar."""
    if isinstance(c, Const):
        return b.const(bool(c.value), dt.bool_)
    c = b.node("Reshape", [c, b.ints([])], b.dtypes[c])
    return b.cast(c, dt.bool_)


def if_rule(b: Builder, node, args) -> list:
    caps = args[1:]
    if not node.outputs:  # (only effects, which ONNX has not)
        return []
    if isinstance(args[0], Const):  # a branch known when compiling: its block, inline
        block = node.blocks[0 if args[0].value else 1]
        return _emit_block(b, block, caps)
    cond = _scalar_bool(b, args[0])
    results_as = [(o.type.dtype, o.type.shape) for o in node.outputs]
    branches = {
        f"{label}_branch": _subgraph(b, blk, f"if_{label}", caps, [], results_as)
        for label, blk in zip(("then", "else"), node.blocks)
    }
    outs = b.node("If", [cond], dt.bool_, n_out=len(node.outputs), **branches)
    outs = [outs] if isinstance(outs, str) else outs
    for o, v in zip(outs, node.outputs):
        b.dtypes[o] = v.type.dtype
    return outs


def loop_rule(b: Builder, node, args) -> list:
    h = b.helper
    k = node.attr("n_carried")
    if k == 0:  # (only effects, which ONNX has not)
        return []
    trip, cond, init, caps = args[0], args[1], args[2 : 2 + k], args[2 + k :]
    if isinstance(trip, Const):
        m = "" if int(trip.value) < 0 else b.const(int(trip.value), dt.int64)
    else:  # a negative trip count means no bound, as fusejit's loop
        neg = b.node("Less", [trip, b.const(0, dt.int64)], dt.bool_)
        m = b.node("Where", [neg, b.const(_INT64_MAX, dt.int64), trip], dt.int64)
    body = node.blocks[0]
    it, cond_in = b.fresh("iter"), b.fresh("cond_in")
    b.dtypes[it], b.dtypes[cond_in] = dt.int64, dt.bool_
    inputs = [
        h.make_tensor_value_info(it, b.onnx_type(dt.int64), []),
        h.make_tensor_value_info(cond_in, b.onnx_type(dt.bool_), []),
    ]
    carried = []
    for p in body.params[1 : 1 + k]:
        name = b.fresh("carried")
        b.dtypes[name] = p.type.dtype
        inputs.append(h.make_tensor_value_info(name, b.onnx_type(p.type.dtype),
                                               value_shape(b, p.type.shape)))  # fmt: skip
        carried.append(name)
    saved, b.nodes = b.nodes, []
    try:  # the body's condition result, a bool scalar, then the carried values
        g = _loop_body(b, body, [it, *carried, *caps], inputs, node)
    finally:
        b.nodes = saved
    outs = b.node("Loop", [m, _scalar_bool(b, cond), *init], dt.bool_, n_out=k, body=g)
    outs = [outs] if isinstance(outs, str) else outs
    for o, v in zip(outs, node.outputs):
        b.dtypes[o] = v.type.dtype
    return outs


def _loop_body(b: Builder, body, bound: list, inputs: list, node):
    h = b.helper
    srcs = _emit_block(b, body, bound)
    outputs = []
    for j, src in enumerate(srcs):
        if j == 0:
            c = body.results[0]
            src = _scalar_bool(b, c if isinstance(c, Const) else src)
            d, shape = dt.bool_, []
        else:
            t = node.outputs[j - 1].type
            d, shape = t.dtype, value_shape(b, t.shape)
        out = b.fresh("loop_out")
        b.nodes.append(h.make_node("Identity", [src], [out]))
        b.dtypes[out] = d
        outputs.append(h.make_tensor_value_info(out, b.onnx_type(d), shape))
    return h.make_graph(b.nodes, b.fresh("loop_body"), inputs, outputs)


def _index(b: Builder, i) -> str:
    """A 0-d int64 index (a tensor or a ``Const`` int)."""
    if isinstance(i, Const):
        return b.const(int(i.value), dt.int64)
    return b.cast(i, dt.int64)


def select_rule(b: Builder, node, args) -> list:
    x, i = args
    return [b.node("Gather", [x, _index(b, i)], b.dtypes[x], axis=node.attr("dim"))]


def update_rule(b: Builder, node, args) -> list:
    x, i, v = args
    d = node.attr("dim")
    rank = len(node.inputs[0].type.shape)
    row = b.node("Unsqueeze", [b.cast(v, b.dtypes[x]), b.ints([d])], b.dtypes[x])
    idx = b.node("Reshape", [_index(b, i), b.ints([1] * rank)], dt.int64)
    idx = b.node("Expand", [idx, b.node("Shape", [row], dt.int64)], dt.int64)
    return [b.node("ScatterElements", [x, idx, row], b.dtypes[x], axis=d)]


def effect_rule(b: Builder, node, args) -> list:
    warnings.warn(
        f"fusejit.onnx.export: ONNX has no {node.op} ({node.op} node"
        f"{'' if node.attr('line') is None else ' of line ' + str(node.attr('line'))}): "
        "left out of the exported model",
        stacklevel=4,
    )
    return []


def arange_rule(b: Builder, node, args) -> list:
    """``arange`` of symbolic sizes: ``Range`` of the sizes computed from the inputs' shapes."""
    out = node.outputs[0].type.dtype
    a = node.attr_dict
    if not all(isinstance(a[k], (int, np.integer)) for k in ("start", "end", "step")):
        raise ExportError("arange: only int bounds export")
    ends = [b.node("Reshape", [b.ints([a[k]]), b.ints([])], dt.int64)
            for k in ("start", "end", "step")]  # fmt: skip
    return [b.cast(b.node("Range", ends, dt.int64), out)]


def mask_positions_rule(b: Builder, node, args) -> list:
    """The flat positions of a 1-d bool mask's true entries (``x[mask]`` in a trace): their
    count, a size known only when the graph runs, is read from the result's ``Shape``."""
    nz = b.node("NonZero", [b.cast(args[0], dt.bool_)], dt.int64)
    pos = b.node("Reshape", [nz, b.ints([-1])], dt.int64)
    u = node.attr("size")
    symbols = getattr(b, "symbols", None)
    if symbols is not None and is_symbolic(u) and len(u.poly) == 1 and len(u.poly[0][0]) == 1:
        symbols[u.poly[0][0][0]] = b.node("Shape", [pos], dt.int64)
    return [pos]


CONTROL_RULES: dict = {
    "if": if_rule,
    "loop": loop_rule,
    "select": select_rule,
    "update": update_rule,
    "print": effect_rule,
    "assert": effect_rule,
    "arange": arange_rule,
    "mask_positions": mask_positions_rule,
}


def rule_of(b: Builder, node):
    """The export rule of ``node``, or None when it has none."""
    rule = CONTROL_RULES.get(node.op)
    if rule is not None:
        return rule
    from fusejit.onnx.dynamic import dynamic_rule_of
    from fusejit.onnx.rules import RULES

    if getattr(b, "dim_names", None) is not None:
        return dynamic_rule_of(node, RULES.get(node.op))
    return RULES.get(node.op)


__all__ = ["CONTROL_RULES", "rule_of", "value_shape"]
