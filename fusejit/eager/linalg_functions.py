"""The public functions of ``fusejit.linalg`` (as ``torch.linalg``): norms written with
reductions, and the decompositions and solvers of the op table (``fusejit/ops/linalg.py``:
numpy on the CPU, cupy on the GPU), batched over leading dims. float32 and float64 only: float16,
ints and bool are a ``DTypeError`` naming the function (as PyTorch refuses them); a singular
matrix for ``inv`` / ``solve`` and one that is not positive-definite for ``cholesky`` are a
``LinAlgError``. Also ``cdist`` (``fusejit.cdist``), built on ``vector_norm``.
"""

from __future__ import annotations

import builtins
from typing import NamedTuple

import numpy as np

from fusejit.base import dtypes as dt
from fusejit.base.errors import DTypeError, ShapeError, fmt_shape
from fusejit.base.shapes import dims_arg, norm_dims
from fusejit.eager import dispatch, reductions
from fusejit.eager.elementwise import cast, where
from fusejit.eager.linalg import cross as _cross
from fusejit.eager.linalg import einsum, matmul
from fusejit.eager.movement import movedim, unsqueeze
from fusejit.eager.tensor import Tensor
from fusejit.ops import linalg as L

INF = float("inf")


class QRResult(NamedTuple):
    Q: Tensor
    R: Tensor


class SVDResult(NamedTuple):
    U: Tensor
    S: Tensor
    Vh: Tensor


class EighResult(NamedTuple):
    eigenvalues: Tensor
    eigenvectors: Tensor


class SlogdetResult(NamedTuple):
    sign: Tensor
    logabsdet: Tensor


class LstsqResult(NamedTuple):
    solution: Tensor
    residuals: Tensor
    rank: Tensor
    singular_values: Tensor


def _matrix_arg(name: str, A, square: bool = False, arg: str = "A") -> None:
    """A float32 / float64 tensor of 2 or more dims (square matrices with ``square``)."""
    if not isinstance(A, Tensor):
        raise TypeError(f"linalg.{name}: {arg} must be a tensor, got {type(A).__name__}")
    if A.dtype not in (dt.float32, dt.float64):
        why = "low precision dtypes are not supported" if A.dtype is dt.float16 else (
            "expected a floating-point tensor")  # fmt: skip
        raise DTypeError(f"linalg.{name}: {why}; {arg} is {A.dtype.name} (use float32 or "
                         "float64)")  # fmt: skip
    if A.ndim < 2:
        raise ShapeError(
            f"linalg.{name}: {arg} must be a matrix or a batch of matrices, got shape "
            f"{fmt_shape(A.shape)}"
        )
    if square and A.shape[-1] != A.shape[-2]:
        raise ShapeError(
            f"linalg.{name}: {arg} must be a (batch of) square matrices, got shape "
            f"{fmt_shape(A.shape)}"
        )


def _float_arg(name: str, what: str, v) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)):
        raise DTypeError(f"linalg.{name}: {what} must be a number, got {type(v).__name__}")
    v = float(v)
    if not v >= 0:
        raise ValueError(f"linalg.{name}: {what} must be >= 0, got {v}")
    return v


# --- norms (compositions of reductions: they trace and fuse)


def _float_input(name: str, x, dtype) -> Tensor:
    """``x`` (a float tensor), cast to ``dtype`` when given (a float dtype)."""
    if not isinstance(x, Tensor):
        raise TypeError(f"linalg.{name}: expected a tensor, got {type(x).__name__}")
    if dtype is not None:
        if not isinstance(dtype, dt.DType) or not dtype.is_floating_point:
            raise DTypeError(f"linalg.{name}: dtype must be a floating-point dtype, got {dtype}")
        if not x.dtype.is_floating_point:
            raise DTypeError(f"linalg.{name}: expected a floating-point tensor, got "
                             f"{x.dtype.name}")  # fmt: skip
        return x if x.dtype is dtype else cast(x, dtype)
    if not x.dtype.is_floating_point:
        raise DTypeError(f"linalg.{name}: expected a floating-point tensor, got {x.dtype.name}")
    return x


def _ord_arg(name: str, ord) -> float:  # noqa: A002
    if isinstance(ord, bool) or not isinstance(ord, (int, float, np.integer, np.floating)):
        raise ValueError(f"linalg.{name}: ord must be a number, got {ord!r}")
    return float(ord)


def vector_norm(x, ord=2, dim=None, keepdim: bool = False, *, dtype=None):  # noqa: A002
    """The vector ``ord``-norm of ``x`` over ``dim`` (all dims when None), as
    ``torch.linalg.vector_norm``: ``ord`` is any number, ``inf`` (max ``|x|``), ``-inf`` (min),
    0 (the count of nonzeros). float16 is computed in float32 and rounded (as PyTorch).

    >>> import fusejit
    >>> fusejit.linalg.vector_norm(fusejit.tensor([3.0, -4.0])).item()
    5.0
    >>> fusejit.linalg.vector_norm(fusejit.tensor([3.0, -4.0]), ord=float("inf")).item()
    4.0
    """
    x = _float_input("vector_norm", x, dtype)
    p = _ord_arg("vector_norm", ord)
    norm_dims("linalg.vector_norm", dim, x.ndim)  # (checks dim)
    out_dtype = x.dtype
    if x.dtype is dt.float16:  # (accumulate in float32, as PyTorch; |x| > 256 squares past fp16)
        x = cast(x, dt.float32)
    if p == 2:
        r = reductions.sum(x * x, dim, keepdim).sqrt()
    elif p == 0:
        r = cast(reductions.sum(x != 0, dim, keepdim), x.dtype)
    elif p == 1:
        r = reductions.sum(abs(x), dim, keepdim)
    elif p == INF:
        r = reductions.amax(abs(x), dim, keepdim)
    elif p == -INF:
        r = reductions.amin(abs(x), dim, keepdim)
    else:
        r = reductions.sum(abs(x) ** p, dim, keepdim) ** (1.0 / p)
    return r if r.dtype is out_dtype else cast(r, out_dtype)


def _two_dims(name: str, dim, ndim: int) -> tuple[int, int]:
    if not isinstance(dim, (tuple, list)) or len(dim) != 2:
        raise ValueError(f"linalg.{name}: dim must be a pair of dims, got {dim!r}")
    d0, d1 = dims_arg(f"linalg.{name}", dim, ndim)
    return d0, d1


def _keep(r, d0: int, d1: int, keepdim: bool):
    """``r`` reduced over dims ``d0`` and ``d1`` put back as size-1 dims when ``keepdim``."""
    if not keepdim:
        return r
    for d in sorted((d0, d1)):
        r = unsqueeze(r, d)
    return r


def matrix_norm(A, ord="fro", dim=(-2, -1), keepdim: bool = False, *, dtype=None):  # noqa: A002
    """The matrix norm of ``A`` over the two dims ``dim`` (``torch.linalg.matrix_norm``):
    ``ord`` is "fro", "nuc" (sum of singular values), 2 / -2 (largest / smallest singular
    value), 1 / -1 (max / min column sum of ``|A|``), inf / -inf (max / min row sum).

    >>> import fusejit
    >>> A = fusejit.tensor([[1.0, -2.0], [3.0, 4.0]])
    >>> fusejit.linalg.matrix_norm(A, ord=1).item()
    6.0
    >>> fusejit.linalg.matrix_norm(A, ord=float("inf")).item()
    7.0
    """
    A = _float_input("matrix_norm", A, dtype)
    if A.ndim < 2:
        raise ShapeError(f"linalg.matrix_norm: A must have 2 or more dims, got shape "
                         f"{fmt_shape(A.shape)}")  # fmt: skip
    d0, d1 = _two_dims("matrix_norm", dim, A.ndim)
    if ord == "fro":
        return vector_norm(A, 2, (d0, d1), keepdim)
    if ord == "nuc" or (not isinstance(ord, str) and _ord_arg("matrix_norm", ord) in (2, -2)):
        if A.dtype is dt.float16:
            raise DTypeError(f"linalg.matrix_norm: ord={ord!r} needs singular values, not "
                             "supported for float16")  # fmt: skip
        s = svdvals(movedim(A, (d0, d1), (-2, -1)))
        if ord == "nuc":
            r = reductions.sum(s, -1)
        else:
            r = (reductions.amax if ord == 2 else reductions.amin)(s, -1)
        return _keep(r, d0, d1, keepdim)
    if isinstance(ord, str):
        raise ValueError(f"linalg.matrix_norm: ord must be 'fro', 'nuc', 2, -2, 1, -1, inf or "
                         f"-inf, got {ord!r}")  # fmt: skip
    p = _ord_arg("matrix_norm", ord)
    if p not in (1, -1, INF, -INF):
        raise ValueError(f"linalg.matrix_norm: ord must be 'fro', 'nuc', 2, -2, 1, -1, inf or "
                         f"-inf, got {ord!r}")  # fmt: skip
    inner, outer = (d0, d1) if p in (1, -1) else (d1, d0)  # 1: sums over rows, max over columns
    if A.numel() == 0 and A.shape[outer] == 0:
        raise ShapeError(f"linalg.matrix_norm: ord={ord} of an empty matrix (no identity)")
    x = cast(A, dt.float32) if A.dtype is dt.float16 else A
    sums = reductions.sum(abs(x), inner, keepdim=True)
    r = (reductions.amax if p > 0 else reductions.amin)(sums, outer, keepdim=True)
    if not keepdim:
        r = r.reshape(tuple(n for i, n in enumerate(A.shape) if i not in (d0, d1)))
    return r if r.dtype is A.dtype else cast(r, A.dtype)


def norm(A, ord=None, dim=None, keepdim: bool = False, *, dtype=None):  # noqa: A002
    """``torch.linalg.norm``: a vector norm when ``dim`` is an int (or ``ord`` is None and
    ``dim`` is None: the 2-norm of the flattened tensor), a matrix norm when ``dim`` is a pair
    or ``A`` is 2-D with ``ord`` given.

    >>> import fusejit
    >>> fusejit.linalg.norm(fusejit.tensor([[3.0, 0.0], [0.0, 4.0]])).item()
    5.0
    """
    if not isinstance(A, Tensor):
        raise TypeError(f"linalg.norm: expected a tensor, got {type(A).__name__}")
    if dim is not None and not isinstance(dim, (tuple, list)):
        dim = (dim,)
    if ord is None:
        return vector_norm(A, 2, dim, keepdim, dtype=dtype)
    if dim is None:
        if A.ndim not in (1, 2):
            raise ShapeError(f"linalg.norm: with ord given and no dim, A must be 1-D or 2-D, "
                             f"got shape {fmt_shape(A.shape)}")  # fmt: skip
        dim = tuple(range(A.ndim))
    if len(dim) == 2:
        return matrix_norm(A, ord, tuple(dim), keepdim, dtype=dtype)
    if len(dim) != 1:
        raise ValueError(f"linalg.norm: dim must be one dim or a pair, got {dim!r}")
    if isinstance(ord, str):
        raise ValueError(f"linalg.norm: ord={ord!r} is a matrix norm; a vector norm was asked")
    return vector_norm(A, ord, dim, keepdim, dtype=dtype)


# --- decompositions and solvers (entries of the op table)


def solve(A, B, *, left: bool = True):
    """The solution ``X`` of ``A @ X = B`` (``torch.linalg.solve``): ``A`` (..., n, n), ``B``
    (..., n, k) or a (batch of) vector(s) (..., n) when it is 1-D or has ``A``'s shape without
    its last dim; the batch dims broadcast. A singular ``A`` is a ``LinAlgError``.

    >>> import fusejit
    >>> A = fusejit.tensor([[2.0, 0.0], [0.0, 4.0]])
    >>> fusejit.linalg.solve(A, fusejit.tensor([2.0, 2.0])).tolist()
    [1.0, 0.5]
    """
    if left is not True:
        raise ValueError("linalg.solve: only left=True is supported (solve A.mT X^T = B^T)")
    _matrix_arg("solve", A, square=True)
    if not isinstance(B, Tensor):
        raise TypeError(f"linalg.solve: B must be a tensor, got {type(B).__name__}")
    if B.dtype is not A.dtype:
        raise DTypeError(f"linalg.solve: A and B must have one dtype, got {A.dtype.name} and "
                         f"{B.dtype.name}")  # fmt: skip
    _rhs_check("solve", A, B)
    return dispatch.apply(L.LINALG_SOLVE, (A, B), {})


def _rhs_check(name: str, A, B) -> None:
    vector = B.ndim == 1 or B.shape == A.shape[:-1]
    ok = B.ndim >= 1 and (vector or B.ndim >= 2)
    if ok:
        rows = B.shape[-1] if vector else B.shape[-2]
        bb = B.shape[:-1] if vector else B.shape[:-2]
        ok = rows == A.shape[-2]
        try:
            np.broadcast_shapes(A.shape[:-2], bb)
        except ValueError:
            ok = False
    if not ok:
        raise ShapeError(
            f"linalg.{name}: A of shape {fmt_shape(A.shape)} and B of shape "
            f"{fmt_shape(B.shape)} do not fit (B must be (*, {A.shape[-2]}, k) or "
            f"(*, {A.shape[-2]}), with batch dims that broadcast)"
        )


def inv(A):
    """The inverse of each square matrix of ``A`` (``torch.linalg.inv``); a singular one is a
    ``LinAlgError``.

    >>> import fusejit
    >>> fusejit.linalg.inv(fusejit.tensor([[2.0, 0.0], [0.0, 4.0]])).tolist()
    [[0.5, 0.0], [0.0, 0.25]]
    """
    _matrix_arg("inv", A, square=True)
    return dispatch.apply(L.LINALG_INV, (A,), {})


def det(A):
    """The determinant of each square matrix of ``A`` (``torch.linalg.det``).

    >>> import fusejit
    >>> fusejit.linalg.det(fusejit.tensor([[1.0, 2.0], [3.0, 4.0]])).item()  # doctest: +ELLIPSIS
    -2.0...
    """
    _matrix_arg("det", A, square=True)
    return dispatch.apply(L.LINALG_DET, (A,), {})


def slogdet(A) -> SlogdetResult:
    """``(sign, logabsdet)`` of the determinant of each square matrix of ``A``
    (``torch.linalg.slogdet``): ``det = sign * exp(logabsdet)``, without overflow.

    >>> import fusejit
    >>> fusejit.linalg.slogdet(fusejit.tensor([[-2.0, 0.0], [0.0, 1.0]])).sign.item()
    -1.0
    """
    _matrix_arg("slogdet", A, square=True)
    return SlogdetResult(*dispatch.apply(L.LINALG_SLOGDET, (A,), {}))


def cholesky(A, *, upper: bool = False):
    """The Cholesky factor of each symmetric positive-definite matrix of ``A``
    (``torch.linalg.cholesky``): lower ``L`` with ``A = L @ L.mT``, or upper ``U = L.mT``. Only
    the lower triangle of ``A`` is read; a matrix that is not positive-definite is a
    ``LinAlgError``.

    >>> import fusejit
    >>> fusejit.linalg.cholesky(fusejit.tensor([[4.0, 2.0], [2.0, 2.0]])).tolist()
    [[2.0, 0.0], [1.0, 1.0]]
    """
    _matrix_arg("cholesky", A, square=True)
    if not isinstance(upper, bool):
        raise DTypeError(f"linalg.cholesky: upper must be a bool, got {type(upper).__name__}")
    return dispatch.apply(L.LINALG_CHOLESKY, (A,), {"upper": upper})


def qr(A, mode: str = "reduced") -> QRResult:
    """The QR decomposition of each matrix of ``A`` (``torch.linalg.qr``): ``mode`` "reduced"
    (Q (..., m, k), R (..., k, n), k = min(m, n)), "complete" (Q (..., m, m)) or "r" (R only;
    Q is an empty tensor).

    >>> import fusejit
    >>> Q, R = fusejit.linalg.qr(fusejit.ones(3, 2))
    >>> Q.shape, R.shape
    ((3, 2), (2, 2))
    """
    _matrix_arg("qr", A)
    if mode not in ("reduced", "complete", "r"):
        raise ValueError(f"linalg.qr: mode must be 'reduced', 'complete' or 'r', got {mode!r}")
    return QRResult(*dispatch.apply(L.LINALG_QR, (A,), {"mode": mode}))


def svd(A, full_matrices: bool = True) -> SVDResult:
    """``U, S, Vh`` with ``A = U @ diag(S) @ Vh`` for each matrix of ``A``
    (``torch.linalg.svd``): S descending; U (..., m, m) and Vh (..., n, n) with
    ``full_matrices``, else (..., m, k) and (..., k, n).

    >>> import fusejit
    >>> fusejit.linalg.svd(fusejit.tensor([[3.0, 0.0], [0.0, -4.0]])).S.tolist()
    [4.0, 3.0]
    """
    _matrix_arg("svd", A)
    if not isinstance(full_matrices, bool):
        raise DTypeError("linalg.svd: full_matrices must be a bool")
    return SVDResult(*dispatch.apply(L.LINALG_SVD, (A,), {"full_matrices": full_matrices}))


def svdvals(A):
    """The singular values of each matrix of ``A``, descending (``torch.linalg.svdvals``).

    >>> import fusejit
    >>> fusejit.linalg.svdvals(fusejit.tensor([[3.0, 0.0], [0.0, -4.0]])).tolist()
    [4.0, 3.0]
    """
    _matrix_arg("svdvals", A)
    return dispatch.apply(L.LINALG_SVDVALS, (A,), {})


def _uplo(name: str, UPLO) -> str:  # noqa: N803
    if UPLO not in ("L", "U"):
        raise ValueError(f"linalg.{name}: UPLO must be 'L' or 'U', got {UPLO!r}")
    return UPLO


def eigh(A, UPLO: str = "L") -> EighResult:  # noqa: N803 - torch's name
    """Eigenvalues (ascending) and eigenvectors (columns) of each symmetric matrix of ``A``
    (``torch.linalg.eigh``), reading its lower (``UPLO="L"``) or upper triangle.

    >>> import fusejit
    >>> fusejit.linalg.eigh(fusejit.tensor([[2.0, 0.0], [0.0, 1.0]])).eigenvalues.tolist()
    [1.0, 2.0]
    """
    _matrix_arg("eigh", A, square=True)
    return EighResult(*dispatch.apply(L.LINALG_EIGH, (A,), {"UPLO": _uplo("eigh", UPLO)}))


def eigvalsh(A, UPLO: str = "L"):  # noqa: N803
    """The eigenvalues (ascending) of each symmetric matrix of ``A``
    (``torch.linalg.eigvalsh``).

    >>> import fusejit
    >>> fusejit.linalg.eigvalsh(fusejit.tensor([[2.0, 0.0], [0.0, 1.0]])).tolist()
    [1.0, 2.0]
    """
    _matrix_arg("eigvalsh", A, square=True)
    return dispatch.apply(L.LINALG_EIGVALSH, (A,), {"UPLO": _uplo("eigvalsh", UPLO)})


def _tolerances(name: str, A, atol, rtol) -> tuple[float, float]:
    """PyTorch's defaults: with neither given, ``rtol = eps * max(m, n)``; with ``atol > 0``
    alone, ``rtol = 0``."""
    a = 0.0 if atol is None else _float_arg(name, "atol", atol)
    if rtol is not None:
        return a, _float_arg(name, "rtol", rtol)
    if a > 0:
        return a, 0.0
    return a, float(np.finfo(A.dtype.np).eps) * builtins.max(A.shape[-2:])


def pinv(A, *, atol=None, rtol=None, hermitian: bool = False):
    """The pseudo-inverse of each matrix of ``A`` (``torch.linalg.pinv``), through its SVD (or
    its eigendecomposition with ``hermitian``): singular values at most
    ``max(atol, rtol * largest)`` count as zero.

    >>> import fusejit
    >>> fusejit.linalg.pinv(fusejit.tensor([[2.0, 0.0], [0.0, 0.0]])).tolist()
    [[0.5, 0.0], [0.0, 0.0]]
    """
    _matrix_arg("pinv", A, square=bool(hermitian))
    a, r = _tolerances("pinv", A, atol, rtol)
    return dispatch.apply(L.LINALG_PINV, (A,), {"atol": a, "rtol": r,
                                                 "hermitian": bool(hermitian)})  # fmt: skip


def matrix_rank(A, *, atol=None, rtol=None, hermitian: bool = False):
    """The number of singular values of each matrix of ``A`` above ``max(atol, rtol *
    largest)`` (``torch.linalg.matrix_rank``), an int64 tensor.

    >>> import fusejit
    >>> fusejit.linalg.matrix_rank(fusejit.tensor([[1.0, 2.0], [2.0, 4.0]])).item()
    1
    """
    _matrix_arg("matrix_rank", A, square=bool(hermitian))
    a, r = _tolerances("matrix_rank", A, atol, rtol)
    return dispatch.apply(L.LINALG_MATRIX_RANK, (A,), {"atol": a, "rtol": r,
                                                        "hermitian": bool(hermitian)})  # fmt: skip


_DRIVERS = (None, "gels", "gelsy", "gelsd", "gelss")


def lstsq(A, B, rcond=None, *, driver=None) -> LstsqResult:
    """The least-squares solution of ``A @ X = B`` (``torch.linalg.lstsq``), a named tuple
    ``(solution, residuals, rank, singular_values)``. Computed through the SVD on every device
    (LAPACK's gelsd; ``driver`` is accepted and gives gelsd's results): the minimum-norm
    solution, the rank (singular values above ``rcond`` times the largest; default
    ``eps * max(m, n)``), the singular values, and the squared residuals ``|A X - B|^2`` of each
    column when m > n (else an empty tensor).

    >>> import fusejit
    >>> A = fusejit.tensor([[1.0, 0.0], [0.0, 1.0], [0.0, 0.0]])
    >>> r = fusejit.linalg.lstsq(A, fusejit.tensor([[1.0], [2.0], [3.0]]))
    >>> r.solution.tolist(), r.residuals.tolist(), r.rank.item()
    ([[1.0], [2.0]], [9.0], 2)
    """
    _matrix_arg("lstsq", A)
    if not isinstance(B, Tensor):
        raise TypeError(f"linalg.lstsq: B must be a tensor, got {type(B).__name__}")
    if B.dtype is not A.dtype:
        raise DTypeError(f"linalg.lstsq: A and B must have one dtype, got {A.dtype.name} and "
                         f"{B.dtype.name}")  # fmt: skip
    if driver not in _DRIVERS:
        raise ValueError(f"linalg.lstsq: driver must be one of {_DRIVERS[1:]}, got {driver!r}")
    _rhs_check("lstsq", A, B)
    if rcond is None:
        rc = float(np.finfo(A.dtype.np).eps) * builtins.max(A.shape[-2:])
    else:
        rc = _float_arg("lstsq", "rcond", rcond)
    return LstsqResult(*dispatch.apply(L.LINALG_LSTSQ, (A, B), {"rcond": rc}))


def cross(input, other, *, dim: int = -1):  # noqa: A002
    """The cross product of 3-vectors along ``dim`` (``torch.linalg.cross``); the shapes
    broadcast.

    >>> import fusejit
    >>> x, y = fusejit.tensor([0.0, 1.0, 0.0]), fusejit.tensor([0.0, 0.0, 1.0])
    >>> fusejit.linalg.cross(x, y).tolist()
    [1.0, 0.0, 0.0]
    """
    return _cross(input, other, dim)


def trace(x, offset: int = 0, *, dtype=None):
    """The sum of the ``offset``-th diagonal of each matrix of ``x`` (the last two dims), as
    numpy's and the Array API's ``linalg.trace``; PyTorch has none (``torch.trace`` is
    ``Tensor.trace``, 2-D only; ``fusejit.trace`` is the JIT). Ints and bool sum to int64.

    >>> import fusejit
    >>> fusejit.linalg.trace(fusejit.tensor([[1, 2], [3, 4]])).item()
    5
    """
    if not isinstance(x, Tensor):
        raise TypeError(f"linalg.trace: expected a tensor, got {type(x).__name__}")
    if x.ndim < 2:
        raise ShapeError(f"linalg.trace: x must have 2 or more dims, got shape "
                         f"{fmt_shape(x.shape)}")  # fmt: skip
    if isinstance(offset, bool) or not isinstance(offset, (int, np.integer)):
        raise DTypeError(f"linalg.trace: offset must be an int, got {type(offset).__name__}")
    m, n = x.shape[-2:]
    k = int(offset)
    if x.dtype is dt.bool_:
        x = cast(x, dt.int64)
    rows, cols = (builtins.max(0, builtins.min(m, n - k)), k) if k >= 0 else (
        builtins.max(0, builtins.min(m + k, n)), 0)  # fmt: skip
    r0 = 0 if k >= 0 else -k
    sub = x[..., r0 : r0 + rows, cols : cols + rows]
    d = einsum("...ii->...i", sub)
    return reductions.sum(d, -1, dtype=dtype)


def logdet(A):
    """``log(det(A))`` of each square matrix of ``A``: NaN for a negative determinant,
    ``-inf`` for zero (``torch.logdet``).

    >>> import fusejit
    >>> fusejit.logdet(fusejit.tensor([[2.0, 0.0], [0.0, 0.5]])).item()
    0.0
    """
    sign, la = slogdet(A)
    return where(sign < 0, float("nan"), la)


def cdist(x1, x2, p: float = 2.0, compute_mode: str = "use_mm_for_euclid_dist_if_necessary"):
    """The ``p``-norm distance between each row of ``x1`` (..., P, M) and each row of ``x2``
    (..., R, M): a (..., P, R) tensor (``torch.cdist``; the batch dims broadcast). ``p`` is
    any number >= 0, including 0 (count of differing entries) and ``inf``. Always computed from
    the differences: ``compute_mode`` is accepted and has no effect (never through
    ``|x|^2 + |y|^2 - 2 x.y``, which cancels for close rows).

    >>> import fusejit
    >>> fusejit.cdist(fusejit.tensor([[0.0, 0.0]]), fusejit.tensor([[3.0, 4.0]])).tolist()
    [[5.0]]
    """
    for k, t in (("x1", x1), ("x2", x2)):
        if not isinstance(t, Tensor):
            raise TypeError(f"cdist: {k} must be a tensor, got {type(t).__name__}")
        if not t.dtype.is_floating_point:
            raise DTypeError(f"cdist: expected floating-point tensors, got {k} {t.dtype.name}")
        if t.ndim < 2:
            raise ShapeError(f"cdist: {k} must have 2 or more dims, got {fmt_shape(t.shape)}")
    if x1.dtype is not x2.dtype:
        raise DTypeError(f"cdist: x1 and x2 must have one dtype, got {x1.dtype.name} and "
                         f"{x2.dtype.name}")  # fmt: skip
    if isinstance(p, bool) or not isinstance(p, (int, float)) or not p >= 0:
        raise ValueError(f"cdist: p must be a number >= 0, got {p!r}")
    if x1.shape[-1] != x2.shape[-1]:
        raise ShapeError(
            f"cdist: x1 {fmt_shape(x1.shape)} and x2 {fmt_shape(x2.shape)} must have the same "
            "number of columns"
        )
    try:
        np.broadcast_shapes(x1.shape[:-2], x2.shape[:-2])
    except ValueError:
        raise ShapeError(
            f"cdist: the batch dims of x1 {fmt_shape(x1.shape)} and x2 {fmt_shape(x2.shape)} "
            "do not broadcast"
        ) from None
    if compute_mode not in ("use_mm_for_euclid_dist_if_necessary", "use_mm_for_euclid_dist",
                            "donot_use_mm_for_euclid_dist"):  # fmt: skip
        raise ValueError(f"cdist: unknown compute_mode {compute_mode!r}")
    return vector_norm(unsqueeze(x1, -2) - unsqueeze(x2, -3), p, dim=-1)


__all__ = [
    "norm", "vector_norm", "matrix_norm", "solve", "inv", "det", "slogdet", "logdet",
    "cholesky", "qr", "svd", "svdvals", "eigh", "eigvalsh", "lstsq", "pinv", "matrix_rank",
    "cross", "trace", "matmul", "cdist", "QRResult", "SVDResult", "EighResult",
    "SlogdetResult", "LstsqResult",
]  # fmt: skip
