"""Public functions of the matrix products (``fusejit/ops/linalg.py``): ``matmul`` (numpy
semantics, batched, broadcast), ``einsum``, ``dot``, ``mv``, ``bmm``, ``outer`` and ``linear``."""

from __future__ import annotations

import numpy as np

from fusejit.base import dtypes as dt
from fusejit.base.errors import DTypeError, ShapeError, fmt_shape
from fusejit.eager import dispatch
from fusejit.eager.elementwise import add
from fusejit.eager.movement import reversed_dims, unsqueeze
from fusejit.eager.tensor import Tensor
from fusejit.ops.linalg import EINSUM, MATMUL
from fusejit.ops.registry import check_allowed


def matmul(x, y):
    """Matrix product with numpy's rules: 1-D operands are vectors, leading dims broadcast.

    >>> import fusejit
    >>> (fusejit.ones(2, 3) @ fusejit.ones(3, 4)).shape
    (2, 4)
    """
    for t in (x, y):
        if not isinstance(t, Tensor):
            raise TypeError(f"matmul: expected tensors, got {type(t).__name__}")
    if x.ndim == 0 or y.ndim == 0:
        raise ShapeError("matmul: both operands must have at least one dim (got a 0-d tensor)")
    check_allowed(MATMUL, (x.dtype, y.dtype))
    k1 = x.shape[-1]
    k2 = y.shape[-2] if y.ndim > 1 else y.shape[0]
    bx, by = x.shape[:-2], y.shape[:-2]
    ok = k1 == k2
    if ok:
        try:
            np.broadcast_shapes(bx, by)
        except ValueError:
            ok = False
    if not ok:
        raise ShapeError(
            f"matmul: shapes {fmt_shape(x.shape)} and {fmt_shape(y.shape)} cannot be "
            f"multiplied ({k1} != {k2} or batch dims do not broadcast)"
        )
    d = dt.promote_types(x.dtype, y.dtype)
    return dispatch.apply(MATMUL, (x, y), {"dtype": d})


def _einsum_problem(equation: str, tensors) -> str | None:
    """What is wrong with ``equation`` for these operands, or None."""
    eq = equation.replace(" ", "")
    lhs, arrow, rhs = eq.partition("->")
    terms = lhs.split(",")
    if len(terms) != len(tensors):
        return f"{len(terms)} operand terms in {equation!r} for {len(tensors)} tensors"
    allowed = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.")
    if not set(lhs.replace(",", "")) | set(rhs) <= allowed:
        return f"{equation!r} holds characters other than letters, ',', '->' and '...'"
    sizes: dict = {}
    for k, (term, t) in enumerate(zip(terms, tensors)):
        if "." in term:
            if term.count("...") != 1 or term.count(".") != 3:
                return f"term {term!r}: an ellipsis is written '...'"
            if len(term) - 3 > t.ndim:
                return (f"term {term!r} names {len(term) - 3} dims and an ellipsis for operand "
                        f"{k} of shape {fmt_shape(t.shape)}")  # fmt: skip
            head, _, tail = term.partition("...")
            dims = list(zip(head, t.shape)) + list(zip(tail, t.shape[t.ndim - len(tail) :]))
        else:
            if len(term) != t.ndim:
                return (f"term {term!r} names {len(term)} dims for operand {k} of shape "
                        f"{fmt_shape(t.shape)}")  # fmt: skip
            dims = list(zip(term, t.shape))
        for label, n in dims:
            m = sizes.setdefault(label, n)
            if m != n and 1 not in (m, n):
                return f"dim {label!r} has size {m} in one operand and {n} in another"
            sizes[label] = max(m, n)
    if arrow:
        out = rhs.replace("...", "")
        if len(set(out)) != len(out):
            return f"output {rhs!r} names a dim more than once"
        missing = set(out) - set(sizes)
        if missing:
            return f"output {rhs!r} names {''.join(sorted(missing))}, which no operand has"
    return None


def _sums_a_label(equation: str) -> bool:
    """Whether the one-operand ``equation`` sums over a label: one of its term's labels is not
    in the output (with no ``->``, the output is the labels written once)."""
    lhs, arrow, rhs = equation.replace(" ", "").replace("...", "").partition("->")
    if not arrow:
        return any(lhs.count(c) > 1 for c in lhs)
    return bool(set(lhs) - set(rhs))


def einsum(equation: str, *operands):
    """Einstein summation over the operands' labelled dims (``torch.einsum``; the operands
    may also be one list). The dtypes promote as for ``matmul``; one integer operand summed
    over a dim gives int64, as ``sum`` does (and PyTorch's einsum).

    >>> import fusejit
    >>> fusejit.einsum("ij,jk->ik", fusejit.ones(2, 3), fusejit.ones(3, 4)).shape
    (2, 4)
    """
    if len(operands) == 1 and isinstance(operands[0], (list, tuple)):
        operands = tuple(operands[0])
    if not isinstance(equation, str):
        raise TypeError(f"einsum: the equation must be a string, got {type(equation).__name__}")
    if not operands:
        raise ValueError("einsum: expected at least one operand")
    for t in operands:
        if not isinstance(t, Tensor):
            raise TypeError(f"einsum: expected tensors, got {type(t).__name__}")
    check_allowed(EINSUM, [t.dtype for t in operands])
    why = _einsum_problem(equation, operands)
    if why is not None:
        raise ShapeError(f"einsum: {why}")
    d = operands[0].dtype
    for t in operands[1:]:
        d = dt.promote_types(d, t.dtype)
    if len(operands) == 1 and not d.is_floating_point and _sums_a_label(equation):
        d = dt.int64  # one integer operand summed over a dim: torch.sum's int64, as PyTorch's
    return dispatch.apply(EINSUM, tuple(operands), {"equation": equation, "dtype": d})


def _need_dims(name: str, **tensors) -> None:
    """Each keyword names a tensor argument and the ranks it may have: (tensor, ranks)."""
    for arg, (t, ranks) in tensors.items():
        if not isinstance(t, Tensor):
            raise TypeError(f"{name}: {arg} must be a tensor, got {type(t).__name__}")
        if t.ndim not in ranks:
            want = " or ".join(f"{r}-D" for r in ranks)
            raise ShapeError(f"{name}: {arg} must be {want}, got shape {fmt_shape(t.shape)}")


def dot(x, y):
    """The dot product of two 1-D tensors of one dtype (as ``torch.dot``): a 0-d tensor."""
    _need_dims("dot", x=(x, (1,)), y=(y, (1,)))
    if x.dtype is not y.dtype:
        raise DTypeError(f"dot: expected one dtype, got {x.dtype.name} and {y.dtype.name}")
    return matmul(x, y)


def mv(mat, vec):
    """Matrix times vector: ``mat`` 2-D, ``vec`` 1-D (as ``torch.mv``)."""
    _need_dims("mv", mat=(mat, (2,)), vec=(vec, (1,)))
    return matmul(mat, vec)


def bmm(x, y):
    """Batched matrix product of two 3-D tensors with the same batch size (as ``torch.bmm``;
    ``matmul`` also broadcasts the batch)."""
    _need_dims("bmm", x=(x, (3,)), y=(y, (3,)))
    if x.shape[0] != y.shape[0]:
        raise ShapeError(
            f"bmm: batch sizes differ: shapes {fmt_shape(x.shape)} and {fmt_shape(y.shape)}"
        )
    return matmul(x, y)


def outer(x, y):
    """The outer product ``x[i] * y[j]`` of two 1-D tensors (as ``torch.outer``; the dtypes
    promote as for ``*``).

    >>> import fusejit
    >>> fusejit.outer(fusejit.tensor([1, 2]), fusejit.tensor([1, 10, 100])).tolist()
    [[1, 10, 100], [2, 20, 200]]
    """
    _need_dims("outer", x=(x, (1,)), y=(y, (1,)))
    return unsqueeze(x, 1) * unsqueeze(y, 0)


def linear(x, weight, bias=None):
    """``x @ weight.T + bias``, as ``torch.nn.functional.linear``."""
    for t in (x, weight):
        if not isinstance(t, Tensor):
            raise TypeError(f"linear: expected tensors, got {type(t).__name__}")
    if x.ndim == 0 or weight.ndim not in (1, 2) or x.shape[-1] != weight.shape[-1]:
        raise ShapeError(
            f"linear: input of shape {fmt_shape(x.shape)} and weight of shape "
            f"{fmt_shape(weight.shape)} do not fit (expected a weight [out_features, "
            f"{x.shape[-1] if x.ndim else '?'}])"
        )
    out = matmul(x, reversed_dims(weight))
    return out if bias is None else add(out, bias)
