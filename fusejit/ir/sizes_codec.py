"""The JSON form of symbolic sizes (``fusejit/base/symbolic.py``) and of the notes a graph with
dynamic dims carries (which input dims bind its symbols, the guards on them, the shapes to
re-check for new sizes), so that an archive of such a graph serves every size it served.

A size is an int, or ``{"sym": {"hint": h, "poly": [[[names], coefficient], ...]}}`` (a
polynomial over symbols ``s0``, ``s1``, ... and floor-division atoms). An atom
``"(s0 + 1)//2"`` is stored once, in the graph's ``"atoms"`` (``[[name, poly, divisor]]``,
each after those it reads), and decoding rebuilds it with the same arithmetic that made it,
refusing a name that arithmetic does not give. The notes are ``{"symbols": [[name, input,
dim]], "guards": [[size, op, expected, where]]}``; the shapes to re-check for new sizes are not
stored: the loader derives them from the graph, one check per node whose types hold a symbol
(``derive_checks``), so no declared type is trusted at a size it was not checked for. A graph
whose sizes depend on tensor values (``data_symbols``) has no stored form.
"""

from __future__ import annotations

import re

from fusejit.base.symbolic import _ATOMS, _OPS, Guard, SymInt, _mk, is_symbolic, sym_ints
from fusejit.ir.values import Value

SYMBOL = re.compile(r"s[0-9]{1,4}")
_MAX_TERMS = 64


class SizeError(ValueError):
    """A stored size or note that is malformed; the message says what."""


def is_sym(x) -> bool:
    return isinstance(x, SymInt)


def encode_sym(s: SymInt) -> dict:
    return {"sym": {"hint": int(s), "poly": [[list(m), int(c)] for m, c in s.poly]}}


def _atom_names(poly, out: dict) -> None:
    for m, _ in poly:
        for name in m:
            if name in _ATOMS and name not in out:
                operand, k = _ATOMS[name]
                _atom_names(operand, out)
                out[name] = (operand, k)


def encode_atoms(sizes) -> list:
    """The atoms the symbolic sizes in ``sizes`` (nested in tuples, lists and dicts) read, each
    after those its operand reads."""
    found: dict = {}
    for s in sym_ints(sizes):
        _atom_names(s.poly, found)
    return [[name, [[list(m), int(c)] for m, c in operand], k] for name, (operand, k) in
            found.items()]  # fmt: skip


def _poly(x, known: set) -> dict:
    if not isinstance(x, list) or len(x) > _MAX_TERMS:
        raise SizeError("a size's polynomial is not a list of terms")
    poly: dict = {}
    for term in x:
        if not (isinstance(term, list) and len(term) == 2 and isinstance(term[0], list)
                and type(term[1]) is int and abs(term[1]) < 1 << 62):  # fmt: skip
            raise SizeError("a size's term is not [names, coefficient]")
        names = term[0]
        if len(names) > 8 or not all(isinstance(n, str) and n in known for n in names):
            raise SizeError(f"a size names unknown symbols {str(names)[:60]}")
        m = tuple(sorted(names))
        poly[m] = poly.get(m, 0) + term[1]
    return poly


def decode_atoms(atoms, symbols: set) -> set:
    """Register the stored atoms (rebuilt by the floor division that names them); the names a
    size may read: ``symbols`` and these atoms."""
    known = set(symbols)
    if not isinstance(atoms, list) or len(atoms) > 256:
        raise SizeError("atoms is not a list")
    for a in atoms:
        if not (isinstance(a, list) and len(a) == 3 and isinstance(a[0], str)
                and type(a[2]) is int and 1 < a[2] < 1 << 32):  # fmt: skip
            raise SizeError("an atom is not [name, poly, divisor]")
        operand = _mk(_poly(a[1], known), 0)
        r = operand // a[2] if isinstance(operand, SymInt) else None
        if not isinstance(r, SymInt) or r.poly != (((a[0],), 1),):
            raise SizeError(f"atom {a[0][:60]!r} is not the floor division it names")
        known.add(a[0])
    return known


def decode_sym(x, known: set) -> SymInt | int:
    """The size whose stored form is ``x`` (``{"sym": ...}``'s value)."""
    if not (isinstance(x, dict) and set(x) == {"hint", "poly"} and type(x["hint"]) is int
            and 0 <= x["hint"] < 1 << 48):  # fmt: skip
        raise SizeError("a symbolic size is not {hint, poly}")
    return _mk(_poly(x["poly"], known), x["hint"])


def encode_notes(notes: dict, enc) -> dict | None:
    """The stored form of a graph's dynamic-dims notes (``enc`` encodes values), or None for
    a graph without symbols."""
    if notes.get("data_symbols"):
        raise SizeError("its sizes depend on tensor values (mask positions)")
    if not notes.get("symbols"):
        return None
    return {
        "symbols": [[s, i, d] for s, i, d in notes["symbols"]],
        "guards": [
            [enc(g.expr), g.op, bool(g.expected), str(g.where)[:200]]
            for g in notes.get("guards", ())
        ],  # fmt: skip
    }


def sizes_of(notes: dict) -> list:
    """Every size among the stored notes (for their atoms)."""
    return [g.expr for g in notes.get("guards", ())]


def derive_checks(nodes) -> tuple:
    """The shape checks of a loaded graph: (op, input shapes, attrs, output shapes) for each
    node whose types or attributes hold a symbol, in the runtime's form."""
    checks = []
    for n in nodes:
        shapes = tuple(v.type.shape for v in n.inputs if isinstance(v, Value))
        outs = tuple(o.type.shape for o in n.outputs)
        attrs = dict(n.attrs)
        if is_symbolic((shapes, outs, attrs)):
            checks.append((n.op, shapes, attrs, outs))
    return tuple(checks)


def decode_notes(d, dec, n_inputs: int, input_shapes: list) -> dict:
    """The notes whose stored form is ``d`` (``dec`` decodes values), checked against the
    graph's inputs (``input_shapes``); the shape checks are the caller's (``derive_checks``)."""
    if not isinstance(d, dict) or set(d) != {"symbols", "guards"}:
        raise SizeError("notes are not {symbols, guards}")
    symbols = []
    for s in d["symbols"] if isinstance(d["symbols"], list) else [None]:
        if not (isinstance(s, list) and len(s) == 3 and isinstance(s[0], str)
                and SYMBOL.fullmatch(s[0]) and type(s[1]) is int and 0 <= s[1] < n_inputs
                and type(s[2]) is int and 0 <= s[2] < len(input_shapes[s[1]])):  # fmt: skip
            raise SizeError("a symbol is not [name, input, dim] of the graph's inputs")
        dim = input_shapes[s[1]][s[2]]
        if not (isinstance(dim, SymInt) and dim.poly == (((s[0],), 1),)):
            raise SizeError(f"input {s[1]} dim {s[2]} is not symbol {s[0]}")
        symbols.append((s[0], s[1], s[2]))
    guards = []
    for g in d["guards"] if isinstance(d["guards"], list) else [None]:
        if not (isinstance(g, list) and len(g) == 4 and g[1] in _OPS and isinstance(g[2], bool)
                and isinstance(g[3], str)):  # fmt: skip
            raise SizeError("a guard is not [size, op, expected, where]")
        expr = dec(g[0])
        if not isinstance(expr, int):
            raise SizeError("a guard's size is not a size")
        guards.append(Guard(expr, g[1], g[2], g[3]))
    return {"symbols": tuple(symbols), "data_symbols": (), "guards": tuple(guards)}


__all__ = [
    "SizeError", "encode_sym", "decode_sym", "encode_atoms", "decode_atoms", "encode_notes",
    "decode_notes", "derive_checks", "sizes_of", "is_sym", "SYMBOL",
]  # fmt: skip
