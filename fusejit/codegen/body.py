"""The body of a fused elementwise kernel, independent of the target.

A ``KernelBody`` is the straight-line scalar program a fused region runs per element: its
inputs (dtypes), a list of steps (op table entries with their operand references, attributes
and compute/result dtypes) and the outputs. ``render_steps`` turns it into one assignment per
step with a target's renderer; the targets only wrap loads, stores and the loop around it.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace

import numpy as np

from fusejit.base import dtypes as dt
from fusejit.codegen.expr import parse
from fusejit.ops.registry import accumulation_dtype, get_op

# An operand reference: ("in", i) region input i; ("t", j) result of step j;
# ("c", value, dtype_name) a scalar constant baked into the kernel.
Ref = tuple


@dataclass(frozen=True)
class Step:
    op: str
    args: tuple  # of Ref
    attrs: tuple  # sorted (name, value) pairs; dtypes as names
    compute: str  # dtype name the op computes in
    out: str  # dtype name of the result


@dataclass(frozen=True)
class KernelBody:
    in_dtypes: tuple  # dtype names of the inputs
    steps: tuple  # of Step
    outputs: tuple  # of Ref, each ("t", j) or ("in", i)

    def key(self) -> str:
        """Structural hash: equal bodies (same ops, wiring, dtypes, constants) hash equal."""
        return hashlib.sha256(repr(self).encode()).hexdigest()[:24]

    def out_dtypes(self) -> tuple:
        res = []
        for ref in self.outputs:
            res.append(self.in_dtypes[ref[1]] if ref[0] == "in" else self.steps[ref[1]].out)
        return tuple(res)


def ref_dtype(body: KernelBody, ref: Ref) -> str:
    if ref[0] == "in":
        return body.in_dtypes[ref[1]]
    if ref[0] == "t":
        return body.steps[ref[1]].out
    return ref[2]


def render_step(step: Step, renderer, get, compute_of=lambda d: d):
    """Render one step: (code, dtype). ``get(ref)`` gives an operand's (code, dtype), already
    in ``compute_of`` its dtype; the targets' row kernels render their steps through this too."""
    op = get_op(step.op)
    compute = compute_of(dt.as_dtype(step.compute))
    out = compute_of(dt.as_dtype(step.out))
    attrs = {k: (dt.as_dtype(v) if k == "dtype" else v) for k, v in step.attrs}
    if "dtype" in attrs:
        attrs["dtype"] = compute_of(attrs["dtype"])
    env = {}
    for name, ref in zip("xyz", step.args):
        code, d = get(ref)
        # where's condition stays as it is; other inputs convert to the compute dtype
        if not (op.name == "where" and name == "x") and op.rule not in ("logical", "cast"):
            code, d = renderer.cast(code, d, compute), compute
        env[name] = (code, d)
    code, d = renderer.render(parse(op.expr), env, compute, attrs)
    return renderer.cast(code, d, out), out


def render_steps(body: KernelBody, renderer, in_codes: list, compute_of=lambda d: d):
    """Render each step as (temp name, code, dtype). ``in_codes[i]`` is the code that reads
    input i (already converted to ``compute_of`` its dtype). Returns (lines, out codes)."""
    lines = []
    vals = {}

    def get(ref):
        if ref[0] == "in":
            return in_codes[ref[1]], compute_of(dt.as_dtype(body.in_dtypes[ref[1]]))
        if ref[0] == "t":
            return vals[ref[1]]
        d = dt.as_dtype(ref[2])
        return renderer.const(ref[1], compute_of(d)), compute_of(d)

    for j, step in enumerate(body.steps):
        code, out = render_step(step, renderer, get, compute_of)
        name = f"t{j}"
        lines.append((name, code, out))
        vals[j] = (name, out)
    outs = [get(r) for r in body.outputs]
    return lines, outs


def half_as_float32(d: dt.DType) -> dt.DType:
    """The dtype a value of dtype ``d`` is held in inside a kernel: float16 computes in float32
    (each float16 step rounded back to float16, as eager float16 ops are), the op table's
    ``accumulation_dtype``."""
    return accumulation_dtype(d)


def round_half_consts(body: KernelBody) -> KernelBody:
    """The body with the scalar operands of float16 steps rounded to float16, the value eager
    dispatch converts them to (the steps themselves compute in float32)."""

    def fix(ref):
        if ref[0] == "c" and ref[2] == "float16":
            with np.errstate(over="ignore"):
                return ("c", float(np.float16(ref[1])), "float16")
        return ref

    if not any(r[0] == "c" and r[2] == "float16" for s in body.steps for r in s.args):
        return body
    return replace(body, steps=tuple(replace(s, args=tuple(map(fix, s.args))) for s in body.steps))


def half_rounding(body: KernelBody, step: Step) -> str | None:
    """How a step's float32 result becomes float16, on targets that compute float16 in
    float32: ``"from_float64"`` for a cast of a float64 value (rounded once, from the float64,
    never through float32), ``"round"`` for any other float16 step, None for other dtypes."""
    if step.out != "float16":
        return None
    if step.op == "cast" and ref_dtype(body, step.args[0]) == "float64":
        return "from_float64"
    return "round"
