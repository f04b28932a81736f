"""Readable forms of a graph: ``format_graph`` (the IR, one node a line) and ``format_code``
(equivalent Python source calling fusejit ops).

``Graph.__str__`` is ``format_graph``, so the graph module imports this one; graphs and blocks
are read here through their attributes, and imported for type hints only.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from fusejit.ir.control import BLOCK_LABELS
from fusejit.ir.values import Const

if TYPE_CHECKING:
    from fusejit.ir.graph import Block, Graph


class _Names:
    def __init__(self) -> None:
        self.names: dict = {}

    def __call__(self, v) -> str:
        if isinstance(v, Const):
            return repr(v.value)
        if v not in self.names:
            self.names[v] = (v.hint if v.hint and v.hint not in self.names.values() else
                             str(len(self.names)))  # fmt: skip
        return "%" + self.names[v]


def _fmt_attr(k, v) -> str:
    if hasattr(v, "name") and hasattr(v, "np"):
        return f"{k}={v.name}"
    return f"{k}={v!r}"


def _format_block(block: Block, name, indent: str, lines: list, keys=None) -> None:
    for n in block.nodes:
        outs = ", ".join(f"{name(o)} : {o.type}" for o in n.outputs)
        args = ", ".join(name(v) for v in n.inputs)
        attrs = [_fmt_attr(k, v) for k, v in n.attrs if k not in ("body",)]
        if keys and id(n) in keys:  # the kernel's cache key, as explain's region list has it
            key, region = keys[id(n)]
            attrs = [f"region={region}", f"kernel={key}"] + [
                a for a in attrs if not a.startswith("kernel_key=")
            ]
        attr_s = f"[{', '.join(attrs)}]" if attrs else ""
        lines.append(f"{indent}{outs} = {n.op}{attr_s}({args})" if outs else
                     f"{indent}{n.op}{attr_s}({args})")  # fmt: skip
        if n.op in BLOCK_LABELS:  # control flow: each block under its label, with parameters
            for label, b in zip(BLOCK_LABELS[n.op], n.blocks):
                ps = ", ".join(f"{name(p)} : {p.type}" for p in b.params)
                lines.append(f"{indent}  {label}({ps}):")
                _format_block(b, name, indent + "    ", lines, keys)
                lines.append(f"{indent}    -> ({', '.join(name(v) for v in b.results)})")
            continue
        for b in n.blocks:
            _format_block(b, name, indent + "    ", lines, keys)
            if n.op != "fused":
                lines.append(f"{indent}    -> ({', '.join(name(v) for v in b.results)})")


def format_graph(g: Graph, kernel_keys: dict | None = None) -> str:
    """The graph, one node a line; captured tensors show their names (a module's parameters
    by their path). ``kernel_keys`` (id(fused node) -> (kernel cache key, region number);
    by default what a ``Plan`` of the graph noted) shows each fused node's kernel by the key
    ``explain`` lists it under."""
    name = _Names()
    params = []
    for i, p in enumerate(g.block.params):
        kind = "" if i < g.n_inputs else " (captured)"
        params.append(f"{name(p)} : {p.type}{kind}")
    if len(params) <= 4:
        lines = ["graph(" + ", ".join(params) + "):"]
    else:  # a model's parameters: one a line
        lines = ["graph(" + params[0] + ","]
        lines += [f"      {p}," for p in params[1:-1]] + [f"      {params[-1]}):"]
    if kernel_keys is None:  # a plan built for the graph left them in its notes
        kernel_keys = g.notes.get("kernel_keys")
    _format_block(g.block, name, "  ", lines, kernel_keys)
    lines.append("  return (" + ", ".join(name(v) for v in g.block.results) + ")")
    return "\n".join(lines)


def format_code(g: Graph, fname: str = "forward") -> str:
    """Python source that computes the same results with eager fusejit calls (control flow
    as Python ``if`` / ``while``)."""
    names: dict = {}

    def nm(v):
        if isinstance(v, Const):
            return _py_attr(v.value)
        if v not in names:
            names[v] = f"v{len(names)}"
        return names[v]

    params = [nm(p) for p in g.block.params[: g.n_inputs]]
    keys = g.notes.get("kernel_keys") or {}
    lines = [f"def {fname}({', '.join(params)}):"]
    for i, p in enumerate(g.block.params[g.n_inputs :]):
        lines.append(f"    {nm(p)} = captured[{i}]  # {p.type}")

    def assign(indent, targets, values):
        if targets:
            lines.append(f"{indent}{', '.join(nm(t) for t in targets)}, = "
                         f"{', '.join(nm(v) for v in values)},")  # fmt: skip

    def emit(block: Block, indent: str):
        for n in block.nodes:
            if n.op == "fused":
                key = keys.get(id(n), (n.attr("kernel_key", ""), None))[0]
                lines.append(f"{indent}# fused region {key}")
                emit(n.blocks[0], indent)
                continue
            if n.op == "if":
                lines.append(f"{indent}if bool({nm(n.inputs[0])}):")
                for k, b in enumerate(n.blocks):
                    if k:
                        lines.append(f"{indent}else:")
                    assign(indent + "    ", b.params, n.inputs[1:])
                    emit(b, indent + "    ")
                    assign(indent + "    ", n.outputs, b.results)
                    lines.append(f"{indent}    pass")
                continue
            if n.op == "loop":
                k = n.attr("n_carried")
                body = n.blocks[0]
                it, go = f"i{len(names)}", f"go{len(names)}"
                lines.append(f"{indent}{it}, {go} = 0, bool({nm(n.inputs[1])})")
                assign(indent, n.outputs, n.inputs[2 : 2 + k])
                trip = nm(n.inputs[0])
                lines.append(f"{indent}while {go} and ({trip} < 0 or {it} < {trip}):")
                inner = indent + "    "
                lines.append(f"{inner}{nm(body.params[0])} = fusejit.tensor({it})")
                assign(inner, body.params[1:], list(n.outputs) + list(n.inputs[2 + k :]))
                emit(body, inner)
                lines.append(f"{inner}{go} = bool({nm(body.results[0])})")
                assign(inner, n.outputs, body.results[1:])
                lines.append(f"{inner}{it} += 1")
                continue
            if n.op == "select":
                x, i = (nm(v) for v in n.inputs)
                sel = f"fusejit.jit.control.select({x}, {i}, dim={n.attr('dim')})"
                lines.append(f"{indent}{nm(n.outputs[0])} = {sel}")
                continue
            if n.op == "update":
                x, i, v = (nm(v) for v in n.inputs)
                upd = f"fusejit.jit.control.update({x}, {i}, {v}, dim={n.attr('dim')})"
                lines.append(f"{indent}{nm(n.outputs[0])} = {upd}")
                continue
            if n.op == "assert":
                a = n.attr_dict
                args = ", ".join(nm(v) for v in n.inputs[1:])
                lines.append(f"{indent}fusejit.jit.control.check_assert({nm(n.inputs[0])}, "
                             f"{a['kinds']!r}, [{args}], {a.get('fmts')!r}, "
                             f"{a.get('has_msg', False)!r})")  # fmt: skip
                continue
            if n.op == "print" and n.attr("fmts"):
                a = n.attr_dict
                args = ", ".join(nm(v) for v in n.inputs)
                lines.append(f"{indent}print(fusejit.jit.control.format_print({a['kinds']!r}, "
                             f"[{args}], {a.get('sep', ' ')!r}, '', {a['fmts']!r}), "
                             f"end={a.get('end', chr(10))!r})")  # fmt: skip
                continue
            if n.op == "print":
                a = n.attr_dict
                args = ", ".join(nm(v) for v in n.inputs)
                lines.append(f"{indent}print({args}, sep={a.get('sep', ' ')!r}, "
                             f"end={a.get('end', chr(10))!r})")  # fmt: skip
                continue
            outs = ", ".join(nm(o) for o in n.outputs)
            args = [nm(v) for v in n.inputs]
            args += [f"{k}={_py_attr(v)}" for k, v in n.attrs]
            lines.append(f"{indent}{outs} = fusejit.eager.call({n.op!r}, {', '.join(args)})")

    emit(g.block, "    ")
    res = ", ".join(nm(v) for v in g.block.results)
    lines.append(f"    return ({res},)" if len(g.block.results) == 1 else f"    return ({res})")
    return "\n".join(lines)


def _py_attr(v) -> str:
    if hasattr(v, "name") and hasattr(v, "np"):
        return f"fusejit.{v.name}"
    if isinstance(v, np.generic):  # a numpy scalar: as the Python scalar of its kind
        v = v.item()
    if isinstance(v, float) and not math.isfinite(v):  # repr gives nan / inf: not Python
        return f"float({repr(v)!r})"
    return repr(v)


__all__ = ["format_graph", "format_code"]
