"""The body of a fused *row* kernel, independent of the target, and how its work is scheduled.

A row region reduces over the ``k`` trailing dims of a full shape F: the rows are the leading
dims O = F[:-k] (R = prod(O) rows), a row holds the elements of I = F[-k:] (N = prod(I)). Every
value of the region lives in one of two spaces:

- *full*: one value per element of a row (shape F), computed inside a loop over the row;
- *row*: one value per row, a scalar inside the kernel. Its tensor shape is either O + (1,)*k
  (``keep``, what a keepdim reduction gives, which broadcasts back over the row) or O (``drop``).

Reductions (the op table's entries with ``Reduce`` facts: sum, mean, amax, amin) take a full
value to a row value; each target renders their identity, combine step and finalization from
those facts. A full value that reads the result of a reduction can only be computed once that
reduction is complete, so the work of a row is cut into *passes* over its elements: pass p
accumulates the reductions whose input needs the results of p earlier passes, and stores the
full outputs available by then. Between passes the row-space steps run on scalars. Softmax is
three passes (max; sum of exp; divide), layer norm three (mean; mean of squares; scale), a sum
of an elementwise expression one.

Kernel inputs are *ports*: an input tensor seen through one view (a tensor read both per
element and per row is two ports):

- ``full``: broadcast to F, read as an (R, N) array;
- ``inner``: constant over the rows (a weight of shape I), read as an (N,) array;
- ``keep`` / ``drop``: constant over a row, read as an (R,) array;
- ``scalar``: one value (every dim 1), read as a (1,) array.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field

from fusejit.codegen.expr import parse
from fusejit.ops.primitives import of_kind
from fusejit.ops.registry import OPS, Reduce, get_op

VIEWS = ("full", "inner", "keep", "drop", "scalar")


class PortBody:
    """What row and column regions share: a program over ``ports`` (input index, view, dtype
    name, ...) and ``steps``, with ``outputs`` (ref, form)."""

    ports: tuple
    steps: tuple
    outputs: tuple

    def key(self) -> str:
        return hashlib.sha256(repr(self).encode()).hexdigest()[:24]

    def out_dtypes(self) -> tuple:
        return tuple(ref_dtype(self, ref) for ref, _ in self.outputs)

    @property
    def n_inputs(self) -> int:
        return 1 + max((p[0] for p in self.ports), default=-1)


@dataclass(frozen=True)
class RowBody(PortBody):
    """A fused row region.

    ``ports``: (input index, view, dtype name) per port; refs ("in", i) name ports. ``steps``:
    ``Step``s (elementwise ops, or a reduction: an op of ``row_reductions()``, ``compute`` the
    accumulation dtype, ``out`` the result dtype); ``spaces[j]`` is "full" or "row".
    ``outputs``: (ref, form) with form "full", "keep" or "drop". ``strict_empty``: an empty row
    (N == 0) is an error, as eager amax/amin over an empty dim is; otherwise reductions of an
    empty row give their finalized identity (sum 0, mean nan, amax -inf, amin +inf).
    """

    k: int
    rank: int
    ports: tuple
    steps: tuple
    spaces: tuple
    outputs: tuple
    strict_empty: bool = False


def ref_dtype(body: PortBody, ref) -> str:
    if ref[0] == "in":
        return body.ports[ref[1]][2]
    if ref[0] == "t":
        return body.steps[ref[1]].out
    return ref[2]


def reduce_facts(op: str) -> Reduce | None:
    """How op ``op`` reduces a row (the op table's ``Reduce``), or None: not a row reduction."""
    entry = OPS.get(op)
    return None if entry is None else entry.reduce


def row_reductions() -> tuple:
    """The names of the ops that reduce in row kernels, in op-table order."""
    return tuple(name for name, op in OPS.items() if op.reduce is not None)


def is_reduction(step) -> bool:
    return reduce_facts(step.op) is not None


# ---- views of the inputs -----------------------------------------------------------------------
def full_view(shape: tuple, F: tuple, k: int) -> str:
    """The view of a tensor of ``shape`` read by a full-space op of a domain (F, k)."""
    pad = len(F) - len(shape)
    dims = [1] * pad + list(shape)
    lead = len(F) - k
    outer_ones = all(d == 1 for d in dims[:lead])
    inner_ones = all(d == 1 for d in dims[lead:])
    if outer_ones and inner_ones:
        return "scalar"
    if inner_ones:
        return "keep"
    return "inner" if outer_ones else "full"


def row_view(shape: tuple, form: str) -> str:
    """The view of a tensor of ``shape`` read by a row-space op whose result has ``form``."""
    return "scalar" if all(d == 1 for d in shape) else form


def domain_of(ports_shapes, views, rank: int, k: int) -> tuple:
    """The full shape F, from the port arrays' shapes (what a kernel launch does)."""
    aligned = []
    for shape, view in zip(ports_shapes, views):
        if view == "scalar":
            continue
        s = tuple(shape) + ((1,) * k if view == "drop" else ())
        aligned.append((1,) * (rank - len(s)) + s)
    F = [1] * rank
    for s in aligned:
        for d, n in enumerate(s):
            if n != 1:
                F[d] = n
    return tuple(F)


def port_array(xp, a, view: str, F: tuple, k: int):
    """Input array ``a`` in the 2-D / 1-D form its port is read as (a view where the strides
    allow; numpy/cupy copy otherwise, e.g. a tensor broadcast along some leading dims only)."""
    lead = len(F) - k
    rows, inner = F[:lead], F[lead:]
    R, N = math.prod(rows), math.prod(inner)
    if view == "full":
        return xp.broadcast_to(a, F).reshape(R, N)
    if view == "inner":
        return xp.broadcast_to(a, (1,) * lead + inner).reshape(N)
    if view == "keep":
        return xp.broadcast_to(a, rows + (1,) * k).reshape(R)
    if view == "drop":
        return xp.broadcast_to(a, rows).reshape(R)
    return a.reshape(1)


def port_shapes(view: str, F: tuple, k: int) -> tuple:
    """(shape a port's tensor is broadcast to, shape the kernel reads it as)."""
    lead = len(F) - k
    rows, inner = F[:lead], F[lead:]
    R, N = math.prod(rows), math.prod(inner)
    return {
        "full": (F, (R, N)),
        "inner": ((1,) * lead + inner, (N,)),
        "keep": (rows + (1,) * k, (R,)),
        "drop": (rows, (R,)),
        "scalar": (None, (1,)),
    }[view]


def launch_plan(shapes, views, rank: int, k: int, forms) -> tuple:
    """What a launch with inputs of ``shapes`` (one per port) needs, computed once per shapes:
    (F, R, N, per port (target shape or None when the tensor has it already, read shape), per
    output (tensor shape, kernel shape))."""
    F = domain_of(shapes, views, rank, k)
    lead = len(F) - k
    R, N = math.prod(F[:lead]), math.prod(F[lead:])
    ports = []
    for shape, view in zip(shapes, views):
        target, read = port_shapes(view, F, k)
        # a tensor that only lacks leading 1s of its target shape is reshaped, not broadcast
        same = target is None or _strip(shape) == _strip(target)
        ports.append((None if same else target, read))
    outs = [(out_shape(f, F, k), (R, N) if f == "full" else (R,)) for f in forms]
    return F, R, N, ports, outs


def _strip(shape) -> tuple:
    shape = tuple(shape)
    i = 0
    while i < len(shape) and shape[i] == 1:
        i += 1
    return shape[i:]


def out_shape(form: str, F: tuple, k: int) -> tuple:
    lead = len(F) - k
    if form == "full":
        return F
    return F[:lead] + ((1,) * k if form == "keep" else ())


# ---- scheduling ------------------------------------------------------------------------------
@dataclass
class Pass:
    """One loop over a row: the reductions it accumulates, the full outputs it stores (output
    indices), and the full steps it evaluates, in order."""

    reductions: list = field(default_factory=list)
    outputs: list = field(default_factory=list)
    steps: list = field(default_factory=list)


@dataclass
class Schedule:
    """``before[p]``: row steps to run before pass p (``before[len(passes)]``: after the last);
    ``level[j]`` of a full step: passes that must complete before it can be evaluated;
    ``online``: amax step -> (sum step, stable) accumulated together in the amax's pass."""

    passes: list
    before: list
    level: dict
    uses: dict  # full step -> passes evaluating it
    online: dict = field(default_factory=dict)


def _deps(body: RowBody, j: int):
    return [r[1] for r in body.steps[j].args if r[0] == "t"]


def online_pairs(body: RowBody) -> dict:
    """amax step -> (sum step, stable) for each softmax-like pair ``m = amax(f)``,
    ``s = sum(exp(f - m'))`` with m' = m, or (stable) m' = where(isfinite(m), m, 0): a row kernel
    may accumulate s together with m, rescaling as the maximum grows (online softmax)."""
    steps = body.steps
    out: dict = {}
    for js, s in enumerate(steps):
        if s.op != "sum" or s.args[0][0] != "t":
            continue
        e = s.args[0][1]
        if steps[e].op != "exp" or steps[e].args[0][0] != "t":
            continue
        d = steps[e].args[0][1]
        if steps[d].op != "sub" or steps[d].args[1][0] != "t":
            continue
        f, m = steps[d].args[0], steps[d].args[1][1]
        stable = False
        if steps[m].op == "where":
            c, a, z = steps[m].args
            if not (a[0] == "t" and c[0] == "t" and z[0] == "c" and z[1] == 0):
                continue
            if steps[c[1]].op != "isfinite" or steps[c[1]].args[0] != a:
                continue
            m, stable = a[1], True
        if steps[m].op != "amax" or steps[m].args[0] != f or m in out:
            continue
        chain = (m, d, e, js)
        names = {steps[j].compute for j in chain} | {steps[j].out for j in chain}
        if len(names) == 1 and names <= {"float32", "float64"}:
            out[m] = (js, stable)
    return out


def schedule(body: RowBody, online: bool = False) -> Schedule:
    """The passes of ``body``; with ``online``, softmax-like (amax, sum) pairs share a pass."""
    steps, spaces = body.steps, body.spaces
    pairs = online_pairs(body) if online else {}
    partner = {js: m for m, (js, _) in pairs.items()}
    level: dict = {}  # full step -> level
    stage: dict = {}  # row step -> passes needed before its value exists
    for j, s in enumerate(steps):
        deps = _deps(body, j)
        if spaces[j] == "full":
            level[j] = max([level[d] if spaces[d] == "full" else stage[d] for d in deps] or [0])
        elif j in partner:  # accumulated with its amax (which comes first in the body)
            stage[j] = stage[partner[j]]
        elif is_reduction(s):
            stage[j] = (level[deps[0]] if deps else 0) + 1
        else:
            stage[j] = max([stage[d] for d in deps] or [0])
    red_pass = {
        j: stage[j] - 1 for j, s in enumerate(steps) if is_reduction(s) and j not in partner
    }
    out_pass = {
        i: level[ref[1]]
        for i, (ref, form) in enumerate(body.outputs)
        if form == "full" and ref[0] == "t"
    }
    n_pass = 1 + max([*red_pass.values(), *out_pass.values()], default=-1)
    passes = [Pass() for _ in range(n_pass)]
    for j, p in red_pass.items():
        passes[p].reductions.append(j)
    for i, p in out_pass.items():
        passes[p].outputs.append(i)
    uses: dict = {}
    for p, ps in enumerate(passes):
        roots = [steps[j].args[0] for j in ps.reductions]
        roots += [body.outputs[i][0] for i in ps.outputs]
        need: set = set()
        stack = [r[1] for r in roots if r[0] == "t" and spaces[r[1]] == "full"]
        while stack:
            j = stack.pop()
            if j in need:
                continue
            need.add(j)
            stack += [d for d in _deps(body, j) if spaces[d] == "full"]
        ps.steps = sorted(need)
        for j in need:
            uses.setdefault(j, []).append(p)
    before = [[] for _ in range(n_pass + 1)]
    for j, s in enumerate(steps):
        if spaces[j] == "row" and not is_reduction(s):
            before[stage[j]].append(j)
    return Schedule(passes, before, level, uses, pairs)


def expensive(step) -> bool:
    """Whether recomputing ``step`` costs more than storing and reloading it (transcendental
    functions and powers do; arithmetic, comparisons and selects do not)."""
    if is_reduction(step):
        return False
    return _has_call(parse(get_op(step.op).expr))


_COSTLY = of_kind("float")  # transcendental functions and sqrt


def _has_call(tree) -> bool:
    if tree[0] == "call":
        return tree[1] in _COSTLY or any(_has_call(a) for a in tree[2])
    if tree[0] == "bin" and tree[1] == "**":
        return True
    return any(_has_call(t) for t in tree[1:] if isinstance(t, tuple))


def row_divisor(body: RowBody, j: int) -> bool:
    """Whether step ``j`` divides floats by a value computed along the row (a reduction's
    result: softmax's sum, layer norm's deviation): the targets multiply by its reciprocal,
    made once per row. A division by an input (a per-row or scalar tensor: an optimizer's bias
    correction) stays one, so such steps round as eager's."""
    s = body.steps[j]
    if s.op != "div" or s.compute not in ("float32", "float64", "float16"):
        return False
    ref = s.args[1]
    return ref[0] == "t" and body.spaces[ref[1]] == "row"


deps = _deps  # the steps a step reads (public name for the row targets)

__all__ = ["RowBody", "Schedule", "schedule", "deps", "full_view", "row_view", "port_array",
           "domain_of", "out_shape", "expensive", "reduce_facts", "row_reductions",
           "is_reduction", "row_divisor"]  # fmt: skip
