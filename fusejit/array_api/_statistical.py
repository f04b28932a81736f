"""The standard's statistical and utility reductions and its linear algebra functions, on
fusejit's reductions (which trace and fuse) with the standard's dtype rules: ``sum`` and
``prod`` of integers accumulate in int64 (uint8 too: the namespace has no wider unsigned
type), of floats in their own dtype."""

from __future__ import annotations

import builtins
import numbers

import fusejit.eager.elementwise as E
from fusejit.array_api import _eager_complex as C
from fusejit.array_api._complex import make
from fusejit.array_api._dtypes import promote
from fusejit.base import dtypes as dt
from fusejit.eager import creation, linalg, movement, reductions
from fusejit.eager.complex_functions import conj, imag, real
from fusejit.eager.tensor import Tensor

__all__ = [
    "all", "any", "cumulative_prod", "cumulative_sum", "matmul", "matrix_transpose", "max",
    "mean", "min", "prod", "std", "sum", "tensordot", "var", "vecdot",
]  # fmt: skip


def _array(name: str, x) -> Tensor:
    if not isinstance(x, Tensor):
        raise TypeError(f"{name}: expected an array, got {type(x).__name__}")
    return x


def _axes(name: str, x: Tensor, axis) -> tuple:
    if axis is None:
        return tuple(range(x.ndim))
    axes = (axis,) if isinstance(axis, numbers.Integral) else tuple(axis)
    n = x.ndim
    out = []
    for a in axes:
        if not -n <= a < builtins.max(n, 1) or (n == 0 and a not in (0, -1)):
            raise IndexError(f"{name}: axis {a} out of range for {n} dims")
        out.append(a % n if n else a)
    if len(set(out)) != len(out):
        raise ValueError(f"{name}: repeated axis in {axis}")
    return tuple(out)


def _reduce(fn, name: str, x, axis, keepdims: bool, **kw) -> Tensor:
    x = _array(name, x)
    axes = _axes(name, x, axis)
    if x.ndim == 0 or not axes:
        return fn(x, None, False, **kw) if x.ndim == 0 else _noop(fn, x, kw)
    return fn(x, axes, keepdims, **kw)


def _noop(fn, x, kw):
    # a reduction over no axes: the elementwise identity (in the result dtype)
    d = kw.get("dtype")
    return x.clone() if d is None or d is x.dtype else E.cast(x, d)


def _acc_dtype(name: str, x: Tensor, dtype) -> dt.DType:
    if dtype is not None:
        if not isinstance(dtype, dt.DType):
            raise TypeError(f"{name}: dtype must be a dtype, got {dtype!r}")
        return dtype
    if x.dtype.kind in "biu":
        return dt.int64
    return x.dtype


def sum(x: Tensor, /, *, axis=None, dtype=None, keepdims: bool = False) -> Tensor:  # noqa: A001
    """The sum along ``axis`` (all axes when None).

    >>> import fusejit.array_api as xp
    >>> int(xp.sum(xp.asarray([1, 2, 3], dtype=xp.int8)))
    6
    """
    x = _array("sum", x)
    d = _acc_dtype("sum", x, dtype)
    if d.kind == "c":  # (fusejit's sum takes real tensors: the parts are summed)
        x = x if x.dtype is d else E.cast(x, d)
        re, im = (_reduce(reductions.sum, "sum", p, axis, keepdims) for p in (real(x), imag(x)))
        return make(re, im)
    return _reduce(reductions.sum, "sum", x, axis, keepdims, dtype=d)


def prod(x: Tensor, /, *, axis=None, dtype=None, keepdims: bool = False) -> Tensor:
    """The product along ``axis`` (all axes when None).

    >>> import fusejit.array_api as xp
    >>> int(xp.prod(xp.asarray([2, 3])))
    6
    """
    x = _array("prod", x)
    d = _acc_dtype("prod", x, dtype)
    x = _array("prod", x)
    axes = _axes("prod", x, axis)
    if not axes or x.ndim == 0:
        return _noop(None, x, {"dtype": d})
    if d.kind == "c":
        return C.run("prod", x, axis=axes, dtype=d, keepdims=keepdims)
    r = x if x.dtype is d else E.cast(x, d)
    for a in sorted(axes, reverse=True):  # (fusejit's prod takes one dim)
        r = reductions.prod(r, a, keepdims, dtype=d)
    return r


def _float_only(name: str, x: Tensor) -> None:
    if x.dtype.kind not in "fc":
        raise TypeError(f"{name}: expected a float array, got {x.dtype.name}")


def mean(x: Tensor, /, *, axis=None, keepdims: bool = False) -> Tensor:
    """The mean along ``axis`` (float arrays).

    >>> import fusejit.array_api as xp
    >>> float(xp.mean(xp.asarray([1.0, 2.0])))
    1.5
    """
    x = _array("mean", x)
    _float_only("mean", x)
    return _reduce(reductions.mean, "mean", x, axis, keepdims)


def _var_like(fn, name, x, axis, correction, keepdims):
    x = _array(name, x)
    _float_only(name, x)
    axes = _axes(name, x, axis)
    if x.ndim == 0 or not axes:
        r = x * 0.0
        return E.where(E.isnan(x), x, r) if x.ndim == 0 and axes else r
    return fn(x, axes, correction=correction, keepdim=keepdims)


def var(x: Tensor, /, *, axis=None, correction=0.0, keepdims: bool = False) -> Tensor:
    """The variance along ``axis`` (``correction`` degrees of freedom less).

    >>> import fusejit.array_api as xp
    >>> float(xp.var(xp.asarray([1.0, 3.0])))
    1.0
    """
    return _var_like(reductions.var, "var", x, axis, correction, keepdims)


def std(x: Tensor, /, *, axis=None, correction=0.0, keepdims: bool = False) -> Tensor:
    """The standard deviation along ``axis`` (``correction`` degrees of freedom less).

    >>> import fusejit.array_api as xp
    >>> float(xp.std(xp.asarray([1.0, 3.0])))
    1.0
    """
    return _var_like(reductions.std, "std", x, axis, correction, keepdims)


def max(x: Tensor, /, *, axis=None, keepdims: bool = False) -> Tensor:  # noqa: A001
    """The maximum along ``axis`` (NaN where a NaN is).

    >>> import fusejit.array_api as xp
    >>> int(xp.max(xp.asarray([1, 5, 2])))
    5
    """
    x = _array("max", x)
    if x.numel() == 0:
        raise ValueError("max: the maximum of an empty array is not defined")
    return _reduce(reductions.amax, "max", x, axis, keepdims)


def min(x: Tensor, /, *, axis=None, keepdims: bool = False) -> Tensor:  # noqa: A001
    """The minimum along ``axis`` (NaN where a NaN is).

    >>> import fusejit.array_api as xp
    >>> int(xp.min(xp.asarray([1, 5, 2])))
    1
    """
    x = _array("min", x)
    if x.numel() == 0:
        raise ValueError("min: the minimum of an empty array is not defined")
    return _reduce(reductions.amin, "min", x, axis, keepdims)


def all(x: Tensor, /, *, axis=None, keepdims: bool = False) -> Tensor:  # noqa: A001
    """True where every element along ``axis`` is nonzero.

    >>> import fusejit.array_api as xp
    >>> bool(xp.all(xp.asarray([1, 0])))
    False
    """
    return _reduce(reductions.all, "all", E.ne(_array("all", x), 0), axis, keepdims)


def any(x: Tensor, /, *, axis=None, keepdims: bool = False) -> Tensor:  # noqa: A001
    """True where some element along ``axis`` is nonzero.

    >>> import fusejit.array_api as xp
    >>> bool(xp.any(xp.asarray([1, 0])))
    True
    """
    return _reduce(reductions.any, "any", E.ne(_array("any", x), 0), axis, keepdims)


def _cumulative(fn, name, x, axis, dtype, include_initial, initial):
    x = _array(name, x)
    if axis is None:
        if x.ndim > 1:
            raise ValueError(f"{name}: axis is required for arrays of more than one dim")
        axis = 0
    if x.ndim == 0:
        raise ValueError(f"{name}: not defined for 0-d arrays")
    d = _acc_dtype(name, x, dtype)
    xc = x if x.dtype is d else E.cast(x, d)
    if d.kind == "c":
        r = C.run("cumsum" if fn is reductions.cumsum else "cumprod", xc, axis=axis)
    else:
        r = fn(xc, axis, dtype=d)
    if include_initial:
        shape = list(x.shape)
        shape[axis] = 1
        first = creation.ones(tuple(shape), dtype=d, device=x.device) * initial
        r = movement.cat([first, r],
                         axis)  # fmt: skip
    return r


def cumulative_sum(x, /, *, axis=None, dtype=None, include_initial: bool = False) -> Tensor:
    """The running sums along ``axis`` (a leading 0 with ``include_initial``).

    >>> import fusejit.array_api as xp
    >>> xp.cumulative_sum(xp.asarray([1, 2, 3]), include_initial=True).tolist()
    [0, 1, 3, 6]
    """
    return _cumulative(reductions.cumsum, "cumulative_sum", x, axis, dtype, include_initial, 0)


def cumulative_prod(x, /, *, axis=None, dtype=None, include_initial: bool = False) -> Tensor:
    """The running products along ``axis`` (a leading 1 with ``include_initial``).

    >>> import fusejit.array_api as xp
    >>> xp.cumulative_prod(xp.asarray([1, 2, 3])).tolist()
    [1, 2, 6]
    """
    return _cumulative(reductions.cumprod, "cumulative_prod", x, axis, dtype, include_initial, 1)


def _pair(name: str, x1, x2):
    x1, x2 = _array(name, x1), _array(name, x2)
    d = promote(x1.dtype, x2.dtype)
    return (x1 if x1.dtype is d else E.cast(x1, d)), (x2 if x2.dtype is d else E.cast(x2, d))


def matmul(x1: Tensor, x2: Tensor, /) -> Tensor:
    """The matrix product (1-d operands as vectors), batched over leading dims.

    >>> import fusejit.array_api as xp
    >>> xp.matmul(xp.asarray([[1, 2]]), xp.asarray([[3], [4]])).tolist()
    [[11]]
    """
    a, b = _pair("matmul", x1, x2)
    if a.ndim == 0 or b.ndim == 0:
        raise ValueError("matmul: operands must have at least one dim")
    if C.is_complex(a):
        return C.run("matmul", a, b)
    return linalg.matmul(a, b)


def matrix_transpose(x: Tensor, /) -> Tensor:
    """``x`` with its last two axes swapped.

    >>> import fusejit.array_api as xp
    >>> xp.matrix_transpose(xp.zeros((2, 3))).shape
    (3, 2)
    """
    x = _array("matrix_transpose", x)
    if x.ndim < 2:
        raise ValueError("matrix_transpose: the array needs at least 2 dims")
    return movement.transpose(x, -1, -2)


def tensordot(x1: Tensor, x2: Tensor, /, *, axes=2) -> Tensor:
    """The sum of products over ``axes`` (a count of trailing / leading axes, or two lists).

    >>> import fusejit.array_api as xp
    >>> int(xp.tensordot(xp.asarray([1, 2]), xp.asarray([3, 4]), axes=1))
    11
    """
    a, b = _pair("tensordot", x1, x2)
    if not isinstance(axes, numbers.Integral):
        axes = (list(axes[0]), list(axes[1]))
    if C.is_complex(a):
        return C.run("tensordot", a, b, axes=axes)
    return linalg.tensordot(a, b, axes)


def vecdot(x1: Tensor, x2: Tensor, /, *, axis: int = -1) -> Tensor:
    """The dot product along ``axis`` (conjugating ``x1``), broadcast over the others.

    >>> import fusejit.array_api as xp
    >>> xp.vecdot(xp.asarray([[1, 2]]), xp.asarray([3, 4])).tolist()
    [11]
    """
    a, b = _pair("vecdot", x1, x2)
    n = builtins.max(a.ndim, b.ndim)
    if not -n <= axis < 0 and not 0 <= axis < n:
        raise IndexError(f"vecdot: axis {axis} out of range")
    if axis >= 0:
        axis -= n
    if a.ndim < -axis or b.ndim < -axis or a.shape[axis] != b.shape[axis]:
        raise ValueError(f"vecdot: sizes along axis {axis} differ: {a.shape}, {b.shape}")
    if a.dtype.kind == "c":
        a = conj(a)
    return sum(a * b, axis=axis, dtype=a.dtype)
