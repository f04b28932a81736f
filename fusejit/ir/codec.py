"""The JSON form of graphs and of the values in their attributes (the archive's ``graphs/``).

A graph is ``{"n_inputs": k, "values": [{"dtype", "shape", "device", "hint"}],
"captured": [tensor index], "block": B}`` with ``B = {"params": [value ids], "nodes": [{"op",
"inputs": [{"v": id} | {"c": x}], "attrs": {name: x}, "outputs": [ids], "blocks": [B]}],
"results": [{"v": id} | {"c": x}]}``. Values ``x`` are JSON with tagged forms for what JSON
lacks: ``{"tuple": [...]}``, ``{"float": "nan" | "inf" | "-inf"}``, ``{"complex": [re, im]}``
(a Python complex, its parts floats in these forms), ``{"dtype": name}``,
``{"device": "cpu" | "cuda:N"}``, ``{"tensor": j}`` (a tensor in the caller's table, e.g. a
constant node's value), ``{"sym": ...}`` (a symbolic size). A graph with dynamic dims also
holds ``"atoms"`` and ``"notes"`` (``fusejit/ir/sizes_codec.py``): stored, it serves every
size it served.

Tensors belong to the caller (the archive keeps them as ``.npy`` members): encoding asks
``tensor_index`` for a tensor's place in the caller's table, decoding is given the table.
Decoding trusts nothing: every problem raises ``CodecError`` naming where (``ctx``) and what,
and the graph it returns has passed the verifier and each op's own checks.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence

import numpy as np

from fusejit.base import dtypes as dt
from fusejit.base.device import Device, as_device
from fusejit.base.errors import FusejitError
from fusejit.base.symbolic import is_symbolic
from fusejit.ir import sizes_codec as sz
from fusejit.ir.graph import Block, Const, Graph, Node, TensorType, Value, freeze_attrs
from fusejit.ir.typecheck import check_types
from fusejit.ir.verify import JIT_OPS, VerifyError, verify
from fusejit.ops.registry import OPS, call_problem

# what a tagged device value may name (checked before the device is looked up)
DEVICE_NAME = re.compile(r"cpu|cuda(:[0-9]{1,3})?")

# a tensor's index in the caller's table, or None for an object that is not a tensor
TensorIndex = Callable[[object], int | None]
# the device a stored name (and its context, for errors) stands for on this machine
DeviceOf = Callable[[str, str], Device]


class CodecError(FusejitError, ValueError):
    """A graph or value whose JSON form is malformed, or a value that has none; the message
    names the problem."""


# ---- values <-> JSON ------------------------------------------------------------------------
def encode_value(x, tensor_index: TensorIndex | None = None):
    """The JSON form of an attribute or spec value ``x``; tensors only with ``tensor_index``."""
    if x is None or isinstance(x, (bool, str)):
        return x
    if sz.is_sym(x):
        return sz.encode_sym(x)
    if isinstance(x, (int, np.integer)):
        return int(x)
    if isinstance(x, (float, np.floating)):
        x = float(x)
        return x if math.isfinite(x) else {"float": repr(x)}
    if isinstance(x, (complex, np.complexfloating)):
        x = complex(x)
        return {"complex": [encode_value(x.real), encode_value(x.imag)]}
    if isinstance(x, tuple):
        return {"tuple": [encode_value(v, tensor_index) for v in x]}
    if isinstance(x, list):
        return [encode_value(v, tensor_index) for v in x]
    if isinstance(x, dt.DType):
        return {"dtype": x.name}
    if isinstance(x, Device):
        return {"device": str(x)}
    j = None if tensor_index is None else tensor_index(x)
    if j is None:
        raise _unstorable(x)
    return {"tensor": j}


def _unstorable(x) -> CodecError:
    return CodecError(f"save: cannot store a {type(x).__name__} ({x!r:.60}) in an archive")


def device_here(name: str, ctx: str) -> Device:
    """The device ``name`` on this machine (the default ``DeviceOf``)."""
    try:
        return as_device(name)
    except FusejitError as e:
        raise CodecError(f"{ctx}: device {name} is not usable here ({e})") from None


def decode_value(x, ctx: str, tensors: Sequence | None = None, depth: int = 0,
                 device: DeviceOf = device_here, known: set | None = None):  # fmt: skip
    """The value whose JSON form is ``x``; ``{"tensor": j}`` only with ``tensors``, a
    symbolic size only with ``known`` (the names its polynomial may read)."""
    if depth > 64:
        raise CodecError(f"{ctx}: values nested too deeply")
    if x is None or isinstance(x, (bool, int, float, str)):
        return x
    if isinstance(x, list):
        return [decode_value(v, ctx, tensors, depth + 1, device, known) for v in x]
    if isinstance(x, dict) and len(x) == 1:
        ((k, v),) = x.items()
        if k == "tuple" and isinstance(v, list):
            return tuple(decode_value(i, ctx, tensors, depth + 1, device, known) for i in v)
        if k == "sym" and known is not None:
            try:
                return sz.decode_sym(v, known)
            except sz.SizeError as e:
                raise CodecError(f"{ctx}: {e}") from None
        if k == "float" and v in ("nan", "inf", "-inf"):
            return float(v)
        if k == "complex" and isinstance(v, list) and len(v) == 2:
            parts = [decode_value(p, ctx, None, depth + 1) for p in v]
            if all(isinstance(p, float) for p in parts):
                return complex(*parts)
        if k == "dtype" and isinstance(v, str) and v in dt._BY_NAME:
            return dt.as_dtype(v)
        if k == "device" and isinstance(v, str) and DEVICE_NAME.fullmatch(v):
            return device(v, ctx)
        if k == "tensor" and isinstance(v, int) and tensors is not None and 0 <= v < len(tensors):
            return tensors[v]
    raise CodecError(f"{ctx}: malformed value {str(x)[:80]}")


# ---- graphs <-> JSON ------------------------------------------------------------------------
def encode_graph(g: Graph, tensor_index: TensorIndex) -> dict:
    """The JSON form of ``g``; its captured tensors and tensor-valued attributes go to the
    caller's table through ``tensor_index``."""
    ids: dict = {}
    values = []
    # the captured tensors first, then those in attributes (constant nodes) as met: the order
    # of the table in archives written so far
    captured = [tensor_index(t) for t in g.captured]

    def vid(v):
        if v not in ids:
            ids[v] = len(values)
            t = v.type
            values.append({"dtype": t.dtype.name, "shape": [encode_value(s) for s in t.shape],
                           "device": str(t.device), "hint": v.hint})  # fmt: skip
        return ids[v]

    def operand(v):
        return {"v": vid(v)} if isinstance(v, Value) else {"c": encode_value(v.value)}

    def block(b: Block):
        return {
            "params": [vid(p) for p in b.params],
            "nodes": [{
                "op": n.op,
                "inputs": [operand(v) for v in n.inputs],
                "attrs": {k: encode_value(v, tensor_index) for k, v in n.attrs},
                "outputs": [vid(o) for o in n.outputs],
                "blocks": [block(sb) for sb in n.blocks],
            } for n in b.nodes],
            "results": [operand(v) for v in b.results],
        }  # fmt: skip

    body = block(g.block)
    out = {"n_inputs": g.n_inputs, "values": values, "captured": captured, "block": body}
    try:
        notes = sz.encode_notes(g.notes, encode_value)
    except sz.SizeError as e:
        raise CodecError(f"save: cannot store this graph: {e}") from None
    if notes is not None or any(is_symbolic(v.type.shape) for v in ids):
        if notes is None:  # (symbolic sizes without the notes that bind them)
            raise CodecError("save: cannot store a graph with symbolic sizes but no symbols")
        # (graphs with dynamic dims are straight-line: scripted ones are never symbolic)
        sizes = [v.type.shape for v in ids] + [n.attrs for n in g.block.nodes]
        out["atoms"] = sz.encode_atoms(sizes + sz.sizes_of(g.notes))
        out["notes"] = notes
    return out


def decode_graph(d, ctx: str, tensors: Sequence, device: DeviceOf = device_here,
                 max_bytes: int | None = None) -> Graph:  # fmt: skip
    """The graph whose JSON form is ``d``, reading captured tensors and constants from
    ``tensors``. Raises ``CodecError`` unless it is well formed, each node fits its op, its
    declared types are those its ops give, and (with ``max_bytes``) no value is larger."""
    _need(isinstance(d, dict), ctx, "graph is not an object")
    vals = d.get("values")
    _need(isinstance(vals, list) and len(vals) < 10_000_000, ctx, "bad value table")
    # dynamic dims: the names a size may read (the notes' symbols and the stored atoms)
    known = None
    notes = d.get("notes")
    if notes is not None:
        syms = notes.get("symbols") if isinstance(notes, dict) else None
        _need(isinstance(syms, list) and all(
            isinstance(s, list) and s and isinstance(s[0], str) and sz.SYMBOL.fullmatch(s[0])
            for s in syms), ctx, "bad symbols")  # fmt: skip
        try:
            known = sz.decode_atoms(d.get("atoms", []), {s[0] for s in syms})
        except sz.SizeError as e:
            raise CodecError(f"{ctx}: {e}") from None

    def size(s, i):
        if isinstance(s, int) and not isinstance(s, bool) and 0 <= s < 1 << 48:
            return s
        _need(known is not None and isinstance(s, dict) and set(s) == {"sym"}, ctx,
              f"value {i}: bad shape")  # fmt: skip
        return decode_value(s, ctx, known=known)

    values = []
    for i, v in enumerate(vals):
        _need(isinstance(v, dict), ctx, f"value {i} is not an object")
        name = v.get("dtype")
        shape = v.get("shape")
        _need(isinstance(name, str) and name in dt._BY_NAME, ctx, f"value {i}: unknown dtype")
        _need(isinstance(shape, list) and len(shape) <= 32, ctx, f"value {i}: bad shape")
        shape = [size(s, i) for s in shape]
        dev = v.get("device")
        _need(isinstance(dev, str), ctx, f"value {i}: bad device")
        hint = v.get("hint", "")
        _need(isinstance(hint, str) and len(hint) < 200, ctx, f"value {i}: bad hint")
        t = TensorType(dt.as_dtype(name), tuple(shape), device(dev, ctx))
        values.append(Value(t, hint))
    defined: set = set()

    def val(i):
        _need(isinstance(i, int) and not isinstance(i, bool) and 0 <= i < len(values), ctx,
              f"value id {i!r} out of range")  # fmt: skip
        return values[i]

    def operand(o):
        _need(isinstance(o, dict) and len(o) == 1, ctx, "bad operand")
        if "v" in o:
            return val(o["v"])
        c = decode_value(o.get("c"), ctx, device=device)
        _need(isinstance(c, (bool, int, float, complex, str, type(None))), ctx,
              "bad constant operand")  # fmt: skip
        return Const(c)

    def block(b, depth):
        _need(depth < 64, ctx, "blocks nested too deeply")
        _need(isinstance(b, dict), ctx, "block is not an object")
        params = [val(i) for i in _list(b.get("params"), ctx)]
        nodes = []
        for nd in _list(b.get("nodes"), ctx):
            _need(isinstance(nd, dict), ctx, "node is not an object")
            op = nd.get("op")
            _need(isinstance(op, str) and (op in OPS or op in JIT_OPS), ctx,
                  f"unknown op {str(op)[:40]!r}")  # fmt: skip
            _need(op != "fused", ctx, "fused nodes are not stored (fusion runs on load)")
            attrs = nd.get("attrs", {})
            _need(isinstance(attrs, dict), ctx, "attrs is not an object")
            a = {str(k): decode_value(v, ctx, tensors, device=device, known=known)
                 for k, v in attrs.items()}  # fmt: skip
            for v in a.values():
                _hashable(v, ctx)
            outs = [val(i) for i in _list(nd.get("outputs"), ctx)]
            for o in outs:
                _need(o not in defined, ctx, "a value is defined twice")
                defined.add(o)
            inputs = tuple(operand(o) for o in _list(nd.get("inputs"), ctx))
            if op in OPS:
                # what the op table tells of a call (operands, attributes); the types its
                # op gives are checked once the graph is whole (check_types), and what only
                # the data can tell (an index value out of range) fails when the graph runs
                n_tensors = sum(isinstance(v, Value) for v in inputs)
                problem = call_problem(OPS[op], n_tensors, len(inputs), a)
                _need(problem is None, ctx, f"node {len(nodes)} ({op}): {problem}")
            nodes.append(
                Node(
                    op,
                    inputs,
                    freeze_attrs(a),
                    tuple(outs),
                    tuple(block(sb, depth + 1) for sb in _list(nd.get("blocks"), ctx)),
                )
            )
        results = [operand(o) for o in _list(b.get("results"), ctx)]
        return Block(params, nodes, results)

    top = block(d.get("block"), 0)
    n_inputs = d.get("n_inputs")
    cap = [tensors[_index(i, len(tensors), ctx)] for i in _list(d.get("captured"), ctx)]
    _need(isinstance(n_inputs, int) and 0 <= n_inputs <= len(top.params), ctx, "bad n_inputs")
    _need(len(top.params) == n_inputs + len(cap), ctx, "params do not match inputs + captured")
    for p, t in zip(top.params[n_inputs:], cap):
        _need(p.type.dtype is t.dtype and p.type.shape == tuple(t.shape), ctx,
              "a captured tensor does not match its parameter's type")  # fmt: skip
    g = Graph(top, n_inputs, cap)
    if notes is not None:
        try:
            g.notes.update(sz.decode_notes(
                notes, lambda x: decode_value(x, ctx, device=device, known=known), n_inputs,
                [p.type.shape for p in top.params[:n_inputs]]))  # fmt: skip
        except sz.SizeError as e:
            raise CodecError(f"{ctx}: {e}") from None
        _need(not any(n.blocks for n in top.nodes), ctx, "dynamic dims with control flow")
        g.notes["shape_checks"] = sz.derive_checks(top.nodes)
    try:
        verify(g)
        check_types(g, max_bytes)
    except (VerifyError, KeyError, TypeError, ValueError, AttributeError) as e:
        raise CodecError(f"{ctx}: the graph is not well formed: {e}") from None
    return g


def _hashable(v, ctx: str) -> None:
    try:
        hash(v)
    except TypeError:
        raise CodecError(f"{ctx}: attribute values must be scalars or tuples") from None


def _need(cond, ctx: str, msg: str) -> None:
    if not cond:
        raise CodecError(f"{ctx}: {msg}")


def _list(x, ctx: str) -> list:
    _need(isinstance(x, list), ctx, "expected a list")
    return x


def _index(i, n: int, ctx: str) -> int:
    _need(isinstance(i, int) and not isinstance(i, bool) and 0 <= i < n, ctx,
          f"index {i!r} out of range")  # fmt: skip
    return i


__all__ = [
    "CodecError", "DEVICE_NAME", "encode_value", "decode_value", "device_here", "encode_graph",
    "decode_graph",
]  # fmt: skip
