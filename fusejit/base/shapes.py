"""Shape helpers every layer uses: dims checked and made non-negative, shape arguments,
broadcasting. Pure Python and numpy; the errors are those of the public API."""

from __future__ import annotations

import operator

import numpy as np

from fusejit.base.errors import DimError, DTypeError, ShapeError, fmt_shape
from fusejit.base.symbolic import SymInt

__all__ = [
    "norm_dim", "norm_dims", "shape_arg", "int_arg", "describe", "dims_arg", "broadcast_shapes",
]  # fmt: skip


def norm_dim(name: str, dim, ndim: int) -> int:
    """``dim`` as a non-negative int; a 0-d tensor accepts -1 and 0 (as in PyTorch)."""
    if not isinstance(dim, (int, np.integer)) or isinstance(dim, bool):
        raise DTypeError(f"{name}: dim must be an int, got {describe(dim)}")
    n = max(ndim, 1)
    if not -n <= dim < n:
        raise DimError(
            f"{name}: dim {dim} is out of range for a tensor of {ndim} dims "
            f"(expected a dim in [{-n}, {n - 1}])"
        )
    return int(dim) % n if ndim else 0


def norm_dims(name: str, dim, ndim: int):
    """None (all dims) or a sorted tuple of distinct non-negative dims."""
    if dim is None:
        return None
    if type(dim) is int and -ndim <= dim < ndim:  # the common case, as the general one below
        return (dim % ndim,)
    # anything but a tuple or list is one dim (norm_dim rejects what is not an int)
    dims = tuple(dim) if isinstance(dim, (tuple, list)) else (dim,)
    out = tuple(norm_dim(name, d, ndim) for d in dims)
    if len(set(out)) != len(out):
        raise DimError(f"{name}: dim {tuple(dims)} names a dim more than once")
    if ndim == 0:
        return None
    return tuple(sorted(out))


def describe(value) -> str:
    """``value`` for a message: its type and a short repr (``float 2.5``, ``str '3'``, ``None``)."""
    if value is None:
        return "None"
    text = repr(value)
    if len(text) > 40:
        text = text[:37] + "..."
    return f"{type(value).__name__} {text}"


def _as_int(v) -> int | None:
    """``v`` as a Python int (a Python or numpy int, a one-element int tensor: what has
    ``__index__``), or None for anything else (a bool, a float even 2.0, a string, None)."""
    if type(v) is int or type(v) is SymInt:  # (a symbolic size keeps its expression)
        return v
    if isinstance(v, (bool, np.bool_)):
        return None
    try:
        return operator.index(v)
    except TypeError:
        return None


def int_arg(name: str, value, what: str) -> int:
    """``value`` as a Python int, else a DTypeError naming ``name`` and ``what`` (a TypeError,
    as PyTorch's)."""
    i = _as_int(value)
    if i is None:
        raise DTypeError(f"{name}: {what} must be an int, got {describe(value)}")
    return i


def shape_arg(name: str, sizes: tuple, what: str = "size", *, nonnegative: bool = False) -> tuple:
    """The sizes of ``name(*sizes)`` or ``name(sizes)`` (one tuple or list) as a tuple of ints.

    ``zeros(2, 3)``, ``zeros((2, 3))``, ``zeros([2, 3])``, ``zeros(x.shape)`` and ``zeros(())``
    (0-d); numpy ints pass. A size that is not an int (a float, None, a string, a nested tuple)
    is a DTypeError, a negative one (with ``nonnegative``) a ShapeError; both name ``name``
    and ``what``. Callers that take -1 (``reshape``) check the signs themselves.
    """
    if len(sizes) == 1 and isinstance(sizes[0], (tuple, list)):
        sizes = sizes[0]
    for s in sizes:  # the common case, Python ints, checked without building anything
        if type(s) is not int:
            sizes = tuple(_size(name, what, sizes, v) for v in sizes)
            break
    if nonnegative and min(sizes, default=0) < 0:
        raise ShapeError(f"{name}: {what} must be non-negative, got {list(sizes)}")
    return sizes if type(sizes) is tuple else tuple(sizes)


def _size(name: str, what: str, sizes, v) -> int:
    i = _as_int(v)
    if i is None:
        where = f" in {what} {list(sizes)}" if len(sizes) > 1 else ""
        raise DTypeError(f"{name}: {what} must be ints, got {describe(v)}{where}")
    return i


def dims_arg(name: str, dims, ndim: int) -> tuple:
    """One dim or a sequence of distinct dims, as non-negative ints in the given order."""
    iterable = hasattr(dims, "__iter__") and not isinstance(dims, (str, np.integer))
    dims = tuple(dims) if iterable else (dims,)  # (norm_dim rejects what is not an int)
    out = tuple(norm_dim(name, d, ndim) for d in dims)
    if len(set(out)) != len(out):
        raise DimError(f"{name}: dims {list(dims)} name a dim more than once")
    return out


def broadcast_shapes(*shapes) -> tuple:
    """The shape ``shapes`` broadcast to, as numpy and PyTorch broadcast.

    >>> broadcast_shapes((2, 1), (3,))
    (2, 3)
    """
    try:
        return tuple(np.broadcast_shapes(*[tuple(s) for s in shapes]))
    except ValueError:
        raise ShapeError(
            "broadcast_shapes: shapes "
            + " and ".join(fmt_shape(s) for s in shapes)
            + " cannot be broadcast together"
        ) from None
