"""The body of a fused *column* kernel, independent of the target.

A column region reduces a full shape F over a block of consecutive dims ``[a, b)`` that ends
before the last dim (a reduction over the trailing dims is a row region: ``codegen/rows.py``):
``x.sum(0)`` of a matrix, ``x.sum((0, 1))`` or ``x.sum(1)`` of a 3-D tensor. F is read as a
(P, R, Q) array: P = prod(F[:a]) outer columns, R = prod(F[a:b]) reduced rows, Q =
prod(F[b:]) kept columns (contiguous in memory). Every value lives in one of two spaces:

- *full*: one value per element of F, computed in the loop over the reduced rows;
- *out*: one value per kept column (P, Q): a reduction's result and the elementwise steps
  after it. Its tensor shape is F with the reduced dims 1 (``keep``) or removed (``drop``).

The kernel makes one pass over F: the full steps (the elementwise prologue) and the
reductions (sum, mean, amax, amin: the op table's ``Reduce`` facts) accumulate column by column;
then the out steps (the epilogue: ``mean`` is a sum times 1/n, a cast, ...) run once per kept
column. A full value that reads an out value would need a second pass and stays out of the
region.

Ports (an input seen through one view): ``full`` read as (P, R, Q); ``out`` constant over the
reduced dims, read as (P, Q); ``row`` constant over the kept dims (a layer norm's per-row mean
and rstd of shape (N, 1) in its weight gradient), read as (P, R); ``inner`` constant over the
outer and reduced dims (a bias of shape F[b:]), read as (Q,); ``scalar`` read as (1,). A port
of an out step in ``drop`` form (``dropped``) has no reduced dims in its shape.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from fusejit.base import dtypes as dt
from fusejit.codegen.body import half_as_float32
from fusejit.codegen.expr import parse
from fusejit.codegen.rows import PortBody, is_reduction, reduce_facts, ref_dtype

VIEWS = ("full", "out", "row", "inner", "scalar")


@dataclass(frozen=True)
class ColBody(PortBody):
    """A fused column region.

    ``ports``: (input index, view, dtype name, dropped) per port; refs ("in", i) name ports.
    ``steps``: ``Step``s (elementwise ops, or a reduction with ``compute`` its accumulation
    dtype and ``out`` its result dtype); ``spaces[j]`` is "full" or "out". ``outputs``: (ref,
    form), form "full", "keep" or "drop". ``strict_empty``: reducing an empty dim is an error
    (eager amax/amin); otherwise the reductions give their finalized identity.
    """

    rank: int
    a: int
    b: int
    ports: tuple
    steps: tuple
    spaces: tuple
    outputs: tuple
    strict_empty: bool = False


def keep_shape(F: tuple, a: int, b: int) -> tuple:
    return F[:a] + (1,) * (b - a) + F[b:]


def drop_shape(F: tuple, a: int, b: int) -> tuple:
    return F[:a] + F[b:]


def aligned(shape: tuple, rank: int, a: int, b: int, dropped: bool) -> tuple:
    """``shape`` as a shape of rank ``rank`` (ones on the left; for a ``dropped`` shape, ones
    at the reduced dims too)."""
    shape = tuple(shape)
    if dropped:
        shape = (1,) * (rank - (b - a) - len(shape)) + shape
        lead = len(shape) - (rank - b)
        return shape[:lead] + (1,) * (b - a) + shape[lead:]
    return (1,) * (rank - len(shape)) + shape


def view_of(shape: tuple, rank: int, a: int, b: int, dropped: bool = False) -> str:
    """The view of a tensor of ``shape`` in a column domain of ``rank`` reducing ``[a, b)``."""
    s = aligned(shape, rank, a, b, dropped)
    if all(d == 1 for d in s):
        return "scalar"
    if all(d == 1 for d in s[:b]):
        return "inner"
    if all(d == 1 for d in s[a:b]):
        return "out"
    if all(d == 1 for d in s[b:]):
        return "row"
    return "full"


def sizes(F: tuple, a: int, b: int) -> tuple:
    """(P, R, Q) of full shape ``F``."""
    return math.prod(F[:a]), math.prod(F[a:b]), math.prod(F[b:])


def domain_of(shapes, ports, rank: int, a: int, b: int) -> tuple:
    """The full shape F, from the port arrays' shapes (what a kernel launch does)."""
    F = [1] * rank
    for shape, (_, view, _d, dropped) in zip(shapes, ports):
        if view == "scalar":
            continue
        for d, n in enumerate(aligned(shape, rank, a, b, dropped)):
            if n != 1:
                F[d] = n
    return tuple(F)


def port_array(xp, arr, port, F: tuple, a: int, b: int):
    """Input array ``arr`` of ``port`` in the form the kernel reads it: (P, R, Q), (P, Q),
    (P, R), (Q,) or (1,) (a view where the strides allow, else a copy)."""
    _, view, _d, dropped = port
    P, R, Q = sizes(F, a, b)
    if view == "scalar":
        return arr.reshape(1)
    x = arr.reshape(aligned(arr.shape, len(F), a, b, dropped))
    if view == "full":
        return xp.broadcast_to(x, F).reshape(P, R, Q)
    if view == "out":
        return xp.broadcast_to(x, keep_shape(F, a, b)).reshape(P, Q)
    if view == "row":
        return xp.broadcast_to(x, F[:b] + (1,) * (len(F) - b)).reshape(P, R)
    return xp.broadcast_to(x, (1,) * b + F[b:]).reshape(Q)


def out_shape(form: str, F: tuple, a: int, b: int) -> tuple:
    if form == "full":
        return F
    return keep_shape(F, a, b) if form == "keep" else drop_shape(F, a, b)


def kernel_shape(form: str, F: tuple, a: int, b: int) -> tuple:
    P, R, Q = sizes(F, a, b)
    return (P, R, Q) if form == "full" else (P, Q)


def acc_dtype(step) -> dt.DType:
    """The dtype reduction ``step`` accumulates in inside a column kernel, on both targets:
    float64 for float sums and means (float16, float32, float64), else the step's
    accumulation dtype (int64 for integer sums; amax/amin exact in the compute dtype, float16
    held as float32)."""
    held = half_as_float32(dt.as_dtype(step.compute))
    if held.is_floating_point and parse(reduce_facts(step.op).combine)[:2] == ("bin", "+"):
        return dt.float64
    return held


def reductions(body: ColBody) -> list:
    """The indices of the reduction steps."""
    return [j for j, s in enumerate(body.steps) if is_reduction(s)]


__all__ = ["ColBody", "view_of", "domain_of", "port_array", "out_shape", "kernel_shape", "sizes",
           "keep_shape", "drop_shape", "aligned", "reductions", "ref_dtype",
           "acc_dtype"]  # fmt: skip
