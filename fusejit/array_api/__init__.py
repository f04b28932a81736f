"""``fusejit.array_api``: the Python Array API standard's namespace (2024.12; 2023.12 through
``x.__array_namespace__(api_version="2023.12")``), with its ``linalg`` and ``fft`` extensions.

Its arrays are fusejit tensors (no wrapper), so code written against the standard runs
eagerly, traces and fuses as fusejit code does. The functions follow the standard where it
differs from the torch-like API: its type promotion (0-d arrays promote as any array, mixed
kinds are a TypeError), its argument names (``axis``, ``keepdims``, ``copy=``, ``device=``),
float64 as the default float. See ``CONTRIBUTING.md`` ("Decisions") for the choices it leaves.

>>> import fusejit
>>> x = fusejit.arange(4, dtype=fusejit.float32)
>>> xp = x.__array_namespace__()
>>> xp.sum(xp.exp(x) * 2, axis=0).dtype
fusejit.float32
"""

from __future__ import annotations

import math as _math
import types as _types

from fusejit.array_api import fft, linalg
from fusejit.array_api._creation import (
    arange,
    asarray,
    empty,
    empty_like,
    eye,
    from_dlpack,
    full,
    full_like,
    linspace,
    meshgrid,
    ones,
    ones_like,
    tril,
    triu,
    zeros,
    zeros_like,
)  # fmt: skip
from fusejit.array_api._dtypes import astype, can_cast, finfo, iinfo, isdtype, result_type
from fusejit.array_api._elementwise import *  # noqa: F403
from fusejit.array_api._elementwise import __all__ as _elementwise_all
from fusejit.array_api._info import __array_namespace_info__
from fusejit.array_api._manipulation import (
    argmax,
    argmin,
    argsort,
    broadcast_arrays,
    broadcast_to,
    concat,
    count_nonzero,
    diff,
    expand_dims,
    flip,
    moveaxis,
    nonzero,
    permute_dims,
    repeat,
    reshape,
    roll,
    searchsorted,
    sort,
    squeeze,
    stack,
    take,
    take_along_axis,
    tile,
    unique_all,
    unique_counts,
    unique_inverse,
    unique_values,
    unstack,
    where,
)  # fmt: skip
from fusejit.array_api._methods import bind as _bind
from fusejit.array_api._statistical import (
    all,
    any,
    cumulative_prod,
    cumulative_sum,
    matmul,
    matrix_transpose,
    max,
    mean,
    min,
    prod,
    std,
    sum,
    tensordot,
    var,
    vecdot,
)  # fmt: skip
from fusejit.base.dtypes import (
    bool_ as bool,  # noqa: A004 - the standard's name
)  # fmt: skip
from fusejit.base.dtypes import (
    complex64,
    complex128,
    float32,
    float64,
    int8,
    int16,
    int32,
    int64,
    uint8,
)

__array_api_version__ = "2024.12"

e, inf, nan, pi = _math.e, _math.inf, _math.nan, _math.pi
newaxis = None

__all__ = [
    "__array_api_version__", "__array_namespace_info__", "bool", "complex64", "complex128",
    "float32", "float64", "int8", "int16", "int32", "int64", "uint8", "e", "inf", "nan", "pi",
    "newaxis", "fft", "linalg",
    "arange", "asarray", "empty", "empty_like", "eye", "from_dlpack", "full", "full_like",
    "linspace", "meshgrid", "ones", "ones_like", "tril", "triu", "zeros", "zeros_like",
    "astype", "can_cast", "finfo", "iinfo", "isdtype", "result_type",
    "argmax", "argmin", "argsort", "broadcast_arrays", "broadcast_to", "concat", "count_nonzero",
    "diff", "expand_dims", "flip", "moveaxis", "nonzero", "permute_dims", "repeat", "reshape",
    "roll", "searchsorted", "sort", "squeeze", "stack", "take", "take_along_axis", "tile",
    "unique_all", "unique_counts", "unique_inverse", "unique_values", "unstack", "where",
    "all", "any", "cumulative_prod", "cumulative_sum", "matmul", "matrix_transpose", "max",
    "mean", "min", "prod", "std", "sum", "tensordot", "var", "vecdot",
    *_elementwise_all,
]  # fmt: skip

# The 2023.12 namespace: the same functions less those 2024.12 added (its elementwise functions
# took no Python scalars; the functions here accept them, which that version leaves open).
_NEW_IN_2024 = ("count_nonzero", "cumulative_prod", "diff", "nextafter", "reciprocal",
                "take_along_axis")  # fmt: skip
v2023_12 = _types.ModuleType("fusejit.array_api", __doc__)
v2023_12.__dict__.update({k: v for k, v in globals().items()
                          if k in __all__ and k not in _NEW_IN_2024})  # fmt: skip
v2023_12.__array_api_version__ = "2023.12"

_bind()
