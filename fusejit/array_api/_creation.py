"""The standard's creation functions. Without a ``dtype``, Python floats give float64 (the
namespace's default float, as numpy's and ``array-api-strict``'s), ints int64, complex numbers
complex128 (``__array_namespace_info__().default_dtypes()``)."""

from __future__ import annotations

import math
import numbers

import numpy as np

from fusejit.base import dtypes as dt
from fusejit.base.device import as_device
from fusejit.eager import creation, movement
from fusejit.eager.tensor import Tensor
from fusejit.eager.tensor import from_dlpack as _from_dlpack

__all__ = [
    "arange", "asarray", "empty", "empty_like", "eye", "from_dlpack", "full", "full_like",
    "linspace", "meshgrid", "ones", "ones_like", "tril", "triu", "zeros", "zeros_like",
]  # fmt: skip

DEFAULT_FLOAT = dt.float64
DEFAULT_INT = dt.int64
DEFAULT_COMPLEX = dt.complex128


def _check_dtype(name: str, dtype) -> dt.DType | None:
    if dtype is None or isinstance(dtype, dt.DType):
        return dtype
    raise TypeError(f"{name}: dtype must be a fusejit.array_api dtype, got {dtype!r}")


def _shape(name: str, shape) -> tuple:
    if isinstance(shape, numbers.Integral) and not isinstance(shape, bool):
        return (int(shape),)
    if isinstance(shape, (tuple, list)) and all(
        isinstance(s, numbers.Integral) and not isinstance(s, bool) for s in shape
    ):
        return tuple(int(s) for s in shape)
    raise TypeError(f"{name}: shape must be an int or a tuple of ints, got {shape!r}")


def _scalar_default(name: str, v) -> dt.DType:
    if isinstance(v, (bool, np.bool_)):
        return dt.bool_
    if isinstance(v, numbers.Integral):
        return DEFAULT_INT
    if isinstance(v, numbers.Real):
        return DEFAULT_FLOAT
    if isinstance(v, numbers.Complex):
        return DEFAULT_COMPLEX
    raise TypeError(f"{name}: expected a Python scalar, got {type(v).__name__}")


def _host(arr: np.ndarray, d: dt.DType, device) -> Tensor:
    """A tensor of numpy array ``arr`` as ``d`` on ``device`` (a copy)."""
    dev = as_device(device)
    a = np.array(arr, dtype=d.np, copy=True)
    t = Tensor._wrap(a, d, as_device("cpu"))
    return t if dev.type == "cpu" else t.to(dev)


def _infer(obj) -> dt.DType:
    """The default dtype of nested Python scalars (bool < int < float < complex)."""
    rank = 0
    stack = [obj]
    while stack:
        o = stack.pop()
        if isinstance(o, Tensor):
            rank = max(rank, {"b": 0, "i": 1, "u": 1, "f": 2, "c": 3}[o.dtype.kind])
        elif isinstance(o, (bool, np.bool_)):
            pass
        elif isinstance(o, numbers.Integral):
            rank = max(rank, 1)
        elif isinstance(o, numbers.Real):
            rank = max(rank, 2)
        elif isinstance(o, numbers.Complex):
            rank = 3
        elif isinstance(o, (list, tuple)):
            stack.extend(o)
        else:
            raise TypeError(f"asarray: cannot make an array of a {type(o).__name__}")
    return (dt.bool_, DEFAULT_INT, DEFAULT_FLOAT, DEFAULT_COMPLEX)[rank]


def asarray(obj, /, *, dtype=None, device=None, copy: bool | None = None) -> Tensor:
    """An array of ``obj`` (an array, a Python scalar, nested sequences, a buffer or a DLPack
    capable array): ``copy=None`` copies only when it must, ``True`` always, ``False`` never (a
    ValueError when it would have to).

    >>> import fusejit.array_api as xp
    >>> xp.asarray([1, 2.5]).dtype, xp.asarray([[1, 2]]).shape
    (fusejit.float64, (1, 2))
    """
    dtype = _check_dtype("asarray", dtype)
    dev = None if device is None else as_device(device)
    if isinstance(obj, Tensor):
        x = obj
        if dev is not None and dev != x.device:
            if copy is False:
                raise ValueError(f"asarray: moving an array from {x.device} to {dev} copies it "
                                 "(copy=False)")  # fmt: skip
            x, copy = x.to(dev), False
        if dtype is not None and dtype is not x.dtype:
            if copy is False:
                raise ValueError(
                    f"asarray: casting {x.dtype.name} to {dtype.name} copies (copy=False)"
                )
            return x.to(dtype=dtype)
        return x.clone() if copy else x
    if hasattr(obj, "__dlpack__") and not isinstance(obj, np.ndarray):
        x = from_dlpack(obj, copy=False if copy is False else None)
        return asarray(x, dtype=dtype, device=device, copy=copy)
    if isinstance(obj, np.ndarray) or _is_buffer(obj):
        arr = np.asarray(obj)
        d = dt._BY_NP.get(arr.dtype)
        if d is None:
            raise TypeError(f"asarray: numpy dtype {arr.dtype} has no fusejit dtype")
        x = Tensor._wrap(arr, d, as_device("cpu"))
        if copy is None:
            copy = False
        return asarray(x, dtype=dtype, device=device, copy=copy)
    if copy is False:
        raise ValueError("asarray: a Python object is always copied into an array (copy=False)")
    d = dtype if dtype is not None else _infer(obj)
    try:
        arr = np.array(obj, dtype=d.np)
    except OverflowError as e:
        raise OverflowError(f"asarray: {e} (for {d.name})") from None
    if d.kind in "iu" and isinstance(obj, numbers.Integral):
        info = np.iinfo(d.np)
        if not info.min <= obj <= info.max:
            raise OverflowError(f"asarray: {obj} is out of range for {d.name}")
    return _host(arr, d, dev)


def _is_buffer(obj) -> bool:
    if isinstance(obj, (bytes, bytearray, memoryview)):
        return True
    try:
        memoryview(obj)
    except TypeError:
        return False
    return True


def from_dlpack(x, /, *, device=None, copy: bool | None = None) -> Tensor:
    """An array on the memory of DLPack capable ``x`` (numpy, cupy, torch, ...): ``copy=True``
    copies, ``copy=False`` refuses a copy, ``device`` moves it (a copy).

    >>> import numpy as np, fusejit.array_api as xp
    >>> a = np.arange(3.0); t = xp.from_dlpack(a); a[0] = 7.0; t.tolist()
    [7.0, 1.0, 2.0]
    """
    dev = None if device is None else as_device(device)
    if isinstance(x, Tensor):
        t = x
    else:
        if not hasattr(x, "__dlpack__"):
            raise TypeError(f"from_dlpack: {type(x).__name__} does not support DLPack")
        t = _from_dlpack(x)
    if dev is not None and dev != t.device:
        if copy is False:
            raise ValueError(f"from_dlpack: moving to {dev} copies (copy=False)")
        return t.to(dev)
    return t.clone() if copy else t


def arange(start, /, stop=None, step=1, *, dtype=None, device=None) -> Tensor:
    """``start, start + step, ...`` up to ``stop`` (exclusive); empty when ``step`` points away
    from ``stop``.

    >>> import fusejit.array_api as xp
    >>> xp.arange(5, 1, -2).tolist(), xp.arange(3.0).dtype
    ([5, 3], fusejit.float64)
    """
    dtype = _check_dtype("arange", dtype)
    if stop is None:
        start, stop = 0, start
    ints = all(
        isinstance(v, numbers.Integral) and not isinstance(v, bool) for v in (start, stop, step)
    )
    d = dtype if dtype is not None else (DEFAULT_INT if ints else DEFAULT_FLOAT)
    if step == 0:
        raise ValueError("arange: step must not be 0")
    n = max(0, math.ceil((stop - start) / step)) if not ints else max(0, -((start - stop) // step))
    if n == 0:
        return creation.empty((0,), dtype=d, device=device)
    vals = start + step * np.arange(n, dtype=np.int64 if ints else np.float64)
    return _host(vals, d, device)


def _fill_dtype(name: str, dtype, fill_value) -> dt.DType:
    return dtype if dtype is not None else _scalar_default(name, fill_value)


def zeros(shape, *, dtype=None, device=None) -> Tensor:
    """An array of zeros (float64 by default).

    >>> import fusejit.array_api as xp
    >>> xp.zeros((2, 1)).tolist()
    [[0.0], [0.0]]
    """
    d = _check_dtype("zeros", dtype) or DEFAULT_FLOAT
    return creation.zeros(_shape("zeros", shape), dtype=d, device=device)


def ones(shape, *, dtype=None, device=None) -> Tensor:
    """An array of ones (float64 by default).

    >>> import fusejit.array_api as xp
    >>> xp.ones(2, dtype=xp.int8).tolist()
    [1, 1]
    """
    d = _check_dtype("ones", dtype) or DEFAULT_FLOAT
    return creation.ones(_shape("ones", shape), dtype=d, device=device)


def empty(shape, *, dtype=None, device=None) -> Tensor:
    """An uninitialized array (float64 by default).

    >>> import fusejit.array_api as xp
    >>> xp.empty((2, 3)).shape
    (2, 3)
    """
    d = _check_dtype("empty", dtype) or DEFAULT_FLOAT
    return creation.empty(_shape("empty", shape), dtype=d, device=device)


def full(shape, fill_value, *, dtype=None, device=None) -> Tensor:
    """An array filled with ``fill_value`` (its dtype from the value's Python type by default).

    >>> import fusejit.array_api as xp
    >>> xp.full(2, 3).tolist(), xp.full(1, 0.5).dtype
    ([3, 3], fusejit.float64)
    """
    d = _fill_dtype("full", _check_dtype("full", dtype), fill_value)
    shape = _shape("full", shape)
    if d.kind == "c" or isinstance(fill_value, complex):
        return _host(np.full(shape, fill_value, dtype=d.np), d, device)
    return creation.full(shape, fill_value, dtype=d, device=device)


def _like_args(name: str, x: Tensor, dtype, device):
    if not isinstance(x, Tensor):
        raise TypeError(f"{name}: expected an array, got {type(x).__name__}")
    d = _check_dtype(name, dtype) or x.dtype
    return d, (x.device if device is None else device)


def zeros_like(x: Tensor, /, *, dtype=None, device=None) -> Tensor:
    """Zeros of ``x``'s shape (and dtype and device, unless given).

    >>> import fusejit.array_api as xp
    >>> xp.zeros_like(xp.asarray([1, 2])).tolist()
    [0, 0]
    """
    d, dev = _like_args("zeros_like", x, dtype, device)
    return creation.zeros(x.shape, dtype=d, device=dev)


def ones_like(x: Tensor, /, *, dtype=None, device=None) -> Tensor:
    """Ones of ``x``'s shape (and dtype and device, unless given).

    >>> import fusejit.array_api as xp
    >>> xp.ones_like(xp.asarray([1, 2])).tolist()
    [1, 1]
    """
    d, dev = _like_args("ones_like", x, dtype, device)
    return creation.ones(x.shape, dtype=d, device=dev)


def empty_like(x: Tensor, /, *, dtype=None, device=None) -> Tensor:
    """An uninitialized array of ``x``'s shape (and dtype and device, unless given).

    >>> import fusejit.array_api as xp
    >>> xp.empty_like(xp.asarray([1, 2])).shape
    (2,)
    """
    d, dev = _like_args("empty_like", x, dtype, device)
    return creation.empty(x.shape, dtype=d, device=dev)


def full_like(x: Tensor, /, fill_value, *, dtype=None, device=None) -> Tensor:
    """``fill_value`` in ``x``'s shape (and dtype and device, unless given).

    >>> import fusejit.array_api as xp
    >>> xp.full_like(xp.asarray([1.0, 2.0]), 4).tolist()
    [4.0, 4.0]
    """
    d, dev = _like_args("full_like", x, dtype, device)
    return full(x.shape, fill_value, dtype=d, device=dev)


def eye(n_rows: int, n_cols: int | None = None, /, *, k: int = 0, dtype=None, device=None):
    """A matrix with ones on diagonal ``k`` (float64 by default).

    >>> import fusejit.array_api as xp
    >>> xp.eye(2, 3, k=1, dtype=xp.int32).tolist()
    [[0, 1, 0], [0, 0, 1]]
    """
    d = _check_dtype("eye", dtype) or DEFAULT_FLOAT
    return _host(np.eye(n_rows, n_cols, k=k), d, device)


def linspace(start, stop, /, num: int, *, dtype=None, device=None, endpoint: bool = True):
    """``num`` evenly spaced values from ``start`` to ``stop`` (included when ``endpoint``).

    >>> import fusejit.array_api as xp
    >>> xp.linspace(0, 1, 3).tolist(), xp.linspace(0, 1, 2, endpoint=False).tolist()
    ([0.0, 0.5, 1.0], [0.0, 0.5])
    """
    d = _check_dtype("linspace", dtype)
    if d is None:
        d = DEFAULT_COMPLEX if isinstance(start, complex) or isinstance(stop, complex) else (
            DEFAULT_FLOAT)  # fmt: skip
    vals = np.linspace(start, stop, num, endpoint=endpoint, dtype=np.result_type(d.np, 1.0))
    return _host(vals, d, device)


def meshgrid(*arrays: Tensor, indexing: str = "xy") -> list:
    """Coordinate grids of 1-d arrays (``"xy"``: the first two dims swapped, as numpy).

    >>> import fusejit.array_api as xp
    >>> [g.shape for g in xp.meshgrid(xp.arange(2), xp.arange(3))]
    [(3, 2), (3, 2)]
    """
    if indexing not in ("xy", "ij"):
        raise ValueError(f"meshgrid: indexing must be 'xy' or 'ij', got {indexing!r}")
    if not arrays:
        return []
    if len({a.dtype for a in arrays}) > 1:
        raise TypeError("meshgrid: the arrays must have one dtype")
    return list(movement.meshgrid(*arrays, indexing=indexing))


def tril(x: Tensor, /, *, k: int = 0) -> Tensor:
    """The lower triangle of the last two dims (diagonal ``k`` and below), the rest zero.

    >>> import fusejit.array_api as xp
    >>> xp.tril(xp.ones((2, 2), dtype=xp.int8)).tolist()
    [[1, 0], [1, 1]]
    """
    return movement.tril(x, k)


def triu(x: Tensor, /, *, k: int = 0) -> Tensor:
    """The upper triangle of the last two dims (diagonal ``k`` and above), the rest zero.

    >>> import fusejit.array_api as xp
    >>> xp.triu(xp.ones((2, 2), dtype=xp.int8)).tolist()
    [[1, 1], [0, 1]]
    """
    return movement.triu(x, k)
