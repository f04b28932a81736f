"""Shape helpers every layer uses: dims checked and made non-negative, shape arguments,
broadcasting. Pure Python and numpy; the errors are those of the public API."""

from __future__ import annotations

import numpy as np

from fusejit.base.errors import DimError, ShapeError, fmt_shape

__all__ = ["norm_dim", "norm_dims", "shape_arg", "dims_arg", "broadcast_shapes"]


def norm_dim(name: str, dim, ndim: int) -> int:
    """``dim`` as a non-negative int; a 0-d tensor accepts -1 and 0 (as in PyTorch)."""
    if not isinstance(dim, (int, np.integer)) or isinstance(dim, bool):
        raise TypeError(f"{name}: dim must be an int, got {type(dim).__name__}")
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


def shape_arg(shape: tuple) -> tuple:
    """The sizes of ``f(*sizes)`` or ``f(sizes)`` (one tuple or list) as a tuple of ints."""
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        shape = shape[0]
    return tuple(map(int, shape))


def dims_arg(name: str, dims, ndim: int) -> tuple:
    """One dim or a sequence of distinct dims, as non-negative ints in the given order."""
    dims = (dims,) if isinstance(dims, (int, np.integer)) else tuple(dims)
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
