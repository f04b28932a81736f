"""The standard's ``fft`` extension, on ``fusejit.fft`` (op-table entries: they trace and
save). The standard names the axes ``axis`` / ``axes`` and its norm defaults to "backward";
``fftfreq`` and ``rfftfreq`` default to the namespace's float64.

>>> import fusejit.array_api as xp
>>> xp.fft.irfft(xp.fft.rfft(xp.asarray([1.0, 2.0, 3.0, 4.0]))).tolist()
[1.0, 2.0, 3.0, 4.0]
"""

from __future__ import annotations

from fusejit.array_api._creation import DEFAULT_FLOAT
from fusejit.eager import fft_functions as FF
from fusejit.eager.tensor import Tensor

__all__ = [
    "fft", "fftfreq", "fftn", "fftshift", "hfft", "ifft", "ifftn", "ifftshift", "ihfft", "irfft",
    "irfftn", "rfft", "rfftfreq", "rfftn",
]  # fmt: skip


def _one(fn, doc: str):
    def f(x: Tensor, /, *, n: int | None = None, axis: int = -1, norm: str = "backward"):
        return fn(x, n, axis, norm)

    f.__name__ = f.__qualname__ = fn.__name__
    f.__doc__ = doc
    return f


def _many(fn, doc: str):
    def f(x: Tensor, /, *, s=None, axes=None, norm: str = "backward"):
        if s is not None:
            s = tuple(s)
        if axes is not None:
            axes = tuple(axes)
        return fn(x, s, axes, norm)

    f.__name__ = f.__qualname__ = fn.__name__
    f.__doc__ = doc
    return f


fft = _one(FF.fft, "The one-dimensional discrete Fourier transform along ``axis``.")
ifft = _one(FF.ifft, "The inverse of ``fft``.")
rfft = _one(FF.rfft, "The transform of a real signal (the non-negative frequencies).")
irfft = _one(FF.irfft, "The inverse of ``rfft`` (a real signal of ``n`` points).")
hfft = _one(FF.hfft, "The transform of a Hermitian-symmetric signal (a real result).")
ihfft = _one(FF.ihfft, "The inverse of ``hfft``.")
fftn = _many(FF.fftn, "The n-dimensional transform over ``axes``.")
ifftn = _many(FF.ifftn, "The inverse of ``fftn``.")
rfftn = _many(FF.rfftn, "The n-dimensional transform of a real signal.")
irfftn = _many(FF.irfftn, "The inverse of ``rfftn``.")


def fftfreq(n: int, /, *, d: float = 1.0, dtype=None, device=None) -> Tensor:
    """The sample frequencies of an ``fft`` of length ``n`` (float64 by default)."""
    return FF.fftfreq(n, d, dtype=dtype or DEFAULT_FLOAT, device=device)


def rfftfreq(n: int, /, *, d: float = 1.0, dtype=None, device=None) -> Tensor:
    """The sample frequencies of an ``rfft`` of length ``n`` (float64 by default)."""
    return FF.rfftfreq(n, d, dtype=dtype or DEFAULT_FLOAT, device=device)


def fftshift(x: Tensor, /, *, axes=None) -> Tensor:
    """``x`` with the zero frequency moved to the middle of ``axes`` (all when None)."""
    return FF.fftshift(x, axes if axes is None or isinstance(axes, int) else tuple(axes))


def ifftshift(x: Tensor, /, *, axes=None) -> Tensor:
    """The inverse of ``fftshift``."""
    return FF.ifftshift(x, axes if axes is None or isinstance(axes, int) else tuple(axes))
