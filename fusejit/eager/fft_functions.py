"""Public functions of ``fusejit.fft`` (the transforms of ``fusejit/ops/fft.py``), as
``torch.fft``: ``fft``, ``ifft``, ``rfft``, ``irfft``, ``hfft``, ``ihfft``, their two- and
n-dim forms, ``fftfreq``, ``rfftfreq``, ``fftshift`` and ``ifftshift``.

Result dtypes as PyTorch's: complex64 from float32, ints and bool (read as float32),
complex128 from float64; the transforms to real values (``irfft``, ``hfft``) float32 or
float64. float16 is a ``DTypeError`` (PyTorch transforms half only on CUDA, for powers of two).
``n`` / ``s`` pad with zeros or crop the signal; ``norm`` is "backward" (the default: the
inverse transforms divide by n), "forward" (the forward ones do) or "ortho" (both by sqrt(n)).
"""

from __future__ import annotations

import numpy as np

from fusejit.base import dtypes as dt
from fusejit.base.errors import DimError, DTypeError, ShapeError, fmt_shape
from fusejit.base.shapes import describe, dims_arg, int_arg, norm_dim
from fusejit.eager import dispatch
from fusejit.eager.creation import _make
from fusejit.eager.movement import roll
from fusejit.eager.tensor import Tensor
from fusejit.ops import fft as ops

__all__ = [
    "fft", "ifft", "rfft", "irfft", "hfft", "ihfft", "fft2", "ifft2", "rfft2", "irfft2",
    "fftn", "ifftn", "rfftn", "irfftn", "fftfreq", "rfftfreq", "fftshift", "ifftshift",
]  # fmt: skip

_NORMS = ("backward", "forward", "ortho")


def _input(name: str, x, real_only: bool = False) -> Tensor:
    if not isinstance(x, Tensor):
        raise TypeError(f"{name}: expected a tensor, got {type(x).__name__}")
    if x.dtype is dt.float16:
        raise DTypeError(
            f"{name}: float16 transforms are not supported (PyTorch computes them only on "
            "CUDA, for powers of two); convert with .float() first"
        )
    if real_only and x.dtype.kind == "c":
        raise DTypeError(f"{name}: expected a real input tensor, got dtype {x.dtype.name}")
    if x.ndim == 0:
        raise DimError(f"{name}: expected a tensor of at least one dim, got a 0-d tensor")
    return x


def _norm(name: str, norm) -> str:
    if norm is None:
        return "backward"
    if norm not in _NORMS:
        raise ValueError(f"{name}: norm must be None, 'backward', 'forward' or 'ortho', "
                         f"got {norm!r}")  # fmt: skip
    return norm


def _points(name: str, n: int, what: str = "signal length") -> int:
    if n < 1:
        raise ShapeError(f"{name}: invalid number of data points ({n}): the {what} must be "
                         "at least 1")  # fmt: skip
    return n


def _one_dim(name: str, op, x, n, dim, norm, kind: str) -> Tensor:
    x = _input(name, x, real_only=kind == "r2c")
    d = norm_dim(name, dim, x.ndim)
    if n is not None:
        n = _points(name, int_arg(name, n, "n"))
    elif kind == "c2r":
        _points(name, 2 * (x.shape[d] - 1), f"output length 2 * ({x.shape[d]} - 1)")
    else:
        _points(name, x.shape[d], f"size of dim {d} of shape {fmt_shape(x.shape)}")
    return dispatch.apply(op, (x,), {"n": n, "dim": d, "norm": _norm(name, norm)})


def _n_dim(name: str, op, x, s, dim, norm, kind: str) -> Tensor:
    """The n-dim transforms: ``dim`` and ``s`` resolved as PyTorch's (no dims: all of them, or
    the last ``len(s)`` when ``s`` is given; -1 in ``s``: the input's size)."""
    x = _input(name, x, real_only=kind == "r2c")
    if s is not None:
        if isinstance(s, (int, np.integer)) and not isinstance(s, bool):
            s = (s,)
        if not isinstance(s, (tuple, list)):
            raise DTypeError(f"{name}: s must be a sequence of ints, got {describe(s)}")
        s = tuple(int_arg(name, v, "s") for v in s)
    if dim is None:  # (fft2 and the others too, given dim=None, as PyTorch's)
        dims = tuple(range(x.ndim)) if s is None else tuple(range(x.ndim - len(s), x.ndim))
        if s is not None and len(s) > x.ndim:
            raise DimError(f"{name}: s {list(s)} has more sizes than the tensor of shape "
                           f"{fmt_shape(x.shape)} has dims")  # fmt: skip
    else:
        dims = dims_arg(name, dim, x.ndim)
    if not dims:
        raise DimError(f"{name}: expected at least one dim to transform")
    if s is None:
        s = tuple(x.shape[d] for d in dims)
        if kind == "c2r":  # the last dim's output length: 2 * (m - 1)
            s = s[:-1] + (2 * (s[-1] - 1),)
    else:
        if len(s) != len(dims):
            raise ShapeError(f"{name}: s {list(s)} and dim {list(dims)} differ in length")
        last = len(s) - 1
        s = tuple(
            (2 * (x.shape[d] - 1) if kind == "c2r" and k == last else x.shape[d]) if n == -1 else n
            for k, (n, d) in enumerate(zip(s, dims))
        )
    for k, n in enumerate(s):
        _points(name, n, f"length of dim {dims[k]}")
    return dispatch.apply(op, (x,), {"s": s, "dim": dims, "norm": _norm(name, norm)})


def fft(input, n: int | None = None, dim: int = -1, norm: str | None = None) -> Tensor:
    """The one-dim discrete Fourier transform along ``dim`` (``torch.fft.fft``); ``n`` pads
    with zeros or crops the signal first.

    >>> import fusejit
    >>> fusejit.fft.fft(fusejit.tensor([1.0, 2.0, 3.0, 4.0])).tolist()
    [(10+0j), (-2+2j), (-2+0j), (-2-2j)]
    """
    return _one_dim("fft", ops.FFT, input, n, dim, norm, "c2c")


def ifft(input, n: int | None = None, dim: int = -1, norm: str | None = None) -> Tensor:
    """The inverse of ``fft`` (``torch.fft.ifft``).

    >>> import fusejit
    >>> fusejit.fft.ifft(fusejit.tensor([4.0, 0.0, 0.0, 0.0])).tolist()
    [(1+0j), (1+0j), (1+0j), (1+0j)]
    """
    return _one_dim("ifft", ops.IFFT, input, n, dim, norm, "c2c")


def rfft(input, n: int | None = None, dim: int = -1, norm: str | None = None) -> Tensor:
    """The transform of a real signal: the n // 2 + 1 non-negative frequencies
    (``torch.fft.rfft``).

    >>> import fusejit
    >>> fusejit.fft.rfft(fusejit.tensor([1.0, 2.0, 3.0, 4.0])).tolist()
    [(10+0j), (-2+2j), (-2+0j)]
    """
    return _one_dim("rfft", ops.RFFT, input, n, dim, norm, "r2c")


def irfft(input, n: int | None = None, dim: int = -1, norm: str | None = None) -> Tensor:
    """The inverse of ``rfft``: a real signal of length ``n`` (by default 2 * (m - 1) for m
    frequencies) (``torch.fft.irfft``).

    >>> import fusejit
    >>> fusejit.fft.irfft(fusejit.tensor([10 + 0j, -2 + 2j, -2 + 0j])).tolist()
    [1.0, 2.0, 3.0, 4.0]
    """
    return _one_dim("irfft", ops.IRFFT, input, n, dim, norm, "c2r")


def hfft(input, n: int | None = None, dim: int = -1, norm: str | None = None) -> Tensor:
    """The transform of a Hermitian-symmetric signal given by its first half: a real result of
    length ``n`` (by default 2 * (m - 1)) (``torch.fft.hfft``).

    >>> import fusejit
    >>> fusejit.fft.hfft(fusejit.tensor([1 + 0j, 2 + 0j])).tolist()
    [3.0, -1.0]
    """
    return _one_dim("hfft", ops.HFFT, input, n, dim, norm, "c2r")


def ihfft(input, n: int | None = None, dim: int = -1, norm: str | None = None) -> Tensor:
    """The inverse of ``hfft``: the first half of the transform of a real signal
    (``torch.fft.ihfft``).

    >>> import fusejit
    >>> fusejit.fft.ihfft(fusejit.tensor([3.0, -1.0])).tolist()
    [(1-0j), (2-0j)]
    """
    return _one_dim("ihfft", ops.IHFFT, input, n, dim, norm, "r2c")


def fftn(input, s=None, dim=None, norm: str | None = None) -> Tensor:
    """The n-dim transform over ``dim`` (default: all dims, or the last ``len(s)``); ``s``
    pads or crops each (``torch.fft.fftn``).

    >>> import fusejit
    >>> fusejit.fft.fftn(fusejit.ones(2, 2)).tolist()
    [[(4+0j), 0j], [0j, 0j]]
    """
    return _n_dim("fftn", ops.FFTN, input, s, dim, norm, "c2c")


def ifftn(input, s=None, dim=None, norm: str | None = None) -> Tensor:
    """The inverse of ``fftn`` (``torch.fft.ifftn``)."""
    return _n_dim("ifftn", ops.IFFTN, input, s, dim, norm, "c2c")


def rfftn(input, s=None, dim=None, norm: str | None = None) -> Tensor:
    """The n-dim transform of a real signal; the last dim keeps n // 2 + 1 frequencies
    (``torch.fft.rfftn``)."""
    return _n_dim("rfftn", ops.RFFTN, input, s, dim, norm, "r2c")


def irfftn(input, s=None, dim=None, norm: str | None = None) -> Tensor:
    """The inverse of ``rfftn``; the last dim's length is by default 2 * (m - 1)
    (``torch.fft.irfftn``)."""
    return _n_dim("irfftn", ops.IRFFTN, input, s, dim, norm, "c2r")


def fft2(input, s=None, dim=(-2, -1), norm: str | None = None) -> Tensor:
    """``fftn`` over the last two dims (``torch.fft.fft2``).

    >>> import fusejit
    >>> fusejit.fft.fft2(fusejit.ones(2, 2)).shape
    (2, 2)
    """
    return _n_dim("fft2", ops.FFTN, input, s, dim, norm, "c2c")


def ifft2(input, s=None, dim=(-2, -1), norm: str | None = None) -> Tensor:
    """``ifftn`` over the last two dims (``torch.fft.ifft2``)."""
    return _n_dim("ifft2", ops.IFFTN, input, s, dim, norm, "c2c")


def rfft2(input, s=None, dim=(-2, -1), norm: str | None = None) -> Tensor:
    """``rfftn`` over the last two dims (``torch.fft.rfft2``)."""
    return _n_dim("rfft2", ops.RFFTN, input, s, dim, norm, "r2c")


def irfft2(input, s=None, dim=(-2, -1), norm: str | None = None) -> Tensor:
    """``irfftn`` over the last two dims (``torch.fft.irfft2``)."""
    return _n_dim("irfft2", ops.IRFFTN, input, s, dim, norm, "c2r")


def _freq_dtype(name: str, dtype) -> dt.DType:
    d = dt.default_float if dtype is None else dt.as_dtype(dtype)
    if not d.is_floating_point:
        raise DTypeError(f"{name}: expected a floating-point dtype, got {d.name}")
    return d


def fftfreq(n: int, d: float = 1.0, *, dtype=None, device=None) -> Tensor:
    """The sample frequencies of an ``fft`` of length ``n`` and sample spacing ``d``:
    ``[0, 1, ..., -2, -1] / (d * n)`` (``torch.fft.fftfreq``; float32 by default).

    >>> import fusejit
    >>> fusejit.fft.fftfreq(4).tolist()
    [0.0, 0.25, -0.5, -0.25]
    """
    n = int_arg("fftfreq", n, "n")
    if n < 0:
        raise ShapeError(f"fftfreq: n must be non-negative, got {n}")
    out = _freq_dtype("fftfreq", dtype)
    k = np.concatenate([np.arange((n + 1) // 2), np.arange(-(n // 2), 0)]).astype(np.float64)
    return _make((k / (n * float(d)) if n else k).astype(out.np), out, device)


def rfftfreq(n: int, d: float = 1.0, *, dtype=None, device=None) -> Tensor:
    """The sample frequencies of an ``rfft`` of length ``n``: ``[0, 1, ..., n // 2] / (d * n)``
    (``torch.fft.rfftfreq``).

    >>> import fusejit
    >>> fusejit.fft.rfftfreq(4).tolist()
    [0.0, 0.25, 0.5]
    """
    n = int_arg("rfftfreq", n, "n")
    if n < 0:
        raise ShapeError(f"rfftfreq: n must be non-negative, got {n}")
    out = _freq_dtype("rfftfreq", dtype)
    k = np.arange(n // 2 + 1, dtype=np.float64)
    return _make((k / (n * float(d)) if n else k[:0]).astype(out.np), out, device)


def _shift(name: str, x, dim, sign: int) -> Tensor:
    if not isinstance(x, Tensor):
        raise TypeError(f"{name}: expected a tensor, got {type(x).__name__}")
    dims = tuple(range(x.ndim)) if dim is None else dims_arg(name, dim, x.ndim)
    if not dims or x.ndim == 0:
        return x
    return roll(x, tuple(sign * (x.shape[d] // 2) for d in dims), dims)


def fftshift(input, dim=None) -> Tensor:
    """``input`` rolled so that frequency zero is in the middle of each dim of ``dim`` (all by
    default), as ``torch.fft.fftshift``: a ``roll`` (traced as one).

    >>> import fusejit
    >>> fusejit.fft.fftshift(fusejit.fft.fftfreq(4)).tolist()
    [-0.5, -0.25, 0.0, 0.25]
    """
    return _shift("fftshift", input, dim, 1)


def ifftshift(input, dim=None) -> Tensor:
    """The inverse of ``fftshift`` (``torch.fft.ifftshift``).

    >>> import fusejit
    >>> fusejit.fft.ifftshift(fusejit.tensor([-0.5, -0.25, 0.0, 0.25])).tolist()
    [0.0, 0.25, -0.5, -0.25]
    """
    return _shift("ifftshift", input, dim, -1)
