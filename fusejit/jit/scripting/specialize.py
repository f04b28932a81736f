"""Compiling one specialization of a scripted function: the structure (spec) of a call's
arguments, the graph inputs made from them, the body compiled by ``FunctionCompiler``, the
output structure and ``Compiled`` (graph, optimized graph and plan). Also inlining a scripted
callee into its caller's graph, and splicing a graph into a tracer."""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

import numpy as np

from fusejit.base import dtypes as dt
from fusejit.base.device import Device, as_device
from fusejit.eager import recording
from fusejit.eager.creation import zeros
from fusejit.eager.tensor import Tensor, tensor
from fusejit.ir.graph import Block, Graph, TensorType, Value
from fusejit.ir.verify import verify
from fusejit.jit import tracer as tr
from fusejit.jit.api import _target_of, optimize_graph
from fusejit.jit.runtime import Plan

# (decorator imports this module: see the note in calls.py)
from fusejit.jit.scripting import decorator
from fusejit.jit.scripting.compiler import Compiler, FunctionCompiler
from fusejit.jit.scripting.errors import ScriptError
from fusejit.jit.scripting.values import _SCALAR_DTYPE, Dyn, _kind_of, _wrap_lists
from fusejit.nn import Module

if TYPE_CHECKING:
    from fusejit.jit.scripting.decorator import ScriptFunction


class AlwaysRaises(Exception):
    """An inlined callee always fails an assert: the statement calling it ends the block."""


class Compiled:
    """One specialization: the graph as compiled, the optimized graph and its plan
    (``always_raises``: every call fails an assert known to fail when compiling)."""

    always_raises = False

    def __init__(self, raw: Graph, in_spec, out_spec, name: str) -> None:
        verify(raw)
        self.raw_graph = raw
        self.in_spec = in_spec
        self.out_spec = out_spec
        self.name = name
        self.graph = optimize_graph(raw, _target_of(raw))
        self.plan = Plan(self.graph)


def _scalar_input(v, kind, device) -> Tensor:
    d = _SCALAR_DTYPE[kind]
    if getattr(device, "type", "cpu") == "cpu":
        return Tensor._wrap(np.asarray(v, d.np), d, device)
    return tensor(v, dtype=d, device=device)


def _device_of_args(flat) -> Device:
    for v in flat:
        if isinstance(v, Tensor):
            return v.device
    return as_device("cpu")


def compile_function(sf: ScriptFunction, self_obj, spec, flat, stack=()) -> Compiled:
    """Compile ``sf`` for the argument structure ``spec`` (with example leaves ``flat``)."""
    tracer = tr.Tracer()
    dev = _device_of_args(flat)
    cc = Compiler(tracer, dev, stack + (sf,))
    with tr._trace_lock:
        with recording.recording(tracer), np.errstate(all="ignore"):
            args = []
            it = iter(flat)
            names = sf.param_names[1:] if sf.is_method else sf.param_names
            for leaf_spec, name in zip(spec, names):
                args.append(_make_inputs(leaf_spec, it, tracer, cc, name))
            result = _run_body(cc, sf, self_obj, args)
    out_flat: list = []
    out_spec = _out_spec(result, out_flat, sf)
    results = [cc.ref(v) for v in out_flat]
    n_inputs = len(tracer.params)
    # captured tensors only a discarded compile attempt read are dropped
    used = _used_values(tracer.nodes) | {v for v in results if isinstance(v, Value)}
    captured = [(v, t) for v, t in tracer.captured if v in used]
    params = tracer.params + [v for v, _ in captured]
    graph = Graph(Block(params, tracer.nodes, results), n_inputs, [t for _, t in captured])
    c = Compiled(graph, spec, out_spec, sf.__name__)
    c.always_raises = getattr(cc, "always_raises", False)
    return c


def _used_values(nodes) -> set:
    out = set()
    for n in nodes:
        out.update(v for v in n.inputs if isinstance(v, Value))
    return out


def _make_inputs(spec, it, tracer, cc, name):
    tag = spec[0]
    if tag == "T":
        t = next(it)
        if not isinstance(t, Tensor):
            raise AssertionError("spec / value mismatch")
        ex = Tensor._wrap(t._data, t._dtype, t._device)
        tracer.add_input(ex, name)
        return ex
    if tag == "S":
        v = next(it)
        if isinstance(v, Dyn):
            v = 0
        ex = _scalar_input(v, spec[1], cc.dev)
        tracer.add_input(ex, name)
        return Dyn(ex, spec[1])
    if tag == "C":
        return spec[1]
    items = [_make_inputs(s, it, tracer, cc, f"{name}{i}") for i, s in enumerate(spec[1])]
    return tuple(items) if tag == "tuple" else items


def _run_body(cc: Compiler, sf: ScriptFunction, self_obj, args):
    env = {}
    names = sf.param_names
    if sf.is_method:
        env[names[0]] = self_obj
        names = names[1:]
    defaults = sf.defaults
    if len(args) > len(names):
        raise sf.src.error(sf.src.tree, f"{sf.__name__}() takes {len(names)} arguments, "
                           f"got {len(args)}")  # fmt: skip
    for k, name in enumerate(names):
        if k < len(args):
            env[name] = args[k]
        elif name in defaults:
            env[name] = defaults[name]
        else:
            raise sf.src.error(sf.src.tree, f"{sf.__name__}() missing argument `{name}`")
    fc = FunctionCompiler(cc, sf.src, env, self_obj)
    for a in sf.src.tree.args.args:
        if a.annotation is not None and a.arg in env and env[a.arg] is not self_obj:
            env[a.arg] = fc.annotated(env[a.arg], a.annotation, a)
        if a.arg in env:
            fc.declared[a.arg] = (_kind_of(env[a.arg]), sf.src.start)
    out = fc.run()
    cc.always_raises = fc.env.get("$raise") is True
    return out


def _out_spec(v, out: list, sf):
    if isinstance(v, Tensor):
        out.append(v)
        return "T"
    if isinstance(v, Dyn):
        out.append(v)
        return ("S", v.kind)
    if isinstance(v, (tuple, list)):
        return (type(v).__name__, tuple(_out_spec(x, out, sf) for x in v))
    if isinstance(v, (bool, int, float, str, type(None))):
        return ("const", v)
    raise ScriptError(f"{sf.__name__} returns a {type(v).__name__}, which a scripted function "
                      "cannot return", sf.src.filename, sf.src.start, 1, "",
                      "tensors, numbers and tuples / lists of them")  # fmt: skip


def unflatten_out(spec, it):
    if spec == "T":
        return next(it)
    tag = spec[0]
    if tag == "S":
        t = next(it)
        return {"int": int, "float": float, "bool": bool}[spec[1]](t.item())
    if tag == "const":
        return spec[1]
    items = [unflatten_out(s, it) for s in spec[1]]
    return tuple(items) if tag == "tuple" else items


def inline_script(cc: Compiler, sf, args, node, fc) -> object:
    """Compile the scripted callee for these arguments and copy its graph into the current
    block; constants stay constants in the callee (it is specialized on them)."""
    if isinstance(sf, decorator.BoundScript):
        sfn, self_obj = sf.sf, sf.obj
    else:
        sfn, self_obj = sf, None
    if sfn in cc.stack:
        raise fc.err(node, f"recursive call of {sfn.__name__} is not supported",
                     "a loop")  # fmt: skip
    spec, flat = _specialize(args, constants=True)
    compiled = sfn.specialization(self_obj, spec, flat, cc.stack)
    g = compiled.raw_graph
    vals = []
    for v in flat:
        if isinstance(v, (Tensor, Dyn)):
            vals.append(cc.ref(v))
    outs = splice(cc.tr, g, vals)
    if compiled.always_raises:  # an assert that always fails: the caller's block ends here
        raise AlwaysRaises
    return unflatten_sym(compiled.out_spec, iter(outs), fc)


def splice(tracer, g: Graph, input_refs: list) -> list:
    """Copy ``g``'s top-level nodes into ``tracer``'s current node list, its inputs replaced
    by ``input_refs`` and its captured tensors captured again; returns the result values."""
    m = dict(zip(g.inputs, input_refs))
    for p, t in zip(g.block.params[g.n_inputs :], g.captured):
        m[p] = tracer.value_of(t)
    for n in g.block.nodes:
        if any(isinstance(v, Value) and v in m for v in n.inputs):
            n = replace(n, inputs=tuple(m.get(v, v) if isinstance(v, Value) else v
                                        for v in n.inputs))  # fmt: skip
        tracer.nodes.append(n)
    return [m.get(v, v) for v in g.block.results]


def unflatten_sym(spec, it, fc):
    """Symbolic values (fresh example tensors) for a callee's outputs."""
    if spec == "T":
        v = next(it)
        t = _example(v.type)
        fc.cc.bind(t, v)
        return t
    tag = spec[0]
    if tag == "S":
        v = next(it)
        t = _example(v.type)
        fc.cc.bind(t, v)
        return Dyn(t, spec[1])
    if tag == "const":
        return spec[1]
    items = [unflatten_sym(s, it, fc) for s in spec[1]]
    return tuple(items) if tag == "tuple" else _wrap_lists(fc, items)


def _example(t: TensorType) -> Tensor:
    if str(t.device) == "cpu":
        return Tensor._wrap(np.zeros(t.shape, t.dtype.np), t.dtype, t.device)
    return zeros(*t.shape, dtype=t.dtype, device=t.device)


def _specialize(args, constants: bool):
    """(spec, flat) of a call's arguments. With ``constants`` Python scalars stay constants
    (a call from scripted code); otherwise they are run-time inputs (a call from Python)."""
    flat: list = []
    spec = []
    for a in args:
        spec.append(_spec_arg(a, flat, constants))
    return tuple(spec), flat


def _spec_arg(v, flat, constants):
    if isinstance(v, Tensor):
        flat.append(v)
        return ("T", v.dtype, tuple(v.shape), v.device)
    if isinstance(v, Dyn):
        flat.append(v)
        return ("S", v.kind)
    if isinstance(v, (bool, int, float, np.integer, np.floating)):
        if constants:
            return ("C", v)
        flat.append(v)
        return ("S", _kind_of(v))
    if isinstance(v, (tuple, list)):
        return (type(v).__name__, tuple(_spec_arg(x, flat, constants) for x in v))
    if isinstance(v, (str, type(None), dt.DType, Device)):
        return ("C", v)
    if isinstance(v, Module):
        return ("C", v)
    raise TypeError(
        f"a {type(v).__name__} argument is not supported by fusejit.script "
        "(tensors, numbers, strings, None and tuples / lists of them are)"
    )
