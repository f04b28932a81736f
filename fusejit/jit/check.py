"""Checking a compiled result against eager execution (``trace``'s check, ``optimize``'s first
compiled call).

A fused kernel computes in another order than eager ops (a sum over a row in lanes, not
numpy's pairwise order), so its results differ from eager by rounding. Mostly that difference
is far inside a tolerance. Where a computation is ill-conditioned, it is not: in
``x / x.sum(-1, keepdim=True)`` on a random 4096x4096 float32 tensor, a row sum can cancel to
0.003, the quotients reach 1000, and fused and eager differ by 10 while both are as close to
the exact result as float32 allows. Such a difference is told from a wrong kernel by a third
result: the graph evaluated in float64 (``float64_reference``). A compiled result that is no
more than ``ROUNDING_FACTOR`` times as far from it as eager is (normwise) differs by rounding.
"""

from __future__ import annotations

import math

import numpy as np

from fusejit.eager.tensor import Tensor
from fusejit.ir.graph import Graph
from fusejit.jit.interpret import run_block

# relative tolerance of a result by the least precise float dtype it was computed in
TOL = {"float16": 2e-3, "float32": 2e-5, "float64": 1e-12}
TOL.update(complex64=TOL["float32"], complex128=TOL["float64"])  # (as their parts')

# how much farther from float64 a compiled result may be than eager is. The two sum in other
# orders: in float32 rows of 1024 to 100000 elements, with sums that cancel, a lane-wise fused
# sum measured 0.6 to 6 times eager's (pairwise) error normwise; a wrong kernel is off by
# about the result's own magnitude, thousands of times the rounding of a well-conditioned
# result.
ROUNDING_FACTOR = 16


def graph_tolerance(g: Graph) -> float:
    """The tolerance of the least precise float dtype the graph computes in: a float32
    computation cast to float64 at the end is only float32-accurate."""
    types = [p.type for p in g.block.params] + [o.type for n in g.nodes for o in n.outputs]
    return max([TOL.get(t.dtype.name, 0) for t in types], default=0)


def _host(t: Tensor) -> np.ndarray:
    arr = t.cpu().numpy()
    return np.asarray(arr, np.complex128 if arr.dtype.kind == "c" else np.float64)


def compare(
    name: str, a: Tensor, b: Tensor, graph_tol: float = 0, labels=("traced", "eager")
) -> str | None:
    """What differs between ``a`` (compiled) and ``b`` (eager), or None: dtype, shape, then
    values within the tolerance of their dtype (or ``graph_tol``, if larger)."""
    la, lb = labels
    if a.dtype is not b.dtype:
        return f"{name}: dtype {a.dtype.name} {la}, {b.dtype.name} {lb}"
    if a.shape != b.shape:
        return f"{name}: shape {a.shape} {la}, {b.shape} {lb}"
    x, y = _host(a), _host(b)
    tol = TOL.get(a.dtype.name, 0)
    atol = tol
    if tol:
        tol = max(tol, graph_tol)
        # normwise: a fused sum adds in another order than numpy's pairwise sum, and a sum
        # that cancels to near 0 has an error relative to its terms, not to itself
        finite = np.abs(y[np.isfinite(y)])
        atol = tol * max(1.0, float(finite.max()) if finite.size else 1.0)
    if not np.allclose(x, y, rtol=tol, atol=atol, equal_nan=True):
        return f"{name}: values differ (max abs difference {np.nanmax(np.abs(x - y)):.3g})"
    return None


def float64_reference(g: Graph, inputs) -> list:
    """Run ``g`` through the interpreter with its float inputs and captured tensors in
    float64 (ops that name a dtype still compute in it)."""

    def widen(t):
        if isinstance(t, Tensor) and t.dtype.is_floating_point:
            return t.double()
        return t

    values = [widen(t) for t in [*inputs, *g.captured]]
    return run_block(g.block, dict(zip(g.block.params, values)))


def input_scale(g: Graph, inputs) -> float:
    """The largest finite magnitude among the float tensors ``g`` reads (its inputs and the
    tensors it captured), 0 without any."""
    return _max_finite([*inputs, *g.captured])


def _max_finite(tensors) -> float:
    m = 0.0
    for t in tensors:
        if isinstance(t, Tensor) and t.dtype.is_floating_point and t.numel():
            v = _host(t)
            v = np.abs(v[np.isfinite(v)])
            if v.size:
                m = max(m, float(v.max()))
    return m


def rounding_explains(
    a: Tensor, b: Tensor, exact: Tensor, tol: float, in_scale: float = 0.0
) -> tuple[bool, str]:
    """Whether compiled ``a`` differs from eager ``b`` by rounding only, judged against
    ``exact`` (the float64 reference): the same non-finite entries, and ``a`` at most
    ``ROUNDING_FACTOR`` times as far from ``exact`` as ``b``, plus ``tol`` of the magnitude of
    the result or of the inputs (``in_scale``), whichever is larger. The input's magnitude
    keeps the tolerance from collapsing where eager happens to be exact: a layer norm of a
    constant row of 333.3 is 0 in eager, and a kernel whose mean is an ulp off gives 1e-11
    (the ulp of 333.3 over sqrt(eps)), a rounding difference, not a wrong kernel.
    The second value says how far each is."""
    x, y, z = _host(a), _host(b), _host(exact)
    if z.shape != x.shape:
        return False, ""
    fx, fy = np.isfinite(x), np.isfinite(y)
    if not (np.array_equal(fx, fy) and np.array_equal(x[~fx], y[~fy], equal_nan=True)):
        return False, ""
    ok = fx & np.isfinite(z)
    if not ok.any():
        return False, ""
    err_a = float(np.abs(x[ok] - z[ok]).max())
    err_b = float(np.abs(y[ok] - z[ok]).max())
    scale = float(np.abs(z[ok]).max())
    how = f"float64 evaluation: max error {err_a:.3g} traced, {err_b:.3g} eager"
    return err_a <= ROUNDING_FACTOR * err_b + tol * max(1.0, scale, in_scale), how


def check_outputs(g: Graph, inputs, compiled: list, eager: list, graph_tol: float) -> str | None:
    """The first difference of a compiled run from the eager one that rounding does not
    explain, or None. ``g`` is the graph as recorded, run on ``inputs``."""
    reference = None
    for i, (a, b) in enumerate(zip(compiled, eager, strict=True)):
        problem = compare(f"output {i}", a, b, graph_tol)
        if problem is None:
            continue
        inexact = a.dtype.is_floating_point or a.dtype.is_complex
        if a.dtype is not b.dtype or a.shape != b.shape or not inexact:
            return problem
        if reference is None:
            try:
                reference = float64_reference(g, inputs)
            except Exception:  # an op without float64: the plain comparison stands
                return problem
        exact = reference[i]
        if not isinstance(exact, Tensor):
            return problem
        tol = max(TOL[a.dtype.name], graph_tol)
        explained, how = rounding_explains(a, b, exact, tol, input_scale(g, inputs))
        if not explained:
            return f"{problem}; {how}" if how else problem
    return None


# A graph whose values (inputs, captured tensors, results of every node) hold more bytes than
# this is "large": ``trace`` checks it region by region (``check_regions``) instead of running
# it compiled and eagerly once more, which costs two more forwards of a model.
FULL_CHECK_BYTES = 16 << 20


def graph_bytes(g: Graph) -> int:
    """The bytes of every value ``g`` reads or computes (as recorded: a rough size)."""
    total = 0
    for v in [*g.block.params, *(o for n in g.nodes for o in n.outputs)]:
        t = v.type
        n = 1
        for s in t.shape:
            n *= s if isinstance(s, int) else 1
        total += n * t.dtype.itemsize
    return total


def recorded_values(tracer) -> dict:
    """Value -> the eager tensor a trace recorded for it (inputs, captured tensors and every
    op's results: the tracer keeps them alive until the trace is done)."""
    out = {v: t for v, t in tracer.captured}
    for t in tracer.keep:
        v = tracer.values.get(id(t))
        if v is not None:
            out.setdefault(v, t)
    return out


def _close_fast(a: Tensor, b: Tensor, graph_tol: float) -> bool:
    """True where ``compare`` would find no difference, told without float64 copies: the
    largest difference within the tolerance of the largest magnitude (both finite). False
    means "not sure": ``compare`` decides."""
    if a.dtype is not b.dtype or a.shape != b.shape or not a.dtype.is_floating_point:
        return False
    if not a.numel():
        return True
    x, y = a._data, b._data
    with np.errstate(all="ignore"):  # inf - inf: not sure, compare decides
        diff = float(abs(x - y).max())
        mag = float(abs(y).max())
    if not (math.isfinite(diff) and math.isfinite(mag)):
        return False
    return diff <= max(TOL.get(a.dtype.name, 0), graph_tol) * max(1.0, mag)


def check_regions(plan, values: dict, graph_tol: float) -> tuple[str | None, int, int]:
    """Run each fused kernel of ``plan`` on the eager values the trace recorded for its
    inputs and compare its results with the recorded eager results (a difference that
    rounding explains passes, judged against the region evaluated in float64). Unfused ops
    run eagerly in the plan, so the kernels are what a check has to check; a region is
    checked without the matmuls around it. Returns (the first problem or None, the number of
    regions checked, the number skipped): a region whose values were not all recorded (made
    by a pass, not by the trace) is skipped, and a kernel
    that repeats (the same kernel on inputs of the same shapes: a model's layers) is checked
    once."""
    checked = skipped = 0
    seen: set = set()
    for j, (node, kernel) in enumerate(plan.kernels):
        ins = [values.get(v) for v in node.inputs]
        want = [values.get(o) for o in node.outputs]
        if any(t is None for t in ins + want):
            skipped += 1
            continue
        which = (id(kernel), tuple((t.shape, t.dtype) for t in ins))
        if which in seen:
            continue
        seen.add(which)
        res = kernel(*[t._data for t in ins])
        checked += 1
        for k, (r, b) in enumerate(zip(res, want, strict=True)):
            a = Tensor._wrap(r, node.outputs[k].type.dtype, b.device)
            if _close_fast(a, b, graph_tol):
                continue
            name = f"fused region {j} ({node.attr('kernel_key', '')}) output {k}"
            problem = compare(name, a, b, graph_tol)
            if problem is None:
                continue
            inexact = a.dtype.is_floating_point or a.dtype.is_complex
            if a.dtype is not b.dtype or a.shape != b.shape or not inexact:
                return problem, checked, skipped
            try:
                env = {
                    v: t.double() if t.dtype.is_floating_point else t
                    for v, t in zip(node.inputs, ins, strict=True)
                }
                exact = run_block(node.blocks[0], env)[k]
            except Exception:  # an op without float64: the plain comparison stands
                return problem, checked, skipped
            scale = _max_finite([t for t in ins if t.dtype.is_floating_point])
            tol = max(TOL[a.dtype.name], graph_tol)
            explained, how = rounding_explains(a, b, exact, tol, scale)
            if not explained:
                return (f"{problem}; {how}" if how else problem), checked, skipped
    return None, checked, skipped
