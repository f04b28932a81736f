"""Readable forms of a graph: ``format_graph`` (the IR, one node a line) and ``format_code``
(equivalent Python source calling fusejit ops)."""

from __future__ import annotations

import math

import numpy as np

from .ir import Block, Const, Graph, Value


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


def _format_block(block: Block, name, indent: str, lines: list) -> None:
    for n in block.nodes:
        outs = ", ".join(f"{name(o)} : {o.type}" for o in n.outputs)
        args = ", ".join(name(v) for v in n.inputs)
        attrs = [_fmt_attr(k, v) for k, v in n.attrs if k not in ("body",)]
        attr_s = f"[{', '.join(attrs)}]" if attrs else ""
        lines.append(f"{indent}{outs} = {n.op}{attr_s}({args})")
        for b in n.blocks:
            _format_block(b, name, indent + "    ", lines)
            if n.op != "fused":
                lines.append(f"{indent}    -> ({', '.join(name(v) for v in b.results)})")


def format_graph(g: Graph) -> str:
    name = _Names()
    params = []
    for i, p in enumerate(g.block.params):
        kind = "" if i < g.n_inputs else " (captured)"
        params.append(f"{name(p)} : {p.type}{kind}")
    lines = ["graph(" + ", ".join(params) + "):"]
    _format_block(g.block, name, "  ", lines)
    lines.append("  return (" + ", ".join(name(v) for v in g.block.results) + ")")
    return "\n".join(lines)


def format_code(g: Graph, fname: str = "forward") -> str:
    """Python source that computes the same results with eager fusejit calls."""
    names: dict = {}

    def nm(v):
        if isinstance(v, Const):
            return _py_attr(v.value)
        if v not in names:
            names[v] = f"v{len(names)}"
        return names[v]

    params = [nm(p) for p in g.block.params[: g.n_inputs]]
    lines = [f"def {fname}({', '.join(params)}):"]
    for i, p in enumerate(g.block.params[g.n_inputs :]):
        lines.append(f"    {nm(p)} = captured[{i}]  # {p.type}")

    def emit(block: Block, indent: str):
        for n in block.nodes:
            if n.op == "fused":
                lines.append(f"{indent}# fused region {n.attr('kernel_key', '')}")
                emit(n.blocks[0], indent)
                continue
            outs = ", ".join(nm(o) for o in n.outputs)
            args = [nm(v) for v in n.inputs]
            args += [f"{k}={_py_attr(v)}" for k, v in n.attrs]
            lines.append(f"{indent}{outs} = fusejit.ops.call({n.op!r}, {', '.join(args)})")

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


__all__ = ["format_graph", "format_code", "Value"]
