"""The standard's ``linalg`` extension, on ``fusejit.linalg`` (whose decompositions are op-table
entries: they trace and save). Operands of two dtypes are promoted by the standard's table.

>>> import fusejit.array_api as xp
>>> float(xp.linalg.det(xp.asarray([[2.0, 0.0], [0.0, 3.0]])))
6.0
"""

from __future__ import annotations

import fusejit.eager.elementwise as E
from fusejit.array_api import _eager_complex as C
from fusejit.array_api._manipulation import _Result
from fusejit.array_api._statistical import _pair, matmul, matrix_transpose, tensordot, vecdot
from fusejit.eager import creation, movement
from fusejit.eager import linalg as _products
from fusejit.eager import linalg_functions as L
from fusejit.eager.tensor import Tensor

__all__ = [
    "cholesky", "cross", "det", "diagonal", "eigh", "eigvalsh", "inv", "matmul", "matrix_norm",
    "matrix_power", "matrix_rank", "matrix_transpose", "outer", "pinv", "qr", "slogdet",
    "solve", "svd", "svdvals", "tensordot", "trace", "vecdot", "vector_norm",
]  # fmt: skip


class EighResult(_Result):
    _fields = ("eigenvalues", "eigenvectors")


class QRResult(_Result):
    _fields = ("Q", "R")


class SlogdetResult(_Result):
    _fields = ("sign", "logabsdet")


class SVDResult(_Result):
    _fields = ("U", "S", "Vh")


def cholesky(x: Tensor, /, *, upper: bool = False) -> Tensor:
    """The Cholesky factor of symmetric positive-definite ``x`` (lower, or upper)."""
    if C.is_complex(x):
        return C.run("cholesky", x, upper=upper)
    return L.cholesky(x, upper=upper)


def cross(x1: Tensor, x2: Tensor, /, *, axis: int = -1) -> Tensor:
    """The cross product of 3-vectors along ``axis``."""
    a, b = _pair("cross", x1, x2)
    if a.ndim == 0 or b.ndim == 0 or a.shape[axis] != 3 or b.shape[axis] != 3:
        raise ValueError(f"cross: axis {axis} must have size 3 in both, got {a.shape}, {b.shape}")
    if not -min(a.ndim, b.ndim) <= axis < 0:
        raise ValueError(f"cross: axis must be negative and within both arrays, got {axis}")
    return L.cross(a, b, dim=axis)


def det(x: Tensor, /) -> Tensor:
    """The determinant of each matrix."""
    if C.is_complex(x):
        return C.run("det", x)
    return L.det(x)


def diagonal(x: Tensor, /, *, offset: int = 0) -> Tensor:
    """The diagonal ``offset`` of each matrix (the last two axes)."""
    return movement.diagonal(x, offset, -2, -1)


def eigh(x: Tensor, /):
    """Eigenvalues (ascending) and eigenvectors of symmetric ``x``."""
    r = L.eigh(x)
    return EighResult(r[0], r[1])


def eigvalsh(x: Tensor, /) -> Tensor:
    """Eigenvalues (ascending) of symmetric ``x``."""
    return L.eigvalsh(x)


def inv(x: Tensor, /) -> Tensor:
    """The inverse of each matrix."""
    if C.is_complex(x):
        return C.run("inv", x)
    return L.inv(x)


def matrix_norm(x: Tensor, /, *, keepdims: bool = False, ord="fro") -> Tensor:  # noqa: A002
    """The matrix norm ``ord`` of each matrix."""
    if C.is_complex(x):
        if ord == "fro":  # (of the absolute values: traces)
            return L.matrix_norm(E.abs(x), ord, (-2, -1), keepdims)
        return C.run("matrix_norm", x, ord=ord, keepdims=keepdims)
    return L.matrix_norm(x, ord, (-2, -1), keepdims)


def matrix_power(x: Tensor, n: int, /) -> Tensor:
    """``x`` to the integer power ``n`` (negative: of the inverse) by repeated squaring."""
    if x.ndim < 2 or x.shape[-1] != x.shape[-2]:
        raise ValueError(f"matrix_power: expected square matrices, got shape {x.shape}")
    if n < 0:
        x, n = inv(x), -n
    result = None
    base = x
    while n:
        if n & 1:
            result = base if result is None else matmul(result, base)
        n >>= 1
        if n:
            base = matmul(base, base)
    if result is None:  # n == 0: the identity, broadcast over the batch
        eye = creation.eye(x.shape[-1], dtype=x.dtype, device=x.device)
        return movement.broadcast_to(eye, x.shape).clone()
    return result


def matrix_rank(x: Tensor, /, *, rtol=None) -> Tensor:
    """The number of singular values above ``rtol`` times the largest."""
    if C.is_complex(x):
        return C.run("matrix_rank", x, rtol=rtol)
    return L.matrix_rank(x, rtol=_rtol(rtol))


def _rtol(rtol):
    # a one-element array is its number (fusejit.linalg takes numbers)
    if isinstance(rtol, Tensor) and rtol.numel() == 1:
        return float(rtol.item())
    return rtol


def outer(x1: Tensor, x2: Tensor, /) -> Tensor:
    """The outer product of two 1-d arrays."""
    a, b = _pair("outer", x1, x2)
    if a.ndim != 1 or b.ndim != 1:
        raise ValueError("outer: expected two 1-d arrays")
    return _products.outer(a, b)


def pinv(x: Tensor, /, *, rtol=None) -> Tensor:
    """The pseudo-inverse (singular values at most ``rtol`` times the largest count as 0)."""
    rtol = _rtol(rtol)
    if C.is_complex(x) or isinstance(rtol, Tensor):  # (fusejit.linalg.pinv takes a number)
        return C.run("pinv", x, rtol=rtol)
    return L.pinv(x, rtol=rtol)


def qr(x: Tensor, /, *, mode: str = "reduced"):
    """The QR decomposition (``"reduced"`` or ``"complete"``)."""
    r = C.run("qr", x, mode=mode) if C.is_complex(x) else L.qr(x, mode)
    return QRResult(r[0], r[1])


def slogdet(x: Tensor, /):
    """The sign and the log of the absolute value of the determinant."""
    r = C.run("slogdet", x) if C.is_complex(x) else L.slogdet(x)
    return SlogdetResult(r[0], r[1])


def solve(x1: Tensor, x2: Tensor, /) -> Tensor:
    """The solution ``X`` of ``x1 @ X = x2`` (``x2`` a vector when 1-d)."""
    a, b = _pair("solve", x1, x2)
    if C.is_complex(a):
        return C.run("solve", a, b)
    return L.solve(a, b)


def svd(x: Tensor, /, *, full_matrices: bool = True):
    """The singular value decomposition ``U, S, Vh``."""
    r = C.run("svd", x, full_matrices=full_matrices) if C.is_complex(x) else L.svd(x, full_matrices)
    return SVDResult(r[0], r[1], r[2])


def svdvals(x: Tensor, /) -> Tensor:
    """The singular values of each matrix (descending)."""
    if C.is_complex(x):
        return C.run("svdvals", x)
    return L.svdvals(x)


def trace(x: Tensor, /, *, offset: int = 0, dtype=None) -> Tensor:
    """The sum of the diagonal ``offset`` of each matrix."""
    if C.is_complex(x):
        return C.run("trace", x, offset=offset, dtype=dtype)
    return L.trace(x, offset, dtype=dtype)


def vector_norm(x: Tensor, /, *, axis=None, keepdims: bool = False, ord=2) -> Tensor:  # noqa: A002
    """The vector norm ``ord`` along ``axis`` (all axes when None)."""
    if axis is not None and not isinstance(axis, int):
        axis = tuple(axis)
    if C.is_complex(x):  # the norm of the absolute values (traces)
        x = E.abs(x)
    return L.vector_norm(x, ord, axis, keepdims)
