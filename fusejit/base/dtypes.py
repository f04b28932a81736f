"""dtypes and type promotion.

Promotion between tensors follows the Array API standard inside a kind (bool, signed int,
unsigned int, float) and PyTorch across kinds (an int tensor with a float tensor gives the float
tensor's dtype; bool with anything gives the other). Operands fall in three groups, as in
PyTorch's ``torch.result_type``: tensors with dimensions, 0-d tensors, Python scalars (a float
counts as the default float dtype, float32, an int as int64). A lower group takes part only when
its category (bool < integer < float) is above every operand of the higher groups: ``float32``
with a 0-d ``float64`` stays float32, ``int16`` with a Python int or a 0-d ``int64`` stays
int16, ``int32`` with a Python float (or a 0-d ``float64``) gives float32 (float64).

The full table is written out in ``CONTRIBUTING.md`` and ``tests/test_dtypes.py`` checks it
against numpy 2 on the pairs both define.
"""

from __future__ import annotations

import numpy as np

from fusejit.base.errors import DTypeError

__all__ = [
    "DType",
    "bool_",
    "int8",
    "int16",
    "int32",
    "int64",
    "uint8",
    "float16",
    "float32",
    "float64",
    "complex64",
    "complex128",
    "ALL_DTYPES",
    "COMPLEX_DTYPES",
    "as_dtype",
    "promote_types",
    "result_type",
    "default_float",
]


class DType:
    """A tensor element type. Compare with ``is`` or ``==``; print as ``fusejit.float32``."""

    __slots__ = ("name", "np", "kind", "itemsize", "rank", "short")

    def __init__(self, name: str, np_dtype: type, kind: str, rank: int, short: str) -> None:
        self.name = name
        self.np = np.dtype(np_dtype)
        self.kind = kind  # "b" bool, "i" signed int, "u" unsigned int, "f" float, "c" complex
        self.itemsize = self.np.itemsize
        self.rank = rank  # position inside its kind's lattice
        self.short = short  # used in kernel names and cache keys

    @property
    def is_floating_point(self) -> bool:
        return self.kind == "f"

    @property
    def is_integer(self) -> bool:
        return self.kind in "iu"

    @property
    def is_complex(self) -> bool:
        return self.kind == "c"

    @property
    def is_bool(self) -> bool:
        return self.kind == "b"

    def __repr__(self) -> str:
        return f"fusejit.{self.name}"

    def __reduce__(self):  # dtypes are singletons, also through copy/deepcopy
        return (as_dtype, (self.name,))


bool_ = DType("bool", np.bool_, "b", 0, "b1")
int8 = DType("int8", np.int8, "i", 1, "i1")
int16 = DType("int16", np.int16, "i", 2, "i2")
int32 = DType("int32", np.int32, "i", 3, "i4")
int64 = DType("int64", np.int64, "i", 4, "i8")
uint8 = DType("uint8", np.uint8, "u", 1, "u1")
float16 = DType("float16", np.float16, "f", 1, "f2")
float32 = DType("float32", np.float32, "f", 2, "f4")
float64 = DType("float64", np.float64, "f", 3, "f8")
complex64 = DType("complex64", np.complex64, "c", 2, "c8")
complex128 = DType("complex128", np.complex128, "c", 3, "c16")

ALL_DTYPES: tuple[DType, ...] = (
    bool_,
    uint8,
    int8,
    int16,
    int32,
    int64,
    float16,
    float32,
    float64,
)
INT_DTYPES = tuple(d for d in ALL_DTYPES if d.is_integer)
FLOAT_DTYPES = tuple(d for d in ALL_DTYPES if d.is_floating_point)
# not in ALL_DTYPES: the lists of "every dtype" that ops, kernels and tests iterate stay real
COMPLEX_DTYPES: tuple[DType, ...] = (complex64, complex128)
_EVERY = ALL_DTYPES + COMPLEX_DTYPES

default_float = float32
default_int = int64
default_complex = complex64

_BY_NAME = {d.name: d for d in _EVERY}
_BY_NAME.update({"bool_": bool_, "half": float16, "float": float32, "double": float64})
_BY_NAME.update({"long": int64, "int": int32, "short": int16})
_BY_NAME.update({"cfloat": complex64, "cdouble": complex128})
_BY_NP = {d.np: d for d in _EVERY}


def as_dtype(obj) -> DType:
    """Turn a fusejit dtype, numpy dtype, Python type or name into a ``DType``.

    >>> as_dtype("float32") is float32
    True
    """
    if isinstance(obj, DType):
        return obj
    if isinstance(obj, np.dtype):  # the common case inside fusejit: an array's dtype
        d = _BY_NP.get(obj)
        if d is not None:
            return d
    if isinstance(obj, str) and obj in _BY_NAME:
        return _BY_NAME[obj]
    if obj is bool:
        return bool_
    if obj is int:
        return int64
    if obj is float:
        return default_float
    if obj is complex:
        return default_complex
    try:
        npd = np.dtype(obj)
    except TypeError:
        npd = None
    if npd is not None and npd in _BY_NP:
        return _BY_NP[npd]
    supported = ", ".join(d.name for d in _EVERY)
    raise DTypeError(f"unsupported dtype {obj!r}; fusejit supports {supported}")


def complex_of(d: DType) -> DType:
    """The complex dtype whose parts hold dtype ``d`` (complex64 for bool, ints, float16 and
    float32; complex128 for float64): what ``d`` promotes to with a complex value.

    >>> complex_of(float64)
    fusejit.complex128
    """
    if d.kind == "c":
        return d
    return complex128 if d is float64 else complex64


def real_of(d: DType) -> DType:
    """The dtype of a complex dtype's parts (float32 for complex64); ``d`` itself if real.

    >>> real_of(complex128)
    fusejit.float64
    """
    return {complex64: float32, complex128: float64}.get(d, d)


def _promote(a: DType, b: DType) -> DType:
    if a is b:
        return a
    if a.kind == "c" or b.kind == "c":  # as PyTorch: the complex type whose parts hold both
        c, other = (a, b) if a.kind == "c" else (b, a)
        if other.kind == "c":
            return a if a.rank >= b.rank else b
        return complex128 if c is complex128 or other is float64 else complex64
    if a.kind == "b":
        return b
    if b.kind == "b":
        return a
    if a.kind == b.kind:
        return a if a.rank >= b.rank else b
    if a.kind == "f" and b.kind != "f":
        return a
    if b.kind == "f" and a.kind != "f":
        return b
    # signed with unsigned: the only unsigned type is uint8, so the signed type wins when it is
    # wider than 8 bits, and int8 with uint8 gives int16 (as in the Array API).
    s, u = (a, b) if a.kind == "i" else (b, a)
    return s if s.itemsize > u.itemsize else int16


_TABLE: dict[tuple[DType, DType], DType] = {(a, b): _promote(a, b) for a in _EVERY for b in _EVERY}


def promote_types(a: DType, b: DType) -> DType:
    """The dtype of an elementwise op between tensors of dtypes ``a`` and ``b``.

    >>> promote_types(int32, float16)
    fusejit.float16
    """
    return _TABLE[(as_dtype(a), as_dtype(b))]


def scalar_kind(value) -> str | None:
    """'b', 'i', 'f' or 'c' for a Python (or numpy) scalar, None for anything else."""
    if isinstance(value, (bool, np.bool_)):
        return "b"
    if isinstance(value, (int, np.integer)):
        return "i"
    if isinstance(value, (float, np.floating)):
        return "f"
    if isinstance(value, (complex, np.complexfloating)):
        return "c"
    return None


_KIND_ORDER = {"b": 0, "i": 1, "u": 1, "f": 2, "c": 3}
_SCALAR_DTYPE = {"b": bool_, "i": default_int, "f": default_float, "c": default_complex}


def combine_groups(higher: DType | None, lower: DType | None) -> DType | None:
    """The dtype of a higher-priority group of operands (``higher``: tensors with dimensions,
    or 0-d tensors) with a lower one (0-d tensors, or Python scalars); None for an empty group.
    The lower group counts only when its category (bool < integer < float < complex) is above
    the higher's: then the two promote, else the higher group decides."""
    if higher is None:
        return lower
    if lower is None or _KIND_ORDER[lower.kind] <= _KIND_ORDER[higher.kind]:
        return higher
    return _TABLE[(higher, lower)]


def promote_with_scalar(t: DType, kind: str) -> DType:
    """The dtype when a tensor of dtype ``t`` meets a weak Python scalar of ``kind``."""
    if _KIND_ORDER[kind] <= _KIND_ORDER[t.kind]:
        return t
    if kind == "c":
        return complex_of(t)
    return default_float if kind == "f" else default_int


def promote_groups(dims: DType | None, zero_dim: DType | None, scalar_kinds) -> DType | None:
    """The promoted dtype of tensors with dimensions (promoted to ``dims``), 0-d tensors
    (``zero_dim``) and Python scalars of ``scalar_kinds`` ('b', 'i', 'f', 'c'); None when there are
    no operands."""
    scalar = None
    if scalar_kinds:
        scalar = _SCALAR_DTYPE[max(scalar_kinds, key=_KIND_ORDER.__getitem__)]
    return combine_groups(dims, combine_groups(zero_dim, scalar))


def result_type(*operands) -> DType:
    """Promote tensors, dtypes and Python scalars the way elementwise ops do, as
    ``torch.result_type``: tensors with dimensions first, then 0-d tensors, then Python
    scalars; a later group counts only where its category (bool < integer < float) is above
    the earlier ones'. A bare dtype counts as a tensor with dimensions; an object with a
    ``dtype`` and an empty ``shape`` (a 0-d tensor, a graph value's type) as a 0-d tensor.

    >>> import fusejit
    >>> result_type(fusejit.ones(2, dtype=fusejit.int32), 2.5)
    fusejit.float32
    >>> f64 = fusejit.float64
    >>> result_type(fusejit.ones(2), fusejit.tensor(2.0, dtype=f64))
    fusejit.float32
    >>> result_type(fusejit.ones(2, dtype=fusejit.int16), fusejit.tensor(5.0, dtype=f64))
    fusejit.float64
    """
    dims = zero_dim = None
    scalar_kinds = []
    for op in operands:
        if isinstance(op, DType):
            dims = op if dims is None else _TABLE[(dims, op)]
            continue
        d = getattr(op, "dtype", None)
        if isinstance(d, DType):
            if len(getattr(op, "shape", (1,))) == 0:
                zero_dim = d if zero_dim is None else _TABLE[(zero_dim, d)]
            else:
                dims = d if dims is None else _TABLE[(dims, d)]
        else:
            kind = scalar_kind(op)
            if kind is None:
                raise TypeError(f"cannot promote a value of type {type(op).__name__}")
            scalar_kinds.append(kind)
    r = promote_groups(dims, zero_dim, scalar_kinds)
    if r is None:
        raise TypeError("result_type: expected at least one operand")
    return r
