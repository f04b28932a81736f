"""Public functions of the matrix products (``fusejit/ops/linalg.py``): ``matmul`` (numpy
semantics, batched, broadcast), ``einsum``, ``dot``, ``mv``, ``bmm``, ``outer``, ``linear``,
and the compositions of them: ``mm``, ``addmm``, ``addmv``, ``baddbmm``, ``addbmm``,
``tensordot``, ``kron`` and ``cross``."""

from __future__ import annotations

import builtins

import numpy as np

from fusejit.base import dtypes as dt
from fusejit.base.errors import DimError, DTypeError, ShapeError, fmt_shape
from fusejit.base.shapes import int_arg, norm_dim
from fusejit.eager import dispatch, recording
from fusejit.eager.elementwise import add
from fusejit.eager.indexing import narrow
from fusejit.eager.movement import broadcast_to, cat, reversed_dims, unsqueeze
from fusejit.eager.tensor import Tensor
from fusejit.ops.linalg import EINSUM, LINEAR, MATMUL
from fusejit.ops.registry import check_allowed


def matmul(x, y):
    """Matrix product with numpy's rules: 1-D operands are vectors, leading dims broadcast.

    >>> import fusejit
    >>> (fusejit.ones(2, 3) @ fusejit.ones(3, 4)).shape
    (2, 4)
    """
    x, y = dispatch.tensor_operands("matmul", (x, y))  # (numpy arrays with a CPU tensor)
    if x.ndim == 0 or y.ndim == 0:
        raise ShapeError("matmul: both operands must have at least one dim (got a 0-d tensor)")
    check_allowed(MATMUL, (x.dtype, y.dtype))
    k1 = x.shape[-1]
    k2 = y.shape[-2] if y.ndim > 1 else y.shape[0]
    bx, by = x.shape[:-2], y.shape[:-2]
    ok = k1 == k2
    if ok and (bx or by):  # (batch dims to broadcast)
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
    d = x._dtype
    if (
        recording.TRACER is None
        and weight.ndim == 2
        and weight._dtype is d
        and (bias is None or (isinstance(bias, Tensor) and bias._dtype is d
                              and bias.shape in ((), (1,), weight.shape[:1])))
    ):  # fmt: skip
        # one op (one autograd node); a trace records the composition below instead
        check_allowed(LINEAR, (d,))
        args = (x, weight) if bias is None else (x, weight, bias)
        return dispatch.apply(LINEAR, args, {"dtype": d})
    out = matmul(x, reversed_dims(weight))
    return out if bias is None else add(out, bias)


# --- products written as compositions of matmul / einsum and elementwise ops (they trace, and
# the epilogue ``beta * input + alpha * (A @ B)`` fuses into one kernel)


def _one_dtype(name: str, **tensors) -> dt.DType:
    """The one dtype of the tensors (PyTorch's products refuse mixed dtypes)."""
    ds = {t.dtype for t in tensors.values()}
    if len(ds) > 1:
        got = ", ".join(f"{k} {t.dtype.name}" for k, t in tensors.items())
        raise DTypeError(f"{name}: expected tensors of one dtype, got {got}")
    return ds.pop()


def _scale_arg(name: str, what: str, v, d: dt.DType):
    """``beta`` / ``alpha``: a Python number; not a float for integer tensors (as PyTorch)."""
    if isinstance(v, Tensor) or not isinstance(v, (bool, int, float, np.integer, np.floating)):
        raise DTypeError(f"{name}: {what} must be a Python number, got {type(v).__name__}")
    if not d.is_floating_point and isinstance(v, (float, np.floating)):
        raise DTypeError(
            f"{name}: {what} must be an int for integer tensors ({d.name}), got float {v}"
        )
    return v.item() if isinstance(v, np.generic) else v


def _epilogue(name: str, inp, prod, beta, alpha):
    """``beta * inp + alpha * prod``, where ``inp`` must broadcast to ``prod``'s shape; with
    ``beta == 0`` ``inp`` is not read (its NaN and inf do not propagate), as in PyTorch."""
    if not isinstance(inp, Tensor):
        raise TypeError(f"{name}: input must be a tensor, got {type(inp).__name__}")
    try:
        fits = np.broadcast_shapes(inp.shape, prod.shape) == prod.shape
    except ValueError:
        fits = False
    if not fits:
        raise ShapeError(
            f"{name}: input of shape {fmt_shape(inp.shape)} does not broadcast to the "
            f"product's shape {fmt_shape(prod.shape)}"
        )
    d = _one_dtype(name, input=inp, product=prod)
    beta, alpha = _scale_arg(name, "beta", beta, d), _scale_arg(name, "alpha", alpha, d)
    out = prod if alpha == 1 else prod * alpha
    if beta == 0:
        return out
    return add(inp if beta == 1 else inp * beta, out)


def mm(input, mat2):  # noqa: A002 - torch's names
    """The product of two matrices of one dtype (``torch.mm``; no broadcasting).

    >>> import fusejit
    >>> fusejit.mm(fusejit.ones(2, 3), fusejit.ones(3, 4)).shape
    (2, 4)
    """
    _need_dims("mm", input=(input, (2,)), mat2=(mat2, (2,)))
    _one_dtype("mm", input=input, mat2=mat2)
    return matmul(input, mat2)


def addmm(input, mat1, mat2, *, beta=1, alpha=1):  # noqa: A002
    """``beta * input + alpha * (mat1 @ mat2)`` (``torch.addmm``): ``input`` broadcasts to the
    product's shape; all of one dtype.

    >>> import fusejit
    >>> fusejit.addmm(fusejit.ones(3), fusejit.ones(2, 4), fusejit.ones(4, 3), alpha=2).tolist()
    [[9.0, 9.0, 9.0], [9.0, 9.0, 9.0]]
    """
    _need_dims("addmm", mat1=(mat1, (2,)), mat2=(mat2, (2,)))
    _one_dtype("addmm", mat1=mat1, mat2=mat2)
    return _epilogue("addmm", input, matmul(mat1, mat2), beta, alpha)


def addmv(input, mat, vec, *, beta=1, alpha=1):  # noqa: A002
    """``beta * input + alpha * (mat @ vec)`` (``torch.addmv``).

    >>> import fusejit
    >>> fusejit.addmv(fusejit.ones(2), fusejit.ones(2, 3), fusejit.ones(3)).tolist()
    [4.0, 4.0]
    """
    _need_dims("addmv", mat=(mat, (2,)), vec=(vec, (1,)))
    _one_dtype("addmv", mat=mat, vec=vec)
    return _epilogue("addmv", input, matmul(mat, vec), beta, alpha)


def baddbmm(input, batch1, batch2, *, beta=1, alpha=1):  # noqa: A002
    """``beta * input + alpha * bmm(batch1, batch2)`` (``torch.baddbmm``).

    >>> import fusejit
    >>> fusejit.baddbmm(fusejit.zeros(1), fusejit.ones(5, 2, 3), fusejit.ones(5, 3, 4)).shape
    (5, 2, 4)
    """
    _need_dims("baddbmm", batch1=(batch1, (3,)), batch2=(batch2, (3,)))
    _one_dtype("baddbmm", batch1=batch1, batch2=batch2)
    return _epilogue("baddbmm", input, bmm(batch1, batch2), beta, alpha)


def addbmm(input, batch1, batch2, *, beta=1, alpha=1):  # noqa: A002
    """``beta * input + alpha * sum_b(batch1[b] @ batch2[b])`` (``torch.addbmm``): one matrix
    product over the batch folded into the inner dim, so float16 accumulates in float32.

    >>> import fusejit
    >>> fusejit.addbmm(fusejit.zeros(2, 4), fusejit.ones(5, 2, 3), fusejit.ones(5, 3, 4))[0, 0]
    tensor(15.)
    """
    _need_dims("addbmm", batch1=(batch1, (3,)), batch2=(batch2, (3,)))
    _one_dtype("addbmm", batch1=batch1, batch2=batch2)
    (b, n, m), (b2, m2, p) = batch1.shape, batch2.shape
    if b != b2 or m != m2:
        raise ShapeError(
            f"addbmm: batch1 of shape {fmt_shape(batch1.shape)} and batch2 of shape "
            f"{fmt_shape(batch2.shape)} do not fit (batch sizes and inner sizes must agree)"
        )
    left = batch1.permute(1, 0, 2).reshape(n, b * m)
    return _epilogue("addbmm", input, matmul(left, batch2.reshape(b * m, p)), beta, alpha)


def _contracted(name: str, dims, ndim: int, which: str) -> list:
    if isinstance(dims, (int, np.integer)) and not isinstance(dims, bool):
        dims = [dims]
    if not isinstance(dims, (list, tuple)):
        raise DTypeError(f"{name}: dims must be an int or two lists of ints, got {dims!r}")
    out = [norm_dim(name, int_arg(name, d, f"a dim of {which}"), ndim) for d in dims]
    if len(set(out)) != len(out):
        raise DimError(f"{name}: dims {list(dims)} of {which} name a dim more than once")
    return out


def tensordot(a, b, dims=2):
    """Sum of products over ``dims`` of ``a`` and ``b`` (``torch.tensordot``): an int ``n`` (the
    last n dims of ``a`` with the first n of ``b``) or two lists of dims. One dtype.

    >>> import fusejit
    >>> fusejit.tensordot(fusejit.ones(2, 3, 4), fusejit.ones(3, 4, 5), dims=2).shape
    (2, 5)
    >>> fusejit.tensordot(fusejit.ones(2, 3), fusejit.ones(3, 2), dims=([1, 0], [0, 1])).item()
    6.0
    """
    for k, t in (("a", a), ("b", b)):
        if not isinstance(t, Tensor):
            raise TypeError(f"tensordot: {k} must be a tensor, got {type(t).__name__}")
    _one_dtype("tensordot", a=a, b=b)
    if isinstance(dims, (int, np.integer)) and not isinstance(dims, bool):
        if not 0 <= dims <= min(a.ndim, b.ndim):
            raise DimError(
                f"tensordot: dims={dims} must be in [0, {min(a.ndim, b.ndim)}] for shapes "
                f"{fmt_shape(a.shape)} and {fmt_shape(b.shape)}"
            )
        da, db = list(range(a.ndim - dims, a.ndim)), list(range(dims))
    elif isinstance(dims, (list, tuple)) and len(dims) == 2:
        da = _contracted("tensordot", dims[0], a.ndim, "a")
        db = _contracted("tensordot", dims[1], b.ndim, "b")
        if len(da) != len(db):
            raise DimError(f"tensordot: {len(da)} dims of a and {len(db)} of b to contract")
    else:
        raise DTypeError(f"tensordot: dims must be an int or two lists of ints, got {dims!r}")
    for i, j in zip(da, db):
        if a.shape[i] != b.shape[j]:
            raise ShapeError(
                f"tensordot: contracted dims differ: a {fmt_shape(a.shape)} has size "
                f"{a.shape[i]} in dim {i}, b {fmt_shape(b.shape)} size {b.shape[j]} in dim {j}"
            )
    letters = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
    if a.ndim + b.ndim > len(letters):
        raise ShapeError(f"tensordot: at most {len(letters)} dims in all")
    ta = letters[: a.ndim]
    tb = list(letters[a.ndim : a.ndim + b.ndim])
    for i, j in zip(da, db):
        tb[j] = ta[i]
    out = "".join(c for i, c in enumerate(ta) if i not in da)
    out += "".join(c for j, c in enumerate(tb) if j not in db)
    return einsum(f"{ta},{''.join(tb)}->{out}", a, b)


def kron(input, other):  # noqa: A002
    """The Kronecker product (``torch.kron``): block ``(i, j, ...)`` of the result is
    ``input[i, j, ...] * other``; the shorter shape is padded with leading 1s, the dtypes
    promote as for ``*``.

    >>> import fusejit
    >>> fusejit.kron(fusejit.tensor([1, 2]), fusejit.tensor([1, 10])).tolist()
    [1, 10, 2, 20]
    """
    for k, t in (("input", input), ("other", other)):
        if not isinstance(t, Tensor):
            raise TypeError(f"kron: {k} must be a tensor, got {type(t).__name__}")
    n = builtins.max(input.ndim, other.ndim)
    sa = (1,) * (n - input.ndim) + input.shape
    sb = (1,) * (n - other.ndim) + other.shape
    a = input.reshape(tuple(v for s in sa for v in (s, 1)))
    b = other.reshape(tuple(v for s in sb for v in (1, s)))
    return (a * b).reshape(tuple(x * y for x, y in zip(sa, sb)))


def cross(input, other, dim=None):  # noqa: A002
    """The cross product of 3-vectors along ``dim`` (``torch.cross``); the shapes broadcast.
    Without ``dim``, the first dim of size 3 (PyTorch's deprecated default;
    ``fusejit.linalg.cross`` uses -1).

    >>> import fusejit
    >>> fusejit.cross(fusejit.tensor([1, 0, 0]), fusejit.tensor([0, 1, 0])).tolist()
    [0, 0, 1]
    """
    for k, t in (("input", input), ("other", other)):
        if not isinstance(t, Tensor):
            raise TypeError(f"cross: {k} must be a tensor, got {type(t).__name__}")
        if t.dtype is dt.bool_:
            raise DTypeError(f"cross: expected numbers, got a bool tensor ({k})")
    try:
        shape = np.broadcast_shapes(input.shape, other.shape)
    except ValueError:
        raise ShapeError(
            f"cross: shapes {fmt_shape(input.shape)} and {fmt_shape(other.shape)} do not broadcast"
        ) from None
    if dim is None:
        dim = next((i for i, s in enumerate(shape) if s == 3), None)
        if dim is None:
            raise ShapeError(f"cross: no dim of size 3 in shape {fmt_shape(shape)}")
    d = norm_dim("cross", dim, len(shape))
    if not len(shape) or shape[d] != 3:
        raise ShapeError(
            f"cross: dim {dim} must have size 3, got shapes {fmt_shape(input.shape)} and "
            f"{fmt_shape(other.shape)}"
        )
    a, b = broadcast_to(input, shape), broadcast_to(other, shape)
    a0, a1, a2 = (narrow(a, d, i, 1) for i in range(3))
    b0, b1, b2 = (narrow(b, d, i, 1) for i in range(3))
    return cat([a1 * b2 - a2 * b1, a2 * b0 - a0 * b2, a0 * b1 - a1 * b0], d)
