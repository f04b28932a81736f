"""The standard's data types and its type promotion (in this namespace only: the torch-like API
keeps PyTorch's, whose 0-d tensors promote as a group of their own).

Promotion follows the standard's table inside a kind (bool, integer, real float, complex, with
a real float and a complex giving the complex type of the wider precision) and refuses mixed
kinds (an integer array with a float array), as ``array-api-strict`` does where the standard
leaves them unspecified. 0-d arrays promote as any array. A Python scalar takes the array's
dtype: a bool only with bool arrays, an int with integer and float arrays (in range for an
integer dtype), a float with float arrays, a complex with float arrays (a real float array then
gives its complex type).
"""

from __future__ import annotations

from fusejit.base import dtypes as dt
from fusejit.base.finfo import finfo as _finfo
from fusejit.base.finfo import iinfo as _iinfo
from fusejit.eager.elementwise import cast
from fusejit.eager.tensor import Tensor

__all__ = ["astype", "can_cast", "finfo", "iinfo", "isdtype", "result_type"]

_COMPLEX_OF = {dt.float32: dt.complex64, dt.float64: dt.complex128, dt.float16: dt.complex64}
_REAL_OF = {dt.complex64: dt.float32, dt.complex128: dt.float64}


def _family(d: dt.DType) -> str:
    return {"b": "bool", "i": "int", "u": "int", "f": "float", "c": "float"}[d.kind]


def promote(d1: dt.DType, d2: dt.DType) -> dt.DType:
    """The standard's promotion of two dtypes; mixed kinds are a TypeError."""
    if d1 is d2:
        return d1
    if _family(d1) != _family(d2):
        raise TypeError(
            f"array_api: {d1.name} and {d2.name} do not promote (the standard defines no "
            "promotion between kinds); convert one with astype"
        )
    if d1.kind == "c" or d2.kind == "c":
        r1, r2 = _REAL_OF.get(d1, d1), _REAL_OF.get(d2, d2)
        return _COMPLEX_OF[dt.promote_types(r1, r2)]
    return dt.promote_types(d1, d2)


def scalar_dtype(d: dt.DType, s, name: str = "array_api") -> dt.DType:
    """The dtype of an operation of an array of dtype ``d`` with Python scalar ``s``."""
    if isinstance(s, bool):
        if d.kind != "b":
            raise TypeError(f"{name}: a Python bool meets only bool arrays, got {d.name}")
        return d
    if isinstance(s, int):
        if d.kind == "b":
            raise TypeError(f"{name}: a Python int does not meet a bool array")
        if d.kind in "iu":
            info = _iinfo(d)
            if not info.min <= s <= info.max:
                raise OverflowError(f"{name}: the Python int {s} is out of range for {d.name}")
        return d
    if isinstance(s, float):
        if d.kind not in "fc":
            raise TypeError(f"{name}: a Python float meets only float arrays, got {d.name}")
        return d
    if isinstance(s, complex):
        if d.kind not in "fc":
            raise TypeError(f"{name}: a Python complex meets only float arrays, got {d.name}")
        return _COMPLEX_OF.get(d, d)
    raise TypeError(f"{name}: expected an array or a Python scalar, got {type(s).__name__}")


def result_type(*arrays_and_dtypes) -> dt.DType:
    """The dtype the standard's promotion gives for arrays, dtypes and Python scalars.

    >>> import fusejit.array_api as xp
    >>> xp.result_type(xp.int8, xp.uint8), xp.result_type(xp.asarray(1.0, dtype=xp.float32), 2)
    (fusejit.int16, fusejit.float32)
    """
    dtypes, scalars = [], []
    for a in arrays_and_dtypes:
        if isinstance(a, Tensor):
            dtypes.append(a.dtype)
        elif isinstance(a, dt.DType):
            dtypes.append(a)
        elif isinstance(a, (bool, int, float, complex)):
            scalars.append(a)
        else:
            raise TypeError(
                f"result_type: expected arrays, dtypes or Python scalars, got {type(a).__name__}"
            )
    if not dtypes:
        raise ValueError("result_type: at least one array or dtype is required")
    r = dtypes[0]
    for d in dtypes[1:]:
        r = promote(r, d)
    for s in scalars:
        r = scalar_dtype(r, s, "result_type")
    return r


def can_cast(from_, to: dt.DType, /) -> bool:
    """True when the standard's promotion of ``from_`` and ``to`` gives ``to``.

    >>> import fusejit.array_api as xp
    >>> xp.can_cast(xp.int8, xp.int32), xp.can_cast(xp.float64, xp.float32)
    (True, False)
    """
    d = from_.dtype if isinstance(from_, Tensor) else from_
    if not isinstance(d, dt.DType) or not isinstance(to, dt.DType):
        raise TypeError("can_cast: expected an array or a dtype, and a dtype")
    try:
        return promote(d, to) is to
    except TypeError:
        return False


_KINDS = {
    "bool": lambda d: d.kind == "b",
    "signed integer": lambda d: d.kind == "i",
    "unsigned integer": lambda d: d.kind == "u",
    "integral": lambda d: d.kind in "iu",
    "real floating": lambda d: d.kind == "f",
    "complex floating": lambda d: d.kind == "c",
    "numeric": lambda d: d.kind in "iufc",
}


def isdtype(dtype: dt.DType, kind) -> bool:
    """True when ``dtype`` is of ``kind`` (a dtype, a kind name, or a tuple of them).

    >>> import fusejit.array_api as xp
    >>> xp.isdtype(xp.int8, "integral"), xp.isdtype(xp.float32, ("bool", xp.float64))
    (True, False)
    """
    if not isinstance(dtype, dt.DType):
        raise TypeError(f"isdtype: expected a dtype, got {type(dtype).__name__}")
    if isinstance(kind, tuple):
        return any(isdtype(dtype, k) for k in kind)
    if isinstance(kind, dt.DType):
        return dtype is kind
    if isinstance(kind, str):
        if kind not in _KINDS:
            raise ValueError(f"isdtype: unknown kind {kind!r}; expected one of {sorted(_KINDS)}")
        return _KINDS[kind](dtype)
    raise TypeError(f"isdtype: kind must be a dtype, a str or a tuple, got {type(kind).__name__}")


class Info:
    """The fields of ``finfo`` / ``iinfo`` (``dtype`` a dtype object, as the standard asks)."""

    def __init__(self, **fields) -> None:
        self.__dict__.update(fields)

    def __repr__(self) -> str:
        return "Info(" + ", ".join(f"{k}={v!r}" for k, v in self.__dict__.items()) + ")"


def finfo(type, /):  # noqa: A002 - the standard's parameter name
    """Machine limits of a float dtype (or of an array's dtype); complex gives its real part's.

    >>> import fusejit.array_api as xp
    >>> xp.finfo(xp.float32).bits
    32
    """
    d = type.dtype if isinstance(type, Tensor) else type
    if not isinstance(d, dt.DType) or d.kind not in "fc":
        raise TypeError(f"finfo: expected a float dtype or array, got {d!r}")
    d = _REAL_OF.get(d, d)
    f = _finfo(d)
    return Info(bits=f.bits, eps=f.eps, max=f.max, min=f.min, smallest_normal=f.tiny, dtype=d)


def iinfo(type, /):  # noqa: A002 - the standard's parameter name
    """Machine limits of an integer dtype (or of an array's dtype).

    >>> import fusejit.array_api as xp
    >>> xp.iinfo(xp.int8).max
    127
    """
    d = type.dtype if isinstance(type, Tensor) else type
    if not isinstance(d, dt.DType) or d.kind not in "iu":
        raise TypeError(f"iinfo: expected an integer dtype or array, got {d!r}")
    f = _iinfo(d)
    return Info(bits=f.bits, max=int(f.max), min=int(f.min), dtype=d)


def astype(x: Tensor, dtype: dt.DType, /, *, copy: bool = True, device=None) -> Tensor:
    """``x`` converted to ``dtype`` (and moved to ``device``); ``copy=False`` returns ``x``
    itself when nothing changes.

    >>> import fusejit.array_api as xp
    >>> xp.astype(xp.asarray([1.5, -2.5]), xp.int32).tolist()
    [1, -2]
    """
    if not isinstance(x, Tensor):
        raise TypeError(f"astype: expected an array, got {type(x).__name__}")
    if not isinstance(dtype, dt.DType):
        raise TypeError(f"astype: dtype must be a dtype, got {dtype!r}")
    if device is not None and device != x.device:
        x = x.to(device)
        copy = False  # the move made a new array
    if dtype is x.dtype:
        return x.clone() if copy else x
    if x.dtype.kind == "c" and dtype.kind != "c":
        raise TypeError(f"astype: a complex array cannot be cast to {dtype.name}")
    return cast(x, dtype)
